/* bluearrow/log.h - log sink, and cleaning of untrusted text
 *
 * Core never prints.  A front end passes a struct ba_log (callback + most
 * verbose level it wants) to the modules that log; NULL means "no logging".
 * Messages handed to the callback are single lines without a newline, already
 * cleaned of control characters, and never contain secrets: code that logs a
 * protocol line carrying credentials redacts it first (ba_log_redact_auth()).
 */
#ifndef BLUEARROW_LOG_H
#define BLUEARROW_LOG_H

#include <stddef.h>

#include "bluearrow/buf.h"

enum ba_log_level {
	BA_LOG_ERROR,
	BA_LOG_WARNING,
	BA_LOG_INFO,
	BA_LOG_DEBUG,   /* state transitions, decisions */
	BA_LOG_PROTO,   /* the protocol dialogue, as -v shows it */
};

typedef void ba_log_fn(void *ctx, enum ba_log_level level, const char *msg);

struct ba_log {
	ba_log_fn *fn;
	void *ctx;
	enum ba_log_level level; /* messages more verbose than this are dropped */
};

/* 1 if a message at level would reach the callback (log may be NULL). */
int ba_log_enabled(const struct ba_log *log, enum ba_log_level level);
/* Formats, cleans (ba_log_clean) and passes the message on.  log may be NULL. */
void ba_log(const struct ba_log *log, enum ba_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Appends a printable copy of untrusted text (a server reply, a file name)
 * to out: printable ASCII and well-formed UTF-8 above U+009F are kept; C0
 * controls, DEL, C1 controls (raw 0x80-0x9F bytes and their UTF-8 forms),
 * invisible format characters (bidi controls, zero-width characters, line
 * and paragraph separators, BOM) and malformed UTF-8 become '?'.  Escape sequences are thereby defused (the
 * ESC is gone).  Returns 0, or -1 if out has failed.
 */
int ba_log_clean(struct ba_buf *out, const char *s, size_t n);

/*
 * For tracing an SMTP command line: appends line to out with any SASL
 * payload replaced by "<redacted>" ("AUTH PLAIN <redacted>").  A line that
 * is a bare SASL continuation (the answer to a 334 challenge) must not be
 * passed here at all: the engine logs "<redacted>" for it itself.
 */
int ba_log_redact_auth(struct ba_buf *out, const char *line, size_t n);

#endif
