/* cli/send.c - bluearrow send: compose's options + submission through an account */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/msg.h"
#include "bluearrow/msg_read.h"
#include "cli.h"
#include "bluearrow/submit.h"
#include "output.h"

const char cli_send_usage[] =
	"usage: bluearrow send [-C FILE] [-a ACCOUNT] [-v] --from ADDR --to ADDR [compose options]\n"
	"\n"
	"Builds a message exactly as 'bluearrow compose' does (same options: --to --cc\n"
	"--bcc --subject --body --html --attach --header ...; see 'bluearrow help compose')\n"
	"and submits it through an account.  Silent on success.\n"
	"\n"
	"  -C, --file FILE        the configuration file (msmtp syntax)\n"
	"  -a, --account ACCOUNT  the account (default: the one whose from matches --from,\n"
	"                         else the default account)\n"
	"  -v, --verbose          show the SMTP dialogue on stderr (secrets redacted)\n"
	"  --host=H --port=N --tls[=on|off] --tls-starttls[=on|off] --tls-trust-file=F\n"
	"  --tls-certcheck[=on|off] --auth[=on|off|METHOD] --user=U --passwordeval=CMD\n"
	"  --domain=D --timeout=S --protocol=smtp|lmtp --logfile=F ...\n"
	"                         any key of the file as an option (msmtp's): overrides\n"
	"                         the account; with no file at all, --host makes the account\n"
	"\n"
	"The envelope sender is the --from address (unless the account sets\n"
	"allow_from_override off); the recipients are --to, --cc and --bcc.  Bcc\n"
	"recipients are never written into the message.  Exit status: sysexits(3),\n"
	"as bluearrow-sendmail(8).\n";

/* Takes -C/--file, -a/--account and -v/--verbose out of argv; the rest goes to compose. */
static int split_args(int argc, char **argv, char **rest, int *nrest, const char **file,
                      const char **account, int *verbose, struct cli_kv *keys)
{
	*nrest = 0;
	rest[(*nrest)++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **dst = NULL;
		const char *val = NULL;
		if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
			*verbose = 1;
			continue;
		}
		if (strcmp(s, "-C") == 0 || strcmp(s, "--file") == 0)
			dst = file;
		else if (strcmp(s, "-a") == 0 || strcmp(s, "--account") == 0)
			dst = account;
		else if (strncmp(s, "--file=", 7) == 0)
			dst = file, val = s + 7;
		else if (strncmp(s, "--account=", 10) == 0)
			dst = account, val = s + 10;
		if (!dst && strncmp(s, "--", 2) == 0 && s[2]) {
			int rc = cli_account_option(keys, "send", &i, argc, argv);
			if (rc >= 0) {
				if (rc)
					return rc;
				continue;
			}
		}
		if (!dst) {
			rest[(*nrest)++] = argv[i];
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				return cli_usage_error("send", "option '%s' needs a value", s);
			val = argv[++i];
		}
		*dst = val;
	}
	rest[*nrest] = NULL;
	return 0;
}

int cli_cmd_send(int argc, char **argv)
{
	const char *file = NULL, *account = NULL;
	int verbose = 0;
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	int nrest, code;
	if (!rest)
		return EX_OSERR;
	struct cli_kv keys;
	code = cli_kv_init(&keys, argc);
	if (!code)
		code = split_args(argc, argv, rest, &nrest, &file, &account, &verbose, &keys);
	if (code) {
		free(rest);
		cli_kv_release(&keys);
		return code;
	}
	ba_msg *m = NULL;
	struct ba_msg_opts o;
	code = cli_compose_build(&m, &o, nrest, rest);
	free(rest);
	if (code) {
		cli_kv_release(&keys);
		return code;
	}

	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	const struct ba_account *acc = NULL;
	struct ba_buf env_from = BA_BUF_INIT;
	struct ba_submit_result res;
	ba_spool *spool = NULL;
	char **rcpt = NULL;
	size_t nrcpt = 0;
	memset(&res, 0, sizeof(res));
	const char *from = ba_msg_from(m);
	if (ba_submit_config_kv(&cfg, file, keys.kv, keys.n, &err) < 0 ||
	    !(acc = ba_submit_account(cfg, account, from, NULL, &err)) ||
	    ba_submit_envelope_from(&env_from, acc, from, &err) < 0 ||
	    ba_spool_new(&spool, 0, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	/* the message is written once into the spool: a retry or a second host re-reads it */
	if (ba_msg_write(m, ba_spool_writer(spool), &o, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	size_t nmsg = ba_msg_rcpt_count(m);
	const char **mr = calloc(nmsg ? nmsg : 1, sizeof(*mr));
	if (!mr) {
		code = EX_OSERR;
		goto out;
	}
	for (size_t i = 0; i < nmsg; i++)
		mr[i] = ba_msg_rcpt(m, i);
	int rc = ba_submit_recipients(&rcpt, &nrcpt, acc, NULL, 0, mr, nmsg, &err);
	free(mr);
	if (rc < 0) {
		code = cli_fail(&err);
		goto out;
	}
	struct ba_log log;
	cli_log_stderr_init(&log, verbose);
	struct ba_submit sub;
	memset(&sub, 0, sizeof(sub));
	sub.acc = acc;
	sub.from = ba_buf_str(&env_from);
	sub.rcpt = (const char *const *)rcpt;
	sub.nrcpt = nrcpt;
	sub.spool = spool;
	sub.log = &log;
	rc = ba_submit_send(&res, &sub, &err);
	code = cli_report(&sub, &res, rc, &err);
out:
	ba_submit_result_release(&res);
	ba_submit_recipients_free(rcpt, nrcpt);
	ba_spool_free(spool);
	ba_msg_free(m);
	ba_buf_release(&env_from);
	ba_config_free(cfg);
	cli_kv_release(&keys);
	return code;
}
