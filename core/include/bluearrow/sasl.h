/* bluearrow/sasl.h - SASL mechanisms as pure steps: challenge in, response out, no I/O
 *
 * Written on GnuTLS's primitives (hashes, HMAC, PBKDF2, random), like curl's
 * lib/vauth/: the engine owns the exchange (AUTH, 334, 235), this module only
 * computes messages.  Payloads here are raw bytes; base64 is the engine's job.
 * Every buffer that held a secret is wiped before it is freed.
 */
#ifndef BLUEARROW_SASL_H
#define BLUEARROW_SASL_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"

enum ba_sasl_mech {
	BA_SASL_NONE = 0,
	BA_SASL_PLAIN,
	BA_SASL_LOGIN,
	BA_SASL_CRAM_MD5,
	BA_SASL_SCRAM_SHA_1,
	BA_SASL_SCRAM_SHA_256,
	BA_SASL_SCRAM_SHA_1_PLUS,
	BA_SASL_SCRAM_SHA_256_PLUS,
	BA_SASL_XOAUTH2,
	BA_SASL_OAUTHBEARER,
	BA_SASL_EXTERNAL,
};

/* "PLAIN", "SCRAM-SHA-256-PLUS", ... (the name used in AUTH); NULL for NONE. */
const char *ba_sasl_mech_name(enum ba_sasl_mech m);
/* Case-insensitive lookup of a mechanism name; BA_SASL_NONE if unknown. */
enum ba_sasl_mech ba_sasl_mech_from_name(const char *name);
/* 1 if the mechanism sends the password in a recoverable form (PLAIN, LOGIN) */
int ba_sasl_mech_is_cleartext(enum ba_sasl_mech m);
/* 1 if the mechanism takes a bearer token instead of a password (XOAUTH2, OAUTHBEARER). */
int ba_sasl_mech_uses_token(enum ba_sasl_mech m);

enum ba_sasl_pick_flags {
	BA_SASL_TLS_ACTIVE = 1 << 0,  /* the session is encrypted and verified */
	BA_SASL_HAVE_CB = 1 << 1,     /* channel binding data is available (for -PLUS) */
	BA_SASL_HAVE_TOKEN = 1 << 2,  /* an OAuth2 token was configured */
	BA_SASL_HAVE_CERT = 1 << 3,   /* a TLS client certificate was presented (EXTERNAL) */
};
/*
 * Picks the strongest mechanism offered in the server's space-separated AUTH
 * list (names compared case-insensitively; server_list is borrowed, NULL
 * gives NONE) that the flags allow, in this order:
 *  - EXTERNAL, when BA_SASL_HAVE_CERT and BA_SASL_TLS_ACTIVE;
 *  - with BA_SASL_HAVE_TOKEN the secret is a bearer token, so only
 *    OAUTHBEARER, then XOAUTH2, and only when BA_SASL_TLS_ACTIVE (a bearer
 *    token is as good as a password to an eavesdropper); no password mechanism;
 *  - otherwise SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS (only with
 *    BA_SASL_HAVE_CB), SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, then PLAIN,
 *    LOGIN only when BA_SASL_TLS_ACTIVE (never a cleartext mechanism without TLS).
 * Returns BA_SASL_NONE when nothing fits.  Cannot fail.
 */
enum ba_sasl_mech ba_sasl_pick(const char *server_list, unsigned flags);

typedef struct ba_sasl ba_sasl;

/*
 * All strings are borrowed for the call to ba_sasl_new() (copied), and must
 * not contain control characters (a minimal SASLprep, RFC 4013: other UTF-8
 * is passed through unnormalised).
 */
struct ba_sasl_params {
	enum ba_sasl_mech mech;
	const char *user;      /* borrowed for the call (copied) */
	const char *password;  /* borrowed, copied and wiped on free; the token for OAuth2 */
	const char *authzid;   /* optional */
	const char *host;      /* for OAUTHBEARER's host= */
	unsigned port;         /* for OAUTHBEARER's port= */
	/* tls-exporter (RFC 9266) or tls-unique channel binding data for -PLUS */
	const unsigned char *cb_data;
	size_t cb_len;
	const char *cb_type;   /* "tls-exporter" or "tls-unique"; NULL = "tls-exporter" */
	/*
	 * With a non-PLUS SCRAM, cb_data given means "the client could bind but
	 * the server offered no -PLUS": the gs2 flag is then "y" (RFC 5802 §6).
	 * Pass it so only when the server's list lacks -PLUS: a server that has
	 * -PLUS rightly takes "y" for a downgrade attack and fails the exchange.
	 */
	/* test hook: fixed client nonce for SCRAM (RFC vectors, 1..63 printable
	 * characters other than ","); NULL = 18 random bytes from gnutls_rnd(), in base64 */
	const char *client_nonce;
};

/*
 * Creates the state of one exchange; the caller frees *out with
 * ba_sasl_free().  user and password (the token for OAuth2) are required
 * except for EXTERNAL; -PLUS requires cb_data.  Errors: EX_USAGE (no
 * mechanism, missing user/password/cb_data, control characters, unknown
 * cb_type, bad client_nonce), EX_OSERR (out of memory).
 */
int ba_sasl_new(ba_sasl **out, const struct ba_sasl_params *p, struct ba_err *err);
/*
 * 1 if the mechanism sends an initial response with the AUTH command
 * (RFC 4954 §4).  Then call ba_sasl_step() with challenge NULL first.
 */
int ba_sasl_has_initial(const ba_sasl *s);
/*
 * Computes the response to a server challenge (raw bytes, already base64
 * decoded, untrusted; NULL for the initial response) and appends it to out
 * (raw bytes; it may be empty, which the engine sends as an empty line).
 * out holds credentials for PLAIN, LOGIN and the OAuth2 mechanisms: release
 * it with ba_buf_release_secret().  Room is grown before a secret is
 * appended, so no copy is left behind by a realloc.
 *
 * For a mechanism with an initial response, an empty challenge as the first
 * step is taken as the server's request for it (RFC 4422 §5).  The steps:
 *  PLAIN, EXTERNAL: one response; any further challenge is EX_PROTOCOL.
 *  LOGIN: user, then password, whatever the challenge texts; a third is EX_PROTOCOL.
 *  CRAM-MD5: one response to a non-empty challenge.
 *  SCRAM-*: client-first; client-final to server-first; an empty response
 *    to a verified server-final; then nothing more.
 *  XOAUTH2: the initial response; to the (JSON error) challenge an empty one.
 *  OAUTHBEARER: the initial response; to the error challenge "\x01" (RFC 7628 §3.2.3).
 * Returns 0, or -1: EX_PROTOCOL when the challenge is malformed or
 * unexpected (e.g. a second challenge to PLAIN, one over 8192 bytes, a
 * SCRAM server nonce that does not extend ours, a bad salt, an iteration
 * count outside 1..1000000, or a server-final e= error), EX_NOPERM when the server's SCRAM signature
 * does not verify (the server is not who it claims), EX_OSERR when out of
 * memory or out of randomness.  After a failure the exchange is over: every
 * later step fails with EX_PROTOCOL.  A NULL challenge other than as the
 * first step of a mechanism with an initial response is a BA_BUG().
 */
int ba_sasl_step(ba_sasl *s, const unsigned char *challenge, size_t len, struct ba_buf *out,
                 struct ba_err *err);
/*
 * Called on 235: for SCRAM, 1 only if the server's final message was seen
 * and verified (a 235 without it is a failure, RFC 5802 §5); 1 for others;
 * 0 for any mechanism once a step has failed.  Cannot fail.
 */
int ba_sasl_done(const ba_sasl *s);
/* Wipes and frees; NULL is a no-op. */
void ba_sasl_free(ba_sasl *s);

#endif
