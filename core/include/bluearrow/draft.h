/* bluearrow/draft.h - a message being composed: fields, attachments, body; saved and built
 *
 * A ba_draft holds what a composer (bluearrow-tui, `bluearrow compose` and
 * `bluearrow send`) collects before a message exists: the header fields as
 * the user typed them, an ordered list of attachments, and the body, either
 * a file (which the composer edits with $EDITOR) or text held in memory, plus
 * an optional HTML alternative file.  Nothing is validated when it is set: a
 * draft may be incomplete or wrong (a half-typed address) and still be
 * saved.  ba_draft_build() validates everything and turns the draft into a
 * ba_msg; it is the one place where fields, attachments and body become a
 * message, so every front end builds the same bytes from the same inputs.
 *
 * Values are NUL-terminated strings (UTF-8 expected, not required), copied
 * by every setter; getters return borrowed pointers that stay valid until
 * the value is changed or the draft freed.
 *
 * ---- The draft file format, version 1 -----------------------------------
 *
 * A draft file is a header of lines, each ending in LF, then an empty line,
 * then the in-memory body (if any), like an RFC 5322 message:
 *
 *   X-Bluearrow-Draft: 1                  first line, always; the version
 *   From: Me <me@example.org>             one line per value, in order
 *   To: a@example.org, b@example.org      (To, Cc, Bcc, Reply-To, From and
 *   Cc: ...                                References repeat; Subject and
 *   Subject: Grüße                         In-Reply-To appear at most once)
 *   In-Reply-To: <id@host>
 *   References: <id1@host> <id2@host>
 *   X-Bluearrow-Header: X-Mailer: foo     an extra header field, "Name: value"
 *   X-Bluearrow-Body-File: /home/me/body.txt
 *   X-Bluearrow-Html-File: /home/me/body.html
 *   X-Bluearrow-Attach: /home/me/a file.pdf
 *   X-Bluearrow-Attach-Type: application/pdf   (belong to the Attach above)
 *   X-Bluearrow-Attach-Name: report.pdf
 *   X-Bluearrow-Body: 12                  octets of in-memory body after the
 *                                          empty line (absent: no such body)
 *   <empty line>
 *   Hello world\n                         exactly that many octets, raw
 *
 * Each header line is a field name, ":", one space and the value.  Names are
 * compared without case; an unknown name is an error (a newer format has a
 * higher version number, which this version refuses rather than misreads).
 * A value is written escaped so that any string round-trips through a line:
 * "\\" stands for a backslash, "\n" for LF, "\r" for CR, "\t" for TAB, and
 * "\xHH" (two hex digits) for any other byte below 0x20, for 0x7f, for a
 * byte that is not part of valid UTF-8, and for a space or TAB at either end
 * of the value (which editors strip); every other byte, UTF-8 included, is
 * itself.  The file therefore is valid UTF-8 text up to the body.  Lines end
 * in LF only: a CR in the header is an error.
 *
 * Bounds (a corrupt or hostile file fails, it cannot make the reader grow
 * without limit): a header line at most BA_DRAFT_LINE_MAX octets, at most
 * BA_DRAFT_LINES_MAX header lines, an in-memory body at most
 * BA_DRAFT_BODY_MAX octets, a whole file at most 4 MiB more than that, and
 * nothing after the declared body.  Every
 * error in a file is EX_DATAERR and names the file and the line:
 * "'drafts/x.draft', line 7: unknown field 'Foo'".
 *
 * Files are written atomically: a temporary file in the same directory
 * (mode 0600), written, fsync()ed, renamed over the final name (rename does
 * not follow a symbolic link there: it replaces it), then the directory is
 * fsync()ed.  On any failure the temporary file is removed; a reader never
 * sees a partial draft.
 *
 * The default directory is $XDG_DATA_HOME/bluearrow/drafts, else
 * ~/.local/share/bluearrow/drafts ($HOME), created with mode 0700 on demand.
 * Drafts saved there are named "YYYYMMDD-HHMMSS-<random>.draft" (UTC).
 */
#ifndef BLUEARROW_DRAFT_H
#define BLUEARROW_DRAFT_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/msg.h"

typedef struct ba_draft ba_draft;

#define BA_DRAFT_VERSION 1
#define BA_DRAFT_LINE_MAX 65536            /* octets in one header line, LF excluded */
#define BA_DRAFT_LINES_MAX 10000           /* header lines */
#define BA_DRAFT_BODY_MAX (16u << 20)      /* octets of in-memory body */

/* The header fields a draft holds. */
enum ba_draft_field {
	BA_DRAFT_FROM,        /* list: one value per add (an address list each) */
	BA_DRAFT_TO,          /* list */
	BA_DRAFT_CC,          /* list */
	BA_DRAFT_BCC,         /* list */
	BA_DRAFT_REPLY_TO,    /* list */
	BA_DRAFT_SUBJECT,     /* single */
	BA_DRAFT_IN_REPLY_TO, /* single: message identifiers */
	BA_DRAFT_REFERENCES,  /* list: message identifiers */
	BA_DRAFT_HEADER,      /* list: extra fields, each "Name: value" */
	BA_DRAFT_NFIELDS
};

/* Creates an empty draft.  Errors: EX_OSERR.  Free with ba_draft_free(). */
int ba_draft_new(ba_draft **out, struct ba_err *err);
/* NULL is a no-op. */
void ba_draft_free(ba_draft *d);

/*
 * Appends a copy of value to a list field; for a single field (Subject,
 * In-Reply-To) replaces the value, as a repeated command-line option does.
 * Errors: EX_OSERR.  An unknown field is a BA_BUG().
 */
int ba_draft_add(ba_draft *d, enum ba_draft_field f, const char *value, struct ba_err *err);
/* Replaces all values of f by a copy of value (NULL: removes them).  Errors: EX_OSERR. */
int ba_draft_set(ba_draft *d, enum ba_draft_field f, const char *value, struct ba_err *err);
/* Number of values of f (0 or 1 for a single field). */
size_t ba_draft_count(const ba_draft *d, enum ba_draft_field f);
/* The i-th value of f (borrowed), or NULL when i >= ba_draft_count(). */
const char *ba_draft_get(const ba_draft *d, enum ba_draft_field f, size_t i);

/*
 * The text body as a file (path copied; NULL removes it).  Setting a file
 * drops in-memory text and the reverse.  "-" means standard input when the
 * draft is built (as on the command line); such a draft cannot be saved.
 * Errors: EX_OSERR.
 */
int ba_draft_set_body_file(ba_draft *d, const char *path, struct ba_err *err);
/* The body file (borrowed), or NULL. */
const char *ba_draft_body_file(const ba_draft *d);
/*
 * The text body from memory: a copy of p[0..n) (may hold any bytes; p may
 * be NULL when n is 0).  Errors: EX_OSERR, EX_DATAERR over BA_DRAFT_BODY_MAX.
 */
int ba_draft_set_body_text(ba_draft *d, const void *p, size_t n, struct ba_err *err);
/* The in-memory body (borrowed) and its length in *n, or NULL (no such body; *n = 0). */
const char *ba_draft_body_text(const ba_draft *d, size_t *n);
/* The HTML alternative as a file (path copied; NULL removes it; "-" as above).  EX_OSERR. */
int ba_draft_set_html_file(ba_draft *d, const char *path, struct ba_err *err);
const char *ba_draft_html_file(const ba_draft *d); /* borrowed, or NULL */

/*
 * Attachments, in the order they will appear.  add appends path (copied;
 * "-" = standard input when built) with an optional content type and file
 * name (NULL: detected at build time / the last component of path).
 * Errors: EX_OSERR.
 */
int ba_draft_attach_add(ba_draft *d, const char *path, const char *type, const char *name,
                        struct ba_err *err);
size_t ba_draft_attach_count(const ba_draft *d);
/* Of attachment i (borrowed); NULL when unset or i is out of range. */
const char *ba_draft_attach_path(const ba_draft *d, size_t i);
const char *ba_draft_attach_type(const ba_draft *d, size_t i);
const char *ba_draft_attach_name(const ba_draft *d, size_t i);
/* Replace the type or name of attachment i (copied; NULL unsets).  Errors: EX_OSERR, EX_USAGE (no such i). */
int ba_draft_attach_set_type(ba_draft *d, size_t i, const char *type, struct ba_err *err);
int ba_draft_attach_set_name(ba_draft *d, size_t i, const char *name, struct ba_err *err);
/* Removes attachment i.  Errors: EX_USAGE (no such i). */
int ba_draft_attach_remove(ba_draft *d, size_t i, struct ba_err *err);
/* Moves attachment from to position to, shifting those between.  Errors: EX_USAGE. */
int ba_draft_attach_move(ba_draft *d, size_t from, size_t to, struct ba_err *err);

/*
 * Builds the message: From, To, Cc, Bcc, Reply-To, Subject, In-Reply-To,
 * References and the extra fields are given to bluearrow/msg.h in that
 * order, each value as it was added (so errors are msg.h's, for the first
 * bad value); then the body: the text (file or memory) and the HTML file
 * become multipart/alternative when both are present, and with attachments
 * everything goes into multipart/mixed, attachments in order.  Files are
 * opened here (not read: ba_msg_write() reads them).  On success the caller
 * frees *out with ba_msg_free().  Errors: msg.h's setters' (EX_DATAERR),
 * mime.h's (EX_NOINPUT for a file that cannot be opened), EX_USAGE when
 * standard input is named more than once, EX_OSERR.
 */
int ba_draft_build(ba_msg **out, const ba_draft *d, struct ba_err *err);

/*
 * Writes the draft to path atomically (see above), replacing a file there.
 * The file is created with mode 0600.  Errors: EX_USAGE (a body, HTML or
 * attachment named "-"), EX_CANTCREAT (temporary file), EX_IOERR (write,
 * fsync, rename), naming path; nothing is left behind on failure.
 */
int ba_draft_save(const ba_draft *d, const char *path, struct ba_err *err);
/*
 * Saves the draft under a new unique name in dir (NULL: the default
 * directory, created if needed) and stores the path in *path_out (caller
 * frees with free()).  Never replaces an existing file.  Errors: those of
 * ba_draft_save() and ba_draft_dir().
 */
int ba_draft_save_new(char **path_out, const ba_draft *d, const char *dir, struct ba_err *err);

/*
 * Reads a draft file.  On success the caller frees *out with
 * ba_draft_free().  Errors: EX_NOINPUT (cannot open), EX_IOERR, EX_DATAERR
 * with file and line (malformed, over a bound, truncated, newer version),
 * EX_OSERR.
 */
int ba_draft_load(ba_draft **out, const char *path, struct ba_err *err);
/* As ba_draft_load() for data[0..n) in memory; name is used in errors. */
int ba_draft_parse(ba_draft **out, const void *data, size_t n, const char *name,
                   struct ba_err *err);
/* Appends the whole file format of d to out (what ba_draft_save() writes).  EX_OSERR, EX_USAGE. */
int ba_draft_format(struct ba_buf *out, const ba_draft *d, struct ba_err *err);

/*
 * Appends the default drafts directory to out; with create, makes it (and
 * missing parents, mode 0700) when absent.  A relative $XDG_DATA_HOME is
 * ignored, as the XDG Base Directory specification says.  Errors: EX_CONFIG
 * (no absolute $XDG_DATA_HOME and no $HOME), EX_CANTCREAT (cannot create,
 * or not a directory), EX_OSERR.
 */
int ba_draft_dir(struct ba_buf *out, int create, struct ba_err *err);
/*
 * The drafts in dir (NULL: the default directory; absent = none): the paths
 * of its "*.draft" files, sorted by name (oldest first, by the naming
 * above).  The caller frees with ba_draft_list_free(*paths, *n).  Errors:
 * EX_NOINPUT (cannot read dir), EX_OSERR.
 */
int ba_draft_list(char ***paths, size_t *n, const char *dir, struct ba_err *err);
void ba_draft_list_free(char **paths, size_t n);
/*
 * Deletes the draft at path (a name ending in ".draft", so that a wrong
 * path cannot delete another file) and fsyncs its directory.  Errors:
 * EX_USAGE (not a .draft name), EX_NOINPUT (no such file), EX_IOERR.
 */
int ba_draft_delete(const char *path, struct ba_err *err);

#endif
