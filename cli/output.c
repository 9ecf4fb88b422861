/* cli/output.c - how the front ends show a delivery (see output.h) */
#include "output.h"

#include <stdio.h>

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
	fprintf(stderr, "%s: account '%s', server %s: %s\n", cli_progname, s->acc->name, res->server,
	        err->text);
	return err->code ? err->code : EX_SOFTWARE;
}

int cli_check_value(const char *cmd, const char *option, const char *value)
{
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < 32 || *c == 127)
			return cli_usage_error(cmd, "%s: control characters (CR, LF, ...) are not allowed",
			                       option);
	return 0;
}
