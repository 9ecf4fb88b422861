/* tui/worker.c - the delivery worker: the outbox flushed in a thread, its live state for the UI
 *
 * One thread (run()) rescans the outbox directories, and sends the due
 * entries one at a time with an interactive ba_outbox_flush() naming the
 * entry; the flush's callbacks publish each phase into the records under
 * the mutex, and every change writes a byte to the notify pipe.  The UI
 * thread reads the records (snapshot), and acts on entries through its own
 * outbox handles (ui), never the worker's (wk): a handle is used by one
 * thread.  Cancelling a send writes a byte to the cancel pipe the engine
 * watches; the worker empties that pipe before each send, after it has
 * cleared the current id under the mutex, so a late byte never cancels
 * another message.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/io.h"
#include "bluearrow/msg.h"
#include "bluearrow/outbox.h"
#include "bluearrow/route.h"
#include "bluearrow/smtp.h"
#include "bluearrow/submit.h"

static const char *const state_names[TUI_NSTATES] = {
	"held", "queued", "connecting", "sending", "awaiting reply", "sent", "deferred", "failed",
	"cancelled", "sent-unknown"
};

const char *tui_state_name(enum tui_state s)
{
	return (unsigned)s < TUI_NSTATES ? state_names[s] : "unknown";
}

/* One outbox directory, with a handle per thread. */
struct enq;
static void enq_reap(struct enq *q);
static struct enq *enq_next(const struct enq *q);

struct box {
	char *dir;
	ba_outbox *ui, *wk;
	struct timespec qmtime, fmtime; /* worker thread: q/ and failed/ as of the last listing */
	int listed;
};

/* One entry as the worker knows it; e's strings are malloc'd, "" when unknown. */
struct rec {
	struct tui_entry e;
	size_t box;
	int seen;       /* listed by the last rescan */
	int local;      /* a final state of this session (sent, failed) kept after the outbox
	                   no longer has the entry in q/ */
	int64_t t0_ms;  /* sending: when the data phase began, for the rate */
	int rcpt_reply; /* reply holds the refused recipients' replies of the last attempt */
	int64_t eager_at; /* deferred in this session: tried again then, before the outbox's time */
	int64_t skip_until_ms; /* the last flush did not take it (another process holds it) */
};

enum probe_state { PROBE_WANTED, PROBE_RUNNING, PROBE_DONE, PROBE_FAILED };

struct probe {
	char *account;
	enum probe_state st;
	uint64_t limit;
	struct ba_err err;
};

struct tui_worker {
	const ba_config *cfg;
	const struct ba_log *log;
	int rescan_ms;
	int retry_s;
	unsigned smtp_flags;
	struct box **boxes; /* grown by the UI thread under mu; a box never moves or goes */
	size_t nboxes;
	pthread_t th;
	int started;
	int notify[2];  /* worker -> UI: the state changed */
	int wake[2];    /* UI -> worker: look again (enqueue, retry, probe, stop) */
	int cancel[2];  /* UI -> engine: cancel the send in progress */

	pthread_mutex_t mu; /* guards everything below */
	struct rec *recs;
	size_t nrecs, caprecs;
	char cur[TUI_ID_MAX]; /* the entry being sent; "" = none */
	int64_t progress_ms;  /* when the UI was last woken for a progress figure */
	int handled;          /* the flush of cur reported an outcome */
	int stop;
	int rescan_now;
	struct probe *probes;
	size_t nprobes;
	struct enq *jobs;     /* tui_worker_enqueue_start() under way or not yet polled */
	unsigned tickets;     /* the last ticket given */
};

/* ---- small helpers ---------------------------------------------------------- */

/* Box b for the worker thread (the UI thread may be adding one), or NULL past the end. */
static struct box *wk_box(struct tui_worker *w, size_t b)
{
	pthread_mutex_lock(&w->mu);
	struct box *x = b < w->nboxes ? w->boxes[b] : NULL;
	pthread_mutex_unlock(&w->mu);
	return x;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static void set_str(char **dst, const char *s)
{
	char *n = xstrdup(s);
	if (!n)
		return; /* keeps the old value: out of memory shows stale text, not none */
	free(*dst);
	*dst = n;
}

static void entry_release(struct tui_entry *e)
{
	free(e->account);
	free(e->from);
	free(e->rcpts);
	free(e->subject);
	free(e->reply);
}

static void signal_ui(struct tui_worker *w)
{
	char c = 1;
	if (write(w->notify[1], &c, 1) < 0) {
		/* full pipe: the UI has a wake-up pending already */
	}
}

static void wake_worker(struct tui_worker *w)
{
	char c = 1;
	if (write(w->wake[1], &c, 1) < 0) {
		/* full pipe: the worker will look anyway */
	}
}

static void drain_fd(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static int make_pipe(int p[2])
{
	if (pipe(p) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
		fcntl(p[i], F_SETFD, FD_CLOEXEC);
	}
	return 0;
}

static void close_pipe(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

/* Under mu: the index of id in the records (kept sorted by id), or where it would go. */
static size_t lower(const struct tui_worker *w, const char *id)
{
	size_t lo = 0, hi = w->nrecs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(w->recs[mid].e.id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Under mu. */
static struct rec *find(struct tui_worker *w, const char *id)
{
	size_t i = lower(w, id);
	return i < w->nrecs && strcmp(w->recs[i].e.id, id) == 0 ? &w->recs[i] : NULL;
}

/* Under mu: a new record for id (not there yet) in box (strings ""), or NULL when out of memory. */
static struct rec *add_rec(struct tui_worker *w, const char *id, size_t box)
{
	if (w->nrecs == w->caprecs) {
		size_t nc = w->caprecs ? w->caprecs * 2 : 64;
		struct rec *nv = realloc(w->recs, nc * sizeof(*nv));
		if (!nv)
			return NULL;
		w->recs = nv;
		w->caprecs = nc;
	}
	struct rec n;
	memset(&n, 0, sizeof(n));
	snprintf(n.e.id, sizeof(n.e.id), "%s", id);
	n.box = box;
	n.e.account = xstrdup("");
	n.e.from = xstrdup("");
	n.e.rcpts = xstrdup("");
	n.e.subject = xstrdup("");
	n.e.reply = xstrdup("");
	if (!n.e.account || !n.e.from || !n.e.rcpts || !n.e.subject || !n.e.reply) {
		entry_release(&n.e);
		return NULL;
	}
	size_t i = lower(w, id);
	memmove(&w->recs[i + 1], &w->recs[i], (w->nrecs - i) * sizeof(*w->recs));
	w->recs[i] = n;
	w->nrecs++;
	return &w->recs[i];
}

/* Under mu. */
static void drop_rec(struct tui_worker *w, struct rec *r)
{
	entry_release(&r->e);
	size_t i = (size_t)(r - w->recs);
	memmove(&w->recs[i], &w->recs[i + 1], (w->nrecs - i - 1) * sizeof(*r));
	w->nrecs--;
}

static void touch(struct rec *r)
{
	r->e.seq++;
}

/* The Subject field of the message file at path, RFC 2047 decoded, into out; "" when none. */
static void read_subject(struct ba_buf *out, int fd)
{
	ba_buf_reset(out);
	if (fd < 0)
		return;
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	struct ba_buf raw = BA_BUF_INIT;
	const char *p = buf;
	int in = 0;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len && p[len - 1] == '\r')
			len--;
		if (len == 0)
			break; /* the end of the header */
		if (in && (*p == ' ' || *p == '\t'))
			ba_buf_add(&raw, p, len); /* unfolded: the CRLF goes, the blank stays */
		else if (strncasecmp(p, "Subject:", 8) == 0) {
			in = 1;
			const char *v = p + 8;
			while (*v == ' ' || *v == '\t')
				v++;
			ba_buf_add(&raw, v, len - (size_t)(v - p));
		} else if (in)
			break;
		if (!eol)
			break;
		p = eol + 1;
	}
	struct ba_err err = BA_ERR_INIT;
	if (raw.len && ba_rfc2047_decode(out, ba_buf_str(&raw), raw.len, &err) < 0) {
		ba_buf_reset(out);
		ba_buf_add(out, raw.data, raw.len);
	}
	ba_buf_release(&raw);
}

/* ---- what the outbox says --------------------------------------------------- */

/* Under mu: r's state from its outbox entry (unless the worker is sending it). */
static void state_from_entry(struct tui_worker *w, struct rec *r, const struct ba_outbox_entry *e,
                             int64_t now)
{
	if (strcmp(w->cur, r->e.id) == 0)
		return; /* live: the flush's callbacks set it */
	enum tui_state st;
	if (e->inflight)
		st = TUI_SENT_UNKNOWN;
	else if (e->cancelled)
		st = TUI_CANCELLED;
	else if (e->next > now)
		st = e->attempts ? TUI_DEFERRED : TUI_HELD;
	else
		st = TUI_QUEUED;
	int64_t next = e->next;
	if (st == TUI_DEFERRED && r->eager_at && r->eager_at < next)
		next = r->eager_at;
	int changed = r->e.state != st || r->e.attempts != e->attempts ||
	              r->e.next_try != next || r->e.size != e->size ||
	              r->e.code != e->error_code || strcmp(r->e.reply, e->error ? e->error : "");
	r->e.state = st;
	r->e.attempts = e->attempts;
	r->e.created = e->created;
	r->e.hold_until = st == TUI_HELD ? e->next : 0;
	r->e.next_try = next;
	r->e.size = e->size;
	r->e.code = e->error_code;
	if (st != TUI_QUEUED && st != TUI_HELD)
		set_str(&r->e.reply, e->error);
	else if (!e->error)
		set_str(&r->e.reply, "");
	if (changed)
		touch(r);
}

/* Under mu: r from an entry in failed/; the replies per recipient of this session are kept. */
static void failed_from_entry(struct rec *r, const struct ba_outbox_entry *e)
{
	int changed = r->e.state != TUI_FAILED || r->e.attempts != e->attempts;
	r->e.state = TUI_FAILED;
	r->e.attempts = e->attempts;
	r->e.created = e->created;
	r->e.hold_until = 0;
	r->e.next_try = 0;
	r->e.size = e->size;
	if (!r->rcpt_reply) {
		struct ba_buf b = BA_BUF_INIT;
		for (size_t i = 0; i < e->nrcpt; i++)
			if (e->rcpt[i].state == BA_OUTBOX_RCPT_FAILED)
				ba_buf_addf(&b, "%s: %d\n", e->rcpt[i].addr, e->rcpt[i].code);
		ba_buf_addstr(&b, e->error ? e->error : "");
		if (strcmp(r->e.reply, ba_buf_str(&b)) != 0) {
			set_str(&r->e.reply, ba_buf_str(&b));
			r->e.code = e->error_code;
			changed = 1;
		}
		ba_buf_release(&b);
	}
	if (changed)
		r->e.seq++;
}

static int fill_static(struct tui_worker *w, struct rec *r, const struct ba_outbox_entry *e)
{
	struct ba_buf b = BA_BUF_INIT;
	for (size_t i = 0; i < e->nrcpt; i++) {
		if (i)
			ba_buf_addstr(&b, ", ");
		ba_buf_addstr(&b, e->rcpt[i].addr);
	}
	set_str(&r->e.account, e->account);
	set_str(&r->e.from, e->from);
	set_str(&r->e.rcpts, ba_buf_str(&b));
	ba_buf_release(&b);
	(void)w;
	return 0;
}

/* The modification time of DIR/sub into *t; 0, or -1 when it cannot be read. */
static int dir_mtime(const char *dir, const char *sub, struct timespec *t)
{
	struct ba_buf p = BA_BUF_INIT;
	struct stat st;
	ba_buf_addf(&p, "%s/%s", dir, sub);
	int rc = stat(ba_buf_str(&p), &st);
	ba_buf_release(&p);
	if (rc == 0)
		*t = st.st_mtim;
	return rc;
}

static int same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The subjects of the entries of v not known yet (NULL for known ones); outside the mutex. */
static char **subjects(struct tui_worker *w, ba_outbox *ob, const struct ba_outbox_entry *v,
                       size_t n)
{
	char **subj = calloc(n ? n : 1, sizeof(*subj));
	for (size_t i = 0; subj && i < n; i++) {
		pthread_mutex_lock(&w->mu);
		int known = find(w, v[i].id) != NULL;
		pthread_mutex_unlock(&w->mu);
		if (known)
			continue;
		struct ba_buf s = BA_BUF_INIT;
		struct ba_outbox_entry tmp;
		struct ba_err gerr = BA_ERR_INIT;
		int mfd = -1;
		if (ba_outbox_get(ob, v[i].id, &tmp, NULL, &mfd, &gerr) == 0) {
			read_subject(&s, mfd);
			ba_outbox_entry_release(&tmp);
		}
		subj[i] = strdup(ba_buf_str(&s));
		ba_buf_release(&s);
	}
	return subj;
}

/* Under mu: the records of box b from the listing v (failed: of failed/).  1 when any changed. */
static int merge(struct tui_worker *w, size_t b, const struct ba_outbox_entry *v, size_t n,
                 char **subj, int failed, int64_t now)
{
	int changed = 0;
	for (size_t i = 0; i < n; i++) {
		struct rec *r = find(w, v[i].id);
		if (!r) {
			if (!(r = add_rec(w, v[i].id, b)))
				continue;
			fill_static(w, r, &v[i]);
			if (subj && subj[i])
				set_str(&r->e.subject, subj[i]);
			r->e.state = TUI_NSTATES; /* so that the state counts as a change */
			changed = 1;
		}
		r->seen = 1;
		r->local = 0;
		unsigned seq = r->e.seq;
		if (failed)
			failed_from_entry(r, &v[i]);
		else
			state_from_entry(w, r, &v[i], now);
		changed |= seq != r->e.seq;
	}
	return changed;
}

/*
 * Reads every outbox directory whose q/ or failed/ changed since the last
 * reading (all of them with force), with the worker's handles, and brings
 * the records up to date; entries that left both without this worker's
 * doing are dropped.  Subjects are read for new entries, outside the mutex.
 */
static void rescan(struct tui_worker *w, int force)
{
	int64_t now = (int64_t)time(NULL);
	int changed = 0;
	struct box *bx;
	for (size_t b = 0; (bx = wk_box(w, b)) != NULL; b++) {
		struct timespec qt = { 0, 0 }, ft = { 0, 0 };
		int have = dir_mtime(bx->dir, "q", &qt) == 0 && dir_mtime(bx->dir, "failed", &ft) == 0;
		if (!force && have && bx->listed && same_time(&qt, &bx->qmtime) &&
		    same_time(&ft, &bx->fmtime))
			continue; /* nothing to read: a long queue costs */
		bx->qmtime = qt;
		bx->fmtime = ft;
		bx->listed = have;
		struct ba_outbox_entry *v = NULL, *fv = NULL;
		size_t n = 0, fn = 0;
		struct ba_err err = BA_ERR_INIT;
		if (ba_outbox_list(bx->wk, &v, &n, &err) < 0 ||
		    ba_outbox_list_failed(bx->wk, &fv, &fn, &err) < 0) {
			ba_log(w->log, BA_LOG_WARNING, "%s", err.text);
			ba_outbox_list_free(v, n);
			bx->listed = 0;
			continue;
		}
		char **subj = subjects(w, bx->wk, v, n), **fsubj = subjects(w, bx->wk, fv, fn);
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < w->nrecs; i++)
			if (w->recs[i].box == b)
				w->recs[i].seen = 0;
		changed |= merge(w, b, v, n, subj, 0, now);
		changed |= merge(w, b, fv, fn, fsubj, 1, now);
		for (size_t i = w->nrecs; i-- > 0;) {
			struct rec *r = &w->recs[i];
			if (r->box == b && !r->seen && !r->local && strcmp(w->cur, r->e.id) != 0) {
				drop_rec(w, r);
				changed = 1;
			}
		}
		pthread_mutex_unlock(&w->mu);
		for (size_t i = 0; subj && i < n; i++)
			free(subj[i]);
		for (size_t i = 0; fsubj && i < fn; i++)
			free(fsubj[i]);
		free(subj);
		free(fsubj);
		ba_outbox_list_free(v, n);
		ba_outbox_list_free(fv, fn);
	}
	if (changed)
		signal_ui(w);
}

/* ---- the flush's callbacks (worker thread) --------------------------------- */

#define PROGRESS_MS 50

static void on_phase(void *ctx, const char *id, enum ba_outbox_phase ph, uint64_t sent,
                     uint64_t acked, uint64_t total)
{
	struct tui_worker *w = ctx;
	int wake = 1;
	pthread_mutex_lock(&w->mu);
	struct rec *r = find(w, id);
	if (r) {
		enum tui_state st = ph == BA_OUTBOX_CONNECTING ? TUI_CONNECTING
		                    : ph == BA_OUTBOX_SENDING  ? TUI_SENDING
		                                               : TUI_AWAITING;
		int64_t now = ba_now_ms();
		if (st == TUI_SENDING && r->e.state != TUI_SENDING)
			r->t0_ms = now;
		/* a new figure in the same state wakes the UI at most every PROGRESS_MS */
		if (st == r->e.state && now - w->progress_ms < PROGRESS_MS)
			wake = 0;
		else
			w->progress_ms = now;
		r->e.state = st;
		if (st == TUI_CONNECTING) {
			r->e.sent = r->e.acked = r->e.total = 0;
			r->e.rate = 0;
			r->eager_at = 0;
		}
		if (sent || acked || total) {
			r->e.sent = sent;
			r->e.acked = acked;
			r->e.total = total;
			double secs = (double)(now - r->t0_ms) / 1000.0;
			r->e.rate = secs > 0.2 ? (double)acked / secs : 0;
		}
		touch(r);
	}
	pthread_mutex_unlock(&w->mu);
	if (wake)
		signal_ui(w);
}

/* The reply per refused recipient, one line each, else the reply to the data. */
static void on_result(void *ctx, const struct ba_outbox_entry *e,
                      const struct ba_submit_result *res)
{
	struct tui_worker *w = ctx;
	struct ba_buf b = BA_BUF_INIT;
	const struct ba_result *r = res->result;
	for (size_t k = 0; r && k < r->nrcpts; k++) {
		const struct ba_rcpt_result *x = &r->rcpts[k];
		if (x->accepted || x->code < 400)
			continue;
		size_t el = strlen(x->enhanced);
		int has = el && strncmp(x->text, x->enhanced, el) == 0; /* the text often starts with it */
		ba_buf_addf(&b, "%s%s: %d%s%s %s", b.len ? "\n" : "", x->addr, x->code,
		            el && !has ? " " : "", has ? "" : x->enhanced, x->text);
	}
	pthread_mutex_lock(&w->mu);
	struct rec *rec = find(w, e->id);
	if (rec) {
		rec->rcpt_reply = b.len > 0;
		if (b.len)
			set_str(&rec->e.reply, ba_buf_str(&b));
		else if (res->smtp_msg.len)
			set_str(&rec->e.reply, ba_buf_str(&res->smtp_msg));
		rec->e.code = res->smtp_code;
		touch(rec);
	}
	pthread_mutex_unlock(&w->mu);
	ba_buf_release(&b);
}

static void on_done(void *ctx, const struct ba_outbox_entry *e, enum ba_outbox_outcome o,
                    const struct ba_err *err)
{
	struct tui_worker *w = ctx;
	pthread_mutex_lock(&w->mu);
	w->handled = 1;
	struct rec *r = find(w, e->id);
	if (r) {
		r->e.attempts = e->attempts;
		r->e.next_try = e->next;
		r->e.hold_until = 0;
		switch (o) {
		case BA_OUTBOX_DELIVERED:
			r->e.state = TUI_SENT;
			r->local = 1;
			r->e.acked = r->e.sent;
			break;
		case BA_OUTBOX_DEFERRED:
			r->e.state = TUI_DEFERRED;
			if (w->retry_s > 0) {
				int64_t wait = w->retry_s;
				for (unsigned k = 1; k < e->attempts && wait < 3600; k++)
					wait *= 2;
				r->eager_at = (int64_t)time(NULL) + wait;
				if (r->eager_at < e->next)
					r->e.next_try = r->eager_at;
			}
			set_str(&r->e.reply, e->error ? e->error : err ? err->text : "");
			break;
		case BA_OUTBOX_FAILED:
			r->e.state = TUI_FAILED;
			r->local = 1;
			r->e.acknowledged = 0;
			if (!r->rcpt_reply)
				set_str(&r->e.reply, e->error ? e->error : err ? err->text : "");
			break;
		case BA_OUTBOX_UNKNOWN:
			r->e.state = TUI_SENT_UNKNOWN;
			r->e.acknowledged = 0;
			set_str(&r->e.reply, e->error ? e->error : err ? err->text : "");
			break;
		case BA_OUTBOX_CANCELLED:
			r->e.state = TUI_CANCELLED;
			set_str(&r->e.reply, "cancelled");
			break;
		case BA_OUTBOX_SKIPPED:
			r->e.state = TUI_QUEUED;
			break;
		}
		if (o != BA_OUTBOX_DELIVERED && err)
			r->e.code = err->smtp_code;
		touch(r);
	}
	pthread_mutex_unlock(&w->mu);
	signal_ui(w);
}

/* ---- the thread -------------------------------------------------------------- */

/* An entry the flush did not take is not tried again before this (ms). */
#define SKIP_MS 2000

static void send_one(struct tui_worker *w, size_t box, const char *id)
{
	pthread_mutex_lock(&w->mu);
	snprintf(w->cur, sizeof(w->cur), "%s", id);
	w->handled = 0;
	pthread_mutex_unlock(&w->mu);
	struct ba_outbox_flush_opts o;
	memset(&o, 0, sizeof(o));
	o.cfg = w->cfg;
	const char *ids[1] = { id };
	o.ids = ids;
	o.nids = 1;
	o.log = w->log;
	o.smtp_flags = w->smtp_flags;
	o.interactive = 1;
	o.cancel_fd = &w->cancel[0];
	o.phase = on_phase;
	o.phase_ctx = w;
	o.result = on_result;
	o.result_ctx = w;
	o.done = on_done;
	o.done_ctx = w;
	struct ba_outbox_flush_stats st;
	struct ba_err err = BA_ERR_INIT;
	if (ba_outbox_flush(wk_box(w, box)->wk, &o, &st, &err) < 0)
		ba_log(w->log, BA_LOG_WARNING, "%s", err.text);
	pthread_mutex_lock(&w->mu);
	w->cur[0] = '\0';
	struct rec *r = find(w, id);
	if (r && !w->handled) /* locked by another process, or changed meanwhile: later */
		r->skip_until_ms = ba_now_ms() + SKIP_MS;
	pthread_mutex_unlock(&w->mu);
	drain_fd(w->cancel[0]); /* a cancel that came too late for this send */
}

static void run_probes(struct tui_worker *w)
{
	for (;;) {
		char *name = NULL;
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < w->nprobes && !name; i++)
			if (w->probes[i].st == PROBE_WANTED) {
				w->probes[i].st = PROBE_RUNNING;
				name = strdup(w->probes[i].account);
			}
		pthread_mutex_unlock(&w->mu);
		if (!name)
			return;
		struct ba_err err = BA_ERR_INIT;
		uint64_t limit = 0;
		int rc = -1;
		const struct ba_account *acc = ba_config_account(w->cfg, name, &err);
		if (acc) {
			struct ba_route_opts ro;
			memset(&ro, 0, sizeof(ro));
			ro.log = w->log;
			ro.smtp_flags = w->smtp_flags;
			ro.cancel_fd = &w->cancel[0];
			ba_route *r = NULL;
			rc = ba_route_open(&r, acc, &ro, &err);
			if (rc == 0)
				limit = ba_session_size_max(ba_route_session(r));
			ba_route_free(r);
		}
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < w->nprobes; i++)
			if (strcmp(w->probes[i].account, name) == 0) {
				w->probes[i].st = rc == 0 ? PROBE_DONE : PROBE_FAILED;
				w->probes[i].limit = limit;
				w->probes[i].err = err;
			}
		pthread_mutex_unlock(&w->mu);
		free(name);
		signal_ui(w);
	}
}

/* The next entry to send (oldest due first), or 0; and the earliest time one becomes due. */
static int next_due(struct tui_worker *w, char *id, size_t *box, int64_t *wake_at)
{
	int64_t now = (int64_t)time(NULL);
	int found = 0;
	int64_t oldest = 0;
	*wake_at = 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nrecs; i++) {
		struct rec *r = &w->recs[i];
		int64_t due = r->e.state == TUI_HELD       ? r->e.hold_until
		              : r->e.state == TUI_DEFERRED ? r->e.next_try
		              : r->e.state == TUI_QUEUED   ? now
		                                           : -1;
		if (due < 0)
			continue;
		int64_t left_ms = r->skip_until_ms - ba_now_ms(); /* monotonic: made relative */
		if (left_ms > 0) {
			int64_t at = now + left_ms / 1000 + 1;
			if (!*wake_at || at < *wake_at)
				*wake_at = at;
			continue;
		}
		if (due <= now) {
			if (!found || r->e.created < oldest) {
				found = 1;
				oldest = r->e.created;
				memcpy(id, r->e.id, TUI_ID_MAX);
				*box = r->box;
			}
		} else if (!*wake_at || due < *wake_at) {
			*wake_at = due;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return found;
}

/* Every outbox is read completely this often even when its q/ did not change. */
#define FULL_RESCAN_MS 30000

static void *run(void *arg)
{
	struct tui_worker *w = arg;
	int64_t last_scan = 0, last_full = 0;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		int stop = w->stop, now_scan = w->rescan_now;
		w->rescan_now = 0;
		pthread_mutex_unlock(&w->mu);
		if (stop)
			break;
		run_probes(w);
		int64_t t = ba_now_ms();
		if (now_scan || t - last_scan >= w->rescan_ms) {
			int full = !last_full || t - last_full >= FULL_RESCAN_MS;
			rescan(w, full);
			last_scan = ba_now_ms();
			if (full)
				last_full = last_scan;
		}
		char id[TUI_ID_MAX];
		size_t box = 0;
		int64_t wake_at;
		if (next_due(w, id, &box, &wake_at)) {
			send_one(w, box, id);
			pthread_mutex_lock(&w->mu);
			w->rescan_now = 1; /* the outcome as the outbox recorded it */
			pthread_mutex_unlock(&w->mu);
			continue;
		}
		int64_t timeout = w->rescan_ms - (ba_now_ms() - last_scan);
		if (wake_at) {
			int64_t until = (wake_at - (int64_t)time(NULL)) * 1000;
			if (until < timeout)
				timeout = until;
		}
		if (timeout < 10)
			timeout = 10;
		struct pollfd pfd = { w->wake[0], POLLIN, 0 };
		if (poll(&pfd, 1, (int)timeout) > 0) {
			drain_fd(w->wake[0]);
			pthread_mutex_lock(&w->mu);
			w->rescan_now = 1;
			pthread_mutex_unlock(&w->mu);
		}
	}
	return NULL;
}

/* ---- the API (UI thread) --------------------------------------------------- */

static int open_box(struct tui_worker *w, const char *dir, size_t *idx, struct ba_err *err)
{
	for (size_t i = 0; i < w->nboxes; i++)
		if (strcmp(w->boxes[i]->dir, dir) == 0) {
			*idx = i;
			return 0;
		}
	struct box *b = calloc(1, sizeof(*b));
	if (!b || !(b->dir = strdup(dir))) {
		free(b);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	if (ba_outbox_open(&b->ui, dir, w->log, err) < 0 ||
	    ba_outbox_open(&b->wk, dir, w->log, err) < 0) {
		ba_outbox_free(b->ui);
		free(b->dir);
		free(b);
		return -1;
	}
	pthread_mutex_lock(&w->mu);
	struct box **nb = realloc(w->boxes, (w->nboxes + 1) * sizeof(*nb));
	if (nb) {
		w->boxes = nb;
		nb[w->nboxes] = b;
		*idx = w->nboxes++;
	}
	pthread_mutex_unlock(&w->mu);
	if (!nb) {
		ba_outbox_free(b->ui);
		ba_outbox_free(b->wk);
		free(b->dir);
		free(b);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	return 0;
}

int tui_worker_start(struct tui_worker **out, const struct tui_worker_opts *o,
                     struct ba_err *err)
{
	*out = NULL;
	if (!o || !o->cfg)
		BA_BUG("tui_worker_start() without a configuration");
	struct tui_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return ba_err_set(err, EX_OSERR, "out of memory");
	w->cfg = o->cfg;
	w->log = o->log;
	w->rescan_ms = o->rescan_ms > 0 ? o->rescan_ms : 2000;
	w->retry_s = o->retry_s == 0 ? 15 : o->retry_s;
	w->smtp_flags = o->smtp_flags;
	w->notify[0] = w->notify[1] = w->wake[0] = w->wake[1] = w->cancel[0] = w->cancel[1] = -1;
	pthread_mutex_init(&w->mu, NULL);
	if (make_pipe(w->notify) < 0 || make_pipe(w->wake) < 0 || make_pipe(w->cancel) < 0) {
		ba_err_set(err, EX_OSERR, "cannot create a pipe: %s", ba_strerror_t(errno));
		goto fail;
	}
	struct ba_buf dir = BA_BUF_INIT;
	size_t count = ba_config_count(o->cfg);
	for (size_t i = 0; i <= count; i++) {
		int rc;
		if (i < count)
			rc = ba_outbox_account_dir(&dir, ba_config_at(o->cfg, i), err);
		else if (count == 0)
			rc = ba_outbox_default_dir(&dir, err);
		else
			break;
		size_t idx;
		if (rc < 0 || open_box(w, ba_buf_str(&dir), &idx, err) < 0) {
			ba_buf_release(&dir);
			goto fail;
		}
	}
	ba_buf_release(&dir);
	/* the first reading of the outboxes is the thread's: a long queue does not delay the UI */
	/* signals (SIGWINCH, SIGINT, SIGTSTP...) go to the UI thread, never to this one */
	if (ba_thread_start(&w->th, run, w) < 0) {
		ba_err_set(err, EX_OSERR, "cannot start the delivery thread");
		goto fail;
	}
	w->started = 1;
	*out = w;
	return 0;
fail:
	tui_worker_stop(w);
	return -1;
}

void tui_worker_stop(struct tui_worker *w)
{
	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_mutex_unlock(&w->mu);
		char c = 1; /* stops a send in progress (unless its end is out) or a probe */
		if (write(w->cancel[1], &c, 1) < 0) {
			/* a cancel is pending already */
		}
		wake_worker(w);
		pthread_join(w->th, NULL);
	}
	/* a message being written is finished: it was promised to the user */
	while (w->jobs) {
		struct enq *q = w->jobs;
		w->jobs = enq_next(q);
		enq_reap(q);
	}
	for (size_t i = 0; i < w->nboxes; i++) {
		ba_outbox_free(w->boxes[i]->ui);
		ba_outbox_free(w->boxes[i]->wk);
		free(w->boxes[i]->dir);
		free(w->boxes[i]);
	}
	free(w->boxes);
	for (size_t i = 0; i < w->nrecs; i++)
		entry_release(&w->recs[i].e);
	free(w->recs);
	for (size_t i = 0; i < w->nprobes; i++)
		free(w->probes[i].account);
	free(w->probes);
	close_pipe(w->notify);
	close_pipe(w->wake);
	close_pipe(w->cancel);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int tui_worker_fd(const struct tui_worker *w)
{
	return w->notify[0];
}

void tui_worker_drain(struct tui_worker *w)
{
	drain_fd(w->notify[0]);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct tui_entry *x = a, *y = b;
	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

int tui_worker_snapshot(struct tui_worker *w, struct tui_entry **v, size_t *n,
                        struct ba_err *err)
{
	*v = NULL;
	*n = 0;
	pthread_mutex_lock(&w->mu);
	size_t k = w->nrecs;
	struct tui_entry *out = calloc(k ? k : 1, sizeof(*out));
	size_t done = 0;
	for (; out && done < k; done++) {
		const struct tui_entry *s = &w->recs[done].e;
		struct tui_entry *d = &out[done];
		*d = *s;
		d->account = strdup(s->account);
		d->from = strdup(s->from);
		d->rcpts = strdup(s->rcpts);
		d->subject = strdup(s->subject);
		d->reply = strdup(s->reply);
		if (!d->account || !d->from || !d->rcpts || !d->subject || !d->reply) {
			done++;
			break;
		}
	}
	int ok = out && done == k && (k == 0 || out[k - 1].reply);
	pthread_mutex_unlock(&w->mu);
	if (!ok) {
		tui_worker_snapshot_free(out, done);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	qsort(out, k, sizeof(*out), cmp_entry);
	*v = out;
	*n = k;
	return 0;
}

void tui_worker_snapshot_free(struct tui_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		entry_release(&v[i]);
	free(v);
}

/* An enqueue: made ready in the caller's thread, written by commit(). */
struct enq {
	struct enq *next;       /* w->jobs */
	struct tui_worker *w;
	unsigned ticket;
	ba_draft *copy;         /* tui_worker_enqueue_start(): the draft, the caller's copy */
	ba_msg *m;
	struct ba_outbox_entry e;
	size_t box;
	char *subject;
	int own_box;            /* commit() opens the outbox itself (another thread) */
	pthread_t th;
	int done, rc;           /* under w->mu */
	struct ba_err err;
};

static void enq_release(struct enq *q)
{
	ba_outbox_entry_release(&q->e);
	ba_msg_free(q->m);
	ba_draft_free(q->copy);
	free(q->subject);
	memset(q, 0, sizeof(*q));
}

/* The message, account, envelope and outbox of d: the quick part (no file is read). */
static int prepare(struct tui_worker *w, const ba_draft *d, const char *account,
                   int64_t hold_until, struct enq *q, struct ba_err *err)
{
	char **rcpt = NULL;
	size_t nrcpt = 0;
	struct ba_buf env_from = BA_BUF_INIT, from_field = BA_BUF_INIT, dir = BA_BUF_INIT;
	const char **mr = NULL;
	int rc = -1;
	q->w = w;
	if (ba_draft_build(&q->m, d, err) < 0)
		goto out;
	ba_msg *m = q->m;
	const char *from = ba_msg_from(m);
	const struct ba_account *acc = ba_submit_account(w->cfg, account, from, NULL, err);
	if (!acc || ba_submit_envelope_from(&env_from, acc, from, err) < 0)
		goto out;
	if (!from && (ba_submit_from_field(&from_field, acc, ba_buf_str(&env_from), NULL, err) < 0 ||
	              ba_msg_add_from(m, ba_buf_str(&from_field), err) < 0))
		goto out;
	size_t nmsg = ba_msg_rcpt_count(m);
	mr = calloc(nmsg ? nmsg : 1, sizeof(*mr));
	if (!mr) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nmsg; i++)
		mr[i] = ba_msg_rcpt(m, i);
	if (ba_submit_recipients(&rcpt, &nrcpt, acc, NULL, 0, mr, nmsg, err) < 0)
		goto out;
	if (ba_outbox_account_dir(&dir, acc, err) < 0 ||
	    open_box(w, ba_buf_str(&dir), &q->box, err) < 0)
		goto out;
	struct ba_outbox_entry *e = &q->e;
	e->account = strdup(acc->name);
	e->from = strdup(ba_buf_str(&env_from));
	e->rcpt = calloc(nrcpt ? nrcpt : 1, sizeof(*e->rcpt));
	q->subject = xstrdup(ba_draft_get(d, BA_DRAFT_SUBJECT, 0));
	if (!e->account || !e->from || !e->rcpt || !q->subject) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nrcpt; i++) {
		if (!(e->rcpt[i].addr = strdup(rcpt[i]))) {
			ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		e->nrcpt++;
	}
	int64_t now = (int64_t)time(NULL);
	e->next = hold_until > now ? hold_until : now;
	rc = 0;
out:
	free(mr);
	ba_submit_recipients_free(rcpt, nrcpt);
	ba_buf_release(&env_from);
	ba_buf_release(&from_field);
	ba_buf_release(&dir);
	return rc;
}

/* Writes the message of q into its outbox (durable) and shows the entry: the slow part. */
static int commit(struct enq *q, struct ba_err *err)
{
	struct tui_worker *w = q->w;
	ba_spool *spool = NULL;
	ba_outbox *own = NULL;
	struct ba_outbox_entry *e = &q->e;
	int rc = -1;
	struct ba_msg_opts mo;
	memset(&mo, 0, sizeof(mo));
	mo.mime.eol = "\n";
	if (ba_spool_new(&spool, 0, err) < 0 ||
	    ba_msg_write(q->m, ba_spool_writer(spool), &mo, err) < 0)
		goto out;
	/* the box's handle belongs to the UI thread: another thread opens its own */
	struct box *bx = wk_box(w, q->box);
	if (q->own_box && ba_outbox_open(&own, bx->dir, w->log, err) < 0)
		goto out;
	int64_t now = (int64_t)time(NULL);
	if (ba_outbox_add(own ? own : bx->ui, e, ba_spool_reader(spool), NULL, err) < 0)
		goto out;
	/* shown at once; the worker's rescan fills in the rest */
	pthread_mutex_lock(&w->mu);
	struct rec *r = find(w, e->id);
	if (!r && (r = add_rec(w, e->id, q->box)) != NULL) {
		fill_static(w, r, e);
		set_str(&r->e.subject, q->subject);
		r->e.created = e->created;
		r->e.size = e->size;
		r->e.state = e->next > now ? TUI_HELD : TUI_QUEUED;
		r->e.hold_until = e->next > now ? e->next : 0;
		r->e.next_try = e->next;
		r->seen = 1;
		touch(r);
	}
	pthread_mutex_unlock(&w->mu);
	wake_worker(w);
	signal_ui(w);
	rc = 0;
out:
	ba_outbox_free(own);
	ba_spool_free(spool);
	return rc;
}

int tui_worker_enqueue(struct tui_worker *w, const ba_draft *d, const char *account,
                       int64_t hold_until, char *id_out, size_t idlen, struct ba_err *err)
{
	struct enq q;
	memset(&q, 0, sizeof(q));
	int rc = prepare(w, d, account, hold_until, &q, err) < 0 || commit(&q, err) < 0 ? -1 : 0;
	if (rc == 0 && id_out && idlen)
		snprintf(id_out, idlen, "%s", q.e.id);
	enq_release(&q);
	return rc;
}

static void *enq_main(void *arg)
{
	struct enq *q = arg;
	struct ba_err err = BA_ERR_INIT;
	int rc = commit(q, &err);
	pthread_mutex_lock(&q->w->mu);
	q->rc = rc;
	q->err = err;
	q->done = 1;
	pthread_mutex_unlock(&q->w->mu);
	signal_ui(q->w);
	return NULL;
}

int tui_worker_enqueue_start(struct tui_worker *w, const ba_draft *d, const char *account,
                             int64_t hold_until, unsigned *ticket, struct ba_err *err)
{
	struct enq *q = calloc(1, sizeof(*q));
	struct ba_buf f = BA_BUF_INIT;
	if (!q)
		return ba_err_set(err, EX_OSERR, "out of memory");
	/* a copy of d: the caller may change or free it at once */
	if (ba_draft_format(&f, d, err) < 0 ||
	    ba_draft_parse(&q->copy, f.data, f.len, "draft", err) < 0 ||
	    prepare(w, q->copy, account, hold_until, q, err) < 0) {
		ba_buf_release(&f);
		enq_release(q);
		free(q);
		return -1;
	}
	ba_buf_release(&f);
	q->own_box = 1;
	pthread_mutex_lock(&w->mu);
	q->ticket = ++w->tickets ? w->tickets : ++w->tickets;
	q->next = w->jobs;
	w->jobs = q;
	pthread_mutex_unlock(&w->mu);
	/* signals go to the UI thread, as for the worker's */
	if (ba_thread_start(&q->th, enq_main, q) < 0) {
		pthread_mutex_lock(&w->mu);
		w->jobs = q->next;
		pthread_mutex_unlock(&w->mu);
		enq_release(q);
		free(q);
		return ba_err_set(err, EX_OSERR, "cannot start a thread to write the message");
	}
	*ticket = q->ticket;
	return 0;
}

static struct enq *enq_next(const struct enq *q)
{
	return q->next;
}

/* Joins and frees the job (taken off w->jobs). */
static void enq_reap(struct enq *q)
{
	pthread_join(q->th, NULL);
	enq_release(q);
	free(q);
}

int tui_worker_enqueue_poll(struct tui_worker *w, unsigned ticket, char *id_out, size_t idlen,
                            struct ba_err *err)
{
	pthread_mutex_lock(&w->mu);
	struct enq **pp = &w->jobs;
	while (*pp && (*pp)->ticket != ticket)
		pp = &(*pp)->next;
	struct enq *q = *pp;
	if (!q || !q->done) {
		pthread_mutex_unlock(&w->mu);
		if (!q)
			return ba_err_set(err, EX_NOINPUT, "no message being queued as %u", ticket);
		return 1;
	}
	*pp = q->next;
	pthread_mutex_unlock(&w->mu);
	int rc = q->rc;
	if (rc < 0)
		*err = q->err;
	else if (id_out && idlen)
		snprintf(id_out, idlen, "%s", q->e.id);
	enq_reap(q);
	return rc < 0 ? -1 : 0;
}

/* The record's box and state, copied under the mutex.  Returns 0, or -1 (EX_NOINPUT). */
static int lookup(struct tui_worker *w, const char *id, size_t *box, enum tui_state *st,
                  int *current, struct ba_err *err)
{
	pthread_mutex_lock(&w->mu);
	struct rec *r = find(w, id);
	if (r) {
		*box = r->box;
		*st = r->e.state;
		*current = strcmp(w->cur, id) == 0;
	}
	pthread_mutex_unlock(&w->mu);
	if (!r)
		return ba_err_set(err, EX_NOINPUT, "outbox: no entry '%s'", id);
	return 0;
}

/*
 * An entry whose outcome is shown (deferred, failed...) may still be held by
 * the flush for a moment after (its lock, the record of the outcome): waits
 * up to a second for that.  Returns whether id is still being sent.
 */
static int wait_settled(struct tui_worker *w, const char *id, enum tui_state st)
{
	if (st == TUI_CONNECTING || st == TUI_SENDING || st == TUI_AWAITING)
		return 1;
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&w->mu);
		int current = strcmp(w->cur, id) == 0;
		pthread_mutex_unlock(&w->mu);
		if (!current)
			return 0;
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return 1;
}

static void set_state(struct tui_worker *w, const char *id, enum tui_state st, const char *reply)
{
	pthread_mutex_lock(&w->mu);
	struct rec *r = find(w, id);
	if (r && strcmp(w->cur, id) != 0) {
		r->e.state = st;
		r->e.hold_until = 0;
		if (reply)
			set_str(&r->e.reply, reply);
		touch(r);
	}
	pthread_mutex_unlock(&w->mu);
	signal_ui(w);
}

int tui_worker_cancel(struct tui_worker *w, const char *id, struct ba_err *err)
{
	size_t box;
	enum tui_state st;
	int current;
	if (lookup(w, id, &box, &st, &current, err) < 0)
		return -1;
	if (st == TUI_SENT || st == TUI_FAILED || st == TUI_SENT_UNKNOWN || st == TUI_CANCELLED)
		return ba_err_set(err, EX_USAGE, "entry '%s' is %s: nothing to cancel", id,
		                  tui_state_name(st));
	if (st == TUI_AWAITING)
		return ba_err_set(err, EX_TEMPFAIL, "entry '%s': the end of the message is out, the "
		                  "server's reply is awaited", id);
	if (st == TUI_DEFERRED && current)
		wait_settled(w, id, st); /* the attempt is over: the entry itself is cancelled */
	for (int tries = 0; tries < 2; tries++) {
		pthread_mutex_lock(&w->mu);
		current = strcmp(w->cur, id) == 0;
		if (current) {
			char c = 1;
			if (write(w->cancel[1], &c, 1) < 0) {
				/* a cancel is pending already */
			}
		}
		pthread_mutex_unlock(&w->mu);
		if (current)
			return 0; /* the flush records it: BA_OUTBOX_CANCELLED */
		struct ba_err cerr = BA_ERR_INIT;
		if (ba_outbox_cancel(w->boxes[box]->ui, id, &cerr) == 0) {
			set_state(w, id, TUI_CANCELLED, "cancelled");
			return 0;
		}
		if (cerr.code != EX_TEMPFAIL) {
			*err = cerr;
			return -1;
		}
		/* locked: the worker has just taken it; cancel the send instead */
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return ba_err_set(err, EX_TEMPFAIL, "entry '%s' is being sent: try again", id);
}

int tui_worker_retry(struct tui_worker *w, const char *id, struct ba_err *err)
{
	size_t box;
	enum tui_state st;
	int current;
	if (lookup(w, id, &box, &st, &current, err) < 0)
		return -1;
	if ((current && wait_settled(w, id, st)) || st == TUI_SENT)
		return ba_err_set(err, EX_TEMPFAIL, "entry '%s' is %s", id, tui_state_name(st));
	if (ba_outbox_retry(w->boxes[box]->ui, id, err) < 0)
		return -1;
	pthread_mutex_lock(&w->mu);
	struct rec *r = find(w, id);
	if (r) {
		r->local = 0;
		r->e.acknowledged = 0;
	}
	pthread_mutex_unlock(&w->mu);
	set_state(w, id, TUI_QUEUED, NULL);
	wake_worker(w);
	return 0;
}

int tui_worker_remove(struct tui_worker *w, const char *id, struct ba_err *err)
{
	size_t box;
	enum tui_state st;
	int current;
	if (lookup(w, id, &box, &st, &current, err) < 0)
		return -1;
	if (current && wait_settled(w, id, st))
		return ba_err_set(err, EX_TEMPFAIL, "entry '%s' is being sent", id);
	if (st != TUI_SENT && ba_outbox_remove(w->boxes[box]->ui, id, err) < 0)
		return -1;
	pthread_mutex_lock(&w->mu);
	struct rec *r = find(w, id);
	if (r)
		drop_rec(w, r);
	pthread_mutex_unlock(&w->mu);
	signal_ui(w);
	return 0;
}

int tui_worker_ack(struct tui_worker *w, const char *id)
{
	pthread_mutex_lock(&w->mu);
	struct rec *r = find(w, id);
	if (r) {
		r->e.acknowledged = 1;
		touch(r);
	}
	pthread_mutex_unlock(&w->mu);
	if (r)
		signal_ui(w);
	return r ? 0 : -1;
}

int tui_worker_message_open(struct tui_worker *w, const char *id, int *fd, struct ba_err *err)
{
	size_t box;
	enum tui_state st;
	int current;
	if (lookup(w, id, &box, &st, &current, err) < 0)
		return -1;
	struct ba_outbox_entry e;
	if (ba_outbox_get(w->boxes[box]->ui, id, &e, NULL, fd, err) < 0)
		return -1;
	ba_outbox_entry_release(&e);
	return 0;
}

int tui_worker_size_limit(struct tui_worker *w, const char *account, uint64_t *limit,
                          struct ba_err *err)
{
	*limit = 0;
	int rc = 1;
	pthread_mutex_lock(&w->mu);
	struct probe *p = NULL;
	for (size_t i = 0; i < w->nprobes && !p; i++)
		if (strcmp(w->probes[i].account, account) == 0)
			p = &w->probes[i];
	if (!p) {
		struct probe *np = realloc(w->probes, (w->nprobes + 1) * sizeof(*np));
		if (np) {
			w->probes = np;
			p = &w->probes[w->nprobes];
			memset(p, 0, sizeof(*p));
			if ((p->account = strdup(account)) != NULL)
				w->nprobes++;
			else
				p = NULL;
		}
		if (!p)
			rc = ba_err_set(err, EX_OSERR, "out of memory");
	} else if (p->st == PROBE_DONE) {
		*limit = p->limit;
		rc = 0;
	} else if (p->st == PROBE_FAILED) {
		*err = p->err;
		p->st = PROBE_WANTED; /* the next call tries again */
		rc = -1;
	}
	pthread_mutex_unlock(&w->mu);
	if (rc == 1 || (rc == -1 && p))
		wake_worker(w);
	return rc;
}
