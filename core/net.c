/* net.c - connections with deadlines: TCP (IPv6/IPv4), unix sockets, SOCKS5 (RFC 1928) */
#include "bluearrow/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#define NET_DEFAULT_TIMEOUT_MS 60000

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/*
 * Short reason for a connect errno, as the error text shows it.  The text
 * lives in a buffer of this thread that only this function writes, so a
 * pointer to it stays valid until the next call here.
 */
static const char *connect_reason(int e)
{
	static _Thread_local char buf[128];
	switch (e) {
	case ECONNREFUSED: return "connection refused";
	case ETIMEDOUT: return "timed out";
	case ENETUNREACH: return "network unreachable";
	case EHOSTUNREACH: return "host unreachable";
	default: return ba_strerror(e, buf, sizeof buf);
	}
}

/*
 * Non-blocking connect of fd to addr, finished before deadline.  Returns 0,
 * or an errno value (ETIMEDOUT when the deadline passed, ECANCELED when the
 * cancel descriptor cfd, if >= 0, became readable).
 */
static int connect_deadline(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline,
                            int cfd)
{
	set_nonblock(fd);
	if (connect(fd, addr, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return errno;
	for (;;) {
		int64_t left = deadline - ba_now_ms();
		if (left <= 0)
			return ETIMEDOUT;
		struct pollfd pfd[2] = { { fd, POLLOUT, 0 }, { cfd, POLLIN, 0 } };
		int r = poll(pfd, cfd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left);
		if (r < 0 && errno != EINTR)
			return errno;
		if (r > 0 && cfd >= 0 && pfd[1].revents)
			return ECANCELED;
		if (r > 0)
			break;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return errno;
	return soerr;
}

static int connect_unix(ba_stream **out, const struct ba_net_params *p, int timeout_ms, int cfd,
                        struct ba_err *err)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(p->host) >= sizeof(sun.sun_path))
		return ba_err_set(err, EX_CONFIG, "unix socket path too long: '%s'", p->host);
	memcpy(sun.sun_path, p->host, strlen(p->host) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ba_err_set(err, EX_OSERR, "cannot create socket: %s", ba_strerror_t(errno));
	int e = connect_deadline(fd, (struct sockaddr *)&sun, sizeof(sun), ba_deadline(timeout_ms),
	                         cfd);
	if (e) {
		close(fd);
		if (e == ECANCELED)
			return ba_err_cancel(err, "connecting to '%s': cancelled", p->host);
		return ba_err_set(err, EX_TEMPFAIL, "cannot connect to '%s': %s", p->host,
		                  connect_reason(e));
	}
	*out = ba_fd_stream_new(fd, fd, p->host);
	if (!*out)
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

/* Resolves source_ip (a numeric address) for binding to a socket of family. */
static int bind_source(int fd, int family, const char *source_ip, struct ba_err *err)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
	int r = getaddrinfo(source_ip, NULL, &hints, &res);
	if (r != 0)
		return ba_err_set(err, EX_CONFIG, "source address '%s' does not fit a %s connection",
		                  source_ip, family == AF_INET6 ? "IPv6" : "IPv4");
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
		int e = errno;
		freeaddrinfo(res);
		return ba_err_set(err, EX_OSERR, "cannot bind to source address '%s': %s", source_ip,
		                  ba_strerror_t(e));
	}
	freeaddrinfo(res);
	return 0;
}

/*
 * getaddrinfo() with a deadline.  The C library's resolver has its own
 * timeouts (resolv.conf: 5 s per server and attempt by default), which can
 * add up to far more than the account's timeout, and it cannot be
 * interrupted.  So a name that is not a numeric address is resolved in a
 * detached thread, and the caller waits for it until the deadline.  The
 * request is shared: whoever is done with it last (the caller, or a thread
 * that answers after the caller gave up) frees it.
 */
struct gai_req {
	struct ba_job job;       /* first: the request is the job */
	int rc, sys_errno;
	struct addrinfo hints, *res;
	char *host;
	char service[16];
};

static void gai_req_free(struct ba_job *j)
{
	struct gai_req *q = (struct gai_req *)j;
	if (q->res)
		freeaddrinfo(q->res);
	free(q->host);
	free(q);
}

static void *gai_thread(void *arg)
{
	struct gai_req *q = arg;
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(q->host, q->service, &q->hints, &res);
	int e = errno;
	pthread_mutex_lock(&q->job.mu);
	q->rc = rc;
	q->sys_errno = e;
	q->res = res;
	ba_job_finish(&q->job);
	return NULL;
}

/* A started gai_thread() for host:service, or NULL when none could be started. */
static struct gai_req *gai_begin(const char *host, const char *service,
                                 const struct addrinfo *hints)
{
	struct gai_req *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->host = strdup(host);
	if (!q->host) {
		free(q);
		return NULL;
	}
	q->hints = *hints;
	snprintf(q->service, sizeof(q->service), "%s", service);
	return ba_job_start(&q->job, gai_thread, gai_req_free) == 0 ? q : NULL;
}

/*
 * Resolves host:service like getaddrinfo(), giving up at deadline (0: none)
 * with EAI_AGAIN and *timed_out set.  *sys_errno is errno for EAI_SYSTEM.
 * Numeric addresses need no resolver and no thread.
 */
static int resolve_deadline(const char *host, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res, int64_t deadline, int cfd, int *timed_out,
                            int *sys_errno)
{
	*res = NULL;
	*timed_out = 0;
	struct addrinfo numeric = *hints;
	numeric.ai_flags |= AI_NUMERICHOST;
	int rc = getaddrinfo(host, service, &numeric, res);
	*sys_errno = errno;
	if (rc != EAI_NONAME)
		return rc;
	struct gai_req *q = deadline ? gai_begin(host, service, hints) : NULL;
	if (!q) {
		rc = getaddrinfo(host, service, hints, res);
		*sys_errno = errno;
		return rc;
	}
	if (ba_job_wait(&q->job, deadline, cfd)) {
		rc = q->rc;
		*sys_errno = q->sys_errno;
		*res = q->res;
		q->res = NULL;
	} else {
		rc = EAI_AGAIN;
		*timed_out = 1;
	}
	ba_job_release(&q->job);
	return rc;
}

/* Happy Eyeballs (RFC 8305 §5): the delay before the next address is tried, and how many. */
#define HE_DELAY_MS 250
#define HE_MAX 16

/*
 * The addresses in getaddrinfo's order (RFC 6724), the families interleaved
 * (RFC 8305 §4): the first address, then one of the other family, and so
 * on, the rest of one family at the end.  Returns how many are in out.
 */
static size_t he_order(struct addrinfo *res, struct addrinfo **out, size_t max)
{
	struct addrinfo *a[HE_MAX], *b[HE_MAX];
	size_t na = 0, nb = 0, n = 0;
	for (struct addrinfo *ai = res; ai && na + nb < max; ai = ai->ai_next) {
		if (ai->ai_family == res->ai_family)
			a[na++] = ai;
		else
			b[nb++] = ai;
	}
	for (size_t i = 0; i < na || i < nb; i++) {
		if (i < na)
			out[n++] = a[i];
		if (i < nb)
			out[n++] = b[i];
	}
	return n;
}

struct he_attempt {
	int fd;            /* -1: done (failed) */
	int64_t deadline;
	char addr[64];
};

/*
 * Starts a non-blocking connect to ai.  Returns 1 (in progress: *at filled),
 * 0 (connected at once: *at filled) or -1 (failed: *last says why, or
 * *bind_err for a source address that does not fit).
 */
static int he_start(struct he_attempt *at, const struct addrinfo *ai, const char *source_ip,
                    unsigned port, int timeout_ms, const struct ba_log *log, const char **last,
                    struct ba_err *bind_err)
{
	getnameinfo(ai->ai_addr, ai->ai_addrlen, at->addr, sizeof(at->addr), NULL, 0,
	            NI_NUMERICHOST);
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                ai->ai_protocol);
	if (fd < 0) {
		*last = connect_reason(errno);
		return -1;
	}
	if (source_ip && bind_source(fd, ai->ai_family, source_ip, bind_err) < 0) {
		ba_log(log, BA_LOG_DEBUG, "skipping %s: %s", at->addr, bind_err->text);
		close(fd);
		return -1;
	}
	ba_log(log, BA_LOG_DEBUG, "connecting to %s port %u", at->addr, port);
	at->fd = fd;
	at->deadline = ba_deadline(timeout_ms);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno == EINPROGRESS || errno == EINTR)
		return 1;
	*last = connect_reason(errno);
	ba_log(log, BA_LOG_DEBUG, "cannot connect to %s port %u: %s", at->addr, port, *last);
	close(fd);
	at->fd = -1;
	return -1;
}

/*
 * TCP connect to host:port.  The addresses are tried as RFC 8305 says: a new
 * one every HE_DELAY_MS while the earlier attempts go on (at once when one
 * fails), each with its own deadline of timeout_ms; the first connection
 * wins and the others are closed.  On success *fdp is a connected socket.
 */
/* The given addresses as an addrinfo list in given[] (no resolver): the first n of them. */
static struct addrinfo *given_list(struct addrinfo *ai, struct sockaddr_storage *ss,
                                   const struct ba_net_addr *addrs, size_t n, unsigned port)
{
	struct addrinfo *head = NULL, **tail = &head;
	for (size_t i = 0; i < n; i++) {
		memset(&ai[i], 0, sizeof(ai[i]));
		memset(&ss[i], 0, sizeof(ss[i]));
		if (addrs[i].family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss[i];
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)port);
			memcpy(&s4->sin_addr, addrs[i].addr, 4);
			ai[i].ai_addrlen = sizeof(*s4);
		} else if (addrs[i].family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss[i];
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)port);
			memcpy(&s6->sin6_addr, addrs[i].addr, 16);
			ai[i].ai_addrlen = sizeof(*s6);
		} else {
			continue;
		}
		ai[i].ai_family = addrs[i].family;
		ai[i].ai_socktype = SOCK_STREAM;
		ai[i].ai_protocol = IPPROTO_TCP;
		ai[i].ai_addr = (struct sockaddr *)(void *)&ss[i];
		*tail = &ai[i];
		tail = &ai[i].ai_next;
	}
	return head;
}

static int connect_tcp(int *fdp, const char *host, unsigned port, const struct ba_net_addr *addrs,
                       size_t naddrs, const char *source_ip, int timeout_ms, int cfd,
                       const struct ba_log *log, struct ba_err *err)
{
	struct addrinfo hints, *res = NULL;
	struct addrinfo given[HE_MAX];
	struct sockaddr_storage given_sa[HE_MAX];
	char service[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%u", port);
	if (naddrs) {
		/* the caller looked the name up: exactly those addresses, no resolver */
		res = given_list(given, given_sa, addrs, naddrs < HE_MAX ? naddrs : HE_MAX, port);
		if (!res)
			return ba_err_set(err, EX_NOHOST, "cannot connect to '%s': no usable address",
			                  host);
	} else {
		int timed_out, sys_errno;
		int r = resolve_deadline(host, service, &hints, &res, ba_deadline(timeout_ms), cfd,
		                         &timed_out, &sys_errno);
		if (ba_cancel_pending(cfd)) {
			freeaddrinfo(res);
			return ba_err_cancel(err, "resolving '%s': cancelled", host);
		}
		if (timed_out)
			return ba_err_set(err, EX_TEMPFAIL, "cannot resolve '%s': no answer within %d s",
			                  host, (timeout_ms + 999) / 1000);
		if (r == EAI_SYSTEM)
			return ba_err_set(err, EX_OSERR, "cannot resolve '%s': %s", host,
			                  ba_strerror_t(sys_errno));
		if (r == EAI_AGAIN)
			return ba_err_set(err, EX_TEMPFAIL, "cannot resolve '%s': %s", host,
			                  gai_strerror(r));
		if (r != 0)
			return ba_err_set(err, EX_NOHOST, "cannot resolve '%s': %s", host,
			                  gai_strerror(r));
	}

	struct addrinfo *list[HE_MAX];
	size_t nlist = he_order(res, list, HE_MAX), next = 0, nat = 0;
	struct he_attempt at[HE_MAX];
	const char *last = "no usable address";
	int attempts = 0, pending = 0, winner = -1;
	struct ba_err bind_err = BA_ERR_INIT;
	int64_t next_start = 0;
	int cancelled = 0;
	while (winner < 0 && !cancelled) {
		int64_t now = ba_now_ms();
		/* the next address: when its time has come, or nothing else is going on */
		while (next < nlist && (pending == 0 || now >= next_start)) {
			int k = he_start(&at[nat], list[next++], source_ip, port, timeout_ms, log, &last,
			                 &bind_err);
			if (k < 0)
				continue;
			attempts++;
			nat++;
			if (k == 0) {
				winner = (int)nat - 1;
				break;
			}
			pending++;
			next_start = now + HE_DELAY_MS;
			break;
		}
		if (winner >= 0 || pending == 0)
			break;
		/* wait for any attempt, until the next start or the first deadline */
		struct pollfd pfd[HE_MAX + 1];
		int idx[HE_MAX], npfd = 0;
		int64_t until = next < nlist ? next_start : INT64_MAX;
		for (size_t i = 0; i < nat; i++) {
			if (at[i].fd < 0)
				continue;
			pfd[npfd] = (struct pollfd){ at[i].fd, POLLOUT, 0 };
			idx[npfd++] = (int)i;
			if (at[i].deadline < until)
				until = at[i].deadline;
		}
		int64_t wait = until - now;
		/* the cancel descriptor last, in the same poll: a cancel ends the wait at once */
		pfd[npfd] = (struct pollfd){ cfd, POLLIN, 0 };
		if (poll(pfd, (nfds_t)npfd + (cfd >= 0), wait <= 0 ? 0 : wait > 60000 ? 60000
		                                                                  : (int)wait) < 0 &&
		    errno != EINTR) {
			last = connect_reason(errno);
			break;
		}
		if (cfd >= 0 && pfd[npfd].revents) {
			cancelled = 1;
			break;
		}
		now = ba_now_ms();
		for (int j = 0; j < npfd && winner < 0; j++) {
			struct he_attempt *a = &at[idx[j]];
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (pfd[j].revents) {
				if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
					soerr = errno;
				if (soerr == 0) {
					winner = idx[j];
					break;
				}
			} else if (now >= a->deadline) {
				soerr = ETIMEDOUT;
			} else {
				continue;
			}
			last = connect_reason(soerr);
			ba_log(log, BA_LOG_DEBUG, "cannot connect to %s port %u: %s", a->addr, port, last);
			close(a->fd);
			a->fd = -1;
			pending--;
			next_start = now; /* a failure starts the next address at once */
		}
	}
	for (size_t i = 0; i < nat; i++)
		if (at[i].fd >= 0 && (int)i != winner)
			close(at[i].fd);
	if (!naddrs)
		freeaddrinfo(res);
	if (cancelled) {
		if (winner >= 0)
			close(at[winner].fd);
		return ba_err_cancel(err, "connecting to '%s' port %u: cancelled", host, port);
	}
	if (winner >= 0) {
		int one = 1;
		setsockopt(at[winner].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		*fdp = at[winner].fd;
		return 0;
	}
	if (!attempts && bind_err.code) {
		if (err)
			*err = bind_err;
		return -1;
	}
	return ba_err_set(err, EX_TEMPFAIL, "cannot connect to '%s' port %u: %s", host, port, last);
}

/* RFC 1928 §6 reply codes. */
static const char *socks_reply_text(unsigned char rep)
{
	static const char *const text[] = {
		"succeeded",
		"general SOCKS server failure",
		"connection not allowed by ruleset",
		"network unreachable",
		"host unreachable",
		"connection refused",
		"TTL expired",
		"command not supported",
		"address type not supported",
	};
	return rep < sizeof(text) / sizeof(text[0]) ? text[rep] : "unknown reply code";
}

static int read_exact(ba_stream *s, void *p, size_t n, int64_t deadline, const char *what,
                      struct ba_err *err)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = ba_stream_read(s, (unsigned char *)p + got, n - got, deadline, err);
		if (k < 0)
			return ba_err_prefix(err, "%s: ", what);
		if (k == 0)
			return ba_err_set(err, EX_PROTOCOL, "%s: connection closed", what);
		got += (size_t)k;
	}
	return 0;
}

/*
 * SOCKS5 greeting and CONNECT (RFC 1928 §3, §4, §5, §6): to the address to
 * when given (ATYP 1 or 4), else to p->host as a DOMAINNAME.
 */
static int socks5_handshake(ba_stream *s, const struct ba_net_params *p,
                            const struct ba_net_addr *to, int timeout_ms, struct ba_err *err)
{
	char what[300];
	snprintf(what, sizeof(what), "SOCKS5 proxy '%s' port %u", p->proxy_host, p->proxy_port);
	int64_t deadline = ba_deadline(timeout_ms);
	size_t hlen = strlen(p->host);
	if (hlen == 0 || hlen > 255)
		return ba_err_set(err, EX_CONFIG, "host name '%s' cannot be sent to a SOCKS5 proxy",
		                  p->host);
	/* §3: version 5, one method, 0x00 = no authentication required */
	static const unsigned char hello[3] = { 5, 1, 0 };
	if (ba_stream_write(s, hello, sizeof(hello), deadline, err) < 0)
		return ba_err_prefix(err, "%s: ", what);
	unsigned char rep[4];
	if (read_exact(s, rep, 2, deadline, what, err) < 0)
		return -1;
	if (rep[0] != 5)
		return ba_err_set(err, EX_PROTOCOL, "%s: not a SOCKS5 server", what);
	if (rep[1] != 0)
		return ba_err_set(err, EX_PROTOCOL, "%s: requires authentication, which is not "
		                  "supported", what);
	/* §4: CONNECT, ATYP 3 = DOMAINNAME, so the proxy resolves the name; or the address */
	unsigned char req[4 + 1 + 255 + 2];
	size_t n = 0;
	req[n++] = 5;
	req[n++] = 1;
	req[n++] = 0;
	if (to) {
		size_t al = to->family == AF_INET6 ? 16 : 4;
		req[n++] = to->family == AF_INET6 ? 4 : 1;
		memcpy(req + n, to->addr, al);
		n += al;
	} else {
		req[n++] = 3;
		req[n++] = (unsigned char)hlen;
		memcpy(req + n, p->host, hlen);
		n += hlen;
	}
	req[n++] = (unsigned char)(p->port >> 8);
	req[n++] = (unsigned char)(p->port & 0xff);
	if (ba_stream_write(s, req, n, deadline, err) < 0)
		return ba_err_prefix(err, "%s: ", what);
	if (read_exact(s, rep, 4, deadline, what, err) < 0)
		return -1;
	if (rep[0] != 5)
		return ba_err_set(err, EX_PROTOCOL, "%s: malformed reply", what);
	if (rep[1] != 0) {
		int code = rep[1] == 4 || rep[1] == 5 || rep[1] == 6 || rep[1] == 3 ? EX_TEMPFAIL
		                                                                     : EX_PROTOCOL;
		return ba_err_set(err, code, "%s cannot connect to '%s' port %u: %s", what, p->host,
		                  p->port, socks_reply_text(rep[1]));
	}
	/* §6: skip BND.ADDR and BND.PORT */
	size_t skip;
	unsigned char buf[256 + 2];
	switch (rep[3]) {
	case 1: skip = 4 + 2; break;
	case 4: skip = 16 + 2; break;
	case 3:
		if (read_exact(s, buf, 1, deadline, what, err) < 0)
			return -1;
		skip = (size_t)buf[0] + 2;
		break;
	default: return ba_err_set(err, EX_PROTOCOL, "%s: malformed reply address", what);
	}
	return read_exact(s, buf, skip, deadline, what, err);
}

int ba_net_connect(ba_stream **out, const struct ba_net_params *p, struct ba_err *err)
{
	*out = NULL;
	if (!p->host || !*p->host)
		return ba_err_set(err, EX_CONFIG, "no host given");
	int timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : NET_DEFAULT_TIMEOUT_MS;
	int cfd = p->cancel_fd ? *p->cancel_fd : -1;
	if (ba_cancel_pending(cfd))
		return ba_err_cancel(err, "connecting to '%s': cancelled", p->host);
	if (p->host[0] == '/') {
		if (p->proxy_host)
			return ba_err_set(err, EX_CONFIG, "unix socket '%s' cannot be reached "
			                  "through a SOCKS5 proxy", p->host);
		if (connect_unix(out, p, timeout_ms, cfd, err) < 0)
			return -1;
		if (cfd >= 0)
			ba_stream_set_cancel(*out, cfd);
		return 0;
	}

	const char *chost = p->proxy_host ? p->proxy_host : p->host;
	unsigned cport = p->proxy_host ? p->proxy_port : p->port;
	/* "[2001:db8::1]" as URLs write it: getaddrinfo wants the bare literal */
	char bare[256];
	size_t hl = strlen(chost);
	if (hl > 2 && hl < sizeof(bare) && chost[0] == '[' && chost[hl - 1] == ']') {
		memcpy(bare, chost + 1, hl - 2);
		bare[hl - 2] = 0;
		chost = bare;
	}
	/* through a proxy with given addresses: one proxy connection per address, in turn */
	size_t rounds = p->proxy_host && p->naddrs ? p->naddrs : 1;
	for (size_t i = 0; i < rounds; i++) {
		int fd = -1;
		if (ba_cancel_pending(cfd))
			return ba_err_cancel(err, "connecting to '%s': cancelled", p->host);
		if (connect_tcp(&fd, chost, cport, p->proxy_host ? NULL : p->addrs,
		                p->proxy_host ? 0 : p->naddrs, p->source_ip, timeout_ms, cfd, p->log,
		                err) < 0) {
			if (p->proxy_host && !(err && (err->flags & BA_ERR_CANCELLED)))
				ba_err_prefix(err, "SOCKS5 proxy: ");
			return -1;
		}
		char name[300];
		snprintf(name, sizeof(name), "%s", p->host);
		ba_stream *s = ba_fd_stream_new(fd, fd, name);
		if (!s)
			return ba_err_set(err, EX_OSERR, "out of memory");
		if (cfd >= 0)
			ba_stream_set_cancel(s, cfd);
		if (p->proxy_host) {
			const struct ba_net_addr *to = p->naddrs ? &p->addrs[i] : NULL;
			ba_log(p->log, BA_LOG_DEBUG, "asking SOCKS5 proxy %s for %s port %u",
			       p->proxy_host, p->host, p->port);
			if (socks5_handshake(s, p, to, timeout_ms, err) < 0) {
				ba_stream_free(s);
				if (i + 1 < rounds && err && err->code == EX_TEMPFAIL &&
				    !(err->flags & BA_ERR_CANCELLED)) {
					ba_err_clear(err);
					continue;
				}
				return -1;
			}
		}
		*out = s;
		return 0;
	}
	return ba_err_set(err, EX_NOHOST, "cannot connect to '%s': no address", p->host);
}
