/* tests/unit/secret.c - password, passwordeval and netrc resolution */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/config.h"
#include "bluearrow/secret.h"

static char tmpdir[64];
static char netrc[128];

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

/* Resolves the password of account name in config text; returns rc, fills out/src/err. */
static int resolve(const char *text, const char *name, struct ba_buf *out,
                   enum ba_secret_source *src, struct ba_err *err)
{
	ba_config *cfg = NULL;
	assert_int_equal(ba_config_parse(&cfg, "t.rc", text, strlen(text), err), 0);
	const struct ba_account *a = ba_config_account(cfg, name, err);
	assert_non_null(a);
	int rc = ba_secret_password(out, src, a, err);
	ba_config_free(cfg);
	return rc;
}

static void test_secret__password_key_first(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	enum ba_secret_source src;
	assert_int_equal(resolve("account a\nhost h\npassword pw1\npasswordeval echo no\n", "a",
	                         &out, &src, &err), 0);
	assert_string_equal(ba_buf_str(&out), "pw1");
	assert_int_equal(src, BA_SECRET_CONFIG);
	ba_buf_release_secret(&out);
}

static void test_secret__passwordeval(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	enum ba_secret_source src;
	assert_int_equal(resolve("account a\nhost h\n"
	                         "passwordeval printf 'tok en\\n' ; echo ignored; echo noise >&2\n",
	                         "a", &out, &src, &err), 0);
	assert_string_equal(ba_buf_str(&out), "tok en");
	assert_int_equal(src, BA_SECRET_EVAL);
	ba_buf_release_secret(&out);

	/* no trailing newline is fine too */
	assert_int_equal(resolve("account a\nhost h\npasswordeval printf abc\n", "a", &out, &src,
	                         &err), 0);
	assert_string_equal(ba_buf_str(&out), "abc");
	ba_buf_release_secret(&out);
}

static void test_secret__passwordeval_failures(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	enum ba_secret_source src;
	assert_int_equal(resolve("account work\nhost h\npasswordeval echo partial; exit 2\n", "work",
	                         &out, &src, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_string_equal(err.text, "account 'work': passwordeval: command 'echo partial; exit 2' "
	                              "failed with exit status 2");
	assert_int_equal(out.len, 0);
	assert_int_equal(src, BA_SECRET_NONE);

	assert_int_equal(resolve("account work\nhost h\npasswordeval true\n", "work", &out, &src,
	                         &err), -1);
	assert_string_equal(err.text, "account 'work': passwordeval command 'true' printed no password");

	assert_int_equal(resolve("account work\nhost h\npasswordeval echo\n", "work", &out, &src,
	                         &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	ba_buf_release_secret(&out);
}

static const char netrc_text[] =
	"# comment lines are not netrc syntax, but a token '#' is ignored\n"
	"machine other.example login jo password other\n"
	"machine smtp.example.org\n"
	"\tlogin alice\n"
	"\tpassword alicepw\n"
	"machine SMTP.example.org login bob password \"bob \\\"quoted\\\" pw\"\n"
	"macdef init\n"
	"password nottoken\n"
	"machine smtp.example.org login x password fromthemacro\n"
	"\n"
	"machine nologin.example password anyone\n"
	"default login anon password anonpw\n";

static void test_secret__netrc_lookup(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT, login = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	write_file(netrc, netrc_text, 0600);

	/* host and login match */
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "smtp.example.org", "alice", &err), 1);
	assert_string_equal(ba_buf_str(&out), "alicepw");
	ba_buf_reset(&out);
	/* host case-insensitive, second entry for the same host, quoted token */
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "smtp.example.org", "bob", &err), 1);
	assert_string_equal(ba_buf_str(&out), "bob \"quoted\" pw");
	ba_buf_reset(&out);
	/* the macdef body is not parsed as entries (and the default's login is anon) */
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "smtp.example.org", "x", &err), 0);
	assert_int_equal(out.len, 0);
	/* no login given: the first entry for the host, and its login */
	assert_int_equal(ba_secret_netrc(&out, &login, netrc, "smtp.example.org", NULL, &err), 1);
	assert_string_equal(ba_buf_str(&out), "alicepw");
	assert_string_equal(ba_buf_str(&login), "alice");
	ba_buf_reset(&out);
	/* an entry without login matches any login */
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "nologin.example", "zed", &err), 1);
	assert_string_equal(ba_buf_str(&out), "anyone");
	ba_buf_reset(&out);
	/* unknown host: the default entry */
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "unknown.example", "anon", &err), 1);
	assert_string_equal(ba_buf_str(&out), "anonpw");
	ba_buf_reset(&out);
	/* unknown host and a login the default does not have */
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "unknown.example", "eve", &err), 0);
	assert_int_equal(out.len, 0);
	/* a missing file is "not found" */
	assert_int_equal(ba_secret_netrc(&out, NULL, "/nonexistent/netrc", "h", NULL, &err), 0);
	/* readable by others: refused, without the password in the message */
	chmod(netrc, 0644);
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "smtp.example.org", "alice", &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "must not be readable by group or others"));
	assert_null(strstr(err.text, "alicepw"));
	chmod(netrc, 0600);
	ba_buf_release_secret(&out);
	ba_buf_release(&login);
}

static void test_secret__netrc_via_account(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	enum ba_secret_source src;
	write_file(netrc, netrc_text, 0600);
	setenv("NETRC", netrc, 1);
	assert_int_equal(resolve("account a\nhost smtp.example.org\nuser bob\n", "a", &out, &src,
	                         &err), 0);
	assert_int_equal(src, BA_SECRET_NETRC);
	assert_string_equal(ba_buf_str(&out), "bob \"quoted\" pw");
	ba_buf_release_secret(&out);

	/* nothing anywhere: not an error */
	write_file(netrc, "machine elsewhere password p\n", 0600);
	assert_int_equal(resolve("account a\nhost smtp.example.org\nuser bob\n", "a", &out, &src,
	                         &err), 0);
	assert_int_equal(src, BA_SECRET_NONE);
	assert_int_equal(out.len, 0);
	unsetenv("NETRC");
	ba_buf_release_secret(&out);
}

static void test_secret__netrc_garbage_is_safe(void **state)
{
	(void)state;
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	/* truncated entries, lone keywords, an unterminated quote */
	write_file(netrc, "machine\n", 0600);
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "h", NULL, &err), 0);
	write_file(netrc, "machine h login", 0600);
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "h", NULL, &err), 0);
	write_file(netrc, "machine h password \"unterminated", 0600);
	assert_int_equal(ba_secret_netrc(&out, NULL, netrc, "h", NULL, &err), 1);
	assert_string_equal(ba_buf_str(&out), "unterminated");
	ba_buf_release_secret(&out);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ba-secret-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(netrc, sizeof(netrc), "%s/netrc", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(netrc);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret__password_key_first),
		cmocka_unit_test(test_secret__passwordeval),
		cmocka_unit_test(test_secret__passwordeval_failures),
		cmocka_unit_test(test_secret__netrc_lookup),
		cmocka_unit_test(test_secret__netrc_via_account),
		cmocka_unit_test(test_secret__netrc_garbage_is_safe),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
