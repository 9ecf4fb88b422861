/* unit tests for route.c: account -> session parameters */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/route.h"

/* A loopback port bound but not listening: connecting to it is refused. */
static int closed_port(int *fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*fd >= 0);
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/* Opens a route for "account t" with extra lines; returns the error. */
static struct ba_err open_route(const char *extra)
{
	int fd;
	int port = closed_port(&fd);
	char text[512];
	snprintf(text, sizeof text,
	         "account t\nhost 127.0.0.1\nport %d\ntimeout 5\nuser u\n%s", port, extra);
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	if (ba_config_parse(&cfg, "t.rc", text, strlen(text), &err) != 0)
		fail_msg("config: %s", err.text);
	const struct ba_account *acc = ba_config_account(cfg, "t", &err);
	if (!acc)
		fail_msg("account: %s", err.text);
	ba_route *r = NULL;
	assert_int_equal(ba_route_open(&r, acc, NULL, &err), -1);
	assert_null(r);
	ba_config_free(cfg);
	close(fd);
	return err;
}

/* auth external needs no password: it gets as far as connecting */
static void test_route__external_needs_no_password(void **state)
{
	(void)state;
	struct ba_err err = open_route("auth plain\n");
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "no password is configured"));
	err = open_route("auth external\n");
	if (err.code == EX_CONFIG || strstr(err.text, "password"))
		fail_msg("auth external: %s", err.text);
	assert_non_null(strstr(err.text, "127.0.0.1"));
}

struct asked {
	int calls;
	char user[64], host[64];
};

static int ask(void *ctx, const char *user, const char *host, struct ba_buf *out,
               struct ba_err *err)
{
	struct asked *a = ctx;
	(void)err;
	a->calls++;
	snprintf(a->user, sizeof(a->user), "%s", user);
	snprintf(a->host, sizeof(a->host), "%s", host);
	return ba_buf_addstr(out, "typed");
}

static int refuse(void *ctx, const char *user, const char *host, struct ba_buf *out,
                  struct ba_err *err)
{
	(void)ctx, (void)user, (void)host, (void)out;
	return ba_err_set(err, EX_CONFIG, "no terminal to ask on");
}

/* ask_password: called only when no password source exists, before connecting */
static void test_route__ask_password_only_without_a_source(void **state)
{
	(void)state;
	int fd;
	int port = closed_port(&fd);
	char text[512];
	snprintf(text, sizeof text,
	         "account t\nhost 127.0.0.1\nport %d\ntimeout 5\nuser u\nauth plain\n"
	         "account p : t\npassword configured\n", port);
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	if (ba_config_parse(&cfg, "t.rc", text, strlen(text), &err) != 0)
		fail_msg("config: %s", err.text);
	const struct ba_account *t = ba_config_account(cfg, "t", &err);
	const struct ba_account *p = ba_config_account(cfg, "p", &err);
	struct asked a;
	memset(&a, 0, sizeof(a));
	struct ba_route_opts o;
	memset(&o, 0, sizeof(o));
	o.ask_password = ask;
	o.ask_password_ctx = &a;
	ba_route *r = NULL;
	/* asked, then it goes on to connect (refused: the port does not listen) */
	assert_int_equal(ba_route_open(&r, t, &o, &err), -1);
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.user, "u");
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_not_equal(err.code, EX_CONFIG);
	/* a configured password: never asked */
	assert_int_equal(ba_route_open(&r, p, &o, &err), -1);
	assert_int_equal(a.calls, 1);
	/* the callback's error is the route's */
	o.ask_password = refuse;
	assert_int_equal(ba_route_open(&r, t, &o, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_string_equal(err.text, "no terminal to ask on");
	ba_config_free(cfg);
	close(fd);
}

/* A one-connection server thread: greets with `greeting`, answers EHLO and QUIT with 250/221. */
struct mini {
	int lfd;
	const char *greeting;
	int served;
	pthread_t t;
};

static void *mini_run(void *arg)
{
	struct mini *m = arg;
	int fd = accept(m->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	m->served = 1;
	char buf[512];
	ssize_t n = write(fd, m->greeting, strlen(m->greeting));
	if (strncmp(m->greeting, "220", 3) == 0) {
		while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
			buf[n] = '\0';
			const char *reply = strncmp(buf, "QUIT", 4) == 0 ? "221 bye\r\n" : "250 ok\r\n";
			if (write(fd, reply, strlen(reply)) < 0 || strncmp(buf, "QUIT", 4) == 0)
				break;
		}
	}
	(void)n;
	close(fd);
	return NULL;
}

static int mini_start(struct mini *m, const char *greeting)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	memset(m, 0, sizeof(*m));
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m->greeting = greeting;
	m->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(m->lfd >= 0);
	assert_int_equal(bind(m->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(m->lfd, 1), 0);
	assert_int_equal(getsockname(m->lfd, (struct sockaddr *)&a, &len), 0);
	assert_int_equal(pthread_create(&m->t, NULL, mini_run, m), 0);
	return ntohs(a.sin_port);
}

static void mini_stop(struct mini *m)
{
	shutdown(m->lfd, SHUT_RDWR); /* wakes an accept that never got a client */
	pthread_join(m->t, NULL);
	close(m->lfd);
}

/* the plan: a refused connection and a 421 greeting move on to the next host, in order */
static void test_route__plan_tries_the_next_target(void **state)
{
	(void)state;
	int cfd;
	struct mini busy, good;
	unsigned p_closed = (unsigned)closed_port(&cfd);
	unsigned p_busy = (unsigned)mini_start(&busy, "421 4.3.2 busy\r\n");
	unsigned p_good = (unsigned)mini_start(&good, "220 ok ESMTP\r\n");
	const char text[] = "account t\nhost 192.0.2.1\ntimeout 5\n";
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_config_parse(&cfg, "t.rc", text, strlen(text), &err), 0);
	const struct ba_account *acc = ba_config_account(cfg, "t", &err);
	assert_non_null(acc);

	struct ba_route_target plan[] = { { "127.0.0.1", p_closed, NULL, NULL, 0 },
		                          { "127.0.0.1", p_busy, NULL, NULL, 0 },
		                          { "127.0.0.1", p_good, NULL, NULL, 0 } };
	struct ba_route_opts o;
	memset(&o, 0, sizeof(o));
	o.plan = plan;
	o.nplan = 3;
	ba_route *r = NULL;
	assert_int_equal(ba_route_open(&r, acc, &o, &err), 0);
	char want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%u", p_good);
	assert_string_equal(ba_route_server(r), want);
	ba_route_free(r);
	mini_stop(&busy);
	mini_stop(&good);
	assert_true(busy.served && good.served);

	/* every target fails: the last one's class, each target's reason in the text */
	p_busy = (unsigned)mini_start(&busy, "421 4.3.2 busy\r\n");
	plan[2] = plan[0];
	plan[0].port = p_busy;
	o.nplan = 2;
	plan[1] = plan[2];
	assert_int_equal(ba_route_open(&r, acc, &o, &err), -1);
	assert_null(r);
	assert_int_equal(err.code, EX_TEMPFAIL);
	char a[64], b[64];
	snprintf(a, sizeof(a), "127.0.0.1:%u: ", p_busy);
	snprintf(b, sizeof(b), "; 127.0.0.1:%u: ", p_closed);
	if (!strstr(err.text, a) || !strstr(err.text, b) || !strstr(err.text, "421"))
		fail_msg("merged error: %s", err.text);
	mini_stop(&busy);
	close(cfd);
	ba_config_free(cfg);
}

/* a refusal that another host of the service would repeat ends the plan */
static void test_route__plan_stops_on_config_errors(void **state)
{
	(void)state;
	struct mini good;
	unsigned p_good = (unsigned)mini_start(&good, "220 ok ESMTP\r\n");
	const char text[] = "account t\nhost 127.0.0.1\ntimeout 5\nauth plain\n";
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_config_parse(&cfg, "t.rc", text, strlen(text), &err), 0);
	const struct ba_account *acc = ba_config_account(cfg, "t", &err);
	struct ba_route_target plan[] = { { "127.0.0.1", p_good, NULL, NULL, 0 } };
	struct ba_route_opts o;
	memset(&o, 0, sizeof(o));
	o.plan = plan;
	o.nplan = 1;
	ba_route *r = NULL;
	assert_int_equal(ba_route_open(&r, acc, &o, &err), -1);
	assert_int_equal(err.code, EX_CONFIG); /* auth without user: no connection at all */
	mini_stop(&good);
	assert_false(good.served);
	ba_config_free(cfg);
}

/* ---- ba_route_hint ---- */

#define FP "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"

/*
 * The hint for an account (base config + extra) and a report; checks that
 * every suggested line (two spaces first) parses in the account, and that no
 * line weakens TLS.
 */
static void hint_for(struct ba_buf *out, const char *extra, const struct ba_route_report *rep)
{
	char text[2048];
	snprintf(text, sizeof text, "account t\nhost mail.example.test\nport 587\n%s", extra);
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	if (ba_config_parse(&cfg, "t.rc", text, strlen(text), &err) != 0)
		fail_msg("config: %s", err.text);
	const struct ba_account *acc = ba_config_account(cfg, "t", &err);
	assert_non_null(acc);
	struct ba_err failed = BA_ERR_INIT;
	ba_err_set(&failed, EX_UNAVAILABLE, "it failed");
	ba_buf_reset(out);
	int n = ba_route_hint(out, acc, &failed, rep);
	assert_true(n >= 0);
	ba_config_free(cfg);
	/* every suggested line, pasted into the account, parses */
	size_t tl = strlen(text);
	for (const char *l = ba_buf_str(out); *l;) {
		size_t len = strcspn(l, "\n");
		if (strncmp(l, "  ", 2) == 0) {
			assert_true(tl + len + 1 < sizeof text);
			memcpy(text + tl, l + 2, len - 2);
			tl += len - 2;
			text[tl++] = '\n';
			text[tl] = 0;
		}
		assert_null(strstr(l, "certcheck"));
		assert_false(len == 9 && strncmp(l, "  tls off", 9) == 0);
		l += len + (l[len] == '\n');
	}
	cfg = NULL;
	if (ba_config_parse(&cfg, "t.rc", text, strlen(text), &err) != 0)
		fail_msg("a suggested line does not parse: %s\n%s", err.text, text);
	ba_config_free(cfg);
}

static void test_route__hint_tls_mode(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_route_report rep;
	memset(&rep, 0, sizeof rep);
	rep.port = 465;
	rep.wants_implicit_tls = 1;
	hint_for(&out, "tls on\ntls_starttls on\n", &rep);
	assert_non_null(strstr(ba_buf_str(&out), "port 465 expects implicit TLS"));
	assert_non_null(strstr(ba_buf_str(&out), "\n  tls_starttls off\n"));
	hint_for(&out, "tls off\n", &rep);
	assert_non_null(strstr(ba_buf_str(&out), "\n  tls on\n  tls_starttls off\n"));

	memset(&rep, 0, sizeof rep);
	rep.port = 587;
	rep.tls_attempted = 1;
	snprintf(rep.tls.plain, sizeof rep.tls.plain, "220 mx.example.test ESMTP");
	hint_for(&out, "tls on\ntls_starttls off\n", &rep);
	assert_non_null(strstr(ba_buf_str(&out), "speaks plain SMTP ('220 mx.example.test ESMTP')"));
	assert_non_null(strstr(ba_buf_str(&out), "\n  tls_starttls on\n"));
	ba_buf_release(&out);
}

static void test_route__hint_certificate(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_route_report rep;
	memset(&rep, 0, sizeof rep);
	rep.tls_attempted = 1;
	snprintf(rep.tls_host, sizeof rep.tls_host, "192.0.2.1");
	snprintf(rep.tls.sha256, sizeof rep.tls.sha256, "%s", FP);
	snprintf(rep.tls.issuer, sizeof rep.tls.issuer, "CN=Example CA");

	/* a name mismatch: the names, and an override with a name usable as it is */
	rep.tls.problems = BA_TLS_P_WRONG_NAME;
	snprintf(rep.tls.names[0], sizeof rep.tls.names[0], "*.example.test");
	snprintf(rep.tls.names[1], sizeof rep.tls.names[1], "x\nhost evil.test");
	snprintf(rep.tls.names[2], sizeof rep.tls.names[2], "smtp.example.test");
	rep.tls.nnames = 3;
	hint_for(&out, "tls on\ntls_starttls on\n", &rep);
	const char *h = ba_buf_str(&out);
	assert_non_null(strstr(h, "not valid for '192.0.2.1'; it holds '*.example.test'"));
	assert_non_null(strstr(h, "\n  tls_host_override smtp.example.test\n"));
	assert_non_null(strstr(h, "\n  tls_fingerprint " FP "\n"));
	assert_null(strstr(h, "  host evil.test"));
	/* only a wildcard: no line to paste, a sentence */
	rep.tls.nnames = 1;
	hint_for(&out, "tls on\ntls_starttls on\n", &rep);
	assert_null(strstr(ba_buf_str(&out), "tls_host_override"));
	assert_non_null(strstr(ba_buf_str(&out), "set 'host' to a name"));

	/* an unknown issuer: the trust file and the pin */
	rep.tls.problems = BA_TLS_P_UNKNOWN_ISSUER;
	hint_for(&out, "tls on\ntls_starttls on\n", &rep);
	assert_non_null(strstr(ba_buf_str(&out), "('CN=Example CA') is not trusted"));
	assert_non_null(strstr(ba_buf_str(&out), "\n  tls_trust_file "));
	assert_non_null(strstr(ba_buf_str(&out), "\n  tls_fingerprint " FP "\n"));
	rep.tls.problems = BA_TLS_P_UNKNOWN_ISSUER | BA_TLS_P_SELF_SIGNED;
	hint_for(&out, "tls on\ntls_starttls on\n", &rep);
	assert_non_null(strstr(ba_buf_str(&out), "self-signed"));
	assert_non_null(strstr(ba_buf_str(&out), "\n  tls_fingerprint " FP "\n"));

	/* revoked: never a pin */
	rep.tls.problems = BA_TLS_P_REVOKED | BA_TLS_P_EXPIRED;
	hint_for(&out, "tls on\ntls_starttls on\n", &rep);
	assert_non_null(strstr(ba_buf_str(&out), "revoked"));
	assert_null(strstr(ba_buf_str(&out), "tls_fingerprint"));

	/* another certificate than the pinned one: the new pin, with a warning */
	rep.tls.problems = BA_TLS_P_PIN_MISMATCH;
	hint_for(&out, "tls on\ntls_starttls on\ntls_fingerprint " FP "\n", &rep);
	assert_non_null(strstr(ba_buf_str(&out), "someone is in between"));
	ba_buf_release(&out);
}

static void test_route__hint_nothing_to_say(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_route_report rep;
	memset(&rep, 0, sizeof rep);
	rep.tls_attempted = 1;
	rep.tls.verified = 1;
	hint_for(&out, "tls on\ntls_starttls on\n", &rep);
	assert_string_equal(ba_buf_str(&out), "");
	ba_buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route__hint_tls_mode),
		cmocka_unit_test(test_route__hint_certificate),
		cmocka_unit_test(test_route__hint_nothing_to_say),
		cmocka_unit_test(test_route__external_needs_no_password),
		cmocka_unit_test(test_route__ask_password_only_without_a_source),
		cmocka_unit_test(test_route__plan_tries_the_next_target),
		cmocka_unit_test(test_route__plan_stops_on_config_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
