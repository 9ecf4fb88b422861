/* cli/submit.h - what `bluearrow sendmail` and `bluearrow send` share: account, envelope, delivery */
#ifndef BLUEARROW_CLI_SUBMIT_H
#define BLUEARROW_CLI_SUBMIT_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/msg_read.h"

/* The configuration and the account chosen for one message. */
struct cli_acct {
	ba_config *cfg;
	const struct ba_account *acc;
	struct ba_buf from;   /* the envelope sender, expanded ("" = null sender <>) */
};

/*
 * Loads the configuration (file, else the default search path) and picks
 * the account as msmtp does: account if given, else the first whose `from`
 * matches env_from (may be NULL), else the default one.
 * Errors: EX_CONFIG (file, no such account, no default), EX_OSERR.
 */
int cli_acct_open(struct cli_acct *a, const char *file, const char *account, const char *env_from,
                  struct ba_err *err);
/*
 * Re-picks the account by env_from when no account was named (for
 * --read-envelope-from, where the sender is known only after reading).
 */
int cli_acct_reselect(struct cli_acct *a, const char *account, const char *env_from,
                      struct ba_err *err);
/*
 * Sets a->from: cmdline_from (-f) when given and the account allows it
 * (allow_from_override), else the account's `from` (auto_from: user@maildomain)
 * with %U %H %C %M expanded.  Errors: EX_CONFIG ("envelope-from address is
 * missing"), EX_USAGE (control characters or brackets in the address).
 */
int cli_acct_envelope_from(struct cli_acct *a, const char *cmdline_from, struct ba_err *err);
void cli_acct_release(struct cli_acct *a);

/* DSN requests (-N, -R, -V) and the rest of the envelope. */
struct cli_delivery {
	char **rcpt;          /* borrowed */
	size_t nrcpt;
	unsigned notify;      /* enum ba_config_dsn_notify bits; 0 = the account's dsn_notify */
	int ret;              /* enum ba_config_dsn_return; 0 = the account's dsn_return */
	const char *envid;    /* NULL = none */
	ba_spool *spool;      /* the message */
	int verbose;          /* -v: the dialogue on stderr */
	unsigned smtp_flags;  /* extra enum ba_smtp_flags (hidden bench options) */
	long repeat;          /* send the message this many times over one session (bench); 0 = 1 */
};

/*
 * Expands local names through the account's aliases file (if any), in place.
 * Errors: EX_CONFIG.
 */
int cli_expand_aliases(const struct cli_acct *a, char ***rcpt, size_t *nrcpt, struct ba_err *err);

/*
 * Submits the spooled message through the account, writes the account's
 * logfile line and syslog entry (as msmtp does, also on failure), and on
 * failure prints one line on stderr naming the account, the server and the
 * server's reply.  Returns the exit code (0 on success).
 */
int cli_deliver(const struct cli_acct *a, const struct cli_delivery *d);

/*
 * Validates a value of -f, -F, -N, -R, -V and similar: no CR, LF or other
 * controls (they would become a new header line or SMTP command).
 * Returns 0, or prints "bluearrow CMD: OPTION: ..." and returns EX_USAGE.
 */
int cli_check_value(const char *cmd, const char *option, const char *value);

/* Parses a -N / dsn_notify value ("never" or a list of success,failure,delay) into bits; -1 if bad. */
int cli_parse_notify(const char *s, unsigned *out);

#endif
