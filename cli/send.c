/* cli/send.c - bluearrow send: compose's options + submission through an account */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/draft.h"
#include "bluearrow/msg.h"
#include "bluearrow/msg_read.h"
#include "bluearrow/outbox.h"
#include "cli.h"
#include "bluearrow/submit.h"
#include "deliver.h"
#include "output.h"

const char cli_send_usage[] =
	"usage: bluearrow send [-C FILE] [-a ACCOUNT] [-v] [--dry-run] [--[no-]progress]\n"
	"                      [--at TIME] [--from ADDR] --to ADDR [compose options]\n"
	"       bluearrow send [-C FILE] [-a ACCOUNT] [-v] [--dry-run] [--[no-]progress]\n"
	"                      [--at TIME] FILE|-\n"
	"\n"
	"Builds a message exactly as 'bluearrow compose' does (same options: --to --cc\n"
	"--bcc --subject --body --html --attach --header ...; see 'bluearrow help compose')\n"
	"and submits it through an account.  Silent on success.  Without --body and\n"
	"--html, when standard input is not a terminal, the body is standard input\n"
	"('df -h | bluearrow send --to me@example.org --subject disk').  With FILE (or\n"
	"'-' for standard input) an existing message is submitted as 'sendmail -t -i'\n"
	"does: recipients from its To, Cc and Bcc, Bcc removed.\n"
	"\n"
	"  -C, --file FILE        the configuration file (msmtp syntax)\n"
	"  -a, --account ACCOUNT  the account (default: the one whose from matches --from,\n"
	"                         else the default account)\n"
	"  -v, --verbose          show the SMTP dialogue on stderr (secrets redacted)\n"
	"      --dry-run          show the account, server, envelope and header that would\n"
	"                         be sent, on stdout; connect to nothing, ask no password\n"
	"      --progress         show a progress bar on stderr (default: on a terminal,\n"
	"                         for a message over 4 MB)\n"
	"      --no-progress      never show one\n"
	"      --at TIME          send later: queue the message in the outbox, held until\n"
	"                         TIME, and print its ID on stdout; until then 'bluearrow\n"
	"                         outbox rm ID' withdraws it.  TIME is \"YYYY-MM-DD HH:MM\"\n"
	"                         (local time), ISO 8601 (2026-12-24T18:00+01:00) or +N\n"
	"                         with s, m, h or d (+10m, +2h, +1d).  A flush sends it\n"
	"                         once due: 'bluearrow outbox flush' from cron or a timer,\n"
	"                         or queue_flush_on_run (bluearrowrc(5))\n"
	"  --host=H --port=N --tls[=on|off] --tls-starttls[=on|off] --tls-trust-file=F\n"
	"  --tls-certcheck[=on|off] --auth[=on|off|METHOD] --user=U --passwordeval=CMD\n"
	"  --domain=D --timeout=S --protocol=smtp|lmtp --logfile=F ...\n"
	"                         any key of the file as an option (msmtp's): overrides\n"
	"                         the account; with no file at all, --host makes the account\n"
	"\n"
	"--from is optional: the default is the account's from (and from_full_name).\n"
	"The envelope sender is the --from address (unless the account sets\n"
	"allow_from_override off); the recipients are --to, --cc and --bcc; a local\n"
	"name without '@' (--to root) goes through the account's aliases file.  Bcc\n"
	"recipients are never written into the message.  With auth on and no password\n"
	"configured, the password is asked on the terminal.  Exit status: sysexits(3),\n"
	"as bluearrow-sendmail(8).\n";

/* Takes send's own options out of argv; the rest goes to compose. */
static int split_args(int argc, char **argv, char **rest, int *nrest, const char **file,
                      const char **account, struct cli_send_opts *so, struct cli_kv *keys)
{
	*nrest = 0;
	rest[(*nrest)++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **dst = NULL;
		const char *val = NULL;
		if (strcmp(s, "--") == 0) { /* the rest are arguments: compose's parser sees them */
			while (i < argc)
				rest[(*nrest)++] = argv[i++];
			break;
		}
		if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
			so->verbose = 1;
			continue;
		}
		if (strcmp(s, "--dry-run") == 0) {
			so->dry_run = 1;
			continue;
		}
		if (strcmp(s, "--progress") == 0 || strcmp(s, "--no-progress") == 0) {
			so->progress = s[2] == 'p';
			continue;
		}
		if (strcmp(s, "--at") == 0 || strncmp(s, "--at=", 5) == 0) {
			const char *t = s[4] ? s + 5 : i + 1 < argc ? argv[++i] : NULL;
			struct ba_err err = BA_ERR_INIT;
			if (!t)
				return cli_usage_error("send", "option '%s' needs a value", s);
			if (ba_outbox_parse_time(&so->at, t, (int64_t)time(NULL), &err) < 0)
				return cli_usage_error("send", "--at: %s", err.text);
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

/* 1 when the draft holds nothing: a message file cannot be combined with compose options. */
static int draft_empty(const ba_draft *d)
{
	size_t n;
	for (int f = 0; f < BA_DRAFT_NFIELDS; f++)
		if (ba_draft_count(d, (enum ba_draft_field)f))
			return 0;
	return !ba_draft_body_file(d) && !ba_draft_body_text(d, &n) && !ba_draft_html_file(d) &&
	       !ba_draft_attach_count(d);
}

/* `bluearrow send FILE`: the message as it is, as `sendmail -t -i` takes it. */
static int send_file(const char *path, const char *file, const char *account,
                     const struct cli_kv *keys, const struct cli_send_opts *so)
{
	int fd = 0;
	if (strcmp(path, "-") != 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		struct ba_err err = BA_ERR_INIT;
		ba_err_set(&err, EX_NOINPUT, "cannot open '%s': %s", path, ba_strerror_t(errno));
		return cli_fail(&err);
	}
	struct cli_message m;
	memset(&m, 0, sizeof(m));
	m.cmd = "send";
	m.config = file;
	m.kv = keys->kv;
	m.nkv = keys->n;
	m.account = account;
	m.t = 1;
	m.i = 1;
	m.in_fd = fd;
	m.in_name = fd ? path : "standard input";
	int code = cli_deliver_message(&m, so);
	if (fd)
		close(fd);
	return code;
}

/* A recipient value made of plain words separated by commas (no '<', quotes, groups). */
static int plain_list(const char *v)
{
	return !strpbrk(v, "<>\"():;\\");
}

/*
 * Takes the local names (words without '@', "root") out of the --to, --cc
 * and --bcc values into names[] (with their field), for the account's
 * aliases; the addresses stay in the draft.
 */
static int take_local_names(ba_draft *d, char ***names, enum ba_draft_field **fields, size_t *n,
                            struct ba_err *err)
{
	static const enum ba_draft_field rf[] = { BA_DRAFT_TO, BA_DRAFT_CC, BA_DRAFT_BCC };
	*names = NULL;
	*fields = NULL;
	*n = 0;
	for (size_t k = 0; k < sizeof(rf) / sizeof(rf[0]); k++) {
		size_t cnt = ba_draft_count(d, rf[k]);
		char **keep = calloc(cnt ? cnt : 1, sizeof(*keep));
		size_t nkeep = 0;
		int any = 0;
		if (!keep)
			return ba_err_set(err, EX_OSERR, "out of memory");
		for (size_t i = 0; i < cnt; i++) {
			const char *v = ba_draft_get(d, rf[k], i);
			struct ba_buf rest = BA_BUF_INIT;
			if (!plain_list(v)) {
				keep[nkeep++] = strdup(v);
				continue;
			}
			for (const char *p = v; *p;) {
				size_t len = strcspn(p, ",");
				const char *b = p, *e = p + len;
				while (b < e && (*b == ' ' || *b == '\t'))
					b++;
				while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
					e--;
				if (e > b && !memchr(b, '@', (size_t)(e - b))) {
					char **nn = realloc(*names, (*n + 1) * sizeof(**names));
					enum ba_draft_field *nf = nn ? realloc(*fields, (*n + 1) * sizeof(**fields))
					                             : NULL;
					if (nn)
						*names = nn;
					if (nf)
						*fields = nf;
					if (!nn || !nf || !((*names)[*n] = strndup(b, (size_t)(e - b)))) {
						ba_buf_release(&rest);
						ba_submit_recipients_free(keep, nkeep);
						return ba_err_set(err, EX_OSERR, "out of memory");
					}
					(*fields)[(*n)++] = rf[k];
					any = 1;
				} else if (e > b) {
					if (rest.len)
						ba_buf_addstr(&rest, ", ");
					ba_buf_add(&rest, b, (size_t)(e - b));
				}
				p += len + (p[len] == ',');
			}
			if (rest.len)
				keep[nkeep++] = strdup(ba_buf_str(&rest));
			ba_buf_release(&rest);
		}
		int rc = 0;
		if (any) {
			rc = ba_draft_set(d, rf[k], NULL, err);
			for (size_t i = 0; rc == 0 && i < nkeep; i++)
				rc = keep[i] ? ba_draft_add(d, rf[k], keep[i], err)
				             : ba_err_set(err, EX_OSERR, "out of memory");
		}
		ba_submit_recipients_free(keep, nkeep);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Adds the addresses a local name stands for (the account's aliases) to its field. */
static int add_local_names(ba_msg *m, const struct ba_account *acc, char **names,
                           const enum ba_draft_field *fields, size_t n, struct ba_err *err)
{
	for (size_t i = 0; i < n; i++) {
		char **v;
		size_t k;
		if (ba_submit_local_rcpt(&v, &k, acc, names[i], err) < 0)
			return -1;
		int rc = 0;
		for (size_t j = 0; rc == 0 && j < k; j++)
			rc = fields[i] == BA_DRAFT_TO   ? ba_msg_add_to(m, v[j], err)
			     : fields[i] == BA_DRAFT_CC ? ba_msg_add_cc(m, v[j], err)
			                                : ba_msg_add_bcc(m, v[j], err);
		ba_submit_recipients_free(v, k);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int cli_cmd_send(int argc, char **argv)
{
	const char *file = NULL, *account = NULL;
	struct cli_send_opts so = { 0, 0, -1, 0 };
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	int nrest, code, first = 0;
	if (!rest)
		return EX_OSERR;
	struct cli_kv keys;
	code = cli_kv_init(&keys, argc);
	if (!code)
		code = split_args(argc, argv, rest, &nrest, &file, &account, &so, &keys);
	ba_draft *d = NULL;
	struct ba_msg_opts o;
	if (!code)
		code = cli_compose_parse(&d, &o, nrest, rest, "send", CLI_COMPOSE_SEND, &first);
	if (!code && nrest - first > 1)
		code = cli_usage_error("send", "unexpected argument '%s'", rest[first + 1]);
	if (!code && nrest - first == 1) {
		if (!draft_empty(d))
			code = cli_usage_error("send", "a message file ('%s') cannot be combined with "
			                               "compose options", rest[first]);
		else
			code = send_file(rest[first], file, account, &keys, &so);
		ba_draft_free(d);
		free(rest);
		cli_kv_release(&keys);
		return code;
	}
	free(rest);
	if (code) {
		cli_kv_release(&keys);
		return code;
	}

	struct ba_err err = BA_ERR_INIT;
	ba_msg *m = NULL;
	ba_config *cfg = NULL;
	const struct ba_account *acc = NULL;
	struct ba_buf env_from = BA_BUF_INIT, from_field = BA_BUF_INIT;
	ba_spool *spool = NULL;
	char **rcpt = NULL, **local = NULL;
	enum ba_draft_field *local_f = NULL;
	size_t nrcpt = 0, nlocal = 0;
	/* like mail -s: text piped in is the body (spooled to a file, not held in memory) */
	if (!ba_draft_body_file(d) && !ba_draft_html_file(d) && !isatty(STDIN_FILENO)) {
		int stdin_used = 0;
		for (size_t i = 0; i < ba_draft_attach_count(d); i++)
			stdin_used |= !strcmp(ba_draft_attach_path(d, i), "-");
		if (!stdin_used && ba_draft_set_body_file(d, "-", &err) < 0)
			goto fail;
	}
	if (take_local_names(d, &local, &local_f, &nlocal, &err) < 0 ||
	    ba_draft_build(&m, d, &err) < 0)
		goto fail;
	ba_draft_free(d);
	d = NULL;
	const char *from = ba_msg_from(m);
	if (ba_submit_config_kv(&cfg, file, keys.kv, keys.n, &err) < 0 ||
	    !(acc = ba_submit_account(cfg, account, from, NULL, &err)) ||
	    ba_submit_envelope_from(&env_from, acc, from, &err) < 0)
		goto fail;
	if (!from && (ba_submit_from_field(&from_field, acc, ba_buf_str(&env_from), NULL, &err) < 0 ||
	              ba_msg_add_from(m, ba_buf_str(&from_field), &err) < 0))
		goto fail;
	if (add_local_names(m, acc, local, local_f, nlocal, &err) < 0) {
		code = err.code == EX_USAGE ? cli_usage_error("send", "%s", err.text) : cli_fail(&err);
		goto out;
	}
	/* the message is written once into the spool: a retry or a second host re-reads it */
	if (ba_spool_new(&spool, 0, &err) < 0 || ba_msg_write(m, ba_spool_writer(spool), &o, &err) < 0)
		goto fail;
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
	if (rc < 0)
		goto fail;
	struct ba_submit sub;
	memset(&sub, 0, sizeof(sub));
	sub.acc = acc;
	sub.from = ba_buf_str(&env_from);
	sub.rcpt = (const char *const *)rcpt;
	sub.nrcpt = nrcpt;
	sub.spool = spool;
	code = cli_submit_or_queue(&sub, 0, file, &so);
	goto out;
fail:
	code = cli_fail(&err);
out:
	ba_submit_recipients_free(rcpt, nrcpt);
	ba_submit_recipients_free(local, nlocal);
	free(local_f);
	ba_spool_free(spool);
	ba_msg_free(m);
	ba_draft_free(d);
	ba_buf_release(&env_from);
	ba_buf_release(&from_field);
	ba_config_free(cfg);
	cli_kv_release(&keys);
	return code;
}
