/* bluearrow/header.h - header fields: list, incremental bounded parser, folding
 *
 * RFC 5322 §2.2 and §3.6.  A header is an ordered list of fields; names are
 * compared case-insensitively, duplicates are kept in order.  The parser is
 * I/O-free and incremental: feed it chunks of a message as they arrive; it
 * tells where the header ends and the body starts.  Everything it returns
 * is untrusted input, bounded by the limits given at init.
 */
#ifndef BLUEARROW_HEADER_H
#define BLUEARROW_HEADER_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"

/* RFC 5322 §2.1.1: a line is at most 998 octets without its CRLF */
#define BA_HEADER_LINE_MAX 998

/*
 * One field.  name is the field name as received (case kept); value is the
 * field body raw as received: everything after the colon (leading white
 * space included) up to, not including, the line end of the field's last
 * line, with folding line ends (CRLF or LF) kept.  Both are malloc'd and
 * owned by the list.
 */
struct ba_header_field {
	char *name;
	char *value;
};

struct ba_header_list {
	struct ba_header_field *v;
	size_t n, alloc;
};

#define BA_HEADER_LIST_INIT { NULL, 0, 0 }

void ba_header_list_init(struct ba_header_list *l);
/* Frees every field and the array; the list is empty and usable again. */
void ba_header_list_release(struct ba_header_list *l);

/*
 * Appends a copy of name and value.  name must pass ba_header_name_valid();
 * value may hold folds (CRLF or LF followed by space or tab) but no other
 * CR or LF and no NUL (no header injection).  Errors: EX_DATAERR naming the
 * field, EX_OSERR.
 */
int ba_header_list_append(struct ba_header_list *l, const char *name, const char *value,
                          struct ba_err *err);

/* First field named name (case-insensitive), or NULL.  Borrowed. */
const struct ba_header_field *ba_header_list_find(const struct ba_header_list *l,
                                                  const char *name);
/*
 * Next field named name after prev (a pointer into l), or the first one when
 * prev is NULL; NULL when there is none.  Borrowed.
 */
const struct ba_header_field *ba_header_list_next(const struct ba_header_list *l,
                                                  const char *name,
                                                  const struct ba_header_field *prev);
/* Removes every field named name (e.g. "Bcc"); returns how many were removed. */
size_t ba_header_list_remove(struct ba_header_list *l, const char *name);

/*
 * Appends the unfolded body of f to out (RFC 5322 §2.2.3: each CRLF or LF
 * followed by white space is removed), with white space at both ends
 * trimmed.  Returns 0, or -1 with EX_OSERR when out failed.
 */
int ba_header_field_unfold(struct ba_buf *out, const struct ba_header_field *f,
                           struct ba_err *err);

/*
 * Appends every field of l to out as "name:value" eol, the line ends inside
 * values (folds) rewritten as eol.  eol is "\n" or "\r\n".  The empty line
 * ending the header is not written.  Returns 0 or -1 (EX_OSERR).
 */
int ba_header_list_write(struct ba_buf *out, const struct ba_header_list *l, const char *eol,
                         struct ba_err *err);

/* 1 if name is a valid field name: printable ASCII 33-126 except ':', non-empty (§3.6.8). */
int ba_header_name_valid(const char *name);
/* 1 if value has no CR, LF or NUL (a value built by us, before folding), else 0. */
int ba_header_value_valid(const char *value);

/*
 * Appends "name: value" to out, folded: the unstructured value (no CR, LF,
 * NUL: else EX_DATAERR) is broken at white space (eol inserted before a
 * space or tab) so that lines are at most 78 octets where possible and
 * never more than 998.  A value beginning with white space is written after
 * the colon as is; otherwise a space follows the colon, and a fold may go
 * there too: a first word too long for the line of the name goes on the
 * next line ("Subject:" eol " " word).  A word fits when, on a continuation
 * line, the white space before it and the word are at most 998 octets
 * (" " + 997 octets); a longer one is EX_DATAERR naming the field, and out
 * is left as it was.  The line is ended with eol.  Returns 0 or -1.
 */
int ba_header_write_field(struct ba_buf *out, const char *name, const char *value,
                          const char *eol, struct ba_err *err);

/* ---- the header reader: what a header line is ---------------------------- */

/*
 * Every place that reads a message header (the parser below, the sendmail
 * input in msg_read.h, the 7-bit downgrade in mime.h) classifies its lines
 * with this reader, so they agree on these rules:
 *
 *  - a line ends with LF; a CR right before the LF belongs to the line end
 *    (CRLF).  Any other CR is a bare CR, an error ("line N: bare CR (not
 *    followed by LF) in header", EX_DATAERR), never kept as data, because
 *    the data phase would turn it into a line end (RFC 5322 §2.2: CR and LF
 *    only together).  Only a CR as the very last octet of the input ends a
 *    last line without LF.
 *  - the header ends at the first empty line (BA_HEADER_LINE_END, which
 *    belongs to no field), or at the end of the input;
 *  - a field line (BA_HEADER_LINE_FIELD) is a name of ftext (printable
 *    ASCII 33-126 except ':', RFC 5322 §3.6.8), optional SP/HT
 *    (obs-optional, §4.5.3), then ':';
 *  - a continuation line (BA_HEADER_LINE_CONT) starts with SP or HT and
 *    follows a field line or a continuation of one (§2.2.3);
 *  - any other line (no colon, a bad name, SP/HT first with no field
 *    before) is malformed: an error in strict mode ("line N: missing ':'
 *    in header line '...'", "line N: invalid header field name '...'",
 *    "line N: continuation line before the first field"), or, with
 *    BA_HEADER_KEEP_MALFORMED, a line of its own (BA_HEADER_LINE_MALFORMED)
 *    that ends the field before it but not the header: the lines after it
 *    are still fields.  This is what msmtp and Postfix do; ending the
 *    header there would let a Bcc field after it go out as body text;
 *  - a first line "From " (an mbox separator) is BA_HEADER_LINE_MBOX_FROM
 *    with BA_HEADER_SKIP_MBOX_FROM, else an error in strict mode ("line 1:
 *    mbox 'From ' line") and a malformed line with KEEP_MALFORMED.
 *
 * NUL bytes and lines over 998 octets are the callers' business (the
 * parser refuses them; the sendmail input keeps them and its spool marks
 * them for the 7-bit rendering).
 */

enum ba_header_flags {
	/* a first line "From " (mbox separator) is skipped instead of rejected */
	BA_HEADER_SKIP_MBOX_FROM = 1 << 0,
	/* a malformed line is kept as BA_HEADER_LINE_MALFORMED instead of being an error */
	BA_HEADER_KEEP_MALFORMED = 1 << 1,
};

enum ba_header_line_kind {
	BA_HEADER_LINE_FIELD = 1,  /* starts a field; name_len is its name's length */
	BA_HEADER_LINE_CONT,       /* continues the field started before */
	BA_HEADER_LINE_MALFORMED,  /* neither (only with BA_HEADER_KEEP_MALFORMED) */
	BA_HEADER_LINE_MBOX_FROM,  /* the first line "From " (only with BA_HEADER_SKIP_MBOX_FROM) */
	BA_HEADER_LINE_END         /* the empty line: the header ended, the body follows */
};

/*
 * State of one header being read line by line.  line_no, kind, name_len and
 * line_start describe the line of the last piece read; the rest is private.
 */
struct ba_header_reader {
	unsigned flags;
	size_t line_no;   /* 1 for the first line */
	int kind;         /* enum ba_header_line_kind */
	size_t name_len;  /* BA_HEADER_LINE_FIELD: the name's length (WSP before ':' not counted) */
	int line_start;   /* 1 if the last piece started its line */
	int in_field;     /* private: a continuation line would continue a field */
	int mid;          /* private: the last piece did not end its line */
	int cr;           /* private: the last piece ended in a CR */
};

/* flags: BA_HEADER_SKIP_MBOX_FROM, BA_HEADER_KEEP_MALFORMED.  Nothing to release. */
void ba_header_reader_init(struct ba_header_reader *r, unsigned flags);
/*
 * Reads the next piece s[0..n) (n > 0) of the header: a whole line with its
 * line end, or a part of one as a bounded line reader gives them (the
 * pieces of a line too long for its buffer; the last line of the input
 * without LF).  A piece ending in LF ends its line.  The kind of a line is
 * decided by its first piece, which must hold the name and colon of a
 * field to be one (any reader with a buffer over 998 octets sees a valid
 * field line whole).  Returns the kind of the piece's line
 * (BA_HEADER_LINE_*) or -1 with the errors listed above; after
 * BA_HEADER_LINE_END the caller stops (what follows is body).
 */
int ba_header_reader_piece(struct ba_header_reader *r, const char *s, size_t n,
                           struct ba_err *err);

/* ---- incremental parser ------------------------------------------------ */

/*
 * State of one parse.  fields receives the parsed fields in order; after the
 * parse the caller may read it in place or move it out with
 * ba_header_parser_take().  Other members are private.
 */
struct ba_header_parser {
	struct ba_header_list fields;
	size_t max_total, max_fields, total, line_no;
	unsigned flags;
	struct ba_header_reader rd; /* private: classifies the lines */
	int state;             /* private */
	size_t name_len;       /* private: length of the current field's name */
	unsigned char prev_le; /* private: length of the last line end (1 LF, 2 CRLF) */
	struct ba_buf line;    /* private: the current, incomplete line */
	struct ba_buf field;   /* private: the current field, possibly folded */
};

/*
 * Initialises p: at most max_total octets of header (line ends included;
 * 0 = no limit) and max_fields fields (0 = no limit).  flags:
 * BA_HEADER_SKIP_MBOX_FROM, BA_HEADER_KEEP_MALFORMED (malformed lines are
 * then skipped: fields holds the fields only).  The lines are classified
 * by a struct ba_header_reader (the rules above).  Release with
 * ba_header_parser_release().
 */
void ba_header_parser_init(struct ba_header_parser *p, size_t max_total, size_t max_fields,
                           unsigned flags);
/*
 * Feeds data[0..n).  Returns 1 when the header ended (the empty line was
 * consumed): *consumed is the number of bytes of this chunk that belonged to
 * the header, so the body starts at data + *consumed.  Returns 0 when all of
 * the chunk was consumed and more is needed (*consumed == n).  Returns -1
 * on error, naming the line: "line 3: invalid header field name 'Fo o'",
 * "line 2: line longer than 998 octets", "line 4: NUL byte in header",
 * "line 2: bare CR (not followed by LF) in header", "line 1: continuation
 * line before the first field", "line 1: mbox 'From ' line", "line 2:
 * missing ':' in header line '...'", "line 5: header larger than N octets"
 * (the line holding the first octet past N), "line 7: more than N header
 * fields" (the line starting field N+1) (all EX_DATAERR; EX_OSERR on out
 * of memory).  After 1 or -1 further pushes are a BA_BUG().  LF and CRLF
 * line ends are both accepted.  A CR not followed by LF anywhere in the
 * header (up to and including the empty line) is an error, never kept as
 * data (RFC 5322 §2.2: CR and LF only together as CRLF), so every parsed
 * field passes ba_header_list_append() and ba_header_list_write() never
 * writes a bare CR.  Only a CR as the very last octet of the input (before
 * finish) is taken as the line end of a last line without LF.  White space
 * between a field name and its colon (obs-optional, RFC 5322 §4.5.3) is
 * accepted and dropped from the name.  Results and errors (text and line
 * number) do not depend on how the input is split into chunks: when a line
 * has several faults, the one whose octet comes first is reported.
 */
int ba_header_parser_push(struct ba_header_parser *p, const char *data, size_t n,
                          size_t *consumed, struct ba_err *err);
/*
 * Ends the input (EOF) of a message that had no empty line: completes the
 * last field (a last line without line end is accepted).  Returns 0 (also
 * when push had already returned 1) or -1 as push.
 */
int ba_header_parser_finish(struct ba_header_parser *p, struct ba_err *err);
/* Moves the parsed fields into *out (which is overwritten, not released); p keeps none. */
void ba_header_parser_take(struct ba_header_parser *p, struct ba_header_list *out);
void ba_header_parser_release(struct ba_header_parser *p);

#endif
