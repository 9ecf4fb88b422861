/* cli/outbox_cmd.h - the outbox from the command line: list, flush, enqueue (outbox_cmd.c) */
#ifndef BLUEARROW_CLI_OUTBOX_CMD_H
#define BLUEARROW_CLI_OUTBOX_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/err.h"
#include "bluearrow/submit.h"

extern const char cli_outbox_usage[];
int cli_cmd_outbox(int argc, char **argv);

/*
 * Lists every entry of the configuration's outboxes on stdout (--json: a
 * JSON array); mailq says "Mail queue is empty" when there is none.  A
 * missing configuration file means the default outbox.  Returns the exit code.
 */
int cli_outbox_list(const char *config, int json, int mailq);

/* What to flush (sendmail -q, -qI, outbox flush, the -odb child). */
struct cli_flush {
	const char *config, *account;  /* -C, -a; NULL = the default file, every account */
	const char *const *ids;        /* only these entries (due or not) */
	size_t nids;
	int all;                       /* every entry, due or not */
	int hold_fd;                   /* > 0: the entry this process added and holds */
	int verbose;                   /* the dialogue and each delivery on stderr */
	int exclusive;                 /* skip an outbox that another exclusive flush is working
	                                  on (flock on its directory): runs do not pile up */
};
/* Flushes; shows each deferred or failed entry on stderr.  Returns the exit code. */
int cli_outbox_flush(const struct cli_flush *f);
/*
 * Runs cli_outbox_flush(f) in a detached process (double fork, setsid,
 * standard descriptors on /dev/null) and returns 0 once it is started, -1
 * when fork failed.
 */
int cli_outbox_background(const struct cli_flush *f);

/*
 * Queues the message s describes (its account's outbox) and writes its ID
 * into id.  why (optional): the failure of the attempt just made, recorded
 * as the entry's first attempt (it stays due now).  next: the time the
 * entry is held until (send --at, queue_delay); 0 = due now.  With hold, the entry stays locked and *hold is its descriptor
 * (for cli_outbox_background()).  Errors: those of ba_outbox_open() and
 * ba_outbox_add().
 */
int cli_outbox_enqueue(const struct ba_submit *s, const struct ba_err *why, int64_t next,
                       char *id, size_t idlen, int *hold, struct ba_err *err);

void cli_outbox_free_dirs(char **v, size_t n);

#endif
