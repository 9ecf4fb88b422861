/* core/outbox_flush.c - the outbox flush: every due entry over one kept route per account
 *
 * The queue's files are outbox.c's (outbox_store.h); this is what a flush
 * does with them: the entries in order, each locked, read and spooled (the
 * next one while the server answers the one before), sent through
 * ba_submit_send() with PIPELINING across messages, its outcome recorded
 * (removed, deferred with back-off, moved to failed/ with a report), and the
 * files of delivered entries removed by helper threads.
 */
#define _GNU_SOURCE
#include "bluearrow/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/msg.h"
#include "bluearrow/msg_read.h"
#include "bluearrow/submit.h"

#include "outbox_store.h"

#define BACKOFF_FIRST 300          /* seconds before the first retry, doubled each time */
#define BACKOFF_MAX (4 * 3600)

static void set_error(struct ba_outbox_entry *e, const struct ba_err *err, const char *server)
{
	free(e->error);
	e->error_class = err->code;
	e->error_code = err->smtp_code;
	struct ba_buf b = BA_BUF_INIT;
	if (server && *server)
		ba_buf_addf(&b, "%s: ", server);
	ba_buf_addstr(&b, err->text);
	e->error = ba_buf_failed(&b) ? NULL : strdup(ba_buf_str(&b));
	ba_buf_release(&b);
}

#define SPOOL_COPY_MAX (64u << 10) /* a message up to this size is copied, not referred to */

/*
 * Spools the message of the locked entry l (size bytes) for sending: read
 * once here for the flags; a small one is kept in memory (the send then
 * costs no further system calls), a larger one is read again from its file.
 * What outbox_load() read of it already is not read again.
 */
static int spool_file(ba_spool **out, const struct loc *l, const ba_outbox *ob, const char *id,
                      uint64_t size, struct ba_err *err)
{
	if (ba_spool_new(out, 0, err) < 0)
		return -1;
	if (size > SPOOL_COPY_MAX)
		ba_spool_refer(*out, l->fd, (off_t)l->off);
	ba_writer *w = ba_spool_writer(*out);
	uint64_t end = l->off + size, pos = l->off;
	if (l->head.len > pos) {
		size_t n = l->head.len - pos < size ? l->head.len - (size_t)pos : (size_t)size;
		if (ba_write(w, l->head.data + pos, n, err) < 0)
			goto fail;
		pos += n;
	}
	char buf[65536];
	while (pos < end) {
		ssize_t k = pread(l->fd, buf, sizeof(buf), (off_t)pos);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			char name[NAME_MAX_ID];
			ba_err_set(err, EX_IOERR, "outbox %s: cannot read 'q/%s': %s", ob->dir,
			           outbox_msg_name(name, id, l->one), ba_strerror_t(errno));
			goto fail;
		}
		if (k == 0)
			break;
		if (ba_write(w, buf, (size_t)k, err) < 0)
			goto fail;
		pos += (uint64_t)k;
	}
	if (ba_flush(w, err) < 0)
		goto fail;
	return 0;
fail:
	ba_spool_free(*out);
	*out = NULL;
	return -1;
}

/*
 * Removals of delivered entries not yet made durable.  A removal lost to a
 * power failure only sends that message again, as a crash after the
 * server's reply does (at-least-once), so q/ is fsync'd once per this many
 * deliveries and at the end of a flush rather than after each one: that
 * fsync costs more than the SMTP exchange of a small message.
 */
#define REMOVE_SYNC_EVERY 256

/*
 * Removing a delivered entry frees its blocks, which on a file system
 * mounted with online discard (common on virtual machines) waits for the
 * device to discard them: about 0.1 ms per file, mostly waiting, and
 * removals made at the same time overlap.  So a flush takes the entry out
 * of the queue at once, cheaply, without freeing a block: ID.entry is
 * unlinked while it is still open (its blocks are freed at its last
 * close), the state ID.st of the pair form renamed to tmp/ID.sent.  It
 * hands the rest to helper threads while it goes on sending: closing the
 * file, removing ID.up, or tmp/ID.sent and ID.msg (the device discards for
 * several threads at once: a flush with 16 ran about a tenth faster than
 * with 8 on a virtual machine whose kernel discards synchronously).  A
 * crash before they are done leaves perhaps an ID.up or ID.msg without its
 * entry in q/ (dropped by a later scan) and a file in tmp/ (cleaned after
 * 36 hours), never an entry sent again.  The entry stays locked until its
 * files are gone.
 */
#define REAPERS 16
#define REAP_QUEUE 256
#define REAP_BATCH 8   /* a thread is woken for this many removals, and takes them all */

struct reap_item {
	char id[BA_OUTBOX_ID_MAX];
	int fd;                      /* the entry's locked message file, closed last; or -1 */
	int one, up;                 /* its form and whether it has a q/ID.up (struct loc) */
};

struct reaper {
	pthread_mutex_t mu;
	pthread_cond_t more, room;
	struct reap_item q[REAP_QUEUE];
	size_t head, n;
	int stop, qfd, tmpfd, nth;
	pthread_t th[REAPERS];
};

static void *reaper_main(void *arg)
{
	struct reaper *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->n && !r->stop)
			pthread_cond_wait(&r->more, &r->mu);
		if (!r->n)
			break;
		/* a few at a time: one lock round for several removals */
		struct reap_item its[REAP_BATCH];
		size_t k = 0;
		while (r->n && k < REAP_BATCH) {
			its[k++] = r->q[r->head];
			r->head = (r->head + 1) % REAP_QUEUE;
			r->n--;
		}
		pthread_cond_signal(&r->room);
		pthread_mutex_unlock(&r->mu);
		for (size_t i = 0; i < k; i++) {
			const struct reap_item *it = &its[i];
			char name[NAME_MAX_ID];
			if (!it->one) {
				snprintf(name, sizeof(name), "%.*s.sent", BA_OUTBOX_ID_MAX - 1, it->id);
				unlinkat(r->tmpfd, name, 0);
				unlinkat(r->qfd, outbox_msg_name(name, it->id, 0), 0);
			} else if (it->up) {
				unlinkat(r->qfd, outbox_state_name(name, it->id, 1), 0);
			}
			if (it->fd >= 0)
				close(it->fd);
		}
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/*
 * What a flush keeps of each entry until it reaches it: its ID and, once
 * read, its account (a few dozen bytes, so a long queue costs little
 * memory).  The entry itself is read once, under its lock, when its turn
 * comes: the listing reads no file.
 */
struct due {
	char id[BA_OUTBOX_ID_MAX];
	int account;                /* index into flush_index.accounts; -1 = not read yet */
	int done;                   /* sent, settled, or not to be sent by this flush */
};

struct flush_index {
	struct due *v;              /* in the order they are sent: by ID, which is by age */
	size_t n, cap;
	char **accounts;            /* the accounts met so far */
	int naccounts;
};

struct flush_ctx {
	ba_outbox *ob;
	const struct ba_outbox_flush_opts *o;
	struct ba_outbox_flush_stats *st;
	int64_t now;
	unsigned unsynced;       /* removals since q/ was last fsync'd */
	struct ba_outbox_entry *cur; /* the entry being sent (its phase, its in-flight mark) */
	struct loc *cur_loc;     /* where its files are */
	int end_sent;            /* its end of the data may have reached the server */
	int stopped;             /* a send was cancelled: the flush ends */
	struct job *jobs;        /* sent, the server's verdict still to come */
	/*
	 * One pass over the index sends one account's entries over one route:
	 * the account of the first entry of the pass that is to be sent.
	 */
	struct flush_index *x;
	int pass_account;        /* index into x->accounts; -1 = none yet */
	const struct ba_account *acc; /* it in the configuration; NULL: acc_err says why */
	struct ba_err acc_err;
	/* the entry after the one being sent, prepared while the server works (job_done()) */
	struct due *ahead_d;
	struct job *ahead;
	int ahead_tried;
	struct reaper *reaper;   /* removes delivered entries; NULL until the first (or none) */
	int reaper_failed;       /* could not be started: removals are made in place */
};

/*
 * Takes delivered entry id (its files where l says) out of the queue and
 * hands the removal of its files to the reaper, and fd (its locked message
 * file, or -1) to close last.  -1 when that cannot be done: the caller
 * removes the entry itself.
 */
static int reap(struct flush_ctx *c, const char *id, const struct loc *l, int fd)
{
	struct reaper *r = c->reaper;
	if (!r && !c->reaper_failed) {
		r = calloc(1, sizeof(*r));
		if (r && pthread_mutex_init(&r->mu, NULL) == 0) {
			pthread_cond_init(&r->more, NULL);
			pthread_cond_init(&r->room, NULL);
			r->qfd = c->ob->sub[D_Q];
			r->tmpfd = c->ob->sub[D_TMP];
			while (r->nth < REAPERS &&
			       ba_thread_start(&r->th[r->nth], reaper_main, r) == 0)
				r->nth++;
		}
		if (!r || !r->nth) {
			if (r) {
				pthread_mutex_destroy(&r->mu);
				pthread_cond_destroy(&r->more);
				pthread_cond_destroy(&r->room);
			}
			free(r);
			r = NULL;
			c->reaper_failed = 1;
		}
		c->reaper = r;
	}
	if (!r)
		return -1;
	char name[NAME_MAX_ID], sent[NAME_MAX_ID];
	snprintf(sent, sizeof(sent), "%s.sent", id);
	if (l->one) {
		/* open (locked) here or in the caller: its blocks are freed at the last close */
		if (unlinkat(c->ob->sub[D_Q], outbox_msg_name(name, id, 1), 0) < 0 && errno != ENOENT)
			return -1;
	} else if (renameat(c->ob->sub[D_Q], outbox_state_name(name, id, 0), c->ob->sub[D_TMP],
	                    sent) < 0 &&
	           errno != ENOENT) {
		return -1;
	}
	pthread_mutex_lock(&r->mu);
	while (r->n == REAP_QUEUE)
		pthread_cond_wait(&r->room, &r->mu);
	struct reap_item *it = &r->q[(r->head + r->n) % REAP_QUEUE];
	snprintf(it->id, sizeof(it->id), "%s", id);
	it->fd = fd;
	it->one = l->one;
	it->up = outbox_loc_updated(l);
	if (++r->n % REAP_BATCH == 0)
		pthread_cond_signal(&r->more); /* one thread takes the batch */
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* Waits for every removal handed over. */
static void reap_wait(struct flush_ctx *c)
{
	struct reaper *r = c->reaper;
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->more);
	pthread_mutex_unlock(&r->mu);
	for (int k = 0; k < r->nth; k++)
		pthread_join(r->th[k], NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->more);
	pthread_cond_destroy(&r->room);
	free(r);
	c->reaper = NULL;
}

static void sync_removals(struct flush_ctx *c)
{
	if (c->unsynced && fsync(c->ob->sub[D_Q]) < 0)
		ba_log(c->o->log, BA_LOG_WARNING, "outbox %s: cannot sync 'q': %s", c->ob->dir,
		       ba_strerror_t(errno));
	c->unsynced = 0;
}

/* Records the outcome of one attempt durably.  Returns the outcome. */
static enum ba_outbox_outcome settle(struct flush_ctx *c, struct ba_outbox_entry *e, int sent,
                                     const struct ba_submit_result *res, const size_t *idx,
                                     size_t nidx, const struct ba_account *acc,
                                     struct ba_err *err)
{
	e->attempts++;
	int perm = 0;
	/* each recipient's refusal as the server worded it, kept for show and the report */
	for (size_t k = 0; res && res->result && k < nidx && k < res->result->nrcpts; k++) {
		const struct ba_rcpt_result *rr = &res->result->rcpts[k];
		struct ba_outbox_rcpt *rc = &e->rcpt[idx[k]];
		char *t;
		if (rr->code && rr->code < 400) { /* accepted at RCPT this time */
			free(rc->reply);
			rc->reply = NULL;
		}
		if (rr->accepted || rr->code < 400 || !(t = malloc(strlen(rr->text) + 8)))
			continue;
		snprintf(t, strlen(rr->text) + 8, "%d %s", rr->code, rr->text);
		free(rc->reply);
		rc->reply = t;
		rc->code = rr->code;
	}
	if (sent == 0) {
		/* per recipient: accepted, refused for good, or still to try */
		struct ba_result *r = res->result;
		for (size_t k = 0; r && k < nidx && k < r->nrcpts; k++) {
			struct ba_outbox_rcpt *rc = &e->rcpt[idx[k]];
			rc->code = r->rcpts[k].code;
			if (r->rcpts[k].accepted)
				rc->state = BA_OUTBOX_RCPT_SENT;
			else if (r->rcpts[k].code >= 500)
				rc->state = BA_OUTBOX_RCPT_FAILED;
		}
		int pending = 0, failed = 0;
		for (size_t i = 0; i < e->nrcpt; i++) {
			pending += e->rcpt[i].state == BA_OUTBOX_RCPT_PENDING;
			failed += e->rcpt[i].state == BA_OUTBOX_RCPT_FAILED;
		}
		if (!pending && !failed)
			return BA_OUTBOX_DELIVERED;
		if (!pending) {
			perm = 1;
			ba_err_set(err, EX_UNAVAILABLE, "%u recipient(s) refused", (unsigned)failed);
			for (size_t k = 0; r && k < nidx && k < r->nrcpts; k++)
				if (e->rcpt[idx[k]].state == BA_OUTBOX_RCPT_FAILED) {
					ba_err_smtp(err, EX_UNAVAILABLE, r->rcpts[k].code, r->rcpts[k].enhanced,
					            "recipient '%s' refused: %d %s", r->rcpts[k].addr,
					            r->rcpts[k].code, r->rcpts[k].text);
					break;
				}
		} else {
			ba_err_set(err, EX_TEMPFAIL, "%u recipient(s) deferred", (unsigned)pending);
		}
	} else if (sent < 0) {
		/*
		 * Direct delivery reaches each domain on its own, so a failed
		 * attempt may still have delivered to some recipients (and been
		 * refused for good for others): those are settled, never tried
		 * again.  A relay's failure delivered to no one.
		 */
		struct ba_result *r = res ? res->result : NULL;
		for (size_t k = 0; r && k < nidx && k < r->nrcpts; k++) {
			struct ba_outbox_rcpt *rc = &e->rcpt[idx[k]];
			if (r->rcpts[k].accepted) {
				rc->state = BA_OUTBOX_RCPT_SENT;
				rc->code = r->rcpts[k].code;
			} else if (acc && ba_config_delivers_mx(acc) && r->rcpts[k].code >= 500) {
				rc->state = BA_OUTBOX_RCPT_FAILED;
				rc->code = r->rcpts[k].code;
			}
		}
		perm = !ba_outbox_temporary(err);
	}
	set_error(e, err, res ? res->server : NULL);
	long max_age = acc && acc->queue_max_age ? acc->queue_max_age : BA_OUTBOX_MAX_AGE_DEFAULT;
	if (!perm && c->now - e->created >= max_age) {
		perm = 1;
		char txt[BA_ERR_TEXT_MAX + 64];
		snprintf(txt, sizeof(txt), "queued for longer than queue_max_age (%lds): %s",
		         max_age, e->error ? e->error : "");
		free(e->error);
		e->error = strdup(txt);
	}
	if (perm)
		return BA_OUTBOX_FAILED;
	int64_t wait = BACKOFF_FIRST;
	for (unsigned k = 1; k < e->attempts && wait < BACKOFF_MAX; k++)
		wait *= 2;
	if (wait > BACKOFF_MAX)
		wait = BACKOFF_MAX;
	e->next = c->now + wait;
	return BA_OUTBOX_DEFERRED;
}

/* s with every byte outside printable ASCII as '?' (a report's fields are ASCII). */
static void add_ascii(struct ba_buf *b, const char *s)
{
	for (; s && *s; s++)
		ba_buf_addch(b, *s >= 0x20 && *s < 0x7f ? *s : '?');
}

#define BOUNCE_HEADER_MAX (64u << 10) /* of the original header, at most this is quoted */

/* The original message's header (up to its blank line) from the entry's file l, into b. */
static void add_header_of(struct ba_buf *b, const struct loc *l)
{
	char *buf = malloc(BOUNCE_HEADER_MAX);
	ssize_t k;
	if (!buf)
		return;
	while ((k = pread(l->fd, buf, BOUNCE_HEADER_MAX, (off_t)l->off)) < 0 && errno == EINTR)
		;
	size_t n = k > 0 ? (size_t)k : 0, end = 0;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != '\n')
			continue;
		end = i + 1;
		if (i + 1 < n && (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < n &&
		                                          buf[i + 2] == '\n')))
			break;
	}
	ba_buf_add(b, buf, end);
	free(buf);
}

/*
 * bounce on: the report of an entry that failed for good, mailed to its
 * sender through its account with the null sender (so a report never causes
 * another): an RFC 3464 multipart/report with a text part, the
 * message/delivery-status part (one block per recipient not delivered, with
 * the reason) and the original header.  l says where the entry's message
 * is.  A report that cannot be sent is logged and left: it is not queued.
 */
static void send_bounce(struct flush_ctx *c, const struct ba_outbox_entry *e,
                        const struct loc *l, const struct ba_account *acc, ba_route **route)
{
	const struct ba_outbox_flush_opts *o = c->o;
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf b = BA_BUF_INIT, now = BA_BUF_INIT, arrival = BA_BUF_INIT;
	ba_spool *spool = NULL;
	const char *at = strrchr(e->from, '@');
	const char *domain = at && at[1] ? at + 1 : acc->domain && *acc->domain ? acc->domain
	                                                                         : "localhost";
	const char *mta = acc->domain && *acc->domain ? acc->domain : domain;
	const char *status = e->error_code >= 500 ? "5.0.0" : "4.4.7"; /* 4.4.7: expired */
	ba_msg_format_date(&now, c->now, 0);
	ba_msg_format_date(&arrival, e->created, 0);
	ba_buf_addf(&b, "From: bluearrow outbox <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n"
	            "Subject: Undelivered mail returned to sender\r\nDate: %s\r\n"
	            "Message-ID: <%s.bounce@%s>\r\nAuto-Submitted: auto-replied\r\n"
	            "MIME-Version: 1.0\r\n"
	            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	            "\tboundary=\"=_bluearrow-%s\"\r\n\r\n"
	            "This is a delivery status report (RFC 3464).\r\n\r\n"
	            "--=_bluearrow-%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	            "Your message ", domain, e->from, ba_buf_str(&now), e->id, domain, e->id, e->id);
	if (e->msgid) {
		add_ascii(&b, e->msgid);
		ba_buf_addch(&b, ' ');
	}
	ba_buf_addf(&b, "could not be delivered to the recipient(s) below.\r\n"
	            "bluearrow's outbox gave it up after %u attempt(s) (account '%s', entry\r\n"
	            "%s, kept in failed/).\r\n\r\n", e->attempts, acc->name, e->id);
	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].state != BA_OUTBOX_RCPT_SENT) {
			ba_buf_addf(&b, "<%s>: ", e->rcpt[i].addr);
			add_ascii(&b, e->rcpt[i].reply ? e->rcpt[i].reply : e->error);
			ba_buf_addstr(&b, "\r\n");
		}
	ba_buf_addf(&b, "\r\n--=_bluearrow-%s\r\nContent-Type: message/delivery-status\r\n\r\n"
	            "Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n", e->id, mta,
	            ba_buf_str(&arrival));
	for (size_t i = 0; i < e->nrcpt; i++) {
		const struct ba_outbox_rcpt *r = &e->rcpt[i];
		if (r->state == BA_OUTBOX_RCPT_SENT)
			continue;
		ba_buf_addf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n"
		            "Diagnostic-Code: smtp; ", r->addr, r->code >= 500 ? "5.0.0" : status);
		add_ascii(&b, r->reply ? r->reply : e->error); /* its own refusal, else the entry's */
		ba_buf_addf(&b, "\r\nLast-Attempt-Date: %s\r\n", ba_buf_str(&now));
	}
	ba_buf_addf(&b, "\r\n--=_bluearrow-%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", e->id);
	add_header_of(&b, l);
	ba_buf_addf(&b, "\r\n--=_bluearrow-%s--\r\n", e->id);
	ba_buf_release(&now);
	ba_buf_release(&arrival);
	struct ba_submit_result res;
	memset(&res, 0, sizeof(res));
	int rc;
	if (ba_buf_failed(&b)) {
		rc = ba_err_set(&err, EX_OSERR, "out of memory");
	} else if ((rc = ba_spool_new(&spool, 0, &err)) == 0 &&
	           (rc = ba_write(ba_spool_writer(spool), b.data, b.len, &err)) == 0 &&
	           (rc = ba_flush(ba_spool_writer(spool), &err)) == 0) {
		const char *rcpt[1] = { e->from };
		struct ba_submit sub;
		memset(&sub, 0, sizeof(sub));
		sub.acc = acc;
		sub.from = "";
		sub.rcpt = rcpt;
		sub.nrcpt = 1;
		sub.spool = spool;
		sub.log = o->log;
		sub.smtp_flags = o->smtp_flags;
		sub.ask_password = o->ask_password;
		sub.ask_password_ctx = o->ask_password_ctx;
		sub.route = route;
		rc = ba_submit_send(&res, &sub, &err);
	}
	if (rc < 0)
		ba_log(o->log, BA_LOG_WARNING, "outbox %s: the report of failed entry '%s' to <%s> "
		       "could not be sent: %s", c->ob->dir, e->id, e->from, err.text);
	else
		ba_log(o->log, BA_LOG_INFO, "outbox %s: failed entry '%s' reported to <%s>",
		       c->ob->dir, e->id, e->from);
	ba_submit_result_release(&res);
	ba_spool_free(spool);
	ba_buf_release(&b);
}

/* ---- an interactive send: its phases, in-flight mark, cancel ---- */

static void flush_progress(void *ctx, uint64_t sent, uint64_t acked, uint64_t total)
{
	struct flush_ctx *c = ctx;
	if (c->cur && c->o->phase)
		c->o->phase(c->o->phase_ctx, c->cur->id, c->end_sent ? BA_OUTBOX_AWAITING
		                                                     : BA_OUTBOX_SENDING,
		            sent, acked, total);
}

/* Before the final dot: an interactive flush marks the entry in flight, durably. */
static int flush_data_end(void *ctx, struct ba_err *err)
{
	struct flush_ctx *c = ctx;
	if (!c->cur)
		return 0;
	if (c->o->interactive) {
		c->cur->inflight = (int64_t)time(NULL);
		if (outbox_write_state(c->ob, c->cur, D_Q, c->cur_loc, err) < 0) {
			c->cur->inflight = 0;
			return -1;
		}
	}
	c->end_sent = 1;
	if (c->o->phase)
		c->o->phase(c->o->phase_ctx, c->cur->id, BA_OUTBOX_AWAITING, 0, 0, 0);
	return 0;
}

/* Before a send: its cancel descriptor and the callbacks above; the connecting phase. */
static void watch_begin(struct flush_ctx *c, struct ba_submit *sub, struct ba_outbox_entry *e,
                        struct loc *l)
{
	const struct ba_outbox_flush_opts *o = c->o;
	sub->cancel_fd = o->cancel_fd;
	if (o->interactive || o->phase) {
		sub->progress = flush_progress;
		sub->progress_ctx = c;
		sub->data_end = flush_data_end;
		sub->data_end_ctx = c;
	}
	c->cur = e;
	c->cur_loc = l;
	c->end_sent = 0;
	if (o->phase)
		o->phase(o->phase_ctx, e->id, BA_OUTBOX_CONNECTING, 0, 0, 0);
}

/* After a send's verdict: its result to o->result. */
static void watch_end(struct flush_ctx *c, const struct ba_outbox_entry *e,
                      const struct ba_submit_result *res)
{
	if (c->cur == e) { /* pipelined, the next entry's send may be the current one */
		c->cur = NULL;
		c->cur_loc = NULL;
	}
	if (c->o->result)
		c->o->result(c->o->result_ctx, e, res);
}

/*
 * A cancelled send, or an interactive one whose end of the data went out
 * without a reply: recorded (cancelled, or sent-unknown with the in-flight
 * mark kept) instead of settled.  Returns the outcome, or -1 when the
 * attempt is settled as usual (then the in-flight mark is cleared).
 */
static int flush_special(struct flush_ctx *c, struct ba_outbox_entry *e, int sent,
                         const struct ba_submit_result *res, const struct ba_err *err)
{
	if (sent < 0 && (err->flags & BA_ERR_CANCELLED) && !c->end_sent) {
		e->cancelled = 1;
		set_error(e, err, res->server);
		c->stopped = 1;
		return BA_OUTBOX_CANCELLED;
	}
	if (sent < 0 && c->o->interactive && c->end_sent && e->inflight && !err->smtp_code) {
		e->attempts++;
		set_error(e, err, res->server);
		return BA_OUTBOX_UNKNOWN;
	}
	e->inflight = 0;
	return -1;
}

/*
 * One entry being sent.  With pipelining across messages the server's
 * verdict on it arrives while the next entry is sent (job_done() from
 * within ba_submit_send()), so what settling needs lives here until then.
 */
struct job {
	struct flush_ctx *c;
	char id[BA_OUTBOX_ID_MAX];
	struct ba_outbox_entry e;
	const struct ba_account *acc;
	struct loc loc;         /* its files; loc.fd locked (this process's hold_fd: not own_fd) */
	int own_fd;
	size_t *idx;
	const char **rcpt;
	size_t nidx;
	ba_spool *spool;
	int settled;            /* the outcome is recorded; left: the report, closing */
	int bounce;             /* a report is to be mailed (outside of any send) */
	int ready;              /* prepared: 1 to send, 0 nothing left to send, -1 failed (err) */
	int watched;            /* sent lock-step: its verdict came back from ba_submit_send() */
	struct ba_err err;
	struct job *next;
};

/* Records the outcome of j's attempt: its state file, the statistics, o->done. */
static void job_settle(struct job *j, int sent, const struct ba_submit_result *res,
                       struct ba_err *err)
{
	struct flush_ctx *c = j->c;
	const struct ba_outbox_flush_opts *o = c->o;
	ba_outbox *ob = c->ob;
	/* a cancelled or sent-unknown send is recorded as such, not settled */
	int special = j->watched ? flush_special(c, &j->e, sent, res, err) : -1;
	enum ba_outbox_outcome out =
	        special >= 0 ? (enum ba_outbox_outcome)special
	                     : settle(c, &j->e, sent < 0 ? -1 : 0, res, j->idx, j->nidx, j->acc, err);
	struct ba_err serr = BA_ERR_INIT;
	int wr;
	if (out == BA_OUTBOX_DELIVERED) {
		if (reap(c, j->id, &j->loc, j->own_fd ? j->loc.fd : -1) == 0) {
			wr = 0;
			if (j->own_fd)
				j->loc.fd = -1; /* the reaper closes it once the files are gone */
		} else {
			wr = outbox_remove_files(ob, D_Q, j->id, j->loc.one, 0, &serr);
		}
		if (++c->unsynced >= REMOVE_SYNC_EVERY)
			sync_removals(c);
	}
	else if (out == BA_OUTBOX_FAILED) {
		wr = outbox_move_entry(ob, D_Q, D_FAILED, &j->e, &j->loc, &serr);
		/* never a report of a report */
		j->bounce = wr == 0 && j->acc && j->acc->bounce && j->e.from[0];
	}
	else
		wr = outbox_write_state(ob, &j->e, D_Q, &j->loc, &serr);
	if (wr < 0) {
		ba_log(o->log, BA_LOG_ERROR, "%s", serr.text);
		if (out == BA_OUTBOX_DELIVERED)
			ba_log(o->log, BA_LOG_ERROR, "outbox %s: entry '%s' was delivered but stays "
			       "queued: it may be sent again", ob->dir, j->id);
	}
	switch (out) {
	case BA_OUTBOX_DELIVERED: c->st->delivered++; break;
	case BA_OUTBOX_DEFERRED: c->st->deferred++; break;
	case BA_OUTBOX_FAILED: c->st->failed++; break;
	case BA_OUTBOX_SKIPPED: c->st->skipped++; break;
	case BA_OUTBOX_UNKNOWN: c->st->unknown++; break;
	case BA_OUTBOX_CANCELLED: c->st->cancelled++; break;
	}
	if (o->done)
		o->done(o->done_ctx, &j->e, out, out == BA_OUTBOX_DELIVERED ? NULL : err);
	j->settled = 1;
}

static struct job *job_prepare(struct flush_ctx *c, struct due *d);

/*
 * ba_submit_send() returned 1 for j: its outcome, once the server's verdict
 * is read.  That is right after the next message went out, so the entry
 * after it is prepared now too, while the server works.
 */
static void job_done(void *ctx, const struct ba_submit_result *res, int rc,
                     const struct ba_err *err)
{
	struct job *j = ctx;
	struct flush_ctx *c = j->c;
	struct ba_err e = BA_ERR_INIT;
	if (rc < 0)
		e = *err;
	watch_end(c, &j->e, res);
	job_settle(j, rc, res, &e);
	if (c->ahead_d && !c->ahead_tried) {
		c->ahead_tried = 1;
		c->ahead = job_prepare(c, c->ahead_d);
	}
}

/* The rest of a settled (or never sent) job: the report, the lock, the memory. */
static void job_end(struct job *j, ba_route **route)
{
	if (j->bounce)
		send_bounce(j->c, &j->e, &j->loc, j->acc, route);
	ba_spool_free(j->spool);
	free(j->idx);
	free(j->rcpt);
	ba_outbox_entry_release(&j->e);
	if (!j->own_fd)
		j->loc.fd = -1;
	outbox_loc_release(&j->loc);
	free(j);
}

/* Ends every settled job of the list (a report sent meanwhile may settle more). */
static void jobs_reap(struct flush_ctx *c, ba_route **route)
{
	for (;;) {
		struct job **pp = &c->jobs;
		while (*pp && !(*pp)->settled)
			pp = &(*pp)->next;
		if (!*pp)
			return;
		struct job *j = *pp;
		*pp = j->next;
		job_end(j, route);
	}
}

static int selected(const struct ba_outbox_flush_opts *o, const struct ba_outbox_entry *e,
                    int64_t now)
{
	if (e->inflight || e->cancelled) /* sent-unknown or cancelled: only after a retry */
		return 0;
	if (o->account && strcmp(o->account, e->account) != 0)
		return 0;
	if (o->nids)
		return 1; /* the entries asked for (the index holds only those), due or not */
	/* -q sends every entry, but not one held for later and never tried yet */
	return e->next <= now || (o->all && e->attempts > 0);
}

/* The index of account name in x->accounts, added when new; -1 when out of memory. */
static int account_index(struct flush_index *x, const char *name)
{
	for (int a = 0; a < x->naccounts; a++)
		if (strcmp(x->accounts[a], name) == 0)
			return a;
	char **na = realloc(x->accounts, ((size_t)x->naccounts + 1) * sizeof(*na));
	if (!na)
		return -1;
	x->accounts = na;
	if (!(na[x->naccounts] = strdup(name)))
		return -1;
	return x->naccounts++;
}

/*
 * Entry d locked and read for sending: its state, its recipients still to
 * do, its message spooled.  NULL when it is gone, locked by another flush,
 * unreadable (counted and logged here), not to be sent by this flush (not
 * due, marked, another account than o->account: d->done set), or of
 * another account than this pass's (d->account set: a later pass sends it).
 * The first entry a pass reads that is to be sent chooses the pass's account.
 */
static struct job *job_prepare(struct flush_ctx *c, struct due *d)
{
	const struct ba_outbox_flush_opts *o = c->o;
	ba_outbox *ob = c->ob;
	const char *id = d->id;
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		c->st->skipped++;
		d->done = 1;
		return NULL;
	}
	j->c = c;
	j->loc = (struct loc)LOC_INIT;
	j->own_fd = 1;
	ba_err_clear(&j->err);
	snprintf(j->id, sizeof(j->id), "%s", id);
	if (o->hold_fd > 0) {
		/* the entry this process added and still holds (sendmail -odb) */
		char mname[NAME_MAX_ID];
		struct stat a, b;
		if (fstat(o->hold_fd, &a) == 0 &&
		    fstatat(ob->sub[D_Q], outbox_msg_name(mname, id, 1), &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
			j->loc.fd = o->hold_fd;
			j->loc.one = 1;
			j->own_fd = 0;
		}
	}
	/*
	 * Read before it is locked, so that an entry this flush does not send
	 * (not due, another account's) is never locked against an `outbox rm`
	 * or the TUI; locked only then, and read again only when its state
	 * changed meanwhile (its mode, outbox_store.h).
	 */
	int r = 0;
	if (j->loc.fd < 0 && (r = outbox_open_entry(ob, D_Q, id, &j->loc, &j->err)) < 0)
		c->st->skipped++;
	if (r == 1) { /* no message file: gone, or a state alone, which is set aside */
		struct ba_outbox_entry gone;
		struct ba_err lerr = BA_ERR_INIT;
		if (outbox_load(ob, D_Q, id, 0, &j->loc, &gone, &lerr) == 0)
			ba_outbox_entry_release(&gone);
	}
	if (r != 0 || outbox_load(ob, D_Q, id, j->loc.one, &j->loc, &j->e, &j->err) != 0 ||
	    !selected(o, &j->e, c->now)) {
		/* gone, corrupt (set aside), or not to be sent now */
		d->done = 1;
		job_end(j, NULL);
		return NULL;
	}
	if ((d->account = account_index(c->x, j->e.account)) < 0) {
		c->st->skipped++;
		d->done = 1;
		job_end(j, NULL);
		return NULL;
	}
	if (c->pass_account < 0) {
		c->pass_account = d->account;
		ba_err_clear(&c->acc_err);
		c->acc = ba_config_account(o->cfg, j->e.account, &c->acc_err);
	}
	if (d->account != c->pass_account) {
		job_end(j, NULL); /* another account's: its own pass sends it */
		return NULL;
	}
	if (j->own_fd) {
		mode_t seen = j->loc.st.st_mode;
		r = outbox_lock_loc(ob, id, &j->loc, &j->err);
		if (r < 0)
			c->st->skipped++; /* another flush has it */
		if (r == 0 && (!j->loc.one || outbox_loc_updated(&j->loc) ||
		               j->loc.st.st_mode != seen)) {
			/* its state may have changed before the lock: read it again */
			ba_outbox_entry_release(&j->e);
			ba_buf_release(&j->loc.head);
			r = outbox_load(ob, D_Q, id, j->loc.one, &j->loc, &j->e, &j->err);
			if (r == 0 && !selected(o, &j->e, c->now))
				r = 1;
		}
		if (r != 0) {
			d->done = 1;
			job_end(j, NULL);
			return NULL;
		}
	}
	const struct ba_account *acc = c->acc;
	j->acc = acc;
	struct ba_outbox_entry *e = &j->e;
	j->idx = calloc(e->nrcpt, sizeof(*j->idx));
	j->rcpt = calloc(e->nrcpt, sizeof(*j->rcpt));
	if (!j->idx || !j->rcpt) {
		c->st->skipped++;
		d->done = 1;
		job_end(j, NULL);
		return NULL;
	}
	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].state == BA_OUTBOX_RCPT_PENDING) {
			j->idx[j->nidx] = i;
			j->rcpt[j->nidx++] = e->rcpt[i].addr;
		}
	j->ready = -1;
	if (!acc)
		j->err = c->acc_err;
	else if (j->nidx == 0)
		j->ready = 0; /* nothing left to send: settle it */
	else if (spool_file(&j->spool, &j->loc, ob, id, e->size, &j->err) == 0)
		j->ready = 1;
	ba_buf_release(&j->loc.head); /* spooled: what was read of the file is not needed */
	return j;
}

/*
 * One entry: lock, read, send over *route; its outcome now or from
 * job_done().  next: the entry to try after it, prepared while the server
 * answers, or NULL.
 */
static void flush_one(struct flush_ctx *c, struct due *d, struct due *next, ba_route **route)
{
	const struct ba_outbox_flush_opts *o = c->o;
	struct job *j;
	if (c->ahead_tried && c->ahead_d == d) {
		j = c->ahead; /* prepared already (NULL: not to be sent now) */
	} else {
		if (c->ahead)
			job_end(c->ahead, NULL);
		j = d->done ? NULL : job_prepare(c, d);
	}
	c->ahead_d = next;
	c->ahead = NULL;
	c->ahead_tried = 0;
	if (!j)
		return;
	d->done = 1;
	const struct ba_account *acc = j->acc;
	struct ba_submit_result res;
	memset(&res, 0, sizeof(res));
	int sent = j->ready < 0 ? -1 : 0;
	struct ba_err err = j->err;
	if (j->ready == 1) {
		struct ba_outbox_entry *e = &j->e;
		struct ba_submit sub;
		memset(&sub, 0, sizeof(sub));
		sub.acc = acc;
		sub.from = e->from;
		sub.rcpt = j->rcpt;
		sub.nrcpt = j->nidx;
		sub.spool = j->spool;
		sub.notify = e->notify;
		sub.ret = e->ret;
		sub.envid = e->envid;
		sub.log = o->log;
		sub.smtp_flags = o->smtp_flags;
		sub.ask_password = o->ask_password;
		sub.ask_password_ctx = o->ask_password_ctx;
		sub.route = route;
		/*
		 * A send someone watches or may cancel (bluearrow-tui) goes
		 * lock-step, its verdict awaited before the next message: the
		 * in-flight mark, the phases and a cancel then concern that message
		 * alone.  The bulk flush pipelines across messages (job_done()).
		 */
		int lockstep = o->interactive || o->cancel_fd || o->phase || o->result;
		watch_begin(c, &sub, e, &j->loc);
		if (!lockstep) {
			sub.done = job_done;
			sub.done_ctx = j;
			/* on the list first: the verdict may come before the call returns */
			j->next = c->jobs;
			c->jobs = j;
		}
		sent = ba_submit_send(&res, &sub, &err);
		if (sent == 1) {
			ba_submit_result_release(&res); /* what a failed first try left (reconnected) */
			jobs_reap(c, route);
			return;
		}
		if (!lockstep)
			c->jobs = j->next;
		watch_end(c, e, &res);
		j->watched = 1;
	}
	job_settle(j, sent < 0 ? -1 : 0, &res, &err);
	ba_submit_result_release(&res);
	job_end(j, route);
	jobs_reap(c, route);
}

static int index_add(void *ctx, const char *id, struct ba_err *err)
{
	struct flush_index *x = ctx;
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 64;
		struct due *nv = realloc(x->v, nc * sizeof(*nv));
		if (!nv)
			return ba_err_set(err, EX_OSERR, "out of memory");
		x->v = nv;
		x->cap = nc;
	}
	struct due *d = &x->v[x->n++];
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->account = -1;
	d->done = 0;
	return 0;
}

static int cmp_due(const void *a, const void *b)
{
	return strcmp(((const struct due *)a)->id, ((const struct due *)b)->id);
}

/* Whether d is to be tried in this pass (not done; its account this pass's, or not known). */
static int candidate(const struct flush_ctx *c, const struct due *d)
{
	return !d->done && (d->account < 0 || c->pass_account < 0 || d->account == c->pass_account);
}

int ba_outbox_flush(ba_outbox *ob, const struct ba_outbox_flush_opts *o,
                    struct ba_outbox_flush_stats *st, struct ba_err *err)
{
	memset(st, 0, sizeof(*st));
	struct flush_ctx c;
	memset(&c, 0, sizeof(c));
	c.ob = ob;
	c.o = o;
	c.st = st;
	c.now = o->now ? o->now : (int64_t)time(NULL);
	struct flush_index x;
	memset(&x, 0, sizeof(x));
	c.x = &x;
	int rc = 0;
	/* the entries asked for, in the order given; else every entry, by ID (by age) */
	for (size_t k = 0; k < o->nids && rc == 0; k++) {
		size_t seen = 0;
		while (seen < k && strcmp(o->ids[seen], o->ids[k]) != 0)
			seen++;
		if (seen == k && outbox_id_ok(o->ids[k])) /* each once */
			rc = index_add(&x, o->ids[k], err);
	}
	if (!o->nids && (rc = outbox_scan(ob, NULL, index_add, &x, err)) == 0 && x.n)
		qsort(x.v, x.n, sizeof(*x.v), cmp_due);
	/*
	 * One pass per account, in the order of each account's oldest entry:
	 * a pass reads the entries it meets until one is to be sent, whose
	 * account it then sends over one route; the others' accounts are noted
	 * for later passes, so an entry is read once, or twice when accounts
	 * interleave.
	 */
	while (rc == 0 && !c.stopped) {
		c.pass_account = -1;
		c.acc = NULL;
		ba_route *route = NULL;
		for (size_t i = 0; i < x.n && !c.stopped; i++) {
			if (!candidate(&c, &x.v[i]))
				continue;
			size_t k = i + 1; /* the entry to prepare while the server answers */
			while (k < x.n && !candidate(&c, &x.v[k]))
				k++;
			flush_one(&c, &x.v[i], k < x.n ? &x.v[k] : NULL, &route);
		}
		ba_route_free(route); /* reads the last verdict */
		if (c.ahead) /* not sent after all: unlock it */
			job_end(c.ahead, NULL);
		c.ahead = NULL;
		c.ahead_d = NULL;
		route = NULL;
		jobs_reap(&c, &route);
		ba_route_free(route);
		if (c.pass_account < 0)
			break; /* no entry was to be sent: all done */
	}
	reap_wait(&c);
	sync_removals(&c);
	free(x.v);
	for (int a = 0; a < x.naccounts; a++)
		free(x.accounts[a]);
	free(x.accounts);
	return rc;
}
