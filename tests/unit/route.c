/* unit tests for route.c: account -> session parameters */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/route.h"

/* A loopback port bound but not listening: connecting to it is refused. */
static int closed_port(int *fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*fd >= 0);
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/* Opens a route for "account t" with extra lines; returns the error. */
static struct ba_err open_route(const char *extra)
{
	int fd;
	int port = closed_port(&fd);
	char text[512];
	snprintf(text, sizeof text,
	         "account t\nhost 127.0.0.1\nport %d\ntimeout 5\nuser u\n%s", port, extra);
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	if (ba_config_parse(&cfg, "t.rc", text, strlen(text), &err) != 0)
		fail_msg("config: %s", err.text);
	const struct ba_account *acc = ba_config_account(cfg, "t", &err);
	if (!acc)
		fail_msg("account: %s", err.text);
	ba_route *r = NULL;
	assert_int_equal(ba_route_open(&r, acc, NULL, &err), -1);
	assert_null(r);
	ba_config_free(cfg);
	close(fd);
	return err;
}

/* auth external needs no password: it gets as far as connecting */
static void test_route__external_needs_no_password(void **state)
{
	(void)state;
	struct ba_err err = open_route("auth plain\n");
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.text, "no password is configured"));
	err = open_route("auth external\n");
	if (err.code == EX_CONFIG || strstr(err.text, "password"))
		fail_msg("auth external: %s", err.text);
	assert_non_null(strstr(err.text, "127.0.0.1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route__external_needs_no_password),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
