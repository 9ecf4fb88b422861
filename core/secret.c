/* secret.c - an account's password: password, passwordeval, netrc (msmtp's order)
 *
 * Every buffer that held a secret is wiped before it is freed
 * (ba_buf_release_secret); errors name the account and the file but never
 * contain a secret.
 */
#include "bluearrow/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NETRC_MAX (1u << 20)
#define SECRET_MAX (64u * 1024)

/* ---- netrc (ftp(1), netrc(5)) ------------------------------------------ */

struct netrc_lexer {
	const char *p, *end;
};

static int is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Next token into tok: a run of non-blanks, or a "quoted string" in which
 * a backslash escapes the next character (as GNU inetutils and curl read
 * it).  Returns 1, or 0 at the end; -1 when tok has failed (too long).
 */
static int next_token(struct netrc_lexer *lx, struct ba_buf *tok)
{
	ba_buf_reset(tok);
	while (lx->p < lx->end && is_space((unsigned char)*lx->p))
		lx->p++;
	if (lx->p >= lx->end)
		return 0;
	if (*lx->p == '"') {
		lx->p++;
		while (lx->p < lx->end && *lx->p != '"') {
			if (*lx->p == '\\' && lx->p + 1 < lx->end)
				lx->p++;
			ba_buf_addch(tok, *lx->p++);
		}
		if (lx->p < lx->end)
			lx->p++; /* closing quote */
	} else {
		while (lx->p < lx->end && !is_space((unsigned char)*lx->p))
			ba_buf_addch(tok, *lx->p++);
	}
	return ba_buf_failed(tok) ? -1 : 1;
}

/* macdef bodies run up to the next empty line; they are not tokens. */
static void skip_macdef(struct netrc_lexer *lx)
{
	while (lx->p < lx->end) {
		const char *nl = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
		if (!nl) {
			lx->p = lx->end;
			return;
		}
		lx->p = nl + 1;
		if (lx->p < lx->end && *lx->p == '\n') {
			lx->p++;
			return;
		}
		if (lx->p + 1 < lx->end && lx->p[0] == '\r' && lx->p[1] == '\n') {
			lx->p += 2;
			return;
		}
	}
}

struct netrc_entry {
	int used;         /* an entry was started */
	int is_default;
	int host_ok;
	int has_login, has_password;
	struct ba_buf login, password;
};

static void entry_reset(struct netrc_entry *e)
{
	e->used = e->is_default = e->host_ok = e->has_login = e->has_password = 0;
	ba_buf_reset(&e->login);
	ba_buf_release_secret(&e->password);
	ba_buf_init(&e->password, SECRET_MAX);
}

static int entry_matches(const struct netrc_entry *e, const char *login)
{
	if (!e->used || !e->has_password || !(e->host_ok || e->is_default))
		return 0;
	return !login || !e->has_login || strcmp(ba_buf_str(&e->login), login) == 0;
}

/* Parses text; on a match copies into *found.  found->used says if one did. */
static int netrc_scan(const char *text, size_t len, const char *host, const char *login,
                      struct netrc_entry *found, struct netrc_entry *fallback)
{
	struct netrc_lexer lx = { text, text + len };
	struct netrc_entry cur;
	struct ba_buf tok;
	int r, rc = 0;

	memset(&cur, 0, sizeof(cur));
	ba_buf_init(&cur.login, 4096);
	ba_buf_init(&cur.password, SECRET_MAX);
	ba_buf_init(&tok, SECRET_MAX);
	for (;;) {
		r = next_token(&lx, &tok);
		int end = r <= 0;
		const char *t = ba_buf_str(&tok);
		if (end || strcmp(t, "machine") == 0 || strcmp(t, "default") == 0) {
			/* an entry ends: the first machine match wins, default is the fallback */
			if (entry_matches(&cur, login)) {
				struct netrc_entry *dst = cur.is_default ? fallback : found;
				if (!dst->used) {
					dst->used = 1;
					dst->has_login = cur.has_login;
					ba_buf_add(&dst->login, cur.login.data ? cur.login.data : "",
					           cur.login.len);
					ba_buf_add(&dst->password, cur.password.data ? cur.password.data : "",
					           cur.password.len);
					if (!cur.is_default)
						break;
				}
			}
			if (r < 0) {
				rc = -1;
				break;
			}
			if (end)
				break;
			entry_reset(&cur);
			cur.used = 1;
			if (strcmp(t, "default") == 0) {
				cur.is_default = 1;
			} else {
				if ((r = next_token(&lx, &tok)) <= 0) {
					rc = r;
					break;
				}
				cur.host_ok = strcasecmp(ba_buf_str(&tok), host) == 0;
			}
		} else if (strcmp(t, "login") == 0 || strcmp(t, "password") == 0 ||
		           strcmp(t, "account") == 0 || strcmp(t, "port") == 0) {
			int which = t[0] == 'l' ? 1 : t[0] == 'p' && t[1] == 'a' ? 2 : 0;
			if ((r = next_token(&lx, &tok)) <= 0) {
				rc = r;
				break;
			}
			if (which == 1) {
				ba_buf_reset(&cur.login);
				ba_buf_add(&cur.login, tok.data, tok.len);
				cur.has_login = 1;
			} else if (which == 2) {
				ba_buf_reset(&cur.password);
				ba_buf_add(&cur.password, tok.data, tok.len);
				cur.has_password = 1;
			}
		} else if (strcmp(t, "macdef") == 0) {
			next_token(&lx, &tok); /* the macro's name */
			skip_macdef(&lx);
		}
		/* other tokens are ignored, as ftp(1) does */
	}
	ba_buf_release_secret(&tok);
	ba_buf_release(&cur.login);
	ba_buf_release_secret(&cur.password);
	return rc;
}

static int netrc_path(struct ba_buf *out, const char *path)
{
	if (path)
		return ba_buf_addstr(out, path);
	const char *env = getenv("NETRC");
	if (env && *env)
		return ba_buf_addstr(out, env);
	const char *home = getenv("HOME");
	/* getpwuid_r: the netrc is read at send time, maybe in a worker thread */
	struct passwd pwb, *pw = NULL;
	char pwbuf[4096];
	if (!home || !*home) {
		home = NULL;
		if (getpwuid_r(getuid(), &pwb, pwbuf, sizeof pwbuf, &pw) == 0 && pw)
			home = pw->pw_dir;
	}
	if (!home)
		return -1;
	return ba_buf_addf(out, "%s/.netrc", home);
}

int ba_secret_netrc(struct ba_buf *out, struct ba_buf *login_out, const char *path,
                    const char *host, const char *login, struct ba_err *err)
{
	struct ba_buf file = BA_BUF_INIT, text;
	struct netrc_entry found, fallback;
	struct stat st;
	int fd, rc = 0;

	if (netrc_path(&file, path) < 0) {
		ba_buf_release(&file);
		return 0; /* no home, no ~/.netrc */
	}
	fd = open(ba_buf_str(&file), O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			ba_buf_release(&file);
			return 0;
		}
		rc = ba_err_set(err, EX_CONFIG, "cannot open '%s': %s", ba_buf_str(&file),
		                ba_strerror_t(errno));
		ba_buf_release(&file);
		return rc;
	}
	ba_buf_init(&text, NETRC_MAX);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		rc = ba_err_set(err, EX_CONFIG, "'%s' is not a regular file", ba_buf_str(&file));
		goto out;
	}
	for (;;) {
		if (ba_buf_grow(&text, 4096) < 0) {
			close(fd);
			rc = ba_err_set(err, EX_CONFIG, "'%s' is too large", ba_buf_str(&file));
			goto out;
		}
		ssize_t k = read(fd, text.data + text.len, text.alloc - text.len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			close(fd);
			rc = ba_err_set(err, EX_CONFIG, "cannot read '%s': %s", ba_buf_str(&file),
			                ba_strerror_t(errno));
			goto out;
		}
		if (k == 0)
			break;
		text.len += (size_t)k;
		text.data[text.len] = '\0';
	}
	close(fd);

	memset(&found, 0, sizeof(found));
	memset(&fallback, 0, sizeof(fallback));
	ba_buf_init(&found.login, 4096);
	ba_buf_init(&found.password, SECRET_MAX);
	ba_buf_init(&fallback.login, 4096);
	ba_buf_init(&fallback.password, SECRET_MAX);
	if (netrc_scan(text.data ? text.data : "", text.len, host, login, &found, &fallback) < 0) {
		rc = ba_err_set(err, EX_CONFIG, "'%s': token too long", ba_buf_str(&file));
	} else {
		struct netrc_entry *e = found.used ? &found : fallback.used ? &fallback : NULL;
		if (e) {
			/* ftp(1)'s rule: a password in a netrc others can read is refused */
			if (st.st_mode & (S_IRWXG | S_IRWXO))
				rc = ba_err_set(err, EX_CONFIG,
				                "'%s' contains a password and must not be readable by "
				                "group or others (chmod 600 %s)",
				                ba_buf_str(&file), ba_buf_str(&file));
			else if (ba_buf_add(out, e->password.data, e->password.len) < 0 ||
			         (login_out && !login && e->has_login &&
			          ba_buf_add(login_out, e->login.data, e->login.len) < 0))
				rc = ba_err_set(err, EX_OSERR, "out of memory");
			else
				rc = 1;
		}
	}
	ba_buf_release(&found.login);
	ba_buf_release_secret(&found.password);
	ba_buf_release(&fallback.login);
	ba_buf_release_secret(&fallback.password);
out:
	ba_buf_release_secret(&text);
	ba_buf_release(&file);
	return rc;
}

/* ---- resolution -------------------------------------------------------- */

int ba_secret_password(struct ba_buf *out, enum ba_secret_source *source,
                       const struct ba_account *acc, struct ba_err *err)
{
	enum ba_secret_source dummy;
	if (!source)
		source = &dummy;
	*source = BA_SECRET_NONE;
	if (acc->password) {
		if (ba_buf_addstr(out, acc->password) < 0)
			return ba_err_set(err, EX_OSERR, "out of memory");
		*source = BA_SECRET_CONFIG;
		return 0;
	}
	if (acc->passwordeval) {
		struct ba_buf tmp;
		int rc = 0;
		ba_buf_init(&tmp, SECRET_MAX);
		if (ba_config_run_command(&tmp, acc->passwordeval, err) < 0)
			rc = ba_err_prefix(err, "account '%s': passwordeval: ", acc->name);
		else if (tmp.len == 0)
			rc = ba_err_set(err, EX_CONFIG,
			                "account '%s': passwordeval command '%s' printed no password",
			                acc->name, acc->passwordeval);
		else if (ba_buf_add(out, tmp.data, tmp.len) < 0)
			rc = ba_err_set(err, EX_OSERR, "out of memory");
		else
			*source = BA_SECRET_EVAL;
		ba_buf_release_secret(&tmp);
		return rc;
	}
	if (acc->host) {
		/* msmtp: ~/.netrc, then the system's netrc */
		static const char *const paths[] = { NULL, "/etc/netrc" };
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			int r = ba_secret_netrc(out, NULL, paths[i], acc->host, acc->user, err);
			if (r < 0 && paths[i]) {
				ba_err_clear(err); /* an unreadable system file is not the user's problem */
				continue;
			}
			if (r < 0)
				return ba_err_prefix(err, "account '%s': ", acc->name);
			if (r > 0) {
				*source = BA_SECRET_NETRC;
				return 0;
			}
		}
	}
	return 0;
}
