/* cli/compose.c - bluearrow compose: build a message from options and print it */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

struct attach {
	const char *path, *type, *name;
};

struct compose_args {
	const char **from, **to, **cc, **bcc, **headers, **refs;
	size_t nfrom, nto, ncc, nbcc, nheaders, nrefs;
	const char *subject, *body, *html, *in_reply_to;
	struct attach *att;
	size_t natt;
	int crlf, eightbit;
};

static int push(const char ***v, size_t *n, const char *s)
{
	const char **x = realloc(*v, (*n + 1) * sizeof(*x));
	if (!x)
		return -1;
	x[(*n)++] = s;
	*v = x;
	return 0;
}

static void args_release(struct compose_args *a)
{
	free(a->from);
	free(a->to);
	free(a->cc);
	free(a->bcc);
	free(a->headers);
	free(a->refs);
	free(a->att);
}

enum {
	OPT_FROM = 256, OPT_TO, OPT_CC, OPT_BCC, OPT_SUBJECT, OPT_BODY, OPT_HTML, OPT_ATTACH,
	OPT_ATTACH_TYPE, OPT_ATTACH_NAME, OPT_HEADER, OPT_IRT, OPT_REFS, OPT_CRLF, OPT_8BIT,
};

static const struct option compose_options[] = {
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "cc", required_argument, NULL, OPT_CC },
	{ "bcc", required_argument, NULL, OPT_BCC },
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

/* Returns 0, or an exit code after printing the usage error. */
static int parse_args(struct compose_args *a, int argc, char **argv)
{
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", compose_options, NULL)) != -1) {
		const char *v = optarg;
		int rc = 0;
		switch (c) {
		case OPT_FROM: rc = push(&a->from, &a->nfrom, v); break;
		case OPT_TO: rc = push(&a->to, &a->nto, v); break;
		case OPT_CC: rc = push(&a->cc, &a->ncc, v); break;
		case OPT_BCC: rc = push(&a->bcc, &a->nbcc, v); break;
		case OPT_HEADER: rc = push(&a->headers, &a->nheaders, v); break;
		case OPT_REFS: rc = push(&a->refs, &a->nrefs, v); break;
		case OPT_SUBJECT: a->subject = v; break;
		case OPT_IRT: a->in_reply_to = v; break;
		case OPT_CRLF: a->crlf = 1; break;
		case OPT_8BIT: a->eightbit = 1; break;
		case OPT_BODY:
			if (a->body)
				return cli_usage_error("compose", "--body given twice");
			a->body = v;
			break;
		case OPT_HTML:
			if (a->html)
				return cli_usage_error("compose", "--html given twice");
			a->html = v;
			break;
		case OPT_ATTACH: {
			struct attach *x = realloc(a->att, (a->natt + 1) * sizeof(*x));
			if (!x) {
				rc = -1;
				break;
			}
			a->att = x;
			a->att[a->natt++] = (struct attach){ v, NULL, NULL };
			break;
		}
		case OPT_ATTACH_TYPE:
		case OPT_ATTACH_NAME: {
			const char *opt = c == OPT_ATTACH_TYPE ? "--attach-type" : "--attach-name";
			if (!a->natt)
				return cli_usage_error("compose", "%s must follow an --attach", opt);
			const char **slot = c == OPT_ATTACH_TYPE ? &a->att[a->natt - 1].type
			                                         : &a->att[a->natt - 1].name;
			if (*slot)
				return cli_usage_error("compose", "%s given twice for '%s'", opt,
				                       a->att[a->natt - 1].path);
			*slot = v;
			break;
		}
		case ':':
			return cli_usage_error("compose", "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error("compose", "unknown option '%s'", argv[optind - 1]);
		}
		if (rc < 0) {
			fprintf(stderr, "%s: out of memory\n", cli_progname);
			return EX_OSERR;
		}
	}
	if (optind < argc)
		return cli_usage_error("compose", "unexpected argument '%s'", argv[optind]);
	if (!a->nfrom)
		return cli_usage_error("compose", "--from is required");
	if (!a->nto && !a->ncc && !a->nbcc)
		return cli_usage_error("compose", "at least one of --to, --cc, --bcc is required");
	int stdin_users = (a->body && !strcmp(a->body, "-")) + (a->html && !strcmp(a->html, "-"));
	for (size_t i = 0; i < a->natt; i++)
		stdin_users += !strcmp(a->att[i].path, "-");
	if (stdin_users > 1)
		return cli_usage_error("compose", "standard input ('-') can be used only once");
	return 0;
}

static int open_leaf(ba_mime_part **out, const char *path, enum ba_mime_role role,
                     struct ba_err *err)
{
	if (strcmp(path, "-") == 0) /* no file name to show unless --attach-name gives one */
		return ba_mime_fd_new(out, dup(STDIN_FILENO), "standard input", role, err) < 0 ? -1
		       : ba_mime_set_filename(*out, "", err);
	return ba_mime_file_new(out, path, role, err);
}

/* The MIME tree: [mixed: ] [alternative: ] text [html] [attachments...] */
static int build_body(ba_mime_part **out, const struct compose_args *a, struct ba_err *err)
{
	ba_mime_part *text = NULL, *html = NULL, *body = NULL, *root = NULL;
	*out = NULL;
	if (a->body && open_leaf(&text, a->body, BA_MIME_BODY, err) < 0)
		goto fail;
	if (a->html && (open_leaf(&html, a->html, BA_MIME_BODY, err) < 0 ||
	                ba_mime_set_type(html, "text/html", err) < 0))
		goto fail;
	if (text && html) {
		if (ba_mime_multipart_new(&body, "alternative", err) < 0)
			goto fail;
		ba_mime_add(body, text, err);
		ba_mime_add(body, html, err);
		text = html = NULL;
	} else {
		body = text ? text : html;
		text = html = NULL;
	}
	if (!a->natt) {
		*out = body;
		return 0;
	}
	if (ba_mime_multipart_new(&root, "mixed", err) < 0)
		goto fail;
	if (body)
		ba_mime_add(root, body, err);
	body = NULL;
	for (size_t i = 0; i < a->natt; i++) {
		ba_mime_part *p;
		if (open_leaf(&p, a->att[i].path, BA_MIME_ATTACHMENT, err) < 0)
			goto fail;
		ba_mime_add(root, p, err);
		if ((a->att[i].type && ba_mime_set_type(p, a->att[i].type, err) < 0) ||
		    (a->att[i].name && ba_mime_set_filename(p, a->att[i].name, err) < 0))
			goto fail;
	}
	*out = root;
	return 0;
fail:
	ba_mime_free(text);
	ba_mime_free(html);
	ba_mime_free(body);
	ba_mime_free(root);
	return -1;
}

static int build_msg(ba_msg *m, const struct compose_args *a, struct ba_err *err)
{
	for (size_t i = 0; i < a->nfrom; i++)
		if (ba_msg_add_from(m, a->from[i], err) < 0)
			return -1;
	for (size_t i = 0; i < a->nto; i++)
		if (ba_msg_add_to(m, a->to[i], err) < 0)
			return -1;
	for (size_t i = 0; i < a->ncc; i++)
		if (ba_msg_add_cc(m, a->cc[i], err) < 0)
			return -1;
	for (size_t i = 0; i < a->nbcc; i++)
		if (ba_msg_add_bcc(m, a->bcc[i], err) < 0)
			return -1;
	if (a->subject && ba_msg_set_subject(m, a->subject, err) < 0)
		return -1;
	if (a->in_reply_to && ba_msg_set_in_reply_to(m, a->in_reply_to, err) < 0)
		return -1;
	for (size_t i = 0; i < a->nrefs; i++)
		if (ba_msg_add_references(m, a->refs[i], err) < 0)
			return -1;
	for (size_t i = 0; i < a->nheaders; i++)
		if (ba_msg_add_header(m, a->headers[i], err) < 0)
			return -1;
	ba_mime_part *body;
	if (build_body(&body, a, err) < 0)
		return -1;
	ba_msg_set_body(m, body);
	return 0;
}


int cli_cmd_compose(int argc, char **argv)
{
	struct compose_args a;
	memset(&a, 0, sizeof(a));
	int rc = parse_args(&a, argc, argv);
	if (rc) {
		args_release(&a);
		return rc;
	}
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m = NULL;
	struct ba_fd_writer *out = malloc(sizeof(*out));
	if (!out || ba_msg_new(&m, &err) < 0) {
		ba_err_set(&err, EX_OSERR, "out of memory");
		goto fail;
	}
	if (build_msg(m, &a, &err) < 0)
		goto fail;
	struct ba_msg_opts o;
	memset(&o, 0, sizeof(o));
	o.mime.eol = a.crlf ? "\r\n" : "\n";
	o.mime.flags = a.eightbit ? BA_MIME_ALLOW_8BIT : 0;
	ba_fd_writer_init(out, STDOUT_FILENO, "standard output");
	if (ba_msg_write(m, &out->base, &o, &err) < 0)
		goto fail;
	/* The printed message cannot carry them (RFC 5322 §3.6.3, kept blind): say so, or a
	 * pipe into `sendmail -t` would drop them without a word. */
	if (a.nbcc)
		fprintf(stderr, "bluearrow compose: note: Bcc recipients are not written into the "
		                "message; give them to sendmail as arguments, or use 'bluearrow send'\n");
	ba_msg_free(m);
	free(out);
	args_release(&a);
	return 0;
fail:
	ba_msg_free(m);
	free(out);
	args_release(&a);
	return cli_fail(&err);
}

int cli_compose_build(ba_msg **out, struct ba_msg_opts *o, int argc, char **argv)
{
	struct compose_args a;
	memset(&a, 0, sizeof(a));
	*out = NULL;
	int rc = parse_args(&a, argc, argv);
	if (rc) {
		args_release(&a);
		return rc;
	}
	struct ba_err err = BA_ERR_INIT;
	memset(o, 0, sizeof(*o));
	o->mime.eol = a.crlf ? "\r\n" : "\n";
	o->mime.flags = a.eightbit ? BA_MIME_ALLOW_8BIT : 0;
	if (ba_msg_new(out, &err) < 0 || build_msg(*out, &a, &err) < 0) {
		ba_msg_free(*out);
		*out = NULL;
		args_release(&a);
		return cli_fail(&err);
	}
	args_release(&a);
	return 0;
}
