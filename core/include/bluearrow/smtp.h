/* bluearrow/smtp.h - SMTP, submission and LMTP client sessions
 *
 * The engine speaks the client side of SMTP (RFC 5321), message submission
 * (RFC 6409, RFC 8314) and LMTP (RFC 2033) over a ba_stream.  It never opens
 * connections or reads configuration: the caller (route) connects, and for
 * STARTTLS hands in a callback that wraps the stream in TLS.  It is configured
 * by a plain params struct (OpenSMTPD's struct smtp_params).
 *
 * Guarantees (each has its own test):
 *  - Fail-closed TLS: with tls = BA_TLS_STARTTLS nothing but EHLO, STARTTLS
 *    and QUIT is sent before the upgrade callback returned a verified stream.
 *  - Bytes that arrive with the 220 to STARTTLS are a protocol error
 *    (EX_PROTOCOL, nothing else is sent); capabilities learnt before TLS are
 *    forgotten and EHLO is sent again.
 *  - AUTH: never a cleartext mechanism (PLAIN, LOGIN) without TLS unless
 *    allow_cleartext_auth; success only on 235 and ba_sasl_done(); an
 *    unexpected further 334 is answered "*" and fails; the password is sent
 *    at most once per session.
 *  - Data: every line leaves the client ending in CRLF: bare LF and bare CR
 *    in the input each become CRLF (the message is normalised, not refused);
 *    lines starting with "." are dot-stuffed (RFC 5321 §4.5.2); a line of
 *    more than 998 octets (not counting the line end and a stuffed dot)
 *    fails the message with EX_DATAERR and the connection is dropped so that
 *    the partial data is never delivered.
 *  - Commands are produced by one builder that refuses CR, LF and other
 *    controls; addresses containing "<", ">", spaces or controls are refused;
 *    DSN ORCPT and ENVID values are xtext-encoded (RFC 3461 §4).
 *  - Replies are bounded in line length, line count and time (a deadline per
 *    reply, not per read); codes are validated (three digits, 2xx-5xx, the
 *    same on every line); bytes after a complete reply are a protocol error
 *    unless PIPELINING or LMTP expects further replies.
 *  - Server text is cleaned (ba_log_clean) before it reaches a log, an
 *    error or a result.
 *  - The error of a failed transaction is the reply to the first command
 *    that failed, in protocol order: with PIPELINING the "503 need MAIL"
 *    and "503 need RCPT" a server sends after a refused MAIL are read to
 *    stay in step, never reported.
 *  - Cancellation (BA_SMTP_CANCEL): every wait for the server also watches
 *    cancel_fd, so a stalled server cannot delay a cancel; a cancelled
 *    send never lets the server see the end of the data.
 *
 * Thread safety: a session is used by one thread at a time; different
 * sessions may run in different threads.  The progress callback runs in
 * the thread that called ba_session_send().
 */
#ifndef BLUEARROW_SMTP_H
#define BLUEARROW_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/log.h"

typedef struct ba_session ba_session;

/*
 * MX: relay to a domain's mail exchanger (RFC 5321 §5, MTA to MTA, port 25).
 * The engine then never authenticates: an MX found in the DNS is not the
 * user's provider, so user, password and auth_mech must be unset (else
 * ba_session_open() fails with EX_USAGE and sends nothing).  Everything
 * else is as for SUBMISSION (HELO fallback for an old server included).
 * The route should pair it with BA_TLS_OPPORTUNISTIC (RFC 7435 §1: encrypt
 * when possible) and a tls_start that does not insist on a verified
 * certificate unless MTA-STS or DANE says so (RFC 3207 §4.1); the engine
 * does not change tls itself: BA_TLS_OFF stays plaintext.
 * SUBMISSION: to the user's MSA (RFC 6409), usually with AUTH.
 * LMTP: to a local delivery agent (RFC 2033): LHLO, no HELO fallback, one
 * reply per accepted recipient after the data.
 */
enum ba_smtp_variant { BA_SMTP_MX, BA_SMTP_SUBMISSION, BA_SMTP_LMTP };

/*
 * OFF: plaintext.  STARTTLS: required; the session fails (EX_UNAVAILABLE)
 * if the server does not offer it.  IMPLICIT: the stream handed to
 * ba_session_open() is already a verified TLS stream (RFC 8314 §3.3).
 * OPPORTUNISTIC (RFC 3207, RFC 7435): STARTTLS when the EHLO reply offers
 * it, plaintext when it does not or when the server refuses the STARTTLS
 * command (4xx/5xx: the dialogue is still in step, EHLO is not repeated).
 * Once the server said 220 the session is committed: a failed handshake or
 * verification fails ba_session_open() with the flag BA_ERR_TLS_FAILED in
 * err->flags (class as the tls_start callback set it, usually
 * EX_UNAVAILABLE); the connection is gone, and the caller may connect again
 * with BA_TLS_OFF or try the next host.  Cleartext AUTH stays refused on a
 * plaintext session (BA_SMTP_ALLOW_CLEARTEXT_AUTH aside), so OPPORTUNISTIC
 * with credentials fails with EX_NOPERM when the server offers no TLS.
 */
enum ba_tls_mode { BA_TLS_OFF, BA_TLS_STARTTLS, BA_TLS_IMPLICIT, BA_TLS_OPPORTUNISTIC };

/*
 * Wraps *stream in TLS and verifies the peer.  Takes ownership of *stream,
 * also on failure; on success replaces it with the encrypted stream.
 * Returns 0 or -1 with err set (EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG).
 * The engine adds BA_ERR_TLS_FAILED to err->flags when it returns -1.
 */
typedef int ba_smtp_tls_start_fn(void *ctx, ba_stream **stream, struct ba_err *err);
/*
 * Channel binding data of the TLS stream (for SCRAM -PLUS): appends to out,
 * sets *type.  Returns 0, or -1 when there is none.  May be NULL.
 */
typedef int ba_smtp_tls_binding_fn(void *ctx, ba_stream *stream, struct ba_buf *out,
                                   const char **type);

enum ba_smtp_flags {
	BA_SMTP_PARTIAL_DELIVERY = 1 << 0, /* deliver to the accepted recipients when others are refused */
	BA_SMTP_ALLOW_CLEARTEXT_AUTH = 1 << 1, /* PLAIN/LOGIN without TLS (only when configured) */
	BA_SMTP_NO_PIPELINING = 1 << 2,    /* do not pipeline even when offered (benchmarks, tests) */
	BA_SMTP_NO_CHUNKING = 1 << 3,      /* use DATA even when CHUNKING is offered */
	BA_SMTP_TOKEN = 1 << 4,            /* password is an OAuth2 bearer token */
	BA_SMTP_CLIENT_CERT = 1 << 5,      /* a TLS client certificate was presented (EXTERNAL) */
	BA_SMTP_CANCEL = 1 << 6,           /* cancel_fd is set (0 is a valid descriptor) */
};

/*
 * Progress of the data phase: sent is the number of message bytes (as read
 * from the body reader) handed to the connection so far, acked how many of
 * them the server has acknowledged: sent less what is still in the
 * socket's send queue (ba_stream_unsent(); the figure a progress bar
 * should show: a fast local write says nothing about a slow server), total
 * is env->size (0 when unknown).  Called after each write of a data chunk
 * (64 KB for DATA, a BDAT chunk), after the end of the data, and while the
 * reply to it is awaited, every 100 ms until the server has acknowledged
 * everything, in the sending thread; it must not call into the session.
 */
typedef void ba_smtp_progress_fn(void *ctx, uint64_t sent, uint64_t acked, uint64_t total);
/*
 * Called once the whole body is out but the end of the data (the final
 * "." or the last BDAT chunk) is not, in the sending thread: the last
 * moment the message is certainly not delivered (an interactive sender
 * records there that the outcome may become unknown).  Returning -1 (with
 * err set) stops the send as a cancel does: the connection is dropped and
 * the server never sees the end of the data.
 */
typedef int ba_smtp_data_end_fn(void *ctx, struct ba_err *err);

/*
 * Transparent, zero = defaults.  Every pointer is borrowed for the life of
 * the session.  The zero variant is BA_SMTP_MX, which never authenticates:
 * set variant = BA_SMTP_SUBMISSION along with user.
 */
struct ba_smtp_params {
	enum ba_smtp_variant variant;
	enum ba_tls_mode tls;
	const char *helo;                  /* EHLO/LHLO argument; NULL = "localhost" */
	ba_smtp_tls_start_fn *tls_start;   /* required for BA_TLS_STARTTLS and _OPPORTUNISTIC */
	ba_smtp_tls_binding_fn *tls_binding; /* optional */
	void *tls_ctx;                     /* passed to both callbacks */
	const char *user, *password;       /* user set = AUTH required; never logged */
	const char *auth_mech;             /* "PLAIN", "scram-sha-256"...; NULL or "" = strongest common */
	const char *host;                  /* server name for OAUTHBEARER; optional */
	unsigned port;
	unsigned flags;                    /* enum ba_smtp_flags */
	size_t line_max;                   /* reply line bound incl. CRLF; 0 = 4096 (RFC 5321 says 512) */
	size_t reply_lines_max;            /* lines per reply; 0 = 100 */
	int timeout_ms;                    /* per reply and per write; <= 0 = 300000 (RFC 5321 §4.5.3.2) */
	const struct ba_log *log;          /* optional; BA_LOG_PROTO traces the dialogue */
	ba_smtp_progress_fn *progress;     /* optional */
	void *progress_ctx;
	ba_smtp_data_end_fn *data_end;     /* optional */
	void *data_end_ctx;
	/*
	 * With BA_SMTP_CANCEL: a descriptor (borrowed, typically the read end of
	 * a pipe) that cancels the session when it becomes readable; nothing is
	 * read from it.  Watched in the same poll as the socket, in
	 * ba_session_open() and ba_session_send(), and checked between data
	 * chunks.  A cancelled call returns -1 with class EX_TEMPFAIL and
	 * BA_ERR_CANCELLED in err->flags; the connection is dropped at once
	 * (no QUIT, never the final "." or the last BDAT chunk), the session is
	 * dead (free it).  Once the end of the data is out, the send is no
	 * longer cancelled: it waits (within timeout_ms) for the server's
	 * verdict, so a cancel never leaves the outcome unknown.  The stream
	 * must support ba_stream_set_cancel() (fd and TLS streams do), else
	 * the cancel is seen only between data chunks.
	 */
	int cancel_fd;
};

/* Capabilities from the last EHLO/LHLO reply (RFC 5321 §4.1.1.1 and extensions). */
enum ba_smtp_caps {
	BA_CAP_ESMTP = 1 << 0,       /* EHLO (not HELO) was answered */
	BA_CAP_SIZE = 1 << 1,        /* RFC 1870 */
	BA_CAP_PIPELINING = 1 << 2,  /* RFC 2920 */
	BA_CAP_8BITMIME = 1 << 3,    /* RFC 6152 */
	BA_CAP_SMTPUTF8 = 1 << 4,    /* RFC 6531 */
	BA_CAP_DSN = 1 << 5,         /* RFC 3461 */
	BA_CAP_CHUNKING = 1 << 6,    /* RFC 3030 */
	BA_CAP_BINARYMIME = 1 << 7,  /* RFC 3030 */
	BA_CAP_ENHANCEDSTATUSCODES = 1 << 8, /* RFC 2034 */
	BA_CAP_STARTTLS = 1 << 9,    /* RFC 3207 */
	BA_CAP_AUTH = 1 << 10,       /* RFC 4954 */
	BA_CAP_TLS_ACTIVE = 1 << 16, /* not a server capability: the session is encrypted */
	BA_CAP_AUTHENTICATED = 1 << 17, /* not a server capability: AUTH succeeded */
};

enum ba_smtp_body { BA_BODY_7BIT, BA_BODY_8BITMIME, BA_BODY_BINARYMIME };

/* DSN NOTIFY bits (RFC 3461 §4.1); 0 = do not send NOTIFY. */
enum ba_smtp_notify {
	BA_NOTIFY_NEVER = 1 << 0,
	BA_NOTIFY_SUCCESS = 1 << 1,
	BA_NOTIFY_FAILURE = 1 << 2,
	BA_NOTIFY_DELAY = 1 << 3,
};
enum ba_smtp_ret { BA_RET_NONE, BA_RET_FULL, BA_RET_HDRS };

struct ba_rcpt {
	const char *addr;   /* "user@example.org" (no angle brackets); borrowed */
	unsigned notify;    /* enum ba_smtp_notify bits; ignored without DSN */
	const char *orcpt;  /* original recipient (sent as "rfc822;" + xtext); NULL = none */
};

struct ba_result;
/*
 * The outcome of a message whose final reply was left for later (see
 * ba_envelope.done): res (the callee owns it and frees it with
 * ba_result_free()), and rc and err as ba_session_send() would have
 * returned them (err is borrowed for the call; rc is 0 or -1).  It must
 * not call into the session.
 */
typedef void ba_smtp_done_fn(void *ctx, struct ba_result *res, int rc, const struct ba_err *err);

struct ba_envelope {
	const char *from;          /* reverse-path without brackets; "" = null sender <> */
	const struct ba_rcpt *rcpts;
	size_t nrcpts;             /* >= 1 */
	uint64_t size;             /* message size for SIZE=, 0 = unknown (RFC 1870 §6: estimate) */
	enum ba_smtp_body body;    /* what the message needs; 8BITMIME without the capability fails */
	int smtputf8;              /* the envelope or headers hold UTF-8 (RFC 6531) */
	enum ba_smtp_ret ret;      /* DSN RET=; ignored without DSN */
	const char *envid;         /* DSN ENVID=; NULL = none; ignored without DSN */
	/*
	 * Optional: pipelining across messages (RFC 2920 §3.1: message content
	 * may begin a group).  When set and the session pipelines (PIPELINING
	 * offered, no BA_SMTP_NO_PIPELINING, not LMTP, no BA_SMTP_CANCEL),
	 * ba_session_send() returns 1 once the data is sent but for its end,
	 * with *out NULL, without waiting for the server's verdict.  The end of
	 * the data waits in the session for the next ba_session_send(), which
	 * writes it together with its own commands (one write) and reads the
	 * verdict ahead of their replies.  done(done_ctx, ...) gets the outcome
	 * exactly once, in the order of the messages: from within a later
	 * ba_session_send() (right after its next write, so the caller's work
	 * on it overlaps the server's; or before it returns 0 or -1) or from
	 * ba_session_free(), which writes the end, reads the verdict, then
	 * QUITs.  So the caller must go on with the next message (or free the
	 * session) without delay.  A connection lost before the verdict gives
	 * rc -1, EX_TEMPFAIL, no recipient accepted: nothing counts as
	 * delivered without its 250.  Without PIPELINING the call behaves as
	 * when done is NULL (lock-step, the verdict awaited).
	 */
	ba_smtp_done_fn *done;
	void *done_ctx;
};

/* The outcome for one recipient.  Strings are owned by the result. */
struct ba_rcpt_result {
	char *addr;
	int code;                  /* RCPT reply, or for LMTP the reply after the data; 0 = not reached */
	char enhanced[16];         /* "2.1.5" or "" */
	char *text;                /* the server's text, cleaned; never NULL */
	int accepted;              /* 1 if the message was delivered to this recipient */
};

struct ba_result {
	size_t nrcpts;
	struct ba_rcpt_result *rcpts;
	int code;                  /* final reply to the data (for LMTP the last one), 0 if not reached */
	char enhanced[16];
	char *text;                /* cleaned; never NULL */
	size_t naccepted;          /* recipients the message was delivered to */
};
/* Frees a result; NULL is a no-op. */
void ba_result_free(struct ba_result *r);

/*
 * Reads the greeting, sends EHLO (LHLO for LMTP; HELO when EHLO gets 5xx,
 * but not for LMTP nor when TLS or AUTH is required), upgrades to TLS and
 * authenticates as *p requires.  Takes ownership of stream, also on failure.
 * On success the caller frees *out with ba_session_free().  *p is borrowed
 * for the life of the session.
 * Errors: EX_UNAVAILABLE (5xx greeting or EHLO, TLS failure, STARTTLS not
 * offered when required), EX_NOPERM (authentication refused or impossible),
 * EX_PROTOCOL (malformed, oversized or unexpected reply, trailing bytes),
 * EX_TEMPFAIL (4xx, timeout, connection lost; cancelled, with
 * BA_ERR_CANCELLED), EX_USAGE (bad params: control characters in helo,
 * STARTTLS without callback, credentials for an MX).  A failed TLS
 * handshake after the server's 220 to STARTTLS adds BA_ERR_TLS_FAILED to
 * err->flags (see BA_TLS_OPPORTUNISTIC).
 */
int ba_session_open(ba_session **out, ba_stream *stream, const struct ba_smtp_params *p,
                    struct ba_err *err);

/* enum ba_smtp_caps bits of the session.  Cannot fail. */
unsigned ba_session_caps(const ba_session *s);
/* SIZE limit announced by the server; 0 = none announced. */
uint64_t ba_session_size_max(const ba_session *s);
/* The AUTH mechanism used, "" if none.  Borrowed. */
const char *ba_session_auth_mech(const ba_session *s);

/*
 * Sends one message: MAIL, every RCPT and DATA (pipelined in one write when
 * the server offers PIPELINING), then the body from *body (streamed, CRLF
 * normalised and dot-stuffed, or in BDAT chunks with CHUNKING).  A session
 * sends any number of messages one after another (RSET after a failed one).
 *
 * *out receives the per-recipient results (caller frees with
 * ba_result_free()), also on failure after the envelope was answered (it is
 * NULL otherwise).  When a recipient is refused and BA_SMTP_PARTIAL_DELIVERY
 * is not set, nothing is delivered to anyone: the transaction is reset (or,
 * if the server already said 354, the connection is dropped before the
 * data's end and the session is dead).  body is read to its end only when
 * the data phase is reached.
 *
 * Returns 0 when the message was delivered to every recipient (or, with
 * partial delivery, to at least one); 1 when its verdict was left for later
 * (env->done, above); else -1 with err set:
 *  EX_TEMPFAIL  a 4xx anywhere, a timeout, the connection lost;
 *  EX_NOUSER    every recipient refused permanently (5xx);
 *  EX_DATAERR   the message is too big (SIZE, 552), needs 8BITMIME or
 *               SMTPUTF8 the server lacks, has a line over 998 octets, or
 *               the data was refused permanently; a bad address;
 *  EX_UNAVAILABLE the sender was refused permanently;
 *  EX_PROTOCOL  malformed reply or trailing bytes; for LMTP more replies
 *               after the data than accepted recipients (RFC 2033 §4.2;
 *               then no per-recipient outcome is believed: every recipient
 *               that had a reply after the data gets code 0, "not known");
 *  EX_TEMPFAIL with BA_ERR_CANCELLED in err->flags: cancelled (cancel_fd);
 *  other classes from the body reader.
 * The error (code, enhanced status, cleaned text) is the reply to the first
 * command that failed in protocol order (MAIL, each RCPT, DATA, each BDAT
 * chunk, the replies after the data); with PIPELINING the 503 replies that
 * follow a refused MAIL are never reported, and the recipients then keep
 * code 0 (not reached).
 * Mixed refusals (some recipients accepted, some refused, no partial
 * delivery) give EX_TEMPFAIL if any refusal was temporary, else EX_NOUSER.
 * After EX_PROTOCOL, EX_TEMPFAIL from I/O or a dropped data phase the
 * session is dead and every later send fails with EX_TEMPFAIL.
 */
int ba_session_send(ba_session *s, const struct ba_envelope *env, ba_reader *body,
                    struct ba_result **out, struct ba_err *err);

/*
 * Reads the verdict of a message left pending (ba_envelope.done) and hands it
 * over, sends QUIT (if the connection is usable), closes the stream and
 * frees.  NULL is a no-op.
 */
void ba_session_free(ba_session *s);

/*
 * The pieces below are exposed for unit tests and for the route layer.
 *
 * Appends the DATA-phase transformation of p[0..n) to out: CRLF
 * normalisation and, when stuff is 1, dot-stuffing.  *state carries the
 * line position between calls (start with 0); ba_smtp_data_end() closes
 * the data (a CRLF if the last line was open; ".\r\n" when stuff is 1).
 * Returns 0, or -1 on out of memory (EX_OSERR) or a line over 998 octets
 * (EX_DATAERR).
 */
struct ba_smtp_data_state {
	int bol;       /* at the beginning of a line */
	int cr;        /* the last byte was a CR not yet known to be followed by LF */
	size_t col;    /* octets in the current line */
	uint64_t line; /* line number (from 1) for errors */
	int started;
	int seven_bit; /* set by the caller: 8-bit bytes are an error (EX_DATAERR) */
};
int ba_smtp_data_add(struct ba_buf *out, struct ba_smtp_data_state *st, int stuff,
                     const void *p, size_t n, struct ba_err *err);
int ba_smtp_data_end(struct ba_buf *out, struct ba_smtp_data_state *st, int stuff,
                     struct ba_err *err);

#endif
