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
 * list that the flags allow: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS,
 * SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, then PLAIN, LOGIN only when
 * BA_SASL_TLS_ACTIVE (never a cleartext mechanism without TLS); OAUTHBEARER,
 * XOAUTH2 only when BA_SASL_HAVE_TOKEN; EXTERNAL only with HAVE_CERT.
 * Returns BA_SASL_NONE when nothing fits.
 */
enum ba_sasl_mech ba_sasl_pick(const char *server_list, unsigned flags);

typedef struct ba_sasl ba_sasl;

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
	const char *cb_type;   /* "tls-exporter" or "tls-unique" */
	/* test hook: fixed client nonce for SCRAM (RFC vectors); NULL = random */
	const char *client_nonce;
};

/* Creates the state of one exchange.  Errors: EX_USAGE (missing user/password), EX_OSERR. */
int ba_sasl_new(ba_sasl **out, const struct ba_sasl_params *p, struct ba_err *err);
/*
 * 1 if the mechanism sends an initial response with the AUTH command
 * (RFC 4954 §4).  Then call ba_sasl_step() with challenge NULL first.
 */
int ba_sasl_has_initial(const ba_sasl *s);
/*
 * Computes the response to a server challenge (raw bytes, already base64
 * decoded; NULL for the initial response) and appends it to out (raw
 * bytes).  Returns 0, or -1: EX_PROTOCOL when the challenge is malformed or
 * unexpected (e.g. a third challenge to PLAIN), EX_NOPERM when the server's
 * SCRAM signature does not verify (the server is not who it claims).
 */
int ba_sasl_step(ba_sasl *s, const unsigned char *challenge, size_t len, struct ba_buf *out,
                 struct ba_err *err);
/*
 * Called on 235: for SCRAM, 1 only if the server's final message was seen
 * and verified (a 235 without it is a failure, RFC 5802 §5); 1 for others.
 */
int ba_sasl_done(const ba_sasl *s);
/* Wipes and frees; NULL is a no-op. */
void ba_sasl_free(ba_sasl *s);

#endif
