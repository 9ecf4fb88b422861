/* tests/unit/smtp.c - the SMTP engine against a scripted peer over a socketpair
 *
 * The peer thread plays a script: "S:" sends bytes, "C:" expects a command
 * line starting with the given prefix, "G:n" expects the next recv() to hold
 * exactly n lines (a pipelined group arrives in one write), "D" reads a DATA
 * body up to its "\r\n.\r\n", "B" reads one "BDAT n" command and its n bytes,
 * "W:ms" sleeps, "X" closes the peer's sending side, "T:" trickles its bytes one per 50 ms, "E" waits for the
 * client to close.  Everything received is kept in got for exact wire checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/smtp.h"

struct peer {
	int fd;
	const char *const *script;
	pthread_t th;
	char rx[1 << 20];
	size_t rs, re;
	struct ba_buf got;
	char fail[256];
	int eof;
};

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int peer_recv(struct peer *p)
{
	if (p->rs == p->re)
		p->rs = p->re = 0;
	ssize_t k = read(p->fd, p->rx + p->re, sizeof p->rx - p->re);
	if (k <= 0) {
		p->eof = 1;
		return -1;
	}
	ba_buf_add(&p->got, p->rx + p->re, (size_t)k);
	p->re += (size_t)k;
	return 0;
}

/* The next line (with its CRLF) into line; -1 at EOF. */
static int peer_line(struct peer *p, char *line, size_t max)
{
	for (;;) {
		char *lf = memchr(p->rx + p->rs, '\n', p->re - p->rs);
		if (lf) {
			size_t n = (size_t)(lf - (p->rx + p->rs)) + 1;
			size_t c = n < max - 1 ? n : max - 1;
			memcpy(line, p->rx + p->rs, c);
			line[c] = '\0';
			p->rs += n;
			return 0;
		}
		if (peer_recv(p) < 0)
			return -1;
	}
}

static int peer_bytes(struct peer *p, size_t n)
{
	while (p->re - p->rs < n)
		if (peer_recv(p) < 0)
			return -1;
	p->rs += n;
	return 0;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	char line[4096];
	for (const char *const *st = p->script; *st && !p->fail[0]; st++) {
		const char *a = *st + 2;
		switch (**st) {
		case 'S':
			if (write(p->fd, a, strlen(a)) < 0)
				snprintf(p->fail, sizeof p->fail, "write failed");
			break;
		case 'T':
			for (; *a; a++) {
				if (write(p->fd, a, 1) < 0)
					break;
				msleep(50);
			}
			break;
		case 'C':
			if (peer_line(p, line, sizeof line) < 0)
				snprintf(p->fail, sizeof p->fail, "EOF, expected '%s'", a);
			else if (strncmp(line, a, strlen(a)) != 0)
				snprintf(p->fail, sizeof p->fail, "got '%.100s', expected '%.100s'", line, a);
			break;
		case 'G': {
			if (peer_recv(p) < 0) {
				snprintf(p->fail, sizeof p->fail, "EOF, expected a group");
				break;
			}
			msleep(0);
			int n = 0;
			for (size_t i = p->rs; i < p->re; i++)
				n += p->rx[i] == '\n';
			if (n != (int)strtol(a, NULL, 10))
				snprintf(p->fail, sizeof p->fail, "group of %d lines, expected %s", n, a);
			break;
		}
		case 'D':
			for (;;) {
				if (peer_line(p, line, sizeof line) < 0) {
					snprintf(p->fail, sizeof p->fail, "EOF in DATA");
					break;
				}
				if (strcmp(line, ".\r\n") == 0)
					break;
			}
			break;
		case 'B': {
			if (peer_line(p, line, sizeof line) < 0 || strncmp(line, "BDAT ", 5) != 0) {
				snprintf(p->fail, sizeof p->fail, "expected BDAT, got '%.100s'", line);
				break;
			}
			if (peer_bytes(p, (size_t)strtoul(line + 5, NULL, 10)) < 0)
				snprintf(p->fail, sizeof p->fail, "EOF in BDAT");
			break;
		}
		case 'W':
			msleep((int)strtol(a, NULL, 10));
			break;
		case 'X':
			shutdown(p->fd, SHUT_WR);
			break;
		case 'E':
			while (peer_recv(p) == 0)
				;
			break;
		}
	}
	if (p->fail[0])
		fprintf(stderr, "peer: %s\n", p->fail);
	shutdown(p->fd, SHUT_WR); /* the script is over: the client sees the end */
	if (!p->fail[0] && !p->eof) {
		/* drain until the client closes so got holds everything sent */
		while (peer_recv(p) == 0)
			;
	}
	return NULL;
}

static struct peer *peer_start(const char *const *script, ba_stream **client)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct peer *p = calloc(1, sizeof *p);
	assert_non_null(p);
	p->fd = sv[1];
	p->script = script;
	ba_buf_init(&p->got, 0);
	*client = ba_fd_stream_new(sv[0], sv[0], "peer");
	assert_non_null(*client);
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
	return p;
}

/* Joins the peer (the client must have closed its end) and returns what it received. */
static const char *peer_end(struct peer *p)
{
	pthread_join(p->th, NULL);
	close(p->fd);
	if (p->fail[0])
		fail_msg("peer: %s", p->fail);
	return ba_buf_str(&p->got);
}

static void peer_free(struct peer *p)
{
	ba_buf_release(&p->got);
	free(p);
}

static struct ba_smtp_params params(void)
{
	struct ba_smtp_params p;
	memset(&p, 0, sizeof p);
	p.variant = BA_SMTP_SUBMISSION;
	p.helo = "client.test";
	p.timeout_ms = 5000;
	return p;
}

static int fake_tls_calls;
/* Pretends to upgrade: the stream stays as it is (the engine's logic is under test). */
static int fake_tls(void *ctx, ba_stream **stream, struct ba_err *err)
{
	(void)ctx;
	(void)stream;
	(void)err;
	fake_tls_calls++;
	return 0;
}

/* Opens a session against script and returns the open result; *sp is the session or NULL. */
static int open_with(const char *const *script, const struct ba_smtp_params *pp, struct peer **pr,
                     ba_session **sp, struct ba_err *err)
{
	ba_stream *st;
	*pr = peer_start(script, &st);
	int rc = ba_session_open(sp, st, pp, err);
	if (rc < 0)
		print_message("open: %s\n", err->text);
	return rc;
}

#define GREET "S:220 mx.test ESMTP\r\n"

static void test_smtp__caps(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO client.test\r\n",
		"S:250-mx.test hello\r\n250-SIZE 1000000\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
		"250-SMTPUTF8\r\n250-DSN\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
		"250-AUTH SCRAM-SHA-256 PLAIN\r\n250 STARTTLS\r\n",
		"C:QUIT\r\n", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	unsigned c = ba_session_caps(s);
	assert_true(c & BA_CAP_ESMTP);
	assert_true(c & BA_CAP_SIZE);
	assert_true(c & BA_CAP_PIPELINING);
	assert_true(c & BA_CAP_8BITMIME);
	assert_true(c & BA_CAP_SMTPUTF8);
	assert_true(c & BA_CAP_DSN);
	assert_true(c & BA_CAP_CHUNKING);
	assert_true(c & BA_CAP_ENHANCEDSTATUSCODES);
	assert_true(c & BA_CAP_AUTH);
	assert_true(c & BA_CAP_STARTTLS);
	assert_false(c & BA_CAP_BINARYMIME);
	assert_false(c & BA_CAP_TLS_ACTIVE);
	assert_true(ba_session_size_max(s) == 1000000);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
}

/* Runs a script that must fail ba_session_open with class want; returns the wire. */
static void open_fails(const char *const *sc, struct ba_smtp_params *pp, int want,
                       const char *wire, const char *text)
{
	struct peer *p;
	ba_session *s = NULL;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, pp, &p, &s, &err), -1);
	assert_null(s);
	if (err.code != want)
		fail_msg("class %d, want %d: %s", err.code, want, err.text);
	if (text && !strstr(err.text, text))
		fail_msg("error '%s' lacks '%s'", err.text, text);
	const char *got = peer_end(p);
	if (wire)
		assert_string_equal(got, wire);
	peer_free(p);
}

static void test_smtp__malformed_replies(void **state)
{
	(void)state;
	struct ba_smtp_params pp = params();
	static const char *const bad_code[] = { "S:2x0 hi\r\n", NULL };
	open_fails(bad_code, &pp, EX_PROTOCOL, "", "malformed");
	static const char *const bad_class[] = { "S:620 hi\r\n", NULL };
	open_fails(bad_class, &pp, EX_PROTOCOL, "", "malformed");
	static const char *const bad_sep[] = { "S:220_hi\r\n", NULL };
	open_fails(bad_sep, &pp, EX_PROTOCOL, "", "malformed");
	static const char *const mixed[] = { "S:220-hi\r\n250 there\r\n", NULL };
	open_fails(mixed, &pp, EX_PROTOCOL, "", "changes its code");
	static const char *const trailing[] = { "S:220 hi\r\n250 extra\r\n", NULL };
	open_fails(trailing, &pp, EX_PROTOCOL, "", "unexpected data");
	/* a refusal followed by more: the refusal counts, nothing more is sent */
	static const char *const refusal[] = { "S:421 busy\r\n421 closing\r\n", NULL };
	open_fails(refusal, &pp, EX_TEMPFAIL, "", "421 busy");
	static const char *const closed[] = { "S:220-hi\r\n", "X", NULL };
	open_fails(closed, &pp, EX_TEMPFAIL, "", "closed");
	static const char *const refused[] = { "S:554 go away\r\n", "C:QUIT", NULL };
	open_fails(refused, &pp, EX_UNAVAILABLE, "QUIT\r\n", "554 go away");
}

static void test_smtp__bounds(void **state)
{
	(void)state;
	struct ba_smtp_params pp = params();
	pp.line_max = 64;
	pp.reply_lines_max = 5;
	static char longline[300];
	memset(longline, 'x', sizeof longline - 1);
	memcpy(longline, "S:220 ", 6);
	static const char *const toolong[] = { longline, NULL };
	open_fails(toolong, &pp, EX_PROTOCOL, "", "longer than 64 bytes");
	static const char *const many[] = {
		"S:220-a\r\n220-b\r\n220-c\r\n220-d\r\n220-e\r\n220-f\r\n220 g\r\n", NULL
	};
	open_fails(many, &pp, EX_PROTOCOL, "", "longer than 5 lines");
	/* a trickling server cannot stretch one reply past the timeout */
	pp.timeout_ms = 300;
	static const char *const trickle[] = { "T:220-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL };
	int64_t t0 = ba_now_ms();
	open_fails(trickle, &pp, EX_TEMPFAIL, NULL, "in time");
	assert_true(ba_now_ms() - t0 < 2000);
}

static void test_smtp__helo_fallback(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO client.test\r\n", "S:502 what\r\n", "C:HELO client.test\r\n",
		"S:250 ok\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	assert_int_equal(ba_session_caps(s), 0);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
	/* found by fuzz/fuzz_smtp: no HELO when TLS or AUTH is required (it can do neither) */
	static const char *const refused[] = {
		GREET, "C:EHLO client.test\r\n", "S:502 what\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	pp.tls = BA_TLS_STARTTLS;
	pp.tls_start = fake_tls;
	open_fails(refused, &pp, EX_UNAVAILABLE, "EHLO client.test\r\nQUIT\r\n", "refused EHLO");
	pp = params();
	pp.user = "u";
	pp.password = "p";
	open_fails(refused, &pp, EX_UNAVAILABLE, "EHLO client.test\r\nQUIT\r\n", "refused EHLO");
}

static void test_smtp__starttls(void **state)
{
	(void)state;
	struct ba_smtp_params pp = params();
	pp.tls = BA_TLS_STARTTLS;
	pp.tls_start = fake_tls;
	/* not offered: only EHLO and QUIT leave the client */
	static const char *const none[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH PLAIN\r\n", "C:QUIT", NULL
	};
	fake_tls_calls = 0;
	open_fails(none, &pp, EX_UNAVAILABLE, "EHLO client.test\r\nQUIT\r\n", "STARTTLS");
	/* injection: a reply smuggled after the 220 aborts before anything else is sent */
	static const char *const inject[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 STARTTLS\r\n", "C:STARTTLS",
		"S:220 go ahead\r\n250 AUTH PLAIN\r\n", NULL
	};
	pp.user = "u";
	pp.password = "p";
	open_fails(inject, &pp, EX_PROTOCOL, "EHLO client.test\r\nSTARTTLS\r\n", "unexpected data");
	assert_int_equal(fake_tls_calls, 0);
	/* refused */
	static const char *const refused[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 STARTTLS\r\n", "C:STARTTLS", "S:454 no tls\r\n",
		"C:QUIT", NULL
	};
	open_fails(refused, &pp, EX_UNAVAILABLE, NULL, "454");
	/* success: capabilities are forgotten and learnt again from the second EHLO */
	static const char *const ok[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-SIZE 10\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
		"C:STARTTLS", "S:220 go ahead\r\n", "C:EHLO client.test\r\n",
		"S:250-mx\r\n250 8BITMIME\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	pp.user = NULL;
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(ok, &pp, &p, &s, &err), 0);
	assert_int_equal(fake_tls_calls, 1);
	assert_int_equal(ba_session_caps(s), BA_CAP_ESMTP | BA_CAP_8BITMIME | BA_CAP_TLS_ACTIVE);
	assert_true(ba_session_size_max(s) == 0);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
}

static void test_smtp__auth(void **state)
{
	(void)state;
	struct ba_smtp_params pp = params();
	pp.user = "u";
	pp.password = "p";
	/* no cleartext mechanism without TLS: nothing beyond EHLO is sent */
	static const char *const clear[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH PLAIN LOGIN\r\n", "C:QUIT", NULL
	};
	open_fails(clear, &pp, EX_NOPERM, "EHLO client.test\r\nQUIT\r\n", "need TLS");
	pp.auth_mech = "plain";
	open_fails(clear, &pp, EX_NOPERM, "EHLO client.test\r\nQUIT\r\n", "without TLS");
	/* with TLS: PLAIN with the initial response "\0u\0p" */
	pp.tls = BA_TLS_IMPLICIT;
	pp.auth_mech = NULL;
	static const char *const ok[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH LOGIN PLAIN\r\n", "C:AUTH PLAIN AHUAcA==\r\n",
		"S:235 2.7.0 ok\r\n", "C:QUIT", NULL
	};
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(ok, &pp, &p, &s, &err), 0);
	assert_true(ba_session_caps(s) & BA_CAP_AUTHENTICATED);
	assert_string_equal(ba_session_auth_mech(s), "PLAIN");
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
	/* refused */
	static const char *const bad[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH PLAIN\r\n", "C:AUTH PLAIN",
		"S:535 5.7.8 bad credentials\r\n", "C:QUIT", NULL
	};
	open_fails(bad, &pp, EX_NOPERM, NULL, "535 5.7.8 bad credentials");
	/* an unexpected further challenge is cancelled with "*", the password is not resent */
	static const char *const more[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH PLAIN\r\n", "C:AUTH PLAIN AHUAcA==",
		"S:334 \r\n", "C:*\r\n", "S:501 cancelled\r\n", NULL
	};
	open_fails(more, &pp, EX_PROTOCOL,
	           "EHLO client.test\r\nAUTH PLAIN AHUAcA==\r\n*\r\n", NULL);
	/* LOGIN: two challenges */
	pp.auth_mech = "login";
	static const char *const login[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH LOGIN\r\n", "C:AUTH LOGIN\r\n",
		"S:334 VXNlcm5hbWU6\r\n", "C:dQ==\r\n", "S:334 UGFzc3dvcmQ6\r\n", "C:cA==\r\n",
		"S:235 ok\r\n", "C:QUIT", NULL
	};
	assert_int_equal(open_with(login, &pp, &p, &s, &err), 0);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
	/* not offered */
	static const char *const noauth[] = { GREET, "C:EHLO", "S:250 mx\r\n", "C:QUIT", NULL };
	open_fails(noauth, &pp, EX_NOPERM, NULL, "does not offer");
}

static int fake_cb_ok(void *ctx, ba_stream *stream, struct ba_buf *out, const char **type)
{
	(void)ctx;
	(void)stream;
	*type = "tls-unique";
	return ba_buf_add(out, "0123456789ab", 12);
}

static int fake_cb_none(void *ctx, ba_stream *stream, struct ba_buf *out, const char **type)
{
	(void)ctx;
	(void)stream;
	(void)out;
	(void)type;
	return -1;
}

/* RFC 5802 §6 gs2-cbind-flag: "p=" with -PLUS, "y" when the server lacks -PLUS, else "n" */
static void test_smtp__scram_channel_binding(void **state)
{
	(void)state;
	struct ba_smtp_params pp = params();
	pp.user = "u";
	pp.password = "p";
	pp.tls = BA_TLS_IMPLICIT;
	pp.tls_binding = fake_cb_ok;
	/* base64 of "p=tls-unique,,n=u,", "y,,n=u,r=", "n,,n=u,r=" */
	static const char *const plus[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n",
		"C:AUTH SCRAM-SHA-256-PLUS cD10bHMtdW5pcXVlLCxuPXUs", "S:535 no\r\n", "C:QUIT", NULL
	};
	open_fails(plus, &pp, EX_NOPERM, NULL, "535");
	static const char *const y[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH SCRAM-SHA-256\r\n",
		"C:AUTH SCRAM-SHA-256 eSwsbj11LHI9", "S:535 no\r\n", "C:QUIT", NULL
	};
	open_fails(y, &pp, EX_NOPERM, NULL, "535");
	/* no binding obtainable (e.g. a TLS library without it): plain SCRAM with "n" */
	pp.tls_binding = fake_cb_none;
	static const char *const n[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n",
		"C:AUTH SCRAM-SHA-256 biwsbj11LHI9", "S:535 no\r\n", "C:QUIT", NULL
	};
	open_fails(n, &pp, EX_NOPERM, NULL, "535");
	/* -PLUS configured but no binding: refused before anything is sent */
	pp.auth_mech = "scram-sha-256-plus";
	static const char *const forced[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH SCRAM-SHA-256-PLUS\r\n", "C:QUIT", NULL
	};
	open_fails(forced, &pp, EX_NOPERM, "EHLO client.test\r\nQUIT\r\n", "channel binding");
}

/* EXTERNAL: the user goes as the authorization identity, as msmtp does (RFC 4422 App. A) */
static void test_smtp__external_authzid(void **state)
{
	(void)state;
	struct ba_smtp_params pp = params();
	pp.user = "u";
	pp.tls = BA_TLS_IMPLICIT;
	pp.flags = BA_SMTP_CLIENT_CERT;
	/* chosen by itself with a certificate, although a password mechanism is offered */
	static const char *const ext[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH PLAIN EXTERNAL\r\n",
		"C:AUTH EXTERNAL dQ==\r\n", "S:535 no\r\n", "C:QUIT", NULL
	};
	open_fails(ext, &pp, EX_NOPERM, NULL, "535");
	pp.flags = 0;
	pp.auth_mech = "external";
	open_fails(ext, &pp, EX_NOPERM, NULL, "535");
}

static const struct ba_rcpt two[] = { { "a@x.test", 0, NULL }, { "b@x.test", 0, NULL } };

static int send_msg(ba_session *s, const struct ba_envelope *env, const char *body,
                    struct ba_result **res, struct ba_err *err)
{
	struct ba_mem_reader mr;
	ba_mem_reader_init(&mr, body, strlen(body));
	int rc = ba_session_send(s, env, &mr.base, res, err);
	if (rc < 0)
		print_message("send: %s\n", err->text);
	return rc;
}

static void test_smtp__pipelined_send(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-PIPELINING\r\n250-DSN\r\n250 SIZE 100000\r\n",
		"G:4", "S:250 ok\r\n250 ok\r\n251 forward\r\n354 go\r\n", "D", "S:250 queued\r\n",
		/* the second message: one write again, no RSET after a success */
		"G:3", "S:250 ok\r\n250 ok\r\n354 go\r\n", "D", "S:250 queued\r\n", "C:QUIT",
		"S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_rcpt r2[] = { { "a@x.test", BA_NOTIFY_SUCCESS | BA_NOTIFY_FAILURE, "A+b=c@x.test" },
		                { "b@x.test", BA_NOTIFY_NEVER, NULL } };
	struct ba_envelope env = { "me@x.test", r2, 2, 1234, BA_BODY_7BIT, 0, BA_RET_HDRS, "id 1", NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "Subject: x\n\n.hi\n", &res, &err), 0);
	assert_int_equal(res->naccepted, 2);
	assert_int_equal(res->code, 250);
	assert_string_equal(res->text, "queued");
	assert_int_equal(res->rcpts[1].code, 251);
	ba_result_free(res);
	struct ba_envelope env1 = { "", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	assert_int_equal(send_msg(s, &env1, "x", &res, &err), 0);
	ba_result_free(res);
	ba_session_free(s);
	const char *got = peer_end(p);
	assert_string_equal(got,
	                    "EHLO client.test\r\n"
	                    "MAIL FROM:<me@x.test> SIZE=1234 RET=HDRS ENVID=id+201\r\n"
	                    "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2Bb+3Dc@x.test\r\n"
	                    "RCPT TO:<b@x.test> NOTIFY=NEVER\r\n"
	                    "DATA\r\n"
	                    "Subject: x\r\n\r\n..hi\r\n.\r\n"
	                    "MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nDATA\r\nx\r\n.\r\n"
	                    "QUIT\r\n");
	peer_free(p);
}

/* What the done callback of pipelining across messages saw, in order. */
struct verdicts {
	int n;
	int rc[4], code[4], cls[4], smtp[4];
	size_t naccepted[4];
	char text[4][64];
};

static void on_done(void *ctx, struct ba_result *res, int rc, const struct ba_err *err)
{
	struct verdicts *v = ctx;
	assert_true(v->n < 4);
	size_t acc = 0;
	for (size_t i = 0; i < res->nrcpts; i++)
		acc += res->rcpts[i].accepted;
	v->rc[v->n] = rc;
	v->code[v->n] = res->code;
	v->cls[v->n] = rc < 0 ? err->code : 0;
	v->smtp[v->n] = rc < 0 ? err->smtp_code : 0;
	v->naccepted[v->n] = acc;
	snprintf(v->text[v->n], sizeof v->text[0], "%s", res->text);
	v->n++;
	ba_result_free(res);
}

static void test_smtp__pipelined_across_messages(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 PIPELINING\r\n",
		"G:3", "C:MAIL", "C:RCPT", "C:DATA", "S:250 ok\r\n250 ok\r\n354 go\r\n",
		/* the first message's data and end travel with the second's commands */
		"G:5", "D", "C:MAIL FROM:<two@", "C:RCPT", "C:DATA",
		"S:250 first queued\r\n550 5.7.1 sender refused\r\n503 need MAIL\r\n"
		"503 need MAIL\r\n",
		/* the third: RSET, as after any refusal; its verdict comes when the session ends */
		"G:4", "C:RSET", "C:MAIL", "C:RCPT", "C:DATA", "S:250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n",
		"G:2", "D", "S:451 4.3.0 try later\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	struct verdicts v;
	memset(&v, 0, sizeof v);
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope e1 = { "one@x.test", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL,
		                  on_done, &v };
	struct ba_envelope e2 = e1, e3 = e1;
	e2.from = "two@x.test";
	e3.from = "three@x.test";
	struct ba_result *res = (struct ba_result *)&v;
	assert_int_equal(send_msg(s, &e1, "x", &res, &err), 1);
	assert_null(res);
	assert_int_equal(v.n, 0); /* no verdict yet */
	/* the second's refusal is its own; the first's 250 is the first's */
	assert_int_equal(send_msg(s, &e2, "y", &res, &err), -1);
	assert_int_equal(err.code, EX_UNAVAILABLE);
	assert_int_equal(err.smtp_code, 550);
	assert_non_null(res);
	assert_int_equal(res->naccepted, 0);
	ba_result_free(res);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.rc[0], 0);
	assert_int_equal(v.code[0], 250);
	assert_int_equal(v.naccepted[0], 1);
	assert_string_equal(v.text[0], "first queued");
	ba_err_clear(&err);
	assert_int_equal(send_msg(s, &e3, "z", &res, &err), 1);
	assert_int_equal(v.n, 1);
	ba_session_free(s); /* reads the third's verdict, then QUIT */
	assert_int_equal(v.n, 2);
	assert_int_equal(v.rc[1], -1);
	assert_int_equal(v.cls[1], EX_TEMPFAIL);
	assert_int_equal(v.smtp[1], 451);
	assert_int_equal(v.naccepted[1], 0);
	const char *got = peer_end(p);
	assert_string_equal(got,
	                    "EHLO client.test\r\n"
	                    "MAIL FROM:<one@x.test>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"
	                    "x\r\n.\r\nMAIL FROM:<two@x.test>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"
	                    "RSET\r\nMAIL FROM:<three@x.test>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"
	                    "z\r\n.\r\nQUIT\r\n");
	peer_free(p);
}

/* A data_end hook that fails at its fail_at-th call (1-based; 0 = never). */
struct ends {
	int n, fail_at;
};

static int on_data_end(void *ctx, struct ba_err *err)
{
	struct ends *d = ctx;
	if (++d->n == d->fail_at)
		return ba_err_set(err, EX_IOERR, "in-flight mark not written");
	return 0;
}

/*
 * data_end with pipelining across messages: called once per message before
 * its end of data is held for the next message's commands; failing there
 * drops the send as a cancel does (neither that message's data nor its end
 * reach the server), and the earlier message's verdict is still handed over.
 */
static void test_smtp__pipelined_across_data_end(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 PIPELINING\r\n",
		"G:3", "C:MAIL", "C:RCPT", "C:DATA", "S:250 ok\r\n250 ok\r\n354 go\r\n",
		"G:5", "D", "C:MAIL FROM:<two@", "C:RCPT", "C:DATA",
		"S:250 first queued\r\n250 ok\r\n250 ok\r\n354 go\r\n", "E", NULL
	};
	struct ba_smtp_params pp = params();
	struct ends d = { 0, 2 };
	pp.data_end = on_data_end;
	pp.data_end_ctx = &d;
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	struct verdicts v;
	memset(&v, 0, sizeof v);
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope e1 = { "one@x.test", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL,
		                  on_done, &v };
	struct ba_envelope e2 = e1;
	e2.from = "two@x.test";
	struct ba_result *res = NULL;
	assert_int_equal(send_msg(s, &e1, "x", &res, &err), 1);
	assert_int_equal(d.n, 1); /* before its end was held */
	assert_int_equal(send_msg(s, &e2, "y", &res, &err), -1);
	assert_int_equal(d.n, 2);
	assert_int_equal(err.code, EX_IOERR);
	assert_non_null(res);
	assert_int_equal(res->naccepted, 0);
	assert_int_equal(res->rcpts[0].accepted, 0);
	ba_result_free(res);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.rc[0], 0);
	assert_int_equal(v.code[0], 250);
	assert_int_equal(v.naccepted[0], 1);
	ba_session_free(s);
	assert_int_equal(v.n, 1);
	const char *got = peer_end(p);
	assert_string_equal(got,
	                    "EHLO client.test\r\n"
	                    "MAIL FROM:<one@x.test>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"
	                    "x\r\n.\r\nMAIL FROM:<two@x.test>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n");
	peer_free(p);
}

/* 421 as the verdict on the first message: neither it nor the second counts as delivered. */
static void test_smtp__pipelined_across_421(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 PIPELINING\r\n",
		"G:3", "C:MAIL", "C:RCPT", "C:DATA", "S:250 ok\r\n250 ok\r\n354 go\r\n",
		"G:5", "D", "S:421 4.3.2 shutting down\r\n", "X", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	struct verdicts v;
	memset(&v, 0, sizeof v);
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope e1 = { "one@x.test", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL,
		                  on_done, &v };
	struct ba_envelope e2 = e1;
	struct ba_result *res = NULL;
	assert_int_equal(send_msg(s, &e1, "x", &res, &err), 1);
	assert_int_equal(send_msg(s, &e2, "y", &res, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_true(res == NULL || res->naccepted == 0);
	ba_result_free(res);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.rc[0], -1);
	assert_int_equal(v.code[0], 421);
	assert_int_equal(v.cls[0], EX_TEMPFAIL);
	assert_int_equal(v.naccepted[0], 0);
	/* the session is dead: the next send fails at once, nothing pending is left */
	ba_err_clear(&err);
	assert_int_equal(send_msg(s, &e2, "y", &res, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	ba_session_free(s);
	assert_int_equal(v.n, 1);
	peer_end(p);
	peer_free(p);
}

/* The connection closes before the verdict: the message is not delivered (not known). */
static void test_smtp__pipelined_across_lost(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 PIPELINING\r\n",
		"G:4", "C:MAIL", "C:RCPT", "C:RCPT", "C:DATA",
		"S:250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "X", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	struct verdicts v;
	memset(&v, 0, sizeof v);
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope e1 = { "one@x.test", two, 2, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL,
		                  on_done, &v };
	struct ba_result *res = NULL;
	assert_int_equal(send_msg(s, &e1, "x", &res, &err), 1);
	ba_session_free(s);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.rc[0], -1);
	assert_int_equal(v.cls[0], EX_TEMPFAIL);
	assert_int_equal(v.naccepted[0], 0);
	peer_end(p);
	peer_free(p);
}

/* A send refused before it writes (over SIZE) still hands over the earlier verdict first. */
static void test_smtp__pipelined_across_local_refusal(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-SIZE 100\r\n250 PIPELINING\r\n",
		"G:3", "C:MAIL", "C:RCPT", "C:DATA", "S:250 ok\r\n250 ok\r\n354 go\r\n",
		"G:2", "D", "S:250 first queued\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	struct verdicts v;
	memset(&v, 0, sizeof v);
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope e1 = { "one@x.test", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL,
		                  on_done, &v };
	struct ba_envelope e2 = e1;
	e2.size = 1000;
	struct ba_result *res = NULL;
	assert_int_equal(send_msg(s, &e1, "x", &res, &err), 1);
	assert_int_equal(send_msg(s, &e2, "y", &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_result_free(res);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.rc[0], 0);
	assert_string_equal(v.text[0], "first queued");
	ba_session_free(s);
	assert_int_equal(v.n, 1);
	peer_end(p);
	peer_free(p);
}

/* Without PIPELINING a done callback changes nothing: lock-step, the verdict awaited. */
static void test_smtp__pipelined_across_lockstep(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 8BITMIME\r\n",
		"G:1", "C:MAIL", "S:250 ok\r\n", "G:1", "C:RCPT", "S:250 ok\r\n", "G:1", "C:DATA",
		"S:354 go\r\n", "D", "S:250 queued\r\n",
		"G:1", "C:MAIL", "S:250 ok\r\n", "G:1", "C:RCPT", "S:250 ok\r\n", "G:1", "C:DATA",
		"S:354 go\r\n", "D", "S:250 queued\r\n", "G:1", "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	struct verdicts v;
	memset(&v, 0, sizeof v);
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope e1 = { "one@x.test", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL,
		                  on_done, &v };
	struct ba_result *res = NULL;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(send_msg(s, &e1, "x", &res, &err), 0);
		assert_non_null(res);
		assert_int_equal(res->naccepted, 1);
		ba_result_free(res);
	}
	ba_session_free(s);
	assert_int_equal(v.n, 0);
	peer_end(p);
	peer_free(p);
}

static void test_smtp__refused_recipients(void **state)
{
	(void)state;
	/* without pipelining: a refused recipient means no DATA, then RSET before the next */
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 ENHANCEDSTATUSCODES\r\n", "C:MAIL", "S:250 ok\r\n",
		"C:RCPT TO:<a@", "S:250 ok\r\n", "C:RCPT TO:<b@", "S:550 5.1.1 no such user\r\n",
		/* the second attempt with partial delivery */
		"C:RSET", "S:250 ok\r\n", "C:MAIL", "S:250 ok\r\n", "C:RCPT TO:<a@", "S:250 ok\r\n",
		"C:RCPT TO:<b@", "S:450 4.2.0 later\r\n", "C:DATA", "S:354 go\r\n", "D",
		"S:250 queued\r\n",
		/* all refused */
		"C:MAIL", "S:250 ok\r\n", "C:RCPT", "S:550 no\r\n", "C:RCPT", "S:551 no\r\n",
		"C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope env = { "me@x.test", two, 2, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), -1);
	assert_int_equal(err.code, EX_NOUSER);
	assert_int_equal(err.smtp_code, 550);
	assert_string_equal(err.enhanced, "5.1.1");
	assert_non_null(strstr(err.text, "'b@x.test'"));
	assert_non_null(strstr(err.text, "nothing was sent"));
	assert_int_equal(res->naccepted, 0);
	assert_int_equal(res->rcpts[1].code, 550);
	assert_string_equal(res->rcpts[1].text, "5.1.1 no such user");
	ba_result_free(res);
	pp.flags = BA_SMTP_PARTIAL_DELIVERY;
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), 0);
	assert_int_equal(res->naccepted, 1);
	assert_int_equal(res->rcpts[0].accepted, 1);
	assert_int_equal(res->rcpts[1].accepted, 0);
	assert_int_equal(res->rcpts[1].code, 450);
	ba_result_free(res);
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), -1);
	assert_int_equal(err.code, EX_NOUSER);
	assert_non_null(strstr(err.text, "and 1 more"));
	ba_result_free(res);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
}

static void test_smtp__pipelined_refusal_drops(void **state)
{
	(void)state;
	/* DATA already answered 354 but one recipient was refused: hang up, send nothing */
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 PIPELINING\r\n", "G:4",
		"S:250 ok\r\n250 ok\r\n450 busy\r\n354 go\r\n", "E", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope env = { "me@x.test", two, 2, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "secret body\n", &res, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	ba_result_free(res);
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), -1);
	assert_null(res);
	ba_session_free(s);
	const char *got = peer_end(p);
	assert_null(strstr(got, "secret"));
	assert_null(strstr(got, "QUIT"));
	peer_free(p);
}

static void test_smtp__lost_after_data_delivers_to_no_one(void **state)
{
	(void)state;
	/* every RCPT accepted, then the connection ends after the data without a verdict */
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 PIPELINING\r\n", "G:4",
		"S:250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "D", "X", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope env = { "me@x.test", two, 2, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), -1);
	assert_non_null(res);
	/* accepted means delivered: nobody got a message the server never confirmed */
	assert_int_equal(res->rcpts[0].accepted, 0);
	assert_int_equal(res->rcpts[1].accepted, 0);
	ba_result_free(res);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
}

static void test_smtp__lmtp_lost_after_first_verdict(void **state)
{
	(void)state;
	/* LMTP: the first recipient's verdict arrives, then the connection ends */
	static const char *const sc[] = {
		GREET, "C:LHLO client.test", "S:250-mx\r\n250 PIPELINING\r\n", "G:4",
		"S:250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "D", "S:250 2.0.0 a done\r\n",
		"X", NULL
	};
	struct ba_smtp_params pp = params();
	pp.variant = BA_SMTP_LMTP;
	pp.flags = BA_SMTP_PARTIAL_DELIVERY;
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope env = { "me@x.test", two, 2, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), -1);
	assert_non_null(res);
	assert_int_equal(res->rcpts[0].accepted, 1);
	assert_int_equal(res->rcpts[1].accepted, 0);
	ba_result_free(res);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
}

static void test_smtp__lmtp(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:LHLO client.test", "S:250-mx\r\n250 PIPELINING\r\n", "G:5",
		"S:250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n", "D",
		"S:250 2.0.0 a done\r\n452 4.2.2 c over quota\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	pp.variant = BA_SMTP_LMTP;
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_rcpt three[] = { { "a@x", 0, NULL }, { "b@x", 0, NULL }, { "c@x", 0, NULL } };
	struct ba_envelope env = { "me@x", three, 3, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	pp.flags = BA_SMTP_PARTIAL_DELIVERY;
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), 0);
	assert_int_equal(res->naccepted, 1);
	assert_int_equal(res->rcpts[0].accepted, 1);
	assert_string_equal(res->rcpts[0].enhanced, "2.0.0");
	assert_int_equal(res->rcpts[1].code, 550);
	assert_int_equal(res->rcpts[2].code, 452);
	assert_string_equal(res->rcpts[2].enhanced, "4.2.2");
	assert_int_equal(res->rcpts[2].accepted, 0);
	ba_result_free(res);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
}

static void test_smtp__bdat(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-CHUNKING\r\n250 PIPELINING\r\n", "G:2",
		"C:MAIL", "C:RCPT", "S:250 ok\r\n250 ok\r\n", "B", "S:250 ok\r\n", "B", "S:250 done\r\n", "C:QUIT",
		"S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	/* 600 KB of lines: two chunks, the first over 512 KB */
	size_t n = 600 * 1024;
	char *body = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		body[i] = i % 100 == 99 ? '\n' : (i % 100 == 0 ? '.' : 'a');
	body[n] = '\0';
	struct ba_envelope env = { "me@x", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, body, &res, &err), 0);
	assert_string_equal(res->text, "done");
	ba_result_free(res);
	ba_session_free(s);
	const char *got = peer_end(p);
	/* no dot-stuffing with BDAT, LF became CRLF: 600 KB + 6144 CRs */
	const char *b1 = strstr(got, "BDAT ");
	assert_non_null(b1);
	const char *b2 = strstr(b1 + 1, "BDAT ");
	assert_non_null(b2);
	size_t n1 = strtoul(b1 + 5, NULL, 10), n2 = strtoul(b2 + 5, NULL, 10);
	assert_int_equal(n1 + n2, n + n / 100);
	assert_non_null(strstr(b2, " LAST\r\n"));
	assert_memory_equal(strchr(b1, '\n') + 1, ".aaa", 4);
	free(body);
	peer_free(p);
}

static void test_smtp__envelope_checks(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 SIZE 1000\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_result *res;
	static const char *const bad[] = { "a@b> NOTIFY=SUCCESS", "a@b\r\nRSET", "<a@b>", "a b@c",
		                           "a@b\x01" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ba_rcpt r = { bad[i], 0, NULL };
		struct ba_envelope env = { "me@x", &r, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
		assert_int_equal(send_msg(s, &env, "x", &res, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		ba_result_free(res);
		struct ba_envelope env2 = { bad[i], two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
		assert_int_equal(send_msg(s, &env2, "x", &res, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		ba_result_free(res);
	}
	/* RFC 5321 §4.1.1.3: a null reverse-path is fine, a null forward-path is not */
	struct ba_rcpt empty = { "", 0, NULL };
	struct ba_envelope enve = { "", &empty, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	assert_int_equal(send_msg(s, &enve, "x", &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_result_free(res);
	struct ba_rcpt u = { "j\xc3\xb6rg@x", 0, NULL };
	struct ba_envelope envu = { "me@x", &u, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	assert_int_equal(send_msg(s, &envu, "x", &res, &err), -1);
	assert_non_null(strstr(err.text, "SMTPUTF8"));
	ba_result_free(res);
	struct ba_envelope env8 = { "me@x", two, 1, 0, BA_BODY_8BITMIME, 0, BA_RET_NONE, NULL, NULL, NULL };
	assert_int_equal(send_msg(s, &env8, "x", &res, &err), -1);
	assert_non_null(strstr(err.text, "8BITMIME"));
	ba_result_free(res);
	struct ba_envelope big = { "me@x", two, 1, 1001, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	assert_int_equal(send_msg(s, &big, "x", &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(err.smtp_code, 552);
	ba_result_free(res);
	ba_session_free(s);
	/* nothing but EHLO and QUIT went out */
	assert_string_equal(peer_end(p), "EHLO client.test\r\nQUIT\r\n");
	peer_free(p);
}

static void test_smtp__bad_body_drops(void **state)
{
	(void)state;
	/* 8-bit data without 8BITMIME, and a line over 998 octets: the data never ends */
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250 mx\r\n", "C:MAIL", "S:250 ok\r\n", "C:RCPT", "S:250 ok\r\n",
		"C:DATA", "S:354 go\r\n", "E", NULL
	};
	for (int k = 0; k < 2; k++) {
		struct ba_smtp_params pp = params();
		struct peer *p;
		ba_session *s;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
		static char body[2000];
		memset(body, 'a', sizeof body - 1);
		if (k == 0)
			memcpy(body, "ok\n\xe9t\xe9\n", 8);
		struct ba_envelope env = { "me@x", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
		struct ba_result *res;
		assert_int_equal(send_msg(s, &env, body, &res, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_non_null(strstr(err.text, k == 0 ? "8-bit" : "998"));
		ba_result_free(res);
		ba_session_free(s);
		const char *got = peer_end(p);
		assert_null(strstr(got, "\r\n.\r\n"));
		assert_null(strstr(got, "\xe9"));
		peer_free(p);
	}
}

/* CRLF normalisation and dot-stuffing, whole and split at every position. */
static void test_smtp__data_transform(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } v[] = {
		{ "", ".\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ "a\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\r\n.\nb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\r.\rb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "\r\n.\r\n", "\r\n..\r\n.\r\n" },
		{ "x\r\r\ny", "x\r\n\r\ny\r\n.\r\n" },
		{ "..\n", "...\r\n.\r\n" },
		{ "a.b\n .\n", "a.b\r\n .\r\n.\r\n" },
		{ "\r", "\r\n.\r\n" },
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		size_t n = strlen(v[i].in);
		for (size_t cut = 0; cut <= n; cut++) {
			struct ba_buf out;
			ba_buf_init(&out, 0);
			struct ba_smtp_data_state st = { 0 };
			struct ba_err err = BA_ERR_INIT;
			assert_int_equal(ba_smtp_data_add(&out, &st, 1, v[i].in, cut, &err), 0);
			assert_int_equal(ba_smtp_data_add(&out, &st, 1, v[i].in + cut, n - cut, &err), 0);
			assert_int_equal(ba_smtp_data_end(&out, &st, 1, &err), 0);
			assert_string_equal(ba_buf_str(&out), v[i].out);
			ba_buf_release(&out);
		}
	}
	/* 998 octets pass, 999 fail; a stuffed dot does not count */
	static char line[1001];
	memset(line, '.', 998);
	struct ba_buf out;
	ba_buf_init(&out, 0);
	struct ba_smtp_data_state st = { 0 };
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_smtp_data_add(&out, &st, 1, line, 998, &err), 0);
	assert_int_equal(ba_smtp_data_add(&out, &st, 1, "\n", 1, &err), 0);
	assert_int_equal(ba_smtp_data_add(&out, &st, 1, line, 999, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_buf_release(&out);
}

/* A refused MAIL under PIPELINING is the error, not the 503s the server sends after it. */
static void mail_refused_case(const char *reply, int want_class, int want_code, const char *want)
{
	const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n", "G:4",
		"C:MAIL", "C:RCPT", "C:RCPT", "C:DATA", reply, "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope env = { "me@x.test", two, 2, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "x\n", &res, &err), -1);
	assert_int_equal(err.code, want_class);
	assert_int_equal(err.smtp_code, want_code);
	assert_non_null(strstr(err.text, want));
	assert_null(strstr(err.text, "503"));
	assert_int_equal(res->code, want_code);
	assert_int_equal(res->naccepted, 0);
	/* the recipients were never reached: their 503 is not their outcome */
	assert_int_equal(res->rcpts[0].code, 0);
	assert_int_equal(res->rcpts[1].code, 0);
	ba_result_free(res);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
}

static void test_smtp__pipelined_mail_refused(void **state)
{
	(void)state;
	mail_refused_case("S:451 4.3.0 sender check deferred\r\n503 5.5.1 need MAIL\r\n"
	                  "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n",
	                  EX_TEMPFAIL, 451, "451 4.3.0 sender check deferred");
	mail_refused_case("S:550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n"
	                  "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n",
	                  EX_UNAVAILABLE, 550, "550 5.7.1 sender refused");
}

/* A BDAT chunk before the last one refused: that reply is the error, LAST never goes out. */
static void bdat_refused_case(const char *reply, int want_class, const char *want)
{
	const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n",
		"C:MAIL", "S:250 ok\r\n", "C:RCPT", "S:250 ok\r\n", "B", reply, "C:QUIT",
		"S:221 bye\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	size_t n = 700 * 1024;
	char *body = malloc(n + 1);
	assert_non_null(body);
	for (size_t i = 0; i < n; i++)
		body[i] = i % 100 == 99 ? '\n' : 'a';
	body[n] = '\0';
	struct ba_envelope env = { "me@x", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, body, &res, &err), -1);
	assert_int_equal(err.code, want_class);
	assert_non_null(strstr(err.text, want));
	assert_int_equal(res->naccepted, 0);
	ba_result_free(res);
	ba_session_free(s);
	const char *got = peer_end(p);
	assert_null(strstr(got, " LAST"));
	free(body);
	peer_free(p);
}

static void test_smtp__bdat_chunk_refused(void **state)
{
	(void)state;
	bdat_refused_case("S:451 4.3.0 queue full\r\n", EX_TEMPFAIL, "451 4.3.0 queue full");
	bdat_refused_case("S:554 5.6.0 refused\r\n", EX_DATAERR, "554 5.6.0 refused");
}

static int fake_tls_fail(void *ctx, ba_stream **stream, struct ba_err *err)
{
	(void)ctx;
	fake_tls_calls++;
	ba_stream_free(*stream);
	*stream = NULL;
	return ba_err_set(err, EX_UNAVAILABLE, "certificate of 'mx' has expired");
}

static void test_smtp__opportunistic_tls(void **state)
{
	(void)state;
	struct ba_smtp_params pp = params();
	pp.variant = BA_SMTP_MX;
	pp.tls = BA_TLS_OPPORTUNISTIC;
	pp.tls_start = fake_tls;
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	/* offered: used */
	static const char *const offered[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-SIZE 10\r\n250 STARTTLS\r\n", "C:STARTTLS",
		"S:220 go ahead\r\n", "C:EHLO client.test\r\n", "S:250-mx\r\n250 8BITMIME\r\n",
		"C:QUIT", "S:221 bye\r\n", NULL
	};
	fake_tls_calls = 0;
	assert_int_equal(open_with(offered, &pp, &p, &s, &err), 0);
	assert_int_equal(fake_tls_calls, 1);
	assert_int_equal(ba_session_caps(s), BA_CAP_ESMTP | BA_CAP_8BITMIME | BA_CAP_TLS_ACTIVE);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
	/* not offered: plaintext, and the message goes */
	static const char *const none[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 8BITMIME\r\n", "C:MAIL", "S:250 ok\r\n", "C:RCPT",
		"S:250 ok\r\n", "C:DATA", "S:354 go\r\n", "D", "S:250 queued\r\n", "C:QUIT",
		"S:221 bye\r\n", NULL
	};
	fake_tls_calls = 0;
	assert_int_equal(open_with(none, &pp, &p, &s, &err), 0);
	assert_int_equal(fake_tls_calls, 0);
	assert_false(ba_session_caps(s) & BA_CAP_TLS_ACTIVE);
	struct ba_envelope env = { "me@x", two, 1, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "hi\n", &res, &err), 0);
	ba_result_free(res);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
	/* refused with 454: the session goes on in plaintext, EHLO is not repeated */
	static const char *const refused[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "C:STARTTLS",
		"S:454 4.7.0 TLS not available\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	assert_int_equal(open_with(refused, &pp, &p, &s, &err), 0);
	assert_int_equal(ba_session_caps(s), BA_CAP_ESMTP | BA_CAP_PIPELINING | BA_CAP_STARTTLS);
	ba_session_free(s);
	assert_string_equal(peer_end(p), "EHLO client.test\r\nSTARTTLS\r\nQUIT\r\n");
	peer_free(p);
	/* offered, handshake failed: a distinct error, nothing more on the connection */
	static const char *const broken[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 STARTTLS\r\n", "C:STARTTLS", "S:220 go ahead\r\n",
		NULL
	};
	pp.tls_start = fake_tls_fail;
	assert_int_equal(open_with(broken, &pp, &p, &s, &err), -1);
	assert_int_equal(err.code, EX_UNAVAILABLE);
	assert_true(err.flags & BA_ERR_TLS_FAILED);
	assert_false(err.flags & BA_ERR_CANCELLED);
	assert_string_equal(peer_end(p), "EHLO client.test\r\nSTARTTLS\r\n");
	peer_free(p);
	/* submission with credentials, no STARTTLS on offer: never AUTH in clear */
	pp.variant = BA_SMTP_SUBMISSION;
	pp.tls_start = fake_tls;
	pp.user = "u";
	pp.password = "secret";
	static const char *const clear[] = {
		GREET, "C:EHLO", "S:250-mx\r\n250 AUTH PLAIN LOGIN\r\n", "C:QUIT", NULL
	};
	open_fails(clear, &pp, EX_NOPERM, "EHLO client.test\r\nQUIT\r\n", "TLS");
	/* an MX never gets credentials: nothing is sent at all */
	pp.variant = BA_SMTP_MX;
	static const char *const mx[] = { NULL };
	open_fails(mx, &pp, EX_USAGE, "", "MX");
}

struct canceller {
	int fd;
	int ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	msleep(c->ms);
	if (write(c->fd, "x", 1) != 1)
		abort();
	return NULL;
}

/* A cancel reaches a session waiting for a server that never answers, at once. */
static void test_smtp__cancel_stalled(void **state)
{
	(void)state;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	struct ba_smtp_params pp = params();
	pp.timeout_ms = 20000;
	pp.flags = BA_SMTP_CANCEL;
	pp.cancel_fd = pfd[0];
	static const char *const sc[] = { "E", NULL }; /* no greeting, ever */
	struct canceller c = { pfd[1], 100 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cancel_later, &c), 0);
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	int64_t t0 = ba_now_ms();
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), -1);
	int64_t took = ba_now_ms() - t0;
	pthread_join(th, NULL);
	assert_null(s);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_true(err.flags & BA_ERR_CANCELLED);
	assert_non_null(strstr(err.text, "cancelled"));
	assert_null(strstr(err.text, "in time"));
	assert_true(took >= 90 && took < 2000);
	assert_string_equal(peer_end(p), "");
	peer_free(p);
	close(pfd[0]);
	close(pfd[1]);
}

struct prog {
	int calls;
	uint64_t last, total, acked;
	int backwards;
};

static void prog_cb(void *ctx, uint64_t sent, uint64_t acked, uint64_t total)
{
	struct prog *g = ctx;
	if (acked > sent || acked < g->acked)
		g->backwards = 1;
	g->acked = acked;
	if (sent < g->last)
		g->backwards = 1;
	g->calls++;
	g->last = sent;
	g->total = total;
}

/* Progress: after each chunk, never backwards, the whole message at the end, for DATA and BDAT. */
static void test_smtp__progress(void **state)
{
	(void)state;
	size_t n = 300 * 1024;
	char *body = malloc(n + 1);
	assert_non_null(body);
	for (size_t i = 0; i < n; i++)
		body[i] = i % 80 == 79 ? '\n' : 'p';
	body[n] = '\0';
	for (int chunking = 0; chunking < 2; chunking++) {
		const char *const data[] = {
			GREET, "C:EHLO", "S:250 mx\r\n", "C:MAIL", "S:250 ok\r\n", "C:RCPT",
			"S:250 ok\r\n", "C:DATA", "S:354 go\r\n", "D", "S:250 queued\r\n", "C:QUIT",
			"S:221 bye\r\n", NULL
		};
		const char *const bdat[] = {
			GREET, "C:EHLO", "S:250-mx\r\n250 CHUNKING\r\n", "C:MAIL", "S:250 ok\r\n",
			"C:RCPT", "S:250 ok\r\n", "B", "S:250 queued\r\n", "C:QUIT", "S:221 bye\r\n", NULL
		};
		struct prog g = { 0, 0, 0, 0, 0 };
		struct ba_smtp_params pp = params();
		pp.progress = prog_cb;
		pp.progress_ctx = &g;
		struct peer *p;
		ba_session *s;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(open_with(chunking ? bdat : data, &pp, &p, &s, &err), 0);
		struct ba_envelope env = { "me@x", two, 1, n, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
		struct ba_result *res;
		assert_int_equal(send_msg(s, &env, body, &res, &err), 0);
		ba_result_free(res);
		ba_session_free(s);
		peer_end(p);
		peer_free(p);
		/*
		 * DATA: a call per 64 KB written and one at the end; BDAT: one 512 KB
		 * chunk; then while the reply is awaited until the peer has read it all
		 */
		if (chunking)
			assert_true(g.calls >= 1 && g.calls <= 4);
		else
			assert_true(g.calls >= 5 && g.calls <= 12);
		assert_false(g.backwards);
		assert_true(g.last == n);
		assert_true(g.acked == n);
		assert_true(g.total == n);
	}
	free(body);
}

/* LMTP: a reply after the data for a recipient refused at RCPT is not taken for the next one. */
static void test_smtp__lmtp_extra_reply(void **state)
{
	(void)state;
	static const char *const sc[] = {
		"S:220 lmtp\r\n", "C:LHLO", "S:250 lmtp\r\n", "C:MAIL", "S:250 ok\r\n",
		"C:RCPT TO:<a@", "S:550 5.1.1 no such user\r\n", "C:RCPT TO:<b@", "S:250 ok\r\n",
		"C:DATA", "S:354 go\r\n", "D",
		"S:550 5.1.1 <a@x.test> no such user\r\n250 2.0.0 <b@x.test> delivered\r\n", NULL
	};
	struct ba_smtp_params pp = params();
	pp.variant = BA_SMTP_LMTP;
	pp.flags = BA_SMTP_PARTIAL_DELIVERY;
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	struct ba_envelope env = { "me@x", two, 2, 0, BA_BODY_7BIT, 0, BA_RET_NONE, NULL, NULL, NULL };
	struct ba_result *res;
	assert_int_equal(send_msg(s, &env, "hi\n", &res, &err), -1);
	assert_int_equal(err.code, EX_PROTOCOL);
	assert_int_equal(res->naccepted, 0);
	assert_int_equal(res->rcpts[0].code, 550); /* its RCPT reply */
	assert_int_equal(res->rcpts[1].code, 0);   /* not known */
	assert_int_equal(res->rcpts[1].accepted, 0);
	assert_string_equal(res->rcpts[1].text, "");
	ba_result_free(res);
	ba_session_free(s);
	const char *got = peer_end(p);
	assert_null(strstr(got, "QUIT"));
	peer_free(p);
}

static void test_smtp__log_redacts(void **state);

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp__caps),
		cmocka_unit_test(test_smtp__malformed_replies),
		cmocka_unit_test(test_smtp__bounds),
		cmocka_unit_test(test_smtp__helo_fallback),
		cmocka_unit_test(test_smtp__starttls),
		cmocka_unit_test(test_smtp__auth),
		cmocka_unit_test(test_smtp__scram_channel_binding),
		cmocka_unit_test(test_smtp__external_authzid),
		cmocka_unit_test(test_smtp__pipelined_send),
		cmocka_unit_test(test_smtp__refused_recipients),
		cmocka_unit_test(test_smtp__pipelined_refusal_drops),
		cmocka_unit_test(test_smtp__lost_after_data_delivers_to_no_one),
		cmocka_unit_test(test_smtp__lmtp_lost_after_first_verdict),
		cmocka_unit_test(test_smtp__lmtp),
		cmocka_unit_test(test_smtp__bdat),
		cmocka_unit_test(test_smtp__envelope_checks),
		cmocka_unit_test(test_smtp__bad_body_drops),
		cmocka_unit_test(test_smtp__data_transform),
		cmocka_unit_test(test_smtp__log_redacts),
		cmocka_unit_test(test_smtp__pipelined_mail_refused),
		cmocka_unit_test(test_smtp__bdat_chunk_refused),
		cmocka_unit_test(test_smtp__opportunistic_tls),
		cmocka_unit_test(test_smtp__cancel_stalled),
		cmocka_unit_test(test_smtp__progress),
		cmocka_unit_test(test_smtp__lmtp_extra_reply),
		cmocka_unit_test(test_smtp__pipelined_across_messages),
		cmocka_unit_test(test_smtp__pipelined_across_data_end),
		cmocka_unit_test(test_smtp__pipelined_across_421),
		cmocka_unit_test(test_smtp__pipelined_across_lost),
		cmocka_unit_test(test_smtp__pipelined_across_lockstep),
		cmocka_unit_test(test_smtp__pipelined_across_local_refusal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

struct logcap {
	struct ba_buf all;
};
static void logfn(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)level;
	struct logcap *c = ctx;
	ba_buf_addstr(&c->all, msg);
	ba_buf_addch(&c->all, '\n');
}

static void test_smtp__log_redacts(void **state)
{
	(void)state;
	static const char *const sc[] = {
		GREET, "C:EHLO", "S:250-mx\x1b[31m\r\n250 AUTH LOGIN\r\n", "C:AUTH LOGIN",
		"S:334 VXNlcm5hbWU6\r\n", "C:dQ==", "S:334 UGFzc3dvcmQ6\r\n", "C:c2VjcmV0",
		"S:235 ok\r\n", "C:QUIT", "S:221 bye\r\n", NULL
	};
	struct logcap cap;
	ba_buf_init(&cap.all, 0);
	struct ba_log log = { logfn, &cap, BA_LOG_PROTO };
	struct ba_smtp_params pp = params();
	pp.tls = BA_TLS_IMPLICIT;
	pp.user = "u";
	pp.password = "secret";
	pp.log = &log;
	struct peer *p;
	ba_session *s;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(open_with(sc, &pp, &p, &s, &err), 0);
	ba_session_free(s);
	peer_end(p);
	peer_free(p);
	const char *l = ba_buf_str(&cap.all);
	assert_null(strstr(l, "c2VjcmV0"));
	assert_null(strstr(l, "dQ=="));
	assert_null(strstr(l, "\x1b"));
	assert_non_null(strstr(l, "--> <redacted>"));
	assert_non_null(strstr(l, "--> AUTH LOGIN"));
	assert_non_null(strstr(l, "auth -> ready"));
	ba_buf_release(&cap.all);
}
