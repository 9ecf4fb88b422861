/* bluearrow/mime.h - MIME part tree, content types, transfer encodings, streaming writer
 *
 * A message body is a tree of parts (RFC 2045, RFC 2046): leaves hold content
 * that comes from a file, a descriptor or memory; multiparts (mixed,
 * alternative, ...) hold children.  Building a body is three steps:
 *
 *   1. construct the tree (ba_mime_file_new(), ba_mime_multipart_new(),
 *      ba_mime_add(), ...): files are opened here, so a missing or unreadable
 *      input is reported before anything else happens;
 *   2. ba_mime_prepare(): reads every leaf once, in fixed-size chunks, to
 *      detect its content type (libmagic, then /etc/mime.types by file name
 *      extension), validate it (text bodies must be UTF-8) and choose its
 *      Content-Transfer-Encoding; chooses the multipart boundaries;
 *   3. ba_mime_write(): writes the Content-* header fields of the root, a
 *      blank line and the body, reading every leaf a second time, in chunks,
 *      straight through the encoder to the writer.
 *
 * Memory use is bounded whatever the size of the content: no step holds a
 * whole leaf.  All input errors are found by steps 1 and 2, so a caller that
 * writes nothing before ba_mime_prepare() succeeded writes nothing for bad
 * input.  Step 3 fails only on I/O errors or when a file changed between the
 * two reads in a way that would make the chosen encoding wrong.
 *
 * Transfer encodings (RFC 2045 §6; 7-bit clean unless BA_MIME_ALLOW_8BIT):
 *   7bit               ASCII text, lines of at most 998 octets (RFC 5322 §2.1.1)
 *   8bit               UTF-8 text, same limits, only with BA_MIME_ALLOW_8BIT
 *   quoted-printable   mostly-ASCII text
 *   base64             everything else
 * Body text (BA_MIME_BODY) is canonical text: its line endings (LF or CRLF)
 * become the output's eol.  Attachments (BA_MIME_ATTACHMENT) decode back
 * byte-identical: they are sent as text only when their line endings already
 * are the output's, else as base64.
 */
#ifndef BLUEARROW_MIME_H
#define BLUEARROW_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/io.h"

typedef struct ba_mime_part ba_mime_part;

/* Size of the chunks in which leaves are read (both passes). */
#define BA_MIME_CHUNK 65536

enum ba_mime_role {
	BA_MIME_BODY,       /* inline text: UTF-8 required, line endings canonicalised */
	BA_MIME_ATTACHMENT, /* Content-Disposition: attachment; bytes preserved exactly */
};

enum ba_mime_cte {
	BA_MIME_CTE_NONE,   /* not chosen yet (before ba_mime_prepare()), or a multipart */
	BA_MIME_CTE_7BIT,
	BA_MIME_CTE_8BIT,
	BA_MIME_CTE_QP,
	BA_MIME_CTE_BASE64,
};

enum ba_mime_flags {
	/* UTF-8 text may be sent as 8bit (for 8BITMIME peers) */
	BA_MIME_ALLOW_8BIT = 1 << 0,
	/* never run libmagic: types come from ba_mime_set_type() or the extension */
	BA_MIME_NO_SNIFF = 1 << 1,
};

/*
 * Fills p[0..n) with random bytes.  Returns 0, or -1 with *err set.  The
 * default (NULL in the options) is getrandom(2).  Tests pass a fixed source
 * to get fixed output.
 */
typedef int ba_random_fn(void *ctx, void *p, size_t n, struct ba_err *err);

struct ba_mime_opts {          /* zero = defaults */
	const char *eol;           /* "\n" (default when NULL) or "\r\n" */
	unsigned flags;            /* enum ba_mime_flags */
	ba_random_fn *random;      /* boundaries; NULL = getrandom(2) */
	void *random_ctx;
	const char *mime_types;    /* extension table; NULL = /etc/mime.types */
};

/* ---- building the tree ------------------------------------------------- */

/*
 * Opens path (read-only) as a leaf.  The default type is text/plain for a
 * body and detected for an attachment; the default filename of an attachment
 * is the last component of path.  path is copied.  A file that is not
 * seekable (a FIFO) is copied into an unlinked temporary file first.
 * Errors: EX_NOINPUT (cannot open, or a directory), EX_IOERR, EX_CANTCREAT
 * (temporary file), EX_OSERR (memory).  On success the caller frees *out with
 * ba_mime_free() or hands it to ba_mime_add().
 */
int ba_mime_file_new(ba_mime_part **out, const char *path, enum ba_mime_role role,
                     struct ba_err *err);
/*
 * As ba_mime_file_new() for an open descriptor; takes ownership of fd (it is
 * closed by ba_mime_free(), also when this call fails).  name (copied) is
 * used in errors and as the default filename.  Standard input is passed this
 * way; it is spooled to a temporary file when not seekable.
 */
int ba_mime_fd_new(ba_mime_part **out, int fd, const char *name, enum ba_mime_role role,
                   struct ba_err *err);
/* A leaf over a copy of p[0..n).  name (copied, may be NULL) as for ba_mime_fd_new(). */
int ba_mime_mem_new(ba_mime_part **out, const void *p, size_t n, const char *name,
                    enum ba_mime_role role, struct ba_err *err);
/*
 * A multipart container; subtype is "mixed", "alternative", "related", ...
 * (a token, copied).  Errors: EX_DATAERR (bad subtype), EX_OSERR.
 */
int ba_mime_multipart_new(ba_mime_part **out, const char *subtype, struct ba_err *err);
/*
 * Appends child to parent (a multipart).  Takes ownership of child, also on
 * failure.  Adding to a leaf is a BA_BUG().
 */
int ba_mime_add(ba_mime_part *parent, ba_mime_part *child, struct ba_err *err);
/*
 * Overrides the content type of a leaf: "type/subtype" (tokens, RFC 2045
 * §5.1; parameters are not accepted).  A text/... type gets charset=utf-8.
 * Errors: EX_DATAERR naming the value.
 */
int ba_mime_set_type(ba_mime_part *p, const char *type, struct ba_err *err);
/*
 * Sets the filename shown for an attachment (UTF-8, no control characters,
 * no "/"), written with RFC 2231 when needed.  "" removes it.
 * Errors: EX_DATAERR naming the value.
 */
int ba_mime_set_filename(ba_mime_part *p, const char *name, struct ba_err *err);
/* Frees a part and its children, closing their files.  NULL is a no-op. */
void ba_mime_free(ba_mime_part *p);

/* ---- preparing and writing --------------------------------------------- */

/*
 * Reads every leaf once: detects types, validates, chooses transfer
 * encodings and boundaries (see the top of this file).  Errors: EX_DATAERR
 * (a body that is not UTF-8: the text names the input and the offset),
 * EX_IOERR (read error, naming the input), EX_OSERR, EX_SOFTWARE (libmagic
 * cannot load its database).  Must succeed before ba_mime_write().
 */
int ba_mime_prepare(ba_mime_part *root, const struct ba_mime_opts *o, struct ba_err *err);
/*
 * Writes the root's Content-Type, Content-Transfer-Encoding and
 * Content-Disposition fields (not MIME-Version: that is the message's), a
 * blank line, and the body, to w.  Does not flush w.  Errors: EX_IOERR (read
 * or write, naming the file), EX_DATAERR (a file changed since
 * ba_mime_prepare() so that its encoding no longer fits).
 */
int ba_mime_write(ba_writer *w, ba_mime_part *root, const struct ba_mime_opts *o,
                  struct ba_err *err);

/* Getters, valid after ba_mime_prepare() (for tests and for callers that log). */
const char *ba_mime_part_type(const ba_mime_part *p);     /* "application/pdf" */
enum ba_mime_cte ba_mime_part_cte(const ba_mime_part *p);
const char *ba_mime_part_boundary(const ba_mime_part *p); /* "" for a leaf */
const char *ba_mime_cte_name(enum ba_mime_cte cte);      /* "quoted-printable" */

/* ---- content types ----------------------------------------------------- */

/*
 * Looks up the extension of filename (the part after the last ".", compared
 * without case) in a mime.types(5) file (NULL = /etc/mime.types).  Appends
 * the type to out and returns 1 if found, 0 if not (or the file is missing),
 * -1 if out failed.
 */
int ba_mime_type_by_ext(struct ba_buf *out, const char *filename, const char *mime_types);
/*
 * The content type for content starting with head[0..n) (the first chunk of
 * a file) and named filename (may be NULL): libmagic's MAGIC_MIME_TYPE unless
 * flags has BA_MIME_NO_SNIFF; the extension's type when the sniffed type is
 * generic (application/octet-stream, text/plain, application/zip, empty) and
 * the extension is known; else application/octet-stream.  libmagic
 * (libmagic.so.1, dlopen()ed: the program does not link it) and its database
 * are loaded once per process, on the first sniff; safe to call from several
 * threads.  Appends the type to out.  Errors: EX_OSERR (out failed); a
 * libmagic or database that cannot be loaded falls back to the extension.
 */
int ba_mime_detect_type(struct ba_buf *out, const void *head, size_t n, const char *filename,
                        const struct ba_mime_opts *o, struct ba_err *err);

/* ---- 8-bit downgrade ------------------------------------------------------ */

/*
 * Reads a complete message (RFC 5322, possibly MIME, with 8bit or binary
 * parts, long lines or 8-bit header text) from in and writes an equivalent
 * 7-bit message to out, with o->eol line endings:
 *   - leaves that are not 7-bit clean (8-bit octets, NUL or bare CR, lines
 *     over 998 octets) are re-encoded, quoted-printable for text types (and parts
 *     without a Content-Type), base64 otherwise, and their
 *     Content-Transfer-Encoding field replaced; clean leaves are copied;
 *   - multipart structure (boundaries, preambles, epilogues) and
 *     message/rfc822 parts are kept; "8bit"/"binary" on them becomes "7bit";
 *   - 8-bit text in unstructured header fields (Subject, Comments, X-*, ...)
 *     is RFC 2047-encoded (it must be UTF-8);
 *   - 8-bit octets in preambles and epilogues (which no MUA shows) become "?".
 * Memory is bounded: a leaf is held in memory up to 256 KiB, beyond that in
 * an unlinked temporary file.  Headers (the message's and the parts') are
 * read with header.h's reader: lines that are no field are kept as they
 * are, a bare CR is an error.  Does not flush out.  Errors: EX_DATAERR (8-bit
 * text in a structured header field, which needs SMTPUTF8; invalid UTF-8 in
 * one; a bare CR in a header, "line N: bare CR (not followed by LF) in
 * header", N counted from the start of that header; a part declared
 * quoted-printable or base64 holding 8-bit data; a header over 1 MiB;
 * nesting deeper than 32), EX_IOERR, EX_CANTCREAT, EX_OSERR.
 */
int ba_mime_downgrade(ba_writer *out, ba_reader *in, const struct ba_mime_opts *o,
                      struct ba_err *err);

#endif
