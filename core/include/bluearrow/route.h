/* bluearrow/route.h - account -> connection, TLS and an SMTP/LMTP session
 *
 * Layer 4, the one join (docs/ARCHITECTURE.md): turns a configured account
 * into engine parameters, connects (net), wraps TLS (implicit, or STARTTLS
 * through the engine's callback), opens the session (greeting, EHLO, TLS,
 * AUTH) and prepares envelopes for what the session can carry (IDN
 * A-labels when the server lacks SMTPUTF8).
 */
#ifndef BLUEARROW_ROUTE_H
#define BLUEARROW_ROUTE_H

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"
#include "bluearrow/net.h"
#include "bluearrow/smtp.h"
#include "bluearrow/tls.h"

typedef struct ba_route ba_route;

/*
 * Everything the lower layers need to reach and speak to an account's
 * server, computed from the account alone: no connection, no password,
 * no DNS (ba_route_params_init()).  The one mapping from an account to
 * engine parameters: sending, `bluearrow check` and the outbox use it, so
 * they cannot disagree.  String members point into acc (borrowed) or into
 * helo (owned); release with ba_route_params_release().
 */
struct ba_route_params {
	struct ba_smtp_params smtp; /* variant, TLS mode, EHLO name, user, AUTH method, flags;
	                               password NULL and TLS callbacks unset (ba_route_open) */
	struct ba_tls_params tls;   /* the tls_* keys */
	struct ba_net_params net;   /* host or socket, port, source address, proxy, timeout */
	struct ba_buf helo;         /* the expanded `domain` (%H %C %M) */
	int needs_password;         /* auth on with a method that takes a password */
};

/*
 * Fills *p from acc.  log is stored in every params struct; smtp_flags are
 * added to the engine's flags (enum ba_smtp_flags); timeout_ms > 0 caps the
 * account's timeout (check uses a short one).  Errors: EX_CONFIG "account
 * 'x': auth is on but user is not set", and those of ba_config_expand() for
 * the domain.  *p must be released also on failure.
 */
int ba_route_params_init(struct ba_route_params *p, const struct ba_account *acc,
                         const struct ba_log *log, unsigned smtp_flags, int timeout_ms,
                         struct ba_err *err);
void ba_route_params_release(struct ba_route_params *p);

/* What happened on the way, for diagnostics (check, ba_route_hint()); filled also on failure. */
struct ba_route_report {
	int tls_attempted;          /* a TLS handshake was started */
	struct ba_tls_info tls;     /* its details (certificate, fingerprint, verified, why refused,
	                               a plain-text answer) */
	char tls_host[256];         /* the name the certificate was verified against */
	char server[300];           /* the last target tried: "host:port" or a socket path */
	unsigned port;              /* its port (0 for a socket) */
	int wants_implicit_tls;     /* no greeting came, and the port answered a TLS handshake
	                               on a second connection: it expects implicit TLS */
};

/*
 * One host to try.  A route has a plan: the targets in the order they are
 * tried.  An account with `host` or `socket` has one target; direct
 * delivery fills the plan from the domain's MX records.
 */
struct ba_route_target {
	const char *host;           /* name, address literal or unix socket path; borrowed */
	unsigned port;
};

/*
 * Asks the user for the password of user at host (a front end on a
 * terminal), appending it to out (a secret: the caller wipes it).  Returns
 * 0, or -1 with err set (e.g. EX_CONFIG: there is no terminal to ask on).
 */
typedef int ba_route_ask_password_fn(void *ctx, const char *user, const char *host,
                                     struct ba_buf *out, struct ba_err *err);

struct ba_route_opts {
	const struct ba_log *log;  /* optional; BA_LOG_PROTO traces the dialogue */
	unsigned smtp_flags;       /* extra enum ba_smtp_flags (e.g. BA_SMTP_NO_PIPELINING) */
	int timeout_ms;            /* > 0: cap on the account's timeout; 0 = the account's */
	struct ba_route_report *report; /* optional out */
	const struct ba_route_target *plan; /* the targets to try in order, instead of the
	                                       account's host or socket; borrowed */
	size_t nplan;              /* 0 = the account's one target */
	ba_smtp_progress_fn *progress; /* optional: body bytes sent (smtp.h), in the calling thread */
	void *progress_ctx;
	ba_smtp_data_end_fn *data_end; /* optional: before the end of the data (smtp.h) */
	void *data_end_ctx;
	const int *cancel_fd;      /* optional: a descriptor whose readability cancels connecting
	                              and sending (smtp.h, net.h); borrowed for the route's life */
	ba_route_ask_password_fn *ask_password; /* optional: called when auth needs a password
	                                           and the account has no source for one */
	void *ask_password_ctx;
};

/*
 * Connects to acc's server (host/port, socket, proxy), starts TLS as acc
 * says (tls on + tls_starttls off = implicit TLS, RFC 8314), resolves the
 * password (ba_secret_password) when auth is on, and opens the session.
 * The targets of the plan are tried in order: a failure to connect, a 4xx
 * greeting or EHLO, or a failed TLS handshake moves on to the next target;
 * an authentication failure or a permanent refusal does not (another host
 * of the same service would say the same).  When every target fails the
 * error is the last one's class with each target's reason in the text
 * ("a.test:25: ...; b.test:25: ...").  With STARTTLS or no TLS (not on port
 * 25, where a server may delay its greeting on purpose and punish a client
 * that talks first), a greeting that has not come after 2 s (or half the
 * timeout) makes the route try a TLS handshake on a second connection
 * (certificate unchecked, no client certificate, nothing else sent); when
 * that succeeds the target fails at once with EX_TEMPFAIL ("no greeting
 * within 2 s, and port N answers a TLS handshake: ...") and
 * report->wants_implicit_tls, instead of waiting for the timeout; nothing
 * is sent on the first connection.  When auth needs a password and neither
 * password, passwordeval nor netrc gives one, o->ask_password (if set) is
 * asked, before any connection.  For an OAuth2 account (ba_oauth2_enabled())
 * the password is the access token of ba_oauth2_token(), fetched before any
 * connection; when the server refuses it (a 5xx reply to AUTH) it is
 * refreshed once and the plan is tried again on new connections.  acc is borrowed for the life of the
 * route.  On success the caller frees *out with ba_route_free().
 * Errors: those of ba_route_params_init(), ba_net_connect (EX_NOHOST,
 * EX_TEMPFAIL...), ba_tls_start (EX_UNAVAILABLE...), ba_session_open, and
 * EX_CONFIG for an unusable account (auth on without a password, and no
 * o->ask_password or it failed: its error), and those of ba_oauth2_token()
 * (EX_NOPERM for a refused refresh token, naming `bluearrow oauth2 authorize`).
 */
int ba_route_open(ba_route **out, const struct ba_account *acc, const struct ba_route_opts *o,
                  struct ba_err *err);

/*
 * What to change in the account after ba_route_open() (or a send through the
 * route) failed with err, from what *rep saw: the TLS mode against the port
 * ('tls_starttls off' for a port that expects implicit TLS, 'tls_starttls
 * on' for one that answers in plain text), and for a refused certificate
 * why, the names it holds with a tls_host_override line, tls_trust_file for
 * an unknown issuer, and the tls_fingerprint line to pin it.  Appends zero
 * or more lines to out, each ending in a newline: sentences, and lines to
 * put into the account indented by two spaces, each of which the
 * configuration parser accepts as it is.  A hint never suggests turning TLS
 * or certificate checks off.  Pure (no I/O: the probes ran in
 * ba_route_open()); the decision of every front end (check, sendmail,
 * send), which only prints the lines.  Certificate names are the server's
 * text, cleaned.  Returns the number of lines added (0: nothing to say), or
 * -1 when out failed (its sticky failure; out of memory or its cap).
 */
int ba_route_hint(struct ba_buf *out, const struct ba_account *acc, const struct ba_err *err,
                  const struct ba_route_report *rep);

/* The target the open route reached ("host:port" or the socket path).  Borrowed. */
const char *ba_route_server(const ba_route *r);

/* The open session (borrowed; valid until ba_route_free()). */
ba_session *ba_route_session(ba_route *r);

/*
 * Rewrites addr for the session into out (cleared first): unchanged when
 * it is ASCII or the server offers SMTPUTF8 (*utf8 is then set to 1 if it
 * is not ASCII); else the domain becomes its A-label (IDNA2008, libidn2).
 * Errors: EX_DATAERR for a non-ASCII local part without SMTPUTF8
 * ("address 'x' has a non-ASCII local part and the server does not offer
 * SMTPUTF8") or a domain that is not valid IDNA.
 */
int ba_route_addr(struct ba_buf *out, int *utf8, ba_route *r, const char *addr,
                  struct ba_err *err);

/*
 * Sends one message over the route's session (ba_session_send()), first
 * rendering it 7-bit with ba_mime_downgrade() when it needs that: env->body
 * is BA_BODY_8BITMIME and the server lacks 8BITMIME, or force_7bit is set
 * (a line over 998 octets).  The rendering streams into an unlinked
 * temporary file (bounded memory) and goes out as BA_BODY_7BIT with its own
 * size.  body is read once.  Results and errors as ba_session_send(), plus
 * those of ba_mime_downgrade() (EX_DATAERR: 8-bit text in a structured
 * header) and EX_CANTCREAT for the temporary file.
 */
int ba_route_send(ba_route *r, const struct ba_envelope *env, ba_reader *body, int force_7bit,
                  struct ba_result **out, struct ba_err *err);

/* QUITs, closes and frees; wipes the password.  NULL is a no-op. */
void ba_route_free(ba_route *r);

#endif
