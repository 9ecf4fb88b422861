/* fuzz/fuzz_smtp_data.c - the DATA-phase transformation (ba_smtp_data_add/_end)
 *
 * Input: one byte (dot-stuffing, 7-bit mode, how the message is split into
 * calls), then the message.  Checks:
 *  - the result does not depend on how the input is split (same output, same
 *    success or failure);
 *  - the output is CRLF lines only (RFC 5321 §2.3.8), each at most 998
 *    octets besides a stuffed dot, and ends in CRLF (with ".\r\n" when stuffing);
 *  - un-stuffing it gives back the input with every bare CR, bare LF and
 *    CRLF turned into CRLF (the engine's promise in smtp.h);
 *  - it fails exactly when a line is longer than 998 octets, or has an
 *    8-bit byte in 7-bit mode.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bluearrow/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static int transform(struct ba_buf *out, const uint8_t *p, size_t n, int stuff, int seven,
                     unsigned step)
{
	struct ba_smtp_data_state st;
	struct ba_err err = BA_ERR_INIT;
	memset(&st, 0, sizeof(st));
	st.seven_bit = seven;
	for (size_t i = 0, k = 1; i < n; i += k, k = k % (step ? step : 1) + 1) {
		if (!step || k > n - i)
			k = n - i;
		if (ba_smtp_data_add(out, &st, stuff, p + i, k, &err) < 0) {
			CHECK(err.code == EX_DATAERR);
			return -1;
		}
	}
	return ba_smtp_data_end(out, &st, stuff, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 100000)
		return 0;
	unsigned sel = data[0];
	int stuff = sel & 1, seven = (sel >> 1) & 1;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	struct ba_buf a = BA_BUF_INIT, b = BA_BUF_INIT, want = BA_BUF_INIT, back = BA_BUF_INIT;

	int ra = transform(&a, p, n, stuff, seven, 0);
	int rb = transform(&b, p, n, stuff, seven, sel >> 2);
	CHECK(ra == rb);

	/* what must come out: lines with CRLF, a last open line closed */
	size_t col = 0, maxcol = 0;
	int hi = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' || p[i] == '\n') {
			if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
			ba_buf_add(&want, "\r\n", 2);
			col = 0;
			continue;
		}
		ba_buf_addch(&want, p[i]);
		hi |= p[i] & 0x80;
		if (++col > maxcol)
			maxcol = col;
	}
	if (col)
		ba_buf_add(&want, "\r\n", 2);
	CHECK(ra == ((maxcol > 998 || (seven && hi)) ? -1 : 0));

	if (ra == 0) {
		CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
		const char *o = a.data ? a.data : "";
		size_t len = a.len;
		if (stuff) {
			CHECK(len >= 3 && memcmp(o + len - 3, ".\r\n", 3) == 0);
			CHECK(len == 3 || (len >= 5 && o[len - 5] == '\r' && o[len - 4] == '\n'));
			len -= 3;
		}
		/* CRLF lines only; un-stuff */
		for (size_t i = 0, bol = 1, c = 0; i < len; i++) {
			if (o[i] == '\r') {
				CHECK(i + 1 < len && o[i + 1] == '\n');
				ba_buf_add(&back, "\r\n", 2);
				i++;
				bol = 1;
				c = 0;
				continue;
			}
			CHECK(o[i] != '\n');
			if (bol && stuff && o[i] == '.') {
				CHECK(i + 1 < len && o[i + 1] == '.'); /* a line starting "." is doubled */
				i++;
			}
			bol = 0;
			CHECK(++c <= 998);
			ba_buf_addch(&back, o[i]);
		}
		CHECK(len == 0 || (len >= 2 && o[len - 2] == '\r' && o[len - 1] == '\n'));
		CHECK(back.len == want.len && (back.len == 0 || memcmp(back.data, want.data, back.len) == 0));
	}
	ba_buf_release(&a);
	ba_buf_release(&b);
	ba_buf_release(&want);
	ba_buf_release(&back);
	return 0;
}
