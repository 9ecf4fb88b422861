/* tls_dane.c - DANE (RFC 7672) verification of a peer's chain against TLSA records
 *
 * The matching is GnuTLS's (libgnutls-dane), loaded with dlopen() on the
 * first DANE session: it links libunbound, which nothing else on the
 * sendmail path needs.  Records reach it through dane_raw_tlsa(), so it
 * does no DNS of its own (the state is made with the local resolver and the
 * root key ignored); the DNSSEC status was decided by the caller.
 *
 * RFC 7672 §3.1: DANE-EE(3) matches the leaf and nothing else is checked
 * (names and dates are the TLSA record's business); DANE-TA(2) matches the
 * issuer of the leaf, which must then chain to it and carry the MX host name
 * (§3.2.3).  libgnutls-dane matches a TA record against the leaf's direct
 * issuer only (the second certificate of the chain), so a server must send
 * the trust anchor it publishes right after its leaf.
 */
#include "tls_dane.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/dane.h>
#include <gnutls/x509.h>

#include "bluearrow/io.h"

#define DANE_SONAME "libgnutls-dane.so.0"

struct dane_api {
	int (*state_init)(dane_state_t *, unsigned int);
	void (*state_deinit)(dane_state_t);
	int (*raw_tlsa)(dane_state_t, dane_query_t *, char *const *, const int *, int, int);
	void (*query_deinit)(dane_query_t);
	int (*verify_crt_raw)(dane_state_t, const gnutls_datum_t *, unsigned,
	                      gnutls_certificate_type_t, dane_query_t, unsigned int, unsigned int,
	                      unsigned int *);
};

static struct dane_api g_dane;
static int g_dane_ok;
static pthread_once_t g_dane_once = PTHREAD_ONCE_INIT;

static void dane_load(void)
{
	static const char *const names[] = { "dane_state_init", "dane_state_deinit",
		                             "dane_raw_tlsa", "dane_query_deinit",
		                             "dane_verify_crt_raw" };
	void *sym[5];
	if (!ba_dl_open(DANE_SONAME, names, sym, 5))
		return;
	struct dane_api a;
	/* POSIX dlsym() returns void *; conversion to a function pointer goes through memcpy */
	memcpy(&a.state_init, &sym[0], sizeof(a.state_init));
	memcpy(&a.state_deinit, &sym[1], sizeof(a.state_deinit));
	memcpy(&a.raw_tlsa, &sym[2], sizeof(a.raw_tlsa));
	memcpy(&a.query_deinit, &sym[3], sizeof(a.query_deinit));
	memcpy(&a.verify_crt_raw, &sym[4], sizeof(a.verify_crt_raw));
	/* the prototypes above must be dane.h's (checked, never evaluated: no link reference) */
	(void)sizeof(a.state_init == &dane_state_init);
	(void)sizeof(a.state_deinit == &dane_state_deinit);
	(void)sizeof(a.raw_tlsa == &dane_raw_tlsa);
	(void)sizeof(a.query_deinit == &dane_query_deinit);
	(void)sizeof(a.verify_crt_raw == &dane_verify_crt_raw);
	g_dane = a;
	g_dane_ok = 1;
}

int tls_dane_available(void)
{
	pthread_once(&g_dane_once, dane_load);
	return g_dane_ok;
}

int ba_tls_tlsa_usable(const struct ba_tls_tlsa *r)
{
	if ((r->usage != 2 && r->usage != 3) || r->selector > 1 || !r->data || r->len == 0)
		return 0;
	switch (r->mtype) {
	case 0:
		return 1;
	case 1:
		return r->len == 32;
	case 2:
		return r->len == 64;
	default:
		return 0;
	}
}

/*
 * Runs libgnutls-dane over the records of the usages wanted (2 or 3).
 * Returns 1 on a match, 0 on none, -1 when the library failed.
 */
static int match(dane_state_t s, const gnutls_datum_t *chain, unsigned n,
                 const struct ba_tls_tlsa *r, size_t nr, unsigned usage)
{
	char *data[BA_TLS_TLSA_MAX + 1];
	int len[BA_TLS_TLSA_MAX + 1];
	size_t k = 0;
	int rc = -1;
	for (size_t i = 0; i < nr && k < BA_TLS_TLSA_MAX; i++) {
		if (r[i].usage != usage || !ba_tls_tlsa_usable(&r[i]) || r[i].len > 65535)
			continue;
		/* the record's RDATA, as the DNS gives it: usage, selector, type, data */
		char *d = malloc(r[i].len + 3);
		if (!d)
			goto out;
		d[0] = (char)r[i].usage;
		d[1] = (char)r[i].selector;
		d[2] = (char)r[i].mtype;
		memcpy(d + 3, r[i].data, r[i].len);
		data[k] = d;
		len[k++] = (int)r[i].len + 3;
	}
	data[k] = NULL;
	len[k] = 0;
	if (k == 0 || (usage == 2 && n < 2)) {
		rc = 0;
		goto out;
	}
	dane_query_t q = NULL;
	int e = g_dane.raw_tlsa(s, &q, data, len, 1, 0);
	if (e < 0 || !q) {
		if (q)
			g_dane.query_deinit(q);
		goto out;
	}
	unsigned verify = 0;
	e = g_dane.verify_crt_raw(s, chain, n, GNUTLS_CRT_X509, q, 0,
	                          usage == 3 ? DANE_VFLAG_ONLY_CHECK_EE_USAGE
	                                     : DANE_VFLAG_ONLY_CHECK_CA_USAGE,
	                          &verify);
	g_dane.query_deinit(q);
	if (e < 0)
		goto out;
	rc = verify == 0;
out:
	for (size_t i = 0; i < k; i++)
		free(data[i]);
	return rc;
}

/* 1 if the leaf is valid for host (RFC 6125, wildcards as GnuTLS allows them). */
static int leaf_has_name(const gnutls_datum_t *leaf, const char *host)
{
	gnutls_x509_crt_t crt;
	int ok = 0;
	if (gnutls_x509_crt_init(&crt) < 0)
		return 0;
	if (gnutls_x509_crt_import(crt, leaf, GNUTLS_X509_FMT_DER) == 0)
		ok = gnutls_x509_crt_check_hostname2(crt, host, 0) != 0;
	gnutls_x509_crt_deinit(crt);
	return ok;
}

int tls_dane_verify(const gnutls_datum_t *chain, unsigned n, const struct ba_tls_tlsa *r,
                    size_t nr, const char *host, const char *alt, char *why, size_t whysz,
                    unsigned *problems)
{
	*problems = 0;
	if (!tls_dane_available()) {
		snprintf(why, whysz, "DANE needs %s (Debian package libgnutls-dane0), which cannot "
		         "be loaded", DANE_SONAME);
		*problems = BA_TLS_P_OTHER;
		return 0;
	}
	dane_state_t s = NULL;
	if (g_dane.state_init(&s, DANE_F_IGNORE_LOCAL_RESOLVER | DANE_F_IGNORE_DNSSEC) < 0 || !s) {
		snprintf(why, whysz, "cannot set up DANE verification");
		*problems = BA_TLS_P_OTHER;
		return 0;
	}
	int ee = match(s, chain, n, r, nr, 3);
	int ta = ee == 1 ? 0 : match(s, chain, n, r, nr, 2);
	g_dane.state_deinit(s);
	if (ee == 1)
		return 3;
	if (ta == 1) {
		/* RFC 7672 §3.2.2: the MX host name or its CNAME expansion */
		if (leaf_has_name(&chain[0], host) || (alt && *alt && leaf_has_name(&chain[0], alt)))
			return 2;
		if (alt && *alt)
			snprintf(why, whysz, "certificate is valid neither for host '%s' nor for '%s' "
			         "(DANE-TA)", host, alt);
		else
			snprintf(why, whysz, "certificate is not valid for host '%s' (DANE-TA)", host);
		*problems = BA_TLS_P_WRONG_NAME;
		return 0;
	}
	if (ee < 0 || ta < 0) {
		snprintf(why, whysz, "DANE verification failed");
		*problems = BA_TLS_P_OTHER;
		return 0;
	}
	snprintf(why, whysz, "certificate matches none of the DANE TLSA records");
	*problems = BA_TLS_P_DANE_MISMATCH;
	return 0;
}
