/* draft.c - a message being composed: fields, attachments, body; the file format; building
 *
 * The file format and its bounds are the contract in bluearrow/draft.h.  Why
 * escaping instead of RFC 5322 folding or encoded words: a draft holds what
 * the user typed, valid or not, and file paths, which on POSIX may hold any
 * byte but NUL (a newline included); an escape gives every such string
 * exactly one line and reads back to the same bytes.
 */
#include "bluearrow/draft.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/mime.h"

/* header bytes of a file, on top of the body: what the reader allocates at most */
#define HEADER_BYTES_MAX (4u << 20)

struct vals {
	char **v;
	size_t n;
};

struct att {
	char *path, *type, *name;
};

struct ba_draft {
	struct vals f[BA_DRAFT_NFIELDS];
	char *body_file, *html_file;
	char *text; /* in-memory body, NUL-terminated for convenience; NULL = none */
	size_t text_len;
	struct att *att;
	size_t natt;
};

/* the file's field names, by enum ba_draft_field */
static const char *const field_names[BA_DRAFT_NFIELDS] = {
	"From", "To", "Cc", "Bcc", "Reply-To", "Subject", "In-Reply-To", "References",
	"X-Bluearrow-Header",
};

static int single(enum ba_draft_field f)
{
	return f == BA_DRAFT_SUBJECT || f == BA_DRAFT_IN_REPLY_TO;
}

static void check_field(enum ba_draft_field f)
{
	if ((unsigned)f >= BA_DRAFT_NFIELDS)
		BA_BUG("no draft field %d", (int)f);
}

int ba_draft_new(ba_draft **out, struct ba_err *err)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ba_err_set(err, EX_OSERR, "out of memory");
}

static void vals_clear(struct vals *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

void ba_draft_free(ba_draft *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < BA_DRAFT_NFIELDS; i++)
		vals_clear(&d->f[i]);
	free(d->body_file);
	free(d->html_file);
	free(d->text);
	for (size_t i = 0; i < d->natt; i++) {
		free(d->att[i].path);
		free(d->att[i].type);
		free(d->att[i].name);
	}
	free(d->att);
	free(d);
}

/* Replaces *slot by a copy of s (NULL: frees it). */
static int set_str(char **slot, const char *s, struct ba_err *err)
{
	char *c = NULL;
	if (s && !(c = strdup(s)))
		return ba_err_set(err, EX_OSERR, "out of memory");
	free(*slot);
	*slot = c;
	return 0;
}

int ba_draft_add(ba_draft *d, enum ba_draft_field f, const char *value, struct ba_err *err)
{
	check_field(f);
	struct vals *v = &d->f[f];
	if (single(f) && v->n)
		return set_str(&v->v[0], value, err);
	char *c = strdup(value);
	char **x = c ? realloc(v->v, (v->n + 1) * sizeof(*x)) : NULL;
	if (!x) {
		free(c);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	x[v->n++] = c;
	v->v = x;
	return 0;
}

int ba_draft_set(ba_draft *d, enum ba_draft_field f, const char *value, struct ba_err *err)
{
	check_field(f);
	if (value && d->f[f].n == 1)
		return set_str(&d->f[f].v[0], value, err);
	vals_clear(&d->f[f]);
	return value ? ba_draft_add(d, f, value, err) : 0;
}

size_t ba_draft_count(const ba_draft *d, enum ba_draft_field f)
{
	check_field(f);
	return d->f[f].n;
}

const char *ba_draft_get(const ba_draft *d, enum ba_draft_field f, size_t i)
{
	check_field(f);
	return i < d->f[f].n ? d->f[f].v[i] : NULL;
}

int ba_draft_set_body_file(ba_draft *d, const char *path, struct ba_err *err)
{
	if (set_str(&d->body_file, path, err) < 0)
		return -1;
	if (path) {
		free(d->text);
		d->text = NULL;
		d->text_len = 0;
	}
	return 0;
}

const char *ba_draft_body_file(const ba_draft *d)
{
	return d->body_file;
}

int ba_draft_set_body_text(ba_draft *d, const void *p, size_t n, struct ba_err *err)
{
	if (n > BA_DRAFT_BODY_MAX)
		return ba_err_set(err, EX_DATAERR, "body: %zu octets, more than a draft holds (%u)", n,
		                  (unsigned)BA_DRAFT_BODY_MAX);
	char *c = malloc(n + 1);
	if (!c)
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (n)
		memcpy(c, p, n);
	c[n] = '\0';
	free(d->text);
	d->text = c;
	d->text_len = n;
	free(d->body_file);
	d->body_file = NULL;
	return 0;
}

const char *ba_draft_body_text(const ba_draft *d, size_t *n)
{
	*n = d->text ? d->text_len : 0;
	return d->text;
}

int ba_draft_set_html_file(ba_draft *d, const char *path, struct ba_err *err)
{
	return set_str(&d->html_file, path, err);
}

const char *ba_draft_html_file(const ba_draft *d)
{
	return d->html_file;
}

/* ---- attachments -------------------------------------------------------- */

int ba_draft_attach_add(ba_draft *d, const char *path, const char *type, const char *name,
                        struct ba_err *err)
{
	struct att a = { NULL, NULL, NULL };
	if (set_str(&a.path, path, err) < 0 || set_str(&a.type, type, err) < 0 ||
	    set_str(&a.name, name, err) < 0)
		goto fail;
	struct att *x = realloc(d->att, (d->natt + 1) * sizeof(*x));
	if (!x) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto fail;
	}
	x[d->natt++] = a;
	d->att = x;
	return 0;
fail:
	free(a.path);
	free(a.type);
	free(a.name);
	return -1;
}

size_t ba_draft_attach_count(const ba_draft *d)
{
	return d->natt;
}

const char *ba_draft_attach_path(const ba_draft *d, size_t i)
{
	return i < d->natt ? d->att[i].path : NULL;
}

const char *ba_draft_attach_type(const ba_draft *d, size_t i)
{
	return i < d->natt ? d->att[i].type : NULL;
}

const char *ba_draft_attach_name(const ba_draft *d, size_t i)
{
	return i < d->natt ? d->att[i].name : NULL;
}

static int no_attach(size_t i, size_t n, struct ba_err *err)
{
	return ba_err_set(err, EX_USAGE, "no attachment %zu (the draft has %zu)", i + 1, n);
}

int ba_draft_attach_set_type(ba_draft *d, size_t i, const char *type, struct ba_err *err)
{
	return i < d->natt ? set_str(&d->att[i].type, type, err) : no_attach(i, d->natt, err);
}

int ba_draft_attach_set_name(ba_draft *d, size_t i, const char *name, struct ba_err *err)
{
	return i < d->natt ? set_str(&d->att[i].name, name, err) : no_attach(i, d->natt, err);
}

int ba_draft_attach_remove(ba_draft *d, size_t i, struct ba_err *err)
{
	if (i >= d->natt)
		return no_attach(i, d->natt, err);
	free(d->att[i].path);
	free(d->att[i].type);
	free(d->att[i].name);
	memmove(&d->att[i], &d->att[i + 1], (d->natt - i - 1) * sizeof(*d->att));
	d->natt--;
	return 0;
}

int ba_draft_attach_move(ba_draft *d, size_t from, size_t to, struct ba_err *err)
{
	if (from >= d->natt)
		return no_attach(from, d->natt, err);
	if (to >= d->natt)
		return no_attach(to, d->natt, err);
	struct att a = d->att[from];
	if (from < to)
		memmove(&d->att[from], &d->att[from + 1], (to - from) * sizeof(a));
	else
		memmove(&d->att[to + 1], &d->att[to], (from - to) * sizeof(a));
	d->att[to] = a;
	return 0;
}

/* ---- building ----------------------------------------------------------- */

static int is_stdin(const char *path)
{
	return path && strcmp(path, "-") == 0;
}

static int open_leaf(ba_mime_part **out, const char *path, enum ba_mime_role role,
                     struct ba_err *err)
{
	if (is_stdin(path)) /* no file name to show unless the attachment names one */
		return ba_mime_fd_new(out, dup(STDIN_FILENO), "standard input", role, err) < 0 ? -1
		       : ba_mime_set_filename(*out, "", err);
	return ba_mime_file_new(out, path, role, err);
}

/* The MIME tree: [mixed: ] [alternative: ] text [html] [attachments...] */
static int build_body(ba_mime_part **out, const ba_draft *d, struct ba_err *err)
{
	ba_mime_part *text = NULL, *html = NULL, *body = NULL, *root = NULL;
	*out = NULL;
	if (d->text) {
		if (ba_mime_mem_new(&text, d->text, d->text_len, "body", BA_MIME_BODY, err) < 0)
			goto fail;
	} else if (d->body_file && open_leaf(&text, d->body_file, BA_MIME_BODY, err) < 0) {
		goto fail;
	}
	if (d->html_file && (open_leaf(&html, d->html_file, BA_MIME_BODY, err) < 0 ||
	                     ba_mime_set_type(html, "text/html", err) < 0))
		goto fail;
	if (text && html) {
		if (ba_mime_multipart_new(&body, "alternative", err) < 0)
			goto fail;
		ba_mime_add(body, text, err);
		ba_mime_add(body, html, err);
		text = html = NULL;
	} else {
		body = text ? text : html;
		text = html = NULL;
	}
	if (!d->natt) {
		*out = body;
		return 0;
	}
	if (ba_mime_multipart_new(&root, "mixed", err) < 0)
		goto fail;
	if (body)
		ba_mime_add(root, body, err);
	body = NULL;
	for (size_t i = 0; i < d->natt; i++) {
		ba_mime_part *p;
		if (open_leaf(&p, d->att[i].path, BA_MIME_ATTACHMENT, err) < 0)
			goto fail;
		ba_mime_add(root, p, err);
		if ((d->att[i].type && ba_mime_set_type(p, d->att[i].type, err) < 0) ||
		    (d->att[i].name && ba_mime_set_filename(p, d->att[i].name, err) < 0))
			goto fail;
	}
	*out = root;
	return 0;
fail:
	ba_mime_free(text);
	ba_mime_free(html);
	ba_mime_free(body);
	ba_mime_free(root);
	return -1;
}

typedef int (*msg_setter)(ba_msg *, const char *, struct ba_err *);

static int build_fields(ba_msg *m, const ba_draft *d, struct ba_err *err)
{
	/* the order of the fields decides which error a draft with several bad values reports */
	static const struct {
		enum ba_draft_field f;
		msg_setter set;
	} order[] = {
		{ BA_DRAFT_FROM, ba_msg_add_from },
		{ BA_DRAFT_TO, ba_msg_add_to },
		{ BA_DRAFT_CC, ba_msg_add_cc },
		{ BA_DRAFT_BCC, ba_msg_add_bcc },
		{ BA_DRAFT_REPLY_TO, ba_msg_add_reply_to },
		{ BA_DRAFT_SUBJECT, ba_msg_set_subject },
		{ BA_DRAFT_IN_REPLY_TO, ba_msg_set_in_reply_to },
		{ BA_DRAFT_REFERENCES, ba_msg_add_references },
		{ BA_DRAFT_HEADER, ba_msg_add_header },
	};
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		const struct vals *v = &d->f[order[k].f];
		for (size_t i = 0; i < v->n; i++)
			if (order[k].set(m, v->v[i], err) < 0)
				return -1;
	}
	return 0;
}

int ba_draft_build(ba_msg **out, const ba_draft *d, struct ba_err *err)
{
	int stdin_users = is_stdin(d->text ? NULL : d->body_file) + is_stdin(d->html_file);
	for (size_t i = 0; i < d->natt; i++)
		stdin_users += is_stdin(d->att[i].path);
	*out = NULL;
	if (stdin_users > 1)
		return ba_err_set(err, EX_USAGE, "standard input ('-') can be used only once");
	ba_msg *m;
	if (ba_msg_new(&m, err) < 0)
		return -1;
	ba_mime_part *body;
	if (build_fields(m, d, err) < 0 || build_body(&body, d, err) < 0) {
		ba_msg_free(m);
		return -1;
	}
	ba_msg_set_body(m, body);
	*out = m;
	return 0;
}

/* ---- the file format: writing ------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[0..n) (RFC 3629 §4), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Appends s escaped as draft.h describes. */
static void put_escaped(struct ba_buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), lead = 0, trail = n;
	while (lead < n && (s[lead] == ' ' || s[lead] == '\t'))
		lead++;
	while (trail > lead && (s[trail - 1] == ' ' || s[trail - 1] == '\t'))
		trail--;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;
		if (c == '\\') {
			ba_buf_addstr(b, "\\\\");
		} else if (c == '\n') {
			ba_buf_addstr(b, "\\n");
		} else if (c == '\r') {
			ba_buf_addstr(b, "\\r");
		} else if (c == '\t') {
			ba_buf_addstr(b, "\\t");
		} else if (c == ' ' && (i < lead || i >= trail)) {
			ba_buf_addstr(b, "\\x20");
		} else if (c < 0x20 || c == 0x7f) {
			ba_buf_addf(b, "\\x%02x", c);
		} else if (c >= 0x80) {
			if ((k = utf8_seq(s + i, n - i)) == 0) {
				ba_buf_addf(b, "\\x%02x", c);
			} else {
				ba_buf_add(b, s + i, k);
				i += k;
				continue;
			}
		} else {
			ba_buf_addch(b, c);
		}
		i++;
	}
}

static void put_line(struct ba_buf *b, const char *name, const char *value)
{
	ba_buf_addstr(b, name);
	ba_buf_addstr(b, ": ");
	put_escaped(b, value);
	ba_buf_addch(b, '\n');
}

int ba_draft_format(struct ba_buf *out, const ba_draft *d, struct ba_err *err)
{
	const char *in = is_stdin(d->text ? NULL : d->body_file) ? "body" : is_stdin(d->html_file)
	                 ? "html body" : NULL;
	for (size_t i = 0; !in && i < d->natt; i++)
		if (is_stdin(d->att[i].path))
			in = "attachment";
	if (in)
		return ba_err_set(err, EX_USAGE, "cannot save a draft whose %s is standard input "
		                  "('-')", in);
	size_t before = out->len;
	ba_buf_addf(out, "X-Bluearrow-Draft: %d\n", BA_DRAFT_VERSION);
	for (size_t f = 0; f < BA_DRAFT_NFIELDS; f++)
		for (size_t i = 0; i < d->f[f].n; i++)
			put_line(out, field_names[f], d->f[f].v[i]);
	if (d->body_file)
		put_line(out, "X-Bluearrow-Body-File", d->body_file);
	if (d->html_file)
		put_line(out, "X-Bluearrow-Html-File", d->html_file);
	for (size_t i = 0; i < d->natt; i++) {
		put_line(out, "X-Bluearrow-Attach", d->att[i].path);
		if (d->att[i].type)
			put_line(out, "X-Bluearrow-Attach-Type", d->att[i].type);
		if (d->att[i].name)
			put_line(out, "X-Bluearrow-Attach-Name", d->att[i].name);
	}
	if (d->text)
		ba_buf_addf(out, "X-Bluearrow-Body: %zu\n", d->text_len);
	ba_buf_addch(out, '\n');
	if (d->text)
		ba_buf_add(out, d->text, d->text_len);
	if (ba_buf_failed(out)) {
		ba_buf_truncate(out, before);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	return 0;
}

/* ---- the file format: reading ------------------------------------------ */

struct reader {
	const char *name; /* the file, for errors */
	size_t line;      /* number of the current line, from 1 */
	struct ba_err *err;
};

static int bad(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct reader *r, const char *fmt, ...)
{
	char text[BA_ERR_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return ba_err_set(r->err, EX_DATAERR, "'%s', line %zu: %s", r->name, r->line, text);
}

/* Decodes the escaped value p[0..n) into a new string in *out. */
static int unescape(char **out, struct reader *r, const char *p, size_t n)
{
	char *s = malloc(n + 1), *o = s;
	if (!s)
		return ba_err_set(r->err, EX_OSERR, "out of memory");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r') {
			free(s);
			return bad(r, "carriage return (CR) in a line: lines end in LF alone");
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			free(s);
			return bad(r, "control character 0x%02x in a value (write it as \\x%02x)", c, c);
		}
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		int h1, h2;
		c = i + 1 < n ? (unsigned char)p[++i] : 0;
		switch (c) {
		case '\\': *o++ = '\\'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'x':
			h1 = i + 1 < n ? ba_hex_digit((unsigned char)p[i + 1]) : -1;
			h2 = i + 2 < n ? ba_hex_digit((unsigned char)p[i + 2]) : -1;
			if (h1 < 0 || h2 < 0 || (h1 | h2) == 0) {
				free(s);
				return bad(r, "invalid escape: \\x needs two hex digits, not 00");
			}
			*o++ = (char)(h1 << 4 | h2);
			i += 2;
			break;
		default:
			free(s);
			return c ? bad(r, "invalid escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?')
			         : bad(r, "a backslash ends the value");
		}
	}
	*o = '\0';
	*out = s;
	return 0;
}

enum {
	K_ATTACH = BA_DRAFT_NFIELDS, K_ATTACH_TYPE, K_ATTACH_NAME, K_BODY_FILE, K_HTML_FILE, K_BODY,
	K_VERSION,
};

static const char *const x_names[] = {
	"X-Bluearrow-Attach", "X-Bluearrow-Attach-Type", "X-Bluearrow-Attach-Name",
	"X-Bluearrow-Body-File", "X-Bluearrow-Html-File", "X-Bluearrow-Body", "X-Bluearrow-Draft",
};

static int field_kind(const char *p, size_t n)
{
	for (size_t i = 0; i < BA_DRAFT_NFIELDS; i++)
		if (strlen(field_names[i]) == n && strncasecmp(field_names[i], p, n) == 0)
			return (int)i;
	for (size_t i = 0; i < sizeof(x_names) / sizeof(x_names[0]); i++)
		if (strlen(x_names[i]) == n && strncasecmp(x_names[i], p, n) == 0)
			return K_ATTACH + (int)i;
	return -1;
}

/* A decimal number without sign or leading zeros, at most max. */
static int parse_count(const char *s, size_t max, size_t *out)
{
	size_t v = 0;
	if (!*s || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (size_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (size_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Applies one header line (kind, decoded value) to d; takes ownership of v. */
static int apply(ba_draft *d, struct reader *r, int kind, char *v, int *have_body,
                 size_t *body_len)
{
	int rc = 0;
	size_t last = d->natt - 1;
	if ((kind == K_ATTACH || kind == K_BODY_FILE || kind == K_HTML_FILE) && is_stdin(v)) {
		free(v); /* ba_draft_format() refuses to write it: a file never holds it */
		return bad(r, "%s: '-' (standard input) cannot be in a draft", x_names[kind - K_ATTACH]);
	}
	switch (kind) {
	case K_VERSION:
		rc = bad(r, "X-Bluearrow-Draft given twice");
		break;
	case K_ATTACH:
		rc = ba_draft_attach_add(d, v, NULL, NULL, r->err);
		break;
	case K_ATTACH_TYPE:
	case K_ATTACH_NAME: {
		const char *what = x_names[kind - K_ATTACH];
		if (!d->natt) {
			rc = bad(r, "%s before any X-Bluearrow-Attach", what);
			break;
		}
		char **slot = kind == K_ATTACH_TYPE ? &d->att[last].type : &d->att[last].name;
		if (*slot) {
			rc = bad(r, "%s given twice for one attachment", what);
			break;
		}
		*slot = v;
		return 0;
	}
	case K_BODY_FILE:
	case K_HTML_FILE: {
		char **slot = kind == K_BODY_FILE ? &d->body_file : &d->html_file;
		if (*slot || (kind == K_BODY_FILE && *have_body)) {
			rc = bad(r, "%s given twice, or with X-Bluearrow-Body", x_names[kind - K_ATTACH]);
			break;
		}
		*slot = v;
		return 0;
	}
	case K_BODY:
		if (*have_body || d->body_file)
			rc = bad(r, "X-Bluearrow-Body given twice, or with X-Bluearrow-Body-File");
		else if (parse_count(v, BA_DRAFT_BODY_MAX, body_len) < 0)
			rc = bad(r, "X-Bluearrow-Body: '%.40s' is not a length of at most %u octets", v,
			         (unsigned)BA_DRAFT_BODY_MAX);
		else
			*have_body = 1;
		break;
	default:
		if (single((enum ba_draft_field)kind) && d->f[kind].n)
			rc = bad(r, "%s given twice", field_names[kind]);
		else
			rc = ba_draft_add(d, (enum ba_draft_field)kind, v, r->err);
	}
	free(v);
	return rc;
}

int ba_draft_parse(ba_draft **out, const void *data, size_t n, const char *name,
                   struct ba_err *err)
{
	const char *p = data, *end = p + n;
	struct reader r = { name, 0, err };
	int have_body = 0;
	size_t body_len = 0;
	ba_draft *d;
	*out = NULL;
	if (ba_draft_new(&d, err) < 0)
		return -1;
	for (;;) {
		r.line++;
		if (p == end) {
			bad(&r, r.line == 1 ? "empty file, not a draft"
			                    : "truncated: the header does not end with an empty line");
			goto fail;
		}
		const char *nl = memchr(p, '\n', (size_t)(end - p) < BA_DRAFT_LINE_MAX + 1
		                                     ? (size_t)(end - p) : BA_DRAFT_LINE_MAX + 1);
		if (!nl) {
			if ((size_t)(end - p) > BA_DRAFT_LINE_MAX)
				bad(&r, "line longer than %d octets", BA_DRAFT_LINE_MAX);
			else
				bad(&r, "truncated: the last line has no end (LF)");
			goto fail;
		}
		if (r.line > BA_DRAFT_LINES_MAX) {
			bad(&r, "more than %d header lines", BA_DRAFT_LINES_MAX);
			goto fail;
		}
		const char *line = p;
		size_t len = (size_t)(nl - p);
		p = nl + 1;
		if (len == 0 && r.line > 1)
			break;
		const char *colon = memchr(line, ':', len);
		size_t nlen = colon ? (size_t)(colon - line) : 0;
		int kind = colon ? field_kind(line, nlen) : -1;
		if (r.line == 1 && kind != K_VERSION) {
			bad(&r, "not a bluearrow draft (the first line is not X-Bluearrow-Draft)");
			goto fail;
		}
		if (!colon || kind < 0) {
			size_t show = colon ? nlen : len;
			bad(&r, colon ? "unknown field '%.*s'" : "'%.*s' is not 'Name: value'",
			    (int)(show > 60 ? 60 : show), line);
			goto fail;
		}
		const char *v = colon + 1;
		size_t vlen = len - nlen - 1;
		if (vlen && *v == ' ')
			v++, vlen--;
		char *val = NULL;
		if (unescape(&val, &r, v, vlen) < 0)
			goto fail;
		if (kind == K_VERSION && r.line == 1) {
			size_t ver;
			if (parse_count(val, 1000000, &ver) < 0 || ver != BA_DRAFT_VERSION) {
				bad(&r, "draft format version '%.20s' is not one this bluearrow reads (%d)",
				    val, BA_DRAFT_VERSION);
				free(val);
				goto fail;
			}
			free(val);
			continue;
		}
		if (apply(d, &r, kind, val, &have_body, &body_len) < 0)
			goto fail;
	}
	size_t rest = (size_t)(end - p);
	r.line++;
	if (have_body ? rest != body_len : rest != 0) {
		if (have_body && rest < body_len)
			bad(&r, "truncated body: %zu of %zu octets", rest, body_len);
		else
			bad(&r, "%zu octets after the %s", rest - (have_body ? body_len : 0),
			    have_body ? "body" : "header (no X-Bluearrow-Body line declares a body)");
		goto fail;
	}
	if (have_body && ba_draft_set_body_text(d, p, body_len, err) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	ba_draft_free(d);
	return -1;
}

int ba_draft_load(ba_draft **out, const char *path, struct ba_err *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ba_err_set(err, errno == ENOENT || errno == EACCES ? EX_NOINPUT : EX_IOERR,
		                  "cannot open draft '%s': %s", path, ba_strerror_t(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return ba_err_set(err, EX_IOERR, "cannot read draft '%s': %s", path, ba_strerror_t(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ba_err_set(err, EX_NOINPUT, "cannot read draft '%s': %s", path,
		                  S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
	}
	const size_t max = (size_t)HEADER_BYTES_MAX + BA_DRAFT_BODY_MAX;
	/* the size is only a hint (the file may change): the read below is bounded itself */
	if ((uintmax_t)st.st_size > max) {
		close(fd);
		return ba_err_set(err, EX_DATAERR, "'%s': %jd octets, larger than a draft can be",
		                  path, (intmax_t)st.st_size);
	}
	struct ba_buf b;
	ba_buf_init(&b, max + 1);
	int rc = 0;
	for (;;) {
		/* room for one octet more than a draft may have, to tell "too large" from "full" */
		size_t room = max + 1 - b.len < 65536 ? max + 1 - b.len : 65536;
		if (ba_buf_grow(&b, room) < 0) {
			rc = ba_err_set(err, EX_OSERR, "out of memory");
			break;
		}
		ssize_t k = read(fd, b.data + b.len, room);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = ba_err_set(err, EX_IOERR, "cannot read draft '%s': %s", path, ba_strerror_t(errno));
			break;
		}
		if (k == 0)
			break;
		b.len += (size_t)k;
		b.data[b.len] = '\0';
		if (b.len > max) {
			rc = ba_err_set(err, EX_DATAERR, "'%s': larger than a draft can be", path);
			break;
		}
	}
	close(fd);
	if (rc == 0)
		rc = ba_draft_parse(out, b.data ? b.data : "", b.len, path, err);
	ba_buf_release(&b);
	return rc;
}

/* ---- files: atomic save, directory, list, delete ------------------------ */

/* The directory part of path ("." when it has none), in a new string. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int fsync_dir(const char *dir, struct ba_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ba_err_set(err, EX_IOERR, "cannot sync directory '%s': %s", dir, ba_strerror_t(e));
	}
	close(fd);
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/*
 * Writes data to path through a temporary file in its directory.  With
 * noreplace, an existing path is kept and the call returns 1 (link(2) fails
 * with EEXIST where rename(2) would replace).
 */
static int write_atomic(const char *path, const struct ba_buf *data, int noreplace,
                        struct ba_err *err)
{
	char *dir = dir_of(path);
	struct ba_buf tmp = BA_BUF_INIT;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int fd = -1, rc = -1, e;
	if (!dir || ba_buf_addf(&tmp, "%s/.%.64s.XXXXXX", dir, base) < 0) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	fd = mkstemp(tmp.data); /* mode 0600 */
	if (fd < 0) {
		ba_err_set(err, EX_CANTCREAT, "cannot save draft '%s': cannot create a file in '%s': "
		           "%s", path, dir, ba_strerror_t(errno));
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || write_all(fd, data->data ? data->data : "", data->len) < 0 ||
	    fsync(fd) < 0) {
		e = errno;
		close(fd);
		ba_err_set(err, EX_IOERR, "cannot save draft '%s': %s", path, ba_strerror_t(e));
		goto unlink;
	}
	if (close(fd) < 0) {
		ba_err_set(err, EX_IOERR, "cannot save draft '%s': %s", path, ba_strerror_t(errno));
		goto unlink;
	}
	if (noreplace ? link(tmp.data, path) < 0 : rename(tmp.data, path) < 0) {
		e = errno;
		if (noreplace && e == EEXIST) {
			rc = 1;
		} else {
			ba_err_set(err, EX_IOERR, "cannot save draft '%s': %s", path, ba_strerror_t(e));
		}
		goto unlink;
	}
	if (noreplace)
		unlink(tmp.data);
	rc = fsync_dir(dir, err);
	goto out;
unlink:
	unlink(tmp.data);
out:
	ba_buf_release(&tmp);
	free(dir);
	return rc;
}

int ba_draft_save(const ba_draft *d, const char *path, struct ba_err *err)
{
	struct ba_buf b = BA_BUF_INIT;
	int rc = ba_draft_format(&b, d, err);
	if (rc == 0)
		rc = write_atomic(path, &b, 0, err);
	ba_buf_release(&b);
	return rc;
}

int ba_draft_dir(struct ba_buf *out, int create, struct ba_err *err)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	size_t before = out->len;
	/* XDG Base Directory: a relative path in $XDG_DATA_HOME is invalid and ignored */
	if (xdg && xdg[0] == '/')
		ba_buf_addf(out, "%s/bluearrow/drafts", xdg);
	else if (home && home[0])
		ba_buf_addf(out, "%s/.local/share/bluearrow/drafts", home);
	else
		return ba_err_set(err, EX_CONFIG, "no drafts directory: neither $XDG_DATA_HOME nor "
		                  "$HOME is set");
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (!create)
		return 0;
	if (ba_mkdirs(out->data + before, err) < 0) {
		ba_buf_truncate(out, before);
		return -1;
	}
	return 0;
}

int ba_draft_save_new(char **path_out, const ba_draft *d, const char *dir, struct ba_err *err)
{
	static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
	struct ba_buf dirb = BA_BUF_INIT, data = BA_BUF_INIT, path = BA_BUF_INIT;
	int rc = -1;
	*path_out = NULL;
	if (ba_draft_format(&data, d, err) < 0)
		goto out;
	if (!dir) {
		if (ba_draft_dir(&dirb, 1, err) < 0)
			goto out;
		dir = dirb.data;
	}
	for (int tries = 0; tries < 16; tries++) {
		time_t now = time(NULL);
		struct tm tm;
		unsigned char rnd[8];
		char stamp[32];
		if (!gmtime_r(&now, &tm) || !strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm) ||
		    getentropy(rnd, sizeof(rnd)) < 0) {
			ba_err_set(err, EX_OSERR, "cannot name a new draft: %s", ba_strerror_t(errno));
			goto out;
		}
		ba_buf_reset(&path);
		ba_buf_addf(&path, "%s/%s-", dir, stamp);
		for (size_t i = 0; i < sizeof(rnd); i++)
			ba_buf_addch(&path, b32[rnd[i] & 31]);
		ba_buf_addstr(&path, ".draft");
		if (ba_buf_failed(&path)) {
			ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		int r = write_atomic(path.data, &data, 1, err);
		if (r < 0)
			goto out;
		if (r == 0) {
			*path_out = ba_buf_detach(&path, NULL);
			rc = 0;
			goto out;
		}
	}
	ba_err_set(err, EX_CANTCREAT, "cannot find a free draft name in '%s'", dir);
out:
	ba_buf_release(&dirb);
	ba_buf_release(&data);
	ba_buf_release(&path);
	return rc;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && strcmp(s + n - k, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void ba_draft_list_free(char **paths, size_t n)
{
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

int ba_draft_list(char ***paths, size_t *n, const char *dir, struct ba_err *err)
{
	struct ba_buf dirb = BA_BUF_INIT;
	char **v = NULL;
	size_t k = 0;
	*paths = NULL;
	*n = 0;
	if (!dir) {
		if (ba_draft_dir(&dirb, 0, err) < 0)
			return -1;
		dir = dirb.data;
	}
	DIR *dp = opendir(dir);
	if (!dp) {
		int e = errno;
		int absent = e == ENOENT && dirb.data;
		ba_buf_release(&dirb);
		return absent ? 0 : ba_err_set(err, EX_NOINPUT, "cannot read drafts directory '%s': %s",
		                               dir, ba_strerror_t(e));
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(dp))) {
		if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".draft"))
			continue;
		struct ba_buf p = BA_BUF_INIT;
		ba_buf_addf(&p, "%s/%s", dir, de->d_name);
		char **x = realloc(v, (k + 1) * sizeof(*x));
		if (x)
			v = x;
		if (!x || ba_buf_failed(&p)) {
			ba_buf_release(&p);
			rc = ba_err_set(err, EX_OSERR, "out of memory");
			break;
		}
		v[k++] = ba_buf_detach(&p, NULL);
	}
	closedir(dp);
	ba_buf_release(&dirb);
	if (rc < 0) {
		ba_draft_list_free(v, k);
		return -1;
	}
	if (k)
		qsort(v, k, sizeof(*v), cmp_str);
	*paths = v;
	*n = k;
	return 0;
}

int ba_draft_delete(const char *path, struct ba_err *err)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!has_suffix(base, ".draft"))
		return ba_err_set(err, EX_USAGE, "'%s' is not a draft (its name does not end in "
		                  "'.draft')", path);
	if (unlink(path) < 0)
		return ba_err_set(err, errno == ENOENT ? EX_NOINPUT : EX_IOERR,
		                  "cannot delete draft '%s': %s", path, ba_strerror_t(errno));
	char *dir = dir_of(path);
	if (!dir)
		return ba_err_set(err, EX_OSERR, "out of memory");
	int rc = fsync_dir(dir, err);
	free(dir);
	return rc;
}
