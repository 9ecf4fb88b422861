/* bluearrow/dns.h - DNS for direct delivery: MX, A/AAAA, TXT and TLSA with a DNSSEC status
 *
 * Layer 3 (docs/ARCHITECTURE.md).  Every lookup runs under a deadline: the
 * query goes out from a worker thread (the C library's resolver cannot be
 * interrupted and has timeouts of its own) while the caller waits until the
 * deadline or its cancel descriptor, as net.c does for names.
 *
 * DNSSEC: each answer carries a status.  Who validates:
 *  - with opts->trust_anchor (the `dnssec_trust_anchor` key), libunbound
 *    (loaded with dlopen() on the first such lookup) validates itself from
 *    that anchor, asking the system's resolvers (resolv.conf) for the data;
 *    answers are BA_DNS_SECURE, BA_DNS_INSECURE or BA_DNS_BOGUS;
 *  - else the system resolver (res_nsend(), the DO bit set): its AD bit is
 *    trusted only when every nameserver of resolv.conf is on loopback (a
 *    validating resolver on the same host, as Postfix's
 *    smtp_dns_support_level = dnssec asks): AD set = BA_DNS_SECURE, clear =
 *    BA_DNS_INSECURE.  A resolver elsewhere could be lied to on the way, so
 *    its answers are BA_DNS_INDETERMINATE.  A validating resolver answers a
 *    bogus name with SERVFAIL: a temporary failure here.
 * Only BA_DNS_SECURE answers may be used for DANE (RFC 7672 §2.1).
 */
#ifndef BLUEARROW_DNS_H
#define BLUEARROW_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/err.h"
#include "bluearrow/log.h"

/* The DNSSEC status of one answer (RFC 4035 §4.3); the zero value is "not known". */
enum ba_dns_status {
	BA_DNS_INDETERMINATE = 0, /* no trusted validator: the resolver is not on loopback */
	BA_DNS_INSECURE,          /* validated: unsigned (no chain of trust reaches it) */
	BA_DNS_SECURE,            /* validated: signed, the signatures check out */
	BA_DNS_BOGUS,             /* signed, but the signatures do not check out */
};

/* "secure", "insecure", "bogus", "indeterminate". */
const char *ba_dns_status_name(enum ba_dns_status s);

/* The record types asked for (their RFC 1035/3596/6698 numbers). */
enum ba_dns_type {
	BA_DNS_A = 1,
	BA_DNS_MX = 15,
	BA_DNS_TXT = 16,
	BA_DNS_AAAA = 28,
	BA_DNS_TLSA = 52,
};

/* Who decides the DNSSEC status of answers (see above). */
enum ba_dns_validator {
	BA_DNS_VALIDATOR_NONE = 0, /* the resolver is not on loopback: all indeterminate */
	BA_DNS_VALIDATOR_RESOLVER, /* the AD bit of a resolver on loopback */
	BA_DNS_VALIDATOR_UNBOUND,  /* libunbound with opts->trust_anchor */
};

/* How to look up.  Transparent; zero = defaults; pointers borrowed for the call. */
struct ba_dns_opts {
	int timeout_ms;           /* the whole call (all its queries); <= 0: 30 s */
	const char *trust_anchor; /* optional: a file of DS or DNSKEY records in zone-file
	                             format (unbound's trust-anchor-file), or NULL */
	const struct ba_log *log; /* optional: each query and its outcome at debug level */
	const int *cancel_fd;     /* optional: a descriptor whose readability cancels the call
	                             (checked every 20 ms); a pointer so zero means none */
};

/*
 * One record of an answer.  Which members are set depends on the type:
 *  MX    preference, host (A-label, lowercase, no trailing dot; "" for the
 *        root, which a null MX names)
 *  A     family AF_INET, addr[0..4)   AAAA  family AF_INET6, addr[0..16)
 *        text: the address as text ("192.0.2.1", "2001:db8::1")
 *  TXT   data/len: the character-strings of the record concatenated (RFC
 *        7208 §3.3, RFC 8461 §3.1), NUL-terminated (len excludes the NUL;
 *        the text may hold NULs of its own: use len)
 *  TLSA  usage, selector, mtype (RFC 6698 §2.1), data/len: the
 *        certificate association data
 * Record data is the peer's: bounded by the packet, otherwise untrusted.
 */
struct ba_dns_rr {
	uint32_t ttl;
	unsigned preference;
	char *host;
	int family;
	unsigned char addr[16];
	char text[46];
	unsigned usage, selector, mtype;
	unsigned char *data;
	size_t len;
};

/* The answer to one question.  Release with ba_dns_answer_release(). */
struct ba_dns_answer {
	enum ba_dns_status status; /* of the answer, or of the denial when there are no records */
	int nxdomain;              /* the name does not exist (rcode NXDOMAIN) */
	size_t n;                  /* records of the type asked, in the order received (a CNAME
	                              chain is followed by the resolver: its target's records) */
	struct ba_dns_rr *rr;
	char why[160];             /* libunbound's reason for BA_DNS_BOGUS, else "" */
	/*
	 * The owner name of the records (A-label, lowercase, no trailing dot):
	 * the name asked, or where the CNAME chain of the answer ends when the
	 * name is an alias (RFC 1034 §3.6.2; a DNAME's synthesized CNAME
	 * counts).  Set on every success, also with no records (the end of the
	 * chain that has none).  status covers the whole chain.  RFC 7672
	 * §2.2.2 makes it the TLSA base domain of an MX host that is an alias.
	 */
	char canon[256];
};

/*
 * Asks for the records of type at name (UTF-8 or ASCII; an IDN becomes its
 * A-label, IDNA2008, before it is asked).  No records (NODATA, NXDOMAIN) is
 * a success with out->n == 0 (out->nxdomain tells which), each with the
 * status of its denial, so that "no TLSA records, and that is proven" can be
 * told from "no answer".  On success the caller releases *out; on failure
 * *out is empty except for status (BA_DNS_BOGUS for a bogus answer) and why.
 * Errors:
 *  EX_TEMPFAIL  SERVFAIL, REFUSED, no answer before the deadline, no
 *               resolver reachable, a malformed or truncated answer, or a
 *               bogus answer ("DNSSEC validation of 'x' TLSA failed: ...")
 *  EX_TEMPFAIL with BA_ERR_CANCELLED: cancelled
 *  EX_DATAERR   name is not a valid domain (IDNA) or too long
 *  EX_UNAVAILABLE opts->trust_anchor is set but libunbound cannot be loaded
 *  EX_CONFIG    the trust anchor file cannot be read or parsed (named)
 *  EX_OSERR     out of memory, no thread
 */
int ba_dns_query(struct ba_dns_answer *out, const char *name, enum ba_dns_type type,
                 const struct ba_dns_opts *opts, struct ba_err *err);
void ba_dns_answer_release(struct ba_dns_answer *a);

/* One mail exchanger of a domain. */
struct ba_dns_mx {
	unsigned preference;
	char *host; /* A-label, lowercase, no trailing dot */
};

/* A domain's mail exchangers in the order to try them.  Release with ba_dns_mx_release(). */
struct ba_dns_mx_list {
	char *domain;              /* the domain as asked: its A-label, lowercase */
	enum ba_dns_status status; /* of the MX answer (implicit MX: of the MX denial) */
	int implicit;              /* no MX records: the domain itself, preference 0 (RFC 5321
	                              §5.1), because it has an A or AAAA record */
	size_t n;                  /* >= 1 on success */
	struct ba_dns_mx *mx;
};

/*
 * The mail exchangers of domain (UTF-8 or ASCII), RFC 5321 §5.1: the MX
 * records sorted by preference, those of equal preference in a random order
 * (a new one on every call); MX records naming the root are left out when
 * others exist.  With no MX records, the implicit MX: the domain itself when
 * it has an A or AAAA record.  Nothing is connected to.
 * Errors:
 *  EX_NOHOST      the domain does not exist (NXDOMAIN: "domain 'x' does not
 *                 exist"), or has neither MX nor address records
 *  EX_UNAVAILABLE the domain has a null MX (RFC 7505: "domain 'x' accepts
 *                 no mail (null MX)"): a permanent failure, nothing may be
 *                 sent to it
 *  and those of ba_dns_query() (EX_TEMPFAIL for SERVFAIL, timeouts and
 *  bogus answers).  On success the caller releases *out; on failure *out is
 *  empty.
 */
int ba_dns_mx(struct ba_dns_mx_list *out, const char *domain, const struct ba_dns_opts *opts,
              struct ba_err *err);
void ba_dns_mx_release(struct ba_dns_mx_list *l);

/*
 * Who decides the DNSSEC status for opts (no lookup: reads resolv.conf),
 * and into desc (size n, NUL-terminated) a line saying so: "libunbound, trust
 * anchor 'FILE'", "the resolver on loopback 127.0.0.1 (its AD bit)",
 * "none: the resolver 192.0.2.53 is not on loopback".  desc may be NULL.
 */
enum ba_dns_validator ba_dns_validator(const struct ba_dns_opts *opts, char *desc, size_t n);

#endif
