/* oauth2.c - OAuth2 tokens: refresh grant, code exchange, device flow, the token cache
 *
 * HTTP is bluearrow/http.h's: libcurl, loaded on the first request, so
 * `bluearrow sendmail` with a cached token, or without OAuth2, never maps
 * it.
 */
#include "bluearrow/oauth2.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/http.h"
#include "bluearrow/io.h"
#include "bluearrow/json.h"

#define DEFAULT_TIMEOUT_MS 60000
#define STATE_MAX (64u * 1024)
#define SECRET_MAX (64u * 1024)

/* ---- providers --------------------------------------------------------- */

struct provider {
	const char *name, *token, *authorize, *device, *scope;
};

static const struct provider providers[] = {
	{ "gmail", "https://oauth2.googleapis.com/token",
	  "https://accounts.google.com/o/oauth2/v2/auth",
	  "https://oauth2.googleapis.com/device/code", "https://mail.google.com/" },
	{ "microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/token",
	  "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
	  "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
	  "https://outlook.office.com/SMTP.Send offline_access" },
};

void ba_oauth2_endpoints(struct ba_oauth2_endpoints *e, const struct ba_account *acc)
{
	const struct provider *p = NULL;
	for (size_t i = 0; acc->oauth2_provider && i < sizeof(providers) / sizeof(providers[0]); i++)
		if (strcmp(providers[i].name, acc->oauth2_provider) == 0)
			p = &providers[i];
	e->token = acc->oauth2_token_endpoint ? acc->oauth2_token_endpoint : p ? p->token : NULL;
	e->authorize = acc->oauth2_authorize_endpoint ? acc->oauth2_authorize_endpoint
	               : p                            ? p->authorize
	                                              : NULL;
	e->device = acc->oauth2_device_endpoint ? acc->oauth2_device_endpoint
	            : p                         ? p->device
	                                        : NULL;
	e->scope = acc->oauth2_scope ? acc->oauth2_scope : p ? p->scope : NULL;
}

int ba_oauth2_enabled(const struct ba_account *acc)
{
	return acc->auth && acc->auth_method &&
	       (strcmp(acc->auth_method, "xoauth2") == 0 ||
	        strcmp(acc->auth_method, "oauthbearer") == 0) &&
	       acc->oauth2_client_id && *acc->oauth2_client_id;
}

/* ---- HTTPS (bluearrow/http.h) ------------------------------------------ */

/*
 * POSTs form (application/x-www-form-urlencoded; a secret) to url and
 * returns the HTTP status in *status and the body in *body (capped).
 * Errors name the account and the URL, never the form.
 */
static int http_post(struct ba_buf *body, long *status, const struct ba_account *acc,
                     const char *url, const struct ba_buf *form,
                     const struct ba_oauth2_opts *o, struct ba_err *err)
{
	if (!ba_http_available())
		return ba_err_set(err, EX_UNAVAILABLE,
		                  "account '%s': OAuth2 needs %s (Debian package %s), "
		                  "which cannot be loaded", acc->name, BA_HTTP_LIBRARY,
		                  BA_HTTP_PACKAGE);
	const char *ca = acc->tls_trust_file;
	if (ca && !*ca)
		return ba_err_set(err, EX_CONFIG,
		                  "account '%s': tls_trust_file is empty (trust no CA): the OAuth2 "
		                  "endpoint '%s' cannot be verified", acc->name, url);
	if (ca && strcmp(ca, "system") == 0)
		ca = NULL;
	struct ba_http_params hp = { ca, o && o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS,
		                     BA_OAUTH2_REPLY_MAX, NULL, o ? o->log : NULL };
	struct ba_http_reply r;
	r.body = *body;
	int rc = ba_http_request(&r, url, ba_buf_str(form), form->len, &hp, err);
	*body = r.body;
	*status = r.status;
	if (rc < 0)
		return ba_err_prefix(err, "account '%s': OAuth2 endpoint '%s': ", acc->name, url);
	return 0;
}

/* ---- forms and URLs ----------------------------------------------------- */

/* RFC 3986 unreserved characters stay, everything else is %XX (also for forms). */
static void add_enc(struct ba_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			ba_buf_addch(b, *p);
		} else {
			ba_buf_addch(b, '%');
			ba_buf_addch(b, hex[*p >> 4]);
			ba_buf_addch(b, hex[*p & 15]);
		}
	}
}

static void add_param(struct ba_buf *b, const char *name, const char *value)
{
	if (!value)
		return;
	if (b->len && b->data[b->len - 1] != '?' && b->data[b->len - 1] != '&')
		ba_buf_addch(b, '&');
	ba_buf_addstr(b, name);
	ba_buf_addch(b, '=');
	add_enc(b, value);
}

/* ---- state files --------------------------------------------------------- */

static const char *home(void)
{
	const char *h = getenv("HOME");
	if (h && *h)
		return h;
	static _Thread_local char buf[4096];
	struct passwd pwb, *pw = NULL;
	if (getpwuid_r(getuid(), &pwb, buf, sizeof buf, &pw) != 0 || !pw)
		return NULL;
	return pw->pw_dir;
}

/* The state directory, created (each missing component 0700) when create is set. */
static int state_dir(struct ba_buf *out, int create, struct ba_err *err)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *h = home();
	/* XDG Base Directory: an unset, empty or relative XDG_STATE_HOME means ~/.local/state */
	if (xdg && xdg[0] == '/')
		ba_buf_addf(out, "%s/bluearrow/oauth2", xdg);
	else if (h)
		ba_buf_addf(out, "%s/.local/state/bluearrow/oauth2", h);
	else
		return ba_err_set(err, EX_CONFIG, "neither XDG_STATE_HOME nor HOME is set");
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (!create)
		return 0;
	return ba_mkdirs(ba_buf_str(out), err);
}

/* The name tokens are kept under: "account default : gmail" shares gmail's. */
static const char *state_name(const struct ba_account *acc)
{
	return acc->alias_of ? acc->alias_of : acc->name;
}

/* dir/ACCOUNT[suffix]; the name is percent-encoded where it is not [A-Za-z0-9._-@+]. */
static int state_file(struct ba_buf *out, const struct ba_account *acc, const char *suffix,
                      int create, struct ba_err *err)
{
	if (state_dir(out, create, err) < 0)
		return -1;
	ba_buf_addch(out, '/');
	const char *name = state_name(acc);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		int ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		         (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '@' ||
		         *p == '+' || (*p == '.' && p != (const unsigned char *)name);
		if (ok)
			ba_buf_addch(out, *p);
		else
			ba_buf_addf(out, "%%%02X", *p);
	}
	ba_buf_addstr(out, suffix);
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

/*
 * The cache file: lines "KEY VALUE" (endpoint, client, expires, token).
 * Returns the line's value for key, or NULL; the text is modified (NULs).
 */
struct cache {
	const char *endpoint, *client, *token;
	long long expires;
};

static void cache_parse(struct cache *c, char *text)
{
	memset(c, 0, sizeof(*c));
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp++ = '\0';
		if (strcmp(line, "endpoint") == 0)
			c->endpoint = sp;
		else if (strcmp(line, "client") == 0)
			c->client = sp;
		else if (strcmp(line, "token") == 0)
			c->token = sp;
		else if (strcmp(line, "expires") == 0) {
			char *end;
			errno = 0;
			long long v = strtoll(sp, &end, 10);
			if (!*end && errno == 0 && v > 0)
				c->expires = v;
		}
	}
}

/* A token we can put on a SASL line: printable ASCII, no blanks (RFC 6750 §2.1 b64token). */
static int token_ok(const char *t)
{
	if (!t || !*t || strlen(t) > 16384)
		return 0;
	for (; *t; t++)
		if (*t < 0x21 || *t > 0x7e)
			return 0;
	return 1;
}

static int cache_write(const struct ba_account *acc, const char *endpoint, const char *token,
                       long long expires, struct ba_err *err)
{
	struct ba_buf path = BA_BUF_INIT, data = BA_BUF_INIT;
	int rc = state_file(&path, acc, "", 1, err);
	if (rc == 0) {
		ba_buf_addf(&data, "endpoint %s\nclient %s\nexpires %lld\ntoken %s\n", endpoint,
		            acc->oauth2_client_id, expires, token);
		rc = ba_buf_failed(&data) ? ba_err_set(err, EX_OSERR, "out of memory")
		                          : ba_write_private(ba_buf_str(&path), &data, err);
	}
	ba_buf_release(&path);
	ba_buf_release_secret(&data);
	return rc;
}

int ba_oauth2_store_refresh(const struct ba_account *acc, const char *token, struct ba_err *err)
{
	struct ba_buf path = BA_BUF_INIT, data = BA_BUF_INIT;
	int rc = state_file(&path, acc, ".refresh", 1, err);
	if (rc == 0 && !token) {
		if (unlink(ba_buf_str(&path)) < 0 && errno != ENOENT)
			rc = ba_err_set(err, EX_CANTCREAT, "cannot remove '%s': %s", ba_buf_str(&path),
			                ba_strerror_t(errno));
	} else if (rc == 0) {
		ba_buf_addf(&data, "%s\n", token);
		rc = ba_buf_failed(&data) ? ba_err_set(err, EX_OSERR, "out of memory")
		                          : ba_write_private(ba_buf_str(&path), &data, err);
	}
	ba_buf_release(&path);
	ba_buf_release_secret(&data);
	return rc;
}

/* The stored refresh token (first line of ACCOUNT.refresh) into out; 1 found, 0 not, -1 error. */
static int stored_refresh(struct ba_buf *out, const struct ba_account *acc, struct ba_err *err)
{
	struct ba_buf path = BA_BUF_INIT, text;
	ba_buf_init(&text, STATE_MAX);
	int rc = state_file(&path, acc, ".refresh", 0, err);
	if (rc == 0)
		rc = ba_read_private(&text, ba_buf_str(&path), err);
	if (rc == 1) {
		size_t n = strcspn(ba_buf_str(&text), "\r\n");
		if (n == 0)
			rc = 0;
		else if (ba_buf_add(out, text.data, n) < 0)
			rc = ba_err_set(err, EX_OSERR, "out of memory");
	}
	ba_buf_release(&path);
	ba_buf_release_secret(&text);
	return rc;
}

int ba_oauth2_state(struct ba_oauth2_state *st, const struct ba_account *acc, struct ba_err *err)
{
	struct ba_oauth2_endpoints e;
	struct ba_buf path = BA_BUF_INIT, text, rt;
	memset(st, 0, sizeof(*st));
	ba_oauth2_endpoints(&e, acc);
	ba_buf_init(&text, STATE_MAX);
	ba_buf_init(&rt, STATE_MAX);
	st->refresh_configured = acc->oauth2_refresh_token || acc->oauth2_refresh_token_eval;
	int rc = state_file(&path, acc, "", 0, err);
	if (rc == 0 && (rc = ba_read_private(&text, ba_buf_str(&path), err)) == 1) {
		struct cache c;
		cache_parse(&c, text.data);
		if (c.token && c.endpoint && c.client && e.token && strcmp(c.endpoint, e.token) == 0 &&
		    strcmp(c.client, acc->oauth2_client_id ? acc->oauth2_client_id : "") == 0) {
			st->cached = 1;
			st->expires_at = c.expires;
		}
	}
	if (rc >= 0 && (rc = stored_refresh(&rt, acc, err)) == 1)
		st->refresh_stored = 1;
	ba_buf_release(&path);
	ba_buf_release_secret(&text);
	ba_buf_release_secret(&rt);
	return rc < 0 ? -1 : 0;
}

/* ---- secrets from the configuration -------------------------------------- */

/* value, else the first line of eval's output, else nothing (0). */
static int config_secret(struct ba_buf *out, const struct ba_account *acc, const char *value,
                         const char *eval, const char *key, struct ba_err *err)
{
	if (value)
		return ba_buf_addstr(out, value) < 0 ? ba_err_set(err, EX_OSERR, "out of memory") : 1;
	if (!eval)
		return 0;
	struct ba_buf tmp;
	ba_buf_init(&tmp, SECRET_MAX);
	int rc = 1;
	if (ba_config_run_command(&tmp, eval, err) < 0)
		rc = ba_err_prefix(err, "account '%s': %s_eval: ", acc->name, key);
	else if (tmp.len == 0)
		rc = ba_err_set(err, EX_CONFIG, "account '%s': %s_eval command '%s' printed nothing",
		                acc->name, key, eval);
	else if (ba_buf_add(out, tmp.data, tmp.len) < 0)
		rc = ba_err_set(err, EX_OSERR, "out of memory");
	ba_buf_release_secret(&tmp);
	return rc;
}

/* ---- token requests -------------------------------------------------------- */

/* The server's text for an error, cleaned and short (it is shown to the user). */
static void server_text(char *out, size_t size, const char *s)
{
	struct ba_buf b;
	ba_buf_init(&b, 256);
	out[0] = '\0';
	if (s && ba_log_clean(&b, s, strlen(s)) == 0)
		snprintf(out, size, "%s", ba_buf_str(&b));
	ba_buf_release(&b);
}

/*
 * POSTs form to url and parses the JSON reply into *j.  Returns 0 for an
 * HTTP 2xx reply; for an OAuth2 error reply (RFC 6749 §5.2) fills
 * errcode (may be empty) and returns 1 with err set (the class decided
 * here: invalid_grant EX_NOPERM, invalid_client EX_CONFIG, others
 * EX_UNAVAILABLE; HTTP 5xx EX_TEMPFAIL); -1 for other failures.
 */
static int token_request(struct ba_json *j, char *errcode, size_t errsize,
                         const struct ba_account *acc, const char *url,
                         const struct ba_buf *form, const struct ba_oauth2_opts *o,
                         struct ba_err *err)
{
	struct { struct ba_buf body; } r = { BA_BUF_INIT };
	long status = 0;
	int rc = -1;
	errcode[0] = '\0';
	ba_buf_init(&r.body, BA_OAUTH2_REPLY_MAX + 1);
	if (http_post(&r.body, &status, acc, url, form, o, err) < 0)
		goto out;
	if (ba_json_parse(j, r.body.data ? r.body.data : "", r.body.len, err) < 0) {
		ba_json_release(j);
		if (status >= 500)
			ba_err_set(err, EX_TEMPFAIL, "account '%s': OAuth2 endpoint '%s': HTTP %ld",
			           acc->name, url, status);
		else
			ba_err_prefix(err, "account '%s': OAuth2 endpoint '%s' (HTTP %ld): ", acc->name,
			              url, status);
		goto out;
	}
	if (status >= 200 && status < 300) {
		rc = 0;
		goto out;
	}
	char desc[200];
	const char *e = ba_json_str(j, "error");
	server_text(errcode, errsize, e);
	server_text(desc, sizeof desc, ba_json_str(j, "error_description"));
	int code = status >= 500 ? EX_TEMPFAIL : EX_UNAVAILABLE;
	if (e && strcmp(e, "invalid_grant") == 0)
		code = EX_NOPERM;
	else if (e && strcmp(e, "invalid_client") == 0)
		code = EX_CONFIG;
	ba_err_set(err, code, "account '%s': OAuth2 endpoint '%s' refused the request (HTTP %ld%s%s%s%s)",
	           acc->name, url, status, *errcode ? ": " : "", errcode, *desc ? ": " : "", desc);
	rc = 1;
out:
	ba_buf_release_secret(&r.body);
	return rc;
}

/*
 * A successful token reply: checks the access token and caches it (with
 * expires_in), stores a refresh token that differs from used_refresh
 * unless flags has BA_OAUTH2_NO_STORE, appends the access token to
 * access_out and the refresh token to refresh_out (either may be NULL).
 */
static int token_reply(struct ba_buf *access_out, struct ba_buf *refresh_out,
                       const struct ba_account *acc, const char *endpoint,
                       const struct ba_json *j, const char *used_refresh, unsigned flags,
                       const struct ba_log *log, struct ba_err *err)
{
	const char *at = ba_json_str(j, "access_token");
	const char *type = ba_json_str(j, "token_type");
	const char *rt = ba_json_str(j, "refresh_token");
	long expires_in = 0;
	if (!token_ok(at))
		return ba_err_set(err, EX_PROTOCOL,
		                  "account '%s': OAuth2 endpoint '%s' sent no usable access_token",
		                  acc->name, endpoint);
	if (type && strcasecmp(type, "bearer") != 0)
		return ba_err_set(err, EX_PROTOCOL,
		                  "account '%s': OAuth2 endpoint '%s' sent a token of type '%.32s', "
		                  "not Bearer", acc->name, endpoint, type);
	if (rt && !token_ok(rt))
		return ba_err_set(err, EX_PROTOCOL,
		                  "account '%s': OAuth2 endpoint '%s' sent a malformed refresh_token",
		                  acc->name, endpoint);
	if (ba_json_uint(j, "expires_in", 10L * 365 * 86400, &expires_in) < 0)
		return ba_err_set(err, EX_PROTOCOL,
		                  "account '%s': OAuth2 endpoint '%s' sent a malformed expires_in",
		                  acc->name, endpoint);
	if (rt && !(flags & BA_OAUTH2_NO_STORE) && (!used_refresh || strcmp(rt, used_refresh) != 0)) {
		if (ba_oauth2_store_refresh(acc, rt, err) < 0)
			return ba_err_prefix(err, "account '%s': ", acc->name);
		ba_log(log, BA_LOG_INFO, "oauth2: stored the new refresh token of account '%s'",
		       acc->name);
	}
	if (expires_in > 0) {
		long long expires = (long long)time(NULL) + expires_in;
		if (cache_write(acc, endpoint, at, expires, err) < 0)
			return ba_err_prefix(err, "account '%s': ", acc->name);
		ba_log(log, BA_LOG_INFO, "oauth2: access token valid for %ld s, cached", expires_in);
	}
	if (access_out && ba_buf_addstr(access_out, at) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (refresh_out && rt && ba_buf_addstr(refresh_out, rt) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

static void add_client(struct ba_buf *form, const struct ba_account *acc,
                       const struct ba_buf *secret)
{
	add_param(form, "client_id", acc->oauth2_client_id);
	if (secret->len)
		add_param(form, "client_secret", ba_buf_str(secret));
}

static int need_client(const struct ba_account *acc, struct ba_err *err)
{
	if (!acc->oauth2_client_id || !*acc->oauth2_client_id)
		return ba_err_set(err, EX_CONFIG, "account '%s': oauth2_client_id is not set",
		                  acc->name);
	return 0;
}

static int need_endpoint(const char *url, const char *key, const struct ba_account *acc,
                         struct ba_err *err)
{
	if (!url)
		return ba_err_set(err, EX_CONFIG,
		                  "account '%s': no %s (set it, or oauth2_provider gmail or "
		                  "microsoft)", acc->name, key);
	return 0;
}

/* The cached access token, if usable, into out: 1, else 0. */
static int cached_token(struct ba_buf *out, const struct ba_account *acc, const char *endpoint,
                        struct ba_err *err)
{
	struct ba_buf path = BA_BUF_INIT, text;
	ba_buf_init(&text, STATE_MAX);
	int rc = state_file(&path, acc, "", 0, err);
	if (rc == 0 && (rc = ba_read_private(&text, ba_buf_str(&path), err)) == 1) {
		struct cache c;
		cache_parse(&c, text.data);
		rc = 0;
		if (c.token && token_ok(c.token) && c.endpoint && c.client &&
		    strcmp(c.endpoint, endpoint) == 0 && strcmp(c.client, acc->oauth2_client_id) == 0 &&
		    c.expires - (long long)time(NULL) > BA_OAUTH2_EXPIRY_MARGIN) {
			if (ba_buf_addstr(out, c.token) < 0)
				rc = ba_err_set(err, EX_OSERR, "out of memory");
			else
				rc = 1;
		}
	}
	ba_buf_release(&path);
	ba_buf_release_secret(&text);
	if (rc < 0) {
		/* a cache that cannot be read is no cache: fetch a token, and overwrite it */
		ba_err_clear(err);
		rc = 0;
	}
	return rc;
}

/*
 * Takes ACCOUNT.lock (flock), so that processes started together (a cron
 * burst of sendmail) refresh once and share the token, rather than each
 * spending (and with rotation, invalidating) the refresh token.  Waits at
 * most timeout_ms; returns the descriptor, or -1 when locking is not
 * possible (the refresh then goes ahead unlocked: the lock only saves work).
 */
static int lock_refresh(const struct ba_account *acc, int timeout_ms)
{
	struct ba_buf path = BA_BUF_INIT;
	struct ba_err ignored = BA_ERR_INIT;
	int fd = -1;
	if (state_file(&path, acc, ".lock", 1, &ignored) == 0)
		fd = open(ba_buf_str(&path), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	ba_buf_release(&path);
	for (int waited = 0; fd >= 0; waited += 50) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK || waited >= timeout_ms)
			break;
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

int ba_oauth2_token(struct ba_buf *out, const struct ba_account *acc,
                    const struct ba_oauth2_opts *o, struct ba_err *err)
{
	static const struct ba_oauth2_opts none;
	if (!o)
		o = &none;
	struct ba_oauth2_endpoints e;
	ba_oauth2_endpoints(&e, acc);
	if (need_client(acc, err) < 0 || need_endpoint(e.token, "oauth2_token_endpoint", acc, err) < 0)
		return -1;
	if (!(o->flags & BA_OAUTH2_REFRESH)) {
		int c = cached_token(out, acc, e.token, err);
		if (c != 0) {
			if (c == 1)
				ba_log(o->log, BA_LOG_INFO, "oauth2: using the cached access token");
			return c < 0 ? ba_err_prefix(err, "account '%s': ", acc->name) : 0;
		}
	}
	struct ba_buf rt, secret, form;
	struct ba_json j = { NULL, 0 };
	char errcode[64];
	int rc = -1;
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	int lock = lock_refresh(acc, timeout);
	ba_buf_init(&rt, SECRET_MAX);
	ba_buf_init(&secret, SECRET_MAX);
	ba_buf_init(&form, 0);
	/* another process may have refreshed while this one waited for the lock */
	if (lock >= 0 && !(o->flags & BA_OAUTH2_REFRESH)) {
		int c = cached_token(out, acc, e.token, err);
		if (c != 0) {
			rc = c < 0 ? -1 : 0;
			goto out;
		}
	}
	int have = stored_refresh(&rt, acc, err);
	if (have < 0) {
		ba_err_prefix(err, "account '%s': ", acc->name);
		goto out;
	}
	if (have == 0)
		have = config_secret(&rt, acc, acc->oauth2_refresh_token,
		                     acc->oauth2_refresh_token_eval, "oauth2_refresh_token", err);
	if (have < 0)
		goto out;
	if (have == 0) {
		ba_err_set(err, EX_CONFIG,
		           "account '%s': no OAuth2 refresh token: run 'bluearrow oauth2 authorize "
		           "-a %s' (or set oauth2_refresh_token_eval)", acc->name, state_name(acc));
		goto out;
	}
	if (config_secret(&secret, acc, acc->oauth2_client_secret, acc->oauth2_client_secret_eval,
	                  "oauth2_client_secret", err) < 0)
		goto out;
	add_param(&form, "grant_type", "refresh_token");
	add_param(&form, "refresh_token", ba_buf_str(&rt));
	add_client(&form, acc, &secret);
	if (ba_buf_failed(&form)) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	ba_log(o->log, BA_LOG_INFO, "oauth2: refreshing the access token of account '%s'",
	       acc->name);
	int t = token_request(&j, errcode, sizeof errcode, acc, e.token, &form, o, err);
	if (t == 1 && err->code == EX_NOPERM) {
		ba_err_set(err, EX_NOPERM,
		           "account '%s': the OAuth2 refresh token was refused (%s): run 'bluearrow "
		           "oauth2 authorize -a %s' to authorize again", acc->name, errcode,
		           state_name(acc));
		goto out;
	}
	if (t != 0)
		goto out;
	rc = token_reply(out, NULL, acc, e.token, &j, ba_buf_str(&rt), 0, o->log, err);
out:
	if (lock >= 0)
		close(lock); /* releases the flock */
	ba_json_release(&j);
	ba_buf_release_secret(&rt);
	ba_buf_release_secret(&secret);
	ba_buf_release_secret(&form);
	return rc;
}

/* ---- authorization: PKCE, code exchange, device flow ----------------------- */

static void add_b64url(struct ba_buf *out, const unsigned char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		ba_buf_addch(out, tab[v >> 18]);
		ba_buf_addch(out, tab[(v >> 12) & 63]);
		ba_buf_addch(out, tab[(v >> 6) & 63]);
		ba_buf_addch(out, tab[v & 63]);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		ba_buf_addch(out, tab[v >> 18]);
		ba_buf_addch(out, tab[(v >> 12) & 63]);
	} else if (n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		ba_buf_addch(out, tab[v >> 18]);
		ba_buf_addch(out, tab[(v >> 12) & 63]);
		ba_buf_addch(out, tab[(v >> 6) & 63]);
	}
}

int ba_oauth2_s256(struct ba_buf *out, const char *s, struct ba_err *err)
{
	unsigned char d[32];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, s, strlen(s), d) < 0)
		return ba_err_set(err, EX_OSERR, "SHA-256 failed");
	add_b64url(out, d, sizeof d);
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

int ba_oauth2_pkce(struct ba_buf *verifier, struct ba_buf *challenge, struct ba_err *err)
{
	unsigned char r[32];
	if (gnutls_rnd(GNUTLS_RND_KEY, r, sizeof r) < 0)
		return ba_err_set(err, EX_OSERR, "no random bytes for PKCE");
	add_b64url(verifier, r, sizeof r);
	gnutls_memset(r, 0, sizeof r);
	if (ba_buf_failed(verifier))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return ba_oauth2_s256(challenge, ba_buf_str(verifier), err);
}

int ba_oauth2_authorize_url(struct ba_buf *out, const struct ba_account *acc,
                            const char *redirect_uri, const char *state,
                            const char *challenge, struct ba_err *err)
{
	struct ba_oauth2_endpoints e;
	ba_oauth2_endpoints(&e, acc);
	if (need_client(acc, err) < 0 ||
	    need_endpoint(e.authorize, "oauth2_authorize_endpoint", acc, err) < 0)
		return -1;
	ba_buf_addstr(out, e.authorize);
	ba_buf_addch(out, strchr(e.authorize, '?') ? '&' : '?');
	add_param(out, "response_type", "code");
	add_param(out, "client_id", acc->oauth2_client_id);
	add_param(out, "redirect_uri", redirect_uri);
	add_param(out, "scope", e.scope);
	add_param(out, "state", state);
	add_param(out, "code_challenge", challenge);
	add_param(out, "code_challenge_method", "S256");
	/* Google returns a refresh token only when asked for offline access */
	if (acc->oauth2_provider && strcmp(acc->oauth2_provider, "gmail") == 0) {
		add_param(out, "access_type", "offline");
		add_param(out, "prompt", "consent");
	}
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

/* A grant at the token endpoint that must return a refresh token (code, device). */
static int grant(struct ba_buf *refresh_out, int *pending, const struct ba_account *acc,
                 struct ba_buf *form, const struct ba_oauth2_opts *o, struct ba_err *err)
{
	static const struct ba_oauth2_opts none;
	if (!o)
		o = &none;
	struct ba_oauth2_endpoints e;
	struct ba_buf secret, rt;
	struct ba_json j = { NULL, 0 };
	char errcode[64];
	int rc = -1;
	ba_oauth2_endpoints(&e, acc);
	ba_buf_init(&secret, SECRET_MAX);
	ba_buf_init(&rt, SECRET_MAX);
	if (need_endpoint(e.token, "oauth2_token_endpoint", acc, err) < 0)
		goto out;
	if (config_secret(&secret, acc, acc->oauth2_client_secret, acc->oauth2_client_secret_eval,
	                  "oauth2_client_secret", err) < 0)
		goto out;
	add_client(form, acc, &secret);
	if (ba_buf_failed(form)) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	int t = token_request(&j, errcode, sizeof errcode, acc, e.token, form, o, err);
	if (t == 1 && pending) {
		if (strcmp(errcode, "authorization_pending") == 0) {
			rc = 1;
			goto out;
		}
		if (strcmp(errcode, "slow_down") == 0) {
			rc = 2;
			goto out;
		}
		if (strcmp(errcode, "expired_token") == 0 || strcmp(errcode, "access_denied") == 0) {
			ba_err_set(err, EX_NOPERM, "account '%s': the device authorization %s", acc->name,
			           errcode[0] == 'e' ? "expired: start again" : "was denied");
			goto out;
		}
	}
	if (t != 0)
		goto out;
	if (token_reply(NULL, &rt, acc, e.token, &j, NULL, o->flags, o->log, err) < 0)
		goto out;
	if (rt.len == 0) {
		ba_err_set(err, EX_PROTOCOL,
		           "account '%s': OAuth2 endpoint '%s' sent no refresh_token", acc->name,
		           e.token);
		goto out;
	}
	if (refresh_out && ba_buf_add(refresh_out, rt.data, rt.len) < 0) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	rc = 0;
out:
	ba_json_release(&j);
	ba_buf_release_secret(&secret);
	ba_buf_release_secret(&rt);
	return rc;
}

int ba_oauth2_exchange_code(struct ba_buf *refresh_out, const struct ba_account *acc,
                            const char *code, const char *redirect_uri, const char *verifier,
                            const struct ba_oauth2_opts *o, struct ba_err *err)
{
	struct ba_buf form;
	ba_buf_init(&form, 0);
	if (need_client(acc, err) < 0)
		return -1;
	add_param(&form, "grant_type", "authorization_code");
	add_param(&form, "code", code);
	add_param(&form, "redirect_uri", redirect_uri);
	add_param(&form, "code_verifier", verifier);
	int rc = grant(refresh_out, NULL, acc, &form, o, err);
	ba_buf_release_secret(&form);
	return rc;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

int ba_oauth2_device_start(struct ba_oauth2_device *d, const struct ba_account *acc,
                           const struct ba_oauth2_opts *o, struct ba_err *err)
{
	struct ba_oauth2_endpoints e;
	struct ba_buf form;
	struct ba_json j = { NULL, 0 };
	char errcode[64];
	int rc = -1;
	memset(d, 0, sizeof(*d));
	ba_oauth2_endpoints(&e, acc);
	if (need_client(acc, err) < 0 ||
	    need_endpoint(e.device, "oauth2_device_endpoint", acc, err) < 0)
		return -1;
	ba_buf_init(&form, 0);
	add_param(&form, "client_id", acc->oauth2_client_id);
	add_param(&form, "scope", e.scope);
	if (token_request(&j, errcode, sizeof errcode, acc, e.device, &form, o, err) != 0)
		goto out;
	const char *dc = ba_json_str(&j, "device_code"), *uc = ba_json_str(&j, "user_code");
	const char *uri = ba_json_str(&j, "verification_uri");
	if (!uri)
		uri = ba_json_str(&j, "verification_url"); /* Google's spelling */
	long interval = 5, expires = 1800;
	if (!token_ok(dc) || !uc || !*uc || !uri || !*uri ||
	    ba_json_uint(&j, "interval", 3600, &interval) < 0 ||
	    ba_json_uint(&j, "expires_in", 86400, &expires) < 0) {
		ba_err_set(err, EX_PROTOCOL,
		           "account '%s': OAuth2 endpoint '%s' sent an incomplete device authorization",
		           acc->name, e.device);
		goto out;
	}
	d->device_code = dup_str(dc);
	d->user_code = dup_str(uc);
	d->verification_uri = dup_str(uri);
	d->verification_uri_complete = dup_str(ba_json_str(&j, "verification_uri_complete"));
	d->interval = interval > 0 ? interval : 5;
	d->expires_in = expires;
	if (!d->device_code || !d->user_code || !d->verification_uri) {
		ba_oauth2_device_release(d);
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	rc = 0;
out:
	ba_json_release(&j);
	ba_buf_release(&form);
	return rc;
}

int ba_oauth2_device_poll(struct ba_buf *refresh_out, struct ba_oauth2_device *d,
                          const struct ba_account *acc, const struct ba_oauth2_opts *o,
                          struct ba_err *err)
{
	struct ba_buf form;
	int pending = 0;
	ba_buf_init(&form, 0);
	add_param(&form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
	add_param(&form, "device_code", d->device_code);
	int rc = grant(refresh_out, &pending, acc, &form, o, err);
	if (rc == 2)
		d->interval += 5;
	ba_buf_release_secret(&form);
	return rc;
}

void ba_oauth2_device_release(struct ba_oauth2_device *d)
{
	if (!d)
		return;
	if (d->device_code)
		gnutls_memset(d->device_code, 0, strlen(d->device_code));
	free(d->device_code);
	free(d->user_code);
	free(d->verification_uri);
	free(d->verification_uri_complete);
	memset(d, 0, sizeof(*d));
}
