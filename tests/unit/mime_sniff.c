/* tests/unit/mime_sniff.c - content sniffing with libmagic loaded on first use, from several
 * threads at once (one magic_t serves them all, behind a lock) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>

#include "bluearrow/mime.h"

static const struct {
	const char *head;
	size_t n;
	const char *type;
} samples[] = {
	{ "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00", 19, "image/gif" },
	{ "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", 35, "application/pdf" },
	{ "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00",
	  33, "image/png" },
	{ "plain words\n", 12, "text/plain" },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static int sniff_ok(size_t k)
{
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	int ok = ba_mime_detect_type(&b, samples[k].head, samples[k].n, "no-extension", NULL,
	                             &err) == 0 && strcmp(ba_buf_str(&b), samples[k].type) == 0;
	ba_buf_release(&b);
	return ok;
}

static void *worker(void *arg)
{
	size_t start = (size_t)(uintptr_t)arg, bad = 0;
	for (size_t i = 0; i < 300; i++)
		bad += !sniff_ok((start + i) % NSAMPLES);
	return (void *)(uintptr_t)bad;
}

static void test_mime_sniff__threads(void **state)
{
	(void)state;
	pthread_t t[4];
	/* the first sniff loads libmagic: let all threads race for it */
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i), 0);
	for (size_t i = 0; i < 4; i++) {
		void *bad;
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_int_equal((uintptr_t)bad, 0);
	}
}

static void test_mime_sniff__no_sniff_uses_the_extension(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	struct ba_mime_opts o;
	memset(&o, 0, sizeof(o));
	o.flags = BA_MIME_NO_SNIFF;
	assert_int_equal(ba_mime_detect_type(&b, samples[0].head, samples[0].n, "x.pdf", &o, &err), 0);
	assert_string_equal(ba_buf_str(&b), "application/pdf");
	ba_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mime_sniff__threads),
		cmocka_unit_test(test_mime_sniff__no_sniff_uses_the_extension),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
