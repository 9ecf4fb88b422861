/* tests/unit/io.c - readers, line reader, writers, fd streams with deadlines */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/io.h"

/* A reader that hands out one byte per call, to exercise refills. */
struct trickle_reader {
	ba_reader base;
	const char *p;
	size_t len, off;
};
static ssize_t trickle_read(ba_reader *base, void *p, size_t n, struct ba_err *err)
{
	struct trickle_reader *r = (struct trickle_reader *)base;
	(void)n;
	(void)err;
	if (r->off == r->len)
		return 0;
	memcpy(p, r->p + r->off++, 1);
	return 1;
}
static const struct ba_reader_ops trickle_ops = { trickle_read };

static void test_io__lines_and_pieces(void **state)
{
	(void)state;
	const char *in = "one\r\ntwo\nabcdefghij\nlast";
	struct ba_mem_reader mr;
	ba_mem_reader_init(&mr, in, strlen(in));
	struct ba_linereader lr;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_linereader_init(&lr, &mr.base, 6, &err), 0);
	const char *l;
	size_t n;
	const char *want[] = { "one\r\n", "two\n", "abcdef", "ghij\n", "last" };
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(ba_linereader_next(&lr, &l, &n, &err), 1);
		assert_int_equal(n, strlen(want[i]));
		assert_memory_equal(l, want[i], n);
	}
	assert_int_equal(ba_linereader_next(&lr, &l, &n, &err), 0);
	ba_linereader_release(&lr);
}

static void test_io__line_reader_refills(void **state)
{
	(void)state;
	const char *in = "a\nbb\n\nccc";
	struct trickle_reader tr = { { &trickle_ops }, in, strlen(in), 0 };
	struct ba_linereader lr;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_linereader_init(&lr, &tr.base, 100, &err), 0);
	const char *l;
	size_t n;
	const char *want[] = { "a\n", "bb\n", "\n", "ccc" };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(ba_linereader_next(&lr, &l, &n, &err), 1);
		assert_int_equal(n, strlen(want[i]));
		assert_memory_equal(l, want[i], n);
	}
	assert_int_equal(ba_linereader_next(&lr, &l, &n, &err), 0);
	ba_linereader_release(&lr);
}

static void test_io__buf_writer_cap(void **state)
{
	(void)state;
	struct ba_buf b;
	ba_buf_init(&b, 4);
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &b);
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_write_str(&w.base, "abc", &err), 0);
	assert_int_equal(ba_write_str(&w.base, "de", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_buf_release(&b);
}

static void test_io__stream_deadline(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ba_stream *s = ba_fd_stream_new(sv[0], sv[0], "peer");
	struct ba_err err = BA_ERR_INIT;
	char c;
	int64_t t0 = ba_now_ms();
	assert_int_equal(ba_stream_read(s, &c, 1, ba_deadline(100), &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_true(ba_now_ms() - t0 >= 90);
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(ba_stream_read(s, &c, 1, ba_deadline(1000), &err), 1);
	assert_int_equal(c, 'x');
	assert_int_equal(ba_stream_write(s, "yz", 2, 0, &err), 0);
	char two[2];
	assert_int_equal(read(sv[1], two, 2), 2);
	assert_memory_equal(two, "yz", 2);
	close(sv[1]);
	assert_int_equal(ba_stream_read(s, &c, 1, ba_deadline(1000), &err), 0);
	ba_stream_free(s);
}

/* A cancel descriptor stops a read or write the peer stalls, in the same poll. */
struct later {
	int fd;
	int ms;
};
static void *write_later(void *arg)
{
	struct later *l = arg;
	struct timespec ts = { 0, (long)l->ms * 1000000L };
	nanosleep(&ts, NULL);
	if (write(l->fd, "c", 1) != 1)
		return arg;
	return NULL;
}

static void test_io__stream_cancel(void **state)
{
	(void)state;
	int sv[2], pfd[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pipe(pfd), 0);
	ba_stream *s = ba_fd_stream_new(sv[0], sv[0], "peer");
	assert_int_equal(ba_stream_set_cancel(s, pfd[0]), 0);
	assert_int_equal(ba_cancel_pending(pfd[0]), 0);
	assert_int_equal(ba_cancel_pending(-1), 0);
	struct ba_err err = BA_ERR_INIT;
	char c;
	/* a read waiting for a silent peer (no deadline at all) ends when the cancel comes */
	struct later l = { pfd[1], 50 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, write_later, &l), 0);
	int64_t t0 = ba_now_ms();
	assert_int_equal(ba_stream_read(s, &c, 1, 0, &err), -1);
	int64_t took = ba_now_ms() - t0;
	pthread_join(th, NULL);
	assert_true(took >= 40 && took < 1000);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_true(err.flags & BA_ERR_CANCELLED);
	assert_string_equal(err.text, "peer: cancelled");
	assert_int_equal(ba_cancel_pending(pfd[0]), 1);
	/* once cancelled, a write fails at once even with room in the socket buffer */
	ba_err_clear(&err);
	assert_int_equal(ba_stream_write(s, "x", 1, 0, &err), -1);
	assert_true(err.flags & BA_ERR_CANCELLED);
	char buf[4];
	assert_int_equal(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), -1);
	/* ba_err_set() clears the flag */
	ba_err_set(&err, EX_IOERR, "x");
	assert_int_equal(err.flags, 0);
	/* without the descriptor the stream works again */
	assert_int_equal(ba_stream_set_cancel(s, -1), 0);
	assert_int_equal(ba_stream_write(s, "y", 1, 0, &err), 0);
	assert_int_equal(read(sv[1], buf, 1), 1);
	ba_stream_free(s);
	close(sv[1]);
	close(pfd[0]);
	close(pfd[1]);
}

/* A write waiting for room calls the wait hook at its interval, with what went out so far. */
struct waits {
	int calls;
	size_t done, len;
};
static void on_wait(void *ctx, size_t done, size_t len)
{
	struct waits *w = ctx;
	w->calls++;
	w->done = done;
	w->len = len;
}

static void test_io__stream_wait_hook(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ba_stream *s = ba_fd_stream_new(sv[0], sv[0], "peer");
	struct waits w = { 0, 0, 0 };
	assert_int_equal(ba_stream_set_wait_hook(s, on_wait, &w, 50), 0);
	size_t n = 8u << 20; /* more than the socket buffers take: nobody reads */
	char *big = calloc(1, n);
	assert_non_null(big);
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_stream_write(s, big, n, ba_deadline(400), &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_true(w.calls >= 4);
	assert_true(w.calls <= 10);
	assert_int_equal(w.len, n);
	assert_true(w.done > 0 && w.done < n);
	/* stopped: no more calls */
	assert_int_equal(ba_stream_set_wait_hook(s, NULL, NULL, 0), 0);
	int before = w.calls;
	assert_int_equal(ba_stream_write(s, big, n, ba_deadline(200), &err), -1);
	assert_int_equal(w.calls, before);
	free(big);
	close(sv[1]);
	ba_stream_free(s);
}

/* ba_strerror: the text of an errno value, thread-safe, truncated to the buffer. */
static void test_io__strerror(void **state)
{
	(void)state;
	char buf[64];
	assert_string_equal(ba_strerror(ENOENT, buf, sizeof buf), "No such file or directory");
	char small[8];
	assert_string_equal(ba_strerror(ENOENT, small, sizeof small), "No such");
	assert_non_null(strstr(ba_strerror(123456, buf, sizeof buf), "123456"));
	assert_string_equal(ba_strerror_t(EACCES), "Permission denied");
}

/* A TCP stream counts what its peer has not acknowledged; a pipe or unix socket cannot tell. */
static void test_io__stream_unsent(void **state)
{
	(void)state;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096, big = 1 << 20;
	setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)); /* the peer's window */
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	assert_int_equal(listen(l, 1), 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	int p = accept(l, NULL, NULL);
	assert_true(p >= 0);
	ba_stream *s = ba_fd_stream_new(c, c, "peer");
	assert_non_null(s);
	struct ba_err err = BA_ERR_INIT;
	static char buf[100000];
	memset(buf, 'u', sizeof(buf));
	assert_int_equal(ba_stream_unsent(s), 0);
	assert_int_equal(ba_stream_write(s, buf, sizeof(buf), ba_deadline(5000), &err), 0);
	uint64_t u = ba_stream_unsent(s);
	assert_true(u >= 50000 && u <= 100000); /* the peer's window took a few KB at most */
	size_t got = 0;
	while (got < sizeof(buf)) {
		ssize_t k = read(p, buf, sizeof(buf));
		assert_true(k > 0);
		got += (size_t)k;
	}
	for (int i = 0; i < 100 && ba_stream_unsent(s) > 0; i++)
		usleep(10000);
	assert_int_equal(ba_stream_unsent(s), 0);
	ba_stream_free(s);
	close(p);
	close(l);
	/* a unix socket and a pipe: not known */
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	s = ba_fd_stream_new(sp[0], sp[0], "unix");
	assert_int_equal(ba_stream_write(s, "x", 1, ba_deadline(5000), &err), 0);
	assert_int_equal(ba_stream_unsent(s), 0);
	ba_stream_free(s);
	close(sp[1]);
	int pp[2];
	assert_int_equal(pipe(pp), 0);
	s = ba_fd_stream_new(pp[0], pp[1], "pipe");
	assert_int_equal(ba_stream_write(s, "x", 1, ba_deadline(5000), &err), 0);
	assert_int_equal(ba_stream_unsent(s), 0);
	ba_stream_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_io__lines_and_pieces),
		cmocka_unit_test(test_io__line_reader_refills),
		cmocka_unit_test(test_io__buf_writer_cap),
		cmocka_unit_test(test_io__stream_deadline),
		cmocka_unit_test(test_io__stream_cancel),
		cmocka_unit_test(test_io__strerror),
		cmocka_unit_test(test_io__stream_unsent),
		cmocka_unit_test(test_io__stream_wait_hook),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
