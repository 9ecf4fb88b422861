/* encode.c - UTF-8 validation, base64 and quoted-printable (RFC 2045, RFC 4648)
 *
 * The header encoders (RFC 2047, RFC 2231) are in encode_hdr.c.  The body
 * encoders are writer filters that batch their output in a 16 KB buffer so
 * that the downstream writer sees few, large writes.
 */
#include "bluearrow/encode.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ---- UTF-8 (RFC 3629 §4) ---------------------------------------------------- */

int ba_utf8_valid(const char *s, size_t n, size_t *bad)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		size_t len;
		unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
		if (c < 0x80) {
			i++;
			continue;
		}
		/* the table of RFC 3629 §4: excludes overlongs (C0, C1, E0 80..9F,
		 * F0 80..8F), surrogates (ED A0..BF) and > U+10FFFF (F4 90.., F5..) */
		if (c >= 0xC2 && c <= 0xDF)
			len = 2;
		else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		} else
			goto invalid;
		if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
			goto invalid;
		for (size_t k = 2; k < len; k++)
			if ((p[i + k] & 0xC0) != 0x80)
				goto invalid;
		i += len;
	}
	return 1;
invalid:
	if (bad)
		*bad = i;
	return 0;
}

/* ---- base64 (RFC 4648 §4, RFC 2045 §6.8) ------------------------------------ */

static const char b64_alphabet[65] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* two base64 characters for each 12-bit value, built once (pthread_once) */
static uint16_t b64_pairs[4096];
static pthread_once_t b64_pairs_once = PTHREAD_ONCE_INIT;

static void b64_pairs_init(void)
{
	for (unsigned i = 0; i < 4096; i++) {
		unsigned char two[2] = { (unsigned char)b64_alphabet[i >> 6],
		                         (unsigned char)b64_alphabet[i & 63] };
		memcpy(&b64_pairs[i], two, 2);
	}
}

static void b64_pairs_ready(void)
{
	pthread_once(&b64_pairs_once, b64_pairs_init);
}

/*
 * Encodes ngroups whole 3-byte groups of p into o (4 * ngroups bytes).  The
 * hot loop of the streaming encoder: one 24-bit load and two lookups in the
 * 12-bit pair table per group, no calls.
 */
static void b64_groups(unsigned char *restrict o, const unsigned char *restrict p, size_t ngroups)
{
	const uint16_t *pairs = b64_pairs; /* callers ran b64_pairs_ready() */
	for (size_t i = 0; i < ngroups; i++) {
		uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
		memcpy(o, &pairs[v >> 12], 2);
		memcpy(o + 2, &pairs[v & 0xFFF], 2);
		p += 3;
		o += 4;
	}
}

/* Encodes the last 1 or 2 bytes with padding (RFC 4648 §4 cases 2 and 3). */
static void b64_tail(unsigned char o[4], const unsigned char *p, size_t n)
{
	uint32_t v = (uint32_t)p[0] << 16 | (n > 1 ? (uint32_t)p[1] << 8 : 0);
	o[0] = (unsigned char)b64_alphabet[v >> 18];
	o[1] = (unsigned char)b64_alphabet[(v >> 12) & 63];
	o[2] = n > 1 ? (unsigned char)b64_alphabet[(v >> 6) & 63] : '=';
	o[3] = '=';
}

int ba_base64_encode(struct ba_buf *out, const void *vp, size_t n)
{
	const unsigned char *p = vp;
	size_t groups = n / 3, rest = n % 3;
	if (n > (SIZE_MAX / 4) * 3 - 3)
		return ba_buf_grow(out, SIZE_MAX);
	size_t olen = 4 * (groups + (rest != 0));
	if (ba_buf_grow(out, olen) < 0)
		return -1;
	b64_pairs_ready();
	unsigned char *o = (unsigned char *)out->data + out->len;
	b64_groups(o, p, groups);
	if (rest)
		b64_tail(o + 4 * groups, p + 3 * groups, rest);
	out->len += olen;
	out->data[out->len] = '\0';
	return 0;
}

/* decoding table: 0..63 value, B64_WS ignored, B64_PAD '=', B64_BAD anything else */
enum { B64_BAD = -1, B64_WS = -2, B64_PAD = -3 };

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	switch (c) {
	case '+': return 62;
	case '/': return 63;
	case '=': return B64_PAD;
	case '\r': case '\n': case ' ': case '\t': return B64_WS;
	default: return B64_BAD;
	}
}

int ba_base64_decode(struct ba_buf *out, const char *s, size_t n, struct ba_err *err)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t acc = 0;
	size_t nb = 0, pad = 0;
	if (ba_buf_grow(out, n / 4 * 3 + 3) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory decoding base64");
	unsigned char *o = (unsigned char *)out->data + out->len, *o0 = o;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(p[i]);
		if (v >= 0) {
			if (pad) {
				o0[0] = '\0'; /* out is unchanged on failure */
				return ba_err_set(err, EX_DATAERR, "base64 data after padding at offset %zu", i);
			}
			acc = acc << 6 | (uint32_t)v;
			if (++nb == 4) {
				o[0] = (unsigned char)(acc >> 16);
				o[1] = (unsigned char)(acc >> 8);
				o[2] = (unsigned char)acc;
				o += 3;
				nb = 0;
				acc = 0;
			}
		} else if (v == B64_PAD) {
			/* padding completes a group of 2 or 3 characters (RFC 4648 §4) */
			if (nb < 2 || nb + ++pad > 4) {
				o0[0] = '\0';
				return ba_err_set(err, EX_DATAERR, "misplaced base64 padding at offset %zu", i);
			}
		} else if (v == B64_BAD) {
			o0[0] = '\0';
			return ba_err_set(err, EX_DATAERR, "invalid base64 character 0x%02x at offset %zu",
			                  p[i], i);
		}
	}
	if (nb == 1 || (pad && nb + pad != 4)) {
		o0[0] = '\0';
		return ba_err_set(err, EX_DATAERR, "truncated base64 data");
	}
	if (nb == 2) {
		*o++ = (unsigned char)(acc >> 4);
	} else if (nb == 3) {
		*o++ = (unsigned char)(acc >> 10);
		*o++ = (unsigned char)(acc >> 2);
	}
	out->len += (size_t)(o - o0);
	out->data[out->len] = '\0';
	return 0;
}

/* ---- streaming base64 writer ------------------------------------------------ */

static int b64w_flush_obuf(struct ba_b64_writer *w, struct ba_err *err)
{
	size_t n = w->olen;
	w->olen = 0;
	return ba_write(w->out, w->obuf, n, err);
}

static void b64w_char(struct ba_b64_writer *w, unsigned char c)
{
	w->obuf[w->olen++] = c;
	if (++w->col == w->line_len) {
		memcpy(w->obuf + w->olen, w->eol, w->eol_len);
		w->olen += w->eol_len;
		w->col = 0;
	}
}

/*
 * Encodes ngroups 3-byte groups into obuf, with line breaks, flushing obuf
 * downstream when it fills.  With line lengths that are a multiple of 4 (76
 * of RFC 2045) whole runs of groups are encoded per line (57 input bytes for
 * 76 characters) by the tight loop; other lengths go character by character.
 */
static int b64w_put(struct ba_b64_writer *w, const unsigned char *p, size_t ngroups,
                    struct ba_err *err)
{
	const size_t slack = 4 * (1 + w->eol_len) + 64;
	while (ngroups) {
		if (sizeof(w->obuf) - w->olen < slack && b64w_flush_obuf(w, err) < 0)
			return -1;
		size_t room = (sizeof(w->obuf) - w->olen - w->eol_len) / 4;
		if (w->line_len == 0 || w->line_len % 4 == 0) {
			size_t k = ngroups < room ? ngroups : room;
			if (w->line_len) {
				size_t left = (w->line_len - w->col) / 4;
				if (k > left)
					k = left;
			}
			b64_groups(w->obuf + w->olen, p, k);
			w->olen += 4 * k;
			p += 3 * k;
			ngroups -= k;
			if ((w->col += 4 * k) == w->line_len) {
				memcpy(w->obuf + w->olen, w->eol, w->eol_len);
				w->olen += w->eol_len;
				w->col = 0;
			}
		} else {
			unsigned char q[4];
			b64_groups(q, p, 1);
			for (int i = 0; i < 4; i++)
				b64w_char(w, q[i]);
			p += 3;
			ngroups--;
		}
	}
	return 0;
}

static int b64w_write(ba_writer *base, const void *vp, size_t n, struct ba_err *err)
{
	struct ba_b64_writer *w = (struct ba_b64_writer *)base;
	const unsigned char *p = vp;
	if (w->npend) {
		while (w->npend < 3 && n) {
			w->pend[w->npend++] = *p++;
			n--;
		}
		if (w->npend < 3)
			return 0;
		w->npend = 0;
		if (b64w_put(w, w->pend, 1, err) < 0)
			return -1;
	}
	size_t groups = n / 3;
	if (groups && b64w_put(w, p, groups, err) < 0)
		return -1;
	p += 3 * groups;
	n -= 3 * groups;
	memcpy(w->pend, p, n);
	w->npend = n;
	return 0;
}

static int b64w_flush(ba_writer *base, struct ba_err *err)
{
	return b64w_flush_obuf((struct ba_b64_writer *)base, err);
}

static const struct ba_writer_ops b64w_ops = { b64w_write, b64w_flush };

void ba_b64_writer_init(struct ba_b64_writer *w, ba_writer *out, const char *eol, size_t line_len)
{
	if (!eol || (strcmp(eol, "\n") != 0 && strcmp(eol, "\r\n") != 0))
		BA_BUG("ba_b64_writer_init: eol must be \"\\n\" or \"\\r\\n\"");
	b64_pairs_ready();
	w->base.ops = &b64w_ops;
	w->out = out;
	w->eol = eol;
	w->eol_len = strlen(eol);
	w->line_len = line_len;
	w->col = 0;
	w->npend = 0;
	w->olen = 0;
}

int ba_b64_writer_finish(struct ba_b64_writer *w, struct ba_err *err)
{
	if (sizeof(w->obuf) - w->olen < 4 * (1 + w->eol_len) + 64 && b64w_flush_obuf(w, err) < 0)
		return -1;
	if (w->npend) {
		unsigned char q[4];
		b64_tail(q, w->pend, w->npend);
		w->npend = 0;
		for (int i = 0; i < 4; i++)
			b64w_char(w, q[i]);
	}
	if (w->col) {
		memcpy(w->obuf + w->olen, w->eol, w->eol_len);
		w->olen += w->eol_len;
		w->col = 0;
	}
	return b64w_flush_obuf(w, err);
}

/* ---- quoted-printable writer (RFC 2045 §6.7) -------------------------------- */

/*
 * How the writer works: input is a sequence of events, a byte or (with
 * BA_QP_TEXT) a hard line break.  A byte's output form depends on what
 * follows it: a space or tab is encoded only before a hard break (rule 3);
 * a line may use all 76 characters only when a hard break follows, else 75
 * plus the soft break "=" (rule 5); an "F" at the start of a line is
 * encoded only when "rom " follows.  So bytes wait in hold[] until enough of
 * what follows is known, and each decision uses only the byte sequence: the
 * output cannot depend on how the input was split across writes.  Bytes
 * whose form is already certain skip hold[]: qpw_fast() takes runs of them.
 */

#define QP_MAX 76
static const char qp_hex[] = "0123456789ABCDEF";

static int qpw_flush_obuf(struct ba_qp_writer *w, struct ba_err *err)
{
	size_t n = w->olen;
	w->olen = 0;
	return ba_write(w->out, w->obuf, n, err);
}

/* Room for one token, a soft break and eol. */
static int qpw_room(struct ba_qp_writer *w, struct ba_err *err)
{
	if (sizeof(w->obuf) - w->olen < 16)
		return qpw_flush_obuf(w, err);
	return 0;
}

static void qpw_eol(struct ba_qp_writer *w, int soft)
{
	if (soft)
		w->obuf[w->olen++] = '=';
	memcpy(w->obuf + w->olen, w->eol, w->eol_len);
	w->olen += w->eol_len;
	w->col = 0;
}

static void qpw_hex(struct ba_qp_writer *w, unsigned c)
{
	unsigned char *o = w->obuf + w->olen;
	o[0] = '=';
	o[1] = (unsigned char)qp_hex[c >> 4];
	o[2] = (unsigned char)qp_hex[c & 15];
	w->olen += 3;
	w->col += 3;
}

/*
 * 1 if byte c must be encoded at column col.  before_break: a hard break
 * follows (rule 3); from: "rom " follows c.
 */
static int qp_must_encode(unsigned c, size_t col, int before_break, int from)
{
	if (c == ' ' || c == '\t')
		return before_break;
	if (c < 33 || c > 126 || c == '=') /* rules 1 and 2; CR and LF here are data */
		return 1;
	/* a line "From ..." is mangled by mbox (">From"), a line "." ends SMTP DATA
	 * on a path that forgets dot-stuffing: encode their first character */
	return col == 0 && (c == '.' || (c == 'F' && from));
}

/* Places byte c, with a soft break before it when it does not fit (rule 5). */
static void qpw_place(struct ba_qp_writer *w, unsigned c, int before_break, int from)
{
	size_t limit = before_break ? QP_MAX : QP_MAX - 1;
	int enc = qp_must_encode(c, w->col, before_break, from);
	if (w->col + (enc ? 3 : 1) > limit) {
		qpw_eol(w, 1);
		enc = qp_must_encode(c, 0, before_break, from);
	}
	if (enc) {
		qpw_hex(w, c);
	} else {
		w->obuf[w->olen++] = (unsigned char)c;
		w->col++;
	}
}

enum { QP_MORE, QP_BREAK, QP_END };

/*
 * 1 if held byte c can be placed now whatever follows: not white space
 * (rule 3 needs the next event), not an "F" that starts a line ("From "),
 * and it fits before column 75 so no break decision depends on what follows.
 */
static int qp_certain(const struct ba_qp_writer *w, unsigned c)
{
	if (c == ' ' || c == '\t' || (c == 'F' && w->col == 0))
		return 0;
	return w->col + (qp_must_encode(c, w->col, 0, 0) ? 3 : 1) < QP_MAX;
}

/* Places the held bytes whose form is decided; all of them when term != QP_MORE. */
static int qpw_drain(struct ba_qp_writer *w, int term, struct ba_err *err)
{
	static const char from[] = "From ";
	while (w->nhold) {
		unsigned c = w->hold[0];
		int is_from = 0, certain = term != QP_MORE || qp_certain(w, c);
		if (c == 'F') {
			size_t k = w->nhold < 5 ? w->nhold : 5;
			int prefix = memcmp(w->hold, from, k) == 0;
			if (prefix && k < 5 && !certain)
				return 0; /* wait: could still be "From " */
			is_from = prefix && k == 5;
		}
		if (w->nhold < 2 && !certain)
			return 0; /* wait for the next byte or break */
		if (qpw_room(w, err) < 0)
			return -1;
		qpw_place(w, c, w->nhold == 1 && term == QP_BREAK, is_from);
		memmove(w->hold, w->hold + 1, --w->nhold);
	}
	return 0;
}

static int qpw_hold(struct ba_qp_writer *w, unsigned c, struct ba_err *err)
{
	if (!w->nhold && qp_certain(w, c)) { /* the common case: no need to wait */
		if (qpw_room(w, err) < 0)
			return -1;
		qpw_place(w, c, 0, 0);
		return 0;
	}
	w->hold[w->nhold++] = (unsigned char)c;
	return qpw_drain(w, QP_MORE, err);
}

static int qpw_break(struct ba_qp_writer *w, struct ba_err *err)
{
	if (qpw_drain(w, QP_BREAK, err) < 0 || qpw_room(w, err) < 0)
		return -1;
	qpw_eol(w, 0);
	return 0;
}

/* The slow path: one input byte through the CR/LF logic and hold[]. */
static int qpw_byte(struct ba_qp_writer *w, unsigned c, struct ba_err *err)
{
	if (w->flags & BA_QP_TEXT) {
		if (w->pending_cr) {
			w->pending_cr = 0;
			if (c == '\n')
				return qpw_break(w, err);
			if (qpw_hold(w, '\r', err) < 0) /* a lone CR is data: =0D */
				return -1;
		}
		if (c == '\r') {
			w->pending_cr = 1;
			return 0;
		}
		if (c == '\n')
			return qpw_break(w, err);
	}
	return qpw_hold(w, c, err);
}

/*
 * The fast path: nothing held, and each byte's form is certain (not at a
 * line start, fits before column 75, a space not followed by a line break).
 * Works on locals: stores through obuf could alias the writer's fields.
 * Returns the index of the first byte it did not take.
 */
static size_t qpw_fast(struct ba_qp_writer *w, const unsigned char *p, size_t i, size_t n)
{
	size_t olen = w->olen, col = w->col;
	unsigned char *o = w->obuf;
	const size_t lim = sizeof(w->obuf) - 16;
	const int text = w->flags & BA_QP_TEXT;
	while (i < n && col && olen < lim) {
		unsigned c = p[i];
		if (c - 33u < 94u && c != '=') {
			if (col >= QP_MAX - 1)
				break;
			o[olen++] = (unsigned char)c;
			col++;
		} else if (c == ' ' || c == '\t') {
			if (col >= QP_MAX - 1)
				break;
			if (text && (i + 1 >= n || p[i + 1] == '\r' || p[i + 1] == '\n'))
				break; /* rule 3: maybe trailing */
			o[olen++] = (unsigned char)c;
			col++;
		} else {
			if ((text && (c == '\r' || c == '\n')) || col + 3 >= QP_MAX)
				break;
			o[olen] = '=';
			o[olen + 1] = (unsigned char)qp_hex[c >> 4];
			o[olen + 2] = (unsigned char)qp_hex[c & 15];
			olen += 3;
			col += 3;
		}
		i++;
	}
	w->olen = olen;
	w->col = col;
	return i;
}

static int qpw_write(ba_writer *base, const void *vp, size_t n, struct ba_err *err)
{
	struct ba_qp_writer *w = (struct ba_qp_writer *)base;
	const unsigned char *p = vp;
	size_t i = 0;
	while (i < n) {
		if (w->olen > sizeof(w->obuf) - 16 && qpw_flush_obuf(w, err) < 0)
			return -1;
		if (!w->nhold && !w->pending_cr) {
			i = qpw_fast(w, p, i, n);
			if (i == n || w->olen > sizeof(w->obuf) - 16)
				continue;
		}
		if (qpw_byte(w, p[i++], err) < 0)
			return -1;
	}
	return 0;
}

static int qpw_flush(ba_writer *base, struct ba_err *err)
{
	return qpw_flush_obuf((struct ba_qp_writer *)base, err);
}

static const struct ba_writer_ops qpw_ops = { qpw_write, qpw_flush };

void ba_qp_writer_init(struct ba_qp_writer *w, ba_writer *out, const char *eol, unsigned flags)
{
	if (!eol || (strcmp(eol, "\n") != 0 && strcmp(eol, "\r\n") != 0))
		BA_BUG("ba_qp_writer_init: eol must be \"\\n\" or \"\\r\\n\"");
	w->base.ops = &qpw_ops;
	w->out = out;
	w->eol = eol;
	w->eol_len = strlen(eol);
	w->flags = flags;
	w->olen = 0;
	w->col = 0;
	w->pending_cr = 0;
	w->nhold = 0;
}

int ba_qp_writer_finish(struct ba_qp_writer *w, struct ba_err *err)
{
	if (w->pending_cr) {
		w->pending_cr = 0;
		if (qpw_hold(w, '\r', err) < 0)
			return -1;
	}
	/* the end is not a line break: the last line ends with a soft break */
	if (qpw_drain(w, QP_END, err) < 0 || qpw_room(w, err) < 0)
		return -1;
	if (w->col)
		qpw_eol(w, 1);
	return qpw_flush_obuf(w, err);
}

/* ---- quoted-printable decoding ------------------------------------------------ */

int ba_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * RFC 2045 §6.7: "=XX" is an octet (lowercase hex accepted, as the RFC
 * suggests for robustness), "=" at the end of a line is a soft break, and
 * white space at the end of a line was added in transport and is removed.
 */
int ba_qp_decode(struct ba_buf *out, const char *s, size_t n, struct ba_err *err)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		if (c == ' ' || c == '\t') {
			size_t j = i;
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (j == n || p[j] == '\n' || (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n')) {
				i = j; /* trailing white space (rule 3) */
				continue;
			}
			ba_buf_add(out, p + i, j - i);
			i = j;
		} else if (c == '=') {
			size_t j = i + 1;
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (j == n) { /* soft break at the very end */
				i = j;
				continue;
			}
			if (p[j] == '\n' || (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n')) {
				i = j + (p[j] == '\r' ? 2 : 1);
				continue;
			}
			int hi = i + 2 < n ? ba_hex_digit(p[i + 1]) : -1, lo = hi >= 0 ? ba_hex_digit(p[i + 2]) : -1;
			if (lo < 0)
				return ba_err_set(err, EX_DATAERR, "invalid quoted-printable escape at offset %zu",
				                  i);
			ba_buf_addch(out, hi << 4 | lo);
			i += 3;
		} else {
			size_t j = i + 1;
			while (j < n && p[j] != '=' && p[j] != ' ' && p[j] != '\t')
				j++;
			ba_buf_add(out, p + i, j - i);
			i = j;
		}
	}
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_DATAERR, "quoted-printable output too large");
	return 0;
}
