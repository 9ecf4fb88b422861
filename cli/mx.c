/* cli/mx.c - bluearrow mx: the route direct delivery would take to a domain; nothing is sent
 *
 * For each domain: its mail exchangers in the order they would be tried
 * (ba_dns_mx()), their addresses and the DNSSEC status of each answer, the
 * TLSA records of each host, and what delivery would require of the
 * transport.  --probe connects to port 25 of each host as `check` connects
 * to a relay: the greeting, STARTTLS, and the certificate checked against
 * the account's tls_trust_file (the system store by default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bluearrow/dns.h"
#include "bluearrow/log.h"
#include "bluearrow/route.h"
#include "bluearrow/route_policy.h"
#include "bluearrow/submit.h"
#include "cli.h"
#include "output.h"

const char cli_mx_usage[] =
	"usage: bluearrow mx [-C FILE] [-a ACCOUNT] [--probe] [-v] DOMAIN...\n"
	"\n"
	"Shows the route direct delivery would take to each DOMAIN, without sending:\n"
	"its mail exchangers in the order they are tried (equal preferences in a new\n"
	"random order on every run), their addresses, the DNSSEC status of each answer\n"
	"(secure, insecure, bogus, indeterminate) and who validated it, the TLSA records\n"
	"of each host (_25._tcp.HOST), the MTA-STS policy and its age, and what delivery\n"
	"would require of each host (dane, encrypt, verify, may, skip or defer).  A\n"
	"domain with a null MX, or none at all, is reported as sendmail would fail on it.\n"
	"\n"
	"  -C, --file FILE        the configuration file (optional: dnssec_trust_anchor,\n"
	"                         timeout and tls_trust_file are taken from the account)\n"
	"  -a, --account ACCOUNT  the account (default: the default account)\n"
	"      --probe            connect to port 25 of each host: greeting, STARTTLS and\n"
	"                         the certificate checked against tls_trust_file (or\n"
	"                         the TLSA records, for a host that requires DANE)\n"
	"  -v, --verbose          show the DNS queries and the SMTP dialogue on stderr\n"
	"\n"
	"Exit status: 0 when every domain has a route; else that of the first failure\n"
	"(68 EX_NOHOST: no such domain, 69 EX_UNAVAILABLE: null MX, 75 EX_TEMPFAIL:\n"
	"DNS failure or a bogus answer).\n";

#define MX_TIMEOUT_MS 10000

static void log_stderr(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	fprintf(stderr, "%s\n", msg);
}

/* The addresses of host, "192.0.2.1 2001:db8::1", and the status of each family's answer. */
static void print_addresses(const char *host, const struct ba_dns_opts *o)
{
	static const enum ba_dns_type types[2] = { BA_DNS_A, BA_DNS_AAAA };
	printf("    address");
	int any = 0;
	char status[128] = "", canon[256] = "";
	for (int t = 0; t < 2; t++) {
		struct ba_dns_answer a;
		struct ba_err err = BA_ERR_INIT;
		if (ba_dns_query(&a, host, types[t], o, &err) < 0) {
			printf(" (%s: %s)", t ? "AAAA" : "A", err.text);
			any = 1;
			continue;
		}
		for (size_t i = 0; i < a.n; i++)
			printf(" %s", a.rr[i].text);
		if (a.n && strcmp(a.canon, host) != 0)
			snprintf(canon, sizeof(canon), "%s", a.canon);
		any |= a.n > 0;
		if (a.n)
			snprintf(status + strlen(status), sizeof(status) - strlen(status), "%s%s %s",
			         status[0] ? ", " : "", t ? "AAAA" : "A", ba_dns_status_name(a.status));
		ba_dns_answer_release(&a);
	}
	if (!any)
		printf(" none");
	if (status[0])
		printf("  [%s]", status);
	printf("\n");
	if (canon[0])
		printf("    alias   of %s (CNAME)\n", canon);
}

/* The TLSA records of host's port 25 (RFC 7672 §2.2), with their status. */
static void print_tlsa(const char *host, const struct ba_dns_opts *o)
{
	char name[300];
	snprintf(name, sizeof(name), "_25._tcp.%s", host);
	struct ba_dns_answer a;
	struct ba_err err = BA_ERR_INIT;
	if (ba_dns_query(&a, name, BA_DNS_TLSA, o, &err) < 0) {
		printf("    tlsa    error: %s\n", err.text);
		return;
	}
	if (a.n == 0)
		printf("    tlsa    none [%s]\n", ba_dns_status_name(a.status));
	for (size_t i = 0; i < a.n; i++) {
		printf("    tlsa    %u %u %u ", a.rr[i].usage, a.rr[i].selector, a.rr[i].mtype);
		for (size_t k = 0; k < a.rr[i].len && k < 32; k++)
			printf("%02x", a.rr[i].data[k]);
		printf("%s [%s]\n", a.rr[i].len > 32 ? "..." : "", ba_dns_status_name(a.status));
	}
	ba_dns_answer_release(&a);
}

static const char *const setting_names[] = { "auto", "verify", "dane-only", "may" };

/*
 * What delivery to the domain would require of the transport, as sending
 * decides it (route_policy.h), into *m; the policy cache is read, never
 * written.  Returns 0, or -1 with err set.
 */
static int lookup_policy(struct ba_mxsec *m, const struct ba_account *acc,
                         const struct ba_dns_mx_list *l, const struct ba_dns_opts *o,
                         const struct ba_log *log, struct ba_err *err)
{
	struct ba_mtasts_params sp;
	memset(&sp, 0, sizeof(sp));
	sp.timeout_ms = o->timeout_ms;
	sp.no_cache_write = 1;
	sp.log = log;
	struct ba_mxsec_opts so = { o, &sp, log };
	return ba_mxsec_lookup(m, acc, l, &so, err);
}

/* The setting, the MTA-STS policy and its age, then each host's requirement. */
static void print_policy(const struct ba_account *acc, const struct ba_mxsec *mp, int rc,
                         const struct ba_err *err)
{
	unsigned setting = (unsigned)acc->mx_tls_policy;
	printf("  policy    mx_tls_policy %s\n", setting < 4 ? setting_names[setting] : "?");
	if (rc < 0) {
		printf("  requires  error: %s\n", err->text);
		return;
	}
	const struct ba_mxsec m = *mp;
	if (m.sts_looked_up && m.sts.source == BA_MTASTS_SRC_NONE) {
		printf("  mta-sts   none%s%s%s\n", m.sts.note[0] ? " (" : "", m.sts.note,
		       m.sts.note[0] ? ")" : "");
	} else if (m.sts_looked_up) {
		const struct ba_mtasts_policy *p = &m.sts.policy;
		long long age = (long long)(time(NULL) - p->fetched);
		printf("  mta-sts   mode %s, id %s, max_age %ld, %s %lld s ago\n",
		       ba_mtasts_mode_name(p->mode), p->id, p->max_age,
		       m.sts.source == BA_MTASTS_SRC_CACHED ? "cached, fetched" : "fetched",
		       age < 0 ? 0 : age);
		for (size_t i = 0; i < p->nmx; i++)
			printf("  mta-sts   mx %s\n", p->mx[i]);
		if (m.sts.note[0])
			printf("  mta-sts   note: %s\n", m.sts.note);
	}
	for (size_t i = 0; i < m.n; i++)
		printf("  requires  %s: %s\n", ba_mxsec_req_name(m.t[i].req), m.t[i].why);
}

/*
 * Connects to host:25 as a relay account with STARTTLS and the certificate
 * checked (a copy of acc with that host), so the same code as `check` says
 * what the host offers; against its TLSA records when sec requires DANE.
 * Nothing is sent.
 */
static void probe(const struct ba_account *acc, const char *host,
                  const struct ba_mxsec_target *sec, const struct ba_log *log)
{
	struct ba_account a = *acc;
	a.delivery = BA_DELIVERY_RELAY;
	a.host = host;
	a.socket = NULL;
	a.port = 25;
	a.tls = 1;
	a.tls_starttls = 1;
	a.tls_certcheck = 1;
	a.tls_fingerprint = NULL;
	a.tls_fingerprint_len = 0;
	a.tls_host_override = NULL;
	a.auth = 0;
	a.protocol = BA_PROTO_SMTP;
	if (!(acc->mask & (UINT64_C(1) << BA_KEY_DOMAIN)))
		a.domain = "%C";
	if (!a.tls_trust_file || !*a.tls_trust_file)
		a.tls_trust_file = "system";
	struct ba_route_report rep;
	memset(&rep, 0, sizeof(rep));
	struct ba_route_opts ro;
	memset(&ro, 0, sizeof(ro));
	ro.log = log;
	ro.timeout_ms = MX_TIMEOUT_MS;
	ro.report = &rep;
	/* where delivery would connect: the addresses its DNS lookups found */
	struct ba_route_target tgt = { host, 25, sec && sec->req == BA_MXSEC_DANE ? sec : NULL,
		                       sec ? sec->addrs : NULL, sec ? sec->naddrs : 0 };
	if (sec && sec->addr_err.code) {
		printf("    probe   %s:25: %s\n", host, sec->addr_err.text);
		return;
	}
	ro.plan = &tgt;
	ro.nplan = 1;
	ba_route *r = NULL;
	struct ba_err err = BA_ERR_INIT;
	int rc = ba_route_open(&r, &a, &ro, &err);
	printf("    probe   %s:25: ", host);
	if (rc == 0 && rep.tls.dane)
		printf("STARTTLS %s, certificate matches its TLSA records (%s; %s)\n",
		       rep.tls.version, rep.tls.dane == 3 ? "DANE-EE" : "DANE-TA", rep.tls.subject);
	else if (rc == 0)
		printf("STARTTLS %s, certificate verified for '%s' (%s)\n", rep.tls.version, host,
		       rep.tls.subject);
	else if (rep.tls_attempted && rep.tls.subject[0])
		printf("STARTTLS%s%s, certificate NOT verified: %s\n", rep.tls.version[0] ? " " : "",
		       rep.tls.version, err.text);
	else if (!rep.tls_attempted && strstr(err.text, "STARTTLS") && sec &&
	         (sec->req == BA_MXSEC_ENCRYPT || sec->req == BA_MXSEC_VERIFY ||
	          sec->req == BA_MXSEC_DANE))
		printf("no STARTTLS offered: delivery would fail (%s requires TLS)\n",
		       *sec->source ? sec->source : "the policy");
	else if (!rep.tls_attempted && strstr(err.text, "STARTTLS"))
		printf("no STARTTLS offered: delivery would be in plaintext\n");
	else
		printf("%s\n", err.text);
	ba_route_free(r);
}

static int show_domain(const struct ba_account *acc, const char *domain,
                       const struct ba_dns_opts *o, int do_probe, const struct ba_log *log)
{
	struct ba_dns_mx_list l;
	struct ba_err err = BA_ERR_INIT;
	if (ba_dns_mx(&l, domain, o, &err) < 0) {
		printf("%s\n  error     %s\n", domain, err.text);
		return err.code ? err.code : EX_SOFTWARE;
	}
	struct ba_mxsec m;
	struct ba_err perr = BA_ERR_INIT;
	int prc = lookup_policy(&m, acc, &l, o, log, &perr);
	printf("%s\n", l.domain);
	printf("  dnssec    %s (MX%s answer)\n", ba_dns_status_name(l.status),
	       l.implicit ? " denial: implicit MX" : "");
	for (size_t i = 0; i < l.n; i++) {
		printf("  mx %-5u  %s%s\n", l.mx[i].preference, l.mx[i].host,
		       l.implicit ? " (implicit: the domain itself)" : "");
		print_addresses(l.mx[i].host, o);
		/* the TLSA records that apply: at the CNAME expansion when DANE found them there */
		print_tlsa(prc == 0 && m.t[i].tlsa_base[0] ? m.t[i].tlsa_base : l.mx[i].host, o);
		if (do_probe)
			probe(acc, l.mx[i].host, prc == 0 ? &m.t[i] : NULL, log);
	}
	print_policy(acc, &m, prc, &perr);
	if (prc == 0)
		ba_mxsec_release(&m);
	ba_dns_mx_release(&l);
	return 0;
}

int cli_cmd_mx(int argc, char **argv)
{
	const char *file = NULL, *account = NULL;
	int verbose = 0, do_probe = 0, first = 0;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char **dst;
		if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
			verbose = 1;
			continue;
		}
		if (strcmp(s, "--probe") == 0) {
			do_probe = 1;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			first = i + 1;
			break;
		}
		if (s[0] != '-') {
			first = i;
			break;
		}
		dst = cli_file_or_account(s, &file, &account);
		if (!dst)
			return cli_usage_error("mx", "unknown argument '%s'", s);
		if (i + 1 >= argc)
			return cli_usage_error("mx", "option '%s' needs a value", s);
		*dst = argv[++i];
	}
	if (!first || first >= argc)
		return cli_usage_error("mx", "no domain given");
	for (int i = first; i < argc; i++)
		if (cli_check_value("mx", "DOMAIN", argv[i]) != 0)
			return EX_USAGE;
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	const struct ba_account *acc = NULL;
	/* the configuration is optional here: without one, the system resolver and no anchor */
	if (ba_submit_config(&cfg, file, &err) == 0)
		acc = ba_config_account(cfg, account, &err);
	else if (file || account || err.code == EX_OSERR)
		return cli_fail(&err);
	if (cfg && !acc) {
		ba_config_free(cfg);
		return cli_fail(&err);
	}
	static const struct ba_account none; /* a zero account: the defaults */
	if (!acc)
		acc = &none;
	struct ba_log log = { log_stderr, NULL, BA_LOG_PROTO };
	struct ba_dns_opts o;
	memset(&o, 0, sizeof(o));
	o.timeout_ms = acc->timeout > 0 && acc->timeout * 1000 < MX_TIMEOUT_MS ? acc->timeout * 1000
	                                                                       : MX_TIMEOUT_MS;
	o.trust_anchor = acc->dnssec_trust_anchor;
	o.log = verbose ? &log : NULL;
	char desc[300];
	ba_dns_validator(&o, desc, sizeof(desc));
	if (acc->name && !ba_config_delivers_mx(acc))
		printf("account   %s relays through %s: this is the route it would take with "
		       "'delivery mx'\n", acc->name, acc->host ? acc->host : acc->socket);
	printf("validator %s\n", desc);
	int code = 0;
	for (int i = first; i < argc; i++) {
		int c = show_domain(acc, argv[i], &o, do_probe, verbose ? &log : NULL);
		if (c && !code)
			code = c;
	}
	fflush(stdout);
	ba_config_free(cfg);
	return code;
}
