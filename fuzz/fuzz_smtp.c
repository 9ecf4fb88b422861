/* fuzz/fuzz_smtp.c - the SMTP engine (reply parser, EHLO, STARTTLS, AUTH, envelope, DATA/BDAT,
 * LMTP) driven by a fuzzed server transcript
 *
 * Input: two bytes of options (variant, STARTTLS, AUTH and its mechanism,
 * pipelining, chunking, partial delivery, recipients, body, how the
 * transcript is cut into reads), then everything the server says.  The
 * session runs over an in-memory ba_stream: reads return the transcript,
 * writes are checked and discarded.  Two messages are sent, then the
 * session is freed (QUIT).  Besides no crash, hang or leak, the target
 * checks what the client writes:
 *  - every line ends in CRLF: no bare CR, no bare LF, ever (RFC 5321 §2.3.8);
 *  - with STARTTLS required, nothing but EHLO/LHLO, STARTTLS and QUIT goes
 *    out before the (fake) TLS upgrade has succeeded;
 *  - the password is sent at most once per session, and never in clear;
 *  - nothing is written after the stream was freed (ASan would see it).
 * SCRAM is left out: its iteration count costs time, and fuzz_sasl covers it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bluearrow/io.h"
#include "bluearrow/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

enum cut { CUT_LINES, CUT_ALL, CUT_SMALL, CUT_ONE };

struct fake {
	ba_stream base;
	const uint8_t *p;
	size_t n, off;
	enum cut cut;
	int prev_cr;      /* the last byte written was CR */
	int starttls;     /* STARTTLS required and not done yet */
	int bol;          /* the next byte written starts a line */
	struct ba_buf sent; /* everything written */
	char head[16];    /* the start of the line being written */
	size_t headlen;
	int *freed;
};

static ssize_t fake_read(ba_stream *bs, void *buf, size_t n, int64_t deadline, struct ba_err *err)
{
	struct fake *f = (struct fake *)bs;
	(void)deadline;
	(void)err;
	size_t left = f->n - f->off, k = left < n ? left : n;
	if (k == 0)
		return 0; /* the server closed the connection */
	switch (f->cut) {
	case CUT_LINES: {
		const uint8_t *lf = memchr(f->p + f->off, '\n', k);
		if (lf)
			k = (size_t)(lf - (f->p + f->off)) + 1;
		break;
	}
	case CUT_SMALL:
		k = k < 7 ? k : 1 + f->off % 7;
		break;
	case CUT_ONE:
		k = 1;
		break;
	case CUT_ALL:
		break;
	}
	memcpy(buf, f->p + f->off, k);
	f->off += k;
	return (ssize_t)k;
}

/* Before the TLS upgrade only these commands may go out. */
static void check_plaintext_command(const struct fake *f)
{
	static const char *const ok[] = { "EHLO ", "LHLO ", "STARTTLS", "QUIT" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		size_t k = strlen(ok[i]);
		if (f->headlen >= k && strncasecmp(f->head, ok[i], k) == 0)
			return;
	}
	__builtin_trap();
}

static int fake_write(ba_stream *bs, const void *buf, size_t n, int64_t deadline, struct ba_err *err)
{
	struct fake *f = (struct fake *)bs;
	const unsigned char *p = buf;
	(void)deadline;
	(void)err;
	ba_buf_add(&f->sent, p, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (f->prev_cr)
			CHECK(c == '\n');
		else
			CHECK(c != '\n');
		f->prev_cr = c == '\r';
		if (f->bol) {
			f->headlen = 0;
			f->bol = 0;
		}
		if (c == '\n') {
			if (f->starttls)
				check_plaintext_command(f);
			f->bol = 1;
		} else if (c != '\r' && f->headlen < sizeof(f->head)) {
			f->head[f->headlen++] = (char)c;
		}
	}
	return 0;
}

static size_t count(const struct ba_buf *b, const char *s)
{
	size_t n = 0, k = strlen(s);
	for (size_t i = 0; i + k <= b->len; i++)
		n += memcmp(b->data + i, s, k) == 0;
	return n;
}

static void fake_free(ba_stream *bs)
{
	struct fake *f = (struct fake *)bs;
	/* the password goes out at most once (PLAIN and LOGIN: base64 of "pencil"
	 * at a 3-byte boundary; XOAUTH2: the whole initial response), never in clear */
	if (!ba_buf_failed(&f->sent)) {
		CHECK(count(&f->sent, "cGVuY2ls") +
		      count(&f->sent, "dXNlcj11c2VyAWF1dGg9QmVhcmVyIHBlbmNpbAEB") <= 1);
		CHECK(count(&f->sent, "pencil") == 0);
	}
	ba_buf_release(&f->sent);
	*f->freed = 1;
	free(f);
}

static const struct ba_stream_ops fake_ops = { fake_read, fake_write, NULL, fake_free, NULL };

/* The "TLS" upgrade: keeps the stream, lifts the plaintext restriction. */
static int fake_tls(void *ctx, ba_stream **stream, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	struct fake *f = (struct fake *)*stream;
	/* a command half written before the upgrade would be a bug of its own */
	CHECK(f->bol || f->headlen == 0);
	f->starttls = 0;
	return 0;
}

static const char *const bodies[] = {
	"Subject: hi\r\n\r\nHello\r\n",
	"a\nb\rc\r\n.\n..x\n.",
	"8 bit: caf\xc3\xa9\r\n",
	"",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2" };
	static const enum ba_smtp_variant variants[] = { BA_SMTP_MX, BA_SMTP_SUBMISSION,
	                                                 BA_SMTP_LMTP, BA_SMTP_SUBMISSION };
	struct ba_err err = BA_ERR_INIT;
	int freed = 0;
	if (size < 2 || size > 100000)
		return 0;
	unsigned o0 = data[0], o1 = data[1];
	struct fake *f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	f->base.ops = &fake_ops;
	f->p = data + 2;
	f->n = size - 2;
	f->cut = (enum cut)((o1 >> 6) & 3);
	f->bol = 1;
	f->freed = &freed;
	ba_buf_init(&f->sent, (size_t)1 << 22);

	struct ba_smtp_params p = { 0 };
	p.variant = variants[o0 & 3];
	p.tls = o0 & 4 ? BA_TLS_STARTTLS : BA_TLS_OFF;
	p.tls_start = fake_tls;
	p.helo = "client.example.org";
	if (o0 & 8) {
		p.user = "user";
		p.password = "pencil";
		p.auth_mech = mechs[(o0 >> 4) & 3];
	}
	p.host = "mx.example.net";
	p.port = 587;
	p.flags = (o0 & 0x40 ? BA_SMTP_NO_PIPELINING : 0) | (o0 & 0x80 ? BA_SMTP_NO_CHUNKING : 0) |
	          (o1 & 1 ? BA_SMTP_PARTIAL_DELIVERY : 0) | (o1 & 2 ? BA_SMTP_ALLOW_CLEARTEXT_AUTH : 0);
	p.line_max = o1 & 0x20 ? 64 : 0;
	p.reply_lines_max = o1 & 0x20 ? 5 : 0;
	p.timeout_ms = 1000;
	f->starttls = p.tls == BA_TLS_STARTTLS;

	ba_session *s = NULL;
	int debug = getenv("FUZZ_DEBUG") != NULL; /* reproducing: what happened */
	if (ba_session_open(&s, &f->base, &p, &err) < 0) {
		if (debug)
			fprintf(stderr, "open: %d %s\n", err.code, err.text);
		CHECK(s == NULL && freed);
		return 0;
	}
	CHECK(!(ba_session_caps(s) & BA_CAP_AUTHENTICATED) == !(o0 & 8));
	CHECK(p.tls != BA_TLS_STARTTLS || (ba_session_caps(s) & BA_CAP_TLS_ACTIVE));

	struct ba_rcpt rcpts[3] = {
		{ "b@example.net", 0, NULL },
		{ "c@example.net", BA_NOTIFY_FAILURE | BA_NOTIFY_DELAY, "c@example.net" },
		{ "d@example.net", BA_NOTIFY_NEVER, NULL },
	};
	for (int i = 0; i < 2; i++) {
		const char *body = bodies[((o1 >> 2) + i) & 3];
		struct ba_envelope env = { .from = i ? "" : "a@example.org", .rcpts = rcpts,
		                           .nrcpts = 1 + (size_t)((o1 >> 4) & 1) * 2,
		                           .size = strlen(body),
		                           .body = strchr(body, 0xc3) ? BA_BODY_8BITMIME : BA_BODY_7BIT,
		                           .ret = BA_RET_HDRS, .envid = "env+id=1" };
		struct ba_mem_reader r;
		struct ba_result *res = NULL;
		ba_mem_reader_init(&r, body, strlen(body));
		int rc = ba_session_send(s, &env, &r.base, &res, &err);
		if (debug)
			fprintf(stderr, "send %d: %d %s\n", i, rc ? err.code : 0, rc ? err.text : "ok");
		if (rc == 0)
			CHECK(res && res->naccepted >= 1);
		if (res) {
			CHECK(res->nrcpts == env.nrcpts && res->text);
			for (size_t k = 0; k < res->nrcpts; k++)
				CHECK(res->rcpts[k].text && res->rcpts[k].addr);
		}
		ba_result_free(res);
	}
	ba_session_free(s);
	CHECK(freed);
	return 0;
}
