/* cli/cli.h - what the subcommands of bluearrow share */
#ifndef BLUEARROW_CLI_H
#define BLUEARROW_CLI_H

#include "bluearrow/err.h"

struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the subcommand name; returns an exit code */
	const char *summary;               /* one line for `bluearrow help` */
	const char *usage;                 /* full text for `bluearrow help CMD` and CMD --help */
};

/* The subcommand table (main.c); ends with a NULL name. */
extern const struct cli_cmd cli_cmds[];

/* "bluearrow" or the name the program was invoked as; for messages. */
extern const char *cli_progname;

/* Prints "bluearrow: <err text>" on stderr and returns the error's exit code (EX_SOFTWARE if unset). */
int cli_fail(const struct ba_err *err);
/* Prints "bluearrow CMD: <message>" and a hint to --help on stderr; returns EX_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the usage text of cmd on stdout; returns 0. */
int cli_print_usage(const char *cmd);

/* bluearrow mx (mx.c) */
extern const char cli_mx_usage[];
int cli_cmd_mx(int argc, char **argv);

/* bluearrow compose (compose.c) */
extern const char cli_compose_usage[];
int cli_cmd_compose(int argc, char **argv);
struct ba_msg;
struct ba_msg_opts;
struct ba_draft;
/*
 * Parses compose's options (argv[0] is the command name) into a new draft
 * (bluearrow/draft.h); *o gets the options to write the message with
 * (--crlf, --8bit).  Returns 0 (the caller frees *out with ba_draft_free())
 * or an exit code after printing the usage error.
 */
int cli_compose_draft(struct ba_draft **out, struct ba_msg_opts *o, int argc, char **argv);
/* As cli_compose_draft(), for another command (see compose.c's parse_args()). */
enum { CLI_COMPOSE_SEND = 1 << 0 };
int cli_compose_parse(struct ba_draft **out, struct ba_msg_opts *o, int argc, char **argv,
                      const char *cmd, unsigned flags, int *first);

/* Account keys given as options (account_opts.c), for ba_submit_config_kv(). */
struct ba_config_kv;
struct cli_kv {
	struct ba_config_kv *kv; /* keys malloc'd, values borrowed from argv */
	size_t n;
};
/* Room for argc keys.  Returns 0 or EX_OSERR. */
int cli_kv_init(struct cli_kv *kv, int argc);
void cli_kv_release(struct cli_kv *kv);
/*
 * When argv[*i] is "--NAME[=VALUE]" and NAME, with '-' for '_', is a key of
 * the configuration file (msmtp's --host, --port, --tls, --tls-trust-file,
 * --auth, --user, --passwordeval ...; not --from, the envelope sender, nor
 * a password), appends it to kv and returns 0; the value is attached, or the
 * next argument for a key that needs one (on/off keys alone mean on).
 * Returns -1 when NAME is no such key, else an exit code after a usage error.
 */
int cli_account_option(struct cli_kv *kv, const char *cmd, int *i, int argc, char **argv);

/*
 * The config-file and account options every subcommand takes: for opt "-C"
 * or "--file" returns file, for "-a" or "--account" returns account (where
 * the caller stores the option's value), else NULL.
 */
const char **cli_file_or_account(const char *opt, const char **file, const char **account);
/* bluearrow sendmail (sendmail.c); also the program under the names sendmail, bluearrow-sendmail */
extern const char cli_sendmail_usage[];
int cli_cmd_sendmail(int argc, char **argv);

/* bluearrow send (send.c) and bluearrow check (check.c) */
extern const char cli_send_usage[];
int cli_cmd_send(int argc, char **argv);
extern const char cli_check_usage[];
int cli_cmd_check(int argc, char **argv);

/* bluearrow oauth2 (oauth2_cmd.c) */
extern const char cli_oauth2_usage[];
int cli_cmd_oauth2(int argc, char **argv);
struct ba_account;
/* Prints the "oauth2 ..." lines of check: the cached token's expiry, where the refresh token is. */
void cli_print_oauth2_state(const struct ba_account *acc);

#endif
