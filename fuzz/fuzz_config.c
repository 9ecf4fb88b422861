/* fuzz/fuzz_config.c - the msmtprc parser, and the round trip of `config show`
 *
 * Every account of a file that parses is printed in msmtprc syntax
 * (ba_config_format_account), parsed again, and printed again: the two
 * printouts must be identical.  Inputs that mention "eval" are skipped: eval
 * runs shell commands.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int mentions_eval(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(p + i, "eval", 4) == 0)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ba_config *cfg = NULL;
	struct ba_err err = BA_ERR_INIT;
	if (mentions_eval(data, size))
		return -1;
	if (ba_config_parse(&cfg, "fuzz", (const char *)data, size, &err) < 0)
		return 0;
	for (size_t i = 0; i < ba_config_count(cfg); i++) {
		const struct ba_account *a = ba_config_at(cfg, i);
		struct ba_buf one = BA_BUF_INIT, two = BA_BUF_INIT;
		ba_config *back = NULL;
		ba_config_account_check(a, &err);
		ba_config_account_by_from(cfg, "user@example.org");
		if (ba_config_format_account(&one, a) < 0)
			abort();
		if (ba_config_parse(&back, "again", one.data, one.len, &err) < 0)
			abort(); /* what config show prints must read back */
		if (ba_config_count(back) != 1 ||
		    ba_config_format_account(&two, ba_config_at(back, 0)) < 0 ||
		    one.len != two.len || memcmp(one.data, two.data, one.len) != 0)
			abort();
		ba_config_free(back);
		ba_buf_release(&one);
		ba_buf_release(&two);
	}
	ba_config_free(cfg);
	return 0;
}
