/* cli/transmit.c - one account's connection: net + TLS + SMTP engine (see transmit.h)
 *
 * Until the route layer (core/route.c) is merged this is the single place
 * that turns an account into engine parameters; it then becomes a call to
 * route.
 */
#include "transmit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/log.h"
#include "bluearrow/net.h"
#include "bluearrow/secret.h"
#include "bluearrow/smtp.h"
#include "bluearrow/tls.h"

struct tls_ctx {
	struct ba_tls_params tp;
	struct ba_tls_info info;
};

static int start_tls(void *ctx, ba_stream **stream, struct ba_err *err)
{
	struct tls_ctx *c = ctx;
	ba_stream *out = NULL;
	int rc = ba_tls_start(&out, *stream, &c->tp, &c->info, err); /* takes *stream */
	*stream = out;
	return rc;
}

static int binding(void *ctx, ba_stream *stream, struct ba_buf *out, const char **type)
{
	(void)ctx;
	return ba_tls_channel_binding(stream, out, type);
}

static void log_stderr(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	fprintf(stderr, "%s\n", msg);
}

static int non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* Fills the TLS parameters of an account (also used by `bluearrow check`). */
void cli_tls_params(struct ba_tls_params *tp, const struct ba_account *acc, const struct ba_log *log)
{
	memset(tp, 0, sizeof(*tp));
	tp->host = acc->tls_host_override ? acc->tls_host_override : acc->host;
	tp->trust_file = acc->tls_trust_file && strcmp(acc->tls_trust_file, "system") != 0
	                         ? acc->tls_trust_file : NULL;
	tp->crl_file = acc->tls_crl_file;
	tp->fingerprint = acc->tls_fingerprint;
	tp->cert_file = acc->tls_cert_file;
	tp->key_file = acc->tls_key_file;
	tp->priorities = acc->tls_priorities;
	tp->certcheck = acc->tls_certcheck;
	tp->min_dh_bits = acc->tls_min_dh_prime_bits;
	tp->timeout_ms = acc->timeout > 0 ? acc->timeout * 1000 : 0;
	tp->log = log;
}

int cli_transmit(const struct cli_acct *a, const struct cli_delivery *d,
                 struct cli_transmit_result *res, struct ba_err *err)
{
	const struct ba_account *acc = a->acc;
	struct ba_log log = { log_stderr, NULL, BA_LOG_PROTO };
	const struct ba_log *lp = d->verbose ? &log : NULL;
	struct ba_buf helo = BA_BUF_INIT, pass = BA_BUF_INIT;
	struct tls_ctx tc;
	struct ba_rcpt *rcpts = NULL;
	struct ba_result *result = NULL;
	ba_stream *stream = NULL;
	ba_session *s = NULL;
	int rc = -1;

	if (ba_config_expand(&helo, acc->domain ? acc->domain : "localhost", 0, err) < 0)
		goto out;
	if (acc->auth) {
		enum ba_secret_source src;
		if (ba_secret_password(&pass, &src, acc, err) < 0)
			goto out;
		if (!acc->user && !(acc->auth_method && strcmp(acc->auth_method, "external") == 0)) {
			ba_err_set(err, EX_CONFIG, "auth is on but no user is set");
			goto out;
		}
	}
	cli_tls_params(&tc.tp, acc, lp);
	memset(&tc.info, 0, sizeof(tc.info));

	struct ba_net_params np;
	memset(&np, 0, sizeof(np));
	np.host = acc->socket ? acc->socket : acc->host;
	np.port = acc->port;
	np.source_ip = acc->source_ip;
	np.proxy_host = acc->proxy_host;
	np.proxy_port = acc->proxy_port;
	np.timeout_ms = acc->timeout > 0 ? acc->timeout * 1000 : 0;
	np.log = lp;
	if (ba_net_connect(&stream, &np, err) < 0)
		goto out;
	if (acc->tls && !acc->tls_starttls && start_tls(&tc, &stream, err) < 0)
		goto out;

	struct ba_smtp_params p;
	memset(&p, 0, sizeof(p));
	p.variant = acc->protocol == BA_PROTO_LMTP ? BA_SMTP_LMTP : BA_SMTP_SUBMISSION;
	p.tls = !acc->tls ? BA_TLS_OFF : acc->tls_starttls ? BA_TLS_STARTTLS : BA_TLS_IMPLICIT;
	p.helo = ba_buf_str(&helo);
	p.tls_start = start_tls;
	p.tls_binding = binding;
	p.tls_ctx = &tc;
	if (acc->auth) {
		p.user = acc->user ? acc->user : "";
		p.password = ba_buf_str(&pass);
		p.auth_mech = acc->auth_method;
	}
	p.host = acc->host;
	p.port = acc->port;
	p.flags = (acc->partial_delivery ? BA_SMTP_PARTIAL_DELIVERY : 0) |
	          (acc->auth_method && (strcmp(acc->auth_method, "oauthbearer") == 0 ||
	                                strcmp(acc->auth_method, "xoauth2") == 0) ? BA_SMTP_TOKEN : 0) |
	          (acc->tls_cert_file ? BA_SMTP_CLIENT_CERT : 0);
	p.timeout_ms = acc->timeout > 0 ? acc->timeout * 1000 : 0;
	p.log = lp;
	if (ba_session_open(&s, stream, &p, err) < 0) { /* takes the stream */
		stream = NULL;
		goto out;
	}
	stream = NULL;

	unsigned notify = d->notify ? d->notify : acc->dsn_notify;
	int ret = d->ret ? d->ret : (int)acc->dsn_return;
	rcpts = calloc(d->nrcpt ? d->nrcpt : 1, sizeof(*rcpts));
	if (!rcpts) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	int utf8 = non_ascii(ba_buf_str(&a->from));
	for (size_t i = 0; i < d->nrcpt; i++) {
		rcpts[i].addr = d->rcpt[i];
		rcpts[i].notify = (notify & BA_DSN_NEVER ? BA_NOTIFY_NEVER : 0) |
		                  (notify & BA_DSN_SUCCESS ? BA_NOTIFY_SUCCESS : 0) |
		                  (notify & BA_DSN_FAILURE ? BA_NOTIFY_FAILURE : 0) |
		                  (notify & BA_DSN_DELAY ? BA_NOTIFY_DELAY : 0);
		utf8 |= non_ascii(d->rcpt[i]);
	}
	struct ba_envelope env;
	memset(&env, 0, sizeof(env));
	env.from = ba_buf_str(&a->from);
	env.rcpts = rcpts;
	env.nrcpts = d->nrcpt;
	env.size = ba_spool_size(d->spool);
	env.body = ba_spool_flags(d->spool) & BA_SPOOL_8BIT ? BA_BODY_8BITMIME : BA_BODY_7BIT;
	env.smtputf8 = utf8;
	env.ret = ret == BA_DSN_RET_FULL ? BA_RET_FULL : ret == BA_DSN_RET_HDRS ? BA_RET_HDRS : BA_RET_NONE;
	env.envid = d->envid;
	rc = ba_session_send(s, &env, ba_spool_reader(d->spool), &result, err);
	if (result && result->code) {
		res->reached_data = 1;
		res->smtp_code = result->code;
		ba_buf_addf(&res->smtp_msg, "%d %s", result->code, result->text);
	} else if (err->smtp_code) {
		res->smtp_code = err->smtp_code;
	}
out:
	if (rc < 0 && err->smtp_code && !res->smtp_code)
		res->smtp_code = err->smtp_code;
	ba_result_free(result);
	ba_session_free(s);
	ba_stream_free(stream);
	free(rcpts);
	ba_buf_release(&helo);
	ba_buf_release_secret(&pass);
	return rc;
}
