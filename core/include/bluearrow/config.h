/* bluearrow/config.h - msmtprc-compatible configuration: accounts, defaults, inheritance
 *
 * The syntax is exactly msmtp's (msmtp(1), CONFIGURATION FILES; our man page
 * is bluearrowrc(5)):
 *
 *   # comment                       empty lines and lines whose first non-blank is '#'
 *   defaults                        following keys become defaults for accounts defined later
 *   account NAME [: PARENT[,...]]   new account: the current defaults, then each parent in order
 *   account default : NAME          the account used when none is named (an account "default")
 *   key value                       value may be "double quoted" (the outer quotes are
 *                                   removed, nothing inside is an escape, as in msmtp)
 *   eval COMMAND                    the line is replaced by the first line COMMAND prints
 *
 * File values (tls_trust_file, tls_crl_file, tls_key_file, tls_cert_file,
 * logfile, aliases) starting with '~' get
 * $HOME substituted.  Booleans are on|off, and an empty argument means on.
 * Some keys take an empty argument to mean "back to the default" (see
 * bluearrowrc(5) per key).  Every key msmtp 1.8 knows is accepted with
 * msmtp's meaning; an unknown key or a bad value is an error
 * "FILE:LINE: ..." of class EX_CONFIG, never silently ignored.
 *
 * The whole file is parsed when it is loaded and every account is complete
 * (defaults and parents applied, port resolved) afterwards; the values are
 * plain typed fields of struct ba_account, read-only for users of the API.
 * Nothing here contacts a network; commands (eval) run only during load.
 */
#ifndef BLUEARROW_CONFIG_H
#define BLUEARROW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"

typedef struct ba_config ba_config;

/*
 * The keys, in the order `bluearrow config show` prints them.  Each is a bit
 * index into struct ba_account.mask (see BA_ACCOUNT_HAS()).
 */
enum ba_config_key {
	BA_KEY_HOST,
	BA_KEY_PORT,
	BA_KEY_SOURCE_IP,
	BA_KEY_PROXY_HOST,
	BA_KEY_PROXY_PORT,
	BA_KEY_SOCKET,
	BA_KEY_TIMEOUT,
	BA_KEY_PROTOCOL,
	BA_KEY_DOMAIN,
	BA_KEY_AUTH,
	BA_KEY_USER,
	BA_KEY_PASSWORD,
	BA_KEY_PASSWORDEVAL,
	BA_KEY_NTLMDOMAIN,
	BA_KEY_TLS,
	BA_KEY_TLS_STARTTLS,
	BA_KEY_TLS_TRUST_FILE,
	BA_KEY_TLS_CRL_FILE,
	BA_KEY_TLS_FINGERPRINT,
	BA_KEY_TLS_KEY_FILE,
	BA_KEY_TLS_CERT_FILE,
	BA_KEY_TLS_CERTCHECK,
	BA_KEY_TLS_PRIORITIES,
	BA_KEY_TLS_HOST_OVERRIDE,
	BA_KEY_TLS_MIN_DH_PRIME_BITS,
	BA_KEY_FROM,
	BA_KEY_FROM_FULL_NAME,
	BA_KEY_ALLOW_FROM_OVERRIDE,
	BA_KEY_DSN_NOTIFY,
	BA_KEY_DSN_RETURN,
	BA_KEY_SET_FROM_HEADER,
	BA_KEY_SET_DATE_HEADER,
	BA_KEY_SET_MSGID_HEADER,
	BA_KEY_REMOVE_BCC_HEADERS,
	BA_KEY_UNDISCLOSED_RECIPIENTS,
	BA_KEY_LOGFILE,
	BA_KEY_LOGFILE_TIME_FORMAT,
	BA_KEY_SYSLOG,
	BA_KEY_ALIASES,
	BA_KEY_AUTO_FROM,
	BA_KEY_MAILDOMAIN,
	BA_KEY_PARTIAL_DELIVERY,   /* bluearrow extension */
	BA_KEY_OUTBOX,             /* bluearrow extension */
	BA_KEY_QUEUE,              /* bluearrow extension */
	BA_KEY_QUEUE_MAX_AGE,      /* bluearrow extension */
	BA_KEY_OAUTH2_PROVIDER,    /* bluearrow extension: OAuth2 (oauth2.h) */
	BA_KEY_OAUTH2_TOKEN_ENDPOINT,
	BA_KEY_OAUTH2_AUTHORIZE_ENDPOINT,
	BA_KEY_OAUTH2_DEVICE_ENDPOINT,
	BA_KEY_OAUTH2_CLIENT_ID,
	BA_KEY_OAUTH2_CLIENT_SECRET,
	BA_KEY_OAUTH2_CLIENT_SECRET_EVAL,
	BA_KEY_OAUTH2_REFRESH_TOKEN,
	BA_KEY_OAUTH2_REFRESH_TOKEN_EVAL,
	BA_KEY_OAUTH2_SCOPE,
	BA_KEY_QUEUE_DELAY,        /* bluearrow extension */
	BA_KEY_QUEUE_FLUSH_ON_RUN, /* bluearrow extension */
	BA_KEY_BOUNCE,             /* bluearrow extension */
	BA_KEY_DELIVERY,           /* bluearrow extension: direct delivery to the MX */
	BA_KEY_DNSSEC_TRUST_ANCHOR,/* bluearrow extension */
	BA_KEY_MX_TLS_POLICY,      /* bluearrow extension */
	BA_KEY_COUNT
};

/* 1 if key k was set explicitly for acc (in its section, a defaults section or a parent). */
#define BA_ACCOUNT_HAS(acc, k) ((int)(((acc)->mask >> (k)) & 1u))

enum ba_config_protocol { BA_PROTO_SMTP, BA_PROTO_LMTP };

/* set_from_header: auto = add when missing (default), on = always replace, off = never. */
enum ba_config_header_mode { BA_HDR_AUTO, BA_HDR_ON, BA_HDR_OFF };

/* dsn_notify conditions (RFC 3461 §4.1); 0 = off (let the server decide). */
enum ba_config_dsn_notify {
	BA_DSN_NEVER = 1 << 0,
	BA_DSN_SUCCESS = 1 << 1,
	BA_DSN_FAILURE = 1 << 2,
	BA_DSN_DELAY = 1 << 3
};
/* queue: when a message goes to the outbox instead of failing (bluearrow extension). */
enum ba_config_queue { BA_QUEUE_OFF, BA_QUEUE_ON_FAILURE, BA_QUEUE_ALWAYS };
/*
 * `delivery`: where messages go.  DEFAULT: to the relay `host` (or `socket`)
 * when one is set, else directly to each recipient domain's MX; RELAY: the
 * relay (host or socket required); MX: directly, host ignored.  Use
 * ba_config_delivers_mx() rather than testing the value.
 */
enum ba_config_delivery { BA_DELIVERY_DEFAULT, BA_DELIVERY_RELAY, BA_DELIVERY_MX };
/*
 * `mx_tls_policy` (direct delivery): AUTO = the strongest the domain
 * publishes (DANE, else MTA-STS, else opportunistic STARTTLS); VERIFY = a
 * verified certificate (DANE or PKIX) required; DANE_ONLY = DANE required;
 * MAY = opportunistic STARTTLS only.
 */
enum ba_config_mx_tls_policy {
	BA_MX_TLS_AUTO, BA_MX_TLS_VERIFY, BA_MX_TLS_DANE_ONLY, BA_MX_TLS_MAY
};
/* dsn_return (RFC 3461 §4.3). */
enum ba_config_dsn_return { BA_DSN_RET_OFF, BA_DSN_RET_HDRS, BA_DSN_RET_FULL };

/*
 * One account, complete: built-in defaults, then `defaults` sections, then
 * parents, then its own keys.  Strings are owned by the ba_config and live
 * until ba_config_free(); NULL means "not set" (the built-in default applies,
 * documented per field).  Users of the API only read these fields.
 */
struct ba_account {
	const char *name;           /* "default" for the default account */
	const char *alias_of;       /* "x" for "account NAME : x" without keys of its own (the
	                               same account under a second name), else NULL */
	const char *file;           /* the configuration file it came from */
	unsigned line;              /* line of its `account` command */
	int system_file;            /* 1: the file was loaded as system-wide (BA_CONFIG_SYSTEM) */
	uint64_t mask;              /* bit (1 << enum ba_config_key) per key set explicitly */

	/* connection */
	const char *host;           /* required unless socket is set */
	unsigned port;              /* resolved: given, else 25, or 465 when tls is on and
	                               tls_starttls off; 0 for lmtp without a port (msmtp has
	                               no default LMTP port: an error unless socket is set) */
	const char *source_ip;      /* NULL = none */
	const char *proxy_host;     /* NULL = no SOCKS5 proxy */
	unsigned proxy_port;        /* always resolved: given, else 1080 */
	const char *socket;         /* unix socket path, overrides host/port/proxy; NULL = none */
	int timeout;                /* seconds; 0 = off: the lower layers' own bounds apply (60 s
	                               for the name, each connection attempt and the TLS
	                               handshake; 300 s per reply, RFC 5321 §4.5.3.2) */
	enum ba_config_protocol protocol;
	const char *domain;         /* EHLO/LHLO argument, unexpanded (%H %C %M); default "localhost" */

	/* authentication */
	int auth;                   /* 0 = off (default), 1 = on */
	const char *auth_method;    /* lowercase method ("plain", "scram-sha-256", "oauthbearer",
	                               "xoauth2", "external", ...); NULL = choose automatically */
	const char *user;           /* NULL = none */
	const char *password;       /* NULL = none; a secret: never log it (ba_secret_password()) */
	const char *passwordeval;   /* command printing the password or OAuth2 token; NULL = none */
	const char *ntlmdomain;     /* obsolete msmtp key, kept for show; NULL = none */

	/* TLS */
	int tls;                    /* 0 = off (default), 1 = on */
	int tls_starttls;           /* 1 = STARTTLS (default), 0 = implicit TLS (RFC 8314 §3.3) */
	const char *tls_trust_file; /* "system" (default) = system store, "" = trust no CA, else PEM */
	const char *tls_crl_file;   /* NULL = none */
	const char *tls_fingerprint;/* as written ("AB:CD:..."), validated; NULL = none */
	unsigned char tls_fingerprint_raw[32];
	size_t tls_fingerprint_len; /* 32 (SHA-256), 20 (SHA-1) or 16 (MD5); 0 = none */
	const char *tls_key_file;   /* NULL = none */
	const char *tls_cert_file;  /* NULL = none */
	int tls_certcheck;          /* 1 (default) = verify the server certificate */
	const char *tls_priorities; /* GnuTLS priority string; NULL = library default */
	const char *tls_host_override; /* name to verify instead of host; NULL = host */
	int tls_min_dh_prime_bits;  /* 0 = library default */

	/* envelope and headers */
	const char *from;           /* envelope-from, unexpanded; may be a wildcard pattern */
	const char *from_full_name; /* display name for a generated From header; NULL = none */
	int allow_from_override;    /* 1 (default): -f overrides from */
	unsigned dsn_notify;        /* enum ba_config_dsn_notify bits; 0 = off (default) */
	enum ba_config_dsn_return dsn_return;
	enum ba_config_header_mode set_from_header;   /* default auto */
	enum ba_config_header_mode set_date_header;   /* auto or off; default auto */
	enum ba_config_header_mode set_msgid_header;  /* auto or off; default auto */
	int remove_bcc_headers;     /* 1 (default) */
	int undisclosed_recipients; /* 0 (default) */

	/* logging and local processing */
	const char *logfile;        /* NULL = none; "-" = stdout */
	const char *logfile_time_format; /* strftime format; NULL = "%b %d %H:%M:%S" */
	const char *syslog;         /* facility ("LOG_USER", "LOG_MAIL", "LOG_LOCAL0".."7"); NULL = off */
	const char *aliases;        /* aliases file; NULL = none */
	int auto_from;              /* obsolete msmtp key: from = USER@maildomain */
	const char *maildomain;     /* for auto_from; NULL = none */

	/* bluearrow extensions */
	int partial_delivery;       /* 1: exit 0 if some recipients were accepted; default 0 */
	const char *outbox;         /* the outbox directory (~ expanded); NULL = the default
	                               (ba_outbox_account_dir(), bluearrow/outbox.h) */
	enum ba_config_queue queue; /* default BA_QUEUE_OFF */
	long queue_max_age;         /* seconds an entry is retried before it fails; 0 = 5 days */

	/* OAuth2 (bluearrow extension; bluearrow/oauth2.h fetches the token) */
	const char *oauth2_provider;        /* "gmail", "microsoft" or "custom"; NULL = none */
	const char *oauth2_token_endpoint;  /* https:// URLs; NULL = the provider's */
	const char *oauth2_authorize_endpoint;
	const char *oauth2_device_endpoint;
	const char *oauth2_client_id;       /* NULL = none */
	const char *oauth2_client_secret;   /* a secret: never log it; NULL = none */
	const char *oauth2_client_secret_eval; /* command printing it; NULL = none */
	const char *oauth2_refresh_token;   /* a secret: never log it; NULL = none */
	const char *oauth2_refresh_token_eval; /* command printing it; NULL = none */
	const char *oauth2_scope;           /* space-separated; NULL = the provider's */
	long queue_delay;           /* seconds every message is held in the outbox before it is
	                               sent (withdrawable meanwhile); 0 (default) = none */
	int queue_flush_on_run;     /* 1: each send starts a detached flush of the due entries;
	                               default 0 */
	int bounce;                 /* 1: an entry that fails during a flush is reported to its
	                               sender (ba_outbox_flush()); default 0 */

	/* direct delivery to the recipients' MX (bluearrow extension; route.h, dns.h) */
	enum ba_config_delivery delivery; /* default BA_DELIVERY_DEFAULT */
	const char *dnssec_trust_anchor;  /* trust-anchor file for libunbound; NULL = the AD bit
	                                     of a resolver on loopback (dns.h) */
	enum ba_config_mx_tls_policy mx_tls_policy; /* default BA_MX_TLS_AUTO */
};

/*
 * 1 when acc delivers directly to the recipients' MX: `delivery mx`, or
 * neither host nor socket and no setting only a relay uses (auth, user,
 * password, passwordeval, tls on, oauth2_provider, an explicit port: such
 * an account lacks its host, and ba_config_account_check() says so).
 */
int ba_config_delivers_mx(const struct ba_account *acc);

enum ba_config_load_flags {
	/*
	 * A system-wide file (/etc/bluearrow.conf, /etc/msmtprc): like msmtp,
	 * no ownership/permission check for `password` keys, since such a file
	 * is protected by group ownership rather than by its owner.
	 */
	BA_CONFIG_SYSTEM = 1 << 0
};

/*
 * Reads and parses the file at path (borrowed) and builds every account.
 * If the file holds a `password` key it must be a regular file owned by the
 * effective user and not readable or writable by group or others (checked
 * with fstat on the opened descriptor; also when running as root) unless
 * flags has BA_CONFIG_SYSTEM.  `eval` lines run their command through
 * /bin/sh -c (stdout's first line replaces the line; stdin is /dev/null).
 * On success the caller frees *out with ba_config_free().
 * Errors (all EX_CONFIG, text "FILE:LINE: ..." for content errors):
 * cannot open/read the file, unknown key, invalid value, key outside an
 * account or defaults section, missing or duplicate account name, unknown
 * parent, account without host or socket, insecure permissions, failing eval.
 */
int ba_config_load(ba_config **out, const char *path, unsigned flags, struct ba_err *err);

/* As ba_config_load() on text in memory; name is used in error messages. No permission check. */
int ba_config_parse(ba_config **out, const char *name, const char *text, size_t len,
                    struct ba_err *err);

/* A key and its value as on a line of the file (both borrowed); value NULL = "". */
struct ba_config_kv {
	const char *key;   /* "tls_trust_file" */
	const char *value; /* "~/ca.pem", "on", "" */
};
/*
 * Sets the keys kv[0..n) on every account of cfg, after what the file
 * said (command-line settings such as msmtp's --host=H --tls=on override the
 * file for whichever account is used), parsed and checked by the file's
 * own parser, then resolves default ports again.  On error cfg may be
 * partly changed: free it.
 * Errors: EX_CONFIG "command line: unknown key 'x' (did you mean 'y'?)",
 * "command line: invalid value 'v' for 'k'", and the parser's others.
 */
int ba_config_apply(ba_config *cfg, const struct ba_config_kv *kv, size_t n, struct ba_err *err);
/*
 * A configuration without a file: one account "default" (file "command
 * line") made of kv[0..n) over the built-in defaults.  On success the
 * caller frees *out with ba_config_free().  Errors: ba_config_apply()'s.
 * Whether the account is usable (host set ...) is ba_config_account()'s check.
 */
int ba_config_from_kv(ba_config **out, const struct ba_config_kv *kv, size_t n,
                      struct ba_err *err);
/*
 * 1 if key takes an empty value meaning "on" (on/off keys and auth), so a
 * command-line "--tls" needs no value; 0 for another key; -1 if no such key.
 */
int ba_config_key_value_optional(const char *key);
/* The key closest to an unknown one ("tls_trustfile" -> "tls_trust_file"), or NULL. */
const char *ba_config_key_near(const char *key);
/* Frees the configuration and every account in it; NULL is a no-op. */
void ba_config_free(ba_config *cfg);

/*
 * Finds the configuration file to use when none was given (-C): the first
 * that exists of $BLUEARROW_CONFIG (must exist if set), $XDG_CONFIG_HOME/
 * bluearrow/config (XDG_CONFIG_HOME defaults to ~/.config), ~/.bluearrowrc,
 * ~/.msmtprc, $XDG_CONFIG_HOME/msmtp/config, /etc/bluearrow.conf,
 * /etc/msmtprc.  Appends the path to out and sets *flags (may be NULL) to
 * BA_CONFIG_SYSTEM for the two files in /etc, else 0.
 * Errors: EX_CONFIG "no configuration file found (tried ...)", or
 * "BLUEARROW_CONFIG names 'x' which does not exist".
 */
int ba_config_find_default_path(struct ba_buf *out, unsigned *flags, struct ba_err *err);

/*
 * The first place ba_config_find_default_path() looks at, where a new file
 * goes: $XDG_CONFIG_HOME/bluearrow/config, else ~/.config/bluearrow/config.
 * Appends it to out.  Errors: EX_CONFIG (no HOME), EX_OSERR.
 */
int ba_config_user_path(struct ba_buf *out, struct ba_err *err);
/*
 * The text of a new, commented configuration file (`bluearrow config
 * init`): defaults with TLS on, account (NULL = "mail") made of kv (host,
 * port, from, tls, tls_starttls, auth, user, passwordeval, logfile; other
 * keys appended as they are), and `account default : ACCOUNT`.  What can be
 * guessed is not asked: from defaults to USER@HOSTNAME (%U@%H), port to 587
 * (465 with tls_starttls off); a missing host is a commented line saying so.
 * The text is checked with ba_config_parse() before it is appended to out.
 * Errors: EX_USAGE (an account name or value that cannot be written),
 * EX_CONFIG (a key or value the parser refuses, "did you mean" included).
 */
int ba_config_template(struct ba_buf *out, const char *account, const struct ba_config_kv *kv,
                       size_t n, struct ba_err *err);
/* The file the configuration was loaded from (borrowed). */
const char *ba_config_path(const ba_config *cfg);

/*
 * The account called name, or for name NULL the default account (the one
 * called "default"), checked with ba_config_account_check() (an account may
 * be incomplete as long as it is only used as a parent).  Borrowed from cfg.
 * Returns NULL and sets err (EX_CONFIG): "no account 'x' in 'FILE'", "no
 * default account in 'FILE' (add 'account default : NAME' or use -a)", or
 * the check's error.
 */
const struct ba_account *ba_config_account(const ba_config *cfg, const char *name,
                                           struct ba_err *err);

/*
 * msmtp's choice by envelope-from (-f without -a): the first account in
 * file order whose `from` equals envelope_from (case-insensitively), or,
 * when `from` holds a wildcard ('*', '?', '['), matches it as a shell
 * pattern (fnmatch(3), case-sensitively, exactly as msmtp 1.8 does).  NULL when none matches (the
 * caller then uses the default account, as msmtp does).  Borrowed.
 */
const struct ba_account *ba_config_account_by_from(const ba_config *cfg,
                                                   const char *envelope_from);

/*
 * Checks that acc can be used to send, as msmtp does for the account it
 * uses: host (or socket) set, a port for lmtp, tls_key_file and
 * tls_cert_file together, tls_crl_file only with a tls_trust_file, with
 * tls on some way to verify the server (tls_trust_file, tls_fingerprint, or
 * tls_certcheck off), and an auth method bluearrow implements (msmtp's
 * digest-md5, gssapi and ntlm are accepted by the parser but refused here).
 * Errors: EX_CONFIG "account 'x' (FILE:LINE): host not set" etc.
 */
int ba_config_account_check(const struct ba_account *acc, struct ba_err *err);

/* Number of accounts, and the i-th in file order (i < count), for listing and completion. */
size_t ba_config_count(const ba_config *cfg);
const struct ba_account *ba_config_at(const ba_config *cfg, size_t i);

/*
 * Name the default account resolves to, for messages: NAME for
 * `account default : NAME` (a pure alias), "default" for an account of
 * that name with settings of its own, NULL when there is none.  Borrowed.
 */
const char *ba_config_default_name(const ba_config *cfg);

/* The key's name in the file ("tls_starttls"); NULL if k is out of range. */
const char *ba_config_key_name(enum ba_config_key k);

/*
 * Appends the effective settings of acc to out, one "key value" line per
 * key in enum order, in msmtprc syntax (values quoted when needed, so the
 * output can be read back), starting with "account NAME".  Unset string
 * keys are omitted; the password, oauth2_client_secret and oauth2_refresh_token
 * are written as "<redacted>".
 * Returns 0, or -1 if out has failed.
 */
int ba_config_format_account(struct ba_buf *out, const struct ba_account *acc);

enum ba_config_expand_flags {
	BA_EXPAND_USER = 1 << 0  /* %U: $USER, else $LOGNAME, else the login name (from only) */
};
/*
 * Expands msmtp's substitution patterns in a from or domain value and
 * appends the result to out: %H = $HOSTNAME or gethostname(), %C = the
 * canonical name of %H (getaddrinfo AI_CANONNAME, %H when that fails),
 * %M = the first line of /etc/mailname, %U (only with BA_EXPAND_USER) the
 * user name.  Other '%' sequences are kept as they are (as msmtp does).
 * Errors: EX_CONFIG ("cannot read '/etc/mailname': ..."), EX_OSERR.
 */
int ba_config_expand(struct ba_buf *out, const char *value, unsigned flags, struct ba_err *err);

/*
 * The account's envelope sender as msmtp computes it when no -f overrides
 * it: with auto_from on, USER@maildomain (just USER when maildomain is
 * empty or unset); else `from` with %U %H %C %M expanded
 * (ba_config_expand()).  Appends it to out; appends nothing when neither is
 * set (the caller decides whether that is an error).
 * Errors: those of ba_config_expand().
 */
int ba_config_envelope_from(struct ba_buf *out, const struct ba_account *acc,
                            struct ba_err *err);

/*
 * Runs cmd through /bin/sh -c (fork/exec, stdin /dev/null, stderr passed
 * through) and appends the first line of its standard output, without the
 * line end, to out (set a cap; output beyond the first line is read and
 * discarded).  Used for `eval` and, by secret, for `passwordeval`.
 * Errors: EX_OSERR (cannot run), EX_CONFIG ("command 'x' failed with exit
 * status N" / "was killed by signal N").  An empty first line is not an
 * error here (the caller decides).
 */
int ba_config_run_command(struct ba_buf *out, const char *cmd, struct ba_err *err);

#endif
