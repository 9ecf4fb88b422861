/* bluearrow/http.h - HTTPS requests through libcurl, loaded on first use
 *
 * libcurl (the GnuTLS flavour, libcurl-gnutls.so.4) is loaded with dlopen()
 * on the first request, so a process that never makes one (`bluearrow
 * sendmail` without OAuth2 or MX delivery) never maps it; only curl/curl.h
 * is needed to build.  Requests are HTTPS only, with the peer verified
 * (chain and host name), redirects never followed, the reply body and the
 * total time bounded.  libcurl is never put in verbose mode: it would print
 * request bodies, which may be secrets.
 */
#ifndef BLUEARROW_HTTP_H
#define BLUEARROW_HTTP_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"

/* The library loaded, for error texts that tell what to install. */
#define BA_HTTP_LIBRARY "libcurl-gnutls.so.4"
#define BA_HTTP_PACKAGE "libcurl3-gnutls"

struct ba_http_params {
	const char *ca_file;    /* PEM CA bundle; NULL = the system trust store */
	int timeout_ms;         /* the whole request, connection included; <= 0: 60 s */
	size_t body_max;        /* reply body bound; 0 = 64 KB */
	/* tests only, never from a configuration: "HOST:PORT" to connect to instead
	   of the URL's host and port (libcurl CONNECT_TO); the certificate is still
	   verified against the URL's host name */
	const char *connect_to;
	const struct ba_log *log; /* optional; the URL is logged at INFO */
};

struct ba_http_reply {
	long status;            /* HTTP status code */
	char content_type[128]; /* the Content-Type field value, "" when none (truncated) */
	struct ba_buf body;     /* the body, at most body_max bytes; caller releases */
};

/* 1 if libcurl can be loaded (loads it once; thread-safe). */
int ba_http_available(void);

/*
 * GETs url (form NULL) or POSTs form (form_len bytes, sent as
 * application/x-www-form-urlencoded) to it; url must be https.  *p is
 * borrowed for the call.  On success (any HTTP status) fills *r, whose body
 * the caller releases with ba_buf_release() (also on failure: it may hold a
 * part).  The error text is the reason alone, for the caller to prefix
 * with what it was doing ("no reply in time").
 *
 * Errors:
 *  EX_UNAVAILABLE  libcurl cannot be loaded ("cannot load libcurl-gnutls.so.4
 *                  (Debian package libcurl3-gnutls)"); TLS failure or
 *                  certificate not accepted; not an https URL
 *  EX_PROTOCOL     the body is larger than body_max ("the reply is larger
 *                  than 64 KB")
 *  EX_TEMPFAIL     connection failure, name resolution failure, timeout
 *  EX_OSERR        libcurl could not be initialised, out of memory
 */
int ba_http_request(struct ba_http_reply *r, const char *url, const char *form,
                    size_t form_len, const struct ba_http_params *p, struct ba_err *err);

#endif
