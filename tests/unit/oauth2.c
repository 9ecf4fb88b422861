/* tests/unit/oauth2.c - provider presets, PKCE, the authorization URL and the state files */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/config.h"
#include "bluearrow/oauth2.h"

static char tmpdir[64];

static ba_config *load(const char *text)
{
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_config_parse(&cfg, "t.rc", text, strlen(text), &err), 0);
	return cfg;
}

static void test_oauth2__presets(void **state)
{
	(void)state;
	ba_config *cfg = load("account g\nhost h\nauth xoauth2\nuser u\noauth2_provider gmail\n"
	                      "oauth2_client_id c\n"
	                      "account m\nhost h\nauth oauthbearer\noauth2_provider microsoft\n"
	                      "oauth2_scope s\noauth2_token_endpoint https://t.test/x\n"
	                      "account n\nhost h\nauth xoauth2\n"
	                      "account default : g\n");
	struct ba_err err = BA_ERR_INIT;
	struct ba_oauth2_endpoints e;
	const struct ba_account *g = ba_config_account(cfg, "g", &err);
	ba_oauth2_endpoints(&e, g);
	assert_string_equal(e.token, "https://oauth2.googleapis.com/token");
	assert_string_equal(e.scope, "https://mail.google.com/");
	assert_non_null(e.authorize);
	assert_non_null(e.device);
	assert_int_equal(ba_oauth2_enabled(g), 1);
	const struct ba_account *m = ba_config_account(cfg, "m", &err);
	ba_oauth2_endpoints(&e, m);
	assert_string_equal(e.token, "https://t.test/x"); /* a key overrides the preset */
	assert_string_equal(e.scope, "s");
	assert_string_equal(e.device,
	                    "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode");
	assert_int_equal(ba_oauth2_enabled(m), 0); /* no client id: passwordeval's way */
	const struct ba_account *n = ba_config_account(cfg, "n", &err);
	ba_oauth2_endpoints(&e, n);
	assert_null(e.token);
	assert_null(e.scope);
	const struct ba_account *d = ba_config_account(cfg, NULL, &err);
	assert_string_equal(d->alias_of, "g");
	ba_config_free(cfg);
}

static void test_oauth2__pkce(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf c = BA_BUF_INIT, v = BA_BUF_INIT, v2 = BA_BUF_INIT;
	/* RFC 7636 Appendix B */
	assert_int_equal(ba_oauth2_s256(&c, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", &err), 0);
	assert_string_equal(ba_buf_str(&c), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	ba_buf_reset(&c);
	assert_int_equal(ba_oauth2_pkce(&v, &c, &err), 0);
	assert_int_equal(v.len, 43); /* 32 random bytes, §4.1's minimum length */
	assert_int_equal(strspn(ba_buf_str(&v), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                        "0123456789-_"), 43);
	struct ba_buf check = BA_BUF_INIT;
	assert_int_equal(ba_oauth2_s256(&check, ba_buf_str(&v), &err), 0);
	assert_string_equal(ba_buf_str(&check), ba_buf_str(&c));
	ba_buf_reset(&c);
	assert_int_equal(ba_oauth2_pkce(&v2, &c, &err), 0);
	assert_string_not_equal(ba_buf_str(&v), ba_buf_str(&v2));
	ba_buf_release(&c);
	ba_buf_release(&v);
	ba_buf_release(&v2);
	ba_buf_release(&check);
}

static void test_oauth2__authorize_url(void **state)
{
	(void)state;
	ba_config *cfg = load("account a\nhost h\nauth xoauth2\noauth2_client_id \"c d&e\"\n"
	                      "oauth2_authorize_endpoint https://a.test/auth?tenant=x\n"
	                      "oauth2_scope \"s1 s2\"\n");
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf u = BA_BUF_INIT;
	const struct ba_account *a = ba_config_account(cfg, "a", &err);
	assert_int_equal(ba_oauth2_authorize_url(&u, a, "http://127.0.0.1:5/", "st", "ch", &err), 0);
	assert_string_equal(ba_buf_str(&u),
	                    "https://a.test/auth?tenant=x&response_type=code&client_id=c%20d%26e&"
	                    "redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2F&scope=s1%20s2&state=st&"
	                    "code_challenge=ch&code_challenge_method=S256");
	ba_buf_release(&u);
	ba_config_free(cfg);
	cfg = load("account a\nhost h\nauth xoauth2\noauth2_client_id c\n");
	a = ba_config_account(cfg, "a", &err);
	assert_int_equal(ba_oauth2_authorize_url(&u, a, "r", "s", "c", &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "oauth2_authorize_endpoint"));
	ba_buf_release(&u);
	ba_config_free(cfg);
}

static void test_oauth2__state_files(void **state)
{
	(void)state;
	ba_config *cfg = load("account x/../y\nhost h\nauth xoauth2\noauth2_client_id c\n"
	                      "oauth2_token_endpoint https://t.test/\n"
	                      "oauth2_refresh_token_eval true\n");
	struct ba_err err = BA_ERR_INIT;
	const struct ba_account *a = ba_config_account(cfg, "x/../y", &err);
	struct ba_oauth2_state st;
	assert_int_equal(ba_oauth2_state(&st, a, &err), 0);
	assert_int_equal(st.cached, 0);
	assert_int_equal(st.refresh_stored, 0);
	assert_int_equal(st.refresh_configured, 1);
	assert_int_equal(ba_oauth2_store_refresh(a, "rt", &err), 0);
	assert_int_equal(ba_oauth2_state(&st, a, &err), 0);
	assert_int_equal(st.refresh_stored, 1);
	/* the account name cannot leave the directory */
	char path[256];
	struct stat sb;
	snprintf(path, sizeof path, "%s/bluearrow/oauth2/x%%2F..%%2Fy.refresh", tmpdir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof path, "%s/bluearrow/oauth2", tmpdir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	/* a file others can read is not trusted */
	snprintf(path, sizeof path, "%s/bluearrow/oauth2/x%%2F..%%2Fy.refresh", tmpdir);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(ba_oauth2_state(&st, a, &err), 0);
	assert_int_equal(st.refresh_stored, 0);
	assert_int_equal(ba_oauth2_store_refresh(a, NULL, &err), 0);
	assert_int_not_equal(stat(path, &sb), 0);
	ba_config_free(cfg);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/ba-oauth2-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return setenv("XDG_STATE_HOME", tmpdir, 1);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "%s/bluearrow/oauth2", tmpdir);
	rmdir(cmd);
	snprintf(cmd, sizeof cmd, "%s/bluearrow", tmpdir);
	rmdir(cmd);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oauth2__presets),
		cmocka_unit_test(test_oauth2__pkce),
		cmocka_unit_test(test_oauth2__authorize_url),
		cmocka_unit_test(test_oauth2__state_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
