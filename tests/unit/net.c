/* tests/unit/net.c - ba_net_connect against loopback listeners, unix sockets, a SOCKS5 server */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bluearrow/net.h"

/* A listening TCP socket on addr (IPv4 or IPv6 literal), port 0; *port gets the port. */
static int listen_on(const char *addr, unsigned *port, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			return -1;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s4->sin_addr);
		len = sizeof(*s4);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Sends and receives one message each way over s and the accepted peer fd. */
static void exchange(ba_stream *s, int peer)
{
	struct ba_err err = BA_ERR_INIT;
	char buf[32];
	assert_int_equal(ba_stream_write(s, "ping", 4, ba_deadline(2000), &err), 0);
	assert_int_equal(read(peer, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(write(peer, "pong", 4), 4);
	assert_int_equal(ba_stream_read(s, buf, sizeof(buf), ba_deadline(2000), &err), 4);
	assert_memory_equal(buf, "pong", 4);
}

static void test_net__tcp_ipv4_with_nodelay(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	assert_true(lfd >= 0);
	struct ba_net_params p = { .host = "127.0.0.1", .port = port, .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	int fd = ba_fd_stream_fd(s);
	int one = 0;
	socklen_t sl = sizeof(one);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, &sl), 0);
	assert_int_equal(one, 1);
	int peer = accept(lfd, NULL, NULL);
	assert_true(peer >= 0);
	exchange(s, peer);
	ba_stream_free(s);
	close(peer);
	close(lfd);
}

/* A peer that went away gives an error, not SIGPIPE (the stream writes with MSG_NOSIGNAL). */
static void test_net__write_to_closed_peer(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	struct ba_net_params p = { .host = "127.0.0.1", .port = port, .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	close(accept(lfd, NULL, NULL));
	char buf[4096] = { 0 };
	int r = 0;
	for (int i = 0; i < 100 && r == 0; i++) {
		r = ba_stream_write(s, buf, sizeof(buf), ba_deadline(2000), &err);
		usleep(1000);
	}
	assert_int_equal(r, -1);
	assert_int_equal(err.code, EX_IOERR);
	ba_stream_free(s);
	close(lfd);
}

static void test_net__tcp_ipv6(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("::1", &port, 5);
	if (lfd < 0)
		skip();
	struct ba_net_params p = { .host = "::1", .port = port, .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	int peer = accept(lfd, NULL, NULL);
	exchange(s, peer);
	ba_stream_free(s);
	close(peer);
	/* the bracketed form of URLs */
	p.host = "[::1]";
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	peer = accept(lfd, NULL, NULL);
	exchange(s, peer);
	ba_stream_free(s);
	close(peer);
	close(lfd);
}

/* "localhost" may resolve to ::1 first: a refused address must not stop the loop. */
static void test_net__tries_every_address(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	assert_true(lfd >= 0);
	struct ba_net_params p = { .host = "localhost", .port = port, .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	int peer = accept(lfd, NULL, NULL);
	exchange(s, peer);
	ba_stream_free(s);
	close(peer);
	close(lfd);
}

/* Given addresses: no resolution (the name does not exist), each tried in turn. */
static void test_net__given_addresses(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	assert_true(lfd >= 0);
	struct ba_net_addr a[2] = { { AF_INET, { 127, 0, 0, 2 } }, { AF_INET, { 127, 0, 0, 1 } } };
	struct ba_net_params p = { .host = "mx.nowhere.invalid", .port = port, .timeout_ms = 2000,
		                   .addrs = a, .naddrs = 2 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	int peer = accept(lfd, NULL, NULL);
	exchange(s, peer);
	ba_stream_free(s);
	close(peer);
	/* only refusing addresses: the host is named, no resolver error */
	p.naddrs = 1;
	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_non_null(strstr(err.text, "cannot connect to 'mx.nowhere.invalid' port"));
	close(lfd);
}

static void test_net__refused_names_host_and_port(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	close(lfd); /* nothing listens there now */
	struct ba_net_params p = { .host = "127.0.0.1", .port = port, .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_null(s);
	assert_int_equal(err.code, EX_TEMPFAIL);
	char want[128];
	snprintf(want, sizeof(want), "cannot connect to '127.0.0.1' port %u: connection refused",
	         port);
	assert_string_equal(err.text, want);
}

/* A listener whose backlog is full drops SYNs: the connect must time out on the deadline. */
static void test_net__timeout_on_full_backlog(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	int fill[8];
	for (int i = 0; i < 8; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(100000);
	struct ba_net_params p = { .host = "127.0.0.1", .port = port, .timeout_ms = 300 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	int64_t t0 = ba_now_ms();
	int r = ba_net_connect(&s, &p, &err);
	int64_t took = ba_now_ms() - t0;
	for (int i = 0; i < 8; i++)
		close(fill[i]);
	close(lfd);
	assert_int_equal(r, -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_non_null(strstr(err.text, "timed out"));
	assert_true(took >= 250 && took < 1500);
}

static void test_net__source_ip(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	struct ba_net_params p = { .host = "127.0.0.1", .port = port, .source_ip = "127.0.0.2",
		                   .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	struct sockaddr_in peer_addr;
	socklen_t len = sizeof(peer_addr);
	int peer = accept(lfd, (struct sockaddr *)&peer_addr, &len);
	char a[32];
	inet_ntop(AF_INET, &peer_addr.sin_addr, a, sizeof(a));
	assert_string_equal(a, "127.0.0.2");
	ba_stream_free(s);
	close(peer);

	/* an IPv4 source cannot serve an IPv6 destination */
	p.host = "::1";
	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "127.0.0.2"));
	close(lfd);
}

static void test_net__unresolvable_host(void **state)
{
	(void)state;
	/* RFC 2606: .invalid never resolves */
	struct ba_net_params p = { .host = "no-such-host.invalid", .port = 25, .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_true(err.code == EX_NOHOST || err.code == EX_TEMPFAIL);
	assert_non_null(strstr(err.text, "'no-such-host.invalid'"));
}

static void test_net__unix_socket(void **state)
{
	(void)state;
	char dir[] = "/tmp/ba-net-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/sock", dir);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 5), 0);
	struct ba_net_params p = { .host = path, .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	int peer = accept(lfd, NULL, NULL);
	exchange(s, peer);
	ba_stream_free(s);
	close(peer);
	close(lfd);
	unlink(path);

	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	char want[200];
	snprintf(want, sizeof(want), "cannot connect to '%s': No such file or directory", path);
	assert_string_equal(err.text, want);
	rmdir(dir);
}

/* ---- SOCKS5 ---- */

static int read_n(int fd, unsigned char *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, p + got, n - got);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

/*
 * A one-connection SOCKS5 server (child process): checks the no-auth
 * greeting and a CONNECT to DOMAINNAME want:wport, replies rep, then echoes
 * one message.  Exit status 0 if the client's requests were as expected.
 */
static pid_t socks_server(int lfd, const char *want, unsigned wport, unsigned char rep)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int c = accept(lfd, NULL, NULL);
	unsigned char b[600];
	if (c < 0 || read_n(c, b, 3) < 0 || b[0] != 5 || b[1] != 1 || b[2] != 0)
		_exit(10);
	if (write(c, "\x05\x00", 2) != 2)
		_exit(11);
	if (read_n(c, b, 5) < 0 || b[0] != 5 || b[1] != 1 || b[2] != 0 || b[3] != 3)
		_exit(12);
	size_t hl = b[4];
	if (read_n(c, b + 5, hl + 2) < 0)
		_exit(13);
	if (hl != strlen(want) || memcmp(b + 5, want, hl) != 0)
		_exit(14);
	if (((unsigned)b[5 + hl] << 8 | b[6 + hl]) != wport)
		_exit(15);
	/* reply with a DOMAINNAME bound address, the longest form to skip */
	unsigned char r[] = { 5, rep, 0, 3, 4, 'b', 'n', 'd', 'x', 0x12, 0x34 };
	if (write(c, r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(16);
	if (rep != 0)
		_exit(0);
	ssize_t k = read(c, b, sizeof(b));
	if (k <= 0 || write(c, b, (size_t)k) != k)
		_exit(17);
	_exit(0);
}

static void test_net__socks5_domainname(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	pid_t pid = socks_server(lfd, "mail.example.test", 587, 0);
	struct ba_net_params p = { .host = "mail.example.test", .port = 587,
		                   .proxy_host = "127.0.0.1", .proxy_port = port,
		                   .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	char buf[16];
	assert_int_equal(ba_stream_write(s, "EHLO", 4, ba_deadline(2000), &err), 0);
	assert_int_equal(ba_stream_read(s, buf, sizeof(buf), ba_deadline(2000), &err), 4);
	assert_memory_equal(buf, "EHLO", 4);
	ba_stream_free(s);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(lfd);
}

/* A SOCKS5 server that wants CONNECT to 192.0.2.7:25 as an IPv4 address (ATYP 1), then echoes. */
static pid_t socks_server_ipv4(int lfd)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int c = accept(lfd, NULL, NULL);
	unsigned char b[64];
	if (c < 0 || read_n(c, b, 3) < 0 || write(c, "\x05\x00", 2) != 2)
		_exit(10);
	static const unsigned char want[] = { 5, 1, 0, 1, 192, 0, 2, 7, 0, 25 };
	if (read_n(c, b, sizeof(want)) < 0 || memcmp(b, want, sizeof(want)) != 0)
		_exit(12);
	unsigned char r[] = { 5, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
	if (write(c, r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(16);
	ssize_t k = read(c, b, sizeof(b));
	if (k <= 0 || write(c, b, (size_t)k) != k)
		_exit(17);
	_exit(0);
}

static void test_net__socks5_given_address(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	pid_t pid = socks_server_ipv4(lfd);
	struct ba_net_addr a = { AF_INET, { 192, 0, 2, 7 } };
	struct ba_net_params p = { .host = "mx.example.test", .port = 25, .proxy_host = "127.0.0.1",
		                   .proxy_port = port, .timeout_ms = 2000, .addrs = &a, .naddrs = 1 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), 0);
	char buf[16];
	assert_int_equal(ba_stream_write(s, "EHLO", 4, ba_deadline(2000), &err), 0);
	assert_int_equal(ba_stream_read(s, buf, sizeof(buf), ba_deadline(2000), &err), 4);
	ba_stream_free(s);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(lfd);
}

static void test_net__socks5_refused_reply(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	pid_t pid = socks_server(lfd, "mx.example.test", 25, 5);
	struct ba_net_params p = { .host = "mx.example.test", .port = 25,
		                   .proxy_host = "127.0.0.1", .proxy_port = port,
		                   .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	char want[200];
	snprintf(want, sizeof(want), "SOCKS5 proxy '127.0.0.1' port %u cannot connect to "
	         "'mx.example.test' port 25: connection refused", port);
	assert_string_equal(err.text, want);
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(WEXITSTATUS(status), 0);

	/* a ruleset refusal is not temporary */
	pid = socks_server(lfd, "mx.example.test", 25, 2);
	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_int_equal(err.code, EX_PROTOCOL);
	assert_non_null(strstr(err.text, "connection not allowed by ruleset"));
	waitpid(pid, &status, 0);
	assert_int_equal(WEXITSTATUS(status), 0);
	close(lfd);
}

static void test_net__socks5_proxy_down(void **state)
{
	(void)state;
	unsigned port;
	int lfd = listen_on("127.0.0.1", &port, 5);
	close(lfd);
	struct ba_net_params p = { .host = "mx.example.test", .port = 25,
		                   .proxy_host = "127.0.0.1", .proxy_port = port,
		                   .timeout_ms = 2000 };
	struct ba_err err = BA_ERR_INIT;
	ba_stream *s = NULL;
	assert_int_equal(ba_net_connect(&s, &p, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	assert_non_null(strstr(err.text, "SOCKS5 proxy: cannot connect to '127.0.0.1'"));
}

struct later {
	int fd, ms;
};
static void *write_later(void *arg)
{
	struct later *l = arg;
	usleep((useconds_t)l->ms * 1000);
	if (write(l->fd, "c", 1) != 1)
		return arg;
	return NULL;
}

/* Runs ba_net_connect(p) while another thread cancels after ms; returns how long it took. */
static int64_t connect_cancelled(struct ba_net_params *p, int ms, struct ba_err *err)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	p->cancel_fd = &pfd[0];
	struct later l = { pfd[1], ms };
	pthread_t th;
	if (ms == 0) /* cancelled before the call */
		assert_int_equal(write(pfd[1], "c", 1), 1);
	else
		assert_int_equal(pthread_create(&th, NULL, write_later, &l), 0);
	ba_stream *s = NULL;
	int64_t t0 = ba_now_ms();
	int r = ba_net_connect(&s, p, err);
	int64_t took = ba_now_ms() - t0;
	if (ms != 0)
		pthread_join(th, NULL);
	close(pfd[0]);
	close(pfd[1]);
	p->cancel_fd = NULL;
	assert_int_equal(r, -1);
	assert_null(s);
	assert_int_equal(err->code, EX_TEMPFAIL);
	assert_true(err->flags & BA_ERR_CANCELLED);
	assert_non_null(strstr(err->text, "cancelled"));
	return took;
}

/* A cancel descriptor stops a connection attempt, and the SOCKS5 exchange, at once. */
static void test_net__cancel(void **state)
{
	(void)state;
	unsigned port;
	struct ba_err err = BA_ERR_INIT;
	/* already cancelled: no attempt at all */
	int lfd = listen_on("127.0.0.1", &port, 4);
	assert_true(lfd >= 0);
	struct ba_net_params p = { .host = "127.0.0.1", .port = port, .timeout_ms = 10000 };
	int64_t took = connect_cancelled(&p, 0, &err);
	assert_true(took < 1000);
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	int c = accept(lfd, NULL, NULL);
	if (c >= 0)
		close(c);
	close(lfd);
	/* a connect that would hang (full backlog, SYNs dropped) */
	lfd = listen_on("127.0.0.1", &port, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	int fill[8];
	for (int i = 0; i < 8; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(100000);
	p.port = port;
	ba_err_clear(&err);
	took = connect_cancelled(&p, 100, &err);
	assert_true(took >= 90 && took < 1000);
	assert_non_null(strstr(err.text, "connecting to '127.0.0.1'"));
	for (int i = 0; i < 8; i++)
		close(fill[i]);
	close(lfd);
	/* a SOCKS5 proxy that accepts the connection and never answers */
	lfd = listen_on("127.0.0.1", &port, 4);
	assert_true(lfd >= 0);
	struct ba_net_params ps = { .host = "mx.example.test", .port = 25, .proxy_host = "127.0.0.1",
		                    .proxy_port = port, .timeout_ms = 10000 };
	ba_err_clear(&err);
	took = connect_cancelled(&ps, 100, &err);
	assert_true(took >= 90 && took < 1000);
	assert_non_null(strstr(err.text, "SOCKS5"));
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_net__tcp_ipv4_with_nodelay),
		cmocka_unit_test(test_net__write_to_closed_peer),
		cmocka_unit_test(test_net__tcp_ipv6),
		cmocka_unit_test(test_net__tries_every_address),
		cmocka_unit_test(test_net__given_addresses),
		cmocka_unit_test(test_net__refused_names_host_and_port),
		cmocka_unit_test(test_net__timeout_on_full_backlog),
		cmocka_unit_test(test_net__source_ip),
		cmocka_unit_test(test_net__unresolvable_host),
		cmocka_unit_test(test_net__unix_socket),
		cmocka_unit_test(test_net__socks5_domainname),
		cmocka_unit_test(test_net__socks5_given_address),
		cmocka_unit_test(test_net__socks5_refused_reply),
		cmocka_unit_test(test_net__socks5_proxy_down),
		cmocka_unit_test(test_net__cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
