/* cli/submit.c - account choice, envelope sender, aliases, delivery and logging (see submit.h) */
#include "submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bluearrow/config_aliases.h"
#include "bluearrow/log.h"
#include "bluearrow/log_file.h"
#include "cli.h"
#include "transmit.h"

int cli_acct_open(struct cli_acct *a, const char *file, const char *account, const char *env_from,
                  struct ba_err *err)
{
	memset(a, 0, sizeof(*a));
	struct ba_buf path = BA_BUF_INIT;
	unsigned flags = 0;
	if (!file) {
		if (ba_config_find_default_path(&path, &flags, err) < 0)
			return -1;
		file = ba_buf_str(&path);
	}
	int rc = ba_config_load(&a->cfg, file, flags, err);
	ba_buf_release(&path);
	if (rc < 0)
		return -1;
	return cli_acct_reselect(a, account, env_from, err);
}

int cli_acct_reselect(struct cli_acct *a, const char *account, const char *env_from,
                      struct ba_err *err)
{
	const struct ba_account *acc = NULL;
	if (!account && env_from && *env_from)
		acc = ba_config_account_by_from(a->cfg, env_from);
	if (acc && ba_config_account_check(acc, err) < 0)
		return -1;
	if (!acc)
		acc = ba_config_account(a->cfg, account, err);
	if (!acc)
		return -1;
	a->acc = acc;
	return 0;
}

static int has_wildcard(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

int cli_acct_envelope_from(struct cli_acct *a, const char *cmdline_from, struct ba_err *err)
{
	const struct ba_account *acc = a->acc;
	ba_buf_reset(&a->from);
	if (cmdline_from && (acc->allow_from_override || !acc->from)) {
		ba_buf_addstr(&a->from, cmdline_from);
	} else if (!acc->auto_from && acc->from && has_wildcard(acc->from)) {
		/* a pattern only selects the account (msmtp); it is no address */
		return ba_err_set(err, EX_USAGE, "account %s from %s: its from is a pattern ('%s'): "
		                  "give the envelope sender with -f", acc->name, acc->file, acc->from);
	} else {
		if (ba_config_envelope_from(&a->from, acc, err) < 0)
			return -1;
		if (!a->from.len)
			return ba_err_set(err, EX_CONFIG, "account %s from %s: envelope-from address is "
			                  "missing (set from, or use -f)", acc->name, acc->file);
	}
	if (ba_buf_failed(&a->from))
		return ba_err_set(err, EX_OSERR, "out of memory");
	for (const char *c = ba_buf_str(&a->from); *c; c++)
		if ((unsigned char)*c <= 32 || *c == 127 || *c == '<' || *c == '>')
			return ba_err_set(err, EX_USAGE, "invalid envelope-from address '%s'",
			                  ba_buf_str(&a->from));
	return 0;
}

void cli_acct_release(struct cli_acct *a)
{
	ba_config_free(a->cfg);
	ba_buf_release(&a->from);
	memset(a, 0, sizeof(*a));
}

int cli_expand_aliases(const struct cli_acct *a, char ***rcpt, size_t *nrcpt, struct ba_err *err)
{
	if (!a->acc->aliases || !*a->acc->aliases)
		return 0;
	int any_local = 0;
	for (size_t i = 0; i < *nrcpt; i++)
		if (!strchr((*rcpt)[i], '@'))
			any_local = 1;
	if (!any_local) /* as msmtp: the file is read only when there is something to expand */
		return 0;
	ba_aliases *al;
	if (ba_aliases_load(&al, a->acc->aliases, err) < 0)
		return -1;
	int rc = ba_aliases_expand(al, rcpt, nrcpt, err);
	ba_aliases_free(al);
	return rc;
}

int cli_check_value(const char *cmd, const char *option, const char *value)
{
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < 32 || *c == 127)
			return cli_usage_error(cmd, "%s: control characters (CR, LF, ...) are not allowed",
			                       option);
	return 0;
}

int cli_parse_notify(const char *s, unsigned *out)
{
	*out = 0;
	if (strcmp(s, "never") == 0) {
		*out = BA_DSN_NEVER;
		return 0;
	}
	const char *p = s;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n == 7 && strncmp(p, "success", 7) == 0)
			*out |= BA_DSN_SUCCESS;
		else if (n == 7 && strncmp(p, "failure", 7) == 0)
			*out |= BA_DSN_FAILURE;
		else if (n == 5 && strncmp(p, "delay", 5) == 0)
			*out |= BA_DSN_DELAY;
		else
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	return *out ? 0 : -1;
}

/* msmtp's log line, to the logfile ("-" = standard output) and to syslog. */
static void write_log(const struct cli_acct *a, const struct cli_delivery *d,
                      const struct cli_transmit_result *res, const struct ba_err *err, int code)
{
	const struct ba_account *acc = a->acc;
	if (!(acc->logfile && *acc->logfile) && !acc->syslog)
		return;
	struct ba_log_entry e;
	memset(&e, 0, sizeof(e));
	e.host = acc->socket ? acc->socket : acc->host;
	e.tls = acc->tls;
	e.auth = acc->auth;
	e.user = acc->user;
	e.from = ba_buf_str(&a->from);
	e.rcpt = (const char *const *)d->rcpt;
	e.nrcpt = d->nrcpt;
	e.has_mailsize = res->reached_data || code == 0;
	e.mailsize = ba_spool_size(d->spool);
	e.smtp_status = res->smtp_code;
	e.smtp_msg = res->smtp_code ? ba_buf_str(&res->smtp_msg) : NULL;
	e.errormsg = code ? err->text : NULL;
	e.exitcode = code;
	struct ba_buf line = BA_BUF_INIT;
	ba_log_entry_format(&line, &e);
	if (acc->logfile && *acc->logfile) {
		struct ba_err lerr = BA_ERR_INIT;
		if (strcmp(acc->logfile, "-") == 0) {
			char ts[128];
			time_t now = time(NULL);
			struct tm tm;
			const char *fmt = acc->logfile_time_format && *acc->logfile_time_format
			                          ? acc->logfile_time_format : "%b %d %H:%M:%S";
			if (!localtime_r(&now, &tm) || !strftime(ts, sizeof(ts), fmt, &tm))
				ts[0] = '\0';
			printf("%s %s\n", ts, ba_buf_str(&line));
			fflush(stdout);
		} else if (ba_log_file_append(acc->logfile, acc->logfile_time_format, (int64_t)time(NULL),
		                              ba_buf_str(&line), &lerr) < 0) {
			fprintf(stderr, "%s: %s\n", cli_progname, lerr.text);
		}
	}
	if (acc->syslog) {
		struct ba_err serr = BA_ERR_INIT;
		int fac = ba_log_syslog_facility(acc->syslog, &serr);
		if (fac >= 0)
			ba_log_syslog(fac, code != 0, ba_buf_str(&line));
	}
	ba_buf_release(&line);
}

int cli_deliver(const struct cli_acct *a, const struct cli_delivery *d)
{
	struct ba_err err = BA_ERR_INIT;
	struct cli_transmit_result res;
	memset(&res, 0, sizeof(res));
	int rc = cli_transmit(a, d, &res, &err);
	int code = rc == 0 ? 0 : (err.code ? err.code : EX_SOFTWARE);
	write_log(a, d, &res, &err, code);
	if (code) {
		const struct ba_account *acc = a->acc;
		fprintf(stderr, "%s: account '%s', server %s", cli_progname, acc->name,
		        acc->socket ? acc->socket : acc->host ? acc->host : "?");
		if (!acc->socket)
			fprintf(stderr, ":%u", acc->port);
		fprintf(stderr, ": %s\n", err.text);
	}
	ba_buf_release(&res.smtp_msg);
	return code;
}
