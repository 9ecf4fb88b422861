/* cli/sendmail.c - the sendmail personality: `bluearrow sendmail`, `sendmail`, `bluearrow-sendmail`
 *
 * Option syntax is sendmail's (getopt-like: "-ti" groups flags, a value is
 * attached "-fADDR" or the next argument "-f ADDR"), plus the msmtp long
 * options people use in scripts.  Every flag real callers pass is either
 * implemented or a documented no-op (bluearrow-sendmail(8)); flags that
 * would change files or start daemons (-X, -bd, -bs, ...) are refused.
 * An argument starting with '-' before "--" is always an option, never a
 * recipient.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bluearrow/log.h"
#include "bluearrow/msg_read.h"
#include "bluearrow/smtp.h"
#include "cli.h"
#include "bluearrow/submit.h"
#include "deliver.h"
#include "outbox_cmd.h"
#include "output.h"

const char cli_sendmail_usage[] =
	"usage: bluearrow sendmail [options] [--] [recipient ...]\n"
	"       (also installed as 'sendmail' and 'bluearrow-sendmail')\n"
	"\n"
	"Reads a message on standard input and submits it through an account of the\n"
	"msmtp-syntax configuration.  Silent on success.\n"
	"\n"
	"  -t                  take recipients from To, Cc, Bcc (Resent-* if present) too\n"
	"  -i, -oi             a line with a lone '.' does not end the input\n"
	"  -f ADDR, -r ADDR    envelope sender ('<>' = null sender)\n"
	"  --read-envelope-from  take the envelope sender from the From field\n"
	"  -F NAME             full name for a generated From field\n"
	"  -C FILE             configuration file (msmtp syntax)\n"
	"  --host=H --port=N --tls[=on|off] --tls-starttls[=on|off] --tls-trust-file=F\n"
	"  --tls-certcheck[=on|off] --auth[=on|off|METHOD] --user=U --passwordeval=CMD\n"
	"  --domain=D --timeout=S --protocol=smtp|lmtp --logfile=F ...\n"
	"                      any key of the file as an option (msmtp's): overrides the\n"
	"                      account; with no file at all, --host makes the account\n"
	"  -a ACCOUNT          account to use (default: by -f, else by the From field,\n"
	"                      else the default account)\n"
	"  -N DSN              never, or success,failure,delay (RFC 3461 NOTIFY)\n"
	"  -R full|hdrs        what a DSN returns\n"
	"  -V ENVID            DSN envelope identifier\n"
	"  -v, -d[X]           show the SMTP dialogue on stderr (secrets redacted)\n"
	"  --pretend, --dry-run  show the account, server, envelope and header that would\n"
	"                      be sent, on stdout; connect to nothing, ask no password\n"
	"  --progress          a progress bar on stderr (default: on a terminal, over 4 MB)\n"
	"  --no-progress       never show one\n"
	"  -bm                 deliver (the default);  -bp  list the outbox (also 'mailq')\n"
	"  -q                  send every queued message now;  -qI ID  that one only\n"
	"  -odi                deliver now (the default);  -odq  queue only (no attempt)\n"
	"  -odb                queue, acknowledge, and deliver in the background\n"
	"\n"
	"Accepted and ignored: -oXXX (e.g. -oem), -O OPTION=VALUE, -B TYPE, -eX,\n"
	"-h N, -L TAG, -p PROTO, -n, -m, -U, -G, -Ac, -Am.  Refused: -X, -bd, -bs\n"
	"and the other daemon or database modes.  With auth on and no password configured,\n"
	"the password is asked on the terminal (never without one).  Exit status:\n"
	"sysexits(3); see bluearrow-sendmail(8).\n";

enum sm_mode { SM_DELIVER, SM_LIST_QUEUE, SM_FLUSH_QUEUE, SM_HELP };

struct sm_args {
	int t, i, verbose, read_env_from;
	int dry_run, progress; /* --pretend; --progress 1, --no-progress 0, else -1 */
	enum sm_mode mode;
	const char *from, *name, *config, *account, *notify, *ret, *envid;
	unsigned dsn_notify;
	int dsn_ret;
	long repeat;
	unsigned smtp_flags;
	char **rcpt; /* pointers into argv */
	size_t nrcpt;
	struct cli_kv keys; /* account keys as options: --host=H ... */
	int delivery;       /* -odi 'i', -odb 'b', -odq/-odd 'q'; 0 = the account's `queue` */
	const char *queue_id; /* -qI ID */
};

/* the command name for messages: NULL when running as sendmail / bluearrow-sendmail */
#define SM (strcmp(cli_progname, "bluearrow") == 0 ? "sendmail" : NULL)

static int take_value(const char **out, const char *rest, int *i, int argc, char **argv, char opt)
{
	if (*rest) {
		*out = rest;
		return 0;
	}
	if (*i + 1 >= argc)
		return cli_usage_error(SM, "option -%c needs a value", opt);
	*out = argv[++*i];
	return 0;
}

/* Long options (msmtp's names for the same things). */
static int long_option(struct sm_args *a, const char *s, int *i, int argc, char **argv)
{
	static const struct {
		const char *name;
		int kind; /* 0 = flag, 1 = value */
	} longs[] = {
		{ "read-envelope-from", 0 }, { "read-recipients", 0 }, { "from", 1 },
		{ "file", 1 }, { "account", 1 }, { "dsn-notify", 1 }, { "dsn-return", 1 },
		/* hidden, for bench/submit: N copies over one session; engine switches */
		{ "ba-repeat", 1 }, { "ba-no-pipelining", 0 }, { "ba-no-chunking", 0 },
		{ "help", 0 },
		{ "pretend", 0 }, { "dry-run", 0 }, { "progress", 0 }, { "no-progress", 0 },
	};
	const char *eq = strchr(s, '=');
	size_t n = eq ? (size_t)(eq - s) : strlen(s);
	for (size_t k = 0; k < sizeof(longs) / sizeof(longs[0]); k++) {
		if (strlen(longs[k].name) != n || strncmp(s, longs[k].name, n) != 0)
			continue;
		const char *val = NULL;
		if (longs[k].kind == 1) {
			if (eq)
				val = eq + 1;
			else if (*i + 1 < argc)
				val = argv[++*i];
			else
				return cli_usage_error(SM, "option --%s needs a value", longs[k].name);
		} else if (eq) {
			return cli_usage_error(SM, "option --%s takes no value", longs[k].name);
		}
		switch (k) {
		case 0: a->read_env_from = 1; break;
		case 1: a->t = 1; break;
		case 2: a->from = val; break;
		case 3: a->config = val; break;
		case 4: a->account = val; break;
		case 5: a->notify = val; break;
		case 6: a->ret = val; break;
		case 7: a->repeat = strtol(val, NULL, 10); break;
		case 8: a->smtp_flags |= BA_SMTP_NO_PIPELINING; break;
		case 9: a->smtp_flags |= BA_SMTP_NO_CHUNKING; break;
		case 10: a->mode = SM_HELP; break;
		case 11: case 12: a->dry_run = 1; break;
		default: a->progress = k == 13; break;
		}
		return 0;
	}
	int rc = cli_account_option(&a->keys, SM, i, argc, argv);
	if (rc >= 0)
		return rc;
	return cli_usage_error(SM, "unknown option '--%s'", s);
}

/* -bX: only -bm (deliver) and -bp (list the queue) exist here. */
static int mode_option(struct sm_args *a, const char *rest)
{
	if (strcmp(rest, "m") == 0) {
		a->mode = SM_DELIVER;
		return 0;
	}
	if (strcmp(rest, "p") == 0) {
		a->mode = SM_LIST_QUEUE;
		return 0;
	}
	return cli_usage_error(SM, "-b%s is not supported: bluearrow is no daemon and keeps no "
	                           "alias database (only -bm and -bp)", rest);
}

/* One argument starting with '-': a group of flags, possibly ending in one with a value. */
static int short_options(struct sm_args *a, const char *s, int *i, int argc, char **argv)
{
	const char *ignored;
	for (const char *c = s + 1; *c; c++) {
		const char *rest = c + 1;
		switch (*c) {
		case 't': a->t = 1; continue;
		case 'i': a->i = 1; continue;
		case 'v': a->verbose = 1; continue;
		case 'n': case 'm': case 'U': case 'G': continue; /* no aliasing, me too, initial submission, gateway */
		case 'f': case 'r': return take_value(&a->from, rest, i, argc, argv, *c);
		case 'F': return take_value(&a->name, rest, i, argc, argv, *c);
		case 'C': return take_value(&a->config, rest, i, argc, argv, *c);
		case 'a': return take_value(&a->account, rest, i, argc, argv, *c);
		case 'N': return take_value(&a->notify, rest, i, argc, argv, *c);
		case 'R': return take_value(&a->ret, rest, i, argc, argv, *c);
		case 'V': return take_value(&a->envid, rest, i, argc, argv, *c);
		case 'B': case 'h': case 'L': case 'p': /* body type, hop count, log tag, protocol */
			return take_value(&ignored, rest, i, argc, argv, *c);
		case 'o':
			if (strcmp(rest, "i") == 0)
				a->i = 1;
			else if (rest[0] == 'd' && rest[1] && strchr("ibqd", rest[1]) && !rest[2])
				a->delivery = rest[1] == 'd' ? 'q' : rest[1]; /* -od: delivery mode */
			else if (!*rest) /* "-o" alone: the option is the next argument */
				return take_value(&ignored, rest, i, argc, argv, *c);
			return 0; /* -oem -odi -odb -oQ... : sendmail.cf options, meaningless here */
		case 'd': /* debug: -d, -dX, -d0.1 (sendmail's categories): the dialogue, as -v */
			a->verbose = 1;
			return 0;
		case 'e': case 'A': return 0; /* error mode, submission/mta */
		case 'b': return mode_option(a, rest);
		case 'q':
			/* -q flushes once; -q30m would start a queue-runner daemon */
			if (*rest >= '0' && *rest <= '9')
				return cli_usage_error(SM, "-q%s: bluearrow runs no queue daemon; use -q", rest);
			a->mode = SM_FLUSH_QUEUE;
			if (*rest == 'I') /* -qI ID: that entry only */
				return take_value(&a->queue_id, rest + 1, i, argc, argv, *c);
			if (*rest)
				return cli_usage_error(SM, "-q%s is not supported (only -q and -qI ID)", rest);
			return 0;
		case 'X':
			return cli_usage_error(SM, "-X (traffic log file) is refused: it writes to an "
			                           "arbitrary file (CVE-2016-10033); use -v");
		case 'O': /* -O Option=value, -OOption=value: sendmail.cf options, as Exim ignores them */
			return take_value(&ignored, rest, i, argc, argv, *c);
		default:
			return cli_usage_error(SM, "unknown option '-%c' in '%s'", *c, s);
		}
	}
	return 0;
}

/* -N and -R values (RFC 3461 §4.1, §4.3). */
static int parse_dsn(struct sm_args *a)
{
	if (a->notify && ba_submit_parse_notify(a->notify, &a->dsn_notify) < 0)
		return cli_usage_error(SM, "-N: expected 'never' or a list of success,failure,delay, "
		                           "not '%s'", a->notify);
	if (a->ret && ba_submit_parse_return(a->ret, &a->dsn_ret) < 0)
		return cli_usage_error(SM, "-R: expected 'full' or 'hdrs', not '%s'", a->ret);
	return 0;
}

static int parse_args(struct sm_args *a, int argc, char **argv)
{
	a->rcpt = calloc((size_t)argc + 1, sizeof(*a->rcpt));
	if (!a->rcpt || cli_kv_init(&a->keys, argc))
		return EX_OSERR;
	int dashdash = 0;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		int rc = 0;
		if (dashdash || s[0] != '-' || s[1] == '\0') {
			if (s[0] == '-' && s[1] == '\0' && !dashdash)
				continue; /* a lone "-": old sendmail's "read stdin", ignored */
			a->rcpt[a->nrcpt++] = argv[i];
			continue;
		}
		if (strcmp(s, "--") == 0) {
			dashdash = 1;
			continue;
		}
		if (s[1] == '-')
			rc = long_option(a, s + 2, &i, argc, argv);
		else
			rc = short_options(a, s, &i, argc, argv);
		if (rc)
			return rc;
	}
	/* values that go into header fields or SMTP commands: no controls (header/command injection) */
	const struct {
		const char *opt, *val;
	} vals[] = { { "-f", a->from }, { "-F", a->name }, { "-N", a->notify }, { "-R", a->ret },
	             { "-V", a->envid }, { "-a", a->account }, { "-C", a->config } };
	for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++)
		if (vals[k].val && cli_check_value(SM, vals[k].opt, vals[k].val))
			return EX_USAGE;
	for (size_t k = 0; k < a->nrcpt; k++)
		if (cli_check_value(SM, "recipient", a->rcpt[k]))
			return EX_USAGE;
	return 0;
}

/* "-f <>", "-f ''" and "-f <a@b>" forms; anything else with brackets or blanks is refused. */
static int normalise_from(const char **from, char **owned)
{
	const char *f = *from;
	size_t n = strlen(f);
	if (n >= 2 && f[0] == '<' && f[n - 1] == '>') {
		*owned = strndup(f + 1, n - 2);
		if (!*owned)
			return EX_OSERR;
		*from = f = *owned;
	}
	for (const char *c = f; *c; c++)
		if (*c == '<' || *c == '>' || *c == ' ' || *c == '\t' || *c == ',')
			return cli_usage_error(SM, "-f: invalid address '%s'", f);
	return 0;
}

/* Reads the message on standard input and submits it (deliver.c, shared with `send FILE`). */
static int deliver(struct sm_args *a)
{
	struct cli_message m;
	memset(&m, 0, sizeof(m));
	m.cmd = SM;
	m.config = a->config;
	m.kv = a->keys.kv;
	m.nkv = a->keys.n;
	m.account = a->account;
	m.from = a->from;
	m.name = a->name;
	m.t = a->t;
	m.i = a->i;
	m.read_env_from = a->read_env_from;
	m.rcpt = (const char *const *)a->rcpt;
	m.nrcpt = a->nrcpt;
	m.dsn_notify = a->dsn_notify;
	m.dsn_ret = a->dsn_ret;
	m.envid = a->envid;
	m.repeat = a->repeat;
	m.smtp_flags = a->smtp_flags;
	m.in_fd = 0;
	m.in_name = "standard input";
	m.delivery = a->delivery;
	struct cli_send_opts so = { a->verbose, a->dry_run, a->progress, 0 };
	return cli_deliver_message(&m, &so);
}

int cli_cmd_sendmail(int argc, char **argv)
{
	struct sm_args a;
	memset(&a, 0, sizeof(a));
	a.progress = -1;
	char *owned_from = NULL;
	int code = parse_args(&a, argc, argv);
	if (code == 0)
		code = parse_dsn(&a);
	if (code == 0 && a.from)
		code = normalise_from(&a.from, &owned_from);
	if (code == 0 && a.envid) {
		struct ba_err err = BA_ERR_INIT;
		if (ba_submit_check_envid(a.envid, &err) < 0)
			code = cli_usage_error(SM, "-V: %s", err.text);
	}
	if (code == 0) {
		switch (a.mode) {
		case SM_LIST_QUEUE:
			code = cli_outbox_list(a.config, 0, 1);
			break;
		case SM_FLUSH_QUEUE: {
			signal(SIGPIPE, SIG_IGN);
			struct cli_flush f;
			memset(&f, 0, sizeof(f));
			f.config = a.config;
			f.account = a.account;
			f.ids = a.queue_id ? &a.queue_id : NULL;
			f.nids = a.queue_id ? 1 : 0;
			/* due entries only: a cron job running -q keeps the back-off */
			f.verbose = a.verbose;
			code = cli_outbox_flush(&f);
			break;
		}
		case SM_HELP:
			fputs(cli_sendmail_usage, stdout);
			break;
		case SM_DELIVER:
			signal(SIGPIPE, SIG_IGN); /* a server that closes shows as EPIPE, not a silent death */
			code = deliver(&a);
			break;
		}
	}
	free(owned_from);
	free(a.rcpt);
	cli_kv_release(&a.keys);
	return code;
}
