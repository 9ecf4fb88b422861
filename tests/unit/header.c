/* tests/unit/header.c - header list, incremental parser, folding */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/header.h"

/* ---- helpers ------------------------------------------------------------ */

/* Parses msg fed in chunks of step bytes (0 = all at once); returns push's result. */
static int parse_steps(struct ba_header_parser *p, const char *msg, size_t n, size_t step,
                       size_t *body, struct ba_err *err)
{
	size_t off = 0;
	while (off < n) {
		size_t k = step && n - off > step ? step : n - off, used = 0;
		int r = ba_header_parser_push(p, msg + off, k, &used, err);
		if (r != 0) {
			*body = off + used;
			return r;
		}
		assert_int_equal(used, k);
		off += k;
	}
	*body = n;
	return ba_header_parser_finish(p, err);
}

/* Renders the parsed list as "name=[value]\n" lines. */
static char *dump(const struct ba_header_list *l)
{
	struct ba_buf b = BA_BUF_INIT;
	for (size_t i = 0; i < l->n; i++)
		ba_buf_addf(&b, "%s=[%s]\n", l->v[i].name, l->v[i].value);
	return ba_buf_detach(&b, NULL);
}

/* Parses msg in two pushes, split at cut, then finishes; returns the result. */
static int parse_cut(struct ba_header_parser *p, const char *msg, size_t n, size_t cut,
                     struct ba_err *err)
{
	size_t used;
	int r = ba_header_parser_push(p, msg, cut, &used, err);
	if (r == 0)
		r = ba_header_parser_push(p, msg + cut, n - cut, &used, err);
	if (r == 0)
		r = ba_header_parser_finish(p, err);
	return r;
}

/* Asserts that msg fails with text, fed whole, in steps of 1..3 and split in two anywhere. */
static void parse_fails(const char *msg, size_t n, size_t max_total, size_t max_fields,
                        unsigned flags, const char *text)
{
	for (size_t step = 0; step < 4; step++) {
		struct ba_header_parser p;
		struct ba_err err = BA_ERR_INIT;
		size_t body;
		ba_header_parser_init(&p, max_total, max_fields, flags);
		assert_int_equal(parse_steps(&p, msg, n, step, &body, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		if (strcmp(err.text, text))
			fail_msg("step %zu: error '%s', expected '%s'", step, err.text, text);
		ba_header_parser_release(&p);
	}
	for (size_t cut = 0; cut <= n; cut++) {
		struct ba_header_parser p;
		struct ba_err err = BA_ERR_INIT;
		ba_header_parser_init(&p, max_total, max_fields, flags);
		assert_int_equal(parse_cut(&p, msg, n, cut, &err), -1);
		if (strcmp(err.text, text))
			fail_msg("cut at %zu: error '%s', expected '%s'", cut, err.text, text);
		ba_header_parser_release(&p);
	}
}

/* ---- parser --------------------------------------------------------------- */

static const char sample[] =
	"Received: from x.test by y.test;\r\n"
	"\tSun, 29 Nov 2026 02:00:00 +0000\r\n"
	"From: John Doe <jdoe@machine.example>\r\n"
	"To: Mary Smith <mary@example.net>\r\n"
	"Subject: Saying Hello\r\n"
	"Bcc: secret@example.org\r\n"
	"X-Empty:\r\n"
	"Comments: a\r\n"
	"  folded\r\n"
	" twice\r\n"
	"BCC: other@example.org\r\n"
	"\r\n"
	"This is a message just to say hello.\r\n"
	"\r\n"
	"From: not a header\r\n";

static void test_header__parse_sample(void **state)
{
	(void)state;
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t body;
	ba_header_parser_init(&p, 0, 0, 0);
	assert_int_equal(parse_steps(&p, sample, sizeof sample - 1, 0, &body, &err), 1);
	assert_string_equal(sample + body, "This is a message just to say hello.\r\n\r\n"
	                                   "From: not a header\r\n");
	char *d = dump(&p.fields);
	assert_string_equal(d, "Received=[ from x.test by y.test;\r\n\tSun, 29 Nov 2026 02:00:00 +0000]\n"
	                       "From=[ John Doe <jdoe@machine.example>]\n"
	                       "To=[ Mary Smith <mary@example.net>]\n"
	                       "Subject=[ Saying Hello]\n"
	                       "Bcc=[ secret@example.org]\n"
	                       "X-Empty=[]\n"
	                       "Comments=[ a\r\n  folded\r\n twice]\n"
	                       "BCC=[ other@example.org]\n");
	free(d);
	/* unfolding (RFC 5322 §2.2.3) */
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_header_field_unfold(&b, ba_header_list_find(&p.fields, "comments"), &err), 0);
	assert_string_equal(ba_buf_str(&b), "a  folded twice");
	ba_buf_reset(&b);
	assert_int_equal(ba_header_field_unfold(&b, ba_header_list_find(&p.fields, "x-empty"), &err), 0);
	assert_string_equal(ba_buf_str(&b), "");
	/* case-insensitive find / next, remove all (Bcc) */
	const struct ba_header_field *f = ba_header_list_find(&p.fields, "bcc");
	assert_non_null(f);
	assert_string_equal(f->value, " secret@example.org");
	f = ba_header_list_next(&p.fields, "BcC", f);
	assert_non_null(f);
	assert_string_equal(f->name, "BCC");
	assert_null(ba_header_list_next(&p.fields, "bcc", f));
	assert_null(ba_header_list_find(&p.fields, "Cc"));
	assert_int_equal(ba_header_list_remove(&p.fields, "bcc"), 2);
	assert_null(ba_header_list_find(&p.fields, "Bcc"));
	assert_int_equal(p.fields.n, 6);
	/* the writer with either line end */
	ba_buf_reset(&b);
	assert_int_equal(ba_header_list_write(&b, &p.fields, "\n", &err), 0);
	assert_string_equal(ba_buf_str(&b),
	                    "Received: from x.test by y.test;\n\tSun, 29 Nov 2026 02:00:00 +0000\n"
	                    "From: John Doe <jdoe@machine.example>\n"
	                    "To: Mary Smith <mary@example.net>\n"
	                    "Subject: Saying Hello\n"
	                    "X-Empty:\n"
	                    "Comments: a\n  folded\n twice\n");
	ba_buf_release(&b);
	ba_header_parser_release(&p);
}

static void test_header__one_byte_at_a_time(void **state)
{
	(void)state;
	/* the same fields and body offset whatever the chunking; LF and CRLF */
	char lf[sizeof sample];
	size_t k = 0;
	for (size_t i = 0; i < sizeof sample - 1; i++)
		if (sample[i] != '\r')
			lf[k++] = sample[i];
	lf[k] = '\0';
	const char *msgs[] = { sample, lf };
	for (size_t m = 0; m < 2; m++) {
		size_t n = strlen(msgs[m]);
		struct ba_header_parser ref;
		struct ba_err err = BA_ERR_INIT;
		size_t ref_body;
		ba_header_parser_init(&ref, 0, 0, 0);
		assert_int_equal(parse_steps(&ref, msgs[m], n, 0, &ref_body, &err), 1);
		char *want = dump(&ref.fields);
		for (size_t step = 1; step <= 7; step++) {
			struct ba_header_parser p;
			size_t body;
			ba_header_parser_init(&p, 0, 0, 0);
			assert_int_equal(parse_steps(&p, msgs[m], n, step, &body, &err), 1);
			assert_int_equal(body, ref_body);
			char *got = dump(&p.fields);
			assert_string_equal(got, want);
			free(got);
			ba_header_parser_release(&p);
		}
		free(want);
		ba_header_parser_release(&ref);
	}
}

static void test_header__no_body_and_eof(void **state)
{
	(void)state;
	/* header only, without the empty line, the last line even without line end */
	const char *cases[] = { "A: 1\r\nB: 2\r\n", "A: 1\nB: 2", "A: 1\r\nB: 2\r\n" };
	for (size_t i = 0; i < 3; i++) {
		struct ba_header_parser p;
		struct ba_err err = BA_ERR_INIT;
		size_t body;
		ba_header_parser_init(&p, 0, 0, 0);
		assert_int_equal(parse_steps(&p, cases[i], strlen(cases[i]), i, &body, &err), 0);
		assert_int_equal(p.fields.n, 2);
		assert_string_equal(p.fields.v[1].name, "B");
		assert_string_equal(p.fields.v[1].value, " 2");
		struct ba_header_list l;
		ba_header_parser_take(&p, &l);
		assert_int_equal(p.fields.n, 0);
		assert_int_equal(l.n, 2);
		ba_header_list_release(&l);
		ba_header_parser_release(&p);
	}
	/* an empty message and a message that starts with the empty line */
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t used;
	ba_header_parser_init(&p, 0, 0, 0);
	assert_int_equal(ba_header_parser_finish(&p, &err), 0);
	assert_int_equal(p.fields.n, 0);
	ba_header_parser_release(&p);
	ba_header_parser_init(&p, 0, 0, 0);
	assert_int_equal(ba_header_parser_push(&p, "\r\nbody", 6, &used, &err), 1);
	assert_int_equal(used, 2);
	assert_int_equal(ba_header_parser_finish(&p, &err), 0);
	ba_header_parser_release(&p);
}

static void test_header__mbox_from_line(void **state)
{
	(void)state;
	const char msg[] = "From jdoe@example.org Sun Nov 29 02:00:00 2026\nFrom: a@b\n\nbody";
	parse_fails(msg, sizeof msg - 1, 0, 0, 0, "line 1: mbox 'From ' line");
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t body;
	ba_header_parser_init(&p, 0, 0, BA_HEADER_SKIP_MBOX_FROM);
	assert_int_equal(parse_steps(&p, msg, sizeof msg - 1, 3, &body, &err), 1);
	assert_int_equal(p.fields.n, 1);
	assert_string_equal(p.fields.v[0].name, "From");
	assert_string_equal(msg + body, "body");
	ba_header_parser_release(&p);
	/* only the first line: later it is an invalid field name */
	const char msg2[] = "A: b\nFrom x\n\n";
	parse_fails(msg2, sizeof msg2 - 1, 0, 0, BA_HEADER_SKIP_MBOX_FROM,
	            "line 2: missing ':' in header line 'From x'");
}

static void test_header__errors_name_the_line(void **state)
{
	(void)state;
	const char m1[] = "A: 1\r\nB: 2\r\nFo o: 3\r\n\r\n";
	parse_fails(m1, sizeof m1 - 1, 0, 0, 0, "line 3: invalid header field name 'Fo o'");
	const char m2[] = " cont\r\nA: 1\r\n\r\n";
	parse_fails(m2, sizeof m2 - 1, 0, 0, 0, "line 1: continuation line before the first field");
	const char m3[] = "A: 1\nB\0: 2\n\n";
	parse_fails(m3, sizeof m3 - 1, 0, 0, 0, "line 2: NUL byte in header");
	const char m4[] = "A: 1\nnocolon\n\n";
	parse_fails(m4, sizeof m4 - 1, 0, 0, 0, "line 2: missing ':' in header line 'nocolon'");
	const char m5[] = "A: 1\n: empty name\n\n";
	parse_fails(m5, sizeof m5 - 1, 0, 0, 0, "line 2: invalid header field name ''");
	const char m6[] = "A: 1\nX\x80Y: 8bit\n\n";
	parse_fails(m6, sizeof m6 - 1, 0, 0, 0, "line 2: invalid header field name 'X\x80Y'");
	/* obs-optional (RFC 5322 §4.5.3): white space before the colon is tolerated */
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t body;
	ba_header_parser_init(&p, 0, 0, 0);
	assert_int_equal(parse_steps(&p, "Subject : x\n\n", 13, 0, &body, &err), 1);
	assert_string_equal(p.fields.v[0].name, "Subject");
	assert_string_equal(p.fields.v[0].value, " x");
	ba_header_parser_release(&p);
}

static void test_header__bounds(void **state)
{
	(void)state;
	/* a line of 998 octets is fine, 999 is not (RFC 5322 §2.1.1) */
	char line[1200];
	for (size_t len = 997; len <= 999; len++) {
		memset(line, 'x', sizeof line);
		memcpy(line, "X-Long: ", 8);
		memcpy(line + len, "\r\n\r\n", 4);
		for (size_t step = 0; step < 3; step++) {
			struct ba_header_parser p;
			struct ba_err err = BA_ERR_INIT;
			size_t body;
			ba_header_parser_init(&p, 0, 0, 0);
			int r = parse_steps(&p, line, len + 4, step * 100, &body, &err);
			if (len <= 998) {
				assert_int_equal(r, 1);
				assert_int_equal(strlen(p.fields.v[0].value), len - 7);
			} else {
				assert_int_equal(r, -1);
				assert_string_equal(err.text, "line 1: line longer than 998 octets");
			}
			ba_header_parser_release(&p);
		}
	}
	/* the error whose octet comes first wins, however the input is split */
	memset(line, 'x', sizeof line);
	memcpy(line, "X-Long: ", 8);
	line[1100] = '\0';
	line[1150] = '\n';
	parse_fails(line, 1151, 0, 0, 0, "line 1: line longer than 998 octets");
	parse_fails(line, 1151, 1050, 0, 0, "line 1: line longer than 998 octets");
	parse_fails(line, 1151, 900, 0, 0, "line 1: header larger than 900 octets");
	line[500] = '\0';
	parse_fails(line, 1151, 0, 0, 0, "line 1: NUL byte in header");
	/* too many fields, too many octets */
	struct ba_buf m = BA_BUF_INIT;
	for (int i = 0; i < 20; i++)
		ba_buf_addf(&m, "X-F%d: v\r\n", i);
	ba_buf_addstr(&m, "\r\n");
	/* the line starting field 11; the line holding octet 101 (lines 1-10 are
	 * 9 octets each, line 11 is 10) */
	parse_fails(m.data, m.len, 0, 10, 0, "line 11: more than 10 header fields");
	parse_fails(m.data, m.len, 100, 0, 0, "line 12: header larger than 100 octets");
	parse_fails(m.data, m.len, 99, 0, 0, "line 11: header larger than 99 octets");
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t body;
	ba_header_parser_init(&p, m.len, 20, 0);
	assert_int_equal(parse_steps(&p, m.data, m.len, 0, &body, &err), 1);
	assert_int_equal(p.fields.n, 20);
	ba_header_parser_release(&p);
	/* a long line without line end is refused before it grows */
	ba_buf_reset(&m);
	ba_buf_addstr(&m, "X: ");
	for (int i = 0; i < 2000; i++)
		ba_buf_addch(&m, 'y');
	ba_header_parser_init(&p, 0, 0, 0);
	size_t used;
	assert_int_equal(ba_header_parser_push(&p, m.data, 500, &used, &err), 0);
	assert_int_equal(ba_header_parser_push(&p, m.data + 500, 1000, &used, &err), -1);
	assert_string_equal(err.text, "line 1: line longer than 998 octets");
	ba_header_parser_release(&p);
	ba_buf_release(&m);
}

static void test_header__bare_cr_is_an_error(void **state)
{
	(void)state;
	/* RFC 5322 §2.2: CR only in CRLF.  The reviewer's case: kept as data it
	 * made a list that ba_header_list_append() refuses and that
	 * ba_header_list_write() wrote with the bare CR in it */
	const char m1[] = "Subject: x\r\rTo: y\n\n";
	parse_fails(m1, sizeof m1 - 1, 0, 0, 0, "line 1: bare CR (not followed by LF) in header");
	const char m2[] = "A: 1\r\nB: x\ry\r\n\r\n";
	parse_fails(m2, sizeof m2 - 1, 0, 0, 0, "line 2: bare CR (not followed by LF) in header");
	/* CR CR LF: the first CR is bare; in a continuation line and the empty line too */
	const char m3[] = "A: 1\r\r\n b\r\n\r\n";
	parse_fails(m3, sizeof m3 - 1, 0, 0, 0, "line 1: bare CR (not followed by LF) in header");
	const char m4[] = "A: 1\r\n b\rc\r\n\r\n";
	parse_fails(m4, sizeof m4 - 1, 0, 0, 0, "line 2: bare CR (not followed by LF) in header");
	const char m5[] = "A: 1\r\n\r\r\nbody";
	parse_fails(m5, sizeof m5 - 1, 0, 0, 0, "line 2: bare CR (not followed by LF) in header");
	const char m6[] = "From x\ry\nA: 1\n\n";
	parse_fails(m6, sizeof m6 - 1, 0, 0, BA_HEADER_SKIP_MBOX_FROM,
	            "line 1: bare CR (not followed by LF) in header");
	/* the first fault of a line wins: CR before NUL, NUL before CR */
	const char m7[] = "A: x\ry\0z\n\n";
	parse_fails(m7, sizeof m7 - 1, 0, 0, 0, "line 1: bare CR (not followed by LF) in header");
	const char m8[] = "A: x\0y\rz\n\n";
	parse_fails(m8, sizeof m8 - 1, 0, 0, 0, "line 1: NUL byte in header");
	/* a limit reached at the CR itself or before it wins, after it loses */
	const char m9[] = "A: 12345\rx\n\n"; /* the CR is octet 9 */
	parse_fails(m9, sizeof m9 - 1, 8, 0, 0, "line 1: header larger than 8 octets");
	parse_fails(m9, sizeof m9 - 1, 9, 0, 0, "line 1: bare CR (not followed by LF) in header");

	/* a bare CR in the body is not the parser's business */
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	const char ok[] = "A: 1\r\n\r\nbo\rdy\r";
	for (size_t cut = 0; cut < sizeof ok; cut++) {
		size_t used;
		ba_header_parser_init(&p, 0, 0, 0);
		int r = ba_header_parser_push(&p, ok, cut, &used, &err);
		if (r == 0)
			r = ba_header_parser_push(&p, ok + cut, sizeof ok - 1 - cut, &used, &err);
		assert_int_equal(r, 1);
		assert_int_equal(p.fields.n, 1);
		ba_header_parser_release(&p);
	}
	/* a CR as the last octet of the input ends the last line (no LF at EOF) */
	const char eof[] = "A: 1\r\nB: 2\r";
	for (size_t cut = 0; cut < sizeof eof; cut++) {
		ba_header_parser_init(&p, 0, 0, 0);
		assert_int_equal(parse_cut(&p, eof, sizeof eof - 1, cut, &err), 0);
		assert_int_equal(p.fields.n, 2);
		assert_string_equal(p.fields.v[1].value, " 2");
		ba_header_parser_release(&p);
	}
}

static void test_header__limit_errors_name_the_line(void **state)
{
	(void)state;
	/* lines: "A: 1\n" octets 0-4, "B: 2\n" 5-9, " c\n" 10-12, "D: 4\n" 13-17 */
	const char m[] = "A: 1\nB: 2\n c\nD: 4\n\nbody";
	parse_fails(m, sizeof m - 1, 9, 0, 0, "line 2: header larger than 9 octets");
	parse_fails(m, sizeof m - 1, 10, 0, 0, "line 3: header larger than 10 octets");
	parse_fails(m, sizeof m - 1, 17, 0, 0, "line 4: header larger than 17 octets");
	parse_fails(m, sizeof m - 1, 18, 0, 0, "line 5: header larger than 18 octets");
	parse_fails(m, sizeof m - 1, 0, 2, 0, "line 4: more than 2 header fields");
	parse_fails(m, sizeof m - 1, 0, 1, 0, "line 2: more than 1 header fields");
	/* a field that is too many and too large: the octet limit comes first */
	parse_fails(m, sizeof m - 1, 15, 2, 0, "line 4: header larger than 15 octets");
	/* the reviewer's case: the NUL is within the limit, so it is the error */
	const char n[] = "Subject: 0123456789012345678901234567\0x\r\n\r\n";
	parse_fails(n, sizeof n - 1, 40, 3, 0, "line 1: NUL byte in header");
	parse_fails(n, sizeof n - 1, 30, 3, 0, "line 1: header larger than 30 octets");
	/* exactly at the limits is fine */
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t body;
	ba_header_parser_init(&p, 19, 3, 0);
	assert_int_equal(parse_steps(&p, m, sizeof m - 1, 1, &body, &err), 1);
	assert_int_equal(body, 19);
	assert_int_equal(p.fields.n, 3);
	ba_header_parser_release(&p);
}

/* ---- the same result however the input is split ---------------------------- */

static uint32_t xorshift(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Parses s[0..n) pushed in pieces ending at cuts[] (sorted), renders the outcome. */
static char *outcome(const char *s, size_t n, const size_t *cuts, size_t ncuts,
                     size_t max_total, size_t max_fields, unsigned flags)
{
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf b = BA_BUF_INIT;
	size_t off = 0, used = 0, k = 0;
	int r = 0;
	ba_header_parser_init(&p, max_total, max_fields, flags);
	while (off < n) {
		size_t end = k < ncuts ? cuts[k++] : n;
		if (end <= off)
			continue;
		r = ba_header_parser_push(&p, s + off, end - off, &used, &err);
		if (r != 0) {
			off += used;
			break;
		}
		assert_int_equal(used, end - off);
		off = end;
	}
	if (r == 0)
		r = ba_header_parser_finish(&p, &err);
	ba_buf_addf(&b, "r=%d", r);
	if (r < 0) {
		assert_int_equal(err.code, EX_DATAERR);
		/* every data error names the line */
		assert_memory_equal(err.text, "line ", 5);
		ba_buf_addf(&b, " %s", err.text);
	} else {
		ba_buf_addf(&b, " body@%zu", off);
		struct ba_header_list again = BA_HEADER_LIST_INIT;
		for (size_t i = 0; i < p.fields.n; i++) {
			ba_buf_addf(&b, " {%s=[", p.fields.v[i].name);
			ba_buf_add(&b, p.fields.v[i].value, strlen(p.fields.v[i].value));
			ba_buf_addstr(&b, "]}");
			/* the list's own invariant: every parsed field could be appended */
			if (ba_header_list_append(&again, p.fields.v[i].name, p.fields.v[i].value,
			                          &err) < 0)
				fail_msg("parsed field refused: %s", err.text);
		}
		/* and written out, no CR is bare */
		struct ba_buf w = BA_BUF_INIT;
		assert_int_equal(ba_header_list_write(&w, &p.fields, "\r\n", &err), 0);
		for (size_t i = 0; i < w.len; i++)
			if (w.data[i] == '\r')
				assert_true(i + 1 < w.len && w.data[i + 1] == '\n');
		ba_buf_release(&w);
		ba_header_list_release(&again);
	}
	ba_header_parser_release(&p);
	return ba_buf_detach(&b, NULL);
}

static void test_header__random_splits(void **state)
{
	(void)state;
	/* random messages from a small alphabet (with now and then a run long
	 * enough for the 998-octet limit) and random limits: whole or pushed in
	 * random pieces, the fields, the body offset and the error are the same */
	static const char alpha[] = "ab: \t\r\n\nX\0F";
	static char s[3000];
	uint32_t x = 0x2545f491;
	for (int iter = 0; iter < 20000; iter++) {
		size_t want = xorshift(&x) % 4 ? xorshift(&x) % 120 : xorshift(&x) % sizeof s, n = 0;
		while (n < want) {
			if (xorshift(&x) % 64 == 0) {
				size_t run = 990 + xorshift(&x) % 16;
				while (run-- && n < sizeof s)
					s[n++] = 'x';
			} else {
				s[n++] = alpha[xorshift(&x) % (sizeof alpha - 1)];
			}
		}
		if (xorshift(&x) % 2)
			memcpy(s, "From ", n < 5 ? n : 5);
		size_t max_total = xorshift(&x) % 3 ? xorshift(&x) % (n + 10) : 0;
		size_t max_fields = xorshift(&x) % 3 ? xorshift(&x) % 6 : 0;
		unsigned flags = xorshift(&x) % 2 ? BA_HEADER_SKIP_MBOX_FROM : 0;
		size_t cuts[12], ncuts = xorshift(&x) % 12;
		for (size_t k = 0; k < ncuts; k++)
			cuts[k] = xorshift(&x) % (n + 1);
		for (size_t a = 1; a < ncuts; a++) /* insertion sort */
			for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
				size_t t = cuts[b];
				cuts[b] = cuts[b - 1];
				cuts[b - 1] = t;
			}
		char *whole = outcome(s, n, NULL, 0, max_total, max_fields, flags);
		char *split = outcome(s, n, cuts, ncuts, max_total, max_fields, flags);
		if (strcmp(whole, split))
			fail_msg("iteration %d (n %zu, max_total %zu, max_fields %zu): whole '%.200s', "
			         "split '%.200s'", iter, n, max_total, max_fields, whole, split);
		free(whole);
		free(split);
	}
}

/* ---- list, validity, injection ------------------------------------------ */

static void test_header__injection_rejected(void **state)
{
	(void)state;
	assert_true(ba_header_name_valid("X-Mailer"));
	assert_true(ba_header_name_valid("!#$%&'*+-.^_`|~"));
	const char *bad_names[] = { "", "A B", "A:B", "A\r\nB", "Ä", "A\t", "\x7f" };
	for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
		assert_false(ba_header_name_valid(bad_names[i]));
	assert_false(ba_header_name_valid(NULL));
	assert_true(ba_header_value_valid("plain value, with UTF-8 ü"));
	assert_false(ba_header_value_valid("x\r\nBcc: victim@example.org"));
	assert_false(ba_header_value_valid("x\nBcc: victim@example.org"));
	assert_false(ba_header_value_valid("x\r"));

	struct ba_header_list l = BA_HEADER_LIST_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_header_list_append(&l, "Subject", "x\r\nBcc: v@example.org", &err), -1);
	assert_string_equal(err.text,
	                    "line break not followed by white space in header field 'Subject'");
	assert_int_equal(ba_header_list_append(&l, "Subject", "x\nBcc: v@example.org", &err), -1);
	assert_int_equal(ba_header_list_append(&l, "Subject", "x\rBcc: v@example.org", &err), -1);
	assert_string_equal(err.text, "bare CR in header field 'Subject'");
	assert_int_equal(ba_header_list_append(&l, "Bcc: x\r\nSubject", "y", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(l.n, 0);
	/* a fold is fine */
	assert_int_equal(ba_header_list_append(&l, "Subject", " a\r\n b", &err), 0);
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_header_write_field(&b, "Subject", "x\r\nBcc: v@example.org", "\r\n",
	                                       &err), -1);
	assert_string_equal(err.text, "line break in the value of header field 'Subject'");
	assert_int_equal(ba_header_write_field(&b, "Sub ject", "x", "\r\n", &err), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(ba_header_list_write(&b, &l, "\r\n", &err), 0);
	assert_string_equal(ba_buf_str(&b), "Subject: a\r\n b\r\n");
	ba_buf_release(&b);
	ba_header_list_release(&l);
}

/* ---- folding writer -------------------------------------------------------- */

/* Checks the lines of a written field; returns the unfolded value. */
static char *check_field(const char *s, const char *name, size_t max)
{
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t used, start = 0, n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n') {
			assert_true(i > 0 && s[i - 1] == '\r');
			if (i - 1 - start > max)
				fail_msg("line of %zu octets: %.*s", i - 1 - start, (int)(i - 1 - start),
				         s + start);
			start = i + 1;
		}
	assert_int_equal(start, n); /* ends with the line end */
	ba_header_parser_init(&p, 0, 0, 0);
	assert_int_equal(ba_header_parser_push(&p, s, n, &used, &err), 0);
	assert_int_equal(ba_header_parser_finish(&p, &err), 0);
	assert_int_equal(p.fields.n, 1);
	assert_string_equal(p.fields.v[0].name, name);
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_header_field_unfold(&b, &p.fields.v[0], &err), 0);
	ba_header_parser_release(&p);
	return ba_buf_detach(&b, NULL);
}

static void test_header__write_field_folds(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_header_write_field(&b, "Subject", "short", "\r\n", &err), 0);
	assert_string_equal(ba_buf_str(&b), "Subject: short\r\n");
	ba_buf_reset(&b);
	const char *text = "This is a rather long subject line that goes on and on, well past the "
	                   "seventy-eight character limit of RFC 5322, so it must be folded at "
	                   "white space into several lines";
	assert_int_equal(ba_header_write_field(&b, "Subject", text, "\r\n", &err), 0);
	char *back = check_field(ba_buf_str(&b), "Subject", 78);
	assert_string_equal(back, text); /* unfolding gives the text back */
	free(back);
	assert_non_null(strstr(ba_buf_str(&b), "\r\n "));
	/* a word longer than 78 goes on a line of its own, up to 998 */
	char word[1100];
	memset(word, 'w', sizeof word);
	memcpy(word, "start ", 6);
	word[6 + 900] = '\0';
	ba_buf_reset(&b);
	assert_int_equal(ba_header_write_field(&b, "X-Long", word, "\r\n", &err), 0);
	back = check_field(ba_buf_str(&b), "X-Long", 998);
	assert_string_equal(back, word);
	free(back);
	assert_memory_equal(ba_buf_str(&b) + strlen("X-Long: start"), "\r\n www", 6);
	/* 998 octets of a word are too many once the fold's space is counted */
	word[6 + 900] = 'w';
	word[6 + 998] = '\0';
	ba_buf_reset(&b);
	assert_int_equal(ba_header_write_field(&b, "X-Long", word, "\r\n", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.text, "header field 'X-Long' has a word too long for a 998-octet line");
	assert_int_equal(b.len, 0);
	/* the longest word that fits: 997 octets after the fold's space */
	word[6 + 998] = 'w';
	word[6 + 997] = '\0';
	assert_int_equal(ba_header_write_field(&b, "X-Long", word, "\r\n", &err), 0);
	back = check_field(ba_buf_str(&b), "X-Long", 998);
	free(back);
	/* a single word after "Subject: " (9 octets): up to 989 octets on the
	 * first line; 990..997 go on the next line after a fold (" " + word <=
	 * 998); 998 and 999 fit nowhere */
	static const size_t lens[] = { 988, 989, 990, 996, 997, 998, 999 };
	for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
		size_t len = lens[i];
		memset(word, 'w', len);
		word[len] = '\0';
		ba_buf_reset(&b);
		int r = ba_header_write_field(&b, "Subject", word, "\r\n", &err);
		if (len >= 998) {
			assert_int_equal(r, -1);
			assert_string_equal(err.text,
			                    "header field 'Subject' has a word too long for a 998-octet line");
			assert_int_equal(b.len, 0);
			continue;
		}
		if (r < 0)
			fail_msg("word of %zu octets: %s", len, err.text);
		if (len <= 989) {
			assert_int_equal(b.len, 9 + len + 2);
			assert_memory_equal(b.data, "Subject: ww", 11);
		} else {
			assert_int_equal(b.len, 8 + 2 + 1 + len + 2);
			assert_memory_equal(b.data, "Subject:\r\n ww", 13);
		}
		back = check_field(ba_buf_str(&b), "Subject", 998);
		assert_string_equal(back, word);
		free(back);
	}
	/* the same after other words, and with the value's own leading space */
	memset(word, 'w', sizeof word);
	memcpy(word, "a b ", 4);
	word[4 + 997] = '\0';
	ba_buf_reset(&b);
	assert_int_equal(ba_header_write_field(&b, "Subject", word, "\r\n", &err), 0);
	assert_memory_equal(b.data, "Subject: a b\r\n ww", 17);
	back = check_field(ba_buf_str(&b), "Subject", 998);
	assert_string_equal(back, word);
	free(back);
	/* " " + 997 octets: the value's own space carries the fold */
	ba_buf_reset(&b);
	assert_int_equal(ba_header_write_field(&b, "Subject", word + 3, "\r\n", &err), 0);
	assert_memory_equal(b.data, "Subject:\r\n ww", 13);
	back = check_field(ba_buf_str(&b), "Subject", 998);
	assert_string_equal(back, word + 4);
	free(back);
	word[4 + 997] = 'w';
	word[4 + 998] = '\0';
	ba_buf_reset(&b);
	assert_int_equal(ba_header_write_field(&b, "Subject", word + 3, "\r\n", &err), -1);
	assert_int_equal(b.len, 0);
	/* a leading space is kept as the separator; LF line ends on request */
	ba_buf_reset(&b);
	assert_int_equal(ba_header_write_field(&b, "X-A", " v", "\n", &err), 0);
	assert_string_equal(ba_buf_str(&b), "X-A: v\n");
	ba_buf_release(&b);
}

static void test_header__write_then_parse_many(void **state)
{
	(void)state;
	/* random words: every written field parses back to the same unfolded text */
	uint32_t x = 0x9e3779b9;
	for (int iter = 0; iter < 300; iter++) {
		char text[2000];
		size_t len = 0, words = 1 + iter % 60;
		for (size_t w = 0; w < words; w++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			size_t wl = 1 + x % (iter % 7 == 0 ? 200 : 12);
			if (len + wl + 1 >= sizeof text)
				break;
			if (len)
				text[len++] = ' ';
			for (size_t k = 0; k < wl; k++)
				text[len++] = (char)('a' + (x >> (k % 24)) % 26);
		}
		text[len] = '\0';
		struct ba_buf b = BA_BUF_INIT;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(ba_header_write_field(&b, "Subject", text, "\r\n", &err), 0);
		char *back = check_field(ba_buf_str(&b), "Subject", 998);
		assert_string_equal(back, text);
		free(back);
		ba_buf_release(&b);
	}
}

/* The reader: line kinds, pieces of long lines, the bare-CR rule across pieces. */
static void test_header__reader_kinds(void **state)
{
	(void)state;
	struct ba_header_reader r;
	struct ba_err err = BA_ERR_INIT;
	ba_header_reader_init(&r, BA_HEADER_KEEP_MALFORMED | BA_HEADER_SKIP_MBOX_FROM);
	assert_int_equal(ba_header_reader_piece(&r, "From x\n", 7, &err), BA_HEADER_LINE_MBOX_FROM);
	assert_int_equal(ba_header_reader_piece(&r, " x\n", 3, &err), BA_HEADER_LINE_MALFORMED);
	assert_int_equal(ba_header_reader_piece(&r, "To\t : a\r\n", 9, &err), BA_HEADER_LINE_FIELD);
	assert_int_equal(r.name_len, 2);
	assert_int_equal(ba_header_reader_piece(&r, "\tb\n", 3, &err), BA_HEADER_LINE_CONT);
	assert_int_equal(ba_header_reader_piece(&r, "no colon\n", 9, &err), BA_HEADER_LINE_MALFORMED);
	/* white space after a malformed line continues nothing */
	assert_int_equal(ba_header_reader_piece(&r, " c\n", 3, &err), BA_HEADER_LINE_MALFORMED);
	assert_int_equal(ba_header_reader_piece(&r, "Bad Name: x\n", 12, &err),
	                 BA_HEADER_LINE_MALFORMED);
	/* a line in two pieces, the CR of its CRLF ending the first */
	assert_int_equal(ba_header_reader_piece(&r, "Bcc: s\r", 7, &err), BA_HEADER_LINE_FIELD);
	assert_true(r.line_start);
	assert_int_equal(ba_header_reader_piece(&r, "\n", 1, &err), BA_HEADER_LINE_FIELD);
	assert_false(r.line_start);
	assert_int_equal(r.line_no, 8);
	assert_int_equal(ba_header_reader_piece(&r, "\r\n", 2, &err), BA_HEADER_LINE_END);
	/* a CR ending a piece is bare when no LF follows */
	ba_header_reader_init(&r, BA_HEADER_KEEP_MALFORMED);
	assert_int_equal(ba_header_reader_piece(&r, "Subject: a\r", 11, &err), BA_HEADER_LINE_FIELD);
	assert_int_equal(ba_header_reader_piece(&r, "Bcc: x\n", 7, &err), -1);
	assert_string_equal(err.text, "line 1: bare CR (not followed by LF) in header");
	ba_header_reader_init(&r, BA_HEADER_KEEP_MALFORMED);
	assert_int_equal(ba_header_reader_piece(&r, "A: b\n\r\r\n", 5, &err), BA_HEADER_LINE_FIELD);
	assert_int_equal(ba_header_reader_piece(&r, "\r\r\n", 3, &err), -1);
	assert_string_equal(err.text, "line 2: bare CR (not followed by LF) in header");
	/* strict: malformed lines are errors */
	ba_header_reader_init(&r, 0);
	assert_int_equal(ba_header_reader_piece(&r, "From x\n", 7, &err), -1);
	assert_string_equal(err.text, "line 1: mbox 'From ' line");
	ba_header_reader_init(&r, 0);
	assert_int_equal(ba_header_reader_piece(&r, "A: b\n", 5, &err), BA_HEADER_LINE_FIELD);
	assert_int_equal(ba_header_reader_piece(&r, "X-Oops\n", 7, &err), -1);
	assert_string_equal(err.text, "line 2: missing ':' in header line 'X-Oops'");
}

/* The parser with BA_HEADER_KEEP_MALFORMED skips malformed lines; the fields after them count. */
static void test_header__parser_keep_malformed(void **state)
{
	(void)state;
	static const char msg[] = "To: b@example.net\nX-Oops no colon\n folded?\n"
	                          "Bcc: secret@example.org\n\nbody";
	struct ba_header_parser p;
	struct ba_err err = BA_ERR_INIT;
	size_t body;
	for (size_t step = 0; step < 4; step++) {
		ba_header_parser_init(&p, 0, 0, BA_HEADER_KEEP_MALFORMED);
		assert_int_equal(parse_steps(&p, msg, sizeof(msg) - 1, step, &body, &err), 1);
		assert_int_equal(body, sizeof(msg) - 1 - 4);
		char *d = dump(&p.fields);
		assert_string_equal(d, "To=[ b@example.net]\nBcc=[ secret@example.org]\n");
		free(d);
		ba_header_parser_release(&p);
	}
	parse_fails(msg, sizeof(msg) - 1, 0, 0, 0, "line 2: missing ':' in header line 'X-Oops no colon'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header__parse_sample),
		cmocka_unit_test(test_header__one_byte_at_a_time),
		cmocka_unit_test(test_header__no_body_and_eof),
		cmocka_unit_test(test_header__mbox_from_line),
		cmocka_unit_test(test_header__errors_name_the_line),
		cmocka_unit_test(test_header__bounds),
		cmocka_unit_test(test_header__bare_cr_is_an_error),
		cmocka_unit_test(test_header__limit_errors_name_the_line),
		cmocka_unit_test(test_header__random_splits),
		cmocka_unit_test(test_header__injection_rejected),
		cmocka_unit_test(test_header__write_field_folds),
		cmocka_unit_test(test_header__write_then_parse_many),
		cmocka_unit_test(test_header__reader_kinds),
		cmocka_unit_test(test_header__parser_keep_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
