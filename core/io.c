/* io.c - readers, writers and streams over file descriptors and memory */
#define _GNU_SOURCE /* O_TMPFILE */
#include "bluearrow/io.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ */
#endif

int64_t ba_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ba_deadline(int timeout_ms)
{
	return timeout_ms > 0 ? ba_now_ms() + timeout_ms : 0;
}

ssize_t ba_read_full(ba_reader *r, void *p, size_t n, struct ba_err *err)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = ba_read(r, (unsigned char *)p + got, n - got, err);
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

int ba_tmpfile(int *fd, struct ba_err *err)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int f = -1;
#ifdef O_TMPFILE
	f = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
#endif
	if (f < 0) { /* no O_TMPFILE here (old kernel, some file systems) */
		struct ba_buf path = BA_BUF_INIT;
		ba_buf_addf(&path, "%s/bluearrow-XXXXXX", dir);
		if (ba_buf_failed(&path))
			return ba_err_set(err, EX_OSERR, "out of memory");
		f = mkstemp(path.data);
		if (f >= 0)
			unlink(path.data);
		ba_buf_release(&path);
	}
	if (f < 0)
		return ba_err_set(err, EX_CANTCREAT, "cannot create a temporary file in '%s': %s", dir,
		                  ba_strerror_t(errno));
	*fd = f;
	return 0;
}

/* ---- fd reader ---- */

static ssize_t fd_reader_read(ba_reader *base, void *p, size_t n, struct ba_err *err)
{
	struct ba_fd_reader *r = (struct ba_fd_reader *)base;
	for (;;) {
		ssize_t k = read(r->fd, p, n);
		if (k >= 0)
			return k;
		if (errno != EINTR)
			return ba_err_set(err, EX_IOERR, "cannot read '%s': %s", r->name, ba_strerror_t(errno));
	}
}

static const struct ba_reader_ops fd_reader_ops = { fd_reader_read };

void ba_fd_reader_init(struct ba_fd_reader *r, int fd, const char *name)
{
	r->base.ops = &fd_reader_ops;
	r->fd = fd;
	r->name = name ? name : "input";
}

/* ---- memory reader ---- */

static ssize_t mem_reader_read(ba_reader *base, void *p, size_t n, struct ba_err *err)
{
	struct ba_mem_reader *r = (struct ba_mem_reader *)base;
	(void)err;
	size_t left = r->len - r->off;
	if (n > left)
		n = left;
	if (n)
		memcpy(p, r->p + r->off, n);
	r->off += n;
	return (ssize_t)n;
}

static const struct ba_reader_ops mem_reader_ops = { mem_reader_read };

void ba_mem_reader_init(struct ba_mem_reader *r, const void *p, size_t len)
{
	r->base.ops = &mem_reader_ops;
	r->p = p;
	r->len = len;
	r->off = 0;
}

/* ---- bounded line reader ---- */

int ba_linereader_init(struct ba_linereader *lr, ba_reader *in, size_t max, struct ba_err *err)
{
	memset(lr, 0, sizeof(*lr));
	if (max == 0)
		BA_BUG("line reader with max 0");
	lr->in = in;
	lr->max = max;
	/* room for one full piece plus a read's worth, so reads stay large */
	lr->size = max + 16384;
	lr->buf = malloc(lr->size);
	if (!lr->buf)
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

int ba_linereader_next(struct ba_linereader *lr, const char **line, size_t *len, struct ba_err *err)
{
	size_t scanned = 0;
	for (;;) {
		size_t avail = lr->end - lr->start;
		size_t lim = avail < lr->max ? avail : lr->max;
		unsigned char *s = lr->buf + lr->start;
		unsigned char *nl = lim > scanned ? memchr(s + scanned, '\n', lim - scanned) : NULL;
		if (nl || avail >= lr->max || (lr->eof && avail)) {
			size_t n = nl ? (size_t)(nl - s) + 1 : lim;
			*line = (const char *)s;
			*len = n;
			lr->start += n;
			return 1;
		}
		if (lr->eof)
			return 0;
		scanned = lim;
		if (lr->start && lr->end == lr->size) {
			memmove(lr->buf, lr->buf + lr->start, avail);
			lr->end = avail;
			lr->start = 0;
		} else if (lr->start == lr->end) {
			lr->start = lr->end = 0;
		}
		ssize_t k = ba_read(lr->in, lr->buf + lr->end, lr->size - lr->end, err);
		if (k < 0)
			return -1;
		if (k == 0)
			lr->eof = 1;
		lr->end += (size_t)k;
	}
}

size_t ba_linereader_buffered(const struct ba_linereader *lr, const char **p)
{
	*p = (const char *)lr->buf + lr->start;
	return lr->end - lr->start;
}

size_t ba_linereader_lines(const struct ba_linereader *lr, const char **p)
{
	size_t avail = lr->end - lr->start;
	*p = (const char *)lr->buf + lr->start;
	const unsigned char *nl = avail ? memrchr(lr->buf + lr->start, '\n', avail) : NULL;
	return nl ? (size_t)(nl - (lr->buf + lr->start)) + 1 : 0;
}

void ba_linereader_skip(struct ba_linereader *lr, size_t n)
{
	if (n > lr->end - lr->start)
		BA_BUG("ba_linereader_skip past the buffered bytes");
	lr->start += n;
}

void ba_linereader_release(struct ba_linereader *lr)
{
	free(lr->buf);
	lr->buf = NULL;
	lr->start = lr->end = lr->size = 0;
}

/* ---- writers ---- */

int ba_write_str(ba_writer *w, const char *s, struct ba_err *err)
{
	return ba_write(w, s, strlen(s), err);
}

int ba_flush(ba_writer *w, struct ba_err *err)
{
	return w->ops->flush ? w->ops->flush(w, err) : 0;
}

static int write_all_fd(int fd, const unsigned char *p, size_t n, const char *name,
                        struct ba_err *err)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return ba_err_set(err, EX_IOERR, "cannot write '%s': %s", name, ba_strerror_t(errno));
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int fd_writer_flush(ba_writer *base, struct ba_err *err)
{
	struct ba_fd_writer *w = (struct ba_fd_writer *)base;
	size_t n = w->len;
	w->len = 0;
	return write_all_fd(w->fd, w->buf, n, w->name, err);
}

static int fd_writer_write(ba_writer *base, const void *p, size_t n, struct ba_err *err)
{
	struct ba_fd_writer *w = (struct ba_fd_writer *)base;
	if (w->len + n <= sizeof(w->buf)) {
		memcpy(w->buf + w->len, p, n);
		w->len += n;
		return 0;
	}
	if (fd_writer_flush(base, err) < 0)
		return -1;
	if (n >= sizeof(w->buf))
		return write_all_fd(w->fd, p, n, w->name, err);
	memcpy(w->buf, p, n);
	w->len = n;
	return 0;
}

static const struct ba_writer_ops fd_writer_ops = { fd_writer_write, fd_writer_flush };

void ba_fd_writer_init(struct ba_fd_writer *w, int fd, const char *name)
{
	w->base.ops = &fd_writer_ops;
	w->fd = fd;
	w->name = name ? name : "output";
	w->len = 0;
}

static int buf_writer_write(ba_writer *base, const void *p, size_t n, struct ba_err *err)
{
	struct ba_buf_writer *w = (struct ba_buf_writer *)base;
	if (ba_buf_add(w->buf, p, n) < 0)
		return ba_err_set(err, EX_DATAERR, "output too large (limit %zu bytes)", w->buf->cap);
	return 0;
}

static const struct ba_writer_ops buf_writer_ops = { buf_writer_write, NULL };

void ba_buf_writer_init(struct ba_buf_writer *w, struct ba_buf *buf)
{
	w->base.ops = &buf_writer_ops;
	w->buf = buf;
}

static int count_writer_write(ba_writer *base, const void *p, size_t n, struct ba_err *err)
{
	(void)p;
	(void)err;
	((struct ba_count_writer *)base)->count += n;
	return 0;
}

static const struct ba_writer_ops count_writer_ops = { count_writer_write, NULL };

void ba_count_writer_init(struct ba_count_writer *w)
{
	w->base.ops = &count_writer_ops;
	w->count = 0;
}

/* ---- fd stream ---- */

struct fd_stream {
	ba_stream base;
	int rfd, wfd;
	int cancel_fd;  /* -1: none */
	int is_sock; /* wfd is a socket: write with MSG_NOSIGNAL */
	int is_tcp;  /* ... an IPv4 or IPv6 one (its send queue counts bytes) */
	ba_stream_wait_fn *wait_fn; /* NULL: none */
	void *wait_ctx;
	int wait_ms;
	size_t wait_done, wait_len; /* the write under way, for wait_fn */
	char name[64];
};

int ba_cancel_pending(int fd)
{
	if (fd < 0)
		return 0;
	struct pollfd pfd = { fd, POLLIN, 0 };
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

#define CANCEL_SLICE_MS 20
int ba_wait_done(pthread_mutex_t *mu, pthread_cond_t *cv, const int *done, int64_t deadline,
                 int cfd)
{
	pthread_mutex_lock(mu);
	while (!*done) {
		if (ba_cancel_pending(cfd))
			break;
		int64_t left = deadline - ba_now_ms();
		if (left <= 0)
			break;
		if (cfd >= 0 && left > CANCEL_SLICE_MS)
			left = CANCEL_SLICE_MS;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(cv, mu, &ts);
	}
	int d = *done;
	pthread_mutex_unlock(mu);
	return d;
}

/* pthread_create() with every signal blocked in the new thread (they stay with the caller). */
static int start_thread(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                        void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(t, attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r == 0 ? 0 : -1;
}

int ba_thread_detached(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	if (pthread_attr_init(&attr) != 0)
		return -1;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	int r = start_thread(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return r;
}

int ba_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	return start_thread(t, NULL, fn, arg);
}

void *ba_dl_open(const char *soname, const char *const *names, void **sym, size_t n)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	for (size_t i = 0; h && i < n; i++)
		if (!(sym[i] = dlsym(h, names[i]))) {
			dlclose(h);
			h = NULL;
		}
	return h;
}

int ba_job_start(struct ba_job *j, void *(*fn)(void *), void (*free_fn)(struct ba_job *j))
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* ba_wait_done()'s clock */
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&j->mu, NULL);
	j->done = 0;
	j->free_fn = free_fn;
	j->refs = 2; /* the caller's and the thread's */
	if (ba_thread_detached(fn, j) < 0) {
		j->refs = 1;
		ba_job_release(j);
		return -1;
	}
	return 0;
}

void ba_job_finish(struct ba_job *j)
{
	j->done = 1;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	ba_job_release(j);
}

int ba_job_wait(struct ba_job *j, int64_t deadline, int cfd)
{
	return ba_wait_done(&j->mu, &j->cv, &j->done, deadline, cfd);
}

void ba_job_release(struct ba_job *j)
{
	pthread_mutex_lock(&j->mu);
	int last = --j->refs == 0;
	pthread_mutex_unlock(&j->mu);
	if (!last)
		return;
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	j->free_fn(j);
}

int ba_mkdirs(const char *path, struct ba_err *err)
{
	char *p = strdup(path);
	if (!p)
		return ba_err_set(err, EX_OSERR, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		struct stat st;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			ba_err_set(err, EX_CANTCREAT, "cannot create directory '%s': %s", p,
			           ba_strerror_t(e));
			free(p);
			return -1;
		}
		int st_rc = stat(p, &st);
		if (st_rc < 0 || !S_ISDIR(st.st_mode)) {
			ba_err_set(err, EX_CANTCREAT, "cannot use '%s' as a directory: %s", p,
			           st_rc < 0 ? ba_strerror_t(errno) : "not a directory");
			free(p);
			return -1;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return 0;
}

int ba_read_private(struct ba_buf *out, const char *path, struct ba_err *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : ba_err_set(err, EX_IOERR, "cannot open '%s': %s", path,
		                                        ba_strerror_t(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		close(fd);
		return 0;
	}
	char chunk[4096];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		if (ba_buf_add(out, chunk, (size_t)n) < 0)
			break;
	int e = errno;
	close(fd);
	if (n < 0)
		return ba_err_set(err, EX_IOERR, "cannot read '%s': %s", path, ba_strerror_t(e));
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_DATAERR, "'%s' is too large", path);
	return 1;
}

int ba_write_private(const char *path, const struct ba_buf *data, struct ba_err *err)
{
	struct ba_buf tmp = BA_BUF_INIT;
	ba_buf_addf(&tmp, "%s.tmp.XXXXXX", path);
	if (ba_buf_failed(&tmp))
		return ba_err_set(err, EX_OSERR, "out of memory");
	int rc = -1;
	int fd = mkstemp(tmp.data); /* 0600, O_EXCL */
	if (fd < 0) {
		ba_err_set(err, EX_CANTCREAT, "cannot create '%s': %s", ba_buf_str(&tmp),
		           ba_strerror_t(errno));
		goto out;
	}
	size_t off = 0;
	while (off < data->len) {
		ssize_t n = write(fd, data->data + off, data->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	int e = errno;
	if (off < data->len || fsync(fd) < 0) {
		if (off == data->len)
			e = errno;
		close(fd);
		unlink(ba_buf_str(&tmp));
		ba_err_set(err, EX_IOERR, "cannot write '%s': %s", ba_buf_str(&tmp), ba_strerror_t(e));
		goto out;
	}
	close(fd);
	if (rename(ba_buf_str(&tmp), path) < 0) {
		e = errno;
		unlink(ba_buf_str(&tmp));
		ba_err_set(err, EX_CANTCREAT, "cannot rename '%s' to '%s': %s", ba_buf_str(&tmp), path,
		           ba_strerror_t(e));
		goto out;
	}
	/* the rename itself is durable once the directory is synced */
	const char *slash = strrchr(path, '/');
	if (slash) {
		ba_buf_reset(&tmp);
		ba_buf_add(&tmp, path, (size_t)(slash - path));
		int dfd = ba_buf_failed(&tmp)
		                  ? -1
		                  : open(ba_buf_str(&tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	rc = 0;
out:
	ba_buf_release(&tmp);
	return rc;
}

static int cancelled(const struct fd_stream *s, struct ba_err *err)
{
	return ba_err_cancel(err, "%s: cancelled", s->name);
}

/*
 * Waits for fd to become ready for events before deadline, or for the
 * cancel descriptor to become readable (in the same poll, so a stalled
 * peer cannot delay a cancel).  A write waiting calls the wait hook every
 * wait_ms.  Returns 0, or -1 with err set.
 */
static int wait_fd(const struct fd_stream *s, int fd, short events, int64_t deadline,
                   struct ba_err *err)
{
	/* a writer waiting calls the wait hook at each interval */
	int hook = (events & POLLOUT) && s->wait_fn;
	for (;;) {
		int timeout = -1;
		if (deadline) {
			int64_t left = deadline - ba_now_ms();
			if (left <= 0)
				return ba_err_set(err, EX_TEMPFAIL, "%s: timed out", s->name);
			timeout = left > 60000 ? 60000 : (int)left;
		}
		if (hook && (timeout < 0 || timeout > s->wait_ms))
			timeout = s->wait_ms;
		struct pollfd pfd[2] = { { fd, events, 0 }, { s->cancel_fd, POLLIN, 0 } };
		int r = poll(pfd, s->cancel_fd >= 0 ? 2 : 1, timeout);
		if (r > 0 && s->cancel_fd >= 0 && pfd[1].revents)
			return cancelled(s, err);
		if (r > 0)
			return 0;
		if (r == 0 && hook)
			s->wait_fn(s->wait_ctx, s->wait_done, s->wait_len);
		if (r < 0 && errno != EINTR)
			return ba_err_set(err, EX_IOERR, "%s: poll: %s", s->name, ba_strerror_t(errno));
	}
}

static ssize_t fd_stream_read(ba_stream *base, void *p, size_t n, int64_t deadline,
                              struct ba_err *err)
{
	struct fd_stream *s = (struct fd_stream *)base;
	if (ba_cancel_pending(s->cancel_fd))
		return cancelled(s, err);
	for (;;) {
		ssize_t k = read(s->rfd, p, n);
		if (k >= 0)
			return k;
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return ba_err_set(err, EX_IOERR, "%s: connection reset by peer", s->name);
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ba_err_set(err, EX_IOERR, "%s: read: %s", s->name, ba_strerror_t(errno));
		if (wait_fd(s, s->rfd, POLLIN, deadline, err) < 0)
			return -1;
	}
}

static int fd_stream_write(ba_stream *base, const void *p, size_t n, int64_t deadline,
                           struct ba_err *err)
{
	struct fd_stream *s = (struct fd_stream *)base;
	const unsigned char *q = p;
	if (ba_cancel_pending(s->cancel_fd))
		return cancelled(s, err);
	s->wait_len = n;
	s->wait_done = 0;
	while (n) {
		/* a socket peer that went away must give EPIPE, not kill the process */
		ssize_t k = s->is_sock ? send(s->wfd, q, n, MSG_NOSIGNAL) : write(s->wfd, q, n);
		if (k >= 0) {
			q += k;
			n -= (size_t)k;
			s->wait_done += (size_t)k;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ba_err_set(err, EX_IOERR, "%s: write: %s", s->name, ba_strerror_t(errno));
		if (wait_fd(s, s->wfd, POLLOUT, deadline, err) < 0)
			return -1;
	}
	return 0;
}

static void fd_stream_free(ba_stream *base)
{
	struct fd_stream *s = (struct fd_stream *)base;
	close(s->rfd);
	if (s->wfd != s->rfd)
		close(s->wfd);
	free(s);
}

static int fd_stream_set_cancel(ba_stream *base, int fd)
{
	((struct fd_stream *)base)->cancel_fd = fd < 0 ? -1 : fd;
	return 0;
}

static int fd_stream_set_wait_hook(ba_stream *base, ba_stream_wait_fn *fn, void *ctx,
                                   int interval_ms)
{
	struct fd_stream *s = (struct fd_stream *)base;
	s->wait_fn = fn;
	s->wait_ctx = ctx;
	s->wait_ms = interval_ms > 0 ? interval_ms : 100;
	return 0;
}

/*
 * A TCP socket's send queue: the bytes not yet acknowledged by the peer
 * (SIOCOUTQ).  Not for a unix socket, where the figure is the memory its
 * buffers take (a quarter more than the bytes): 0, not known.
 */
static uint64_t fd_stream_unsent(ba_stream *base)
{
	struct fd_stream *s = (struct fd_stream *)base;
#ifdef SIOCOUTQ
	int q = 0;
	if (s->is_tcp && ioctl(s->wfd, SIOCOUTQ, &q) == 0 && q > 0)
		return (uint64_t)q;
#else
	(void)s;
#endif
	return 0;
}

static int fd_stream_readable(ba_stream *base, int timeout_ms)
{
	struct fd_stream *s = (struct fd_stream *)base;
	struct pollfd p = { s->rfd, POLLIN, 0 };
	int r = poll(&p, 1, timeout_ms);
	return r != 0; /* ready, or a poll error a read will report */
}

static const struct ba_stream_ops fd_stream_ops = { fd_stream_read, fd_stream_write, NULL,
	                                            fd_stream_free, fd_stream_set_cancel,
	                                            fd_stream_unsent, fd_stream_readable,
	                                            fd_stream_set_wait_hook };

ba_stream *ba_fd_stream_new(int rfd, int wfd, const char *name)
{
	struct fd_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		close(rfd);
		if (wfd != rfd)
			close(wfd);
		return NULL;
	}
	s->base.ops = &fd_stream_ops;
	s->rfd = rfd;
	s->wfd = wfd;
	s->cancel_fd = -1;
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "connection");
	fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
	fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
	struct stat st;
	s->is_sock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	s->is_tcp = s->is_sock && getsockname(wfd, (struct sockaddr *)&sa, &salen) == 0 &&
	            (sa.ss_family == AF_INET || sa.ss_family == AF_INET6);
	return &s->base;
}

int ba_fd_stream_fd(ba_stream *s)
{
	return s && s->ops == &fd_stream_ops ? ((struct fd_stream *)s)->rfd : -1;
}

void ba_stream_free(ba_stream *s)
{
	if (s)
		s->ops->free(s);
}
