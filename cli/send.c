/* cli/send.c - bluearrow send: compose's options + submission through an account */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/msg.h"
#include "bluearrow/msg_read.h"
#include "cli.h"
#include "submit.h"

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
	"\n"
	"The envelope sender is the --from address (unless the account sets\n"
	"allow_from_override off); the recipients are --to, --cc and --bcc.  Bcc\n"
	"recipients are never written into the message.  Exit status: sysexits(3),\n"
	"as bluearrow-sendmail(8).\n";

/* Takes -C/--file, -a/--account and -v/--verbose out of argv; the rest goes to compose. */
static int split_args(int argc, char **argv, char **rest, int *nrest, const char **file,
                      const char **account, int *verbose)
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
	code = split_args(argc, argv, rest, &nrest, &file, &account, &verbose);
	if (code) {
		free(rest);
		return code;
	}
	ba_msg *m = NULL;
	struct ba_msg_opts o;
	code = cli_compose_build(&m, &o, nrest, rest);
	free(rest);
	if (code)
		return code;

	struct ba_err err = BA_ERR_INIT;
	struct cli_acct acct;
	ba_spool *spool = NULL;
	char **rcpt = NULL;
	size_t nrcpt = ba_msg_rcpt_count(m);
	memset(&acct, 0, sizeof(acct));
	const char *from = ba_msg_from(m);
	if (cli_acct_open(&acct, file, account, from, &err) < 0 ||
	    cli_acct_envelope_from(&acct, from, &err) < 0 ||
	    ba_spool_new(&spool, 0, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	/* the message is written once into the spool: a retry or a second host re-reads it */
	if (ba_msg_write(m, ba_spool_writer(spool), &o, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	rcpt = calloc(nrcpt ? nrcpt : 1, sizeof(*rcpt));
	if (!rcpt) {
		code = EX_OSERR;
		goto out;
	}
	for (size_t i = 0; i < nrcpt; i++)
		rcpt[i] = strdup(ba_msg_rcpt(m, i));
	for (size_t i = 0; i < nrcpt; i++)
		if (!rcpt[i]) {
			ba_err_set(&err, EX_OSERR, "out of memory");
			code = cli_fail(&err);
			goto out;
		}
	if (cli_expand_aliases(&acct, &rcpt, &nrcpt, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	struct cli_delivery d;
	memset(&d, 0, sizeof(d));
	d.rcpt = rcpt;
	d.nrcpt = nrcpt;
	d.spool = spool;
	d.verbose = verbose;
	code = cli_deliver(&acct, &d);
out:
	for (size_t i = 0; rcpt && i < nrcpt; i++)
		free(rcpt[i]);
	free(rcpt);
	ba_spool_free(spool);
	ba_msg_free(m);
	cli_acct_release(&acct);
	return code;
}
