/* addr.c - RFC 5322 §3.4 address lists, rendering, IDN A-labels
 *
 * The parser is a recursive descent over the field body.  An address starts
 * with words whose role is known only from what follows them: ':' makes
 * them a group's display-name, '<' a mailbox's display-name, '@' a local
 * part.  So the words are read first, as tokens, and interpreted afterwards.
 * Obsolete syntax of RFC 5322 §4.4 is tolerated: CFWS around the dots of
 * local parts and domains (obs-local-part, obs-domain), dots in phrases
 * (obs-phrase), obs-route, empty list elements (obs-addr-list).
 */
#include "bluearrow/addr.h"

#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/encode.h"

#define FOLD_COL 78
#define ERR_INPUT_MAX 120

/* ---- list ----------------------------------------------------------------- */

void ba_addr_list_init(struct ba_addr_list *l)
{
	l->v = NULL;
	l->n = l->alloc = 0;
}

void ba_addr_release(struct ba_addr *a)
{
	if (!a)
		return;
	free(a->display);
	free(a->local);
	free(a->domain);
	free(a->group);
	a->display = a->local = a->domain = a->group = NULL;
}

void ba_addr_list_release(struct ba_addr_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		ba_addr_release(&l->v[i]);
	free(l->v);
	ba_addr_list_init(l);
}

static int dup_opt(char **dst, const char *s)
{
	*dst = NULL;
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : -1;
}

int ba_addr_list_append(struct ba_addr_list *l, const char *display, const char *local,
                        const char *domain, const char *group, struct ba_err *err)
{
	if (l->n == l->alloc) {
		size_t na = l->alloc ? 2 * l->alloc : 8;
		struct ba_addr *v = realloc(l->v, na * sizeof *v);
		if (!v)
			return ba_err_set(err, EX_OSERR, "out of memory");
		l->v = v;
		l->alloc = na;
	}
	struct ba_addr a = { NULL, NULL, NULL, NULL };
	if (display && !*display)
		display = NULL;
	if (dup_opt(&a.display, display) < 0 || dup_opt(&a.local, local) < 0 ||
	    dup_opt(&a.domain, domain) < 0 || dup_opt(&a.group, group) < 0) {
		ba_addr_release(&a);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	l->v[l->n++] = a;
	return 0;
}

/* ---- lexical -------------------------------------------------------------- */

/* atext (RFC 5322 §3.2.3) plus UTF-8 (RFC 6532 §3.2) */
static int is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-/=?^_`{|}~", c)) || c >= 0x80;
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

enum tok_type { T_ATOM, T_QSTRING, T_DOT };

struct tok {
	enum tok_type type;
	int ws_before;    /* CFWS came before this token */
	size_t off, len;  /* text in the parser's scratch buffer */
	size_t pos;       /* offset in the input, for errors */
	size_t gap;       /* offset of the CFWS before it, which ends at pos */
	int gap_comment;  /* that CFWS held a comment */
};

struct parser {
	const char *s;
	size_t n, i;
	unsigned flags;
	struct ba_err *err;
	struct ba_buf text;  /* scratch: token texts */
	struct tok *toks;
	size_t ntoks, atoks;
	struct ba_buf comment; /* content of the last top-level comment seen */
	int have_comment;
	unsigned ncomments;
};

/* Sets the error "invalid address '<input>' at column N: why" and returns -1. */
static int perr(struct parser *p, size_t pos, const char *why)
{
	char shown[ERR_INPUT_MAX + 4];
	size_t k = 0;
	for (size_t j = 0; j < p->n && k < ERR_INPUT_MAX; j++) {
		unsigned char c = (unsigned char)p->s[j];
		shown[k++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	if (p->n > ERR_INPUT_MAX) {
		memcpy(shown + k, "...", 3);
		k += 3;
	}
	shown[k] = '\0';
	return ba_err_set(p->err, EX_DATAERR, "invalid address '%s' at column %zu: %s", shown,
	                  pos + 1, why);
}

static int oom(struct parser *p)
{
	return ba_err_set(p->err, EX_OSERR, "out of memory");
}

static int peek(const struct parser *p)
{
	return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

/*
 * FWS (RFC 5322 §3.2.2): WSP and line breaks followed by WSP.  Returns 1 if
 * something was skipped.  A line break not followed by WSP ends the input
 * as far as the grammar goes: it is reported as unexpected by the caller.
 */
static int skip_fws(struct parser *p)
{
	size_t start = p->i;
	for (;;) {
		if (p->i < p->n && is_wsp(p->s[p->i])) {
			p->i++;
		} else if (p->i + 1 < p->n && p->s[p->i] == '\n' && is_wsp(p->s[p->i + 1])) {
			p->i++;
		} else if (p->i + 2 < p->n && p->s[p->i] == '\r' && p->s[p->i + 1] == '\n' &&
		           is_wsp(p->s[p->i + 2])) {
			p->i += 2;
		} else {
			break;
		}
	}
	return p->i > start;
}

/* A quoted-pair's second character or a ctext/qtext character: no NUL, CR, LF. */
static int bad_char(unsigned char c)
{
	return c == 0 || c == '\r' || c == '\n';
}

/* comment (RFC 5322 §3.2.2), nested; content kept in p->comment when depth 0 */
static int skip_comment(struct parser *p)
{
	size_t start = p->i;
	int depth = 0;
	ba_buf_reset(&p->comment);
	do {
		if (p->i >= p->n)
			return perr(p, start, "unterminated comment");
		unsigned char c = (unsigned char)p->s[p->i];
		if (c == '\\') {
			if (p->i + 1 >= p->n || bad_char((unsigned char)p->s[p->i + 1]))
				return perr(p, p->i, "bad quoted-pair in comment");
			ba_buf_addch(&p->comment, p->s[p->i + 1]);
			p->i += 2;
			continue;
		}
		if (c == '(') {
			if (depth++ > 0)
				ba_buf_addch(&p->comment, '(');
			p->i++;
			continue;
		}
		if (c == ')') {
			if (--depth > 0)
				ba_buf_addch(&p->comment, ')');
			p->i++;
			continue;
		}
		if (skip_fws(p)) {
			ba_buf_addch(&p->comment, ' ');
			continue;
		}
		if (bad_char(c))
			return perr(p, p->i, "line break in comment");
		ba_buf_addch(&p->comment, (char)c);
		p->i++;
	} while (depth > 0);
	if (ba_buf_failed(&p->comment))
		return oom(p);
	p->have_comment = 1;
	p->ncomments++;
	return 0;
}

/* CFWS: returns 1 if something was skipped, 0 if not, -1 on error */
static int skip_cfws(struct parser *p)
{
	size_t start = p->i;
	for (;;) {
		skip_fws(p);
		if (peek(p) != '(')
			break;
		if (skip_comment(p) < 0)
			return -1;
	}
	return p->i > start;
}

/* quoted-string (RFC 5322 §3.2.4): appends the content, unquoted, to p->text */
static int read_qstring(struct parser *p)
{
	size_t start = p->i++;
	for (;;) {
		if (p->i >= p->n)
			return perr(p, start, "unterminated quoted string");
		unsigned char c = (unsigned char)p->s[p->i];
		if (c == '"') {
			p->i++;
			break;
		}
		if (c == '\\') {
			/* obs-qp allows controls; NUL, CR and LF are never taken */
			if (p->i + 1 >= p->n || bad_char((unsigned char)p->s[p->i + 1]))
				return perr(p, p->i, "bad quoted-pair in quoted string");
			ba_buf_addch(&p->text, p->s[p->i + 1]);
			p->i += 2;
			continue;
		}
		size_t before = p->i;
		if (skip_fws(p)) {
			/* unfolding: the line break goes, the WSP stays (§3.2.4) */
			for (size_t j = before; j < p->i; j++)
				if (is_wsp(p->s[j]))
					ba_buf_addch(&p->text, p->s[j]);
			continue;
		}
		if (bad_char(c))
			return perr(p, p->i, "line break in quoted string");
		ba_buf_addch(&p->text, (char)c);
		p->i++;
	}
	return ba_buf_failed(&p->text) ? oom(p) : 0;
}

static int push_tok(struct parser *p, enum tok_type t, int ws, size_t off, size_t pos,
                    size_t gap, int gap_comment)
{
	if (p->ntoks == p->atoks) {
		size_t na = p->atoks ? 2 * p->atoks : 16;
		struct tok *v = realloc(p->toks, na * sizeof *v);
		if (!v)
			return oom(p);
		p->toks = v;
		p->atoks = na;
	}
	p->toks[p->ntoks++] = (struct tok){ t, ws, off, p->text.len - off, pos, gap, gap_comment };
	p->have_comment = 0; /* only a comment after the last word counts as trailing */
	return 0;
}

/*
 * Reads words (atoms, quoted-strings) and dots with the CFWS between them
 * into p->toks, stopping before any other character.  The comment seen last
 * stays in p->comment.
 */
static int read_words(struct parser *p)
{
	p->ntoks = 0;
	ba_buf_reset(&p->text);
	for (;;) {
		size_t gap = p->i;
		unsigned nc = p->ncomments;
		int ws = skip_cfws(p);
		if (ws < 0)
			return -1;
		int gc = nc != p->ncomments;
		int c = peek(p);
		size_t off = p->text.len, pos = p->i;
		if (c == '"') {
			if (read_qstring(p) < 0 || push_tok(p, T_QSTRING, ws, off, pos, gap, gc) < 0)
				return -1;
		} else if (c == '.') {
			p->i++;
			if (ba_buf_addch(&p->text, '.') < 0)
				return oom(p);
			if (push_tok(p, T_DOT, ws, off, pos, gap, gc) < 0)
				return -1;
		} else if (c >= 0 && is_atext((unsigned char)c)) {
			while (p->i < p->n && is_atext((unsigned char)p->s[p->i]))
				p->i++;
			if (ba_buf_add(&p->text, p->s + pos, p->i - pos) < 0)
				return oom(p);
			if (push_tok(p, T_ATOM, ws, off, pos, gap, gc) < 0)
				return -1;
		} else {
			return 0;
		}
	}
}

/* ---- interpreting words ----------------------------------------------------- */

/* Makes s valid UTF-8 without controls: bad bytes become U+FFFD, controls a space. */
static int clean_text(struct ba_buf *out, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t bad;
		if (ba_utf8_valid(s + i, n - i, &bad))
			bad = n - i;
		for (size_t j = i; j < i + bad; j++) {
			unsigned char c = (unsigned char)s[j];
			ba_buf_addch(out, c < 0x20 || c == 0x7f ? ' ' : (char)c);
		}
		i += bad;
		if (i < n) {
			ba_buf_addstr(out, "\xef\xbf\xbd");
			i++;
		}
	}
	return ba_buf_failed(out) ? -1 : 0;
}

/*
 * The phrase of tokens [from, to) as UTF-8 text: words separated by one space
 * where CFWS separated them, runs of atoms RFC 2047-decoded (§6.2: white
 * space between encoded-words vanishes), quoted-strings taken literally.
 * Returns a malloc'd string, NULL for an empty phrase (*ok = 1), or NULL
 * with *ok = 0 on error.
 */
static char *phrase_text(struct parser *p, size_t from, size_t to, int *ok)
{
	struct ba_buf out = BA_BUF_INIT, run = BA_BUF_INIT, dec = BA_BUF_INIT;
	*ok = 0;
	for (size_t k = from; k <= to; k++) {
		const struct tok *t = k < to ? &p->toks[k] : NULL;
		if (!t || t->type == T_QSTRING) {
			if (run.len) {
				ba_buf_reset(&dec);
				if (ba_rfc2047_decode(&dec, run.data, run.len, NULL) < 0) {
					/* unknown charset: keep the words as they are */
					ba_buf_reset(&dec);
					ba_buf_add(&dec, run.data, run.len);
				}
				clean_text(&out, dec.data ? dec.data : "", dec.len);
				ba_buf_reset(&run);
			}
			if (!t)
				break;
			if (t->ws_before && out.len)
				ba_buf_addch(&out, ' ');
			clean_text(&out, ba_buf_str(&p->text) + t->off, t->len); /* data may be NULL */
			continue;
		}
		if (t->ws_before && run.len && !t->gap_comment) {
			/* white space inside a run of atoms is kept as it is (unfolded), so
			 * that what ba_rfc2047_encode() wrote decodes to the same text */
			for (size_t j = t->gap; j < t->pos; j++)
				if (is_wsp(p->s[j]))
					ba_buf_addch(&run, p->s[j]);
		} else if (t->ws_before && (run.len || out.len)) {
			ba_buf_addch(run.len ? &run : &out, ' ');
		}
		ba_buf_add(&run, ba_buf_str(&p->text) + t->off, t->len);
	}
	ba_buf_release(&run);
	ba_buf_release(&dec);
	if (ba_buf_failed(&out)) {
		ba_buf_release(&out);
		oom(p);
		return NULL;
	}
	*ok = 1;
	if (!out.len) {
		ba_buf_release(&out);
		return NULL;
	}
	return ba_buf_detach(&out, NULL);
}

/* Joins tokens [from, to) as a local part or domain: word *("." word). */
static char *dotted_text(struct parser *p, size_t from, size_t to, const char *what)
{
	struct ba_buf out = BA_BUF_INIT;
	char why[64];
	int want_word = 1;
	for (size_t k = from; k < to; k++) {
		const struct tok *t = &p->toks[k];
		if ((t->type == T_DOT) == want_word) {
			snprintf(why, sizeof why, want_word ? "unexpected '.' in %s" :
			         "missing '.' between words of %s", what);
			perr(p, t->pos, why);
			ba_buf_release(&out);
			return NULL;
		}
		want_word = !want_word;
		if (t->type == T_DOT)
			ba_buf_addch(&out, '.');
		else
			ba_buf_add(&out, ba_buf_str(&p->text) + t->off, t->len);
	}
	if (want_word && to > from) {
		snprintf(why, sizeof why, "%s ends with '.'", what);
		perr(p, p->toks[to - 1].pos, why);
		ba_buf_release(&out);
		return NULL;
	}
	if (ba_buf_failed(&out)) {
		ba_buf_release(&out);
		oom(p);
		return NULL;
	}
	char *s = ba_buf_detach(&out, NULL);
	if (!s)
		oom(p);
	return s;
}

/* A local part or domain must be UTF-8 without controls. */
static int check_text(struct parser *p, const char *s, size_t pos, const char *what)
{
	char why[64];
	size_t n = strlen(s);
	if (!ba_utf8_valid(s, n, NULL)) {
		snprintf(why, sizeof why, "%s is not valid UTF-8", what);
		return perr(p, pos, why);
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(why, sizeof why, "control character in %s", what);
			return perr(p, pos, why);
		}
	return 0;
}

/* ---- grammar ---------------------------------------------------------------- */

static int unexpected(struct parser *p, const char *where)
{
	char why[80];
	int c = peek(p);
	if (c == '\r' || c == '\n')
		snprintf(why, sizeof why, "line break %s", where);
	else if (c < 0x20 || c == 0x7f)
		snprintf(why, sizeof why, "control character %s", where);
	else
		snprintf(why, sizeof why, "unexpected '%c' %s", c, where);
	return perr(p, p->i, why);
}

/* domain-literal (RFC 5322 §3.4.1), stored with its brackets, FWS dropped */
static int read_literal(struct parser *p, char **out)
{
	struct ba_buf b = BA_BUF_INIT;
	size_t start = p->i++;
	ba_buf_addch(&b, '[');
	for (;;) {
		skip_fws(p);
		if (p->i >= p->n) {
			ba_buf_release(&b);
			return perr(p, start, "unterminated domain literal");
		}
		unsigned char c = (unsigned char)p->s[p->i];
		if (c == ']')
			break;
		if (c == '[' || c < 0x21 || c == 0x7f || c == '\\') {
			/* obs-dtext quoted-pairs are not taken: nothing needs them */
			ba_buf_release(&b);
			return unexpected(p, "in domain literal");
		}
		ba_buf_addch(&b, (char)c);
		p->i++;
	}
	p->i++;
	ba_buf_addch(&b, ']');
	if (ba_buf_failed(&b) || !(*out = ba_buf_detach(&b, NULL))) {
		ba_buf_release(&b);
		return oom(p);
	}
	return 0;
}

/* domain after the '@' (dot-atom, obs-domain or literal) and the CFWS after it */
static int read_domain(struct parser *p, char **out)
{
	*out = NULL;
	if (skip_cfws(p) < 0)
		return -1;
	p->have_comment = 0;
	size_t pos = p->i;
	if (peek(p) == '[') {
		if (read_literal(p, out) < 0)
			return -1;
		if (skip_cfws(p) < 0)
			goto fail;
	} else {
		if (read_words(p) < 0)
			return -1;
		if (!p->ntoks)
			return perr(p, p->i, "missing domain");
		for (size_t k = 0; k < p->ntoks; k++)
			if (p->toks[k].type == T_QSTRING)
				return perr(p, p->toks[k].pos, "quoted string in domain");
		if (!(*out = dotted_text(p, 0, p->ntoks, "domain")))
			return -1;
	}
	if (check_text(p, *out, pos, "domain") < 0)
		goto fail;
	return 0;
fail:
	free(*out);
	*out = NULL;
	return -1;
}

/* local part from the tokens read, then '@' domain */
static int read_spec(struct parser *p, struct ba_addr *a)
{
	size_t pos = p->ntoks ? p->toks[0].pos : p->i;
	if (peek(p) != '@') {
		if (!p->ntoks)
			return p->i < p->n ? unexpected(p, "in address") : perr(p, p->i, "empty address");
		int c = peek(p);
		if (c >= 0 && c != ',' && c != ';' && c != '>')
			return unexpected(p, "in address");
		return perr(p, p->i, "missing '@domain'");
	}
	if (!p->ntoks)
		return perr(p, p->i, "missing local part");
	if (!(a->local = dotted_text(p, 0, p->ntoks, "local part")))
		return -1;
	if (!*a->local)
		return perr(p, pos, "empty local part");
	if (check_text(p, a->local, pos, "local part") < 0)
		return -1;
	p->i++;
	return read_domain(p, &a->domain);
}

/* angle-addr (RFC 5322 §3.4) with obs-route (§4.4); p->i is at '<' */
static int read_angle(struct parser *p, struct ba_addr *a)
{
	size_t start = p->i++;
	if (skip_cfws(p) < 0)
		return -1;
	if (peek(p) == '@') {
		/* obs-route: a source route, read and ignored (RFC 5321 §C) */
		for (;;) {
			char *d = NULL;
			p->i++;
			if (read_domain(p, &d) < 0)
				return -1;
			free(d);
			while (peek(p) == ',') {
				p->i++;
				if (skip_cfws(p) < 0)
					return -1;
			}
			if (peek(p) == '@')
				continue;
			if (peek(p) != ':')
				return unexpected(p, "in route");
			p->i++;
			break;
		}
	}
	if (read_words(p) < 0)
		return -1;
	if (!p->ntoks && peek(p) == '>')
		return perr(p, p->i, "empty address");
	if (read_spec(p, a) < 0)
		return -1;
	if (peek(p) != '>')
		return p->i < p->n ? unexpected(p, "in angle address") :
		                     perr(p, start, "missing '>'");
	p->i++;
	return skip_cfws(p) < 0 ? -1 : 0;
}

/* display name from a trailing comment: "a@b (Name)", the old style */
static char *comment_name(struct parser *p)
{
	struct ba_buf dec = BA_BUF_INIT, out = BA_BUF_INIT;
	if (ba_rfc2047_decode(&dec, p->comment.data ? p->comment.data : "", p->comment.len,
	                      NULL) < 0) {
		ba_buf_reset(&dec);
		ba_buf_add(&dec, p->comment.data, p->comment.len);
	}
	clean_text(&out, dec.data ? dec.data : "", dec.len);
	ba_buf_release(&dec);
	if (!out.len || ba_buf_failed(&out)) {
		ba_buf_release(&out);
		return NULL;
	}
	return ba_buf_detach(&out, NULL);
}

/*
 * One mailbox, or (when group is NULL) a group.  On return p->i is after
 * the address and its CFWS.
 */
static int read_address(struct parser *p, struct ba_addr_list *out, const char *group)
{
	struct ba_addr a = { NULL, NULL, NULL, NULL };
	int ok, rc = -1;
	if (read_words(p) < 0)
		return -1;
	int c = peek(p);
	if (c == ':') {
		if (group)
			return perr(p, p->i, "group inside a group");
		if (!p->ntoks)
			return perr(p, p->i, "missing group name");
		char *name = phrase_text(p, 0, p->ntoks, &ok);
		if (!ok)
			return -1;
		if (!name)
			return perr(p, p->i, "missing group name");
		p->i++;
		size_t before = out->n;
		for (;;) {
			if (skip_cfws(p) < 0)
				goto group_done;
			c = peek(p);
			if (c == ';' || c < 0) { /* a missing ';' at the end is tolerated */
				p->i += c == ';';
				break;
			}
			if (c == ',') {
				p->i++;
				continue;
			}
			if (read_address(p, out, name) < 0)
				goto group_done;
			c = peek(p);
			if (c != ',' && c != ';' && c >= 0) {
				unexpected(p, "after address");
				goto group_done;
			}
		}
		if (out->n == before && (p->flags & BA_ADDR_EMPTY_GROUPS) &&
		    ba_addr_list_append(out, NULL, NULL, NULL, name, p->err) < 0)
			goto group_done;
		rc = skip_cfws(p) < 0 ? -1 : 0;
group_done:
		free(name);
		return rc;
	}
	if (c == '<') {
		a.display = phrase_text(p, 0, p->ntoks, &ok);
		if (!ok || read_angle(p, &a) < 0)
			goto done;
	} else {
		if (read_spec(p, &a) < 0)
			goto done;
		if (p->have_comment)
			a.display = comment_name(p);
	}
	rc = ba_addr_list_append(out, a.display, a.local, a.domain, group, p->err);
done:
	ba_addr_release(&a);
	return rc;
}

static int parse_list(struct ba_addr_list *out, const char *s, size_t n, unsigned flags,
                      struct ba_err *err)
{
	struct parser p = { s, n, 0, flags, err, BA_BUF_INIT, NULL, 0, 0, BA_BUF_INIT, 0, 0 };
	size_t before = out->n;
	int rc = 0;
	for (;;) {
		if ((rc = skip_cfws(&p)) < 0)
			break;
		rc = 0;
		int c = peek(&p);
		if (c < 0)
			break;
		if (c == ',') { /* obs-addr-list: empty elements */
			p.i++;
			continue;
		}
		if ((rc = read_address(&p, out, NULL)) < 0)
			break;
		c = peek(&p);
		if (c >= 0 && c != ',') {
			rc = unexpected(&p, "after address");
			break;
		}
	}
	if (rc < 0)
		while (out->n > before)
			ba_addr_release(&out->v[--out->n]);
	ba_buf_release(&p.text);
	ba_buf_release(&p.comment);
	free(p.toks);
	return rc;
}

int ba_addr_list_parse(struct ba_addr_list *out, const char *s, size_t n, unsigned flags,
                       struct ba_err *err)
{
	return parse_list(out, s, n, flags, err);
}

int ba_addr_parse_mailbox(struct ba_addr *out, const char *s, size_t n, unsigned flags,
                          struct ba_err *err)
{
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	memset(out, 0, sizeof *out);
	if (parse_list(&l, s, n, flags & ~(unsigned)BA_ADDR_EMPTY_GROUPS, err) < 0) {
		ba_addr_list_release(&l);
		return -1;
	}
	int rc = 0;
	if (l.n != 1 || l.v[0].group) {
		char shown[ERR_INPUT_MAX + 1];
		size_t k = n < ERR_INPUT_MAX ? n : ERR_INPUT_MAX;
		for (size_t j = 0; j < k; j++)
			shown[j] = ((unsigned char)s[j] < 0x20 || s[j] == 0x7f) ? ' ' : s[j];
		shown[k] = '\0';
		rc = ba_err_set(err, EX_DATAERR, "invalid address '%s': %s", shown,
		                l.n == 0 ? "no address" :
		                l.v[0].group ? "a group where one mailbox is needed" :
		                "more than one address where one is needed");
	} else {
		*out = l.v[0];
		l.n = 0;
	}
	ba_addr_list_release(&l);
	return rc;
}

/* ---- envelope check ----------------------------------------------------------- */

int ba_addr_spec_valid(const char *addr)
{
	if (!addr || !*addr)
		return 0;
	size_t n = strlen(addr), i = 0;
	if (!ba_utf8_valid(addr, n, NULL))
		return 0;
	for (size_t j = 0; j < n; j++) {
		unsigned char c = (unsigned char)addr[j];
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return 0;
	}
	if (addr[0] == '"') {
		/* a quoted local part may hold '@' (RFC 5321 §4.1.2 Quoted-string) */
		for (i = 1; i < n && addr[i] != '"'; i++)
			if (addr[i] == '\\')
				i++;
		if (i >= n)
			return 0;
		i++;
		if (i == 2 || addr[i] != '@')
			return 0;
	} else {
		const char *at = strchr(addr, '@');
		if (!at || at == addr)
			return 0;
		i = (size_t)(at - addr);
	}
	/* exactly one '@' outside the quotes, and a non-empty domain */
	return addr[i + 1] && !strchr(addr + i + 1, '@') && !strchr(addr + i + 1, '"');
}

/* ---- rendering -------------------------------------------------------------- */

static int is_dot_atom(const char *s)
{
	size_t n = strlen(s);
	if (!n || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(is_atext((unsigned char)s[i]) || (s[i] == '.' && s[i + 1] != '.')))
			return 0;
	return 1;
}

static int is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

#define IDN_FLAGS (IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT)
#define LABEL_MAX 63
#define DOMAIN_MAX 253

/*
 * Checks an A-label (RFC 5890 §2.3.2.1: "xn--" and the Punycode of a valid
 * U-label): lab[0..n) lowercased must decode and encode back to itself.
 * Returns 0, or an idn2 error code (IDN2_OK never), or 1 when the round
 * trip gives another label (not the canonical form of a valid U-label).
 */
static int check_a_label(const char *lab, size_t n)
{
	char low[LABEL_MAX + 1];
	for (size_t i = 0; i < n; i++)
		low[i] = (char)(lab[i] >= 'A' && lab[i] <= 'Z' ? lab[i] + 32 : lab[i]);
	low[n] = '\0';
	char *u = NULL, *back = NULL;
	int rc = idn2_to_unicode_8z8z(low, &u, 0);
	if (rc == IDN2_OK)
		rc = idn2_to_ascii_8z(u, &back, IDN_FLAGS);
	if (rc == IDN2_OK && strcmp(back, low) != 0)
		rc = 1;
	idn2_free(u);
	idn2_free(back);
	return rc;
}

/*
 * Checks the ASCII form of a domain (RFC 5321 §4.1.2 sub-domain = Let-dig
 * [Ldh-str], RFC 1035 §2.3.4 lengths: labels of 1..63 octets, 253 octets in
 * all without a root dot) and its A-labels.  Errors name the domain as the
 * caller gave it (name).
 */
static int check_ascii_domain(const char *d, const char *name, struct ba_err *err)
{
	size_t n = strlen(d);
	if (n == 0)
		return ba_err_set(err, EX_DATAERR, "invalid domain '%s': empty", name);
	if (n > DOMAIN_MAX)
		return ba_err_set(err, EX_DATAERR, "invalid domain '%s': longer than %d octets",
		                  name, DOMAIN_MAX);
	for (const char *lab = d;;) {
		size_t len = strcspn(lab, ".");
		if (len == 0)
			return ba_err_set(err, EX_DATAERR, "invalid domain '%s': empty label", name);
		if (len > LABEL_MAX)
			return ba_err_set(err, EX_DATAERR,
			                  "invalid domain '%s': label longer than %d octets", name,
			                  LABEL_MAX);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)lab[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-'))
				return ba_err_set(err, EX_DATAERR,
				                  "invalid domain '%s': character 0x%02x in label '%.*s'",
				                  name, c, (int)len, lab);
		}
		if (lab[0] == '-' || lab[len - 1] == '-')
			return ba_err_set(err, EX_DATAERR,
			                  "invalid domain '%s': label '%.*s' begins or ends with '-'",
			                  name, (int)len, lab);
		if (len >= 4 && (lab[0] | 0x20) == 'x' && (lab[1] | 0x20) == 'n' && lab[2] == '-' &&
		    lab[3] == '-') {
			int rc = check_a_label(lab, len);
			if (rc != 0)
				return ba_err_set(err, EX_DATAERR,
				                  "invalid domain '%s': label '%.*s' is not a valid A-label%s%s",
				                  name, (int)len, lab, rc == 1 ? "" : ": ",
				                  rc == 1 ? "" : idn2_strerror(rc));
		}
		if (!lab[len])
			return 0;
		lab += len + 1;
	}
}

int ba_addr_domain_to_ascii(struct ba_buf *out, const char *domain, struct ba_err *err)
{
	/* a domain literal is left to the parser that made it (RFC 5321 §4.1.3) */
	if (domain[0] == '[') {
		if (ba_buf_addstr(out, domain) < 0)
			return ba_err_set(err, EX_OSERR, "out of memory");
		return 0;
	}
	char *ascii = NULL;
	if (!is_ascii(domain)) {
		/* IDNA2008 (RFC 5891) with the UTS #46 mapping, non-transitional */
		int rc = idn2_to_ascii_8z(domain, &ascii, IDN_FLAGS);
		if (rc != IDN2_OK)
			return ba_err_set(err, EX_DATAERR, "invalid domain '%s': %s", domain,
			                  idn2_strerror(rc));
	}
	/* ASCII labels pass libidn2 unchecked ("a..b", "ex ample"): check the
	 * result whatever its origin */
	int rc = check_ascii_domain(ascii ? ascii : domain, domain, err);
	if (rc == 0 && ba_buf_addstr(out, ascii ? ascii : domain) < 0)
		rc = ba_err_set(err, EX_OSERR, "out of memory");
	idn2_free(ascii);
	return rc;
}

/* 1 if s holds a C0 control or DEL */
static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

int ba_addr_spec_format(struct ba_buf *out, const struct ba_addr *a, unsigned flags,
                        struct ba_err *err)
{
	if (!a->local || !a->domain)
		BA_BUG("ba_addr_spec_format of an empty group");
	/* entries made by ba_addr_list_append() are not checked: never let a
	 * control (CR, LF: header or SMTP command injection) reach the output */
	if (has_control(a->local) || has_control(a->domain))
		return ba_err_set(err, EX_DATAERR, "control character in the %s of an address",
		                  has_control(a->local) ? "local part" : "domain");
	if ((flags & BA_ADDR_ASCII) && !is_ascii(a->local))
		/* RFC 6531 §3.2: only SMTPUTF8 carries a UTF-8 local part */
		return ba_err_set(err, EX_DATAERR,
		                  "local part of '%s@%s' is not ASCII and the server lacks SMTPUTF8",
		                  a->local, a->domain);
	size_t start = out->len;
	if (is_dot_atom(a->local)) {
		ba_buf_addstr(out, a->local);
	} else {
		/* quoted-string (RFC 5322 §3.2.4) */
		ba_buf_addch(out, '"');
		for (const char *s = a->local; *s; s++) {
			if (*s == '"' || *s == '\\')
				ba_buf_addch(out, '\\');
			ba_buf_addch(out, *s);
		}
		ba_buf_addch(out, '"');
	}
	ba_buf_addch(out, '@');
	if (flags & BA_ADDR_ASCII) {
		if (ba_addr_domain_to_ascii(out, a->domain, err) < 0) {
			ba_buf_truncate(out, start);
			return -1;
		}
	} else {
		ba_buf_addstr(out, a->domain);
	}
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

/* the length of the first line of s[0..n) (up to the first line break) */
static size_t first_line(const char *s, size_t n)
{
	const char *nl = memchr(s, '\n', n);
	size_t k = nl ? (size_t)(nl - s) : n;
	if (k && s[k - 1] == '\r')
		k--;
	return k;
}

/* display name or group name as a phrase (atoms, quoted-string or RFC 2047) */
static int put_phrase(struct ba_buf *out, const char *text, size_t *col, const char *eol,
                      struct ba_err *err)
{
	return ba_rfc2047_encode(out, text, strlen(text), col, eol, BA_RFC2047_PHRASE, err);
}

/* as ba_addr_format(), keeping room for tail characters after the address */
static int format_one(struct ba_buf *out, const struct ba_addr *a, size_t *col, const char *eol,
                      unsigned flags, size_t tail, struct ba_err *err)
{
	struct ba_buf spec = BA_BUF_INIT;
	size_t start = out->len, c = *col;
	int rc = -1;
	if (ba_addr_spec_format(&spec, a, flags, err) < 0)
		goto done;
	if (a->display) {
		if (put_phrase(out, a->display, &c, eol, err) < 0)
			goto done;
		/* CFWS before the angle-addr is where a fold may go (RFC 5322 §3.4) */
		if (c + 2 + spec.len + 1 + tail > FOLD_COL) {
			ba_buf_addstr(out, eol);
			c = 0;
		}
		ba_buf_addstr(out, " <");
		ba_buf_add(out, spec.data, spec.len);
		ba_buf_addch(out, '>');
		c += spec.len + 3;
	} else {
		ba_buf_add(out, spec.data, spec.len);
		c += spec.len;
	}
	if (ba_buf_failed(out)) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto done;
	}
	*col = c;
	rc = 0;
done:
	if (rc < 0)
		ba_buf_truncate(out, start);
	ba_buf_release(&spec);
	return rc;
}

int ba_addr_format(struct ba_buf *out, const struct ba_addr *a, size_t *col, const char *eol,
                   unsigned flags, struct ba_err *err)
{
	return format_one(out, a, col, eol, flags, 0, err);
}

/*
 * Appends sep ("," or "") and then the mailbox or group name; with lead
 * after a space or, when the first line would pass 78, after a fold.
 */
static int put_item(struct ba_buf *out, size_t *col, const char *eol, const char *sep,
                    int lead, const struct ba_addr *a, const char *group_name, unsigned flags,
                    struct ba_err *err)
{
	struct ba_buf tmp = BA_BUF_INIT;
	int rc = -1;
	ba_buf_addstr(out, sep);
	*col += strlen(sep);
	for (int pass = 0; pass < 2; pass++) {
		size_t c = *col + (size_t)lead;
		ba_buf_reset(&tmp);
		if (pass == 1)
			c = 1;
		/* room for what may follow: ",", ":", or ";," after a group's last member */
		int r = a ? format_one(&tmp, a, &c, eol, flags, 2, err) :
		            put_phrase(&tmp, group_name, &c, eol, err);
		if (r < 0)
			goto done;
		size_t fl = first_line(tmp.data ? tmp.data : "", tmp.len);
		if (pass == 0 && lead && *col > 1 && *col + (size_t)lead + fl + 2 > FOLD_COL)
			continue;
		if (pass == 1) {
			ba_buf_addstr(out, eol);
			ba_buf_addch(out, ' ');
		} else if (lead) {
			ba_buf_addch(out, ' ');
		}
		ba_buf_add(out, tmp.data, tmp.len);
		*col = c;
		break;
	}
	rc = ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
done:
	ba_buf_release(&tmp);
	return rc;
}

static int same_group(const struct ba_addr *a, const struct ba_addr *b)
{
	return a->group && b->group && a->local && b->local && !strcmp(a->group, b->group);
}

int ba_addr_list_format(struct ba_buf *out, const struct ba_addr_list *l, size_t *col,
                        const char *eol, unsigned flags, struct ba_err *err)
{
	size_t start = out->len, c = *col;
	for (size_t i = 0; i < l->n; i++) {
		const struct ba_addr *a = &l->v[i];
		const char *sep = i ? "," : "";
		if (!a->group) {
			if (put_item(out, &c, eol, sep, i > 0, a, NULL, flags, err) < 0)
				goto fail;
			continue;
		}
		/* group: "name:" members ";" (RFC 5322 §3.4) */
		if (put_item(out, &c, eol, sep, i > 0, NULL, a->group, flags, err) < 0)
			goto fail;
		ba_buf_addch(out, ':');
		c++;
		if (a->local) {
			const char *msep = "";
			for (;; i++) {
				/* the first member follows ": " */
				if (put_item(out, &c, eol, msep, 1, &l->v[i], NULL, flags, err) < 0)
					goto fail;
				msep = ",";
				if (i + 1 >= l->n || !same_group(&l->v[i], &l->v[i + 1]))
					break;
			}
		}
		ba_buf_addch(out, ';');
		c++;
	}
	if (ba_buf_failed(out)) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto fail;
	}
	*col = c;
	return 0;
fail:
	ba_buf_truncate(out, start);
	return -1;
}
