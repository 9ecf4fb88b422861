/* unit tests for submit.c: account choice, envelope sender, recipients, DSN values */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <signal.h>
#include <stdatomic.h>

#include "../helper/sink_server.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/submit.h"

static const char conf[] =
	"defaults\n"
	"host 127.0.0.1\n"
	"account home\n"
	"from me@home.test\n"
	"account work\n"
	"from *@work.test\n"
	"account fixed\n"
	"from boss@fixed.test\n"
	"allow_from_override off\n"
	"account nofrom\n"
	"account default : home\n";

static ba_config *load(const char *text)
{
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	if (ba_config_parse(&cfg, "t.rc", text, strlen(text), &err) != 0)
		fail_msg("config: %s", err.text);
	return cfg;
}

static const char *chosen(const ba_config *cfg, const char *name, const char *env_from,
                          const char *header_from)
{
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *acc = ba_submit_account(cfg, name, env_from, header_from, &err);
	return acc ? acc->name : NULL;
}

/* -a, else the envelope sender, else the From field, else the default */
static void test_submit__account_choice_order(void **state)
{
	(void)state;
	ba_config *cfg = load(conf);
	assert_string_equal(chosen(cfg, "work", "me@home.test", "x@work.test"), "work");
	assert_string_equal(chosen(cfg, NULL, "a@work.test", "me@home.test"), "work");
	assert_string_equal(chosen(cfg, NULL, "boss@fixed.test", NULL), "fixed");
	/* no -f match: the From field's address chooses (git send-email, mutt) */
	assert_string_equal(chosen(cfg, NULL, "nobody@else.test", "boss@fixed.test"), "fixed");
	assert_string_equal(chosen(cfg, NULL, NULL, "x@work.test"), "work");
	/* nothing matches: the default account */
	assert_string_equal(chosen(cfg, NULL, NULL, "who@else.test"), "default");
	assert_string_equal(chosen(cfg, NULL, NULL, NULL), "default");
	/* a named account that does not exist is an error, not a fallback */
	struct ba_err err = BA_ERR_INIT;
	assert_null(ba_submit_account(cfg, "nope", "me@home.test", NULL, &err));
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "nope"));
	ba_config_free(cfg);
}

static const char *env_from(struct ba_buf *b, const ba_config *cfg, const char *acc_name,
                             const char *cmdline, struct ba_err *err)
{
	const struct ba_account *acc = ba_config_account(cfg, acc_name, err);
	assert_non_null(acc);
	return ba_submit_envelope_from(b, acc, cmdline, err) == 0 ? ba_buf_str(b) : NULL;
}

static void test_submit__envelope_from(void **state)
{
	(void)state;
	ba_config *cfg = load(conf);
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_string_equal(env_from(&b, cfg, "home", NULL, &err), "me@home.test");
	assert_string_equal(env_from(&b, cfg, "home", "other@x.test", &err), "other@x.test");
	assert_string_equal(env_from(&b, cfg, "home", "", &err), ""); /* -f '<>' */
	/* allow_from_override off: -f does not replace the account's from */
	assert_string_equal(env_from(&b, cfg, "fixed", "other@x.test", &err), "boss@fixed.test");
	/* a pattern selects the account but is no address */
	assert_null(env_from(&b, cfg, "work", NULL, &err));
	assert_int_equal(err.code, EX_USAGE);
	assert_string_equal(env_from(&b, cfg, "work", "a@work.test", &err), "a@work.test");
	assert_null(env_from(&b, cfg, "nofrom", NULL, &err));
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "envelope-from address is missing"));
	/* what would become a second SMTP command or header line */
	assert_null(env_from(&b, cfg, "home", "a@x.test>\r\nRCPT TO:<b@x.test", &err));
	assert_int_equal(err.code, EX_USAGE);
	ba_buf_release(&b);
	ba_config_free(cfg);
}

static void test_submit__recipients_and_aliases(void **state)
{
	(void)state;
	char path[] = "/tmp/ba-aliases-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char aliases[] = "root: admin@example.test, ops@example.test\n";
	assert_int_equal(write(fd, aliases, sizeof(aliases) - 1), (ssize_t)sizeof(aliases) - 1);
	close(fd);
	char text[512];
	snprintf(text, sizeof(text), "account default\nhost h\nfrom a@x.test\naliases %s\n", path);
	ba_config *cfg = load(text);
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *acc = ba_config_account(cfg, NULL, &err);
	const char *args[] = { "root", "b@example.test" };
	const char *hdr[] = { "c@example.test" };
	char **v = NULL;
	size_t n = 0;
	assert_int_equal(ba_submit_recipients(&v, &n, acc, args, 2, hdr, 1, &err), 0);
	/* the arguments first, then the header's; a local name through the aliases (in msmtp's order) */
	assert_int_equal(n, 4);
	assert_string_equal(v[0], "ops@example.test");
	assert_string_equal(v[1], "admin@example.test");
	assert_string_equal(v[2], "b@example.test");
	assert_string_equal(v[3], "c@example.test");
	ba_submit_recipients_free(v, n);
	assert_int_equal(ba_submit_recipients(&v, &n, acc, NULL, 0, NULL, 0, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_null(v);
	ba_config_free(cfg);
	unlink(path);
}

/* send's local names: through the aliases; none without an aliases file or an entry */
static void test_submit__local_rcpt(void **state)
{
	(void)state;
	char path[] = "/tmp/ba-aliases-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char aliases[] = "root: admin@example.test\nops: admin, x@example.test\n";
	assert_int_equal(write(fd, aliases, sizeof(aliases) - 1), (ssize_t)sizeof(aliases) - 1);
	close(fd);
	char text[512];
	snprintf(text, sizeof(text), "account a\nhost h\nfrom a@x.test\naliases %s\n"
	                             "account b\nhost h\nfrom b@x.test\n", path);
	ba_config *cfg = load(text);
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *a = ba_config_account(cfg, "a", &err);
	const struct ba_account *b = ba_config_account(cfg, "b", &err);
	char **v = NULL;
	size_t n = 0;
	assert_int_equal(ba_submit_local_rcpt(&v, &n, a, "root", &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "admin@example.test");
	ba_submit_recipients_free(v, n);
	assert_int_equal(ba_submit_local_rcpt(&v, &n, a, "nobody", &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_non_null(strstr(err.text, "'nobody'"));
	assert_int_equal(ba_submit_local_rcpt(&v, &n, b, "root", &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_non_null(strstr(err.text, "'root'"));
	assert_non_null(strstr(err.text, "aliases"));
	assert_null(v);
	ba_config_free(cfg);
	unlink(path);
}

/* the From field of a built message: the account's name, quoted */
static void test_submit__from_field(void **state)
{
	(void)state;
	ba_config *cfg = load("account a\nhost h\nfrom a@x.test\nfrom_full_name Ann \"A\" Ex\n"
	                      "account b\nhost h\nfrom b@x.test\n");
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *a = ba_config_account(cfg, "a", &err);
	const struct ba_account *b = ba_config_account(cfg, "b", &err);
	struct ba_buf out = BA_BUF_INIT;
	assert_int_equal(ba_submit_from_field(&out, a, "a@x.test", NULL, &err), 0);
	assert_string_equal(ba_buf_str(&out), "\"Ann \\\"A\\\" Ex\" <a@x.test>");
	assert_int_equal(ba_submit_from_field(&out, a, "a@x.test", "Other", &err), 0);
	assert_string_equal(ba_buf_str(&out), "\"Other\" <a@x.test>");
	assert_int_equal(ba_submit_from_field(&out, b, "b@x.test", NULL, &err), 0);
	assert_string_equal(ba_buf_str(&out), "b@x.test");
	assert_int_equal(ba_submit_from_field(&out, b, "", NULL, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	ba_buf_release(&out);
	ba_config_free(cfg);
}

/* --dry-run's description: account, server, envelope, header without Bcc; no password */
static void test_submit__describe(void **state)
{
	(void)state;
	ba_config *cfg = load("account a\nhost mail.test\nport 587\ntls on\ntls_starttls on\n"
	                      "tls_trust_file system\nauth on\nuser u\npassword sekrit\n"
	                      "from a@x.test\n");
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *a = ba_config_account(cfg, "a", &err);
	assert_non_null(a);
	ba_spool *sp = NULL;
	assert_int_equal(ba_spool_new(&sp, 0, &err), 0);
	const char msg[] = "From: a@x.test\r\nTo: b@y.test\r\nSubject: s\r\n\r\nbody\r\n";
	assert_int_equal(ba_write(ba_spool_writer(sp), msg, sizeof(msg) - 1, &err), 0);
	const char *rcpt[] = { "b@y.test", "hidden@y.test" };
	struct ba_submit s;
	memset(&s, 0, sizeof(s));
	s.acc = a;
	s.from = "a@x.test";
	s.rcpt = rcpt;
	s.nrcpt = 2;
	s.spool = sp;
	struct ba_buf out = BA_BUF_INIT;
	assert_int_equal(ba_submit_describe(&out, &s, &err), 0);
	const char *d = ba_buf_str(&out);
	assert_non_null(strstr(d, "account   a (t.rc:1)\n"));
	assert_non_null(strstr(d, "server    mail.test:587, SMTP, STARTTLS, auth as 'u'\n"));
	assert_non_null(strstr(d, "from      <a@x.test>\n"));
	assert_non_null(strstr(d, "to        <hidden@y.test>\n"));
	assert_non_null(strstr(d, "header\nFrom: a@x.test\nTo: b@y.test\nSubject: s\n\n"));
	assert_null(strstr(d, "sekrit"));
	assert_null(strstr(d, "body"));
	ba_buf_release(&out);
	ba_spool_free(sp);
	ba_config_free(cfg);
}

static void test_submit__dsn_values(void **state)
{
	(void)state;
	unsigned bits;
	int ret;
	assert_int_equal(ba_submit_parse_notify("never", &bits), 0);
	assert_int_equal(bits, BA_DSN_NEVER);
	assert_int_equal(ba_submit_parse_notify("success,delay", &bits), 0);
	assert_int_equal(bits, BA_DSN_SUCCESS | BA_DSN_DELAY);
	assert_int_equal(ba_submit_parse_notify("success,bogus", &bits), -1);
	assert_int_equal(ba_submit_parse_notify("", &bits), -1);
	assert_int_equal(ba_submit_parse_return("hdrs", &ret), 0);
	assert_int_equal(ret, BA_DSN_RET_HDRS);
	assert_int_equal(ba_submit_parse_return("body", &ret), -1);
	struct ba_err err = BA_ERR_INIT;
	char longid[102];
	memset(longid, 'x', 101);
	longid[101] = '\0';
	assert_int_equal(ba_submit_check_envid("QQ314159+2B", &err), 0);
	assert_int_equal(ba_submit_check_envid("two words", &err), -1);
	assert_int_equal(ba_submit_check_envid("a\r\nRCPT", &err), -1);
	assert_int_equal(ba_submit_check_envid("caf\xc3\xa9", &err), -1);
	assert_int_equal(ba_submit_check_envid(longid, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	longid[100] = '\0';
	assert_int_equal(ba_submit_check_envid(longid, &err), 0);
}

/* the account's header settings reach the reader; -F wins over from_full_name */
static void test_submit__read_opts(void **state)
{
	(void)state;
	ba_config *cfg = load("account default\nhost h\nfrom a@x.test\nfrom_full_name Acc\n"
	                      "remove_bcc_headers off\nundisclosed_recipients on\n"
	                      "set_date_header off\n");
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *acc = ba_config_account(cfg, NULL, &err);
	struct ba_msg_read_opts o;
	ba_submit_read_opts(&o, acc, "a@x.test", NULL, BA_SUBMIT_READ_RCPT_FROM_HEADERS);
	assert_int_equal(o.flags, BA_MSG_READ_RCPT_FROM_HEADERS | BA_MSG_READ_UNDISCLOSED);
	assert_int_equal(o.set_date, BA_MSG_HDR_OFF);
	assert_string_equal(o.from_name, "Acc");
	assert_string_equal(o.from_addr, "a@x.test");
	ba_submit_read_opts(&o, acc, "", "Dash F", BA_SUBMIT_READ_DOTS_ARE_DATA);
	assert_int_equal(o.flags, BA_MSG_READ_DOTS_ARE_DATA | BA_MSG_READ_UNDISCLOSED);
	assert_null(o.from_addr); /* the null sender generates no From */
	assert_string_equal(o.from_name, "Dash F");
	ba_config_free(cfg);
}

/* ---- a send through the whole pipeline from a worker thread, cancelled by the "UI" ---- */

#define BIG ((uint64_t)20 * 1024 * 1024)

struct job {
	struct ba_submit sub;
	struct ba_submit_result res;
	struct ba_err err;
	int rc;
	_Atomic uint64_t sent;
	uint64_t total;
};

static void job_progress(void *ctx, uint64_t sent, uint64_t acked, uint64_t total)
{
	(void)acked;
	struct job *j = ctx;
	atomic_store(&j->sent, sent);
	j->total = total;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	j->rc = ba_submit_send(&j->res, &j->sub, &j->err);
	return NULL;
}

static void test_submit__cancel_from_another_thread(void **state)
{
	(void)state;
	struct sink_server sv;
	sink_server_start(&sv);
	char text[256];
	snprintf(text, sizeof(text), "account default\nhost 127.0.0.1\nport %u\ntimeout 60\n"
	         "from a@example.test\n", (unsigned)sv.port);
	ba_config *cfg = load(text);
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *acc = ba_submit_account(cfg, NULL, NULL, NULL, &err);
	assert_non_null(acc);
	ba_spool *spool = NULL;
	assert_int_equal(ba_spool_new(&spool, 0, &err), 0);
	struct gen_reader g = { { &gen_ops }, 0, BIG };
	char buf[65536];
	ssize_t k;
	while ((k = ba_read(&g.base, buf, sizeof(buf), &err)) > 0)
		assert_int_equal(ba_write(ba_spool_writer(spool), buf, (size_t)k, &err), 0);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	static const char *const rcpt[] = { "b@example.test" };
	struct job j;
	memset(&j, 0, sizeof(j));
	j.sub.acc = acc;
	j.sub.from = "a@example.test";
	j.sub.rcpt = rcpt;
	j.sub.nrcpt = 1;
	j.sub.spool = spool;
	j.sub.progress = job_progress;
	j.sub.progress_ctx = &j;
	j.sub.cancel_fd = &pfd[0];
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, job_main, &j), 0);
	struct timespec ms = { 0, 1000000L };
	for (int i = 0; i < 120000 && atomic_load(&j.sent) < BIG / 2; i++)
		nanosleep(&ms, NULL);
	assert_int_equal(write(pfd[1], "c", 1), 1);
	pthread_join(th, NULL);
	pthread_join(sv.th, NULL);
	close(sv.lfd);
	assert_int_equal(j.rc, -1);
	assert_int_equal(j.err.code, EX_TEMPFAIL);
	assert_true(j.err.flags & BA_ERR_CANCELLED);
	assert_true(j.total == ba_spool_wire_size(spool));
	assert_true(sv.saw_data);
	assert_false(sv.saw_end); /* the server never saw a complete message */
	ba_submit_result_release(&j.res);
	ba_spool_free(spool);
	ba_config_free(cfg);
	close(pfd[0]);
	close(pfd[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_submit__account_choice_order),
		cmocka_unit_test(test_submit__envelope_from),
		cmocka_unit_test(test_submit__recipients_and_aliases),
		cmocka_unit_test(test_submit__local_rcpt),
		cmocka_unit_test(test_submit__from_field),
		cmocka_unit_test(test_submit__describe),
		cmocka_unit_test(test_submit__dsn_values),
		cmocka_unit_test(test_submit__read_opts),
		cmocka_unit_test(test_submit__cancel_from_another_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
