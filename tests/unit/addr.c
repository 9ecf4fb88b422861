/* tests/unit/addr.c - RFC 5322 address lists, rendering, envelope check, IDN */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/addr.h"

/* ---- helpers ------------------------------------------------------------ */

/* expected entry: NULL fields mean NULL */
struct want {
	const char *display, *local, *domain, *group;
};

static void eq_opt(const char *got, const char *want, const char *what, size_t i)
{
	if (!want && !got)
		return;
	if (!want || !got || strcmp(got, want))
		fail_msg("entry %zu: %s is '%s', expected '%s'", i, what, got ? got : "(null)",
		         want ? want : "(null)");
}

static void check_list(const struct ba_addr_list *l, const struct want *w, size_t n)
{
	if (l->n != n)
		fail_msg("%zu entries, expected %zu", l->n, n);
	for (size_t i = 0; i < n; i++) {
		eq_opt(l->v[i].display, w[i].display, "display", i);
		eq_opt(l->v[i].local, w[i].local, "local", i);
		eq_opt(l->v[i].domain, w[i].domain, "domain", i);
		eq_opt(l->v[i].group, w[i].group, "group", i);
	}
}

static void parse_ok(const char *s, unsigned flags, const struct want *w, size_t n)
{
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	struct ba_err err = BA_ERR_INIT;
	if (ba_addr_list_parse(&l, s, strlen(s), flags, &err) < 0)
		fail_msg("parse of '%s' failed: %s", s, err.text);
	check_list(&l, w, n);
	ba_addr_list_release(&l);
}

static void parse_fails(const char *s, const char *msg)
{
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_addr_list_parse(&l, s, strlen(s), 0, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(l.n, 0);
	if (strcmp(err.text, msg))
		fail_msg("error '%s', expected '%s'", err.text, msg);
	ba_addr_list_release(&l);
}

/* Asserts every line of s is at most max octets (the first one starts at first) and
 * every line break is a fold. */
static void check_lines(const char *s, size_t first, size_t max)
{
	size_t start = 0, n = strlen(s);
	max -= first;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '\n') {
			size_t len = i - start;
			if (len && s[i - 1] == '\r')
				len--;
			if (len > max)
				fail_msg("line of %zu octets (max %zu): %.*s", len, max, (int)len, s + start);
			if (i < n && !(s[i + 1] == ' ' || s[i + 1] == '\t'))
				fail_msg("fold not followed by white space in '%s'", s);
			start = i + 1;
			max += first;
			first = 0;
		}
	}
}

/* Renders l, checks the lines, parses the output again and compares. */
static void roundtrip(const struct ba_addr_list *l, unsigned flags, const char *eol)
{
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	size_t col = strlen("To: ");
	if (ba_addr_list_format(&out, l, &col, eol, flags, &err) < 0)
		fail_msg("format failed: %s", err.text);
	check_lines(ba_buf_str(&out), 4, 78);
	struct ba_addr_list back = BA_ADDR_LIST_INIT;
	if (ba_addr_list_parse(&back, out.data, out.len, BA_ADDR_EMPTY_GROUPS, &err) < 0)
		fail_msg("re-parse of '%s' failed: %s", ba_buf_str(&out), err.text);
	if (back.n != l->n)
		fail_msg("'%s': %zu entries back, %zu given", ba_buf_str(&out), back.n, l->n);
	for (size_t i = 0; i < l->n; i++) {
		eq_opt(back.v[i].display, l->v[i].display, "display", i);
		eq_opt(back.v[i].local, l->v[i].local, "local", i);
		eq_opt(back.v[i].group, l->v[i].group, "group", i);
		if (!(flags & BA_ADDR_ASCII))
			eq_opt(back.v[i].domain, l->v[i].domain, "domain", i);
	}
	ba_addr_list_release(&back);
	ba_buf_release(&out);
}

static void roundtrip_one(const char *display, const char *local, const char *domain)
{
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	assert_int_equal(ba_addr_list_append(&l, display, local, domain, NULL, NULL), 0);
	roundtrip(&l, 0, "\r\n");
	roundtrip(&l, 0, "\n");
	ba_addr_list_release(&l);
}

static char *format_list(const char *in, unsigned flags, size_t col)
{
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	if (ba_addr_list_parse(&l, in, strlen(in), BA_ADDR_EMPTY_GROUPS, &err) < 0)
		fail_msg("parse of '%s' failed: %s", in, err.text);
	if (ba_addr_list_format(&out, &l, &col, "\r\n", flags, &err) < 0)
		fail_msg("format of '%s' failed: %s", in, err.text);
	ba_addr_list_release(&l);
	return ba_buf_detach(&out, NULL);
}

/* ---- RFC 5322 Appendix A ------------------------------------------------- */

static void test_addr__rfc5322_a1_1(void **state)
{
	(void)state;
	const struct want from[] = { { "John Doe", "jdoe", "machine.example", NULL } };
	parse_ok("John Doe <jdoe@machine.example>", 0, from, 1);
	const struct want to[] = { { "Mary Smith", "mary", "example.net", NULL } };
	parse_ok("Mary Smith <mary@example.net>", 0, to, 1);
}

static void test_addr__rfc5322_a1_2(void **state)
{
	(void)state;
	const struct want from[] = { { "Joe Q. Public", "john.q.public", "example.com", NULL } };
	parse_ok("\"Joe Q. Public\" <john.q.public@example.com>", 0, from, 1);
	const struct want to[] = {
		{ "Mary Smith", "mary", "x.test", NULL },
		{ NULL, "jdoe", "example.org", NULL },
		{ "Who?", "one", "y.test", NULL },
	};
	parse_ok("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>", 0, to, 3);
	const struct want cc[] = {
		{ NULL, "boss", "nil.test", NULL },
		{ "Giant; \"Big\" Box", "sysservices", "example.net", NULL },
	};
	parse_ok("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>", 0, cc, 2);
}

static void test_addr__rfc5322_a1_3_groups(void **state)
{
	(void)state;
	const struct want to[] = {
		{ "Ed Jones", "c", "a.test", "A Group" },
		{ NULL, "joe", "where.test", "A Group" },
		{ "John", "jdoe", "one.test", "A Group" },
	};
	parse_ok("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", 0, to, 3);
	/* an empty group: dropped, or kept as a marker entry on request */
	parse_ok("Undisclosed recipients:;", 0, NULL, 0);
	const struct want und[] = { { NULL, NULL, NULL, "Undisclosed recipients" } };
	parse_ok("Undisclosed recipients:;", BA_ADDR_EMPTY_GROUPS, und, 1);
	/* groups among mailboxes, a missing ';' at the end tolerated */
	const struct want mix[] = {
		{ NULL, "a", "b", NULL },
		{ NULL, "c", "d", "G" },
		{ NULL, "e", "f", NULL },
		{ NULL, "g", "h", "H" },
	};
	parse_ok("a@b, G: c@d;, e@f, H: g@h", 0, mix, 4);
}

static void test_addr__rfc5322_a5_white_space_comments(void **state)
{
	(void)state;
	const struct want from[] = { { "Pete", "pete", "silly.test", NULL } };
	parse_ok("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 0, from, 1);
	const struct want to[] = {
		{ "Chris Jones", "c", "public.example", "A Group" },
		{ NULL, "joe", "example.org", "A Group" },
		{ "John", "jdoe", "one.test", "A Group" },
	};
	parse_ok("A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
	         "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of "
	         "the group)",
	         0, to, 3);
	const struct want cc[] = { { NULL, NULL, NULL, "Undisclosed recipients" } };
	parse_ok("(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;", 0, NULL, 0);
	parse_ok("Undisclosed recipients:(none) ;", BA_ADDR_EMPTY_GROUPS, cc, 1);
}

static void test_addr__rfc5322_a6_obsolete(void **state)
{
	(void)state;
	/* A.6.1: obs-phrase with a dot, obs-route, empty list elements, CFWS around dots */
	const struct want from[] = { { "Joe Q. Public", "john.q.public", "example.com", NULL } };
	parse_ok("Joe Q. Public <john.q.public@example.com>", 0, from, 1);
	const struct want to[] = {
		{ "Mary Smith", "mary", "example.net", NULL },
		{ NULL, "jdoe", "test.example", NULL },
	};
	parse_ok("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example", 0, to, 2);
	const struct want route[] = { { NULL, "a", "b.test", NULL } };
	parse_ok("<@x.test,@y.test:a@b.test>", 0, route, 1);
	parse_ok("<@x.test, ,@y.test:a@b.test>", 0, route, 1);
	/* A.6.3: comments and white space lines, CFWS inside domain and local part */
	const struct want jd[] = { { "John Doe", "jdoe", "machine.example", NULL } };
	parse_ok("John Doe <jdoe@machine(comment).  example>", 0, jd, 1);
	const struct want ms[] = { { "Mary Smith", "mary", "example.net", NULL } };
	parse_ok("Mary Smith\r\n  \r\n <mary@example.net>", 0, ms, 1);
	const struct want ol[] = { { NULL, "a.b", "c", NULL } };
	parse_ok("a (x) . \"b\"@c", 0, ol, 1);
	/* old-style trailing comment as display name; leading/trailing commas */
	const struct want cm[] = { { "Real Name", "a", "b.test", NULL }, { NULL, "c", "d", NULL } };
	parse_ok(",a@b.test (Real Name),c@d,", 0, cm, 2);
	/* a comment before or inside the domain is no display name */
	const struct want cd[] = { { NULL, "c", "public.example", NULL } };
	parse_ok("c@(Chris's host.)public.example", 0, cd, 1);
	parse_ok("c@public(x).example", 0, cd, 1);
	parse_ok("c(y)@public.example", 0, cd, 1);
}

/* ---- other input forms ------------------------------------------------- */

static void test_addr__quoted_literal_utf8(void **state)
{
	(void)state;
	const struct want q[] = { { NULL, "a b", "c.test", NULL } };
	parse_ok("\"a b\"@c.test", 0, q, 1);
	const struct want qe[] = { { NULL, "a\"@\\b", "c", NULL } };
	parse_ok("\"a\\\"@\\\\b\"@c", 0, qe, 1);
	const struct want lit[] = { { "X", "x", "[192.0.2.1]", NULL },
		                    { NULL, "y", "[IPv6:2001:db8::1]", NULL } };
	parse_ok("X <x@[192.0.2.1]>, y@[ IPv6:2001:db8::1 ]", 0, lit, 2);
	/* RFC 6532: UTF-8 in local part, domain and display name */
	const struct want u[] = { { "Jörg Müller", "jörg", "münchen.de", NULL },
		                  { "田中 太郎", "用户", "例子.广告", NULL } };
	parse_ok("Jörg Müller <jörg@münchen.de>, \"田中 太郎\" <用户@例子.广告>", 0, u, 2);
	/* RFC 2047 in display names (adjacent words joined), not in quoted strings */
	const struct want ew[] = {
		{ "Keld Jørn Simonsen", "keld", "dkuug.dk", NULL },
		{ "André Pirard", "PIRARD", "vm1.ulg.ac.be", NULL },
		{ "ab", "x", "y", NULL },
		{ "=?utf-8?q?a?=", "q", "r", NULL },
	};
	parse_ok("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>, "
	         "=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>, "
	         "=?utf-8?q?a?= =?utf-8?q?b?= <x@y>, \"=?utf-8?q?a?=\" <q@r>",
	         0, ew, 4);
	/* a decoded control character never reaches the caller */
	const struct want ctl[] = { { "a b", "x", "y", NULL } };
	parse_ok("=?utf-8?q?a=0Ab?= <x@y>", 0, ctl, 1);
	/* raw 8-bit text that is no UTF-8 (a Latin-1 display name) becomes U+FFFD */
	const struct want l1[] = { { "J\xef\xbf\xbdrg", "j", "x.de", NULL } };
	parse_ok("J\xf6rg <j@x.de>", 0, l1, 1);
	/* found by fuzz/fuzz_addr (UBSan: offset on a NULL buffer): an empty quoted display name */
	const struct want eq[] = { { NULL, "a", "b.test", NULL } };
	parse_ok("\"\" <a@b.test>", 0, eq, 1);
	parse_fails("\"\"<", "invalid address '\"\"<' at column 4: empty address");
	parse_fails("\"\"@b.test", "invalid address '\"\"@b.test' at column 1: empty local part");
	/* empty input and CFWS only: an empty list */
	parse_ok("", 0, NULL, 0);
	parse_ok("  (nothing) ", 0, NULL, 0);
}

static void test_addr__errors_with_column(void **state)
{
	(void)state;
	parse_fails("foo@", "invalid address 'foo@' at column 5: missing domain");
	parse_fails("foo", "invalid address 'foo' at column 4: missing '@domain'");
	parse_fails("a@b, @c", "invalid address 'a@b, @c' at column 6: missing local part");
	parse_fails("\"abc@d", "invalid address '\"abc@d' at column 1: unterminated quoted string");
	parse_fails("a@b (x", "invalid address 'a@b (x' at column 5: unterminated comment");
	parse_fails("Name <a@b", "invalid address 'Name <a@b' at column 6: missing '>'");
	parse_fails("<>", "invalid address '<>' at column 2: empty address");
	parse_fails("a@b@c", "invalid address 'a@b@c' at column 4: unexpected '@' after address");
	parse_fails("a@b c@d",
	            "invalid address 'a@b c@d' at column 5: missing '.' between words of domain");
	parse_fails("a..b@c", "invalid address 'a..b@c' at column 3: unexpected '.' in local part");
	parse_fails("a@b.", "invalid address 'a@b.' at column 4: domain ends with '.'");
	parse_fails("G: H: a@b;;", "invalid address 'G: H: a@b;;' at column 5: group inside a group");
	parse_fails(": a@b;", "invalid address ': a@b;' at column 1: missing group name");
	parse_fails("a@b; c@d", "invalid address 'a@b; c@d' at column 4: unexpected ';' after address");
	parse_fails("a@\"b\"", "invalid address 'a@\"b\"' at column 3: quoted string in domain");
	parse_fails("x <a@[1.2.3.4>",
	            "invalid address 'x <a@[1.2.3.4>' at column 6: unterminated domain literal");
}

static void test_addr__errors_injection(void **state)
{
	(void)state;
	/* a line break not followed by white space ends a header field: never an address */
	parse_fails("a@b\r\nBcc: c@d", "invalid address 'a@b  Bcc: c@d' at column 4: line break "
	                                "after address");
	parse_fails("\"a\r\nb\"@c",
	            "invalid address '\"a  b\"@c' at column 3: line break in quoted string");
	parse_fails("a\x01@b", "invalid address 'a @b' at column 2: control character in address");
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_addr_list_parse(&l, "a@b\0c", 5, 0, &err), -1);
	assert_int_equal(ba_addr_list_parse(&l, "\"\xff\"@b", 5, 0, &err), -1);
	assert_string_equal(err.text,
	                    "invalid address '\"\xff\"@b' at column 1: local part is not valid UTF-8");
	/* on error, entries already parsed are taken back; entries before the call stay */
	assert_int_equal(ba_addr_list_parse(&l, "x@y", 3, 0, &err), 0);
	assert_int_equal(ba_addr_list_parse(&l, "a@b, c@", 7, 0, &err), -1);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].local, "x");
	ba_addr_list_release(&l);
}

static void test_addr__parse_mailbox(void **state)
{
	(void)state;
	struct ba_addr a;
	struct ba_err err = BA_ERR_INIT;
	const char *s = " \"Doe, John\" <john@example.org> (work)";
	assert_int_equal(ba_addr_parse_mailbox(&a, s, strlen(s), 0, &err), 0);
	assert_string_equal(a.display, "Doe, John");
	assert_string_equal(a.local, "john");
	assert_string_equal(a.domain, "example.org");
	assert_null(a.group);
	ba_addr_release(&a);
	assert_int_equal(ba_addr_parse_mailbox(&a, "a@b, c@d", 8, 0, &err), -1);
	assert_string_equal(err.text,
	                    "invalid address 'a@b, c@d': more than one address where one is needed");
	assert_null(a.local);
	assert_int_equal(ba_addr_parse_mailbox(&a, "G: a@b;", 7, 0, &err), -1);
	assert_string_equal(err.text, "invalid address 'G: a@b;': a group where one mailbox is needed");
	assert_int_equal(ba_addr_parse_mailbox(&a, " ", 1, 0, &err), -1);
	assert_string_equal(err.text, "invalid address ' ': no address");
	assert_int_equal(ba_addr_parse_mailbox(&a, "foo@", 4, 0, &err), -1);
	assert_string_equal(err.text, "invalid address 'foo@' at column 5: missing domain");
}

/* ---- envelope ------------------------------------------------------------ */

static void test_addr__spec_valid(void **state)
{
	(void)state;
	const char *good[] = { "a@b", "user.name+tag@example.org", "\"a.b\"@c", "\"a@b\"@c",
		               "jörg@münchen.de", "x@[192.0.2.1]" };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		if (!ba_addr_spec_valid(good[i]))
			fail_msg("'%s' rejected", good[i]);
	const char *bad[] = { "", "a", "@b", "a@", "a@b@c", "\"a b\"@c", "<a@b>", "a@b>", "a b@c",
		              "a@b\r\nRCPT TO:<x@y>", "a@b\n", "a\t@b", "a@b\x7f", "\"a\"b@c",
		              "\"\"@c", "\"a@b", "a@b SIZE=1", "a@\xff", "a@b\"", "\"a\"@" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (ba_addr_spec_valid(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
	assert_false(ba_addr_spec_valid(NULL));
}

static void test_addr__spec_format(void **state)
{
	(void)state;
	struct ba_addr a = { NULL, "a b\"c", "example.org", NULL };
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_addr_spec_format(&b, &a, 0, &err), 0);
	assert_string_equal(ba_buf_str(&b), "\"a b\\\"c\"@example.org");
	assert_false(ba_addr_spec_valid(ba_buf_str(&b))); /* no spaces in the envelope */
	ba_buf_reset(&b);
	struct ba_addr q = { NULL, "a\\b..c", "example.org", NULL };
	assert_int_equal(ba_addr_spec_format(&b, &q, 0, &err), 0);
	assert_string_equal(ba_buf_str(&b), "\"a\\\\b..c\"@example.org");
	assert_true(ba_addr_spec_valid(ba_buf_str(&b)));
	ba_buf_reset(&b);
	struct ba_addr u = { NULL, "jörg", "münchen.de", NULL };
	assert_int_equal(ba_addr_spec_format(&b, &u, 0, &err), 0);
	assert_string_equal(ba_buf_str(&b), "jörg@münchen.de");
	ba_buf_reset(&b);
	struct ba_addr v = { NULL, "joerg", "münchen.de", NULL };
	assert_int_equal(ba_addr_spec_format(&b, &v, BA_ADDR_ASCII, &err), 0);
	assert_string_equal(ba_buf_str(&b), "joerg@xn--mnchen-3ya.de");
	ba_buf_reset(&b);
	struct ba_addr w = { NULL, "ü", "x", NULL };
	assert_int_equal(ba_addr_spec_format(&b, &w, BA_ADDR_ASCII, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.text, "local part of 'ü@x' is not ASCII and the server lacks SMTPUTF8");
	assert_int_equal(b.len, 0);
	ba_buf_release(&b);
}

/* entries from ba_addr_list_append() are unchecked: formatting must not let
 * CR/LF through (header injection "Bcc: ..." or a second SMTP command) */
static void test_addr__format_refuses_controls(void **state)
{
	(void)state;
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_addr_list_append(&l, NULL, "a", "b\r\nBcc: evil@x", NULL, &err), 0);
	size_t col = 4;
	assert_int_equal(ba_addr_list_format(&b, &l, &col, "\r\n", 0, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.text, "control character in the domain of an address");
	assert_null(strchr(ba_buf_str(&b), '\n'));
	ba_buf_reset(&b);
	struct ba_addr q = { NULL, "a\r\nRCPT TO:<x@y>", "example.org", NULL };
	assert_int_equal(ba_addr_spec_format(&b, &q, 0, &err), -1);
	assert_string_equal(err.text, "control character in the local part of an address");
	assert_int_equal(b.len, 0);
	struct ba_addr t = { NULL, "a\tb", "example.org", NULL };
	assert_int_equal(ba_addr_spec_format(&b, &t, BA_ADDR_ASCII, &err), -1);
	assert_int_equal(b.len, 0);
	/* a display name with CR/LF is encoded, never written raw */
	ba_addr_list_release(&l);
	assert_int_equal(ba_addr_list_append(&l, "x\r\nBcc: evil@x", "a", "b", NULL, &err), 0);
	col = 4;
	assert_int_equal(ba_addr_list_format(&b, &l, &col, "\r\n", 0, &err), 0);
	assert_null(strstr(ba_buf_str(&b), "Bcc:"));
	assert_null(strchr(ba_buf_str(&b), '\r'));
	ba_buf_release(&b);
	ba_addr_list_release(&l);
}

/* ---- IDN ----------------------------------------------------------------- */

static void test_addr__idn_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "münchen.de", "xn--mnchen-3ya.de" },
		{ "日本.jp", "xn--wgv71a.jp" },
		{ "bücher.example", "xn--bcher-kva.example" },
		{ "MÜNCHEN.DE", "xn--mnchen-3ya.de" }, /* mapped to lowercase (UTS #46) */
		{ "Example.ORG", "Example.ORG" },      /* ASCII: unchanged, case kept */
		{ "[192.0.2.1]", "[192.0.2.1]" },
		{ "xn--mnchen-3ya.de", "xn--mnchen-3ya.de" },
	};
	struct ba_err err = BA_ERR_INIT;
	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		struct ba_buf b = BA_BUF_INIT;
		if (ba_addr_domain_to_ascii(&b, v[i].in, &err) < 0)
			fail_msg("'%s': %s", v[i].in, err.text);
		assert_string_equal(ba_buf_str(&b), v[i].out);
		ba_buf_release(&b);
	}
	struct ba_buf b = BA_BUF_INIT;
	/* invalid labels: a disallowed code point, a hyphen at the end of a label */
	assert_int_equal(ba_addr_domain_to_ascii(&b, "☃.com", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "invalid domain '☃.com': "));
	assert_int_equal(ba_addr_domain_to_ascii(&b, "ü-.de", &err), -1);
	assert_non_null(strstr(err.text, "invalid domain 'ü-.de': "));
	assert_int_equal(b.len, 0);
	/* ASCII domains are checked too (LDH labels of 1..63 octets, 253 in all,
	 * A-labels that decode), and so is the result of a conversion */
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "a..b", "empty label" },
		{ ".example.com", "empty label" },
		{ "example.com.", "empty label" },
		{ "", "empty" },
		{ "ex ample.com", "character 0x20 in label 'ex ample'" },
		{ "a_b.example", "character 0x5f in label 'a_b'" },
		{ "a@b.example", "character 0x40 in label 'a@b'" },
		{ "-a.de", "label '-a' begins or ends with '-'" },
		{ "a-.de", "label 'a-' begins or ends with '-'" },
		{ "xn--zz.de", "label 'xn--zz' is not a valid A-label: " },
		{ "XN--ZZ.de", "label 'XN--ZZ' is not a valid A-label: " },
		{ "xn--.de", "label 'xn--' begins or ends with '-'" },
		{ "xn--a.de", "label 'xn--a' is not a valid A-label" },
		{ "xn--ls8h.de", "label 'xn--ls8h' is not a valid A-label: " }, /* U+1F4A9 */
		{ "xn--abc-def.de", "label 'xn--abc-def' is not a valid A-label: " }, /* bidi */
		{ "münchen..de", "empty label" },
		{ "münchen.ex ample.de", "character 0x20 in label 'ex ample'" },
		{ "münchen.xn--zz.de", "" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char want[300];
		snprintf(want, sizeof want, "invalid domain '%s': %s", bad[i].in, bad[i].why);
		if (ba_addr_domain_to_ascii(&b, bad[i].in, &err) == 0)
			fail_msg("'%s' accepted as '%s'", bad[i].in, ba_buf_str(&b));
		assert_int_equal(err.code, EX_DATAERR);
		if (strncmp(err.text, want, strlen(want)) != 0)
			fail_msg("'%s': error '%s', expected '%s...'", bad[i].in, err.text, want);
		assert_int_equal(b.len, 0);
	}
	/* the length limits: 63-octet labels, 253 octets (RFC 1035 §2.3.4) */
	char d[300];
	memset(d, 'a', 63);
	memcpy(d + 63, ".de", 4);
	assert_int_equal(ba_addr_domain_to_ascii(&b, d, &err), 0);
	assert_string_equal(ba_buf_str(&b), d);
	ba_buf_reset(&b);
	memset(d, 'a', 64);
	memcpy(d + 64, ".de", 4);
	assert_int_equal(ba_addr_domain_to_ascii(&b, d, &err), -1);
	assert_non_null(strstr(err.text, "': label longer than 63 octets"));
	for (size_t len = 252; len <= 254; len++) {
		/* labels "aaa.": 63 + 1 per label */
		for (size_t i = 0; i < len; i++)
			d[i] = (i + 1) % 64 == 0 ? '.' : 'a';
		d[len] = '\0';
		int r = ba_addr_domain_to_ascii(&b, d, &err);
		if (len <= 253) {
			assert_int_equal(r, 0);
			assert_int_equal(b.len, len);
		} else {
			assert_int_equal(r, -1);
			assert_non_null(strstr(err.text, "': longer than 253 octets"));
		}
		ba_buf_reset(&b);
	}
	/* valid A-labels, in any case, are kept as given; a single label is fine */
	const char *good[] = { "XN--MNCHEN-3YA.DE", "xn--55qx5d.xn--fiqs8s", "xn--fa-hia.de",
		               "localhost", "a-b.c0.example", "1.2.3.4.example" };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if (ba_addr_domain_to_ascii(&b, good[i], &err) < 0)
			fail_msg("'%s': %s", good[i], err.text);
		assert_string_equal(ba_buf_str(&b), good[i]);
		ba_buf_reset(&b);
	}
	/* a domain literal is not a host name: left as it is */
	assert_int_equal(ba_addr_domain_to_ascii(&b, "[IPv6:2001:db8::1]", &err), 0);
	assert_string_equal(ba_buf_str(&b), "[IPv6:2001:db8::1]");
	ba_buf_reset(&b);
	/* through the spec renderer (the envelope path) */
	struct ba_addr dd = { NULL, "x", "a..b", NULL };
	assert_int_equal(ba_addr_spec_format(&b, &dd, BA_ADDR_ASCII, &err), -1);
	assert_string_equal(err.text, "invalid domain 'a..b': empty label");
	assert_int_equal(b.len, 0);
	assert_int_equal(ba_addr_spec_format(&b, &dd, 0, &err), 0); /* UTF-8 kept: not converted */
	ba_buf_reset(&b);
	/* through the renderer: the domain error names the domain */
	struct ba_addr a = { NULL, "x", "☃.com", NULL };
	size_t col = 0;
	assert_int_equal(ba_addr_format(&b, &a, &col, "\r\n", BA_ADDR_ASCII, &err), -1);
	assert_non_null(strstr(err.text, "'☃.com'"));
	assert_int_equal(b.len, 0);
	ba_buf_release(&b);
}

/* ---- rendering ------------------------------------------------------------ */

static void test_addr__format_forms(void **state)
{
	(void)state;
	char *s = format_list("a@b, John Doe <j@d>, \"Doe, John\" <j@d>", 0, 4);
	assert_string_equal(s, "a@b, John Doe <j@d>, \"Doe, John\" <j@d>");
	free(s);
	s = format_list("G: a@b, c@d;, e@f, Undisclosed recipients:;", 0, 4);
	assert_string_equal(s, "G: a@b, c@d;, e@f, Undisclosed recipients:;");
	free(s);
	s = format_list("Jörg <jörg@münchen.de>", 0, 4);
	assert_string_equal(s, "=?utf-8?B?SsO2cmc=?= <jörg@münchen.de>");
	free(s);
	s = format_list("Jörg <joerg@münchen.de>", BA_ADDR_ASCII, 4);
	assert_string_equal(s, "=?utf-8?B?SsO2cmc=?= <joerg@xn--mnchen-3ya.de>");
	free(s);
	/* obsolete input is written in the current syntax */
	s = format_list("Joe Q. Public <@r.test:john@(c)example . com>", 0, 4);
	assert_string_equal(s, "\"Joe Q. Public\" <john@example.com>");
	free(s);
}

static void test_addr__format_folds_at_78(void **state)
{
	(void)state;
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	char local[32];
	for (int i = 0; i < 30; i++) {
		snprintf(local, sizeof local, "recipient%02d", i);
		assert_int_equal(ba_addr_list_append(&l, i % 3 ? "Some Person" : NULL, local,
		                                     "example.org", i >= 20 ? "Team" : NULL, NULL),
		                 0);
	}
	struct ba_buf out = BA_BUF_INIT;
	size_t col = 4;
	assert_int_equal(ba_addr_list_format(&out, &l, &col, "\r\n", 0, NULL), 0);
	check_lines(ba_buf_str(&out), 4, 78);
	assert_non_null(strstr(ba_buf_str(&out), ",\r\n "));
	assert_non_null(strstr(ba_buf_str(&out), "Team:"));
	/* every fold is between addresses: a line never ends inside one */
	assert_null(strstr(ba_buf_str(&out), "<\r\n"));
	roundtrip(&l, 0, "\r\n");
	ba_addr_list_release(&l);
	ba_buf_release(&out);
}

static void test_addr__roundtrip_display_names(void **state)
{
	(void)state;
	const char *names[] = {
		"Doe, John",
		"John \"Johnny\" Doe",
		"Smith (Sales)",
		"back\\slash",
		"a\\\"b",
		"semi;colon <angle> [square] @at: colon.",
		"  leading and trailing  ",
		"김철수",
		"山田 太郎",
		"Émile Zola 😀🎉",
		"=?utf-8?q?not-an-encoded-word?=",
		"mixed ASCII, 日本語 and \"quotes\" (and parens) \\ backslash",
		"A very long display name that certainly does not fit on one line of seventy-eight",
		"ü",
		"(",
		"\"",
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		roundtrip_one(names[i], "user", "example.org");
	/* local parts that need quoting, and UTF-8 ones */
	const char *locals[] = { "a b", "a\"b", "a\\b", ".a", "a.", "a..b", "a,b", "(x)",
		                 "jörg", "用户" };
	for (size_t i = 0; i < sizeof locals / sizeof *locals; i++)
		roundtrip_one(i % 2 ? "Name" : NULL, locals[i], "example.org");
}

static uint32_t rng_state;
static uint32_t rnd(void)
{
	uint32_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

static void test_addr__roundtrip_random(void **state)
{
	(void)state;
	static const char *pool[] = { "a", "Z", " ", "  ", ",", "\"", "\\", "(", ")", "<", ">",
		                      "@", ":", ";", ".", "=?", "?=", "é", "김", "日本", "😀",
		                      "x", "-", "_", "'", "[", "]" };
	rng_state = 0x12345678;
	for (int iter = 0; iter < 2000; iter++) {
		struct ba_addr_list l = BA_ADDR_LIST_INIT;
		int n = 1 + (int)(rnd() % 4);
		for (int k = 0; k < n; k++) {
			char name[256] = "";
			size_t len = 0, m = rnd() % 40;
			for (size_t j = 0; j < m; j++) {
				const char *p = pool[rnd() % (sizeof pool / sizeof *pool)];
				size_t pl = strlen(p);
				if (len + pl >= sizeof name)
					break;
				memcpy(name + len, p, pl);
				len += pl;
			}
			name[len] = '\0';
			const char *grp = (rnd() % 4 == 0) ? "Grp, \"x\"" : NULL;
			assert_int_equal(ba_addr_list_append(&l, name, rnd() % 5 ? "u.v" : "u v",
			                                     "example.org", grp, NULL),
			                 0);
		}
		roundtrip(&l, 0, iter % 2 ? "\r\n" : "\n");
		ba_addr_list_release(&l);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr__rfc5322_a1_1),
		cmocka_unit_test(test_addr__rfc5322_a1_2),
		cmocka_unit_test(test_addr__rfc5322_a1_3_groups),
		cmocka_unit_test(test_addr__rfc5322_a5_white_space_comments),
		cmocka_unit_test(test_addr__rfc5322_a6_obsolete),
		cmocka_unit_test(test_addr__quoted_literal_utf8),
		cmocka_unit_test(test_addr__errors_with_column),
		cmocka_unit_test(test_addr__errors_injection),
		cmocka_unit_test(test_addr__parse_mailbox),
		cmocka_unit_test(test_addr__spec_valid),
		cmocka_unit_test(test_addr__spec_format),
		cmocka_unit_test(test_addr__format_refuses_controls),
		cmocka_unit_test(test_addr__idn_vectors),
		cmocka_unit_test(test_addr__format_forms),
		cmocka_unit_test(test_addr__format_folds_at_78),
		cmocka_unit_test(test_addr__roundtrip_display_names),
		cmocka_unit_test(test_addr__roundtrip_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
