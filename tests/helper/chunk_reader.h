/* tests/helper/chunk_reader.h - a reader that hands out a buffer a few bytes at a time
 *
 * Fuzz targets and tests check that a result does not depend on how the
 * input arrives: the same bytes read in steps of `step` octets.
 * Header-only.
 */
#ifndef BA_TEST_CHUNK_READER_H
#define BA_TEST_CHUNK_READER_H

#include <stdint.h>
#include <string.h>

#include "bluearrow/io.h"

struct chunk_reader {
	ba_reader base;
	const uint8_t *p;
	size_t n, off, step;
};

static inline ssize_t chunk_read(ba_reader *r, void *p, size_t n, struct ba_err *err)
{
	struct chunk_reader *c = (struct chunk_reader *)r;
	(void)err;
	size_t k = c->n - c->off;
	if (k > n)
		k = n;
	if (k > c->step)
		k = c->step;
	memcpy(p, c->p + c->off, k);
	c->off += k;
	return (ssize_t)k;
}
static const struct ba_reader_ops chunk_ops = { chunk_read };

#endif
