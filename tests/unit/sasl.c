/* tests/unit/sasl.c - SASL mechanisms against the RFCs' example exchanges
 *
 * The -PLUS, "y,," and escaping vectors were computed independently with
 * Python's hashlib.pbkdf2_hmac and hmac (the same script reproduces the
 * RFC 5802 and RFC 7677 examples byte for byte).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/sasl.h"

/* ---- helpers ------------------------------------------------------------- */

static ba_sasl *new_or_fail(const struct ba_sasl_params *p)
{
	struct ba_err err = BA_ERR_INIT;
	ba_sasl *s = NULL;
	if (ba_sasl_new(&s, p, &err) < 0)
		fail_msg("ba_sasl_new: %s", err.text);
	assert_non_null(s);
	return s;
}

/* one step with a string challenge (NULL = initial); expects success and the response */
static void step_ok(ba_sasl *s, const char *challenge, const void *expect, size_t elen)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	int rc = ba_sasl_step(s, (const unsigned char *)challenge, challenge ? strlen(challenge) : 0,
			      &out, &err);
	if (rc < 0)
		fail_msg("ba_sasl_step: %s", err.text);
	assert_int_equal(out.len, elen);
	if (elen)
		assert_memory_equal(out.data, expect, elen);
	ba_buf_release_secret(&out);
}

static void step_str(ba_sasl *s, const char *challenge, const char *expect)
{
	step_ok(s, challenge, expect, strlen(expect));
}

/* one step expected to fail with class code */
static void step_fails(ba_sasl *s, const char *challenge, int code)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	int rc = ba_sasl_step(s, (const unsigned char *)challenge, challenge ? strlen(challenge) : 0,
			      &out, &err);
	assert_int_equal(rc, -1);
	if (err.code != code)
		fail_msg("expected class %d, got %d: %s", code, err.code, err.text);
	assert_true(err.text[0] != 0);
	ba_buf_release_secret(&out);
}

static const char rfc5802_cfirst[] = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
static const char rfc5802_sfirst[] =
	"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
static const char rfc5802_cfinal[] =
	"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
static const char rfc5802_sfinal[] = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

static const char rfc7677_cfirst[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char rfc7677_sfirst[] =
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char rfc7677_cfinal[] =
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char rfc7677_sfinal[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static ba_sasl *scram1(void)
{
	struct ba_sasl_params p = { .mech = BA_SASL_SCRAM_SHA_1, .user = "user",
				    .password = "pencil",
				    .client_nonce = "fyko+d2lbbFgONRv9qkxdawL" };
	return new_or_fail(&p);
}

static ba_sasl *scram256(void)
{
	struct ba_sasl_params p = { .mech = BA_SASL_SCRAM_SHA_256, .user = "user",
				    .password = "pencil", .client_nonce = "rOprNGfwEbeRWgbNEkqO" };
	return new_or_fail(&p);
}

/* ---- names ----------------------------------------------------------------- */

static void test_sasl__names_round_trip(void **state)
{
	(void)state;
	for (int m = BA_SASL_PLAIN; m <= BA_SASL_EXTERNAL; m++) {
		const char *n = ba_sasl_mech_name((enum ba_sasl_mech)m);
		assert_non_null(n);
		assert_int_equal(ba_sasl_mech_from_name(n), m);
	}
	assert_null(ba_sasl_mech_name(BA_SASL_NONE));
	assert_int_equal(ba_sasl_mech_from_name("scram-sha-256-plus"), BA_SASL_SCRAM_SHA_256_PLUS);
	assert_int_equal(ba_sasl_mech_from_name("GSSAPI"), BA_SASL_NONE);
	assert_int_equal(ba_sasl_mech_from_name("SCRAM-SHA-256-"), BA_SASL_NONE);
	assert_int_equal(ba_sasl_mech_from_name(NULL), BA_SASL_NONE);
	assert_true(ba_sasl_mech_is_cleartext(BA_SASL_PLAIN));
	assert_true(ba_sasl_mech_is_cleartext(BA_SASL_LOGIN));
	assert_false(ba_sasl_mech_is_cleartext(BA_SASL_CRAM_MD5));
	assert_true(ba_sasl_mech_uses_token(BA_SASL_XOAUTH2));
	assert_true(ba_sasl_mech_uses_token(BA_SASL_OAUTHBEARER));
	assert_false(ba_sasl_mech_uses_token(BA_SASL_SCRAM_SHA_1));
}

/* ---- pick ------------------------------------------------------------------ */

static void test_sasl__pick_table(void **state)
{
	(void)state;
	static const struct {
		const char *list;
		unsigned flags;
		enum ba_sasl_mech want;
	} t[] = {
		{ "PLAIN LOGIN", 0, BA_SASL_NONE },
		{ "PLAIN LOGIN", BA_SASL_TLS_ACTIVE, BA_SASL_PLAIN },
		{ "LOGIN", BA_SASL_TLS_ACTIVE, BA_SASL_LOGIN },
		{ "PLAIN CRAM-MD5 SCRAM-SHA-256", BA_SASL_TLS_ACTIVE, BA_SASL_SCRAM_SHA_256 },
		{ "PLAIN CRAM-MD5 SCRAM-SHA-256", 0, BA_SASL_SCRAM_SHA_256 },
		{ "PLAIN CRAM-MD5", 0, BA_SASL_CRAM_MD5 },
		{ "SCRAM-SHA-1 SCRAM-SHA-256", BA_SASL_TLS_ACTIVE, BA_SASL_SCRAM_SHA_256 },
		{ "SCRAM-SHA-1 PLAIN", BA_SASL_TLS_ACTIVE, BA_SASL_SCRAM_SHA_1 },
		{ "SCRAM-SHA-256 SCRAM-SHA-256-PLUS", BA_SASL_TLS_ACTIVE, BA_SASL_SCRAM_SHA_256 },
		{ "SCRAM-SHA-256 SCRAM-SHA-256-PLUS", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_CB,
		  BA_SASL_SCRAM_SHA_256_PLUS },
		{ "SCRAM-SHA-1-PLUS SCRAM-SHA-256", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_CB,
		  BA_SASL_SCRAM_SHA_1_PLUS },
		{ "scram-sha-256-plus\tplain", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_CB,
		  BA_SASL_SCRAM_SHA_256_PLUS },
		/* a prefix of a name is not the name */
		{ "SCRAM-SHA-256-PLUSX PLAINX", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_CB, BA_SASL_NONE },
		{ "  PLAIN  ", BA_SASL_TLS_ACTIVE, BA_SASL_PLAIN },
		{ "", BA_SASL_TLS_ACTIVE, BA_SASL_NONE },
		{ "GSSAPI NTLM", BA_SASL_TLS_ACTIVE, BA_SASL_NONE },
		/* OAuth2: only with a token, only with TLS, never a password mechanism then */
		{ "XOAUTH2 OAUTHBEARER PLAIN", BA_SASL_TLS_ACTIVE, BA_SASL_PLAIN },
		{ "XOAUTH2 OAUTHBEARER PLAIN", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_TOKEN,
		  BA_SASL_OAUTHBEARER },
		{ "XOAUTH2 PLAIN", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_TOKEN, BA_SASL_XOAUTH2 },
		{ "XOAUTH2 OAUTHBEARER", BA_SASL_HAVE_TOKEN, BA_SASL_NONE },
		{ "SCRAM-SHA-256 PLAIN", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_TOKEN, BA_SASL_NONE },
		/* EXTERNAL only with a certificate over TLS */
		{ "EXTERNAL PLAIN", BA_SASL_TLS_ACTIVE, BA_SASL_PLAIN },
		{ "EXTERNAL SCRAM-SHA-256", BA_SASL_TLS_ACTIVE | BA_SASL_HAVE_CERT, BA_SASL_EXTERNAL },
		{ "EXTERNAL", BA_SASL_HAVE_CERT, BA_SASL_NONE },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum ba_sasl_mech got = ba_sasl_pick(t[i].list, t[i].flags);
		if (got != t[i].want)
			fail_msg("pick(\"%s\", %u) = %d, want %d", t[i].list, t[i].flags, got,
				 t[i].want);
	}
	assert_int_equal(ba_sasl_pick(NULL, BA_SASL_TLS_ACTIVE), BA_SASL_NONE);
}

/* ---- new ------------------------------------------------------------------- */

static void test_sasl__new_refuses_bad_params(void **state)
{
	(void)state;
	static const unsigned char cb[4] = { 1, 2, 3, 4 };
	struct {
		struct ba_sasl_params p;
	} t[] = {
		{ { .mech = BA_SASL_NONE, .user = "u", .password = "p" } },
		{ { .mech = BA_SASL_PLAIN, .password = "p" } },
		{ { .mech = BA_SASL_PLAIN, .user = "u" } },
		{ { .mech = BA_SASL_PLAIN, .user = "", .password = "p" } },
		{ { .mech = BA_SASL_XOAUTH2, .user = "u" } },
		{ { .mech = BA_SASL_PLAIN, .user = "u\r\nRSET", .password = "p" } },
		{ { .mech = BA_SASL_XOAUTH2, .user = "u", .password = "tok\001auth=x" } },
		{ { .mech = BA_SASL_PLAIN, .user = "u", .password = "p\xc2\x85" } }, /* C1 NEL */
		{ { .mech = BA_SASL_PLAIN, .user = "u", .password = "p", .authzid = "a\tb" } },
		{ { .mech = BA_SASL_SCRAM_SHA_256_PLUS, .user = "u", .password = "p" } },
		{ { .mech = BA_SASL_SCRAM_SHA_256_PLUS, .user = "u", .password = "p", .cb_data = cb,
		    .cb_len = sizeof(cb), .cb_type = "tls-server-end-point" } },
		{ { .mech = BA_SASL_SCRAM_SHA_1, .user = "u", .password = "p", .client_nonce = "a,b" } },
		{ { .mech = BA_SASL_SCRAM_SHA_1, .user = "u", .password = "p", .client_nonce = "" } },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ba_err err = BA_ERR_INIT;
		ba_sasl *s = (ba_sasl *)&err; /* must be reset to NULL */
		if (ba_sasl_new(&s, &t[i].p, &err) != -1)
			fail_msg("case %zu accepted", i);
		assert_null(s);
		assert_int_equal(err.code, EX_USAGE);
	}
	/* UTF-8 passes through (minimal SASLprep) */
	struct ba_sasl_params ok = { .mech = BA_SASL_PLAIN, .user = "j\xc3\xb6rg",
				     .password = "p\xc3\xa4ss" };
	ba_sasl *s = new_or_fail(&ok);
	step_ok(s, NULL, "\0j\xc3\xb6rg\0p\xc3\xa4ss", 12);
	ba_sasl_free(s);
	ba_sasl_free(NULL);
}

/* ---- PLAIN, LOGIN, CRAM-MD5 ---------------------------------------------------- */

static void test_sasl__plain_rfc4616(void **state)
{
	(void)state;
	/* RFC 4616 §4 examples */
	struct ba_sasl_params p = { .mech = BA_SASL_PLAIN, .user = "Kurt", .password = "xipj3plmq",
				    .authzid = "Ursel" };
	ba_sasl *s = new_or_fail(&p);
	assert_true(ba_sasl_has_initial(s));
	step_ok(s, NULL, "Ursel\0Kurt\0xipj3plmq", 20);
	step_fails(s, "", EX_PROTOCOL); /* no second challenge */
	assert_false(ba_sasl_done(s));
	ba_sasl_free(s);

	struct ba_sasl_params q = { .mech = BA_SASL_PLAIN, .user = "tim",
				    .password = "tanstaaftanstaaf" };
	s = new_or_fail(&q);
	step_ok(s, NULL, "\0tim\0tanstaaftanstaaf", 21);
	assert_true(ba_sasl_done(s));
	ba_sasl_free(s);

	/* no initial response sent: the server's empty challenge asks for it */
	s = new_or_fail(&q);
	step_ok(s, "", "\0tim\0tanstaaftanstaaf", 21);
	ba_sasl_free(s);

	/* a non-empty first challenge makes no sense for PLAIN */
	s = new_or_fail(&q);
	step_fails(s, "hello", EX_PROTOCOL);
	ba_sasl_free(s);
}

static void test_sasl__login_any_prompt(void **state)
{
	(void)state;
	struct ba_sasl_params p = { .mech = BA_SASL_LOGIN, .user = "tim",
				    .password = "tanstaaftanstaaf" };
	ba_sasl *s = new_or_fail(&p);
	assert_false(ba_sasl_has_initial(s));
	step_str(s, "Username:", "tim");
	step_str(s, "Password:", "tanstaaftanstaaf");
	assert_true(ba_sasl_done(s));
	step_fails(s, "Password:", EX_PROTOCOL);
	assert_false(ba_sasl_done(s));
	step_fails(s, "again", EX_PROTOCOL); /* stays failed */
	ba_sasl_free(s);

	s = new_or_fail(&p);
	step_str(s, "User Name\0", "tim"); /* odd prompt texts are fine */
	step_str(s, "", "tanstaaftanstaaf");
	ba_sasl_free(s);
}

static void test_sasl__cram_md5_rfc2195(void **state)
{
	(void)state;
	/* RFC 2195 §2 */
	struct ba_sasl_params p = { .mech = BA_SASL_CRAM_MD5, .user = "tim",
				    .password = "tanstaaftanstaaf" };
	ba_sasl *s = new_or_fail(&p);
	assert_false(ba_sasl_has_initial(s));
	step_str(s, "<1896.697170952@postoffice.reston.mci.net>",
		 "tim b913a602c7eda7a495b4e6e7334d3890");
	assert_true(ba_sasl_done(s));
	step_fails(s, "<1896.697170952@postoffice.reston.mci.net>", EX_PROTOCOL);
	ba_sasl_free(s);

	s = new_or_fail(&p);
	step_fails(s, "", EX_PROTOCOL);
	ba_sasl_free(s);
}

/* ---- SCRAM ------------------------------------------------------------------- */

static void test_sasl__scram_sha1_rfc5802(void **state)
{
	(void)state;
	ba_sasl *s = scram1();
	assert_true(ba_sasl_has_initial(s));
	step_str(s, NULL, rfc5802_cfirst);
	assert_false(ba_sasl_done(s));
	step_str(s, rfc5802_sfirst, rfc5802_cfinal);
	assert_false(ba_sasl_done(s)); /* a 235 now would be a failure (RFC 5802 §5) */
	step_str(s, rfc5802_sfinal, "");
	assert_true(ba_sasl_done(s));
	step_fails(s, "", EX_PROTOCOL);
	ba_sasl_free(s);
}

static void test_sasl__scram_sha256_rfc7677(void **state)
{
	(void)state;
	ba_sasl *s = scram256();
	step_str(s, NULL, rfc7677_cfirst);
	step_str(s, rfc7677_sfirst, rfc7677_cfinal);
	assert_false(ba_sasl_done(s));
	step_str(s, rfc7677_sfinal, "");
	assert_true(ba_sasl_done(s));
	ba_sasl_free(s);

	/* the engine may send no initial response: an empty challenge asks for it */
	s = scram256();
	step_str(s, "", rfc7677_cfirst);
	step_str(s, rfc7677_sfirst, rfc7677_cfinal);
	/* server-final extensions after v= are ignored (RFC 5802 §7) */
	step_str(s, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=future", "");
	assert_true(ba_sasl_done(s));
	ba_sasl_free(s);
}

static void test_sasl__scram_plus_tls_exporter(void **state)
{
	(void)state;
	unsigned char cb[32];
	for (size_t i = 0; i < sizeof(cb); i++)
		cb[i] = (unsigned char)i;
	struct ba_sasl_params p = { .mech = BA_SASL_SCRAM_SHA_256_PLUS, .user = "user",
				    .password = "pencil", .client_nonce = "rOprNGfwEbeRWgbNEkqO",
				    .cb_data = cb, .cb_len = sizeof(cb),
				    .cb_type = "tls-exporter" };
	ba_sasl *s = new_or_fail(&p);
	step_str(s, NULL, "p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO");
	step_str(s, rfc7677_sfirst,
		 "c=cD10bHMtZXhwb3J0ZXIsLAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f,"
		 "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		 "p=QC6CS20quADQRb3mT99YUH+n3VJxUvzuK0K0E1Vrs2M=");
	step_str(s, "v=2GiAgapEppLVlUXbxUDksL3VgYHzuqiK5tR4mhJGgvs=", "");
	assert_true(ba_sasl_done(s));
	ba_sasl_free(s);

	/* NULL cb_type defaults to tls-exporter */
	p.cb_type = NULL;
	s = new_or_fail(&p);
	step_str(s, NULL, "p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO");
	ba_sasl_free(s);
}

static void test_sasl__scram_sha1_plus_tls_unique(void **state)
{
	(void)state;
	unsigned char cb[12];
	for (size_t i = 0; i < sizeof(cb); i++)
		cb[i] = (unsigned char)i;
	struct ba_sasl_params p = { .mech = BA_SASL_SCRAM_SHA_1_PLUS, .user = "user",
				    .password = "pencil",
				    .client_nonce = "fyko+d2lbbFgONRv9qkxdawL", .cb_data = cb,
				    .cb_len = sizeof(cb), .cb_type = "tls-unique" };
	ba_sasl *s = new_or_fail(&p);
	step_str(s, NULL, "p=tls-unique,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
	step_str(s, rfc5802_sfirst,
		 "c=cD10bHMtdW5pcXVlLCwAAQIDBAUGBwgJCgs=,"
		 "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=ResgVA2w6fEFiwzXkrPSGTt/RSg=");
	step_str(s, "v=HKBeWjn99U5AvtgAjz6m1d81mhk=", "");
	assert_true(ba_sasl_done(s));
	ba_sasl_free(s);
}

static void test_sasl__scram_cb_capable_without_plus_says_y(void **state)
{
	(void)state;
	unsigned char cb[32] = { 0 };
	struct ba_sasl_params p = { .mech = BA_SASL_SCRAM_SHA_256, .user = "user",
				    .password = "pencil", .client_nonce = "rOprNGfwEbeRWgbNEkqO",
				    .cb_data = cb, .cb_len = sizeof(cb) };
	ba_sasl *s = new_or_fail(&p);
	step_str(s, NULL, "y,,n=user,r=rOprNGfwEbeRWgbNEkqO");
	/* c= carries the gs2 header only, not the binding data */
	step_str(s, rfc7677_sfirst,
		 "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		 "p=FoqiHTtQEDE8lz1CdaEe3tK4mS+iMDTl77SPyDS53DY=");
	step_str(s, "v=dI4KpiQJwBr1+V+K6U1dA6l6I4I9DUNXWND4pcpRU3U=", "");
	assert_true(ba_sasl_done(s));
	ba_sasl_free(s);
}

static void test_sasl__scram_escapes_names(void **state)
{
	(void)state;
	struct ba_sasl_params p = { .mech = BA_SASL_SCRAM_SHA_256, .user = "a,b=c",
				    .password = "pencil", .authzid = "ad,min", .client_nonce = "abc" };
	ba_sasl *s = new_or_fail(&p);
	step_str(s, NULL, "n,a=ad=2Cmin,n=a=2Cb=3Dc,r=abc");
	step_str(s, "r=abcxyz,s=c2FsdHNhbHQ=,i=1",
		 "c=bixhPWFkPTJDbWluLA==,r=abcxyz,p=RO7RVdUqsNgmPHmkg3h9j2SiiRK6UK4VSdM99KTaESY=");
	step_str(s, "v=LkdUW8xUxRJmEeSLGs3TU7sSCZiaJiUOzgv/hEt4d5U=", "");
	assert_true(ba_sasl_done(s));
	ba_sasl_free(s);
}

static void test_sasl__scram_random_nonce(void **state)
{
	(void)state;
	struct ba_sasl_params p = { .mech = BA_SASL_SCRAM_SHA_256, .user = "user",
				    .password = "pencil" };
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf a = BA_BUF_INIT, b = BA_BUF_INIT;
	ba_sasl *s1 = new_or_fail(&p), *s2 = new_or_fail(&p);
	assert_int_equal(ba_sasl_step(s1, NULL, 0, &a, &err), 0);
	assert_int_equal(ba_sasl_step(s2, NULL, 0, &b, &err), 0);
	assert_int_equal(a.len, strlen("n,,n=user,r=") + 24);
	assert_memory_equal(a.data, "n,,n=user,r=", 12);
	assert_null(strchr(a.data + 12, ','));
	assert_int_equal(a.len, b.len);
	assert_memory_not_equal(a.data, b.data, a.len);
	ba_buf_release(&a);
	ba_buf_release(&b);
	ba_sasl_free(s1);
	ba_sasl_free(s2);
}

static void test_sasl__scram_tampered_signature(void **state)
{
	(void)state;
	static const char *bad[] = {
		"v=rmF9pqV8S7suAoZWja4dJRkFsKM=",       /* last bits flipped */
		"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",       /* wrong value */
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", /* SHA-256 length */
		"v=rmF9pqV8S7suAoZWja4dJRkF",             /* truncated */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ba_sasl *s = scram1();
		step_str(s, NULL, rfc5802_cfirst);
		step_str(s, rfc5802_sfirst, rfc5802_cfinal);
		step_fails(s, bad[i], EX_NOPERM);
		assert_false(ba_sasl_done(s));
		ba_sasl_free(s);
	}
}

static void test_sasl__scram_server_final_errors(void **state)
{
	(void)state;
	static const char *bad[] = {
		"e=invalid-proof", "", "x=1", "v=", "v=not*base64", "v", "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ba_sasl *s = scram1();
		step_str(s, NULL, rfc5802_cfirst);
		step_str(s, rfc5802_sfirst, rfc5802_cfinal);
		step_fails(s, bad[i], EX_PROTOCOL);
		assert_false(ba_sasl_done(s));
		ba_sasl_free(s);
	}
	/* the server's error text ends up cleaned in the error */
	ba_sasl *s = scram1();
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	step_str(s, NULL, rfc5802_cfirst);
	step_str(s, rfc5802_sfirst, rfc5802_cfinal);
	static const char efinal[] = "e=other-error\033[2J";
	assert_int_equal(ba_sasl_step(s, (const unsigned char *)efinal, strlen(efinal), &out, &err),
			 -1);
	assert_int_equal(err.code, EX_PROTOCOL);
	assert_non_null(strstr(err.text, "other-error"));
	assert_null(strchr(err.text, '\033'));
	ba_buf_release(&out);
	ba_sasl_free(s);
}

static void test_sasl__scram_malformed_server_first(void **state)
{
	(void)state;
	static const char *bad[] = {
		/* nonce does not extend ours */
		"r=fyko+d2lbbFgONRv9qkxdawX3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		"r=3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", /* adds nothing */
		"r=fyko+d2lbbFgONRv9qkx,s=QSXCR+Q6sek8bf92,i=4096",      /* shorter */
		/* missing attributes */
		"s=QSXCR+Q6sek8bf92,i=4096",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,i=4096",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
		"",
		/* out of order */
		"s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,i=4096",
		/* bad base64 salt */
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf9,i=4096",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXC*+Q6sek8bf92,i=4096",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QS=CR+Q6sek8bf92,i=4096",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=,i=4096",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXC R+Q6sek8bf92,i=4096",
		/* iteration counts */
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=0",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=-1",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=+4096",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=1000001",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=99999999999999",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096x",
		/* mandatory extension we do not know (RFC 5802 §5.1 m=) */
		"m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		/* control character in the nonce */
		"r=fyko+d2lbbFgONRv9qkxdawL3rfc\tHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ba_sasl *s = scram1();
		struct ba_err err = BA_ERR_INIT;
		struct ba_buf out = BA_BUF_INIT;
		step_str(s, NULL, rfc5802_cfirst);
		if (ba_sasl_step(s, (const unsigned char *)bad[i], strlen(bad[i]), &out, &err) != -1)
			fail_msg("case %zu accepted: %s", i, bad[i]);
		if (err.code != EX_PROTOCOL)
			fail_msg("case %zu: class %d: %s", i, err.code, err.text);
		assert_int_equal(out.len, 0);
		ba_sasl_free(s);
		ba_buf_release(&out);
	}
	/* a NUL inside the server-first message */
	ba_sasl *s = scram1();
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	step_str(s, NULL, rfc5802_cfirst);
	assert_int_equal(ba_sasl_step(s, (const unsigned char *)rfc5802_sfirst,
				      sizeof(rfc5802_sfirst), &out, &err), -1);
	assert_int_equal(err.code, EX_PROTOCOL);
	ba_sasl_free(s);
	ba_buf_release(&out);
}

static void test_sasl__scram_extensions_and_bounds(void **state)
{
	(void)state;
	/* extensions after i= are allowed; i=1 is allowed */
	ba_sasl *s = scram1();
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	step_str(s, NULL, rfc5802_cfirst);
	static const char sfirst[] = "r=fyko+d2lbbFgONRv9qkxdawLX,s=QSXCR+Q6sek8bf92,i=1,x=y";
	assert_int_equal(ba_sasl_step(s, (const unsigned char *)sfirst, strlen(sfirst), &out, &err),
			 0);
	assert_memory_equal(out.data, "c=biws,r=fyko+d2lbbFgONRv9qkxdawLX,p=", 37);
	ba_buf_release(&out);
	ba_sasl_free(s);

	/* the server-final message is not accepted in place of server-first */
	s = scram1();
	step_str(s, NULL, rfc5802_cfirst);
	step_fails(s, rfc5802_sfinal, EX_PROTOCOL);
	ba_sasl_free(s);
}

/* ---- OAuth2, EXTERNAL ----------------------------------------------------------- */

static void test_sasl__xoauth2(void **state)
{
	(void)state;
	struct ba_sasl_params p = { .mech = BA_SASL_XOAUTH2, .user = "someuser@example.com",
				    .password = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg" };
	ba_sasl *s = new_or_fail(&p);
	assert_true(ba_sasl_has_initial(s));
	step_str(s, NULL,
		 "user=someuser@example.com\001auth=Bearer "
		 "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001");
	/* the JSON error challenge is answered empty; the server then fails */
	step_str(s, "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}", "");
	step_fails(s, "", EX_PROTOCOL);
	ba_sasl_free(s);
}

static void test_sasl__oauthbearer_rfc7628(void **state)
{
	(void)state;
	/* RFC 7628 §4.1 */
	struct ba_sasl_params p = { .mech = BA_SASL_OAUTHBEARER, .user = "user@example.com",
				    .password = "vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==",
				    .host = "server.example.com", .port = 143 };
	ba_sasl *s = new_or_fail(&p);
	assert_true(ba_sasl_has_initial(s));
	step_str(s, NULL,
		 "n,a=user@example.com,\001host=server.example.com\001port=143\001"
		 "auth=Bearer vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==\001\001");
	assert_true(ba_sasl_done(s));
	/* §3.2.3: error challenge -> a lone ^A */
	step_str(s, "{\"status\":\"invalid_token\"}", "\001");
	step_fails(s, "", EX_PROTOCOL);
	ba_sasl_free(s);

	/* without host and port; "," in the user name is escaped */
	struct ba_sasl_params q = { .mech = BA_SASL_OAUTHBEARER, .user = "a,b", .password = "t" };
	s = new_or_fail(&q);
	step_str(s, NULL, "n,a=a=2Cb,\001auth=Bearer t\001\001");
	ba_sasl_free(s);
}

static void test_sasl__external(void **state)
{
	(void)state;
	struct ba_sasl_params p = { .mech = BA_SASL_EXTERNAL };
	ba_sasl *s = new_or_fail(&p);
	assert_true(ba_sasl_has_initial(s));
	step_str(s, NULL, "");
	assert_true(ba_sasl_done(s));
	step_fails(s, "", EX_PROTOCOL);
	ba_sasl_free(s);

	p.authzid = "admin";
	s = new_or_fail(&p);
	step_str(s, "", "admin");
	ba_sasl_free(s);
}

static void test_sasl__oversized_challenge(void **state)
{
	(void)state;
	struct ba_sasl_params p = { .mech = BA_SASL_CRAM_MD5, .user = "u", .password = "p" };
	ba_sasl *s = new_or_fail(&p);
	size_t n = 100000;
	unsigned char *big = malloc(n);
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	assert_non_null(big);
	memset(big, 'x', n);
	assert_int_equal(ba_sasl_step(s, big, n, &out, &err), -1);
	assert_int_equal(err.code, EX_PROTOCOL);
	free(big);
	ba_sasl_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sasl__names_round_trip),
		cmocka_unit_test(test_sasl__pick_table),
		cmocka_unit_test(test_sasl__new_refuses_bad_params),
		cmocka_unit_test(test_sasl__plain_rfc4616),
		cmocka_unit_test(test_sasl__login_any_prompt),
		cmocka_unit_test(test_sasl__cram_md5_rfc2195),
		cmocka_unit_test(test_sasl__scram_sha1_rfc5802),
		cmocka_unit_test(test_sasl__scram_sha256_rfc7677),
		cmocka_unit_test(test_sasl__scram_plus_tls_exporter),
		cmocka_unit_test(test_sasl__scram_sha1_plus_tls_unique),
		cmocka_unit_test(test_sasl__scram_cb_capable_without_plus_says_y),
		cmocka_unit_test(test_sasl__scram_escapes_names),
		cmocka_unit_test(test_sasl__scram_random_nonce),
		cmocka_unit_test(test_sasl__scram_tampered_signature),
		cmocka_unit_test(test_sasl__scram_server_final_errors),
		cmocka_unit_test(test_sasl__scram_malformed_server_first),
		cmocka_unit_test(test_sasl__scram_extensions_and_bounds),
		cmocka_unit_test(test_sasl__xoauth2),
		cmocka_unit_test(test_sasl__oauthbearer_rfc7628),
		cmocka_unit_test(test_sasl__external),
		cmocka_unit_test(test_sasl__oversized_challenge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
