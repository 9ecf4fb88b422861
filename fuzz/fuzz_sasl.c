/* fuzz/fuzz_sasl.c - the SCRAM client against arbitrary server messages
 *
 * Input: one byte choosing the mechanism, then the server-first message, a
 * NUL, and the server-final message.  The other mechanisms get the whole
 * rest as their challenges.  The client nonce is fixed so that the fuzzer can
 * reach the later steps.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bluearrow/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum ba_sasl_mech mechs[] = {
	BA_SASL_SCRAM_SHA_1, BA_SASL_SCRAM_SHA_256, BA_SASL_SCRAM_SHA_1_PLUS,
	BA_SASL_SCRAM_SHA_256_PLUS, BA_SASL_LOGIN, BA_SASL_CRAM_MD5,
	BA_SASL_XOAUTH2, BA_SASL_OAUTHBEARER, BA_SASL_PLAIN, BA_SASL_EXTERNAL,
};

/* a large iteration count is valid but makes every run slow: skip those inputs */
static int slow(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		if (p[i] == 'i' && p[i + 1] == '=') {
			size_t d = 0;
			while (i + 2 + d < n && p[i + 2 + d] >= '0' && p[i + 2 + d] <= '9')
				d++;
			if (d > 4)
				return 1;
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char cb[32] = { 1 };
	struct ba_sasl_params p = { .user = "user", .password = "pencil", .host = "h", .port = 25,
				    .cb_data = cb, .cb_len = sizeof(cb),
				    .client_nonce = "fyko+d2lbbFgONRv9qkxdawL" };
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	ba_sasl *s;

	if (size < 1 || slow(data, size))
		return 0;
	p.mech = mechs[data[0] % (sizeof(mechs) / sizeof(mechs[0]))];
	data++;
	size--;
	if (ba_sasl_new(&s, &p, &err) < 0)
		return 0;
	const uint8_t *nul = memchr(data, 0, size);
	size_t n1 = nul ? (size_t)(nul - data) : size;
	if (ba_sasl_has_initial(s))
		ba_sasl_step(s, NULL, 0, &out, &err);
	if (ba_sasl_step(s, data, n1, &out, &err) == 0 && nul)
		ba_sasl_step(s, nul + 1, size - n1 - 1, &out, &err);
	(void)ba_sasl_done(s);
	ba_buf_release_secret(&out);
	ba_sasl_free(s);
	return 0;
}
