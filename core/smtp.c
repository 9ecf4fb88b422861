/* smtp.c - the client engine: SMTP, submission and LMTP over a ba_stream
 *
 * Shape (after OpenSMTPD smtp_client.c and curl lib/smtp.c):
 * one state enum with a names table and one setter that traces transitions;
 * a reply is read whole (bounded lines, count and a deadline), validated,
 * and only then acted on; every command goes through cmd_add(), which
 * refuses control characters; writes are batched (a pipelined command group
 * is one write, data goes out in 64 KB chunks, the final "." travels with
 * the tail of the data) because small writes meet Nagle and delayed ACKs
 * (bench: msmtp spends 90% of its time waiting on exactly that).
 */
#include "bluearrow/smtp.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bluearrow/encode.h"
#include "bluearrow/sasl.h"

#define LINE_MAX_DEFAULT 4096
#define REPLY_LINES_DEFAULT 100
#define TIMEOUT_DEFAULT 300000
#define DATA_CHUNK 65536            /* data leaves in chunks of about this size */
#define BDAT_CHUNK (512 * 1024)     /* RFC 3030 chunks: large, bounded memory */
#define BDAT_HDR 40                 /* room reserved in front of a chunk for "BDAT n LAST\r\n" */
#define AUTH_ROUNDS_MAX 8
#define ADDR_MAX 512

enum smtp_state {
	ST_INIT,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_TLS,
	ST_AUTH,
	ST_READY,
	ST_RSET,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_BODY,
	ST_BDAT,
	ST_DATA_END,
	ST_QUIT,
	ST_DEAD,
};

static const char *const state_names[] = {
	[ST_INIT] = "init",         [ST_GREETING] = "greeting", [ST_EHLO] = "ehlo",
	[ST_HELO] = "helo",         [ST_STARTTLS] = "starttls", [ST_TLS] = "tls",
	[ST_AUTH] = "auth",         [ST_READY] = "ready",       [ST_RSET] = "rset",
	[ST_MAIL] = "mail",         [ST_RCPT] = "rcpt",         [ST_DATA] = "data",
	[ST_BODY] = "body",         [ST_BDAT] = "bdat",         [ST_DATA_END] = "data-end",
	[ST_QUIT] = "quit",         [ST_DEAD] = "dead",
};

struct reply {
	int code;
	char enhanced[16];
	struct ba_buf text; /* the text of every line (after "250-"), joined by '\n'; raw */
	size_t nlines;
};

struct ba_session {
	ba_stream *stream;
	const struct ba_smtp_params *p;
	size_t line_max, lines_max;
	int timeout_ms;
	enum smtp_state state;
	unsigned caps;
	uint64_t size_max;
	char *auth_list;       /* the AUTH capability's mechanism list */
	char auth_used[32];
	int auth_sent;         /* credentials went out on this connection */
	int need_rset;         /* a transaction is open and must be reset */
	int desync;            /* the server sent more than a refusal: send nothing more */
	unsigned char *rbuf;   /* received, not yet consumed: rbuf[rstart..rend) */
	size_t rstart, rend, rsize;
	struct ba_buf wbuf;    /* commands waiting to be written */
	struct ba_buf dbuf;    /* data waiting to be written */
	struct reply r;
	struct reply held;     /* a refusal kept while the pipelined replies after it are read */
	uint64_t data_sent;    /* body bytes of the last data phase (progress after its end) */
	uint64_t wire_data;    /* bytes written in this data phase, framing included */
	uint64_t acked;        /* body bytes last reported acknowledged */
	int hold_tail;         /* the end of the data waits in wbuf for the next commands */
	struct ba_result *pend; /* sent with env->done: the reply to its end of data is unread */
	ba_smtp_done_fn *pend_done;
	void *pend_ctx;
	struct {                /* a verdict read, handed over after the next write (ready_fire) */
		struct ba_result *res;
		int rc;
		struct ba_err err;
		ba_smtp_done_fn *done;
		void *ctx;
	} ready;
	uint64_t data_read;    /* body bytes read in this data phase (for data_waiting()) */
	uint64_t data_total;   /* ... and its expected total */
};

static int pend_finish(ba_session *s, int more, struct ba_err *err);
static void pend_fail(ba_session *s);
static void ready_fire(ba_session *s);

/* ---- state, logging, errors --------------------------------------------- */

static void smtp_set_state(ba_session *s, enum smtp_state st)
{
	if (s->state != st)
		ba_log(s->p->log, BA_LOG_DEBUG, "smtp: %s -> %s", state_names[s->state],
		       state_names[st]);
	s->state = st;
}

/* Drops the connection without a word: used when the data phase must not complete. */
static void smtp_kill(ba_session *s)
{
	ba_stream_free(s->stream);
	s->stream = NULL;
	smtp_set_state(s, ST_DEAD);
}

/* A broken connection is a temporary failure (the message can be retried), not a local I/O error. */
static int conn_lost(struct ba_err *err)
{
	if (err && err->code == EX_IOERR) {
		err->code = EX_TEMPFAIL;
		ba_err_prefix(err, "connection to the server lost: ");
	}
	return -1;
}

/* Writes to the server before the per-write deadline. */
static int stream_write(ba_session *s, const void *p, size_t n, struct ba_err *err)
{
	if (s->desync)
		return ba_err_set(err, EX_PROTOCOL, "server sent unexpected data after a refusal");
	if (ba_stream_write(s->stream, p, n, ba_deadline(s->timeout_ms), err) < 0)
		return conn_lost(err);
	return 0;
}

/* The reply's text, cleaned and on one line, for errors and results. */
static void reply_clean(const struct reply *r, struct ba_buf *out)
{
	const char *t = ba_buf_str(&r->text);
	size_t n = r->text.len;
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(t + i, '\n', n - i);
		size_t k = nl ? (size_t)(nl - (t + i)) : n - i;
		if (i)
			ba_buf_addch(out, ' ');
		ba_log_clean(out, t + i, k);
		i += k + (nl ? 1 : 0);
	}
}

static char *reply_clean_dup(const struct reply *r)
{
	struct ba_buf b;
	ba_buf_init(&b, 0);
	reply_clean(r, &b);
	char *d = ba_buf_detach(&b, NULL);
	return d ? d : strdup("");
}

/* Sets err from the reply: class for a 5xx given, 4xx is always EX_TEMPFAIL. */
static int reply_fail(const ba_session *s, int class5, struct ba_err *err, const char *what)
{
	struct ba_buf b;
	ba_buf_init(&b, 300);
	reply_clean(&s->r, &b);
	int class = s->r.code >= 400 && s->r.code < 500 ? EX_TEMPFAIL : class5;
	if (s->r.code < 400)
		class = EX_PROTOCOL;
	ba_err_smtp(err, class, s->r.code, s->r.enhanced[0] ? s->r.enhanced : NULL, "%s: %d %s",
	            what, s->r.code, ba_buf_str(&b));
	ba_buf_release(&b);
	return -1;
}

/* Exchanges s->r and s->held (buffers included): keeps a reply while others are read. */
static void reply_swap(ba_session *s)
{
	struct reply t = s->r;
	s->r = s->held;
	s->held = t;
}

/* ---- reading replies ---------------------------------------------------- */

/* Next line (without CRLF/LF) from the stream, bounded by line_max. */
static int read_line(ba_session *s, const char **line, size_t *len, int64_t deadline,
                     struct ba_err *err)
{
	for (;;) {
		size_t have = s->rend - s->rstart;
		size_t look = have < s->line_max ? have : s->line_max;
		unsigned char *lf = memchr(s->rbuf + s->rstart, '\n', look);
		if (lf) {
			size_t n = (size_t)(lf - (s->rbuf + s->rstart));
			*line = (const char *)s->rbuf + s->rstart;
			s->rstart += n + 1;
			if (n && (*line)[n - 1] == '\r')
				n--;
			*len = n;
			return 0;
		}
		if (have >= s->line_max)
			return ba_err_set(err, EX_PROTOCOL,
			                  "server reply line longer than %zu bytes", s->line_max);
		if (s->rstart) {
			memmove(s->rbuf, s->rbuf + s->rstart, have);
			s->rstart = 0;
			s->rend = have;
		}
		if (!s->stream)
			return ba_err_set(err, EX_TEMPFAIL, "connection to the server is closed");
		ssize_t k = ba_stream_read(s->stream, s->rbuf + s->rend, s->rsize - s->rend, deadline,
		                           err);
		/*
		 * A reply that did not come leaves the dialogue out of step: hang
		 * up rather than send QUIT and wait a second timeout for its reply
		 * (issue 3, property 7: nothing holds the client past `timeout`).
		 */
		if (k < 0) {
			if (err && err->code == EX_TEMPFAIL && !(err->flags & BA_ERR_CANCELLED))
				ba_err_prefix(err, "no complete reply from the server in time: ");
			smtp_kill(s);
			return conn_lost(err);
		}
		if (k == 0) {
			smtp_kill(s);
			return ba_err_set(err, EX_TEMPFAIL, "the server closed the connection");
		}
		s->rend += (size_t)k;
	}
}

/* RFC 3463 status "c.sss.ddd" at the start of t, class matching the reply code. */
static void parse_enhanced(const char *t, size_t n, int code, char out[16])
{
	out[0] = '\0';
	size_t i = 0, parts = 0, digits = 0;
	if (n < 5 || t[0] - '0' != code / 100)
		return;
	for (; i < n && i < 15; i++) {
		if (isdigit((unsigned char)t[i])) {
			if (++digits > 3)
				return;
		} else if (t[i] == '.' && digits) {
			parts++;
			digits = 0;
		} else {
			break;
		}
	}
	if (parts != 2 || !digits || (i < n && t[i] != ' '))
		return;
	memcpy(out, t, i);
	out[i] = '\0';
}

/*
 * Reads one complete reply into s->r (RFC 5321 §4.2): every line "ddd-text"
 * but the last "ddd text" (or "ddd"), the same code on each.  more = 1 when
 * further replies may follow (pipelining, LMTP): only then may bytes remain
 * buffered after it (that one rule defeats STARTTLS injection).
 */
static int read_reply(ba_session *s, int more, struct ba_err *err)
{
	int64_t deadline = ba_deadline(s->timeout_ms);
	struct reply *r = &s->r;
	ba_buf_reset(&r->text);
	r->code = 0;
	r->enhanced[0] = '\0';
	r->nlines = 0;
	for (;;) {
		const char *l = NULL;
		size_t n = 0;
		if (read_line(s, &l, &n, deadline, err) < 0)
			return -1;
		ba_log(s->p->log, BA_LOG_PROTO, "<-- %.*s", (int)n, l);
		if (n < 3 || !isdigit((unsigned char)l[0]) || !isdigit((unsigned char)l[1]) ||
		    !isdigit((unsigned char)l[2]) || l[0] < '2' || l[0] > '5' ||
		    (n > 3 && l[3] != ' ' && l[3] != '-')) {
			struct ba_buf b;
			ba_buf_init(&b, 80);
			ba_log_clean(&b, l, n);
			ba_err_set(err, EX_PROTOCOL, "malformed server reply '%s'", ba_buf_str(&b));
			ba_buf_release(&b);
			return -1;
		}
		if (memchr(l, '\0', n))
			return ba_err_set(err, EX_PROTOCOL, "server reply contains a NUL byte");
		int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (r->nlines && code != r->code)
			return ba_err_set(err, EX_PROTOCOL,
			                  "server reply changes its code from %d to %d mid-reply",
			                  r->code, code);
		if (++r->nlines > s->lines_max)
			return ba_err_set(err, EX_PROTOCOL, "server reply longer than %zu lines",
			                  s->lines_max);
		r->code = code;
		if (r->nlines > 1)
			ba_buf_addch(&r->text, '\n');
		if (n > 4)
			ba_buf_add(&r->text, l + 4, n - 4);
		if (ba_buf_failed(&r->text))
			return ba_err_set(err, EX_OSERR, "out of memory");
		if (n == 3 || l[3] == ' ')
			break;
	}
	/* bytes we read, or that the TLS layer already decrypted, must not follow */
	if (!more && (s->rend > s->rstart || (s->stream && ba_stream_pending(s->stream) > 0))) {
		if (r->code < 400)
			return ba_err_set(err, EX_PROTOCOL,
			                  "server sent unexpected data after its %d reply", r->code);
		/*
		 * A refusal followed by more (typically "421 closing") still says
		 * why; act on it, but never send another byte: the dialogue is out
		 * of step.
		 */
		s->desync = 1;
		s->rstart = s->rend = 0;
	}
	const char *t = ba_buf_str(&r->text);
	const char *nl = memchr(t, '\n', r->text.len);
	parse_enhanced(t, nl ? (size_t)(nl - t) : r->text.len, r->code, r->enhanced);
	return 0;
}

/* ---- writing commands --------------------------------------------------- */

/*
 * The one command builder.  Appends the formatted command and CRLF to the
 * pending batch, refusing CR, LF and every other control character (and
 * 8-bit bytes unless utf8) in the result: no value can inject a command.
 */
static int cmd_add(ba_session *s, int utf8, struct ba_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int cmd_add(ba_session *s, int utf8, struct ba_err *err, const char *fmt, ...)
{
	size_t start = s->wbuf.len;
	va_list ap;
	va_start(ap, fmt);
	ba_buf_vaddf(&s->wbuf, fmt, ap);
	va_end(ap);
	if (ba_buf_failed(&s->wbuf))
		return ba_err_set(err, EX_OSERR, "out of memory");
	const unsigned char *c = (const unsigned char *)s->wbuf.data + start;
	size_t n = s->wbuf.len - start;
	for (size_t i = 0; i < n; i++) {
		if (c[i] < 0x20 || c[i] == 0x7f || (c[i] >= 0x80 && !utf8)) {
			ba_buf_truncate(&s->wbuf, start);
			return ba_err_set(err, EX_DATAERR, "refusing to send an SMTP command containing %s",
			                  c[i] >= 0x80 ? "8-bit characters" : "a control character");
		}
	}
	if (ba_log_enabled(s->p->log, BA_LOG_PROTO)) {
		struct ba_buf b;
		ba_buf_init(&b, 0);
		ba_log_redact_auth(&b, (const char *)c, n);
		ba_log(s->p->log, BA_LOG_PROTO, "--> %s", ba_buf_str(&b));
		ba_buf_release(&b);
	}
	if (ba_buf_add(&s->wbuf, "\r\n", 2) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

/* Writes the pending batch in one write. */
static int cmd_flush(ba_session *s, struct ba_err *err)
{
	if (!s->wbuf.len)
		return 0;
	if (!s->stream)
		return ba_err_set(err, EX_TEMPFAIL, "connection to the server is closed");
	int rc = stream_write(s, s->wbuf.data, s->wbuf.len, err);
	ba_buf_reset(&s->wbuf);
	if (rc < 0)
		smtp_kill(s);
	return rc;
}

/* Sends one command and reads its reply (no pipelining). */
static int cmd_exchange(ba_session *s, struct ba_err *err, const char *fmt, const char *arg)
{
	if (cmd_add(s, 0, err, fmt, arg) < 0 || cmd_flush(s, err) < 0)
		return -1;
	return read_reply(s, 0, err);
}

/* ---- greeting, EHLO, STARTTLS ------------------------------------------- */

static int word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/* Capabilities from an EHLO/LHLO reply: every line after the first (RFC 5321 §4.1.1.1). */
static void parse_caps(ba_session *s)
{
	const char *t = ba_buf_str(&s->r.text);
	const char *end = t + s->r.text.len;
	const char *l = memchr(t, '\n', s->r.text.len);
	s->caps |= BA_CAP_ESMTP;
	while (l && l < end) {
		l++;
		const char *le = memchr(l, '\n', (size_t)(end - l));
		if (!le)
			le = end;
		const char *w = l;
		while (w < le && *w != ' ' && *w != '=')
			w++;
		size_t wn = (size_t)(w - l);
		const char *arg = w < le ? w + 1 : le;
		size_t an = (size_t)(le - arg);
		if (word_is(l, wn, "SIZE")) {
			s->caps |= BA_CAP_SIZE;
			uint64_t v = 0;
			for (size_t i = 0; i < an && isdigit((unsigned char)arg[i]); i++)
				v = v > UINT64_MAX / 10 - 10 ? UINT64_MAX : v * 10 + (uint64_t)(arg[i] - '0');
			s->size_max = v;
		} else if (word_is(l, wn, "PIPELINING")) {
			s->caps |= BA_CAP_PIPELINING;
		} else if (word_is(l, wn, "8BITMIME")) {
			s->caps |= BA_CAP_8BITMIME;
		} else if (word_is(l, wn, "SMTPUTF8")) {
			s->caps |= BA_CAP_SMTPUTF8;
		} else if (word_is(l, wn, "DSN")) {
			s->caps |= BA_CAP_DSN;
		} else if (word_is(l, wn, "CHUNKING")) {
			s->caps |= BA_CAP_CHUNKING;
		} else if (word_is(l, wn, "BINARYMIME")) {
			s->caps |= BA_CAP_BINARYMIME;
		} else if (word_is(l, wn, "ENHANCEDSTATUSCODES")) {
			s->caps |= BA_CAP_ENHANCEDSTATUSCODES;
		} else if (word_is(l, wn, "STARTTLS")) {
			s->caps |= BA_CAP_STARTTLS;
		} else if (word_is(l, wn, "AUTH") && !(s->caps & BA_CAP_AUTH)) {
			/* "AUTH=" is the pre-standard form some servers add; the first one wins */
			/*
			 * Kept cleaned: the list is shown in error texts, and server
			 * text is data (issue 3, property 8).  Mechanism names are
			 * upper-case letters, digits, "-" and "_" (RFC 4422 §3.1), so
			 * cleaning never changes a real one.
			 */
			struct ba_buf b;
			ba_buf_init(&b, an + 1);
			ba_log_clean(&b, arg, an);
			s->caps |= BA_CAP_AUTH;
			free(s->auth_list);
			s->auth_list = ba_buf_detach(&b, NULL);
		}
		l = le;
	}
}

static void forget_caps(ba_session *s)
{
	s->caps &= BA_CAP_TLS_ACTIVE | BA_CAP_AUTHENTICATED;
	s->size_max = 0;
	free(s->auth_list);
	s->auth_list = NULL;
}

/* Authentication is configured: a user, or EXTERNAL, whose identity is the client certificate. */
static int auth_wanted(const struct ba_smtp_params *p)
{
	return (p->user && *p->user) ||
	       (p->auth_mech && ba_sasl_mech_from_name(p->auth_mech) == BA_SASL_EXTERNAL);
}

static int do_ehlo(ba_session *s, struct ba_err *err)
{
	const char *helo = s->p->helo && *s->p->helo ? s->p->helo : "localhost";
	int lmtp = s->p->variant == BA_SMTP_LMTP;
	forget_caps(s);
	smtp_set_state(s, ST_EHLO);
	if (cmd_exchange(s, err, lmtp ? "LHLO %s" : "EHLO %s", helo) < 0)
		return -1;
	if (s->r.code == 250) {
		parse_caps(s);
		return 0;
	}
	/* HELO can neither upgrade to TLS nor authenticate: not when either is required */
	int helo_ok = !lmtp && s->p->tls != BA_TLS_STARTTLS && !auth_wanted(s->p);
	if (s->r.code >= 500 && helo_ok) {
		/* RFC 5321 §3.2: an old server answers EHLO with 5xx; try HELO */
		smtp_set_state(s, ST_HELO);
		if (cmd_exchange(s, err, "HELO %s", helo) < 0)
			return -1;
		if (s->r.code == 250)
			return 0;
	}
	return reply_fail(s, EX_UNAVAILABLE, err, lmtp ? "server refused LHLO" : "server refused EHLO");
}

static int do_starttls(ba_session *s, struct ba_err *err)
{
	int opportunistic = s->p->tls == BA_TLS_OPPORTUNISTIC;
	if (!(s->caps & BA_CAP_STARTTLS)) {
		if (opportunistic) {
			/* RFC 7435 §1: no TLS on offer, so none; cleartext AUTH stays refused */
			ba_log(s->p->log, BA_LOG_INFO,
			       "server does not offer STARTTLS: continuing without TLS");
			return 0;
		}
		return ba_err_set(err, EX_UNAVAILABLE,
		                  "server does not offer STARTTLS, which is required (tls on)");
	}
	smtp_set_state(s, ST_STARTTLS);
	/* trailing bytes after the 220 are an error (RFC 3207 §6, CVE-2011-0411) */
	if (cmd_exchange(s, err, "%s", "STARTTLS") < 0) {
		/*
		 * bytes after the 220 mean no usable TLS on this connection: as a
		 * failed handshake, which an opportunistic caller may retry in clear
		 */
		if (opportunistic && err && s->r.code == 220 && !(err->flags & BA_ERR_CANCELLED))
			err->flags |= BA_ERR_TLS_FAILED;
		return -1;
	}
	if (s->r.code != 220 && opportunistic && !s->desync) {
		/*
		 * RFC 3207 §4: a refused STARTTLS leaves the session as it was;
		 * the client may go on without TLS.  The capabilities stay those
		 * of the plaintext EHLO.
		 */
		struct ba_buf b;
		ba_buf_init(&b, 300);
		reply_clean(&s->r, &b);
		ba_log(s->p->log, BA_LOG_INFO, "server refused STARTTLS (%d %s): continuing without TLS",
		       s->r.code, ba_buf_str(&b));
		ba_buf_release(&b);
		smtp_set_state(s, ST_EHLO);
		return 0;
	}
	if (s->r.code != 220) {
		reply_fail(s, EX_UNAVAILABLE, err, "server refused STARTTLS");
		if (err)
			err->code = EX_UNAVAILABLE; /* required TLS not available, even if "temporarily" */
		return -1;
	}
	smtp_set_state(s, ST_TLS);
	s->rstart = s->rend = 0;
	int rc = s->p->tls_start(s->p->tls_ctx, &s->stream, err);
	if (rc < 0) {
		s->stream = NULL; /* the callback took it */
		smtp_set_state(s, ST_DEAD);
		/* the caller of an opportunistic session may retry in plaintext: say why it failed */
		if (err && !(err->flags & BA_ERR_CANCELLED))
			err->flags |= BA_ERR_TLS_FAILED;
		return -1;
	}
	if (s->p->flags & BA_SMTP_CANCEL)
		ba_stream_set_cancel(s->stream, s->p->cancel_fd);
	s->caps |= BA_CAP_TLS_ACTIVE;
	/* RFC 3207 §4.2: forget everything learnt before TLS, greet again */
	return do_ehlo(s, err);
}

/* ---- AUTH (RFC 4954) ---------------------------------------------------- */

static int list_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		while (*p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ' ')
			e++;
		if ((size_t)(e - p) == n && strncasecmp(p, name, n) == 0)
			return 1;
		p = e;
	}
	return 0;
}

/* Sends one SASL response line; its content is never logged. */
static int auth_send_line(ba_session *s, const char *prefix, const struct ba_buf *raw,
                          struct ba_err *err)
{
	struct ba_buf line;
	ba_buf_init(&line, 0);
	ba_buf_grow(&line, strlen(prefix) + raw->len / 3 * 4 + 16);
	ba_buf_addstr(&line, prefix);
	if (*prefix && !raw->len)
		ba_buf_addch(&line, '='); /* empty initial response, RFC 4954 §4 */
	else
		ba_base64_encode(&line, raw->data, raw->len);
	ba_buf_add(&line, "\r\n", 2);
	if (ba_buf_failed(&line)) {
		ba_buf_release_secret(&line);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	if (*prefix)
		ba_log(s->p->log, BA_LOG_PROTO, "--> %s<redacted>", prefix);
	else
		ba_log(s->p->log, BA_LOG_PROTO, "--> <redacted>");
	int rc = stream_write(s, line.data, line.len, err);
	ba_buf_release_secret(&line);
	if (rc < 0)
		smtp_kill(s);
	return rc;
}

/* Answers a challenge we will not continue with "*" (RFC 4954 §4) and reads the reply. */
static void auth_cancel(ba_session *s)
{
	struct ba_err ignored = BA_ERR_INIT;
	if (cmd_add(s, 0, &ignored, "*") == 0 && cmd_flush(s, &ignored) == 0)
		read_reply(s, 0, &ignored);
}

static int is_scram_plus(enum ba_sasl_mech m)
{
	return m == BA_SASL_SCRAM_SHA_1_PLUS || m == BA_SASL_SCRAM_SHA_256_PLUS;
}

/* have_cb: channel binding data of the TLS session could be obtained (for -PLUS) */
static int auth_choose(ba_session *s, int have_cb, enum ba_sasl_mech *mech, struct ba_err *err)
{
	const struct ba_smtp_params *p = s->p;
	int tls = !!(s->caps & BA_CAP_TLS_ACTIVE);
	int cleartext_ok = tls || (p->flags & BA_SMTP_ALLOW_CLEARTEXT_AUTH);
	if (p->auth_mech && *p->auth_mech) {
		*mech = ba_sasl_mech_from_name(p->auth_mech);
		if (*mech == BA_SASL_NONE)
			return ba_err_set(err, EX_CONFIG, "unknown authentication method '%s'", p->auth_mech);
		if (!list_has(s->auth_list, ba_sasl_mech_name(*mech)))
			return ba_err_set(err, EX_NOPERM, "server does not offer AUTH %s (it offers '%s')",
			                  ba_sasl_mech_name(*mech), s->auth_list);
		if (is_scram_plus(*mech) && !have_cb)
			return ba_err_set(err, EX_NOPERM,
			                  "AUTH %s needs TLS channel binding, which this connection "
			                  "does not provide",
			                  ba_sasl_mech_name(*mech));
		if ((ba_sasl_mech_is_cleartext(*mech) || ba_sasl_mech_uses_token(*mech)) && !cleartext_ok)
			return ba_err_set(err, EX_NOPERM,
			                  "refusing AUTH %s without TLS: the password would be sent in "
			                  "clear",
			                  ba_sasl_mech_name(*mech));
		return 0;
	}
	unsigned f = 0;
	if (cleartext_ok)
		f |= BA_SASL_TLS_ACTIVE;
	if (p->flags & BA_SMTP_TOKEN)
		f |= BA_SASL_HAVE_TOKEN;
	if (tls && (p->flags & BA_SMTP_CLIENT_CERT))
		f |= BA_SASL_HAVE_CERT;
	if (have_cb)
		f |= BA_SASL_HAVE_CB;
	*mech = ba_sasl_pick(s->auth_list, f);
	if (*mech == BA_SASL_NONE)
		return ba_err_set(err, EX_NOPERM,
		                  "no usable authentication method: the server offers '%s'%s",
		                  s->auth_list,
		                  tls ? "" : " (cleartext methods need TLS)");
	return 0;
}

static int auth_exchange(ba_session *s, ba_sasl *sasl, const char *mname, struct ba_err *err)
{
	struct ba_buf resp, chal;
	ba_buf_init(&resp, 0);
	ba_buf_init(&chal, 0);
	int rc = -1;
	char prefix[64];
	snprintf(prefix, sizeof prefix, "AUTH %s ", mname);
	if (ba_sasl_has_initial(sasl)) {
		if (ba_sasl_step(sasl, NULL, 0, &resp, err) < 0)
			goto out;
		if (auth_send_line(s, prefix, &resp, err) < 0)
			goto out;
	} else {
		if (cmd_add(s, 0, err, "AUTH %s", mname) < 0 || cmd_flush(s, err) < 0)
			goto out;
	}
	ba_buf_release_secret(&resp);
	for (int round = 0;; round++) {
		if (read_reply(s, 0, err) < 0)
			goto out;
		if (s->r.code == 235) {
			if (!ba_sasl_done(sasl)) {
				ba_err_set(err, EX_NOPERM,
				           "server accepted AUTH %s without proving it knows the password",
				           mname);
				goto out;
			}
			rc = 0;
			goto out;
		}
		if (s->r.code != 334) {
			reply_fail(s, s->r.code >= 500 ? EX_NOPERM : EX_PROTOCOL, err,
			           "authentication failed");
			goto out;
		}
		if (round >= AUTH_ROUNDS_MAX) {
			auth_cancel(s);
			ba_err_set(err, EX_PROTOCOL, "server sent too many AUTH challenges");
			goto out;
		}
		ba_buf_reset(&chal);
		struct ba_err derr = BA_ERR_INIT;
		if (ba_base64_decode(&chal, ba_buf_str(&s->r.text), s->r.text.len, &derr) < 0) {
			auth_cancel(s);
			ba_err_set(err, EX_PROTOCOL, "server sent a malformed AUTH challenge");
			goto out;
		}
		ba_buf_reset(&resp);
		if (ba_sasl_step(sasl, (const unsigned char *)chal.data, chal.len, &resp, err) < 0) {
			/* RFC 4954 §4: an unexpected challenge is cancelled, never answered */
			auth_cancel(s);
			ba_err_prefix(err, "AUTH %s: ", mname);
			goto out;
		}
		if (auth_send_line(s, "", &resp, err) < 0)
			goto out;
		ba_buf_release_secret(&resp);
	}
out:
	ba_buf_release_secret(&resp);
	ba_buf_release_secret(&chal);
	return rc;
}

static int do_auth(ba_session *s, struct ba_err *err)
{
	const struct ba_smtp_params *p = s->p;
	if (s->auth_sent)
		return ba_err_set(err, EX_NOPERM, "credentials were already sent on this connection");
	if (!(s->caps & BA_CAP_AUTH))
		return ba_err_set(err, EX_NOPERM, "server does not offer authentication (AUTH)%s",
		                  s->caps & BA_CAP_TLS_ACTIVE ? "" : " before TLS");
	/*
	 * Channel binding data first: -PLUS is chosen only when it can be had
	 * (tls-unique on TLS 1.2, tls-exporter on TLS 1.3: RFC 9266 §3).
	 */
	struct ba_buf cb;
	ba_buf_init(&cb, 0);
	const char *cbtype = NULL;
	int have_cb = (s->caps & BA_CAP_TLS_ACTIVE) && p->tls_binding &&
	              p->tls_binding(p->tls_ctx, s->stream, &cb, &cbtype) == 0 && cb.len > 0;
	enum ba_sasl_mech mech;
	if (auth_choose(s, have_cb, &mech, err) < 0) {
		ba_buf_release(&cb);
		return -1;
	}
	smtp_set_state(s, ST_AUTH);
	struct ba_sasl_params sp = { 0 };
	sp.mech = mech;
	sp.user = p->user;
	sp.password = p->password;
	sp.host = p->host;
	sp.port = p->port;
	/*
	 * EXTERNAL: the identity comes from the certificate; the user is sent as
	 * the authorization identity (RFC 4422 App. A), as msmtp does
	 */
	if (mech == BA_SASL_EXTERNAL)
		sp.authzid = p->user;
	/*
	 * RFC 5802 §6: data for -PLUS ("p="); for plain SCRAM only when the
	 * server offers no -PLUS at all, so the flag is "y" (a server that has
	 * -PLUS takes "y" for a downgrade and fails, so "n" then)
	 */
	if (have_cb && (is_scram_plus(mech) ||
	                ((mech == BA_SASL_SCRAM_SHA_1 || mech == BA_SASL_SCRAM_SHA_256) &&
	                 !strstr(s->auth_list, "-PLUS") && !strstr(s->auth_list, "-plus")))) {
		sp.cb_data = (const unsigned char *)cb.data;
		sp.cb_len = cb.len;
		sp.cb_type = cbtype;
	}
	ba_sasl *sasl = NULL;
	int rc = ba_sasl_new(&sasl, &sp, err);
	if (rc == 0) {
		s->auth_sent = 1;
		snprintf(s->auth_used, sizeof s->auth_used, "%s", ba_sasl_mech_name(mech));
		rc = auth_exchange(s, sasl, s->auth_used, err);
	}
	ba_sasl_free(sasl);
	ba_buf_release(&cb);
	if (rc == 0)
		s->caps |= BA_CAP_AUTHENTICATED;
	return rc;
}

/* ---- opening and closing ------------------------------------------------ */

static int session_start(ba_session *s, struct ba_err *err)
{
	const struct ba_smtp_params *p = s->p;
	smtp_set_state(s, ST_GREETING);
	if (read_reply(s, 0, err) < 0)
		return -1;
	if (s->r.code != 220)
		return reply_fail(s, EX_UNAVAILABLE, err, "server greeting refuses service");
	if (do_ehlo(s, err) < 0)
		return -1;
	if ((p->tls == BA_TLS_STARTTLS || p->tls == BA_TLS_OPPORTUNISTIC) && do_starttls(s, err) < 0)
		return -1;
	if (auth_wanted(p) && do_auth(s, err) < 0)
		return -1;
	smtp_set_state(s, ST_READY);
	return 0;
}

int ba_session_open(ba_session **out, ba_stream *stream, const struct ba_smtp_params *p,
                    struct ba_err *err)
{
	*out = NULL;
	if ((p->tls == BA_TLS_STARTTLS || p->tls == BA_TLS_OPPORTUNISTIC) && !p->tls_start) {
		ba_stream_free(stream);
		return ba_err_set(err, EX_USAGE, "STARTTLS requested without a TLS implementation");
	}
	/* an MX is whoever the DNS names: the user's credentials are never sent there */
	if (p->variant == BA_SMTP_MX && (auth_wanted(p) || (p->password && *p->password))) {
		ba_stream_free(stream);
		return ba_err_set(err, EX_USAGE, "refusing to authenticate to an MX (credentials are "
		                                 "for the submission server)");
	}
	if (p->flags & BA_SMTP_CANCEL)
		ba_stream_set_cancel(stream, p->cancel_fd);
	ba_session *s = calloc(1, sizeof *s);
	if (!s) {
		ba_stream_free(stream);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	s->stream = stream;
	s->p = p;
	s->line_max = p->line_max ? p->line_max : LINE_MAX_DEFAULT;
	if (s->line_max < 16)
		s->line_max = 16;
	s->lines_max = p->reply_lines_max ? p->reply_lines_max : REPLY_LINES_DEFAULT;
	s->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : TIMEOUT_DEFAULT;
	s->rsize = s->line_max * 2 > 16384 ? s->line_max * 2 : 16384;
	s->rbuf = malloc(s->rsize);
	ba_buf_init(&s->wbuf, 0);
	ba_buf_init(&s->dbuf, 0);
	/* a reply is bounded: lines_max lines of line_max bytes */
	ba_buf_init(&s->r.text, s->line_max * s->lines_max + s->lines_max);
	ba_buf_init(&s->held.text, s->line_max * s->lines_max + s->lines_max);
	if (p->tls == BA_TLS_IMPLICIT)
		s->caps |= BA_CAP_TLS_ACTIVE;
	if (!s->rbuf) {
		ba_session_free(s);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	if (session_start(s, err) < 0) {
		/* polite QUIT only where it cannot leak anything (refusals, not I/O or protocol errors) */
		if (err && err->code != EX_PROTOCOL && err->code != EX_TEMPFAIL && s->state != ST_TLS &&
		    s->state != ST_DEAD) {
			ba_session_free(s);
		} else {
			smtp_kill(s);
			ba_session_free(s);
		}
		return -1;
	}
	*out = s;
	return 0;
}

unsigned ba_session_caps(const ba_session *s)
{
	return s->caps;
}

uint64_t ba_session_size_max(const ba_session *s)
{
	return s->size_max;
}

const char *ba_session_auth_mech(const ba_session *s)
{
	return s->auth_used;
}

void ba_session_free(ba_session *s)
{
	if (!s)
		return;
	ready_fire(s);
	if (s->pend && s->stream && s->state != ST_DEAD && !s->desync) {
		struct ba_err ignored = BA_ERR_INIT;
		pend_finish(s, 0, &ignored);
	}
	pend_fail(s);
	ready_fire(s);
	if (s->stream && s->state != ST_DEAD && s->state != ST_INIT && !s->desync) {
		struct ba_err ignored = BA_ERR_INIT;
		smtp_set_state(s, ST_QUIT);
		if (cmd_add(s, 0, &ignored, "QUIT") == 0 && cmd_flush(s, &ignored) == 0) {
			s->timeout_ms = s->timeout_ms < 5000 ? s->timeout_ms : 5000;
			read_reply(s, 1, &ignored);
		}
	}
	ba_stream_free(s->stream);
	free(s->rbuf);
	free(s->auth_list);
	ba_buf_release(&s->wbuf);
	ba_buf_release(&s->dbuf);
	ba_buf_release(&s->r.text);
	ba_buf_release(&s->held.text);
	free(s);
}

/* ---- sending a message -------------------------------------------------- */

void ba_result_free(struct ba_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrcpts; i++) {
		free(r->rcpts[i].addr);
		free(r->rcpts[i].text);
	}
	free(r->rcpts);
	free(r->text);
	free(r);
}

static struct ba_result *result_new(const struct ba_envelope *env)
{
	struct ba_result *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->rcpts = calloc(env->nrcpts, sizeof *r->rcpts);
	r->text = strdup("");
	if (!r->rcpts || !r->text) {
		ba_result_free(r);
		return NULL;
	}
	r->nrcpts = env->nrcpts;
	for (size_t i = 0; i < env->nrcpts; i++) {
		r->rcpts[i].addr = strdup(env->rcpts[i].addr);
		r->rcpts[i].text = strdup("");
		if (!r->rcpts[i].addr || !r->rcpts[i].text) {
			ba_result_free(r);
			return NULL;
		}
	}
	return r;
}

/* Records the current reply as the outcome of recipient i. */
static void result_rcpt(ba_session *s, struct ba_result *res, size_t i, int accepted)
{
	struct ba_rcpt_result *rr = &res->rcpts[i];
	rr->code = s->r.code;
	memcpy(rr->enhanced, s->r.enhanced, sizeof rr->enhanced);
	char *t = reply_clean_dup(&s->r);
	if (t) {
		free(rr->text);
		rr->text = t;
	}
	rr->accepted = accepted;
}

static void result_final(ba_session *s, struct ba_result *res)
{
	res->code = s->r.code;
	memcpy(res->enhanced, s->r.enhanced, sizeof res->enhanced);
	char *t = reply_clean_dup(&s->r);
	if (t) {
		free(res->text);
		res->text = t;
	}
}

/* An envelope address: no controls, spaces, angle brackets (no parameter smuggling). */
static int addr_check(const char *a, int utf8, const char *what, struct ba_err *err)
{
	size_t n = strlen(a);
	struct ba_buf b;
	int bad = n > ADDR_MAX, eight = 0;
	for (size_t i = 0; i < n && !bad; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			bad = 1;
		else if (c >= 0x80)
			eight = 1;
	}
	if (!bad && !(eight && !utf8))
		return 0;
	ba_buf_init(&b, 200);
	ba_log_clean(&b, a, n);
	if (bad)
		ba_err_set(err, EX_DATAERR, "invalid %s address '%s'", what, ba_buf_str(&b));
	else
		ba_err_set(err, EX_DATAERR,
		           "%s address '%s' is not ASCII and the server does not offer SMTPUTF8",
		           what, ba_buf_str(&b));
	ba_buf_release(&b);
	return -1;
}

/* RFC 3461 §4: xtext, "+" and "=" and everything outside "!".."~" as "+HH". */
static void xtext(struct ba_buf *b, const char *v)
{
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c >= '!' && c <= '~' && c != '+' && c != '=')
			ba_buf_addch(b, c);
		else
			ba_buf_addf(b, "+%02X", c);
	}
}

static int pipelined(const ba_session *s)
{
	return (s->caps & BA_CAP_PIPELINING) && !(s->p->flags & BA_SMTP_NO_PIPELINING);
}

static int add_mail(ba_session *s, const struct ba_envelope *env, int utf8, struct ba_err *err)
{
	struct ba_buf prm;
	ba_buf_init(&prm, 0);
	if ((s->caps & BA_CAP_SIZE) && env->size)
		ba_buf_addf(&prm, " SIZE=%" PRIu64, env->size);
	if (env->body == BA_BODY_8BITMIME)
		ba_buf_addstr(&prm, " BODY=8BITMIME");
	else if (env->body == BA_BODY_BINARYMIME)
		ba_buf_addstr(&prm, " BODY=BINARYMIME");
	if (utf8)
		ba_buf_addstr(&prm, " SMTPUTF8");
	if (s->caps & BA_CAP_DSN) {
		if (env->ret != BA_RET_NONE)
			ba_buf_addstr(&prm, env->ret == BA_RET_FULL ? " RET=FULL" : " RET=HDRS");
		if (env->envid && *env->envid) {
			ba_buf_addstr(&prm, " ENVID=");
			xtext(&prm, env->envid);
		}
	}
	int rc = ba_buf_failed(&prm) ? ba_err_set(err, EX_OSERR, "out of memory")
	                             : cmd_add(s, utf8, err, "MAIL FROM:<%s>%s", env->from,
	                                       ba_buf_str(&prm));
	ba_buf_release(&prm);
	return rc;
}

static int add_rcpt(ba_session *s, const struct ba_rcpt *rc, int utf8, struct ba_err *err)
{
	struct ba_buf prm;
	ba_buf_init(&prm, 0);
	if ((s->caps & BA_CAP_DSN) && rc->notify) {
		/* RFC 3461 §4.1: NEVER alone, or a list of the others */
		if (rc->notify & BA_NOTIFY_NEVER) {
			ba_buf_addstr(&prm, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";
			static const struct { unsigned bit; const char *name; } nt[] = {
				{ BA_NOTIFY_SUCCESS, "SUCCESS" },
				{ BA_NOTIFY_FAILURE, "FAILURE" },
				{ BA_NOTIFY_DELAY, "DELAY" },
			};
			for (size_t i = 0; i < sizeof nt / sizeof nt[0]; i++)
				if (rc->notify & nt[i].bit) {
					ba_buf_addf(&prm, "%s%s", sep, nt[i].name);
					sep = ",";
				}
		}
	}
	if ((s->caps & BA_CAP_DSN) && rc->orcpt && *rc->orcpt) {
		ba_buf_addstr(&prm, " ORCPT=rfc822;");
		xtext(&prm, rc->orcpt);
	}
	int r = ba_buf_failed(&prm) ? ba_err_set(err, EX_OSERR, "out of memory")
	                            : cmd_add(s, utf8, err, "RCPT TO:<%s>%s", rc->addr,
	                                      ba_buf_str(&prm));
	ba_buf_release(&prm);
	return r;
}

/* Flushes (unless pipelining: everything went out in one write) and reads the next reply. */
static int env_reply(ba_session *s, int pipe, size_t *left, struct ba_err *err)
{
	if (!pipe && cmd_flush(s, err) < 0)
		return -1;
	(*left)--;
	return read_reply(s, pipe && *left > 0, err);
}

/*
 * RSET (when needed), MAIL, RCPT... and, when pipelining with DATA, DATA:
 * one write, replies read in order (RFC 2920 §3.1).  Without pipelining a
 * command at a time, stopping at a refused MAIL.  *data354 = 1 when DATA
 * was sent and answered 354.
 */
static int send_envelope(ba_session *s, const struct ba_envelope *env, int utf8, int with_data,
                         struct ba_result *res, int *data_code, struct ba_err *err)
{
	int pipe = pipelined(s);
	int rset = s->need_rset;
	size_t left = (size_t)rset + 1 + env->nrcpts + (pipe && with_data ? 1 : 0);
	*data_code = 0;
	if (!pipe && s->pend && pend_finish(s, 0, err) < 0)
		return -1;
	if (pipe) {
		size_t start = s->wbuf.len; /* a held end of data may precede the group */
		int bad = (rset && cmd_add(s, 0, err, "RSET") < 0) || add_mail(s, env, utf8, err) < 0;
		for (size_t i = 0; i < env->nrcpts && !bad; i++)
			bad = add_rcpt(s, &env->rcpts[i], utf8, err) < 0;
		if (bad || (with_data && cmd_add(s, 0, err, "DATA") < 0)) {
			ba_buf_truncate(&s->wbuf, start); /* never half a group */
			return -1;
		}
		if (cmd_flush(s, err) < 0)
			return -1;
		/* the caller's work on the last verdict overlaps the server's on this group */
		ready_fire(s);
		/*
		 * The previous message's data ended the last group (RFC 2920 §3.1:
		 * message content may begin one); its reply comes before these.
		 */
		if (s->pend && pend_finish(s, 1, err) < 0)
			return -1;
	}
	if (rset) {
		smtp_set_state(s, ST_RSET);
		if ((!pipe && cmd_add(s, 0, err, "RSET") < 0) || env_reply(s, pipe, &left, err) < 0)
			return -1;
		if (s->r.code != 250)
			return reply_fail(s, EX_PROTOCOL, err, "server refused RSET");
		s->need_rset = 0;
	}
	smtp_set_state(s, ST_MAIL);
	s->need_rset = 1;
	if ((!pipe && add_mail(s, env, utf8, err) < 0) || env_reply(s, pipe, &left, err) < 0)
		return -1;
	res->code = s->r.code;
	result_final(s, res); /* the MAIL reply, until a later one replaces it */
	int mail_ok = s->r.code == 250;
	if (!mail_ok && !pipe)
		return 0;
	/*
	 * A refused MAIL is the error, whatever follows: the pipelined RCPT and
	 * DATA are then answered 503 "need MAIL/RCPT" (Postfix, aiosmtpd), and
	 * those replies are only read to stay in step.  The refusal is kept in
	 * held and put back in s->r at the end, for the caller to report.
	 */
	if (!mail_ok)
		reply_swap(s);
	smtp_set_state(s, ST_RCPT);
	for (size_t i = 0; i < env->nrcpts; i++) {
		if ((!pipe && add_rcpt(s, &env->rcpts[i], utf8, err) < 0) ||
		    env_reply(s, pipe, &left, err) < 0)
			return -1;
		/* RFC 5321 §4.2.5: 250 or 251 accept; after a refused MAIL: not reached */
		if (mail_ok)
			result_rcpt(s, res, i, s->r.code == 250 || s->r.code == 251);
	}
	if (pipe && with_data) {
		smtp_set_state(s, ST_DATA);
		if (env_reply(s, pipe, &left, err) < 0)
			return -1;
		*data_code = s->r.code;
	}
	if (!mail_ok)
		reply_swap(s);
	return 0;
}

/*
 * How the data is framed on the wire: DATA (dot-stuffed, ended by ".",
 * RFC 5321 §4.1.1.4) or BDAT chunks (RFC 3030 §2).  The pump below does
 * the rest the same way for both.
 */
struct framing {
	int bdat;
	size_t reserve; /* bytes kept free at the front of dbuf for the chunk header */
	size_t chunk;   /* a write (and for BDAT a chunk) once this much data is ready */
};

/* A cancel asked for: checked between chunks, also where no wait would notice it. */
static int cancel_check(ba_session *s, struct ba_err *err)
{
	if ((s->p->flags & BA_SMTP_CANCEL) && ba_cancel_pending(s->p->cancel_fd))
		return ba_err_cancel(err, "cancelled");
	return 0;
}

/*
 * sent less what the server has not acknowledged yet: the socket's send
 * queue counts bytes on the wire (CRLF, dot-stuffing, BDAT headers), so
 * the acknowledged share of the wire bytes of this data phase is applied
 * to the message bytes; never less than reported before.
 */
static void progress(ba_session *s, uint64_t sent, uint64_t total)
{
	if (!s->p->progress)
		return;
	uint64_t unsent = s->stream ? ba_stream_unsent(s->stream) : 0, acked = 0;
	if (s->wire_data > unsent)
		acked = (uint64_t)((double)sent * (double)(s->wire_data - unsent) /
		                   (double)s->wire_data);
	if (acked > sent)
		acked = sent;
	if (acked < s->acked)
		acked = s->acked;
	s->acked = acked;
	s->p->progress(s->p->progress_ctx, sent, acked, total);
}

#define ACK_POLL_MS 100
#define WAIT_PROGRESS_MS 150

/*
 * After the end of the data, before its reply: reports the progress every
 * ACK_POLL_MS while the server has not acknowledged everything and nothing
 * has come to read (the reply, a close: read_reply() meets them).  Nothing
 * is read here, so no stream (TLS) is left in the middle of a record.
 * Stops at the reply deadline.
 */
static void progress_until_acked(ba_session *s, uint64_t sent, uint64_t total)
{
	if (!s->p->progress || !s->stream || !s->stream->ops->unsent)
		return;
	int64_t deadline = ba_deadline(s->timeout_ms > 0 ? s->timeout_ms : 300000);
	int waited = 0;
	while (s->rend == s->rstart && ba_stream_unsent(s->stream) > 0 && ba_now_ms() < deadline &&
	       !ba_stream_readable(s->stream, ACK_POLL_MS)) {
		progress(s, sent, total);
		waited = 1;
	}
	if (waited || s->acked < sent)
		progress(s, sent, total);
}

/*
 * The stream's wait hook while a data write waits for room (a slow
 * server): the progress of the bytes of the write that went out, so the
 * figure moves every WAIT_PROGRESS_MS however large the socket's buffer.
 */
static void data_waiting(void *ctx, size_t done, size_t len)
{
	ba_session *s = ctx;
	if (!s->p->progress || !s->stream)
		return;
	uint64_t wire = s->wire_data + len, out = s->wire_data + done, acked = 0;
	uint64_t unsent = ba_stream_unsent(s->stream);
	uint64_t sent = (uint64_t)((double)s->data_read * (double)out / (double)wire);
	if (out > unsent)
		acked = (uint64_t)((double)s->data_read * (double)(out - unsent) / (double)wire);
	if (acked > sent)
		acked = sent;
	if (acked < s->acked)
		acked = s->acked;
	s->acked = acked;
	s->p->progress(s->p->progress_ctx, sent, acked, s->data_total);
}

/*
 * Writes the data in dbuf: for DATA all but the last `keep` bytes (the end
 * marker always travels with the tail: no tiny last segment); for BDAT one
 * chunk, its header put in the room reserved in front.  With hold_tail the
 * last piece is left in wbuf, to travel with the next message's commands.
 */
static int data_write(ba_session *s, const void *p, size_t n, int last, struct ba_err *err)
{
	if (!last || !s->hold_tail)
		return stream_write(s, p, n, err);
	/* goes out with the next message's commands, one write (RFC 2920 §3.1) */
	if (ba_buf_add(&s->wbuf, p, n) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

static int pump_write(ba_session *s, const struct framing *f, int last, struct ba_err *err)
{
	if (!f->bdat) {
		size_t keep = last ? 0 : 2;
		if (s->dbuf.len <= keep)
			return 0;
		size_t n = s->dbuf.len - keep;
		if (data_write(s, s->dbuf.data, n, last, err) < 0)
			return -1;
		s->wire_data += n;
		ba_buf_consume(&s->dbuf, n);
		return 0;
	}
	char hdr[BDAT_HDR];
	size_t n = s->dbuf.len - BDAT_HDR;
	int h = snprintf(hdr, sizeof hdr, "BDAT %zu%s\r\n", n, last ? " LAST" : "");
	ba_log(s->p->log, BA_LOG_PROTO, "--> %.*s <%zu bytes>", h - 2, hdr, n);
	memcpy(s->dbuf.data + BDAT_HDR - h, hdr, (size_t)h);
	if (data_write(s, s->dbuf.data + BDAT_HDR - h, n + (size_t)h, last, err) < 0)
		return -1;
	s->wire_data += n + (size_t)h;
	ba_buf_truncate(&s->dbuf, BDAT_HDR);
	return 0;
}

/*
 * The one data pump: reads the body, normalises it (CRLF, and dot-stuffing
 * for DATA), writes it in large pieces, reports progress after each write
 * and checks for a cancel before each; a BDAT chunk but the last is
 * answered before the next goes out.  The end (".", "BDAT n LAST") is
 * written last of all and only when nothing was cancelled, so an
 * interrupted pump never completes a message.  Returns 0, 1 when a BDAT
 * chunk was refused (the reply in s->r), -1 on error.
 */
static int pump_body(ba_session *s, const struct framing *f, ba_reader *body, uint64_t total,
                     int seven_bit, unsigned char *in, struct ba_err *err)
{
	struct ba_smtp_data_state st = { 0 };
	uint64_t sent = 0;
	st.seven_bit = seven_bit;
	s->wire_data = 0;
	s->acked = 0;
	ba_buf_reset(&s->dbuf);
	if (f->reserve && ba_buf_add(&s->dbuf, "                                        ", f->reserve) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	smtp_set_state(s, f->bdat ? ST_BDAT : ST_BODY);
	for (;;) {
		if (cancel_check(s, err) < 0)
			return -1;
		ssize_t k = ba_read(body, in, DATA_CHUNK, err);
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		sent += (uint64_t)k;
		s->data_read = sent;
		if (ba_smtp_data_add(&s->dbuf, &st, !f->bdat, in, (size_t)k, err) < 0)
			return -1;
		if (s->dbuf.len - f->reserve < f->chunk)
			continue;
		if (pump_write(s, f, 0, err) < 0)
			return -1;
		progress(s, sent, total);
		if (f->bdat) {
			if (read_reply(s, 0, err) < 0)
				return -1;
			if (s->r.code != 250)
				return 1;
		}
	}
	if (ba_smtp_data_end(&s->dbuf, &st, !f->bdat, err) < 0 || cancel_check(s, err) < 0)
		return -1;
	if (s->p->data_end && s->p->data_end(s->p->data_end_ctx, err) < 0)
		return -1;
	if (!f->bdat)
		ba_log(s->p->log, BA_LOG_PROTO, "--> <message data, %" PRIu64 " lines> .",
		       st.line - 1);
	if (pump_write(s, f, 1, err) < 0)
		return -1;
	progress(s, sent, total);
	s->data_sent = sent;
	return 0;
}

/* The pump above with the progress reported while a write waits too. */
static int send_body(ba_session *s, const struct framing *f, ba_reader *body, uint64_t total,
                     int seven_bit, unsigned char *in, struct ba_err *err)
{
	s->data_read = 0;
	s->data_total = total;
	int hook = s->p->progress && ba_stream_set_wait_hook(s->stream, data_waiting, s,
	                                                     WAIT_PROGRESS_MS) == 0;
	int rc = pump_body(s, f, body, total, seven_bit, in, err);
	if (hook && s->stream)
		ba_stream_set_wait_hook(s->stream, NULL, NULL, 0);
	return rc;
}

/*
 * Recipients from index `from` on did not get the message: accepted at
 * RCPT, but the data or its verdict never came through (a lost connection,
 * a timeout, a cancel).  `accepted` means delivered, so it is cleared.
 */
static void undelivered(struct ba_result *res, size_t from)
{
	for (size_t i = from; i < res->nrcpts; i++)
		res->rcpts[i].accepted = 0;
}

/* Replies after the data: one, or for LMTP one per accepted recipient (RFC 2033 §4.2). */
static int read_final(ba_session *s, struct ba_result *res, struct ba_err *err)
{
	smtp_set_state(s, ST_DATA_END);
	if (s->p->variant != BA_SMTP_LMTP) {
		if (read_reply(s, 0, err) < 0) {
			undelivered(res, 0);
			return -1;
		}
		result_final(s, res);
		if (s->r.code != 250)
			for (size_t i = 0; i < res->nrcpts; i++)
				res->rcpts[i].accepted = 0;
		return 0;
	}
	unsigned char *got = calloc(res->nrcpts, 1);
	if (!got)
		return ba_err_set(err, EX_OSERR, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < res->nrcpts && rc == 0; i++) {
		if (!res->rcpts[i].accepted)
			continue;
		got[i] = 1;
		if (read_reply(s, 1, err) < 0) {
			undelivered(res, i); /* the replies read before this one stand */
			rc = -1;
			break;
		}
		result_rcpt(s, res, i, s->r.code == 250);
		result_final(s, res);
	}
	/*
	 * RFC 2033 §4.2: one reply per recipient accepted at RCPT, in RCPT
	 * order.  A server that sends more (typically one for a recipient it
	 * refused at RCPT too) has shifted the replies: which one belongs to
	 * which recipient is unknown, so none is believed (the outcomes become
	 * "not known": code 0) and the session fails as out of step.  Detected
	 * when the extra reply came with the expected ones; a later one meets
	 * the next command as an unexpected reply.
	 */
	if (rc == 0 && (s->rend > s->rstart || (s->stream && ba_stream_pending(s->stream) > 0))) {
		for (size_t i = 0; i < res->nrcpts; i++) {
			if (!got[i])
				continue;
			struct ba_rcpt_result *rr = &res->rcpts[i];
			rr->code = 0;
			rr->enhanced[0] = '\0';
			rr->text[0] = '\0';
			rr->accepted = 0;
		}
		rc = ba_err_set(err, EX_PROTOCOL,
		                "server sent more replies after the data than there are accepted "
		                "recipients (RFC 2033 4.2): which recipients got the message is "
		                "unknown");
	}
	free(got);
	return rc;
}

/* The exit class and text when some or all recipients did not get the message. */
static int refused_fail(const struct ba_result *res, size_t naccepted, struct ba_err *err)
{
	const struct ba_rcpt_result *first = NULL;
	size_t nref = 0;
	int temp = 0;
	for (size_t i = 0; i < res->nrcpts; i++) {
		const struct ba_rcpt_result *rr = &res->rcpts[i];
		if (rr->accepted)
			continue;
		nref++;
		if (!first)
			first = rr;
		if (rr->code < 500)
			temp = 1;
	}
	int class = temp ? EX_TEMPFAIL : EX_NOUSER;
	struct ba_buf b;
	ba_buf_init(&b, 300);
	ba_buf_addf(&b, "recipient '%s' refused: %d %s", first->addr, first->code, first->text);
	if (nref > 1)
		ba_buf_addf(&b, " (and %zu more)", nref - 1);
	if (naccepted)
		ba_buf_addf(&b, "; %s", res->code == 354 || res->code == 0
		                            ? "nothing was sent"
		                            : "nothing was sent to the others");
	ba_err_smtp(err, class, first->code, first->enhanced[0] ? first->enhanced : NULL, "%s",
	            ba_buf_str(&b));
	ba_buf_release(&b);
	return -1;
}

static int check_envelope(ba_session *s, const struct ba_envelope *env, int *utf8,
                          struct ba_err *err)
{
	if (!env->from || !env->nrcpts || !env->rcpts)
		return ba_err_set(err, EX_USAGE, "no sender or no recipients");
	*utf8 = env->smtputf8;
	for (const char *c = env->from; *c; c++)
		*utf8 |= (unsigned char)*c >= 0x80;
	for (size_t i = 0; i < env->nrcpts; i++)
		for (const char *c = env->rcpts[i].addr; *c; c++)
			*utf8 |= (unsigned char)*c >= 0x80;
	int have_utf8 = !!(s->caps & BA_CAP_SMTPUTF8);
	if (addr_check(env->from, have_utf8, "sender", err) < 0)
		return -1;
	for (size_t i = 0; i < env->nrcpts; i++) {
		/* RFC 5321 §4.1.1.3: only the reverse-path may be null, never "RCPT TO:<>" */
		if (!env->rcpts[i].addr[0])
			return ba_err_set(err, EX_DATAERR, "empty recipient address");
		if (addr_check(env->rcpts[i].addr, have_utf8, "recipient", err) < 0)
			return -1;
	}
	if (*utf8 && !have_utf8)
		return ba_err_set(err, EX_DATAERR,
		                  "message needs SMTPUTF8, which the server does not offer");
	if (env->body == BA_BODY_8BITMIME && !(s->caps & BA_CAP_8BITMIME))
		return ba_err_set(err, EX_DATAERR, "message has 8-bit data and the server does not "
		                                   "offer 8BITMIME (re-encode it first)");
	if (env->body == BA_BODY_BINARYMIME &&
	    (s->caps & (BA_CAP_BINARYMIME | BA_CAP_CHUNKING)) !=
	            (BA_CAP_BINARYMIME | BA_CAP_CHUNKING))
		return ba_err_set(err, EX_DATAERR, "message is binary and the server does not offer "
		                                   "BINARYMIME with CHUNKING");
	/* RFC 1870 §6: do not send what the server already said it will refuse */
	if ((s->caps & BA_CAP_SIZE) && s->size_max && env->size > s->size_max)
		return ba_err_smtp(err, EX_DATAERR, 552, "5.3.4",
		                   "message size %" PRIu64 " exceeds the server's limit of %" PRIu64
		                   " bytes",
		                   env->size, s->size_max);
	return 0;
}

/* The outcome once the replies after the data are in res (and the last one in s->r). */
static int data_outcome(ba_session *s, struct ba_result *res, struct ba_err *err)
{
	int partial = !!(s->p->flags & BA_SMTP_PARTIAL_DELIVERY);
	size_t nacc = 0;
	for (size_t i = 0; i < res->nrcpts; i++)
		nacc += res->rcpts[i].accepted;
	res->naccepted = nacc;
	if (s->p->variant != BA_SMTP_LMTP && res->code != 250)
		return reply_fail(s, EX_DATAERR, err, "server refused the message");
	if (nacc == res->nrcpts || (partial && nacc))
		return 0;
	return refused_fail(res, nacc, err);
}

/*
 * Whether a message's final reply may be left for later: the server
 * pipelines, one reply follows the data (not LMTP), and no cancel has to
 * be honoured up to the verdict.
 */
static int defer_final(const ba_session *s)
{
	return pipelined(s) && s->p->variant != BA_SMTP_LMTP && !(s->p->flags & BA_SMTP_CANCEL);
}

/* Hands a verdict kept in s->ready to its done callback. */
static void ready_fire(ba_session *s)
{
	struct ba_result *res = s->ready.res;
	if (!res)
		return;
	s->ready.res = NULL;
	s->ready.done(s->ready.ctx, res, s->ready.rc, &s->ready.err);
}

/*
 * Reads the pending message's reply to the end of its data (more = 1 when
 * the replies of the commands written since follow it).  The outcome is
 * kept in s->ready and handed to the done callback after the next write
 * (or at the end of ba_session_send() when nothing more is pending), so
 * the caller's work on it overlaps the server's.  Returns -1 with err set
 * when the reply could not be read: the session is dead, and the pending
 * message was told so too.
 */
static int pend_finish(ba_session *s, int more, struct ba_err *err)
{
	struct ba_result *res = s->pend;
	struct ba_err perr = BA_ERR_INIT;
	int rc;
	ready_fire(s);
	s->pend = NULL;
	smtp_set_state(s, ST_DATA_END);
	if (cmd_flush(s, &perr) < 0 || read_reply(s, more, &perr) < 0) {
		smtp_kill(s);
		undelivered(res, 0);
		*err = perr;
		s->pend_done(s->pend_ctx, res, -1, &perr);
		return -1;
	}
	result_final(s, res);
	if (s->r.code != 250)
		for (size_t i = 0; i < res->nrcpts; i++)
			res->rcpts[i].accepted = 0;
	rc = data_outcome(s, res, &perr);
	s->ready.res = res;
	s->ready.rc = rc;
	s->ready.err = perr;
	s->ready.done = s->pend_done;
	s->ready.ctx = s->pend_ctx;
	return 0;
}

/* The pending message on a dead session: its outcome is not known, so it is not delivered. */
static void pend_fail(ba_session *s)
{
	struct ba_result *res = s->pend;
	ready_fire(s);
	if (!res)
		return;
	s->pend = NULL;
	undelivered(res, 0);
	struct ba_err e = BA_ERR_INIT;
	ba_err_set(&e, EX_TEMPFAIL, "connection to the server lost before its reply to the end "
	           "of the data: the message may have been delivered");
	s->pend_done(s->pend_ctx, res, -1, &e);
}

/* Runs the transaction; the caller owns res. */
static int session_send(ba_session *s, const struct ba_envelope *env, ba_reader *body,
                        struct ba_result *res, unsigned char *in, struct ba_err *err)
{
	int utf8 = 0, data_code = 0;
	int partial = !!(s->p->flags & BA_SMTP_PARTIAL_DELIVERY);
	int chunk = (s->caps & BA_CAP_CHUNKING) &&
	            (!(s->p->flags & BA_SMTP_NO_CHUNKING) || env->body == BA_BODY_BINARYMIME);
	int seven_bit = !(s->caps & BA_CAP_8BITMIME);
	if (check_envelope(s, env, &utf8, err) < 0)
		return -1;
	if (send_envelope(s, env, utf8, !chunk, res, &data_code, err) < 0)
		return -1;
	if (res->code != 250) {
		if (data_code == 354)
			smtp_kill(s);
		return reply_fail(s, s->r.code == 552 ? EX_DATAERR : EX_UNAVAILABLE, err,
		                  "server refused the sender");
	}
	size_t nacc = 0;
	for (size_t i = 0; i < res->nrcpts; i++)
		nacc += res->rcpts[i].accepted;
	if (nacc == 0 || (nacc < res->nrcpts && !partial)) {
		res->code = data_code;
		if (data_code == 354)
			smtp_kill(s); /* RFC 2920 §3.1 leaves no way to abort DATA but to hang up */
		refused_fail(res, nacc, err);
		for (size_t i = 0; i < res->nrcpts; i++)
			res->rcpts[i].accepted = 0;
		return -1;
	}
	if (!chunk) {
		if (!pipelined(s)) {
			smtp_set_state(s, ST_DATA);
			if (cmd_exchange(s, err, "%s", "DATA") < 0)
				return -1;
			data_code = s->r.code;
		}
		if (data_code != 354) {
			result_final(s, res);
			for (size_t i = 0; i < res->nrcpts; i++)
				res->rcpts[i].accepted = 0;
			return reply_fail(s, EX_DATAERR, err, "server refused DATA");
		}
		static const struct framing data = { 0, 0, DATA_CHUNK };
		if (send_body(s, &data, body, env->size, seven_bit, in, err) < 0) {
			undelivered(res, 0);
			smtp_kill(s);
			return -1;
		}
	} else {
		static const struct framing bdat = { 1, BDAT_HDR, BDAT_CHUNK };
		int rc = send_body(s, &bdat, body, env->size, seven_bit, in, err);
		if (rc < 0) {
			undelivered(res, 0);
			smtp_kill(s);
			return -1;
		}
		if (rc == 1) {
			result_final(s, res);
			for (size_t i = 0; i < res->nrcpts; i++)
				res->rcpts[i].accepted = 0;
			return reply_fail(s, EX_DATAERR, err,
			                  "server refused the message data");
		}
	}
	s->need_rset = 0; /* RFC 5321 §4.1.1.4: the end of data ends the transaction */
	if (env->done && defer_final(s)) {
		/* the verdict is read with the next message's replies (pend_finish) */
		s->pend = res;
		s->pend_done = env->done;
		s->pend_ctx = env->done_ctx;
		return 1;
	}
	/*
	 * The end of the data is out: from here a cancel would leave the
	 * outcome unknown (the server may have taken the message), so the
	 * verdict is awaited (within timeout_ms) whatever the caller asks.
	 */
	if (s->p->flags & BA_SMTP_CANCEL)
		ba_stream_set_cancel(s->stream, -1);
	progress_until_acked(s, s->data_sent, env->size);
	int frc = read_final(s, res, err);
	if (s->stream && (s->p->flags & BA_SMTP_CANCEL))
		ba_stream_set_cancel(s->stream, s->p->cancel_fd);
	if (frc < 0) {
		smtp_kill(s);
		return -1;
	}
	return data_outcome(s, res, err);
}

int ba_session_send(ba_session *s, const struct ba_envelope *env, ba_reader *body,
                    struct ba_result **out, struct ba_err *err)
{
	*out = NULL;
	if (s->state == ST_DEAD || !s->stream) {
		pend_fail(s);
		return ba_err_set(err, EX_TEMPFAIL, "the connection to the server is no longer usable");
	}
	if (s->state != ST_READY)
		BA_BUG("ba_session_send() in state %s", state_names[s->state]);
	struct ba_result *res = result_new(env);
	unsigned char *in = malloc(DATA_CHUNK);
	if (!res || !in) {
		ba_result_free(res);
		free(in);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	s->hold_tail = env->done && defer_final(s);
	int rc = session_send(s, env, body, res, in, err);
	s->hold_tail = 0;
	free(in);
	if (s->dbuf.alloc > 4 * BDAT_CHUNK)
		ba_buf_release(&s->dbuf);
	if (s->state != ST_DEAD)
		smtp_set_state(s, ST_READY);
	if (rc < 0 && err && (err->code == EX_PROTOCOL || (err->flags & BA_ERR_CANCELLED)) &&
	    s->state != ST_DEAD)
		smtp_kill(s);
	if (s->state == ST_DEAD)
		pend_fail(s);
	if (rc != 1 && s->pend) { /* failed before its writes: the earlier verdict first */
		struct ba_err ignored = BA_ERR_INIT;
		if (pend_finish(s, 0, &ignored) < 0)
			pend_fail(s);
	}
	if (rc != 1)
		ready_fire(s);
	*out = rc == 1 ? NULL : res;
	return rc;
}
