/* tests/unit/tui_worker.c - bluearrow-tui's delivery worker against a loopback SMTP server
 *
 * The server (a thread) takes one connection at a time and is told how to
 * misbehave: answer 451 after the data, refuse a recipient, stop reading in
 * the data, close after the final dot without a reply, read slowly.  It
 * counts connections, deliveries (250 after the data) and data bytes read,
 * so each test checks what the server saw, not only what the worker says.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bluearrow/config.h"
#include "bluearrow/draft.h"
#include "bluearrow/io.h"
#include "bluearrow/outbox.h"
#include "worker.h"

/* ---- the server ------------------------------------------------------------ */

struct srv {
	int lfd;
	unsigned port;
	pthread_t th;
	atomic_int stop;
	/* behaviour */
	atomic_int fail_451;      /* answer 451 after the data this many times */
	atomic_int drop_after_dot; /* close after the final dot without a reply */
	atomic_int hang_in_data;  /* stop reading after 354 */
	atomic_int down;          /* greet with 421 and close */
	atomic_int pipelining;    /* offer PIPELINING */
	atomic_long rate;         /* data bytes per second; 0 = as fast as possible */
	int rcvbuf;               /* SO_RCVBUF of accepted connections; 0 = default */
	/* what it saw */
	atomic_int conns, deliveries, ends;
	atomic_ullong data_read;  /* data bytes read in the current data phase */
	atomic_ullong last_total; /* data bytes of the last complete data phase */
};

struct conn {
	int fd;
	char buf[65536];
	size_t start, end;
};

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void say(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) < 0)
		return;
}

/* Reads more into c->buf; 0 on close or error. */
static int fill(struct srv *sv, struct conn *c, size_t max)
{
	if (c->start == c->end)
		c->start = c->end = 0;
	if (c->end == sizeof(c->buf)) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	size_t room = sizeof(c->buf) - c->end;
	if (max && room > max)
		room = max;
	for (;;) {
		if (atomic_load(&sv->stop))
			return 0;
		struct pollfd p = { c->fd, POLLIN, 0 };
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t k = read(c->fd, c->buf + c->end, room);
		if (k <= 0)
			return 0;
		c->end += (size_t)k;
		return 1;
	}
}

static int get_line(struct srv *sv, struct conn *c, char *line, size_t max)
{
	for (;;) {
		char *lf = memchr(c->buf + c->start, '\n', c->end - c->start);
		if (lf) {
			size_t n = (size_t)(lf - (c->buf + c->start)) + 1;
			if (n >= max)
				n = max - 1;
			memcpy(line, c->buf + c->start, n);
			line[n] = '\0';
			c->start = (size_t)(lf - c->buf) + 1;
			return 1;
		}
		if (!fill(sv, c, 0))
			return 0;
	}
}

/* The data up to "\r\n.\r\n", at the server's rate.  1 at the end, 0 on close. */
static int read_data(struct srv *sv, struct conn *c)
{
	char tail[5] = { 0 };
	int64_t t0 = ba_now_ms();
	uint64_t n = 0;
	atomic_store(&sv->data_read, 0);
	for (;;) {
		while (atomic_load(&sv->hang_in_data)) {
			if (atomic_load(&sv->stop))
				return 0;
			char b;
			ssize_t k = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
			if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
				return 0; /* the client went away */
			msleep(20);
		}
		while (c->start < c->end) {
			char ch = c->buf[c->start++];
			n++;
			memmove(tail, tail + 1, 4);
			tail[4] = ch;
			if (!memcmp(tail, "\r\n.\r\n", 5)) {
				atomic_store(&sv->data_read, n);
				atomic_store(&sv->last_total, n);
				atomic_fetch_add(&sv->ends, 1);
				return 1;
			}
		}
		atomic_store(&sv->data_read, n);
		long rate = atomic_load(&sv->rate);
		size_t max = 0;
		if (rate > 0) {
			int64_t due = t0 + (int64_t)(n * 1000 / (uint64_t)rate);
			int64_t now = ba_now_ms();
			if (due > now)
				msleep((int)(due - now));
			max = 4096;
		}
		if (!fill(sv, c, max))
			return 0;
	}
}

static void serve(struct srv *sv, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	c->fd = fd;
	char line[1024];
	if (atomic_load(&sv->down)) {
		say(fd, "421 4.3.2 mx.test going down\r\n");
		close(fd);
		free(c);
		return;
	}
	say(fd, "220 mx.test ESMTP\r\n");
	while (get_line(sv, c, line, sizeof line)) {
		if (!strncmp(line, "EHLO", 4)) {
			say(fd, atomic_load(&sv->pipelining)
			        ? "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250 8BITMIME\r\n"
			        : "250-mx.test\r\n250-SIZE 100000000\r\n250 8BITMIME\r\n");
		} else if (!strncmp(line, "MAIL", 4) || !strncmp(line, "RSET", 4)) {
			say(fd, "250 2.1.0 ok\r\n");
		} else if (!strncmp(line, "RCPT", 4)) {
			say(fd, strstr(line, "bad@") ? "550 5.1.1 no such user here\r\n" : "250 2.1.5 ok\r\n");
		} else if (!strncmp(line, "DATA", 4)) {
			say(fd, "354 go ahead\r\n");
			if (!read_data(sv, c))
				break;
			if (atomic_load(&sv->drop_after_dot))
				break;
			if (atomic_load(&sv->fail_451) > 0) {
				atomic_fetch_sub(&sv->fail_451, 1);
				say(fd, "451 4.3.0 try again later\r\n");
			} else {
				atomic_fetch_add(&sv->deliveries, 1);
				say(fd, "250 2.0.0 Ok: queued as ABC123\r\n");
			}
		} else if (!strncmp(line, "QUIT", 4)) {
			say(fd, "221 bye\r\n");
			break;
		} else {
			say(fd, "502 5.5.2 unexpected\r\n");
		}
	}
	close(fd);
	free(c);
}

static void *srv_main(void *arg)
{
	struct srv *sv = arg;
	while (!atomic_load(&sv->stop)) {
		struct pollfd p = { sv->lfd, POLLIN, 0 };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(sv->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&sv->conns, 1);
		serve(sv, fd);
	}
	return NULL;
}

static void srv_start(struct srv *sv)
{
	sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(sv->lfd >= 0);
	if (sv->rcvbuf) /* inherited by accepted sockets; set before listen for the window */
		setsockopt(sv->lfd, SOL_SOCKET, SO_RCVBUF, &sv->rcvbuf, sizeof(sv->rcvbuf));
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&a, &len), 0);
	sv->port = ntohs(a.sin_port);
	assert_int_equal(listen(sv->lfd, 8), 0);
	assert_int_equal(pthread_create(&sv->th, NULL, srv_main, sv), 0);
}

static void srv_stop(struct srv *sv)
{
	atomic_store(&sv->stop, 1);
	pthread_join(sv->th, NULL);
	close(sv->lfd);
}

/* ---- fixture: a configuration, an outbox, a worker -------------------------------- */

struct fix {
	struct srv sv;
	char dir[64], box[96];
	ba_config *cfg;
	struct tui_worker *w;
	int retry_s;
};

static void fix_start(struct fix *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/ba-tuiw-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->box, sizeof(f->box), "%s/outbox", f->dir);
	srv_start(&f->sv);
	char text[512];
	int n = snprintf(text, sizeof(text),
	                 "account t\nhost 127.0.0.1\nport %u\nfrom me@example.org\ntls off\n"
	                 "auth off\ntimeout 10\noutbox %s\naccount default : t\n",
	                 f->sv.port, f->box);
	struct ba_err err = BA_ERR_INIT;
	if (ba_config_parse(&f->cfg, "test", text, (size_t)n, &err) < 0)
		fail_msg("config: %s", err.text);
	struct tui_worker_opts o;
	memset(&o, 0, sizeof(o));
	o.cfg = f->cfg;
	o.rescan_ms = 200;
	o.retry_s = f->retry_s;
	if (tui_worker_start(&f->w, &o, &err) < 0)
		fail_msg("start: %s", err.text);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fix_stop(struct fix *f)
{
	tui_worker_stop(f->w);
	srv_stop(&f->sv);
	ba_config_free(f->cfg);
	rm_tree(f->dir);
}

static ba_draft *draft(const char *to, const char *subject, size_t body_len)
{
	ba_draft *d;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_draft_new(&d, &err), 0);
	assert_int_equal(ba_draft_add(d, BA_DRAFT_TO, to, &err), 0);
	assert_int_equal(ba_draft_add(d, BA_DRAFT_SUBJECT, subject, &err), 0);
	char *body = malloc(body_len + 1);
	assert_non_null(body);
	for (size_t i = 0; i < body_len; i++)
		body[i] = i % 79 == 78 ? '\n' : 'x';
	assert_int_equal(ba_draft_set_body_text(d, body, body_len, &err), 0);
	free(body);
	return d;
}

static void enqueue(struct fix *f, const char *to, size_t body_len, int64_t hold, char *id)
{
	ba_draft *d = draft(to, "test message", body_len);
	struct ba_err err = BA_ERR_INIT;
	if (tui_worker_enqueue(f->w, d, NULL, hold, id, TUI_ID_MAX, &err) < 0)
		fail_msg("enqueue: %s", err.text);
	ba_draft_free(d);
}

/* Entry id's copy from a fresh snapshot into *out (strings borrowed until the next call). */
static struct tui_entry *snap_v;
static size_t snap_n;

static const struct tui_entry *get(struct fix *f, const char *id)
{
	tui_worker_snapshot_free(snap_v, snap_n);
	snap_v = NULL;
	snap_n = 0;
	struct ba_err err = BA_ERR_INIT;
	tui_worker_drain(f->w);
	assert_int_equal(tui_worker_snapshot(f->w, &snap_v, &snap_n, &err), 0);
	for (size_t i = 0; i < snap_n; i++)
		if (!strcmp(snap_v[i].id, id))
			return &snap_v[i];
	return NULL;
}

/* Waits (polling the worker's descriptor, as the UI does) until id is in state st. */
static const struct tui_entry *wait_state(struct fix *f, const char *id, enum tui_state st,
                                          int timeout_ms)
{
	int64_t end = ba_now_ms() + timeout_ms;
	for (;;) {
		const struct tui_entry *e = get(f, id);
		if (e && e->state == st)
			return e;
		int64_t left = end - ba_now_ms();
		if (left <= 0)
			fail_msg("entry %s: %s, not %s after %d ms", id,
			         e ? tui_state_name(e->state) : "gone", tui_state_name(st), timeout_ms);
		struct pollfd p = { tui_worker_fd(f->w), POLLIN, 0 };
		poll(&p, 1, left > 100 ? 100 : (int)left);
	}
}

static void release_snap(void)
{
	tui_worker_snapshot_free(snap_v, snap_n);
	snap_v = NULL;
	snap_n = 0;
}

static struct ba_outbox_entry on_disk(struct fix *f, const char *id, int *found)
{
	ba_outbox *ob;
	struct ba_err err = BA_ERR_INIT;
	struct ba_outbox_entry e;
	memset(&e, 0, sizeof(e));
	assert_int_equal(ba_outbox_open(&ob, f->box, NULL, &err), 0);
	*found = ba_outbox_get(ob, id, &e, NULL, NULL, &err) == 0;
	ba_outbox_free(ob);
	return e;
}

/* ---- the tests ----------------------------------------------------------------- */

/* Enqueued: durable when the call returns (well within 100 ms), then delivered once. */
static void test_enqueue_delivered_once(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	atomic_store(&f.sv.hang_in_data, 1); /* nothing completes before the check below */
	char id[TUI_ID_MAX];
	int64_t t0 = ba_now_ms();
	enqueue(&f, "a@example.org", 2000, 0, id);
	int64_t took = ba_now_ms() - t0;
	int found;
	struct ba_outbox_entry e = on_disk(&f, id, &found);
	assert_true(found);
	assert_int_equal(e.nrcpt, 1);
	assert_string_equal(e.rcpt[0].addr, "a@example.org");
	ba_outbox_entry_release(&e);
	print_message("enqueue took %lld ms\n", (long long)took);
	/* the composer's budget; valgrind runs everything some ten times slower */
	const char *pre = getenv("LD_PRELOAD");
	assert_true(took <= (pre && strstr(pre, "vgpreload") ? 1000 : 100));
	atomic_store(&f.sv.hang_in_data, 0);
	const struct tui_entry *x = wait_state(&f, id, TUI_SENT, 5000);
	assert_non_null(strstr(x->reply, "queued as ABC123"));
	assert_string_equal(x->subject, "test message");
	assert_int_equal(x->code, 250);
	msleep(600); /* three rescans */
	assert_int_equal(atomic_load(&f.sv.deliveries), 1);
	assert_int_equal(atomic_load(&f.sv.conns), 1);
	x = get(&f, id);
	assert_non_null(x);
	assert_int_equal(x->state, TUI_SENT);
	e = on_disk(&f, id, &found);
	assert_false(found);
	release_snap();
	fix_stop(&f);
}

/* Undo within the hold window: the entry is removed, the server never contacted. */
static void test_hold_remove(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	char id[TUI_ID_MAX];
	int64_t until = (int64_t)time(NULL) + 2;
	enqueue(&f, "a@example.org", 100, until, id);
	const struct tui_entry *x = wait_state(&f, id, TUI_HELD, 1000);
	assert_int_equal(x->hold_until, until);
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(tui_worker_remove(f.w, id, &err), 0);
	assert_null(get(&f, id));
	msleep(2500); /* past the hold */
	assert_null(get(&f, id));
	assert_int_equal(atomic_load(&f.sv.conns), 0);
	int found;
	on_disk(&f, id, &found);
	assert_false(found);
	release_snap();
	fix_stop(&f);
}

/* The message as queued: Bcc in the envelope only, the account's From, a UTF-8 subject shown decoded. */
static void test_enqueue_message(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	ba_draft *d = draft("a@example.org", "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 subject", 100);
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_draft_add(d, BA_DRAFT_BCC, "hidden@example.org", &err), 0);
	char id[TUI_ID_MAX];
	if (tui_worker_enqueue(f.w, d, NULL, (int64_t)time(NULL) + 60, id, sizeof(id), &err) < 0)
		fail_msg("enqueue: %s", err.text);
	ba_draft_free(d);
	int found;
	struct ba_outbox_entry e = on_disk(&f, id, &found);
	assert_true(found);
	assert_int_equal(e.nrcpt, 2);
	assert_string_equal(e.rcpt[1].addr, "hidden@example.org");
	assert_string_equal(e.from, "me@example.org");
	ba_outbox_entry_release(&e);
	int mfd = -1;
	assert_int_equal(tui_worker_message_open(f.w, id, &mfd, &err), 0);
	char buf[8192];
	ssize_t k = read(mfd, buf, sizeof(buf) - 1);
	close(mfd);
	assert_true(k > 0);
	buf[k] = '\0';
	assert_null(strstr(buf, "hidden@"));
	assert_true(strncmp(buf, "From: me@example.org", 20) == 0 ||
	            strstr(buf, "\nFrom: me@example.org"));
	assert_null(strstr(buf, "bluearrow-outbox")); /* the message, not the entry's state */
	/* after a rescan the subject comes from the file, decoded */
	msleep(400);
	tui_worker_stop(f.w);
	struct tui_worker_opts o;
	memset(&o, 0, sizeof(o));
	o.cfg = f.cfg;
	assert_int_equal(tui_worker_start(&f.w, &o, &err), 0);
	const struct tui_entry *x = wait_state(&f, id, TUI_HELD, 1000);
	assert_string_equal(x->subject, "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 subject");
	assert_string_equal(x->rcpts, "a@example.org, hidden@example.org");
	assert_int_equal(tui_worker_remove(f.w, id, &err), 0);
	assert_int_equal(atomic_load(&f.sv.conns), 0);
	release_snap();
	fix_stop(&f);
}

/*
 * The asynchronous enqueue: the draft is copied (freed at once here), the
 * ticket says "under way" until the message is durable, then gives its id
 * once; the entry is in the outbox and the snapshot.
 */
static void test_enqueue_async(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	ba_draft *d = draft("a@example.org", "written by the worker", 200000);
	struct ba_err err = BA_ERR_INIT;
	unsigned ticket = 0;
	if (tui_worker_enqueue_start(f.w, d, NULL, (int64_t)time(NULL) + 60, &ticket, &err) < 0)
		fail_msg("enqueue_start: %s", err.text);
	ba_draft_free(d);
	assert_int_not_equal(ticket, 0);
	char id[TUI_ID_MAX] = "";
	int rc, polls = 0;
	while ((rc = tui_worker_enqueue_poll(f.w, ticket, id, sizeof id, &err)) == 1 &&
	       polls++ < 500)
		msleep(10);
	if (rc < 0)
		fail_msg("enqueue_poll: %s", err.text);
	assert_int_equal(rc, 0);
	assert_true(id[0]);
	int found;
	struct ba_outbox_entry e = on_disk(&f, id, &found);
	assert_true(found);
	assert_int_equal(e.nrcpt, 1);
	ba_outbox_entry_release(&e);
	const struct tui_entry *x = get(&f, id);
	assert_non_null(x);
	assert_int_equal(x->state, TUI_HELD);
	assert_string_equal(x->subject, "written by the worker");
	/* the ticket is gone once its outcome was given */
	assert_int_equal(tui_worker_enqueue_poll(f.w, ticket, id, sizeof id, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	/* a draft that cannot be built fails at once, in the caller */
	d = draft("a@example.org", "no such file", 10);
	char gone[128];
	snprintf(gone, sizeof gone, "%s/gone.bin", f.dir);
	FILE *g = fopen(gone, "w");
	assert_non_null(g);
	fclose(g);
	assert_int_equal(ba_draft_attach_add(d, gone, NULL, NULL, &err), 0);
	unlink(gone);
	ba_err_clear(&err);
	assert_int_equal(tui_worker_enqueue_start(f.w, d, NULL, 0, &ticket, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	ba_draft_free(d);
	/* one still being written when the worker stops is finished first */
	d = draft("a@example.org", "at the stop", 500000);
	ba_err_clear(&err);
	assert_int_equal(tui_worker_enqueue_start(f.w, d, NULL, (int64_t)time(NULL) + 60, &ticket,
	                                          &err), 0);
	ba_draft_free(d);
	release_snap();
	fix_stop(&f);
}

/* A held entry goes out by itself when the hold ends. */
static void test_hold_then_sent(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	char id[TUI_ID_MAX];
	enqueue(&f, "a@example.org", 100, (int64_t)time(NULL) + 1, id);
	wait_state(&f, id, TUI_HELD, 1000);
	wait_state(&f, id, TUI_SENT, 4000);
	assert_int_equal(atomic_load(&f.sv.deliveries), 1);
	release_snap();
	fix_stop(&f);
}

/* 451 after the final dot: deferred with the reply, retried, delivered once. */
static void test_451_deferred_retried(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	atomic_store(&f.sv.fail_451, 1);
	char id[TUI_ID_MAX];
	enqueue(&f, "a@example.org", 500, 0, id);
	const struct tui_entry *x = wait_state(&f, id, TUI_DEFERRED, 5000);
	assert_non_null(strstr(x->reply, "451"));
	assert_non_null(strstr(x->reply, "try again later"));
	assert_int_equal(x->attempts, 1);
	assert_true(x->next_try > (int64_t)time(NULL));
	assert_int_equal(atomic_load(&f.sv.deliveries), 0);
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(tui_worker_retry(f.w, id, &err), 0);
	wait_state(&f, id, TUI_SENT, 5000);
	msleep(500);
	assert_int_equal(atomic_load(&f.sv.deliveries), 1);
	assert_int_equal(atomic_load(&f.sv.ends), 2);
	release_snap();
	fix_stop(&f);
}

/* One of two recipients refused: failed, with the refused recipient's reply in words. */
static void test_one_recipient_refused(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	char id[TUI_ID_MAX];
	enqueue(&f, "a@example.org, bad@example.org", 500, 0, id);
	const struct tui_entry *x = wait_state(&f, id, TUI_FAILED, 5000);
	print_message("failed: %s\n", x->reply);
	assert_non_null(strstr(x->reply, "bad@example.org: 550 5.1.1 no such user here"));
	assert_null(strstr(x->reply, "a@example.org:"));
	assert_false(x->acknowledged);
	assert_int_equal(tui_worker_ack(f.w, id), 0);
	x = get(&f, id);
	assert_true(x->acknowledged);
	assert_int_equal(atomic_load(&f.sv.deliveries), 0);
	assert_int_equal(atomic_load(&f.sv.ends), 0);
	/* the next process shows it from failed/, with the refused recipient, until removed */
	tui_worker_stop(f.w);
	struct tui_worker_opts o;
	memset(&o, 0, sizeof(o));
	o.cfg = f.cfg;
	o.rescan_ms = 200;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(tui_worker_start(&f.w, &o, &err), 0);
	x = wait_state(&f, id, TUI_FAILED, 1000);
	assert_non_null(strstr(x->reply, "bad@example.org"));
	assert_non_null(strstr(x->reply, "550 5.1.1 no such user here"));
	assert_false(x->acknowledged);
	assert_int_equal(tui_worker_remove(f.w, id, &err), 0);
	assert_null(get(&f, id));
	msleep(500);
	assert_null(get(&f, id));
	release_snap();
	fix_stop(&f);
}

/* A server that stops reading in the data: cancelled within a second, nothing completed. */
static void test_hung_cancelled(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	f.sv.rcvbuf = 65536;
	fix_start(&f);
	atomic_store(&f.sv.hang_in_data, 1);
	char id[TUI_ID_MAX];
	enqueue(&f, "a@example.org", 12u << 20, 0, id);
	wait_state(&f, id, TUI_SENDING, 5000);
	msleep(300);
	struct ba_err err = BA_ERR_INIT;
	int64_t t0 = ba_now_ms();
	assert_int_equal(tui_worker_cancel(f.w, id, &err), 0);
	wait_state(&f, id, TUI_CANCELLED, 1000);
	int64_t took = ba_now_ms() - t0;
	print_message("cancel took %lld ms\n", (long long)took);
	assert_true(took <= 1000);
	atomic_store(&f.sv.hang_in_data, 0);
	msleep(600); /* rescans: a cancelled entry is not sent again */
	const struct tui_entry *x = get(&f, id);
	assert_non_null(x);
	assert_int_equal(x->state, TUI_CANCELLED);
	assert_int_equal(atomic_load(&f.sv.ends), 0);
	assert_int_equal(atomic_load(&f.sv.conns), 1);
	int found;
	struct ba_outbox_entry e = on_disk(&f, id, &found);
	assert_true(found);
	assert_true(e.cancelled);
	ba_outbox_entry_release(&e);
	release_snap();
	fix_stop(&f);
}

/* The connection dropped after the final dot: sent-unknown, not resent, also after a restart. */
static void test_drop_after_dot_unknown(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	atomic_store(&f.sv.drop_after_dot, 1);
	char id[TUI_ID_MAX];
	enqueue(&f, "a@example.org", 500, 0, id);
	const struct tui_entry *x = wait_state(&f, id, TUI_SENT_UNKNOWN, 5000);
	print_message("sent-unknown: %s\n", x->reply);
	atomic_store(&f.sv.drop_after_dot, 0);
	msleep(700);
	x = get(&f, id);
	assert_int_equal(x->state, TUI_SENT_UNKNOWN);
	assert_int_equal(atomic_load(&f.sv.conns), 1);
	int found;
	struct ba_outbox_entry e = on_disk(&f, id, &found);
	assert_true(found);
	assert_true(e.inflight != 0);
	ba_outbox_entry_release(&e);
	/* a new process sees it the same way and leaves it alone */
	tui_worker_stop(f.w);
	struct tui_worker_opts o;
	memset(&o, 0, sizeof(o));
	o.cfg = f.cfg;
	o.rescan_ms = 200;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(tui_worker_start(&f.w, &o, &err), 0);
	wait_state(&f, id, TUI_SENT_UNKNOWN, 1000);
	msleep(600);
	assert_int_equal(atomic_load(&f.sv.conns), 1);
	/* an explicit retry sends it */
	assert_int_equal(tui_worker_retry(f.w, id, &err), 0);
	wait_state(&f, id, TUI_SENT, 5000);
	assert_int_equal(atomic_load(&f.sv.deliveries), 1);
	release_snap();
	fix_stop(&f);
}

/*
 * A slow server (1 MB/s, a small receive buffer): at every sample the
 * worker's acknowledged share is within 10 points of the share the server
 * has read, although the socket's send buffer takes megabytes at once.
 */
static void test_progress_acknowledged(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	f.sv.rcvbuf = 32768;
	fix_start(&f);
	atomic_store(&f.sv.rate, 1L << 20);
	char id[TUI_ID_MAX];
	size_t body = 3u << 20;
	enqueue(&f, "a@example.org", body, 0, id);
	wait_state(&f, id, TUI_SENDING, 5000);
	double client[200], server[200];
	int ns = 0;
	for (;;) {
		const struct tui_entry *x = get(&f, id);
		assert_non_null(x);
		if (x->state == TUI_SENT)
			break;
		uint64_t read = atomic_load(&f.sv.data_read);
		if ((x->state == TUI_SENDING || x->state == TUI_AWAITING) && x->total && ns < 200) {
			client[ns] = 100.0 * (double)x->acked / (double)x->total;
			server[ns] = (double)read;
			ns++;
		}
		assert_true(ns < 200);
		msleep(100);
	}
	double wire = (double)atomic_load(&f.sv.last_total);
	assert_true(wire > (double)body);
	double worst = 0;
	for (int i = 0; i < ns; i++) {
		double d = client[i] - 100.0 * server[i] / wire;
		if (d < 0)
			d = -d;
		if (d > worst)
			worst = d;
	}
	print_message("%d samples, worst difference %.1f points\n", ns, worst);
	assert_true(ns >= 10);
	assert_true(worst <= 10.0);
	release_snap();
	fix_stop(&f);
}

/* The server down, then up: the worker tries again by itself and delivers once. */
static void test_server_back(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	f.retry_s = 1;
	fix_start(&f);
	atomic_store(&f.sv.down, 1);
	char id[TUI_ID_MAX];
	enqueue(&f, "a@example.org", 500, 0, id);
	const struct tui_entry *x = wait_state(&f, id, TUI_DEFERRED, 5000);
	assert_non_null(strstr(x->reply, "421"));
	assert_true(x->next_try <= (int64_t)time(NULL) + 2);
	atomic_store(&f.sv.down, 0);
	wait_state(&f, id, TUI_SENT, 6000);
	msleep(500);
	assert_int_equal(atomic_load(&f.sv.deliveries), 1);
	release_snap();
	fix_stop(&f);
}

/* An entry another process holds (a flush from cron) is left alone, without spinning, then sent. */
static void test_locked_elsewhere(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	char id[TUI_ID_MAX], path[256];
	enqueue(&f, "a@example.org", 100, (int64_t)time(NULL) + 1, id);
	snprintf(path, sizeof(path), "%s/q/%s.entry", f.box, id);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	clock_t c0 = clock();
	msleep(3000);
	double cpu_ms = (double)(clock() - c0) * 1000.0 / CLOCKS_PER_SEC;
	print_message("cpu while locked: %.0f ms\n", cpu_ms);
	assert_true(cpu_ms < 500);
	assert_int_equal(atomic_load(&f.sv.conns), 0);
	close(fd);
	wait_state(&f, id, TUI_SENT, 5000);
	assert_int_equal(atomic_load(&f.sv.deliveries), 1);
	release_snap();
	fix_stop(&f);
}

/* The SIZE limit is probed off the UI thread: 1 at once, the figure when the descriptor says so. */
static void test_size_limit(void **state)
{
	(void)state;
	struct fix f;
	memset(&f, 0, sizeof(f));
	fix_start(&f);
	uint64_t limit = 1;
	struct ba_err err = BA_ERR_INIT;
	int64_t t0 = ba_now_ms();
	assert_int_equal(tui_worker_size_limit(f.w, "t", &limit, &err), 1);
	assert_true(ba_now_ms() - t0 < 50);
	int rc;
	int64_t end = ba_now_ms() + 5000;
	while ((rc = tui_worker_size_limit(f.w, "t", &limit, &err)) == 1 && ba_now_ms() < end) {
		struct pollfd p = { tui_worker_fd(f.w), POLLIN, 0 };
		poll(&p, 1, 100);
		tui_worker_drain(f.w);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(limit, 100000000);
	assert_int_equal(atomic_load(&f.sv.conns), 1);
	assert_int_equal(atomic_load(&f.sv.ends), 0);
	/* an unknown account */
	while ((rc = tui_worker_size_limit(f.w, "nope", &limit, &err)) == 1) {
		struct pollfd p = { tui_worker_fd(f.w), POLLIN, 0 };
		poll(&p, 1, 100);
		tui_worker_drain(f.w);
	}
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, EX_CONFIG);
	fix_stop(&f);
}

/*
 * The interactive flush under the worker, against a server that offers
 * PIPELINING and drops the connection after the final dot: lock-step, the
 * entry's verdict awaited on its own send, so it is sent-unknown with its
 * in-flight mark kept (a verdict left to the next message would have made
 * it a deferred entry, sent again).  Without cancel_fd, as any caller may.
 */
static void test_interactive_flush_lockstep(void **state)
{
	(void)state;
	struct srv sv;
	memset(&sv, 0, sizeof(sv));
	atomic_store(&sv.pipelining, 1);
	atomic_store(&sv.drop_after_dot, 1);
	srv_start(&sv);
	char dir[64], box[96], text[512];
	snprintf(dir, sizeof(dir), "/tmp/ba-tuiw-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(box, sizeof(box), "%s/outbox", dir);
	int n = snprintf(text, sizeof(text),
	                 "account t\nhost 127.0.0.1\nport %u\nfrom me@example.org\ntls off\n"
	                 "auth off\ntimeout 10\noutbox %s\n", sv.port, box);
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg;
	if (ba_config_parse(&cfg, "test", text, (size_t)n, &err) < 0)
		fail_msg("config: %s", err.text);
	ba_outbox *ob;
	assert_int_equal(ba_outbox_open(&ob, box, NULL, &err), 0);
	char ids[2][BA_OUTBOX_ID_MAX];
	for (int k = 0; k < 2; k++) {
		struct ba_outbox_entry e;
		memset(&e, 0, sizeof(e));
		e.account = strdup("t");
		e.from = strdup("me@example.org");
		e.nrcpt = 1;
		e.rcpt = calloc(1, sizeof(*e.rcpt));
		assert_non_null(e.rcpt);
		e.rcpt[0].addr = strdup("a@example.org");
		e.created = e.next = (int64_t)time(NULL) - 10 + k;
		const char *msg = "From: me@example.org\nSubject: lock-step\n\nhello\n";
		struct ba_mem_reader mr;
		ba_mem_reader_init(&mr, msg, strlen(msg));
		assert_int_equal(ba_outbox_add(ob, &e, &mr.base, NULL, &err), 0);
		memcpy(ids[k], e.id, sizeof(ids[k]));
		ba_outbox_entry_release(&e);
	}
	struct ba_outbox_flush_opts o;
	memset(&o, 0, sizeof(o));
	o.cfg = cfg;
	o.interactive = 1;
	struct ba_outbox_flush_stats st;
	assert_int_equal(ba_outbox_flush(ob, &o, &st, &err), 0);
	/* each message alone on its connection, each dropped after its dot */
	assert_int_equal(st.unknown, 2);
	assert_int_equal(st.deferred, 0);
	assert_int_equal(st.delivered, 0);
	assert_int_equal(atomic_load(&sv.ends), 2);
	assert_int_equal(atomic_load(&sv.conns), 2);
	for (int k = 0; k < 2; k++) {
		struct ba_outbox_entry e;
		assert_int_equal(ba_outbox_get(ob, ids[k], &e, NULL, NULL, &err), 0);
		assert_true(e.inflight != 0);
		ba_outbox_entry_release(&e);
	}
	/* and no flush sends them again */
	atomic_store(&sv.drop_after_dot, 0);
	o.interactive = 0;
	assert_int_equal(ba_outbox_flush(ob, &o, &st, &err), 0);
	assert_int_equal(st.delivered + st.deferred + st.unknown, 0);
	assert_int_equal(atomic_load(&sv.deliveries), 0);
	ba_outbox_free(ob);
	ba_config_free(cfg);
	srv_stop(&sv);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enqueue_delivered_once),
		cmocka_unit_test(test_hold_remove),
		cmocka_unit_test(test_enqueue_message),
		cmocka_unit_test(test_enqueue_async),
		cmocka_unit_test(test_hold_then_sent),
		cmocka_unit_test(test_451_deferred_retried),
		cmocka_unit_test(test_one_recipient_refused),
		cmocka_unit_test(test_hung_cancelled),
		cmocka_unit_test(test_drop_after_dot_unknown),
		cmocka_unit_test(test_progress_acknowledged),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_server_back),
		cmocka_unit_test(test_locked_elsewhere),
		cmocka_unit_test(test_interactive_flush_lockstep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
