/* cli/transmit.c - hands a spooled message to the route layer (see transmit.h) */
#include "transmit.h"

int cli_transmit(const struct cli_acct *a, const struct cli_delivery *d,
                 struct cli_transmit_result *res, struct ba_err *err)
{
	(void)a;
	(void)d;
	(void)res;
	/* transitional: the route layer (branch smtp) is not merged yet */
	return ba_err_set(err, EX_UNAVAILABLE, "this build has no SMTP transport yet");
}
