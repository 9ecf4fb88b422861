/* route_policy.c - what each MX host of a domain requires: DANE, MTA-STS, mx_tls_policy
 *
 * The decision (ba_mxsec_decide) is pure, so every combination is unit
 * tested; the lookups (ba_mxsec_lookup) only gather its inputs.
 */
#include "bluearrow/route_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bluearrow/io.h"

const char *ba_mxsec_req_name(enum ba_mxsec_req r)
{
	static const char *const names[] = { "may", "encrypt", "verify", "dane", "skip", "defer" };
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

void ba_mxsec_release(struct ba_mxsec *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		for (size_t k = 0; k < m->t[i].ntlsa; k++)
			free((void *)m->t[i].tlsa[k].data);
		free(m->t[i].tlsa);
		free(m->t[i].addrs);
	}
	free(m->t);
	ba_mtasts_policy_release(&m->sts.policy);
	memset(m, 0, sizeof(*m));
}

static void why(struct ba_mxsec_target *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void why(struct ba_mxsec_target *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof(t->why), fmt, ap);
	va_end(ap);
}

/* Copies the usable TLSA records of a into t (RFC 7672 §3.1.3). */
static int take_tlsa(struct ba_mxsec_target *t, const struct ba_dns_answer *a)
{
	t->tlsa = calloc(a->n ? a->n : 1, sizeof(*t->tlsa));
	if (!t->tlsa)
		return -1;
	for (size_t i = 0; i < a->n; i++) {
		const struct ba_dns_rr *rr = &a->rr[i];
		struct ba_tls_tlsa r = { rr->usage, rr->selector, rr->mtype, rr->data, rr->len };
		if (!ba_tls_tlsa_usable(&r) || t->ntlsa >= BA_TLS_TLSA_MAX)
			continue;
		unsigned char *d = malloc(rr->len);
		if (!d)
			return -1;
		memcpy(d, rr->data, rr->len);
		r.data = d;
		t->tlsa[t->ntlsa++] = r;
	}
	return 0;
}

/* DANE for one host: sets req DANE, ENCRYPT or DEFER and returns 1, or 0 when DANE does not apply. */
static int dane(struct ba_mxsec_target *t, const char *host, const struct ba_mxsec_tlsa_input *in,
                int *oom)
{
	if (!in || !in->asked)
		return 0;
	if (in->failed) {
		t->tlsa_status = in->status;
		t->req = BA_MXSEC_DEFER;
		t->source = "DANE";
		if (in->status == BA_DNS_BOGUS)
			why(t, "%s: its TLSA records fail DNSSEC validation (bogus): not tried, a "
			    "temporary failure (RFC 7672 §2.2)", host);
		else
			why(t, "%s: the TLSA lookup failed (%s): not tried, a temporary failure "
			    "(RFC 7672 §2.2)", host, in->error ? in->error : "no answer");
		return 1;
	}
	const struct ba_dns_answer *a = in->answer;
	t->tlsa_status = a ? a->status : BA_DNS_INDETERMINATE;
	t->tlsa_found = a ? a->n : 0;
	if (!a || a->status != BA_DNS_SECURE || a->n == 0)
		return 0; /* no records, or not provably authentic ones: no DANE (§2.2) */
	if (take_tlsa(t, a) < 0) {
		*oom = 1;
		return 1;
	}
	t->source = "DANE";
	snprintf(t->tlsa_base, sizeof(t->tlsa_base), "%s", in->base ? in->base : host);
	char at[300] = "";
	if (in->base)
		snprintf(at, sizeof(at), " at its CNAME target %s", in->base);
	if (t->ntlsa == 0) {
		t->req = BA_MXSEC_ENCRYPT;
		why(t, "%s: %zu secure TLSA record%s%s, none usable: TLS required, not "
		    "authenticated (RFC 7672 §2.2)", host, a->n, a->n == 1 ? "" : "s", at);
	} else {
		t->req = BA_MXSEC_DANE;
		why(t, "%s: %zu usable secure TLSA record%s%s: DANE", host, t->ntlsa,
		    t->ntlsa == 1 ? "" : "s", at);
	}
	return 1;
}

int ba_mxsec_decide(struct ba_mxsec *out, const char *domain, const char *const *hosts,
                    size_t n, enum ba_config_mx_tls_policy setting,
                    const struct ba_mxsec_tlsa_input *tlsa, const struct ba_mtasts_result *sts,
                    struct ba_err *err)
{
	memset(out, 0, sizeof(*out));
	out->setting = setting;
	out->t = calloc(n ? n : 1, sizeof(*out->t));
	if (!out->t)
		return ba_err_set(err, EX_OSERR, "out of memory");
	out->n = n;
	const struct ba_mtasts_policy *pol = NULL;
	if (sts && setting != BA_MX_TLS_MAY && setting != BA_MX_TLS_DANE_ONLY) {
		out->sts_looked_up = 1;
		out->sts.source = sts->source;
		memcpy(out->sts.note, sts->note, sizeof(out->sts.note));
		if (sts->source != BA_MTASTS_SRC_NONE) {
			/* a deep copy: the caller keeps its own */
			struct ba_mtasts_policy *c = &out->sts.policy;
			*c = sts->policy;
			c->mx = calloc(sts->policy.nmx ? sts->policy.nmx : 1, sizeof(*c->mx));
			c->nmx = 0;
			if (!c->mx) {
				ba_mxsec_release(out);
				return ba_err_set(err, EX_OSERR, "out of memory");
			}
			for (size_t i = 0; i < sts->policy.nmx; i++) {
				if (!(c->mx[i] = strdup(sts->policy.mx[i]))) {
					ba_mxsec_release(out);
					return ba_err_set(err, EX_OSERR, "out of memory");
				}
				c->nmx++;
			}
			if (c->mode != BA_MTASTS_MODE_NONE)
				pol = c;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct ba_mxsec_target *t = &out->t[i];
		const char *h = hosts[i];
		int oom = 0;
		t->source = "";
		if (setting == BA_MX_TLS_MAY) {
			why(t, "%s: opportunistic STARTTLS (mx_tls_policy may)", h);
			continue;
		}
		if (dane(t, h, tlsa ? &tlsa[i] : NULL, &oom)) {
			if (oom) {
				ba_mxsec_release(out);
				return ba_err_set(err, EX_OSERR, "out of memory");
			}
			if (setting == BA_MX_TLS_DANE_ONLY && t->req == BA_MXSEC_ENCRYPT) {
				t->req = BA_MXSEC_DEFER;
				t->source = "mx_tls_policy";
				why(t, "%s: no usable TLSA record, and mx_tls_policy is dane-only", h);
			}
			continue;
		}
		if (setting == BA_MX_TLS_DANE_ONLY) {
			t->req = BA_MXSEC_DEFER;
			t->source = "mx_tls_policy";
			why(t, "%s: no DNSSEC-secure TLSA records (%s), and mx_tls_policy is dane-only",
			    h, tlsa && tlsa[i].asked        ? "none found or not signed"
			       : tlsa && tlsa[i].addr_insecure ? "its addresses are not DNSSEC-secure"
			                                       : "the MX records are not DNSSEC-secure");
			continue;
		}
		if (pol && pol->mode == BA_MTASTS_MODE_ENFORCE) {
			t->source = "MTA-STS";
			if (!ba_mtasts_match(pol, h)) {
				t->req = BA_MXSEC_SKIP;
				why(t, "%s: not an MX host of the MTA-STS policy of '%s' (mode enforce, "
				    "id %s): skipped", h, domain, pol->id);
			} else {
				t->req = BA_MXSEC_VERIFY;
				why(t, "%s: MTA-STS policy of '%s' (mode enforce, id %s): verified TLS", h,
				    domain, pol->id);
			}
			continue;
		}
		if (setting == BA_MX_TLS_VERIFY) {
			t->req = BA_MXSEC_VERIFY;
			t->source = "mx_tls_policy";
			why(t, "%s: verified TLS (mx_tls_policy verify)", h);
		} else if (pol && pol->mode == BA_MTASTS_MODE_TESTING) {
			t->source = "MTA-STS";
			t->report_only = 1;
			t->outside_policy = !ba_mtasts_match(pol, h);
			if (t->outside_policy)
				why(t, "%s: not an MX host of the MTA-STS policy of '%s' (mode testing, id "
				    "%s): enforce would skip it", h, domain, pol->id);
			else
				why(t, "%s: MTA-STS policy of '%s' (mode testing, id %s): certificate "
				    "checked, failures only logged", h, domain, pol->id);
		} else if (tlsa && tlsa[i].addr_insecure) {
			why(t, "%s: opportunistic STARTTLS (no DANE: its addresses are not "
			    "DNSSEC-secure, RFC 7672 §2.2.1)", h);
		} else {
			why(t, "%s: opportunistic STARTTLS", h);
		}
	}
	return 0;
}

/* The TXT records at _mta-sts.DOMAIN, then the policy (mtasts.h). */
static int sts_lookup(struct ba_mtasts_result *res, const struct ba_account *acc,
                      const char *domain, const struct ba_mxsec_opts *o, struct ba_err *err)
{
	struct ba_buf name = BA_BUF_INIT;
	ba_buf_addf(&name, "_mta-sts.%s", domain);
	if (ba_buf_failed(&name))
		return ba_err_set(err, EX_OSERR, "out of memory");
	struct ba_dns_answer a;
	struct ba_err qerr = BA_ERR_INIT;
	struct ba_mtasts_txt txt = { 0, 0, NULL, NULL };
	const char **recs = NULL;
	size_t *lens = NULL;
	int have = 0, rc = 0;
	if (ba_dns_query(&a, ba_buf_str(&name), BA_DNS_TXT, o->dns, &qerr) < 0) {
		if (qerr.flags & BA_ERR_CANCELLED) {
			*err = qerr;
			ba_buf_release(&name);
			return -1;
		}
		ba_log(o->log, BA_LOG_INFO, "mta-sts: %s", qerr.text);
		txt.failed = 1;
	} else {
		have = 1;
		recs = calloc(a.n ? a.n : 1, sizeof(*recs));
		lens = calloc(a.n ? a.n : 1, sizeof(*lens));
		if (!recs || !lens) {
			rc = ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < a.n; i++) {
			recs[i] = (const char *)a.rr[i].data;
			lens[i] = a.rr[i].len;
		}
		txt.n = a.n;
		txt.txt = recs;
		txt.len = lens;
	}
	struct ba_mtasts_params sp;
	memset(&sp, 0, sizeof(sp));
	if (o->sts)
		sp = *o->sts;
	if (!sp.trust_file)
		sp.trust_file = acc->tls_trust_file;
	if (!sp.log)
		sp.log = o->log;
	struct ba_err lerr = BA_ERR_INIT;
	if (ba_mtasts_lookup(res, domain, &txt, &sp, &lerr) < 0) {
		if (lerr.code == EX_OSERR) {
			*err = lerr;
			rc = -1;
		} else {
			ba_log(o->log, BA_LOG_INFO, "mta-sts: %s", lerr.text);
			memset(res, 0, sizeof(*res));
		}
	}
out:
	free(recs);
	free(lens);
	if (have)
		ba_dns_answer_release(&a);
	ba_buf_release(&name);
	return rc;
}

/* A host's addresses as looked up, before they are moved into its target. */
struct host_addrs {
	struct ba_net_addr *a;
	size_t n;
	enum ba_dns_status status;
	char canon[256];
	struct ba_err err;
};

/* Where the status of one more address answer leaves the host's: the weakest so far. */
static enum ba_dns_status weaker(enum ba_dns_status acc, enum ba_dns_status s)
{
	if (acc == BA_DNS_BOGUS || s == BA_DNS_BOGUS)
		return BA_DNS_BOGUS;
	if (acc == BA_DNS_INDETERMINATE || s == BA_DNS_INDETERMINATE)
		return BA_DNS_INDETERMINATE;
	if (acc == BA_DNS_INSECURE || s == BA_DNS_INSECURE)
		return BA_DNS_INSECURE;
	return BA_DNS_SECURE;
}

/*
 * The AAAA and A records of host through dns.h, with their DNSSEC status
 * (RFC 7672 §2.2.1), into *h: delivery connects to these and nothing else,
 * so what was validated is what is used.  One family failing (SERVFAIL,
 * timeout) leaves the other's addresses; a bogus answer of either makes
 * the host unusable now.  Returns 0 (h->err says when there is no address),
 * or -1 with err for a cancel or no memory.
 */
static int host_addresses(struct host_addrs *h, const char *host, const struct ba_dns_opts *dns,
                          struct ba_err *err)
{
	static const enum ba_dns_type types[2] = { BA_DNS_AAAA, BA_DNS_A };
	struct ba_err qerr[2] = { BA_ERR_INIT, BA_ERR_INIT };
	int answered = 0, failed = -1, bogus = -1, nxdomain = 0;
	enum ba_dns_status st = BA_DNS_SECURE;
	memset(h, 0, sizeof(*h));
	h->err = (struct ba_err)BA_ERR_INIT;
	h->a = calloc(BA_MXSEC_ADDRS_MAX, sizeof(*h->a));
	if (!h->a)
		return ba_err_set(err, EX_OSERR, "out of memory");
	/* one deadline for both, as one getaddrinfo() had */
	struct ba_dns_opts o;
	memset(&o, 0, sizeof(o));
	if (dns)
		o = *dns;
	int64_t deadline = ba_now_ms() + (o.timeout_ms > 0 ? o.timeout_ms : 30000);
	for (int k = 0; k < 2; k++) {
		struct ba_dns_answer a;
		int64_t left = deadline - ba_now_ms();
		o.timeout_ms = left > 0 ? (int)left : 1;
		if (ba_dns_query(&a, host, types[k], &o, &qerr[k]) < 0) {
			if ((qerr[k].flags & BA_ERR_CANCELLED) || qerr[k].code == EX_OSERR) {
				*err = qerr[k];
				return -1;
			}
			if (a.status == BA_DNS_BOGUS)
				bogus = k;
			failed = k;
			continue;
		}
		answered++;
		nxdomain |= a.nxdomain;
		st = weaker(st, a.status);
		if (a.canon[0] && strcasecmp(a.canon, host) != 0 && (!h->canon[0] || a.n))
			snprintf(h->canon, sizeof(h->canon), "%s", a.canon);
		for (size_t i = 0; i < a.n && h->n < BA_MXSEC_ADDRS_MAX; i++) {
			h->a[h->n].family = a.rr[i].family;
			memcpy(h->a[h->n].addr, a.rr[i].addr, sizeof(h->a[h->n].addr));
			h->n++;
		}
		ba_dns_answer_release(&a);
	}
	h->status = answered ? st : BA_DNS_INDETERMINATE;
	if (bogus >= 0) {
		h->n = 0;
		h->status = BA_DNS_BOGUS;
		h->err = qerr[bogus];
		ba_err_prefix(&h->err, "MX host %s: ", host);
	} else if (h->n == 0 && failed >= 0) {
		h->err = qerr[failed];
		ba_err_prefix(&h->err, "MX host %s: ", host);
	} else if (h->n == 0) {
		ba_err_set(&h->err, EX_NOHOST, "MX host '%s' %s", host,
		           nxdomain ? "does not exist" : "has no address records");
	}
	return 0;
}

/*
 * The TLSA records for host into *ans and in (RFC 7672 §2.2.2): at its
 * CNAME expansion canon first (when it is an alias), and when those are not
 * there or not secure, at the host's own name.  Returns 0, or -1 with err
 * for a cancel.
 */
static int host_tlsa(struct ba_mxsec_tlsa_input *in, struct ba_dns_answer *ans,
                     struct ba_err *qerr, const char *host, const char *canon,
                     const struct ba_dns_opts *dns, struct ba_err *err)
{
	const char *names[2] = { canon && *canon ? canon : NULL, host };
	for (int k = names[0] ? 0 : 1; k < 2; k++) {
		char name[300];
		snprintf(name, sizeof(name), "_25._tcp.%s", names[k]);
		in->asked = 1;
		in->base = k == 0 ? canon : NULL;
		if (ba_dns_query(ans, name, BA_DNS_TLSA, dns, qerr) < 0) {
			if (qerr->flags & BA_ERR_CANCELLED) {
				*err = *qerr;
				return -1;
			}
			in->failed = 1;
			in->status = ans->status;
			in->error = qerr->text;
			memset(ans, 0, sizeof(*ans));
			return 0;
		}
		in->answer = ans;
		if (k == 0 && !(ans->status == BA_DNS_SECURE && ans->n)) {
			ba_dns_answer_release(ans);
			in->answer = NULL;
			continue; /* none at the expansion: the original name's (RFC 7671 §7) */
		}
		return 0;
	}
	return 0;
}

int ba_mxsec_lookup(struct ba_mxsec *out, const struct ba_account *acc,
                    const struct ba_dns_mx_list *mxl, const struct ba_mxsec_opts *o,
                    struct ba_err *err)
{
	memset(out, 0, sizeof(*out));
	enum ba_config_mx_tls_policy setting = acc->mx_tls_policy;
	size_t n = mxl->n;
	const char **hosts = calloc(n ? n : 1, sizeof(*hosts));
	struct ba_mxsec_tlsa_input *in = calloc(n ? n : 1, sizeof(*in));
	struct ba_dns_answer *ans = calloc(n ? n : 1, sizeof(*ans));
	struct ba_err *qerr = calloc(n ? n : 1, sizeof(*qerr));
	struct host_addrs *ha = calloc(n ? n : 1, sizeof(*ha));
	int rc = -1;
	struct ba_mtasts_result sts;
	memset(&sts, 0, sizeof(sts));
	if (!hosts || !in || !ans || !qerr || !ha) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		hosts[i] = mxl->mx[i].host;
	for (size_t i = 0; i < n; i++) {
		if (host_addresses(&ha[i], hosts[i], o->dns, err) < 0)
			goto out;
		if (ha[i].status != BA_DNS_BOGUS)
			ba_log(o->log, BA_LOG_DEBUG, "%s: %zu address%s%s%s (%s)", hosts[i], ha[i].n,
			       ha[i].n == 1 ? "" : "es", ha[i].canon[0] ? ", an alias of " : "",
			       ha[i].canon, ba_dns_status_name(ha[i].status));
	}
	/*
	 * RFC 7672 §2.2.1: TLSA records count only behind a secure MX RRset and
	 * secure address records of the host (which are where delivery goes)
	 */
	for (size_t i = 0; i < n && setting != BA_MX_TLS_MAY && mxl->status == BA_DNS_SECURE; i++) {
		if (ha[i].err.code)
			continue; /* no address: the host is not tried */
		if (ha[i].status != BA_DNS_SECURE) {
			in[i].addr_insecure = 1;
			continue;
		}
		if (host_tlsa(&in[i], &ans[i], &qerr[i], hosts[i], ha[i].canon, o->dns, err) < 0)
			goto out;
	}
	/* MTA-STS only where DANE does not decide every host */
	if (ba_mxsec_decide(out, mxl->domain, hosts, n, setting, in, NULL, err) < 0)
		goto out;
	int need_sts = 0;
	for (size_t i = 0; i < n; i++)
		if (out->t[i].tlsa_status != BA_DNS_BOGUS && out->t[i].req != BA_MXSEC_DANE &&
		    out->t[i].req != BA_MXSEC_ENCRYPT && !(in[i].asked && in[i].failed))
			need_sts = 1;
	if (need_sts && (setting == BA_MX_TLS_AUTO || setting == BA_MX_TLS_VERIFY)) {
		ba_mxsec_release(out);
		if (sts_lookup(&sts, acc, mxl->domain, o, err) < 0)
			goto out;
		if (ba_mxsec_decide(out, mxl->domain, hosts, n, setting, in, &sts, err) < 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct ba_mxsec_target *t = &out->t[i];
		t->addrs = ha[i].a;
		t->naddrs = ha[i].n;
		ha[i].a = NULL;
		t->addr_status = ha[i].status;
		t->addr_err = ha[i].err;
		memcpy(t->canon, ha[i].canon, sizeof(t->canon));
		if (t->addr_err.code) {
			t->req = BA_MXSEC_DEFER;
			why(t, "%s", t->addr_err.text);
		}
		ba_log(o->log, BA_LOG_DEBUG, "%s: %s", ba_mxsec_req_name(t->req), t->why);
	}
	rc = 0;
out:
	for (size_t i = 0; ha && i < n; i++)
		free(ha[i].a);
	free(ha);
	for (size_t i = 0; ans && i < n; i++)
		if (in && in[i].answer)
			ba_dns_answer_release(&ans[i]);
	ba_mtasts_policy_release(&sts.policy);
	free(hosts);
	free(in);
	free(ans);
	free(qerr);
	if (rc < 0)
		ba_mxsec_release(out);
	return rc;
}
