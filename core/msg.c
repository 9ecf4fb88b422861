/* msg.c - build an RFC 5322 message: header fields from options, the MIME body streamed after */
#include "bluearrow/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/addr.h"
#include "bluearrow/encode.h"

/* RFC 5322 §2.1.1 */
#define FOLD_COL 78
#define LINE_MAX_OCTETS 998
/* a message identifier longer than this cannot be folded into a legal line */
#define MSGID_MAX 900

struct field {
	char *name, *value;
};

struct ba_msg {
	struct addrs *from, *to, *cc, *bcc, *reply_to;
	char *subject;
	struct ba_buf in_reply_to, references; /* "<a@b> <c@d>" */
	struct field *extra;
	size_t nextra;
	ba_mime_part *body;
};


static void addr_list_free(struct addrs *l);

int ba_msg_new(ba_msg **out, struct ba_err *err)
{
	ba_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return ba_err_set(err, EX_OSERR, "out of memory");
	ba_buf_init(&m->in_reply_to, 0);
	ba_buf_init(&m->references, 0);
	*out = m;
	return 0;
}

void ba_msg_free(ba_msg *m)
{
	if (!m)
		return;
	addr_list_free(m->from);
	addr_list_free(m->to);
	addr_list_free(m->cc);
	addr_list_free(m->bcc);
	addr_list_free(m->reply_to);
	free(m->subject);
	ba_buf_release(&m->in_reply_to);
	ba_buf_release(&m->references);
	for (size_t i = 0; i < m->nextra; i++) {
		free(m->extra[i].name);
		free(m->extra[i].value);
	}
	free(m->extra);
	ba_mime_free(m->body);
	free(m);
}

static int check_text(const char *what, const char *s, struct ba_err *err);
static size_t count(const struct addrs *l);

/* ---- addresses ----------------------------------------------------------
 *
 * Parsing and formatting are the addr module's (groups, comments, quoted
 * and RFC 2047 display names, IDN); msg keeps the addr-specs of each field
 * in ASCII form (domains as A-labels) for the envelope.
 */

struct addrs {
	struct ba_addr_list l; /* the field's entries, empty groups included */
	char **spec;           /* addr-specs of the entries that are mailboxes */
	size_t n;
};

static void addr_list_free(struct addrs *l)
{
	if (!l)
		return;
	ba_addr_list_release(&l->l);
	for (size_t i = 0; i < l->n; i++)
		free(l->spec[i]);
	free(l->spec);
	free(l);
}

static int add_list(struct addrs **dst, const char *field, const char *list,
                    struct ba_err *err)
{
	if (!*dst) {
		if (!(*dst = calloc(1, sizeof(**dst))))
			return ba_err_set(err, EX_OSERR, "out of memory");
		ba_addr_list_init(&(*dst)->l);
	}
	struct addrs *a = *dst;
	if (check_text(field, list, err) < 0)
		return -1;
	size_t before = a->l.n;
	if (ba_addr_list_parse(&a->l, list, strlen(list), BA_ADDR_EMPTY_GROUPS, err) < 0)
		return ba_err_prefix(err, "%s: ", field);
	if (a->l.n == before)
		return ba_err_set(err, EX_DATAERR, "%s: '%s': no address", field, list);
	for (size_t i = before; i < a->l.n; i++) {
		if (!a->l.v[i].local)
			continue; /* an empty group ("undisclosed-recipients:;") */
		struct ba_buf b = BA_BUF_INIT;
		if (ba_addr_spec_format(&b, &a->l.v[i], BA_ADDR_ASCII, err) < 0) {
			ba_buf_release(&b);
			return ba_err_prefix(err, "%s: ", field);
		}
		if (b.len > 254) { /* RFC 5321 §4.5.3.1.3: a path is at most 256 octets */
			ba_buf_release(&b);
			return ba_err_set(err, EX_DATAERR, "%s: '%.40s...': address longer than 254 "
			                  "octets", field, list);
		}
		char **v = realloc(a->spec, (a->n + 1) * sizeof(*v));
		if (!v || !(v[a->n] = ba_buf_detach(&b, NULL))) {
			if (v)
				a->spec = v;
			ba_buf_release(&b);
			return ba_err_set(err, EX_OSERR, "out of memory");
		}
		a->spec = v;
		a->n++;
	}
	return 0;
}

static int addr_list_format(struct ba_buf *h, const struct addrs *l, size_t *col,
                            const char *eol, struct ba_err *err)
{
	return ba_addr_list_format(h, &l->l, col, eol, BA_ADDR_ASCII, err);
}

static size_t count(const struct addrs *l)
{
	return l ? l->n : 0;
}

int ba_msg_add_from(ba_msg *m, const char *list, struct ba_err *err)
{
	if (add_list(&m->from, "from", list, err) < 0)
		return -1;
	if (m->from->n != 1 || m->from->l.n != 1 || m->from->l.v[0].group)
		return ba_err_set(err, EX_DATAERR, "from: '%s': exactly one address is needed", list);
	return 0;
}

int ba_msg_add_to(ba_msg *m, const char *list, struct ba_err *err)
{
	return add_list(&m->to, "to", list, err);
}

int ba_msg_add_cc(ba_msg *m, const char *list, struct ba_err *err)
{
	return add_list(&m->cc, "cc", list, err);
}

int ba_msg_add_bcc(ba_msg *m, const char *list, struct ba_err *err)
{
	return add_list(&m->bcc, "bcc", list, err);
}

int ba_msg_add_reply_to(ba_msg *m, const char *list, struct ba_err *err)
{
	return add_list(&m->reply_to, "reply-to", list, err);
}

size_t ba_msg_rcpt_count(const ba_msg *m)
{
	return count(m->to) + count(m->cc) + count(m->bcc);
}

const char *ba_msg_rcpt(const ba_msg *m, size_t i)
{
	const struct addrs *lists[] = { m->to, m->cc, m->bcc };
	for (size_t l = 0; l < 3; l++) {
		if (i < count(lists[l]))
			return lists[l]->spec[i];
		i -= count(lists[l]);
	}
	return NULL;
}

const char *ba_msg_from(const ba_msg *m)
{
	return count(m->from) ? m->from->spec[0] : NULL;
}

/* ---- text fields -------------------------------------------------------- */

/* Refuses invalid UTF-8 and controls other than TAB (CR and LF would inject fields). */
static int check_text(const char *what, const char *s, struct ba_err *err)
{
	size_t n = strlen(s), bad;
	if (!ba_utf8_valid(s, n, &bad))
		return ba_err_set(err, EX_DATAERR, "%s: invalid utf-8 at byte %zu", what, bad);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 32 && c != '\t') || c == 127)
			return ba_err_set(err, EX_DATAERR, "%s: contains %s", what,
			                  c == '\r' ? "a carriage return (CR)"
			                  : c == '\n' ? "a line feed (LF)" : "a control character");
	}
	return 0;
}

int ba_msg_set_subject(ba_msg *m, const char *subject, struct ba_err *err)
{
	if (check_text("subject", subject, err) < 0)
		return -1;
	char *s = strdup(subject);
	if (!s)
		return ba_err_set(err, EX_OSERR, "out of memory");
	free(m->subject);
	m->subject = s;
	return 0;
}

/*
 * msg-id (RFC 5322 §3.6.4), checked strictly enough that what we write is
 * one: "<" id-left "@" id-right ">" of printable ASCII without white space,
 * "<", ">" or a second "@" on the right.
 */
static int check_msgid(const char *s, size_t n)
{
	if (n < 5 || n > MSGID_MAX || s[0] != '<' || s[n - 1] != '>')
		return 0;
	size_t at = 0;
	for (size_t i = 1; i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 32 || c >= 127 || c == '<' || c == '>')
			return 0;
		if (c == '@')
			at = i;
	}
	return at > 1 && at + 2 < n;
}

static int add_ids(struct ba_buf *dst, const char *what, const char *ids, struct ba_err *err)
{
	const char *p = ids;
	int any = 0;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*e && *e != ' ' && *e != '\t')
			e++;
		if (!check_msgid(p, (size_t)(e - p)))
			return ba_err_set(err, EX_DATAERR, "%s: '%.*s' is not a message id like <id@host>",
			                  what, (int)(e - p > 200 ? 200 : e - p), p);
		if (dst->len)
			ba_buf_addch(dst, ' ');
		ba_buf_add(dst, p, (size_t)(e - p));
		any = 1;
		p = e;
	}
	if (!any)
		return ba_err_set(err, EX_DATAERR, "%s: no message id given", what);
	if (ba_buf_failed(dst))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

int ba_msg_set_in_reply_to(ba_msg *m, const char *ids, struct ba_err *err)
{
	ba_buf_reset(&m->in_reply_to);
	return add_ids(&m->in_reply_to, "in-reply-to", ids, err);
}

int ba_msg_add_references(ba_msg *m, const char *ids, struct ba_err *err)
{
	return add_ids(&m->references, "references", ids, err);
}

static const char *const reserved_fields[] = {
	"From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "In-Reply-To",
	"References", "MIME-Version", "Sender", "Return-Path", NULL,
};

int ba_msg_add_header(ba_msg *m, const char *field, struct ba_err *err)
{
	const char *colon = strchr(field, ':');
	if (!colon)
		return ba_err_set(err, EX_DATAERR, "header '%.200s': expected 'Name: value'", field);
	size_t nlen = (size_t)(colon - field);
	if (nlen == 0 || nlen > 76)
		return ba_err_set(err, EX_DATAERR, "header '%.200s': invalid field name", field);
	/* RFC 5322 §3.6.8: ftext is %d33-57 / %d59-126 */
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)field[i];
		if (c < 33 || c > 126)
			return ba_err_set(err, EX_DATAERR,
			                  "header '%.*s': invalid field name (printable ASCII without "
			                  "spaces or ':')", (int)nlen, field);
	}
	for (const char *const *r = reserved_fields; *r; r++)
		if (strlen(*r) == nlen && strncasecmp(*r, field, nlen) == 0)
			return ba_err_set(err, EX_DATAERR, "header '%s' is written by bluearrow itself; "
			                  "use its option", *r);
	if (nlen >= 8 && strncasecmp(field, "Content-", 8) == 0)
		return ba_err_set(err, EX_DATAERR, "header '%.*s' is written by bluearrow itself",
		                  (int)nlen, field);
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t vlen = strlen(v);
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--; /* trailing white space would end a header line */
	struct ba_buf what = BA_BUF_INIT;
	ba_buf_addf(&what, "header '%.*s'", (int)nlen, field);
	int rc = check_text(ba_buf_str(&what), v, err);
	ba_buf_release(&what);
	if (rc < 0)
		return -1;
	struct field *x = realloc(m->extra, (m->nextra + 1) * sizeof(*x));
	if (!x)
		return ba_err_set(err, EX_OSERR, "out of memory");
	m->extra = x;
	x = &m->extra[m->nextra];
	x->name = malloc(nlen + 1);
	x->value = malloc(vlen + 1);
	if (!x->name || !x->value) {
		free(x->name);
		free(x->value);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	memcpy(x->name, field, nlen);
	x->name[nlen] = '\0';
	memcpy(x->value, v, vlen);
	x->value[vlen] = '\0';
	m->nextra++;
	return 0;
}

void ba_msg_set_body(ba_msg *m, ba_mime_part *root)
{
	ba_mime_free(m->body);
	m->body = root;
}

/* ---- Date and Message-ID ------------------------------------------------ */

int ba_msg_format_date(struct ba_buf *out, int64_t t, int off)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t local = (time_t)(t + (int64_t)off * 60);
	struct tm tm;
	if (!gmtime_r(&local, &tm))
		return -1;
	int a = off < 0 ? -off : off;
	/* RFC 5322 §3.3 date-time, no obsolete forms, no comment */
	return ba_buf_addf(out, "%s, %d %s %04d %02d:%02d:%02d %c%02d%02d", days[tm.tm_wday],
	                   tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	                   tm.tm_sec, off < 0 ? '-' : '+', a / 60, a % 60);
}

static int default_clock(int64_t *t, int *off, struct ba_err *err)
{
	time_t now = time(NULL);
	struct tm tm;
	if (now == (time_t)-1 || !localtime_r(&now, &tm))
		return ba_err_set(err, EX_OSERR, "cannot read the clock: %s", ba_strerror_t(errno));
	*t = (int64_t)now;
	*off = (int)(tm.tm_gmtoff / 60);
	return 0;
}

static int get_random(const struct ba_msg_opts *o, void *p, size_t n, struct ba_err *err)
{
	if (o && o->mime.random)
		return o->mime.random(o->mime.random_ctx, p, n, err);
	unsigned char *q = p;
	while (n) {
		ssize_t k = getentropy(q, n > 256 ? 256 : n) == 0 ? (ssize_t)(n > 256 ? 256 : n) : -1;
		if (k < 0)
			return ba_err_set(err, EX_OSERR, "cannot get random bytes: %s", ba_strerror_t(errno));
		q += k;
		n -= (size_t)k;
	}
	return 0;
}

/*
 * Message-ID (RFC 5322 §3.6.4): "<" time in base 36 "." 80 random bits in
 * base 32 "@" the From domain ">".  Unique because the random part is; the
 * time only makes identifiers sort and tell their age.  The domain of the
 * From address (as an A-label, RFC 5890) names who made it, which is what
 * §3.6.4 suggests for the right-hand side.
 */
static int make_msgid(struct ba_buf *out, int64_t t, const char *from,
                      const struct ba_msg_opts *o, struct ba_err *err)
{
	static const char b32[] = "0123456789abcdefghijklmnopqrstuv";
	unsigned char rnd[10];
	if (get_random(o, rnd, sizeof(rnd), err) < 0)
		return -1;
	char t36[16];
	size_t n = 0;
	uint64_t u = t < 0 ? 0 : (uint64_t)t;
	do {
		t36[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[u % 36];
		u /= 36;
	} while (u && n < sizeof(t36));
	ba_buf_addch(out, '<');
	while (n)
		ba_buf_addch(out, t36[--n]);
	ba_buf_addch(out, '.');
	for (size_t i = 0; i < 16; i++) {
		size_t bit = i * 5;
		unsigned v = (unsigned)rnd[bit / 8] << 8 |
		             (bit / 8 + 1 < sizeof(rnd) ? rnd[bit / 8 + 1] : 0);
		ba_buf_addch(out, b32[(v >> (11 - bit % 8)) & 31]);
	}
	ba_buf_addch(out, '@');
	/* the From addr-spec is ASCII already (A-labels); a domain literal is no name */
	const char *at = from ? strrchr(from, '@') : NULL;
	const char *dom = at && at[1] && at[1] != '[' ? at + 1 : "localhost.invalid";
	ba_buf_addstr(out, dom);
	ba_buf_addch(out, '>');
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

/* Appends "Name: " + identifiers, one per folded line when they do not fit. */
static void put_ids(struct ba_buf *h, const char *name, const struct ba_buf *ids, const char *eol)
{
	ba_buf_addf(h, "%s:", name);
	size_t col = strlen(name) + 1;
	const char *p = ba_buf_str(ids);
	while (*p) {
		const char *e = strchr(p, ' ');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (col + 1 + n > FOLD_COL && col > strlen(name) + 1) {
			ba_buf_addstr(h, eol);
			col = 0;
		}
		ba_buf_addch(h, ' ');
		ba_buf_add(h, p, n);
		col += 1 + n;
		p += n;
		if (*p)
			p++;
	}
	ba_buf_addstr(h, eol);
}

static int put_addrs(struct ba_buf *h, const char *name, const struct addrs *l,
                     const char *eol, struct ba_err *err)
{
	if (!l || !l->l.n)
		return 0;
	ba_buf_addf(h, "%s: ", name);
	size_t col = strlen(name) + 2;
	if (addr_list_format(h, l, &col, eol, err) < 0)
		return -1;
	ba_buf_addstr(h, eol);
	return 0;
}

/* Builds the whole header except the body's Content-* fields. */
static int build_header(ba_msg *m, struct ba_buf *h, const struct ba_msg_opts *o,
                        struct ba_err *err)
{
	const char *eol = o && o->mime.eol ? o->mime.eol : "\n";
	int64_t t;
	int off;
	if (o && o->clock ? o->clock(o->clock_ctx, &t, &off, err) < 0
	                  : default_clock(&t, &off, err) < 0)
		return -1;
	ba_buf_addstr(h, "Date: ");
	ba_msg_format_date(h, t, off);
	ba_buf_addstr(h, eol);
	if (put_addrs(h, "From", m->from, eol, err) < 0 || put_addrs(h, "To", m->to, eol, err) < 0 ||
	    put_addrs(h, "Cc", m->cc, eol, err) < 0 ||
	    put_addrs(h, "Reply-To", m->reply_to, eol, err) < 0)
		return -1;
	if (m->subject) {
		size_t col = strlen("Subject: ");
		ba_buf_addstr(h, "Subject: ");
		if (ba_rfc2047_encode(h, m->subject, strlen(m->subject), &col, eol, 0, err) < 0)
			return ba_err_prefix(err, "subject: ");
		ba_buf_addstr(h, eol);
	}
	ba_buf_addstr(h, "Message-ID: ");
	if (make_msgid(h, t, ba_msg_from(m), o, err) < 0)
		return -1;
	ba_buf_addstr(h, eol);
	if (m->in_reply_to.len)
		put_ids(h, "In-Reply-To", &m->in_reply_to, eol);
	if (m->references.len)
		put_ids(h, "References", &m->references, eol);
	for (size_t i = 0; i < m->nextra; i++) {
		size_t col = strlen(m->extra[i].name) + 2;
		ba_buf_addf(h, "%s: ", m->extra[i].name);
		if (ba_rfc2047_encode(h, m->extra[i].value, strlen(m->extra[i].value), &col, eol, 0,
		                      err) < 0)
			return ba_err_prefix(err, "header '%s': ", m->extra[i].name);
		ba_buf_addstr(h, eol);
	}
	ba_buf_addf(h, "MIME-Version: 1.0%s", eol);
	if (ba_buf_failed(h))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

int ba_msg_write(ba_msg *m, ba_writer *w, const struct ba_msg_opts *o, struct ba_err *err)
{
	if (!count(m->from))
		return ba_err_set(err, EX_USAGE, "no sender: a From address is needed");
	if (!ba_msg_rcpt_count(m))
		return ba_err_set(err, EX_USAGE, "no recipients: a To, Cc or Bcc address is needed");
	/* RFC 5322 §3.6: at most one Reply-To field */
	for (size_t i = 0; m->reply_to && i < m->nextra; i++)
		if (strcasecmp(m->extra[i].name, "Reply-To") == 0)
			return ba_err_set(err, EX_USAGE, "reply-to given both as an address list and as "
			                  "header '%s'", m->extra[i].name);
	if (!m->body && ba_mime_mem_new(&m->body, "", 0, "body", BA_MIME_BODY, err) < 0)
		return -1;
	const struct ba_mime_opts *mo = o ? &o->mime : NULL;
	if (ba_mime_prepare(m->body, mo, err) < 0)
		return -1;
	struct ba_buf h = BA_BUF_INIT;
	int rc = build_header(m, &h, o, err);
	if (rc == 0)
		rc = ba_write(w, h.data, h.len, err);
	ba_buf_release(&h);
	if (rc == 0)
		rc = ba_mime_write(w, m->body, mo, err);
	if (rc == 0)
		rc = ba_flush(w, err);
	return rc;
}

int ba_msg_make_msgid(struct ba_buf *out, int64_t t, const char *from,
                      const struct ba_msg_opts *o, struct ba_err *err)
{
	return make_msgid(out, t, from, o, err);
}
