/* tests/unit/log.c - log sink, cleaning of hostile text, AUTH redaction */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "bluearrow/log.h"

static char last[1024];
static void sink(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	snprintf(last, sizeof(last), "%s", msg);
}

static void test_log__clean_controls_and_c1(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	/* ESC [31m, a BEL, raw C1 CSI (0x9b), UTF-8-encoded C1 (U+009B), a valid é and a bad byte */
	const char in[] = "a\x1b[31mb\x07" "c\x9b" "d\xc2\x9b" "e\xc3\xa9" "f\xff";
	assert_int_equal(ba_log_clean(&b, in, sizeof(in) - 1), 0);
	assert_string_equal(ba_buf_str(&b), "a?[31mb?c?d??e\xc3\xa9" "f?");
	ba_buf_release(&b);
}

static void test_log__clean_bidi_and_invisible(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	/* U+202E RLO, U+2066 LRI, U+2028 LINE SEPARATOR, U+200B ZWSP, U+FEFF BOM, U+061C ALM;
	   U+2030 (per mille) and U+201C (quotation mark) around them stay */
	const char in[] = "a\xe2\x80\xae" "b\xe2\x81\xa6" "c\xe2\x80\xa8" "d\xe2\x80\x8b"
	                  "e\xef\xbb\xbf" "f\xd8\x9c" "g\xe2\x80\xb0\xe2\x80\x9c";
	assert_int_equal(ba_log_clean(&b, in, sizeof(in) - 1), 0);
	assert_string_equal(ba_buf_str(&b), "a???b???c???d???e???f??g\xe2\x80\xb0\xe2\x80\x9c");
	ba_buf_release(&b);
}

static void test_log__rejects_overlong_utf8(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	const char in[] = "\xc0\x8a\xe0\x80\x8a";
	ba_log_clean(&b, in, sizeof(in) - 1);
	assert_null(memchr(ba_buf_str(&b), '\n', b.len));
	assert_string_equal(ba_buf_str(&b), "?????");
	ba_buf_release(&b);
}

static void test_log__level_filter(void **state)
{
	(void)state;
	struct ba_log lg = { sink, NULL, BA_LOG_INFO };
	last[0] = 0;
	ba_log(&lg, BA_LOG_DEBUG, "hidden");
	assert_string_equal(last, "");
	ba_log(&lg, BA_LOG_INFO, "shown %d\r\n", 1);
	assert_string_equal(last, "shown 1??");
	ba_log(NULL, BA_LOG_ERROR, "no crash");
}

static void test_log__redact_auth(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	const char *l = "AUTH PLAIN AHVzZXIAaHVudGVyMg==\r\n";
	ba_log_redact_auth(&b, l, strlen(l));
	assert_string_equal(ba_buf_str(&b), "AUTH PLAIN <redacted>");
	ba_buf_reset(&b);
	l = "AUTH LOGIN\r\n";
	ba_log_redact_auth(&b, l, strlen(l));
	assert_string_equal(ba_buf_str(&b), "AUTH LOGIN");
	ba_buf_reset(&b);
	l = "MAIL FROM:<a@b>";
	ba_log_redact_auth(&b, l, strlen(l));
	assert_string_equal(ba_buf_str(&b), "MAIL FROM:<a@b>");
	ba_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log__clean_controls_and_c1),
		cmocka_unit_test(test_log__clean_bidi_and_invisible),
		cmocka_unit_test(test_log__rejects_overlong_utf8),
		cmocka_unit_test(test_log__level_filter),
		cmocka_unit_test(test_log__redact_auth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
