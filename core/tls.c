/* tls.c - GnuTLS client sessions over any ba_stream
 *
 * GnuTLS reads and writes through push/pull callbacks over the inner
 * stream, so TLS works the same over TCP, unix sockets and SOCKS5.  The
 * callbacks use the deadline stored in the session: the handshake's, then
 * the one passed to each read or write.  Verification runs inside the
 * handshake (a verify callback), so a bad certificate is refused with an
 * alert before any application data.
 */
#include "bluearrow/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "bluearrow/encode.h"
#include "tls_dane.h"

#define TLS_DEFAULT_TIMEOUT_MS 60000
#define TLS_RECORD_MAX 16384
#define TLS_BYE_TIMEOUT_MS 1000

struct tls_stream {
	ba_stream base;
	ba_stream *inner;
	gnutls_session_t sess;
	gnutls_certificate_credentials_t cred;
	int64_t deadline;          /* for the push/pull callbacks */
	struct ba_err ioerr;       /* what the inner stream reported last */
	int established;
	int broken;                /* a fatal error: no close_notify on free */
	struct ba_tls_info *info;  /* during ba_tls_start only */
	unsigned char pin[32];
	size_t pin_len;            /* 32 (SHA-256), 20 (SHA-1) or 16 (MD5) */
	int have_pin;
	unsigned char first[128];  /* the first bytes the server sent during the handshake */
	size_t first_len;
	int shared_cred;           /* cred is the shared system-store one */
	char vfail[BA_ERR_TEXT_MAX]; /* set by the verify callback */
	char host[256];
	char dane_alt[256];        /* DANE-TA: another acceptable name, or "" */
	int cancel_fd;             /* -1: none; also watched by the inner stream */
	ba_stream_wait_fn *wait_fn; /* NULL: none; the inner stream calls tls_waiting() */
	void *wait_ctx;
	size_t wait_done, wait_len; /* plaintext of the write under way */
	const struct ba_tls_tlsa *tlsa; /* DANE: during ba_tls_start only */
	size_t ntlsa;
	int dane_usage;            /* the usage of the TLSA record that matched */
	int report_only;           /* a refused certificate is logged, not fatal */
	int soft_failed;           /* ... and was refused */
	const struct ba_log *log;
};

static const struct ba_stream_ops tls_ops;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void global_init(void)
{
	init_rc = gnutls_global_init();
}

/* ---- transport over the inner stream ---- */

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct tls_stream *t = ptr;
	if (ba_stream_write(t->inner, data, len, t->deadline, &t->ioerr) < 0) {
		gnutls_transport_set_errno(t->sess, EIO);
		return -1;
	}
	return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct tls_stream *t = ptr;
	ssize_t k = ba_stream_read(t->inner, data, len, t->deadline, &t->ioerr);
	if (k < 0)
		gnutls_transport_set_errno(t->sess, EIO);
	if (k > 0 && !t->established && t->first_len < sizeof(t->first)) {
		/* kept to recognise a server that answers in plain text ("220 ...") */
		size_t n = sizeof(t->first) - t->first_len;
		if (n > (size_t)k)
			n = (size_t)k;
		memcpy(t->first + t->first_len, data, n);
		t->first_len += n;
	}
	return k;
}

/* The pull above blocks until the deadline itself; GnuTLS's own timers are off. */
static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
	(void)ptr;
	(void)ms;
	return 1;
}

/*
 * gnutls_strerror() in the style of our messages: "An unexpected TLS packet
 * was received." becomes "an unexpected TLS packet was received".
 */
static const char *tls_strerror(int r)
{
	static _Thread_local char buf[160];
	if (r == GNUTLS_E_UNEXPECTED_PACKET || r == GNUTLS_E_UNSUPPORTED_VERSION_PACKET)
		return "the server does not speak TLS or sent unexpected data";
	snprintf(buf, sizeof(buf), "%s", gnutls_strerror(r));
	size_t n = strlen(buf);
	if (n && buf[n - 1] == '.')
		buf[n - 1] = 0;
	if (buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'a' && buf[1] <= 'z')
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

/* ---- certificate facts ---- */

static void hex_colon(char *out, size_t outsz, const unsigned char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 3 < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, i ? ":%02X" : "%02X", p[i]);
	out[o] = 0;
}

static void fmt_time(char *out, size_t outsz, time_t t)
{
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    !strftime(out, outsz, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, outsz, "?");
}

/* A DN of the peer's certificate: its text, cleaned (it reaches terminals and logs). */
static void copy_datum(char *out, size_t outsz, gnutls_datum_t *d)
{
	struct ba_buf b;
	ba_buf_init(&b, outsz * 4);
	ba_log_clean(&b, d->data ? (const char *)d->data : "", d->data ? d->size : 0);
	snprintf(out, outsz, "%s", ba_buf_str(&b));
	ba_buf_release(&b);
	gnutls_free(d->data);
	d->data = NULL;
}

/* SHA-256 of the peer's leaf certificate (DER). Returns 0, or -1 when the peer sent none. */
static int peer_sha256(gnutls_session_t sess, unsigned char md[32])
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(sess, &n);
	size_t sz = 32;
	if (!certs || n == 0)
		return -1;
	if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], md, &sz) < 0 || sz != 32)
		return -1;
	return 0;
}

/* Adds one name of the certificate, cleaned: it is the peer's text. */
static void add_name(struct ba_tls_info *info, const char *p, size_t n)
{
	if (info->nnames >= BA_TLS_NAMES_MAX) {
		info->names_more = 1;
		return;
	}
	struct ba_buf b;
	ba_buf_init(&b, sizeof(info->names[0]) * 4);
	ba_log_clean(&b, p, n);
	snprintf(info->names[info->nnames++], sizeof(info->names[0]), "%s", ba_buf_str(&b));
	ba_buf_release(&b);
}

/* The names a client may verify: subjectAltName DNS and IP entries (RFC 6125 §6.4), else CN. */
static void fill_names(gnutls_x509_crt_t crt, struct ba_tls_info *info)
{
	char buf[1024];
	for (unsigned seq = 0; seq < 64; seq++) {
		size_t sz = sizeof(buf);
		unsigned critical = 0;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &sz, &critical);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_DNSNAME) {
			add_name(info, buf, strnlen(buf, sz));
		} else if (type == GNUTLS_SAN_IPADDRESS && (sz == 4 || sz == 16)) {
			char ip[INET6_ADDRSTRLEN];
			if (inet_ntop(sz == 4 ? AF_INET : AF_INET6, buf, ip, sizeof(ip)))
				add_name(info, ip, strlen(ip));
		}
	}
	if (info->nnames || info->names_more)
		return;
	size_t sz = sizeof(buf);
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &sz) == 0)
		add_name(info, buf, strnlen(buf, sz));
}

/* Fills what the leaf certificate tells (subject, issuer, dates, fingerprint, names). */
static void fill_cert_info(gnutls_session_t sess, struct ba_tls_info *info)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(sess, &n);
	unsigned char md[32];
	if (!certs || n == 0)
		return;
	if (peer_sha256(sess, md) == 0)
		hex_colon(info->sha256, sizeof(info->sha256), md, sizeof(md));
	gnutls_x509_crt_t crt;
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0) {
		gnutls_datum_t d = { NULL, 0 };
		if (gnutls_x509_crt_get_dn3(crt, &d, 0) == 0)
			copy_datum(info->subject, sizeof(info->subject), &d);
		if (gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) == 0)
			copy_datum(info->issuer, sizeof(info->issuer), &d);
		fmt_time(info->not_before, sizeof(info->not_before),
		         gnutls_x509_crt_get_activation_time(crt));
		fmt_time(info->not_after, sizeof(info->not_after),
		         gnutls_x509_crt_get_expiration_time(crt));
		info->nnames = 0;
		info->names_more = 0;
		fill_names(crt, info);
	}
	gnutls_x509_crt_deinit(crt);
}

/* 1 if the leaf certificate names itself as issuer. */
static int peer_self_signed(gnutls_session_t sess)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(sess, &n);
	gnutls_x509_crt_t crt;
	int self = 0;
	if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return 0;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0)
		self = gnutls_x509_crt_check_issuer(crt, crt) != 0;
	gnutls_x509_crt_deinit(crt);
	return self;
}

/* One reason per verification status, the most fundamental first. */
static const char *status_reason(struct tls_stream *t, unsigned status, char *buf, size_t bufsz)
{
	if (status & GNUTLS_CERT_REVOKED)
		return "certificate has been revoked";
	if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
		return peer_self_signed(t->sess) ? "certificate is self-signed and not trusted"
		                                 : "certificate issuer is unknown";
	if (status & GNUTLS_CERT_SIGNER_NOT_CA)
		return "certificate issuer is not a CA";
	if (status & GNUTLS_CERT_SIGNATURE_FAILURE)
		return "certificate signature is invalid";
	if (status & GNUTLS_CERT_INSECURE_ALGORITHM)
		return "certificate is signed with an insecure algorithm";
	if (status & GNUTLS_CERT_EXPIRED)
		return "certificate has expired";
	if (status & GNUTLS_CERT_NOT_ACTIVATED)
		return "certificate is not yet valid";
	if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
		return "certificate is not meant for a TLS server (key purpose)";
	if (status & GNUTLS_CERT_UNEXPECTED_OWNER) {
		snprintf(buf, bufsz, "certificate is not valid for host '%s'", t->host);
		return buf;
	}
	if (status & GNUTLS_CERT_MISSING_OCSP_STATUS)
		return "certificate requires OCSP status, which the server did not send";
	gnutls_datum_t d = { NULL, 0 };
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &d, 0) == 0) {
		snprintf(buf, bufsz, "%.*s", (int)d.size, (const char *)d.data);
		gnutls_free(d.data);
		return buf;
	}
	return "certificate verification failed";
}

/* The verification status as enum ba_tls_problem bits. */
static unsigned status_problems(struct tls_stream *t, unsigned status)
{
	unsigned p = 0;
	if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA))
		p |= BA_TLS_P_UNKNOWN_ISSUER;
	if ((status & GNUTLS_CERT_SIGNER_NOT_FOUND) && peer_self_signed(t->sess))
		p |= BA_TLS_P_SELF_SIGNED;
	if (status & GNUTLS_CERT_UNEXPECTED_OWNER)
		p |= BA_TLS_P_WRONG_NAME;
	if (status & GNUTLS_CERT_EXPIRED)
		p |= BA_TLS_P_EXPIRED;
	if (status & GNUTLS_CERT_NOT_ACTIVATED)
		p |= BA_TLS_P_NOT_YET_VALID;
	if (status & GNUTLS_CERT_REVOKED)
		p |= BA_TLS_P_REVOKED;
	if (status & (GNUTLS_CERT_SIGNATURE_FAILURE | GNUTLS_CERT_INSECURE_ALGORITHM |
	              GNUTLS_CERT_PURPOSE_MISMATCH | GNUTLS_CERT_MISSING_OCSP_STATUS))
		p |= BA_TLS_P_OTHER;
	return p ? p : BA_TLS_P_OTHER;
}

/* Constant time: the pin is not secret, but there is no reason to leak timing either. */
static int pin_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

static void set_vfail(struct tls_stream *t, const char *reason, const unsigned char *md)
{
	char fp[100] = "";
	if (md) {
		hex_colon(fp, sizeof(fp), md, 32);
		snprintf(t->vfail, sizeof(t->vfail), "%s (SHA-256 fingerprint %s)", reason, fp);
	} else {
		snprintf(t->vfail, sizeof(t->vfail), "%s", reason);
	}
}

static int verify_peer(gnutls_session_t sess);

/* GnuTLS calls this during the handshake, after the server's Certificate. */
static int verify_cb(gnutls_session_t sess)
{
	struct tls_stream *t = gnutls_session_get_ptr(sess);
	if (verify_peer(sess) == 0)
		return 0;
	if (!t->report_only)
		return -1;
	ba_log(t->log, BA_LOG_INFO, "TLS certificate of '%s' would not be accepted: %s", t->host,
	       t->vfail);
	if (t->info)
		snprintf(t->info->refused, sizeof(t->info->refused), "%s", t->vfail);
	t->soft_failed = 1;
	t->vfail[0] = '\0';
	return 0;
}

static int verify_peer(gnutls_session_t sess)
{
	struct tls_stream *t = gnutls_session_get_ptr(sess);
	unsigned char md[32];
	int have_md = peer_sha256(sess, md) == 0;
	if (t->info)
		fill_cert_info(sess, t->info);
	if (!have_md) {
		if (t->info)
			t->info->problems = BA_TLS_P_OTHER;
		set_vfail(t, "the server sent no certificate", NULL);
		return -1;
	}
	if (t->ntlsa) {
		unsigned n = 0;
		const gnutls_datum_t *certs = gnutls_certificate_get_peers(sess, &n);
		char why[300];
		unsigned problems = 0;
		t->dane_usage = tls_dane_verify(certs, n, t->tlsa, t->ntlsa, t->host,
		                                t->dane_alt[0] ? t->dane_alt : NULL, why, sizeof(why),
		                                &problems);
		if (t->dane_usage)
			return 0;
		if (t->info)
			t->info->problems = problems;
		set_vfail(t, why, md);
		return -1;
	}
	if (t->have_pin) {
		unsigned char pmd[32];
		const unsigned char *cmp = md;
		if (t->pin_len != 32) { /* an msmtp SHA-1 or MD5 pin */
			unsigned n = 0;
			const gnutls_datum_t *certs = gnutls_certificate_get_peers(sess, &n);
			size_t sz = sizeof(pmd);
			gnutls_digest_algorithm_t alg =
				t->pin_len == 20 ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_MD5;
			if (gnutls_fingerprint(alg, &certs[0], pmd, &sz) < 0 || sz != t->pin_len)
				memset(pmd, 0, sizeof(pmd));
			cmp = pmd;
		}
		if (!pin_equal(cmp, t->pin, t->pin_len)) {
			if (t->info)
				t->info->problems = BA_TLS_P_PIN_MISMATCH;
			set_vfail(t, "certificate does not match tls_fingerprint", md);
			return -1;
		}
		return 0;
	}
	/* RFC 6125 name or IP check and the server key purpose, by GnuTLS */
	gnutls_typed_vdata_st data[2];
	memset(data, 0, sizeof(data));
	data[0].type = GNUTLS_DT_DNS_HOSTNAME;
	data[0].data = (unsigned char *)t->host;
	data[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	data[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	unsigned status = 0;
	int r = gnutls_certificate_verify_peers(sess, data, 2, &status);
	if (r < 0) {
		char buf[200];
		snprintf(buf, sizeof(buf), "cannot verify certificate: %s", tls_strerror(r));
		set_vfail(t, buf, md);
		return -1;
	}
	if (status) {
		char buf[400];
		if (t->info)
			t->info->problems = status_problems(t, status);
		set_vfail(t, status_reason(t, status, buf, sizeof(buf)), md);
		return -1;
	}
	return 0;
}

/* ---- setup ---- */

static int is_ip_literal(const char *host)
{
	unsigned char a[16];
	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/*
 * "AB:CD:..." (msmtp's form), an optional "SHA256:" prefix, colons optional:
 * 32 bytes (SHA-256), or 20 (SHA-1) or 16 (MD5) as msmtp still accepts.
 */
static int parse_pin(unsigned char out[32], size_t *len, const char *s, struct ba_err *err)
{
	const char *q = s, *hex;
	size_t n = 0;
	if (strncasecmp(q, "sha256:", 7) == 0)
		q += 7;
	hex = q;
	while (*q) {
		if (*q == ':') {
			q++;
			continue;
		}
		int hi = ba_hex_digit((unsigned char)q[0]), lo = hi < 0 ? -1 : ba_hex_digit((unsigned char)q[1]);
		if (hi < 0 || lo < 0 || n == 32)
			return ba_err_set(err, EX_CONFIG, "invalid tls_fingerprint '%s': expected "
			                  "XX:XX:... (the SHA-256 fingerprint, 32 bytes in hex)", s);
		out[n++] = (unsigned char)(hi << 4 | lo);
		q += 2;
	}
	if (n != 32 && (hex != s || (n != 20 && n != 16)))
		return ba_err_set(err, EX_CONFIG, "invalid tls_fingerprint '%s': expected "
		                  "XX:XX:... (the SHA-256 fingerprint, 32 bytes in hex)", s);
	*len = n;
	return 0;
}

/*
 * The system trust store costs milliseconds to load (~9 ms measured on a 2-core machine), so
 * sessions that need nothing else share one credentials object, loaded on
 * first use and kept until ba_tls_cleanup().  GnuTLS credentials may be
 * shared by sessions once set up.
 */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static gnutls_certificate_credentials_t shared_cred;
static unsigned shared_refs;

static int shared_system_cred(gnutls_certificate_credentials_t *out, struct ba_err *err)
{
	int rc = 0;
	pthread_mutex_lock(&shared_lock);
	if (!shared_cred) {
		gnutls_certificate_credentials_t c;
		int r = gnutls_certificate_allocate_credentials(&c);
		if (r < 0) {
			rc = ba_err_set(err, EX_OSERR, "cannot set up TLS: %s", tls_strerror(r));
			goto out;
		}
		r = gnutls_certificate_set_x509_system_trust(c);
		if (r <= 0) {
			gnutls_certificate_free_credentials(c);
			if (r < 0)
				rc = ba_err_set(err, EX_CONFIG, "cannot load the system trust store: %s",
				                tls_strerror(r));
			else
				rc = ba_err_set(err, EX_CONFIG, "the system trust store is empty; set "
				                "tls_trust_file or tls_fingerprint");
			goto out;
		}
		gnutls_certificate_set_verify_function(c, verify_cb);
		shared_cred = c;
	}
	shared_refs++;
	*out = shared_cred;
out:
	pthread_mutex_unlock(&shared_lock);
	return rc;
}

static void shared_release(void)
{
	pthread_mutex_lock(&shared_lock);
	shared_refs--;
	pthread_mutex_unlock(&shared_lock);
}

void ba_tls_cleanup(void)
{
	pthread_mutex_lock(&shared_lock);
	if (shared_cred && shared_refs == 0) {
		gnutls_certificate_free_credentials(shared_cred);
		shared_cred = NULL;
	}
	pthread_mutex_unlock(&shared_lock);
}

static int setup_credentials(struct tls_stream *t, const struct ba_tls_params *p,
                             struct ba_err *err)
{
	int system = !p->trust_file || strcmp(p->trust_file, "system") == 0;
	if (p->certcheck && !t->have_pin && !t->ntlsa && system && !p->crl_file && !p->cert_file &&
	    !p->key_file) {
		if (shared_system_cred(&t->cred, err) < 0)
			return -1;
		t->shared_cred = 1;
		return 0;
	}
	int r = gnutls_certificate_allocate_credentials(&t->cred);
	if (r < 0)
		return ba_err_set(err, EX_OSERR, "cannot set up TLS: %s", tls_strerror(r));
	/* DANE replaces the trust store: DANE-EE ignores PKIX, DANE-TA names its anchor */
	if (p->certcheck && !t->have_pin && !t->ntlsa) {
		if (!p->trust_file || strcmp(p->trust_file, "system") == 0) {
			r = gnutls_certificate_set_x509_system_trust(t->cred);
			if (r < 0)
				return ba_err_set(err, EX_CONFIG, "cannot load the system trust store: "
				                  "%s", tls_strerror(r));
			if (r == 0)
				return ba_err_set(err, EX_CONFIG, "the system trust store is empty; set "
				                  "tls_trust_file or tls_fingerprint");
		} else {
			r = gnutls_certificate_set_x509_trust_file(t->cred, p->trust_file,
			                                           GNUTLS_X509_FMT_PEM);
			if (r < 0)
				return ba_err_set(err, EX_CONFIG, "cannot load trust file '%s': %s",
				                  p->trust_file, tls_strerror(r));
			if (r == 0)
				return ba_err_set(err, EX_CONFIG, "trust file '%s' holds no certificate",
				                  p->trust_file);
		}
		if (p->crl_file) {
			r = gnutls_certificate_set_x509_crl_file(t->cred, p->crl_file,
			                                         GNUTLS_X509_FMT_PEM);
			if (r < 0)
				return ba_err_set(err, EX_CONFIG, "cannot load CRL file '%s': %s",
				                  p->crl_file, tls_strerror(r));
		}
	}
	if (p->cert_file || p->key_file) {
		if (!p->cert_file || !p->key_file)
			return ba_err_set(err, EX_CONFIG, "a client certificate needs both a "
			                  "certificate file and a key file");
		r = gnutls_certificate_set_x509_key_file(t->cred, p->cert_file, p->key_file,
		                                         GNUTLS_X509_FMT_PEM);
		if (r < 0)
			return ba_err_set(err, EX_CONFIG, "cannot load client certificate '%s' with key "
			                  "'%s': %s", p->cert_file, p->key_file, tls_strerror(r));
	}
	if (p->certcheck)
		gnutls_certificate_set_verify_function(t->cred, verify_cb);
	return 0;
}

static int setup_session(struct tls_stream *t, const struct ba_tls_params *p, struct ba_err *err)
{
	int r = gnutls_init(&t->sess, GNUTLS_CLIENT);
	if (r < 0)
		return ba_err_set(err, EX_OSERR, "cannot set up TLS: %s", tls_strerror(r));
	gnutls_session_set_ptr(t->sess, t);
	const char *prio = p->priorities ? p->priorities : "NORMAL";
	const char *errpos = NULL;
	r = gnutls_priority_set_direct(t->sess, prio, &errpos);
	if (r == GNUTLS_E_INVALID_REQUEST && errpos)
		return ba_err_set(err, EX_CONFIG, "invalid TLS priorities '%s' at position %d "
		                  "('%s')", prio, (int)(errpos - prio) + 1, errpos);
	if (r < 0)
		return ba_err_set(err, EX_CONFIG, "invalid TLS priorities '%s': %s", prio,
		                  tls_strerror(r));
	r = gnutls_credentials_set(t->sess, GNUTLS_CRD_CERTIFICATE, t->cred);
	if (r < 0)
		return ba_err_set(err, EX_OSERR, "cannot set up TLS: %s", tls_strerror(r));
	/* RFC 6066 §3: SNI carries DNS names only, never address literals */
	if (t->host[0] && !is_ip_literal(t->host)) {
		r = gnutls_server_name_set(t->sess, GNUTLS_NAME_DNS, t->host, strlen(t->host));
		if (r < 0)
			return ba_err_set(err, EX_CONFIG, "cannot use '%s' as TLS server name: %s",
			                  t->host, tls_strerror(r));
	}
	if (p->min_dh_bits > 0)
		gnutls_dh_set_prime_bits(t->sess, (unsigned)p->min_dh_bits);
	gnutls_transport_set_ptr(t->sess, t);
	gnutls_transport_set_push_function(t->sess, tls_push);
	gnutls_transport_set_pull_function(t->sess, tls_pull);
	gnutls_transport_set_pull_timeout_function(t->sess, tls_pull_timeout);
	gnutls_handshake_set_timeout(t->sess, 0);
	return 0;
}

static void fill_session_info(gnutls_session_t sess, struct ba_tls_info *info)
{
	const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(sess));
	snprintf(info->version, sizeof(info->version), "%s", v ? v : "?");
	char *desc = gnutls_session_get_desc(sess);
	snprintf(info->cipher, sizeof(info->cipher), "%s", desc ? desc : "?");
	gnutls_free(desc);
	fill_cert_info(sess, info);
}

/*
 * 1 when the first bytes the server sent are an SMTP reply ("220 ...",
 * "554-..."), not a TLS record: the port speaks plain SMTP.  Reads the rest
 * of the line for the message (briefly: the handshake has failed anyway) and
 * leaves it, cleaned, in out.
 */
static int plain_reply(struct tls_stream *t, char *out, size_t outsz)
{
	const unsigned char *f = t->first;
	if (t->first_len < 4 || f[0] < '1' || f[0] > '5' || f[1] < '0' || f[1] > '9' ||
	    f[2] < '0' || f[2] > '9' || (f[3] != ' ' && f[3] != '-' && f[3] != '\r'))
		return 0;
	int64_t until = ba_deadline(300);
	while (t->first_len < sizeof(t->first) && !memchr(t->first, '\n', t->first_len)) {
		struct ba_err e = BA_ERR_INIT;
		ssize_t k = ba_stream_read(t->inner, t->first + t->first_len,
		                           sizeof(t->first) - t->first_len, until, &e);
		if (k <= 0)
			break;
		t->first_len += (size_t)k;
	}
	size_t n = 0;
	while (n < t->first_len && t->first[n] != '\r' && t->first[n] != '\n')
		n++;
	struct ba_buf b;
	ba_buf_init(&b, 1024);
	ba_log_clean(&b, (const char *)t->first, n > 80 ? 80 : n);
	snprintf(out, outsz, "%s", ba_buf_str(&b));
	ba_buf_release(&b);
	return 1;
}

static int handshake(struct tls_stream *t, struct ba_err *err)
{
	int r;
	do {
		r = gnutls_handshake(t->sess);
	} while (r < 0 && !gnutls_error_is_fatal(r));
	if (r == 0)
		return 0;
	t->broken = 1;
	char plain[128];
	if (r != GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR && r != GNUTLS_E_CERTIFICATE_ERROR &&
	    plain_reply(t, plain, sizeof(plain))) {
		if (t->info)
			snprintf(t->info->plain, sizeof(t->info->plain), "%s", plain);
		return ba_err_set(err, EX_UNAVAILABLE, "TLS handshake with '%s' failed: the server "
		                  "answered in plain text, not TLS ('%s')", t->host, plain);
	}
	if ((r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR || r == GNUTLS_E_CERTIFICATE_ERROR) &&
	    t->vfail[0])
		return ba_err_set(err, EX_UNAVAILABLE, "TLS certificate of '%s' not accepted: %s",
		                  t->host, t->vfail);
	if ((r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR) && t->ioerr.code) {
		*err = t->ioerr;
		if (err->code != EX_TEMPFAIL)
			err->code = EX_UNAVAILABLE;
		return ba_err_prefix(err, "TLS handshake with '%s' failed: ", t->host);
	}
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED)
		return ba_err_set(err, EX_UNAVAILABLE, "TLS handshake with '%s' failed: the server "
		                  "sent alert '%s'", t->host,
		                  gnutls_alert_get_name(gnutls_alert_get(t->sess)));
	if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_UNEXPECTED_PACKET_LENGTH)
		return ba_err_set(err, EX_UNAVAILABLE, "TLS handshake with '%s' failed: the server "
		                  "closed the connection", t->host);
	return ba_err_set(err, EX_UNAVAILABLE, "TLS handshake with '%s' failed: %s", t->host,
	                  tls_strerror(r));
}

int ba_tls_start(ba_stream **out, ba_stream *inner, const struct ba_tls_params *p,
                 struct ba_tls_info *info, struct ba_err *err)
{
	*out = NULL;
	if (info)
		memset(info, 0, sizeof(*info));
	pthread_once(&init_once, global_init);
	if (init_rc < 0) {
		ba_stream_free(inner);
		return ba_err_set(err, EX_OSERR, "cannot initialise GnuTLS: %s",
		                  tls_strerror(init_rc));
	}
	struct tls_stream *t = calloc(1, sizeof(*t));
	if (!t) {
		ba_stream_free(inner);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	t->base.ops = &tls_ops;
	t->cancel_fd = -1;
	t->inner = inner;
	t->info = info;
	t->report_only = p->report_only;
	t->log = p->log;
	snprintf(t->host, sizeof(t->host), "%s", p->host ? p->host : "");
	snprintf(t->dane_alt, sizeof(t->dane_alt), "%s", p->dane_alt_host ? p->dane_alt_host : "");
	size_t hl = strlen(t->host);
	if (hl > 2 && t->host[0] == '[' && t->host[hl - 1] == ']') {
		memmove(t->host, t->host + 1, hl - 2); /* "[::1]" -> "::1" */
		t->host[hl - 2] = 0;
	} else if (hl > 1 && t->host[hl - 1] == '.') {
		t->host[hl - 1] = 0; /* RFC 6066 §3: no trailing dot in SNI; RFC 6125 matching */
	}
	int timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : TLS_DEFAULT_TIMEOUT_MS;
	if (p->certcheck && !p->fingerprint && !t->host[0]) {
		ba_err_set(err, EX_CONFIG, "no host name to verify the TLS certificate against");
		goto fail;
	}
	if (p->ntlsa) {
		if (!p->certcheck || !p->tlsa)
			BA_BUG("DANE without certcheck or records");
		if (!tls_dane_available()) {
			ba_err_set(err, EX_UNAVAILABLE, "DANE needs libgnutls-dane.so.0 (Debian package "
			           "libgnutls-dane0), which cannot be loaded");
			goto fail;
		}
		t->tlsa = p->tlsa;
		t->ntlsa = p->ntlsa;
	} else if (p->certcheck && p->fingerprint) {
		if (parse_pin(t->pin, &t->pin_len, p->fingerprint, err) < 0)
			goto fail;
		t->have_pin = 1;
	}
	if (setup_credentials(t, p, err) < 0 || setup_session(t, p, err) < 0)
		goto fail;
	t->deadline = ba_deadline(timeout_ms);
	ba_log(p->log, BA_LOG_DEBUG, "TLS handshake with %s", t->host);
	if (handshake(t, err) < 0)
		goto fail;
	t->established = 1;
	if (info) {
		fill_session_info(t->sess, info);
		info->verified = p->certcheck && !t->soft_failed ? 1 : 0;
		info->dane = t->dane_usage;
	}
	if (ba_log_enabled(p->log, BA_LOG_DEBUG)) {
		char *desc = gnutls_session_get_desc(t->sess);
		ba_log(p->log, BA_LOG_DEBUG, "TLS established with %s: %s%s", t->host,
		       desc ? desc : "?", !p->certcheck          ? " (certificate not checked)"
		                          : t->dane_usage == 3 ? " (DANE-EE match)"
		                          : t->dane_usage == 2 ? " (DANE-TA match)"
		                                               : "");
		gnutls_free(desc);
	}
	t->info = NULL;
	t->tlsa = NULL;
	t->ntlsa = 0;
	*out = &t->base;
	return 0;
fail:
	t->broken = 1;
	tls_ops.free(&t->base);
	return -1;
}

/* ---- the stream ---- */

static ssize_t tls_read(ba_stream *base, void *p, size_t n, int64_t deadline, struct ba_err *err)
{
	struct tls_stream *t = (struct tls_stream *)base;
	t->deadline = deadline;
	ba_err_clear(&t->ioerr);
	/* decrypted data may be waiting: a cancel must not depend on the socket's poll */
	if (ba_cancel_pending(t->cancel_fd)) {
		t->broken = 1;
		return ba_err_cancel(err, "%s: cancelled", t->host);
	}
	for (;;) {
		ssize_t r = gnutls_record_recv(t->sess, p, n);
		if (r >= 0)
			return r;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_REHANDSHAKE)
			continue;
		/* a server that closes without close_notify after QUIT: SMTP replies are
		   self-delimiting, so truncation cannot go unnoticed */
		if (r == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		if (!gnutls_error_is_fatal((int)r))
			continue;
		t->broken = 1;
		if ((r == GNUTLS_E_PULL_ERROR || r == GNUTLS_E_PUSH_ERROR) && t->ioerr.code) {
			*err = t->ioerr;
			return ba_err_prefix(err, "TLS: ");
		}
		return ba_err_set(err, EX_IOERR, "%s: TLS read failed: %s", t->host,
		                  tls_strerror((int)r));
	}
}

/*
 * Hands the caller's buffer to GnuTLS in pieces of at most one record
 * (RFC 8446 §5.1: 2^14 bytes), each encrypted straight from the buffer.
 */
static int tls_write(ba_stream *base, const void *p, size_t n, int64_t deadline,
                     struct ba_err *err)
{
	struct tls_stream *t = (struct tls_stream *)base;
	const unsigned char *q = p;
	t->deadline = deadline;
	ba_err_clear(&t->ioerr);
	if (ba_cancel_pending(t->cancel_fd)) {
		t->broken = 1;
		return ba_err_cancel(err, "%s: cancelled", t->host);
	}
	t->wait_len = n;
	t->wait_done = 0;
	while (n) {
		size_t chunk = n < TLS_RECORD_MAX ? n : TLS_RECORD_MAX;
		ssize_t r = gnutls_record_send(t->sess, q, chunk);
		if (r > 0) {
			q += r;
			n -= (size_t)r;
			t->wait_done += (size_t)r;
			continue;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			continue;
		t->broken = 1;
		if ((r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR) && t->ioerr.code) {
			*err = t->ioerr;
			return ba_err_prefix(err, "TLS: ");
		}
		return ba_err_set(err, EX_IOERR, "%s: TLS write failed: %s", t->host,
		                  tls_strerror((int)r));
	}
	return 0;
}

static size_t tls_pending(ba_stream *base)
{
	struct tls_stream *t = (struct tls_stream *)base;
	return gnutls_record_check_pending(t->sess);
}

static void tls_free(ba_stream *base)
{
	struct tls_stream *t = (struct tls_stream *)base;
	if (t->sess) {
		if (t->established && !t->broken) {
			/* RFC 8446 §6.1 close_notify; do not wait for the peer's */
			t->deadline = ba_deadline(TLS_BYE_TIMEOUT_MS);
			gnutls_bye(t->sess, GNUTLS_SHUT_WR);
		}
		gnutls_deinit(t->sess);
	}
	if (t->cred && t->shared_cred)
		shared_release();
	else if (t->cred)
		gnutls_certificate_free_credentials(t->cred);
	ba_stream_free(t->inner);
	gnutls_memset(t->pin, 0, sizeof(t->pin));
	free(t);
}

static int tls_set_cancel(ba_stream *base, int fd)
{
	struct tls_stream *t = (struct tls_stream *)base;
	t->cancel_fd = fd < 0 ? -1 : fd;
	return ba_stream_set_cancel(t->inner, fd);
}

/* The inner stream waits in the middle of a record: the plaintext before it went out. */
static void tls_waiting(void *ctx, size_t done, size_t len)
{
	struct tls_stream *t = ctx;
	(void)done;
	(void)len;
	if (t->wait_fn)
		t->wait_fn(t->wait_ctx, t->wait_done, t->wait_len);
}

static int tls_set_wait_hook(ba_stream *base, ba_stream_wait_fn *fn, void *ctx, int interval_ms)
{
	struct tls_stream *t = (struct tls_stream *)base;
	t->wait_fn = fn;
	t->wait_ctx = ctx;
	if (!t->inner)
		return -1;
	return ba_stream_set_wait_hook(t->inner, fn ? tls_waiting : NULL, fn ? t : NULL,
	                               interval_ms);
}

/* The ciphertext the peer has not acknowledged, as plaintext bytes (records add < 1%). */
static uint64_t tls_unsent(ba_stream *base)
{
	struct tls_stream *t = (struct tls_stream *)base;
	return t->inner ? ba_stream_unsent(t->inner) : 0;
}

/* Decrypted data waiting, else whatever the connection under it has. */
static int tls_readable(ba_stream *base, int timeout_ms)
{
	struct tls_stream *t = (struct tls_stream *)base;
	if (gnutls_record_check_pending(t->sess) > 0 || !t->inner)
		return 1;
	return ba_stream_readable(t->inner, timeout_ms);
}

static const struct ba_stream_ops tls_ops = { tls_read, tls_write, tls_pending, tls_free,
	                                      tls_set_cancel, tls_unsent, tls_readable,
	                                      tls_set_wait_hook };

int ba_tls_is_tls(ba_stream *s)
{
	return s && s->ops == &tls_ops;
}

int ba_tls_channel_binding(ba_stream *s, struct ba_buf *out, const char **type)
{
	if (!ba_tls_is_tls(s))
		return -1;
	struct tls_stream *t = (struct tls_stream *)s;
	gnutls_channel_binding_t cb = GNUTLS_CB_TLS_UNIQUE;
	const char *name = "tls-unique";
	/* RFC 9266: tls-unique is undefined for TLS 1.3; use tls-exporter there */
	if (gnutls_protocol_get_version(t->sess) == GNUTLS_TLS1_3) {
		cb = GNUTLS_CB_TLS_EXPORTER;
		name = "tls-exporter";
	} else if (!gnutls_session_ext_master_secret_status(t->sess)) {
		/*
		 * RFC 7627 §1: without the extended master secret a man in the
		 * middle can make two connections share tls-unique (the triple
		 * handshake attack), so it binds nothing: offer no binding at all.
		 */
		return -1;
	}
	gnutls_datum_t d = { NULL, 0 };
	if (gnutls_session_channel_binding(t->sess, cb, &d) < 0)
		return -1;
	int r = ba_buf_add(out, d.data, d.size);
	gnutls_free(d.data);
	if (r < 0)
		return -1;
	if (type)
		*type = name;
	return 0;
}
