/* bluearrow/oauth2.h - OAuth2 access tokens for XOAUTH2 and OAUTHBEARER
 *
 * An account with `auth xoauth2` or `auth oauthbearer` and an
 * `oauth2_client_id` gets its token here instead of from password,
 * passwordeval or netrc: a cached access token while it is valid, else one
 * fetched with the refresh-token grant (RFC 6749 §6) at the token endpoint.
 * HTTPS goes through libcurl (GnuTLS flavour), loaded with dlopen() on the
 * first request, so a process that needs no new token never maps it; the
 * endpoint's certificate is verified (the account's tls_trust_file when it
 * names a file, else the system store); replies are bounded in size (64 KB)
 * and time (the timeout given), and parsed as JSON (bluearrow/json.h).
 *
 * State lives in $XDG_STATE_HOME/bluearrow/oauth2/ (default
 * ~/.local/state/...; directories 0700): the file ACCOUNT holds the cached
 * access token with its expiry, endpoint and client, ACCOUNT.refresh a
 * refresh token that the endpoint rotated or that ba_oauth2_store_refresh()
 * stored (it takes precedence over oauth2_refresh_token and
 * oauth2_refresh_token_eval).  Both are written atomically (temporary file,
 * fsync, rename) with mode 0600.  Tokens, secrets and codes never reach a
 * log callback or an error text; the log names endpoints and files only.
 */
#ifndef BLUEARROW_OAUTH2_H
#define BLUEARROW_OAUTH2_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"

/* An access token is used only while it has more than this many seconds left. */
#define BA_OAUTH2_EXPIRY_MARGIN 60
/* Largest reply accepted from an endpoint. */
#define BA_OAUTH2_REPLY_MAX (64u * 1024)

/* The endpoints and scope of an account: its keys, else its provider's. */
struct ba_oauth2_endpoints {
	const char *token;      /* NULL = none; all borrowed from acc or static */
	const char *authorize;
	const char *device;
	const char *scope;
};

/* Fills *e from acc's oauth2_* keys, falling back on oauth2_provider's presets. */
void ba_oauth2_endpoints(struct ba_oauth2_endpoints *e, const struct ba_account *acc);

/* 1 when acc's token comes from this module (auth xoauth2/oauthbearer and a client id). */
int ba_oauth2_enabled(const struct ba_account *acc);

enum ba_oauth2_flags {
	BA_OAUTH2_REFRESH = 1 << 0,  /* ignore a cached access token (the server refused it) */
	BA_OAUTH2_NO_STORE = 1 << 1  /* ba_oauth2_exchange_code/device_poll: do not store the
	                                refresh token, only return it */
};

struct ba_oauth2_opts {
	const struct ba_log *log;   /* optional; endpoints and files only, never a secret */
	int timeout_ms;             /* per request, > 0; 0 = 60 s */
	unsigned flags;             /* enum ba_oauth2_flags */
};

/*
 * Appends acc's access token to out (a secret: release it with
 * ba_buf_release_secret()): the cached one unless it expires within
 * BA_OAUTH2_EXPIRY_MARGIN seconds, was issued by another endpoint or
 * client, or o->flags has BA_OAUTH2_REFRESH; else a new one from the
 * refresh-token grant, which is then cached (and a rotated refresh token
 * stored).  A reply without expires_in is used but not cached.
 * Errors: EX_CONFIG (no token endpoint, no refresh token "run 'bluearrow
 * oauth2 authorize -a ACCOUNT'", an eval command failed, the endpoint
 * refused the client: invalid_client); EX_NOPERM (the refresh token was
 * refused: invalid_grant; the text names `bluearrow oauth2 authorize -a
 * ACCOUNT`); EX_UNAVAILABLE (libcurl cannot be loaded, the certificate is
 * refused, another OAuth2 error); EX_TEMPFAIL (timeout, connection, HTTP
 * 5xx); EX_PROTOCOL (a reply larger than BA_OAUTH2_REPLY_MAX, not JSON, or
 * without an access token); EX_CANTCREAT (the state directory).  Every
 * text starts with "account 'NAME': ".
 */
int ba_oauth2_token(struct ba_buf *out, const struct ba_account *acc,
                    const struct ba_oauth2_opts *o, struct ba_err *err);

/* What `bluearrow check` reports (ba_oauth2_state()). */
struct ba_oauth2_state {
	int cached;                 /* 1: an access token for this endpoint and client is cached */
	long long expires_at;       /* its expiry (seconds since the epoch); 0 = none */
	int refresh_stored;         /* 1: a refresh token is in the state directory */
	int refresh_configured;     /* 1: oauth2_refresh_token or oauth2_refresh_token_eval */
};

/*
 * Fills *st (no network, no command run).  Errors: EX_CONFIG when neither
 * XDG_STATE_HOME nor HOME is set; EX_IOERR when a state file cannot be read.
 */
int ba_oauth2_state(struct ba_oauth2_state *st, const struct ba_account *acc, struct ba_err *err);

/*
 * Stores token as acc's refresh token in the state directory (0600,
 * atomically), or removes the stored one when token is NULL.  Errors:
 * EX_CANTCREAT naming the file.
 */
int ba_oauth2_store_refresh(const struct ba_account *acc, const char *token, struct ba_err *err);

/*
 * A PKCE pair (RFC 7636 §4.1-4.2): verifier gets 43 characters of
 * base64url from 32 random bytes, challenge BASE64URL(SHA-256(verifier))
 * (method S256).  Both are appended.  Errors: EX_OSERR.
 */
int ba_oauth2_pkce(struct ba_buf *verifier, struct ba_buf *challenge, struct ba_err *err);

/* base64url(SHA-256(s)) without padding, appended to out (also for tests). */
int ba_oauth2_s256(struct ba_buf *out, const char *s, struct ba_err *err);

/*
 * Appends the authorization request URL (RFC 6749 §4.1.1 with RFC 7636
 * §4.3: response_type=code, client_id, redirect_uri, scope, state,
 * code_challenge, code_challenge_method=S256) to out; every value is
 * percent-encoded.  Errors: EX_CONFIG (no authorization endpoint or client id).
 */
int ba_oauth2_authorize_url(struct ba_buf *out, const struct ba_account *acc,
                            const char *redirect_uri, const char *state,
                            const char *challenge, struct ba_err *err);

/*
 * Exchanges an authorization code (RFC 6749 §4.1.3, with the PKCE
 * verifier) at the token endpoint; caches the access token, stores the
 * refresh token unless o->flags has BA_OAUTH2_NO_STORE, and appends it to
 * refresh_out (a secret; may be NULL).  Errors: those of ba_oauth2_token(),
 * and EX_PROTOCOL when the reply has no refresh token.
 */
int ba_oauth2_exchange_code(struct ba_buf *refresh_out, const struct ba_account *acc,
                            const char *code, const char *redirect_uri, const char *verifier,
                            const struct ba_oauth2_opts *o, struct ba_err *err);

/* A device authorization (RFC 8628 §3.2); owns its strings (ba_oauth2_device_release()). */
struct ba_oauth2_device {
	char *device_code;          /* a secret */
	char *user_code;            /* shown to the user */
	char *verification_uri;
	char *verification_uri_complete; /* NULL when not given */
	long interval;              /* seconds between polls (default 5) */
	long expires_in;            /* seconds the codes are valid */
};

/*
 * Starts the device flow at the device endpoint (client_id and scope).
 * Errors: as ba_oauth2_token(); EX_CONFIG when there is no device endpoint;
 * EX_PROTOCOL when the reply lacks device_code, user_code or verification_uri.
 */
int ba_oauth2_device_start(struct ba_oauth2_device *d, const struct ba_account *acc,
                           const struct ba_oauth2_opts *o, struct ba_err *err);

/*
 * Polls the token endpoint once (RFC 8628 §3.4).  Returns 0 when the user
 * has authorized (as ba_oauth2_exchange_code() for the tokens), 1 when
 * the authorization is pending, 2 on slow_down (d->interval is increased
 * by 5 s, §3.5), -1 on error (expired_token and access_denied: EX_NOPERM).
 */
int ba_oauth2_device_poll(struct ba_buf *refresh_out, struct ba_oauth2_device *d,
                          const struct ba_account *acc, const struct ba_oauth2_opts *o,
                          struct ba_err *err);

void ba_oauth2_device_release(struct ba_oauth2_device *d);

#endif
