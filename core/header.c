/* header.c - header field list, incremental bounded parser, folding
 *
 * RFC 5322 §2.2 (header fields, folding), §2.1.1 (998-octet lines), §3.6.8
 * (field names).  The parser accepts LF as well as CRLF line ends because
 * messages handed to sendmail on stdin use the local convention.
 */
#include "bluearrow/header.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FOLD_COL 78

enum { ST_FIRST, ST_FIELDS, ST_DONE, ST_FAILED };

static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

void ba_header_list_init(struct ba_header_list *l)
{
	l->v = NULL;
	l->n = l->alloc = 0;
}

void ba_header_list_release(struct ba_header_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].value);
	}
	free(l->v);
	ba_header_list_init(l);
}

static int list_add(struct ba_header_list *l, const char *name, size_t nlen, const char *value,
                    size_t vlen, struct ba_err *err)
{
	if (l->n == l->alloc) {
		size_t na = l->alloc ? 2 * l->alloc : 16;
		struct ba_header_field *v = realloc(l->v, na * sizeof *v);
		if (!v)
			return ba_err_set(err, EX_OSERR, "out of memory");
		l->v = v;
		l->alloc = na;
	}
	char *n = dupn(name, nlen), *v = dupn(value, vlen);
	if (!n || !v) {
		free(n);
		free(v);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	l->v[l->n].name = n;
	l->v[l->n].value = v;
	l->n++;
	return 0;
}

int ba_header_name_valid(const char *name)
{
	if (!name || !*name)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 33 || *p > 126 || *p == ':')
			return 0;
	return 1;
}

int ba_header_value_valid(const char *value)
{
	return value && !strpbrk(value, "\r\n");
}

int ba_header_list_append(struct ba_header_list *l, const char *name, const char *value,
                          struct ba_err *err)
{
	if (!ba_header_name_valid(name))
		return ba_err_set(err, EX_DATAERR, "invalid header field name '%s'", name ? name : "");
	/* folds only: CRLF or LF followed by WSP (RFC 5322 §2.2.3); anything else
	 * would start a new field (header injection) */
	for (const char *p = value; *p; p++) {
		if (*p == '\r' && p[1] != '\n')
			return ba_err_set(err, EX_DATAERR, "bare CR in header field '%s'", name);
		if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
			return ba_err_set(err, EX_DATAERR,
			                  "line break not followed by white space in header field '%s'",
			                  name);
	}
	return list_add(l, name, strlen(name), value, strlen(value), err);
}

const struct ba_header_field *ba_header_list_next(const struct ba_header_list *l,
                                                  const char *name,
                                                  const struct ba_header_field *prev)
{
	size_t i = prev ? (size_t)(prev - l->v) + 1 : 0;
	for (; i < l->n; i++)
		if (!strcasecmp(l->v[i].name, name))
			return &l->v[i];
	return NULL;
}

const struct ba_header_field *ba_header_list_find(const struct ba_header_list *l,
                                                  const char *name)
{
	return ba_header_list_next(l, name, NULL);
}

size_t ba_header_list_remove(struct ba_header_list *l, const char *name)
{
	size_t j = 0, removed = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (!strcasecmp(l->v[i].name, name)) {
			free(l->v[i].name);
			free(l->v[i].value);
			removed++;
		} else {
			l->v[j++] = l->v[i];
		}
	}
	l->n = j;
	return removed;
}

int ba_header_field_unfold(struct ba_buf *out, const struct ba_header_field *f,
                           struct ba_err *err)
{
	const char *s = f->value;
	size_t n = strlen(s), start = out->len;
	while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++, n--;
	for (size_t i = 0; i < n; i++) {
		/* RFC 5322 §2.2.3: unfolding removes the CRLF of a fold, keeps the WSP */
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (s[i] == '\n')
			continue;
		ba_buf_addch(out, s[i]);
	}
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	size_t len = out->len;
	while (len > start && (out->data[len - 1] == ' ' || out->data[len - 1] == '\t'))
		len--;
	ba_buf_truncate(out, len);
	return 0;
}

int ba_header_list_write(struct ba_buf *out, const struct ba_header_list *l, const char *eol,
                         struct ba_err *err)
{
	for (size_t i = 0; i < l->n; i++) {
		ba_buf_addstr(out, l->v[i].name);
		ba_buf_addch(out, ':');
		for (const char *p = l->v[i].value; *p; p++) {
			if (*p == '\r' && p[1] == '\n')
				continue;
			if (*p == '\n')
				ba_buf_addstr(out, eol);
			else
				ba_buf_addch(out, *p);
		}
		ba_buf_addstr(out, eol);
	}
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

int ba_header_write_field(struct ba_buf *out, const char *name, const char *value,
                          const char *eol, struct ba_err *err)
{
	if (!ba_header_name_valid(name))
		return ba_err_set(err, EX_DATAERR, "invalid header field name '%s'", name ? name : "");
	if (!ba_header_value_valid(value))
		return ba_err_set(err, EX_DATAERR, "line break in the value of header field '%s'",
		                  name);
	size_t start = out->len;
	ba_buf_addstr(out, name);
	ba_buf_addch(out, ':');
	size_t col = strlen(name) + 1;
	/* the space put after the colon counts as the white space before the
	 * first word: a fold can go there too */
	int sep = *value && *value != ' ' && *value != '\t';
	int words = 0; /* words on the current line */
	const char *p = value;
	while (*p) {
		/* a token is white space followed by a word; folds go before the white space */
		size_t ws = strspn(p, " \t");
		size_t wl = strcspn(p + ws, " \t");
		size_t tl = (size_t)sep + ws + wl;
		/* fold at 78 when the line has a word already (folding before the
		 * first word would not shorten anything), and before any word that
		 * would pass 998 here: on a line of its own the token fits if
		 * white space + word <= 998 (RFC 5322 §2.1.1, §2.2.3) */
		if ((sep || ws) && wl &&
		    ((words && col + tl > FOLD_COL) || col + tl > BA_HEADER_LINE_MAX)) {
			ba_buf_addstr(out, eol);
			col = 0;
			words = 0;
		}
		if (col + tl > BA_HEADER_LINE_MAX) {
			ba_buf_truncate(out, start);
			return ba_err_set(err, EX_DATAERR,
			                  "header field '%s' has a word too long for a %d-octet line",
			                  name, BA_HEADER_LINE_MAX);
		}
		if (sep)
			ba_buf_addch(out, ' ');
		ba_buf_add(out, p, ws + wl);
		col += tl;
		if (wl)
			words++;
		p += ws + wl;
		sep = 0;
	}
	ba_buf_addstr(out, eol);
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

/* ---- the header reader -------------------------------------------------- */

void ba_header_reader_init(struct ba_header_reader *r, unsigned flags)
{
	memset(r, 0, sizeof *r);
	r->flags = flags;
}

/* EX_DATAERR "line N: " + the message: every header error names its line. */
static int line_vfail(size_t line_no, struct ba_err *err, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static int line_vfail(size_t line_no, struct ba_err *err, const char *fmt, va_list ap)
{
	char text[BA_ERR_TEXT_MAX];
	ba_err_vset(err, EX_DATAERR, fmt, ap);
	if (err) {
		memcpy(text, err->text, sizeof text);
		ba_err_set(err, EX_DATAERR, "line %zu: %s", line_no, text);
	}
	return -1;
}

static int reader_fail(struct ba_header_reader *r, struct ba_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int reader_fail(struct ba_header_reader *r, struct ba_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_vfail(r->line_no, err, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Classifies the line s[0..n), its line end not included (the first piece
 * of it), as header.h describes, and counts it.  Returns its kind or -1.
 */
static int reader_line(struct ba_header_reader *r, const char *s, size_t n, struct ba_err *err)
{
	int first = r->line_no++ == 0, in_field = r->in_field;
	r->line_start = 1;
	r->name_len = 0;
	r->in_field = 0;
	if (first && n >= 5 && !memcmp(s, "From ", 5)) {
		if (r->flags & BA_HEADER_SKIP_MBOX_FROM)
			return r->kind = BA_HEADER_LINE_MBOX_FROM;
		if (!(r->flags & BA_HEADER_KEEP_MALFORMED))
			return reader_fail(r, err, "mbox 'From ' line");
		return r->kind = BA_HEADER_LINE_MALFORMED;
	}
	if (n == 0)
		return r->kind = BA_HEADER_LINE_END;
	if (s[0] == ' ' || s[0] == '\t') {
		/* RFC 5322 §2.2.3: a continuation of the field before */
		if (in_field) {
			r->in_field = 1;
			return r->kind = BA_HEADER_LINE_CONT;
		}
		if (!(r->flags & BA_HEADER_KEEP_MALFORMED))
			return reader_fail(r, err, "continuation line before the first field");
		return r->kind = BA_HEADER_LINE_MALFORMED;
	}
	/* the name: ftext (§3.6.8), then obs-optional white space (§4.5.3) */
	size_t i = 0;
	while (i < n && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127 && s[i] != ':')
		i++;
	size_t nl = i;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (nl && i < n && s[i] == ':') {
		r->name_len = nl;
		r->in_field = 1;
		return r->kind = BA_HEADER_LINE_FIELD;
	}
	if (!(r->flags & BA_HEADER_KEEP_MALFORMED)) {
		const char *colon = memchr(s, ':', n);
		if (!colon)
			return reader_fail(r, err, "missing ':' in header line '%.*s'",
			                   (int)(n > 40 ? 40 : n), s);
		return reader_fail(r, err, "invalid header field name '%.*s'", (int)(colon - s), s);
	}
	return r->kind = BA_HEADER_LINE_MALFORMED;
}

int ba_header_reader_piece(struct ba_header_reader *r, const char *s, size_t n,
                           struct ba_err *err)
{
	int start = !r->mid;
	/* RFC 5322 §2.2: CR only in CRLF.  A CR that ended the piece before
	 * belongs to a line end only if this piece starts with the LF. */
	if (r->cr && (!n || s[0] != '\n'))
		return reader_fail(r, err, "bare CR (not followed by LF) in header");
	int lf = n && s[n - 1] == '\n';
	size_t len = n - (size_t)lf; /* the octets before the LF */
	const char *cr = len ? memchr(s, '\r', len) : NULL;
	/* a CR right before the LF, or last in a piece without LF (decided by
	 * what follows: an LF, or the end of the input), is a line end */
	size_t body = len;
	if (len && s[len - 1] == '\r')
		body = len - 1;
	if (cr && (size_t)(cr - s) < body) {
		if (start)
			r->line_no++;
		return reader_fail(r, err, "bare CR (not followed by LF) in header");
	}
	r->cr = !lf && len && s[len - 1] == '\r';
	r->mid = !lf;
	if (!start) {
		r->line_start = 0;
		return r->kind;
	}
	return reader_line(r, s, body, err);
}

/* ---- incremental parser ------------------------------------------------ */

void ba_header_parser_init(struct ba_header_parser *p, size_t max_total, size_t max_fields,
                           unsigned flags)
{
	memset(p, 0, sizeof *p);
	ba_header_list_init(&p->fields);
	p->max_total = max_total;
	p->max_fields = max_fields;
	p->flags = flags;
	p->state = ST_FIRST;
	ba_header_reader_init(&p->rd, flags);
	/* a line is at most 998 octets plus CR (RFC 5322 §2.1.1) */
	ba_buf_init(&p->line, BA_HEADER_LINE_MAX + 1);
	ba_buf_init(&p->field, 0);
}

void ba_header_parser_release(struct ba_header_parser *p)
{
	ba_header_list_release(&p->fields);
	ba_buf_release(&p->line);
	ba_buf_release(&p->field);
}

void ba_header_parser_take(struct ba_header_parser *p, struct ba_header_list *out)
{
	*out = p->fields;
	ba_header_list_init(&p->fields);
}

static int fail(struct ba_header_parser *p, struct ba_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct ba_header_parser *p, struct ba_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_vfail(p->line_no, err, fmt, ap);
	va_end(ap);
	p->state = ST_FAILED;
	return -1;
}

static int oom_fail(struct ba_header_parser *p, struct ba_err *err)
{
	p->state = ST_FAILED;
	return ba_err_set(err, EX_OSERR, "out of memory");
}

/* Completes the pending field (if any) and adds it to the list. */
static int flush_field(struct ba_header_parser *p, struct ba_err *err)
{
	if (!p->field.len)
		return 0;
	const char *f = p->field.data;
	size_t nl = p->name_len;
	/* the value starts after the colon, which follows the name and optional WSP */
	const char *colon = memchr(f + nl, ':', p->field.len - nl);
	size_t off = (size_t)(colon - f) + 1;
	if (list_add(&p->fields, f, nl, f + off, p->field.len - off, err) < 0) {
		p->state = ST_FAILED;
		return -1;
	}
	ba_buf_reset(&p->field);
	return 0;
}

/* Handles one complete line s[0..n) whose line end is lelen octets (LF 1, CRLF 2, EOF 0). */
static int do_line(struct ba_header_parser *p, const char *s, size_t n, size_t lelen,
                   struct ba_err *err)
{
	size_t prev = p->prev_le;
	p->prev_le = (unsigned char)lelen;
	if (memchr(s, '\0', n))
		return fail(p, err, "NUL byte in header");
	if (n > BA_HEADER_LINE_MAX)
		return fail(p, err, "line longer than %d octets", BA_HEADER_LINE_MAX);
	p->state = ST_FIELDS;
	/* the line's kind, by the one definition every header reader uses */
	int kind = reader_line(&p->rd, s, n, err);
	if (kind < 0) {
		p->state = ST_FAILED;
		return -1;
	}
	switch (kind) {
	case BA_HEADER_LINE_MBOX_FROM:
		return 0;
	case BA_HEADER_LINE_END:
		if (flush_field(p, err) < 0)
			return -1;
		p->state = ST_DONE;
		return 1;
	case BA_HEADER_LINE_CONT:
		/* the fold keeps the line end of the line before, as received */
		ba_buf_add(&p->field, prev == 2 ? "\r\n" : "\n", prev);
		ba_buf_add(&p->field, s, n);
		if (ba_buf_failed(&p->field))
			return oom_fail(p, err);
		return 0;
	case BA_HEADER_LINE_MALFORMED:
		/* kept out of the list: it is no field, and it ends the one before */
		return flush_field(p, err);
	default:
		break;
	}
	if (flush_field(p, err) < 0)
		return -1;
	/* the line starting one field too many is named, whatever follows it */
	if (p->max_fields && p->fields.n >= p->max_fields)
		return fail(p, err, "more than %zu header fields", p->max_fields);
	p->name_len = p->rd.name_len;
	ba_buf_add(&p->field, s, n);
	if (ba_buf_failed(&p->field))
		return oom_fail(p, err);
	return 0;
}

/*
 * Checks the next piece of the current line (take octets, the last one an
 * LF if lf) for a NUL byte, a bare CR, a line over 998 octets and the total
 * bound.  The error reported is the one whose octet comes first in the
 * input, so that neither it nor its line number depends on how the input
 * was split into chunks.
 */
static int check_piece(struct ba_header_parser *p, const char *s, size_t take, int lf,
                       struct ba_err *err)
{
	size_t len = take - (lf ? 1 : 0), held = p->line.len, none = (size_t)-1;
	size_t pos_nul = none, pos_cr = none, pos_line = none, pos_total = none;
	/* RFC 5322 §2.2: a CR only as part of CRLF.  A CR that ended the piece
	 * before is bare unless this piece starts with the LF; it was checked
	 * against every other error then, so it comes first. */
	if (held && p->line.data[held - 1] == '\r' && take && s[0] != '\n')
		return fail(p, err, "bare CR (not followed by LF) in header");
	const char *z = memchr(s, '\0', len);
	if (z)
		pos_nul = (size_t)(z - s);
	/* a CR before the last octet of the piece is followed by something other
	 * than LF; a CR as the last octet is decided by what follows */
	for (size_t j = 0; j + 1 < len; j++)
		if (s[j] == '\r') {
			pos_cr = j;
			break;
		}
	/* RFC 5322 §2.1.1: 998 octets and CR; a 999th octet is fine only if it is
	 * the CR of the line end */
	if (held + len > BA_HEADER_LINE_MAX + 1) {
		pos_line = BA_HEADER_LINE_MAX + 1 - held;
	} else if (lf && held + len == BA_HEADER_LINE_MAX + 1) {
		char last = len ? s[len - 1] : p->line.data[held - 1];
		if (last != '\r')
			pos_line = len;
	}
	if (p->max_total && p->total + take > p->max_total)
		pos_total = p->max_total - p->total;
	/* ties: a NUL past a limit is reported as a NUL (found in any piece); a
	 * CR past a limit as the limit (a CR ending a piece is not judged yet) */
	if (pos_nul != none && pos_nul <= pos_line && pos_nul <= pos_total && pos_nul < pos_cr)
		return fail(p, err, "NUL byte in header");
	if (pos_cr != none && pos_cr < pos_line && pos_cr < pos_total && pos_cr < pos_nul)
		return fail(p, err, "bare CR (not followed by LF) in header");
	if (pos_line != none && pos_line <= pos_total)
		return fail(p, err, "line longer than %d octets", BA_HEADER_LINE_MAX);
	if (pos_total != none)
		return fail(p, err, "header larger than %zu octets", p->max_total);
	return 0;
}

int ba_header_parser_push(struct ba_header_parser *p, const char *data, size_t n,
                          size_t *consumed, struct ba_err *err)
{
	if (p->state == ST_DONE || p->state == ST_FAILED)
		BA_BUG("ba_header_parser_push after the end of the header");
	size_t i = 0;
	*consumed = 0;
	while (i < n) {
		const char *lf = memchr(data + i, '\n', n - i);
		size_t take = lf ? (size_t)(lf - (data + i)) + 1 : n - i;
		if (p->line.len == 0)
			p->line_no++;
		if (check_piece(p, data + i, take, lf != NULL, err) < 0) {
			*consumed = i;
			return -1;
		}
		if (!lf) {
			if (ba_buf_add(&p->line, data + i, take) < 0)
				return oom_fail(p, err);
			p->total += take;
			i += take;
			break;
		}
		/* a complete line: join it with what earlier chunks held */
		const char *s = data + i;
		size_t len = take - 1;
		if (p->line.len) {
			if (ba_buf_add(&p->line, s, len) < 0)
				return oom_fail(p, err);
			s = p->line.data;
			len = p->line.len;
		}
		size_t lelen = 1;
		if (len && s[len - 1] == '\r')
			len--, lelen = 2;
		p->total += take;
		i += take;
		int r = do_line(p, s, len, lelen, err);
		ba_buf_reset(&p->line);
		if (r != 0) {
			*consumed = i;
			return r;
		}
	}
	*consumed = i;
	return 0;
}

int ba_header_parser_finish(struct ba_header_parser *p, struct ba_err *err)
{
	if (p->state == ST_DONE)
		return 0;
	if (p->state == ST_FAILED)
		BA_BUG("ba_header_parser_finish after an error");
	if (p->line.len) {
		/* a last line without line end (RFC 5322 wants CRLF; tolerated) */
		size_t len = p->line.len;
		if (p->line.data[len - 1] == '\r')
			len--;
		int r = do_line(p, p->line.data, len, 0, err);
		ba_buf_reset(&p->line);
		if (r < 0)
			return -1;
		if (r == 1)
			return 0;
	}
	if (flush_field(p, err) < 0)
		return -1;
	p->state = ST_DONE;
	return 0;
}
