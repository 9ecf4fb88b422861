/* fuzz/fuzz_mtasts.c - the MTA-STS TXT record and policy parsers on arbitrary input
 *
 * The first byte selects: even, the policy parser; odd, the TXT record
 * parser (and the rest is also matched as a host name against a wildcard
 * and an exact pattern).  Properties: a failure is EX_DATAERR (or
 * EX_OSERR) and leaves an empty policy; a parsed policy has max_age within
 * bounds, mx patterns in lowercase, and written out again parses back to
 * the same mode, max_age and patterns; a parsed record has an id of 1 to 32
 * letters and digits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/buf.h"
#include "bluearrow/mtasts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void txt(const char *s, size_t n)
{
	char id[BA_MTASTS_ID_MAX + 1];
	struct ba_err err = BA_ERR_INIT;
	if (ba_mtasts_parse_txt(id, s, n, &err) < 0) {
		if (err.code != EX_DATAERR)
			abort();
		return;
	}
	size_t len = strlen(id);
	if (len < 1 || len > BA_MTASTS_ID_MAX)
		abort();
	for (size_t i = 0; i < len; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
		      (id[i] >= 'A' && id[i] <= 'Z')))
			abort();
	/* the host matcher on the same bytes (as a C string) */
	char *host = malloc(n + 1);
	if (!host)
		return;
	memcpy(host, s, n);
	host[n] = '\0';
	(void)ba_mtasts_pattern_match("*.example.com", host);
	(void)ba_mtasts_pattern_match("mx.example.com", host);
	free(host);
}

static void policy(const char *s, size_t n)
{
	struct ba_mtasts_policy p, q;
	struct ba_err err = BA_ERR_INIT;
	if (ba_mtasts_parse_policy(&p, s, n, &err) < 0) {
		if ((err.code != EX_DATAERR && err.code != EX_OSERR) || p.mx || p.nmx)
			abort();
		return;
	}
	if (p.max_age < 0 || p.max_age > BA_MTASTS_MAX_AGE_MAX)
		abort();
	if (p.mode != BA_MTASTS_MODE_NONE && p.nmx == 0)
		abort();
	struct ba_buf out = BA_BUF_INIT;
	ba_buf_addf(&out, "version: STSv1\r\nmode: %s\r\nmax_age: %ld\r\n",
	            ba_mtasts_mode_name(p.mode), p.max_age);
	for (size_t i = 0; i < p.nmx; i++) {
		for (const char *c = p.mx[i]; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				abort();
		/* an exact pattern names a host that matches it */
		if (p.mx[i][0] != '*' && !ba_mtasts_match(&p, p.mx[i]))
			abort();
		ba_buf_addf(&out, "mx: %s\r\n", p.mx[i]);
	}
	if (ba_buf_failed(&out))
		abort();
	if (out.len <= BA_MTASTS_POLICY_MAX) {
		if (ba_mtasts_parse_policy(&q, out.data, out.len, &err) < 0)
			abort();
		if (q.mode != p.mode || q.max_age != p.max_age || q.nmx != p.nmx)
			abort();
		for (size_t i = 0; i < p.nmx; i++)
			if (strcmp(p.mx[i], q.mx[i]) != 0)
				abort();
		ba_mtasts_policy_release(&q);
	}
	ba_buf_release(&out);
	ba_mtasts_policy_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		txt((const char *)data + 1, size - 1);
	else
		policy((const char *)data + 1, size - 1);
	return 0;
}
