/* route.c - account -> connection, TLS and session (layer 4: the one join) */
#include "bluearrow/route.h"

#include <errno.h>
#include <fcntl.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>

#include "bluearrow/mime.h"
#include "bluearrow/net.h"
#include "bluearrow/oauth2.h"
#include "bluearrow/secret.h"
#include "bluearrow/tls.h"
#include "route_probe.h"

struct ba_route {
	const struct ba_account *acc;
	struct ba_route_params p;
	struct ba_buf password;
	struct ba_route_report *report; /* optional, the caller's */
	struct ba_route_target own;     /* the account's host or socket: the default plan */
	char server[300];
	ba_session *session;
};

/* The engine's STARTTLS hook (and implicit TLS): ba_tls_start over the session's stream. */
static int route_tls_start(void *ctx, ba_stream **stream, struct ba_err *err)
{
	struct ba_route *r = ctx;
	ba_stream *tls;
	struct ba_tls_info info;
	memset(&info, 0, sizeof(info));
	int rc = ba_tls_start(&tls, *stream, &r->p.tls, &info, err);
	if (r->report) {
		r->report->tls_attempted = 1;
		r->report->tls = info;
		snprintf(r->report->tls_host, sizeof(r->report->tls_host), "%s",
		         r->p.tls.host ? r->p.tls.host : "");
	}
	if (rc < 0) {
		*stream = NULL;
		return -1;
	}
	ba_log(r->p.smtp.log, BA_LOG_INFO, "tls: %s %s, certificate %s", info.version, info.cipher,
	       info.sha256);
	*stream = tls;
	return 0;
}

static int route_tls_binding(void *ctx, ba_stream *stream, struct ba_buf *out, const char **type)
{
	(void)ctx;
	return ba_tls_channel_binding(stream, out, type);
}

static void tls_params(struct ba_tls_params *tp, const struct ba_account *acc,
                       const struct ba_log *log, int timeout_ms)
{
	memset(tp, 0, sizeof(*tp));
	/* the name to verify: tls_host_override, else the host (a unix socket has no name) */
	tp->host = acc->tls_host_override ? acc->tls_host_override
	           : acc->host                ? acc->host
	                                      : acc->socket;
	tp->trust_file = acc->tls_trust_file; /* "system" = the system store (tls.h) */
	tp->crl_file = acc->tls_crl_file;
	tp->fingerprint = acc->tls_fingerprint;
	tp->cert_file = acc->tls_cert_file;
	tp->key_file = acc->tls_key_file;
	tp->priorities = acc->tls_priorities;
	tp->certcheck = acc->tls_certcheck;
	tp->min_dh_bits = acc->tls_min_dh_prime_bits;
	tp->timeout_ms = timeout_ms;
	tp->log = log;
}

static int is_token_method(const char *m)
{
	return m && (strcasecmp(m, "oauthbearer") == 0 || strcasecmp(m, "xoauth2") == 0);
}

int ba_route_params_init(struct ba_route_params *p, const struct ba_account *acc,
                         const struct ba_log *log, unsigned smtp_flags, int timeout_ms,
                         struct ba_err *err)
{
	memset(p, 0, sizeof(*p));
	ba_buf_init(&p->helo, 1024);
	struct ba_smtp_params *sp = &p->smtp;
	int timeout = acc->timeout > 0 ? acc->timeout * 1000 : 0;
	if (timeout_ms > 0 && (timeout == 0 || timeout > timeout_ms))
		timeout = timeout_ms;

	if (ba_config_expand(&p->helo, acc->domain ? acc->domain : "localhost", 0, err) < 0)
		return -1;
	tls_params(&p->tls, acc, log, timeout);

	p->net.host = acc->socket ? acc->socket : acc->host;
	p->net.port = acc->port;
	p->net.source_ip = acc->source_ip;
	p->net.proxy_host = acc->socket ? NULL : acc->proxy_host;
	p->net.proxy_port = acc->proxy_port;
	p->net.timeout_ms = timeout;
	p->net.log = log;

	sp->variant = acc->protocol == BA_PROTO_LMTP ? BA_SMTP_LMTP : BA_SMTP_SUBMISSION;
	sp->tls = !acc->tls ? BA_TLS_OFF : acc->tls_starttls ? BA_TLS_STARTTLS : BA_TLS_IMPLICIT;
	sp->helo = ba_buf_str(&p->helo);
	sp->host = p->net.host;
	sp->port = acc->port;
	sp->timeout_ms = timeout;
	sp->log = log;
	sp->flags = smtp_flags;
	if (acc->partial_delivery)
		sp->flags |= BA_SMTP_PARTIAL_DELIVERY;
	if (acc->tls_cert_file)
		sp->flags |= BA_SMTP_CLIENT_CERT;
	if (acc->auth) {
		/*
		 * EXTERNAL: the credential is the TLS client certificate (RFC 4422
		 * App. A); no password, and the user (the authorization identity) is
		 * optional
		 */
		int external = acc->auth_method && strcasecmp(acc->auth_method, "external") == 0;
		if (!external && (!acc->user || !*acc->user))
			return ba_err_set(err, EX_CONFIG, "account '%s': auth is on but user is not set",
			                  acc->name);
		p->needs_password = !external;
		sp->user = acc->user ? acc->user : "";
		sp->auth_mech = acc->auth_method;
		if (is_token_method(acc->auth_method))
			sp->flags |= BA_SMTP_TOKEN;
	}
	return 0;
}

void ba_route_params_release(struct ba_route_params *p)
{
	ba_buf_release(&p->helo);
	memset(p, 0, sizeof(*p));
}

/* Errors after which another host of the plan may do better (RFC 5321 §5.1: try the next MX). */
static int try_next(const struct ba_err *e)
{
	switch (e->code) {
	case EX_NOPERM:  /* the credentials: another host of the service says the same */
	case EX_CONFIG:
	case EX_USAGE:
	case EX_OSERR:
		return 0;
	default:
		return 1;
	}
}

/* Connects to one target and opens the session. */
static int open_target(ba_route *r, const struct ba_route_target *t, struct ba_err *err)
{
	struct ba_net_params np = r->p.net;
	np.host = t->host;
	np.port = t->port;
	r->p.smtp.host = t->host;
	r->p.smtp.port = t->port;
	if (t != &r->own && !r->acc->tls_host_override)
		r->p.tls.host = t->host; /* a planned host is verified by its own name */
	if (t->host[0] == '/')
		snprintf(r->server, sizeof(r->server), "%s", t->host);
	else
		snprintf(r->server, sizeof(r->server), "%s:%u", t->host, t->port);
	if (r->report) {
		memcpy(r->report->server, r->server, sizeof(r->server));
		r->report->port = t->host[0] == '/' ? 0 : t->port;
	}
	ba_stream *st;
	if (ba_net_connect(&st, &np, err) < 0)
		return -1;
	if (r->p.smtp.tls == BA_TLS_IMPLICIT && route_tls_start(r, &st, err) < 0)
		return -1;
	/* a greeting that does not come may mean a port that expects implicit TLS (route_hint.c) */
	if (r->p.smtp.tls != BA_TLS_IMPLICIT && t->port != 25 &&
	    route_await_greeting(st, &np, &r->p.tls,
	                         r->report ? &r->report->wants_implicit_tls : NULL, err) < 0) {
		ba_stream_free(st);
		return -1;
	}
	return ba_session_open(&r->session, st, &r->p.smtp, err);
}

/* The account's OAuth2 access token as the password (oauth2.h); flags: BA_OAUTH2_REFRESH. */
static int route_token(ba_route *r, const struct ba_route_opts *o, unsigned flags,
                       struct ba_err *err)
{
	struct ba_oauth2_opts oo = { o->log, r->p.net.timeout_ms, flags };
	ba_buf_release_secret(&r->password);
	ba_buf_init(&r->password, 0);
	r->p.smtp.password = NULL;
	if (ba_oauth2_token(&r->password, r->acc, &oo, err) < 0)
		return -1;
	r->p.smtp.password = ba_buf_str(&r->password);
	return 0;
}

/*
 * The server refused the OAuth2 token: a 5xx reply to AUTH (535, or the
 * 334 error challenge of RFC 7628 §3.2.2 followed by one).  It may have
 * expired or been revoked before the time cached with it.
 */
static int token_refused(const ba_route *r, const struct ba_err *e)
{
	return ba_oauth2_enabled(r->acc) && e->code == EX_NOPERM && e->smtp_code >= 500 &&
	       e->smtp_code < 600;
}

/* Appends "server: reason" of a failed target to the merged text. */
static void merge_reason(struct ba_buf *m, const char *server, const struct ba_err *e)
{
	ba_buf_addf(m, "%s%s: %s", m->len ? "; " : "", server, e->text);
}

int ba_route_open(ba_route **out, const struct ba_account *acc, const struct ba_route_opts *o,
                  struct ba_err *err)
{
	static const struct ba_route_opts none;
	*out = NULL;
	if (!o)
		o = &none;
	ba_route *r = calloc(1, sizeof *r);
	if (!r)
		return ba_err_set(err, EX_OSERR, "out of memory");
	r->acc = acc;
	r->report = o->report;
	if (r->report)
		memset(r->report, 0, sizeof(*r->report));
	ba_buf_init(&r->password, 0);
	if (ba_route_params_init(&r->p, acc, o->log, o->smtp_flags, o->timeout_ms, err) < 0)
		goto fail;
	r->p.smtp.progress = o->progress;
	r->p.smtp.progress_ctx = o->progress_ctx;
	r->p.smtp.data_end = o->data_end;
	r->p.smtp.data_end_ctx = o->data_end_ctx;
	if (o->cancel_fd) {
		r->p.net.cancel_fd = o->cancel_fd;
		r->p.smtp.cancel_fd = *o->cancel_fd;
		r->p.smtp.flags |= BA_SMTP_CANCEL;
	}
	r->p.smtp.tls_start = route_tls_start;
	r->p.smtp.tls_binding = route_tls_binding;
	r->p.smtp.tls_ctx = r;
	if (r->p.needs_password && ba_oauth2_enabled(acc)) {
		if (route_token(r, o, 0, err) < 0)
			goto fail;
	} else if (r->p.needs_password) {
		enum ba_secret_source src;
		if (ba_secret_password(&r->password, &src, acc, err) < 0)
			goto fail;
		if (src == BA_SECRET_NONE && o->ask_password) {
			if (o->ask_password(o->ask_password_ctx, r->p.smtp.user, r->p.net.host,
			                    &r->password, err) < 0)
				goto fail;
			src = BA_SECRET_CONFIG;
		}
		if (src == BA_SECRET_NONE) {
			ba_err_set(err, EX_CONFIG,
			           "account '%s': auth is on but no password is configured "
			           "(set password or passwordeval in the account, add a netrc "
			           "entry, or run it on a terminal to be asked)",
			           acc->name);
			goto fail;
		}
		r->p.smtp.password = ba_buf_str(&r->password);
	}
	if (acc->tls && !acc->tls_certcheck)
		ba_log(o->log, BA_LOG_WARNING,
		       "tls_certcheck is off: the server's identity is not verified");

	/* the plan: the caller's (e.g. the MX hosts of a domain), else the account's one server */
	r->own.host = r->p.net.host;
	r->own.port = r->p.net.port;
	const struct ba_route_target *plan = o->nplan ? o->plan : &r->own;
	size_t nplan = o->nplan ? o->nplan : 1;
	struct ba_buf merged = BA_BUF_INIT;
	int rc = -1, retried = 0;
again:
	for (size_t i = 0; i < nplan && rc < 0; i++) {
		rc = open_target(r, &plan[i], err);
		if (rc == 0)
			break;
		merge_reason(&merged, r->server, err);
		if (!try_next(err))
			break;
		if (i + 1 < nplan)
			ba_log(o->log, BA_LOG_INFO, "%s: %s; trying the next host", r->server, err->text);
	}
	/* a refused token is refreshed once, and tried again on a new connection */
	if (rc < 0 && !retried && token_refused(r, err)) {
		retried = 1;
		ba_log(o->log, BA_LOG_INFO, "%s: the OAuth2 token was refused; refreshing it",
		       r->server);
		if (route_token(r, o, BA_OAUTH2_REFRESH, err) == 0) {
			ba_buf_reset(&merged);
			goto again;
		}
	}
	if (rc < 0 && nplan > 1 && !ba_buf_failed(&merged)) {
		int code = err->code, smtp = err->smtp_code;
		char enh[sizeof(err->enhanced)];
		memcpy(enh, err->enhanced, sizeof(enh));
		ba_err_set(err, code, "%s", ba_buf_str(&merged));
		err->smtp_code = smtp;
		memcpy(err->enhanced, enh, sizeof(enh));
	}
	ba_buf_release(&merged);
	if (rc < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	ba_route_free(r);
	return -1;
}

const char *ba_route_server(const ba_route *r)
{
	return r->server;
}

ba_session *ba_route_session(ba_route *r)
{
	return r->session;
}

int ba_route_addr(struct ba_buf *out, int *utf8, ba_route *r, const char *addr,
                  struct ba_err *err)
{
	ba_buf_reset(out);
	const char *at = strrchr(addr, '@');
	int local8 = 0, dom8 = 0;
	for (const char *c = addr; *c; c++)
		if ((unsigned char)*c >= 0x80)
			*(at && c > at ? &dom8 : &local8) = 1;
	if (!local8 && !dom8)
		return ba_buf_addstr(out, addr) < 0 ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
	if (ba_session_caps(r->session) & BA_CAP_SMTPUTF8) {
		*utf8 = 1; /* RFC 6531: the server takes UTF-8 addresses as they are */
		return ba_buf_addstr(out, addr) < 0 ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
	}
	if (local8)
		return ba_err_set(err, EX_DATAERR,
		                  "address '%s' has a non-ASCII local part and the server does not "
		                  "offer SMTPUTF8",
		                  addr);
	char *ascii = NULL;
	int rc = idn2_to_ascii_8z(at + 1, &ascii, IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK)
		return ba_err_set(err, EX_DATAERR, "address '%s': invalid domain: %s", addr,
		                  idn2_strerror(rc));
	ba_buf_add(out, addr, (size_t)(at + 1 - addr));
	ba_buf_addstr(out, ascii);
	idn2_free(ascii);
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

int ba_route_send(ba_route *r, const struct ba_envelope *env, ba_reader *body, int force_7bit,
                  struct ba_result **out, struct ba_err *err)
{
	*out = NULL;
	unsigned caps = ba_session_caps(r->session);
	if (!force_7bit && (env->body != BA_BODY_8BITMIME || (caps & BA_CAP_8BITMIME)))
		return ba_session_send(r->session, env, body, out, err);
	/* re-encode rather than send 8-bit to a 7-bit server (RFC 6152 §3) */
	ba_log(r->p.smtp.log, BA_LOG_INFO, "re-encoding the message to 7 bit%s",
	       force_7bit ? " (a line is over 998 octets)" : " (the server lacks 8BITMIME)");
	int fd;
	if (ba_tmpfile(&fd, err) < 0)
		return -1;
	struct ba_fd_writer *w = malloc(sizeof *w);
	if (!w) {
		close(fd);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	ba_fd_writer_init(w, fd, "temporary file");
	struct ba_mime_opts mo = { 0 };
	mo.eol = "\r\n";
	int rc = -1;
	off_t size;
	if (ba_mime_downgrade(&w->base, body, &mo, err) < 0 || ba_flush(&w->base, err) < 0)
		goto out;
	size = lseek(fd, 0, SEEK_CUR);
	if (size < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		ba_err_set(err, EX_IOERR, "cannot rewind the temporary file: %s", ba_strerror_t(errno));
		goto out;
	}
	struct ba_envelope e7 = *env;
	e7.body = BA_BODY_7BIT;
	e7.size = (uint64_t)size;
	struct ba_fd_reader fr;
	ba_fd_reader_init(&fr, fd, "temporary file");
	rc = ba_session_send(r->session, &e7, &fr.base, out, err);
out:
	free(w);
	close(fd);
	return rc;
}

void ba_route_free(ba_route *r)
{
	if (!r)
		return;
	ba_session_free(r->session);
	ba_route_params_release(&r->p);
	ba_buf_release_secret(&r->password);
	free(r);
}
