/* bluearrow/msg.h - the message model: build an RFC 5322 message from parts
 *
 * A ba_msg collects the originator and recipient fields, the subject, the
 * threading fields, extra header fields and a MIME body (bluearrow/mime.h),
 * validating each as it is set: everything that can be wrong with the input
 * is reported by the setters or by ba_msg_write() before its first byte.
 *
 * The written header has, in this order: Date, From, To, Cc, Reply-To, Subject,
 * Message-ID, In-Reply-To, References, the extra fields, MIME-Version and
 * the body's Content-* fields.  Bcc recipients are kept for the envelope
 * (ba_msg_rcpt_count()/ba_msg_rcpt()) and never written (RFC 5322 §3.6.3
 * allows either; not writing them is the only way they stay blind).  Lines
 * are folded at 78 characters where the syntax allows and are never longer
 * than 998 (RFC 5322 §2.1.1); non-ASCII text is RFC 2047-encoded.
 *
 * Date and Message-ID depend on the clock and on random bytes, both taken
 * from the options, so tests get fixed output.
 */
#ifndef BLUEARROW_MSG_H
#define BLUEARROW_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/mime.h"

typedef struct ba_msg ba_msg;

/*
 * Stores the current time in *t (seconds since the epoch) and the local
 * offset from UTC in *utc_offset_min (e.g. 120 for +0200).  Returns 0 or -1.
 */
typedef int ba_clock_fn(void *ctx, int64_t *t, int *utc_offset_min, struct ba_err *err);

struct ba_msg_opts {            /* zero = defaults */
	struct ba_mime_opts mime;   /* eol, 8bit, random source (also for the Message-ID) */
	ba_clock_fn *clock;         /* NULL = time(2) and the local zone's offset */
	void *clock_ctx;
};

/* Creates an empty message.  Errors: EX_OSERR.  Free with ba_msg_free(). */
int ba_msg_new(ba_msg **out, struct ba_err *err);
/* NULL is a no-op.  Frees the body too. */
void ba_msg_free(ba_msg *m);

/*
 * Address fields.  list is an RFC 5322 address list in UTF-8 ("Name
 * <a@b.example>, c@d.example", groups such as "undisclosed-recipients:;",
 * comments), parsed by bluearrow/addr.h; each call appends to the field, so
 * the options can be repeated.  From takes exactly one mailbox, not in a
 * group.  When written, display names are quoted or RFC 2047-encoded as
 * needed and domains are A-labels (the output stays 7-bit), folded at 78.
 * Errors: EX_DATAERR with the field name, the input and where it is wrong
 * ("to: invalid address 'foo@' at column 5: missing domain"), or for an
 * address over 254 octets or one whose local part is not ASCII.
 */
int ba_msg_add_from(ba_msg *m, const char *list, struct ba_err *err);
int ba_msg_add_to(ba_msg *m, const char *list, struct ba_err *err);
int ba_msg_add_cc(ba_msg *m, const char *list, struct ba_err *err);
int ba_msg_add_bcc(ba_msg *m, const char *list, struct ba_err *err);
/*
 * Reply-To (RFC 5322 §3.6.2): an address list as above, appended; written
 * after Cc, never a recipient.  An extra field "Reply-To" given with
 * ba_msg_add_header() as well makes ba_msg_write() fail with EX_USAGE (the
 * field may appear once).
 */
int ba_msg_add_reply_to(ba_msg *m, const char *list, struct ba_err *err);

/*
 * The subject (UTF-8).  CR, LF and other control characters except TAB are
 * refused (header injection), as is invalid UTF-8: EX_DATAERR.
 */
int ba_msg_set_subject(ba_msg *m, const char *subject, struct ba_err *err);
/*
 * In-Reply-To: one or more message identifiers "<id@host>", separated by
 * white space.  References: the same, appended (the option may repeat).
 * Errors: EX_DATAERR naming the identifier.
 */
int ba_msg_set_in_reply_to(ba_msg *m, const char *ids, struct ba_err *err);
int ba_msg_add_references(ba_msg *m, const char *ids, struct ba_err *err);
/*
 * An extra header field given as "Name: value".  The name must be a field
 * name (RFC 5322 §3.6.8: printable ASCII except ":") and not one bluearrow
 * writes itself (From, To, Cc, Bcc, Subject, Date, Message-ID, In-Reply-To,
 * References, MIME-Version, Content-*); the value is UTF-8 without CR, LF or
 * other controls except TAB.  Errors: EX_DATAERR quoting the field name.
 */
int ba_msg_add_header(ba_msg *m, const char *field, struct ba_err *err);
/* The body; takes ownership of root (freed with the message).  Without one the body is empty text. */
void ba_msg_set_body(ba_msg *m, ba_mime_part *root);

/*
 * Validates that the message is complete (a From and at least one of To,
 * Cc, Bcc: EX_USAGE otherwise), prepares the body (ba_mime_prepare(): reads
 * attachments once), builds the header in memory and then writes header and
 * body to w, flushing it at the end.  Nothing is written unless everything
 * before the body's content validated.  Errors: those of ba_mime_prepare()
 * and ba_mime_write(), EX_IOERR from w.
 */
int ba_msg_write(ba_msg *m, ba_writer *w, const struct ba_msg_opts *o, struct ba_err *err);

/* The envelope recipients (To, Cc, then Bcc addr-specs, in order), for the submitter. */
size_t ba_msg_rcpt_count(const ba_msg *m);
const char *ba_msg_rcpt(const ba_msg *m, size_t i);   /* borrowed; "a@b.example" */
/* The From addr-spec, or NULL before ba_msg_add_from(). Borrowed. */
const char *ba_msg_from(const ba_msg *m);

/* Formats t as an RFC 5322 §3.3 date-time with the given offset ("Sun, 29 Nov 2026 02:03:04 +0100"). */
int ba_msg_format_date(struct ba_buf *out, int64_t t, int utc_offset_min);

/*
 * Appends a new Message-ID "<...@domain>" (RFC 5322 §3.6.4) for a message
 * made at time t whose From address is from (the domain names the right
 * side; NULL or no domain = "localhost").  Random bytes come from o (may be
 * NULL: getrandom(2)).  Used by ba_msg_write() and by the sendmail reader.
 * Returns 0, or -1 (EX_OSERR: no random bytes).
 */
int ba_msg_make_msgid(struct ba_buf *out, int64_t t, const char *from,
                      const struct ba_msg_opts *o, struct ba_err *err);

#endif
