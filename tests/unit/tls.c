/* tests/unit/tls.c - ba_tls_start against a GnuTLS server thread, certificates made at run time */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "bluearrow/net.h"
#include "bluearrow/tls.h"

/* ---- certificates ---- */

struct cert {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
};

struct cert_spec {
	const char *cn;
	const char *dns;           /* subjectAltName DNS, or NULL */
	int ip_localhost;          /* subjectAltName IP 127.0.0.1 */
	long from, to;             /* validity, seconds from now */
	const char *purpose;       /* extended key usage OID, or NULL */
	int ca;
	const struct cert *issuer; /* NULL: self-signed */
	unsigned serial;
};

static void make_cert(struct cert *c, const struct cert_spec *s)
{
	const char *errp;
	assert_int_equal(gnutls_x509_privkey_init(&c->key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
	                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&c->crt), 0);
	gnutls_x509_crt_t crt = c->crt;
	char dn[128];
	snprintf(dn, sizeof(dn), "CN=%s", s->cn);
	assert_int_equal(gnutls_x509_crt_set_dn(crt, dn, &errp), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	unsigned char serial[4] = { 0, (unsigned char)(s->serial >> 16),
		                    (unsigned char)(s->serial >> 8), (unsigned char)s->serial };
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
	time_t now = time(NULL);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now + s->from), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + s->to), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, c->key), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, s->ca, -1), 0);
	assert_int_equal(gnutls_x509_crt_set_key_usage(crt, s->ca ? GNUTLS_KEY_KEY_CERT_SIGN |
	                 GNUTLS_KEY_CRL_SIGN : GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	if (s->dns)
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
		                 s->dns, (unsigned)strlen(s->dns), GNUTLS_FSAN_APPEND), 0);
	if (s->ip_localhost)
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS,
		                 "\x7f\x00\x00\x01", 4, GNUTLS_FSAN_APPEND), 0);
	if (s->purpose)
		assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(crt, s->purpose, 0), 0);
	unsigned char kid[64];
	size_t kidlen = sizeof(kid);
	assert_int_equal(gnutls_x509_crt_get_key_id(crt, 0, kid, &kidlen), 0);
	gnutls_x509_crt_set_subject_key_id(crt, kid, kidlen);
	const struct cert *iss = s->issuer ? s->issuer : c;
	if (s->issuer) {
		kidlen = sizeof(kid);
		assert_int_equal(gnutls_x509_crt_get_key_id(iss->crt, 0, kid, &kidlen), 0);
		gnutls_x509_crt_set_authority_key_id(crt, kid, kidlen);
	}
	assert_int_equal(gnutls_x509_crt_sign2(crt, iss->crt, iss->key, GNUTLS_DIG_SHA256, 0), 0);
}

static void free_cert(struct cert *c)
{
	gnutls_x509_crt_deinit(c->crt);
	gnutls_x509_privkey_deinit(c->key);
}

static void write_file(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
	fclose(f);
}

static void export_crt(const struct cert *c, const char *path)
{
	gnutls_datum_t d;
	assert_int_equal(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_PEM, &d), 0);
	write_file(path, &d);
	gnutls_free(d.data);
}

static void export_key(const struct cert *c, const char *path)
{
	gnutls_datum_t d;
	assert_int_equal(gnutls_x509_privkey_export2(c->key, GNUTLS_X509_FMT_PEM, &d), 0);
	write_file(path, &d);
	gnutls_free(d.data);
}

static void sha256_of(const struct cert *c, char *out, size_t outsz)
{
	unsigned char md[32];
	size_t n = sizeof(md);
	assert_int_equal(gnutls_x509_crt_get_fingerprint(c->crt, GNUTLS_DIG_SHA256, md, &n), 0);
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, outsz - o, i ? ":%02X" : "%02X", md[i]);
}

enum { C_CA, C_GOOD, C_EXPIRED, C_NOTYET, C_WRONGHOST, C_OTHERCA, C_UNKNOWNCA, C_SELF,
       C_CLIENTONLY, C_REVOKED, C_CLIENT, C_COUNT };

static struct cert certs[C_COUNT];
static char dir[64];
static char ca_file[128], crl_file[128], client_crt[128], client_key[128];

#define DAY 86400L
#define KP_SERVER GNUTLS_KP_TLS_WWW_SERVER

static int setup_certs(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ba-tls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	const struct cert_spec specs[C_COUNT] = {
		[C_CA] = { "Test CA", NULL, 0, -DAY, 10 * DAY, NULL, 1, NULL, 1 },
		[C_GOOD] = { "localhost", "localhost", 1, -DAY, DAY, KP_SERVER, 0, &certs[C_CA], 2 },
		[C_EXPIRED] = { "localhost", "localhost", 1, -2 * DAY, -DAY, KP_SERVER, 0,
			        &certs[C_CA], 3 },
		[C_NOTYET] = { "localhost", "localhost", 1, DAY, 2 * DAY, KP_SERVER, 0,
			       &certs[C_CA], 4 },
		[C_WRONGHOST] = { "other.example", "other.example", 0, -DAY, DAY, KP_SERVER, 0,
			          &certs[C_CA], 5 },
		[C_OTHERCA] = { "Other CA", NULL, 0, -DAY, 10 * DAY, NULL, 1, NULL, 6 },
		[C_UNKNOWNCA] = { "localhost", "localhost", 1, -DAY, DAY, KP_SERVER, 0,
			          &certs[C_OTHERCA], 7 },
		[C_SELF] = { "localhost", "localhost", 1, -DAY, DAY, KP_SERVER, 0, NULL, 8 },
		[C_CLIENTONLY] = { "localhost", "localhost", 1, -DAY, DAY, GNUTLS_KP_TLS_WWW_CLIENT,
			           0, &certs[C_CA], 9 },
		[C_REVOKED] = { "localhost", "localhost", 1, -DAY, DAY, KP_SERVER, 0,
			        &certs[C_CA], 10 },
		[C_CLIENT] = { "alice", NULL, 0, -DAY, DAY, GNUTLS_KP_TLS_WWW_CLIENT, 0,
			       &certs[C_CA], 11 },
	};
	/* issuers first: the array order has each CA before its leaves */
	for (int i = 0; i < C_COUNT; i++)
		make_cert(&certs[i], &specs[i]);
	snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", dir);
	snprintf(crl_file, sizeof(crl_file), "%s/crl.pem", dir);
	snprintf(client_crt, sizeof(client_crt), "%s/client.pem", dir);
	snprintf(client_key, sizeof(client_key), "%s/client.key", dir);
	export_crt(&certs[C_CA], ca_file);
	export_crt(&certs[C_CLIENT], client_crt);
	export_key(&certs[C_CLIENT], client_key);

	gnutls_x509_crl_t crl;
	gnutls_datum_t d;
	time_t now = time(NULL);
	if (gnutls_x509_crl_init(&crl) < 0 || gnutls_x509_crl_set_version(crl, 2) < 0 ||
	    gnutls_x509_crl_set_crt(crl, certs[C_REVOKED].crt, now - 60) < 0 ||
	    gnutls_x509_crl_set_this_update(crl, now - 60) < 0 ||
	    gnutls_x509_crl_set_next_update(crl, now + DAY) < 0 ||
	    gnutls_x509_crl_sign2(crl, certs[C_CA].crt, certs[C_CA].key, GNUTLS_DIG_SHA256, 0) < 0 ||
	    gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &d) < 0)
		return -1;
	write_file(crl_file, &d);
	gnutls_free(d.data);
	gnutls_x509_crl_deinit(crl);
	return 0;
}

static int teardown_certs(void **state)
{
	(void)state;
	for (int i = 0; i < C_COUNT; i++)
		free_cert(&certs[i]);
	ba_tls_cleanup();
	unlink(ca_file);
	unlink(crl_file);
	unlink(client_crt);
	unlink(client_key);
	rmdir(dir);
	return 0;
}

/* ---- the server thread ---- */

struct server {
	int fd;
	const struct cert *cert;
	const char *priorities;    /* NULL: NORMAL */
	int want_client_cert;
	int cb_refused;            /* ba_tls_channel_binding() must give none (no EMS) */
	const struct cert *issuer; /* sent after the leaf (a chain of two), or NULL */
	/* results */
	int handshake_rc;
	char sni[256];             /* "" when the client sent none */
	char client_dn[256];
	unsigned char cb[64];
	size_t cb_len;
	pthread_t thread;
};

static void *server_main(void *arg)
{
	struct server *sv = arg;
	gnutls_certificate_credentials_t cred;
	gnutls_session_t sess;
	gnutls_certificate_allocate_credentials(&cred);
	gnutls_x509_crt_t chain[2] = { sv->cert->crt, sv->issuer ? sv->issuer->crt : NULL };
	gnutls_certificate_set_x509_key(cred, chain, sv->issuer ? 2 : 1, sv->cert->key);
	gnutls_init(&sess, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
	gnutls_priority_set_direct(sess, sv->priorities ? sv->priorities : "NORMAL", NULL);
	gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, cred);
	if (sv->want_client_cert)
		gnutls_certificate_server_set_request(sess, GNUTLS_CERT_REQUIRE);
	gnutls_transport_set_int(sess, sv->fd);
	gnutls_handshake_set_timeout(sess, 5000);
	int r;
	do {
		r = gnutls_handshake(sess);
	} while (r < 0 && !gnutls_error_is_fatal(r));
	sv->handshake_rc = r;
	if (r == 0) {
		size_t len = sizeof(sv->sni) - 1;
		unsigned type;
		if (gnutls_server_name_get(sess, sv->sni, &len, &type, 0) < 0)
			sv->sni[0] = 0;
		unsigned n = 0;
		const gnutls_datum_t *peer = gnutls_certificate_get_peers(sess, &n);
		if (peer && n) {
			gnutls_x509_crt_t crt;
			gnutls_datum_t dn;
			gnutls_x509_crt_init(&crt);
			gnutls_x509_crt_import(crt, &peer[0], GNUTLS_X509_FMT_DER);
			if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
				snprintf(sv->client_dn, sizeof(sv->client_dn), "%.*s", (int)dn.size,
				         dn.data);
				gnutls_free(dn.data);
			}
			gnutls_x509_crt_deinit(crt);
		}
		gnutls_datum_t cb;
		gnutls_channel_binding_t type_cb =
			gnutls_protocol_get_version(sess) == GNUTLS_TLS1_3 ? GNUTLS_CB_TLS_EXPORTER
			                                                   : GNUTLS_CB_TLS_UNIQUE;
		if (gnutls_session_channel_binding(sess, type_cb, &cb) == 0) {
			sv->cb_len = cb.size < sizeof(sv->cb) ? cb.size : sizeof(sv->cb);
			memcpy(sv->cb, cb.data, sv->cb_len);
			gnutls_free(cb.data);
		}
		/* echo until the client closes */
		char buf[65536];
		ssize_t k;
		while ((k = gnutls_record_recv(sess, buf, sizeof(buf))) > 0)
			if (gnutls_record_send(sess, buf, (size_t)k) < 0)
				break;
		gnutls_bye(sess, GNUTLS_SHUT_WR);
	}
	gnutls_deinit(sess);
	gnutls_certificate_free_credentials(cred);
	close(sv->fd);
	return NULL;
}

/* Starts a server on one end of a socketpair; returns the client's stream. */
static ba_stream *start_server(struct server *sv)
{
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	sv->fd = sp[1];
	assert_int_equal(pthread_create(&sv->thread, NULL, server_main, sv), 0);
	ba_stream *s = ba_fd_stream_new(sp[0], sp[0], "test server");
	assert_non_null(s);
	return s;
}

static long last_start_us; /* how long the last ba_tls_start() in run() took */

/* Handshake against a server with cert c; returns ba_tls_start's result. */
static int run(const struct cert *c, struct ba_tls_params *p, struct ba_tls_info *info,
               struct ba_err *err, struct server *svout)
{
	struct server sv = { .cert = c };
	if (svout && svout->want_client_cert)
		sv.want_client_cert = 1;
	if (svout && svout->priorities)
		sv.priorities = svout->priorities;
	if (svout)
		sv.issuer = svout->issuer;
	ba_stream *in = start_server(&sv);
	ba_stream *s = NULL;
	if (!p->timeout_ms)
		p->timeout_ms = 5000;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int r = ba_tls_start(&s, in, p, info, err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	last_start_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
	if (r == 0) {
		/* data both ways through the echo server, larger than one record */
		size_t n = 40000;
		char *out = malloc(n), *back = malloc(n);
		for (size_t i = 0; i < n; i++)
			out[i] = (char)('a' + i % 26);
		assert_int_equal(ba_stream_write(s, out, n, ba_deadline(5000), err), 0);
		size_t got = 0;
		while (got < n) {
			ssize_t k = ba_stream_read(s, back + got, n - got, ba_deadline(5000), err);
			assert_true(k > 0);
			got += (size_t)k;
		}
		assert_memory_equal(out, back, n);
		free(out);
		free(back);
		if (svout) {
			/* decrypted bytes not yet read are pending; then a read times out */
			char small[16];
			assert_int_equal(ba_stream_write(s, "0123456789", 10, ba_deadline(5000), err),
			                 0);
			assert_int_equal(ba_stream_read(s, small, 3, ba_deadline(5000), err), 3);
			assert_int_equal(ba_stream_pending(s), 7);
			assert_int_equal(ba_stream_read(s, small, sizeof(small), ba_deadline(5000), err),
			                 7);
			assert_memory_equal(small, "3456789", 7);
			assert_int_equal(ba_stream_pending(s), 0);
			int64_t r0 = ba_now_ms();
			assert_int_equal(ba_stream_read(s, small, sizeof(small), ba_deadline(200), err),
			                 -1);
			assert_int_equal(err->code, EX_TEMPFAIL);
			assert_true(ba_now_ms() - r0 < 1000);
			ba_err_clear(err);
			struct ba_buf cb = BA_BUF_INIT;
			const char *type = NULL;
			int cbr = ba_tls_channel_binding(s, &cb, &type);
			ba_stream_free(s);
			pthread_join(sv.thread, NULL);
			if (svout->cb_refused) {
				assert_int_equal(cbr, -1);
				assert_int_equal(cb.len, 0);
				type = "none";
			} else {
				assert_int_equal(cbr, 0);
				assert_int_equal(cb.len, sv.cb_len);
				assert_memory_equal(cb.data, sv.cb, cb.len);
			}
			assert_non_null(type);
			snprintf((char *)svout->cb, sizeof(svout->cb), "%s", type);
			ba_buf_release(&cb);
		} else {
			ba_stream_free(s);
			pthread_join(sv.thread, NULL);
		}
	} else {
		assert_null(s);
		pthread_join(sv.thread, NULL);
	}
	if (svout) {
		memcpy(svout->sni, sv.sni, sizeof(sv.sni));
		memcpy(svout->client_dn, sv.client_dn, sizeof(sv.client_dn));
		svout->handshake_rc = sv.handshake_rc;
	}
	return r;
}

/* ---- tests ---- */

static void test_tls__good_handshake_and_data(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { 0 };
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv), 0);
	assert_int_equal(info.verified, 1);
	assert_string_equal(info.version, "TLS1.3");
	assert_string_equal(info.subject, "CN=localhost");
	assert_string_equal(info.issuer, "CN=Test CA");
	char fp[100];
	sha256_of(&certs[C_GOOD], fp, sizeof(fp));
	assert_string_equal(info.sha256, fp);
	assert_non_null(strstr(info.not_after, " UTC"));
	assert_string_equal(sv.sni, "localhost");
	assert_string_equal((char *)sv.cb, "tls-exporter");

	/* an absolute name: verified and sent without the dot */
	p.host = "localhost.";
	memset(&sv, 0, sizeof(sv));
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv), 0);
	assert_string_equal(sv.sni, "localhost");
}

/* A cancel descriptor set on the TLS stream reaches the poll of the stream under it. */
static void test_tls__cancel(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { .cert = &certs[C_GOOD] };
	ba_stream *inner = start_server(&sv);
	ba_stream *t = NULL;
	assert_int_equal(ba_tls_start(&t, inner, &p, &info, &err), 0);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(ba_stream_set_cancel(t, pfd[0]), 0);
	assert_int_equal(write(pfd[1], "c", 1), 1);
	char buf[16];
	/* the echo server is waiting for us: only the cancel can end this read */
	int64_t t0 = ba_now_ms();
	assert_int_equal(ba_stream_read(t, buf, sizeof buf, ba_deadline(10000), &err), -1);
	assert_true(ba_now_ms() - t0 < 1000);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_true(err.flags & BA_ERR_CANCELLED);
	assert_non_null(strstr(err.text, "cancelled"));
	ba_err_clear(&err);
	assert_int_equal(ba_stream_write(t, "x", 1, ba_deadline(10000), &err), -1);
	assert_true(err.flags & BA_ERR_CANCELLED);
	ba_stream_free(t);
	pthread_join(sv.thread, NULL);
	close(pfd[0]);
	close(pfd[1]);
}

/* The wait hook set on the TLS stream is called from the wait of the stream under it. */
struct waits {
	int calls;
	size_t done, len;
};
static void on_wait(void *ctx, size_t done, size_t len)
{
	struct waits *w = ctx;
	w->calls++;
	w->done = done;
	w->len = len;
}

static void test_tls__wait_hook(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { .cert = &certs[C_GOOD] };
	ba_stream *inner = start_server(&sv);
	ba_stream *t = NULL;
	assert_int_equal(ba_tls_start(&t, inner, &p, &info, &err), 0);
	struct waits w = { 0, 0, 0 };
	assert_int_equal(ba_stream_set_wait_hook(t, on_wait, &w, 50), 0);
	/* the echo server's replies are never read: both sides' buffers fill and the write waits */
	size_t n = 16u << 20;
	char *big = calloc(1, n);
	assert_non_null(big);
	assert_int_equal(ba_stream_write(t, big, n, ba_deadline(500), &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_true(w.calls >= 3);
	assert_int_equal(w.len, n);
	assert_true(w.done > 0 && w.done < n);
	free(big);
	ba_stream_free(t);
	pthread_join(sv.thread, NULL);
}

/* readable() waits without reading: a wait that ends with nothing leaves the session usable. */
static void test_tls__readable(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { .cert = &certs[C_GOOD] };
	ba_stream *inner = start_server(&sv);
	ba_stream *t = NULL;
	assert_int_equal(ba_tls_start(&t, inner, &p, &info, &err), 0);
	int64_t t0 = ba_now_ms();
	assert_int_equal(ba_stream_readable(t, 150), 0);
	assert_true(ba_now_ms() - t0 >= 100);
	assert_int_equal(ba_stream_readable(t, 150), 0);
	assert_int_equal(ba_stream_write(t, "hello", 5, ba_deadline(5000), &err), 0);
	assert_int_equal(ba_stream_readable(t, 5000), 1);
	char buf[16];
	size_t got = 0;
	while (got < 5) {
		ssize_t k = ba_stream_read(t, buf + got, sizeof(buf) - got, ba_deadline(5000), &err);
		assert_true(k > 0);
		got += (size_t)k;
	}
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(ba_stream_unsent(t), 0); /* a unix socket under it: not known */
	ba_stream_free(t);
	pthread_join(sv.thread, NULL);
}

static void test_tls__ip_literal_no_sni(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "127.0.0.1", .trust_file = ca_file, .certcheck = 1 };
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { 0 };
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, &sv), 0);
	assert_string_equal(sv.sni, "");
	/* an IPv6 literal is no DNS name either (and the certificate does not name it) */
	p.host = "[::1]";
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, &sv), -1);
	assert_non_null(strstr(err.text, "certificate is not valid for host '::1'"));
	assert_string_equal(sv.sni, "");
}

static void test_tls__tls12_channel_binding_unique(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { .priorities = "NORMAL:-VERS-ALL:+VERS-TLS1.2" };
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv), 0);
	assert_string_equal(info.version, "TLS1.2");
	assert_string_equal((char *)sv.cb, "tls-unique");
}

/*
 * RFC 7627 §1, RFC 9266 §1: without the extended master secret tls-unique
 * does not identify the connection (triple handshake), so no binding is given
 * and SCRAM-PLUS is not chosen.
 */
static void test_tls__tls12_no_ems_no_channel_binding(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { .priorities = "NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_SESSION_HASH",
	                     .cb_refused = 1 };
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv), 0);
	assert_string_equal(info.version, "TLS1.2");
	assert_string_equal((char *)sv.cb, "none");
}

/*
 * Expects a verification failure whose text holds want and the certificate's
 * fingerprint, and whose info says why (problems, enum ba_tls_problem).
 */
static void expect_refused_p(int which, struct ba_tls_params *p, const char *want,
                             unsigned problems)
{
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&certs[which], p, &info, &err, NULL), -1);
	if (!strstr(err.text, want))
		fail_msg("'%s' does not contain '%s'", err.text, want);
	assert_int_equal(err.code, EX_UNAVAILABLE);
	char fp[100], pin[140];
	sha256_of(&certs[which], fp, sizeof(fp));
	snprintf(pin, sizeof(pin), "(SHA-256 fingerprint %s)", fp);
	if (!strstr(err.text, pin))
		fail_msg("'%s' does not contain '%s'", err.text, pin);
	/* no suggested line in the error: the one that was here did not parse (ba_route_hint) */
	assert_null(strstr(err.text, "SHA256:"));
	assert_string_equal(info.sha256, fp);
	assert_int_equal(info.verified, 0);
	if (problems)
		assert_int_equal(info.problems, problems);
	else
		assert_int_not_equal(info.problems, 0);
}

static void expect_refused(int which, struct ba_tls_params *p, const char *want)
{
	expect_refused_p(which, p, want, 0);
}

static void test_tls__failure_classes(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	expect_refused_p(C_EXPIRED, &p, ": certificate has expired (SHA-256 fingerprint ",
	                 BA_TLS_P_EXPIRED);
	expect_refused_p(C_NOTYET, &p, ": certificate is not yet valid (SHA-256 fingerprint ",
	                 BA_TLS_P_NOT_YET_VALID);
	expect_refused_p(C_WRONGHOST, &p, ": certificate is not valid for host 'localhost' (",
	                 BA_TLS_P_WRONG_NAME);
	expect_refused_p(C_UNKNOWNCA, &p, ": certificate issuer is unknown (",
	                 BA_TLS_P_UNKNOWN_ISSUER);
	expect_refused_p(C_SELF, &p, ": certificate is self-signed and not trusted (",
	                 BA_TLS_P_UNKNOWN_ISSUER | BA_TLS_P_SELF_SIGNED);
	expect_refused(C_CLIENTONLY, &p, ": certificate is not meant for a TLS server");
	p.crl_file = crl_file;
	expect_refused(C_REVOKED, &p, ": certificate has been revoked (");
	/* the CRL does not touch other certificates */
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, NULL), 0);
	p.crl_file = NULL;
	p.host = "127.0.0.2";
	expect_refused(C_GOOD, &p, "certificate is not valid for host '127.0.0.2'");
}

/* A certificate whose signature bytes were altered after signing. */
static void test_tls__bad_signature(void **state)
{
	(void)state;
	gnutls_datum_t der;
	assert_int_equal(gnutls_x509_crt_export2(certs[C_GOOD].crt, GNUTLS_X509_FMT_DER, &der), 0);
	der.data[der.size - 3] ^= 0x01; /* inside the ECDSA signature's s */
	struct cert bad = { NULL, certs[C_GOOD].key };
	assert_int_equal(gnutls_x509_crt_init(&bad.crt), 0);
	assert_int_equal(gnutls_x509_crt_import(bad.crt, &der, GNUTLS_X509_FMT_DER), 0);
	gnutls_free(der.data);
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&bad, &p, &info, &err, NULL), -1);
	assert_int_equal(err.code, EX_UNAVAILABLE);
	if (!strstr(err.text, ": certificate signature is invalid (SHA-256 fingerprint "))
		fail_msg("unexpected: %s", err.text);
	gnutls_x509_crt_deinit(bad.crt);
}

static void test_tls__certcheck_off(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .certcheck = 0 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&certs[C_EXPIRED], &p, &info, &err, NULL), 0);
	assert_int_equal(info.verified, 0);
}

static void test_tls__pinning(void **state)
{
	(void)state;
	char fp[100], pin[140];
	sha256_of(&certs[C_UNKNOWNCA], fp, sizeof(fp));
	snprintf(pin, sizeof(pin), "SHA256:%s", fp);
	struct ba_tls_params p = { .host = "localhost", .fingerprint = pin, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&certs[C_UNKNOWNCA], &p, &info, &err, NULL), 0);
	assert_int_equal(info.verified, 1);

	/* plain lower-case hex without colons is the same pin */
	char hex[80];
	size_t o = 0;
	for (const char *q = fp; *q; q++)
		if (*q != ':')
			hex[o++] = (char)(*q >= 'A' && *q <= 'F' ? *q - 'A' + 'a' : *q);
	hex[o] = 0;
	p.fingerprint = hex;
	assert_int_equal(run(&certs[C_UNKNOWNCA], &p, &info, &err, NULL), 0);

	/* the pin of another certificate fails, even for a CA-valid one */
	p.trust_file = ca_file;
	p.fingerprint = pin;
	expect_refused(C_GOOD, &p, "certificate does not match tls_fingerprint");

	expect_refused_p(C_GOOD, &p, "certificate does not match tls_fingerprint",
	                 BA_TLS_P_PIN_MISMATCH);

	p.fingerprint = "SHA256:AB:CD";
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, NULL), -1);
	assert_int_equal(err.code, EX_CONFIG);
}

/* msmtp still takes a SHA-1 or MD5 fingerprint (its manual: "for backwards compatibility"). */
static void test_tls__pinning_sha1_md5(void **state)
{
	(void)state;
	static const gnutls_digest_algorithm_t algs[2] = { GNUTLS_DIG_SHA1, GNUTLS_DIG_MD5 };
	for (int a = 0; a < 2; a++) {
		unsigned char md[32];
		size_t n = sizeof(md);
		assert_int_equal(gnutls_x509_crt_get_fingerprint(certs[C_UNKNOWNCA].crt, algs[a], md,
		                                                 &n), 0);
		char pin[100];
		size_t o = 0;
		for (size_t i = 0; i < n; i++)
			o += (size_t)snprintf(pin + o, sizeof(pin) - o, i ? ":%02X" : "%02X", md[i]);
		struct ba_tls_params p = { .host = "localhost", .fingerprint = pin, .certcheck = 1 };
		struct ba_tls_info info;
		struct ba_err err = BA_ERR_INIT;
		assert_int_equal(run(&certs[C_UNKNOWNCA], &p, &info, &err, NULL), 0);
		assert_int_equal(info.verified, 1);
		/* and it refuses another certificate */
		expect_refused_p(C_GOOD, &p, "certificate does not match tls_fingerprint",
		                 BA_TLS_P_PIN_MISMATCH);
		/* a "SHA256:" prefix before a shorter digest is no pin */
		char bad[120];
		snprintf(bad, sizeof(bad), "SHA256:%s", pin);
		p.fingerprint = bad;
		assert_int_equal(run(&certs[C_UNKNOWNCA], &p, NULL, &err, NULL), -1);
		assert_int_equal(err.code, EX_CONFIG);
	}
}

/* The names a refused certificate holds, for the hint (tls_host_override). */
static void test_tls__names(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&certs[C_WRONGHOST], &p, &info, &err, NULL), -1);
	assert_int_equal(info.nnames, 1);
	assert_string_equal(info.names[0], "other.example");
	assert_int_equal(info.names_more, 0);
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, NULL), 0);
	assert_true(info.nnames >= 1);
	assert_string_equal(info.names[0], "localhost");
	assert_int_equal(info.problems, 0);
}

static void test_tls__client_certificate(void **state)
{
	(void)state;
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1,
		                   .cert_file = client_crt, .key_file = client_key };
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { .want_client_cert = 1 };
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, &sv), 0);
	assert_string_equal(sv.client_dn, "CN=alice");
}

static void test_tls__config_errors(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	struct ba_tls_params p = { .host = "localhost", .trust_file = "/nonexistent/ca.pem",
		                   .certcheck = 1 };
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, NULL), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "cannot load trust file '/nonexistent/ca.pem'"));

	p.trust_file = ca_file;
	p.priorities = "NORMAL:+BOGUS";
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, NULL), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_string_equal(err.text, "invalid TLS priorities 'NORMAL:+BOGUS' at position 8 "
	                    "('+BOGUS')");

	p.priorities = NULL;
	p.cert_file = client_crt;
	assert_int_equal(run(&certs[C_GOOD], &p, NULL, &err, NULL), -1);
	assert_int_equal(err.code, EX_CONFIG);
}

/* The whole path the engine takes: ba_net_connect (loopback TCP, unix socket), then TLS. */
static void test_tls__over_net_connect(void **state)
{
	(void)state;
	char sdir[] = "/tmp/ba-tls-net-XXXXXX", path[64];
	assert_non_null(mkdtemp(sdir));
	snprintf(path, sizeof(path), "%s/s", sdir);
	for (int unix_sock = 0; unix_sock < 2; unix_sock++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		struct ba_net_params np = { .host = "localhost", .timeout_ms = 2000 };
		int lfd = socket(unix_sock ? AF_UNIX : AF_INET, SOCK_STREAM, 0);
		if (unix_sock) {
			memcpy(sun.sun_path, path, strlen(path) + 1);
			assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
			np.host = path;
		} else {
			socklen_t len = sizeof(sin);
			inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
			assert_int_equal(bind(lfd, (struct sockaddr *)&sin, len), 0);
			getsockname(lfd, (struct sockaddr *)&sin, &len);
			np.port = ntohs(sin.sin_port);
		}
		assert_int_equal(listen(lfd, 5), 0);
		struct ba_err err = BA_ERR_INIT;
		ba_stream *in = NULL, *s = NULL;
		assert_int_equal(ba_net_connect(&in, &np, &err), 0);
		struct server sv = { .cert = &certs[C_GOOD] };
		sv.fd = accept(lfd, NULL, NULL);
		assert_true(sv.fd >= 0);
		assert_int_equal(pthread_create(&sv.thread, NULL, server_main, &sv), 0);
		struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file,
			                   .certcheck = 1, .timeout_ms = 5000 };
		assert_int_equal(ba_tls_start(&s, in, &p, NULL, &err), 0);
		assert_true(ba_tls_is_tls(s));
		char buf[64];
		assert_int_equal(ba_stream_write(s, "EHLO x\r\n", 8, ba_deadline(2000), &err), 0);
		assert_int_equal(ba_stream_read(s, buf, sizeof(buf), ba_deadline(2000), &err), 8);
		assert_memory_equal(buf, "EHLO x\r\n", 8);
		ba_stream_free(s);
		pthread_join(sv.thread, NULL);
		assert_string_equal(sv.sni, "localhost");
		close(lfd);
	}
	unlink(path);
	rmdir(sdir);
}

static void *silent_main(void *arg)
{
	int fd = *(int *)arg;
	char buf[4096];
	while (read(fd, buf, sizeof(buf)) > 0)
		; /* swallow the ClientHello, never answer */
	return NULL;
}

static void test_tls__handshake_timeout(void **state)
{
	(void)state;
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	pthread_t th;
	pthread_create(&th, NULL, silent_main, &sp[1]);
	ba_stream *in = ba_fd_stream_new(sp[0], sp[0], "silent");
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1,
		                   .timeout_ms = 300 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	int64_t t0 = ba_now_ms();
	assert_int_equal(ba_tls_start(&s, in, &p, NULL, &err), -1);
	int64_t took = ba_now_ms() - t0;
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_non_null(strstr(err.text, "TLS handshake with 'localhost' failed: "));
	assert_true(took >= 250 && took < 1500);
	pthread_join(th, NULL); /* ba_tls_start closed our end */
	close(sp[1]);
}

static void *closing_main(void *arg)
{
	int fd = *(int *)arg;
	char buf[4096];
	if (read(fd, buf, sizeof(buf)) > 0)
		shutdown(fd, SHUT_RDWR); /* read the ClientHello, then hang up */
	return NULL;
}

static void *plaintext_main(void *arg)
{
	int fd = *(int *)arg;
	char buf[4096];
	if (read(fd, buf, sizeof(buf)) > 0 &&
	    write(fd, "220 mail.example.test ESMTP ready\r\n", 35) == 35)
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	return NULL;
}

static void test_tls__peer_not_speaking_tls(void **state)
{
	(void)state;
	void *(*fns[2])(void *) = { closing_main, plaintext_main };
	const char *want[2] = { "TLS handshake with 'localhost' failed: the server closed the "
		                "connection", "TLS handshake with 'localhost' failed: the server "
		                "answered in plain text, not TLS ('220 mail.example.test ESMTP "
		                "ready')" };
	for (int i = 0; i < 2; i++) {
		int sp[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
		pthread_t th;
		pthread_create(&th, NULL, fns[i], &sp[1]);
		ba_stream *in = ba_fd_stream_new(sp[0], sp[0], "peer");
		struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file,
			                   .certcheck = 1, .timeout_ms = 2000 };
		struct ba_err err = BA_ERR_INIT;
		ba_stream *s = NULL;
		struct ba_tls_info info;
		assert_int_equal(ba_tls_start(&s, in, &p, &info, &err), -1);
		assert_int_equal(err.code, EX_UNAVAILABLE);
		print_message("%s\n", err.text);
		if (strncmp(err.text, want[i], strlen(want[i])) != 0)
			fail_msg("'%s' does not start with '%s'", err.text, want[i]);
		assert_string_equal(info.plain, i ? "220 mail.example.test ESMTP ready" : "");
		pthread_join(th, NULL);
		close(sp[1]);
	}
}

static void test_tls__not_tls(void **state)
{
	(void)state;
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	ba_stream *s = ba_fd_stream_new(sp[0], sp[0], "plain");
	struct ba_buf b = BA_BUF_INIT;
	const char *type = NULL;
	assert_int_equal(ba_tls_is_tls(s), 0);
	assert_int_equal(ba_tls_channel_binding(s, &b, &type), -1);
	ba_stream_free(s);
	close(sp[1]);
}

/*
 * Prints the cost of ba_tls_start() with a trust file, with the system store
 * loaded afresh, and with the system store shared by earlier sessions.  The
 * test CA is in no system store, so those handshakes fail, as they must.
 */
/* ---- DANE ---- */

/* A TLSA record for c: selector 0 (certificate) or 1 (key), mtype 0, 1 or 2. */
static struct ba_tls_tlsa tlsa_of(const struct cert *c, unsigned usage, unsigned selector,
                                  unsigned mtype, unsigned char *buf)
{
	gnutls_datum_t der;
	if (selector == 0) {
		assert_int_equal(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_DER, &der), 0);
	} else {
		gnutls_pubkey_t pk;
		assert_int_equal(gnutls_pubkey_init(&pk), 0);
		assert_int_equal(gnutls_pubkey_import_x509(pk, c->crt, 0), 0);
		assert_int_equal(gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &der), 0);
		gnutls_pubkey_deinit(pk);
	}
	size_t len = der.size;
	if (mtype == 0) {
		assert_true(der.size <= 2048);
		memcpy(buf, der.data, der.size);
	} else {
		len = mtype == 1 ? 32 : 64;
		assert_int_equal(gnutls_hash_fast(mtype == 1 ? GNUTLS_DIG_SHA256 : GNUTLS_DIG_SHA512,
		                                  der.data, der.size, buf), 0);
	}
	gnutls_free(der.data);
	struct ba_tls_tlsa r = { usage, selector, mtype, buf, len };
	return r;
}

static void test_tls__dane_usable(void **state)
{
	(void)state;
	unsigned char d[64] = { 1 };
	struct ba_tls_tlsa r[] = {
		{ 3, 1, 1, d, 32 }, { 3, 0, 1, d, 32 }, { 2, 0, 1, d, 32 }, { 2, 1, 2, d, 64 },
		{ 3, 1, 0, d, 10 },
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		assert_int_equal(ba_tls_tlsa_usable(&r[i]), 1);
	struct ba_tls_tlsa bad[] = {
		{ 0, 0, 1, d, 32 },  /* PKIX-TA: unusable for SMTP (RFC 7672 §3.1.3) */
		{ 1, 1, 1, d, 32 },  /* PKIX-EE */
		{ 4, 1, 1, d, 32 }, { 3, 2, 1, d, 32 }, { 3, 1, 3, d, 32 },
		{ 3, 1, 1, d, 31 },  /* a SHA-256 digest of the wrong length */
		{ 3, 1, 2, d, 32 }, { 3, 1, 0, d, 0 }, { 3, 1, 0, NULL, 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ba_tls_tlsa_usable(&bad[i]), 0);
}

static void test_tls__dane_ee(void **state)
{
	(void)state;
	unsigned char b1[2048], b2[2048];
	struct ba_tls_tlsa r = tlsa_of(&certs[C_SELF], 3, 1, 1, b1);
	/* no trust store, a name the certificate does not have: DANE-EE looks at the key alone */
	struct ba_tls_params p = { .host = "mx.example.test", .certcheck = 1, .tlsa = &r,
		                   .ntlsa = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&certs[C_SELF], &p, &info, &err, NULL), 0);
	assert_int_equal(info.verified, 1);
	assert_int_equal(info.dane, 3);
	/* nor at the dates */
	r = tlsa_of(&certs[C_EXPIRED], 3, 0, 2, b1);
	assert_int_equal(run(&certs[C_EXPIRED], &p, &info, &err, NULL), 0);
	assert_int_equal(info.dane, 3);
	r = tlsa_of(&certs[C_EXPIRED], 3, 0, 0, b1);
	assert_int_equal(run(&certs[C_EXPIRED], &p, &info, &err, NULL), 0);
	/* a wrong digest: refused, and the error says so */
	r = tlsa_of(&certs[C_SELF], 3, 1, 1, b1);
	b1[0] ^= 1;
	expect_refused_p(C_SELF, &p, ": certificate matches none of the DANE TLSA records (",
	                 BA_TLS_P_DANE_MISMATCH);
	/* the key of another certificate */
	r = tlsa_of(&certs[C_GOOD], 3, 1, 1, b1);
	expect_refused_p(C_SELF, &p, "matches none of the DANE TLSA records",
	                 BA_TLS_P_DANE_MISMATCH);
	/* one record of several matching is enough */
	struct ba_tls_tlsa two[2] = { tlsa_of(&certs[C_GOOD], 3, 1, 1, b1),
		                      tlsa_of(&certs[C_SELF], 3, 0, 1, b2) };
	p.tlsa = two;
	p.ntlsa = 2;
	assert_int_equal(run(&certs[C_SELF], &p, &info, &err, NULL), 0);
	/* a pin and a trust file do not apply under DANE */
	p.fingerprint = "00:11";
	p.trust_file = "/nonexistent";
	assert_int_equal(run(&certs[C_SELF], &p, &info, &err, NULL), 0);
	/* PKIX-EE records are never matched, even when they would */
	struct ba_tls_tlsa pkix = tlsa_of(&certs[C_SELF], 1, 1, 1, b1);
	p.tlsa = &pkix;
	p.ntlsa = 1;
	expect_refused_p(C_SELF, &p, "matches none of the DANE TLSA records",
	                 BA_TLS_P_DANE_MISMATCH);
}

static void test_tls__dane_ta(void **state)
{
	(void)state;
	unsigned char b[2048];
	struct ba_tls_tlsa r = tlsa_of(&certs[C_CA], 2, 0, 1, b);
	struct ba_tls_params p = { .host = "localhost", .certcheck = 1, .tlsa = &r, .ntlsa = 1 };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	struct server sv = { .issuer = &certs[C_CA] };
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv), 0);
	assert_int_equal(info.dane, 2);
	r = tlsa_of(&certs[C_CA], 2, 1, 2, b);
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv), 0);
	assert_int_equal(info.dane, 2);
	/* DANE-TA checks the name: the MX host name */
	p.host = "mx.example.test";
	struct server sv2 = { .issuer = &certs[C_CA] };
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv2), -1);
	assert_non_null(strstr(err.text, "certificate is not valid for host 'mx.example.test' "
	                                 "(DANE-TA)"));
	assert_int_equal(info.problems, BA_TLS_P_WRONG_NAME);
	/* another CA */
	p.host = "localhost";
	r = tlsa_of(&certs[C_OTHERCA], 2, 0, 1, b);
	struct server sv3 = { .issuer = &certs[C_CA] };
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv3), -1);
	assert_non_null(strstr(err.text, "matches none of the DANE TLSA records"));
	/* a leaf that claims the CA but was signed by another key */
	r = tlsa_of(&certs[C_OTHERCA], 2, 0, 1, b);
	struct server sv4 = { .issuer = &certs[C_OTHERCA] };
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, &sv4), -1);
	/* the server must send the anchor: a lone leaf matches no TA record */
	r = tlsa_of(&certs[C_CA], 2, 0, 1, b);
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, NULL), -1);
}

static void capture_log(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)level;
	snprintf(ctx, 512, "%s", msg);
}

/* MTA-STS testing mode: a refused certificate is logged, the handshake goes on. */
static void test_tls__report_only(void **state)
{
	(void)state;
	char logged[512] = "";
	struct ba_log log = { capture_log, logged, BA_LOG_INFO };
	struct ba_tls_params p = { .host = "localhost", .trust_file = ca_file, .certcheck = 1,
		                   .report_only = 1, .log = &log };
	struct ba_tls_info info;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(run(&certs[C_WRONGHOST], &p, &info, &err, NULL), 0);
	assert_int_equal(info.verified, 0);
	assert_int_equal(info.problems, BA_TLS_P_WRONG_NAME);
	assert_non_null(strstr(logged, "TLS certificate of 'localhost' would not be accepted: "
	                               "certificate is not valid for host 'localhost'"));
	/* a good certificate: verified, nothing logged at INFO about it */
	logged[0] = '\0';
	assert_int_equal(run(&certs[C_GOOD], &p, &info, &err, NULL), 0);
	assert_int_equal(info.verified, 1);
	assert_null(strstr(logged, "would not be accepted"));
}

static void test_tls__timing(void **state)
{
	(void)state;
	const int n = 20;
	static const char *const names[3] = { "a trust file", "the system store, loaded afresh",
		                               "the system store, shared" };
	for (int mode = 0; mode < 3; mode++) {
		long total = 0;
		for (int i = 0; i < n; i++) {
			struct ba_tls_params p = { .host = "localhost", .certcheck = 1,
				                   .trust_file = mode ? NULL : ca_file };
			struct ba_err err = BA_ERR_INIT;
			if (mode == 1)
				ba_tls_cleanup();
			int r = run(&certs[C_GOOD], &p, NULL, &err, NULL);
			assert_int_equal(r, mode ? -1 : 0);
			if (mode)
				assert_non_null(strstr(err.text, "certificate issuer is unknown"));
			total += last_start_us;
		}
		print_message("ba_tls_start over a socketpair with %s: %.2f ms\n", names[mode],
		              (double)total / n / 1000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls__good_handshake_and_data),
		cmocka_unit_test(test_tls__ip_literal_no_sni),
		cmocka_unit_test(test_tls__tls12_channel_binding_unique),
		cmocka_unit_test(test_tls__tls12_no_ems_no_channel_binding),
		cmocka_unit_test(test_tls__failure_classes),
		cmocka_unit_test(test_tls__bad_signature),
		cmocka_unit_test(test_tls__certcheck_off),
		cmocka_unit_test(test_tls__pinning),
		cmocka_unit_test(test_tls__pinning_sha1_md5),
		cmocka_unit_test(test_tls__names),
		cmocka_unit_test(test_tls__client_certificate),
		cmocka_unit_test(test_tls__config_errors),
		cmocka_unit_test(test_tls__over_net_connect),
		cmocka_unit_test(test_tls__cancel),
		cmocka_unit_test(test_tls__readable),
		cmocka_unit_test(test_tls__wait_hook),
		cmocka_unit_test(test_tls__handshake_timeout),
		cmocka_unit_test(test_tls__peer_not_speaking_tls),
		cmocka_unit_test(test_tls__not_tls),
		cmocka_unit_test(test_tls__timing),
		cmocka_unit_test(test_tls__dane_usable),
		cmocka_unit_test(test_tls__dane_ee),
		cmocka_unit_test(test_tls__dane_ta),
		cmocka_unit_test(test_tls__report_only),
	};
	return cmocka_run_group_tests(tests, setup_certs, teardown_certs);
}
