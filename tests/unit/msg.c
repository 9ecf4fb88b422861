/* tests/unit/msg.c - message header fields, validation, deterministic output */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/msg.h"
#include "../helper/fixed.h"

static void test_msg__date_format(void **state)
{
	(void)state;
	struct ba_buf b = BA_BUF_INIT;
	ba_msg_format_date(&b, 0, 0);
	assert_string_equal(ba_buf_str(&b), "Thu, 1 Jan 1970 00:00:00 +0000");
	ba_buf_reset(&b);
	ba_msg_format_date(&b, 0, -330);
	assert_string_equal(ba_buf_str(&b), "Wed, 31 Dec 1969 18:30:00 -0530");
	ba_buf_reset(&b);
	ba_msg_format_date(&b, 1700000000, 60);
	assert_string_equal(ba_buf_str(&b), "Tue, 14 Nov 2023 23:13:20 +0100");
	ba_buf_reset(&b);
	ba_msg_format_date(&b, 951782400, 0); /* leap day 2000 */
	assert_string_equal(ba_buf_str(&b), "Tue, 29 Feb 2000 00:00:00 +0000");
	ba_buf_release(&b);
}

static void test_msg__fixed_output(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m;
	assert_int_equal(ba_msg_new(&m, &err), 0);
	assert_int_equal(ba_msg_add_from(m, "Jane Doe <jane@example.org>", &err), 0);
	assert_int_equal(ba_msg_add_to(m, "bob@example.net", &err), 0);
	assert_int_equal(ba_msg_add_to(m, "\"Doe, J.\" <j@example.net>", &err), 0);
	assert_int_equal(ba_msg_add_cc(m, "cc@example.net", &err), 0);
	assert_int_equal(ba_msg_add_bcc(m, "Hidden <hidden@example.net>", &err), 0);
	assert_int_equal(ba_msg_set_subject(m, "Hello", &err), 0);
	assert_int_equal(ba_msg_set_in_reply_to(m, "<p@example.org>", &err), 0);
	assert_int_equal(ba_msg_add_references(m, "<a@x> <p@example.org>", &err), 0);
	assert_int_equal(ba_msg_add_header(m, "X-Test:  yes  ", &err), 0);
	ba_mime_part *body;
	assert_int_equal(ba_mime_mem_new(&body, "Hi.\n", 4, NULL, BA_MIME_BODY, &err), 0);
	ba_msg_set_body(m, body);
	struct ba_buf out = BA_BUF_INIT;
	assert_int_equal(render(m, &out, "\n", &err), 0);
	assert_string_equal(ba_buf_str(&out),
		"Date: Tue, 14 Nov 2023 23:13:20 +0100\n"
		"From: Jane Doe <jane@example.org>\n"
		"To: bob@example.net, \"Doe, J.\" <j@example.net>\n"
		"Cc: cc@example.net\n"
		"Subject: Hello\n"
		"Message-ID: <s44we8.000g40o40k30e209@example.org>\n"
		"In-Reply-To: <p@example.org>\n"
		"References: <a@x> <p@example.org>\n"
		"X-Test: yes\n"
		"MIME-Version: 1.0\n"
		"Content-Type: text/plain; charset=utf-8\n"
		"Content-Transfer-Encoding: 7bit\n"
		"\n"
		"Hi.\n");
	assert_null(strstr(ba_buf_str(&out), "hidden"));
	/* the envelope still has every recipient, Bcc last */
	assert_int_equal(ba_msg_rcpt_count(m), 4);
	assert_string_equal(ba_msg_rcpt(m, 0), "bob@example.net");
	assert_string_equal(ba_msg_rcpt(m, 3), "hidden@example.net");
	assert_string_equal(ba_msg_from(m), "jane@example.org");
	ba_buf_release(&out);
	ba_msg_free(m);
}

static void test_msg__header_injection_refused(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m;
	assert_int_equal(ba_msg_new(&m, &err), 0);
	assert_int_equal(ba_msg_set_subject(m, "a\r\nBcc: x@example.net", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "subject"));
	assert_int_equal(ba_msg_set_subject(m, "a\nb", &err), -1);
	assert_int_equal(ba_msg_set_subject(m, "bad \xff utf-8", &err), -1);
	assert_int_equal(ba_msg_add_header(m, "X-A: b\nBcc: c", &err), -1);
	assert_int_equal(ba_msg_add_header(m, "Bad Name: v", &err), -1);
	assert_non_null(strstr(err.text, "Bad Name"));
	assert_int_equal(ba_msg_add_header(m, ": v", &err), -1);
	assert_int_equal(ba_msg_add_header(m, "novalue", &err), -1);
	assert_int_equal(ba_msg_add_header(m, "bcc: x@example.net", &err), -1);
	assert_int_equal(ba_msg_add_header(m, "Content-Type: text/html", &err), -1);
	assert_int_equal(ba_msg_add_header(m, "X-\xc3\xa4: v", &err), -1);
	assert_int_equal(ba_msg_add_to(m, "a@example.net\r\nBcc: b@example.net", &err), -1);
	assert_int_equal(ba_msg_set_in_reply_to(m, "<a@b>\r\nX: y", &err), -1);
	assert_int_equal(ba_msg_set_in_reply_to(m, "<nohost>", &err), -1);
	assert_int_equal(ba_msg_add_references(m, "", &err), -1);
	ba_msg_free(m);
}

static void test_msg__addresses_validated(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m;
	assert_int_equal(ba_msg_new(&m, &err), 0);
	static const char *const bad[] = {
		"", "plain", "a@", "@b.example", "a@@b.example", "a..b@example.org",
		"Name a@b.example", "<a@b.example", "\"open <a@b.example>", "a@b..example",
		"a@-bad-.example\xff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ba_msg_add_to(m, bad[i], &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_non_null(strstr(err.text, "to:"));
	}
	assert_int_equal(ba_msg_add_from(m, "a@example.org, b@example.org", &err), -1);
	assert_int_equal(ba_msg_add_to(m, "a@example.net (comment), \"q\\\"uote\" <b@example.net>,,",
	                               &err), 0);
	assert_int_equal(ba_msg_add_to(m, "x@b\xc3\xbc" "cher.example", &err), 0);
	assert_int_equal(ba_msg_rcpt_count(m), 3);
	assert_string_equal(ba_msg_rcpt(m, 2), "x@xn--bcher-kva.example");
	ba_msg_free(m);
}

static void test_msg__incomplete(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m;
	struct ba_buf out = BA_BUF_INIT;
	assert_int_equal(ba_msg_new(&m, &err), 0);
	assert_int_equal(ba_msg_add_to(m, "a@example.net", &err), 0);
	assert_int_equal(render(m, &out, "\n", &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_int_equal(out.len, 0);
	ba_msg_free(m);
	assert_int_equal(ba_msg_new(&m, &err), 0);
	assert_int_equal(ba_msg_add_from(m, "a@example.net", &err), 0);
	assert_int_equal(render(m, &out, "\n", &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	/* a body that is not UTF-8 is found before anything is written */
	assert_int_equal(ba_msg_add_bcc(m, "b@example.net", &err), 0);
	ba_mime_part *body;
	assert_int_equal(ba_mime_mem_new(&body, "\xc0\xaf", 2, "b.txt", BA_MIME_BODY, &err), 0);
	ba_msg_set_body(m, body);
	assert_int_equal(render(m, &out, "\n", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(out.len, 0);
	ba_msg_free(m);
}

static void test_msg__long_fields_fold(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m;
	assert_int_equal(ba_msg_new(&m, &err), 0);
	assert_int_equal(ba_msg_add_from(m, "\xea\xb9\x80\xec\xb2\xa0\xec\x88\x98 <k@example.org>",
	                                 &err), 0);
	char subj[600] = "";
	for (int i = 0; i < 40; i++)
		strncat(subj, "Gr\xc3\xbc\xc3\x9f" "e ", sizeof(subj) - strlen(subj) - 1);
	assert_int_equal(ba_msg_set_subject(m, subj, &err), 0);
	for (int i = 0; i < 30; i++) {
		char a[64];
		snprintf(a, sizeof(a), "Person %d <p%d@example.net>", i, i);
		assert_int_equal(ba_msg_add_to(m, a, &err), 0);
		snprintf(a, sizeof(a), "<id%d.0123456789@example.org>", i);
		assert_int_equal(ba_msg_add_references(m, a, &err), 0);
	}
	struct ba_buf out = BA_BUF_INIT;
	assert_int_equal(render(m, &out, "\r\n", &err), 0);
	const char *s = ba_buf_str(&out);
	const char *end = strstr(s, "\r\n\r\n");
	assert_non_null(end);
	for (const char *l = s; l < end;) {
		const char *e = strstr(l, "\r\n");
		assert_true(e - l <= 78);
		assert_true(e == l || l == s || l[-1] == '\n');
		l = e + 2;
	}
	ba_buf_release(&out);
	ba_msg_free(m);
}

static void test_msg__message_id_domain(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m;
	assert_int_equal(ba_msg_new(&m, &err), 0);
	assert_int_equal(ba_msg_add_from(m, "me@m\xc3\xbcnchen.example", &err), 0);
	assert_int_equal(ba_msg_add_to(m, "r@example.net", &err), 0);
	struct ba_buf out = BA_BUF_INIT;
	assert_int_equal(render(m, &out, "\n", &err), 0);
	assert_non_null(strstr(ba_buf_str(&out), "@xn--mnchen-3ya.example>\n"));
	assert_non_null(strstr(ba_buf_str(&out), "From: me@xn--mnchen-3ya.example\n"));
	ba_buf_release(&out);
	ba_msg_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg__date_format),
		cmocka_unit_test(test_msg__fixed_output),
		cmocka_unit_test(test_msg__header_injection_refused),
		cmocka_unit_test(test_msg__addresses_validated),
		cmocka_unit_test(test_msg__incomplete),
		cmocka_unit_test(test_msg__long_fields_fold),
		cmocka_unit_test(test_msg__message_id_domain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
