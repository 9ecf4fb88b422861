/* config_util.c - finding the file, running commands, %-patterns, printing accounts */
#include "bluearrow/config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- which file -------------------------------------------------------- */

/* $HOME, else the password database's entry; valid until the thread's next call */
static const char *home_dir(void)
{
	const char *home = getenv("HOME");
	if (home && *home)
		return home;
	/* getpwuid_r: core may run in a worker thread, getpwuid's result is shared */
	static _Thread_local char buf[4096];
	struct passwd pwb, *pw = NULL;
	if (getpwuid_r(getuid(), &pwb, buf, sizeof buf, &pw) != 0 || !pw)
		return NULL;
	return pw->pw_dir;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int ba_config_find_default_path(struct ba_buf *out, unsigned *flags, struct ba_err *err)
{
	struct ba_buf cand[6], tried = BA_BUF_INIT;
	const unsigned cand_flags[6] = { 0, 0, 0, 0, BA_CONFIG_SYSTEM, BA_CONFIG_SYSTEM };
	const char *env = getenv("BLUEARROW_CONFIG");
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = home_dir();
	int rc = -1;

	if (flags)
		*flags = 0;
	if (env && *env) {
		if (!exists(env))
			return ba_err_set(err, EX_CONFIG,
			                  "BLUEARROW_CONFIG names '%s' which does not exist", env);
		return ba_buf_addstr(out, env) < 0 ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
	}
	for (int i = 0; i < 6; i++)
		ba_buf_init(&cand[i], 0);
	/* XDG Base Directory: an unset, empty or relative XDG_CONFIG_HOME means ~/.config */
	if (xdg && xdg[0] == '/') {
		ba_buf_addf(&cand[0], "%s/bluearrow/config", xdg);
		ba_buf_addf(&cand[3], "%s/msmtp/config", xdg);
	} else if (home) {
		ba_buf_addf(&cand[0], "%s/.config/bluearrow/config", home);
		ba_buf_addf(&cand[3], "%s/.config/msmtp/config", home);
	}
	if (home) {
		ba_buf_addf(&cand[1], "%s/.bluearrowrc", home);
		ba_buf_addf(&cand[2], "%s/.msmtprc", home);
	}
	ba_buf_addstr(&cand[4], "/etc/bluearrow.conf");
	ba_buf_addstr(&cand[5], "/etc/msmtprc");
	/* ours first, then msmtp's user files (~/.msmtprc before XDG, as msmtp), then /etc */
	for (int i = 0; i < 6; i++) {
		if (cand[i].len == 0)
			continue;
		if (exists(ba_buf_str(&cand[i]))) {
			if (ba_buf_add(out, cand[i].data, cand[i].len) < 0) {
				ba_err_set(err, EX_OSERR, "out of memory");
				goto done;
			}
			if (flags)
				*flags = cand_flags[i];
			rc = 0;
			goto done;
		}
		ba_buf_addf(&tried, "%s%s", tried.len ? ", " : "", ba_buf_str(&cand[i]));
	}
	ba_err_set(err, EX_CONFIG, "no configuration file found (tried %s)", ba_buf_str(&tried));
done:
	for (int i = 0; i < 6; i++)
		ba_buf_release(&cand[i]);
	ba_buf_release(&tried);
	return rc;
}

/* ---- running a command ------------------------------------------------- */

int ba_config_run_command(struct ba_buf *out, const char *cmd, struct ba_err *err)
{
	int fds[2], status, in_line = 1, rc = 0;
	pid_t pid;
	char chunk[4096];

	if (pipe(fds) < 0)
		return ba_err_set(err, EX_OSERR, "cannot run '%s': pipe: %s", cmd, ba_strerror_t(errno));
	/* both ends close-on-exec in the parent's other children; dup2 clears it for stdout */
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return ba_err_set(err, EX_OSERR, "cannot run '%s': fork: %s", cmd, ba_strerror_t(errno));
	}
	if (pid == 0) {
		/* child: stdin from /dev/null (the command must not eat the mail), stdout to us */
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(fds[1], 1) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		/* a thread that blocks signals (bluearrow-tui's delivery thread) does not pass that on */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t k = read(fds[0], chunk, sizeof(chunk));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0 && !rc)
				rc = ba_err_set(err, EX_OSERR, "cannot read the output of '%s': %s", cmd,
				                ba_strerror_t(errno));
			break;
		}
		if (!in_line || rc)
			continue; /* drain, so the command never blocks on a full pipe */
		char *nl = memchr(chunk, '\n', (size_t)k);
		size_t take = nl ? (size_t)(nl - chunk) : (size_t)k;
		if (ba_buf_add(out, chunk, take) < 0)
			rc = ba_err_set(err, EX_CONFIG, "the output of '%s' is too long", cmd);
		if (nl)
			in_line = 0;
	}
	/* wipe: the output may be a password */
	volatile char *v = chunk;
	for (size_t i = 0; i < sizeof(chunk); i++)
		v[i] = 0;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return rc ? rc
			          : ba_err_set(err, EX_OSERR, "cannot wait for '%s': %s", cmd,
			                       ba_strerror_t(errno));
	}
	if (rc)
		return rc;
	if (out->len && out->data[out->len - 1] == '\r')
		ba_buf_truncate(out, out->len - 1);
	if (WIFSIGNALED(status))
		return ba_err_set(err, EX_CONFIG, "command '%s' was killed by signal %d", cmd,
		                  WTERMSIG(status));
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		return ba_err_set(err, EX_CONFIG, "command '%s' failed with exit status %d", cmd,
		                  WEXITSTATUS(status));
	return 0;
}

/* ---- %-patterns -------------------------------------------------------- */

static int add_hostname(struct ba_buf *out)
{
	const char *h = getenv("HOSTNAME");
	char name[256];
	if (h && *h)
		return ba_buf_addstr(out, h);
	if (gethostname(name, sizeof(name)) < 0)
		return ba_buf_addstr(out, "localhost");
	name[sizeof(name) - 1] = '\0';
	return ba_buf_addstr(out, name);
}

static int add_canonical(struct ba_buf *out)
{
	struct ba_buf h = BA_BUF_INIT;
	struct addrinfo hints, *res = NULL;
	int rc;
	add_hostname(&h);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	hints.ai_family = AF_UNSPEC;
	if (getaddrinfo(ba_buf_str(&h), NULL, &hints, &res) == 0 && res && res->ai_canonname)
		rc = ba_buf_addstr(out, res->ai_canonname);
	else
		rc = ba_buf_add(out, h.data ? h.data : "", h.len);
	if (res)
		freeaddrinfo(res);
	ba_buf_release(&h);
	return rc;
}

static int add_mailname(struct ba_buf *out, struct ba_err *err)
{
	char line[1024];
	FILE *f = fopen("/etc/mailname", "re");
	if (!f)
		return ba_err_set(err, EX_CONFIG, "cannot read '/etc/mailname': %s", ba_strerror_t(errno));
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return ba_err_set(err, EX_CONFIG, "cannot read '/etc/mailname': empty file");
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return ba_buf_addstr(out, line);
}

static int add_user(struct ba_buf *out)
{
	const char *u = getenv("USER");
	if (!u || !*u)
		u = getenv("LOGNAME");
	struct passwd pwb, *pw = NULL;
	char pwbuf[4096];
	if ((!u || !*u) && getpwuid_r(getuid(), &pwb, pwbuf, sizeof pwbuf, &pw) == 0 && pw)
		u = pw->pw_name;
	return ba_buf_addstr(out, u ? u : "");
}

int ba_config_expand(struct ba_buf *out, const char *value, unsigned flags, struct ba_err *err)
{
	for (const char *p = value; *p; p++) {
		int r = 0;
		if (p[0] != '%' || !p[1]) {
			r = ba_buf_addch(out, *p);
		} else if (p[1] == 'H') {
			r = add_hostname(out);
			p++;
		} else if (p[1] == 'C') {
			r = add_canonical(out);
			p++;
		} else if (p[1] == 'M') {
			if (add_mailname(out, err) < 0)
				return -1;
			p++;
		} else if (p[1] == 'U' && (flags & BA_EXPAND_USER)) {
			r = add_user(out);
			p++;
		} else {
			r = ba_buf_addch(out, *p);
		}
		if (r < 0)
			return ba_err_set(err, EX_OSERR, "out of memory");
	}
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

int ba_config_envelope_from(struct ba_buf *out, const struct ba_account *acc,
                            struct ba_err *err)
{
	if (acc->auto_from) {
		/* msmtp's obsolete auto_from replaces from */
		add_user(out);
		if (acc->maildomain && *acc->maildomain)
			ba_buf_addf(out, "@%s", acc->maildomain);
		return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
	}
	if (!acc->from)
		return 0;
	return ba_config_expand(out, acc->from, BA_EXPAND_USER, err);
}

/* ---- printing ---------------------------------------------------------- */

/* A value as msmtp reads it back: quoted when blanks at either end or quotes would be eaten. */
static void add_value(struct ba_buf *out, const char *v)
{
	size_t n = strlen(v);
	/* a final CR would be taken for a CR LF line end */
	int quote = n == 0 || v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' ||
	            v[n - 1] == '\t' || v[n - 1] == '\r' ||
	            (n >= 2 && v[0] == '"' && v[n - 1] == '"');
	if (quote)
		ba_buf_addf(out, "\"%s\"", v);
	else
		ba_buf_addstr(out, v);
}

static void add_kv(struct ba_buf *out, enum ba_config_key k, const char *v)
{
	ba_buf_addf(out, "%s ", ba_config_key_name(k));
	add_value(out, v);
	ba_buf_addch(out, '\n');
}

static const char *onoff(int b)
{
	return b ? "on" : "off";
}

static const char *hdr_mode(enum ba_config_header_mode m)
{
	return m == BA_HDR_ON ? "on" : m == BA_HDR_OFF ? "off" : "auto";
}

int ba_config_format_account(struct ba_buf *out, const struct ba_account *a)
{
	char num[32];
	ba_buf_addstr(out, "account ");
	add_value(out, a->name);
	ba_buf_addch(out, '\n');
	for (int i = 0; i < BA_KEY_COUNT; i++) {
		enum ba_config_key k = (enum ba_config_key)i;
		const char *v = NULL;
		switch (k) {
		case BA_KEY_HOST: v = a->host; break;
		case BA_KEY_PORT:
			if (!a->port)
				continue;
			snprintf(num, sizeof(num), "%u", a->port);
			v = num;
			break;
		case BA_KEY_SOURCE_IP: v = a->source_ip; break;
		case BA_KEY_PROXY_HOST: v = a->proxy_host; break;
		case BA_KEY_PROXY_PORT:
			if (!a->proxy_host)
				continue;
			snprintf(num, sizeof(num), "%u", a->proxy_port);
			v = num;
			break;
		case BA_KEY_SOCKET: v = a->socket; break;
		case BA_KEY_TIMEOUT:
			snprintf(num, sizeof(num), "%d", a->timeout);
			v = a->timeout ? num : "off";
			break;
		case BA_KEY_PROTOCOL: v = a->protocol == BA_PROTO_LMTP ? "lmtp" : "smtp"; break;
		case BA_KEY_DOMAIN: v = a->domain; break;
		case BA_KEY_AUTH: v = !a->auth ? "off" : a->auth_method ? a->auth_method : "on"; break;
		case BA_KEY_USER: v = a->user; break;
		case BA_KEY_PASSWORD:
			if (a->password)
				ba_buf_addstr(out, "password <redacted>\n");
			continue;
		case BA_KEY_PASSWORDEVAL: v = a->passwordeval; break;
		case BA_KEY_NTLMDOMAIN: v = a->ntlmdomain; break;
		case BA_KEY_TLS: v = onoff(a->tls); break;
		case BA_KEY_TLS_STARTTLS: v = onoff(a->tls_starttls); break;
		case BA_KEY_TLS_TRUST_FILE: v = a->tls_trust_file; break;
		case BA_KEY_TLS_CRL_FILE: v = a->tls_crl_file; break;
		case BA_KEY_TLS_FINGERPRINT: v = a->tls_fingerprint; break;
		case BA_KEY_TLS_KEY_FILE: v = a->tls_key_file; break;
		case BA_KEY_TLS_CERT_FILE: v = a->tls_cert_file; break;
		case BA_KEY_TLS_CERTCHECK: v = onoff(a->tls_certcheck); break;
		case BA_KEY_TLS_PRIORITIES: v = a->tls_priorities; break;
		case BA_KEY_TLS_HOST_OVERRIDE: v = a->tls_host_override; break;
		case BA_KEY_TLS_MIN_DH_PRIME_BITS:
			if (!a->tls_min_dh_prime_bits)
				continue;
			snprintf(num, sizeof(num), "%d", a->tls_min_dh_prime_bits);
			v = num;
			break;
		case BA_KEY_FROM: v = a->from; break;
		case BA_KEY_FROM_FULL_NAME: v = a->from_full_name; break;
		case BA_KEY_ALLOW_FROM_OVERRIDE: v = onoff(a->allow_from_override); break;
		case BA_KEY_DSN_NOTIFY:
			if (!a->dsn_notify) {
				v = "off";
			} else if (a->dsn_notify & BA_DSN_NEVER) {
				v = "never";
			} else {
				num[0] = '\0';
				if (a->dsn_notify & BA_DSN_SUCCESS)
					strncat(num, "success,", sizeof(num) - strlen(num) - 1);
				if (a->dsn_notify & BA_DSN_FAILURE)
					strncat(num, "failure,", sizeof(num) - strlen(num) - 1);
				if (a->dsn_notify & BA_DSN_DELAY)
					strncat(num, "delay,", sizeof(num) - strlen(num) - 1);
				num[strlen(num) - 1] = '\0';
				v = num;
			}
			break;
		case BA_KEY_DSN_RETURN:
			v = a->dsn_return == BA_DSN_RET_FULL   ? "full"
			    : a->dsn_return == BA_DSN_RET_HDRS ? "headers"
			                                       : "off";
			break;
		case BA_KEY_SET_FROM_HEADER: v = hdr_mode(a->set_from_header); break;
		case BA_KEY_SET_DATE_HEADER: v = hdr_mode(a->set_date_header); break;
		case BA_KEY_SET_MSGID_HEADER: v = hdr_mode(a->set_msgid_header); break;
		case BA_KEY_REMOVE_BCC_HEADERS: v = onoff(a->remove_bcc_headers); break;
		case BA_KEY_UNDISCLOSED_RECIPIENTS: v = onoff(a->undisclosed_recipients); break;
		case BA_KEY_LOGFILE: v = a->logfile; break;
		case BA_KEY_LOGFILE_TIME_FORMAT: v = a->logfile_time_format; break;
		case BA_KEY_SYSLOG: v = a->syslog ? a->syslog : "off"; break;
		case BA_KEY_ALIASES: v = a->aliases; break;
		case BA_KEY_AUTO_FROM: v = onoff(a->auto_from); break;
		case BA_KEY_MAILDOMAIN: v = a->maildomain; break;
		case BA_KEY_PARTIAL_DELIVERY: v = onoff(a->partial_delivery); break;
		case BA_KEY_OUTBOX: v = a->outbox; break;
		case BA_KEY_QUEUE:
			v = a->queue == BA_QUEUE_ALWAYS ? "always"
			    : a->queue == BA_QUEUE_ON_FAILURE ? "on_failure" : "off";
			break;
		case BA_KEY_QUEUE_MAX_AGE:
			if (a->queue_max_age) {
				snprintf(num, sizeof(num), "%ld", a->queue_max_age);
				v = num;
			}
			break;
		case BA_KEY_OAUTH2_PROVIDER: v = a->oauth2_provider; break;
		case BA_KEY_OAUTH2_TOKEN_ENDPOINT: v = a->oauth2_token_endpoint; break;
		case BA_KEY_OAUTH2_AUTHORIZE_ENDPOINT: v = a->oauth2_authorize_endpoint; break;
		case BA_KEY_OAUTH2_DEVICE_ENDPOINT: v = a->oauth2_device_endpoint; break;
		case BA_KEY_OAUTH2_CLIENT_ID: v = a->oauth2_client_id; break;
		case BA_KEY_OAUTH2_CLIENT_SECRET:
			v = a->oauth2_client_secret ? "<redacted>" : NULL;
			break;
		case BA_KEY_OAUTH2_CLIENT_SECRET_EVAL: v = a->oauth2_client_secret_eval; break;
		case BA_KEY_OAUTH2_REFRESH_TOKEN:
			v = a->oauth2_refresh_token ? "<redacted>" : NULL;
			break;
		case BA_KEY_OAUTH2_REFRESH_TOKEN_EVAL: v = a->oauth2_refresh_token_eval; break;
		case BA_KEY_OAUTH2_SCOPE: v = a->oauth2_scope; break;
		case BA_KEY_QUEUE_DELAY:
			if (a->queue_delay) {
				snprintf(num, sizeof(num), "%ld", a->queue_delay);
				v = num;
			}
			break;
		case BA_KEY_QUEUE_FLUSH_ON_RUN: v = onoff(a->queue_flush_on_run); break;
		case BA_KEY_BOUNCE: v = onoff(a->bounce); break;
		case BA_KEY_COUNT: break;
		}
		if (v)
			add_kv(out, k, v);
	}
	return ba_buf_failed(out) ? -1 : 0;
}

/* ---- a new file -------------------------------------------------------- */

int ba_config_user_path(struct ba_buf *out, struct ba_err *err)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = home_dir();
	if (xdg && xdg[0] == '/')
		ba_buf_addf(out, "%s/bluearrow/config", xdg);
	else if (home)
		ba_buf_addf(out, "%s/.config/bluearrow/config", home);
	else
		return ba_err_set(err, EX_CONFIG, "neither XDG_CONFIG_HOME nor HOME is set: use -C FILE");
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

static const char *kv_get(const struct ba_config_kv *kv, size_t n, const char *key)
{
	const char *v = NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			v = kv[i].value ? kv[i].value : "";
	return v;
}

/* "key value", the value quoted when it has blanks, '#' or '"' at its start, or is empty */
static void add_key(struct ba_buf *out, const char *key, const char *v)
{
	if (!*v || strpbrk(v, " \t#") || v[0] == '"')
		ba_buf_addf(out, "%s \"%s\"\n", key, v);
	else
		ba_buf_addf(out, "%s %s\n", key, v);
}

int ba_config_template(struct ba_buf *out, const char *account, const struct ba_config_kv *kv,
                       size_t n, struct ba_err *err)
{
	struct ba_buf t = BA_BUF_INIT, from = BA_BUF_INIT;
	const char *name = account && *account ? account : "mail";
	int rc = -1;
	for (const char *c = name; *c; c++)
		if (*c == ':' || *c == ',' || *c == '#' || *c == ' ' || *c == '\t' ||
		    (unsigned char)*c < 32)
			return ba_err_set(err, EX_USAGE, "invalid account name '%s'", name);
	for (size_t i = 0; i < n; i++) {
		const char *v = kv[i].value ? kv[i].value : "";
		if (strchr(v, '\n') || strchr(v, '\r') || (v[0] == '"' && v[strlen(v) - 1] == '"'))
			return ba_err_set(err, EX_USAGE, "invalid value for '%s'", kv[i].key);
	}
	const char *v_from = kv_get(kv, n, "from");
	if (!v_from) { /* USER@host: nothing to ask when the machine knows it */
		if (ba_config_expand(&from, "%U@%H", BA_EXPAND_USER, err) < 0)
			goto out;
		v_from = ba_buf_str(&from);
	}
	const char *tls = kv_get(kv, n, "tls"), *starttls = kv_get(kv, n, "tls_starttls");
	int implicit = starttls && strcmp(starttls, "off") == 0;
	ba_buf_addstr(&t,
	              "# bluearrow configuration, msmtp syntax (see bluearrowrc(5)), written by\n"
	              "# 'bluearrow config init'.  Check it with 'bluearrow config check' and\n"
	              "# 'bluearrow check'; every key is also a command-line option (--host=H).\n"
	              "\n"
	              "defaults\n"
	              "# TLS, the server verified against the system's certificate store\n");
	add_key(&t, "tls", tls ? tls : "on");
	add_key(&t, "tls_trust_file", kv_get(kv, n, "tls_trust_file") ? kv_get(kv, n, "tls_trust_file")
	                                                              : "system");
	ba_buf_addstr(&t, "# one line per message, msmtp's format\n");
	if (kv_get(kv, n, "logfile"))
		add_key(&t, "logfile", kv_get(kv, n, "logfile"));
	else
		ba_buf_addstr(&t, "# logfile ~/.bluearrow.log\n");
	ba_buf_addf(&t, "\naccount %s\n", name);
	ba_buf_addstr(&t, "# your provider's submission server\n");
	if (kv_get(kv, n, "host"))
		add_key(&t, "host", kv_get(kv, n, "host"));
	else
		ba_buf_addstr(&t, "# host smtp.example.org            <- required: set it\n");
	ba_buf_addstr(&t, "# 587 with STARTTLS (RFC 6409), 465 with implicit TLS (tls_starttls off)\n");
	add_key(&t, "port", kv_get(kv, n, "port") ? kv_get(kv, n, "port") : implicit ? "465" : "587");
	if (starttls)
		add_key(&t, "tls_starttls", starttls);
	ba_buf_addstr(&t, "# the envelope sender and the From of messages without one\n");
	add_key(&t, "from", v_from);
	ba_buf_addstr(&t, "# authentication: a command that prints the password (never the password\n"
	                  "# itself in this file), e.g. \"pass show mail\" or \"secret-tool lookup ...\"\n");
	const char *user = kv_get(kv, n, "user"), *auth = kv_get(kv, n, "auth");
	if (auth || user)
		add_key(&t, "auth", auth ? auth : "on");
	else
		ba_buf_addstr(&t, "# auth on\n");
	if (user)
		add_key(&t, "user", user);
	else
		ba_buf_addstr(&t, "# user NAME\n");
	if (kv_get(kv, n, "passwordeval"))
		add_key(&t, "passwordeval", kv_get(kv, n, "passwordeval"));
	else
		ba_buf_addstr(&t, "# passwordeval \"pass show mail\"\n");
	static const char *const done[] = { "from", "tls", "tls_starttls", "tls_trust_file", "logfile",
		                            "host", "port", "auth", "user", "passwordeval" };
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < sizeof(done) / sizeof(done[0]) && strcmp(done[k], kv[i].key) != 0)
			k++;
		if (k == sizeof(done) / sizeof(done[0]))
			add_key(&t, kv[i].key, kv[i].value ? kv[i].value : "");
	}
	ba_buf_addf(&t, "\n# the account used when none is named (-a)\naccount default : %s\n", name);
	if (ba_buf_failed(&t)) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	/* what is written must load: the file's own parser checks every key and value */
	ba_config *cfg = NULL;
	if (ba_config_parse(&cfg, "the new configuration", t.data, t.len, err) < 0)
		goto out;
	ba_config_free(cfg);
	ba_buf_add(out, t.data, t.len);
	rc = ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
out:
	ba_buf_release(&t);
	ba_buf_release(&from);
	return rc;
}
