/* buf.c - growable byte buffer (see bluearrow/buf.h for the invariants) */
#include "bluearrow/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ba_buf_init(struct ba_buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap;
	b->failed = 0;
}

void ba_buf_release(struct ba_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->failed = 0;
}

void ba_buf_release_secret(struct ba_buf *b)
{
	if (b->data) {
		/* volatile stops the compiler from eliding a store to memory about to be freed */
		volatile unsigned char *p = (volatile unsigned char *)b->data;
		for (size_t i = 0; i < b->alloc; i++)
			p[i] = 0;
	}
	ba_buf_release(b);
}

void ba_buf_reset(struct ba_buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data)
		b->data[0] = '\0';
}

int ba_buf_grow(struct ba_buf *b, size_t extra)
{
	if (b->failed)
		return -1;
	if (extra > SIZE_MAX - 1 - b->len || (b->cap && b->len + extra > b->cap)) {
		b->failed = 1;
		return -1;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->alloc)
		return 0;
	size_t n = b->alloc ? b->alloc : 64;
	while (n < need)
		n = n > SIZE_MAX / 2 ? need : n * 2;
	char *p = realloc(b->data, n);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	if (!b->data)
		p[0] = '\0';
	b->data = p;
	b->alloc = n;
	return 0;
}

int ba_buf_add(struct ba_buf *b, const void *p, size_t n)
{
	if (ba_buf_grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ba_buf_addstr(struct ba_buf *b, const char *s)
{
	return ba_buf_add(b, s, strlen(s));
}

int ba_buf_addch(struct ba_buf *b, int c)
{
	unsigned char ch = (unsigned char)c;
	return ba_buf_add(b, &ch, 1);
}

int ba_buf_vaddf(struct ba_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	char small[256];

	va_copy(cp, ap);
	int n = vsnprintf(small, sizeof(small), fmt, cp);
	va_end(cp);
	if (n < 0) {
		b->failed = 1;
		return -1;
	}
	if ((size_t)n < sizeof(small))
		return ba_buf_add(b, small, (size_t)n);
	if (ba_buf_grow(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int ba_buf_addf(struct ba_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = ba_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void ba_buf_consume(struct ba_buf *b, size_t n)
{
	if (n >= b->len) {
		ba_buf_truncate(b, 0);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void ba_buf_truncate(struct ba_buf *b, size_t len)
{
	if (len >= b->len)
		return;
	b->len = len;
	b->data[len] = '\0';
}

const char *ba_buf_str(const struct ba_buf *b)
{
	return b->data ? b->data : "";
}

int ba_buf_failed(const struct ba_buf *b)
{
	return b->failed;
}

char *ba_buf_detach(struct ba_buf *b, size_t *len)
{
	if (b->failed)
		return NULL;
	char *p = b->data;
	if (!p) {
		p = calloc(1, 1);
		if (!p)
			return NULL;
	}
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}
