/* bluearrow/buf.h - growable byte buffer, the one string/bytes type of core
 *
 * Invariants (as git's strbuf.h):
 *  - After ba_buf_init(), data is either NULL (nothing allocated yet) or points
 *    to alloc bytes of which the first len are content and data[len] == '\0'.
 *    Use ba_buf_str() to get a string that is never NULL.
 *  - The content may hold NUL bytes; len is authoritative.
 *  - cap bounds len: an append that would make len exceed cap fails.  Set a
 *    cap for anything a peer can grow (reply lines, headers).  0 = no cap.
 *  - Failure is sticky: once an append failed (out of memory or over cap),
 *    every later append fails too and the content is left as it was before
 *    the failing append.  A series of appends can be checked once, at the
 *    end, with ba_buf_failed().  ba_buf_reset() clears the failure.
 */
#ifndef BLUEARROW_BUF_H
#define BLUEARROW_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct ba_buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap;  /* maximum len; 0 = unlimited */
	int failed;  /* sticky: set by a failed append */
};

#define BA_BUF_INIT { NULL, 0, 0, 0, 0 }

/* Initialises an empty buffer whose content may not exceed cap bytes (0 = no cap). */
void ba_buf_init(struct ba_buf *b, size_t cap);
/* Frees the memory; the buffer is empty and usable again (the cap is kept). */
void ba_buf_release(struct ba_buf *b);
/* As ba_buf_release(), but overwrites the whole allocation first (passwords, tokens). */
void ba_buf_release_secret(struct ba_buf *b);
/* Empties the buffer (keeps the memory and the cap) and clears the sticky failure. */
void ba_buf_reset(struct ba_buf *b);

/* Ensures room for extra more bytes.  Returns 0, or -1 (and sets failed). */
int ba_buf_grow(struct ba_buf *b, size_t extra);
/* Appends; each returns 0, or -1 when the buffer has failed (now or before). */
int ba_buf_add(struct ba_buf *b, const void *p, size_t n);
int ba_buf_addstr(struct ba_buf *b, const char *s);
int ba_buf_addch(struct ba_buf *b, int c);
int ba_buf_addf(struct ba_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int ba_buf_vaddf(struct ba_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Removes the first n bytes (all of them if n >= len). */
void ba_buf_consume(struct ba_buf *b, size_t n);
/* Shortens the content to len bytes (no-op if it is shorter already). */
void ba_buf_truncate(struct ba_buf *b, size_t len);

/* The content as a NUL-terminated string; "" for an empty buffer.  Borrowed. */
const char *ba_buf_str(const struct ba_buf *b);
/* 1 if an append has failed since the last init/reset/release. */
int ba_buf_failed(const struct ba_buf *b);

/*
 * Takes the content out: returns a NUL-terminated malloc'd string (the caller
 * frees it with free(); an empty buffer gives "") and stores its length in
 * *len if len is not NULL.  The buffer is left empty with its cap, usable
 * again.  Returns NULL if the buffer has failed (sticky: it keeps its
 * content and failure until reset or release) or when allocating "" for an
 * empty buffer fails.
 */
char *ba_buf_detach(struct ba_buf *b, size_t *len);

#endif
