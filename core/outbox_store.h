/* outbox_store.h - what the flush (outbox_flush.c) asks of the queue's files (outbox.c); private */
#ifndef BLUEARROW_OUTBOX_STORE_H
#define BLUEARROW_OUTBOX_STORE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"
#include "bluearrow/outbox.h"

enum { D_TMP, D_Q, D_FAILED, D_CORRUPT, D_COUNT };
extern const char *const outbox_sub_names[D_COUNT]; /* "tmp", "q", "failed", "corrupt" */

struct ba_outbox {
	char *dir;
	int dfd;
	int sub[D_COUNT];            /* the subdirectories, open */
	const struct ba_log *log;
};

/*
 * The two forms of an entry (bluearrow/outbox.h): one file ID.entry, its
 * state block then its message, with ID.up once its state changed; or the
 * pair ID.msg and ID.st that earlier versions wrote.  `one` below is 1 for
 * the first form.  Every suffix is listed here.
 */
#define SUF_ENTRY ".entry"
#define SUF_UP ".up"
#define SUF_MSG ".msg"
#define SUF_ST ".st"
#define NAME_MAX_ID (BA_OUTBOX_ID_MAX + 8)
/*
 * ID.entry is written 0600 and made 0400 before its first ID.up is: whoever
 * holds its lock and finds it 0600 knows without a lookup that it has none.
 */
#define ENTRY_MODE_FRESH 0600
#define ENTRY_MODE_UPDATED 0400

/* The name of id's message-carrying file (ID.entry or ID.msg) into name[NAME_MAX_ID]. */
static inline const char *outbox_msg_name(char *name, const char *id, int one)
{
	snprintf(name, NAME_MAX_ID, "%.*s%s", BA_OUTBOX_ID_MAX - 1, id, one ? SUF_ENTRY : SUF_MSG);
	return name;
}

/* The name of id's state file (ID.up or ID.st) into name[NAME_MAX_ID]. */
static inline const char *outbox_state_name(char *name, const char *id, int one)
{
	snprintf(name, NAME_MAX_ID, "%.*s%s", BA_OUTBOX_ID_MAX - 1, id, one ? SUF_UP : SUF_ST);
	return name;
}

/* Where an entry's parts are, as outbox_load() found them. */
struct loc {
	int one;             /* its form: ID.entry (+ ID.up) 1, ID.msg + ID.st 0 */
	int fd;              /* its message-carrying file, open; -1 = none */
	int have_st;         /* st is that file's status already (outbox_lock_entry()) */
	struct stat st;
	uint64_t off;        /* where the message starts in that file */
	struct ba_buf head;  /* one: the file's first bytes as read: the state block, then the
	                        start of the message (a small message whole) */
};
#define LOC_INIT { .fd = -1, .head = BA_BUF_INIT }

/* Whether l's entry may have an ID.up: its ID.entry is no longer 0600 (l->st is read). */
static inline int outbox_loc_updated(const struct loc *l)
{
	return l->one && (l->st.st_mode & 07777) != ENTRY_MODE_FRESH;
}

/* Closes l's file and frees what was read; l can be used again. */
void outbox_loc_release(struct loc *l);

/*
 * Reads the state of entry id in sub (form: 1 ID.entry, 0 the pair, -1
 * whichever there is) into *e; with l->fd open already (the caller's lock)
 * that file is the message's.  A state that does not parse is moved aside
 * with its message.  On success l says where the message is, its file left
 * open in l->fd (the caller releases l in any case).  1 = gone.
 */
int outbox_load(ba_outbox *ob, int sub, const char *id, int form, struct loc *l,
                struct ba_outbox_entry *e, struct ba_err *err);

/*
 * Opens and locks ID's message-carrying file in sub (without waiting) into
 * l, with its status.  1 = it is gone; EX_TEMPFAIL "entry 'ID' is being
 * sent" when another process holds it.  The two steps apart:
 * outbox_open_entry() opens it (1 = there is none), outbox_lock_loc()
 * locks l->fd and reads its status (1 = removed meanwhile; on 1 or -1 the
 * caller still owns l->fd).  Between them the entry may be read, without
 * a lock: ID.entry never changes, and a state that did in the meantime
 * shows in the status (the mode, or the file gone).
 */
int outbox_lock_entry(ba_outbox *ob, int sub, const char *id, struct loc *l, struct ba_err *err);
int outbox_open_entry(ba_outbox *ob, int sub, const char *id, struct loc *l, struct ba_err *err);
int outbox_lock_loc(ba_outbox *ob, const char *id, struct loc *l, struct ba_err *err);

/*
 * Writes e's state as tmp/NAME (ID.up, or ID.st for the pair form of l),
 * fsyncs it, renames it to sub/NAME and fsyncs sub: the one durable state
 * update.  For ID.up the entry's file l->fd (locked) is made 0400 first:
 * an ID.entry still 0600 has no ID.up, which then costs no lookup.
 */
int outbox_write_state(ba_outbox *ob, const struct ba_outbox_entry *e, int sub, struct loc *l,
                       struct ba_err *err);

/*
 * Removes ID from sub: the part that makes it an entry first (ID.entry;
 * ID.st), then the other; with sync the directory is fsync'd too (else the
 * caller does it later, for a batch of removals).
 */
int outbox_remove_files(ba_outbox *ob, int sub, const char *id, int one, int sync,
                        struct ba_err *err);

/*
 * Moves a locked entry between q/ and failed/ with the state e, in an order
 * that never shows q/ a state without its message (a flush or list would
 * set it aside as corrupt).
 * One file: into failed/, the state written there first (ID.up alone in
 * failed/ is no entry), then ID.entry moved, then the old ID.up removed;
 * into q/, ID.entry moved first (locked, so no flush takes it), then its
 * state written.
 * A pair: into failed/, the new state there, the state in q/ removed (the
 * entry leaves the queue), the message moved; a crash before the move
 * leaves a message in q/ that the next list moves on.  Into q/: the
 * message first, then the state, then the old state removed.
 */
int outbox_move_entry(ba_outbox *ob, int from, int to, const struct ba_outbox_entry *e,
                      struct loc *l, struct ba_err *err);

/*
 * Reads every entry of q/ and hands each to fn (which owns it from then on
 * and returns 0, or -1 with err set to stop); or, with id_fn instead (fn
 * NULL), only names each entry's ID to it, reading no entry.  Either way
 * sets aside what is no entry and removes crash leftovers.
 */
int outbox_scan(ba_outbox *ob, int (*fn)(void *ctx, struct ba_outbox_entry *e, struct ba_err *err),
                int (*id_fn)(void *ctx, const char *id, struct ba_err *err), void *ctx,
                struct ba_err *err);

/* Whether id can name an entry (not empty, no '/', no leading dot, not too long). */
int outbox_id_ok(const char *id);

#endif
