/* dns.c - MX, A/AAAA, TXT and TLSA lookups with a DNSSEC status, under a deadline (layer 3) */
#include "bluearrow/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <idn2.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unbound.h>
#include <unistd.h>

#include "bluearrow/io.h"

#define DNS_DEFAULT_TIMEOUT_MS 30000
#define DNS_PACKET_MAX 65535
/* libunbound is loaded only when a trust anchor is configured: sendmail never maps it otherwise */
#define UNBOUND_SONAME "libunbound.so.8"

const char *ba_dns_status_name(enum ba_dns_status s)
{
	switch (s) {
	case BA_DNS_INSECURE: return "insecure";
	case BA_DNS_SECURE: return "secure";
	case BA_DNS_BOGUS: return "bogus";
	default: return "indeterminate";
	}
}

static const char *type_name(int type)
{
	switch (type) {
	case BA_DNS_A: return "A";
	case BA_DNS_MX: return "MX";
	case BA_DNS_TXT: return "TXT";
	case BA_DNS_AAAA: return "AAAA";
	case BA_DNS_TLSA: return "TLSA";
	default: return "?";
	}
}

/* ---- libunbound, loaded on demand ------------------------------------- */

struct ub_api {
	struct ub_ctx *(*create)(void);
	int (*resolvconf)(struct ub_ctx *, const char *);
	int (*set_option)(struct ub_ctx *, const char *, const char *);
	int (*zone_add)(struct ub_ctx *, const char *, const char *);
	int (*add_ta_file)(struct ub_ctx *, const char *);
	int (*resolve)(struct ub_ctx *, const char *, int, int, struct ub_result **);
	void (*result_free)(struct ub_result *);
	const char *(*error_text)(int);
};

static struct ub_api g_ub;
static int g_ub_ok;
static pthread_once_t g_ub_once = PTHREAD_ONCE_INIT;
/* one validating context per process, for the one trust anchor its configuration names */
static pthread_mutex_t g_ub_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ub_ctx *g_ub_ctx;
static char *g_ub_anchor;

static void ub_load(void)
{
	static const char *const names[] = { "ub_ctx_create", "ub_ctx_resolvconf",
		                             "ub_ctx_add_ta_file", "ub_resolve", "ub_resolve_free",
		                             "ub_strerror", "ub_ctx_set_option", "ub_ctx_zone_add" };
	void *sym[8];
	if (!ba_dl_open(UNBOUND_SONAME, names, sym, 8))
		return;
	struct ub_api a;
	memcpy(&a.create, &sym[0], sizeof(a.create));
	memcpy(&a.resolvconf, &sym[1], sizeof(a.resolvconf));
	memcpy(&a.add_ta_file, &sym[2], sizeof(a.add_ta_file));
	memcpy(&a.resolve, &sym[3], sizeof(a.resolve));
	memcpy(&a.result_free, &sym[4], sizeof(a.result_free));
	memcpy(&a.error_text, &sym[5], sizeof(a.error_text));
	memcpy(&a.set_option, &sym[6], sizeof(a.set_option));
	memcpy(&a.zone_add, &sym[7], sizeof(a.zone_add));
	/* the prototypes above must be unbound.h's (checked, never evaluated: no link reference) */
	(void)sizeof(a.create == &ub_ctx_create);
	(void)sizeof(a.resolvconf == &ub_ctx_resolvconf);
	(void)sizeof(a.add_ta_file == &ub_ctx_add_ta_file);
	(void)sizeof(a.resolve == &ub_resolve);
	(void)sizeof(a.result_free == &ub_resolve_free);
	(void)sizeof(a.error_text == &ub_strerror);
	(void)sizeof(a.set_option == &ub_ctx_set_option);
	(void)sizeof(a.zone_add == &ub_ctx_zone_add);
	g_ub = a;
	g_ub_ok = 1;
}

/*
 * The validating context for anchor, made on first use: it forwards to the
 * resolvers of resolv.conf (which pass the signatures along) and validates
 * itself.  A context of an earlier anchor may still serve a worker that
 * gave up waiting, so it is left alone (one configuration names one anchor).
 */
static struct ub_ctx *ub_context(const char *anchor, struct ba_err *err)
{
	pthread_once(&g_ub_once, ub_load);
	if (!g_ub_ok)
		return ba_err_set(err, EX_UNAVAILABLE,
		                  "dnssec_trust_anchor needs libunbound (%s): it cannot be loaded",
		                  UNBOUND_SONAME),
		       NULL;
	pthread_mutex_lock(&g_ub_mu);
	if (g_ub_ctx && strcmp(g_ub_anchor, anchor) == 0) {
		struct ub_ctx *c = g_ub_ctx;
		pthread_mutex_unlock(&g_ub_mu);
		return c;
	}
	struct ub_ctx *c = g_ub.create();
	char *a = strdup(anchor);
	int rc;
	if (!c || !a) {
		pthread_mutex_unlock(&g_ub_mu);
		free(a);
		return ba_err_set(err, EX_OSERR, "cannot create a libunbound context"), NULL;
	}
	/*
	 * The forwarders are resolv.conf's, often on loopback (a local Unbound,
	 * systemd-resolved): libunbound skips those unless told.  Names are the
	 * system resolver's to answer, also the "test." of RFC 6761, which
	 * libunbound would otherwise answer itself (NXDOMAIN).
	 */
	if ((rc = g_ub.resolvconf(c, NULL)) != 0 ||
	    (rc = g_ub.set_option(c, "do-not-query-localhost:", "no")) != 0 ||
	    (rc = g_ub.add_ta_file(c, anchor)) != 0 ||
	    (rc = g_ub.zone_add(c, "test.", "nodefault")) != 0) { /* last: it finalizes c */
		pthread_mutex_unlock(&g_ub_mu);
		free(a);
		return ba_err_set(err, EX_CONFIG, "cannot use the trust anchor '%s': %s", anchor,
		                  g_ub.error_text(rc)),
		       NULL;
	}
	g_ub_ctx = c;
	g_ub_anchor = a;
	pthread_mutex_unlock(&g_ub_mu);
	return c;
}

/* ---- one query in a worker thread -------------------------------------- */

/*
 * The C library's resolver and ub_resolve() block, with timeouts of their
 * own that can add up past the caller's deadline; so the query runs in a
 * detached thread and the caller waits for it until the deadline.  Whoever
 * is done with the request last (the caller, or a thread that answers after
 * the caller gave up) frees it.
 */
struct dns_req {
	struct ba_job job;       /* first: the request is the job */
	char name[256];
	int type;
	int retrans;            /* seconds per try (resolv.conf's timeout) */
	struct ub_ctx *ub;      /* NULL: the system resolver */
	/* the outcome */
	unsigned char *pkt;
	int len;                /* < 0: no answer (sys_errno) */
	int sys_errno;
	int ub_rc, ub_secure, ub_bogus, ub_rcode;
	char why[160];
};

static void req_free(struct ba_job *j)
{
	struct dns_req *q = (struct dns_req *)j;
	free(q->pkt);
	free(q);
}

/*
 * Appends an OPT record with the DO bit (RFC 3225 §3, RFC 6891 §6.1) to the
 * query in buf[0..len): the glibc stub adds one only in res_nquery(), which
 * hides the answer of an NXDOMAIN and the rcode we need.  Returns the new
 * length, or -1 when it does not fit.
 */
static int add_opt_do(unsigned char *buf, int len, size_t size)
{
	static const unsigned char opt[11] = { 0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0 };
	if (len < HFIXEDSZ || (size_t)len + sizeof(opt) > size)
		return -1;
	memcpy(buf + len, opt, sizeof(opt));
	unsigned ar = ((unsigned)buf[10] << 8 | buf[11]) + 1;
	buf[10] = (unsigned char)(ar >> 8);
	buf[11] = (unsigned char)ar;
	return len + (int)sizeof(opt);
}

static void query_system(struct dns_req *q, unsigned char *ans)
{
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	q->len = -1;
	if (res_ninit(&st) < 0) {
		q->sys_errno = errno ? errno : EIO;
		return;
	}
	/* RES_TRUSTAD: ask for the AD bit and keep it (glibc clears it otherwise); dns.h says when
	 * it is believed */
	st.options |= RES_USE_DNSSEC | RES_USE_EDNS0 | RES_TRUSTAD;
	st.retrans = q->retrans;
	st.retry = 2;
	unsigned char qbuf[HFIXEDSZ + NS_MAXDNAME + QFIXEDSZ + 16];
	int qlen = res_nmkquery(&st, ns_o_query, q->name, ns_c_in, q->type, NULL, 0, NULL, qbuf,
	                        sizeof(qbuf));
	if (qlen > 0)
		qlen = add_opt_do(qbuf, qlen, sizeof(qbuf));
	if (qlen < 0) {
		q->sys_errno = EMSGSIZE;
		res_nclose(&st);
		return;
	}
	errno = 0;
	q->len = res_nsend(&st, qbuf, qlen, ans, DNS_PACKET_MAX);
	q->sys_errno = errno;
	res_nclose(&st);
}

static void query_unbound(struct dns_req *q, unsigned char *ans)
{
	struct ub_result *r = NULL;
	q->len = -1;
	q->ub_rc = g_ub.resolve(q->ub, q->name, q->type, ns_c_in, &r);
	if (q->ub_rc != 0 || !r)
		return;
	q->ub_secure = r->secure;
	q->ub_bogus = r->bogus;
	q->ub_rcode = r->rcode;
	if (r->why_bogus)
		snprintf(q->why, sizeof(q->why), "%s", r->why_bogus);
	if (r->answer_packet && r->answer_len > 0 && r->answer_len <= DNS_PACKET_MAX) {
		memcpy(ans, r->answer_packet, (size_t)r->answer_len);
		q->len = r->answer_len;
	} else {
		q->sys_errno = EIO;
	}
	g_ub.result_free(r);
}

static void *query_thread(void *arg)
{
	struct dns_req *q = arg;
	unsigned char *ans = malloc(DNS_PACKET_MAX);
	if (!ans) {
		q->len = -1;
		q->sys_errno = ENOMEM;
	} else if (q->ub) {
		query_unbound(q, ans);
	} else {
		query_system(q, ans);
	}
	pthread_mutex_lock(&q->job.mu);
	if (q->len > 0)
		q->pkt = ans;
	else
		free(ans);
	ba_job_finish(&q->job);
	return NULL;
}

/* ---- names --------------------------------------------------------------- */

/* name as the A-label form, lowercase, without a trailing dot, into out[256]. */
static int to_alabel(char *out, const char *name, struct ba_err *err)
{
	int ascii = 1;
	for (const char *c = name; *c; c++)
		if ((unsigned char)*c >= 0x80)
			ascii = 0;
	const char *src = name;
	char *conv = NULL;
	if (!ascii) {
		int rc = idn2_to_ascii_8z(name, &conv, IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK)
			return ba_err_set(err, EX_DATAERR, "invalid domain '%s': %s", name,
			                  idn2_strerror(rc));
		src = conv;
	}
	size_t n = strlen(src);
	if (n && src[n - 1] == '.')
		n--;
	if (n == 0 || n > 253) {
		idn2_free(conv);
		return ba_err_set(err, EX_DATAERR, "invalid domain '%s'", name);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c <= ' ' || c == 0x7f) {
			idn2_free(conv);
			return ba_err_set(err, EX_DATAERR, "invalid domain '%s'", name);
		}
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	idn2_free(conv);
	return 0;
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	return 0;
}

enum ba_dns_validator ba_dns_validator(const struct ba_dns_opts *o, char *desc, size_t n)
{
	char scratch[8];
	if (!desc) {
		desc = scratch;
		n = sizeof(scratch);
	}
	if (o && o->trust_anchor) {
		snprintf(desc, n, "libunbound, trust anchor '%s'", o->trust_anchor);
		return BA_DNS_VALIDATOR_UNBOUND;
	}
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) < 0) {
		snprintf(desc, n, "none: resolv.conf cannot be read");
		return BA_DNS_VALIDATOR_NONE;
	}
	/*
	 * glibc keeps IPv4 servers in nsaddr_list and IPv6 ones in _u._ext.nsaddrs
	 * (their nsaddr_list entry then has family 0).  Every server must be on
	 * loopback: the stub asks them in turn.
	 */
	int all_lo = st.nscount > 0;
	char first[INET6_ADDRSTRLEN] = "", bad[INET6_ADDRSTRLEN] = "";
	for (int i = 0; i < st.nscount && i < MAXNS; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&st.nsaddr_list[i];
		if (st.nsaddr_list[i].sin_family != AF_INET && st._u._ext.nsaddrs[i])
			sa = (const struct sockaddr *)st._u._ext.nsaddrs[i];
		char text[INET6_ADDRSTRLEN] = "?";
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
			          text, sizeof(text));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			          text, sizeof(text));
		if (!first[0])
			memcpy(first, text, sizeof(first));
		if (!is_loopback(sa)) {
			all_lo = 0;
			if (!bad[0])
				memcpy(bad, text, sizeof(bad));
		}
	}
	res_nclose(&st);
	if (all_lo) {
		snprintf(desc, n, "the resolver on loopback %s (its AD bit)", first);
		return BA_DNS_VALIDATOR_RESOLVER;
	}
	snprintf(desc, n, "none: the resolver %s is not on loopback", bad[0] ? bad : "(none)");
	return BA_DNS_VALIDATOR_NONE;
}

/* ---- parsing an answer ------------------------------------------------- */

static int parse_rr(struct ba_dns_rr *r, const ns_msg *m, const ns_rr *rr, int type)
{
	const unsigned char *d = ns_rr_rdata(*rr);
	size_t dl = ns_rr_rdlen(*rr);
	char name[NS_MAXDNAME];
	memset(r, 0, sizeof(*r));
	r->ttl = ns_rr_ttl(*rr);
	switch (type) {
	case BA_DNS_MX:
		if (dl < 3 || ns_name_uncompress(ns_msg_base(*m), ns_msg_end(*m), d + 2, name,
		                                 sizeof(name)) < 0)
			return -1;
		r->preference = (unsigned)d[0] << 8 | d[1];
		size_t n = strlen(name);
		if (n && name[n - 1] == '.')
			name[--n] = '\0';
		if (strcmp(name, ".") == 0)
			name[0] = '\0';
		for (size_t i = 0; i < n; i++)
			name[i] = (char)tolower((unsigned char)name[i]);
		r->host = strdup(name);
		return r->host ? 0 : -2;
	case BA_DNS_A:
	case BA_DNS_AAAA:
		if (dl != (type == BA_DNS_A ? 4u : 16u))
			return -1;
		r->family = type == BA_DNS_A ? AF_INET : AF_INET6;
		memcpy(r->addr, d, dl);
		inet_ntop(r->family, r->addr, r->text, sizeof(r->text));
		return 0;
	case BA_DNS_TXT:
		r->data = malloc(dl + 1);
		if (!r->data)
			return -2;
		for (size_t i = 0; i < dl;) {
			size_t l = d[i++];
			if (i + l > dl)
				return -1;
			memcpy(r->data + r->len, d + i, l);
			r->len += l;
			i += l;
		}
		r->data[r->len] = '\0';
		return 0;
	case BA_DNS_TLSA:
		if (dl < 3)
			return -1;
		r->usage = d[0];
		r->selector = d[1];
		r->mtype = d[2];
		r->len = dl - 3;
		r->data = malloc(r->len + 1);
		if (!r->data)
			return -2;
		memcpy(r->data, d + 3, r->len);
		r->data[r->len] = 0;
		return 0;
	default:
		return -1;
	}
}

static void rr_release(struct ba_dns_rr *r)
{
	free(r->host);
	free(r->data);
}

void ba_dns_answer_release(struct ba_dns_answer *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		rr_release(&a->rr[i]);
	free(a->rr);
	memset(a, 0, sizeof(*a));
}

static const char *rcode_name(int rc)
{
	switch (rc) {
	case ns_r_formerr: return "FORMERR";
	case ns_r_servfail: return "SERVFAIL";
	case ns_r_notimpl: return "NOTIMP";
	case ns_r_refused: return "REFUSED";
	default: return "an error";
	}
}

/* 1 when a and b are the same domain name (ASCII case-insensitive, a trailing dot ignored). */
static int same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	if (la != lb)
		return 0;
	for (size_t i = 0; i < la; i++)
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
			return 0;
	return 1;
}

/*
 * The end of the CNAME chain that starts at name in the answer section of
 * m, into out[256] (lowercase, no trailing dot): name itself when it has no
 * CNAME.  At most 16 links (a loop or a longer chain is malformed: the
 * resolver gives up long before).  Returns 0, or -1 for a malformed chain.
 */
static int follow_cnames(char *out, ns_msg *m, const char *name)
{
	char cur[NS_MAXDNAME];
	snprintf(cur, sizeof(cur), "%s", name);
	int count = ns_msg_count(*m, ns_s_an);
	for (int hops = 0;; hops++) {
		int moved = 0;
		for (int i = 0; i < count && !moved; i++) {
			ns_rr rr;
			if (ns_parserr(m, ns_s_an, i, &rr) < 0)
				return -1;
			if (ns_rr_type(rr) != ns_t_cname || ns_rr_class(rr) != ns_c_in ||
			    !same_name(ns_rr_name(rr), cur))
				continue;
			char target[NS_MAXDNAME];
			if (ns_name_uncompress(ns_msg_base(*m), ns_msg_end(*m), ns_rr_rdata(rr), target,
			                       sizeof(target)) < 0)
				return -1;
			if (hops >= 16)
				return -1;
			snprintf(cur, sizeof(cur), "%s", target);
			moved = 1;
		}
		if (!moved)
			break;
	}
	size_t n = strlen(cur);
	if (n && cur[n - 1] == '.')
		cur[--n] = '\0';
	if (n == 0 || n > 253)
		return -1;
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)cur[i]);
	return 0;
}

/* The records of type in the answer section of pkt into *out. */
static int parse_answer(struct ba_dns_answer *out, const unsigned char *pkt, int len,
                        const char *name, int type, struct ba_err *err)
{
	ns_msg m;
	if (ns_initparse(pkt, len, &m) < 0)
		return ba_err_set(err, EX_TEMPFAIL, "looking up '%s' %s: malformed DNS answer", name,
		                  type_name(type));
	int rcode = ns_msg_getflag(m, ns_f_rcode);
	if (rcode == ns_r_nxdomain) {
		out->nxdomain = 1;
		/* an alias whose target does not exist: the chain is in the answer */
		if (follow_cnames(out->canon, &m, name) < 0)
			snprintf(out->canon, sizeof(out->canon), "%s", name);
		return 0;
	}
	if (rcode != ns_r_noerror)
		return ba_err_set(err, EX_TEMPFAIL, "looking up '%s' %s: the DNS resolver answered %s",
		                  name, type_name(type), rcode_name(rcode));
	if (ns_msg_getflag(m, ns_f_tc))
		return ba_err_set(err, EX_TEMPFAIL, "looking up '%s' %s: truncated DNS answer", name,
		                  type_name(type));
	int count = ns_msg_count(m, ns_s_an);
	out->rr = calloc(count > 0 ? (size_t)count : 1, sizeof(*out->rr));
	if (!out->rr)
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (follow_cnames(out->canon, &m, name) < 0)
		return ba_err_set(err, EX_TEMPFAIL, "looking up '%s' %s: malformed DNS answer", name,
		                  type_name(type));
	for (int i = 0; i < count; i++) {
		ns_rr rr;
		if (ns_parserr(&m, ns_s_an, i, &rr) < 0)
			return ba_err_set(err, EX_TEMPFAIL, "looking up '%s' %s: malformed DNS answer",
			                  name, type_name(type));
		if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
			continue; /* the CNAME chain, signatures */
		if (!same_name(ns_rr_name(rr), out->canon))
			continue; /* not at the end of the chain: no answer to the question */
		int rc = parse_rr(&out->rr[out->n], &m, &rr, type);
		if (rc == -2)
			return ba_err_set(err, EX_OSERR, "out of memory");
		if (rc < 0) {
			rr_release(&out->rr[out->n]);
			return ba_err_set(err, EX_TEMPFAIL,
			                  "looking up '%s' %s: malformed record in the DNS answer", name,
			                  type_name(type));
		}
		out->n++;
	}
	return 0;
}

/* One question, answered before deadline. */
static int ask(struct ba_dns_answer *out, const char *ascii, int type,
               const struct ba_dns_opts *o, int64_t deadline, struct ba_err *err)
{
	memset(out, 0, sizeof(*out));
	char desc[8];
	enum ba_dns_validator v = ba_dns_validator(o, desc, sizeof(desc));
	struct ub_ctx *ub = NULL;
	if (v == BA_DNS_VALIDATOR_UNBOUND && !(ub = ub_context(o->trust_anchor, err)))
		return -1;
	int cfd = o->cancel_fd ? *o->cancel_fd : -1;
	struct dns_req *q = calloc(1, sizeof(*q));
	if (!q)
		return ba_err_set(err, EX_OSERR, "out of memory");
	snprintf(q->name, sizeof(q->name), "%s", ascii);
	q->type = type;
	q->ub = ub;
	int64_t left = deadline - ba_now_ms();
	q->retrans = left > 4000 ? 2 : 1;
	if (ba_job_start(&q->job, query_thread, req_free) < 0)
		return ba_err_set(err, EX_OSERR, "cannot start a thread to look up '%s'", ascii);
	ba_log(o->log, BA_LOG_DEBUG, "dns: %s %s?", ascii, type_name(type));
	int rc = -1;
	if (!ba_job_wait(&q->job, deadline, cfd)) {
		if (ba_cancel_pending(cfd))
			ba_err_cancel(err, "looking up '%s' %s: cancelled", ascii, type_name(type));
		else
			ba_err_set(err, EX_TEMPFAIL, "looking up '%s' %s: no DNS answer in time", ascii,
			           type_name(type));
		goto out;
	}
	/* done: nobody else writes q any more */
	if (ub && q->ub_rc != 0) {
		ba_err_set(err, q->ub_rc == UB_INITFAIL || q->ub_rc == UB_SYNTAX ? EX_CONFIG
		                                                                  : EX_TEMPFAIL,
		           "looking up '%s' %s: libunbound: %s (trust anchor '%s')", ascii,
		           type_name(type), g_ub.error_text(q->ub_rc), o->trust_anchor);
		goto out;
	}
	if (ub && q->ub_bogus) {
		out->status = BA_DNS_BOGUS;
		memcpy(out->why, q->why, sizeof(out->why));
		ba_err_set(err, EX_TEMPFAIL, "DNSSEC validation of '%s' %s failed (bogus): %s", ascii,
		           type_name(type), q->why[0] ? q->why : "no reason given");
		goto out;
	}
	if (q->len < 0) {
		/*
		 * glibc's stub reports SERVFAIL and REFUSED of every server only as
		 * a failure; a validating resolver answers SERVFAIL for a bogus
		 * signature too, so the text says so
		 */
		if (ub && q->ub_rcode)
			ba_err_set(err, EX_TEMPFAIL, "looking up '%s' %s: the DNS resolver answered %s",
			           ascii, type_name(type), rcode_name(q->ub_rcode));
		else
			ba_err_set(err, EX_TEMPFAIL,
			           "looking up '%s' %s: no answer from the DNS resolver (SERVFAIL, "
			           "as for a bogus DNSSEC signature, refused, or timed out)",
			           ascii, type_name(type));
		goto out;
	}
	if (parse_answer(out, q->pkt, q->len, ascii, type, err) < 0) {
		ba_dns_answer_release(out);
		goto out;
	}
	if (ub)
		out->status = q->ub_secure ? BA_DNS_SECURE : BA_DNS_INSECURE;
	else if (v == BA_DNS_VALIDATOR_RESOLVER)
		out->status = q->pkt[3] & 0x20 ? BA_DNS_SECURE : BA_DNS_INSECURE; /* the AD bit */
	else
		out->status = BA_DNS_INDETERMINATE;
	ba_log(o->log, BA_LOG_DEBUG, "dns: %s %s: %zu record(s)%s, %s", ascii, type_name(type),
	       out->n, out->nxdomain ? " (NXDOMAIN)" : "", ba_dns_status_name(out->status));
	rc = 0;
out:
	ba_job_release(&q->job);
	return rc;
}

/*
 * What every lookup starts with: the options (none: the defaults), the
 * name as A-labels into ascii, and the deadline.  0, or -1 (err set).
 */
static int lookup_begin(const struct ba_dns_opts **opts, char ascii[256], const char *name,
                        int64_t *deadline, struct ba_err *err)
{
	static const struct ba_dns_opts none;
	if (!*opts)
		*opts = &none;
	if (to_alabel(ascii, name, err) < 0)
		return -1;
	*deadline = ba_now_ms() + ((*opts)->timeout_ms > 0 ? (*opts)->timeout_ms
	                                                   : DNS_DEFAULT_TIMEOUT_MS);
	return 0;
}

int ba_dns_query(struct ba_dns_answer *out, const char *name, enum ba_dns_type type,
                 const struct ba_dns_opts *opts, struct ba_err *err)
{
	memset(out, 0, sizeof(*out));
	char ascii[256];
	int64_t deadline;
	if (lookup_begin(&opts, ascii, name, &deadline, err) < 0)
		return -1;
	return ask(out, ascii, (int)type, opts, deadline, err);
}

/* ---- MX ---------------------------------------------------------------- */

struct mx_sort {
	unsigned pref;
	uint32_t key; /* random: the order among equal preferences (RFC 5321 §5.1) */
	char *host;
};

static int mx_cmp(const void *a, const void *b)
{
	const struct mx_sort *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

void ba_dns_mx_release(struct ba_dns_mx_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->mx[i].host);
	free(l->mx);
	free(l->domain);
	memset(l, 0, sizeof(*l));
}

/* No MX records: the domain itself when it has an address (RFC 5321 §5.1). */
static int implicit_mx(struct ba_dns_mx_list *out, const char *ascii,
                       const struct ba_dns_opts *o, int64_t deadline, struct ba_err *err)
{
	struct ba_dns_answer a4, a6;
	struct ba_err e4 = BA_ERR_INIT, e6 = BA_ERR_INIT;
	int r4 = ask(&a4, ascii, BA_DNS_A, o, deadline, &e4);
	int r6 = ask(&a6, ascii, BA_DNS_AAAA, o, deadline, &e6);
	int have = (r4 == 0 && a4.n) || (r6 == 0 && a6.n);
	ba_dns_answer_release(&a4);
	ba_dns_answer_release(&a6);
	if (!have && (r4 < 0 || r6 < 0)) {
		*err = r4 < 0 ? e4 : e6;
		return -1;
	}
	if (!have)
		return ba_err_set(err, EX_NOHOST, "domain '%s' has neither MX nor address records",
		                  ascii);
	out->mx = calloc(1, sizeof(*out->mx));
	if (!out->mx || !(out->mx[0].host = strdup(ascii)))
		return ba_err_set(err, EX_OSERR, "out of memory");
	out->n = 1;
	out->implicit = 1;
	return 0;
}

int ba_dns_mx(struct ba_dns_mx_list *out, const char *domain, const struct ba_dns_opts *opts,
              struct ba_err *err)
{
	memset(out, 0, sizeof(*out));
	char ascii[256];
	int64_t deadline;
	if (lookup_begin(&opts, ascii, domain, &deadline, err) < 0)
		return -1;
	struct ba_dns_answer a;
	if (ask(&a, ascii, BA_DNS_MX, opts, deadline, err) < 0)
		return -1;
	int rc = -1;
	struct mx_sort *s = NULL;
	if (!(out->domain = strdup(ascii))) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	out->status = a.status;
	if (a.nxdomain) {
		ba_err_set(err, EX_NOHOST, "domain '%s' does not exist", ascii);
		goto out;
	}
	size_t n = 0, roots = 0;
	for (size_t i = 0; i < a.n; i++)
		a.rr[i].host[0] ? n++ : roots++;
	if (n == 0 && roots) {
		/* RFC 7505 §3: a domain that accepts no mail says so; do not try its address */
		ba_err_set(err, EX_UNAVAILABLE, "domain '%s' accepts no mail (null MX)", ascii);
		goto out;
	}
	if (n == 0) {
		rc = implicit_mx(out, ascii, opts, deadline, err);
		goto out;
	}
	s = calloc(n, sizeof(*s));
	out->mx = calloc(n, sizeof(*out->mx));
	if (!s || !out->mx) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	uint32_t keys[64];
	size_t nk = n < 64 ? n : 64;
	if (getrandom(keys, nk * sizeof(keys[0]), 0) != (ssize_t)(nk * sizeof(keys[0])))
		for (size_t i = 0; i < nk; i++) /* no entropy: still vary between runs */
			keys[i] = (uint32_t)(ba_now_ms() * 2654435761u + i * 40503u + (uint32_t)getpid());
	for (size_t i = 0, j = 0; i < a.n; i++) {
		if (!a.rr[i].host[0])
			continue;
		s[j].pref = a.rr[i].preference;
		s[j].key = keys[j % 64] ^ (uint32_t)(j / 64);
		s[j].host = a.rr[i].host;
		j++;
	}
	qsort(s, n, sizeof(*s), mx_cmp);
	for (size_t i = 0; i < n; i++) {
		out->mx[i].preference = s[i].pref;
		out->mx[i].host = strdup(s[i].host);
		if (!out->mx[i].host) {
			ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		out->n++;
	}
	rc = 0;
out:
	free(s);
	ba_dns_answer_release(&a);
	if (rc < 0)
		ba_dns_mx_release(out);
	return rc;
}
