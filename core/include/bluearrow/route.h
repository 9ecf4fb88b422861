/* bluearrow/route.h - account -> connection, TLS and an SMTP/LMTP session
 *
 * Layer 4, the one join (DESIGN.md §3): turns a configured account into
 * engine parameters, connects (net), wraps TLS (implicit, or STARTTLS
 * through the engine's callback), opens the session (greeting, EHLO, TLS,
 * AUTH) and prepares envelopes for what the session can carry (IDN
 * A-labels when the server lacks SMTPUTF8).
 */
#ifndef BLUEARROW_ROUTE_H
#define BLUEARROW_ROUTE_H

#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"
#include "bluearrow/smtp.h"
#include "bluearrow/tls.h"

typedef struct ba_route ba_route;

struct ba_route_opts {
	const struct ba_log *log;  /* optional; BA_LOG_PROTO traces the dialogue */
	unsigned smtp_flags;       /* extra enum ba_smtp_flags (e.g. BA_SMTP_NO_PIPELINING) */
};

/*
 * Connects to acc's server (host/port, socket, proxy), starts TLS as acc
 * says (tls on + tls_starttls off = implicit TLS, RFC 8314), resolves the
 * password (ba_secret_password) when auth is on, and opens the session.
 * acc is borrowed for the life of the route.  On success the caller frees
 * *out with ba_route_free().
 * Errors: those of ba_net_connect (EX_NOHOST, EX_TEMPFAIL...), ba_tls_start
 * (EX_UNAVAILABLE...), ba_session_open, and EX_CONFIG for an unusable
 * account (auth on without a user or password).
 */
int ba_route_open(ba_route **out, const struct ba_account *acc, const struct ba_route_opts *o,
                  struct ba_err *err);

/*
 * Fills *tp with the TLS settings of acc (tls_* keys, timeout): the one
 * mapping from an account to ba_tls_params, used by ba_route_open() and by
 * front ends that start TLS themselves (`bluearrow check`).  The strings
 * are borrowed from acc; log is stored as given.
 */
void ba_route_tls_params(struct ba_tls_params *tp, const struct ba_account *acc,
                         const struct ba_log *log);

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
