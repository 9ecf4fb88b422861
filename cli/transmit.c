/* cli/transmit.c - hands the spooled message to route + the SMTP engine (see transmit.h) */
#include "transmit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/log.h"
#include "bluearrow/msg_read.h"
#include "bluearrow/route.h"
#include "bluearrow/smtp.h"
#include "bluearrow/tls.h"
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

int cli_transmit(const struct cli_acct *a, const struct cli_delivery *d,
                 struct cli_transmit_result *res, struct ba_err *err)
{
	const struct ba_account *acc = a->acc;
	struct ba_log log = { log_stderr, NULL, d->verbose ? BA_LOG_PROTO : BA_LOG_WARNING };
	struct ba_route_opts ro = { &log, d->smtp_flags };
	struct ba_buf from = BA_BUF_INIT;
	struct ba_buf *rb = NULL;
	struct ba_rcpt *rcpts = NULL;
	ba_route *r = NULL;
	int rc = -1, utf8 = 0;

	if (ba_route_open(&r, acc, &ro, err) < 0)
		goto out;
	rb = calloc(d->nrcpt ? d->nrcpt : 1, sizeof(*rb));
	rcpts = calloc(d->nrcpt ? d->nrcpt : 1, sizeof(*rcpts));
	if (!rb || !rcpts) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	/* IDN domains become A-labels unless the server offers SMTPUTF8 (route) */
	if (ba_route_addr(&from, &utf8, r, ba_buf_str(&a->from), err) < 0)
		goto out;
	unsigned notify = d->notify ? d->notify : acc->dsn_notify;
	for (size_t i = 0; i < d->nrcpt; i++) {
		if (ba_route_addr(&rb[i], &utf8, r, d->rcpt[i], err) < 0)
			goto out;
		rcpts[i].addr = ba_buf_str(&rb[i]);
		rcpts[i].notify = (notify & BA_DSN_NEVER ? BA_NOTIFY_NEVER : 0) |
		                  (notify & BA_DSN_SUCCESS ? BA_NOTIFY_SUCCESS : 0) |
		                  (notify & BA_DSN_FAILURE ? BA_NOTIFY_FAILURE : 0) |
		                  (notify & BA_DSN_DELAY ? BA_NOTIFY_DELAY : 0);
	}
	int ret = d->ret ? d->ret : (int)acc->dsn_return;
	struct ba_envelope env;
	memset(&env, 0, sizeof(env));
	env.from = ba_buf_str(&from);
	env.rcpts = rcpts;
	env.nrcpts = d->nrcpt;
	env.size = ba_spool_wire_size(d->spool);
	env.body = ba_spool_flags(d->spool) & BA_SPOOL_8BIT ? BA_BODY_8BITMIME : BA_BODY_7BIT;
	/* route re-encodes to 7 bit for a server without 8BITMIME, and for lines over 998 octets */
	int force_7bit = (ba_spool_flags(d->spool) & BA_SPOOL_LONG_LINE) != 0;
	env.smtputf8 = utf8;
	env.ret = ret == BA_DSN_RET_FULL ? BA_RET_FULL : ret == BA_DSN_RET_HDRS ? BA_RET_HDRS : BA_RET_NONE;
	env.envid = d->envid;
	for (long n = 0; n < (d->repeat > 0 ? d->repeat : 1); n++) {
		struct ba_result *result = NULL;
		int s = ba_route_send(r, &env, ba_spool_reader(d->spool), force_7bit, &result, err);
		ba_buf_reset(&res->smtp_msg);
		res->smtp_code = 0;
		if (result && result->code) {
			res->reached_data = 1;
			res->smtp_code = result->code;
			ba_buf_addf(&res->smtp_msg, "%d %s", result->code, result->text);
		}
		/* partial delivery: say which recipients were refused (stderr; the exit code is 0) */
		for (size_t i = 0; s == 0 && result && i < result->nrcpts; i++)
			if (!result->rcpts[i].accepted)
				fprintf(stderr, "%s: recipient '%s' refused: %d %s\n", cli_progname,
				        result->rcpts[i].addr, result->rcpts[i].code, result->rcpts[i].text);
		ba_result_free(result);
		if (s < 0)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0 && err->smtp_code && !res->smtp_code)
		res->smtp_code = err->smtp_code;
	for (size_t i = 0; rb && i < d->nrcpt; i++)
		ba_buf_release(&rb[i]);
	free(rb);
	free(rcpts);
	ba_buf_release(&from);
	ba_route_free(r);
	return rc;
}
