/* cli/oauth2_cmd.c - bluearrow oauth2 authorize: get a refresh token for an account
 *
 * Two flows, both ending in a refresh token that core/oauth2.c then uses:
 * the authorization code with PKCE and a loopback redirect (RFC 8252 §7.3,
 * RFC 7636), where a browser on this machine delivers the code to a port
 * on 127.0.0.1 that only this process listens on; and the device flow
 * (RFC 8628), for a machine without a browser.  What the user must do
 * goes to stderr; stdout carries only the refresh token with --print.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/buf.h"
#include "bluearrow/log.h"
#include "bluearrow/oauth2.h"
#include "bluearrow/submit.h"
#include "cli.h"

const char cli_oauth2_usage[] =
	"usage: bluearrow oauth2 authorize [-C FILE] [-a ACCOUNT] [--device] [--print]\n"
	"                                  [--timeout SECONDS]\n"
	"\n"
	"Authorizes an account whose auth is xoauth2 or oauthbearer (with\n"
	"oauth2_provider or the oauth2_*_endpoint keys and oauth2_client_id) and\n"
	"stores the refresh token, mode 0600, in $XDG_STATE_HOME/bluearrow/oauth2/.\n"
	"By default it prints a URL to open in a browser on this machine and waits\n"
	"for the provider to redirect it to a port on 127.0.0.1 (authorization code\n"
	"with PKCE); with --device it prints a URL and a code to enter on any device.\n"
	"\n"
	"  -C, --file FILE        the configuration file\n"
	"  -a, --account ACCOUNT  the account (default: the default account)\n"
	"      --device           use the device flow (RFC 8628)\n"
	"      --print            print the refresh token on stdout instead of storing it\n"
	"                         (for oauth2_refresh_token_eval and a password store)\n"
	"      --timeout SECONDS  how long to wait for the authorization (default 300)\n";

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The percent-decoded value of name in query q (up to a space or the end), into out: 1, else 0. */
static int query_param(struct ba_buf *out, const char *q, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = q; p && *p && *p != ' ';) {
		const char *end = p + strcspn(p, "& ");
		if ((size_t)(end - p) > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			for (const char *v = p + n + 1; v < end; v++) {
				if (*v == '%' && v + 2 < end && ba_hex_digit(v[1]) >= 0 && ba_hex_digit(v[2]) >= 0) {
					ba_buf_addch(out, ba_hex_digit(v[1]) << 4 | ba_hex_digit(v[2]));
					v += 2;
				} else {
					ba_buf_addch(out, *v == '+' ? ' ' : *v);
				}
			}
			return !ba_buf_failed(out);
		}
		p = *end == '&' ? end + 1 : NULL;
	}
	return 0;
}

static void reply(int fd, const char *status, const char *text)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf,
	                 "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                 status, strlen(text), text);
	if (n > 0 && (size_t)n < sizeof buf && write(fd, buf, (size_t)n) < 0) {
		/* the browser went away: nothing to do */
	}
}

/*
 * Reads one HTTP request head from fd (bounded: 8 KB, until deadline) and
 * takes code and state from its request line "GET /?code=..&state=..".
 * Returns 1 with the code, 0 for a request without one (favicon...), -1
 * with err set when the provider sent an error.
 */
static int read_redirect(int fd, struct ba_buf *code, const char *state, long long deadline,
                         struct ba_err *err)
{
	char req[8192];
	size_t len = 0;
	while (len < sizeof req - 1) {
		long long left = deadline - now_ms();
		struct pollfd p = { fd, POLLIN, 0 };
		if (left <= 0 || poll(&p, 1, (int)(left > 5000 ? 5000 : left)) <= 0)
			return 0;
		ssize_t n = read(fd, req + len, sizeof req - 1 - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[len] = '\0';
	if (strncmp(req, "GET /", 5) != 0) {
		reply(fd, "405 Method Not Allowed", "GET only\n");
		return 0;
	}
	const char *q = strchr(req + 4, '?');
	const char *sp = strchr(req + 4, ' ');
	if (!q || (sp && q > sp)) {
		reply(fd, "404 Not Found", "not here\n");
		return 0;
	}
	q++;
	struct ba_buf got_state = BA_BUF_INIT, e = BA_BUF_INIT;
	int rc = 0;
	if (!query_param(&got_state, q, "state") || strcmp(ba_buf_str(&got_state), state) != 0) {
		/* not our request (RFC 6749 §10.12): ignore it, keep waiting */
		reply(fd, "400 Bad Request", "bluearrow: this is not the authorization it waits for\n");
	} else if (query_param(&e, q, "error")) {
		reply(fd, "200 OK", "bluearrow: the authorization was refused; see the terminal\n");
		struct ba_buf clean = BA_BUF_INIT;
		ba_log_clean(&clean, e.data ? e.data : "", e.len);
		ba_err_set(err, EX_NOPERM, "the provider refused the authorization: %.100s",
		           ba_buf_str(&clean));
		ba_buf_release(&clean);
		rc = -1;
	} else if (query_param(code, q, "code") && code->len) {
		reply(fd, "200 OK", "bluearrow: authorization received; you can close this window\n");
		rc = 1;
	} else {
		reply(fd, "400 Bad Request", "bluearrow: no code in the redirect\n");
	}
	ba_buf_release(&got_state);
	ba_buf_release(&e);
	return rc;
}

/* The authorization code flow with PKCE over a loopback redirect (RFC 8252 §7.3). */
static int flow_code(struct ba_buf *rt, const struct ba_account *acc,
                     const struct ba_oauth2_opts *o, int timeout_s, struct ba_err *err)
{
	struct ba_buf verifier = BA_BUF_INIT, challenge = BA_BUF_INIT, state = BA_BUF_INIT,
	              dummy = BA_BUF_INIT, url = BA_BUF_INIT, code = BA_BUF_INIT, redirect = BA_BUF_INIT;
	int rc = -1, ls = -1;
	if (ba_oauth2_pkce(&verifier, &challenge, err) < 0 || ba_oauth2_pkce(&state, &dummy, err) < 0)
		goto out;
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0; /* an ephemeral port (RFC 8252 §7.3) */
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 8) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		ba_err_set(err, EX_OSERR, "cannot listen on 127.0.0.1: %s", ba_strerror_t(errno));
		goto out;
	}
	ba_buf_addf(&redirect, "http://127.0.0.1:%u/", (unsigned)ntohs(sa.sin_port));
	if (ba_oauth2_authorize_url(&url, acc, ba_buf_str(&redirect), ba_buf_str(&state),
	                            ba_buf_str(&challenge), err) < 0)
		goto out;
	fprintf(stderr, "Open this URL in a browser on this machine and authorize the account:\n\n"
	                "  %s\n\nWaiting up to %d s for the redirect to %s ...\n",
	        ba_buf_str(&url), timeout_s, ba_buf_str(&redirect));
	long long deadline = now_ms() + (long long)timeout_s * 1000;
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = { ls, POLLIN, 0 };
		if (left <= 0 || poll(&p, 1, (int)(left > 60000 ? 60000 : left)) < 0) {
			ba_err_set(err, EX_TEMPFAIL, "no authorization within %d s", timeout_s);
			goto out;
		}
		if (!(p.revents & POLLIN))
			continue;
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		long long conn_deadline = now_ms() + 10000;
		int r = read_redirect(fd, &code, ba_buf_str(&state),
		                      conn_deadline < deadline ? conn_deadline : deadline, err);
		close(fd);
		if (r < 0)
			goto out;
		if (r > 0)
			break;
	}
	rc = ba_oauth2_exchange_code(rt, acc, ba_buf_str(&code), ba_buf_str(&redirect),
	                             ba_buf_str(&verifier), o, err);
out:
	if (ls >= 0)
		close(ls);
	ba_buf_release_secret(&verifier);
	ba_buf_release(&challenge);
	ba_buf_release(&state);
	ba_buf_release(&dummy);
	ba_buf_release(&url);
	ba_buf_release_secret(&code);
	ba_buf_release(&redirect);
	return rc;
}

/* The device flow (RFC 8628 §3.3-3.5): show the code, poll at the interval. */
static int flow_device(struct ba_buf *rt, const struct ba_account *acc,
                       const struct ba_oauth2_opts *o, int timeout_s, struct ba_err *err)
{
	struct ba_oauth2_device d;
	if (ba_oauth2_device_start(&d, acc, o, err) < 0)
		return -1;
	fprintf(stderr, "Open %s on any device and enter the code\n\n  %s\n\n",
	        d.verification_uri, d.user_code);
	if (d.verification_uri_complete)
		fprintf(stderr, "(or open %s)\n", d.verification_uri_complete);
	long wait_s = d.expires_in > 0 && d.expires_in < timeout_s ? d.expires_in : timeout_s;
	fprintf(stderr, "Waiting up to %ld s ...\n", wait_s);
	long long deadline = now_ms() + (long long)wait_s * 1000;
	int rc;
	for (;;) {
		if (now_ms() + d.interval * 1000 > deadline) {
			rc = ba_err_set(err, EX_TEMPFAIL, "no authorization within %ld s", wait_s);
			break;
		}
		sleep((unsigned)d.interval);
		rc = ba_oauth2_device_poll(rt, &d, acc, o, err);
		if (rc <= 0)
			break;
	}
	ba_oauth2_device_release(&d);
	return rc < 0 ? -1 : 0;
}

static int authorize(int argc, char **argv)
{
	const char *file = NULL, *account = NULL, *timeout_arg = NULL;
	int device = 0, print = 0;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **dst;
		if (strcmp(s, "--device") == 0) {
			device = 1;
			continue;
		}
		if (strcmp(s, "--print") == 0) {
			print = 1;
			continue;
		}
		dst = cli_file_or_account(s, &file, &account);
		if (!dst && strcmp(s, "--timeout") == 0)
			dst = &timeout_arg;
		if (!dst)
			return cli_usage_error("oauth2", "unknown argument '%s'", s);
		if (i + 1 >= argc)
			return cli_usage_error("oauth2", "option '%s' needs a value", s);
		*dst = argv[++i];
	}
	int timeout_s = 300;
	if (timeout_arg) {
		char *end;
		long t = strtol(timeout_arg, &end, 10);
		if (*end || t <= 0 || t > 86400)
			return cli_usage_error("oauth2", "invalid value '%s' for --timeout", timeout_arg);
		timeout_s = (int)t;
	}
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	const struct ba_account *acc = NULL;
	if (ba_submit_config(&cfg, file, &err) < 0 ||
	    !(acc = ba_submit_account(cfg, account, NULL, NULL, &err))) {
		ba_config_free(cfg);
		return cli_fail(&err);
	}
	struct ba_buf rt = BA_BUF_INIT;
	struct ba_oauth2_opts o = { NULL, acc->timeout > 0 ? acc->timeout * 1000 : 0,
		                    print ? BA_OAUTH2_NO_STORE : 0 };
	int rc;
	if (!ba_oauth2_enabled(acc))
		rc = ba_err_set(&err, EX_CONFIG,
		                "account '%s': OAuth2 needs auth xoauth2 or oauthbearer and "
		                "oauth2_client_id", acc->name);
	else
		rc = device ? flow_device(&rt, acc, &o, timeout_s, &err)
		            : flow_code(&rt, acc, &o, timeout_s, &err);
	/* with --print the token lives in the user's store: a stored one would take precedence */
	if (rc == 0 && print)
		rc = ba_oauth2_store_refresh(acc, NULL, &err);
	int code = 0;
	if (rc < 0) {
		code = cli_fail(&err);
	} else if (print) {
		printf("%s\n", ba_buf_str(&rt));
		fflush(stdout);
	} else {
		fprintf(stderr, "Authorized: the refresh token of account '%s' is stored.\n",
		        acc->alias_of ? acc->alias_of : acc->name);
	}
	ba_buf_release_secret(&rt);
	ba_config_free(cfg);
	return code;
}

int cli_cmd_oauth2(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("oauth2", "a subcommand is needed: authorize");
	if (strcmp(argv[1], "authorize") == 0)
		return authorize(argc - 1, argv + 1);
	return cli_usage_error("oauth2", "unknown subcommand '%s'", argv[1]);
}

void cli_print_oauth2_state(const struct ba_account *acc)
{
	struct ba_oauth2_state st;
	struct ba_err err = BA_ERR_INIT;
	const char *name = acc->alias_of ? acc->alias_of : acc->name;
	if (ba_oauth2_state(&st, acc, &err) < 0) {
		printf("oauth2       %s\n", err.text);
		return;
	}
	long long left = st.expires_at - (long long)time(NULL);
	if (!st.cached)
		printf("oauth2       no access token cached (one is fetched when needed)\n");
	else if (left > BA_OAUTH2_EXPIRY_MARGIN)
		printf("oauth2       access token cached, valid for %lld min more\n", left / 60);
	else
		printf("oauth2       access token cached but expired (a new one is fetched)\n");
	if (st.refresh_stored)
		printf("oauth2       refresh token stored by bluearrow\n");
	else if (st.refresh_configured)
		printf("oauth2       refresh token from the configuration\n");
	else
		printf("oauth2       no refresh token: run 'bluearrow oauth2 authorize -a %s'\n", name);
}
