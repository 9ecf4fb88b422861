/* tests/helper/ba-test-tool.c - core modules exposed to scripts (git t/helper style)
 *
 *   ba-test-tool b64 | qp | qp-text         encode standard input to standard output
 *   ba-test-tool rfc2047 TEXT [COL]         encoded header text (COL: column it starts at)
 *   ba-test-tool rfc2231 NAME VALUE         a MIME parameter
 *   ba-test-tool mime-type FILE             detected content type
 *   ba-test-tool mime-cte FILE [--attach] [--crlf] [--8bit]   chosen transfer encoding
 *   ba-test-tool downgrade [--crlf]         7-bit rendering of the message on standard input
 *   ba-test-tool msg [--crlf] [--8bit] [--from A] [--to B] [--subject S] [--body F]
 *                    [--html F] [--attach F]...
 *       a message like `bluearrow compose`, with a fixed clock (2023-11-14 22:13:20
 *       +0100) and a fixed random source (bytes 0, 1, 2, ...): the output is the same
 *       on every run.
 *   ba-test-tool mtasts DOMAIN [--txt RECORD]... [--txt-failed] [--trust FILE]
 *                [--connect-to HOST:PORT] [--cache DIR] [--now EPOCH] [--timeout MS]
 *       the MTA-STS policy that applies (ba_mtasts_lookup()) given the TXT records;
 *       --connect-to sends the HTTPS fetch to a test server
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/mime.h"
#include "bluearrow/msg.h"
#include "bluearrow/mtasts.h"
#include "fixed.h"

static int fail(const struct ba_err *err)
{
	fprintf(stderr, "ba-test-tool: %s\n", err->text);
	return err->code ? err->code : 70;
}

static int encode_stdin(const char *how)
{
	struct ba_err err = BA_ERR_INIT;
	static struct ba_fd_writer out;
	static struct ba_b64_writer b64;
	static struct ba_qp_writer qp;
	ba_fd_writer_init(&out, STDOUT_FILENO, "stdout");
	ba_writer *w;
	if (!strcmp(how, "b64")) {
		ba_b64_writer_init(&b64, &out.base, "\n", 76);
		w = &b64.base;
	} else {
		ba_qp_writer_init(&qp, &out.base, "\n", !strcmp(how, "qp-text") ? BA_QP_TEXT : 0);
		w = &qp.base;
	}
	char buf[4096];
	ssize_t n;
	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
		if (ba_write(w, buf, (size_t)n, &err) < 0)
			return fail(&err);
	int rc = !strcmp(how, "b64") ? ba_b64_writer_finish(&b64, &err)
	                             : ba_qp_writer_finish(&qp, &err);
	if (rc < 0 || ba_flush(&out.base, &err) < 0)
		return fail(&err);
	return 0;
}

static int cmd_mime(int argc, char **argv)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_mime_opts o = { "\n", 0, NULL, NULL, NULL };
	enum ba_mime_role role = BA_MIME_BODY;
	if (argc < 3)
		return 64;
	if (!strcmp(argv[1], "mime-type"))
		role = BA_MIME_ATTACHMENT;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--attach"))
			role = BA_MIME_ATTACHMENT;
		else if (!strcmp(argv[i], "--crlf"))
			o.eol = "\r\n";
		else if (!strcmp(argv[i], "--8bit"))
			o.flags |= BA_MIME_ALLOW_8BIT;
	}
	ba_mime_part *p;
	if (ba_mime_file_new(&p, argv[2], role, &err) < 0 || ba_mime_prepare(p, &o, &err) < 0)
		return fail(&err);
	printf("%s\n", !strcmp(argv[1], "mime-type") ? ba_mime_part_type(p)
	                                            : ba_mime_cte_name(ba_mime_part_cte(p)));
	ba_mime_free(p);
	return 0;
}

static int cmd_msg(int argc, char **argv)
{
	struct ba_err err = BA_ERR_INIT;
	unsigned counter = 0;
	struct ba_msg_opts o;
	memset(&o, 0, sizeof(o));
	o.mime.eol = "\n";
	o.mime.random = counter_random;
	o.mime.random_ctx = &counter;
	o.clock = fixed_clock;
	ba_msg *m;
	ba_mime_part *text = NULL, *html = NULL;
	const char *att[64];
	size_t natt = 0;
	if (ba_msg_new(&m, &err) < 0)
		return fail(&err);
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0;
		if (!strcmp(a, "--crlf")) {
			o.mime.eol = "\r\n";
			continue;
		} else if (!strcmp(a, "--8bit")) {
			o.mime.flags |= BA_MIME_ALLOW_8BIT;
			continue;
		}
		if (!v)
			return 64;
		i++;
		if (!strcmp(a, "--from"))
			rc = ba_msg_add_from(m, v, &err);
		else if (!strcmp(a, "--to"))
			rc = ba_msg_add_to(m, v, &err);
		else if (!strcmp(a, "--subject"))
			rc = ba_msg_set_subject(m, v, &err);
		else if (!strcmp(a, "--body"))
			rc = ba_mime_file_new(&text, v, BA_MIME_BODY, &err);
		else if (!strcmp(a, "--html"))
			rc = ba_mime_file_new(&html, v, BA_MIME_BODY, &err) < 0
			             ? -1 : ba_mime_set_type(html, "text/html", &err);
		else if (!strcmp(a, "--attach") && natt < 64)
			att[natt++] = v;
		else
			return 64;
		if (rc < 0)
			return fail(&err);
	}
	ba_mime_part *body = text ? text : html;
	if (text && html) {
		if (ba_mime_multipart_new(&body, "alternative", &err) < 0)
			return fail(&err);
		ba_mime_add(body, text, &err);
		ba_mime_add(body, html, &err);
	}
	if (natt) {
		ba_mime_part *root, *p;
		if (ba_mime_multipart_new(&root, "mixed", &err) < 0)
			return fail(&err);
		if (body)
			ba_mime_add(root, body, &err);
		for (size_t i = 0; i < natt; i++) {
			if (ba_mime_file_new(&p, att[i], BA_MIME_ATTACHMENT, &err) < 0)
				return fail(&err);
			ba_mime_add(root, p, &err);
		}
		body = root;
	}
	if (body)
		ba_msg_set_body(m, body);
	static struct ba_fd_writer out;
	ba_fd_writer_init(&out, STDOUT_FILENO, "stdout");
	if (ba_msg_write(m, &out.base, &o, &err) < 0)
		return fail(&err);
	ba_msg_free(m);
	return 0;
}

static void log_stderr(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	fprintf(stderr, "log: %s\n", msg);
}

static int cmd_mtasts(int argc, char **argv)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_log log = { log_stderr, NULL, BA_LOG_DEBUG };
	struct ba_mtasts_params p = { NULL, 10000, 0, NULL, 0, NULL, &log };
	const char *txt[16];
	size_t len[16];
	struct ba_mtasts_txt t = { 0, 0, txt, len };
	if (argc < 3)
		return 64;
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--txt-failed")) {
			t.failed = 1;
			continue;
		}
		if (!v)
			return 64;
		i++;
		if (!strcmp(a, "--txt") && t.n < 16) {
			txt[t.n] = v;
			len[t.n++] = strlen(v);
		} else if (!strcmp(a, "--trust")) {
			p.trust_file = v;
		} else if (!strcmp(a, "--connect-to")) {
			p.connect_to = v;
		} else if (!strcmp(a, "--cache")) {
			p.cache_dir = v;
		} else if (!strcmp(a, "--now")) {
			p.now = (time_t)strtoll(v, NULL, 10);
		} else if (!strcmp(a, "--timeout")) {
			p.timeout_ms = (int)strtol(v, NULL, 10);
		} else {
			return 64;
		}
	}
	struct ba_mtasts_result r;
	if (ba_mtasts_lookup(&r, argv[2], &t, &p, &err) < 0)
		return fail(&err);
	static const char *const src[] = { "none", "fetched", "cached" };
	printf("source: %s\n", src[r.source]);
	if (r.source != BA_MTASTS_SRC_NONE) {
		printf("id: %s\nmode: %s\nmax_age: %ld\nfetched: %lld\n", r.policy.id,
		       ba_mtasts_mode_name(r.policy.mode), r.policy.max_age,
		       (long long)r.policy.fetched);
		for (size_t i = 0; i < r.policy.nmx; i++)
			printf("mx: %s\n", r.policy.mx[i]);
	}
	if (r.note[0])
		printf("note: %s\n", r.note);
	ba_mtasts_policy_release(&r.policy);
	return 0;
}

int main(int argc, char **argv)
{
	struct ba_err err = BA_ERR_INIT;
	if (argc < 2) {
		fprintf(stderr, "usage: ba-test-tool COMMAND ARGS (see the source)\n");
		return 64;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "b64") || !strcmp(cmd, "qp") || !strcmp(cmd, "qp-text"))
		return encode_stdin(cmd);
	if (!strcmp(cmd, "rfc2047") || !strcmp(cmd, "rfc2231")) {
		struct ba_buf out = BA_BUF_INIT;
		size_t col = 0;
		int rc;
		if (!strcmp(cmd, "rfc2047") && argc >= 3) {
			col = argc >= 4 ? (size_t)strtoul(argv[3], NULL, 10) : 0;
			rc = ba_rfc2047_encode(&out, argv[2], strlen(argv[2]), &col, "\n", 0, &err);
		} else if (argc >= 4) {
			rc = ba_rfc2231_param(&out, argv[2], argv[3], &col, "\n", &err);
		} else {
			return 64;
		}
		if (rc < 0)
			return fail(&err);
		printf("%s\n", ba_buf_str(&out));
		ba_buf_release(&out);
		return 0;
	}
	if (!strcmp(cmd, "mime-type") || !strcmp(cmd, "mime-cte"))
		return cmd_mime(argc, argv);
	if (!strcmp(cmd, "msg"))
		return cmd_msg(argc, argv);
	if (!strcmp(cmd, "mtasts"))
		return cmd_mtasts(argc, argv);
	if (!strcmp(cmd, "downgrade")) {
		struct ba_mime_opts o = { argc > 2 && !strcmp(argv[2], "--crlf") ? "\r\n" : "\n", 0,
		                          NULL, NULL, NULL };
		static struct ba_fd_writer out;
		struct ba_fd_reader in;
		ba_fd_writer_init(&out, STDOUT_FILENO, "stdout");
		ba_fd_reader_init(&in, STDIN_FILENO, "stdin");
		if (ba_mime_downgrade(&out.base, &in.base, &o, &err) < 0 ||
		    ba_flush(&out.base, &err) < 0)
			return fail(&err);
		return 0;
	}
	fprintf(stderr, "ba-test-tool: unknown command '%s'\n", cmd);
	return 64;
}
