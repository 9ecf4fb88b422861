/* tests/unit/config_aliases.c - msmtp aliases file: parse errors with file:line, expansion */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/config_aliases.h"

static const char file[] = "# aliases\n"
                           "root: admin@example.org, ops   # the on-call list\n"
                           "ops: o1@example.org,o2@example.org\n"
                           "\n"
                           "default: fallback@example.org\n"
                           "loop1: loop2\n"
                           "loop2: loop1\n";

static void expand(const ba_aliases *a, const char *const *in, size_t nin, char ***v, size_t *n,
                   int want_rc, struct ba_err *err)
{
	*v = NULL;
	*n = 0;
	for (size_t i = 0; i < nin; i++) {
		*v = realloc(*v, (*n + 1) * sizeof(**v));
		(*v)[(*n)++] = strdup(in[i]);
	}
	assert_int_equal(ba_aliases_expand(a, v, n, err), want_rc);
}

static void freev(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void test_config_aliases__expand(void **state)
{
	(void)state;
	ba_aliases *a;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_aliases_parse(&a, "aliases", file, strlen(file), &err), 0);
	const char *in[] = { "x@y.example", "root", "nobody" };
	char **v;
	size_t n;
	expand(a, in, 3, &v, &n, 0, &err);
	assert_int_equal(n, 5);
	assert_string_equal(v[0], "x@y.example");
	assert_string_equal(v[1], "o2@example.org"); /* msmtp's order: reversed */
	assert_string_equal(v[2], "o1@example.org");
	assert_string_equal(v[3], "admin@example.org");
	assert_string_equal(v[4], "fallback@example.org");
	freev(v, n);
	const char *loop[] = { "loop1" };
	expand(a, loop, 1, &v, &n, -1, &err);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "loop"));
	freev(v, n);
	ba_aliases_free(a);
	/* without a default, unknown local names stay */
	assert_int_equal(ba_aliases_parse(&a, "f", "a: b@c.example\n", 15, &err), 0);
	const char *in2[] = { "zz", "a" };
	expand(a, in2, 2, &v, &n, 0, &err);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "zz");
	assert_string_equal(v[1], "b@c.example");
	freev(v, n);
	ba_aliases_free(a);
}

static void test_config_aliases__errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "ok: a@b\nno colon here\n", "f:2: expected exactly one ':' (NAME: ADDRESS, ...)" },
		{ "a: b@c: d\n", "f:1: expected exactly one ':' (NAME: ADDRESS, ...)" },
		{ "x@y: a@b\n", "f:1: invalid alias name 'x@y'" },
		{ "a: b@c\n#c\na: d@e\n", "f:3: duplicate alias 'a'" },
		{ "a: b@c,,d@e\n", "f:1: empty address in alias 'a'" },
		{ ": b@c\n", "f:1: invalid alias name ''" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ba_aliases *a = NULL;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(ba_aliases_parse(&a, "f", cases[i].text, strlen(cases[i].text), &err), -1);
		assert_null(a);
		assert_int_equal(err.code, EX_CONFIG);
		assert_string_equal(err.text, cases[i].want);
	}
	ba_aliases *a;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_aliases_load(&a, "/nonexistent/aliases", &err), -1);
	assert_string_equal(err.text, "cannot open aliases file '/nonexistent/aliases': No such file or directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_aliases__expand),
		cmocka_unit_test(test_config_aliases__errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
