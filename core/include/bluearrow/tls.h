/* bluearrow/tls.h - GnuTLS client sessions wrapping a ba_stream
 *
 * Verification is GnuTLS's own (gnutls_certificate_verify_peers with the
 * host name): chain to a trusted root, CA flags, validity dates, host name or
 * IP address, and the TLS server key purpose.  The system trust store is
 * loaded only when a handshake needs it and no trust file is given.
 */
#ifndef BLUEARROW_TLS_H
#define BLUEARROW_TLS_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/log.h"

struct ba_tls_params {
	const char *host;          /* the name to verify and send as SNI (SNI only for DNS names) */
	const char *trust_file;    /* PEM CA bundle; NULL = system trust store; "system" too */
	const char *crl_file;      /* optional PEM CRL */
	const char *fingerprint;   /* optional pin: "SHA256:AB:CD..." or hex; replaces CA verification */
	const char *cert_file;     /* optional client certificate (PEM) */
	const char *key_file;      /* its key (PEM) */
	const char *priorities;    /* GnuTLS priority string; NULL = "NORMAL" */
	int certcheck;             /* 0 = do not verify (tls_certcheck off); the caller warns */
	int min_dh_bits;           /* 0 = GnuTLS default */
	int timeout_ms;            /* handshake deadline; <= 0: 60 s */
	const struct ba_log *log;  /* optional */
};

/* What a verified (or failed) handshake learnt, for `bluearrow check` and errors. */
struct ba_tls_info {
	char version[32];          /* "TLS1.3" */
	char cipher[128];          /* GnuTLS's cipher suite description */
	char subject[256];         /* peer certificate subject DN */
	char issuer[256];
	char not_before[32], not_after[32]; /* "2026-11-29 12:00:00 UTC" */
	char sha256[100];          /* "AB:CD:..." SHA-256 of the DER certificate */
	int verified;              /* 1 if verification (CA or pin) passed */
};

/*
 * Performs a TLS handshake over inner and verifies the peer as *p requires.
 * Takes ownership of inner, also on failure.  On success *out is the
 * encrypted stream (free with ba_stream_free()); if info is not NULL it is
 * filled (also on a verification failure, so the caller can show the
 * fingerprint).  Errors: EX_UNAVAILABLE for a handshake or verification
 * failure, with one reason per cause: "certificate has expired", "certificate
 * is not valid for host 'x'", "certificate issuer is unknown", ... and the
 * fingerprint in the text; EX_TEMPFAIL for a timeout; EX_CONFIG for unusable
 * trust/cert/key files or priorities.
 */
int ba_tls_start(ba_stream **out, ba_stream *inner, const struct ba_tls_params *p,
                 struct ba_tls_info *info, struct ba_err *err);

/*
 * Channel binding data of an established session made by ba_tls_start():
 * "tls-exporter" (RFC 9266) for TLS 1.3, "tls-unique" for TLS 1.2.  Appends
 * the data to out and stores the type name in *type.  Returns 0, or -1 when
 * the stream is not TLS or none is available.
 */
int ba_tls_channel_binding(ba_stream *s, struct ba_buf *out, const char **type);
/* 1 if s is a stream made by ba_tls_start(). */
int ba_tls_is_tls(ba_stream *s);

#endif
