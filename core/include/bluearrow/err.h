/* bluearrow/err.h - the one error vocabulary of core
 *
 * Every fallible function of core returns int (0 = success, -1 = failure)
 * and fills a caller-provided struct ba_err.  The error's class is a
 * sysexits(3) code, so the front ends decide the exit status once, from the
 * class, without knowing which module failed.  The SMTP reply code and the
 * enhanced status code (RFC 3463) are kept when the failure came from a
 * server.  The text is already safe to print: server text put in an error
 * is sanitised by the code that does it (see ba_log_clean()).
 */
#ifndef BLUEARROW_ERR_H
#define BLUEARROW_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <sysexits.h>

#define BA_ERR_TEXT_MAX 512

struct ba_err {
	int code;          /* sysexits class; 0 = no error */
	int smtp_code;     /* 3-digit reply code when the error came from a server, else 0 */
	char enhanced[16]; /* "5.1.1" when the server gave one, else "" */
	char text[BA_ERR_TEXT_MAX]; /* lowercase, no full stop, what first */
	unsigned flags;    /* enum ba_err_flags: what kind of failure, beyond the class */
};

#define BA_ERR_INIT { 0, 0, "", "", 0 }

enum ba_err_flags {
	/*
	 * The operation was stopped by its caller (a cancel descriptor, see
	 * ba_stream_set_cancel()), not by a failure.  The class is EX_TEMPFAIL
	 * (sysexits has no "cancelled"; the work can be done again); a front
	 * end shows "cancelled" rather than an error.
	 */
	BA_ERR_CANCELLED = 1 << 0,
	/*
	 * The server accepted STARTTLS but the TLS handshake or the peer's
	 * verification failed (class EX_UNAVAILABLE or EX_TEMPFAIL): the
	 * connection is gone; a caller doing opportunistic TLS may connect
	 * again in plaintext or try the next host (see bluearrow/smtp.h).
	 */
	BA_ERR_TLS_FAILED = 1 << 1,
};

/*
 * Sets the class and text of *err (which may be NULL: the error is then
 * only returned) and clears the SMTP fields and the flags.  Always returns -1 so that
 * `return ba_err_set(err, EX_DATAERR, "...")` is the idiom.
 */
int ba_err_set(struct ba_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int ba_err_vset(struct ba_err *err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* As ba_err_set(), and records the server's reply code and enhanced status (may be NULL). */
int ba_err_smtp(struct ba_err *err, int code, int smtp_code, const char *enhanced,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/*
 * A cancelled operation: class EX_TEMPFAIL, flag BA_ERR_CANCELLED, the text from fmt
 * ("cancelled" style).  Returns -1.
 */
int ba_err_cancel(struct ba_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Puts context in front of the existing text: "cannot read 'x.pdf': " +
 * old text.  Keeps the class and SMTP fields.  Returns -1.
 */
int ba_err_prefix(struct ba_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Resets *err to "no error" (NULL is a no-op). */
void ba_err_clear(struct ba_err *err);
/*
 * Thread-safe strerror(): the description of errno value e ("No such file
 * or directory"), written to buf (size n >= 1, always NUL-terminated,
 * truncated to fit) via strerror_r(); returns buf.  Unknown values give
 * "error N".  Core calls this, never strerror(), whose static buffer a
 * worker thread and a UI thread would share.  64 bytes hold every glibc text.
 */
const char *ba_strerror(int e, char *buf, size_t n);
/*
 * The same into a buffer of the calling thread: valid until that thread's
 * next ba_strerror_t() call, so it serves as an argument of one
 * ba_err_set() call.
 */
const char *ba_strerror_t(int e);

/* Short symbolic name of a sysexits class ("EX_TEMPFAIL"), "EX_0" style for unknown ones. */
const char *ba_err_class_name(int code);

/*
 * Programmer errors (an API used against its contract) abort, as git's
 * BUG(): input and peer errors never do.  This is the only place core writes
 * to stderr.
 */
#define BA_BUG(...) ba_bug_at(__FILE__, __LINE__, __VA_ARGS__)
void ba_bug_at(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

#endif
