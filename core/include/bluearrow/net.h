/* bluearrow/net.h - connections with deadlines: TCP (IPv6/IPv4), unix sockets, SOCKS5 */
#ifndef BLUEARROW_NET_H
#define BLUEARROW_NET_H

#include "bluearrow/err.h"
#include "bluearrow/io.h"
#include "bluearrow/log.h"

/* One address to connect to, as the DNS gives it (no name resolution). */
struct ba_net_addr {
	int family;              /* AF_INET or AF_INET6 */
	unsigned char addr[16];  /* network order: 4 bytes for AF_INET, 16 for AF_INET6 */
};

struct ba_net_params {
	const char *host;        /* name or address literal; a path starting with '/' = unix socket */
	unsigned port;
	const char *source_ip;   /* optional local address to bind (numeric literal) */
	const char *proxy_host;  /* optional SOCKS5 proxy (RFC 1928), no auth; the proxy resolves host */
	unsigned proxy_port;
	int timeout_ms;          /* deadline for the name, each address and the proxy exchange; <= 0: 60 s */
	const struct ba_log *log; /* optional */
	/*
	 * Optional (NULL = none): a cancel descriptor (borrowed), watched while
	 * the name is resolved (checked every 20 ms: the resolver runs in a
	 * thread), in the poll of the connection attempts and in the SOCKS5
	 * exchange; the returned stream watches it too (ba_stream_set_cancel()).
	 * A pointer, so that a zeroed struct means "none" (0 is a descriptor).
	 */
	const int *cancel_fd;
	/*
	 * Optional (naddrs 0 = none): the addresses of host, already looked up
	 * (borrowed).  host is then not resolved: exactly these addresses are
	 * tried, in this order with the families interleaved as below (direct
	 * delivery connects where its DNSSEC-checked answer points, RFC 7672
	 * §2.2.1); host only names the peer in messages.  With proxy_host the
	 * proxy is asked for each address in turn (SOCKS5 IPv4/IPv6 address
	 * types), a new proxy connection for each, until one connects.
	 */
	const struct ba_net_addr *addrs;
	size_t naddrs;
};

/*
 * Connects to p->host:p->port, resolved (AF_UNSPEC: IPv6 and IPv4) within
 * the timeout (or to p->addrs), trying the addresses as RFC 8305 says: the families
 * interleaved, a new attempt every 250 ms while the earlier ones go on, each
 * within the timeout, the first connection wins; with TCP_NODELAY set (the engine batches its writes, so Nagle
 * only adds delay).  host may be an address literal, also "[2001:db8::1]".
 * A host starting with '/' is the path of a unix-domain stream socket
 * (port and source_ip are ignored).  With proxy_host, the TCP connection
 * goes to the proxy, which is asked with a SOCKS5 CONNECT for host as a
 * DOMAINNAME (RFC 1928 §5), so the proxy resolves it; the timeout covers
 * the whole proxy exchange as well.  All pointers in *p are borrowed for the
 * call.  On success *out is a stream the caller frees with ba_stream_free().
 *
 * Errors:
 *  EX_NOHOST    the name does not resolve ("cannot resolve 'x': ...")
 *  EX_TEMPFAIL  every address failed, or DNS is temporarily unavailable;
 *               "cannot connect to 'x' port 25: connection refused" (the
 *               last reason: connection refused, timed out, network/host
 *               unreachable); a SOCKS5 reply 3-6 (unreachable, refused, TTL)
 *  EX_PROTOCOL  the SOCKS5 proxy refused otherwise (ruleset, unsupported) or
 *               spoke something else: "SOCKS5 proxy 'p' port 1080 cannot
 *               connect to 'x' port 25: connection not allowed by ruleset"
 *  EX_CONFIG    source_ip is not a usable numeric address for any of the
 *               destination's families; host too long for SOCKS5 (255)
 *  EX_OSERR     sockets cannot be created, bind failed, out of memory
 *  EX_TEMPFAIL with BA_ERR_CANCELLED in err->flags: cancelled (cancel_fd)
 */
int ba_net_connect(ba_stream **out, const struct ba_net_params *p, struct ba_err *err);

#endif
