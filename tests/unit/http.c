/* tests/unit/http.c - the HTTPS request's refusals that need no server (the rest: test_mtasts.py,
 * test_oauth2.py against real HTTPS servers) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "bluearrow/http.h"

static void test_http__https_only(void **state)
{
	(void)state;
	struct ba_http_reply r;
	r.body = (struct ba_buf)BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	static const char *const urls[] = { "http://mta-sts.example.test/", "ftp://x/",
		                            "HTTPS://x/", "file:///etc/passwd", "" };
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		assert_int_equal(ba_http_request(&r, urls[i], NULL, 0, NULL, &err), -1);
		assert_int_equal(err.code, EX_UNAVAILABLE);
		assert_string_equal(err.text, "not an https URL");
		assert_int_equal(r.status, 0);
		assert_int_equal(r.body.len, 0);
	}
}

/* Nothing listens on port 1 of loopback: a connection failure is temporary. */
static void test_http__unreachable_is_temporary(void **state)
{
	(void)state;
	if (!ba_http_available())
		skip();
	struct ba_http_reply r;
	r.body = (struct ba_buf)BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	struct ba_http_params p = { NULL, 5000, 0, "127.0.0.1:1", NULL };
	assert_int_equal(ba_http_request(&r, "https://mta-sts.example.test/x", NULL, 0, &p, &err),
	                 -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_int_equal(r.status, 0);
	ba_buf_release(&r.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http__https_only),
		cmocka_unit_test(test_http__unreachable_is_temporary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
