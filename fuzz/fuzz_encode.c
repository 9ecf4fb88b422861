/* fuzz/fuzz_encode.c - decoders on arbitrary input, encoders checked by round trips
 *
 * Input: one byte choosing the codec, the eol, the flags and how writes are
 * split, then the data.  Decoders must not crash on anything; encoders must
 * give output that decodes back to the input, that does not depend on how
 * the input was split across writes, and whose lines respect their limits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static struct ba_b64_writer b64;
static struct ba_qp_writer qp;

/* Writes p in pieces of 1..step bytes (step 0: one write). */
static void feed(ba_writer *w, const uint8_t *p, size_t n, unsigned step)
{
	struct ba_err err = BA_ERR_INIT;
	for (size_t i = 0, k = 1; i < n; i += k, k = k % (step ? step : 1) + 1) {
		if (!step || k > n - i)
			k = n - i;
		CHECK(ba_write(w, p + i, k, &err) == 0);
	}
}

static void max_line(const char *s, size_t n, size_t max)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n')
			col = 0;
		else
			CHECK(++col <= max);
	}
}

static void encode(struct ba_buf *out, int qpmode, const uint8_t *p, size_t n, const char *eol,
                   unsigned flags, unsigned step)
{
	struct ba_buf_writer bw;
	struct ba_err err = BA_ERR_INIT;
	ba_buf_writer_init(&bw, out);
	if (qpmode) {
		ba_qp_writer_init(&qp, &bw.base, eol, flags);
		feed(&qp.base, p, n, step);
		CHECK(ba_qp_writer_finish(&qp, &err) == 0);
	} else {
		ba_b64_writer_init(&b64, &bw.base, eol, 76);
		feed(&b64.base, p, n, step);
		CHECK(ba_b64_writer_finish(&b64, &err) == 0);
	}
}

static void body_codec(int qpmode, const uint8_t *p, size_t n, const char *eol, unsigned flags,
                       unsigned step)
{
	struct ba_buf a = BA_BUF_INIT, b = BA_BUF_INIT, d = BA_BUF_INIT, want = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	encode(&a, qpmode, p, n, eol, flags, 0);
	encode(&b, qpmode, p, n, eol, flags, step);
	CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
	max_line(ba_buf_str(&a), a.len, 76);
	if (qpmode) {
		CHECK(ba_qp_decode(&d, ba_buf_str(&a), a.len, &err) == 0);
		for (size_t i = 0; i < n; i++) {
			if ((flags & BA_QP_TEXT) && p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
				continue;
			if ((flags & BA_QP_TEXT) && p[i] == '\n')
				ba_buf_addstr(&want, eol);
			else
				ba_buf_addch(&want, p[i]);
		}
	} else {
		CHECK(ba_base64_decode(&d, ba_buf_str(&a), a.len, &err) == 0);
		ba_buf_add(&want, p, n);
	}
	CHECK(d.len == want.len && (d.len == 0 || memcmp(d.data, want.data, d.len) == 0));
	ba_buf_release(&a);
	ba_buf_release(&b);
	ba_buf_release(&d);
	ba_buf_release(&want);
}

static void header_codec(const uint8_t *p, size_t n, unsigned flags, size_t col0)
{
	struct ba_buf enc = BA_BUF_INIT, unf = BA_BUF_INIT, dec = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	size_t col = col0;
	if (!ba_utf8_valid((const char *)p, n, NULL))
		return;
	CHECK(ba_rfc2047_encode(&enc, (const char *)p, n, &col, "\r\n", flags, &err) == 0);
	for (size_t i = 0; i < enc.len; i++)
		if (enc.data[i] != '\r' && enc.data[i] != '\n')
			ba_buf_addch(&unf, enc.data[i]);
	size_t lead = 0;
	while (col0 && lead < unf.len && unf.data[lead] == ' ')
		lead++;
	CHECK(ba_rfc2047_decode(&dec, ba_buf_str(&unf) + lead, unf.len - lead, &err) == 0);
	/* a phrase may come back as a quoted-string, which is not decoded here */
	if (!(flags & BA_RFC2047_PHRASE) || unf.len == 0 || unf.data[0] != '"')
		CHECK(dec.len == n && (n == 0 || memcmp(dec.data, p, n) == 0));
	ba_buf_release(&enc);
	ba_buf_release(&unf);
	ba_buf_release(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	if (size < 1 || size > 65536)
		return 0;
	unsigned sel = data[0];
	const char *eol = sel & 0x10 ? "\r\n" : "\n";
	data++;
	size--;
	switch (sel & 7) {
	case 0: /* decoders on anything */
		ba_base64_decode(&out, (const char *)data, size, &err);
		ba_buf_reset(&out);
		ba_qp_decode(&out, (const char *)data, size, &err);
		ba_buf_reset(&out);
		if (ba_rfc2047_decode(&out, (const char *)data, size, &err) == 0)
			CHECK(ba_utf8_valid(out.data ? out.data : "", out.len, NULL) ||
			      !ba_utf8_valid((const char *)data, size, NULL));
		break;
	case 1:
		body_codec(0, data, size, eol, 0, sel >> 5);
		break;
	case 2:
	case 3:
		body_codec(1, data, size, eol, sel & 1 ? BA_QP_TEXT : 0, sel >> 5);
		break;
	case 4:
	case 5:
		header_codec(data, size, sel & 1 ? BA_RFC2047_PHRASE : 0, sel >> 5 ? (sel >> 5) * 9 : 0);
		break;
	default: {
		char *v = malloc(size + 1);
		size_t col = sel >> 3;
		if (!v)
			return 0;
		memcpy(v, data, size);
		v[size] = '\0';
		if (ba_rfc2231_param(&out, "filename", v, &col, eol, &err) == 0)
			max_line(ba_buf_str(&out), out.len, 200);
		free(v);
		break;
	}
	}
	ba_buf_release(&out);
	return 0;
}
