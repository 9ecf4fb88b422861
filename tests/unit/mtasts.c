/* tests/unit/mtasts.c - MTA-STS records, policies, mx patterns and the policy cache */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/mtasts.h"

static int txt(char *id, const char *s)
{
	struct ba_err err = BA_ERR_INIT;
	return ba_mtasts_parse_txt(id, s, strlen(s), &err);
}

static void test_mtasts__txt(void **state)
{
	(void)state;
	char id[BA_MTASTS_ID_MAX + 1];
	assert_int_equal(txt(id, "v=STSv1; id=20160831085700Z;"), 0);
	assert_string_equal(id, "20160831085700Z");
	assert_int_equal(txt(id, "v=STSv1;id=abc"), 0);
	assert_string_equal(id, "abc");
	assert_int_equal(txt(id, "v=STSv1 ;  id=x1 ; ext=foo-bar ;"), 0);
	assert_string_equal(id, "x1");
	assert_int_equal(txt(id, "v=STSv1; ext=1; id=Z9"), 0);
	assert_string_equal(id, "Z9");
	/* 32 characters is the most */
	assert_int_equal(txt(id, "v=STSv1; id=0123456789abcdef0123456789ABCDEF"), 0);
	assert_int_equal(txt(id, "v=STSv1; id=0123456789abcdef0123456789ABCDEFx"), -1);
	assert_int_equal(txt(id, "v=STSv2; id=1"), -1);
	assert_int_equal(txt(id, "v=STSv1"), -1);               /* no id */
	assert_int_equal(txt(id, "v=STSv1;"), -1);
	assert_int_equal(txt(id, "id=1; v=STSv1"), -1);         /* the version comes first */
	assert_int_equal(txt(id, "v=STSv1; id=a-b"), -1);       /* letters and digits only */
	assert_int_equal(txt(id, "v=STSv1; id="), -1);
	assert_int_equal(txt(id, "v=STSv1; id=1; id=2"), -1);
	assert_int_equal(txt(id, "v=STSv1; id=1 2"), -1);
	assert_int_equal(txt(id, "v=STSv1x; id=1"), -1);
	assert_int_equal(txt(id, "v=STSv1; id=1;;"), -1);
	/* a NUL inside the record is no field character */
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_mtasts_parse_txt(id, "v=STSv1; id=1\0x", 15, &err), -1);
}

static void test_mtasts__pick_txt(void **state)
{
	(void)state;
	char id[BA_MTASTS_ID_MAX + 1];
	struct ba_err err = BA_ERR_INIT;
	const char *one[] = { "v=spf1 -all", "v=STSv1; id=7", "other" };
	size_t one_len[] = { 11, 13, 5 };
	assert_int_equal(ba_mtasts_pick_txt(id, one, one_len, 3, &err), 1);
	assert_string_equal(id, "7");
	const char *two[] = { "v=STSv1; id=7", "v=STSv1; id=8" };
	size_t two_len[] = { 13, 13 };
	assert_int_equal(ba_mtasts_pick_txt(id, two, two_len, 2, &err), 0);
	assert_non_null(strstr(err.text, "2 STSv1 TXT records"));
	assert_int_equal(ba_mtasts_pick_txt(id, one, one_len, 1, &err), 0);
	assert_int_equal(ba_mtasts_pick_txt(id, NULL, NULL, 0, &err), 0);
	const char *bad[] = { "v=STSv1; idx" };
	size_t bad_len[] = { 12 };
	assert_int_equal(ba_mtasts_pick_txt(id, bad, bad_len, 1, &err), 0);
	assert_non_null(strstr(err.text, "invalid TXT record"));
}

static int policy(struct ba_mtasts_policy *p, const char *s, struct ba_err *err)
{
	return ba_mtasts_parse_policy(p, s, strlen(s), err);
}

static void test_mtasts__policy(void **state)
{
	(void)state;
	struct ba_mtasts_policy p;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(policy(&p, "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	                            "mx: *.Example.net\r\nmx: backupmx.example.com\r\n"
	                            "max_age: 604800\r\n", &err), 0);
	assert_int_equal(p.mode, BA_MTASTS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.nmx, 3);
	assert_string_equal(p.mx[1], "*.example.net");
	ba_mtasts_policy_release(&p);
	/* LF lines, blanks around values, no final line end, unknown keys */
	assert_int_equal(policy(&p, "mode:testing\nversion:   STSv1  \nfoo: bar\n\nmx: a.b\n"
	                            "max_age: 86400", &err), 0);
	assert_int_equal(p.mode, BA_MTASTS_MODE_TESTING);
	assert_int_equal(p.nmx, 1);
	ba_mtasts_policy_release(&p);
	/* mode none needs no mx */
	assert_int_equal(policy(&p, "version: STSv1\nmode: none\nmax_age: 0\n", &err), 0);
	assert_int_equal(p.mode, BA_MTASTS_MODE_NONE);
	ba_mtasts_policy_release(&p);
	/* max_age beyond a year is cut to it */
	assert_int_equal(policy(&p, "version: STSv1\nmode: none\nmax_age: 9999999999\n", &err), 0);
	assert_int_equal(p.max_age, BA_MTASTS_MAX_AGE_MAX);
	ba_mtasts_policy_release(&p);

	static const char *const bad[] = {
		"mode: enforce\nmx: a.b\nmax_age: 1\n",                         /* no version */
		"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",          /* wrong version */
		"version: stsv1\nmode: enforce\nmx: a.b\nmax_age: 1\n",          /* case counts */
		"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.b\n",                      /* no max_age */
		"version: STSv1\nmode: enforce\nmax_age: 1\n",                   /* no mx */
		"version: STSv1\nmx: a.b\nmax_age: 1\n",                         /* no mode */
		"version: STSv1\nmode: enforce\nmode: testing\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\nmax_age: 2\n",
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n", /* 11 digits */
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1d\n",
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age:\n",
		"version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n",         /* one wildcard */
		"version: STSv1\nmode: enforce\nmx: mx*.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: -a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a_b.c\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.b c\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\rmx: a.b\nmax_age: 1\n",          /* bare CR */
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\nnote: \x1b[2J\n",
		"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\nnote: caf\xc3\xa9\n",
		"version STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\n",
		": STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\n",
		"<html><body>Not found</body></html>\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err = (struct ba_err)BA_ERR_INIT;
		if (policy(&p, bad[i], &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(err.code, EX_DATAERR);
		assert_int_equal(p.nmx, 0);
		assert_null(p.mx);
	}
	/* a NUL byte */
	assert_int_equal(ba_mtasts_parse_policy(&p, "version: STSv1\0\n", 16, &err), -1);
	err = (struct ba_err)BA_ERR_INIT;
	assert_int_equal(policy(&p, "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", &err), -1);
	assert_string_equal(err.text, "line 2: mode 'strict' is not enforce, testing or none");

	/* the size bound: a valid policy padded past 64 KB with unknown keys */
	size_t big = BA_MTASTS_POLICY_MAX + 100;
	char *s = malloc(big + 1);
	assert_non_null(s);
	const char *head = "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\n";
	size_t n = strlen(head);
	memcpy(s, head, n);
	while (n + 10 < big) {
		memcpy(s + n, "x: yyyyyy\n", 10);
		n += 10;
	}
	assert_int_equal(ba_mtasts_parse_policy(&p, s, BA_MTASTS_POLICY_MAX, &err), 0);
	ba_mtasts_policy_release(&p);
	assert_int_equal(ba_mtasts_parse_policy(&p, s, n, &err), -1);
	assert_non_null(strstr(err.text, "larger than 64 KB"));
	free(s);
}

static void test_mtasts__match(void **state)
{
	(void)state;
	assert_int_equal(ba_mtasts_pattern_match("mx.example.com", "mx.example.com"), 1);
	assert_int_equal(ba_mtasts_pattern_match("mx.example.com", "MX.Example.COM."), 1);
	assert_int_equal(ba_mtasts_pattern_match("mx.example.com", "mx.example.co"), 0);
	assert_int_equal(ba_mtasts_pattern_match("mx.example.com", "amx.example.com"), 0);
	assert_int_equal(ba_mtasts_pattern_match("*.example.com", "mx1.example.com"), 1);
	assert_int_equal(ba_mtasts_pattern_match("*.example.com", "MX1.EXAMPLE.com."), 1);
	/* the wildcard is one label: not the domain itself, not two labels */
	assert_int_equal(ba_mtasts_pattern_match("*.example.com", "example.com"), 0);
	assert_int_equal(ba_mtasts_pattern_match("*.example.com", "a.mx.example.com"), 0);
	assert_int_equal(ba_mtasts_pattern_match("*.example.com", ".example.com"), 0);
	assert_int_equal(ba_mtasts_pattern_match("*.example.com", "mxexample.com"), 0);
	assert_int_equal(ba_mtasts_pattern_match("*.example.com", "mx.example.com.evil"), 0);
	struct ba_mtasts_policy p;
	struct ba_err err = BA_ERR_INIT;
	const char *s = "version: STSv1\nmode: enforce\nmx: a.test\nmx: *.b.test\nmax_age: 9\n";
	assert_int_equal(ba_mtasts_parse_policy(&p, s, strlen(s), &err), 0);
	assert_int_equal(ba_mtasts_match(&p, "a.test"), 1);
	assert_int_equal(ba_mtasts_match(&p, "x.b.test"), 1);
	assert_int_equal(ba_mtasts_match(&p, "b.test"), 0);
	assert_int_equal(ba_mtasts_match(&p, "x.a.test"), 0);
	ba_mtasts_policy_release(&p);
}

/* ---- the cache ---------------------------------------------------------- */

static char dir[64];

static void put_cache(const char *domain, const char *id, long long fetched, int mode)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, domain);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "bluearrow-mta-sts 1\nid %s\nfetched %lld\n\nversion: STSv1\nmode: enforce\n"
	           "mx: mx.%s\nmax_age: 1000\n", id, fetched, domain);
	fclose(f);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
}

/* A fetch that fails at once: nothing listens on port 1 of loopback. */
static const struct ba_mtasts_params params = { NULL, 2000, 100000, dir, 0, "127.0.0.1:1", NULL };

static enum ba_mtasts_source lookup(const char *domain, const char *record, time_t now,
                                    struct ba_mtasts_result *r)
{
	struct ba_mtasts_params p = params;
	p.now = now;
	size_t len = record ? strlen(record) : 0;
	struct ba_mtasts_txt t = { 0, record ? 1 : 0, &record, &len };
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_mtasts_lookup(r, domain, &t, &p, &err), 0);
	return r->source;
}

static void test_mtasts__cache(void **state)
{
	(void)state;
	struct ba_mtasts_result r;
	/* nothing cached, the fetch fails: no policy, and the note says why */
	assert_int_equal(lookup("a.test", "v=STSv1; id=1", 100000, &r), BA_MTASTS_SRC_NONE);
	assert_non_null(strstr(r.note, "https://mta-sts.a.test/.well-known/mta-sts.txt"));
	ba_mtasts_policy_release(&r.policy);
	/* the same id: the cache, no fetch */
	put_cache("a.test", "1", 99500, 0600);
	assert_int_equal(lookup("A.test.", "v=STSv1; id=1", 100000, &r), BA_MTASTS_SRC_CACHED);
	assert_string_equal(r.note, "");
	assert_int_equal(r.policy.mode, BA_MTASTS_MODE_ENFORCE);
	assert_string_equal(r.policy.mx[0], "mx.a.test");
	assert_string_equal(r.policy.id, "1");
	assert_int_equal(r.policy.fetched, 99500);
	ba_mtasts_policy_release(&r.policy);
	/* a new id, the fetch fails: the cached policy while it lasts, with a note */
	assert_int_equal(lookup("a.test", "v=STSv1; id=2", 100000, &r), BA_MTASTS_SRC_CACHED);
	assert_non_null(strstr(r.note, "failed"));
	ba_mtasts_policy_release(&r.policy);
	/* no TXT record, or the lookup failed: the cached policy too */
	assert_int_equal(lookup("a.test", NULL, 100000, &r), BA_MTASTS_SRC_CACHED);
	ba_mtasts_policy_release(&r.policy);
	struct ba_mtasts_txt failed = { 1, 0, NULL, NULL };
	struct ba_mtasts_params p = params;
	p.now = 100000;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_mtasts_lookup(&r, "a.test", &failed, &p, &err), 0);
	assert_int_equal(r.source, BA_MTASTS_SRC_CACHED);
	ba_mtasts_policy_release(&r.policy);
	/* expired (fetched + max_age has passed): gone */
	assert_int_equal(lookup("a.test", "v=STSv1; id=1", 100500, &r), BA_MTASTS_SRC_NONE);
	assert_int_equal(lookup("a.test", NULL, 100500, &r), BA_MTASTS_SRC_NONE);
	/* a cache file others may write is not trusted */
	put_cache("a.test", "1", 99500, 0644);
	assert_int_equal(lookup("a.test", "v=STSv1; id=1", 100000, &r), BA_MTASTS_SRC_NONE);
	/* a malformed cache file is no cache */
	char path[128];
	snprintf(path, sizeof path, "%s/b.test", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "bluearrow-mta-sts 1\nid 1\n\nversion: STSv1\n", 41), 41);
	close(fd);
	assert_int_equal(lookup("b.test", "v=STSv1; id=1", 100000, &r), BA_MTASTS_SRC_NONE);
	/* not a domain name: an error, and no file outside the cache is read */
	struct ba_mtasts_txt none = { 0, 0, NULL, NULL };
	assert_int_equal(ba_mtasts_lookup(&r, "../a.test", &none, &p, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(ba_mtasts_lookup(&r, "", &none, &p, &err), -1);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ba-mtasts-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "%s/a.test", dir);
	unlink(cmd);
	snprintf(cmd, sizeof cmd, "%s/b.test", dir);
	unlink(cmd);
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mtasts__txt),
		cmocka_unit_test(test_mtasts__pick_txt),
		cmocka_unit_test(test_mtasts__policy),
		cmocka_unit_test(test_mtasts__match),
		cmocka_unit_test(test_mtasts__cache),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
