/* tests/helper/sink_server.h - for unit tests of large sends: a generated message and a sink
 *
 * gen_reader makes a message of lines of "x" as it is read (never held in
 * memory).  sink_server is a minimal SMTP peer in a thread that accepts one
 * connection, answers the envelope, then reads and discards the data while
 * watching for its end ("\r\n.\r\n"), which a cancelled send must never
 * produce.  Header-only (static functions), included by the tests that
 * use it; they link pthreads and cmocka.
 */
#ifndef BA_TEST_SINK_SERVER_H
#define BA_TEST_SINK_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/io.h"

#define GEN_LINE 79 /* 78 octets and LF */

static inline void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- the message: lines of "x", made as they are read ---- */

struct gen_reader {
	ba_reader base;
	uint64_t off, size;
};

static ssize_t gen_read(ba_reader *r, void *p, size_t n, struct ba_err *err)
{
	(void)err;
	struct gen_reader *g = (struct gen_reader *)r;
	if (g->off >= g->size)
		return 0;
	if (n > g->size - g->off)
		n = (size_t)(g->size - g->off);
	unsigned char *q = p;
	for (size_t i = 0; i < n; i++)
		q[i] = (g->off + i) % GEN_LINE == GEN_LINE - 1 ? '\n' : 'x';
	g->off += n;
	return (ssize_t)n;
}

static const struct ba_reader_ops gen_ops = { gen_read };

/* ---- the server: a minimal SMTP peer that discards the data ---- */

struct sink_server {
	int lfd;
	uint16_t port;
	pthread_t th;
	uint64_t data_bytes;
	int saw_end;      /* "\r\n.\r\n" arrived: the message would be complete */
	int saw_data;     /* 354 was sent */
	char fail[128];
};

static int read_line(int fd, char *buf, size_t max)
{
	size_t n = 0;
	while (n + 1 < max) {
		ssize_t k = read(fd, buf + n, 1);
		if (k <= 0)
			return -1;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return 0;
}

static void say(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) < 0)
		return;
}

static void *sink_server_main(void *arg)
{
	struct sink_server *sv = arg;
	int fd = accept(sv->lfd, NULL, NULL);
	if (fd < 0) {
		snprintf(sv->fail, sizeof sv->fail, "accept failed");
		return NULL;
	}
	char line[1024];
	say(fd, "220 mx.test ESMTP\r\n");
	while (!sv->saw_data && read_line(fd, line, sizeof line) == 0) {
		if (!strncmp(line, "EHLO", 4))
			say(fd, "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
		else if (!strncmp(line, "MAIL", 4) || !strncmp(line, "RCPT", 4))
			say(fd, "250 ok\r\n");
		else if (!strncmp(line, "DATA", 4)) {
			say(fd, "354 go ahead\r\n");
			sv->saw_data = 1;
		} else {
			say(fd, "502 unexpected\r\n");
		}
	}
	/* read and discard, watching for the end of the data across reads */
	static char buf[1 << 16];
	char tail[5] = { 0 };
	ssize_t k;
	while ((k = read(fd, buf, sizeof buf)) > 0) {
		sv->data_bytes += (uint64_t)k;
		for (ssize_t i = 0; i < k; i++) {
			memmove(tail, tail + 1, 4);
			tail[4] = buf[i];
			if (!memcmp(tail, "\r\n.\r\n", 5)) {
				sv->saw_end = 1;
				say(fd, "250 queued\r\n");
			}
		}
	}
	close(fd);
	return NULL;
}

static void sink_server_start(struct sink_server *sv)
{
	memset(sv, 0, sizeof *sv);
	sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(sv->lfd >= 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(sv->lfd, 1), 0);
	socklen_t al = sizeof a;
	assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&a, &al), 0);
	sv->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&sv->th, NULL, sink_server_main, sv), 0);
}

#endif
