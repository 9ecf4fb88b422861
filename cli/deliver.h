/* cli/deliver.h - what `sendmail` and `send` share: a given message submitted, the last steps of every send */
#ifndef BLUEARROW_CLI_DELIVER_H
#define BLUEARROW_CLI_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/submit.h"

/* How the send is shown: --dry-run, --progress / --no-progress. */
struct cli_send_opts {
	int verbose;  /* -v: the dialogue on stderr */
	int dry_run;  /* describe what would be sent on stdout; no connection, no password */
	int progress; /* -1 = a bar on a terminal for a large message, 0 = never, 1 = always */
	int64_t at;   /* send --at: queued, held until then, its ID on stdout; 0 = none */
};

/*
 * The last steps of every send: with dry_run prints ba_submit_describe()
 * on stdout and returns 0; else sets the progress bar and the password
 * prompt (a terminal's) into *sub, ba_submit_send() and cli_report().
 * Returns the exit code.
 */
int cli_submit_run(struct ba_submit *sub, const struct cli_send_opts *so);
/*
 * As cli_submit_run(), and the failure into *err (left clear on success).
 * pending (optional, sub->nrcpt entries): set to 1 for each recipient still
 * to deliver after a failure (not accepted, not refused for good), for the
 * outbox; direct delivery may have delivered to the others already.
 */
int cli_submit_run_err(struct ba_submit *sub, const struct cli_send_opts *so,
                       struct ba_err *err, unsigned char *pending);

/*
 * cli_submit_run(), or the outbox as delivery (-od: 'i' now, 'b' queued
 * then sent by a detached process, 'q' queued only; 0 = as the account's
 * `queue` key says) and `queue on_failure` (a temporary failure queues the
 * message, with a note on stderr, and exits 0).  so->at and the account's
 * queue_delay queue the message held until that time (as 'q'; with so->at
 * its ID goes to stdout).  Then, with the account's queue_flush_on_run, a
 * detached process flushes the due entries (cli_outbox_background(), an
 * exclusive flush), unless a direct attempt of this run just failed
 * temporarily or delivery is 'q'.  config (-C, or NULL) is what the detached processes
 * load.  Returns the exit code.
 */
int cli_submit_or_queue(struct ba_submit *sub, int delivery, const char *config,
                        const struct cli_send_opts *so);

/* A message given whole (sendmail's standard input, `bluearrow send FILE`). */
struct cli_message {
	const char *cmd;               /* for usage errors: "sendmail", "send" (NULL: the program) */
	const char *config, *account;  /* -C, -a */
	const struct ba_config_kv *kv; /* account keys given as options (--host=H ...) */
	size_t nkv;
	const char *from, *name;       /* -f, -F; NULL = none */
	int t, i, read_env_from;       /* -t, -i, --read-envelope-from */
	const char *const *rcpt;       /* recipients given as arguments */
	size_t nrcpt;
	unsigned dsn_notify;           /* -N, -R, -V */
	int dsn_ret;
	const char *envid;
	long repeat;                   /* hidden --ba-* switches */
	unsigned smtp_flags;
	int in_fd;                     /* the message: standard input or an open file */
	const char *in_name;           /* its name, for errors */
	int delivery;                  /* -od: 'i' now, 'b' queued then in the background, 'q'
	                                  queued only; 0 = as the account's `queue` says */
};

/*
 * Reads the message with ba_submit_read() (its header chooses the account
 * and the sender), takes the recipients (ba_submit_recipients()) and
 * submits it (cli_submit_run()), or queues it in the account's outbox as
 * a->delivery and the account's `queue` key say (-odq: queued only; -odb
 * or `queue always`: queued, then delivered by a detached process;
 * `queue on_failure`: queued when a direct delivery fails temporarily,
 * ba_outbox_temporary(), with a note on stderr and exit 0).  Returns the
 * exit code, after showing any error.
 */
int cli_deliver_message(const struct cli_message *a, const struct cli_send_opts *so);

#endif
