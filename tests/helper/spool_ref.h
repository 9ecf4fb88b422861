/* tests/helper/spool_ref.h - the spool's scan results by their plain definition
 *
 * ba_spool_flags() and ba_spool_wire_size() (msg_read.h) computed byte by
 * byte over a whole input, as the reference that the spool's fast,
 * piecewise scan must agree with (tests/unit/msg_read.c, fuzz/fuzz_msg_read.c).
 */
#ifndef BA_TESTS_SPOOL_REF_H
#define BA_TESTS_SPOOL_REF_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/msg_read.h"

static inline void spool_ref_scan(const unsigned char *p, size_t n, unsigned *flags,
                                  uint64_t *wire)
{
	unsigned f = 0;
	uint64_t w = n;
	size_t ll = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == '\r' && (i + 1 == n || p[i + 1] != '\n')) {
			f |= BA_SPOOL_BARE_CR;
			w++;
		} else if (c == '\n' && (i == 0 || p[i - 1] != '\r')) {
			f |= BA_SPOOL_BARE_LF;
			w++;
		}
		if (c >= 0x80)
			f |= BA_SPOOL_8BIT;
		if (c == 0)
			f |= BA_SPOOL_NUL;
		if (c == '\n')
			ll = 0;
		else if (c != '\r' && ++ll > 998)
			f |= BA_SPOOL_LONG_LINE;
	}
	*flags = f;
	*wire = w;
}

#endif
