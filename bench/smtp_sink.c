/* bench/smtp_sink.c - a fast SMTP sink that speaks STARTTLS itself (GnuTLS), for bench/flush
 *
 *   bench-smtp-sink PORT [CERT KEY] [-chunking]
 *
 * Listens on 127.0.0.1:PORT, one forked process per connection.  Offers
 * PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES, with CERT and KEY also
 * STARTTLS, and after it AUTH PLAIN LOGIN (any credentials are accepted);
 * -chunking adds CHUNKING (BDAT).  Every command is accepted and the data
 * discarded.  Replies are collected while complete commands are buffered and
 * written when the input runs dry (one write per pipelined group), as a
 * pipelining server does; with TLS one record per write.  Postfix's
 * smtp-sink has no STARTTLS, and a TLS terminator in front of it (socat)
 * adds a process hop to every round trip: this sink measures the client.
 * Not a test server: no checks of command order or syntax.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_MAX (1 << 20)

struct conn {
	int fd;
	gnutls_session_t tls;
	char in[IN_MAX];
	size_t rs, re;
	char out[65536];
	size_t olen;
	int chunking, can_tls;
};

static gnutls_certificate_credentials_t creds;

static ssize_t conn_read(struct conn *c, void *p, size_t n)
{
	for (;;) {
		ssize_t k = c->tls ? gnutls_record_recv(c->tls, p, n) : read(c->fd, p, n);
		if (k >= 0)
			return k;
		if (c->tls ? (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) : errno == EINTR)
			continue;
		return -1;
	}
}

static int conn_flush(struct conn *c)
{
	size_t off = 0;
	while (off < c->olen) {
		ssize_t k = c->tls ? gnutls_record_send(c->tls, c->out + off, c->olen - off)
		                   : write(c->fd, c->out + off, c->olen - off);
		if (k < 0 && (c->tls ? (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
		                     : errno == EINTR))
			continue;
		if (k <= 0)
			return -1;
		off += (size_t)k;
	}
	c->olen = 0;
	return 0;
}

static int say(struct conn *c, const char *s)
{
	size_t n = strlen(s);
	if (c->olen + n > sizeof c->out && conn_flush(c) < 0)
		return -1;
	memcpy(c->out + c->olen, s, n);
	c->olen += n;
	return 0;
}

/* More input; replies collected so far go out first (the input ran dry). */
static int fill(struct conn *c)
{
	if (conn_flush(c) < 0)
		return -1;
	if (c->rs == c->re)
		c->rs = c->re = 0;
	else if (c->re == sizeof c->in) {
		memmove(c->in, c->in + c->rs, c->re - c->rs);
		c->re -= c->rs;
		c->rs = 0;
	}
	ssize_t k = conn_read(c, c->in + c->re, sizeof c->in - c->re);
	if (k <= 0)
		return -1;
	c->re += (size_t)k;
	return 0;
}

/* The next line without its CRLF, NUL-terminated in place; NULL at the end. */
static char *line(struct conn *c)
{
	for (;;) {
		char *lf = memchr(c->in + c->rs, '\n', c->re - c->rs);
		if (lf) {
			char *l = c->in + c->rs;
			c->rs = (size_t)(lf - c->in) + 1;
			if (lf > l && lf[-1] == '\r')
				lf--;
			*lf = '\0';
			return l;
		}
		if (fill(c) < 0)
			return NULL;
	}
}

/* Skips DATA content up to and including "\r\n.\r\n" (the DATA line's CRLF begins it). */
static int skip_data(struct conn *c)
{
	static const char end[] = "\r\n.\r\n";
	int m = 2;
	for (;;) {
		while (c->rs < c->re) {
			char ch = c->in[c->rs++];
			if (ch == end[m])
				m++;
			else
				m = ch == '\r' ? 1 : 0;
			if (m == 5)
				return 0;
		}
		if (fill(c) < 0)
			return -1;
	}
}

static int skip_bytes(struct conn *c, unsigned long n)
{
	while (n) {
		if (c->rs == c->re && fill(c) < 0)
			return -1;
		size_t k = c->re - c->rs < n ? c->re - c->rs : n;
		c->rs += k;
		n -= k;
	}
	return 0;
}

static int ehlo(struct conn *c)
{
	say(c, "250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n"
	       "250-ENHANCEDSTATUSCODES\r\n");
	if (c->chunking)
		say(c, "250-CHUNKING\r\n");
	if (c->can_tls && !c->tls)
		say(c, "250-STARTTLS\r\n");
	if (c->tls)
		say(c, "250-AUTH PLAIN LOGIN\r\n");
	return say(c, "250 SMTPUTF8\r\n");
}

static int starttls(struct conn *c)
{
	if (say(c, "220 2.0.0 ready\r\n") < 0 || conn_flush(c) < 0)
		return -1;
	c->rs = c->re = 0; /* RFC 3207 §4.2 (plaintext after the command is discarded) */
	gnutls_init(&c->tls, GNUTLS_SERVER);
	gnutls_set_default_priority(c->tls);
	gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, creds);
	gnutls_transport_set_int(c->tls, c->fd);
	int r;
	do
		r = gnutls_handshake(c->tls);
	while (r < 0 && !gnutls_error_is_fatal(r));
	return r < 0 ? -1 : 0;
}

static void serve(int fd, int chunking)
{
	static struct conn c;
	memset(&c, 0, sizeof c);
	c.fd = fd;
	c.chunking = chunking;
	c.can_tls = creds != NULL;
	say(&c, "220 sink.test ESMTP bench sink\r\n");
	char *l;
	while ((l = line(&c))) {
		int rc = 0;
		if (!strncasecmp(l, "EHLO", 4))
			rc = ehlo(&c);
		else if (!strncasecmp(l, "HELO", 4))
			rc = say(&c, "250 sink.test\r\n");
		else if (!strncasecmp(l, "STARTTLS", 8) && c.can_tls && !c.tls)
			rc = starttls(&c);
		else if (!strncasecmp(l, "AUTH LOGIN", 10)) {
			say(&c, "334 VXNlcm5hbWU6\r\n");
			if (!line(&c))
				break;
			say(&c, "334 UGFzc3dvcmQ6\r\n");
			if (!line(&c))
				break;
			rc = say(&c, "235 2.7.0 ok\r\n");
		} else if (!strncasecmp(l, "AUTH PLAIN", 10)) {
			if (!l[10] || !l[11]) {
				say(&c, "334 \r\n");
				if (!line(&c))
					break;
			}
			rc = say(&c, "235 2.7.0 ok\r\n");
		} else if (!strncasecmp(l, "MAIL", 4))
			rc = say(&c, "250 2.1.0 ok\r\n");
		else if (!strncasecmp(l, "RCPT", 4))
			rc = say(&c, "250 2.1.5 ok\r\n");
		else if (!strncasecmp(l, "DATA", 4)) {
			if (say(&c, "354 go ahead\r\n") < 0 || skip_data(&c) < 0)
				break;
			rc = say(&c, "250 2.0.0 ok: queued\r\n");
		} else if (!strncasecmp(l, "BDAT ", 5)) {
			char *end;
			unsigned long n = strtoul(l + 5, &end, 10);
			if (skip_bytes(&c, n) < 0)
				break;
			rc = say(&c, strcasestr(end, "LAST") ? "250 2.0.0 ok: queued\r\n"
			                                      : "250 2.0.0 ok\r\n");
		} else if (!strncasecmp(l, "QUIT", 4)) {
			say(&c, "221 2.0.0 bye\r\n");
			conn_flush(&c);
			break;
		} else
			rc = say(&c, "250 2.0.0 ok\r\n"); /* RSET, NOOP ... */
		if (rc < 0)
			break;
	}
	if (c.tls) {
		gnutls_bye(c.tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c.tls);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	int chunking = 0;
	const char *cert = NULL, *key = NULL;
	int nargs = 0;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "-chunking"))
			chunking = 1;
		else if (nargs++ == 0)
			cert = argv[i];
		else
			key = argv[i];
	}
	if (argc < 2 || (cert && !key)) {
		fprintf(stderr, "usage: bench-smtp-sink PORT [CERT KEY] [-chunking]\n");
		return 64;
	}
	gnutls_global_init();
	if (cert) {
		gnutls_certificate_allocate_credentials(&creds);
		int r = gnutls_certificate_set_x509_key_file(creds, cert, key, GNUTLS_X509_FMT_PEM);
		if (r < 0) {
			fprintf(stderr, "bench-smtp-sink: %s: %s\n", cert, gnutls_strerror(r));
			return 66;
		}
	}
	signal(SIGCHLD, SIG_IGN);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)strtoul(argv[1], NULL, 10));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 64) < 0) {
		perror("bench-smtp-sink: bind");
		return 71;
	}
	for (;;) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		pid_t pid = fork();
		if (pid == 0) {
			close(l);
			serve(fd, chunking);
			_exit(0);
		}
		close(fd);
	}
}
