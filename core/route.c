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
#include "bluearrow/secret.h"
#include "bluearrow/tls.h"

struct ba_route {
	const struct ba_account *acc;
	struct ba_smtp_params sp;
	struct ba_tls_params tp;
	struct ba_buf helo, password;
	ba_session *session;
};

/* The engine's STARTTLS hook: ba_tls_start over the session's stream. */
static int route_tls_start(void *ctx, ba_stream **stream, struct ba_err *err)
{
	struct ba_route *r = ctx;
	ba_stream *tls;
	struct ba_tls_info info;
	if (ba_tls_start(&tls, *stream, &r->tp, &info, err) < 0) {
		*stream = NULL;
		return -1;
	}
	ba_log(r->sp.log, BA_LOG_INFO, "tls: %s %s, certificate %s", info.version, info.cipher,
	       info.sha256);
	*stream = tls;
	return 0;
}

static int route_tls_binding(void *ctx, ba_stream *stream, struct ba_buf *out, const char **type)
{
	(void)ctx;
	return ba_tls_channel_binding(stream, out, type);
}

void ba_route_tls_params(struct ba_tls_params *tp, const struct ba_account *acc,
                         const struct ba_log *log)
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
	tp->timeout_ms = acc->timeout > 0 ? acc->timeout * 1000 : 0;
	tp->log = log;
}

static int route_params(ba_route *r, const struct ba_account *acc, const struct ba_route_opts *o,
                        struct ba_err *err)
{
	struct ba_smtp_params *sp = &r->sp;
	struct ba_tls_params *tp = &r->tp;
	const char *host = acc->socket ? acc->socket : acc->host;
	int timeout_ms = acc->timeout > 0 ? acc->timeout * 1000 : 0;

	if (ba_config_expand(&r->helo, acc->domain ? acc->domain : "localhost", 0, err) < 0)
		return -1;
	ba_route_tls_params(tp, acc, o->log);

	sp->variant = acc->protocol == BA_PROTO_LMTP ? BA_SMTP_LMTP : BA_SMTP_SUBMISSION;
	sp->tls = !acc->tls ? BA_TLS_OFF : acc->tls_starttls ? BA_TLS_STARTTLS : BA_TLS_IMPLICIT;
	sp->helo = ba_buf_str(&r->helo);
	sp->tls_start = route_tls_start;
	sp->tls_binding = route_tls_binding;
	sp->tls_ctx = r;
	sp->host = host;
	sp->port = acc->port;
	sp->timeout_ms = timeout_ms;
	sp->log = o->log;
	sp->flags = o->smtp_flags;
	if (acc->partial_delivery)
		sp->flags |= BA_SMTP_PARTIAL_DELIVERY;
	if (acc->tls_cert_file)
		sp->flags |= BA_SMTP_CLIENT_CERT;
	if (acc->auth) {
		enum ba_secret_source src;
		/*
		 * EXTERNAL: the credential is the TLS client certificate (RFC 4422
		 * App. A); no password, and the user (the authorization identity) is
		 * optional
		 */
		int external = acc->auth_method && strcasecmp(acc->auth_method, "external") == 0;
		if (!external && (!acc->user || !*acc->user))
			return ba_err_set(err, EX_CONFIG, "account '%s': auth is on but user is not set",
			                  acc->name);
		if (external)
			src = BA_SECRET_NONE;
		else if (ba_secret_password(&r->password, &src, acc, err) < 0)
			return -1;
		if (src == BA_SECRET_NONE && !external)
			return ba_err_set(err, EX_CONFIG,
			                  "account '%s': auth is on but no password is configured "
			                  "(password, passwordeval or netrc)",
			                  acc->name);
		sp->user = acc->user;
		sp->password = ba_buf_str(&r->password);
		sp->auth_mech = acc->auth_method;
		if (acc->auth_method && (strcasecmp(acc->auth_method, "oauthbearer") == 0 ||
		                         strcasecmp(acc->auth_method, "xoauth2") == 0))
			sp->flags |= BA_SMTP_TOKEN;
	}
	if (acc->tls && !acc->tls_certcheck)
		ba_log(o->log, BA_LOG_WARNING,
		       "tls_certcheck is off: the server's identity is not verified");
	return 0;
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
	ba_buf_init(&r->helo, 1024);
	ba_buf_init(&r->password, 0);
	if (route_params(r, acc, o, err) < 0)
		goto fail;
	struct ba_net_params np = { 0 };
	np.host = acc->socket ? acc->socket : acc->host;
	np.port = acc->port;
	np.source_ip = acc->source_ip;
	np.proxy_host = acc->socket ? NULL : acc->proxy_host;
	np.proxy_port = acc->proxy_port;
	np.timeout_ms = r->sp.timeout_ms;
	np.log = o->log;
	ba_stream *st;
	if (ba_net_connect(&st, &np, err) < 0)
		goto fail;
	if (r->sp.tls == BA_TLS_IMPLICIT && route_tls_start(r, &st, err) < 0)
		goto fail;
	if (ba_session_open(&r->session, st, &r->sp, err) < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	ba_route_free(r);
	return -1;
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
	/* DESIGN.md invariant 5: re-encode rather than send 8-bit to a 7-bit server */
	ba_log(r->sp.log, BA_LOG_INFO, "re-encoding the message to 7 bit%s",
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
		ba_err_set(err, EX_IOERR, "cannot rewind the temporary file: %s", strerror(errno));
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
	ba_buf_release(&r->helo);
	ba_buf_release_secret(&r->password);
	free(r);
}
