/* cli/main.c - bluearrow: dispatches subcommands (libgit2 src/cli style) */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bluearrow/version.h"
#include "cli.h"
#include "outbox_cmd.h"

const char *cli_progname = "bluearrow";

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);
int cmd_config(int argc, char **argv); /* config_cmd.c */

const struct cli_cmd cli_cmds[] = {
	{ "help", cmd_help, "show help for bluearrow or one of its commands",
	  "usage: bluearrow help [COMMAND]\n" },
	{ "version", cmd_version, "print the version",
	  "usage: bluearrow version\n" },
	{ "compose", cli_cmd_compose, "build a message from options and print it",
	  cli_compose_usage },
	{ "config", cmd_config, "create or check the configuration, show an account's settings",
	  "usage: bluearrow config check [-C FILE]\n"
	  "       bluearrow config show [-C FILE] [-a ACCOUNT | -f ADDRESS]\n"
	  "       bluearrow config list [-C FILE]\n"
	  "       bluearrow config init [-C FILE] [-a ACCOUNT] [-f ADDRESS] [--host H] [--KEY=VALUE ...]\n\n"
	  "   check   load and validate the file; prints the number of accounts and the default\n"
	  "   show    print the effective settings of ACCOUNT (default: the default account)\n"
	  "           in msmtprc syntax, the password as <redacted>\n"
	  "   list    print the account names, one a line\n"
	  "   init    write a new commented file (mode 0600; an existing file is never\n"
	  "           overwritten) to FILE, default ~/.config/bluearrow/config\n"
	  "           ($XDG_CONFIG_HOME): account ACCOUNT (default 'mail') from the options\n"
	  "           (--host, --port, --tls, --tls-starttls, --auth, --user, --passwordeval,\n"
	  "           any key as --KEY=VALUE), the sender ADDRESS (default USER@HOSTNAME)\n\n"
	  "   -C, --file FILE        the configuration file (default: $BLUEARROW_CONFIG,\n"
	  "                          ~/.config/bluearrow/config, ~/.bluearrowrc, ~/.msmtprc,\n"
	  "                          ~/.config/msmtp/config, /etc/bluearrow.conf, /etc/msmtprc)\n"
	  "   -a, --account ACCOUNT  the account to show (init: to create)\n"
	  "   -f, --from ADDRESS     show the account the envelope sender ADDRESS selects\n"
	  "                          (its 'from', as msmtp -f does; else the default);\n"
	  "                          init: the account's from\n\n"
	  "Exit status 78 (EX_CONFIG) for an invalid file.  See bluearrowrc(5).\n" },
	{ "send", cli_cmd_send, "build a message from options and submit it through an account",
	  cli_send_usage },
	{ "check", cli_cmd_check, "test an account: connect, TLS, capabilities, authentication",
	  cli_check_usage },
	{ "sendmail", cli_cmd_sendmail, "submit a message read on standard input (sendmail-compatible)",
	  cli_sendmail_usage },
	{ "mx", cli_cmd_mx, "show the route direct delivery takes to a domain: MX, DNSSEC, TLS",
	  cli_mx_usage },
	{ "outbox", cli_cmd_outbox, "list, show, flush, retry or remove queued messages",
	  cli_outbox_usage },
	{ "oauth2", cli_cmd_oauth2, "authorize an account for OAuth2 (Gmail, Microsoft 365)",
	  cli_oauth2_usage },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_cmd *find_cmd(const char *name)
{
	for (const struct cli_cmd *c = cli_cmds; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

int cli_fail(const struct ba_err *err)
{
	fprintf(stderr, "%s: %s\n", cli_progname, err->text[0] ? err->text : "unknown error");
	return err->code ? err->code : EX_SOFTWARE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	if (cmd)
		fprintf(stderr, "%s %s: ", cli_progname, cmd);
	else /* a personality (sendmail): the program name is the command */
		fprintf(stderr, "%s: ", cli_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'bluearrow help %s')\n", cmd ? cmd : "sendmail");
	return EX_USAGE;
}

int cli_print_usage(const char *cmd)
{
	const struct cli_cmd *c = find_cmd(cmd);
	if (c)
		fputs(c->usage, stdout);
	return 0;
}

static void print_overview(FILE *f)
{
	fprintf(f, "usage: bluearrow [--version] [--help] COMMAND [ARGS]\n\n"
	           "bluearrow builds and submits Internet mail.\n\ncommands:\n");
	for (const struct cli_cmd *c = cli_cmds; c->name; c++)
		fprintf(f, "   %-10s %s\n", c->name, c->summary);
	fprintf(f, "\nSee 'bluearrow help COMMAND' for the options of one command.\n");
}

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		print_overview(stdout);
		return 0;
	}
	const struct cli_cmd *c = find_cmd(argv[1]);
	if (!c) {
		fprintf(stderr, "bluearrow help: unknown command '%s'\n", argv[1]);
		return EX_USAGE;
	}
	fputs(c->usage, stdout);
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("bluearrow %s\n", BA_VERSION);
	return 0;
}

/* The name the program was started as, without its directory. */
static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

int main(int argc, char **argv)
{
	/* the sendmail personality under the names callers look for; mailq is sendmail -bp */
	const char *self = argc > 0 ? base_name(argv[0]) : "";
	if (strcmp(self, "sendmail") == 0 || strcmp(self, "bluearrow-sendmail") == 0) {
		cli_progname = self;
		return cli_cmd_sendmail(argc, argv);
	}
	if (strcmp(self, "mailq") == 0) {
		char *mq[] = { argv[0], "-bp", NULL };
		cli_progname = self;
		return cli_cmd_sendmail(2, mq);
	}
	if (argc < 2) {
		print_overview(stderr);
		return EX_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
		return cmd_version(0, NULL);
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
		return cmd_help(1, argv);
	const struct cli_cmd *c = find_cmd(name);
	if (!c) {
		fprintf(stderr, "bluearrow: '%s' is not a bluearrow command (see 'bluearrow --help')\n",
		        name);
		return EX_USAGE;
	}
	for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0)
			return cli_print_usage(name);
	return c->run(argc - 1, argv + 1);
}
