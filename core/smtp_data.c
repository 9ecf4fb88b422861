/* smtp_data.c - the data phase of the SMTP engine: CRLF normalisation and dot-stuffing
 *
 * Pure transformation (no I/O), shared by DATA and BDAT: the engine's data
 * pump in smtp.c feeds it the body a piece at a time; unit tests and
 * fuzz/fuzz_smtp_data.c call it directly.
 */
#include "bluearrow/smtp.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

static int data_newline(struct ba_buf *out, struct ba_smtp_data_state *st)
{
	st->bol = 1;
	st->col = 0;
	st->line++;
	return ba_buf_add(out, "\r\n", 2);
}

int ba_smtp_data_add(struct ba_buf *out, struct ba_smtp_data_state *st, int stuff,
                     const void *p, size_t n, struct ba_err *err)
{
	const char *c = p, *end = c + n;
	if (!st->started) {
		st->started = 1;
		st->bol = 1;
		st->line = 1;
	}
	/* worst case: every byte a line end (2 bytes) or a stuffed dot */
	if (ba_buf_grow(out, 2 * n + 4) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	while (c < end) {
		if (st->cr) {
			/* RFC 5321 §2.3.8: a bare CR is not a line end; we make it one */
			st->cr = 0;
			data_newline(out, st);
			if (*c == '\n') {
				c++;
				continue;
			}
		}
		if (*c == '\r') {
			st->cr = 1;
			c++;
			continue;
		}
		if (*c == '\n') {
			data_newline(out, st);
			c++;
			continue;
		}
		if (st->bol && stuff && *c == '.')
			ba_buf_addch(out, '.'); /* RFC 5321 §4.5.2 */
		const char *q = memchr(c, '\n', (size_t)(end - c));
		if (!q)
			q = end;
		const char *r = memchr(c, '\r', (size_t)(q - c));
		if (r)
			q = r;
		size_t k = (size_t)(q - c);
		if (st->seven_bit) {
			unsigned char acc = 0;
			for (size_t i = 0; i < k; i++)
				acc |= (unsigned char)c[i];
			if (acc & 0x80)
				return ba_err_set(err, EX_DATAERR,
				                  "message line %" PRIu64 " has 8-bit data, which the "
				                  "server does not accept (no 8BITMIME)", st->line);
		}
		st->col += k;
		if (st->col > 998) /* RFC 5321 §4.5.3.1.6 */
			return ba_err_set(err, EX_DATAERR,
			                  "message line %" PRIu64 " is longer than 998 octets", st->line);
		ba_buf_add(out, c, k);
		st->bol = 0;
		c = q;
	}
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

int ba_smtp_data_end(struct ba_buf *out, struct ba_smtp_data_state *st, int stuff,
                     struct ba_err *err)
{
	if (!st->started) {
		st->started = 1;
		st->bol = 1;
	}
	if (st->cr) {
		st->cr = 0;
		data_newline(out, st);
	}
	if (!st->bol)
		data_newline(out, st);
	if (stuff)
		ba_buf_add(out, ".\r\n", 3);
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}
