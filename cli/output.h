/* cli/output.h - how the front ends show a delivery: the -v trace, warnings, refusals, failures */
#ifndef BLUEARROW_CLI_OUTPUT_H
#define BLUEARROW_CLI_OUTPUT_H

#include <stdio.h>

#include "bluearrow/err.h"
#include "bluearrow/log.h"
#include "bluearrow/submit.h"

/*
 * A log sink on stderr: with verbose the dialogue (BA_LOG_PROTO) as it is,
 * always the warnings, prefixed with the program name.
 */
void cli_log_stderr_init(struct ba_log *log, int verbose);

/*
 * Shows the outcome of ba_submit_send() (rc its return) on stderr: on
 * success one line per refused recipient (partial delivery); on failure one
 * line naming the account, the server and the reason.  Returns the exit
 * code (0 on success, else the error's sysexits class).
 */
int cli_report(const struct ba_submit *s, const struct ba_submit_result *res, int rc,
               const struct ba_err *err);

/*
 * Prints the lines of a hint (ba_route_hint(), ba_submit_result.hint) to f,
 * each after prefix; a failure's hint follows its failure line.
 */
void cli_print_hint(FILE *f, const char *prefix, const char *lines);

/*
 * Validates a value of -f, -F, -N, -R, -V and similar: no CR, LF or other
 * controls (they would become a new header line or SMTP command).
 * Returns 0, or prints "bluearrow CMD: OPTION: ..." and returns EX_USAGE.
 */
int cli_check_value(const char *cmd, const char *option, const char *value);

#endif
