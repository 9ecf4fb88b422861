/* tests/unit/io.c - readers, line reader, writers, fd streams with deadlines */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_io__lines_and_pieces),
		cmocka_unit_test(test_io__line_reader_refills),
		cmocka_unit_test(test_io__buf_writer_cap),
		cmocka_unit_test(test_io__stream_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
