/* route_probe.h - what route.c asks of route_hint.c (private to the route module) */
#ifndef BLUEARROW_ROUTE_PROBE_H
#define BLUEARROW_ROUTE_PROBE_H

#include "bluearrow/route.h"

/*
 * Called after connecting with STARTTLS or without TLS, before the session
 * reads the greeting: waits until st (a descriptor stream; any other kind
 * returns 0 at once) has data, at most 2 s or half of np's timeout.  When
 * nothing came, tries a TLS handshake on a second connection made with np
 * (see ba_route_open() in route.h); returns -1 with EX_TEMPFAIL and sets
 * *wants_tls (if not NULL) when the port answers TLS, else 0 (the greeting
 * may still come: the session waits for it as usual).  Reads nothing from
 * st and writes nothing to it.
 */
int route_await_greeting(ba_stream *st, const struct ba_net_params *np,
                         const struct ba_tls_params *tp, int *wants_tls, struct ba_err *err);

#endif
