/* bluearrow/io.h - reader, writer and stream interfaces; fd and memory implementations
 *
 * Everything that moves bytes in core does it through these small vtables so
 * that encoders, the MIME writer and the SMTP engine stream: no stage holds a
 * whole message or attachment.  An implementation embeds the base struct as
 * its first member and points it at its ops table.
 *
 * Deadlines are absolute times on the monotonic clock in milliseconds (see
 * ba_now_ms()); 0 means "no deadline".  A deadline rather than a timeout per
 * read means a peer trickling one byte at a time cannot stretch an exchange.
 */
#ifndef BLUEARROW_IO_H
#define BLUEARROW_IO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"

/* Monotonic clock in milliseconds. */
int64_t ba_now_ms(void);
/* ba_now_ms() + timeout_ms, or 0 (no deadline) when timeout_ms <= 0. */
int64_t ba_deadline(int timeout_ms);

/*
 * Creates an unlinked temporary file in $TMPDIR (or /tmp), open for reading
 * and writing: O_TMPFILE where the file system has it, else mkstemp() and
 * unlink(), so no partial file is ever visible under a name.  The caller
 * closes *fd.  Errors: EX_CANTCREAT naming the directory.
 */
int ba_tmpfile(int *fd, struct ba_err *err);

/* ---- readers ------------------------------------------------------------ */

typedef struct ba_reader ba_reader;
struct ba_reader_ops {
	/* Reads up to n (> 0) bytes into p.  Returns the count (> 0), 0 at end of input, -1 on error. */
	ssize_t (*read)(ba_reader *r, void *p, size_t n, struct ba_err *err);
};
struct ba_reader {
	const struct ba_reader_ops *ops;
};

static inline ssize_t ba_read(ba_reader *r, void *p, size_t n, struct ba_err *err)
{
	return r->ops->read(r, p, n, err);
}
/* Reads until n bytes or end of input; returns the count (< n only at end), -1 on error. */
ssize_t ba_read_full(ba_reader *r, void *p, size_t n, struct ba_err *err);

/* Reads from a file descriptor (not closed by the reader).  name is borrowed, used in errors. */
struct ba_fd_reader {
	ba_reader base;
	int fd;
	const char *name;
};
void ba_fd_reader_init(struct ba_fd_reader *r, int fd, const char *name);

/* Reads from memory (borrowed for the reader's life). */
struct ba_mem_reader {
	ba_reader base;
	const unsigned char *p;
	size_t len, off;
};
void ba_mem_reader_init(struct ba_mem_reader *r, const void *p, size_t len);

/*
 * Bounded line reader over a ba_reader.  ba_linereader_next() returns the
 * next piece of input of at most max bytes: a whole line including its LF
 * (and the CR before it, if any), or, when a line is longer than max, its
 * first max bytes (the piece does not end in LF; the rest follows as the
 * next piece), or the last unterminated line at end of input.  Memory use
 * is bounded by max.
 */
struct ba_linereader {
	ba_reader *in;
	unsigned char *buf;
	size_t size, start, end, max;
	int eof;
};
/* Allocates the buffer.  Returns 0, or -1 (EX_OSERR) on out of memory. */
int ba_linereader_init(struct ba_linereader *lr, ba_reader *in, size_t max, struct ba_err *err);
/* 1 with *line (borrowed until the next call) and *len set; 0 at end of input; -1 on error. */
int ba_linereader_next(struct ba_linereader *lr, const char **line, size_t *len, struct ba_err *err);
/* Bytes buffered but not yet returned, for a caller that switches to raw reading. */
size_t ba_linereader_buffered(const struct ba_linereader *lr, const char **p);
/*
 * The complete lines buffered now: the bytes up to and including the last
 * buffered LF (0 when there is none; no line is split at max here), not
 * consumed.  ba_linereader_skip() then consumes n <= that many, so a caller
 * can take many lines at once and call ba_linereader_next() (which reads
 * more) only when this gives 0.
 */
size_t ba_linereader_lines(const struct ba_linereader *lr, const char **p);
void ba_linereader_skip(struct ba_linereader *lr, size_t n);
void ba_linereader_release(struct ba_linereader *lr);

/* ---- writers ------------------------------------------------------------ */

typedef struct ba_writer ba_writer;
struct ba_writer_ops {
	/* Writes all n bytes (buffering allowed).  Returns 0 or -1. */
	int (*write)(ba_writer *w, const void *p, size_t n, struct ba_err *err);
	/* Pushes buffered bytes downstream.  May be NULL (nothing buffered). */
	int (*flush)(ba_writer *w, struct ba_err *err);
};
struct ba_writer {
	const struct ba_writer_ops *ops;
};

static inline int ba_write(ba_writer *w, const void *p, size_t n, struct ba_err *err)
{
	return n ? w->ops->write(w, p, n, err) : 0;
}
int ba_write_str(ba_writer *w, const char *s, struct ba_err *err);
int ba_flush(ba_writer *w, struct ba_err *err);

/* Buffered writer to a file descriptor (not closed).  name is borrowed, used in errors. */
#define BA_FD_WRITER_BUF 65536
struct ba_fd_writer {
	ba_writer base;
	int fd;
	const char *name;
	size_t len;
	unsigned char buf[BA_FD_WRITER_BUF];
};
void ba_fd_writer_init(struct ba_fd_writer *w, int fd, const char *name);

/* Appends to a ba_buf (borrowed); fails with EX_DATAERR when the buffer's cap is reached. */
struct ba_buf_writer {
	ba_writer base;
	struct ba_buf *buf;
};
void ba_buf_writer_init(struct ba_buf_writer *w, struct ba_buf *buf);

/* Counts bytes and discards them. */
struct ba_count_writer {
	ba_writer base;
	uint64_t count;
};
void ba_count_writer_init(struct ba_count_writer *w);

/* ---- streams (bidirectional: sockets, TLS sessions) --------------------- */

typedef struct ba_stream ba_stream;
/*
 * Called while a write waits for the peer to make room: done of the len
 * bytes the write was given have gone out so far.
 */
typedef void ba_stream_wait_fn(void *ctx, size_t done, size_t len);
struct ba_stream_ops {
	/*
	 * Reads what is available, at most n bytes, waiting no later than
	 * deadline.  Returns the count (> 0), 0 when the peer closed, -1 on
	 * error (EX_TEMPFAIL when the deadline passed, EX_IOERR otherwise).
	 */
	ssize_t (*read)(ba_stream *s, void *p, size_t n, int64_t deadline, struct ba_err *err);
	/* Writes all n bytes before deadline.  Returns 0 or -1 (as read). */
	int (*write)(ba_stream *s, const void *p, size_t n, int64_t deadline, struct ba_err *err);
	/* Bytes already received and readable without waiting (e.g. decrypted TLS data). May be NULL. */
	size_t (*pending)(ba_stream *s);
	/* Closes and frees.  */
	void (*free)(ba_stream *s);
	/* Watches a cancel descriptor (see ba_stream_set_cancel()).  May be NULL. */
	int (*set_cancel)(ba_stream *s, int fd);
	/*
	 * Bytes written that the peer has not acknowledged yet (a TCP socket's
	 * unsent and unacknowledged send queue; for TLS the ciphertext's, taken
	 * as plaintext bytes: the record overhead is under 1%).  May be NULL or
	 * return 0: not known (a pipe, a unix socket).
	 */
	uint64_t (*unsent)(ba_stream *s);
	/*
	 * Waits at most timeout_ms for something to read (data already
	 * buffered counts, and so do a close and an error: a read tells which);
	 * 1 when there is, 0 when not yet.  Nothing is read.  May be NULL: 1
	 * at once.
	 */
	int (*readable)(ba_stream *s, int timeout_ms);
	/* Calls a hook while a write waits (see ba_stream_set_wait_hook()).  May be NULL. */
	int (*set_wait_hook)(ba_stream *s, ba_stream_wait_fn *fn, void *ctx, int interval_ms);
};
struct ba_stream {
	const struct ba_stream_ops *ops;
};

static inline ssize_t ba_stream_read(ba_stream *s, void *p, size_t n, int64_t deadline,
                                     struct ba_err *err)
{
	return s->ops->read(s, p, n, deadline, err);
}
static inline int ba_stream_write(ba_stream *s, const void *p, size_t n, int64_t deadline,
                                  struct ba_err *err)
{
	return s->ops->write(s, p, n, deadline, err);
}
static inline size_t ba_stream_pending(ba_stream *s)
{
	return s->ops->pending ? s->ops->pending(s) : 0;
}
/* Bytes written that the peer has not acknowledged yet; 0 when the stream cannot tell. */
static inline uint64_t ba_stream_unsent(ba_stream *s)
{
	return s->ops->unsent ? s->ops->unsent(s) : 0;
}
/* 1 when something can be read within timeout_ms (see the op), else 0; reads nothing. */
static inline int ba_stream_readable(ba_stream *s, int timeout_ms)
{
	return s->ops->readable ? s->ops->readable(s, timeout_ms) : 1;
}
/* Closes and frees the stream; NULL is a no-op. */
void ba_stream_free(ba_stream *s);
/*
 * Cancellation: from now on every wait of the stream (the poll for the
 * socket in read and write) also watches fd (borrowed; typically the read
 * end of a pipe another thread writes a byte to), and every read or write
 * first checks it.  Once fd is readable, reads and writes fail at once,
 * however stalled the peer, with ba_err_cancel(): class EX_TEMPFAIL,
 * flag BA_ERR_CANCELLED, "cancelled".  The stream is not usable afterwards
 * (part of a write may have gone out): free it.  Nothing is read from fd,
 * so one byte cancels every stream watching it.  fd < 0 stops watching.
 * A TLS stream passes fd to the stream under it.  Returns 0, or -1 when the
 * stream cannot be cancelled (no set_cancel op).
 */
static inline int ba_stream_set_cancel(ba_stream *s, int fd)
{
	return s->ops->set_cancel ? s->ops->set_cancel(s, fd) : -1;
}
/*
 * While a write waits for room to write (a slow peer), calls fn(ctx, done,
 * len) about every interval_ms (> 0), from inside the write, in the
 * writing thread, e.g. to report progress from ba_stream_unsent(); fn must
 * not use the stream but for ba_stream_unsent().  The wait for the cancel
 * descriptor and the deadline are unchanged.  fn NULL stops.  A TLS stream
 * passes the hook to the stream under it, done and len counting its
 * plaintext.  Returns 0, or -1 when the stream has no such op.
 */
static inline int ba_stream_set_wait_hook(ba_stream *s, ba_stream_wait_fn *fn, void *ctx,
                                          int interval_ms)
{
	return s->ops->set_wait_hook ? s->ops->set_wait_hook(s, fn, ctx, interval_ms) : -1;
}
/* 1 when fd (>= 0) is readable now, i.e. a cancel was asked for; 0 otherwise. */
int ba_cancel_pending(int fd);

/*
 * Waits on cv (initialised with CLOCK_MONOTONIC) under mu until *done is set
 * (by another thread, under mu), the monotonic deadline (ba_now_ms()) passes,
 * or the cancel descriptor cfd (if >= 0) becomes readable.  A condition
 * variable cannot be polled with a descriptor, so with cfd the wait is cut
 * into slices of 20 ms.  Returns *done as it was seen last (1: answered).
 * Takes and releases mu itself.
 */
int ba_wait_done(pthread_mutex_t *mu, pthread_cond_t *cv, const int *done, int64_t deadline,
                 int cfd);

/*
 * Starts fn(arg) on a detached thread with every signal blocked (signals
 * stay with the calling thread).  Returns 0, or -1 when no thread could be
 * started (fn is then not called; arg stays the caller's).
 */
int ba_thread_detached(void *(*fn)(void *), void *arg);
/* As ba_thread_detached(), a thread to join: its id into *t.  Returns 0, or -1. */
int ba_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/*
 * Loads the shared library soname (dlopen(), RTLD_NOW | RTLD_LOCAL: nothing
 * else resolves against it) and its n symbols names[] into sym[], all or
 * nothing.  Returns the handle (kept for the life of the process), or NULL
 * when the library or any symbol is missing (nothing stays loaded).  A
 * caller copies each sym[i] into its typed function pointer with memcpy()
 * (POSIX dlsym() returns void *).
 */
void *ba_dl_open(const char *soname, const char *const *names, void **sym, size_t n);

/*
 * Work done on a detached thread that the caller may stop waiting for (a
 * name lookup, which cannot be interrupted, under the account's deadline).
 * Put it first in the request the thread works on.  The request is shared:
 * whoever is done with it last (the caller after ba_job_wait(), or a thread
 * that answers after the caller gave up) frees it, through free_fn.
 */
struct ba_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, done;
	void (*free_fn)(struct ba_job *j); /* frees the request (j's mutex and cv are gone) */
};
/*
 * Starts fn(j) on a detached thread (ba_thread_detached()).  Returns 0, or
 * -1 when no thread could be started: the request is then freed already.
 */
int ba_job_start(struct ba_job *j, void *(*fn)(void *), void (*free_fn)(struct ba_job *j));
/*
 * The thread's end: called with j->mu held, once its results are stored in
 * the request; marks j done, wakes the caller, releases j->mu and the
 * thread's share of the request.
 */
void ba_job_finish(struct ba_job *j);
/*
 * Waits for j as ba_wait_done() does (deadline, cancel descriptor cfd).
 * 1: done, and the results are the caller's to read (nobody writes them
 * any more); 0: not in time.  Either way the caller then calls
 * ba_job_release().
 */
int ba_job_wait(struct ba_job *j, int64_t deadline, int cfd);
/* Gives up the caller's share of the request. */
void ba_job_release(struct ba_job *j);

/*
 * Creates path and each missing directory above it with mode 0700 (as
 * `mkdir -p`), checking that each component is a directory.  Returns 0, or
 * -1 with EX_CANTCREAT naming the component that failed.
 */
int ba_mkdirs(const char *path, struct ba_err *err);

/*
 * Reads the private file path into out (its capacity caps the size).
 * Returns 1; 0 when it does not exist or is not safe to trust (a symlink,
 * not a regular file of ours, group or other permissions); -1 on an error
 * (EX_IOERR naming path; EX_DATAERR when it exceeds out's capacity).
 */
int ba_read_private(struct ba_buf *out, const char *path, struct ba_err *err);

/*
 * Replaces path with data atomically: a unique path.tmp.XXXXXX (0600) in the
 * same directory, fsync, rename, fsync of the directory.  Returns 0, or -1
 * (EX_CANTCREAT, EX_IOERR, EX_OSERR) with nothing partial left at path.
 */
int ba_write_private(const char *path, const struct ba_buf *data, struct ba_err *err);

/*
 * A stream over a connected file descriptor (socket, socketpair, pipe
 * pair).  Takes ownership of the descriptors: ba_stream_free() closes them
 * (once, if rfd == wfd).  The descriptors are made non-blocking.  Returns
 * NULL on out of memory (and closes the descriptors).
 */
ba_stream *ba_fd_stream_new(int rfd, int wfd, const char *name);
/* The descriptor of a stream made by ba_fd_stream_new(), or -1 for another kind. */
int ba_fd_stream_fd(ba_stream *s);

#endif
