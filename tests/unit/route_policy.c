/* tests/unit/route_policy.c - per-MX transport requirements: DANE, MTA-STS, mx_tls_policy */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/route_policy.h"

static unsigned char digest[32] = { 1, 2, 3 };

/* A TLSA answer of n records of usage u (3 1 1), with status st. */
static struct ba_dns_answer answer(enum ba_dns_status st, size_t n, unsigned u,
                                   struct ba_dns_rr *rr)
{
	struct ba_dns_answer a;
	memset(&a, 0, sizeof(a));
	a.status = st;
	a.n = n;
	a.rr = rr;
	for (size_t i = 0; i < n; i++) {
		memset(&rr[i], 0, sizeof(rr[i]));
		rr[i].usage = u;
		rr[i].selector = 1;
		rr[i].mtype = 1;
		rr[i].data = digest;
		rr[i].len = sizeof(digest);
	}
	return a;
}

static struct ba_mtasts_result policy(enum ba_mtasts_mode mode)
{
	struct ba_mtasts_result r;
	memset(&r, 0, sizeof(r));
	const char *text = mode == BA_MTASTS_MODE_ENFORCE
	                           ? "version: STSv1\nmode: enforce\nmx: *.a.test\nmax_age: 60\n"
	                   : mode == BA_MTASTS_MODE_TESTING
	                           ? "version: STSv1\nmode: testing\nmx: *.a.test\nmax_age: 60\n"
	                           : "version: STSv1\nmode: none\nmax_age: 60\n";
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_mtasts_parse_policy(&r.policy, text, strlen(text), &err), 0);
	memcpy(r.policy.id, "7", 2);
	r.source = BA_MTASTS_SRC_FETCHED;
	return r;
}

static const char *const hosts[] = { "mx1.a.test", "mx.other.test" };

static void decide(struct ba_mxsec *m, enum ba_config_mx_tls_policy setting,
                   const struct ba_mxsec_tlsa_input *in, const struct ba_mtasts_result *sts)
{
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_mxsec_decide(m, "a.test", hosts, 2, setting, in, sts, &err), 0);
	assert_int_equal(m->n, 2);
}

static void test_route_policy__may_looks_at_nothing(void **state)
{
	(void)state;
	struct ba_dns_rr rr[1];
	struct ba_dns_answer a = answer(BA_DNS_SECURE, 1, 3, rr);
	struct ba_mxsec_tlsa_input in[2] = { { 1, 0, &a, 0, NULL, 0, NULL },
		                             { 1, 0, &a, 0, NULL, 0, NULL } };
	struct ba_mtasts_result sts = policy(BA_MTASTS_MODE_ENFORCE);
	struct ba_mxsec m;
	decide(&m, BA_MX_TLS_MAY, in, &sts);
	assert_int_equal(m.t[0].req, BA_MXSEC_MAY);
	assert_int_equal(m.t[1].req, BA_MXSEC_MAY);
	assert_int_equal(m.sts_looked_up, 0);
	ba_mxsec_release(&m);
	ba_mtasts_policy_release(&sts.policy);
}

static void test_route_policy__dane(void **state)
{
	(void)state;
	struct ba_dns_rr rr1[2], rr2[1];
	struct ba_dns_answer good = answer(BA_DNS_SECURE, 2, 3, rr1);
	rr1[1].usage = 1; /* PKIX-EE: left out */
	struct ba_dns_answer none = answer(BA_DNS_SECURE, 0, 3, rr2);
	struct ba_mxsec_tlsa_input in[2] = { { 1, 0, &good, 0, NULL, 0, NULL },
		                             { 1, 0, &none, 0, NULL, 0, NULL } };
	struct ba_mxsec m;
	decide(&m, BA_MX_TLS_AUTO, in, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_DANE);
	assert_int_equal(m.t[0].ntlsa, 1);
	assert_int_equal(m.t[0].tlsa[0].usage, 3);
	assert_memory_equal(m.t[0].tlsa[0].data, digest, 32);
	assert_true(m.t[0].tlsa[0].data != digest); /* a copy: the answer may go */
	assert_string_equal(m.t[0].source, "DANE");
	assert_int_equal(m.t[1].req, BA_MXSEC_MAY); /* proven absent: opportunistic */
	ba_mxsec_release(&m);

	/* only unusable records: TLS still mandatory, unauthenticated (RFC 7672 §2.2) */
	struct ba_dns_answer pkix = answer(BA_DNS_SECURE, 1, 0, rr2);
	in[1].answer = &pkix;
	decide(&m, BA_MX_TLS_AUTO, in, NULL);
	assert_int_equal(m.t[1].req, BA_MXSEC_ENCRYPT);
	assert_int_equal(m.t[1].ntlsa, 0);
	ba_mxsec_release(&m);

	/* records that are not secure do not count */
	struct ba_dns_answer insecure = answer(BA_DNS_INSECURE, 1, 3, rr2);
	struct ba_dns_answer indet = answer(BA_DNS_INDETERMINATE, 1, 3, rr2);
	in[0].answer = &insecure;
	in[1].answer = &indet;
	decide(&m, BA_MX_TLS_AUTO, in, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_MAY);
	assert_int_equal(m.t[1].req, BA_MXSEC_MAY);
	ba_mxsec_release(&m);

	/* not asked (the MX RRset is not secure): no DANE */
	struct ba_mxsec_tlsa_input notasked[2] = { { 0, 0, &good, 0, NULL, 0, NULL },
		                                   { 0, 0, NULL, 0, NULL, 0, NULL } };
	decide(&m, BA_MX_TLS_AUTO, notasked, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_MAY);
	ba_mxsec_release(&m);

	/* not asked because the host's addresses are not secure (RFC 7672 §2.2.1): said so */
	notasked[0].addr_insecure = 1;
	decide(&m, BA_MX_TLS_AUTO, notasked, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_MAY);
	assert_non_null(strstr(m.t[0].why, "its addresses are not DNSSEC-secure"));
	ba_mxsec_release(&m);
	decide(&m, BA_MX_TLS_DANE_ONLY, notasked, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_DEFER);
	assert_non_null(strstr(m.t[0].why, "its addresses are not DNSSEC-secure"));
	ba_mxsec_release(&m);

	/* records found at the CNAME expansion: that is the TLSA base domain */
	struct ba_mxsec_tlsa_input alias[2] = { { 1, 0, &good, 0, NULL, 0, "mx.target.test" },
		                                { 0, 0, NULL, 0, NULL, 0, NULL } };
	decide(&m, BA_MX_TLS_AUTO, alias, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_DANE);
	assert_string_equal(m.t[0].tlsa_base, "mx.target.test");
	assert_non_null(strstr(m.t[0].why, "at its CNAME target mx.target.test"));
	ba_mxsec_release(&m);
	in[0].answer = &good;
	decide(&m, BA_MX_TLS_AUTO, in, NULL);
	assert_string_equal(m.t[0].tlsa_base, "mx1.a.test");
	ba_mxsec_release(&m);

	/* bogus, or a failed lookup: that host is a temporary failure, the other is tried */
	struct ba_mxsec_tlsa_input bad[2] = { { 1, 1, NULL, BA_DNS_BOGUS, "x", 0, NULL },
		                              { 1, 1, NULL, BA_DNS_INDETERMINATE, "SERVFAIL", 0, NULL } };
	decide(&m, BA_MX_TLS_AUTO, bad, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_DEFER);
	assert_non_null(strstr(m.t[0].why, "mx1.a.test: its TLSA records fail DNSSEC validation"));
	assert_int_equal(m.t[1].req, BA_MXSEC_DEFER);
	assert_non_null(strstr(m.t[1].why, "SERVFAIL"));
	ba_mxsec_release(&m);
}

static void test_route_policy__mta_sts(void **state)
{
	(void)state;
	struct ba_mxsec m;
	struct ba_mtasts_result sts = policy(BA_MTASTS_MODE_ENFORCE);
	decide(&m, BA_MX_TLS_AUTO, NULL, &sts);
	assert_int_equal(m.t[0].req, BA_MXSEC_VERIFY);
	assert_int_equal(m.t[1].req, BA_MXSEC_SKIP);
	assert_non_null(strstr(m.t[1].why, "not an MX host of the MTA-STS policy of 'a.test'"));
	assert_int_equal(m.sts_looked_up, 1);
	assert_string_equal(m.sts.policy.mx[0], "*.a.test");
	assert_true(m.sts.policy.mx != sts.policy.mx); /* a copy */
	ba_mxsec_release(&m);
	/* DANE wins over MTA-STS where it applies (RFC 8461 §2), even outside the policy */
	struct ba_dns_rr rr[1];
	struct ba_dns_answer good = answer(BA_DNS_SECURE, 1, 2, rr);
	struct ba_mxsec_tlsa_input in[2] = { { 1, 0, NULL, 0, NULL, 0, NULL },
		                             { 1, 0, &good, 0, NULL, 0, NULL } };
	struct ba_dns_answer empty = answer(BA_DNS_SECURE, 0, 3, rr);
	in[0].answer = &empty;
	decide(&m, BA_MX_TLS_AUTO, in, &sts);
	assert_int_equal(m.t[0].req, BA_MXSEC_VERIFY);
	assert_int_equal(m.t[1].req, BA_MXSEC_DANE);
	ba_mxsec_release(&m);
	ba_mtasts_policy_release(&sts.policy);

	/* testing: delivered as usual, checks only reported */
	sts = policy(BA_MTASTS_MODE_TESTING);
	decide(&m, BA_MX_TLS_AUTO, NULL, &sts);
	assert_int_equal(m.t[0].req, BA_MXSEC_MAY);
	assert_int_equal(m.t[0].report_only, 1);
	assert_int_equal(m.t[0].outside_policy, 0);
	assert_int_equal(m.t[1].req, BA_MXSEC_MAY);
	assert_int_equal(m.t[1].outside_policy, 1);
	assert_non_null(strstr(m.t[1].why, "enforce would skip it"));
	ba_mxsec_release(&m);
	ba_mtasts_policy_release(&sts.policy);

	/* mode none: as if there were no policy */
	sts = policy(BA_MTASTS_MODE_NONE);
	decide(&m, BA_MX_TLS_AUTO, NULL, &sts);
	assert_int_equal(m.t[0].req, BA_MXSEC_MAY);
	assert_int_equal(m.t[1].req, BA_MXSEC_MAY);
	assert_int_equal(m.t[1].report_only, 0);
	ba_mxsec_release(&m);
	ba_mtasts_policy_release(&sts.policy);
}

static void test_route_policy__verify_and_dane_only(void **state)
{
	(void)state;
	struct ba_mxsec m;
	decide(&m, BA_MX_TLS_VERIFY, NULL, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_VERIFY);
	assert_int_equal(m.t[1].req, BA_MXSEC_VERIFY);
	ba_mxsec_release(&m);
	/* verify keeps the MTA-STS list: it only adds */
	struct ba_mtasts_result sts = policy(BA_MTASTS_MODE_ENFORCE);
	decide(&m, BA_MX_TLS_VERIFY, NULL, &sts);
	assert_int_equal(m.t[1].req, BA_MXSEC_SKIP);
	ba_mxsec_release(&m);
	/* dane-only: DANE or nothing (and MTA-STS is not consulted) */
	struct ba_dns_rr rr[1], rr2[1];
	struct ba_dns_answer good = answer(BA_DNS_SECURE, 1, 3, rr);
	struct ba_dns_answer pkix = answer(BA_DNS_SECURE, 1, 1, rr2);
	struct ba_mxsec_tlsa_input in[2] = { { 1, 0, &good, 0, NULL, 0, NULL },
		                             { 1, 0, &pkix, 0, NULL, 0, NULL } };
	decide(&m, BA_MX_TLS_DANE_ONLY, in, &sts);
	assert_int_equal(m.t[0].req, BA_MXSEC_DANE);
	assert_int_equal(m.t[1].req, BA_MXSEC_DEFER);
	assert_non_null(strstr(m.t[1].why, "dane-only"));
	assert_int_equal(m.sts_looked_up, 0);
	ba_mxsec_release(&m);
	decide(&m, BA_MX_TLS_DANE_ONLY, NULL, NULL);
	assert_int_equal(m.t[0].req, BA_MXSEC_DEFER);
	assert_non_null(strstr(m.t[0].why, "not DNSSEC-secure"));
	ba_mxsec_release(&m);
	ba_mtasts_policy_release(&sts.policy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_policy__may_looks_at_nothing),
		cmocka_unit_test(test_route_policy__dane),
		cmocka_unit_test(test_route_policy__mta_sts),
		cmocka_unit_test(test_route_policy__verify_and_dane_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
