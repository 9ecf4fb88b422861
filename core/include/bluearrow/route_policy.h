/* bluearrow/route_policy.h - transport security of direct delivery: DANE, MTA-STS, mx_tls_policy
 *
 * Per recipient domain, what each of its MX hosts requires before mail may
 * go to it, strongest first (the account's mx_tls_policy, config.h):
 *  - DANE (RFC 7672): the MX RRset is DNSSEC-secure and _25._tcp.HOST has
 *    secure TLSA records: STARTTLS required and the certificate matched
 *    against the usable records; secure records that are all unusable
 *    (PKIX-TA/PKIX-EE, unknown parameters) still make TLS mandatory, but
 *    unauthenticated (RFC 7672 §2.2); a bogus or failed TLSA lookup makes the
 *    host a temporary failure (nothing is sent to it, in clear or not);
 *  - MTA-STS (RFC 8461), for hosts without DANE (DANE takes precedence, §2):
 *    mode enforce: only hosts matching the policy's mx patterns, with
 *    STARTTLS and a PKIX-verified certificate (tls_trust_file applies);
 *    mode testing: delivery as usual, what enforce would refuse logged;
 *  - otherwise opportunistic STARTTLS.
 * mx_tls_policy verify requires a verified certificate (DANE or PKIX) on
 * every host; dane-only requires DANE on every host; may is opportunistic
 * STARTTLS and looks nothing up.
 */
#ifndef BLUEARROW_ROUTE_POLICY_H
#define BLUEARROW_ROUTE_POLICY_H

#include <stddef.h>

#include "bluearrow/config.h"
#include "bluearrow/dns.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"
#include "bluearrow/mtasts.h"
#include "bluearrow/net.h"
#include "bluearrow/tls.h"

/* At most this many addresses of one MX host are kept (and tried). */
#define BA_MXSEC_ADDRS_MAX 16

/* What one MX host requires. */
enum ba_mxsec_req {
	BA_MXSEC_MAY = 0,  /* opportunistic STARTTLS, certificate not required */
	BA_MXSEC_ENCRYPT,  /* STARTTLS required, certificate not checked (unusable TLSA) */
	BA_MXSEC_VERIFY,   /* STARTTLS required, PKIX-verified for the host name */
	BA_MXSEC_DANE,     /* STARTTLS required, matched against the TLSA records */
	BA_MXSEC_SKIP,     /* not to be tried: outside the MTA-STS enforce policy */
	BA_MXSEC_DEFER,    /* not to be tried now: TLSA lookup bogus or failed, or
	                      dane-only without DANE: a temporary failure */
};

/* "may", "encrypt", "verify", "dane", "skip", "defer". */
const char *ba_mxsec_req_name(enum ba_mxsec_req r);

/* The requirement of one MX host, and how it came about. */
struct ba_mxsec_target {
	enum ba_mxsec_req req;
	int report_only;           /* MTA-STS testing: the certificate is checked, a failure only
	                              logged */
	int outside_policy;        /* MTA-STS testing: not in the policy (enforce would skip it) */
	const char *source;        /* "DANE", "MTA-STS", "mx_tls_policy", "" (opportunistic) */
	struct ba_tls_tlsa *tlsa;  /* the usable TLSA records, for BA_MXSEC_DANE (owned) */
	size_t ntlsa;
	enum ba_dns_status tlsa_status; /* of the TLSA answer; INDETERMINATE when not asked */
	size_t tlsa_found;         /* TLSA records found (usable or not) */
	char why[BA_ERR_TEXT_MAX]; /* for SKIP and DEFER: the reason ("mx.a.test: TLSA lookup
	                              failed: ..."); else what applied, for logs and `mx` */
	/*
	 * Filled by ba_mxsec_lookup() (left zero by ba_mxsec_decide()): the
	 * host's addresses from its AAAA and A answers, AAAA first (owned), the
	 * ones delivery connects to; addr_status SECURE only when every address
	 * answer was; canon the CNAME-expanded host name ("" when the host is no
	 * alias); addr_err.code set when there is no address to connect to
	 * (EX_NOHOST: none exists, EX_TEMPFAIL: the lookups failed, or an answer
	 * was bogus), then the target fails with that error, nothing connected.
	 */
	struct ba_net_addr *addrs;
	size_t naddrs;
	enum ba_dns_status addr_status;
	char canon[256];
	struct ba_err addr_err;
	/*
	 * For DANE and ENCRYPT: the TLSA base domain (RFC 7672 §2.2.2), the name
	 * whose _25._tcp records apply: canon when it has secure TLSA records,
	 * else the host; sent as SNI and, for DANE-TA, one of the names the
	 * certificate may carry (the other being the host or canon).  "" for
	 * other requirements.
	 */
	char tlsa_base[256];
};

/* A domain's transport security.  Release with ba_mxsec_release(). */
struct ba_mxsec {
	enum ba_config_mx_tls_policy setting;
	struct ba_mtasts_result sts; /* MTA-STS (source NONE when not looked up or none) */
	int sts_looked_up;
	size_t n;                    /* as many as MX hosts, in the same order */
	struct ba_mxsec_target *t;
};

void ba_mxsec_release(struct ba_mxsec *m);

/* A TLSA lookup's outcome for one host, as the policy sees it (pure input). */
struct ba_mxsec_tlsa_input {
	int asked;                       /* 0: not looked up (the MX RRset is not secure) */
	int failed;                      /* the lookup failed (SERVFAIL, timeout, bogus) */
	const struct ba_dns_answer *answer; /* when asked and not failed */
	enum ba_dns_status status;       /* when failed: BOGUS for a bogus answer */
	const char *error;               /* when failed: the lookup's error text */
	int addr_insecure;               /* not asked because the host's addresses are not
	                                    DNSSEC-secure (RFC 7672 §2.2.1) */
	const char *base;                /* the TLSA base domain answer is for (the host's
	                                    CNAME expansion); NULL = the host */
};

/*
 * The pure decision (no I/O): fills *out for the n MX hosts of domain
 * (hosts[i]), given setting, each host's TLSA outcome (tlsa[i]) and the
 * domain's MTA-STS lookup (sts, may be NULL: none; copied, so the caller
 * keeps and releases its own).  On success the caller releases *out.
 * Errors: EX_OSERR out of memory.
 */
int ba_mxsec_decide(struct ba_mxsec *out, const char *domain, const char *const *hosts,
                    size_t n, enum ba_config_mx_tls_policy setting,
                    const struct ba_mxsec_tlsa_input *tlsa, const struct ba_mtasts_result *sts,
                    struct ba_err *err);

/* How ba_mxsec_lookup() looks things up. */
struct ba_mxsec_opts {
	const struct ba_dns_opts *dns;   /* for the TLSA and TXT queries */
	const struct ba_mtasts_params *sts; /* for the MTA-STS fetch and cache; may be NULL */
	const struct ba_log *log;
};

/*
 * The transport security of mxl's domain under acc's mx_tls_policy: the
 * addresses of each host (AAAA and A through dns.h, whatever the setting:
 * delivery connects to them and to nothing else), the TLSA records of each
 * host (only when mxl->status and the host's address answers are all
 * BA_DNS_SECURE, RFC 7672 §2.2.1; for a host that is an alias, at its
 * CNAME expansion first, then at its own name, §2.2.2), the _mta-sts TXT
 * record and policy (auto and verify), then ba_mxsec_decide().  Lookup failures are not errors: they become the
 * hosts' requirements (DEFER) or no MTA-STS policy.  Logs each host's
 * requirement at DEBUG.  On success the caller releases *out.
 * Errors: EX_OSERR out of memory; EX_TEMPFAIL with BA_ERR_CANCELLED.
 */
int ba_mxsec_lookup(struct ba_mxsec *out, const struct ba_account *acc,
                    const struct ba_dns_mx_list *mxl, const struct ba_mxsec_opts *o,
                    struct ba_err *err);

#endif
