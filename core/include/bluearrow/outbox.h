/* bluearrow/outbox.h - the crash-safe outbox: queued messages, their retry state, the flush
 *
 * Layer 5 (docs/ARCHITECTURE.md), after submit: the flush delivers through
 * ba_submit_send(), the same pipeline as a direct send.
 *
 * The directory (0700, owned by the effective user; refused otherwise):
 *
 *   tmp/         files being written; nothing here is an entry
 *   q/ID.entry   an entry in one file: its envelope and state as written
 *                when it was queued (ba_outbox_entry_format(), up to the
 *                line "end"), then the message as it is sent (after Bcc
 *                removal and the added From, Date, Message-ID); the entry
 *                exists exactly when this file exists
 *   q/ID.up      its state once it changed (an attempt, a mark): it
 *                replaces the one in ID.entry
 *   q/ID.msg     the message and its state, the pair of files that
 *   q/ID.st      earlier versions wrote (such an entry exists exactly when
 *                its ID.st exists); read, updated and sent as before
 *   failed/      entries that failed for good (the same files, the state
 *                with the reason)
 *   corrupt/     files set aside because they could not be read as an entry
 *
 * An entry is written to tmp/ID.entry, fsync'd, renamed into q/ and q/
 * fsync'd before ba_outbox_add() returns, so a crash at any point leaves
 * either no entry or a complete one.  One file per entry halves what a
 * flush opens, reads and removes per message.  A state update is written
 * to tmp/ID.up, fsync'd, renamed into place and the directory fsync'd.
 * Every file is 0600 and opened with O_NOFOLLOW, but for ID.entry once its
 * state has changed: it is made 0400 before its first ID.up is written, so
 * an ID.entry still 0600 has no ID.up (no lookup needed).
 *
 * Whoever works on an entry holds flock(LOCK_EX) on the file that carries
 * its message (ID.entry, or ID.msg): the enqueuing process from the
 * creation of the file until it is in place, a flush from when it decides
 * to send the entry (it reads it first without the lock, and again under
 * it when its state changed meanwhile) until the entry is updated or
 * removed.  A flush skips an entry that is locked, so two concurrent
 * flushes never send one message twice.
 * A crash after the server accepted the data but before the entry was
 * removed sends the message again on the next flush (at-least-once); its
 * Message-ID, kept in the state, makes the duplicate recognisable.  So does
 * a power failure before the removals of a flush were synced
 * (ba_outbox_flush()).
 *
 * Nothing here prints: problems found in the directory (a corrupt state
 * file, set aside) go to the log callback as warnings.
 */
#ifndef BLUEARROW_OUTBOX_H
#define BLUEARROW_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/log.h"
#include "bluearrow/route.h"

typedef struct ba_outbox ba_outbox;

#define BA_OUTBOX_ID_MAX 64
#define BA_OUTBOX_MAX_AGE_DEFAULT (5L * 24 * 3600) /* queue_max_age when unset: 5 days */

enum ba_outbox_rcpt_state { BA_OUTBOX_RCPT_PENDING, BA_OUTBOX_RCPT_SENT, BA_OUTBOX_RCPT_FAILED };

struct ba_outbox_rcpt {
	char *addr;                  /* the envelope recipient (after aliases) */
	enum ba_outbox_rcpt_state state;
	int code;                    /* the server's last reply to it; 0 = none yet */
	char *reply;                 /* that reply when it refused the recipient ("550 5.1.1
	                                no such user", cleaned); NULL = none */
};

/* One entry's envelope and state.  Strings are malloc'd; release with ba_outbox_entry_release(). */
struct ba_outbox_entry {
	char id[BA_OUTBOX_ID_MAX];   /* "1733500000.123456.P4242R1a2b3c4d": time, pid, random */
	char *account;               /* the account that sends it */
	char *from;                  /* the envelope sender ("" = <>) */
	struct ba_outbox_rcpt *rcpt;
	size_t nrcpt;
	unsigned notify;             /* DSN: enum ba_config_dsn_notify bits; 0 = the account's */
	int ret;                     /* enum ba_config_dsn_return; 0 = the account's */
	char *envid;                 /* DSN ENVID; NULL = none */
	char *msgid;                 /* the message's Message-ID field body; NULL = none found */
	int64_t created;             /* seconds since the epoch */
	int64_t next;                /* the next attempt is due at this time */
	unsigned attempts;           /* delivery attempts made */
	int error_class;             /* the last attempt's sysexits class; 0 = none */
	int error_code;              /* its SMTP reply code; 0 = none */
	char *error;                 /* its text, with the server's reply; NULL = none */
	uint64_t size;               /* bytes of the message file (set by list and add) */
	int64_t inflight;            /* an interactive flush (o->interactive) sent the end of the
	                                data at this time and has no reply yet; when it stays set
	                                (the connection was lost after the final dot, or the
	                                process died) delivery is unknown ("sent-unknown"): no
	                                flush sends it again until ba_outbox_retry(); 0 = none */
	int cancelled;               /* cancelled by the user (ba_outbox_cancel(), or a flush's
	                                cancel_fd): kept, not sent until ba_outbox_retry() */
};

/* Frees the strings of *e and zeroes it; safe on a zeroed struct. */
void ba_outbox_entry_release(struct ba_outbox_entry *e);

/*
 * The state file of e into out (reset first): "bluearrow-outbox 1", one
 * "key value" line per field ("rcpt STATE CODE ADDR" per recipient), "end".
 * Control characters in text values become spaces.  Returns 0, or -1 when
 * out failed (out of memory).
 */
int ba_outbox_entry_format(struct ba_buf *out, const struct ba_outbox_entry *e);
/*
 * Parses a state file (text[0..len)) into *e (zeroed first; on success the
 * caller releases it).  The first line must be "bluearrow-outbox 1" and the
 * last "end"; every key is known, the required ones (id, account, from,
 * at least one rcpt, created) are present, numbers are numbers, and no
 * line holds a control character (the format never writes one).
 * Errors: EX_DATAERR "line N: ..." for anything else; EX_OSERR.
 */
int ba_outbox_entry_parse(struct ba_outbox_entry *e, const char *text, size_t len,
                          struct ba_err *err);

/*
 * The default outbox directory into out (reset first):
 * $XDG_STATE_HOME/bluearrow/outbox, else $HOME/.local/state/bluearrow/outbox.
 * Errors: EX_CONFIG when neither variable is set; EX_OSERR.
 */
int ba_outbox_default_dir(struct ba_buf *out, struct ba_err *err);
/* Where a system-wide configuration (/etc/bluearrow.conf, /etc/msmtprc) queues by default. */
#define BA_OUTBOX_SYSTEM_DIR "/var/spool/bluearrow"
/*
 * The outbox directory of acc into out (reset first): its `outbox` key,
 * else BA_OUTBOX_SYSTEM_DIR when it comes from a system-wide file
 * (acc->system_file), else ba_outbox_default_dir().  Errors: those of
 * ba_outbox_default_dir().
 */
int ba_outbox_account_dir(struct ba_buf *out, const struct ba_account *acc, struct ba_err *err);

/*
 * Opens the outbox at dir (borrowed; copied), creating it (0700, and its
 * parents) and its subdirectories when missing.  log (optional, borrowed for
 * the handle's life) receives the warnings about files set aside.  The
 * caller frees *out with ba_outbox_free().
 * Errors: EX_CANTCREAT (cannot create), EX_NOPERM (dir is a symbolic link,
 * owned by another user, or open to group or others), EX_OSERR.
 */
int ba_outbox_open(ba_outbox **out, const char *dir, const struct ba_log *log,
                   struct ba_err *err);
/* NULL is a no-op. */
void ba_outbox_free(ba_outbox *ob);
/* The directory (borrowed). */
const char *ba_outbox_dir(const ba_outbox *ob);

/*
 * Adds a message: msg is read to its end into the entry's message file,
 * e (borrowed; e->id, created, next, size and msgid are filled in here when
 * they are empty) becomes its state; both are fsync'd and renamed into
 * place, and the directory fsync'd, before this returns 0.  On failure
 * nothing of the entry is left.  With hold set the entry is left locked
 * and *hold receives the descriptor (for ba_outbox_flush()'s hold_fd: the
 * -odb child delivers it without a second flush taking it); else -1 or
 * NULL.  Errors: EX_IOERR (a write or fsync failed: "outbox DIR: cannot
 * write 'tmp/ID.entry': No space left on device"), EX_CANTCREAT, msg's read
 * errors, EX_OSERR.
 */
int ba_outbox_add(ba_outbox *ob, struct ba_outbox_entry *e, ba_reader *msg, int *hold,
                  struct ba_err *err);

/*
 * Every entry in q/, oldest first, into *v (*n of them; the caller releases
 * each and frees *v, ba_outbox_list_free()).  A state file that does not
 * parse, and a state file without its message, is moved to corrupt/ with a
 * warning to the log; message files left without a state by a crash are
 * removed when no one holds them.  Entries are read without locks: one
 * being flushed may change meanwhile.
 * Errors: EX_IOERR (cannot read the directory), EX_OSERR.
 */
int ba_outbox_list(ba_outbox *ob, struct ba_outbox_entry **v, size_t *n, struct ba_err *err);
void ba_outbox_list_free(struct ba_outbox_entry *v, size_t n);
/*
 * As ba_outbox_list() for the entries in failed/ (oldest first; their
 * e->error says why).  A state file that does not parse is moved to
 * corrupt/.  Errors: EX_IOERR, EX_OSERR.
 */
int ba_outbox_list_failed(ba_outbox *ob, struct ba_outbox_entry **v, size_t *n,
                          struct ba_err *err);

/*
 * Reads one entry (ID as shown by list); failed/ is searched too (*failed
 * is then 1; failed may be NULL).  msg_fd, when not NULL, receives a
 * descriptor open for reading on its message, at the message's first byte
 * (e->size bytes follow), which the caller closes; -1 on failure.
 * Errors: EX_NOINPUT "outbox DIR: no entry 'ID'"; EX_DATAERR (corrupt
 * state); EX_USAGE (an ID with '/' or a leading dot).
 */
int ba_outbox_get(ba_outbox *ob, const char *id, struct ba_outbox_entry *e, int *failed,
                  int *msg_fd, struct ba_err *err);
/*
 * Removes an entry (queued or failed) under its lock.  Errors as
 * ba_outbox_get(), EX_TEMPFAIL "entry 'ID' is being sent" when it is locked.
 */
int ba_outbox_remove(ba_outbox *ob, const char *id, struct ba_err *err);
/*
 * Makes an entry due now, clearing its cancelled and in-flight marks (a
 * sent-unknown entry is sent again: the user asked); an entry in failed/
 * goes back to q/ with its failed recipients pending again and a fresh max
 * age.  Errors as ba_outbox_remove().
 */
int ba_outbox_retry(ba_outbox *ob, const char *id, struct ba_err *err);
/*
 * Marks a queued entry cancelled (durably): no flush sends it until
 * ba_outbox_retry().  Errors as ba_outbox_remove(); EX_USAGE for an entry
 * in failed/.
 */
int ba_outbox_cancel(ba_outbox *ob, const char *id, struct ba_err *err);

/*
 * Whether the failure in err may pass with time, so the message is worth
 * queueing (queue on_failure) or keeping queued: a 4xx reply, a network or
 * name failure (EX_TEMPFAIL, EX_IOERR, EX_NOHOST), an interrupted TLS
 * handshake (BA_ERR_TLS_FAILED).  A 5xx reply, a refused authentication, a
 * configuration, usage or data error are permanent.
 */
int ba_outbox_temporary(const struct ba_err *err);

/*
 * A send time (`send --at`) into *out, seconds since the epoch: "+N" with
 * an optional unit s, m, h or d (+10m, +2h, +1d) after now; "YYYY-MM-DD
 * HH:MM[:SS]" in local time; ISO 8601 "YYYY-MM-DDTHH:MM[:SS]" followed by
 * nothing (local time), Z or an offset (+01:00, -0500).  Errors: EX_USAGE
 * "invalid time 'S': ..." (unparsable, a date that does not exist, a
 * relative time over 100 years), EX_USAGE "time 'S' is in the past".
 */
int ba_outbox_parse_time(int64_t *out, const char *s, int64_t now, struct ba_err *err);

/* What a flush did with one entry. */
enum ba_outbox_outcome {
	BA_OUTBOX_DELIVERED, /* accepted for every recipient: removed */
	BA_OUTBOX_DEFERRED,  /* a temporary failure: stays queued until e->next */
	BA_OUTBOX_FAILED,    /* a permanent failure or too old: moved to failed/ */
	BA_OUTBOX_SKIPPED,   /* locked by another process, or its account is unusable now */
	BA_OUTBOX_UNKNOWN,   /* interactive: the connection was lost after the end of the data,
	                        before the reply: kept with e->inflight set, never resent without
	                        ba_outbox_retry() */
	BA_OUTBOX_CANCELLED  /* the send was cancelled (cancel_fd): kept with e->cancelled set,
	                        not counted as an attempt */
};

/* What an entry's send is doing, for a flush's phase callback. */
enum ba_outbox_phase {
	BA_OUTBOX_CONNECTING, /* the route is being opened (or the kept one used) */
	BA_OUTBOX_SENDING,    /* the data is going out: sent, acked and total as smtp.h */
	BA_OUTBOX_AWAITING    /* the end of the data is out: waiting for the reply */
};

struct ba_submit_result;

struct ba_outbox_flush_opts {   /* zero = defaults; every pointer is borrowed */
	const ba_config *cfg;       /* the accounts (required) */
	const char *account;        /* only this account's entries; NULL = all */
	const char *const *ids;     /* only these entries (due or not); nids = 0: every due one */
	size_t nids;
	int all;                    /* every entry, due or not (sendmail -q), except one held
	                               for later: never tried, next attempt in the future */
	int hold_fd;                /* > 0: an entry this process holds from ba_outbox_add() */
	int64_t now;                /* seconds; 0 = the clock */
	const struct ba_log *log;   /* the dialogue (BA_LOG_PROTO) and the logfile warnings */
	unsigned smtp_flags;        /* extra enum ba_smtp_flags */
	ba_route_ask_password_fn *ask_password;
	void *ask_password_ctx;
	/*
	 * optional: called once per entry when its outcome is recorded (in the
	 * order of the entries but for one that fails before it reaches the
	 * server; with PIPELINING, unless lock-step (interactive below), during
	 * the next entry's send), with the
	 * error of a failed attempt (else NULL)
	 */
	void (*done)(void *ctx, const struct ba_outbox_entry *e, enum ba_outbox_outcome outcome,
	             const struct ba_err *err);
	void *done_ctx;
	/*
	 * Interactive (a person watching, bluearrow-tui): before the end of the
	 * data goes out the entry is marked in flight (e->inflight, written and
	 * fsync'd); when no reply to the data comes (the connection lost after
	 * the final dot) the outcome is BA_OUTBOX_UNKNOWN and the mark stays, so
	 * neither this nor any later flush sends the message again unless
	 * ba_outbox_retry() is called.  The bulk flush (0) keeps at-least-once:
	 * such a message is deferred and sent again.  Entries marked in flight or
	 * cancelled are never selected, interactive or not.  An interactive flush,
	 * and one with cancel_fd, phase or result, sends lock-step: no pipelining
	 * across messages, each verdict awaited before the next message.
	 */
	int interactive;
	const int *cancel_fd;       /* optional: cancels the send in progress (smtp.h); that entry
	                               becomes BA_OUTBOX_CANCELLED and the flush stops */
	/* optional: called in the flushing thread as a send advances (sent, acked and total
	   only for BA_OUTBOX_SENDING and BA_OUTBOX_AWAITING; 0 otherwise) */
	void (*phase)(void *ctx, const char *id, enum ba_outbox_phase ph, uint64_t sent,
	              uint64_t acked, uint64_t total);
	void *phase_ctx;
	/* optional: after each attempt that reached the server, before done: its result (the
	   reply to the data in res->smtp_code and smtp_msg, per recipient in res->result) */
	void (*result)(void *ctx, const struct ba_outbox_entry *e,
	               const struct ba_submit_result *res);
	void *result_ctx;
};

struct ba_outbox_flush_stats {
	size_t delivered, deferred, failed, skipped, unknown, cancelled;
};

/*
 * Delivers the entries o selects, oldest first (by ID: the order they were
 * queued in; with o->ids, in the order given), grouped by account: one
 * connection per account carries every message (ba_submit_send() with a
 * kept route), reconnecting after a failure.  Each entry is read once,
 * under its lock, when its turn comes (twice when accounts interleave):
 * a flush of o->ids reads no other entry.  With PIPELINING (and not
 * lock-step: o->interactive, cancel_fd, phase, result) the end of
 * a message's data goes out with the next message's commands and its
 * outcome is recorded when the server's reply to it is read, during the
 * next message's send (an entry counts as delivered only on the 250 to
 * its own data; a connection lost before it leaves the entry queued, to
 * be sent again).  Delivered entries are removed (the directory is
 * fsync'd once per 256 removals and at the end: a removal lost to a power
 * failure only sends that message again), deferred ones get attempts + 1,
 * the error and a next attempt 5 minutes * 2^attempts later (at most 4
 * hours), permanent failures (5xx, a refused
 * recipient, the data refused) and entries older than the account's
 * queue_max_age move to failed/; with the account's `bounce on` and a
 * sender that is not <>, a report of the failure (RFC 3464
 * multipart/report: the reason per recipient and the original header) is
 * then sent to the sender through the account with the null sender <>
 * (a report that cannot be sent is logged as a warning, never queued or
 * retried).  Recipients already accepted are not sent
 * again.  An entry whose account no longer exists (or is unusable) fails.
 * Returns 0 when the queue could be walked (individual failures are in
 * *st and in done), else -1.  Errors: those of ba_outbox_list().
 */
int ba_outbox_flush(ba_outbox *ob, const struct ba_outbox_flush_opts *o,
                    struct ba_outbox_flush_stats *st, struct ba_err *err);

#endif
