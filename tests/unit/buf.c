/* tests/unit/buf.c - struct ba_buf */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/buf.h"

static void test_buf__empty_is_empty_string(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	assert_string_equal(ba_buf_str(&b), "");
	assert_int_equal(b.len, 0);
	ba_buf_release(&b);
}

static void test_buf__appends_keep_nul(void **state)
{
	(void)state;
	struct ba_buf b;
	ba_buf_init(&b, 0);
	assert_int_equal(ba_buf_addstr(&b, "abc"), 0);
	assert_int_equal(ba_buf_addch(&b, 0), 0);
	assert_int_equal(ba_buf_addf(&b, "%d-%s", 42, "x"), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "abc\0" "42-x", 8);
	assert_int_equal(b.data[b.len], 0);
	ba_buf_release(&b);
}

static void test_buf__long_format(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	char big[1000];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(ba_buf_addf(&b, "<%s>", big), 0);
	assert_int_equal(b.len, 1001);
	assert_int_equal(b.data[0], '<');
	assert_int_equal(b.data[1000], '>');
	ba_buf_release(&b);
}

static void test_buf__cap_is_sticky(void **state)
{
	(void)state;
	struct ba_buf b;
	ba_buf_init(&b, 5);
	assert_int_equal(ba_buf_addstr(&b, "1234"), 0);
	assert_int_equal(ba_buf_addstr(&b, "56"), -1);
	assert_true(ba_buf_failed(&b));
	assert_string_equal(ba_buf_str(&b), "1234");
	/* sticky: even a fitting append now fails */
	assert_int_equal(ba_buf_addch(&b, 'x'), -1);
	assert_null(ba_buf_detach(&b, NULL));
	ba_buf_reset(&b);
	assert_false(ba_buf_failed(&b));
	assert_int_equal(ba_buf_addstr(&b, "12345"), 0);
	ba_buf_release(&b);
}

static void test_buf__consume_truncate_detach(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	ba_buf_addstr(&b, "hello world");
	ba_buf_consume(&b, 6);
	assert_string_equal(ba_buf_str(&b), "world");
	ba_buf_truncate(&b, 3);
	assert_string_equal(ba_buf_str(&b), "wor");
	size_t len = 0;
	char *s = ba_buf_detach(&b, &len);
	assert_string_equal(s, "wor");
	assert_int_equal(len, 3);
	assert_int_equal(b.len, 0);
	assert_null(b.data);
	free(s);
	s = ba_buf_detach(&b, &len);
	assert_string_equal(s, "");
	free(s);
}

static void test_buf__release_secret_clears(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	ba_buf_addstr(&b, "hunter2");
	ba_buf_release_secret(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf__empty_is_empty_string),
		cmocka_unit_test(test_buf__appends_keep_nul),
		cmocka_unit_test(test_buf__long_format),
		cmocka_unit_test(test_buf__cap_is_sticky),
		cmocka_unit_test(test_buf__consume_truncate_detach),
		cmocka_unit_test(test_buf__release_secret_clears),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
