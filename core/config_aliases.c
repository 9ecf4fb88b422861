/* config_aliases.c - msmtp's aliases file (see bluearrow/config_aliases.h) */
#include "bluearrow/config_aliases.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bluearrow/buf.h"

#define ALIASES_LINE_MAX 4096
#define ALIASES_DEPTH_MAX 16
#define ALIASES_FILE_MAX (16u << 20)

struct alias {
	char *name;
	char **addr;
	size_t naddr;
};

struct ba_aliases {
	struct alias *a;
	size_t n;
};

static const struct alias *find(const ba_aliases *al, const char *name)
{
	for (size_t i = 0; i < al->n; i++)
		if (strcmp(al->a[i].name, name) == 0)
			return &al->a[i];
	return NULL;
}

/* Trims blanks around [*p, *p + *n). */
static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t' || **p == '\r'))
		(*p)++, (*n)--;
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t' || (*p)[*n - 1] == '\r'))
		(*n)--;
}

static int push(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strndup(s, len)))
		return -1;
	(*n)++;
	return 0;
}

static int parse_line(ba_aliases *al, const char *name, unsigned lnum, const char *p, size_t n,
                      struct ba_err *err)
{
	const char *hash = memchr(p, '#', n);
	if (hash)
		n = (size_t)(hash - p);
	trim(&p, &n);
	if (!n)
		return 0;
	const char *colon = memchr(p, ':', n);
	if (!colon || memchr(colon + 1, ':', n - (size_t)(colon + 1 - p)))
		return ba_err_set(err, EX_CONFIG, "%s:%u: expected exactly one ':' (NAME: ADDRESS, ...)",
		                  name, lnum);
	const char *k = p;
	size_t kn = (size_t)(colon - p);
	trim(&k, &kn);
	if (!kn || memchr(k, '@', kn) || memchr(k, ' ', kn) || memchr(k, '\t', kn))
		return ba_err_set(err, EX_CONFIG, "%s:%u: invalid alias name '%.*s'", name, lnum,
		                  (int)kn, k);
	struct ba_buf key = BA_BUF_INIT;
	ba_buf_add(&key, k, kn);
	if (ba_buf_failed(&key))
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (find(al, key.data)) {
		ba_err_set(err, EX_CONFIG, "%s:%u: duplicate alias '%s'", name, lnum, key.data);
		ba_buf_release(&key);
		return -1;
	}
	struct alias *na = realloc(al->a, (al->n + 1) * sizeof(*na));
	if (!na) {
		ba_buf_release(&key);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	al->a = na;
	struct alias *e = &al->a[al->n++];
	e->name = ba_buf_detach(&key, NULL);
	e->addr = NULL;
	e->naddr = 0;
	const char *s = colon + 1, *end = p + n;
	while (s <= end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *stop = comma ? comma : end;
		const char *a = s;
		size_t an = (size_t)(stop - s);
		trim(&a, &an);
		if (!an)
			return ba_err_set(err, EX_CONFIG, "%s:%u: empty address in alias '%s'", name, lnum,
			                  e->name);
		if (push(&e->addr, &e->naddr, a, an) < 0)
			return ba_err_set(err, EX_OSERR, "out of memory");
		s = stop + 1;
	}
	if (!e->name)
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

int ba_aliases_parse(ba_aliases **out, const char *name, const char *text, size_t len,
                     struct ba_err *err)
{
	*out = NULL;
	ba_aliases *al = calloc(1, sizeof(*al));
	if (!al)
		return ba_err_set(err, EX_OSERR, "out of memory");
	const char *p = text, *end = text + len;
	unsigned lnum = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		lnum++;
		if (n > ALIASES_LINE_MAX) {
			ba_aliases_free(al);
			return ba_err_set(err, EX_CONFIG, "%s:%u: line longer than %d bytes", name, lnum,
			                  ALIASES_LINE_MAX);
		}
		if (memchr(p, '\0', n) || parse_line(al, name, lnum, p, n, err) < 0) {
			if (memchr(p, '\0', n))
				ba_err_set(err, EX_CONFIG, "%s:%u: NUL byte", name, lnum);
			ba_aliases_free(al);
			return -1;
		}
		p += n + 1;
	}
	*out = al;
	return 0;
}

int ba_aliases_load(ba_aliases **out, const char *path, struct ba_err *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ba_err_set(err, EX_CONFIG, "cannot open aliases file '%s': %s", path,
		                  ba_strerror_t(errno));
	struct ba_buf b = BA_BUF_INIT;
	ba_buf_init(&b, ALIASES_FILE_MAX);
	char tmp[8192];
	ssize_t k;
	while ((k = read(fd, tmp, sizeof(tmp))) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 || ba_buf_add(&b, tmp, (size_t)k) < 0) {
			int e = errno;
			close(fd);
			ba_buf_release(&b);
			return ba_err_set(err, EX_CONFIG, "cannot read aliases file '%s': %s", path,
			                  k < 0 ? ba_strerror_t(e) : "file too large");
		}
	}
	close(fd);
	int rc = ba_aliases_parse(out, path, ba_buf_str(&b), b.len, err);
	ba_buf_release(&b);
	return rc;
}

void ba_aliases_free(ba_aliases *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		for (size_t j = 0; j < a->a[i].naddr; j++)
			free(a->a[i].addr[j]);
		free(a->a[i].addr);
		free(a->a[i].name);
	}
	free(a->a);
	free(a);
}

static int expand_one(const ba_aliases *al, const char *name, int depth, char ***v, size_t *n,
                      struct ba_err *err)
{
	if (depth > ALIASES_DEPTH_MAX)
		return ba_err_set(err, EX_CONFIG, "too many levels expanding alias '%s'", name);
	const struct alias *e = find(al, name);
	if (!e)
		e = find(al, "default");
	if (!e)
		return push(v, n, name, strlen(name)) < 0 ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
	for (size_t i = 0; i < e->naddr; i++) {
		if (!strchr(e->addr[i], '@')) {
			if (expand_one(al, e->addr[i], depth + 1, v, n, err) < 0)
				return -1;
		} else if (push(v, n, e->addr[i], strlen(e->addr[i])) < 0) {
			return ba_err_set(err, EX_OSERR, "out of memory");
		}
	}
	return 0;
}

int ba_aliases_expand(const ba_aliases *a, char ***v, size_t *n, struct ba_err *err)
{
	char **out = NULL;
	size_t nout = 0;
	int rc = 0;
	for (size_t i = 0; i < *n && rc == 0; i++) {
		if (strchr((*v)[i], '@'))
			rc = push(&out, &nout, (*v)[i], strlen((*v)[i])) < 0
			         ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
		else {
			/* msmtp puts each name's expansion in reverse order; the same envelope needs the same */
			size_t first = nout;
			rc = expand_one(a, (*v)[i], 0, &out, &nout, err);
			for (size_t l = first, r = nout; rc == 0 && r > l + 1; l++, r--) {
				char *t = out[l];
				out[l] = out[r - 1];
				out[r - 1] = t;
			}
		}
	}
	if (rc < 0) {
		for (size_t i = 0; i < nout; i++)
			free(out[i]);
		free(out);
		return -1;
	}
	for (size_t i = 0; i < *n; i++)
		free((*v)[i]);
	free(*v);
	*v = out;
	*n = nout;
	return 0;
}
