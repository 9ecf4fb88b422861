/* tests/unit/encode.c - UTF-8, base64, quoted-printable, RFC 2047, RFC 2231 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/encode.h"

/* ---- helpers ------------------------------------------------------------ */

static uint32_t rng_state;
static uint32_t rnd(void)
{
	/* xorshift32: fixed seed per test, reproducible */
	uint32_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

/* Asserts every line of s[0..n) ends with eol, has no bare CR/LF and is at most max long. */
static void check_lines(const char *s, size_t n, const char *eol, size_t max)
{
	size_t el = strlen(eol), start = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' || s[i] == '\r') {
			assert_true(n - i >= el && memcmp(s + i, eol, el) == 0);
			if (i - start > max)
				fail_msg("line of %zu characters (max %zu): %.*s", i - start, max,
				         (int)(i - start), s + start);
			i += el - 1;
			start = i + 1;
		}
	}
	if (n - start > max)
		fail_msg("last line of %zu characters (max %zu)", n - start, max);
}

/* Writes p[0..n) to w in random chunks (1 byte each when bytewise). */
static void write_split(ba_writer *w, const unsigned char *p, size_t n, int mode)
{
	struct ba_err err = BA_ERR_INIT;
	size_t i = 0;
	while (i < n) {
		size_t k = mode == 0 ? n - i : mode == 1 ? 1 : 1 + rnd() % 100;
		if (k > n - i)
			k = n - i;
		assert_int_equal(ba_write(w, p + i, k, &err), 0);
		i += k;
	}
}

/* ---- UTF-8 -------------------------------------------------------------- */

static void test_encode__utf8_valid(void **state)
{
	(void)state;
	static const struct { const char *s; int ok; size_t bad; } v[] = {
		{ "", 1, 0 },
		{ "plain ascii", 1, 0 },
		{ "caf\xC3\xA9", 1, 0 },
		{ "\xE2\x82\xAC", 1, 0 },             /* U+20AC */
		{ "\xF0\x9F\x98\x80", 1, 0 },         /* U+1F600 */
		{ "\xF4\x8F\xBF\xBF", 1, 0 },         /* U+10FFFF */
		{ "\xED\x9F\xBF", 1, 0 },             /* U+D7FF */
		{ "\xEF\xBF\xBD", 1, 0 },
		{ "a\xC0\xAF", 0, 1 },                /* overlong "/" */
		{ "\xC1\xBF", 0, 0 },                 /* overlong */
		{ "\xE0\x80\xAF", 0, 0 },             /* overlong 3-byte */
		{ "\xF0\x80\x80\xAF", 0, 0 },         /* overlong 4-byte */
		{ "ab\xED\xA0\x80", 0, 2 },           /* surrogate U+D800 */
		{ "\xF4\x90\x80\x80", 0, 0 },         /* > U+10FFFF */
		{ "\xF5\x80\x80\x80", 0, 0 },
		{ "\x80", 0, 0 },                     /* lone continuation */
		{ "abc\xC3", 0, 3 },                  /* truncated */
		{ "\xE2\x82", 0, 0 },
		{ "\xE2\x28\xA1", 0, 0 },             /* bad continuation */
		{ "\xFF", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t bad = 999;
		int ok = ba_utf8_valid(v[i].s, strlen(v[i].s), &bad);
		if (ok != v[i].ok)
			fail_msg("vector %zu: got %d", i, ok);
		if (!ok)
			assert_int_equal(bad, v[i].bad);
	}
	/* embedded NUL is valid (U+0000) */
	assert_int_equal(ba_utf8_valid("a\0b", 3, NULL), 1);
}

/* ---- base64 ------------------------------------------------------------- */

static const struct { const char *in, *out; } rfc4648[] = {
	/* RFC 4648 §10 test vectors */
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

static void test_encode__base64_rfc4648_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		struct ba_buf b = BA_BUF_INIT;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(ba_base64_encode(&b, rfc4648[i].in, strlen(rfc4648[i].in)), 0);
		assert_string_equal(ba_buf_str(&b), rfc4648[i].out);
		ba_buf_reset(&b);
		assert_int_equal(ba_base64_decode(&b, rfc4648[i].out, strlen(rfc4648[i].out), &err), 0);
		assert_int_equal(b.len, strlen(rfc4648[i].in));
		assert_memory_equal(ba_buf_str(&b), rfc4648[i].in, b.len);
		ba_buf_release(&b);
	}
}

static void test_encode__base64_decode_lenient_and_errors(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	const char *ok = "Zm9v\r\nYmFy\nZm9v YmE=\r\n";
	assert_int_equal(ba_base64_decode(&b, ok, strlen(ok), &err), 0);
	assert_string_equal(ba_buf_str(&b), "foobarfooba");
	ba_buf_reset(&b);
	/* unpadded input is accepted */
	assert_int_equal(ba_base64_decode(&b, "Zm9vYg", 6, &err), 0);
	assert_string_equal(ba_buf_str(&b), "foob");
	static const char *bad[] = { "Zm9v!", "Z", "Zm9vY", "Z===", "=Zm9", "Zg==Zg==", "Zm8==",
	                             "Zg=" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ba_buf_reset(&b);
		ba_err_clear(&err);
		ba_buf_addstr(&b, "keep");
		if (ba_base64_decode(&b, bad[i], strlen(bad[i]), &err) != -1)
			fail_msg("'%s' decoded", bad[i]);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(ba_buf_str(&b), "keep"); /* unchanged, still terminated */
	}
	ba_buf_release(&b);
}

/* Encodes p with the streaming writer, written in the given split mode. */
static void b64_stream(struct ba_buf *out, const unsigned char *p, size_t n, const char *eol,
                       size_t line_len, int mode)
{
	struct ba_buf_writer bw;
	static struct ba_b64_writer w; /* 16 KB: not on the stack */
	struct ba_err err = BA_ERR_INIT;
	ba_buf_writer_init(&bw, out);
	ba_b64_writer_init(&w, &bw.base, eol, line_len);
	write_split(&w.base, p, n, mode);
	assert_int_equal(ba_b64_writer_finish(&w, &err), 0);
}

static void test_encode__b64_writer_lines(void **state)
{
	(void)state;
	unsigned char in[57 * 2 + 1];
	struct ba_buf one = BA_BUF_INIT, s = BA_BUF_INIT, want = BA_BUF_INIT;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7);
	ba_base64_encode(&one, in, sizeof(in));
	/* two full lines of 76 (57 bytes each) and a last line of 4 */
	ba_buf_add(&want, one.data, 76);
	ba_buf_addstr(&want, "\r\n");
	ba_buf_add(&want, one.data + 76, 76);
	ba_buf_addstr(&want, "\r\n");
	ba_buf_add(&want, one.data + 152, 4);
	ba_buf_addstr(&want, "\r\n");
	for (int mode = 0; mode < 3; mode++) {
		ba_buf_reset(&s);
		b64_stream(&s, in, sizeof(in), "\r\n", 76, mode);
		assert_string_equal(ba_buf_str(&s), ba_buf_str(&want));
	}
	/* exactly 57 bytes: one line, no empty line after it */
	ba_buf_reset(&s);
	b64_stream(&s, in, 57, "\n", 76, 0);
	assert_int_equal(s.len, 77);
	assert_int_equal(s.data[76], '\n');
	/* empty input: no output at all */
	ba_buf_reset(&s);
	b64_stream(&s, in, 0, "\n", 76, 0);
	assert_int_equal(s.len, 0);
	/* no line breaks, and an odd line length */
	ba_buf_reset(&s);
	b64_stream(&s, (const unsigned char *)"foobar", 6, "\n", 0, 1);
	assert_string_equal(ba_buf_str(&s), "Zm9vYmFy\n");
	ba_buf_reset(&s);
	b64_stream(&s, (const unsigned char *)"foobar", 6, "\n", 3, 1);
	assert_string_equal(ba_buf_str(&s), "Zm9\nvYm\nFy\n");
	ba_buf_release(&one);
	ba_buf_release(&s);
	ba_buf_release(&want);
}

static void test_encode__b64_writer_random_roundtrip(void **state)
{
	(void)state;
	rng_state = 0x2545F491;
	size_t max = 70000;
	unsigned char *in = malloc(max);
	assert_non_null(in);
	for (int iter = 0; iter < 120; iter++) {
		size_t n = iter < 60 ? (size_t)iter : rnd() % max;
		const char *eol = iter % 2 ? "\r\n" : "\n";
		size_t line_len = iter % 7 == 3 ? 64 : iter % 11 == 5 ? 10 : 76;
		for (size_t i = 0; i < n; i++)
			in[i] = (unsigned char)rnd();
		struct ba_buf s = BA_BUF_INIT, d = BA_BUF_INIT;
		struct ba_err err = BA_ERR_INIT;
		b64_stream(&s, in, n, eol, line_len, 2);
		check_lines(s.data ? s.data : "", s.len, eol, line_len);
		/* all lines but the last are full */
		size_t full = 4 * ((n + 2) / 3), nl = (full + line_len - 1) / line_len;
		assert_int_equal(s.len, full + nl * strlen(eol));
		assert_int_equal(ba_base64_decode(&d, ba_buf_str(&s), s.len, &err), 0);
		assert_int_equal(d.len, n);
		if (n)
			assert_memory_equal(d.data, in, n);
		ba_buf_release(&s);
		ba_buf_release(&d);
	}
	free(in);
}

/* ---- quoted-printable --------------------------------------------------- */

static void qp_stream(struct ba_buf *out, const void *p, size_t n, const char *eol,
                      unsigned flags, int mode)
{
	struct ba_buf_writer bw;
	static struct ba_qp_writer w;
	struct ba_err err = BA_ERR_INIT;
	ba_buf_writer_init(&bw, out);
	ba_qp_writer_init(&w, &bw.base, eol, flags);
	write_split(&w.base, p, n, mode);
	assert_int_equal(ba_qp_writer_finish(&w, &err), 0);
}

static char *rep(char c, size_t n, const char *tail)
{
	static char bufs[2][512];
	static int which;
	char *s = bufs[which ^= 1];
	memset(s, c, n);
	memcpy(s + n, tail, strlen(tail) + 1);
	return s;
}

static void expect_qp(const char *in, const char *eol, unsigned flags, const char *want)
{
	struct ba_buf s = BA_BUF_INIT;
	char *inc = strdup(in), *wantc = strdup(want);
	for (int mode = 0; mode < 2; mode++) {
		ba_buf_reset(&s);
		qp_stream(&s, inc, strlen(inc), eol, flags, mode);
		if (strcmp(ba_buf_str(&s), wantc) != 0)
			fail_msg("qp of '%s' (mode %d):\n got '%s'\nwant '%s'", inc, mode, ba_buf_str(&s),
			         wantc);
	}
	free(inc);
	free(wantc);
	ba_buf_release(&s);
}

static void test_encode__qp_rfc2045_rules(void **state)
{
	(void)state;
	const unsigned T = BA_QP_TEXT;
	/* rule 2: literal printable; rule 1: "=" and 8-bit encoded */
	expect_qp("Hello, world!\n", "\n", T, "Hello, world!\n");
	expect_qp("x=y\n", "\n", T, "x=3Dy\n");
	expect_qp("caf\xC3\xA9\n", "\n", T, "caf=C3=A9\n");
	expect_qp("a\x01" "b\x7F\n", "\n", T, "a=01b=7F\n");
	/* rule 3: trailing white space before a break is encoded, elsewhere not */
	expect_qp("a b \n", "\n", T, "a b=20\n");
	expect_qp("a\t\n", "\n", T, "a=09\n");
	expect_qp("a  \n  b\n", "\n", T, "a =20\n  b\n");
	expect_qp(" \n", "\n", T, "=20\n");
	/* end of input without a break: soft break, trailing space stays before "=" */
	expect_qp("abc", "\n", T, "abc=\n");
	expect_qp("abc ", "\r\n", T, "abc =\r\n");
	expect_qp("", "\n", T, "");
	/* rule 4: CRLF and LF are hard breaks written as eol; a lone CR is data */
	expect_qp("a\r\nb\r\n", "\r\n", T, "a\r\nb\r\n");
	expect_qp("a\r\nb\nc", "\r\n", T, "a\r\nb\r\nc=\r\n");
	expect_qp("a\r\nb\r\n", "\n", T, "a\nb\n");
	expect_qp("a\rb\n", "\n", T, "a=0Db\n");
	expect_qp("a\r", "\n", T, "a=0D=\n");
	expect_qp("\n\n", "\n", T, "\n\n");
	/* binary: CR and LF are data */
	expect_qp("a\r\n", "\r\n", 0, "a=0D=0A=\r\n");
	expect_qp("a \n", "\n", 0, "a =0A=\n");
	/* "From " and "." at a line start */
	expect_qp("From me\n", "\n", T, "=46rom me\n");
	expect_qp("a\nFrom x\nFrom\nFrodo\n", "\n", T, "a\n=46rom x\nFrom\nFrodo\n");
	expect_qp("x From y\n", "\n", T, "x From y\n");
	expect_qp(".\n", "\n", T, "=2E\n");
	expect_qp("..\r\n.a", "\r\n", T, "=2E.\r\n=2Ea=\r\n");
	expect_qp("a.\n", "\n", T, "a.\n");
	/* rule 5: lines of exactly 76 pass, 77 get a soft break after 75 */
	expect_qp(rep('x', 76, "\n"), "\n", T, rep('x', 76, "\n"));
	char want[600];
	snprintf(want, sizeof(want), "%s", rep('x', 75, "=\nxx\n"));
	expect_qp(rep('x', 77, "\n"), "\n", T, want);
	snprintf(want, sizeof(want), "%s", rep('x', 75, "=\nx=\n"));
	expect_qp(rep('x', 76, ""), "\n", T, want);
	expect_qp(rep('x', 73, "=\n"), "\n", T, rep('x', 73, "=3D\n"));
	snprintf(want, sizeof(want), "%s", rep('x', 74, "=\n=3D\n"));
	expect_qp(rep('x', 74, "=\n"), "\n", T, want);
	snprintf(want, sizeof(want), "%s", rep('x', 75, "=\n=20\n"));
	expect_qp(rep('x', 75, " \n"), "\n", T, want);
	snprintf(want, sizeof(want), "%s", rep('x', 74, " =\ny=\n"));
	expect_qp(rep('x', 74, " y"), "\n", T, want);
	/* a soft break puts "From " and "." at a line start: protected too */
	snprintf(want, sizeof(want), "%s", rep('x', 75, "=\n=46rom a\n"));
	expect_qp(rep('x', 75, "From a\n"), "\n", T, want);
	snprintf(want, sizeof(want), "%s", rep('x', 75, "=\n=2Ea\n"));
	expect_qp(rep('x', 75, ".a\n"), "\n", T, want);
	expect_qp(rep('x', 75, ".\n"), "\n", T, rep('x', 75, ".\n"));
	/* an escape is never split by a soft break */
	snprintf(want, sizeof(want), "%s", rep('x', 74, "=\n=C3=A9\n"));
	expect_qp(rep('x', 74, "\xC3\xA9\n"), "\n", T, want);
}

static void test_encode__qp_decode(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	const char *in = "a=3Db=\r\nc =\nd=c3=A9  \r\ne\t=20\n";
	assert_int_equal(ba_qp_decode(&b, in, strlen(in), &err), 0);
	assert_string_equal(ba_buf_str(&b), "a=bc d\xC3\xA9\r\ne\t \n");
	static const char *bad[] = { "a=G1", "a=4", "=", "x=\rA" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ba_buf_reset(&b);
		if (i == 2) { /* a lone "=" at the end is a soft break */
			assert_int_equal(ba_qp_decode(&b, bad[i], strlen(bad[i]), &err), 0);
			continue;
		}
		if (ba_qp_decode(&b, bad[i], strlen(bad[i]), &err) != -1)
			fail_msg("'%s' decoded", bad[i]);
		assert_int_equal(err.code, EX_DATAERR);
	}
	ba_buf_release(&b);
}

/* Asserts QP output has no white space before a line end. */
static void check_no_trailing_ws(const char *s, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if ((s[i] == '\n' || s[i] == '\r') && (s[i - 1] == ' ' || s[i - 1] == '\t'))
			fail_msg("trailing white space at offset %zu", i);
	if (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		fail_msg("trailing white space at the end");
}

static void test_encode__qp_chunk_independent_roundtrip(void **state)
{
	(void)state;
	static const char *pieces[] = { "a", "Z", " ", "\t", "\r", "\n", "\r\n", "=", "From ",
	                                "F", "From", ".", "\xC3\xA9", "\xFF", "\x00", "xyzzy",
	                                "Fro", "  ", "\n.\n", "\nFrom " };
	rng_state = 12345;
	for (int iter = 0; iter < 400; iter++) {
		struct ba_buf in = BA_BUF_INIT, want = BA_BUF_INIT, s0 = BA_BUF_INIT, s = BA_BUF_INIT,
		              d = BA_BUF_INIT;
		struct ba_err err = BA_ERR_INIT;
		size_t np = rnd() % (iter < 200 ? 40 : 400);
		for (size_t k = 0; k < np; k++) {
			size_t pi = rnd() % (sizeof(pieces) / sizeof(pieces[0]));
			/* long runs of plain text exercise the 76-column rule */
			if (rnd() % 8 == 0)
				for (size_t r = rnd() % 90; r; r--)
					ba_buf_addch(&in, 'a' + (int)(rnd() % 26));
			ba_buf_add(&in, pieces[pi], pi == 14 ? 1 : strlen(pieces[pi]));
		}
		unsigned flags = iter % 3 ? BA_QP_TEXT : 0;
		const char *eol = iter % 2 ? "\r\n" : "\n";
		qp_stream(&s0, in.data, in.len, eol, flags, 0);
		for (int mode = 1; mode < 3; mode++) {
			ba_buf_reset(&s);
			qp_stream(&s, in.data, in.len, eol, flags, mode);
			assert_int_equal(s.len, s0.len);
			assert_memory_equal(ba_buf_str(&s), ba_buf_str(&s0), s.len);
		}
		check_lines(ba_buf_str(&s0), s0.len, eol, 76);
		check_no_trailing_ws(ba_buf_str(&s0), s0.len);
		for (size_t i = 0; i < s0.len; i++) /* 7-bit, no controls but the eol */
			assert_true(s0.data[i] == '\r' || s0.data[i] == '\n' || s0.data[i] == '\t' ||
			            (s0.data[i] >= 32 && s0.data[i] < 127));
		/* decoding gives the input, with text line breaks normalised to eol */
		for (size_t i = 0; i < in.len; i++) {
			if ((flags & BA_QP_TEXT) && in.data[i] == '\r' && i + 1 < in.len &&
			    in.data[i + 1] == '\n')
				continue;
			if ((flags & BA_QP_TEXT) && in.data[i] == '\n')
				ba_buf_addstr(&want, eol);
			else
				ba_buf_addch(&want, in.data[i]);
		}
		assert_int_equal(ba_qp_decode(&d, ba_buf_str(&s0), s0.len, &err), 0);
		assert_int_equal(d.len, want.len);
		assert_memory_equal(ba_buf_str(&d), ba_buf_str(&want), d.len);
		ba_buf_release(&in);
		ba_buf_release(&want);
		ba_buf_release(&s0);
		ba_buf_release(&s);
		ba_buf_release(&d);
	}
}

static void test_encode__writers_flush_and_errors(void **state)
{
	(void)state;
	static struct ba_b64_writer bw;
	static struct ba_qp_writer qw;
	struct ba_buf b = BA_BUF_INIT;
	struct ba_buf_writer out;
	struct ba_err err = BA_ERR_INIT;
	ba_buf_writer_init(&out, &b);
	/* flush pushes the whole groups encoded so far, keeps the partial one */
	ba_b64_writer_init(&bw, &out.base, "\n", 76);
	assert_int_equal(ba_write(&bw.base, "foobarfo", 8, &err), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(ba_flush(&bw.base, &err), 0);
	assert_string_equal(ba_buf_str(&b), "Zm9vYmFy");
	assert_int_equal(ba_b64_writer_finish(&bw, &err), 0);
	assert_string_equal(ba_buf_str(&b), "Zm9vYmFyZm8=\n");
	/* QP flush: the decided bytes; a trailing space waits for what follows */
	ba_buf_reset(&b);
	ba_qp_writer_init(&qw, &out.base, "\n", BA_QP_TEXT);
	assert_int_equal(ba_write(&qw.base, "ab ", 3, &err), 0);
	assert_int_equal(ba_flush(&qw.base, &err), 0);
	assert_string_equal(ba_buf_str(&b), "ab");
	assert_int_equal(ba_write(&qw.base, "\n", 1, &err), 0);
	assert_int_equal(ba_qp_writer_finish(&qw, &err), 0);
	assert_string_equal(ba_buf_str(&b), "ab=20\n");
	/* a failing downstream writer fails the encoder */
	struct ba_buf small;
	ba_buf_init(&small, 100);
	ba_buf_writer_init(&out, &small);
	unsigned char big[20000];
	memset(big, 'x', sizeof(big));
	ba_b64_writer_init(&bw, &out.base, "\r\n", 76);
	int rc = ba_write(&bw.base, big, sizeof(big), &err);
	if (rc == 0)
		rc = ba_b64_writer_finish(&bw, &err);
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_buf_release(&small);
	ba_buf_init(&small, 100);
	ba_err_clear(&err);
	ba_qp_writer_init(&qw, &out.base, "\r\n", 0);
	rc = ba_write(&qw.base, big, sizeof(big), &err);
	if (rc == 0)
		rc = ba_qp_writer_finish(&qw, &err);
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_buf_release(&small);
	ba_buf_release(&b);
}

/* ---- RFC 2047 ------------------------------------------------------------ */

static void expect_2047_decode(const char *in, const char *want)
{
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	if (ba_rfc2047_decode(&b, in, strlen(in), &err) != 0)
		fail_msg("decoding '%s': %s", in, err.text);
	if (strcmp(ba_buf_str(&b), want) != 0)
		fail_msg("decoding '%s': got '%s', want '%s'", in, ba_buf_str(&b), want);
	ba_buf_release(&b);
}

static void test_encode__rfc2047_decode_rfc_examples(void **state)
{
	(void)state;
	/* RFC 2047 §8 */
	expect_2047_decode("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>",
	                   "Keith Moore <moore@cs.utk.edu>");
	expect_2047_decode("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>",
	                   "Keld J\xC3\xB8rn Simonsen <keld@dkuug.dk>");
	expect_2047_decode("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
	                   "Andr\xC3\xA9 Pirard <PIRARD@vm1.ulg.ac.be>");
	expect_2047_decode("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= "
	                   "=?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
	                   "If you can read this you understand the example.");
	expect_2047_decode("Nathaniel Borenstein <nsb@thumper.bellcore.com> "
	                   "(=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=)",
	                   "Nathaniel Borenstein <nsb@thumper.bellcore.com> "
	                   "(\xD7\x9D\xD7\x95\xD7\x9C\xD7\xA9 \xD7\x9F\xD7\x91 "
	                   "\xD7\x99\xD7\x9C\xD7\x98\xD7\xA4\xD7\xA0)");
	/* the table of §8: white space between adjacent encoded-words */
	expect_2047_decode("(=?ISO-8859-1?Q?a?=)", "(a)");
	expect_2047_decode("(=?ISO-8859-1?Q?a?= b)", "(a b)");
	expect_2047_decode("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)");
	expect_2047_decode("(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)");
	expect_2047_decode("(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)");
	expect_2047_decode("(=?ISO-8859-1?Q?a_b?=)", "(a b)");
	expect_2047_decode("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)");
	/* not encoded-words: kept as they are */
	expect_2047_decode("a=?utf-8?q?x?=", "a=?utf-8?q?x?=");
	expect_2047_decode("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	expect_2047_decode("=?utf-8?q?a=Z?= b", "=?utf-8?q?a=Z?= b");
	expect_2047_decode("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?=");
	expect_2047_decode("  lead and trail  ", "  lead and trail  ");
	/* RFC 2231 §5 language, lowercase b, a sequence split across words */
	expect_2047_decode("=?UTF-8*en?b?SGk=?=", "Hi");
	expect_2047_decode("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=", "\xE2\x82\xAC");
	expect_2047_decode("=?utf-8?q?=FF?=", "\xEF\xBF\xBD");
	/* found by fuzz/fuzz_encode (UBSan: offset on a NULL buffer): a first word that decodes to nothing */
	expect_2047_decode("=?utf-8?q?" "?=", ""); /* "?" "?=" split: no trigraph */
	expect_2047_decode("x =?utf-8?q?" "?= =?utf-8?q?a?=", "x a");
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	const char *unk = "=?x-no-such-charset?q?a?=";
	assert_int_equal(ba_rfc2047_decode(&b, unk, strlen(unk), &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	unk = "=?x-no-such-charset?q?a?= =?utf-8?q?b?=";
	ba_err_clear(&err);
	assert_int_equal(ba_rfc2047_decode(&b, unk, strlen(unk), &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "x-no-such-charset"));
	ba_buf_release(&b);
}

/* Encodes, checks line lengths and encoded-word sizes, unfolds, returns the decoding. */
static char *enc2047(const char *text, size_t col0, unsigned flags, struct ba_buf *enc)
{
	struct ba_err err = BA_ERR_INIT;
	size_t col = col0;
	ba_buf_reset(enc);
	if (ba_rfc2047_encode(enc, text, strlen(text), &col, "\r\n", flags, &err) != 0)
		fail_msg("encoding '%s': %s", text, err.text);
	/* line lengths: the first line starts at col0 */
	struct ba_buf full = BA_BUF_INIT, unf = BA_BUF_INIT, dec = BA_BUF_INIT;
	for (size_t i = 0; i < col0; i++)
		ba_buf_addch(&full, 'H');
	ba_buf_add(&full, enc->data ? enc->data : "", enc->len);
	check_lines(ba_buf_str(&full), full.len, "\r\n", 78);
	const char *last = strrchr(ba_buf_str(&full), '\n');
	assert_int_equal(col, full.len - (last ? (size_t)(last + 1 - full.data) : 0));
	/* every encoded-word is at most 75 characters and holds whole UTF-8 sequences */
	for (const char *p = ba_buf_str(enc); (p = strstr(p, "=?utf-8?")) != NULL;) {
		const char *e = strstr(p + 10, "?=");
		assert_non_null(e);
		assert_true(e + 2 - p <= 75);
		struct ba_buf one = BA_BUF_INIT;
		assert_int_equal(ba_rfc2047_decode(&one, p, (size_t)(e + 2 - p), &err), 0);
		assert_true(ba_utf8_valid(one.data, one.len, NULL));
		assert_null(strstr(ba_buf_str(&one), "\xEF\xBF\xBD"));
		ba_buf_release(&one);
		p = e + 2;
	}
	/* unfold (RFC 5322 §2.2.3), drop the white space after the colon */
	for (size_t i = 0; i < enc->len; i++)
		if (enc->data[i] != '\r' && enc->data[i] != '\n')
			ba_buf_addch(&unf, enc->data[i]);
	size_t lead = 0;
	while (lead < unf.len && unf.data[lead] == ' ' && col0 > 0)
		lead++;
	assert_int_equal(ba_rfc2047_decode(&dec, ba_buf_str(&unf) + lead, unf.len - lead, &err), 0);
	ba_buf_release(&full);
	ba_buf_release(&unf);
	return ba_buf_detach(&dec, NULL);
}

static void expect_2047(const char *text, size_t col0, unsigned flags, const char *want)
{
	struct ba_buf enc = BA_BUF_INIT;
	char *dec = enc2047(text, col0, flags, &enc);
	if (strcmp(ba_buf_str(&enc), want) != 0)
		fail_msg("encoding '%s':\n got '%s'\nwant '%s'", text, ba_buf_str(&enc), want);
	if (!(flags & BA_RFC2047_PHRASE) || strchr(want, '"') == NULL)
		assert_string_equal(dec, text);
	free(dec);
	ba_buf_release(&enc);
}

static void test_encode__rfc2047_encode_words(void **state)
{
	(void)state;
	const unsigned P = BA_RFC2047_PHRASE;
	expect_2047("Hello world", 9, 0, "Hello world");
	expect_2047("", 9, 0, "");
	expect_2047("J\xC3\xB6rg", 6, P, "=?utf-8?B?SsO2cmc=?=");
	expect_2047("Gr\xC3\xBC\xC3\x9F" "e aus K\xC3\xB6ln", 9, 0,
	            "=?utf-8?B?R3LDvMOfZQ==?= aus =?utf-8?B?S8O2bG4=?=");
	/* adjacent words needing encoding share a word, spaces inside */
	expect_2047("\xC3\xA9t\xC3\xA9 \xC3\xA0 Paris", 9, 0, "=?utf-8?B?w6l0w6kgw6A=?= Paris");
	/* B when it is shorter */
	expect_2047("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 9, 0, "=?utf-8?B?5pel5pys6Kqe?=");
	/* something that looks like an encoded-word is encoded */
	expect_2047("=?utf-8?q?x?=", 9, 0, "=?utf-8?B?PT91dGYtOD9xP3g/PQ==?=");
	/* leading, trailing and inner runs of spaces survive */
	expect_2047(" a", 9, 0, "=?utf-8?Q?_a?=");
	expect_2047("a ", 9, 0, "=?utf-8?Q?a_?=");
	expect_2047("a  b", 9, 0, "a  b");
	expect_2047("   ", 9, 0, "=?utf-8?Q?___?=");
	/* controls are encoded, never raw */
	expect_2047("a\r\nb", 9, 0, "=?utf-8?Q?a=0D=0Ab?=");
	expect_2047("tab\there", 9, 0, "=?utf-8?Q?tab=09here?=");
	/* phrases: specials quoted, or encoded in the §5(3) set */
	expect_2047("John Doe", 6, P, "John Doe");
	expect_2047("Doe, John", 6, P, "\"Doe, John\"");
	expect_2047("a\"b\\c", 6, P, "\"a\\\"b\\\\c\"");
	expect_2047(" x  y", 6, P, "\" x  y\"");
	expect_2047("J\xC3\xB6rg (x)", 6, P, "=?utf-8?B?SsO2cmcgKHgp?=");
	expect_2047("Fran\xC3\xA7ois Ma\xC3\xAEtre (L.A.)", 6, P,
	            "=?utf-8?B?RnJhbsOnb2lzIE1hw650cmUgKEwuQS4p?=");
	/* Q in a phrase: only letters, digits and !*+-/ stand for themselves */
	expect_2047("Zo\xC3\xAB-Ann_O'Neil.Smith*Jones!+x/y", 6, P,
	            "=?utf-8?Q?Zo=C3=AB-Ann=5FO=27Neil=2ESmith*Jones!+x/y?=");
	expect_2047("Zo\xC3\xAB-Ann_O'Neil.Smith*Jones!+x/y", 6, 0,
	            "=?utf-8?Q?Zo=C3=AB-Ann=5FO'Neil.Smith*Jones!+x/y?=");
	expect_2047("J\xC3\xB6rg", 6, 0, "=?utf-8?B?SsO2cmc=?=");
	expect_2047("J\xC3\xB6rg Fran\xC3\xA7ois", 6, 0, "=?utf-8?B?SsO2cmcgRnJhbsOnb2lz?=");
	expect_2047("Caf\xC3\xA9teria ouverte", 9, 0, "=?utf-8?Q?Caf=C3=A9teria?= ouverte");
	expect_2047("a_b=c?d", 6, 0, "a_b=c?d");
	expect_2047("\xC3\xA9_=?", 6, P, "=?utf-8?B?w6lfPT8=?=");
}

static void test_encode__rfc2047_long_cjk_emoji_subject(void **state)
{
	(void)state;
	struct ba_buf text = BA_BUF_INIT, enc = BA_BUF_INIT;
	static const char *pieces[] = { "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 ", /* 한국어 */
	                                "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",  /* 日本語 */
	                                "\xF0\x9F\x98\x80",                      /* 😀 */
	                                "\xE3\x81\x8B\xE3\x81\xAA ", "test " };
	for (int round = 0; round < 4; round++) {
		ba_buf_reset(&text);
		for (int i = 0; text.len < 600; i++)
			ba_buf_addstr(&text, pieces[(i * (round + 1)) % (round + 2 < 5 ? round + 2 : 5)]);
		char *dec = enc2047(ba_buf_str(&text), 9, 0, &enc);
		assert_string_equal(dec, ba_buf_str(&text));
		assert_non_null(strstr(ba_buf_str(&enc), "\r\n "));
		free(dec);
	}
	ba_buf_release(&text);
	ba_buf_release(&enc);
}

static void test_encode__rfc2047_random_roundtrip(void **state)
{
	(void)state;
	static const char *pieces[] = { "a", "Zq", " ", "  ", "\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC",
	                                "\xF0\x9F\x98\x80", "=?", "?=", "_", "=", "?", "\t", "(",
	                                ")", "\"", ",", "word", "\x01", "\xD7\x90" };
	struct ba_buf text = BA_BUF_INIT, enc = BA_BUF_INIT;
	rng_state = 777;
	for (int iter = 0; iter < 3000; iter++) {
		ba_buf_reset(&text);
		size_t np = rnd() % (iter < 1500 ? 12 : 120);
		for (size_t k = 0; k < np; k++) {
			ba_buf_addstr(&text, pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))]);
			if (rnd() % 10 == 0) /* long ASCII words, some over a line */
				for (size_t r = rnd() % 90; r; r--)
					ba_buf_addch(&text, 'a' + (int)(rnd() % 26));
		}
		unsigned flags = iter % 4 == 1 ? BA_RFC2047_PHRASE : 0;
		size_t col = rnd() % 30;
		char *dec = enc2047(ba_buf_str(&text), col, flags, &enc);
		/* a phrase returned as a quoted-string is not decoded by ba_rfc2047_decode */
		if (!(flags && enc.len && enc.data[0] == '"') && strcmp(dec, ba_buf_str(&text)) != 0)
			fail_msg("round trip of '%s' at col %zu:\n enc '%s'\n dec '%s'", ba_buf_str(&text),
			         col, ba_buf_str(&enc), dec);
		free(dec);
	}
	ba_buf_release(&text);
	ba_buf_release(&enc);
}

static void test_encode__rfc2047_invalid_utf8(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	size_t col = 9;
	assert_int_equal(ba_rfc2047_encode(&b, "a\xC3(", 3, &col, "\n", 0, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_buf_release(&b);
}

/* ---- RFC 2231 ------------------------------------------------------------ */

/* Minimal RFC 2231 decoder for the tests: joins name, name*, name*N, name*N* parameters. */
static char *param_value(const char *hdr, const char *name)
{
	struct ba_buf v = BA_BUF_INIT;
	size_t nl = strlen(name);
	int found = 0;
	for (unsigned k = 0;; k++) {
		char key[64];
		const char *p = NULL, *q;
		int ext = 0;
		static const char *fmts[] = { "%s*%u*=", "%s*%u=", "%s*=", "%s=" };
		for (int f = 0; f < 4 && !p; f++) {
			if (f >= 2 && k > 0)
				break;
			snprintf(key, sizeof(key), fmts[f], name, k);
			for (q = hdr; (q = strstr(q, key)) != NULL; q++)
				if (q > hdr && (q[-1] == ' ')) {
					p = q + strlen(key);
					ext = f == 0 || f == 2;
					break;
				}
			if (p && f >= 2)
				k = 1000;
		}
		(void)nl;
		if (!p)
			break;
		found = 1;
		if (ext) {
			if (k == 0 || k == 1000) {
				assert_memory_equal(p, "utf-8''", 7);
				p += 7;
			}
			for (; *p && *p != ';' && *p != '\r' && *p != '\n'; p++) {
				if (*p == '%') {
					char h[3] = { p[1], p[2], 0 };
					ba_buf_addch(&v, (int)strtol(h, NULL, 16));
					p += 2;
				} else {
					ba_buf_addch(&v, *p);
				}
			}
		} else if (*p == '"') {
			for (p++; *p != '"'; p++) {
				if (*p == '\\')
					p++;
				ba_buf_addch(&v, *p);
			}
		} else {
			for (; *p && *p != ';' && *p != '\r' && *p != '\n'; p++)
				ba_buf_addch(&v, *p);
		}
		if (k >= 1000)
			break;
	}
	if (!found) {
		ba_buf_release(&v);
		return NULL;
	}
	return ba_buf_detach(&v, NULL);
}

static char *enc2231(const char *name, const char *value, size_t col0, struct ba_buf *out)
{
	struct ba_err err = BA_ERR_INIT;
	size_t col = col0;
	struct ba_buf full = BA_BUF_INIT;
	ba_buf_reset(out);
	if (ba_rfc2231_param(out, name, value, &col, "\r\n", &err) != 0)
		fail_msg("param '%s': %s", value, err.text);
	for (size_t i = 0; i < col0; i++)
		ba_buf_addch(&full, 'H');
	ba_buf_add(&full, out->data, out->len);
	ba_buf_addch(&full, ';'); /* room for a following parameter */
	check_lines(ba_buf_str(&full), full.len, "\r\n", 78);
	char *v = param_value(ba_buf_str(&full), name);
	assert_non_null(v);
	assert_string_equal(v, value);
	ba_buf_release(&full);
	return v;
}

static void expect_2231(const char *name, const char *value, size_t col0, const char *want)
{
	struct ba_buf out = BA_BUF_INIT;
	free(enc2231(name, value, col0, &out));
	if (strcmp(ba_buf_str(&out), want) != 0)
		fail_msg("param '%s':\n got '%s'\nwant '%s'", value, ba_buf_str(&out), want);
	ba_buf_release(&out);
}

static void test_encode__rfc2231_params(void **state)
{
	(void)state;
	expect_2231("filename", "report.pdf", 30, "; filename=report.pdf");
	expect_2231("filename", "my report.pdf", 30, "; filename=\"my report.pdf\"");
	expect_2231("filename", "a\"b\\c", 30, "; filename=\"a\\\"b\\\\c\"");
	expect_2231("name", "", 30, "; name=\"\"");
	/* RFC 2231 §4 style: charset, empty language, %XX; "*" and "'" are encoded */
	expect_2231("filename", "\xE2\x82\xAC rates.pdf", 30,
	            "; filename*=utf-8''%E2%82%AC%20rates.pdf");
	expect_2231("title", "This is ***fun*** \xC3\xA9", 10,
	            "; title*=utf-8''This%20is%20%2A%2A%2Afun%2A%2A%2A%20%C3%A9");
	/* folds before the parameter when the line would be too long */
	expect_2231("filename", "report.pdf", 70, ";\r\n filename=report.pdf");
	/* RFC 2231 §3 continuations for long values */
	struct ba_buf v = BA_BUF_INIT, out = BA_BUF_INIT;
	for (int i = 0; i < 30; i++)
		ba_buf_addstr(&v, "long name ");
	free(enc2231("filename", ba_buf_str(&v), 30, &out));
	assert_non_null(strstr(ba_buf_str(&out), "filename*0=\"long name"));
	assert_non_null(strstr(ba_buf_str(&out), ";\r\n filename*1=\""));
	ba_buf_reset(&v);
	for (int i = 0; i < 40; i++)
		ba_buf_addstr(&v, "\xED\x95\x9C\xF0\x9F\x98\x80 x");
	free(enc2231("filename", ba_buf_str(&v), 21, &out));
	assert_non_null(strstr(ba_buf_str(&out), "filename*0*=utf-8''%ED%95%9C"));
	assert_non_null(strstr(ba_buf_str(&out), ";\r\n filename*1*=%"));
	/* no continuation splits a UTF-8 sequence */
	for (const char *p = ba_buf_str(&out); (p = strstr(p, "*=")) != NULL; p += 2)
		assert_true(strncmp(p + 2, "%9", 3) != 0 && strncmp(p + 2, "%8", 2) != 0 &&
		            strncmp(p + 2, "%A", 2) != 0 && strncmp(p + 2, "%B", 2) != 0);
	ba_buf_release(&v);
	ba_buf_release(&out);
}

static void test_encode__rfc2231_random(void **state)
{
	(void)state;
	static const char *pieces[] = { "a", "B", " ", "\"", "\\", "*", "'", "%", ";", "\xC3\xA9",
	                                "\xF0\x9F\x98\x80", "\t", "report", ".pdf" };
	struct ba_buf v = BA_BUF_INIT, out = BA_BUF_INIT;
	rng_state = 99;
	for (int iter = 0; iter < 500; iter++) {
		ba_buf_reset(&v);
		for (size_t k = rnd() % 60; k; k--)
			ba_buf_addstr(&v, pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))]);
		free(enc2231(iter % 2 ? "filename" : "name", ba_buf_str(&v), rnd() % 70, &out));
	}
	struct ba_err err = BA_ERR_INIT;
	size_t col = 0;
	assert_int_equal(ba_rfc2231_param(&out, "name", "\xC3", &col, "\n", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_buf_release(&v);
	ba_buf_release(&out);
}

/* one hex digit rule for QP, pins, percent-encoding and draft escapes */
static void test_encode__hex_digit(void **state)
{
	(void)state;
	const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		assert_int_equal(ba_hex_digit(digits[i]), i);
		assert_int_equal(ba_hex_digit(toupper((unsigned char)digits[i])), i);
	}
	for (int c = -1; c < 256; c++)
		if (!isxdigit(c))
			assert_int_equal(ba_hex_digit(c), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode__utf8_valid),
		cmocka_unit_test(test_encode__base64_rfc4648_vectors),
		cmocka_unit_test(test_encode__base64_decode_lenient_and_errors),
		cmocka_unit_test(test_encode__b64_writer_lines),
		cmocka_unit_test(test_encode__b64_writer_random_roundtrip),
		cmocka_unit_test(test_encode__qp_rfc2045_rules),
		cmocka_unit_test(test_encode__qp_decode),
		cmocka_unit_test(test_encode__qp_chunk_independent_roundtrip),
		cmocka_unit_test(test_encode__writers_flush_and_errors),
		cmocka_unit_test(test_encode__rfc2047_decode_rfc_examples),
		cmocka_unit_test(test_encode__rfc2047_encode_words),
		cmocka_unit_test(test_encode__rfc2047_long_cjk_emoji_subject),
		cmocka_unit_test(test_encode__rfc2047_random_roundtrip),
		cmocka_unit_test(test_encode__rfc2047_invalid_utf8),
		cmocka_unit_test(test_encode__rfc2231_params),
		cmocka_unit_test(test_encode__rfc2231_random),
		cmocka_unit_test(test_encode__hex_digit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
