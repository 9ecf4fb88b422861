/* cli/output.c - how the front ends show a delivery (see output.h) */
#include "output.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

/* -v shows the dialogue as it is; warnings (tls_certcheck off...) are shown always, prefixed. */
static void log_stderr(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)ctx;
	if (level >= BA_LOG_INFO)
		fprintf(stderr, "%s\n", msg);
	else
		fprintf(stderr, "%s: %s%s\n", cli_progname, level == BA_LOG_WARNING ? "warning: " : "",
		        msg);
}

void cli_log_stderr_init(struct ba_log *log, int verbose)
{
	log->fn = log_stderr;
	log->ctx = NULL;
	log->level = verbose ? BA_LOG_PROTO : BA_LOG_WARNING;
}

int cli_report(const struct ba_submit *s, const struct ba_submit_result *res, int rc,
               const struct ba_err *err)
{
	if (rc == 0) {
		/* partial delivery: say which recipients were refused (the exit code is 0) */
		const struct ba_result *r = res->result;
		for (size_t i = 0; r && i < r->nrcpts; i++)
			if (!r->rcpts[i].accepted)
				fprintf(stderr, "%s: recipient '%s' refused: %d %s\n", cli_progname,
				        r->rcpts[i].addr, r->rcpts[i].code, r->rcpts[i].text);
		return 0;
	}
	const struct ba_result *r = res->result;
	if (ba_config_delivers_mx(s->acc) && r && r->nrcpts > 1) {
		/* direct delivery: each domain went its own way; say where each recipient stands */
		size_t bad = 0;
		for (size_t i = 0; i < r->nrcpts; i++) {
			const struct ba_rcpt_result *x = &r->rcpts[i];
			const char *fate = x->accepted ? "delivered"
			                   : x->code >= 500 ? "failed"
			                                    : "deferred";
			bad += !x->accepted;
			if (x->code)
				fprintf(stderr, "%s: recipient '%s': %s: %d%s%s %s\n", cli_progname, x->addr,
				        fate, x->code, x->enhanced[0] ? " " : "", x->enhanced, x->text);
			else
				fprintf(stderr, "%s: recipient '%s': %s: %s\n", cli_progname, x->addr, fate,
				        x->text);
		}
		fprintf(stderr, "%s: account '%s': %zu of %zu recipients not delivered\n",
		        cli_progname, s->acc->name, bad, r->nrcpts);
		return err->code ? err->code : EX_SOFTWARE;
	}
	fprintf(stderr, "%s: account '%s', server %s: %s\n", cli_progname, s->acc->name, res->server,
	        err->text);
	char prefix[200];
	snprintf(prefix, sizeof(prefix), "%s: hint: ", cli_progname);
	cli_print_hint(stderr, prefix, ba_buf_str(&res->hint));
	return err->code ? err->code : EX_SOFTWARE;
}

void cli_print_hint(FILE *f, const char *prefix, const char *lines)
{
	/* one line each, after the prefix: a configuration line stays copyable */
	while (*lines) {
		size_t n = strcspn(lines, "\n");
		fprintf(f, "%s%.*s\n", prefix, (int)n, lines);
		lines += n + (lines[n] == '\n');
	}
}

int cli_check_value(const char *cmd, const char *option, const char *value)
{
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < 32 || *c == 127)
			return cli_usage_error(cmd, "%s: control characters (CR, LF, ...) are not allowed",
			                       option);
	return 0;
}
