/* cli/transmit.h - hands a spooled message to the route layer (the one place that calls it) */
#ifndef BLUEARROW_CLI_TRANSMIT_H
#define BLUEARROW_CLI_TRANSMIT_H

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "submit.h"

/* What msmtp's log line needs from the attempt. */
struct cli_transmit_result {
	int smtp_code;           /* the last server reply code; 0 = none */
	struct ba_buf smtp_msg;  /* its text, cleaned ("250 2.0.0 Ok: queued as X") */
	int reached_data;        /* the message itself was transferred (mailsize= is logged) */
};

/* Connects as the account says, sends the envelope and the spool.  Returns 0 or -1 with err. */
int cli_transmit(const struct cli_acct *a, const struct cli_delivery *d,
                 struct cli_transmit_result *res, struct ba_err *err);

struct ba_tls_params;
struct ba_log;

#endif
