/* route_hint.c - what to change when a route fails: the probes and the hint lines
 *
 * Two mistakes in a mail account are common and look alike from the client's
 * side: the TLS mode does not match the port (STARTTLS against a port that
 * expects implicit TLS waits for a greeting that never comes; implicit TLS
 * against a plain port gets "220" instead of a ServerHello), and a
 * certificate that cannot be verified.  The probes here recognise the first
 * early, ba_route_hint() turns both into the lines to change.
 */
#include "bluearrow/route.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "route_probe.h"

#define GREETING_WAIT_MS 2000 /* a submission server greets at once; 2 s is generous */
#define PROBE_MAX_MS 3000

/* 1 if a fresh connection completes a TLS handshake (no verification: only the protocol). */
static int probe_tls(const struct ba_net_params *np, const struct ba_tls_params *tp,
                     int timeout_ms)
{
	struct ba_err e = BA_ERR_INIT;
	struct ba_net_params n = *np;
	n.timeout_ms = timeout_ms;
	n.log = NULL;
	ba_stream *s = NULL, *t = NULL;
	if (ba_net_connect(&s, &n, &e) < 0)
		return 0;
	/* only whether the port speaks TLS: nothing of the account goes to an unverified peer */
	struct ba_tls_params p;
	memset(&p, 0, sizeof(p));
	p.host = tp->host;
	p.priorities = tp->priorities;
	p.certcheck = 0;
	p.timeout_ms = timeout_ms;
	int ok = ba_tls_start(&t, s, &p, NULL, &e) == 0;
	ba_stream_free(t);
	return ok;
}

int route_await_greeting(ba_stream *st, const struct ba_net_params *np,
                         const struct ba_tls_params *tp, int *wants_tls, struct ba_err *err)
{
	int fd = ba_fd_stream_fd(st);
	int timeout = np->timeout_ms > 0 ? np->timeout_ms : 60000;
	int wait = timeout / 2 < GREETING_WAIT_MS ? timeout / 2 : GREETING_WAIT_MS;
	if (fd < 0 || wait <= 0)
		return 0;
	struct pollfd pf[2] = { { fd, POLLIN, 0 }, { -1, POLLIN, 0 } };
	if (np->cancel_fd)
		pf[1].fd = *np->cancel_fd;
	int64_t until = ba_deadline(wait);
	int n;
	for (;;) {
		int64_t left = until - ba_now_ms();
		n = poll(pf, 2, left > 0 ? (int)left : 0);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n != 0)
		return 0; /* data, a close, an error or a cancel: the session sees it */
	int probe_ms = timeout - wait < PROBE_MAX_MS ? timeout - wait : PROBE_MAX_MS;
	if (probe_ms <= 0 || !probe_tls(np, tp, probe_ms))
		return 0;
	if (wants_tls)
		*wants_tls = 1;
	char where[40] = "the socket";
	if (np->host && np->host[0] != '/')
		snprintf(where, sizeof(where), "port %u", np->port);
	return ba_err_set(err, EX_TEMPFAIL,
	                  "no greeting within %d s, and %s answers a TLS handshake: the server "
	                  "expects implicit TLS (RFC 8314)",
	                  (wait + 999) / 1000, where);
}

/* ---- the hint lines ---- */

/* A name usable as a configuration value as it is: a host name or an address, no wildcard. */
static int plain_name(const char *s)
{
	if (!*s || strlen(s) > 253)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == ':'))
			return 0;
	return 1;
}

static void hint_names(struct ba_buf *out, const struct ba_route_report *rep)
{
	const struct ba_tls_info *i = &rep->tls;
	if (!i->nnames) {
		ba_buf_addf(out, "the certificate is not valid for '%s' and names no host\n",
		            rep->tls_host);
		return;
	}
	ba_buf_addf(out, "the certificate is not valid for '%s'; it holds ", rep->tls_host);
	for (unsigned k = 0; k < i->nnames; k++)
		ba_buf_addf(out, "%s'%s'", k ? ", " : "", i->names[k]);
	ba_buf_addstr(out, i->names_more ? " and more\n" : "\n");
	const char *use = NULL;
	for (unsigned k = 0; k < i->nnames && !use; k++)
		if (plain_name(i->names[k]))
			use = i->names[k];
	if (use)
		ba_buf_addf(out, "if this is the server you mean (reached by an address or another "
		                 "name), verify the name it holds:\n  tls_host_override %s\n", use);
	else
		ba_buf_addstr(out, "if this is the server you mean, set 'host' to a name the "
		                   "certificate holds\n");
}

/* Lines about a refused certificate. */
static void hint_cert(struct ba_buf *out, const struct ba_route_report *rep)
{
	const struct ba_tls_info *i = &rep->tls;
	unsigned p = i->problems;
	int pin = i->sha256[0] != 0;
	if (p & BA_TLS_P_PIN_MISMATCH) {
		ba_buf_addstr(out, "the certificate is not the one pinned with tls_fingerprint: "
		                   "it was replaced, or someone is in between; only if you have "
		                   "checked the new one, pin it instead:\n");
		if (pin)
			ba_buf_addf(out, "  tls_fingerprint %s\n", i->sha256);
		return;
	}
	if (p & BA_TLS_P_REVOKED) {
		ba_buf_addstr(out, "the certificate has been revoked by its issuer: do not trust "
		                   "it; tell the server's administrator\n");
		return;
	}
	if (p & BA_TLS_P_WRONG_NAME)
		hint_names(out, rep);
	if (p & BA_TLS_P_SELF_SIGNED)
		ba_buf_addstr(out, "the certificate is self-signed: no authority vouches for it; "
		                   "with a copy of it (a PEM file) you can trust it as its own CA:\n"
		                   "  tls_trust_file /path/to/cert.pem\n");
	else if (p & BA_TLS_P_UNKNOWN_ISSUER)
		ba_buf_addf(out, "the certificate's issuer ('%s') is not trusted; if the server uses "
		                 "a private CA, give the CA's certificate (a PEM file):\n"
		                 "  tls_trust_file /path/to/ca.pem\n", i->issuer);
	if (p & BA_TLS_P_EXPIRED)
		ba_buf_addf(out, "the certificate expired on %s: the server's administrator must "
		                 "renew it (or this machine's clock is wrong)\n", i->not_after);
	if (p & BA_TLS_P_NOT_YET_VALID)
		ba_buf_addf(out, "the certificate is valid only from %s: check this machine's "
		                 "clock\n", i->not_before);
	if (pin)
		ba_buf_addf(out, "%s this certificate (compare the fingerprint with the one the "
		                 "server's administrator gives), pin it:\n  tls_fingerprint %s\n",
		            p & (BA_TLS_P_UNKNOWN_ISSUER | BA_TLS_P_WRONG_NAME) ? "or, if you trust"
		                                                                : "if you trust",
		            i->sha256);
}

static size_t count_lines(const struct ba_buf *b, size_t from)
{
	size_t n = 0;
	for (size_t k = from; k < b->len; k++)
		n += b->data[k] == '\n';
	return n;
}

int ba_route_hint(struct ba_buf *out, const struct ba_account *acc, const struct ba_err *err,
                  const struct ba_route_report *rep)
{
	size_t start = out->len;
	if (!rep || (err && err->code == 0))
		return 0;
	char where[40] = "the server";
	if (!acc->socket)
		snprintf(where, sizeof(where), "the server on port %u", rep->port ? rep->port
		                                                                  : acc->port);
	if (rep->wants_implicit_tls) {
		if (acc->tls)
			ba_buf_addf(out, "%s expects implicit TLS (RFC 8314), not STARTTLS; in the "
			                 "account, set:\n  tls_starttls off\n"
			                 "or keep STARTTLS and use the server's STARTTLS port (usually "
			                 "587)\n", where);
		else
			ba_buf_addf(out, "%s expects TLS from the start (implicit TLS, RFC 8314); in "
			                 "the account, set:\n  tls on\n  tls_starttls off\n", where);
	} else if (rep->tls.plain[0]) {
		ba_buf_addf(out, "%s speaks plain SMTP ('%s'), not implicit TLS; to use STARTTLS "
		                 "on this port, set:\n  tls_starttls on\n"
		                 "or keep implicit TLS and use the server's implicit TLS port "
		                 "(usually 465)\n", where, rep->tls.plain);
	} else if (rep->tls_attempted && rep->tls.problems) {
		hint_cert(out, rep);
	}
	if (ba_buf_failed(out))
		return -1;
	return (int)count_lines(out, start);
}
