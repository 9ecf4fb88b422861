/* tests/unit/msg_read.c - the sendmail input: header rewrite, -t, Bcc, dots, spool */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/msg_read.h"
#include "../helper/spool_ref.h"

static int fixed_clock(void *ctx, int64_t *t, int *off, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	*t = 1700000000;
	*off = 0;
	return 0;
}

static int zero_random(void *ctx, void *p, size_t n, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	memset(p, 0, n);
	return 0;
}

/* Reads the spool back into a malloc'd string. */
static char *slurp(ba_spool *s, size_t *len)
{
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	ba_reader *r = ba_spool_reader(s);
	char tmp[777];
	ssize_t k;
	while ((k = ba_read(r, tmp, sizeof(tmp), &err)) > 0)
		ba_buf_add(&b, tmp, (size_t)k);
	assert_true(k == 0);
	return ba_buf_detach(&b, len);
}

static int run(struct ba_msg_input *m, const char *in, struct ba_msg_read_opts *o,
               struct ba_err *err)
{
	struct ba_mem_reader r;
	ba_mem_reader_init(&r, in, strlen(in));
	o->msg.clock = fixed_clock;
	o->msg.mime.random = zero_random;
	return ba_msg_read(m, &r.base, o, err);
}

static void check_out(struct ba_msg_input *m, const char *want)
{
	size_t len;
	char *got = slurp(m->spool, &len);
	assert_string_equal(got, want);
	assert_int_equal(len, ba_spool_size(m->spool));
	free(got);
}

static void test_msg_read__t_and_bcc(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_RCPT_FROM_HEADERS | BA_MSG_READ_REMOVE_BCC | BA_MSG_READ_DOTS_ARE_DATA;
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	const char *in = "From: Some Name <from@example.com>\n"
	                 "To: to1@example.com,\n"
	                 "\t=?utf-8?B?VGVzdCDDnHNlcg==?= <to2@example.com>, Some\n"
	                 "\tOne <to3@example.com>,\n"
	                 "Cc: to4, \"A; \\\"Quoted\\\" Name\" <to5@example.com>\n"
	                 "To: A Group:Person 1 <to6@example.com>,to7@example.com (Comment, x);\n"
	                 "bcc: Hidden <hid@example.com>\n"
	                 "Subject: s\n"
	                 "BCC: undisclosed:;\n"
	                 "\n"
	                 "Bcc: in the body stays\n.\n";
	assert_int_equal(run(&m, in, &o, &err), 0);
	const char *want[] = { "to1@example.com", "to2@example.com", "to3@example.com", "to4",
	                       "to5@example.com", "to6@example.com", "to7@example.com",
	                       "hid@example.com" };
	assert_int_equal(m.nrcpt, 8);
	for (size_t i = 0; i < 8; i++)
		assert_string_equal(m.rcpt[i], want[i]);
	assert_string_equal(m.header_from, "from@example.com");
	check_out(&m, "From: Some Name <from@example.com>\n"
	              "To: to1@example.com,\n"
	              "\t=?utf-8?B?VGVzdCDDnHNlcg==?= <to2@example.com>, Some\n"
	              "\tOne <to3@example.com>,\n"
	              "Cc: to4, \"A; \\\"Quoted\\\" Name\" <to5@example.com>\n"
	              "To: A Group:Person 1 <to6@example.com>,to7@example.com (Comment, x);\n"
	              "Subject: s\n"
	              "\n"
	              "Bcc: in the body stays\n.\n");
	assert_int_equal(ba_spool_flags(m.spool), BA_SPOOL_BARE_LF);
	ba_msg_read_release(&m);
}

static void test_msg_read__resent(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_RCPT_FROM_HEADERS | BA_MSG_READ_REMOVE_BCC;
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	const char *in = "Resent-From: r@example.org\r\nResent-To: rt@example.net\r\n"
	                 "Resent-Bcc: rb@example.net\r\nFrom: a@example.org\r\nTo: old@example.net\r\n"
	                 "Bcc: oldb@example.net\r\n\r\nbody\r\n";
	assert_int_equal(run(&m, in, &o, &err), 0);
	assert_int_equal(m.nrcpt, 2);
	assert_string_equal(m.rcpt[0], "rt@example.net");
	assert_string_equal(m.rcpt[1], "rb@example.net");
	assert_true(m.had_resent);
	check_out(&m, "Resent-From: r@example.org\r\nResent-To: rt@example.net\r\n"
	              "From: a@example.org\r\nTo: old@example.net\r\n\r\nbody\r\n");
	assert_int_equal(ba_spool_flags(m.spool), 0);
	ba_msg_read_release(&m);
}

static void test_msg_read__generated_fields(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_DOTS_ARE_DATA | BA_MSG_READ_UNDISCLOSED;
	o.from_addr = "me@example.org";
	o.from_name = "Joe Q. Public";
	assert_int_equal(run(&m, "To: x@example.net\nSubject: hi\n\nbody\n", &o, &err), 0);
	assert_true(m.added_from && m.added_date && m.added_msgid);
	check_out(&m, "From: Joe Q. Public <me@example.org>\n"
	              "To: undisclosed-recipients:;\n"
	              "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	              "Message-ID: <s44we8.0000000000000000@example.org>\n"
	              "Subject: hi\n\nbody\n");
	ba_msg_read_release(&m);

	/* auto keeps an existing From; on replaces it; names with specials are quoted or encoded */
	memset(&o, 0, sizeof(o));
	o.from_addr = "me@example.org";
	o.from_name = "Jörg <x>";
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	assert_int_equal(run(&m, "From: keep@example.org\n\nb\n", &o, &err), 0);
	assert_false(m.added_from);
	check_out(&m, "From: keep@example.org\n\nb\n");
	ba_msg_read_release(&m);
	o.set_from = BA_MSG_HDR_ON;
	assert_int_equal(run(&m, "from: keep@example.org\nDate: x\n\nb\n", &o, &err), 0);
	check_out(&m, "From: =?utf-8?B?SsO2cmcgPHg+?= <me@example.org>\nDate: x\n\nb\n");
	ba_msg_read_release(&m);

	/* header injection through the full name or the address is refused */
	o.from_name = "x\nBcc: evil@example.com";
	assert_int_equal(run(&m, "\nb\n", &o, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_null(m.spool);
}

static void test_msg_read__lone_dot(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	/* without -i a lone "." ends the input (sendmail), also "." CRLF, not ".." or " ." */
	assert_int_equal(run(&m, "Subject: a\n\nl1\n..\n .\n.x\n.\nafter\n", &o, &err), 0);
	check_out(&m, "Subject: a\n\nl1\n..\n .\n.x\n");
	assert_int_equal(m.dropped_after_dot, 6); /* counted, for the caller to report */
	ba_msg_read_release(&m);
	assert_int_equal(run(&m, "Subject: a\r\n\r\nl1\r\n.\r\nafter\r\n", &o, &err), 0);
	check_out(&m, "Subject: a\r\n\r\nl1\r\n");
	assert_int_equal(m.dropped_after_dot, 7);
	ba_msg_read_release(&m);
	o.flags = BA_MSG_READ_DOT_NO_COUNT; /* a terminal: nothing is read after the "." */
	assert_int_equal(run(&m, "Subject: a\r\n\r\nl1\r\n.\r\nafter\r\n", &o, &err), 0);
	check_out(&m, "Subject: a\r\n\r\nl1\r\n");
	assert_int_equal(m.dropped_after_dot, 0);
	o.flags = 0;
	ba_msg_read_release(&m);
	assert_int_equal(run(&m, "Subject: a\n.\nTo: b\n", &o, &err), 0);
	check_out(&m, "Subject: a\n");
	assert_int_equal(m.dropped_after_dot, 6); /* a "." in the header */
	ba_msg_read_release(&m);
	/* a final "." without a line end ends it too; a "." ending a line does not */
	assert_int_equal(run(&m, "Subject: a\n\nl1\nx.\n.", &o, &err), 0);
	check_out(&m, "Subject: a\n\nl1\nx.\n");
	assert_int_equal(m.dropped_after_dot, 0);
	ba_msg_read_release(&m);
	/*
	 * deep in a long body (many buffer refills), after lines longer than the
	 * line reader's pieces, with dots everywhere but at a line's start alone
	 */
	struct ba_buf in = BA_BUF_INIT, want = BA_BUF_INIT;
	ba_buf_addstr(&in, "Subject: long\r\n\r\n");
	for (int i = 0; i < 5000; i++) {
		ba_buf_addf(&in, "line %d. .\r\n..\r\n", i);
		if (i % 1000 == 999) { /* 20000 octets, then "." as its last octet */
			for (int k = 0; k < 2000; k++)
				ba_buf_addstr(&in, "0123456789");
			ba_buf_addstr(&in, ".\r\n");
		}
	}
	ba_buf_add(&want, in.data, in.len);
	ba_buf_addstr(&in, ".\r\nnot sent\r\n");
	assert_int_equal(run(&m, ba_buf_str(&in), &o, &err), 0);
	check_out(&m, ba_buf_str(&want));
	assert_int_equal(m.dropped_after_dot, 10);
	ba_msg_read_release(&m);
	ba_buf_release(&in);
	ba_buf_release(&want);
	o.flags = BA_MSG_READ_DOTS_ARE_DATA;
	assert_int_equal(run(&m, "Subject: a\n\nl1\n.\nafter\n", &o, &err), 0);
	check_out(&m, "Subject: a\n\nl1\n.\nafter\n");
	assert_int_equal(m.dropped_after_dot, 0);
	ba_msg_read_release(&m);
}

static void test_msg_read__odd_headers(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_DOTS_ARE_DATA | BA_MSG_READ_RCPT_FROM_HEADERS;
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	/* an mbox "From " line is dropped; a non-field line is kept in the header, unchanged,
	 * and the fields after it are still fields (the header ends at the empty line only) */
	assert_int_equal(run(&m, "From someone Sat Jan  3 01:05:34 1996\nTo: a@b.example\n"
	                         "not a header\nTo: c@d.example\n", &o, &err), 0);
	assert_int_equal(m.nrcpt, 2);
	assert_string_equal(m.rcpt[1], "c@d.example");
	check_out(&m, "To: a@b.example\nnot a header\nTo: c@d.example\n");
	ba_msg_read_release(&m);
	/* empty input */
	assert_int_equal(run(&m, "", &o, &err), 0);
	check_out(&m, "");
	ba_msg_read_release(&m);
	/* unbalanced angle bracket in a recipient field */
	assert_int_equal(run(&m, "To: <a@b.example\n\n", &o, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "To"));
	/* a header block over the bound */
	o.header_max = 100;
	struct ba_buf big = BA_BUF_INIT;
	for (int i = 0; i < 20; i++)
		ba_buf_addf(&big, "X-%d: 0123456789\n", i);
	assert_int_equal(run(&m, ba_buf_str(&big), &o, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	/* a very long field line is kept whole */
	o.header_max = 0;
	ba_buf_reset(&big);
	ba_buf_addstr(&big, "To: x@y.example,");
	for (int i = 0; i < 3000; i++)
		ba_buf_addstr(&big, "         ");
	ba_buf_addstr(&big, "z@y.example\n\nb\n");
	assert_int_equal(run(&m, ba_buf_str(&big), &o, &err), 0);
	assert_int_equal(m.nrcpt, 2);
	assert_string_equal(m.rcpt[1], "z@y.example");
	check_out(&m, ba_buf_str(&big));
	assert_true(ba_spool_flags(m.spool) & BA_SPOOL_LONG_LINE);
	ba_msg_read_release(&m);
	ba_buf_release(&big);
}

/* A line that is no field (and no continuation) does not end the header: the Bcc after it is removed and a recipient. */
static void test_msg_read__bcc_after_malformed_line(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_RCPT_FROM_HEADERS | BA_MSG_READ_REMOVE_BCC | BA_MSG_READ_DOTS_ARE_DATA;
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	assert_int_equal(run(&m, "To: b@example.net\nX-Oops no colon\nBcc: secret@example.org\n"
	                         "\nbody\nBcc: in the body stays\n", &o, &err), 0);
	assert_int_equal(m.nrcpt, 2);
	assert_string_equal(m.rcpt[0], "b@example.net");
	assert_string_equal(m.rcpt[1], "secret@example.org");
	check_out(&m, "To: b@example.net\nX-Oops no colon\n\nbody\nBcc: in the body stays\n");
	ba_msg_read_release(&m);
	/* a folded Bcc after malformed lines (one starting with white space, which
	 * follows no field and so continues nothing), CRLF line ends kept */
	assert_int_equal(run(&m, "Subject: s\r\n: no name\r\n indented\r\nRESENT-x\r\n"
	                         "bcc : h1@example.org,\r\n\th2@example.org\r\nX-A: a\r\n\r\nb\r\n",
	                         &o, &err), 0);
	assert_int_equal(m.nrcpt, 2);
	assert_string_equal(m.rcpt[0], "h1@example.org");
	assert_string_equal(m.rcpt[1], "h2@example.org");
	assert_int_equal(m.had_resent, 0);
	check_out(&m, "Subject: s\r\n: no name\r\n indented\r\nRESENT-x\r\nX-A: a\r\n\r\nb\r\n");
	ba_msg_read_release(&m);
	/* From, Date and Message-ID after a malformed line are found: nothing is added */
	o.set_date = o.set_msgid = o.set_from = BA_MSG_HDR_AUTO;
	o.from_addr = "me@example.org";
	assert_int_equal(run(&m, "oops\nFrom: f@example.org\nDate: x\nMessage-ID: <1@x>\n"
	                         "To: t@example.org\n\n", &o, &err), 0);
	assert_true(m.had_from && m.had_date && m.had_msgid);
	assert_false(m.added_from || m.added_date || m.added_msgid);
	assert_string_equal(m.header_from, "f@example.org");
	check_out(&m, "oops\nFrom: f@example.org\nDate: x\nMessage-ID: <1@x>\nTo: t@example.org\n\n");
	ba_msg_read_release(&m);
}

/* A CR not followed by LF in the header is an error naming the line; in the body it is data. */
/* a receiver that strips NULs would turn "Bcc\0:" into a Bcc field: refused, naming the line */
static void test_msg_read__nul_in_header(void **state)
{
	(void)state;
	static const char in[] = "To: b@example.net\nBcc\0: secret@example.org\n\nbody\n";
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_RCPT_FROM_HEADERS | BA_MSG_READ_REMOVE_BCC | BA_MSG_READ_DOTS_ARE_DATA;
	struct ba_mem_reader r;
	ba_mem_reader_init(&r, in, sizeof(in) - 1);
	assert_int_equal(ba_msg_read(&m, &r.base, &o, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.text, "line 2: NUL byte in header");
	assert_null(m.spool);
	/* in the body a NUL is data (the spool flags it) */
	static const char ok[] = "To: b@example.net\n\nbo\0dy\n";
	ba_mem_reader_init(&r, ok, sizeof(ok) - 1);
	assert_int_equal(ba_msg_read(&m, &r.base, &o, &err), 0);
	assert_true(ba_spool_flags(m.spool) & BA_SPOOL_NUL);
	ba_msg_read_release(&m);
}

static void test_msg_read__bare_cr_in_header(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_RCPT_FROM_HEADERS | BA_MSG_READ_REMOVE_BCC | BA_MSG_READ_DOTS_ARE_DATA;
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	static const char *const bad[] = {
		"To: b@example.net\nSubject: hi\rBcc: secret@example.org\n\nbody\n",
		"To: b@example.net\nSubject: hi\r\r\nBcc: secret@example.org\n\nbody\n",
		"To: b@example.net\n\r\r\nbody\n", /* the empty line too */
		"To: b@example.net\nSubject: hi\rx", /* the last line, before the end of input */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err = (struct ba_err)BA_ERR_INIT;
		assert_int_equal(run(&m, bad[i], &o, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(err.text, "line 2: bare CR (not followed by LF) in header");
		assert_null(m.spool);
	}
	/* a bare CR in a long line, past the line reader's first piece */
	struct ba_buf big = BA_BUF_INIT;
	ba_buf_addstr(&big, "To: b@example.net\nX-Long: ");
	for (int i = 0; i < 2000; i++)
		ba_buf_addstr(&big, "0123456789");
	ba_buf_addstr(&big, "\rBcc: secret@example.org\n\nbody\n");
	assert_int_equal(run(&m, ba_buf_str(&big), &o, &err), -1);
	assert_string_equal(err.text, "line 2: bare CR (not followed by LF) in header");
	ba_buf_release(&big);
	/* a CR as the last octet of the input ends the last line; the body keeps its bare CRs */
	assert_int_equal(run(&m, "To: b@example.net\r", &o, &err), 0);
	check_out(&m, "To: b@example.net\r");
	ba_msg_read_release(&m);
	assert_int_equal(run(&m, "To: b@example.net\r\n\r\nbo\rdy\r\n", &o, &err), 0);
	check_out(&m, "To: b@example.net\r\n\r\nbo\rdy\r\n");
	assert_true(ba_spool_flags(m.spool) & BA_SPOOL_BARE_CR);
	ba_msg_read_release(&m);
}

static void test_msg_read__spool_to_file(void **state)
{
	(void)state;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_DOTS_ARE_DATA;
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	o.mem_max = 1000;
	struct ba_buf in = BA_BUF_INIT;
	ba_buf_addstr(&in, "Subject: big\n\n");
	for (int i = 0; i < 20000; i++)
		ba_buf_addf(&in, "line %d \xc3\xa9 bare\rcr\n", i);
	assert_int_equal(run(&m, ba_buf_str(&in), &o, &err), 0);
	assert_int_equal(ba_spool_size(m.spool), in.len);
	/* 20000 bare LFs and 20000 bare CRs, one LF after the header and the blank line */
	assert_int_equal(ba_spool_wire_size(m.spool), in.len + 40002);
	unsigned f = ba_spool_flags(m.spool);
	assert_true(f & BA_SPOOL_8BIT);
	assert_true(f & BA_SPOOL_BARE_CR);
	assert_false(f & BA_SPOOL_LONG_LINE);
	for (int round = 0; round < 2; round++) { /* rewindable */
		size_t len;
		char *got = slurp(m.spool, &len);
		assert_int_equal(len, in.len);
		assert_memory_equal(got, in.data, len);
		free(got);
	}
	ba_msg_read_release(&m);
	/* the same without -i: the dots-end path through the line reader */
	o.flags = 0;
	assert_int_equal(run(&m, ba_buf_str(&in), &o, &err), 0);
	assert_int_equal(ba_spool_size(m.spool), in.len);
	ba_msg_read_release(&m);
	/* a spool directory that does not exist */
	setenv("TMPDIR", "/nonexistent/dir", 1);
	assert_int_equal(run(&m, ba_buf_str(&in), &o, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	unsetenv("TMPDIR");
	ba_buf_release(&in);
}

/* A temporary file holding text (unlinked); the offset is left at skip. */
static int text_file(const char *text, size_t len, off_t skip)
{
	char path[] = "/tmp/ba-msg-read-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(lseek(fd, skip, SEEK_SET), skip);
	return fd;
}

/*
 * A message given as a regular file: the spool refers to the body instead
 * of copying it (same bytes back, twice), whatever the file offset at the
 * start, with or without -i; a change of the file after reading makes the
 * last read fail; a pipe is copied as before.
 */
static void test_msg_read__refer_to_input_file(void **state)
{
	(void)state;
	struct ba_buf in = BA_BUF_INIT, want = BA_BUF_INIT;
	ba_buf_addstr(&in, "skipped by the caller\n");
	size_t skip = in.len;
	ba_buf_addstr(&in, "Subject: file\nBcc: hidden@example.org\n\n");
	ba_buf_addstr(&want, "Subject: file\n\n");
	for (int i = 0; i < 20000; i++) {
		ba_buf_addf(&in, "line %d caf\xc3\xa9 .\n", i);
		ba_buf_addf(&want, "line %d caf\xc3\xa9 .\n", i);
	}
	size_t body_end = in.len;
	ba_buf_addstr(&in, ".\nafter the dot\n");
	for (int dots_are_data = 0; dots_are_data < 2; dots_are_data++) {
		int fd = text_file(in.data, in.len, (off_t)skip);
		struct ba_fd_reader r;
		ba_fd_reader_init(&r, fd, "test file");
		struct ba_msg_read_opts o = { 0 };
		o.flags = BA_MSG_READ_REMOVE_BCC | BA_MSG_READ_REFER_INPUT |
		          (dots_are_data ? BA_MSG_READ_DOTS_ARE_DATA : 0);
		o.in_fd = fd;
		o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
		o.mem_max = 4096; /* a copy would overflow to a temporary file */
		struct ba_msg_input m;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(ba_msg_read(&m, &r.base, &o, &err), 0);
		size_t wlen = dots_are_data ? want.len + (in.len - body_end) : want.len;
		if (dots_are_data)
			ba_buf_add(&want, in.data + body_end, in.len - body_end);
		assert_int_equal(ba_spool_size(m.spool), wlen);
		assert_int_equal(ba_spool_wire_size(m.spool), wlen + (dots_are_data ? 20004 : 20002));
		assert_int_equal(ba_spool_flags(m.spool), BA_SPOOL_8BIT | BA_SPOOL_BARE_LF);
		for (int round = 0; round < 2; round++)
			check_out(&m, ba_buf_str(&want));
		/* appended to meanwhile (a log file): still the same message */
		assert_int_equal(pwrite(fd, "appended\n", 9, (off_t)in.len), 9);
		check_out(&m, ba_buf_str(&want));
		/* rewritten in place (same size, new mtime): the last read fails */
		assert_int_equal(pwrite(fd, "X", 1, (off_t)in.len - 2), 1);
		assert_int_equal(ftruncate(fd, (off_t)in.len), 0); /* back to the size read */
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1, 0 } };
		assert_int_equal(futimens(fd, ts), 0);
		ba_reader *sr = ba_spool_reader(m.spool);
		char buf[4096];
		ssize_t k;
		while ((k = ba_read(sr, buf, sizeof(buf), &err)) > 0)
			;
		assert_int_equal(k, -1);
		assert_int_equal(err.code, EX_IOERR);
		assert_non_null(strstr(err.text, "changed"));
		ba_msg_read_release(&m);
		close(fd);
	}
	/* a pipe cannot be referred to: copied, same result */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	const char *small = "Subject: pipe\n\nbody\n.\nrest\n";
	assert_int_equal(write(pfd[1], small, strlen(small)), (ssize_t)strlen(small));
	close(pfd[1]);
	struct ba_fd_reader r;
	ba_fd_reader_init(&r, pfd[0], "test pipe");
	struct ba_msg_read_opts o = { 0 };
	o.flags = BA_MSG_READ_REFER_INPUT;
	o.in_fd = pfd[0];
	o.set_date = o.set_msgid = BA_MSG_HDR_OFF;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_msg_read(&m, &r.base, &o, &err), 0);
	check_out(&m, "Subject: pipe\n\nbody\n");
	ba_msg_read_release(&m);
	close(pfd[0]);
	ba_buf_release(&in);
	ba_buf_release(&want);
}

/*
 * The spool's scan (word-at-a-time fast path) agrees with the plain
 * definition on random text of every kind, however the writes are split.
 */
static void test_msg_read__spool_scan_random(void **state)
{
	(void)state;
	static const unsigned char alphabet[] = { 'a', 'b', ' ', '\r', '\n', 0, 0x80, 0xff, '.' };
	unsigned seed = 12345;
	unsigned char buf[4096];
	for (int round = 0; round < 3000; round++) {
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 8) % sizeof(buf);
		/* 0: any byte, 1: mostly letters, 2: letters and lone CRs and LFs, 3: CRLF lines */
		int mode = round % 4;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			unsigned r = seed >> 16;
			if (mode == 0 || r % 97 == 0)
				buf[i] = alphabet[r % sizeof(alphabet)];
			else if (mode == 2 && r % 61 == 0)
				buf[i] = r & 1 ? '\n' : '\r';
			else if (mode == 3 && r % 71 == 0 && i + 1 < n) {
				buf[i++] = '\r';
				buf[i] = '\n';
			} else
				buf[i] = (unsigned char)('a' + r % 26);
		}
		/* long lines too: stretch one run past 998 octets */
		if (round % 50 == 0 && n > 1200)
			memset(buf + 100, 'x', 1000);
		ba_spool *sp;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(ba_spool_new(&sp, 0, &err), 0);
		ba_writer *w = ba_spool_writer(sp);
		size_t off = 0;
		while (off < n) {
			seed = seed * 1103515245u + 12345u;
			size_t k = 1 + (seed >> 8) % 300;
			if (k > n - off)
				k = n - off;
			assert_int_equal(ba_write(w, buf + off, k, &err), 0);
			off += k;
		}
		unsigned want_f;
		uint64_t want_w;
		spool_ref_scan(buf, n, &want_f, &want_w);
		assert_int_equal(ba_spool_flags(sp), want_f);
		assert_int_equal(ba_spool_wire_size(sp), want_w);
		assert_int_equal(ba_spool_size(sp), n);
		ba_spool_free(sp);
	}
}

static void test_msg_read__addr_list(void **state)
{
	(void)state;
	char **v = NULL;
	size_t n = 0;
	struct ba_err err = BA_ERR_INIT;
	const char *s = "<@route.example,@r2.example:a@b.example>, \"odd local\"@c.example, "
	                "empty:;, (only a comment), d@e.example (x (nested) y)";
	assert_int_equal(ba_msg_addr_list(&v, &n, "To", s, strlen(s), &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "a@b.example");
	assert_string_equal(v[1], "\"odd local\"@c.example");
	assert_string_equal(v[2], "d@e.example");
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	v = NULL;
	n = 0;
	assert_int_equal(ba_msg_addr_list(&v, &n, "Cc", "a@b (unclosed", 13, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(ba_msg_addr_list(&v, &n, "Cc", "x\"y", 3, &err), -1);
	assert_int_equal(ba_msg_addr_list(&v, &n, "Cc", "a>", 2, &err), -1);
	assert_int_equal(ba_msg_addr_list(&v, &n, "Cc", "a@b, \0", 6, &err), -1);
	assert_non_null(strstr(err.text, "control character"));
	assert_int_equal(ba_msg_addr_list(&v, &n, "Cc", "a\x1b@b", 5, &err), -1);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_read__t_and_bcc),
		cmocka_unit_test(test_msg_read__resent),
		cmocka_unit_test(test_msg_read__generated_fields),
		cmocka_unit_test(test_msg_read__lone_dot),
		cmocka_unit_test(test_msg_read__odd_headers),
		cmocka_unit_test(test_msg_read__bcc_after_malformed_line),
		cmocka_unit_test(test_msg_read__bare_cr_in_header),
		cmocka_unit_test(test_msg_read__nul_in_header),
		cmocka_unit_test(test_msg_read__spool_to_file),
		cmocka_unit_test(test_msg_read__spool_scan_random),
		cmocka_unit_test(test_msg_read__refer_to_input_file),
		cmocka_unit_test(test_msg_read__addr_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
