/* tui/worker.h - bluearrow-tui's delivery worker: the outbox, sent off the UI thread
 *
 * A tui_worker owns one thread that watches the outbox directories of the
 * configuration's accounts and delivers the entries that are due through
 * the same core path as `bluearrow outbox flush` (ba_outbox_flush() with
 * explicit ids, so every send is recorded in the outbox exactly as a flush
 * records it).  The UI thread never waits for the network: it enqueues
 * (durable before the call returns, or written by a thread of its own and
 * polled for, tui_worker_enqueue_start()), asks for cancels, retries,
 * removals, and reads snapshots of every entry's live state.
 *
 * The worker publishes its state under a mutex and writes a byte to a pipe
 * whenever it changes; the UI polls tui_worker_fd() together with standard
 * input, calls tui_worker_drain() and then takes a tui_worker_snapshot().
 *
 * Sends made by the worker are interactive: before the end of the data
 * goes out the entry is marked in flight in its state file (fsync'd), so
 * when the process dies or the connection is lost after the final dot
 * without a reply the entry shows as sent-unknown and is never sent again
 * without an explicit retry (tui_worker_retry()).
 *
 * Thread safety: every function here is called from one thread (the UI
 * thread), except that tui_worker_fd() may be polled anywhere.  The log
 * callback of the options is called from the worker thread and from the
 * threads of tui_worker_enqueue_start(), which block every signal: they
 * reach the UI thread.
 */
#ifndef BLUEARROW_TUI_WORKER_H
#define BLUEARROW_TUI_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/draft.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"

struct tui_worker;

/* Every entry is in exactly one of these. */
enum tui_state {
	TUI_HELD,         /* waiting for hold_until (the undo window, send later); never tried */
	TUI_QUEUED,       /* due, waiting for the worker */
	TUI_CONNECTING,   /* connecting, TLS, authentication */
	TUI_SENDING,      /* the data is going out: size, sent, acked, rate */
	TUI_AWAITING,     /* the end of the data is out; waiting for the server's reply */
	TUI_SENT,         /* accepted: reply holds the server's reply (kept for this session) */
	TUI_DEFERRED,     /* a temporary failure: reply, attempts, next_try */
	TUI_FAILED,       /* a permanent failure (in failed/, also of earlier runs): reply says
	                     why, one line per refused recipient */
	TUI_CANCELLED,    /* cancelled by the user; kept in the outbox, sent only on retry */
	TUI_SENT_UNKNOWN, /* the connection was lost (or the process died) after the end of
	                     the data, before the reply: never resent without a retry */
	TUI_NSTATES
};

/* "held", "queued", "connecting", "sending", "awaiting reply", "sent", "deferred", "failed",
 * "cancelled", "sent-unknown"; never NULL. */
const char *tui_state_name(enum tui_state s);

#define TUI_ID_MAX 64 /* as BA_OUTBOX_ID_MAX */

/* One entry of a snapshot.  Every string is owned by the snapshot, never NULL ("" = none). */
struct tui_entry {
	char id[TUI_ID_MAX];   /* the outbox id */
	enum tui_state state;
	char *account;
	char *from;            /* the envelope sender ("" = <>) */
	char *rcpts;           /* the envelope recipients, ", "-separated */
	char *subject;         /* the Subject field, RFC 2047 decoded; "" = none */
	uint64_t size;         /* bytes of the message file */
	uint64_t sent;         /* TUI_SENDING, TUI_AWAITING: body bytes handed to the connection */
	uint64_t acked;        /* ... of which the server has read (sent minus the socket's
	                          unsent bytes): the figure for a progress bar */
	uint64_t total;        /* ... the body size the percentages refer to (0 = unknown) */
	double rate;           /* acked bytes per second, recent; 0 = not known yet */
	int64_t created;       /* seconds since the epoch */
	int64_t hold_until;    /* TUI_HELD: when it becomes due */
	int64_t next_try;      /* TUI_DEFERRED: the next attempt */
	unsigned attempts;     /* delivery attempts made */
	int code;              /* the last SMTP reply code; 0 = none */
	char *reply;           /* TUI_SENT: the server's reply; TUI_DEFERRED, TUI_FAILED,
	                          TUI_SENT_UNKNOWN, TUI_CANCELLED: the reason in words, for
	                          TUI_FAILED one line per refused recipient
	                          ("addr: 550 5.1.1 no such user"), lines separated by "\n"
	                          (a failure of an earlier run: the outbox's error text) */
	int acknowledged;      /* the user has acknowledged the error (tui_worker_ack()) */
	unsigned seq;          /* changes whenever anything in this entry changes */
};

struct tui_worker_opts {          /* zero = defaults */
	const ba_config *cfg;     /* required; borrowed until tui_worker_stop() returns */
	const struct ba_log *log; /* optional; called from the worker thread (BA_LOG_PROTO
	                             gives the dialogues: leave it out of a terminal UI) */
	int rescan_ms;            /* how often the outbox directories are looked at again for
	                             entries other processes add or change; 0 = 2000 */
	int retry_s;              /* a deferred entry is tried again after retry_s seconds,
	                             doubled per attempt (at most the outbox's own next attempt,
	                             5 minutes doubled per attempt, which `outbox list` shows and
	                             a later process keeps to): a person watching wants a message
	                             out soon after the server is back; 0 = 15, < 0 = only at the
	                             outbox's time */
	unsigned smtp_flags;      /* extra enum ba_smtp_flags (tests) */
};

/*
 * Opens the outbox directory of every account of o->cfg (ba_outbox_account_dir();
 * created when missing) and starts the worker thread, which reads them
 * (the first snapshot may be empty: the descriptor becomes readable when
 * the entries are in).  Entries found in flight (a previous process died
 * after the end of the data) are shown as TUI_SENT_UNKNOWN.  On success the
 * caller stops it with tui_worker_stop().  Errors: those of
 * ba_outbox_open() (naming the directory), EX_OSERR (thread, pipe).
 */
int tui_worker_start(struct tui_worker **out, const struct tui_worker_opts *o,
                     struct ba_err *err);

/*
 * Stops the thread, cancelling a send in progress (nothing is committed;
 * one whose end of the data is out waits for the server's reply, at most
 * the account's timeout), and frees w.  NULL is a no-op.
 */
void tui_worker_stop(struct tui_worker *w);

/*
 * A descriptor that is readable when the state changed since the last
 * tui_worker_drain() (for progress figures at most every 50 ms): poll it
 * with POLLIN together with standard input.
 * Borrowed; valid until tui_worker_stop().
 */
int tui_worker_fd(const struct tui_worker *w);
/* Empties the descriptor (never blocks).  Call before taking a snapshot. */
void tui_worker_drain(struct tui_worker *w);

/*
 * Every entry now, oldest first (those in failed/ and the ones sent in
 * this session included), into *v (*n of them).  Never waits for the network: only copies under
 * the worker's mutex.  The caller frees with tui_worker_snapshot_free().
 * Errors: EX_OSERR (out of memory).
 */
int tui_worker_snapshot(struct tui_worker *w, struct tui_entry **v, size_t *n,
                        struct ba_err *err);
void tui_worker_snapshot_free(struct tui_entry *v, size_t n);

/*
 * Builds the message of d (ba_draft_build()) for the account named account
 * (NULL: chosen by the From field, else the default account,
 * ba_submit_account()); a draft without From gets the account's
 * (ba_submit_from_field()); the recipients are To, Cc and Bcc through the
 * account's aliases; Bcc fields never leave the client.  The message is
 * written into the account's outbox and is durable (fsync'd, renamed,
 * directory fsync'd) before this returns: with hold_until later than now it
 * is TUI_HELD until then (the undo window, "send at TIME"), else it is due
 * at once and the worker takes it.  The id (at most TUI_ID_MAX) goes to
 * id_out (idlen bytes).  Runs in the calling thread: the draft's files are
 * read here.  Errors: those of ba_draft_build() (EX_DATAERR naming the
 * field, EX_NOINPUT for a missing attachment), ba_submit_account()
 * (EX_CONFIG), ba_submit_recipients() (EX_USAGE "no recipients found"),
 * ba_outbox_add() (EX_IOERR, EX_CANTCREAT).
 */
int tui_worker_enqueue(struct tui_worker *w, const ba_draft *d, const char *account,
                       int64_t hold_until, char *id_out, size_t idlen, struct ba_err *err);

/*
 * As tui_worker_enqueue(), but only the quick part runs in the calling
 * thread (the message's structure, the account, the recipients: the errors
 * of those come back here); a thread of its own reads the files, writes the
 * message into the outbox and makes it durable, so a large attachment never
 * holds up the caller.  d is copied: the caller may change or free it at
 * once.  *ticket names the enqueue for tui_worker_enqueue_poll(); the
 * descriptor of tui_worker_fd() becomes readable when it is done.  A
 * message being written when tui_worker_stop() is called is finished first.
 * Errors: as tui_worker_enqueue() for the quick part, EX_OSERR (thread).
 */
int tui_worker_enqueue_start(struct tui_worker *w, const ba_draft *d, const char *account,
                             int64_t hold_until, unsigned *ticket, struct ba_err *err);
/*
 * The outcome of ticket: 1 while the message is being written; 0 when it
 * is durable in the outbox, its id in id_out (idlen bytes); -1 with err
 * when writing it failed (the errors of tui_worker_enqueue(), nothing of
 * the entry left) or there is no such ticket (EX_NOINPUT).  Once 0 or -1
 * was returned the ticket is gone.
 */
int tui_worker_enqueue_poll(struct tui_worker *w, unsigned ticket, char *id_out, size_t idlen,
                            struct ba_err *err);

/*
 * Cancels the send of id: a send in progress is stopped within a second
 * and the server never sees the end of the data (once the end is out, the
 * reply is awaited and the outcome stands, see smtp.h); the entry stays in
 * the outbox as TUI_CANCELLED and is sent only after tui_worker_retry().
 * Cancelling a queued, held or deferred entry makes it TUI_CANCELLED too.
 * Returns at once; the snapshot shows the result.  Errors: EX_NOINPUT (no
 * such entry), EX_USAGE (sent, failed, sent-unknown or cancelled already),
 * EX_TEMPFAIL (awaiting the reply: too late; or the entry could not be
 * taken: try again).
 */
int tui_worker_cancel(struct tui_worker *w, const char *id, struct ba_err *err);
/*
 * Makes id due now (ba_outbox_retry()): a deferred, cancelled, sent-unknown
 * or failed entry is sent again by the worker.  Errors: EX_NOINPUT,
 * EX_TEMPFAIL (being sent, or sent), those of ba_outbox_retry().
 */
int tui_worker_retry(struct tui_worker *w, const char *id, struct ba_err *err);
/*
 * Removes id from the outbox (undo within the hold window: the server is
 * never contacted), or drops a sent entry from the list.  An entry being
 * sent is not removed (EX_TEMPFAIL "entry 'ID' is being sent": cancel it
 * first).  Errors: EX_NOINPUT, EX_TEMPFAIL, those of ba_outbox_remove().
 */
int tui_worker_remove(struct tui_worker *w, const char *id, struct ba_err *err);
/* Marks the error of id as seen (tui_entry.acknowledged); 0, or -1 when there is no such entry. */
int tui_worker_ack(struct tui_worker *w, const char *id);

/*
 * Opens id's message (as sent: Bcc removed; in q/ or failed/) for reading
 * into *fd, at its first byte, to view it or reopen it in the composer;
 * the caller closes *fd.  Errors: EX_NOINPUT (no such entry, or sent).
 */
int tui_worker_message_open(struct tui_worker *w, const char *id, int *fd, struct ba_err *err);

/*
 * The SIZE limit the server of account announced (RFC 1870), for the check
 * before an upload.  Never waits: the first call for an account asks the
 * worker to connect and read the EHLO reply (no message is sent) and
 * returns 1; the descriptor becomes readable when the answer is there.
 * Returns 0 with *limit set (0 = no limit announced) once known, 1 while
 * not known yet, -1 with err when the probe failed (the error of
 * connecting, as ba_route_open()).  The engine also sends SIZE= with MAIL,
 * so a server refuses a message over its limit before the data.
 */
int tui_worker_size_limit(struct tui_worker *w, const char *account, uint64_t *limit,
                          struct ba_err *err);

#endif
