/* bluearrow/tls.h - GnuTLS client sessions wrapping a ba_stream
 *
 * Verification is GnuTLS's own (gnutls_certificate_verify_peers with the
 * host name): chain to a trusted root, CA flags, validity dates, host name or
 * IP address (RFC 6125), and the TLS server key purpose.  It runs inside the
 * handshake, so a refused certificate ends it with an alert.  The system
 * trust store (~9 ms to load) is loaded only when certcheck is on and
 * neither a trust file nor a fingerprint is given.
 *
 * The session reads and writes through the inner ba_stream, so TLS works
 * over TCP, unix sockets and SOCKS5 alike; the handshake uses its own
 * deadline, later reads and writes the deadline passed to each call.  Large
 * writes go out as full 16 KB records, encrypted from the caller's buffer.
 */
#ifndef BLUEARROW_TLS_H
#define BLUEARROW_TLS_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/log.h"

/*
 * A TLSA record (RFC 6698 §2.1) of the server, for DANE (RFC 7672).  Its
 * data is borrowed.
 */
struct ba_tls_tlsa {
	unsigned usage;            /* 2 DANE-TA, 3 DANE-EE (0 PKIX-TA, 1 PKIX-EE: unusable) */
	unsigned selector;         /* 0 the whole certificate, 1 its SubjectPublicKeyInfo */
	unsigned mtype;            /* 0 exact, 1 SHA-256, 2 SHA-512 */
	const unsigned char *data;
	size_t len;
};

/* How many TLSA records a session is checked against (more are ignored). */
#define BA_TLS_TLSA_MAX 16

/*
 * 1 if r is usable for SMTP (RFC 7672 §3.1.3): usage DANE-TA(2) or
 * DANE-EE(3), selector 0 or 1, matching type 0 (any length), 1 (32 bytes)
 * or 2 (64 bytes).  PKIX-TA(0) and PKIX-EE(1) records, unknown values and
 * digests of the wrong length are unusable: a host whose TLSA records are
 * all unusable is treated as having none (RFC 7672 §2.2).
 */
int ba_tls_tlsa_usable(const struct ba_tls_tlsa *r);

struct ba_tls_params {
	const char *host;          /* the name to verify (an A-label) and send as SNI; SNI only
	                              for DNS names, never for IPv4/IPv6 literals ("[::1]" ok) */
	const char *trust_file;    /* PEM CA bundle; NULL = system trust store; "system" too */
	const char *crl_file;      /* optional PEM CRL */
	const char *fingerprint;   /* optional pin: the SHA-256 (32 bytes), or for msmtp
	                              compatibility SHA-1 (20) or MD5 (16), of the leaf's DER,
	                              in hex ("AB:CD:...", colons optional, an optional
	                              "SHA256:" prefix); replaces CA, date and host checks */
	const char *cert_file;     /* optional client certificate (PEM) */
	const char *key_file;      /* its key (PEM) */
	const char *priorities;    /* GnuTLS priority string; NULL = "NORMAL" */
	int certcheck;             /* 0 = do not verify at all, pin included (tls_certcheck off);
	                              the caller warns */
	int min_dh_bits;           /* 0 = GnuTLS default */
	int timeout_ms;            /* handshake deadline; <= 0: 60 s */
	const struct ba_log *log;  /* optional */
	/*
	 * DANE (RFC 7672): with ntlsa > 0 the peer is verified against these
	 * records (DNSSEC-secure and usable: the caller's business, see
	 * ba_tls_tlsa_usable()) instead of the trust store, pin and CRL: a
	 * DANE-EE(3) record matches the leaf certificate or key, whatever its
	 * names and dates; a DANE-TA(2) record matches the certificate (or
	 * key) that issued the leaf, and the leaf must then be valid for host
	 * (and be in its validity period).  One matching record suffices.
	 * certcheck must be 1.  The DANE code of GnuTLS (libgnutls-dane.so.0)
	 * is loaded on the first such session.
	 */
	const struct ba_tls_tlsa *tlsa; /* borrowed for the call */
	size_t ntlsa;
	/*
	 * 1: verify as certcheck says, but let a refused certificate through:
	 * the reason is logged at INFO ("TLS certificate of 'h' would not be
	 * accepted: ...") and info->verified is 0 (MTA-STS testing mode, RFC
	 * 8461 §5).
	 */
	int report_only;
	/*
	 * DANE-TA(2): a second name the leaf may be valid for instead of host
	 * (RFC 7672 §3.2.2: the MX host name and its CNAME expansion are both
	 * reference identifiers); NULL = host only.  Not sent as SNI.
	 */
	const char *dane_alt_host;
};

/* Why a certificate was refused (ba_tls_info.problems); more than one may be set. */
enum ba_tls_problem {
	BA_TLS_P_UNKNOWN_ISSUER = 1 << 0, /* no chain to a trusted root (or the issuer is no CA) */
	BA_TLS_P_SELF_SIGNED    = 1 << 1, /* with BA_TLS_P_UNKNOWN_ISSUER: the leaf signed itself */
	BA_TLS_P_WRONG_NAME     = 1 << 2, /* not valid for the host name verified */
	BA_TLS_P_EXPIRED        = 1 << 3,
	BA_TLS_P_NOT_YET_VALID  = 1 << 4,
	BA_TLS_P_REVOKED        = 1 << 5,
	BA_TLS_P_PIN_MISMATCH   = 1 << 6, /* not the certificate of tls_fingerprint */
	BA_TLS_P_OTHER          = 1 << 7, /* signature, algorithm, key purpose, no certificate... */
	BA_TLS_P_DANE_MISMATCH  = 1 << 8  /* matches none of the TLSA records given */
};

/* How many names of the certificate ba_tls_info keeps. */
#define BA_TLS_NAMES_MAX 8

/* What a verified (or failed) handshake learnt, for `bluearrow check` and hints. */
struct ba_tls_info {
	char version[32];          /* "TLS1.3" */
	char cipher[128];          /* GnuTLS's cipher suite description */
	char subject[256];         /* peer certificate subject DN */
	char issuer[256];
	char not_before[32], not_after[32]; /* "2026-11-29 12:00:00 UTC" */
	char sha256[100];          /* "AB:CD:..." SHA-256 of the DER certificate */
	int verified;              /* 1 if verification (CA, pin or DANE) passed */
	int dane;                  /* the usage of the TLSA record that matched (2 or 3), else 0 */
	unsigned problems;         /* enum ba_tls_problem of a refused certificate, else 0 */
	/* the names the certificate is valid for: its subjectAltName DNS names and IP
	   addresses in order, else its subject CN; untrusted text, cleaned (ba_log_clean());
	   the first BA_TLS_NAMES_MAX, names_more when there are more */
	char names[BA_TLS_NAMES_MAX][256];
	unsigned nnames;
	int names_more;
	char plain[128];           /* when the server answered the ClientHello with text rather
	                              than TLS: its first line, cleaned ("220 mx ESMTP"); else "" */
	char refused[BA_ERR_TEXT_MAX]; /* report_only (ba_tls_params): why the certificate would
	                              have been refused (the text of the error it would have
	                              been, without the "not accepted" prefix); else "" */
};

/*
 * Performs a TLS handshake over inner and verifies the peer as *p requires
 * (*p is borrowed for the call).  Takes ownership of inner, also on
 * failure.  On success *out is the encrypted stream (free with
 * ba_stream_free(), which sends close_notify); its pending op reports
 * decrypted bytes not yet read.  If info is not NULL it is filled (also on
 * a verification failure, so the caller can show the fingerprint).
 *
 * Errors:
 *  EX_UNAVAILABLE  handshake or verification failure.  Verification texts:
 *    "TLS certificate of 'h' not accepted: <reason> (SHA-256 fingerprint
 *    AB:CD:..)" with one reason per cause (what to change is the caller's
 *    business: ba_route_hint() builds it from info): "certificate has expired", "certificate is not yet valid",
 *    "certificate is not valid for host 'h'", "certificate issuer is
 *    unknown", "certificate is self-signed and not trusted", "certificate
 *    has been revoked", "certificate is not meant for a TLS server (key
 *    purpose)", "certificate signature is invalid", "certificate does not
 *    match tls_fingerprint", "certificate matches none of the DANE TLSA
 *    records", ...; a server that answers in plain text:
 *    "TLS handshake with 'h' failed: the server answered in plain text, not
 *    TLS ('220 mx ESMTP')" (info->plain is set).
 *  EX_TEMPFAIL     the handshake deadline passed
 *  EX_UNAVAILABLE  also: TLSA records given but libgnutls-dane.so.0 cannot be
 *                  loaded ("DANE needs libgnutls-dane.so.0 (Debian package
 *                  libgnutls-dane0), which cannot be loaded")
 *  EX_CONFIG       unusable trust, CRL, certificate or key files, a bad pin,
 *                  or priorities ("invalid TLS priorities 'x' at position 8
 *                  ('+BOGUS')")
 *  EX_OSERR        GnuTLS could not be initialised, out of memory
 */
int ba_tls_start(ba_stream **out, ba_stream *inner, const struct ba_tls_params *p,
                 struct ba_tls_info *info, struct ba_err *err);

/*
 * Channel binding data of an established session made by ba_tls_start():
 * "tls-exporter" (RFC 9266) for TLS 1.3, "tls-unique" for TLS 1.2.  Appends
 * the data to out and stores the type name in *type.  Returns 0, or -1 when
 * the stream is not TLS or none is available; a TLS 1.2 session without the
 * extended master secret (RFC 7627) has none, as its tls-unique is unsafe.
 */
int ba_tls_channel_binding(ba_stream *s, struct ba_buf *out, const char **type);
/* 1 if s is a stream made by ba_tls_start(). */
int ba_tls_is_tls(ba_stream *s);

/*
 * Sessions that verify against the system trust store alone (no CRL, no
 * client certificate) share one copy of it, loaded on first use and kept for
 * later connections.  This frees it when no session uses it (optional, at
 * exit, for leak checkers).
 */
void ba_tls_cleanup(void);

#endif
