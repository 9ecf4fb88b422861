/* tests/unit/json.c - the strict JSON object reader (RFC 8259) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/buf.h"
#include "bluearrow/json.h"

static int parse(struct ba_json *j, const char *text, struct ba_err *err)
{
	return ba_json_parse(j, text, strlen(text), err);
}

static void test_json__token_reply(void **state)
{
	(void)state;
	struct ba_json j;
	struct ba_err err = BA_ERR_INIT;
	const char *t = " {\"access_token\":\"ya29.a0\",\"expires_in\":3599,\n"
	                "\"scope\":\"https://mail.google.com/\",\"token_type\":\"Bearer\","
	                "\"id\":null,\"ok\":true,\"no\":false,\"x\":[1,{\"a\":[]},\"s\"],"
	                "\"o\":{\"k\":-1.5e+3}} \r\n";
	assert_int_equal(parse(&j, t, &err), 0);
	assert_int_equal(j.n, 9);
	assert_string_equal(ba_json_str(&j, "access_token"), "ya29.a0");
	assert_string_equal(ba_json_str(&j, "token_type"), "Bearer");
	assert_null(ba_json_str(&j, "expires_in")); /* a number, not a string */
	assert_null(ba_json_str(&j, "missing"));
	assert_null(ba_json_str(&j, "x"));
	long v = 0;
	assert_int_equal(ba_json_uint(&j, "expires_in", 86400, &v), 1);
	assert_int_equal(v, 3599);
	assert_int_equal(ba_json_uint(&j, "expires_in", 100, &v), -1);
	assert_int_equal(ba_json_uint(&j, "missing", 100, &v), 0);
	assert_int_equal(ba_json_uint(&j, "id", 100, &v), -1);
	assert_int_equal(ba_json_uint(&j, "o", 100, &v), -1);
	ba_json_release(&j);
	assert_int_equal(j.n, 0);

	/* a number in a string (some providers), but not a negative or fractional one */
	assert_int_equal(parse(&j, "{\"a\":\"60\",\"b\":-1,\"c\":1.0,\"d\":\"\"}", &err), 0);
	assert_int_equal(ba_json_uint(&j, "a", 100, &v), 1);
	assert_int_equal(v, 60);
	assert_int_equal(ba_json_uint(&j, "b", 100, &v), -1);
	assert_int_equal(ba_json_uint(&j, "c", 100, &v), -1);
	assert_int_equal(ba_json_uint(&j, "d", 100, &v), -1);
	ba_json_release(&j);
}

static void test_json__escapes(void **state)
{
	(void)state;
	struct ba_json j;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(parse(&j, "{\"s\":\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\","
	                           "\"\\u0041\":\"\xc3\xa9\"}", &err), 0);
	assert_string_equal(ba_json_str(&j, "s"),
	                    "a\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	assert_string_equal(ba_json_str(&j, "A"), "\xc3\xa9");
	ba_json_release(&j);
	assert_int_equal(parse(&j, "{}", &err), 0);
	assert_int_equal(j.n, 0);
	ba_json_release(&j);
}

static void bad(const char *text, size_t len, const char *msg)
{
	struct ba_json j;
	struct ba_err err = BA_ERR_INIT;
	if (ba_json_parse(&j, text, len, &err) == 0)
		fail_msg("accepted: %s", msg);
	assert_int_equal(err.code, EX_PROTOCOL);
	ba_json_release(&j);
}
#define BAD(s) bad(s, sizeof(s) - 1, s)

static void test_json__strict(void **state)
{
	(void)state;
	BAD("");
	BAD("   ");
	BAD("[]");
	BAD("\"s\"");
	BAD("{");
	BAD("{\"a\"}");
	BAD("{\"a\":}");
	BAD("{\"a\":1,}");
	BAD("{,}");
	BAD("{\"a\":1}{}");
	BAD("{\"a\":1} x");
	BAD("{'a':1}");
	BAD("{a:1}");
	BAD("{\"a\":01}");
	BAD("{\"a\":-}");
	BAD("{\"a\":1.}");
	BAD("{\"a\":.5}");
	BAD("{\"a\":1e}");
	BAD("{\"a\":+1}");
	BAD("{\"a\":NaN}");
	BAD("{\"a\":tru}");
	BAD("{\"a\":nul}");
	BAD("{\"a\":\"x}");
	BAD("{\"a\":\"\t\"}");         /* raw control character */
	BAD("{\"a\":\"\\x\"}");        /* unknown escape */
	BAD("{\"a\":\"\\u12\"}");
	BAD("{\"a\":\"\\ud83d\"}");    /* unpaired high surrogate */
	BAD("{\"a\":\"\\ude00\"}");    /* lone low surrogate */
	BAD("{\"a\":\"\\u0000\"}");    /* NUL */
	BAD("{\"a\":\"\xc0\xaf\"}");   /* overlong */
	BAD("{\"a\":\"\xed\xa0\x80\"}"); /* surrogate in UTF-8 */
	BAD("{\"a\":\"\xf4\x90\x80\x80\"}"); /* above U+10FFFF */
	BAD("{\"a\":\"\xff\"}");
	BAD("{\"a\":[1,]}");
	BAD("{\"a\":[1 2]}");
	BAD("{\"a\":{\"b\"}}");
	BAD("{\"a\":1,\"a\":2}");      /* duplicate member */
	bad("{\"a\":\"\0\"}", 8, "NUL byte");
}

static void test_json__bounds(void **state)
{
	(void)state;
	struct ba_json j;
	struct ba_err err = BA_ERR_INIT;
	char deep[256], *p = deep;
	/* depth 16 (the object and 15 arrays) is fine, 17 is not */
	p += snprintf(p, sizeof deep, "{\"a\":");
	for (int i = 0; i < 15; i++)
		*p++ = '[';
	for (int i = 0; i < 15; i++)
		*p++ = ']';
	*p++ = '}';
	*p = '\0';
	assert_int_equal(parse(&j, deep, &err), 0);
	ba_json_release(&j);
	p = deep + snprintf(deep, sizeof deep, "{\"a\":");
	for (int i = 0; i < 16; i++)
		*p++ = '[';
	for (int i = 0; i < 16; i++)
		*p++ = ']';
	*p++ = '}';
	*p = '\0';
	assert_int_equal(parse(&j, deep, &err), -1);
	assert_string_equal(err.text, "JSON nested deeper than 16");
	ba_json_release(&j);

	/* a deeply nested hostile input stops early (no stack exhaustion) */
	size_t n = 1u << 20;
	char *big = malloc(n + 8);
	assert_non_null(big);
	memcpy(big, "{\"a\":", 5);
	memset(big + 5, '[', n);
	assert_int_equal(ba_json_parse(&j, big, n + 5, &err), -1);
	ba_json_release(&j);
	free(big);

	/* members */
	struct ba_buf b = BA_BUF_INIT;
	ba_buf_addch(&b, '{');
	for (int i = 0; i < BA_JSON_MEMBERS_MAX + 1; i++)
		ba_buf_addf(&b, "%s\"m%d\":%d", i ? "," : "", i, i);
	ba_buf_addch(&b, '}');
	assert_int_equal(ba_json_parse(&j, b.data, b.len, &err), -1);
	assert_string_equal(err.text, "more than 256 JSON members");
	ba_json_release(&j);
	ba_buf_release(&b);
}

static void test_json__errors_do_not_quote_input(void **state)
{
	(void)state;
	struct ba_json j;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(parse(&j, "{\"access_token\":\"SECRET-TOKEN\" junk}", &err), -1);
	assert_null(strstr(err.text, "SECRET"));
	assert_string_equal(err.text, "malformed JSON at offset 31: expected ',' or '}'");
	ba_json_release(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json__token_reply),
		cmocka_unit_test(test_json__escapes),
		cmocka_unit_test(test_json__strict),
		cmocka_unit_test(test_json__bounds),
		cmocka_unit_test(test_json__errors_do_not_quote_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
