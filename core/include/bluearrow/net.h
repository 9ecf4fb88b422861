/* bluearrow/net.h - connections with deadlines: TCP (IPv6/IPv4), unix sockets, SOCKS5 */
#ifndef BLUEARROW_NET_H
#define BLUEARROW_NET_H

#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/log.h"

struct ba_net_params {
	const char *host;        /* name or address literal; a path starting with '/' = unix socket */
	unsigned port;
	const char *source_ip;   /* optional local address to bind */
	const char *proxy_host;  /* optional SOCKS5 proxy (RFC 1928), no auth; the proxy resolves host */
	unsigned proxy_port;
	int timeout_ms;          /* connect deadline per address and for the proxy exchange; <= 0: 60 s */
	const struct ba_log *log; /* optional */
};

/*
 * Connects to p->host:p->port, trying every address getaddrinfo returns in
 * order until one answers, each within the timeout; with TCP_NODELAY set
 * (the engine batches its writes, so Nagle only adds delay).  On success
 * *out is a stream the caller frees with ba_stream_free().  Errors:
 * EX_NOHOST (name does not resolve), EX_TEMPFAIL (timeout, refused,
 * unreachable: every address failed; the text names the host, port and
 * the last reason), EX_OSERR, EX_PROTOCOL (SOCKS5 proxy refused).
 */
int ba_net_connect(ba_stream **out, const struct ba_net_params *p, struct ba_err *err);

#endif
