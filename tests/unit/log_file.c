/* tests/unit/log_file.c - msmtp's logfile line: fields, cleaning, one appended line */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bluearrow/log_file.h"

static void test_log_file__format(void **state)
{
	(void)state;
	const char *rc[] = { "a@example.net", "b@example.net" };
	struct ba_log_entry e = { 0 };
	e.host = "mail.example.org";
	e.tls = 1;
	e.auth = 1;
	e.user = "joe";
	e.from = "me@example.org";
	e.rcpt = rc;
	e.nrcpt = 2;
	e.has_mailsize = 1;
	e.mailsize = 180;
	e.smtp_status = 250;
	e.smtp_msg = "250 2.0.0 Ok: queued as 4F\x1b[31m";
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_log_entry_format(&b, &e), 0);
	assert_string_equal(ba_buf_str(&b),
	                    "host=mail.example.org tls=on auth=on user=joe from=me@example.org "
	                    "recipients=a@example.net,b@example.net mailsize=180 smtpstatus=250 "
	                    "smtpmsg='250 2.0.0 Ok: queued as 4F?[31m' exitcode=EX_OK");
	/* MTA-STS testing findings: last, quoted */
	ba_buf_reset(&b);
	e.mtasts_testing = "mx.a.test:25: certificate would not be accepted: 'x'";
	assert_int_equal(ba_log_entry_format(&b, &e), 0);
	assert_non_null(strstr(ba_buf_str(&b), "exitcode=EX_OK mtasts_testing='mx.a.test:25: "
	                       "certificate would not be accepted: \"x\"'"));
	e.mtasts_testing = NULL;
	/* failure before the message was read; user only with auth */
	ba_buf_reset(&b);
	memset(&e, 0, sizeof(e));
	e.host = "127.0.0.1";
	e.user = "joe";
	e.from = "me@example.org";
	e.rcpt = rc;
	e.nrcpt = 1;
	e.errormsg = "cannot connect to 127.0.0.1, port 2525: Connection refused";
	e.exitcode = EX_TEMPFAIL;
	assert_int_equal(ba_log_entry_format(&b, &e), 0);
	assert_string_equal(ba_buf_str(&b),
	                    "host=127.0.0.1 tls=off auth=off from=me@example.org recipients=a@example.net "
	                    "errormsg='cannot connect to 127.0.0.1, port 2525: Connection refused' "
	                    "exitcode=EX_TEMPFAIL");
	ba_buf_release(&b);
}

/* quoted values never nest quotes; the dropped count comes last, only when there is one */
static void test_log_file__quotes_and_dropped(void **state)
{
	(void)state;
	const char *rc[] = { "a@example.net" };
	struct ba_log_entry e = { 0 };
	e.host = "h";
	e.from = "me@example.org";
	e.rcpt = rc;
	e.nrcpt = 1;
	e.smtp_status = 550;
	e.smtp_msg = "550 user 'a' unknown";
	e.errormsg = "cannot open 'x': gone";
	e.exitcode = EX_NOUSER;
	e.dropped_after_dot = 12;
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_log_entry_format(&b, &e), 0);
	assert_string_equal(ba_buf_str(&b),
	                    "host=h tls=off auth=off from=me@example.org recipients=a@example.net "
	                    "smtpstatus=550 smtpmsg='550 user \"a\" unknown' "
	                    "errormsg='cannot open \"x\": gone' exitcode=EX_NOUSER dropped_after_dot=12");
	ba_buf_release(&b);
}

static void test_log_file__append(void **state)
{
	(void)state;
	char path[] = "/tmp/ba-log-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_log_file_append(path, "%Y", 1700000000, "one", &err), 0);
	assert_int_equal(ba_log_file_append(path, NULL, 1700000000, "two", &err), 0);
	FILE *f = fopen(path, "r");
	char l1[128], l2[128];
	assert_non_null(fgets(l1, sizeof(l1), f));
	assert_non_null(fgets(l2, sizeof(l2), f));
	fclose(f);
	assert_string_equal(l1, "2023 one\n");
	assert_non_null(strstr(l2, "Nov 1"));
	assert_non_null(strstr(l2, " two\n"));
	unlink(path);
	assert_int_equal(ba_log_file_append("/nonexistent/dir/log", NULL, 0, "x", &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
}

static void test_log_file__facility(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_log_syslog_facility("on", &err), LOG_USER);
	assert_int_equal(ba_log_syslog_facility("LOG_MAIL", &err), LOG_MAIL);
	assert_int_equal(ba_log_syslog_facility("LOG_LOCAL7", &err), LOG_LOCAL7);
	assert_int_equal(ba_log_syslog_facility("LOG_KERN", &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_file__format),
		cmocka_unit_test(test_log_file__quotes_and_dropped),
		cmocka_unit_test(test_log_file__append),
		cmocka_unit_test(test_log_file__facility),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
