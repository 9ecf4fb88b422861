/* config.c - msmtprc-compatible parser: accounts, defaults, inheritance
 *
 * The rules are msmtp 1.8's (msmtp(1), CONFIGURATION FILES), checked
 * against msmtp --pretend: a line is a command and an argument; the
 * argument is trimmed of blanks and, if it starts and ends with '"', those
 * two quotes are removed (no escapes inside).  `defaults` sections fill
 * accounts defined after them; `account x : a, b` then copies from a and b
 * the keys *they* set (in their sections or from their own parents, msmtp's
 * acc_mask), not what they got from defaults.  Keys before any `defaults`
 * or `account` create an account "default" (msmtp 1.2 compatibility).
 * Checks that need a complete account (host set...) are done only for the
 * account actually used (ba_config_account_check), so that incomplete
 * accounts can serve as templates, as in msmtp.
 */
#include "bluearrow/config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/log.h"

#define CONFIG_FILE_MAX (4u << 20) /* a configuration file larger than this is refused */

/* ---- near misses ------------------------------------------------------- */

/* Levenshtein distance of a and b (ASCII, case-sensitive), for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return (size_t)-1;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* A suggestion is worth making: at most 2 edits, and at most half the word. */
static int close_enough(size_t d, const char *word)
{
	return d <= 2 && d * 2 <= strlen(word);
}

/* ---- the account model ------------------------------------------------- */

#define BA_MASK_HAS(m, k) ((((m) >> (k)) & 1u) != 0)
#define BA_BIT(k) ((uint64_t)1 << (k))

struct acc {
	struct ba_account pub;  /* pub.mask: keys set in its section, its parents or defaults */
	uint64_t own;           /* msmtp's acc_mask: keys set in its section or its parents;
	                           what a child copies from it */
	unsigned own_lines;     /* key lines in its own section */
	char *alias_of;         /* the parent of "account x : parent" with one parent */
};

struct ba_config {
	char *path;
	struct acc **accs;
	size_t n, alloc;
};

/* Where each key lives in struct ba_account, for copying and freeing generically. */
struct field {
	size_t off;
	size_t size;
	int is_str;
};
#define FSTR(f) { offsetof(struct ba_account, f), sizeof(const char *), 1 }
#define FVAL(f) { offsetof(struct ba_account, f), sizeof(((struct ba_account *)0)->f), 0 }

static const struct field fields[BA_KEY_COUNT] = {
	[BA_KEY_HOST] = FSTR(host),
	[BA_KEY_PORT] = FVAL(port),
	[BA_KEY_SOURCE_IP] = FSTR(source_ip),
	[BA_KEY_PROXY_HOST] = FSTR(proxy_host),
	[BA_KEY_PROXY_PORT] = FVAL(proxy_port),
	[BA_KEY_SOCKET] = FSTR(socket),
	[BA_KEY_TIMEOUT] = FVAL(timeout),
	[BA_KEY_PROTOCOL] = FVAL(protocol),
	[BA_KEY_DOMAIN] = FSTR(domain),
	[BA_KEY_AUTH] = FVAL(auth), /* and auth_method: see copy_key() */
	[BA_KEY_USER] = FSTR(user),
	[BA_KEY_PASSWORD] = FSTR(password),
	[BA_KEY_PASSWORDEVAL] = FSTR(passwordeval),
	[BA_KEY_NTLMDOMAIN] = FSTR(ntlmdomain),
	[BA_KEY_TLS] = FVAL(tls),
	[BA_KEY_TLS_STARTTLS] = FVAL(tls_starttls),
	[BA_KEY_TLS_TRUST_FILE] = FSTR(tls_trust_file),
	[BA_KEY_TLS_CRL_FILE] = FSTR(tls_crl_file),
	[BA_KEY_TLS_FINGERPRINT] = FSTR(tls_fingerprint), /* and the raw bytes */
	[BA_KEY_TLS_KEY_FILE] = FSTR(tls_key_file),
	[BA_KEY_TLS_CERT_FILE] = FSTR(tls_cert_file),
	[BA_KEY_TLS_CERTCHECK] = FVAL(tls_certcheck),
	[BA_KEY_TLS_PRIORITIES] = FSTR(tls_priorities),
	[BA_KEY_TLS_HOST_OVERRIDE] = FSTR(tls_host_override),
	[BA_KEY_TLS_MIN_DH_PRIME_BITS] = FVAL(tls_min_dh_prime_bits),
	[BA_KEY_FROM] = FSTR(from),
	[BA_KEY_FROM_FULL_NAME] = FSTR(from_full_name),
	[BA_KEY_ALLOW_FROM_OVERRIDE] = FVAL(allow_from_override),
	[BA_KEY_DSN_NOTIFY] = FVAL(dsn_notify),
	[BA_KEY_DSN_RETURN] = FVAL(dsn_return),
	[BA_KEY_SET_FROM_HEADER] = FVAL(set_from_header),
	[BA_KEY_SET_DATE_HEADER] = FVAL(set_date_header),
	[BA_KEY_SET_MSGID_HEADER] = FVAL(set_msgid_header),
	[BA_KEY_REMOVE_BCC_HEADERS] = FVAL(remove_bcc_headers),
	[BA_KEY_UNDISCLOSED_RECIPIENTS] = FVAL(undisclosed_recipients),
	[BA_KEY_LOGFILE] = FSTR(logfile),
	[BA_KEY_LOGFILE_TIME_FORMAT] = FSTR(logfile_time_format),
	[BA_KEY_SYSLOG] = FSTR(syslog),
	[BA_KEY_ALIASES] = FSTR(aliases),
	[BA_KEY_AUTO_FROM] = FVAL(auto_from),
	[BA_KEY_MAILDOMAIN] = FSTR(maildomain),
	[BA_KEY_PARTIAL_DELIVERY] = FVAL(partial_delivery),
	[BA_KEY_OUTBOX] = FSTR(outbox),
	[BA_KEY_QUEUE] = FVAL(queue),
	[BA_KEY_QUEUE_MAX_AGE] = FVAL(queue_max_age),
	[BA_KEY_OAUTH2_PROVIDER] = FSTR(oauth2_provider),
	[BA_KEY_OAUTH2_TOKEN_ENDPOINT] = FSTR(oauth2_token_endpoint),
	[BA_KEY_OAUTH2_AUTHORIZE_ENDPOINT] = FSTR(oauth2_authorize_endpoint),
	[BA_KEY_OAUTH2_DEVICE_ENDPOINT] = FSTR(oauth2_device_endpoint),
	[BA_KEY_OAUTH2_CLIENT_ID] = FSTR(oauth2_client_id),
	[BA_KEY_OAUTH2_CLIENT_SECRET] = FSTR(oauth2_client_secret),
	[BA_KEY_OAUTH2_CLIENT_SECRET_EVAL] = FSTR(oauth2_client_secret_eval),
	[BA_KEY_OAUTH2_REFRESH_TOKEN] = FSTR(oauth2_refresh_token),
	[BA_KEY_OAUTH2_REFRESH_TOKEN_EVAL] = FSTR(oauth2_refresh_token_eval),
	[BA_KEY_OAUTH2_SCOPE] = FSTR(oauth2_scope),
	[BA_KEY_QUEUE_DELAY] = FVAL(queue_delay),
	[BA_KEY_QUEUE_FLUSH_ON_RUN] = FVAL(queue_flush_on_run),
	[BA_KEY_BOUNCE] = FVAL(bounce),
	[BA_KEY_DELIVERY] = FVAL(delivery),
	[BA_KEY_DNSSEC_TRUST_ANCHOR] = FSTR(dnssec_trust_anchor),
	[BA_KEY_MX_TLS_POLICY] = FVAL(mx_tls_policy),
};

static const char *const key_names[BA_KEY_COUNT] = {
	"host", "port", "source_ip", "proxy_host", "proxy_port", "socket", "timeout",
	"protocol", "domain", "auth", "user", "password", "passwordeval", "ntlmdomain",
	"tls", "tls_starttls", "tls_trust_file", "tls_crl_file", "tls_fingerprint",
	"tls_key_file", "tls_cert_file", "tls_certcheck", "tls_priorities",
	"tls_host_override", "tls_min_dh_prime_bits", "from", "from_full_name",
	"allow_from_override", "dsn_notify", "dsn_return", "set_from_header",
	"set_date_header", "set_msgid_header", "remove_bcc_headers",
	"undisclosed_recipients", "logfile", "logfile_time_format", "syslog", "aliases",
	"auto_from", "maildomain", "partial_delivery",
	"outbox", "queue", "queue_max_age",
	"oauth2_provider", "oauth2_token_endpoint", "oauth2_authorize_endpoint",
	"oauth2_device_endpoint", "oauth2_client_id", "oauth2_client_secret",
	"oauth2_client_secret_eval", "oauth2_refresh_token", "oauth2_refresh_token_eval",
	"oauth2_scope",
	"queue_delay",
	"queue_flush_on_run",
	"bounce",
	"delivery", "dnssec_trust_anchor", "mx_tls_policy",
};

const char *ba_config_key_name(enum ba_config_key k)
{
	if ((int)k < 0 || k >= BA_KEY_COUNT)
		return NULL;
	return key_names[k];
}

static const char **str_field(struct ba_account *a, enum ba_config_key k)
{
	return (const char **)(void *)((char *)a + fields[k].off);
}

/* Frees a string we own; secrets are overwritten first. */
static void free_str(const char *s, int secret)
{
	if (!s)
		return;
	char *p = (char *)(uintptr_t)s;
	if (secret) {
		volatile char *v = p;
		for (size_t i = 0; p[i]; i++)
			v[i] = 0;
	}
	free(p);
}

/* Keys whose value is a secret: wiped when freed, and the file must be private. */
static int is_secret_key(enum ba_config_key k)
{
	return k == BA_KEY_PASSWORD || k == BA_KEY_OAUTH2_CLIENT_SECRET ||
	       k == BA_KEY_OAUTH2_REFRESH_TOKEN;
}

static int set_str(struct ba_account *a, enum ba_config_key k, const char *v)
{
	const char **f = str_field(a, k);
	char *copy = NULL;
	if (v && !(copy = strdup(v)))
		return -1;
	free_str(*f, is_secret_key(k));
	*f = copy;
	return 0;
}

static int set_auth_method(struct ba_account *a, const char *m)
{
	char *copy = NULL;
	if (m && !(copy = strdup(m)))
		return -1;
	free_str(a->auth_method, 0);
	a->auth_method = copy;
	return 0;
}

/* Copies key k's value from src to dst.  Returns 0, or -1 when out of memory. */
static int copy_key(struct ba_account *dst, const struct ba_account *src, enum ba_config_key k)
{
	if (fields[k].is_str) {
		if (set_str(dst, k, *str_field((struct ba_account *)(uintptr_t)src, k)) < 0)
			return -1;
	} else {
		memcpy((char *)dst + fields[k].off, (const char *)src + fields[k].off,
		       fields[k].size);
	}
	if (k == BA_KEY_AUTH)
		return set_auth_method(dst, src->auth_method);
	if (k == BA_KEY_TLS_FINGERPRINT) {
		memcpy(dst->tls_fingerprint_raw, src->tls_fingerprint_raw,
		       sizeof(dst->tls_fingerprint_raw));
		dst->tls_fingerprint_len = src->tls_fingerprint_len;
	}
	return 0;
}

static void acc_free(struct acc *a)
{
	if (!a)
		return;
	for (int k = 0; k < BA_KEY_COUNT; k++)
		if (fields[k].is_str)
			free_str(*str_field(&a->pub, (enum ba_config_key)k),
			         is_secret_key((enum ba_config_key)k));
	free_str(a->pub.auth_method, 0);
	free_str(a->pub.name, 0);
	free(a->alias_of);
	free(a);
}

/* A new account with msmtp's built-in defaults (msmtp account_new()). */
static struct acc *acc_new(void)
{
	struct acc *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	struct ba_account *p = &a->pub;
	p->protocol = BA_PROTO_SMTP;
	p->tls_starttls = 1;
	p->tls_certcheck = 1;
	p->allow_from_override = 1;
	p->set_from_header = BA_HDR_AUTO;
	p->set_date_header = BA_HDR_AUTO;
	p->set_msgid_header = BA_HDR_AUTO;
	p->remove_bcc_headers = 1;
	p->dsn_return = BA_DSN_RET_OFF;
	if (set_str(p, BA_KEY_DOMAIN, "localhost") < 0 ||
	    set_str(p, BA_KEY_TLS_TRUST_FILE, "system") < 0) {
		acc_free(a);
		return NULL;
	}
	return a;
}

/* ---- the configuration ------------------------------------------------- */

void ba_config_free(ba_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n; i++)
		acc_free(cfg->accs[i]);
	free(cfg->accs);
	free(cfg->path);
	free(cfg);
}

static struct acc *find_acc(const ba_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->accs[i]->pub.name, name) == 0)
			return cfg->accs[i];
	return NULL;
}

static int cfg_append(ba_config *cfg, struct acc *a)
{
	if (cfg->n == cfg->alloc) {
		size_t na = cfg->alloc ? cfg->alloc * 2 : 8;
		struct acc **p = realloc(cfg->accs, na * sizeof(*p));
		if (!p)
			return -1;
		cfg->accs = p;
		cfg->alloc = na;
	}
	cfg->accs[cfg->n++] = a;
	return 0;
}

const char *ba_config_path(const ba_config *cfg)
{
	return cfg->path;
}

size_t ba_config_count(const ba_config *cfg)
{
	return cfg->n;
}

const struct ba_account *ba_config_at(const ba_config *cfg, size_t i)
{
	if (i >= cfg->n)
		BA_BUG("ba_config_at: index %zu out of range (%zu accounts)", i, cfg->n);
	return &cfg->accs[i]->pub;
}

const char *ba_config_default_name(const ba_config *cfg)
{
	struct acc *d = find_acc(cfg, "default");
	if (!d)
		return NULL;
	return d->alias_of ? d->alias_of : d->pub.name;
}

int ba_config_account_check(const struct ba_account *a, struct ba_err *err)
{
	const char *what = NULL;
	if (a->delivery == BA_DELIVERY_RELAY && !a->host && !a->socket)
		what = "delivery relay needs host (or socket)";
	else if (ba_config_delivers_mx(a))
		; /* direct delivery: port 25 of each MX, no relay */
	else if (!a->host && !a->socket)
		what = "host not set";
	else if (a->port == 0 && !a->socket)
		what = "port not set (protocol lmtp has no default port)";
	else if (a->tls_key_file && !a->tls_cert_file)
		what = "tls_key_file requires tls_cert_file";
	else if (!a->tls_key_file && a->tls_cert_file)
		what = "tls_cert_file requires tls_key_file";
	else if (a->tls && a->tls_certcheck && a->tls_fingerprint_len == 0 &&
	         (!a->tls_trust_file || !*a->tls_trust_file))
		what = "tls requires tls_trust_file, tls_fingerprint or tls_certcheck off";
	else if (a->tls_crl_file && (!a->tls_trust_file || !*a->tls_trust_file))
		what = "tls_crl_file requires tls_trust_file";
	else if (a->auth_method && (strcmp(a->auth_method, "digest-md5") == 0 ||
	                            strcmp(a->auth_method, "gssapi") == 0 ||
	                            strcmp(a->auth_method, "ntlm") == 0))
		/* msmtp knows them (through GNU SASL); we do not: say so before connecting */
		return ba_err_set(err, EX_CONFIG,
		                  "account '%s' (%s:%u): auth method '%s' is not supported by "
		                  "bluearrow (use 'auth on', or scram-sha-256, plain, "
		                  "oauthbearer...)", a->name, a->file, a->line, a->auth_method);
	if (what)
		return ba_err_set(err, EX_CONFIG, "account '%s' (%s:%u): %s", a->name, a->file,
		                  a->line, what);
	return 0;
}

/*
 * Settings that only a relay uses: an account with them but no host is a
 * relay account whose host is missing (a template, a slip), not one meant
 * to deliver directly; its mail must not leave another way than the user
 * set up.
 */
static int has_relay_settings(const struct ba_account *a)
{
	return a->auth || a->user || a->password || a->passwordeval || a->tls ||
	       a->oauth2_provider || (a->mask & (UINT64_C(1) << BA_KEY_PORT));
}

int ba_config_delivers_mx(const struct ba_account *acc)
{
	return acc->delivery == BA_DELIVERY_MX ||
	       (acc->delivery == BA_DELIVERY_DEFAULT && !acc->host && !acc->socket &&
	        !has_relay_settings(acc));
}

const struct ba_account *ba_config_account(const ba_config *cfg, const char *name,
                                           struct ba_err *err)
{
	struct acc *a = find_acc(cfg, name ? name : "default");
	if (!a) {
		if (name) {
			struct ba_buf list = BA_BUF_INIT;
			const char *near = NULL;
			size_t best = (size_t)-1;
			for (size_t i = 0; i < cfg->n; i++) {
				const char *an = cfg->accs[i]->pub.name;
				size_t d = edit_distance(name, an);
				if (d < best)
					best = d, near = an;
				ba_buf_addf(&list, "%s%s", i ? ", " : "", an);
			}
			if (near && close_enough(best, name))
				ba_err_set(err, EX_CONFIG, "no account '%s' in '%s' (did you mean '%s'?; "
				           "accounts: %s)", name, cfg->path, near, ba_buf_str(&list));
			else if (cfg->n)
				ba_err_set(err, EX_CONFIG, "no account '%s' in '%s' (accounts: %s)", name,
				           cfg->path, ba_buf_str(&list));
			else
				ba_err_set(err, EX_CONFIG, "no account '%s' in '%s' (it has none)", name,
				           cfg->path);
			ba_buf_release(&list);
		} else
			ba_err_set(err, EX_CONFIG,
			           "no default account in '%s' (add 'account default : NAME' or use -a)",
			           cfg->path);
		return NULL;
	}
	if (ba_config_account_check(&a->pub, err) < 0)
		return NULL;
	return &a->pub;
}

const struct ba_account *ba_config_account_by_from(const ba_config *cfg,
                                                   const char *envelope_from)
{
	if (!envelope_from)
		return NULL;
	for (size_t i = 0; i < cfg->n; i++) {
		const char *f = cfg->accs[i]->pub.from;
		if (!f || !*f)
			continue;
		/* msmtp 1.8: a from containing a wildcard is a shell pattern */
		if (strpbrk(f, "*?[")) {
			if (fnmatch(f, envelope_from, 0) == 0)
				return &cfg->accs[i]->pub;
		} else if (strcasecmp(f, envelope_from) == 0) {
			return &cfg->accs[i]->pub;
		}
	}
	return NULL;
}

/* ---- parsing ----------------------------------------------------------- */

struct parser {
	ba_config *cfg;
	struct acc *defaults;
	struct acc *cur;         /* the section keys go to: an account or defaults */
	const char *name;        /* file name for messages */
	unsigned line;
	int depth;               /* 1 while parsing the output of eval */
	int check_perm;          /* a password key needs the file to be private */
	int have_stat;
	struct stat st;
	struct ba_err *err;
};

static int perr(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *ps, const char *fmt, ...)
{
	char msg[BA_ERR_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ps->line) /* keys from the command line (ba_config_apply()) */
		return ba_err_set(ps->err, EX_CONFIG, "%s: %s", ps->name, msg);
	return ba_err_set(ps->err, EX_CONFIG, "%s:%u: %s%s", ps->name, ps->line, msg,
	                  ps->depth ? " (in the output of eval)" : "");
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/*
 * msmtp's trim_string(): strip blanks at both ends, then one pair of
 * enclosing double quotes.  Appends the result to out.
 */
/* Narrows *s, *n to leave out blanks at either end. */
static void strip_blanks(const char **s, size_t *n)
{
	while (*n && is_blank((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && is_blank((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

/* s[0..n) without blanks at either end, into out. */
static int trim_blanks(struct ba_buf *out, const char *s, size_t n)
{
	strip_blanks(&s, &n);
	return ba_buf_add(out, s, n);
}

/* A line's argument as msmtp reads it: trimmed, and one pair of outer quotes removed. */
static int trim_value(struct ba_buf *out, const char *s, size_t n)
{
	strip_blanks(&s, &n);
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	return ba_buf_add(out, s, n);
}

/* For messages: a value shown cleaned, and not at all when it came from eval. */
static const char *shown(struct parser *ps, struct ba_buf *tmp, const char *v)
{
	ba_buf_reset(tmp);
	if (ps->depth)
		return "...";
	/* whole, up to a length that leaves room for the rest of the message */
	size_t n = strlen(v);
	ba_log_clean(tmp, v, n > 200 ? 200 : n);
	if (n > 200)
		ba_buf_addstr(tmp, "...");
	return ba_buf_str(tmp);
}

static int check_private(struct parser *ps)
{
	if (!ps->check_perm || !ps->have_stat)
		return 0;
	const struct stat *st = &ps->st;
	if (!S_ISREG(st->st_mode))
		return perr(ps, "'%s' contains a password and must be a regular file", ps->name);
	if (st->st_uid != geteuid())
		return perr(ps, "'%s' contains a password and must be owned by you (uid %lu)",
		            ps->name, (unsigned long)geteuid());
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		return perr(ps, "'%s' contains a password and must not be readable by group "
		                "or others (chmod 600 %s)", ps->name, ps->name);
	ps->check_perm = 0; /* once is enough */
	return 0;
}

/* ---- keys and their values --------------------------------------------- */

enum kind {
	K_HOST,        /* needs a value */
	K_PORT,        /* 1..65535, needs a value */
	K_PROXY_PORT,  /* 1..65535, empty = default */
	K_STR,         /* empty = unset */
	K_STR_EMPTY,   /* empty is a value ("" domain, from, maildomain) */
	K_FILE,        /* ~ expanded, empty = unset */
	K_TRUST,       /* ~ expanded, empty = trust no CA */
	K_TIMEOUT,     /* off or seconds */
	K_PROTOCOL,
	K_AUTH,
	K_BOOL,        /* on, off, empty = on */
	K_BOOL_NOT,    /* obsolete negated booleans: tls_nostarttls, tls_nocertcheck, keepbcc */
	K_FINGERPRINT,
	K_DH_BITS,     /* positive number, empty = library default */
	K_DSN_NOTIFY,
	K_DSN_RETURN,
	K_HDR_FROM,    /* auto, on, off */
	K_HDR_AUTO,    /* auto, off */
	K_HDR_LEGACY,  /* add_missing_*_header: on = auto, off = off */
	K_SYSLOG,
	K_SSLV3,       /* tls_force_sslv3: only "off" is acceptable */
	K_QUEUE,       /* off, on_failure, always */
	K_AGE,         /* seconds, or a number with s, m, h or d */
	K_HTTPS,       /* an https:// URL without blanks or controls, empty = unset */
	K_OAUTH2_PROVIDER, /* gmail, microsoft, custom; empty = unset */
	K_DELIVERY,    /* relay, mx; empty = the default */
	K_MX_TLS_POLICY, /* auto, verify, dane-only, may */
};

struct keydef {
	const char *name;
	enum ba_config_key key;
	enum kind kind;
};

static const struct keydef keydefs[] = {
	{ "host", BA_KEY_HOST, K_HOST },
	{ "port", BA_KEY_PORT, K_PORT },
	{ "source_ip", BA_KEY_SOURCE_IP, K_STR },
	{ "proxy_host", BA_KEY_PROXY_HOST, K_STR },
	{ "proxy_port", BA_KEY_PROXY_PORT, K_PROXY_PORT },
	{ "socket", BA_KEY_SOCKET, K_STR },
	{ "timeout", BA_KEY_TIMEOUT, K_TIMEOUT },
	{ "connect_timeout", BA_KEY_TIMEOUT, K_TIMEOUT }, /* msmtp <= 1.4.1 */
	{ "protocol", BA_KEY_PROTOCOL, K_PROTOCOL },
	{ "domain", BA_KEY_DOMAIN, K_STR_EMPTY },
	{ "auth", BA_KEY_AUTH, K_AUTH },
	{ "user", BA_KEY_USER, K_STR },
	{ "password", BA_KEY_PASSWORD, K_STR },
	{ "passwordeval", BA_KEY_PASSWORDEVAL, K_STR },
	{ "ntlmdomain", BA_KEY_NTLMDOMAIN, K_STR },
	{ "tls", BA_KEY_TLS, K_BOOL },
	{ "tls_starttls", BA_KEY_TLS_STARTTLS, K_BOOL },
	{ "tls_nostarttls", BA_KEY_TLS_STARTTLS, K_BOOL_NOT },
	{ "tls_trust_file", BA_KEY_TLS_TRUST_FILE, K_TRUST },
	{ "tls_crl_file", BA_KEY_TLS_CRL_FILE, K_FILE },
	{ "tls_fingerprint", BA_KEY_TLS_FINGERPRINT, K_FINGERPRINT },
	{ "tls_key_file", BA_KEY_TLS_KEY_FILE, K_FILE },
	{ "tls_cert_file", BA_KEY_TLS_CERT_FILE, K_FILE },
	{ "tls_certcheck", BA_KEY_TLS_CERTCHECK, K_BOOL },
	{ "tls_nocertcheck", BA_KEY_TLS_CERTCHECK, K_BOOL_NOT },
	{ "tls_priorities", BA_KEY_TLS_PRIORITIES, K_STR },
	{ "tls_host_override", BA_KEY_TLS_HOST_OVERRIDE, K_STR },
	{ "tls_min_dh_prime_bits", BA_KEY_TLS_MIN_DH_PRIME_BITS, K_DH_BITS },
	{ "tls_force_sslv3", BA_KEY_TLS, K_SSLV3 },
	{ "from", BA_KEY_FROM, K_STR_EMPTY },
	{ "from_full_name", BA_KEY_FROM_FULL_NAME, K_STR },
	{ "allow_from_override", BA_KEY_ALLOW_FROM_OVERRIDE, K_BOOL },
	{ "dsn_notify", BA_KEY_DSN_NOTIFY, K_DSN_NOTIFY },
	{ "dsn_return", BA_KEY_DSN_RETURN, K_DSN_RETURN },
	{ "set_from_header", BA_KEY_SET_FROM_HEADER, K_HDR_FROM },
	{ "add_missing_from_header", BA_KEY_SET_FROM_HEADER, K_HDR_LEGACY },
	{ "set_date_header", BA_KEY_SET_DATE_HEADER, K_HDR_AUTO },
	{ "add_missing_date_header", BA_KEY_SET_DATE_HEADER, K_HDR_LEGACY },
	{ "set_msgid_header", BA_KEY_SET_MSGID_HEADER, K_HDR_AUTO },
	{ "remove_bcc_headers", BA_KEY_REMOVE_BCC_HEADERS, K_BOOL },
	{ "keepbcc", BA_KEY_REMOVE_BCC_HEADERS, K_BOOL_NOT },
	{ "undisclosed_recipients", BA_KEY_UNDISCLOSED_RECIPIENTS, K_BOOL },
	{ "logfile", BA_KEY_LOGFILE, K_FILE },
	{ "logfile_time_format", BA_KEY_LOGFILE_TIME_FORMAT, K_STR },
	{ "syslog", BA_KEY_SYSLOG, K_SYSLOG },
	{ "aliases", BA_KEY_ALIASES, K_FILE },
	{ "auto_from", BA_KEY_AUTO_FROM, K_BOOL },
	{ "maildomain", BA_KEY_MAILDOMAIN, K_STR_EMPTY },
	{ "partial_delivery", BA_KEY_PARTIAL_DELIVERY, K_BOOL },
	{ "outbox", BA_KEY_OUTBOX, K_FILE },
	{ "queue", BA_KEY_QUEUE, K_QUEUE },
	{ "queue_max_age", BA_KEY_QUEUE_MAX_AGE, K_AGE },
	{ "oauth2_provider", BA_KEY_OAUTH2_PROVIDER, K_OAUTH2_PROVIDER },
	{ "oauth2_token_endpoint", BA_KEY_OAUTH2_TOKEN_ENDPOINT, K_HTTPS },
	{ "oauth2_authorize_endpoint", BA_KEY_OAUTH2_AUTHORIZE_ENDPOINT, K_HTTPS },
	{ "oauth2_device_endpoint", BA_KEY_OAUTH2_DEVICE_ENDPOINT, K_HTTPS },
	{ "oauth2_client_id", BA_KEY_OAUTH2_CLIENT_ID, K_STR },
	{ "oauth2_client_secret", BA_KEY_OAUTH2_CLIENT_SECRET, K_STR },
	{ "oauth2_client_secret_eval", BA_KEY_OAUTH2_CLIENT_SECRET_EVAL, K_STR },
	{ "oauth2_refresh_token", BA_KEY_OAUTH2_REFRESH_TOKEN, K_STR },
	{ "oauth2_refresh_token_eval", BA_KEY_OAUTH2_REFRESH_TOKEN_EVAL, K_STR },
	{ "oauth2_scope", BA_KEY_OAUTH2_SCOPE, K_STR },
	{ "queue_delay", BA_KEY_QUEUE_DELAY, K_AGE },
	{ "queue_flush_on_run", BA_KEY_QUEUE_FLUSH_ON_RUN, K_BOOL },
	{ "bounce", BA_KEY_BOUNCE, K_BOOL },
	{ "delivery", BA_KEY_DELIVERY, K_DELIVERY },
	{ "dnssec_trust_anchor", BA_KEY_DNSSEC_TRUST_ANCHOR, K_FILE },
	{ "mx_tls_policy", BA_KEY_MX_TLS_POLICY, K_MX_TLS_POLICY },
};

/* The auth methods msmtp 1.8 accepts, plus SCRAM -PLUS (bluearrow). */
static const char *const auth_methods[] = {
	"plain", "login", "cram-md5", "digest-md5", "scram-sha-1", "scram-sha-256",
	"scram-sha-1-plus", "scram-sha-256-plus", "gssapi", "external", "oauthbearer",
	"xoauth2", "ntlm",
};

/* msmtp's get_pos_int(): strtol base 0 (so 0x1d is 29), positive, no trailing junk. */
static long pos_int(const char *s, long max)
{
	char *end;
	errno = 0;
	long x = strtol(s, &end, 0);
	if (end == s || *end || errno == ERANGE || x <= 0 || x > max)
		return -1;
	return x;
}

/* "AB:CD:..." with 32, 20 or 16 bytes (SHA-256, SHA-1, MD5) -> raw; 0 or -1. */
static int parse_fingerprint(unsigned char *raw, size_t *rawlen, const char *s)
{
	size_t n = strlen(s);
	if (n != 32 * 3 - 1 && n != 20 * 3 - 1 && n != 16 * 3 - 1)
		return -1;
	size_t bytes = (n + 1) / 3;
	for (size_t i = 0; i < bytes; i++) {
		int hi = ba_hex_digit((unsigned char)s[3 * i]), lo = ba_hex_digit((unsigned char)s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i + 1 < bytes && s[3 * i + 2] != ':'))
			return -1;
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	*rawlen = bytes;
	return 0;
}

/* RFC 3461 §4.1: NEVER, or any of SUCCESS, FAILURE, DELAY, each at most once. */
static int parse_dsn_notify(unsigned *out, const char *v)
{
	if (strcmp(v, "off") == 0) {
		*out = 0;
		return 0;
	}
	if (strcmp(v, "never") == 0) {
		*out = BA_DSN_NEVER;
		return 0;
	}
	unsigned bits = 0;
	const char *p = v;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		unsigned b = 0;
		if (n == 7 && strncmp(p, "success", 7) == 0)
			b = BA_DSN_SUCCESS;
		else if (n == 7 && strncmp(p, "failure", 7) == 0)
			b = BA_DSN_FAILURE;
		else if (n == 5 && strncmp(p, "delay", 5) == 0)
			b = BA_DSN_DELAY;
		if (!b || (bits & b))
			return -1;
		bits |= b;
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = bits;
	return 0;
}

static int valid_syslog(const char *v)
{
	return strcmp(v, "LOG_USER") == 0 || strcmp(v, "LOG_MAIL") == 0 ||
	       (strncmp(v, "LOG_LOCAL", 9) == 0 && v[9] >= '0' && v[9] <= '7' && !v[10]);
}

/* msmtp: a leading '~' is replaced by $HOME (nothing else: "~user" is not special). */
static int expand_tilde(struct ba_buf *out, const char *v)
{
	if (v[0] != '~')
		return ba_buf_addstr(out, v);
	const char *home = getenv("HOME");
	/* getpwuid_r: core may run in a worker thread, getpwuid's result is shared */
	struct passwd pwb, *pw = NULL;
	char pwbuf[4096];
	if ((!home || !*home) && getpwuid_r(getuid(), &pwb, pwbuf, sizeof pwbuf, &pw) == 0 && pw)
		home = pw->pw_dir;
	ba_buf_addstr(out, home ? home : "");
	return ba_buf_addstr(out, v + 1);
}

static int set_key(struct parser *ps, const char *cmd, const char *v)
{
	const struct keydef *kd = NULL;
	struct ba_account *a = &ps->cur->pub;
	struct ba_buf tmp = BA_BUF_INIT, shown_v = BA_BUF_INIT;
	int on = -1, rc = 0;
	long num;

	for (size_t i = 0; i < sizeof(keydefs) / sizeof(keydefs[0]); i++)
		if (strcmp(keydefs[i].name, cmd) == 0)
			kd = &keydefs[i];
	if (!kd) {
		const char *near = ba_config_key_near(cmd);
		if (near)
			rc = perr(ps, "unknown key '%s' (did you mean '%s'?)", shown(ps, &tmp, cmd), near);
		else
			rc = perr(ps, "unknown key '%s'", shown(ps, &tmp, cmd));
		goto out;
	}
	if (*v == '\0' || strcmp(v, "on") == 0)
		on = 1;
	else if (strcmp(v, "off") == 0)
		on = 0;

	switch (kd->kind) {
	case K_HOST:
		if (!*v)
			goto needs_value;
		rc = set_str(a, kd->key, v);
		break;
	case K_PORT:
		if (!*v)
			goto needs_value;
		if ((num = pos_int(v, 65535)) < 0)
			goto invalid;
		a->port = (unsigned)num;
		break;
	case K_PROXY_PORT:
		if (*v && (num = pos_int(v, 65535)) < 0)
			goto invalid;
		a->proxy_port = *v ? (unsigned)num : 0;
		break;
	case K_STR:
		if (is_secret_key(kd->key) && *v && (rc = check_private(ps)) < 0)
			goto out;
		rc = set_str(a, kd->key, *v ? v : NULL);
		break;
	case K_STR_EMPTY:
		rc = set_str(a, kd->key, v);
		break;
	case K_FILE:
	case K_TRUST:
		if (!*v) {
			rc = set_str(a, kd->key, kd->kind == K_TRUST ? "" : NULL);
			break;
		}
		if (expand_tilde(&tmp, v) < 0)
			rc = -1;
		else
			rc = set_str(a, kd->key, ba_buf_str(&tmp));
		break;
	case K_TIMEOUT:
		if (!*v)
			goto needs_value;
		if (strcmp(v, "off") == 0)
			a->timeout = 0;
		else if ((num = pos_int(v, INT_MAX / 1000)) < 0)
			goto invalid;
		else
			a->timeout = (int)num;
		break;
	case K_PROTOCOL:
		if (!*v)
			goto needs_value;
		if (strcmp(v, "smtp") == 0)
			a->protocol = BA_PROTO_SMTP;
		else if (strcmp(v, "lmtp") == 0)
			a->protocol = BA_PROTO_LMTP;
		else
			goto invalid;
		break;
	case K_AUTH:
		if (on >= 0) {
			a->auth = on;
			rc = set_auth_method(a, NULL);
			break;
		}
		for (size_t i = 0; i < sizeof(auth_methods) / sizeof(auth_methods[0]); i++)
			if (strcmp(auth_methods[i], v) == 0) {
				a->auth = 1;
				rc = set_auth_method(a, v);
				goto done;
			}
		goto invalid;
	case K_BOOL:
	case K_BOOL_NOT:
		if (on < 0)
			goto invalid;
		*(int *)(void *)((char *)a + fields[kd->key].off) = kd->kind == K_BOOL ? on : !on;
		break;
	case K_HTTPS:
		if (*v && (strncasecmp(v, "https://", 8) != 0 || !v[8] ||
		           strpbrk(v, " \t\r\n\"<>\\^`{|}") != NULL))
			goto invalid;
		rc = set_str(a, kd->key, *v ? v : NULL);
		break;
	case K_OAUTH2_PROVIDER:
		if (*v && strcmp(v, "gmail") != 0 && strcmp(v, "microsoft") != 0 &&
		    strcmp(v, "custom") != 0)
			goto invalid;
		rc = set_str(a, kd->key, *v ? v : NULL);
		break;
	case K_SSLV3:
		if (on != 0) {
			rc = perr(ps, "'tls_force_sslv3' is not supported: SSL 3.0 is insecure "
			              "(RFC 7568); remove the line");
			goto out;
		}
		goto out; /* "off" changes nothing */
	case K_FINGERPRINT:
		if (!*v) {
			a->tls_fingerprint_len = 0;
			rc = set_str(a, kd->key, NULL);
			break;
		}
		if (parse_fingerprint(a->tls_fingerprint_raw, &a->tls_fingerprint_len, v) < 0) {
			rc = perr(ps, "invalid value '%s' for '%s': expected the certificate's SHA-256 "
			              "fingerprint as 32 colon-separated hex pairs (AB:CD:...), as "
			              "bluearrow check shows it%s", shown(ps, &shown_v, v), cmd,
			          strncasecmp(v, "sha", 3) == 0 ? ", without a prefix" : "");
			goto out;
		}
		for (const char *c = v; *c; c++) /* upper case, as msmtp shows it */
			ba_buf_addch(&tmp, *c >= 'a' && *c <= 'f' ? *c - 'a' + 'A' : *c);
		rc = ba_buf_failed(&tmp) ? -1 : set_str(a, kd->key, ba_buf_str(&tmp));
		break;
	case K_DH_BITS:
		if (*v && (num = pos_int(v, INT_MAX)) < 0)
			goto invalid;
		a->tls_min_dh_prime_bits = *v ? (int)num : 0;
		break;
	case K_DSN_NOTIFY:
		if (!*v)
			goto needs_value;
		if (parse_dsn_notify(&a->dsn_notify, v) < 0)
			goto invalid;
		break;
	case K_DSN_RETURN:
		if (!*v)
			goto needs_value;
		if (strcmp(v, "off") == 0)
			a->dsn_return = BA_DSN_RET_OFF;
		else if (strcmp(v, "headers") == 0)
			a->dsn_return = BA_DSN_RET_HDRS;
		else if (strcmp(v, "full") == 0)
			a->dsn_return = BA_DSN_RET_FULL;
		else
			goto invalid;
		break;
	case K_HDR_FROM:
	case K_HDR_AUTO: {
		enum ba_config_header_mode m;
		if (!*v || strcmp(v, "auto") == 0)
			m = BA_HDR_AUTO;
		else if (strcmp(v, "off") == 0)
			m = BA_HDR_OFF;
		else if (strcmp(v, "on") == 0 && kd->kind == K_HDR_FROM)
			m = BA_HDR_ON;
		else
			goto invalid;
		*(enum ba_config_header_mode *)(void *)((char *)a + fields[kd->key].off) = m;
		break;
	}
	case K_HDR_LEGACY:
		if (on < 0)
			goto invalid;
		*(enum ba_config_header_mode *)(void *)((char *)a + fields[kd->key].off) =
			on ? BA_HDR_AUTO : BA_HDR_OFF;
		break;
	case K_SYSLOG:
		if (on >= 0) {
			rc = set_str(a, kd->key, on ? "LOG_USER" : NULL);
			break;
		}
		if (!valid_syslog(v))
			goto invalid;
		rc = set_str(a, kd->key, v);
		break;
	case K_DELIVERY:
		if (!*v)
			a->delivery = BA_DELIVERY_DEFAULT;
		else if (strcmp(v, "relay") == 0)
			a->delivery = BA_DELIVERY_RELAY;
		else if (strcmp(v, "mx") == 0)
			a->delivery = BA_DELIVERY_MX;
		else
			goto invalid;
		break;
	case K_MX_TLS_POLICY:
		if (strcmp(v, "auto") == 0)
			a->mx_tls_policy = BA_MX_TLS_AUTO;
		else if (strcmp(v, "verify") == 0)
			a->mx_tls_policy = BA_MX_TLS_VERIFY;
		else if (strcmp(v, "dane-only") == 0)
			a->mx_tls_policy = BA_MX_TLS_DANE_ONLY;
		else if (strcmp(v, "may") == 0)
			a->mx_tls_policy = BA_MX_TLS_MAY;
		else
			goto invalid;
		break;
	case K_QUEUE:
		if (strcmp(v, "off") == 0)
			a->queue = BA_QUEUE_OFF;
		else if (strcmp(v, "on_failure") == 0)
			a->queue = BA_QUEUE_ON_FAILURE;
		else if (strcmp(v, "always") == 0)
			a->queue = BA_QUEUE_ALWAYS;
		else
			goto invalid;
		break;
	case K_AGE: {
		char *end;
		errno = 0;
		long x = strtol(v, &end, 10);
		long unit = !*end ? 1 : !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60
		          : !strcmp(end, "h") ? 3600 : !strcmp(end, "d") ? 86400 : 0;
		/* queue_delay 0 turns the delay off; a max age of 0 means nothing */
		if (end == v || !unit || errno == ERANGE || x < (kd->key == BA_KEY_QUEUE_DELAY ? 0 : 1) ||
		    x > LONG_MAX / unit)
			goto invalid;
		*(long *)(void *)((char *)a + fields[kd->key].off) = x * unit;
		break;
	}
	}
done:
	if (rc < 0) {
		rc = ba_err_set(ps->err, EX_OSERR, "out of memory");
		goto out;
	}
	ps->cur->own |= BA_BIT(kd->key);
	ps->cur->pub.mask |= BA_BIT(kd->key);
	ps->cur->own_lines++;
	goto out;
needs_value:
	rc = perr(ps, "'%s' needs a value", cmd);
	goto out;
invalid:
	rc = perr(ps, "invalid value '%s' for '%s'", shown(ps, &shown_v, v), cmd);
out:
	ba_buf_release_secret(&tmp);
	ba_buf_release(&shown_v);
	return rc;
}

static int start_account(struct parser *ps, char *arg)
{
	ba_config *cfg = ps->cfg;
	struct acc *parents[64];
	size_t np = 0;
	struct ba_buf name = BA_BUF_INIT, tmp = BA_BUF_INIT;
	int rc = -1;
	char *colon = strchr(arg, ':');

	if (colon) {
		/* the parent list: "a, b" */
		char *p = colon + 1;
		for (;;) {
			char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			struct ba_buf pn = BA_BUF_INIT;
			if (trim_value(&pn, p, len) < 0) {
				ba_buf_release(&pn);
				goto oom;
			}
			if (pn.len == 0) {
				ba_buf_release(&pn);
				perr(ps, "missing account name");
				goto out;
			}
			struct acc *pa = find_acc(cfg, ba_buf_str(&pn));
			if (!pa) {
				perr(ps, "account '%s' is not defined (a parent must come before)",
				     shown(ps, &tmp, ba_buf_str(&pn)));
				ba_buf_release(&pn);
				goto out;
			}
			ba_buf_release(&pn);
			if (np == sizeof(parents) / sizeof(parents[0])) {
				perr(ps, "too many parent accounts");
				goto out;
			}
			parents[np++] = pa;
			if (!comma)
				break;
			p = comma + 1;
		}
		*colon = '\0';
	}
	/*
	 * as msmtp 1.8.23: the line lost its outer quotes already; the name is
	 * only trimmed (`account ""x""` is "x"), while each parent also loses a
	 * pair of its own (above)
	 */
	if (trim_blanks(&name, arg, strlen(arg)) < 0)
		goto oom;
	if (name.len == 0) {
		perr(ps, "missing account name");
		goto out;
	}
	if (strpbrk(ba_buf_str(&name), ":,")) {
		perr(ps, "account name '%s' must not contain ':' or ','",
		     shown(ps, &tmp, ba_buf_str(&name)));
		goto out;
	}
	struct acc *dup = find_acc(cfg, ba_buf_str(&name));
	if (dup) {
		perr(ps, "account '%s' is already defined (line %u)",
		     shown(ps, &tmp, ba_buf_str(&name)), dup->pub.line);
		goto out;
	}

	/* msmtp: a copy of the current defaults, then each parent's own keys */
	struct acc *a = acc_new();
	if (!a)
		goto oom;
	for (int k = 0; k < BA_KEY_COUNT; k++)
		if (copy_key(&a->pub, &ps->defaults->pub, (enum ba_config_key)k) < 0)
			goto oom_a;
	a->pub.mask = ps->defaults->own;
	for (size_t i = 0; i < np; i++) {
		for (int k = 0; k < BA_KEY_COUNT; k++)
			if (BA_MASK_HAS(parents[i]->own, k) &&
			    copy_key(&a->pub, &parents[i]->pub, (enum ba_config_key)k) < 0)
				goto oom_a;
		a->own |= parents[i]->own;
		a->pub.mask |= parents[i]->own;
	}
	if (np == 1 && !(a->alias_of = strdup(parents[0]->pub.name)))
		goto oom_a;
	a->pub.name = ba_buf_detach(&name, NULL);
	if (!a->pub.name)
		goto oom_a;
	a->pub.file = cfg->path;
	a->pub.line = ps->line;
	if (cfg_append(cfg, a) < 0)
		goto oom_a;
	ps->cur = a;
	rc = 0;
	goto out;
oom_a:
	acc_free(a);
oom:
	ba_err_set(ps->err, EX_OSERR, "out of memory");
out:
	ba_buf_release(&name);
	ba_buf_release(&tmp);
	return rc;
}

static int process_line(struct parser *ps, const char *line);

static int do_eval(struct parser *ps, const char *cmd)
{
	struct ba_buf out;
	int rc;
	if (ps->depth)
		return perr(ps, "eval must not produce another eval");
	if (!*cmd)
		return perr(ps, "'eval' needs a command");
	ba_buf_init(&out, 64 * 1024);
	if (ba_config_run_command(&out, cmd, ps->err) < 0) {
		ba_err_prefix(ps->err, "%s:%u: eval: ", ps->name, ps->line);
		ba_buf_release_secret(&out);
		return -1;
	}
	if (out.len == 0) {
		ba_buf_release_secret(&out);
		return perr(ps, "eval command printed nothing");
	}
	ps->depth = 1;
	rc = process_line(ps, ba_buf_str(&out));
	ps->depth = 0;
	ba_buf_release_secret(&out);
	return rc;
}

static int process_line(struct parser *ps, const char *line)
{
	size_t i = 0, cl;
	struct ba_buf arg = BA_BUF_INIT, tmp = BA_BUF_INIT;
	char cmd[64];
	int rc = -1;

	while (is_blank((unsigned char)line[i]))
		i++;
	if (line[i] == '#' || line[i] == '\0')
		return 0;
	for (cl = 0; line[i + cl] && !is_blank((unsigned char)line[i + cl]); cl++)
		;
	if (trim_value(&arg, line + i + cl, strlen(line + i + cl)) < 0) {
		ba_buf_release_secret(&arg);
		return ba_err_set(ps->err, EX_OSERR, "out of memory");
	}
	if (cl >= sizeof(cmd)) {
		ba_buf_add(&tmp, line + i, 40);
		perr(ps, "unknown key '%s...'", shown(ps, &arg, ba_buf_str(&tmp)));
		goto out;
	}
	memcpy(cmd, line + i, cl);
	cmd[cl] = '\0';

	if (strcmp(cmd, "eval") == 0) {
		rc = do_eval(ps, ba_buf_str(&arg));
		goto out;
	}
	/* msmtp 1.2 compatibility: keys before any section make account "default" */
	if (!ps->cur && strcmp(cmd, "account") != 0 && strcmp(cmd, "defaults") != 0) {
		char def[] = "default";
		if (start_account(ps, def) < 0)
			goto out;
	}
	if (strcmp(cmd, "defaults") == 0) {
		if (arg.len) {
			perr(ps, "'defaults' takes no value");
			goto out;
		}
		ps->cur = ps->defaults;
		rc = 0;
	} else if (strcmp(cmd, "account") == 0) {
		rc = start_account(ps, arg.data ? arg.data : (char[]){ "" });
	} else {
		rc = set_key(ps, cmd, ba_buf_str(&arg));
	}
out:
	ba_buf_release_secret(&arg);
	ba_buf_release(&tmp);
	return rc;
}

/* The finishing touches msmtp applies when it uses an account: default ports. */
static void resolve(struct acc *a)
{
	struct ba_account *p = &a->pub;
	if (p->port == 0 && p->protocol == BA_PROTO_SMTP)
		p->port = (p->tls && !p->tls_starttls) ? 465 : 25; /* RFC 8314 §3.3 */
	if (p->proxy_port == 0)
		p->proxy_port = 1080; /* RFC 1928 §3 */
	if (a->alias_of && a->own_lines)
		/* "account default : x" plus keys of its own is no longer a mere alias */
		a->alias_of[0] = '\0';
	if (a->alias_of && !a->alias_of[0]) {
		free(a->alias_of);
		a->alias_of = NULL;
	}
	p->alias_of = a->alias_of;
}

static int parse_text(ba_config *cfg, struct parser *ps, const char *text, size_t len)
{
	struct ba_buf line = BA_BUF_INIT;
	size_t pos = 0;
	int rc = 0;

	ps->defaults = acc_new();
	if (!ps->defaults)
		return ba_err_set(ps->err, EX_OSERR, "out of memory");
	ps->cfg = cfg;
	while (pos < len && rc == 0) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t n = end - pos;
		ps->line++;
		ba_buf_reset(&line);
		if (n && text[pos + n - 1] == '\r')
			n--; /* CRLF files, as msmtp accepts them */
		if (memchr(text + pos, '\0', n)) {
			rc = perr(ps, "NUL byte in line");
			break;
		}
		if (ba_buf_add(&line, text + pos, n) < 0) {
			rc = ba_err_set(ps->err, EX_OSERR, "out of memory");
			break;
		}
		rc = process_line(ps, ba_buf_str(&line));
		pos = nl ? end + 1 : len;
	}
	ba_buf_release_secret(&line);
	acc_free(ps->defaults);
	ps->defaults = NULL;
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < cfg->n; i++)
		resolve(cfg->accs[i]);
	return 0;
}

static int parse_common(ba_config **out, const char *name, const char *text, size_t len,
                        struct parser *ps, struct ba_err *err)
{
	*out = NULL;
	ba_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(name))) {
		free(cfg);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	ps->name = cfg->path;
	ps->err = err;
	if (parse_text(cfg, ps, text, len) < 0) {
		ba_config_free(cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}

int ba_config_parse(ba_config **out, const char *name, const char *text, size_t len,
                    struct ba_err *err)
{
	struct parser ps;
	memset(&ps, 0, sizeof(ps));
	return parse_common(out, name, text, len, &ps, err);
}

int ba_config_load(ba_config **out, const char *path, unsigned flags, struct ba_err *err)
{
	struct parser ps;
	struct ba_buf text;
	int fd, rc;

	*out = NULL;
	memset(&ps, 0, sizeof(ps));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ba_err_set(err, EX_CONFIG, "cannot open '%s': %s", path, ba_strerror_t(errno));
	/* the checks are made on what we opened, not on the name (no race) */
	if (fstat(fd, &ps.st) < 0) {
		rc = ba_err_set(err, EX_CONFIG, "cannot stat '%s': %s", path, ba_strerror_t(errno));
		close(fd);
		return rc;
	}
	if (S_ISDIR(ps.st.st_mode)) {
		close(fd);
		return ba_err_set(err, EX_CONFIG, "cannot read '%s': Is a directory", path);
	}
	ps.have_stat = 1;
	ps.check_perm = !(flags & BA_CONFIG_SYSTEM);
	ba_buf_init(&text, CONFIG_FILE_MAX);
	for (;;) {
		if (ba_buf_grow(&text, 8192) < 0) {
			close(fd);
			ba_buf_release_secret(&text);
			return ba_err_set(err, EX_CONFIG, "'%s' is too large (more than %u bytes)",
			                  path, CONFIG_FILE_MAX);
		}
		ssize_t k = read(fd, text.data + text.len, text.alloc - text.len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = ba_err_set(err, EX_CONFIG, "cannot read '%s': %s", path, ba_strerror_t(errno));
			close(fd);
			ba_buf_release_secret(&text);
			return rc;
		}
		if (k == 0)
			break;
		text.len += (size_t)k;
		text.data[text.len] = '\0';
	}
	close(fd);
	rc = parse_common(out, path, ba_buf_str(&text), text.len, &ps, err);
	ba_buf_release_secret(&text); /* it may hold passwords */
	for (size_t i = 0; rc == 0 && (flags & BA_CONFIG_SYSTEM) && i < (*out)->n; i++)
		(*out)->accs[i]->pub.system_file = 1;
	return rc;
}

/* ---- keys from the command line ---------------------------------------- */

const char *ba_config_key_near(const char *key)
{
	const char *near = NULL;
	size_t best = (size_t)-1;
	for (size_t i = 0; i < sizeof(keydefs) / sizeof(keydefs[0]); i++) {
		size_t d = edit_distance(key, keydefs[i].name);
		if (d < best)
			best = d, near = keydefs[i].name;
	}
	return near && best && close_enough(best, key) ? near : NULL;
}

int ba_config_key_value_optional(const char *key)
{
	for (size_t i = 0; i < sizeof(keydefs) / sizeof(keydefs[0]); i++)
		if (strcmp(keydefs[i].name, key) == 0)
			return keydefs[i].kind == K_BOOL || keydefs[i].kind == K_BOOL_NOT ||
			       keydefs[i].kind == K_AUTH;
	return -1;
}

int ba_config_apply(ba_config *cfg, const struct ba_config_kv *kv, size_t n, struct ba_err *err)
{
	struct parser ps;
	memset(&ps, 0, sizeof(ps));
	ps.cfg = cfg;
	ps.name = "command line";
	ps.err = err;
	for (size_t i = 0; i < cfg->n; i++) {
		struct acc *a = cfg->accs[i];
		unsigned lines = a->own_lines; /* an alias stays an alias: these are not its lines */
		ps.cur = a;
		for (size_t k = 0; k < n; k++)
			if (set_key(&ps, kv[k].key, kv[k].value ? kv[k].value : "") < 0)
				return -1;
		a->own_lines = lines;
		if (!BA_MASK_HAS(a->pub.mask, BA_KEY_PORT))
			a->pub.port = 0; /* the default port again: --tls may have changed it */
		resolve(a);
	}
	return 0;
}

int ba_config_from_kv(ba_config **out, const struct ba_config_kv *kv, size_t n,
                      struct ba_err *err)
{
	static const char text[] = "account default\n";
	if (ba_config_parse(out, "command line", text, sizeof(text) - 1, err) < 0)
		return -1;
	if (ba_config_apply(*out, kv, n, err) < 0) {
		ba_config_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}
