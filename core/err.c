/* err.c - struct ba_err helpers */
#define _POSIX_C_SOURCE 200809L /* the XSI strerror_r(), not the GNU one */
#include "bluearrow/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ba_err_vset(struct ba_err *err, int code, const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	err->code = code;
	err->smtp_code = 0;
	err->enhanced[0] = '\0';
	err->flags = 0;
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	return -1;
}

int ba_err_cancel(struct ba_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ba_err_vset(err, EX_TEMPFAIL, fmt, ap);
	va_end(ap);
	if (err)
		err->flags |= BA_ERR_CANCELLED;
	return -1;
}

const char *ba_strerror(int e, char *buf, size_t n)
{
	if (!n)
		return "";
	buf[0] = '\0';
	/*
	 * XSI strerror_r: 0 on success, else an error number (or -1 and errno
	 * in old glibc); ERANGE still leaves the truncated text in buf
	 */
	int saved = errno;
	int rc = strerror_r(e, buf, n);
	if (rc == -1)
		rc = errno;
	errno = saved;
	buf[n - 1] = '\0';
	if ((rc != 0 && rc != ERANGE) || !buf[0])
		snprintf(buf, n, "error %d", e);
	return buf;
}

const char *ba_strerror_t(int e)
{
	static _Thread_local char buf[128];
	return ba_strerror(e, buf, sizeof buf);
}

int ba_err_set(struct ba_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ba_err_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int ba_err_smtp(struct ba_err *err, int code, int smtp_code, const char *enhanced,
                const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ba_err_vset(err, code, fmt, ap);
	va_end(ap);
	if (err) {
		err->smtp_code = smtp_code;
		snprintf(err->enhanced, sizeof(err->enhanced), "%s", enhanced ? enhanced : "");
	}
	return -1;
}

int ba_err_prefix(struct ba_err *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	char old[BA_ERR_TEXT_MAX];
	memcpy(old, err->text, sizeof(old));
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(err->text)) {
		size_t room = sizeof(err->text) - (size_t)n;
		size_t keep = strnlen(old, room - 1);
		memcpy(err->text + n, old, keep);
		err->text[(size_t)n + keep] = '\0';
	}
	return -1;
}

void ba_err_clear(struct ba_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->smtp_code = 0;
	err->enhanced[0] = '\0';
	err->text[0] = '\0';
	err->flags = 0;
}

const char *ba_err_class_name(int code)
{
	static const struct {
		int code;
		const char *name;
	} names[] = {
		{ EX_OK, "EX_OK" },           { EX_USAGE, "EX_USAGE" },
		{ EX_DATAERR, "EX_DATAERR" }, { EX_NOINPUT, "EX_NOINPUT" },
		{ EX_NOUSER, "EX_NOUSER" },   { EX_NOHOST, "EX_NOHOST" },
		{ EX_UNAVAILABLE, "EX_UNAVAILABLE" }, { EX_SOFTWARE, "EX_SOFTWARE" },
		{ EX_OSERR, "EX_OSERR" },     { EX_OSFILE, "EX_OSFILE" },
		{ EX_CANTCREAT, "EX_CANTCREAT" }, { EX_IOERR, "EX_IOERR" },
		{ EX_TEMPFAIL, "EX_TEMPFAIL" }, { EX_PROTOCOL, "EX_PROTOCOL" },
		{ EX_NOPERM, "EX_NOPERM" },   { EX_CONFIG, "EX_CONFIG" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].code == code)
			return names[i].name;
	return "EX_UNKNOWN";
}

void ba_bug_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "BUG: %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
