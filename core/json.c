/* json.c - a strict JSON (RFC 8259) reader for one object, bounded in depth and members
 *
 * Recursive descent over the bytes; every value is validated, only the
 * top-level members are kept.  RFC 8259 §8.1: the text must be UTF-8, so
 * overlong forms, surrogates and code points above U+10FFFF are refused, in
 * raw bytes and in \u escapes (an unpaired surrogate escape is refused too).
 */
#include "bluearrow/json.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/buf.h"

struct parser {
	const unsigned char *p, *start, *end;
	struct ba_err *err;
	int oom;
};

static int fail(struct parser *ps, const char *why)
{
	if (ps->oom)
		return ba_err_set(ps->err, EX_OSERR, "out of memory");
	return ba_err_set(ps->err, EX_PROTOCOL, "malformed JSON at offset %zu: %s",
	                  (size_t)(ps->p - ps->start), why);
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return fail(ps, "unexpected character");
	ps->p += n;
	return 0;
}

static int hex4(struct parser *ps, unsigned *out)
{
	unsigned v = 0;
	if (ps->end - ps->p < 4)
		return fail(ps, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		unsigned c = ps->p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return fail(ps, "bad \\u escape");
		v = v << 4 | d;
	}
	ps->p += 4;
	*out = v;
	return 0;
}

static void put_utf8(struct ba_buf *b, unsigned cp)
{
	if (cp < 0x80) {
		ba_buf_addch(b, (int)cp);
	} else if (cp < 0x800) {
		ba_buf_addch(b, (int)(0xc0 | cp >> 6));
		ba_buf_addch(b, (int)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		ba_buf_addch(b, (int)(0xe0 | cp >> 12));
		ba_buf_addch(b, (int)(0x80 | ((cp >> 6) & 0x3f)));
		ba_buf_addch(b, (int)(0x80 | (cp & 0x3f)));
	} else {
		ba_buf_addch(b, (int)(0xf0 | cp >> 18));
		ba_buf_addch(b, (int)(0x80 | ((cp >> 12) & 0x3f)));
		ba_buf_addch(b, (int)(0x80 | ((cp >> 6) & 0x3f)));
		ba_buf_addch(b, (int)(0x80 | (cp & 0x3f)));
	}
}

/* Length of the valid UTF-8 sequence at p (RFC 3629 §4), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	unsigned min, cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A string at ps->p (the opening quote); decoded into out when out is not NULL. */
static int string(struct parser *ps, struct ba_buf *out)
{
	ps->p++; /* '"' */
	for (;;) {
		if (ps->p >= ps->end)
			return fail(ps, "unterminated string");
		unsigned c = *ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c < 0x20)
			return fail(ps, "control character in string");
		if (c == '\\') {
			ps->p++;
			if (ps->p >= ps->end)
				return fail(ps, "unterminated string");
			unsigned e = *ps->p++, cp;
			switch (e) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u':
				if (hex4(ps, &cp) < 0)
					return -1;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return fail(ps, "unpaired surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					unsigned lo;
					if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
						return fail(ps, "unpaired surrogate");
					ps->p += 2;
					if (hex4(ps, &lo) < 0)
						return -1;
					if (lo < 0xdc00 || lo > 0xdfff)
						return fail(ps, "unpaired surrogate");
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				if (cp == 0)
					return fail(ps, "NUL in string");
				break;
			default:
				ps->p--;
				return fail(ps, "bad escape");
			}
			if (out)
				put_utf8(out, cp);
			continue;
		}
		size_t n = utf8_len(ps->p, ps->end);
		if (n == 0)
			return fail(ps, "invalid UTF-8");
		if (out)
			ba_buf_add(out, ps->p, n);
		ps->p += n;
	}
	if (out && ba_buf_failed(out)) {
		ps->oom = 1;
		return fail(ps, "");
	}
	return 0;
}

static int is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* A number (RFC 8259 §6): -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int number(struct parser *ps)
{
	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (!is_digit(ps->p, ps->end))
		return fail(ps, "bad number");
	if (*ps->p == '0') {
		ps->p++;
		if (is_digit(ps->p, ps->end))
			return fail(ps, "leading zero");
	} else {
		while (is_digit(ps->p, ps->end))
			ps->p++;
	}
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		if (!is_digit(ps->p, ps->end))
			return fail(ps, "bad fraction");
		while (is_digit(ps->p, ps->end))
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (!is_digit(ps->p, ps->end))
			return fail(ps, "bad exponent");
		while (is_digit(ps->p, ps->end))
			ps->p++;
	}
	return 0;
}

static int value(struct parser *ps, int depth, enum ba_json_type *type, struct ba_buf *out);

/* An object or array at ps->p, checked and skipped. */
static int container(struct parser *ps, int depth)
{
	int obj = *ps->p == '{';
	unsigned char close = obj ? '}' : ']';
	if (depth >= BA_JSON_DEPTH_MAX)
		return ba_err_set(ps->err, EX_PROTOCOL, "JSON nested deeper than %d",
		                  BA_JSON_DEPTH_MAX);
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return 0;
	}
	for (;;) {
		enum ba_json_type t;
		skip_ws(ps);
		if (obj) {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "expected a member name");
			if (string(ps, NULL) < 0)
				return -1;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return fail(ps, "expected ':'");
			ps->p++;
		}
		if (value(ps, depth + 1, &t, NULL) < 0)
			return -1;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return 0;
		}
		return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

/* Any value; a string is decoded into out, a number's text copied to it (out may be NULL). */
static int value(struct parser *ps, int depth, enum ba_json_type *type, struct ba_buf *out)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "expected a value");
	const unsigned char *start = ps->p;
	switch (*ps->p) {
	case '"':
		*type = BA_JSON_STRING;
		return string(ps, out);
	case '{':
		*type = BA_JSON_OBJECT;
		return container(ps, depth);
	case '[':
		*type = BA_JSON_ARRAY;
		return container(ps, depth);
	case 't':
		*type = BA_JSON_TRUE;
		return literal(ps, "true");
	case 'f':
		*type = BA_JSON_FALSE;
		return literal(ps, "false");
	case 'n':
		*type = BA_JSON_NULL;
		return literal(ps, "null");
	default:
		*type = BA_JSON_NUMBER;
		if (number(ps) < 0)
			return -1;
		if (out && ba_buf_add(out, start, (size_t)(ps->p - start)) < 0) {
			ps->oom = 1;
			return fail(ps, "");
		}
		return 0;
	}
}

static char *take(struct ba_buf *b)
{
	char *s = ba_buf_detach(b, NULL);
	return s;
}

int ba_json_parse(struct ba_json *out, const char *text, size_t len, struct ba_err *err)
{
	struct parser ps = { (const unsigned char *)text, (const unsigned char *)text,
		             (const unsigned char *)text + len, err, 0 };
	struct ba_buf name, val;
	int rc = -1;
	out->m = NULL;
	out->n = 0;
	ba_buf_init(&name, 0);
	ba_buf_init(&val, 0);
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{') {
		fail(&ps, "expected an object");
		goto done;
	}
	ps.p++;
	skip_ws(&ps);
	if (ps.p < ps.end && *ps.p == '}') {
		ps.p++;
		goto tail;
	}
	for (;;) {
		enum ba_json_type t;
		skip_ws(&ps);
		if (ps.p >= ps.end || *ps.p != '"') {
			fail(&ps, "expected a member name");
			goto done;
		}
		ba_buf_reset(&name);
		if (string(&ps, &name) < 0)
			goto done;
		skip_ws(&ps);
		if (ps.p >= ps.end || *ps.p != ':') {
			fail(&ps, "expected ':'");
			goto done;
		}
		ps.p++;
		ba_buf_release_secret(&val);
		ba_buf_init(&val, 0);
		if (value(&ps, 1, &t, &val) < 0)
			goto done;
		for (size_t i = 0; i < out->n; i++)
			if (strcmp(out->m[i].name, ba_buf_str(&name)) == 0) {
				/* names are not secrets, but keep them short in the message */
				ba_err_set(err, EX_PROTOCOL, "duplicate JSON member '%.64s'", out->m[i].name);
				goto done;
			}
		if (out->n >= BA_JSON_MEMBERS_MAX) {
			ba_err_set(err, EX_PROTOCOL, "more than %d JSON members", BA_JSON_MEMBERS_MAX);
			goto done;
		}
		struct ba_json_member *nm = realloc(out->m, (out->n + 1) * sizeof(*nm));
		if (!nm) {
			ba_err_set(err, EX_OSERR, "out of memory");
			goto done;
		}
		out->m = nm;
		struct ba_json_member *m = &out->m[out->n];
		m->type = t;
		m->value = NULL;
		if (!(m->name = take(&name))) {
			ba_err_set(err, EX_OSERR, "out of memory");
			goto done;
		}
		if (t == BA_JSON_STRING || t == BA_JSON_NUMBER) {
			if (!(m->value = take(&val))) {
				free(m->name);
				ba_err_set(err, EX_OSERR, "out of memory");
				goto done;
			}
		}
		out->n++;
		skip_ws(&ps);
		if (ps.p < ps.end && *ps.p == ',') {
			ps.p++;
			continue;
		}
		if (ps.p < ps.end && *ps.p == '}') {
			ps.p++;
			break;
		}
		fail(&ps, "expected ',' or '}'");
		goto done;
	}
tail:
	skip_ws(&ps);
	if (ps.p != ps.end) {
		fail(&ps, "trailing data after the object");
		goto done;
	}
	rc = 0;
done:
	ba_buf_release(&name);
	ba_buf_release_secret(&val);
	return rc;
}

static const struct ba_json_member *find(const struct ba_json *j, const char *name)
{
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->m[i].name, name) == 0)
			return &j->m[i];
	return NULL;
}

const char *ba_json_str(const struct ba_json *j, const char *name)
{
	const struct ba_json_member *m = find(j, name);
	return m && m->type == BA_JSON_STRING ? m->value : NULL;
}

int ba_json_uint(const struct ba_json *j, const char *name, long max, long *out)
{
	const struct ba_json_member *m = find(j, name);
	if (!m)
		return 0;
	if (m->type != BA_JSON_STRING && m->type != BA_JSON_NUMBER)
		return -1;
	const char *s = m->value;
	if (!*s || strlen(s) > 18)
		return -1;
	long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 1;
}

static void wipe_free(char *s)
{
	if (!s)
		return;
	volatile char *v = s;
	for (size_t i = 0; s[i]; i++)
		v[i] = 0;
	free(s);
}

void ba_json_release(struct ba_json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		free(j->m[i].name);
		wipe_free(j->m[i].value);
	}
	free(j->m);
	j->m = NULL;
	j->n = 0;
}
