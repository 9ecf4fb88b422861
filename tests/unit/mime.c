/* tests/unit/mime.c - transfer-encoding choice, types, boundaries, the streaming writer */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/mime.h"
#include "../helper/fixed.h"

static int zero_random(void *ctx, void *p, size_t n, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	memset(p, 0, n);
	return 0;
}

/* The CTE chosen for content s as role, with eol and flags. */
static enum ba_mime_cte cte_of(const char *s, size_t n, enum ba_mime_role role, const char *eol,
                               unsigned flags)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_mime_opts o = { eol, flags | BA_MIME_NO_SNIFF, NULL, NULL, NULL };
	ba_mime_part *p;
	assert_int_equal(ba_mime_mem_new(&p, s, n, "x.txt", role, &err), 0);
	assert_int_equal(ba_mime_prepare(p, &o, &err), 0);
	enum ba_mime_cte c = ba_mime_part_cte(p);
	ba_mime_free(p);
	return c;
}
#define CTE(s, role, eol, flags) cte_of(s, sizeof(s) - 1, role, eol, flags)

static void test_mime__cte_choice(void **state)
{
	(void)state;
	char longline[1200];
	memset(longline, 'a', sizeof(longline));
	assert_int_equal(CTE("hello\nworld\n", BA_MIME_BODY, "\n", 0), BA_MIME_CTE_7BIT);
	assert_int_equal(CTE("hello\r\nworld\r\n", BA_MIME_BODY, "\n", 0), BA_MIME_CTE_7BIT);
	assert_int_equal(CTE("", BA_MIME_BODY, "\n", 0), BA_MIME_CTE_7BIT);
	/* 998 octets is allowed, 999 is not (RFC 5322 §2.1.1) */
	assert_int_equal(cte_of(longline, 998, BA_MIME_BODY, "\n", 0), BA_MIME_CTE_7BIT);
	assert_int_equal(cte_of(longline, 999, BA_MIME_BODY, "\n", 0), BA_MIME_CTE_QP);
	assert_int_equal(CTE("mostly ascii, one \xc3\xbc here and there\n", BA_MIME_BODY, "\n", 0),
	                 BA_MIME_CTE_QP);
	assert_int_equal(CTE("\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4\n", BA_MIME_BODY, "\n", 0),
	                 BA_MIME_CTE_BASE64);
	assert_int_equal(CTE("\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4\n", BA_MIME_BODY, "\n",
	                     BA_MIME_ALLOW_8BIT), BA_MIME_CTE_8BIT);
	/* a line that could be taken for a delimiter is never sent unencoded */
	assert_int_equal(CTE("text\n--=_abc\n", BA_MIME_BODY, "\n", 0), BA_MIME_CTE_QP);
	assert_int_equal(CTE("text\n--=x\n", BA_MIME_BODY, "\n", 0), BA_MIME_CTE_7BIT);
	/* bare CR in a body: QP keeps it */
	assert_int_equal(CTE("a\rb\n", BA_MIME_BODY, "\n", 0), BA_MIME_CTE_QP);
}

static void test_mime__attachment_line_endings(void **state)
{
	(void)state;
	/* attachments decode back byte-identical: text only when the endings are the output's */
	assert_int_equal(CTE("a\nb\n", BA_MIME_ATTACHMENT, "\n", 0), BA_MIME_CTE_7BIT);
	assert_int_equal(CTE("a\r\nb\r\n", BA_MIME_ATTACHMENT, "\n", 0), BA_MIME_CTE_BASE64);
	assert_int_equal(CTE("a\r\nb\r\n", BA_MIME_ATTACHMENT, "\r\n", 0), BA_MIME_CTE_7BIT);
	assert_int_equal(CTE("a\nb\r\n", BA_MIME_ATTACHMENT, "\r\n", 0), BA_MIME_CTE_BASE64);
	assert_int_equal(CTE("a\0b", BA_MIME_ATTACHMENT, "\n", 0), BA_MIME_CTE_BASE64);
	assert_int_equal(CTE("\x89PNG\r\n\x1a\n", BA_MIME_ATTACHMENT, "\n", 0), BA_MIME_CTE_BASE64);
}

static void test_mime__body_must_be_utf8(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_mime_part *p;
	assert_int_equal(ba_mime_mem_new(&p, "ok \xe9t\xe9\n", 8, "latin1.txt", BA_MIME_BODY, &err),
	                 0);
	assert_int_equal(ba_mime_prepare(p, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "'latin1.txt'"));
	assert_non_null(strstr(err.text, "byte 3"));
	ba_mime_free(p);
	/* a sequence cut off at the end is invalid too */
	assert_int_equal(ba_mime_mem_new(&p, "ok \xe2\x82", 5, "cut", BA_MIME_BODY, &err), 0);
	assert_int_equal(ba_mime_prepare(p, NULL, &err), -1);
	ba_mime_free(p);
}

static void test_mime__type_by_extension(void **state)
{
	(void)state;
	char path[] = "/tmp/ba-mime-types-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *table = "# comment\napplication/pdf\t\tpdf\ntext/x-thing  thing  THG\nfoo/bar\n";
	assert_int_equal(write(fd, table, strlen(table)), (ssize_t)strlen(table));
	close(fd);
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_mime_type_by_ext(&b, "Report.PDF", path), 1);
	assert_string_equal(ba_buf_str(&b), "application/pdf");
	ba_buf_reset(&b);
	assert_int_equal(ba_mime_type_by_ext(&b, "a.b.thg", path), 1);
	assert_string_equal(ba_buf_str(&b), "text/x-thing");
	ba_buf_reset(&b);
	assert_int_equal(ba_mime_type_by_ext(&b, "noext", path), 0);
	assert_int_equal(ba_mime_type_by_ext(&b, "dir.pdf/file", path), 0);
	assert_int_equal(ba_mime_type_by_ext(&b, "x.zzz", path), 0);
	assert_int_equal(ba_mime_type_by_ext(&b, "x.pdf", "/nonexistent/mime.types"), 0);
	/* detection without sniffing falls back to the extension, then octet-stream */
	struct ba_mime_opts o = { NULL, BA_MIME_NO_SNIFF, NULL, NULL, path };
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_mime_detect_type(&b, "x", 1, "a.pdf", &o, &err), 0);
	assert_string_equal(ba_buf_str(&b), "application/pdf");
	ba_buf_reset(&b);
	assert_int_equal(ba_mime_detect_type(&b, "x", 1, "a.qqq", &o, &err), 0);
	assert_string_equal(ba_buf_str(&b), "application/octet-stream");
	ba_buf_reset(&b);
	/* with libmagic: content wins over a misleading name */
	o.flags = 0;
	assert_int_equal(ba_mime_detect_type(&b, "%PDF-1.4\n", 9, "a.thing", &o, &err), 0);
	assert_string_equal(ba_buf_str(&b), "application/pdf");
	ba_buf_reset(&b);
	/* ... and the name refines a generic sniff */
	assert_int_equal(ba_mime_detect_type(&b, "plain words\n", 12, "a.thing", &o, &err), 0);
	assert_string_equal(ba_buf_str(&b), "text/x-thing");
	ba_buf_release(&b);
	unlink(path);
}

static void test_mime__set_type_and_filename_validate(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_mime_part *p;
	assert_int_equal(ba_mime_mem_new(&p, "x", 1, NULL, BA_MIME_ATTACHMENT, &err), 0);
	assert_int_equal(ba_mime_set_type(p, "Application/PDF", &err), 0);
	assert_string_equal(ba_mime_part_type(p), "application/pdf");
	assert_int_equal(ba_mime_set_type(p, "text", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(ba_mime_set_type(p, "text/plain; charset=x", &err), -1);
	assert_int_equal(ba_mime_set_type(p, "multipart/mixed", &err), -1);
	assert_int_equal(ba_mime_set_filename(p, "a\nb", &err), -1);
	assert_int_equal(ba_mime_set_filename(p, "../etc/passwd", &err), -1);
	assert_int_equal(ba_mime_set_filename(p, "\xff", &err), -1);
	assert_int_equal(ba_mime_set_filename(p, "r\xc3\xa9sum\xc3\xa9.pdf", &err), 0);
	ba_mime_free(p);
	ba_mime_part *m;
	assert_int_equal(ba_mime_multipart_new(&m, "mi xed", &err), -1);
}

static void test_mime__missing_file(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_mime_part *p;
	assert_int_equal(ba_mime_file_new(&p, "/nonexistent/x.pdf", BA_MIME_ATTACHMENT, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_string_equal(err.text, "cannot open '/nonexistent/x.pdf': No such file or directory");
	assert_int_equal(ba_mime_file_new(&p, "/", BA_MIME_ATTACHMENT, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
}

static void test_mime__writes_multipart(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	unsigned ctr = 0;
	struct ba_mime_opts o = { "\r\n", BA_MIME_NO_SNIFF, counter_random, &ctr, NULL };
	ba_mime_part *root, *text, *att;
	assert_int_equal(ba_mime_multipart_new(&root, "mixed", &err), 0);
	assert_int_equal(ba_mime_mem_new(&text, "Hi\nthere", 8, NULL, BA_MIME_BODY, &err), 0);
	assert_int_equal(ba_mime_mem_new(&att, "\0\1\2", 3, "dir/b.bin", BA_MIME_ATTACHMENT, &err), 0);
	assert_int_equal(ba_mime_set_type(att, "application/octet-stream", &err), 0);
	ba_mime_add(root, text, &err);
	ba_mime_add(root, att, &err);
	assert_int_equal(ba_mime_prepare(root, &o, &err), 0);
	assert_string_equal(ba_mime_part_boundary(root), "=_0123456789abcdefghijklmnop");
	struct ba_buf out = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &out);
	assert_int_equal(ba_mime_write(&w.base, root, &o, &err), 0);
	assert_string_equal(ba_buf_str(&out),
		"Content-Type: multipart/mixed; boundary=\"=_0123456789abcdefghijklmnop\"\r\n"
		"\r\n"
		"--=_0123456789abcdefghijklmnop\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: 7bit\r\n"
		"\r\n"
		"Hi\r\nthere\r\n"
		"--=_0123456789abcdefghijklmnop\r\n"
		"Content-Type: application/octet-stream\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"Content-Disposition: attachment; filename=b.bin\r\n"
		"\r\n"
		"AAEC\r\n"
		"\r\n"
		"--=_0123456789abcdefghijklmnop--\r\n");
	ba_buf_release(&out);
	ba_mime_free(root);
}

/* Found by fuzz/fuzz_mime: a body sent as base64 kept its CRLF line ends under an LF eol */
static void test_mime__base64_body_is_canonical(void **state)
{
	(void)state;
	/* Korean text (mostly non-ASCII: base64), CRLF and LF mixed, a bare CR kept, ending in CR */
	static const char in[] = "\xed\x95\x9c\r\n\xea\xb5\xad\n\xec\x96\xb4\rx\r";
	static const char want[] = "\xed\x95\x9c\n\xea\xb5\xad\n\xec\x96\xb4\rx\r";
	struct ba_err err = BA_ERR_INIT;
	struct ba_mime_opts o = { "\n", BA_MIME_NO_SNIFF, zero_random, NULL, NULL };
	struct ba_buf out = BA_BUF_INIT, dec = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_mime_part *p;
	assert_int_equal(ba_mime_mem_new(&p, in, sizeof(in) - 1, NULL, BA_MIME_BODY, &err), 0);
	assert_int_equal(ba_mime_prepare(p, &o, &err), 0);
	assert_int_equal(ba_mime_part_cte(p), BA_MIME_CTE_BASE64);
	ba_buf_writer_init(&w, &out);
	assert_int_equal(ba_mime_write(&w.base, p, &o, &err), 0);
	const char *body = strstr(ba_buf_str(&out), "\n\n");
	assert_non_null(body);
	assert_int_equal(ba_base64_decode(&dec, body + 2, strlen(body + 2), &err), 0);
	assert_int_equal(dec.len, sizeof(want) - 1);
	assert_memory_equal(dec.data, want, dec.len);
	ba_buf_release(&dec);
	ba_buf_release(&out);
	ba_mime_free(p);
}

static void test_mime__boundaries_distinct(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	/* a source that always gives the same bytes cannot make two boundaries */
	struct ba_mime_opts o = { NULL, BA_MIME_NO_SNIFF, zero_random, NULL, NULL };
	ba_mime_part *outer, *inner, *a, *b;
	assert_int_equal(ba_mime_multipart_new(&outer, "mixed", &err), 0);
	assert_int_equal(ba_mime_multipart_new(&inner, "alternative", &err), 0);
	assert_int_equal(ba_mime_mem_new(&a, "a", 1, NULL, BA_MIME_BODY, &err), 0);
	assert_int_equal(ba_mime_mem_new(&b, "b", 1, NULL, BA_MIME_BODY, &err), 0);
	ba_mime_add(inner, a, &err);
	ba_mime_add(outer, inner, &err);
	ba_mime_add(outer, b, &err);
	assert_int_equal(ba_mime_prepare(outer, &o, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	unsigned ctr = 7;
	o.random = counter_random;
	o.random_ctx = &ctr;
	assert_int_equal(ba_mime_prepare(outer, &o, &err), 0);
	assert_string_not_equal(ba_mime_part_boundary(outer), ba_mime_part_boundary(inner));
	assert_int_equal(strlen(ba_mime_part_boundary(outer)), strlen(ba_mime_part_boundary(inner)));
	ba_mime_free(outer);
}

static void test_mime__file_changed_between_passes(void **state)
{
	(void)state;
	char path[] = "/tmp/ba-mime-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "ascii\n", 6), 6);
	struct ba_err err = BA_ERR_INIT;
	ba_mime_part *p;
	assert_int_equal(ba_mime_file_new(&p, path, BA_MIME_BODY, &err), 0);
	assert_int_equal(ba_mime_prepare(p, NULL, &err), 0);
	assert_int_equal(ba_mime_part_cte(p), BA_MIME_CTE_7BIT);
	assert_int_equal(pwrite(fd, "\xc3\xbc", 2, 0), 2); /* now 8-bit: 7bit would be a lie */
	struct ba_count_writer cw;
	ba_count_writer_init(&cw);
	assert_int_equal(ba_mime_write(&cw.base, p, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "changed"));
	ba_mime_free(p);
	close(fd);
	unlink(path);
}

static void test_mime__pipe_is_spooled(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "from a pipe\n", 12), 12);
	close(fds[1]);
	struct ba_err err = BA_ERR_INIT;
	ba_mime_part *p;
	assert_int_equal(ba_mime_fd_new(&p, fds[0], "standard input", BA_MIME_BODY, &err), 0);
	assert_int_equal(ba_mime_prepare(p, NULL, &err), 0);
	struct ba_buf out = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &out);
	assert_int_equal(ba_mime_write(&w.base, p, NULL, &err), 0);
	assert_non_null(strstr(ba_buf_str(&out), "\n\nfrom a pipe\n"));
	ba_buf_release(&out);
	ba_mime_free(p);
}

static void test_mime__large_qp_and_base64_stream(void **state)
{
	(void)state;
	/* several chunks, with a CRLF split across a chunk boundary */
	size_t n = 3 * BA_MIME_CHUNK + 100;
	char *s = malloc(n);
	for (size_t i = 0; i < n; i++)
		s[i] = (i % 50 == 49) ? '\n' : 'a' + (char)(i % 26);
	s[BA_MIME_CHUNK - 1] = '\r';
	s[BA_MIME_CHUNK] = '\n';
	struct ba_err err = BA_ERR_INIT;
	ba_mime_part *p;
	assert_int_equal(ba_mime_mem_new(&p, s, n, NULL, BA_MIME_BODY, &err), 0);
	assert_int_equal(ba_mime_prepare(p, NULL, &err), 0);
	assert_int_equal(ba_mime_part_cte(p), BA_MIME_CTE_7BIT);
	struct ba_buf out = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &out);
	assert_int_equal(ba_mime_write(&w.base, p, NULL, &err), 0);
	assert_null(strchr(ba_buf_str(&out), '\r'));
	ba_buf_release(&out);
	ba_mime_free(p);
	free(s);
}

static void test_mime__downgrade(void **state)
{
	(void)state;
	const char *in =
		"Subject: Gr\xc3\xbc\xc3\x9f\xc3\xa9\r\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n"
		"Content-Transfer-Encoding: 8bit\r\n"
		"\r\n"
		"--b\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: 8bit\r\n"
		"\r\n"
		"caf\xc3\xa9\r\n"
		"--b\r\n"
		"\r\n"
		"clean\r\n"
		"--b--\r\n";
	struct ba_mem_reader r;
	ba_mem_reader_init(&r, in, strlen(in));
	struct ba_buf out = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &out);
	struct ba_err err = BA_ERR_INIT;
	struct ba_mime_opts o = { "\n", 0, NULL, NULL, NULL };
	assert_int_equal(ba_mime_downgrade(&w.base, &r.base, &o, &err), 0);
	assert_string_equal(ba_buf_str(&out),
		"Subject: =?utf-8?B?R3LDvMOfw6k=?=\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n"
		"Content-Transfer-Encoding: 7bit\n"
		"\n"
		"--b\n"
		"Content-Type: text/plain; charset=utf-8\n"
		"Content-Transfer-Encoding: quoted-printable\n"
		"\n"
		"caf=C3=A9=\n" /* the content ends without a line break: the last is the delimiter's */
		"\n"
		"--b\n"
		"\n"
		"clean\n"
		"--b--\n");
	ba_buf_release(&out);
	/* 8-bit text in an address field needs SMTPUTF8: refused, not mangled */
	const char *bad = "From: J\xc3\xbcrgen <j@example.org>\n\nx\n";
	ba_mem_reader_init(&r, bad, strlen(bad));
	ba_buf_init(&out, 0);
	assert_int_equal(ba_mime_downgrade(&w.base, &r.base, &o, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "From"));
	ba_buf_release(&out);
}

/* The downgrade reads headers with header.h's reader: malformed lines kept, a bare CR refused. */
static void test_mime__downgrade_header_reader(void **state)
{
	(void)state;
	const char *in = "X-Oops no colon\n"
	                 "Subject: caf\xc3\xa9\n"
	                 "Content-Type : application/octet-stream\n"
	                 "Content-Transfer-Encoding: 8bit\n"
	                 "\n"
	                 "\xff\n";
	struct ba_mem_reader r;
	ba_mem_reader_init(&r, in, strlen(in));
	struct ba_buf out = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &out);
	struct ba_err err = BA_ERR_INIT;
	struct ba_mime_opts o = { "\r\n", 0, NULL, NULL, NULL };
	assert_int_equal(ba_mime_downgrade(&w.base, &r.base, &o, &err), 0);
	/* the field after the malformed line is a field; its name may have white space before ':' */
	assert_string_equal(ba_buf_str(&out), "X-Oops no colon\r\n"
	                                      "Subject: =?utf-8?B?Y2Fmw6k=?=\r\n"
	                                      "Content-Type : application/octet-stream\r\n"
	                                      "Content-Transfer-Encoding: base64\r\n"
	                                      "\r\n"
	                                      "/wo=\r\n");
	ba_buf_release(&out);
	/* a CR not followed by LF would become a line end on the wire: refused, naming the line */
	const char *bad = "To: b@example.net\nSubject: hi\rBcc: secret@example.org\n\n\xff\n";
	ba_mem_reader_init(&r, bad, strlen(bad));
	ba_buf_init(&out, 0);
	assert_int_equal(ba_mime_downgrade(&w.base, &r.base, &o, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.text, "line 2: bare CR (not followed by LF) in header");
	ba_buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mime__cte_choice),
		cmocka_unit_test(test_mime__attachment_line_endings),
		cmocka_unit_test(test_mime__body_must_be_utf8),
		cmocka_unit_test(test_mime__type_by_extension),
		cmocka_unit_test(test_mime__set_type_and_filename_validate),
		cmocka_unit_test(test_mime__missing_file),
		cmocka_unit_test(test_mime__writes_multipart),
		cmocka_unit_test(test_mime__base64_body_is_canonical),
		cmocka_unit_test(test_mime__boundaries_distinct),
		cmocka_unit_test(test_mime__file_changed_between_passes),
		cmocka_unit_test(test_mime__pipe_is_spooled),
		cmocka_unit_test(test_mime__large_qp_and_base64_stream),
		cmocka_unit_test(test_mime__downgrade),
		cmocka_unit_test(test_mime__downgrade_header_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
