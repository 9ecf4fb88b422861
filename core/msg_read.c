/* msg_read.c - read a given message (sendmail input): header rewrite, -t, Bcc, spool */
#include "bluearrow/msg_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/header.h"

/* ---- spool -------------------------------------------------------------- */

#define SPOOL_FBUF 65536

struct spool_writer {
	ba_writer base;
	ba_spool *s;
};
struct spool_reader {
	ba_reader base;
	ba_spool *s;
};

struct ba_spool {
	struct spool_writer w;
	struct spool_reader r;
	unsigned char *mem;   /* first mem_max bytes */
	size_t mem_len, mem_max;
	int fd;               /* unlinked temporary file for the rest, or -1 */
	unsigned char *fbuf;  /* write buffer in front of fd */
	size_t fbuf_len;
	uint64_t size, pos;   /* bytes written; read position */
	uint64_t bare;        /* bare LFs and CRs (each travels as CRLF) */
	unsigned flags;
	int prev_cr;
	size_t line_len;
	int reading;
	int ref_fd;           /* ba_spool_refer(): the rest is this file's from ref_off, or -1 */
	off_t ref_off;
	struct stat ref_st;   /* the file when referred to: reads fail if it changes */
};

/* The overflow file: unlinked from the start (io.h ba_tmpfile), so nothing partial is visible. */
static int spool_open_file(ba_spool *s, struct ba_err *err)
{
	return ba_tmpfile(&s->fd, err);
}

static int spool_flush_file(ba_spool *s, struct ba_err *err)
{
	size_t off = 0;
	while (off < s->fbuf_len) {
		ssize_t k = write(s->fd, s->fbuf + off, s->fbuf_len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ba_err_set(err, EX_IOERR, "cannot write the spool file: %s",
			                  ba_strerror_t(errno));
		off += (size_t)k;
	}
	s->fbuf_len = 0;
	return 0;
}

/* Records 8-bit bytes, NULs, line lengths and bare CR/LF (RFC 5322 §2.1.1, §2.3), bytewise. */
static void spool_scan_bytes(ba_spool *s, const unsigned char *p, size_t n)
{
	unsigned f = s->flags;
	int prev_cr = s->prev_cr;
	size_t ll = s->line_len;
	uint64_t bare = s->bare;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == '\n') {
			if (!prev_cr) {
				f |= BA_SPOOL_BARE_LF;
				bare++;
			}
			ll = 0;
			prev_cr = 0;
			continue;
		}
		if (prev_cr) {
			f |= BA_SPOOL_BARE_CR;
			bare++;
		}
		prev_cr = c == '\r';
		if (c >= 0x80)
			f |= BA_SPOOL_8BIT;
		else if (c == 0)
			f |= BA_SPOOL_NUL;
		if (!prev_cr && ++ll > 998)
			f |= BA_SPOOL_LONG_LINE;
	}
	s->flags = f;
	s->prev_cr = prev_cr;
	s->line_len = ll;
	s->bare = bare;
}

/* 1 if p[0..n) has no byte >= 0x80, NUL or CR: eight bytes at a time. */
static int plain_run(const unsigned char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	const uint64_t cr = ones * '\r';
	uint64_t acc = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		uint64_t x = w ^ cr;
		/* a high bit, a zero byte of w or a zero byte of w ^ CR (exact: no byte is >= 0x80) */
		acc |= w | ((w - ones) & ~w) | ((x - ones) & ~x);
	}
	if (acc & high)
		return 0;
	for (; i < n; i++)
		if (p[i] >= 0x80 || p[i] == 0 || p[i] == '\r')
			return 0;
	return 1;
}

/*
 * spool_scan_bytes() in a faster form: the text between line feeds (less
 * the CR of a CRLF) is checked a word at a time and, when it holds nothing
 * to record, only counted; anything else (and every CR and LF around it)
 * takes the bytewise path.
 */
static void spool_scan(ba_spool *s, const unsigned char *p, size_t n)
{
	while (n) {
		const unsigned char *nl = memchr(p, '\n', n);
		size_t run = nl ? (size_t)(nl - p) : n;
		size_t text = run && p[run - 1] == '\r' ? run - 1 : run; /* the CR of CRLF */
		if (!s->prev_cr && plain_run(p, text)) {
			s->line_len += text;
			if (s->line_len > 998)
				s->flags |= BA_SPOOL_LONG_LINE;
			spool_scan_bytes(s, p + text, run - text);
		} else {
			spool_scan_bytes(s, p, run);
		}
		if (!nl)
			return;
		spool_scan_bytes(s, nl, 1);
		p = nl + 1;
		n -= run + 1;
	}
}

static int spool_write(ba_writer *w, const void *p, size_t n, struct ba_err *err)
{
	ba_spool *s = ((struct spool_writer *)w)->s;
	const unsigned char *q = p;
	if (s->reading)
		BA_BUG("ba_spool written after ba_spool_reader()");
	spool_scan(s, q, n);
	s->size += n;
	if (s->ref_fd >= 0) /* the bytes are the referred file's: nothing to keep */
		return 0;
	if (s->mem_len < s->mem_max) {
		size_t k = s->mem_max - s->mem_len < n ? s->mem_max - s->mem_len : n;
		if (!s->mem) {
			s->mem = malloc(s->mem_max);
			if (!s->mem)
				return ba_err_set(err, EX_OSERR, "out of memory");
		}
		memcpy(s->mem + s->mem_len, q, k);
		s->mem_len += k;
		q += k;
		n -= k;
	}
	if (!n)
		return 0;
	if (s->fd < 0) {
		if (spool_open_file(s, err) < 0)
			return -1;
		s->fbuf = malloc(SPOOL_FBUF);
		if (!s->fbuf)
			return ba_err_set(err, EX_OSERR, "out of memory");
	}
	while (n) {
		size_t k = SPOOL_FBUF - s->fbuf_len < n ? SPOOL_FBUF - s->fbuf_len : n;
		memcpy(s->fbuf + s->fbuf_len, q, k);
		s->fbuf_len += k;
		q += k;
		n -= k;
		if (s->fbuf_len == SPOOL_FBUF && spool_flush_file(s, err) < 0)
			return -1;
	}
	return 0;
}

/*
 * 1 if the referred file still holds what was read: not shorter, and not
 * rewritten in place (same size, new mtime or ctime).  A file that grew was
 * appended to (a log, say): the message ends where it ended when read.
 */
static int refer_intact(const ba_spool *s)
{
	struct stat st;
	const struct stat *a = &s->ref_st;
	if (fstat(s->ref_fd, &st) < 0 || st.st_size < a->st_size)
		return 0;
	return st.st_size > a->st_size ||
	       (st.st_mtim.tv_sec == a->st_mtim.tv_sec && st.st_mtim.tv_nsec == a->st_mtim.tv_nsec &&
	        st.st_ctim.tv_sec == a->st_ctim.tv_sec && st.st_ctim.tv_nsec == a->st_ctim.tv_nsec);
}

/*
 * Reads the referred part (s->pos >= s->mem_len, before s->size).  The
 * last read checks that the file did not change since it was scanned, so
 * a changed message fails before its end is sent, never goes out altered.
 */
static ssize_t refer_read(ba_spool *s, void *p, size_t n, struct ba_err *err)
{
	uint64_t left = s->size - s->pos;
	if (n > left)
		n = (size_t)left;
	for (;;) {
		ssize_t k = pread(s->ref_fd, p, n, s->ref_off + (off_t)(s->pos - s->mem_len));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ba_err_set(err, EX_IOERR, "cannot read the message again: %s",
			                  ba_strerror_t(errno));
		if (k == 0 || (s->pos + (uint64_t)k == s->size && !refer_intact(s)))
			return ba_err_set(err, EX_IOERR, "the message file changed while it was sent "
			                  "(nothing was delivered)");
		s->pos += (uint64_t)k;
		return k;
	}
}

static ssize_t spool_read(ba_reader *r, void *p, size_t n, struct ba_err *err)
{
	ba_spool *s = ((struct spool_reader *)r)->s;
	if (s->pos >= s->size)
		return 0;
	if (s->pos < s->mem_len) {
		size_t k = s->mem_len - (size_t)s->pos < n ? s->mem_len - (size_t)s->pos : n;
		memcpy(p, s->mem + s->pos, k);
		s->pos += k;
		return (ssize_t)k;
	}
	if (s->ref_fd >= 0)
		return refer_read(s, p, n, err);
	for (;;) {
		ssize_t k = pread(s->fd, p, n, (off_t)(s->pos - s->mem_len));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ba_err_set(err, EX_IOERR, "cannot read the spool file: %s", ba_strerror_t(errno));
		if (k == 0)
			return ba_err_set(err, EX_IOERR, "the spool file is shorter than written");
		s->pos += (uint64_t)k;
		return k;
	}
}

static const struct ba_writer_ops spool_writer_ops = { spool_write, NULL };
static const struct ba_reader_ops spool_reader_ops = { spool_read };

int ba_spool_new(ba_spool **out, size_t mem_max, struct ba_err *err)
{
	*out = NULL;
	ba_spool *s = calloc(1, sizeof(*s));
	if (!s)
		return ba_err_set(err, EX_OSERR, "out of memory");
	s->w.base.ops = &spool_writer_ops;
	s->w.s = s;
	s->r.base.ops = &spool_reader_ops;
	s->r.s = s;
	s->mem_max = mem_max ? mem_max : BA_SPOOL_MEM_DEFAULT;
	s->fd = -1;
	s->ref_fd = -1;
	*out = s;
	return 0;
}

int ba_spool_refer(ba_spool *s, int fd, off_t off)
{
	if (s->reading)
		BA_BUG("ba_spool_refer() after ba_spool_reader()");
	struct stat st;
	if (s->fd >= 0 || s->ref_fd >= 0 || off < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	s->ref_fd = fd;
	s->ref_off = off;
	s->ref_st = st;
	return 1;
}

void ba_spool_free(ba_spool *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->mem);
	free(s->fbuf);
	free(s);
}

ba_writer *ba_spool_writer(ba_spool *s)
{
	return &s->w.base;
}

ba_reader *ba_spool_reader(ba_spool *s)
{
	if (!s->reading) {
		struct ba_err e = BA_ERR_INIT;
		/* the buffered tail: a failure here shows as a short read later */
		if (s->fd >= 0 && s->fbuf_len && spool_flush_file(s, &e) < 0)
			s->size = s->mem_len; /* reads then end early; the caller sees a size mismatch */
		if (s->prev_cr)
			s->flags |= BA_SPOOL_BARE_CR;
		s->reading = 1;
	}
	s->pos = 0;
	return &s->r.base;
}

uint64_t ba_spool_size(const ba_spool *s)
{
	return s->size;
}

uint64_t ba_spool_wire_size(const ba_spool *s)
{
	return s->size + s->bare + (s->prev_cr ? 1 : 0);
}

unsigned ba_spool_flags(const ba_spool *s)
{
	return s->flags | (s->prev_cr ? BA_SPOOL_BARE_CR : 0);
}

/* ---- address lists ------------------------------------------------------ */

static int push_str(char ***v, size_t *n, const char *s, size_t len, struct ba_err *err)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return ba_err_set(err, EX_OSERR, "out of memory");
	*v = nv;
	if (!(nv[*n] = strndup(s, len)))
		return ba_err_set(err, EX_OSERR, "out of memory");
	(*n)++;
	return 0;
}

/*
 * One pass over an address list (RFC 5322 §3.4): outside angle brackets the
 * text of a mailbox is collected without white space and comments; an
 * angle-addr replaces it.  ':' outside brackets opens a group (the text so
 * far was its display name), ';' closes it, ',' separates mailboxes.
 */
int ba_msg_addr_list(char ***v, size_t *n, const char *field, const char *body, size_t len,
                     struct ba_err *err)
{
	struct ba_buf cur = BA_BUF_INIT, ang = BA_BUF_INIT;
	int in_angle = 0, got_angle = 0, in_group = 0, rc = 0;
	for (size_t i = 0; i <= len && rc == 0; i++) {
		char c = i < len ? body[i] : ',';
		if (((unsigned char)c < 32 && c != ' ' && c != '\t' && c != '\r' && c != '\n') || c == 127) {
			/* a NUL or control would cut or smuggle an envelope address */
			rc = ba_err_set(err, EX_DATAERR, "%s: control character in an address", field);
			break;
		}
		if (i < len && c == '(') { /* comment, nested, with quoted-pairs (§3.2.2) */
			int depth = 0;
			for (; i < len; i++) {
				if (body[i] == '\\' && i + 1 < len)
					i++;
				else if (body[i] == '(')
					depth++;
				else if (body[i] == ')' && --depth == 0)
					break;
			}
			if (depth)
				rc = ba_err_set(err, EX_DATAERR, "%s: unbalanced '('", field);
			continue;
		}
		if (i < len && c == '"') { /* quoted string, kept with its quotes (a local part may be one) */
			struct ba_buf *b = in_angle ? &ang : &cur;
			size_t j = i;
			for (j = i + 1; j < len && body[j] != '"'; j++)
				if (body[j] == '\\' && j + 1 < len)
					j++;
			if (j >= len) {
				rc = ba_err_set(err, EX_DATAERR, "%s: unbalanced '\"'", field);
				break;
			}
			for (size_t k = i; k <= j; k++)
				if (body[k] != '\r' && body[k] != '\n')
					ba_buf_addch(b, body[k]);
			i = j;
			continue;
		}
		if (in_angle) {
			if (c == '>') {
				in_angle = 0;
				got_angle = 1;
			} else if (c == '<' || i == len) {
				rc = ba_err_set(err, EX_DATAERR, "%s: unbalanced '<'", field);
			} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
				ba_buf_addch(&ang, c);
			}
			continue;
		}
		if (c == '<') {
			in_angle = 1;
			ba_buf_reset(&ang);
		} else if (c == '>') {
			rc = ba_err_set(err, EX_DATAERR, "%s: unbalanced '>'", field);
		} else if (c == ':' && !in_group && !got_angle) {
			in_group = 1; /* the text so far was the group's display name */
			ba_buf_reset(&cur);
		} else if (c == ',' || c == ';') {
			if (c == ';' && !in_group)
				rc = ba_err_set(err, EX_DATAERR, "%s: ';' outside a group", field);
			if (c == ';')
				in_group = 0;
			const char *a = got_angle ? ba_buf_str(&ang) : ba_buf_str(&cur);
			size_t alen = got_angle ? ang.len : cur.len;
			if (got_angle && *a == '@') { /* obsolete source route (§4.4): drop "@a,@b:" */
				const char *colon = memchr(a, ':', alen);
				alen = colon ? alen - (size_t)(colon + 1 - a) : 0;
				a = colon ? colon + 1 : a;
			}
			if (rc == 0 && alen && push_str(v, n, a, alen, err) < 0)
				rc = -1;
			ba_buf_reset(&cur);
			ba_buf_reset(&ang);
			got_angle = 0;
		} else if (c == '\\' && i + 1 < len) {
			ba_buf_addch(&cur, c);
			ba_buf_addch(&cur, body[++i]);
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			ba_buf_addch(&cur, c);
		}
	}
	if (rc == 0 && in_group)
		rc = 0; /* a group without ';' at the end: lenient, its members were taken */
	if (rc == 0 && (ba_buf_failed(&cur) || ba_buf_failed(&ang)))
		rc = ba_err_set(err, EX_OSERR, "out of memory");
	ba_buf_release(&cur);
	ba_buf_release(&ang);
	return rc;
}

/* ---- the header block --------------------------------------------------- */

/*
 * A field with its continuation lines, or a malformed line (name_len 0:
 * kept in place, matches no name).  The kinds come from header.h's reader.
 */
struct field {
	size_t off, len;  /* raw bytes in the header buffer, line ends and folds included */
	size_t name_len;
	int drop;
};

struct hdr {
	struct ba_buf raw;
	struct field *f;
	size_t n, alloc;
};

static int name_is(const struct hdr *h, const struct field *f, const char *name)
{
	return f->name_len == strlen(name) && strncasecmp(h->raw.data + f->off, name, f->name_len) == 0;
}

static int is_lone_dot(const char *p, size_t n)
{
	return (n == 2 && p[0] == '.' && p[1] == '\n') || (n == 3 && memcmp(p, ".\r\n", 3) == 0) ||
	       (n == 1 && p[0] == '.');
}

static int add_field(struct hdr *h, size_t off, size_t name_len, struct ba_err *err)
{
	if (h->n == h->alloc) {
		size_t na = h->alloc ? h->alloc * 2 : 32;
		struct field *nf = realloc(h->f, na * sizeof(*nf));
		if (!nf)
			return ba_err_set(err, EX_OSERR, "out of memory");
		h->f = nf;
		h->alloc = na;
	}
	h->f[h->n++] = (struct field){ off, 0, name_len, 0 };
	return 0;
}

/* The unfolded-enough body of a field: after the colon (the parser skips CR/LF). */
static void field_body(const struct hdr *h, const struct field *f, const char **p, size_t *n)
{
	const char *s = h->raw.data + f->off;
	const char *colon = memchr(s, ':', f->len);
	*p = colon + 1;
	*n = f->len - (size_t)(colon + 1 - s);
}

/* Writes "From: NAME <addr>" or "From: addr"; a name of atext, '.' and spaces as msmtp does, else encoded. */
static int gen_from(struct ba_buf *out, const char *addr, const char *name, const char *eol,
                    struct ba_err *err)
{
	ba_buf_addstr(out, "From: ");
	if (name && *name) {
		int plain = 1;
		for (const char *c = name; *c; c++)
			if (!(((unsigned char)*c > 32 && (unsigned char)*c < 127 &&
			       !strchr("()<>[]:;@\\,\"", *c)) || *c == ' '))
				plain = 0;
		if (plain) {
			ba_buf_addstr(out, name);
		} else {
			size_t col = 6;
			if (ba_rfc2047_encode(out, name, strlen(name), &col, eol, BA_RFC2047_PHRASE, err) < 0)
				return ba_err_prefix(err, "full name '%s': ", name);
		}
		ba_buf_addf(out, " <%s>%s", addr, eol);
	} else {
		ba_buf_addf(out, "%s%s", addr, eol);
	}
	return 0;
}

static int default_clock(void *ctx, int64_t *t, int *off, struct ba_err *err)
{
	(void)ctx;
	time_t now = time(NULL);
	struct tm tm;
	if (now == (time_t)-1 || !localtime_r(&now, &tm))
		return ba_err_set(err, EX_OSERR, "cannot read the clock: %s", ba_strerror_t(errno));
	*t = (int64_t)now;
	*off = (int)(tm.tm_gmtoff / 60);
	return 0;
}

static int has_controls(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return 1;
	return 0;
}

/*
 * Reads the header block into h, its lines classified by header.h's reader
 * (one definition of a field, a continuation, a malformed line, a line end
 * and the header's end for every reader of a header); *body_first gets the
 * empty line that ended it (kept for the body).
 */
static int read_header(struct hdr *h, struct ba_linereader *lr, const struct ba_msg_read_opts *o,
                       struct ba_buf *body_first, int *body_at_start, int *ended, int *crlf,
                       struct ba_err *err)
{
	int dots = !(o->flags & BA_MSG_READ_DOTS_ARE_DATA);
	struct ba_header_reader rd;
	const char *line;
	size_t n;
	int r;
	/* an mbox "From " envelope line in front of the header is dropped, as
	 * sendmail does; a malformed line is kept, as msmtp and Postfix do */
	ba_header_reader_init(&rd, BA_HEADER_SKIP_MBOX_FROM | BA_HEADER_KEEP_MALFORMED);
	while ((r = ba_linereader_next(lr, &line, &n, err)) > 0) {
		int kind = ba_header_reader_piece(&rd, line, n, err);
		if (kind < 0)
			return -1;
		if (rd.line_start && rd.line_no == 1)
			*crlf = n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n';
		if (kind == BA_HEADER_LINE_MBOX_FROM)
			continue;
		/*
		 * a NUL is refused in the header (RFC 5322 §2.2): a receiver that drops
		 * it would read "Bcc\0: x", kept here as a malformed line, as a Bcc field
		 */
		if (memchr(line, '\0', n))
			return ba_err_set(err, EX_DATAERR, "line %zu: NUL byte in header", rd.line_no);
		if (!rd.line_start) { /* the rest of a long line */
			ba_buf_add(&h->raw, line, n);
			h->f[h->n - 1].len += n;
			goto check;
		}
		if (dots && is_lone_dot(line, n)) {
			*ended = 1;
			return 0;
		}
		if (kind == BA_HEADER_LINE_END) { /* the body starts */
			ba_buf_add(body_first, line, n);
			*body_at_start = line[n - 1] == '\n';
			return 0;
		}
		if (kind == BA_HEADER_LINE_CONT) { /* folded continuation (§2.2.3) */
			ba_buf_add(&h->raw, line, n);
			h->f[h->n - 1].len += n;
		} else { /* a field, or a malformed line kept as it is */
			if (add_field(h, h->raw.len, rd.name_len, err) < 0)
				return -1;
			ba_buf_add(&h->raw, line, n);
			h->f[h->n - 1].len = n;
		}
	check:
		if (ba_buf_failed(&h->raw))
			return ba_err_set(err, EX_DATAERR, "the message header is larger than %zu bytes",
			                  h->raw.cap);
	}
	if (r < 0)
		return -1;
	*ended = 1;
	return 0;
}

/* m->header_from: the first mailbox of the first From field that has one. */
static int find_header_from(struct ba_msg_input *m, const struct hdr *h, struct ba_err *err)
{
	for (size_t i = 0; i < h->n && !m->header_from; i++) {
		const struct field *f = &h->f[i];
		if (!f->name_len || !name_is(h, f, "From"))
			continue;
		const char *p;
		size_t n;
		char **v = NULL;
		size_t nv = 0;
		field_body(h, f, &p, &n);
		int rc = ba_msg_addr_list(&v, &nv, "From", p, n, err);
		if (rc == 0 && nv)
			m->header_from = v[0], v[0] = NULL;
		for (size_t k = 0; k < nv; k++)
			free(v[k]);
		free(v);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int collect(struct ba_msg_input *m, struct hdr *h, const struct ba_msg_read_opts *o,
                   struct ba_err *err)
{
	for (size_t i = 0; i < h->n; i++) {
		struct field *f = &h->f[i];
		if (f->name_len > 7 && strncasecmp(h->raw.data + f->off, "Resent-", 7) == 0)
			m->had_resent = 1;
		if (name_is(h, f, "From"))
			m->had_from = 1;
		else if (name_is(h, f, "Date"))
			m->had_date = 1;
		else if (name_is(h, f, "Message-ID"))
			m->had_msgid = 1;
	}
	const char *pre = m->had_resent ? "Resent-" : "";
	for (size_t i = 0; i < h->n; i++) {
		struct field *f = &h->f[i];
		const char *p;
		size_t n;
		if (!f->name_len)
			continue; /* a malformed line: no field, kept as it is */
		field_body(h, f, &p, &n);
		char name[32];
		if (o->flags & BA_MSG_READ_RCPT_FROM_HEADERS) {
			static const char *const kinds[] = { "To", "Cc", "Bcc" };
			for (size_t k = 0; k < 3; k++) {
				snprintf(name, sizeof(name), "%s%s", pre, kinds[k]);
				if (name_is(h, f, name) &&
				    ba_msg_addr_list(&m->rcpt, &m->nrcpt, name, p, n, err) < 0)
					return -1;
			}
		}
		if ((o->flags & BA_MSG_READ_REMOVE_BCC) &&
		    (name_is(h, f, "Bcc") || name_is(h, f, "Resent-Bcc")))
			f->drop = 1;
		if ((o->flags & BA_MSG_READ_UNDISCLOSED) &&
		    (name_is(h, f, "To") || name_is(h, f, "Cc") || name_is(h, f, "Bcc")))
			f->drop = 1;
	}
	return 0;
}

/* Generates the new fields (msmtp order: From, To, Date, Message-ID) and marks replaced ones. */
static int generate(struct ba_buf *out, struct ba_msg_input *m, struct hdr *h,
                    const struct ba_msg_read_opts *o, const char *eol, struct ba_err *err)
{
	const char *from = o->from_addr && *o->from_addr ? o->from_addr : NULL;
	if (from && (has_controls(from) || (o->from_name && has_controls(o->from_name))))
		return ba_err_set(err, EX_DATAERR, "the sender address or full name has control characters");
	int want_from = from && (o->set_from == BA_MSG_HDR_ON ||
	                         (o->set_from == BA_MSG_HDR_AUTO && !m->had_from));
	int want_date = o->set_date == BA_MSG_HDR_ON || (o->set_date == BA_MSG_HDR_AUTO && !m->had_date);
	int want_id = o->set_msgid == BA_MSG_HDR_ON || (o->set_msgid == BA_MSG_HDR_AUTO && !m->had_msgid);
	for (size_t i = 0; i < h->n; i++) {
		struct field *f = &h->f[i];
		if ((want_from && name_is(h, f, "From")) || (want_date && name_is(h, f, "Date")) ||
		    (want_id && name_is(h, f, "Message-ID")))
			f->drop = 1;
	}
	if (want_from && gen_from(out, from, o->from_name, eol, err) < 0)
		return -1;
	if (o->flags & BA_MSG_READ_UNDISCLOSED)
		ba_buf_addf(out, "To: undisclosed-recipients:;%s", eol);
	int64_t t = 0;
	int off = 0;
	if (want_date || want_id) {
		ba_clock_fn *clock = o->msg.clock ? o->msg.clock : default_clock;
		if (clock(o->msg.clock_ctx, &t, &off, err) < 0)
			return -1;
	}
	if (want_date) {
		ba_buf_addstr(out, "Date: ");
		ba_msg_format_date(out, t, off);
		ba_buf_addstr(out, eol);
	}
	if (want_id) {
		ba_buf_addstr(out, "Message-ID: ");
		if (ba_msg_make_msgid(out, t, from ? from : m->header_from, &o->msg, err) < 0)
			return -1;
		ba_buf_addstr(out, eol);
	}
	m->added_from = want_from;
	m->added_date = want_date;
	m->added_msgid = want_id;
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

/*
 * Where the first lone-dot line (".\n" or ".\r\n", as is_lone_dot) starts
 * in p[0..n), complete lines ending in LF, or n when there is none.
 * at_start: p[0] starts a line.
 */
static size_t find_lone_dot(const char *p, size_t n, int at_start)
{
	const char *end = p + n, *d = p;
	while ((d = memchr(d, '.', (size_t)(end - d))) != NULL) {
		size_t left = (size_t)(end - d);
		if ((d == p ? at_start : d[-1] == '\n') &&
		    ((left >= 2 && d[1] == '\n') || (left >= 3 && d[1] == '\r' && d[2] == '\n')))
			return (size_t)(d - p);
		d++;
	}
	return n;
}

/*
 * Copies the rest of the input to w: raw when dots are data, else up to a
 * lone "." line, a block of buffered complete lines at a time (one line
 * through ba_linereader_next() when no complete line is buffered: it reads
 * more, and gives the last line without LF and pieces of overlong lines).
 */
static int copy_body(ba_writer *w, struct ba_linereader *lr, int dots, int at_start,
                     struct ba_err *err)
{
	const char *line;
	size_t n;
	int r;
	if (!dots) {
		const char *p;
		size_t k = ba_linereader_buffered(lr, &p);
		if (ba_write(w, p, k, err) < 0)
			return -1;
		unsigned char buf[65536];
		ssize_t got;
		while ((got = ba_read(lr->in, buf, sizeof(buf), err)) > 0)
			if (ba_write(w, buf, (size_t)got, err) < 0)
				return -1;
		return got < 0 ? -1 : 0;
	}
	for (;;) {
		const char *p;
		size_t k = ba_linereader_lines(lr, &p);
		if (k) {
			size_t stop = find_lone_dot(p, k, at_start);
			if (ba_write(w, p, stop, err) < 0)
				return -1;
			if (stop < k) { /* consume the "." line: what follows it is counted */
				ba_linereader_skip(lr, stop + (p[stop + 1] == '\n' ? 2 : 3));
				return 0;
			}
			ba_linereader_skip(lr, k);
			at_start = 1;
			continue;
		}
		if ((r = ba_linereader_next(lr, &line, &n, err)) <= 0)
			return r;
		if (at_start && is_lone_dot(line, n))
			return 0;
		if (ba_write(w, line, n, err) < 0)
			return -1;
		at_start = line[n - 1] == '\n';
	}
}

/*
 * After a lone "." line: reads the rest of the input and counts it, so that
 * what sendmail's rule leaves unsent is reported, never dropped in silence.
 * Memory stays bounded (one buffer at a time).
 */
static int count_rest(uint64_t *n, struct ba_linereader *lr, struct ba_err *err)
{
	const char *p;
	size_t k = ba_linereader_buffered(lr, &p);
	ba_linereader_skip(lr, k);
	*n = k;
	if (lr->eof)
		return 0;
	unsigned char buf[65536];
	ssize_t got;
	while ((got = ba_read(lr->in, buf, sizeof(buf), err)) > 0)
		*n += (uint64_t)got;
	return got < 0 ? -1 : 0;
}

int ba_msg_read(struct ba_msg_input *out, ba_reader *in, const struct ba_msg_read_opts *o,
                struct ba_err *err)
{
	static const struct ba_msg_read_opts zero;
	if (!o)
		o = &zero;
	memset(out, 0, sizeof(*out));
	struct hdr h;
	memset(&h, 0, sizeof(h));
	ba_buf_init(&h.raw, o->header_max ? o->header_max : (size_t)1 << 20);
	struct ba_buf first = BA_BUF_INIT, gen = BA_BUF_INIT;
	struct ba_linereader lr;
	int rc = -1, ended = 0, crlf = 0, body_at_start = 1;
	int dots = !(o->flags & BA_MSG_READ_DOTS_ARE_DATA);
	if (ba_linereader_init(&lr, in, 8192, err) < 0)
		goto done;
	if (ba_spool_new(&out->spool, o->mem_max, err) < 0)
		goto done_lr;
	if (read_header(&h, &lr, o, &first, &body_at_start, &ended, &crlf, err) < 0 ||
	    find_header_from(out, &h, err) < 0)
		goto done_lr;
	struct ba_msg_read_opts eff = *o; /* what the header_done hook may change */
	if (o->header_done) {
		if (o->header_done(o->header_ctx, out->header_from, &eff, err) < 0)
			goto done_lr;
		const unsigned keep = BA_MSG_READ_DOTS_ARE_DATA | BA_MSG_READ_REFER_INPUT |
		                      BA_MSG_READ_DOT_NO_COUNT;
		eff.flags = (eff.flags & ~keep) | (o->flags & keep);
	}
	if (collect(out, &h, &eff, err) < 0 || generate(&gen, out, &h, &eff, crlf ? "\r\n" : "\n", err) < 0)
		goto done_lr;
	ba_writer *w = ba_spool_writer(out->spool);
	if (ba_write(w, gen.data, gen.len, err) < 0)
		goto done_lr;
	for (size_t i = 0; i < h.n; i++)
		if (!h.f[i].drop && ba_write(w, h.raw.data + h.f[i].off, h.f[i].len, err) < 0)
			goto done_lr;
	if (ba_write(w, first.data, first.len, err) < 0)
		goto done_lr;
	if (ba_buf_failed(&first)) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto done_lr;
	}
	if (!ended && (o->flags & BA_MSG_READ_REFER_INPUT)) {
		/* the body starts where the input's fd is, less what the line reader holds */
		const char *p;
		off_t at = lseek(o->in_fd, 0, SEEK_CUR);
		off_t held = (off_t)ba_linereader_buffered(&lr, &p);
		if (at >= held)
			ba_spool_refer(out->spool, o->in_fd, at - held);
	}
	if (!ended && copy_body(w, &lr, dots, body_at_start, err) < 0)
		goto done_lr;
	if (dots && !(o->flags & BA_MSG_READ_DOT_NO_COUNT) &&
	    count_rest(&out->dropped_after_dot, &lr, err) < 0)
		goto done_lr;
	rc = 0;
done_lr:
	ba_linereader_release(&lr);
done:
	ba_buf_release(&h.raw);
	free(h.f);
	ba_buf_release(&first);
	ba_buf_release(&gen);
	if (rc < 0)
		ba_msg_read_release(out);
	return rc;
}

void ba_msg_read_release(struct ba_msg_input *m)
{
	ba_spool_free(m->spool);
	for (size_t i = 0; i < m->nrcpt; i++)
		free(m->rcpt[i]);
	free(m->rcpt);
	free(m->header_from);
	memset(m, 0, sizeof(*m));
}
