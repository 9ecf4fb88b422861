/* cli/compose.c - bluearrow compose: options fill a draft (bluearrow/draft.h), built and printed */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bluearrow/draft.h"
#include "bluearrow/mime.h"
#include "bluearrow/msg.h"
#include "cli.h"

const char cli_compose_usage[] =
	"usage: bluearrow compose --from ADDR --to ADDR [options]\n"
	"\n"
	"Builds a MIME message and writes it to standard output.\n"
	"\n"
	"  --from ADDR          the author, e.g. 'Name <me@example.org>' (required)\n"
	"  --to LIST            recipients; LIST is one or more addresses separated by commas\n"
	"  --cc LIST            carbon-copy recipients\n"
	"  --bcc LIST           blind recipients: never written into the message\n"
	"  --reply-to LIST      where replies should go (Reply-To)\n"
	"  --subject TEXT       the subject (UTF-8)\n"
	"  --body FILE          the text body (UTF-8); '-' reads standard input\n"
	"  --html FILE          an HTML body; with --body the two become multipart/alternative\n"
	"  --attach FILE        attach FILE (repeatable); its type is detected from the content\n"
	"  --attach-type TYPE   content type for the previous --attach, e.g. application/pdf\n"
	"  --attach-name NAME   file name shown for the previous --attach\n"
	"  --header 'N: V'      an extra header field (repeatable)\n"
	"  --in-reply-to ID     the message replied to, as <id@host>\n"
	"  --references IDS     message ids of the thread (repeatable)\n"
	"  --crlf               end lines with CRLF instead of LF\n"
	"  --8bit               allow 8bit text parts (default: 7-bit clean output)\n"
	"\n"
	"At least one of --to, --cc, --bcc is required; --to, --cc and --bcc repeat.\n"
	"Exit status: 0, 64 bad usage, 65 bad data (address, header, UTF-8),\n"
	"66 unreadable input, 74 I/O error.  Nothing is written when input is bad.\n";

enum {
	OPT_FROM = 256, OPT_TO, OPT_CC, OPT_BCC, OPT_SUBJECT, OPT_BODY, OPT_HTML, OPT_ATTACH,
	OPT_ATTACH_TYPE, OPT_ATTACH_NAME, OPT_HEADER, OPT_IRT, OPT_REFS, OPT_CRLF, OPT_8BIT,
	OPT_REPLY_TO,
};

static const struct option compose_options[] = {
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "cc", required_argument, NULL, OPT_CC },
	{ "bcc", required_argument, NULL, OPT_BCC },
	{ "reply-to", required_argument, NULL, OPT_REPLY_TO },
	{ "subject", required_argument, NULL, OPT_SUBJECT },
	{ "body", required_argument, NULL, OPT_BODY },
	{ "html", required_argument, NULL, OPT_HTML },
	{ "attach", required_argument, NULL, OPT_ATTACH },
	{ "attach-type", required_argument, NULL, OPT_ATTACH_TYPE },
	{ "attach-name", required_argument, NULL, OPT_ATTACH_NAME },
	{ "header", required_argument, NULL, OPT_HEADER },
	{ "in-reply-to", required_argument, NULL, OPT_IRT },
	{ "references", required_argument, NULL, OPT_REFS },
	{ "crlf", no_argument, NULL, OPT_CRLF },
	{ "8bit", no_argument, NULL, OPT_8BIT },
	{ NULL, 0, NULL, 0 },
};

/* The draft field an address or text option adds to. */
static int option_field(int c, enum ba_draft_field *f)
{
	switch (c) {
	case OPT_FROM: *f = BA_DRAFT_FROM; return 1;
	case OPT_TO: *f = BA_DRAFT_TO; return 1;
	case OPT_CC: *f = BA_DRAFT_CC; return 1;
	case OPT_BCC: *f = BA_DRAFT_BCC; return 1;
	case OPT_REPLY_TO: *f = BA_DRAFT_REPLY_TO; return 1;
	case OPT_HEADER: *f = BA_DRAFT_HEADER; return 1;
	case OPT_REFS: *f = BA_DRAFT_REFERENCES; return 1;
	case OPT_SUBJECT: *f = BA_DRAFT_SUBJECT; return 1;
	case OPT_IRT: *f = BA_DRAFT_IN_REPLY_TO; return 1;
	default: return 0;
	}
}

/*
 * Fills d from the options (each in the order given; a repeated --subject
 * or --in-reply-to replaces the earlier one).  cmd names the command in
 * errors.  With CLI_COMPOSE_SEND, *first is where the arguments that are
 * no options start (argv is permuted), --from is optional, and when such
 * an argument is given the required options are not checked.  Returns 0,
 * or an exit code after printing the usage error.
 */
static int parse_args(ba_draft *d, struct ba_msg_opts *o, int argc, char **argv, const char *cmd,
                      unsigned flags, int *first)
{
	struct ba_err err = BA_ERR_INIT;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", compose_options, NULL)) != -1) {
		const char *v = optarg;
		size_t natt = ba_draft_attach_count(d);
		enum ba_draft_field f;
		int rc = 0;
		if (option_field(c, &f)) {
			rc = ba_draft_add(d, f, v, &err);
		} else switch (c) {
		case OPT_CRLF: o->mime.eol = "\r\n"; break;
		case OPT_8BIT: o->mime.flags |= BA_MIME_ALLOW_8BIT; break;
		case OPT_BODY:
			if (ba_draft_body_file(d))
				return cli_usage_error(cmd, "--body given twice");
			rc = ba_draft_set_body_file(d, v, &err);
			break;
		case OPT_HTML:
			if (ba_draft_html_file(d))
				return cli_usage_error(cmd, "--html given twice");
			rc = ba_draft_set_html_file(d, v, &err);
			break;
		case OPT_ATTACH:
			rc = ba_draft_attach_add(d, v, NULL, NULL, &err);
			break;
		case OPT_ATTACH_TYPE:
		case OPT_ATTACH_NAME: {
			const char *opt = c == OPT_ATTACH_TYPE ? "--attach-type" : "--attach-name";
			if (!natt)
				return cli_usage_error(cmd, "%s must follow an --attach", opt);
			if (c == OPT_ATTACH_TYPE ? ba_draft_attach_type(d, natt - 1)
			                         : ba_draft_attach_name(d, natt - 1))
				return cli_usage_error(cmd, "%s given twice for '%s'", opt,
				                       ba_draft_attach_path(d, natt - 1));
			rc = c == OPT_ATTACH_TYPE ? ba_draft_attach_set_type(d, natt - 1, v, &err)
			                          : ba_draft_attach_set_name(d, natt - 1, v, &err);
			break;
		}
		case ':':
			return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
		if (rc < 0) {
			fprintf(stderr, "%s: out of memory\n", cli_progname);
			return EX_OSERR;
		}
	}
	*first = optind;
	if (optind < argc && !(flags & CLI_COMPOSE_SEND))
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (optind < argc)
		return 0;
	if (!ba_draft_count(d, BA_DRAFT_FROM) && !(flags & CLI_COMPOSE_SEND))
		return cli_usage_error(cmd, "--from is required");
	if (!ba_draft_count(d, BA_DRAFT_TO) && !ba_draft_count(d, BA_DRAFT_CC) &&
	    !ba_draft_count(d, BA_DRAFT_BCC))
		return cli_usage_error(cmd, "at least one of --to, --cc, --bcc is required");
	const char *body = ba_draft_body_file(d), *html = ba_draft_html_file(d);
	int stdin_users = (body && !strcmp(body, "-")) + (html && !strcmp(html, "-"));
	for (size_t i = 0; i < ba_draft_attach_count(d); i++)
		stdin_users += !strcmp(ba_draft_attach_path(d, i), "-");
	if (stdin_users > 1)
		return cli_usage_error(cmd, "standard input ('-') can be used only once");
	return 0;
}

int cli_compose_parse(ba_draft **out, struct ba_msg_opts *o, int argc, char **argv,
                      const char *cmd, unsigned flags, int *first)
{
	struct ba_err err = BA_ERR_INIT;
	memset(o, 0, sizeof(*o));
	o->mime.eol = "\n";
	*out = NULL;
	if (ba_draft_new(out, &err) < 0)
		return cli_fail(&err);
	int rc = parse_args(*out, o, argc, argv, cmd, flags, first);
	if (rc) {
		ba_draft_free(*out);
		*out = NULL;
	}
	return rc;
}

int cli_compose_draft(ba_draft **out, struct ba_msg_opts *o, int argc, char **argv)
{
	int first;
	return cli_compose_parse(out, o, argc, argv, "compose", 0, &first);
}

int cli_cmd_compose(int argc, char **argv)
{
	ba_draft *d;
	ba_msg *m;
	struct ba_msg_opts o;
	int rc = cli_compose_draft(&d, &o, argc, argv);
	if (rc)
		return rc;
	size_t nbcc = ba_draft_count(d, BA_DRAFT_BCC);
	struct ba_err err = BA_ERR_INIT;
	rc = ba_draft_build(&m, d, &err);
	ba_draft_free(d);
	if (rc < 0)
		return cli_fail(&err);
	struct ba_fd_writer *out = malloc(sizeof(*out));
	if (!out) {
		rc = ba_err_set(&err, EX_OSERR, "out of memory");
	} else {
		ba_fd_writer_init(out, STDOUT_FILENO, "standard output");
		rc = ba_msg_write(m, &out->base, &o, &err);
	}
	ba_msg_free(m);
	free(out);
	if (rc < 0)
		return cli_fail(&err);
	/* The printed message cannot carry them (RFC 5322 §3.6.3, kept blind): say so, or a
	 * pipe into `sendmail -t` would drop them without a word. */
	if (nbcc)
		fprintf(stderr, "bluearrow compose: note: Bcc recipients are not written into the "
		                "message; give them to sendmail as arguments, or use 'bluearrow send'\n");
	return 0;
}
