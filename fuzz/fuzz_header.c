/* fuzz/fuzz_header.c - the incremental header parser on arbitrary input
 *
 * The first byte chooses the chunk size and the flags, the last one the
 * limits (loose, or small: max_total 8..262, 1..5 fields) and whether
 * malformed lines are kept (BA_HEADER_KEEP_MALFORMED); the result (fields,
 * where the body starts, error text) must not depend on how the input was
 * split.  Every field parsed is written out again and must parse back the
 * same, and the folding writer must refold an unfolded value to lines of
 * at most 998 octets that unfold to the same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

struct result {
	int rc;
	size_t body;
	struct ba_header_list fields;
	struct ba_err err;
};

static void run(struct result *r, const char *s, size_t n, size_t step, unsigned flags,
                size_t max_total, size_t max_fields)
{
	struct ba_header_parser p;
	ba_header_parser_init(&p, max_total, max_fields, flags);
	size_t off = 0;
	r->rc = 0;
	ba_err_clear(&r->err);
	while (off < n) {
		size_t k = step && n - off > step ? step : n - off, used = 0;
		r->rc = ba_header_parser_push(&p, s + off, k, &used, &r->err);
		CHECK(used <= k);
		if (r->rc != 0) {
			off += used;
			break;
		}
		CHECK(used == k);
		off += k;
	}
	r->body = off;
	if (r->rc == 0)
		r->rc = ba_header_parser_finish(&p, &r->err);
	ba_header_parser_take(&p, &r->fields);
	ba_header_parser_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned flags = data[0] & 1 ? BA_HEADER_SKIP_MBOX_FROM : 0;
	size_t step = 1 + (data[0] >> 1) % 17;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	/* the last byte picks the limits: loose, or small enough to be hit */
	unsigned lim = data[size - 1];
	size_t max_total = lim & 1 ? 4096 : 8 + lim, max_fields = lim & 2 ? 64 : 1 + lim % 5;
	if (lim & 4) /* the lenient mode of the sendmail input: malformed lines skipped */
		flags |= BA_HEADER_KEEP_MALFORMED;
	struct result whole, parts;
	run(&whole, s, n, 0, flags, max_total, max_fields);
	run(&parts, s, n, step, flags, max_total, max_fields);
	CHECK(whole.rc == parts.rc);
	CHECK(!strcmp(whole.err.text, parts.err.text));
	if (whole.rc >= 0) {
		CHECK(whole.body == parts.body);
		CHECK(whole.fields.n == parts.fields.n);
		for (size_t i = 0; i < whole.fields.n; i++) {
			CHECK(!strcmp(whole.fields.v[i].name, parts.fields.v[i].name));
			CHECK(!strcmp(whole.fields.v[i].value, parts.fields.v[i].value));
		}
		/* written out and parsed again: the same fields */
		struct ba_buf out = BA_BUF_INIT;
		struct ba_err err = BA_ERR_INIT;
		CHECK(ba_header_list_write(&out, &whole.fields, "\r\n", &err) == 0);
		ba_buf_addstr(&out, "\r\n");
		struct result again;
		run(&again, out.data, out.len, 0, 0, 0, 0);
		CHECK(again.rc == 1 && again.body == out.len);
		CHECK(again.fields.n == whole.fields.n);
		for (size_t i = 0; i < whole.fields.n; i++) {
			CHECK(!strcmp(again.fields.v[i].name, whole.fields.v[i].name));
			/* refolded: unfold, fold again, unfold: the same text */
			struct ba_buf u = BA_BUF_INIT, w = BA_BUF_INIT, u2 = BA_BUF_INIT;
			CHECK(ba_header_field_unfold(&u, &whole.fields.v[i], &err) == 0);
			if (ba_header_value_valid(ba_buf_str(&u)) && memchr(u.data ? u.data : "", 0, u.len) == NULL &&
			    ba_header_write_field(&w, whole.fields.v[i].name, ba_buf_str(&u), "\r\n", &err) == 0) {
				size_t start = 0;
				for (size_t j = 0; j < w.len; j++)
					if (w.data[j] == '\n') {
						CHECK(j - 1 - start <= 998);
						start = j + 1;
					}
				struct result one;
				run(&one, w.data, w.len, 0, 0, 0, 0);
				CHECK(one.rc == 0 && one.fields.n == 1);
				CHECK(ba_header_field_unfold(&u2, &one.fields.v[0], &err) == 0);
				CHECK(!strcmp(ba_buf_str(&u2), ba_buf_str(&u)));
				ba_header_list_release(&one.fields);
			}
			ba_buf_release(&u);
			ba_buf_release(&w);
			ba_buf_release(&u2);
		}
		ba_header_list_release(&again.fields);
		ba_buf_release(&out);
	}
	ba_header_list_release(&whole.fields);
	ba_header_list_release(&parts.fields);
	return 0;
}
