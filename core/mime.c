/* mime.c - MIME part tree, content-type detection, transfer-encoding choice, streaming writer
 *
 * Why two passes over every leaf: the transfer encoding has to be written in
 * the part's header before its content, and the right choice (7bit, QP,
 * base64) depends on all of the content (one long line or one 8-bit byte at
 * the end changes it).  Holding the content would make memory grow with it,
 * so the first pass (ba_mime_prepare) reads the leaf in BA_MIME_CHUNK pieces
 * and keeps only counters; the second (ba_mime_write) reads it again and
 * streams it through the encoder.
 */
#include "bluearrow/mime.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/header.h"
#include "bluearrow/io.h"

/* RFC 5322 §2.1.1: a line is at most 998 octets, excluding the CRLF */
#define LINE_MAX_OCTETS 998
/* length of the random part of a boundary: 26 characters of 62, about 155 bits */
#define BOUNDARY_RANDOM 26
/* every boundary starts with this; see the comment at choose_boundary() */
#define BOUNDARY_PREFIX "=_"

struct ba_mime_part {
	/* multipart */
	int multipart;
	char *subtype;
	ba_mime_part *first, *last, *next;
	char boundary[sizeof(BOUNDARY_PREFIX) + BOUNDARY_RANDOM + 8];
	/* leaf */
	enum ba_mime_role role;
	int fd;                     /* -1 for a memory leaf */
	off_t start;                /* where the content starts in fd (stdin may be read from) */
	unsigned char *mem;
	size_t memlen;
	char *name;                 /* for errors */
	char *filename;             /* shown to the recipient; NULL = none */
	char *type;                 /* set or detected; NULL before prepare */
	int type_set;
	int charset_utf8;
	int qp_text;                /* QP with hard line breaks */
	enum ba_mime_cte cte;
};

/* ---- small helpers ------------------------------------------------------ */

static const char *eol_of(const struct ba_mime_opts *o)
{
	return o && o->eol ? o->eol : "\n";
}

/* RFC 2045 §5.1 token: printable ASCII except SPACE, CTLs and tspecials */
static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?=", c))
			return 0;
	}
	return 1;
}

static ba_mime_part *part_alloc(void)
{
	ba_mime_part *p = calloc(1, sizeof(*p));
	if (p)
		p->fd = -1;
	return p;
}

const char *ba_mime_cte_name(enum ba_mime_cte cte)
{
	switch (cte) {
	case BA_MIME_CTE_7BIT: return "7bit";
	case BA_MIME_CTE_8BIT: return "8bit";
	case BA_MIME_CTE_QP: return "quoted-printable";
	case BA_MIME_CTE_BASE64: return "base64";
	case BA_MIME_CTE_NONE: break;
	}
	return "";
}

const char *ba_mime_part_type(const ba_mime_part *p)
{
	return p->type ? p->type : "";
}

enum ba_mime_cte ba_mime_part_cte(const ba_mime_part *p)
{
	return p->cte;
}

const char *ba_mime_part_boundary(const ba_mime_part *p)
{
	return p->boundary;
}

/* ---- construction ------------------------------------------------------- */

/* Copies a non-seekable descriptor into an unlinked temporary file; closes fd. */
static int spool(int *fdp, const char *name, struct ba_err *err)
{
	int tfd = -1;
	if (ba_tmpfile(&tfd, err) < 0)
		return -1;
	unsigned char *chunk = malloc(BA_MIME_CHUNK);
	if (!chunk) {
		close(tfd);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	struct ba_fd_reader in;
	struct ba_fd_writer *outw = malloc(sizeof(*outw));
	int rc = -1;
	if (!outw) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto done;
	}
	ba_fd_reader_init(&in, *fdp, name);
	ba_fd_writer_init(outw, tfd, "temporary file");
	for (;;) {
		ssize_t k = ba_read(&in.base, chunk, BA_MIME_CHUNK, err);
		if (k < 0)
			goto done;
		if (k == 0)
			break;
		if (ba_write(&outw->base, chunk, (size_t)k, err) < 0)
			goto done;
	}
	if (ba_flush(&outw->base, err) < 0)
		goto done;
	rc = 0;
done:
	free(outw);
	free(chunk);
	close(*fdp);
	*fdp = tfd;
	return rc;
}

int ba_mime_fd_new(ba_mime_part **out, int fd, const char *name, enum ba_mime_role role,
                   struct ba_err *err)
{
	*out = NULL;
	ba_mime_part *p = part_alloc();
	if (!p) {
		close(fd);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	p->fd = fd;
	p->role = role;
	p->name = strdup(name ? name : "input");
	if (!p->name) {
		ba_mime_free(p);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	if (role == BA_MIME_ATTACHMENT && name) {
		const char *base = strrchr(name, '/');
		base = base ? base + 1 : name;
		if (*base && ba_mime_set_filename(p, base, err) < 0) {
			ba_mime_free(p);
			return -1;
		}
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		ba_err_set(err, EX_IOERR, "cannot read '%s': %s", p->name, ba_strerror_t(errno));
		ba_mime_free(p);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		ba_err_set(err, EX_NOINPUT, "cannot read '%s': Is a directory", p->name);
		ba_mime_free(p);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (p->start = lseek(fd, 0, SEEK_CUR)) < 0) {
		p->start = 0;
		if (spool(&p->fd, p->name, err) < 0) {
			ba_mime_free(p);
			return -1;
		}
	}
	*out = p;
	return 0;
}

int ba_mime_file_new(ba_mime_part **out, const char *path, enum ba_mime_role role,
                     struct ba_err *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ba_err_set(err, errno == ENOENT || errno == EACCES || errno == ENOTDIR ||
		                       errno == ELOOP ? EX_NOINPUT : EX_IOERR,
		                  "cannot open '%s': %s", path, ba_strerror_t(errno));
	return ba_mime_fd_new(out, fd, path, role, err);
}

int ba_mime_mem_new(ba_mime_part **out, const void *src, size_t n, const char *name,
                    enum ba_mime_role role, struct ba_err *err)
{
	*out = NULL;
	ba_mime_part *p = part_alloc();
	if (!p)
		return ba_err_set(err, EX_OSERR, "out of memory");
	p->role = role;
	p->mem = malloc(n ? n : 1);
	p->name = strdup(name ? name : "input");
	if (!p->mem || !p->name) {
		ba_mime_free(p);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	if (n)
		memcpy(p->mem, src, n);
	p->memlen = n;
	if (role == BA_MIME_ATTACHMENT && name) {
		const char *base = strrchr(name, '/');
		base = base ? base + 1 : name;
		if (*base && ba_mime_set_filename(p, base, err) < 0) {
			ba_mime_free(p);
			return -1;
		}
	}
	*out = p;
	return 0;
}

int ba_mime_multipart_new(ba_mime_part **out, const char *subtype, struct ba_err *err)
{
	*out = NULL;
	if (!is_token(subtype))
		return ba_err_set(err, EX_DATAERR, "invalid multipart subtype '%s'", subtype);
	ba_mime_part *p = part_alloc();
	if (!p || !(p->subtype = strdup(subtype))) {
		free(p);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	p->multipart = 1;
	*out = p;
	return 0;
}

int ba_mime_add(ba_mime_part *parent, ba_mime_part *child, struct ba_err *err)
{
	(void)err;
	if (!parent->multipart)
		BA_BUG("ba_mime_add to a leaf");
	child->next = NULL;
	if (parent->last)
		parent->last->next = child;
	else
		parent->first = child;
	parent->last = child;
	return 0;
}

int ba_mime_set_type(ba_mime_part *p, const char *type, struct ba_err *err)
{
	if (p->multipart)
		BA_BUG("ba_mime_set_type on a multipart");
	const char *slash = strchr(type, '/');
	int ok = slash && slash != type;
	if (ok) {
		char major[128];
		size_t n = (size_t)(slash - type);
		ok = n < sizeof(major);
		if (ok) {
			memcpy(major, type, n);
			major[n] = '\0';
			ok = is_token(major) && is_token(slash + 1) && strncasecmp(type, "multipart/", 10);
		}
	}
	if (!ok)
		return ba_err_set(err, EX_DATAERR, "invalid content type '%s' (expected type/subtype)",
		                  type);
	char *t = strdup(type);
	if (!t)
		return ba_err_set(err, EX_OSERR, "out of memory");
	for (char *c = t; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	free(p->type);
	p->type = t;
	p->type_set = 1;
	return 0;
}

int ba_mime_set_filename(ba_mime_part *p, const char *name, struct ba_err *err)
{
	size_t n = strlen(name), bad;
	if (!ba_utf8_valid(name, n, &bad))
		return ba_err_set(err, EX_DATAERR, "attachment name '%s': invalid utf-8 at byte %zu",
		                  p->name ? p->name : name, bad);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 32 || c == 127 || c == '/')
			return ba_err_set(err, EX_DATAERR,
			                  "attachment name for '%s' contains a %s",
			                  p->name ? p->name : "input",
			                  c == '/' ? "'/'" : "control character");
	}
	free(p->filename);
	p->filename = NULL;
	if (n && !(p->filename = strdup(name)))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

void ba_mime_free(ba_mime_part *p)
{
	while (p) {
		ba_mime_part *next = p->next;
		ba_mime_free(p->first);
		if (p->fd >= 0)
			close(p->fd);
		free(p->mem);
		free(p->name);
		free(p->filename);
		free(p->type);
		free(p->subtype);
		free(p);
		p = next;
	}
}

/* ---- content types ------------------------------------------------------ */

int ba_mime_type_by_ext(struct ba_buf *out, const char *filename, const char *mime_types)
{
	const char *dot = filename ? strrchr(filename, '.') : NULL;
	const char *slash = filename ? strrchr(filename, '/') : NULL;
	if (!dot || !dot[1] || (slash && slash > dot))
		return 0;
	const char *ext = dot + 1;
	FILE *f = fopen(mime_types ? mime_types : "/etc/mime.types", "re");
	if (!f)
		return 0;
	char line[1024];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || !strchr(line, '\n'))
			continue; /* comments, and over-long lines (none in practice) */
		char *s = line, *type = NULL;
		while (*s) {
			while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
				*s++ = '\0';
			if (!*s)
				break;
			char *word = s;
			while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
				s++;
			char save = *s;
			*s = '\0';
			if (!type)
				type = word;
			else if (strcasecmp(word, ext) == 0) {
				found = 1;
				break;
			}
			*s = save;
		}
		if (found && ba_buf_addstr(out, type) < 0)
			found = -1;
	}
	fclose(f);
	return found;
}

/*
 * libmagic is loaded with dlopen() on the first sniff, not linked: it and
 * the libraries it pulls in (liblzma, libbz2, libz) would otherwise be
 * mapped and relocated by every process, including each `bluearrow
 * sendmail` that never sniffs anything.  Only magic.h is needed to build.
 * One magic_t is not safe to use from two threads at once (it keeps its
 * result in itself), so magic_buffer() and the copy of its result run under
 * g_magic_lock.
 */
struct magic_api {
	magic_t (*open)(int);
	int (*load)(magic_t, const char *);
	const char *(*buffer)(magic_t, const void *, size_t);
	void (*close)(magic_t);
};

static magic_t g_magic;
static struct magic_api g_magic_api;
static pthread_once_t g_magic_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_magic_lock = PTHREAD_MUTEX_INITIALIZER;

/* The soname of Debian's libmagic1 (and of every distribution's libmagic since file 4.x). */
#define MAGIC_SONAME "libmagic.so.1"

static void magic_init(void)
{
	static const char *const names[] = { "magic_open", "magic_load", "magic_buffer",
		                             "magic_close" };
	void *sym[4];
	void *h = ba_dl_open(MAGIC_SONAME, names, sym, 4);
	if (!h)
		return;
	struct magic_api a;
	/* POSIX dlsym() returns void *; conversion to a function pointer goes through memcpy */
	memcpy(&a.open, &sym[0], sizeof(a.open));
	memcpy(&a.load, &sym[1], sizeof(a.load));
	memcpy(&a.buffer, &sym[2], sizeof(a.buffer));
	memcpy(&a.close, &sym[3], sizeof(a.close));
	/* the prototypes above must be magic.h's (checked, never evaluated: no link reference) */
	(void)sizeof(a.open == &magic_open);
	(void)sizeof(a.load == &magic_load);
	(void)sizeof(a.buffer == &magic_buffer);
	(void)sizeof(a.close == &magic_close);
	magic_t m = a.open(MAGIC_MIME_TYPE | MAGIC_ERROR);
	if (m && a.load(m, NULL) != 0) {
		a.close(m);
		m = NULL;
	}
	if (!m) {
		dlclose(h);
		return;
	}
	g_magic_api = a;
	g_magic = m;
}

/*
 * libmagic's type for head[0..n) copied into out[0..size), or "" when
 * libmagic is not available or has no answer.
 */
static void magic_sniff(char *out, size_t size, const void *head, size_t n)
{
	out[0] = '\0';
	pthread_once(&g_magic_once, magic_init);
	if (!g_magic)
		return;
	pthread_mutex_lock(&g_magic_lock);
	const char *t = g_magic_api.buffer(g_magic, head, n);
	if (t && strlen(t) < size)
		memcpy(out, t, strlen(t) + 1);
	pthread_mutex_unlock(&g_magic_lock);
}

static int is_generic(const char *t)
{
	return !strcmp(t, "application/octet-stream") || !strcmp(t, "text/plain") ||
	       !strcmp(t, "application/zip") || !strcmp(t, "application/x-empty") ||
	       !strcmp(t, "inode/x-empty");
}

int ba_mime_detect_type(struct ba_buf *out, const void *head, size_t n, const char *filename,
                        const struct ba_mime_opts *o, struct ba_err *err)
{
	char type[256]; /* a MIME type is at most 127 + 1 + 127 octets (RFC 6838 §4.2) */
	const char *sniffed = NULL;
	if (!(o && (o->flags & BA_MIME_NO_SNIFF))) {
		magic_sniff(type, sizeof(type), head, n);
		if (type[0])
			sniffed = type;
	}
	if (!sniffed || is_generic(sniffed) || !strchr(sniffed, '/')) {
		size_t before = out->len;
		int r = ba_mime_type_by_ext(out, filename, o ? o->mime_types : NULL);
		if (r < 0)
			return ba_err_set(err, EX_OSERR, "out of memory");
		if (r > 0)
			return 0;
		ba_buf_truncate(out, before);
		if (!sniffed || !strchr(sniffed, '/') || strstr(sniffed, "x-empty"))
			sniffed = n ? "application/octet-stream" : "text/plain";
	}
	if (ba_buf_addstr(out, sniffed) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

/* ---- the content scanner ------------------------------------------------ */

/*
 * Counters over a leaf's content, fed chunk by chunk; everything the choice
 * of transfer encoding needs, in constant memory.
 */
struct scan {
	uint64_t total, hi, ctl, qp_enc, crlf, cr_bare, lf;
	size_t line, maxline;
	int prev_cr;
	int at_bol;             /* next byte starts a line */
	size_t bol_match;       /* bytes of "--" BOUNDARY_PREFIX matched at line start */
	int boundary_like;      /* a line starts with "--" BOUNDARY_PREFIX */
	/* UTF-8 (RFC 3629 §4) */
	int u_need;
	uint32_t u_cp, u_min;
	uint64_t u_start;       /* offset of the sequence being read */
	int utf8_bad;
	uint64_t utf8_bad_off;
};

static void scan_init(struct scan *s)
{
	memset(s, 0, sizeof(*s));
	s->at_bol = 1;
}

static void scan_utf8(struct scan *s, unsigned char c, uint64_t off)
{
	if (s->utf8_bad)
		return;
	if (s->u_need) {
		if ((c & 0xC0) != 0x80)
			goto bad;
		s->u_cp = (s->u_cp << 6) | (c & 0x3F);
		if (--s->u_need == 0 &&
		    (s->u_cp < s->u_min || s->u_cp > 0x10FFFF || (s->u_cp >= 0xD800 && s->u_cp <= 0xDFFF)))
			goto bad;
		return;
	}
	if (c < 0x80)
		return;
	s->u_start = off;
	if (c >= 0xC2 && c <= 0xDF) {
		s->u_need = 1, s->u_cp = c & 0x1F, s->u_min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		s->u_need = 2, s->u_cp = c & 0x0F, s->u_min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		s->u_need = 3, s->u_cp = c & 0x07, s->u_min = 0x10000;
	} else {
		goto bad;
	}
	return;
bad:
	s->utf8_bad = 1;
	s->utf8_bad_off = s->u_start; /* the first byte of the bad sequence */
}

static void scan_chunk(struct scan *s, const unsigned char *p, size_t n)
{
	static const char marker[] = "--" BOUNDARY_PREFIX;
	for (size_t i = 0; i < n; i++) {
		/* fast path: a run of printable ASCII other than "=" in the middle of a
		 * line only makes the line longer */
		if (!s->prev_cr && !s->at_bol && !s->u_need && s->bol_match != s->line) {
			size_t j = i;
			while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '=')
				j++;
			if (j > i) {
				s->line += j - i;
				if (s->line > s->maxline)
					s->maxline = s->line;
				if (j == n)
					break;
				i = j;
			}
		}
		unsigned char c = p[i];
		uint64_t off = s->total + i;
		if (s->prev_cr) {
			if (c == '\n')
				s->crlf++;
			else
				s->cr_bare++;
		}
		s->prev_cr = c == '\r';
		if (s->at_bol) {
			s->at_bol = 0;
			s->bol_match = 0;
			s->line = 0;
		}
		if (s->bol_match == s->line && s->bol_match < sizeof(marker) - 1) {
			if (c == (unsigned char)marker[s->bol_match]) {
				if (++s->bol_match == sizeof(marker) - 1)
					s->boundary_like = 1;
			} else {
				s->bol_match = (size_t)-1;
			}
		}
		if (c == '\n') {
			s->lf++;
			s->at_bol = 1;
			continue;
		}
		if (c != '\r')
			s->line++;
		if (s->line > s->maxline)
			s->maxline = s->line;
		if (c >= 0x80) {
			s->hi++;
			s->qp_enc++;
		} else if ((c < 32 && c != '\t' && c != '\r' && c != '\f') || c == 127) {
			s->ctl++;
			s->qp_enc++;
		} else if (c == '=') {
			s->qp_enc++;
		}
		scan_utf8(s, c, off);
	}
	s->total += n;
}

/* Called at end of input: counts what is only known then. */
static void scan_end(struct scan *s)
{
	if (s->prev_cr)
		s->cr_bare++;
	s->prev_cr = 0;
	if (s->u_need && !s->utf8_bad) {
		s->utf8_bad = 1;
		s->utf8_bad_off = s->u_start;
	}
}

/* line endings the content uses match eol exactly (or it has none) */
static int endings_match(const struct scan *s, const char *eol)
{
	if (s->cr_bare)
		return 0;
	if (eol[0] == '\n')
		return s->crlf == 0;
	return s->lf == s->crlf; /* every LF is part of a CRLF */
}

/* ---- choosing the transfer encoding ------------------------------------- */

static int leaf_open_reader(ba_mime_part *p, struct ba_fd_reader *fr, struct ba_mem_reader *mr,
                            ba_reader **r, struct ba_err *err)
{
	if (p->fd < 0) {
		ba_mem_reader_init(mr, p->mem, p->memlen);
		*r = &mr->base;
		return 0;
	}
	if (lseek(p->fd, p->start, SEEK_SET) < 0)
		return ba_err_set(err, EX_IOERR, "cannot read '%s': %s", p->name, ba_strerror_t(errno));
	ba_fd_reader_init(fr, p->fd, p->name);
	*r = &fr->base;
	return 0;
}

static int leaf_type(ba_mime_part *p, const unsigned char *head, size_t n,
                     const struct ba_mime_opts *o, struct ba_err *err)
{
	if (p->type)
		return 0;
	struct ba_buf t = BA_BUF_INIT;
	if (p->role == BA_MIME_BODY) {
		ba_buf_addstr(&t, "text/plain");
	} else if (ba_mime_detect_type(&t, head, n, p->filename ? p->filename : p->name, o,
	                               err) < 0) {
		ba_buf_release(&t);
		return -1;
	}
	p->type = ba_buf_detach(&t, NULL);
	return p->type ? 0 : ba_err_set(err, EX_OSERR, "out of memory");
}

/*
 * The first pass: reads a leaf through the scanner, detecting its type from
 * the first chunk.  Returns 1 when the first chunk settles the encoding
 * (binary content in a non-text attachment can only be base64), so the rest
 * need not be read twice; 0 after reading everything; -1 on error.
 */
static int scan_leaf(ba_mime_part *p, struct scan *s, unsigned char *chunk,
                     const struct ba_mime_opts *o, struct ba_err *err)
{
	struct ba_fd_reader fr;
	struct ba_mem_reader mr;
	ba_reader *r;
	if (leaf_open_reader(p, &fr, &mr, &r, err) < 0)
		return -1;
	scan_init(s);
	ssize_t k = ba_read_full(r, chunk, BA_MIME_CHUNK, err);
	if (k < 0)
		return -1;
	scan_chunk(s, chunk, (size_t)k);
	if (leaf_type(p, chunk, (size_t)k, o, err) < 0)
		return -1;
	if (p->role == BA_MIME_ATTACHMENT && strncmp(p->type, "text/", 5) != 0 &&
	    (s->hi || s->ctl))
		return 1;
	while ((size_t)k == BA_MIME_CHUNK) {
		k = ba_read_full(r, chunk, BA_MIME_CHUNK, err);
		if (k < 0)
			return -1;
		scan_chunk(s, chunk, (size_t)k);
	}
	scan_end(s);
	return 0;
}

static int choose_cte(ba_mime_part *p, const struct scan *s,
                      const struct ba_mime_opts *o, struct ba_err *err)
{
	const char *eol = eol_of(o);
	int body = p->role == BA_MIME_BODY;
	int text = body || strncmp(p->type, "text/", 5) == 0;
	int utf8 = !s->utf8_bad;
	if (body && !utf8)
		return ba_err_set(err, EX_DATAERR, "'%s': invalid utf-8 at byte %llu", p->name,
		                  (unsigned long long)s->utf8_bad_off);
	p->charset_utf8 = text && utf8;
	/* body text is canonicalised (LF and CRLF become eol); attachments must already match */
	int ends_ok = body ? s->cr_bare == 0 : endings_match(s, eol);
	int lines_ok = s->maxline <= LINE_MAX_OCTETS && !s->boundary_like && ends_ok && !s->ctl;
	if (lines_ok && s->hi == 0) {
		p->cte = BA_MIME_CTE_7BIT;
	} else if (text && lines_ok && utf8 && o && (o->flags & BA_MIME_ALLOW_8BIT)) {
		p->cte = BA_MIME_CTE_8BIT;
	} else if (text && (body || ends_ok) && s->qp_enc * 6 <= s->total) {
		/* mostly ASCII: QP stays readable and is smaller than base64 (2 extra octets
		 * per encoded one against 1/3 more for all) */
		p->cte = BA_MIME_CTE_QP;
		p->qp_text = 1;
	} else {
		p->cte = BA_MIME_CTE_BASE64;
	}
	return 0;
}

static int fill_random(const struct ba_mime_opts *o, void *buf, size_t n, struct ba_err *err)
{
	if (o && o->random)
		return o->random(o->random_ctx, buf, n, err);
	unsigned char *p = buf;
	while (n) {
		ssize_t k = getrandom(p, n, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return ba_err_set(err, EX_OSERR, "cannot get random bytes: %s", ba_strerror_t(errno));
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/*
 * Why a boundary never occurs in the content (RFC 2046 §5.1.1 requires it):
 * a delimiter line starts with "--" followed by the boundary, and every
 * boundary starts with "=_".  Inside a multipart, the lines that are not
 * delimiters are
 *   - base64 lines: only A-Z a-z 0-9 + / =, never "-", so never "--";
 *   - quoted-printable lines: "=" is only ever followed by two hex digits or
 *     the line end (RFC 2045 §6.7), so "=_" cannot occur at all;
 *   - 7bit and 8bit lines: the content is scanned in both passes, and a part
 *     with a line starting "--=_" is never sent unencoded (prepare chooses QP;
 *     write refuses a file that changed to contain one);
 *   - part header lines: field names and folded continuations (which start
 *     with white space) never start with "--";
 *   - delimiters of nested multiparts: all boundaries have the same length
 *     and are distinct, so none is a prefix of another.
 * The random part (about 155 bits) is not needed for the guarantee; it keeps
 * boundaries unpredictable, as other MUAs do.
 */
static int choose_boundary(ba_mime_part *p, ba_mime_part *root, const struct ba_mime_opts *o,
                           struct ba_err *err);

static int boundary_used(ba_mime_part *t, ba_mime_part *self)
{
	for (; t; t = t->next) {
		if (t != self && t->multipart && t->boundary[0] &&
		    strcmp(t->boundary, self->boundary) == 0)
			return 1;
		if (t->multipart && boundary_used(t->first, self))
			return 1;
	}
	return 0;
}

static int choose_boundary(ba_mime_part *p, ba_mime_part *root, const struct ba_mime_opts *o,
                           struct ba_err *err)
{
	static const char alphabet[] =
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	for (int tries = 0; tries < 100; tries++) {
		unsigned char rnd[BOUNDARY_RANDOM];
		if (fill_random(o, rnd, sizeof(rnd), err) < 0)
			return -1;
		size_t n = strlen(BOUNDARY_PREFIX);
		memcpy(p->boundary, BOUNDARY_PREFIX, n);
		for (size_t i = 0; i < sizeof(rnd); i++)
			p->boundary[n++] = alphabet[rnd[i] % 62];
		p->boundary[n] = '\0';
		if (!boundary_used(root, p))
			return 0;
	}
	return ba_err_set(err, EX_SOFTWARE, "random source keeps repeating itself");
}

static int prepare_part(ba_mime_part *p, ba_mime_part *root, const struct ba_mime_opts *o,
                        unsigned char *chunk, struct ba_err *err)
{
	if (p->multipart) {
		if (!p->first)
			return ba_err_set(err, EX_SOFTWARE, "empty multipart/%s", p->subtype);
		if (choose_boundary(p, root, o, err) < 0)
			return -1;
		for (ba_mime_part *c = p->first; c; c = c->next)
			if (prepare_part(c, root, o, chunk, err) < 0)
				return -1;
		return 0;
	}
	struct scan s;
	int r = scan_leaf(p, &s, chunk, o, err);
	if (r < 0)
		return -1;
	if (r == 1) {
		p->cte = BA_MIME_CTE_BASE64;
		p->charset_utf8 = 0;
		return 0;
	}
	return choose_cte(p, &s, o, err);
}

int ba_mime_prepare(ba_mime_part *root, const struct ba_mime_opts *o, struct ba_err *err)
{
	unsigned char *chunk = malloc(BA_MIME_CHUNK);
	if (!chunk)
		return ba_err_set(err, EX_OSERR, "out of memory");
	int rc = prepare_part(root, root, o, chunk, err);
	free(chunk);
	return rc;
}

/* ---- writing ------------------------------------------------------------ */

/* Appends the Content-* fields of p to h. */
static int part_headers(struct ba_buf *h, ba_mime_part *p, const char *eol, struct ba_err *err)
{
	size_t col;
	if (p->multipart) {
		ba_buf_addf(h, "Content-Type: multipart/%s;", p->subtype);
		col = strlen("Content-Type: multipart/;") + strlen(p->subtype);
		/* the boundary is at most 30 characters: it always fits a folded line */
		if (col + strlen(" boundary=\"\"") + strlen(p->boundary) > 78)
			ba_buf_addf(h, "%s", eol);
		ba_buf_addf(h, " boundary=\"%s\"%s", p->boundary, eol);
	} else {
		ba_buf_addf(h, "Content-Type: %s", p->type);
		col = strlen("Content-Type: ") + strlen(p->type);
		if (p->charset_utf8 && ba_rfc2231_param(h, "charset", "utf-8", &col, eol, err) < 0)
			return -1;
		ba_buf_addf(h, "%sContent-Transfer-Encoding: %s%s", eol, ba_mime_cte_name(p->cte), eol);
		if (p->role == BA_MIME_ATTACHMENT) {
			ba_buf_addstr(h, "Content-Disposition: attachment");
			col = strlen("Content-Disposition: attachment");
			if (p->filename &&
			    ba_rfc2231_param(h, "filename", p->filename, &col, eol, err) < 0)
				return -1;
			ba_buf_addstr(h, eol);
		}
	}
	if (ba_buf_failed(h))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

/*
 * Writes unencoded text (7bit, 8bit), turning LF and CRLF into eol.  The
 * chunk has been scanned and found to fit the chosen encoding; a CR at the
 * end of a chunk is held back until the next shows whether LF follows.
 */
static int write_lines(ba_writer *w, const unsigned char *p, size_t n, const char *eol,
                       int *held_cr, struct ba_err *err)
{
	size_t eol_len = strlen(eol);
	if (*held_cr && n && p[0] != '\n' && ba_write(w, "\r", 1, err) < 0)
		return -1;
	if (n)
		*held_cr = 0;
	while (n) {
		const unsigned char *nl = memchr(p, '\n', n);
		if (!nl) {
			size_t k = n;
			if (p[k - 1] == '\r') {
				*held_cr = 1;
				k--;
			}
			return ba_write(w, p, k, err);
		}
		size_t k = (size_t)(nl - p);
		size_t t = k && p[k - 1] == '\r' ? k - 1 : k;
		if (ba_write(w, p, t, err) < 0 || ba_write(w, eol, eol_len, err) < 0)
			return -1;
		p = nl + 1;
		n -= k + 1;
	}
	return 0;
}

/* Encoder state for one leaf, heap-allocated (the encoders carry 16 KB buffers). */
union encoder {
	struct ba_b64_writer b64;
	struct ba_qp_writer qp;
};

static int write_leaf(ba_writer *w, ba_mime_part *p, const struct ba_mime_opts *o,
                      unsigned char *chunk, int *ends_eol, struct ba_err *err)
{
	const char *eol = eol_of(o);
	struct ba_fd_reader fr;
	struct ba_mem_reader mr;
	ba_reader *r;
	if (leaf_open_reader(p, &fr, &mr, &r, err) < 0)
		return -1;
	union encoder *enc = NULL;
	ba_writer *dst = w;
	if (p->cte == BA_MIME_CTE_BASE64 || p->cte == BA_MIME_CTE_QP) {
		enc = malloc(sizeof(*enc));
		if (!enc)
			return ba_err_set(err, EX_OSERR, "out of memory");
		if (p->cte == BA_MIME_CTE_BASE64) {
			ba_b64_writer_init(&enc->b64, w, eol, 76);
			dst = &enc->b64.base;
		} else {
			ba_qp_writer_init(&enc->qp, w, eol, p->qp_text ? BA_QP_TEXT : 0);
			dst = &enc->qp.base;
		}
	}
	struct scan s;
	scan_init(&s);
	int held_cr = 0, rc = -1;
	unsigned char last = '\n';
	int any = 0;
	for (;;) {
		ssize_t k = ba_read_full(r, chunk, BA_MIME_CHUNK, err);
		if (k < 0)
			goto out;
		if (k == 0)
			break;
		if (!enc) {
			scan_chunk(&s, chunk, (size_t)k);
			int still = s.maxline <= LINE_MAX_OCTETS && !s.boundary_like && !s.ctl &&
			            (p->cte == BA_MIME_CTE_8BIT || s.hi == 0) &&
			            (p->role == BA_MIME_BODY ? s.cr_bare == 0
			                                     : endings_match(&s, eol));
			if (!still) {
				ba_err_set(err, EX_DATAERR, "'%s' changed while being read", p->name);
				goto out;
			}
			if (write_lines(dst, chunk, (size_t)k, eol, &held_cr, err) < 0)
				goto out;
		} else if (p->role == BA_MIME_BODY && p->cte == BA_MIME_CTE_BASE64) {
			/* body text is canonical in base64 too: LF and CRLF become eol */
			if (write_lines(dst, chunk, (size_t)k, eol, &held_cr, err) < 0)
				goto out;
		} else if (ba_write(dst, chunk, (size_t)k, err) < 0) {
			goto out;
		}
		last = chunk[k - 1];
		any = 1;
		if ((size_t)k < BA_MIME_CHUNK)
			break;
	}
	if (held_cr && enc) { /* a bare CR at the very end of encoded text */
		if (ba_write(dst, "\r", 1, err) < 0)
			goto out;
	} else if (held_cr) {
		ba_err_set(err, EX_DATAERR, "'%s' changed while being read", p->name);
		goto out;
	}
	if (p->cte == BA_MIME_CTE_BASE64) {
		if (ba_b64_writer_finish(&enc->b64, err) < 0)
			goto out;
		*ends_eol = 1; /* the encoder ends its last line, and empty output is no line */
	} else if (p->cte == BA_MIME_CTE_QP) {
		if (ba_qp_writer_finish(&enc->qp, err) < 0)
			goto out;
		*ends_eol = !any || last == '\n';
	} else {
		*ends_eol = !any || last == '\n';
	}
	rc = 0;
out:
	free(enc);
	return rc;
}

static int write_part(ba_writer *w, ba_mime_part *p, const struct ba_mime_opts *o,
                      unsigned char *chunk, int *ends_eol, struct ba_err *err)
{
	const char *eol = eol_of(o);
	struct ba_buf h = BA_BUF_INIT;
	if (part_headers(&h, p, eol, err) < 0) {
		ba_buf_release(&h);
		return -1;
	}
	ba_buf_addstr(&h, eol);
	int rc = ba_buf_failed(&h) ? ba_err_set(err, EX_OSERR, "out of memory")
	                           : ba_write(w, h.data, h.len, err);
	ba_buf_release(&h);
	if (rc < 0)
		return -1;
	if (!p->multipart)
		return write_leaf(w, p, o, chunk, ends_eol, err);
	/* RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter */
	for (ba_mime_part *c = p->first; c; c = c->next) {
		int child_eol;
		if (ba_write_str(w, "--", err) < 0 || ba_write_str(w, p->boundary, err) < 0 ||
		    ba_write_str(w, eol, err) < 0 ||
		    write_part(w, c, o, chunk, &child_eol, err) < 0 || ba_write_str(w, eol, err) < 0)
			return -1;
	}
	if (ba_write_str(w, "--", err) < 0 || ba_write_str(w, p->boundary, err) < 0 ||
	    ba_write_str(w, "--", err) < 0 || ba_write_str(w, eol, err) < 0)
		return -1;
	*ends_eol = 1;
	return 0;
}

int ba_mime_write(ba_writer *w, ba_mime_part *root, const struct ba_mime_opts *o,
                  struct ba_err *err)
{
	unsigned char *chunk = malloc(BA_MIME_CHUNK);
	if (!chunk)
		return ba_err_set(err, EX_OSERR, "out of memory");
	int ends_eol = 1;
	int rc = write_part(w, root, o, chunk, &ends_eol, err);
	/* a message ends with a line break (RFC 5321 §4.1.1.4 needs one before the final dot) */
	if (rc == 0 && !ends_eol)
		rc = ba_write_str(w, eol_of(o), err);
	free(chunk);
	return rc;
}

/* ---- 8-bit downgrade ------------------------------------------------------
 *
 * Reads a message as a stream of lines and writes it back with every leaf
 * that is not 7-bit clean (8bit or binary content, or lines over 998
 * octets) re-encoded: quoted-printable for text, base64 otherwise (RFC 6152
 * §3 leaves the conversion to the client; RFC 2045 §6 gives the encodings).
 * A leaf's body is held in a spool (memory up to DG_SPOOL_MEM, then an
 * unlinked temporary file) until its end is seen, because its header, which
 * comes first, must name the encoding chosen from all of its content.
 */

#define DG_LINE_MAX 4096
#define DG_HEADER_MAX (1024 * 1024)
#define DG_SPOOL_MEM (256 * 1024)
#define DG_DEPTH_MAX 32

struct dg_spool {
	unsigned char *mem;
	size_t len;   /* bytes in mem (all of them while fd < 0; not yet written otherwise) */
	size_t cap;   /* size of mem: grows by doubling up to DG_SPOOL_MEM (most parts are small) */
	int fd;
};

static int dg_spool_flush(struct dg_spool *sp, struct ba_err *err)
{
	size_t off = 0;
	while (off < sp->len) {
		ssize_t k = write(sp->fd, sp->mem + off, sp->len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ba_err_set(err, EX_IOERR, "cannot write a temporary file: %s",
			                  ba_strerror_t(errno));
		off += (size_t)k;
	}
	sp->len = 0;
	return 0;
}

static int dg_spool_add(struct dg_spool *sp, const void *p, size_t n, struct ba_err *err)
{
	if (!n)
		return 0;
	if (sp->len + n > sp->cap && sp->cap < DG_SPOOL_MEM) {
		size_t cap = sp->cap ? sp->cap : 4096;
		while (cap < sp->len + n && cap < DG_SPOOL_MEM)
			cap *= 2;
		if (cap > DG_SPOOL_MEM)
			cap = DG_SPOOL_MEM;
		unsigned char *m = realloc(sp->mem, cap);
		if (!m)
			return ba_err_set(err, EX_OSERR, "out of memory");
		sp->mem = m;
		sp->cap = cap;
	}
	if (sp->len + n > DG_SPOOL_MEM) {
		if (sp->fd < 0 && ba_tmpfile(&sp->fd, err) < 0)
			return -1;
		if (dg_spool_flush(sp, err) < 0)
			return -1;
		if (n > DG_SPOOL_MEM) {
			sp->len = 0;
			const unsigned char *q = p;
			while (n) {
				size_t k = n > DG_SPOOL_MEM ? DG_SPOOL_MEM : n;
				memcpy(sp->mem, q, k);
				sp->len = k;
				if (dg_spool_flush(sp, err) < 0)
					return -1;
				q += k;
				n -= k;
			}
			return 0;
		}
	}
	memcpy(sp->mem + sp->len, p, n);
	sp->len += n;
	return 0;
}

static void dg_spool_release(struct dg_spool *sp)
{
	free(sp->mem);
	if (sp->fd >= 0)
		close(sp->fd);
	sp->mem = NULL;
	sp->len = 0;
	sp->fd = -1;
}

struct dg {
	ba_writer *out;
	const char *eol;
	const struct ba_mime_opts *o;
	struct ba_linereader lr;
	int at_bol;
	char *bounds[DG_DEPTH_MAX];
	size_t nb;
	unsigned char *chunk;
};

/*
 * Whether line is a delimiter of an enclosing multipart (RFC 2046 §5.1.1:
 * "--" boundary, optionally "--", then only transport padding).  Returns the
 * index in d->bounds (innermost wins) or -1; *close is set for "--b--".
 */
static int dg_boundary(const struct dg *d, const char *line, size_t len, int *close)
{
	if (!d->at_bol || len < 3 || line[0] != '-' || line[1] != '-')
		return -1;
	for (size_t i = d->nb; i-- > 0;) {
		size_t bl = strlen(d->bounds[i]);
		if (len - 2 < bl || memcmp(line + 2, d->bounds[i], bl) != 0)
			continue;
		size_t k = 2 + bl;
		*close = len - k >= 2 && line[k] == '-' && line[k + 1] == '-';
		if (*close)
			k += 2;
		while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' ||
		                   line[k] == '\n'))
			k++;
		if (k == len)
			return (int)i;
	}
	return -1;
}

/* Next piece of input; keeps d->at_bol.  1, 0 at end, -1 on error. */
static int dg_next(struct dg *d, const char **line, size_t *len, int *bol, struct ba_err *err)
{
	int r = ba_linereader_next(&d->lr, line, len, err);
	if (r <= 0)
		return r;
	*bol = d->at_bol;
	d->at_bol = (*line)[*len - 1] == '\n';
	return 1;
}

static size_t strip_eol(const char *line, size_t len)
{
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	return len;
}

static int has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* Header fields whose body is unstructured text (RFC 5322 §3.6.5, §3.6.8; RFC 2045 §8). */
static int unstructured(const char *name, size_t n)
{
	static const char *const names[] = { "Subject", "Comments", "Keywords",
	                                     "Content-Description", "Thread-Topic", NULL };
	if (n > 2 && strncasecmp(name, "X-", 2) == 0)
		return 1;
	for (const char *const *p = names; *p; p++)
		if (strlen(*p) == n && strncasecmp(*p, name, n) == 0)
			return 1;
	return 0;
}

/* Lowercased value of parameter param of a Content-Type body, or "" (into out). */
static void ct_param(const char *v, const char *param, char *out, size_t outsz)
{
	size_t pl = strlen(param);
	out[0] = '\0';
	for (const char *p = strchr(v, ';'); p; p = strchr(p + 1, ';')) {
		const char *q = p + 1;
		while (*q == ' ' || *q == '\t')
			q++;
		if (strncasecmp(q, param, pl) != 0)
			continue;
		q += pl;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		size_t n = 0;
		if (*q == '"') {
			for (q++; *q && *q != '"' && n + 1 < outsz; q++) {
				if (*q == '\\' && q[1])
					q++;
				out[n++] = *q;
			}
		} else {
			while (*q && *q != ';' && *q != ' ' && *q != '\t' && n + 1 < outsz)
				out[n++] = *q++;
		}
		out[n] = '\0';
		return;
	}
}

/* A field with its continuation lines, or a malformed line (name_len 0), in dg_header.raw. */
struct dg_field {
	size_t off, len;        /* the lines, each ending in "\n" */
	size_t name_len;
};

struct dg_header {
	struct ba_buf raw;      /* the lines, each ending in "\n" (line ends made LF) */
	struct dg_field *f;
	size_t n, alloc;
	char type[128];         /* "text/plain" (lowercase), "" when absent */
	char cte[32];           /* lowercase, "" when absent */
	char boundary[128];
};

/* Unfolded, trimmed body of the field starting at f (a "Name: value\n ..." run). */
static void field_value(struct ba_buf *v, const char *colon, const char *end)
{
	const char *p = colon + 1;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (; p < end; p++)
		if (*p != '\n' && *p != '\r')
			ba_buf_addch(v, *p);
	while (v->len && (v->data[v->len - 1] == ' ' || v->data[v->len - 1] == '\t'))
		ba_buf_truncate(v, v->len - 1);
}

static int dg_add_field(struct dg_header *h, size_t name_len, struct ba_err *err)
{
	if (h->n == h->alloc) {
		size_t na = h->alloc ? h->alloc * 2 : 16;
		struct dg_field *nf = realloc(h->f, na * sizeof(*nf));
		if (!nf)
			return ba_err_set(err, EX_OSERR, "out of memory");
		h->f = nf;
		h->alloc = na;
	}
	h->f[h->n++] = (struct dg_field){ h->raw.len, 0, name_len };
	return 0;
}

/* The colon after the name of field f (name_len > 0). */
static const char *dg_colon(const struct dg_header *h, const struct dg_field *f)
{
	const char *s = h->raw.data + f->off;
	return memchr(s + f->name_len, ':', f->len - f->name_len);
}

/*
 * Reads a header up to its blank line (consumed), a delimiter (not
 * consumed: *end_idx) or EOF.  Its lines are classified by header.h's
 * reader, as every reader of a header does: malformed lines are kept as
 * they are, a bare CR is an error.
 */
static int dg_read_header(struct dg *d, struct dg_header *h, int *end_idx, int *end_close,
                          int *eof, struct ba_err *err)
{
	const char *line;
	size_t len;
	int bol;
	struct ba_header_reader rd;
	ba_header_reader_init(&rd, BA_HEADER_KEEP_MALFORMED);
	*end_idx = -1;
	*eof = 0;
	for (;;) {
		int r = dg_next(d, &line, &len, &bol, err);
		if (r < 0)
			return -1;
		if (r == 0) {
			*eof = 1;
			break;
		}
		if (bol) {
			int idx = dg_boundary(d, line, len, end_close);
			if (idx >= 0) {
				*end_idx = idx;
				break;
			}
		}
		int kind = ba_header_reader_piece(&rd, line, len, err);
		if (kind < 0)
			return -1;
		if (kind == BA_HEADER_LINE_END)
			break;
		if (rd.line_start && kind != BA_HEADER_LINE_CONT &&
		    dg_add_field(h, rd.name_len, err) < 0)
			return -1;
		size_t before = h->raw.len;
		ba_buf_add(&h->raw, line, strip_eol(line, len));
		if (line[len - 1] == '\n')
			ba_buf_addch(&h->raw, '\n');
		h->f[h->n - 1].len += h->raw.len - before;
		if (h->raw.len > DG_HEADER_MAX)
			return ba_err_set(err, EX_DATAERR, "message header larger than %d octets",
			                  DG_HEADER_MAX);
	}
	if (ba_buf_failed(&h->raw))
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (h->raw.len && h->raw.data[h->raw.len - 1] != '\n') {
		ba_buf_addch(&h->raw, '\n');
		h->f[h->n - 1].len++;
	}
	/* find Content-Type and Content-Transfer-Encoding */
	for (size_t i = 0; i < h->n; i++) {
		const struct dg_field *f = &h->f[i];
		const char *s = h->raw.data + f->off;
		size_t nl = f->name_len;
		int ct = nl == 12 && strncasecmp(s, "Content-Type", 12) == 0;
		int te = nl == 25 && strncasecmp(s, "Content-Transfer-Encoding", 25) == 0;
		if (!ct && !te)
			continue;
		struct ba_buf v = BA_BUF_INIT;
		field_value(&v, dg_colon(h, f), s + f->len);
		if (ct) {
			size_t k = 0;
			const char *t = ba_buf_str(&v);
			while (t[k] && t[k] != ';' && t[k] != ' ' && k + 1 < sizeof(h->type)) {
				h->type[k] = (char)(t[k] >= 'A' && t[k] <= 'Z' ? t[k] + 32 : t[k]);
				k++;
			}
			h->type[k] = '\0';
			ct_param(t, "boundary", h->boundary, sizeof(h->boundary));
		} else {
			size_t k = 0;
			for (const char *t = ba_buf_str(&v); *t && k + 1 < sizeof(h->cte); t++)
				if (*t != ' ' && *t != '\t')
					h->cte[k++] = (char)(*t >= 'A' && *t <= 'Z' ? *t + 32 : *t);
			h->cte[k] = '\0';
		}
		ba_buf_release(&v);
	}
	return 0;
}

/*
 * Writes the header with line endings made eol, 8-bit unstructured fields
 * RFC 2047-encoded, and Content-Transfer-Encoding replaced by cte (when not
 * NULL; added if absent).  Ends with the blank line.
 */
static int dg_write_header(struct dg *d, const struct dg_header *h, const char *cte,
                           struct ba_err *err)
{
	struct ba_buf o = BA_BUF_INIT;
	int rc = 0;
	for (size_t i = 0; i < h->n && rc == 0; i++) {
		const struct dg_field *f = &h->f[i];
		const char *s = h->raw.data + f->off, *e = s + f->len;
		size_t nl = f->name_len;
		if (nl == 25 && strncasecmp(s, "Content-Transfer-Encoding", 25) == 0 && cte)
			continue; /* written below */
		if (has_8bit(s, f->len)) {
			if (!nl) {
				rc = ba_err_set(err, EX_DATAERR, "cannot make a header line without a valid "
				                "field name 7-bit");
				break;
			}
			if (!unstructured(s, nl)) {
				rc = ba_err_set(err, EX_DATAERR, "cannot make header field '%.*s' 7-bit: "
				                "it is not plain text (the peer needs SMTPUTF8)",
				                (int)(nl > 60 ? 60 : nl), s);
				break;
			}
			struct ba_buf v = BA_BUF_INIT;
			field_value(&v, dg_colon(h, f), e);
			size_t col = nl + 2;
			ba_buf_add(&o, s, nl);
			ba_buf_addstr(&o, ": ");
			rc = ba_rfc2047_encode(&o, v.data ? v.data : "", v.len, &col, d->eol, 0, err);
			ba_buf_release(&v);
			if (rc < 0) {
				ba_err_prefix(err, "header field '%.*s': ", (int)(nl > 60 ? 60 : nl), s);
				break;
			}
			ba_buf_addstr(&o, d->eol);
		} else {
			for (const char *l = s; l < e;) {
				const char *nlp = memchr(l, '\n', (size_t)(e - l));
				ba_buf_add(&o, l, (size_t)(nlp - l));
				ba_buf_addstr(&o, d->eol);
				l = nlp + 1;
			}
		}
	}
	if (rc == 0) {
		if (cte)
			ba_buf_addf(&o, "Content-Transfer-Encoding: %s%s", cte, d->eol);
		ba_buf_addstr(&o, d->eol);
		rc = ba_buf_failed(&o) ? ba_err_set(err, EX_OSERR, "out of memory")
		                       : ba_write(d->out, o.data, o.len, err);
	}
	ba_buf_release(&o);
	return rc;
}

static int dg_entity(struct dg *d, size_t depth, int *end_idx, int *end_close,
                     struct ba_err *err);

/* Copies lines (preamble, epilogue) until a delimiter or EOF, made 7-bit ('?' for 8-bit). */
static int dg_copy_until_boundary(struct dg *d, int *end_idx, int *end_close, struct ba_err *err)
{
	const char *line;
	size_t len;
	int bol;
	*end_idx = -1;
	for (;;) {
		int r = dg_next(d, &line, &len, &bol, err);
		if (r <= 0)
			return r;
		if (bol && (*end_idx = dg_boundary(d, line, len, end_close)) >= 0)
			return 0;
		size_t n = strip_eol(line, len);
		for (size_t i = 0; i < n; i++) {
			char c = (unsigned char)line[i] >= 0x80 ? '?' : line[i];
			if (ba_write(d->out, &c, 1, err) < 0)
				return -1;
		}
		if (n < len && ba_write_str(d->out, d->eol, err) < 0)
			return -1;
	}
}

static int dg_multipart(struct dg *d, struct dg_header *h, size_t depth, int *end_idx,
                        int *end_close, struct ba_err *err)
{
	/* a multipart is 7bit once its parts are (RFC 2045 §6.4) */
	int fix = !strcmp(h->cte, "8bit") || !strcmp(h->cte, "binary");
	if (dg_write_header(d, h, fix ? "7bit" : NULL, err) < 0)
		return -1;
	if (!(d->bounds[d->nb] = malloc(strlen(h->boundary) + 1)))
		return ba_err_set(err, EX_OSERR, "out of memory");
	memcpy(d->bounds[d->nb], h->boundary, strlen(h->boundary) + 1);
	size_t mine = d->nb++;
	int rc = dg_copy_until_boundary(d, end_idx, end_close, err); /* preamble */
	while (rc == 0 && *end_idx == (int)mine && !*end_close) {
		if (ba_write_str(d->out, "--", err) < 0 ||
		    ba_write_str(d->out, d->bounds[mine], err) < 0 ||
		    ba_write_str(d->out, d->eol, err) < 0) {
			rc = -1;
			break;
		}
		rc = dg_entity(d, depth + 1, end_idx, end_close, err);
	}
	if (rc == 0) {
		if (ba_write_str(d->out, "--", err) < 0 ||
		    ba_write_str(d->out, d->bounds[mine], err) < 0 ||
		    ba_write_str(d->out, "--", err) < 0 || ba_write_str(d->out, d->eol, err) < 0)
			rc = -1;
		else if (*end_idx == (int)mine) /* the close delimiter: an epilogue may follow */
			rc = dg_copy_until_boundary(d, end_idx, end_close, err);
	}
	free(d->bounds[mine]);
	d->nb = mine;
	if (*end_idx >= (int)mine)
		*end_idx = -1; /* cannot happen: our own boundary is handled above */
	return rc;
}

static int dg_leaf(struct dg *d, struct dg_header *h, int *end_idx, int *end_close,
                   struct ba_err *err)
{
	struct dg_spool sp = { NULL, 0, 0, -1 };
	struct scan s;
	scan_init(&s);
	const char *line;
	size_t len;
	int bol, rc = -1;
	char held[2];
	size_t nheld = 0;
	*end_idx = -1;
	for (;;) {
		int r = dg_next(d, &line, &len, &bol, err);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		if (bol && (*end_idx = dg_boundary(d, line, len, end_close)) >= 0)
			break;
		/* the line ending before a delimiter belongs to it (RFC 2046 §5.1.1): hold it back */
		if (nheld && (dg_spool_add(&sp, held, nheld, err) < 0))
			goto out;
		scan_chunk(&s, (const unsigned char *)held, nheld);
		size_t n = strip_eol(line, len);
		nheld = len - n;
		memcpy(held, line + n, nheld);
		if (dg_spool_add(&sp, line, n, err) < 0)
			goto out;
		scan_chunk(&s, (const unsigned char *)line, n);
	}
	if (*end_idx < 0 && nheld) {
		if (dg_spool_add(&sp, held, nheld, err) < 0)
			goto out;
		scan_chunk(&s, (const unsigned char *)held, nheld);
	}
	scan_end(&s);
	int clean = s.hi == 0 && s.ctl == 0 && s.cr_bare == 0 && s.maxline <= LINE_MAX_OCTETS;
	const char *cte = NULL;
	enum ba_mime_cte how = BA_MIME_CTE_7BIT;
	if (clean) {
		if (!strcmp(h->cte, "8bit") || !strcmp(h->cte, "binary"))
			cte = "7bit";
	} else if (!strcmp(h->cte, "quoted-printable") || !strcmp(h->cte, "base64")) {
		ba_err_set(err, EX_DATAERR, "a part declared %s contains 8-bit data or long lines",
		           h->cte);
		goto out;
	} else if (!h->type[0] || !strncmp(h->type, "text/", 5)) {
		cte = "quoted-printable";
		how = BA_MIME_CTE_QP;
	} else {
		cte = "base64";
		how = BA_MIME_CTE_BASE64;
	}
	if (dg_write_header(d, h, cte, err) < 0)
		goto out;
	/* the body, from the spool */
	union encoder *enc = NULL;
	ba_writer *dst = d->out;
	if (how != BA_MIME_CTE_7BIT) {
		if (!(enc = malloc(sizeof(*enc)))) {
			ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		if (how == BA_MIME_CTE_QP) {
			ba_qp_writer_init(&enc->qp, d->out, d->eol, BA_QP_TEXT);
			dst = &enc->qp.base;
		} else {
			ba_b64_writer_init(&enc->b64, d->out, d->eol, 76);
			dst = &enc->b64.base;
		}
	}
	int held_cr = 0, wrc = 0;
	if (sp.fd >= 0) {
		if (dg_spool_flush(&sp, err) < 0 || lseek(sp.fd, 0, SEEK_SET) < 0) {
			free(enc);
			goto out;
		}
		struct ba_fd_reader fr;
		ba_fd_reader_init(&fr, sp.fd, "temporary file");
		ssize_t k;
		while (wrc == 0 && (k = ba_read(&fr.base, d->chunk, BA_MIME_CHUNK, err)) != 0)
			wrc = k < 0 ? -1
			     : enc ? ba_write(dst, d->chunk, (size_t)k, err)
			           : write_lines(dst, d->chunk, (size_t)k, d->eol, &held_cr, err);
	} else if (sp.len) {
		wrc = enc ? ba_write(dst, sp.mem, sp.len, err)
		          : write_lines(dst, sp.mem, sp.len, d->eol, &held_cr, err);
	}
	if (wrc == 0 && how == BA_MIME_CTE_QP)
		wrc = ba_qp_writer_finish(&enc->qp, err);
	else if (wrc == 0 && how == BA_MIME_CTE_BASE64)
		wrc = ba_b64_writer_finish(&enc->b64, err);
	free(enc);
	if (wrc < 0)
		goto out;
	/* every entity ends with a line ending, which serves the next delimiter */
	if (*end_idx >= 0 && how != BA_MIME_CTE_BASE64 && ba_write_str(d->out, d->eol, err) < 0)
		goto out;
	rc = 0;
out:
	dg_spool_release(&sp);
	return rc;
}

static int dg_entity(struct dg *d, size_t depth, int *end_idx, int *end_close,
                     struct ba_err *err)
{
	if (depth >= DG_DEPTH_MAX)
		return ba_err_set(err, EX_DATAERR, "message nested more than %d levels deep",
		                  DG_DEPTH_MAX);
	struct dg_header h;
	memset(&h, 0, sizeof(h));
	ba_buf_init(&h.raw, 0);
	int eof, rc;
	if (dg_read_header(d, &h, end_idx, end_close, &eof, err) < 0) {
		rc = -1;
	} else if (*end_idx >= 0 || eof) {
		/* a part that ends inside its header: write what there is */
		rc = dg_write_header(d, &h, NULL, err);
		if (rc == 0 && *end_idx >= 0)
			rc = ba_write_str(d->out, d->eol, err);
	} else if (!strncmp(h.type, "multipart/", 10) && h.boundary[0] && d->nb < DG_DEPTH_MAX) {
		rc = dg_multipart(d, &h, depth, end_idx, end_close, err);
	} else if (!strcmp(h.type, "message/rfc822") || !strcmp(h.type, "message/global")) {
		int fix = !strcmp(h.cte, "8bit") || !strcmp(h.cte, "binary");
		rc = dg_write_header(d, &h, fix ? "7bit" : NULL, err);
		if (rc == 0)
			rc = dg_entity(d, depth + 1, end_idx, end_close, err);
	} else {
		rc = dg_leaf(d, &h, end_idx, end_close, err);
	}
	ba_buf_release(&h.raw);
	free(h.f);
	return rc;
}

int ba_mime_downgrade(ba_writer *out, ba_reader *in, const struct ba_mime_opts *o,
                      struct ba_err *err)
{
	struct dg d;
	memset(&d, 0, sizeof(d));
	d.out = out;
	d.eol = eol_of(o);
	d.o = o;
	d.at_bol = 1;
	if (!(d.chunk = malloc(BA_MIME_CHUNK)))
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (ba_linereader_init(&d.lr, in, DG_LINE_MAX, err) < 0) {
		free(d.chunk);
		return -1;
	}
	int end_idx, end_close;
	int rc = dg_entity(&d, 0, &end_idx, &end_close, err);
	ba_linereader_release(&d.lr);
	free(d.chunk);
	return rc;
}
