/* bluearrow/msg_read.h - read a given message (the sendmail input) into a spool
 *
 * The sendmail personality gets a complete RFC 5322 message on standard
 * input.  ba_msg_read() reads it once, in bounded memory:
 *
 *  - the header block is parsed (at most header_max bytes, default 1 MB);
 *  - with BA_MSG_READ_RCPT_FROM_HEADERS (sendmail -t) the recipients are
 *    collected from To, Cc and Bcc, or from Resent-To, Resent-Cc and
 *    Resent-Bcc when any Resent- field is present (RFC 5322 §3.6.6: the
 *    resent block describes the current transmission);
 *  - Bcc and Resent-Bcc fields are removed (BA_MSG_READ_REMOVE_BCC);
 *  - From, Date and Message-ID are added or replaced as msmtp's
 *    set_from_header, set_date_header and set_msgid_header do (auto = add
 *    when missing, on = replace, off = leave alone); generated fields go in
 *    front of the original ones, in the order From, To (undisclosed), Date,
 *    Message-ID, as msmtp writes them;
 *  - undisclosed recipients: To, Cc and Bcc are removed and one field
 *    "To: undisclosed-recipients:;" is added;
 *  - without BA_MSG_READ_DOTS_ARE_DATA (sendmail without -i/-oi) a line
 *    consisting of a lone "." ends the input, as sendmail does;
 *
 * and the rewritten header plus the unchanged body go into a ba_spool: the
 * first mem_max bytes (default 1 MB) in memory, the rest in an unlinked
 * temporary file (O_TMPFILE, else mkstemp + unlink), so nothing partial is
 * ever visible in the file system and nothing is left behind on a crash.
 * Kept header lines and the body are copied byte for byte (line ends
 * included); generated lines use the line end of the input's first line.
 *
 * The header block is what header.h's reader (struct ba_header_reader)
 * says it is, the same reader the 7-bit downgrade uses: it ends at the
 * first empty line or at the end of the input; a line that is neither a
 * field nor a continuation is kept in place, byte for byte, and the fields
 * after it are still fields for -t, Bcc removal and the From, Date and
 * Message-ID checks (msmtp's rule); a CR not followed by LF anywhere in the
 * header is EX_DATAERR ("line N: bare CR (not followed by LF) in header"),
 * because the data phase would turn it into a line end.  So the -t
 * recipients, the Bcc removal and the spooled header (the wire) come from
 * one parse.  The reader only classifies lines; this module keeps the raw
 * bytes itself (not header.h's field list, which copies and unfolds every
 * field), because every kept byte must be copied unchanged, lines over 998
 * octets and NUL bytes are kept (the spool flags them for the 7-bit
 * rendering), and sendmail's lone-dot rule applies to header lines too.
 *
 * Why not addr.h for -t: it must accept what msmtp accepts in To/Cc/Bcc,
 * notably local names without a domain ("To: root"), which the `aliases`
 * file maps afterwards but which are no RFC 5322 addr-spec (addr.h rightly
 * refuses them).  ba_msg_addr_list() is therefore a lenient scanner that
 * only extracts the envelope addresses; the engine and route validate each
 * address before it is sent (ba_addr_spec_valid, IDN).
 */
#ifndef BLUEARROW_MSG_READ_H
#define BLUEARROW_MSG_READ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/msg.h"

/* ---- the spool ---------------------------------------------------------- */

typedef struct ba_spool ba_spool;

/* What was seen while spooling (ba_spool_flags()). */
enum ba_spool_flags {
	BA_SPOOL_8BIT = 1 << 0,      /* a byte >= 0x80 */
	BA_SPOOL_LONG_LINE = 1 << 1, /* a line longer than 998 octets without its end (RFC 5322 §2.1.1) */
	BA_SPOOL_BARE_CR = 1 << 2,   /* a CR not followed by LF */
	BA_SPOOL_BARE_LF = 1 << 3,   /* an LF not preceded by CR (the normal Unix line end) */
	BA_SPOOL_NUL = 1 << 4        /* a NUL byte */
};

#define BA_SPOOL_MEM_DEFAULT ((size_t)1 << 20)

/*
 * Creates an empty spool keeping up to mem_max bytes (0 = 1 MB) in memory;
 * beyond that it writes to an unlinked file in $TMPDIR (else /tmp, see
 * ba_tmpfile() in io.h), created on first need.
 * Errors: EX_OSERR.  Free with ba_spool_free().
 */
int ba_spool_new(ba_spool **out, size_t mem_max, struct ba_err *err);
/* NULL is a no-op.  Closes the temporary file (its space is freed: it has no name). */
void ba_spool_free(ba_spool *s);
/*
 * The writer that appends to the spool (borrowed; valid until
 * ba_spool_free()).  Writing after ba_spool_reader() is a BA_BUG.
 * Its errors: EX_CANTCREAT (temporary file), EX_IOERR (disk full), EX_OSERR.
 */
ba_writer *ba_spool_writer(ba_spool *s);
/*
 * A reader positioned at the start of the spooled bytes (borrowed; valid
 * until ba_spool_free()).  May be called again to rewind, e.g. to retry
 * the message with another host.  Errors of its reads: EX_IOERR.
 */
ba_reader *ba_spool_reader(ba_spool *s);
/*
 * From now on the spool keeps no copy of what is written: the caller
 * promises that the bytes it writes are those of the regular file fd from
 * offset off on (it writes them as it reads them from there), and reads
 * give them back with pread().  The spool does not own fd.  So a message
 * given as a file is not copied.  The last read fails (EX_IOERR) if the
 * file was truncated or rewritten in place (same size, new mtime or ctime)
 * since this call; appending to it is harmless.  Returns 1, or 0
 * when this is not possible (fd is no regular file, or bytes went to the
 * overflow file already): writes are then kept as before.
 */
int ba_spool_refer(ba_spool *s, int fd, off_t off);
/* Bytes written so far. */
uint64_t ba_spool_size(const ba_spool *s);
/* The size with every bare LF or CR counted as CRLF: what the data phase carries (RFC 1870 SIZE). */
uint64_t ba_spool_wire_size(const ba_spool *s);
/* enum ba_spool_flags bits seen so far. */
unsigned ba_spool_flags(const ba_spool *s);

/* ---- reading a message -------------------------------------------------- */

enum ba_msg_read_flags {
	BA_MSG_READ_DOTS_ARE_DATA = 1 << 0,      /* -i / -oi: "." is an ordinary line */
	BA_MSG_READ_RCPT_FROM_HEADERS = 1 << 1,  /* -t */
	BA_MSG_READ_REMOVE_BCC = 1 << 2,         /* remove Bcc and Resent-Bcc (msmtp remove_bcc_headers) */
	BA_MSG_READ_UNDISCLOSED = 1 << 3,        /* msmtp undisclosed_recipients */
	BA_MSG_READ_REFER_INPUT = 1 << 4,        /* in reads in_fd, unbuffered (a ba_fd_reader):
	                                            if that is a regular file, the body is not
	                                            copied (ba_spool_refer()) */
	BA_MSG_READ_DOT_NO_COUNT = 1 << 5        /* after a lone "." line read no further (a
	                                            terminal: what follows is not typed yet);
	                                            dropped_after_dot stays 0 */
};

/* Values as struct ba_account's set_*_header (bluearrow/config.h), kept apart to stay below config. */
enum ba_msg_hdr_mode { BA_MSG_HDR_AUTO, BA_MSG_HDR_ON, BA_MSG_HDR_OFF };

struct ba_msg_read_opts {          /* zero = defaults */
	unsigned flags;                /* enum ba_msg_read_flags */
	enum ba_msg_hdr_mode set_from; /* needs from_addr; without one nothing is added */
	enum ba_msg_hdr_mode set_date;
	enum ba_msg_hdr_mode set_msgid;
	const char *from_addr;         /* address of a generated From (the envelope sender); borrowed */
	const char *from_name;         /* its display name (UTF-8, -F); NULL = none; borrowed */
	size_t header_max;             /* bound on the header block; 0 = 1 MB */
	size_t mem_max;                /* spool memory; 0 = 1 MB */
	int in_fd;                     /* with BA_MSG_READ_REFER_INPUT: the fd in reads */
	struct ba_msg_opts msg;        /* clock and random source for Date and Message-ID */
	/*
	 * Optional: called once the header block has been read and before
	 * anything is decided from it, with the addr-spec of the first mailbox
	 * of the From field (NULL when there is none).  It may change *o, a
	 * copy the rest of the read uses: the flags BA_MSG_READ_RCPT_FROM_HEADERS,
	 * _REMOVE_BCC and _UNDISCLOSED, and set_from, set_date, set_msgid,
	 * from_addr, from_name (the other members are ignored).  This is where
	 * the account is chosen when the From field can choose it.  Returns 0,
	 * or -1 with err set, which ends the read with that error.
	 */
	int (*header_done)(void *ctx, const char *header_from, struct ba_msg_read_opts *o,
	                   struct ba_err *err);
	void *header_ctx;
};

/* The outcome: the spool and what the header said.  Release with ba_msg_read_release(). */
struct ba_msg_input {
	ba_spool *spool;
	char **rcpt;           /* -t recipients (addr-specs as written, malloc'd), in header order */
	size_t nrcpt;
	char *header_from;     /* addr-spec of the first mailbox of the (kept) From field, or NULL */
	int had_from, had_date, had_msgid, had_resent;
	int added_from, added_date, added_msgid;
	uint64_t dropped_after_dot; /* bytes read after a lone "." line (without DOTS_ARE_DATA):
	                               sendmail's rule ends the message there, so they are not
	                               in the spool; the caller reports them */
};

/*
 * Reads the whole message from in and spools it rewritten as described at
 * the top.  On success the caller releases *out with ba_msg_read_release();
 * on failure *out is empty.
 * Errors: EX_DATAERR (header block larger than header_max, a bare CR in
 * the header naming its line, a recipient field that is not an address
 * list, a From name or address with control characters), EX_NOINPUT (empty input), the input's errors (EX_IOERR),
 * the spool's errors.
 */
int ba_msg_read(struct ba_msg_input *out, ba_reader *in, const struct ba_msg_read_opts *o,
                struct ba_err *err);
/* Frees everything in *m and zeroes it; safe on a zeroed struct. */
void ba_msg_read_release(struct ba_msg_input *m);

/*
 * Appends the addr-specs of an RFC 5322 address list (a field body,
 * possibly folded) to the array *v of *n strings (each malloc'd): mailboxes, angle addresses
 * (a source route "@a,@b:" is dropped), groups (their members; an empty
 * group adds nothing), comments and quoted display names skipped.
 * Local names without "@" are kept (msmtp's aliases apply to them).
 * Errors: EX_DATAERR ("unbalanced '<'" etc., naming the field), EX_OSERR.
 */
int ba_msg_addr_list(char ***v, size_t *n, const char *field, const char *body, size_t len,
                     struct ba_err *err);

#endif
