/* cli/check.c - bluearrow check: connect, TLS, capabilities and an AUTH test; no message is sent
 *
 * When something fails, check prints what to change as sendmail and send do
 * (ba_route_hint(): the TLS mode against the port, a refused certificate),
 * and the AUTH mechanisms of both sides, which it watches in the dialogue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/log.h"
#include "bluearrow/net.h"
#include "bluearrow/oauth2.h"
#include "bluearrow/route.h"
#include "bluearrow/smtp.h"
#include "bluearrow/tls.h"
#include "bluearrow/submit.h"
#include "cli.h"
#include "output.h"

const char cli_check_usage[] =
	"usage: bluearrow check [-C FILE] [-a ACCOUNT] [-v]\n"
	"\n"
	"Tests an account without sending a message: connects, shows the TLS version,\n"
	"the server certificate (subject, issuer, validity, SHA-256 fingerprint), the\n"
	"EHLO capabilities and authenticates.  On failure it says what to change in the\n"
	"configuration, as sendmail and send do (TLS mode against the port; for a\n"
	"refused certificate its names and tls_host_override, tls_trust_file, the\n"
	"tls_fingerprint line to pin it), and the AUTH mechanisms of both sides.\n"
	"\n"
	"  -C, --file FILE        the configuration file\n"
	"  -a, --account ACCOUNT  the account (default: the default account)\n"
	"  -v, --verbose          show the SMTP dialogue on stderr\n";

/* Mechanisms the engine implements (sasl.h), strongest first. */
static const char our_mechs[] = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 "
                                "CRAM-MD5 PLAIN LOGIN XOAUTH2 OAUTHBEARER EXTERNAL";

struct check_ctx {
	struct ba_buf server_auth; /* AUTH mechanisms of the last EHLO reply */
	int verbose;
};

/* Watches the dialogue for the EHLO reply's AUTH line (the engine keeps only a bit). */
static void check_log(void *ctx, enum ba_log_level level, const char *msg)
{
	struct check_ctx *c = ctx;
	if (c->verbose)
		fprintf(stderr, "%s\n", msg);
	if (level != BA_LOG_PROTO)
		return;
	if (strncmp(msg, "--> EHLO", 8) == 0 || strncmp(msg, "--> LHLO", 8) == 0)
		ba_buf_reset(&c->server_auth);
	else if ((strncmp(msg, "<-- 250-AUTH", 12) == 0 || strncmp(msg, "<-- 250 AUTH", 12) == 0) &&
	         (msg[12] == ' ' || msg[12] == '='))
		ba_buf_addstr(&c->server_auth, msg + 13);
}

static void print_cert(const struct ba_tls_info *i)
{
	if (i->version[0])
		printf("tls          %s, %s\n", i->version, i->cipher);
	if (i->subject[0]) {
		printf("certificate  %s\n", i->subject);
		printf("  issuer     %s\n", i->issuer);
		printf("  valid      %s to %s\n", i->not_before, i->not_after);
		printf("  sha256     %s\n", i->sha256);
		printf("  verified   %s\n", i->verified ? "yes" : "NO");
	}
}

static void print_caps(const ba_session *s)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ BA_CAP_PIPELINING, "PIPELINING" }, { BA_CAP_8BITMIME, "8BITMIME" },
		{ BA_CAP_SMTPUTF8, "SMTPUTF8" },     { BA_CAP_DSN, "DSN" },
		{ BA_CAP_CHUNKING, "CHUNKING" },     { BA_CAP_BINARYMIME, "BINARYMIME" },
		{ BA_CAP_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES" }, { BA_CAP_STARTTLS, "STARTTLS" },
		{ BA_CAP_AUTH, "AUTH" },
	};
	unsigned caps = ba_session_caps(s);
	printf("capabilities %s", caps & BA_CAP_ESMTP ? "ESMTP" : "SMTP (HELO only)");
	if (caps & BA_CAP_SIZE)
		printf(" SIZE=%llu", (unsigned long long)ba_session_size_max(s));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (caps & names[i].bit)
			printf(" %s", names[i].name);
	printf("\n");
}

/* check never waits long: at most 10 s per step, less if the account says so */
#define CHECK_TIMEOUT_MS 10000

/*
 * Opens the account's route exactly as a send does (ba_route_open(): the
 * same parameters, TLS, channel binding and AUTH), then shows what it saw.
 * On failure it prints the hint every front end prints (ba_route_hint()).
 */
static int run_check(const struct ba_account *acc, int verbose)
{
	struct ba_err err = BA_ERR_INIT;
	struct check_ctx c;
	memset(&c, 0, sizeof(c));
	c.verbose = verbose;
	struct ba_log log = { check_log, &c, BA_LOG_PROTO };
	struct ba_route_report report;
	memset(&report, 0, sizeof(report));
	struct ba_buf hint = BA_BUF_INIT;
	ba_route *r = NULL;
	int code = 0;

	const char *mode = !acc->tls ? "no TLS" : acc->tls_starttls ? "STARTTLS" : "implicit TLS";
	printf("account      %s (%s:%u)\n", acc->name, acc->file, acc->line);
	if (ba_config_delivers_mx(acc)) {
		/* no one server: each recipient domain has its own */
		printf("server       none: direct delivery to the MX of each recipient domain\n"
		       "hint         'bluearrow mx DOMAIN --probe' shows and tests the route to one\n");
		goto out;
	}
	if (acc->socket)
		printf("server       %s (unix socket), %s\n", acc->socket, mode);
	else
		printf("server       %s port %u, %s\n", acc->host, acc->port, mode);
	if (ba_oauth2_enabled(acc))
		cli_print_oauth2_state(acc);
	struct ba_route_opts ro;
	memset(&ro, 0, sizeof(ro));
	ro.log = &log;
	ro.timeout_ms = CHECK_TIMEOUT_MS;
	ro.report = &report;
	if (ba_route_open(&r, acc, &ro, &err) < 0) {
		print_cert(&report.tls);
		printf("error        %s\n", err.text);
		ba_route_hint(&hint, acc, &err, &report);
		cli_print_hint(stdout, "hint         ", ba_buf_str(&hint));
		if (err.code == EX_NOPERM)
			printf("hint         mechanisms: server offers %s; bluearrow has %s%s%s\n",
			       c.server_auth.len ? ba_buf_str(&c.server_auth) : "none (no AUTH in EHLO)",
			       our_mechs, acc->auth_method ? "; the account asks for " : "",
			       acc->auth_method ? acc->auth_method : "");
		code = err.code ? err.code : EX_UNAVAILABLE;
		goto out;
	}
	ba_session *s = ba_route_session(r);
	print_cert(&report.tls);
	print_caps(s);
	if (c.server_auth.len)
		printf("auth offered %s\n", ba_buf_str(&c.server_auth));
	if (acc->auth)
		printf("auth         ok: %s with %s\n", acc->user ? acc->user : "(certificate)",
		       ba_session_auth_mech(s));
	else
		printf("auth         not configured (auth off)\n");
	printf("result       ok, no message sent\n");
out:
	ba_route_free(r);
	ba_buf_release(&hint);
	ba_buf_release(&c.server_auth);
	fflush(stdout);
	return code;
}

int cli_cmd_check(int argc, char **argv)
{
	const char *file = NULL, *account = NULL;
	int verbose = 0;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **dst;
		if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
			verbose = 1;
			continue;
		}
		dst = cli_file_or_account(s, &file, &account);
		if (!dst)
			return cli_usage_error("check", "unknown argument '%s'", s);
		if (i + 1 >= argc)
			return cli_usage_error("check", "option '%s' needs a value", s);
		*dst = argv[++i];
	}
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	const struct ba_account *acc = NULL;
	if (ba_submit_config(&cfg, file, &err) < 0 ||
	    !(acc = ba_submit_account(cfg, account, NULL, NULL, &err))) {
		ba_config_free(cfg);
		return cli_fail(&err);
	}
	int code = run_check(acc, verbose);
	ba_config_free(cfg);
	return code;
}
