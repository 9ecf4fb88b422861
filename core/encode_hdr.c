/* encode_hdr.c - header encodings: RFC 2047 encoded-words, RFC 2231 parameters
 *
 * Part of module encode (bluearrow/encode.h); the body encoders are in encode.c.
 */
#include "bluearrow/encode.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define LINE_MAX_COLS 78 /* RFC 5322 §2.1.1: SHOULD be no more than 78 characters */
#define WORD_MAX 75      /* RFC 2047 §2: an encoded-word is at most 75 characters */
#define WORD_OVERHEAD 12 /* "=?utf-8?B?" + "?=" */

static const char hexdig[] = "0123456789ABCDEF";

/* ---- RFC 2047 encoding ------------------------------------------------------ */

struct hdr_out {
	struct ba_buf *out;
	size_t col;
	const char *eol;
	unsigned flags;
	int written; /* something of ours is on the line already */
};

static void put(struct hdr_out *h, const void *p, size_t n)
{
	ba_buf_add(h->out, p, n);
	h->col += n;
	h->written = 1;
}

static void fold(struct hdr_out *h)
{
	ba_buf_addstr(h->out, h->eol);
	h->col = 0;
}

/* RFC 5322 §3.2.3 specials: an atom of a phrase cannot hold them */
static int is_special(unsigned char c)
{
	return c && strchr("()<>[]:;@\\,.\"", c) != NULL;
}

/*
 * 1 if byte c may stand for itself in a Q encoded-word.  In a phrase only
 * the restricted set of RFC 2047 §5(3); elsewhere printable ASCII except
 * "=", "?" and "_" (§4.2), and the parentheses and quote are encoded too so
 * the word is safe in a comment (§5(2)).
 */
static int q_literal(unsigned char c, unsigned flags)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	if (flags & BA_RFC2047_PHRASE)
		return c && strchr("!*+-/", c) != NULL;
	return c > 32 && c < 127 && !strchr("=?_()\"", c);
}

static size_t q_cost(unsigned char c, unsigned flags)
{
	return (c == ' ' || q_literal(c, flags)) ? 1 : 3;
}

static size_t utf8_seq_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/*
 * Length of the longest prefix of p[0..n) (whole UTF-8 sequences, at least
 * one) whose encoded-word fits in maxw characters; *use_b says whether B is
 * the shorter encoding for it (RFC 2047 §4: either may be used).
 */
static size_t chunk_len(const unsigned char *p, size_t n, size_t maxw, unsigned flags, int *use_b,
                        size_t *wlen)
{
	size_t pos = 0, qlen = 0, best = 0, best_w = 0;
	int best_b = 0;
	while (pos < n) {
		size_t sl = utf8_seq_len(p[pos]), q = qlen;
		for (size_t k = 0; k < sl; k++)
			q += q_cost(p[pos + k], flags);
		size_t blen = 4 * ((pos + sl + 2) / 3);
		size_t enc = q <= blen ? q : blen;
		if (WORD_OVERHEAD + enc > maxw && best)
			break;
		qlen = q;
		pos += sl;
		best = pos;
		best_b = blen < q;
		best_w = WORD_OVERHEAD + enc;
	}
	*use_b = best_b;
	*wlen = best_w;
	return best;
}

static void put_word(struct hdr_out *h, const unsigned char *p, size_t n, int use_b)
{
	struct ba_buf *o = h->out;
	size_t start = o->len;
	ba_buf_addstr(o, use_b ? "=?utf-8?B?" : "=?utf-8?Q?");
	if (use_b) {
		ba_base64_encode(o, p, n);
	} else {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = p[i];
			if (c == ' ') {
				ba_buf_addch(o, '_');
			} else if (q_literal(c, h->flags)) {
				ba_buf_addch(o, c);
			} else {
				char e[3] = { '=', hexdig[c >> 4], hexdig[c & 15] };
				ba_buf_add(o, e, 3);
			}
		}
	}
	ba_buf_addstr(o, "?=");
	h->col += o->len - start;
	h->written = 1;
}

/*
 * Writes p[0..n) as encoded-words after the separator sep[0..seplen) (white
 * space of the input, outside the words).  The first word goes on the
 * current line when a useful part fits; the rest fill new lines.  Folds
 * inserted between two encoded-words vanish on decoding (§6.2), so the
 * spaces of the input are kept inside the words.
 */
static void put_run(struct hdr_out *h, const unsigned char *sep, size_t seplen,
                    const unsigned char *p, size_t n)
{
	size_t pos = 0;
	int first = 1;
	while (pos < n) {
		int use_b;
		size_t len, room, wlen;
		if (first) {
			/* fold at the separator, or before the very first word of the
			 * field body, where leading white space is insignificant */
			int can_fold = seplen > 0 || (!h->written && h->col > 1);
			room = h->col + seplen < LINE_MAX_COLS ? LINE_MAX_COLS - h->col - seplen : 0;
			len = chunk_len(p, n, room < WORD_MAX ? room : WORD_MAX, h->flags, &use_b, &wlen);
			int fits = wlen <= room;
			if (can_fold && (!fits || (len < n && room < 40))) {
				fold(h);
				if (seplen)
					put(h, sep, seplen);
				else
					put(h, " ", 1);
			} else {
				put(h, sep, seplen);
			}
		} else {
			fold(h);
			put(h, " ", 1);
		}
		room = h->col < LINE_MAX_COLS ? LINE_MAX_COLS - h->col : 0;
		len = chunk_len(p + pos, n - pos, room < WORD_MAX ? room : WORD_MAX, h->flags, &use_b,
		                &wlen);
		put_word(h, p + pos, len, use_b);
		pos += len;
		first = 0;
	}
}

/* Writes a plain word after its separator, folding at the separator when needed. */
static void put_plain(struct hdr_out *h, const unsigned char *sep, size_t seplen,
                      const unsigned char *w, size_t wlen)
{
	if (seplen && h->written && h->col + seplen + wlen > LINE_MAX_COLS)
		fold(h);
	put(h, sep, seplen);
	put(h, w, wlen);
}

/* Why a word cannot be written as it is: 8-bit, controls, looks encoded, too long. */
static int word_needs_encoding(const unsigned char *w, size_t n)
{
	if (n > LINE_MAX_COLS - 2)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < 33 || w[i] > 126)
			return 1;
		if (w[i] == '=' && i + 1 < n && w[i + 1] == '?')
			return 1;
	}
	return 0;
}

static int word_has_special(const unsigned char *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_special(w[i]))
			return 1;
	return 0;
}

static size_t skip_spaces(const unsigned char *p, size_t i, size_t n)
{
	while (i < n && p[i] == ' ')
		i++;
	return i;
}

static size_t word_end(const unsigned char *p, size_t i, size_t n)
{
	while (i < n && p[i] != ' ')
		i++;
	return i;
}

/* A phrase of ASCII words with specials or odd spacing: one quoted-string (RFC 5322 §3.2.4). */
static void put_quoted(struct hdr_out *h, const unsigned char *p, size_t n)
{
	size_t i = 0;
	struct ba_buf q = BA_BUF_INIT;
	put(h, "\"", 1);
	while (i < n) {
		size_t ws = i, we = skip_spaces(p, i, n), e = word_end(p, we, n);
		ba_buf_reset(&q);
		for (size_t k = we; k < e; k++) {
			if (p[k] == '\\' || p[k] == '"')
				ba_buf_addch(&q, '\\');
			ba_buf_addch(&q, p[k]);
		}
		if (e == n)
			ba_buf_addch(&q, '"');
		if (ws == 0) { /* leading spaces right after the quote: no fold there */
			put(h, p, we);
			put(h, ba_buf_str(&q), q.len);
		} else {
			put_plain(h, p + ws, we - ws, (const unsigned char *)ba_buf_str(&q), q.len);
		}
		i = e;
	}
	if (n == 0)
		put(h, "\"", 1);
	if (ba_buf_failed(&q))
		h->out->failed = 1;
	ba_buf_release(&q);
}

/* 1 if no line of s[0..n), the first starting at column col, passes 78 characters. */
static int lines_fit(const char *s, size_t n, size_t col)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			col = 0;
		else if (s[i] != '\r' && ++col > LINE_MAX_COLS)
			return 0;
	}
	return 1;
}

int ba_rfc2047_encode(struct ba_buf *out, const char *text, size_t n, size_t *col,
                      const char *eol, unsigned flags, struct ba_err *err)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t bad, i;
	struct hdr_out h = { out, *col, eol, flags, 0 };
	if (!ba_utf8_valid(text, n, &bad))
		return ba_err_set(err, EX_DATAERR, "invalid UTF-8 in header text at offset %zu", bad);
	int any_enc = 0, specials = 0, odd_spaces = n && (p[0] == ' ' || p[n - 1] == ' ');
	for (i = skip_spaces(p, 0, n); i < n;) {
		size_t e = word_end(p, i, n);
		any_enc |= word_needs_encoding(p + i, e - i);
		specials |= word_has_special(p + i, e - i);
		i = skip_spaces(p, e, n);
		odd_spaces |= i - e > 1;
	}
	if ((flags & BA_RFC2047_PHRASE) && !any_enc && (specials || odd_spaces || n == 0)) {
		size_t mark = out->len;
		put_quoted(&h, p, n);
		if (lines_fit(out->data + mark, out->len - mark, *col))
			goto done;
		/* a word too long for a quoted-string line: encoded-words can be split */
		ba_buf_truncate(out, mark);
		h.col = *col;
		h.written = 0;
	}
	/* Words are written as they are or, in maximal runs, as encoded-words.
	 * Leading and trailing spaces go into a run: unfolding and parsers trim
	 * them outside of one. */
	i = 0;
	while (i < n) {
		size_t ws = i, we = skip_spaces(p, i, n), e = word_end(p, we, n);
		/* the first word cannot be folded before: encode it when it does not fit */
		int enc = word_needs_encoding(p + we, e - we) || (ws == 0 && we > 0) ||
		          (ws == 0 && h.col + e > LINE_MAX_COLS) || e - ws > LINE_MAX_COLS ||
		          (skip_spaces(p, e, n) == n && e < n) ||
		          ((flags & BA_RFC2047_PHRASE) && word_has_special(p + we, e - we));
		if (!enc) {
			put_plain(&h, p + ws, we - ws, p + we, e - we);
			i = e;
			continue;
		}
		/* extend the run over the following words that need encoding */
		size_t re = e, rs = ws == 0 ? 0 : we;
		while (re < n) {
			size_t nws = skip_spaces(p, re, n), ne = word_end(p, nws, n);
			if (nws == n) { /* trailing spaces */
				re = n;
				break;
			}
			int next = word_needs_encoding(p + nws, ne - nws) || ne - re > LINE_MAX_COLS ||
			           (skip_spaces(p, ne, n) == n && ne < n) ||
			           ((flags & BA_RFC2047_PHRASE) && word_has_special(p + nws, ne - nws));
			if (!next)
				break;
			re = ne;
		}
		put_run(&h, p + ws, rs - ws, p + rs, re - rs);
		i = re;
	}
done:
	*col = h.col;
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_DATAERR, "header too large");
	return 0;
}

/* ---- RFC 2047 decoding ------------------------------------------------------ */

#define CHARSET_MAX 40

static int hexv(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct ew {
	char charset[CHARSET_MAX + 1];
	char kind;          /* 'b' or 'q' */
	const char *text;
	size_t textlen;
};

/*
 * Parses an encoded-word (§2: "=?" charset "?" B|Q "?" encoded-text "?=")
 * at s[0..n).  Returns its length, or 0 if there is none.  The charset may
 * carry an RFC 2231 §5 language suffix ("*en"), which is dropped.
 */
static size_t ew_parse(struct ew *w, const char *s, size_t n)
{
	size_t i = 2, cs;
	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	while (i < n && s[i] != '?' && !is_wsp(s[i]))
		i++;
	cs = i - 2;
	if (i + 2 >= n || s[i] != '?' || cs == 0 || s[i + 2] != '?')
		return 0;
	w->kind = (char)(s[i + 1] | 0x20);
	if (w->kind != 'b' && w->kind != 'q')
		return 0;
	const char *star = memchr(s + 2, '*', cs);
	if (star)
		cs = (size_t)(star - s - 2);
	if (cs > CHARSET_MAX)
		return 0;
	memcpy(w->charset, s + 2, cs);
	w->charset[cs] = '\0';
	i += 3;
	w->text = s + i;
	while (i < n && s[i] != '?' && !is_wsp(s[i]))
		i++;
	if (i + 1 >= n || s[i] != '?' || s[i + 1] != '=')
		return 0;
	w->textlen = (size_t)(s + i - w->text);
	return i + 2;
}

/* Decodes the text of w into raw.  0, or -1 when malformed (raw unchanged). */
static int ew_decode(struct ba_buf *raw, const struct ew *w)
{
	size_t mark = raw->len;
	if (w->kind == 'b')
		return ba_base64_decode(raw, w->text, w->textlen, NULL);
	for (size_t k = 0; k < w->textlen; k++) {
		const char *q = w->text + k;
		if (*q == '_') {
			ba_buf_addch(raw, ' '); /* §4.2 (2) */
		} else if (*q == '=') {
			int hi = k + 2 < w->textlen ? hexv((unsigned char)q[1]) : -1;
			int lo = hi >= 0 ? hexv((unsigned char)q[2]) : -1;
			if (lo < 0) {
				ba_buf_truncate(raw, mark);
				return -1;
			}
			ba_buf_addch(raw, hi << 4 | lo);
			k += 2;
		} else {
			ba_buf_addch(raw, *q);
		}
	}
	return 0;
}

/*
 * Appends the bytes of raw, in charset cs, to out as UTF-8; bytes that are
 * not valid in the charset become U+FFFD.  utf-8, us-ascii and iso-8859-1
 * are converted here, any other charset by iconv(3).  -1 if the charset is
 * unknown to iconv.
 */
/* Converts raw from charset cs to UTF-8 with iconv(3); undecodable bytes become U+FFFD. */
static int iconv_to_utf8(struct ba_buf *out, struct ba_buf *raw, const char *cs)
{
	iconv_t cd = iconv_open("UTF-8", cs);
	if (cd == (iconv_t)-1)
		return -1;
	char *in = raw->data, obuf[256];
	size_t inleft = raw->len;
	while (inleft) {
		char *o = obuf;
		size_t oleft = sizeof(obuf);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);
		ba_buf_add(out, obuf, (size_t)(o - obuf));
		if (r == (size_t)-1 && errno != E2BIG) {
			ba_buf_addstr(out, "\xEF\xBF\xBD"); /* EILSEQ or EINVAL: skip a byte */
			in++;
			inleft--;
			iconv(cd, NULL, NULL, NULL, NULL);
		}
	}
	iconv_close(cd);
	return 0;
}

static int flush_raw(struct ba_buf *out, struct ba_buf *raw, const char *cs)
{
	const unsigned char *p = (const unsigned char *)raw->data;
	size_t i = 0, n = raw->len, bad;
	int rc = 0;
	if (!strcasecmp(cs, "utf-8") || !strcasecmp(cs, "utf8")) {
		while (i < n && !ba_utf8_valid((const char *)p + i, n - i, &bad)) {
			ba_buf_add(out, p + i, bad);
			ba_buf_addstr(out, "\xEF\xBF\xBD");
			i += bad + 1;
		}
		ba_buf_add(out, p + i, n - i);
	} else if (!strcasecmp(cs, "us-ascii") || !strcasecmp(cs, "iso-8859-1") ||
	           !strcasecmp(cs, "latin1")) {
		int latin1 = cs[0] != 'u' && cs[0] != 'U';
		for (; i < n; i++) {
			if (p[i] < 0x80) {
				ba_buf_addch(out, p[i]);
			} else if (latin1) {
				ba_buf_addch(out, 0xC0 | p[i] >> 6);
				ba_buf_addch(out, 0x80 | (p[i] & 0x3F));
			} else {
				ba_buf_addstr(out, "\xEF\xBF\xBD");
			}
		}
	} else {
		rc = iconv_to_utf8(out, raw, cs);
	}
	ba_buf_reset(raw);
	return rc;
}

int ba_rfc2047_decode(struct ba_buf *out, const char *s, size_t n, struct ba_err *err)
{
	struct ba_buf raw = BA_BUF_INIT;
	char rawcs[CHARSET_MAX + 1] = "";
	size_t i = 0, lit = 0; /* s[lit..i) is text not yet copied */
	int prev_word = 0, rc = 0;
	struct ew w;
	while (i < n) {
		size_t len;
		/* an encoded-word is delimited by white space, or by the parentheses of a
		 * comment (§5(2)); the text between two of them is dropped if it is all
		 * white space (§6.2) */
		if (s[i] != '=' || (i > 0 && !is_wsp(s[i - 1]) && s[i - 1] != '(') ||
		    !(len = ew_parse(&w, s + i, n - i)) ||
		    (i + len < n && !is_wsp(s[i + len]) && s[i + len] != ')')) {
			i++;
			continue;
		}
		int between_ws = prev_word;
		for (size_t k = lit; k < i && between_ws; k++)
			between_ws = is_wsp(s[k]);
		size_t mark = raw.len;
		if (ew_decode(&raw, &w) < 0) {
			i++;
			continue; /* malformed: kept as it is */
		}
		if (!between_ws || strcasecmp(rawcs, w.charset) != 0) {
			/* flush what came before, then the literal text */
			struct ba_buf tail = BA_BUF_INIT;
			ba_buf_add(&tail, ba_buf_str(&raw) + mark, raw.len - mark); /* data may be NULL */
			ba_buf_truncate(&raw, mark);
			if (raw.len && flush_raw(out, &raw, rawcs) < 0) {
				ba_buf_release(&tail);
				goto unknown;
			}
			if (!between_ws)
				ba_buf_add(out, s + lit, i - lit);
			ba_buf_add(&raw, tail.data, tail.len);
			ba_buf_release(&tail);
			memcpy(rawcs, w.charset, sizeof(rawcs));
		}
		prev_word = 1;
		i += len;
		lit = i;
	}
	if (raw.len && flush_raw(out, &raw, rawcs) < 0)
		goto unknown;
	ba_buf_add(out, s + lit, n - lit);
	if (ba_buf_failed(out) || ba_buf_failed(&raw))
		rc = ba_err_set(err, EX_DATAERR, "decoded header too large");
	ba_buf_release(&raw);
	return rc;
unknown:
	ba_buf_release(&raw);
	return ba_err_set(err, EX_DATAERR, "unknown charset '%s' in encoded-word", rawcs);
}

/* ---- RFC 2231 parameters ----------------------------------------------------- */

/* RFC 2045 §5.1 token characters: printable ASCII except space and tspecials */
static int is_token_char(unsigned char c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

/* RFC 2231 §7 attribute-char: token characters except "*", "'" and "%" */
static int is_attr_char(unsigned char c)
{
	return is_token_char(c) && c != '*' && c != '\'' && c != '%';
}

/* Appends ";" and, on this line or the next, the text p[0..n). */
static void put_param(struct hdr_out *h, const char *p, size_t n)
{
	ba_buf_addch(h->out, ';');
	h->col++;
	if (h->col + 1 + n + 1 > LINE_MAX_COLS) /* keep room for a following ";" */
		fold(h);
	put(h, " ", 1);
	put(h, p, n);
}

/* name*N= or name*N*= with a piece of the value; fits one line when it can. */
static void put_pieces(struct hdr_out *h, const char *name, const char *v, size_t n, int ext)
{
	struct ba_buf seg = BA_BUF_INIT;
	size_t i = 0;
	for (unsigned k = 0; i < n || k == 0; k++) {
		ba_buf_reset(&seg);
		ba_buf_addf(&seg, ext ? "%s*%u*=%s" : "%s*%u=\"", name, k, ext && k == 0 ? "utf-8''" : "");
		/* room on a new line: " " + seg + ";" (or + '"' + ";") */
		size_t room = LINE_MAX_COLS - 2 - (ext ? 0 : 1);
		int added = 0;
		while (i < n) {
			/* one unit: a whole UTF-8 sequence (ext) or one escaped character */
			size_t ul = ext ? utf8_seq_len((unsigned char)v[i]) : 1, cost = 0;
			for (size_t u = 0; u < ul; u++) {
				unsigned char c = (unsigned char)v[i + u];
				cost += ext ? (is_attr_char(c) ? 1 : 3) : (c == '"' || c == '\\' ? 2 : 1);
			}
			if (seg.len + cost > room && added)
				break;
			added = 1;
			for (size_t u = 0; u < ul; u++) {
				unsigned char c = (unsigned char)v[i + u];
				if (ext && !is_attr_char(c)) {
					ba_buf_addf(&seg, "%%%c%c", hexdig[c >> 4], hexdig[c & 15]);
				} else {
					if (!ext && (c == '"' || c == '\\'))
						ba_buf_addch(&seg, '\\');
					ba_buf_addch(&seg, c);
				}
			}
			i += ul;
		}
		if (!ext)
			ba_buf_addch(&seg, '"');
		put_param(h, ba_buf_str(&seg), seg.len);
	}
	if (ba_buf_failed(&seg))
		h->out->failed = 1;
	ba_buf_release(&seg);
}

int ba_rfc2231_param(struct ba_buf *out, const char *name, const char *value, size_t *col,
                     const char *eol, struct ba_err *err)
{
	struct hdr_out h = { out, *col, eol, 0, 1 };
	size_t n = strlen(value), bad, nlen = strlen(name);
	int token = n > 0, ascii = 1;
	if (nlen == 0)
		return ba_err_set(err, EX_DATAERR, "empty parameter name");
	for (size_t i = 0; i < nlen; i++)
		if (!is_attr_char((unsigned char)name[i]))
			return ba_err_set(err, EX_DATAERR, "invalid parameter name '%s'", name);
	if (!ba_utf8_valid(value, n, &bad))
		return ba_err_set(err, EX_DATAERR, "invalid UTF-8 in parameter '%s' at offset %zu",
		                  name, bad);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (!is_token_char(c))
			token = 0;
		if (c >= 127 || (c < 32))
			ascii = 0; /* 8-bit and controls need the extended syntax */
	}
	struct ba_buf one = BA_BUF_INIT;
	if (token) {
		ba_buf_addf(&one, "%s=%s", name, value);
	} else if (ascii) {
		ba_buf_addf(&one, "%s=\"", name);
		for (size_t i = 0; i < n; i++) {
			if (value[i] == '"' || value[i] == '\\')
				ba_buf_addch(&one, '\\');
			ba_buf_addch(&one, value[i]);
		}
		ba_buf_addch(&one, '"');
	} else {
		/* RFC 2231 §4: charset'language'percent-encoded */
		ba_buf_addf(&one, "%s*=utf-8''", name);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)value[i];
			if (is_attr_char(c))
				ba_buf_addch(&one, c);
			else
				ba_buf_addf(&one, "%%%c%c", hexdig[c >> 4], hexdig[c & 15]);
		}
	}
	/* " " + parameter + ";" must fit a line, else RFC 2231 §3 continuations */
	if (one.len + 2 <= LINE_MAX_COLS)
		put_param(&h, ba_buf_str(&one), one.len);
	else
		put_pieces(&h, name, value, n, !ascii);
	int failed = ba_buf_failed(&one);
	ba_buf_release(&one);
	*col = h.col;
	if (failed || ba_buf_failed(out))
		return ba_err_set(err, EX_DATAERR, "header too large");
	return 0;
}
