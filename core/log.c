/* log.c - log sink and cleaning of untrusted text */
#include "bluearrow/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int ba_log_enabled(const struct ba_log *log, enum ba_log_level level)
{
	return log && log->fn && level <= log->level;
}

void ba_log(const struct ba_log *log, enum ba_log_level level, const char *fmt, ...)
{
	if (!ba_log_enabled(log, level))
		return;
	char raw[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(raw))
		n = sizeof(raw) - 1;
	struct ba_buf clean = BA_BUF_INIT;
	if (ba_log_clean(&clean, raw, (size_t)n) == 0)
		log->fn(log->ctx, level, ba_buf_str(&clean));
	ba_buf_release(&clean);
}

/* Length of the well-formed UTF-8 sequence at s (at most n bytes) encoding a
 * code point >= U+00A0, or 0. Overlongs and surrogates are refused (RFC 3629 §4). */
static size_t utf8_printable_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0xa0) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	/*
	 * Invisible format characters that change how a terminal shows the
	 * text around them: bidi marks, embeddings, overrides and isolates
	 * (Unicode UAX #9; CVE-2021-42574), zero-width characters, line and
	 * paragraph separators, the BOM, interlinear annotations.
	 */
	if (cp == 0x061c || (cp >= 0x200b && cp <= 0x200f) ||
	    (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
	    (cp >= 0xfff9 && cp <= 0xfffb))
		return 0;
	return len;
}

int ba_log_clean(struct ba_buf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && p[run] >= 0x20 && p[run] < 0x7f)
			run++;
		ba_buf_add(out, p + i, run - i);
		i = run;
		if (i >= n)
			break;
		size_t u = p[i] >= 0x80 ? utf8_printable_len(p + i, n - i) : 0;
		if (u) {
			ba_buf_add(out, p + i, u);
			i += u;
		} else {
			ba_buf_addch(out, '?');
			i++;
		}
	}
	return ba_buf_failed(out) ? -1 : 0;
}

int ba_log_redact_auth(struct ba_buf *out, const char *line, size_t n)
{
	/* "AUTH MECH [initial-response]" (RFC 4954 §4): keep the verb and mechanism */
	if (n >= 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		size_t i = 5;
		while (i < n && line[i] == ' ')
			i++;
		while (i < n && line[i] != ' ' && line[i] != '\r' && line[i] != '\n')
			i++;
		ba_log_clean(out, line, i);
		if (i < n && line[i] == ' ')
			ba_buf_addstr(out, " <redacted>");
		return ba_buf_failed(out) ? -1 : 0;
	}
	return ba_log_clean(out, line, n);
}
