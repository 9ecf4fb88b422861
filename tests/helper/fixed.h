/* tests/helper/fixed.h - a fixed clock and random source, for byte-exact message output
 *
 * msg and mime take the clock and the random source in their options (no
 * test switch in production code); the unit tests and ba-test-tool pass
 * these, so Date, Message-ID and MIME boundaries are the same on every run.
 * Header-only; the includer has bluearrow/msg.h's types available through
 * the includes below.
 */
#ifndef BA_TEST_FIXED_H
#define BA_TEST_FIXED_H

#include <stdint.h>
#include <string.h>

#include "bluearrow/io.h"
#include "bluearrow/msg.h"

/* 2023-11-14 22:13:20 UTC; the offset in minutes from *(int *)ctx, else +60. */
static inline int fixed_clock(void *ctx, int64_t *t, int *off, struct ba_err *err)
{
	(void)err;
	*t = 1700000000;
	*off = ctx ? *(int *)ctx : 60;
	return 0;
}

/* Bytes 0, 1, 2, ... from the counter *(unsigned *)ctx. */
static inline int counter_random(void *ctx, void *p, size_t n, struct ba_err *err)
{
	unsigned *c = ctx;
	(void)err;
	for (size_t i = 0; i < n; i++)
		((unsigned char *)p)[i] = (unsigned char)(*c)++;
	return 0;
}

/* Writes m into out with the fixed clock and a counter from 0: the same bytes every run. */
static inline int render(ba_msg *m, struct ba_buf *out, const char *eol, struct ba_err *err)
{
	unsigned ctr = 0;
	struct ba_msg_opts o;
	memset(&o, 0, sizeof(o));
	o.mime.eol = eol;
	o.mime.random = counter_random;
	o.mime.random_ctx = &ctr;
	o.clock = fixed_clock;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, out);
	return ba_msg_write(m, &w.base, &o, err);
}

#endif
