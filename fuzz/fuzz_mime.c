/* fuzz/fuzz_mime.c - ba_mime_downgrade() on arbitrary messages
 *
 * Input: one byte choosing the eol, then a message.  The downgrade must not
 * crash or leak on anything, and when it succeeds its output must be 7-bit
 * clean (docs/ARCHITECTURE.md §6 invariant 5).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct ba_mime_opts o = { (data[0] & 1) ? "\r\n" : "\n", 0, NULL, NULL, NULL };
	struct ba_mem_reader in;
	ba_mem_reader_init(&in, data + 1, size - 1);
	struct ba_buf out = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &out);
	struct ba_err err = BA_ERR_INIT;
	if (ba_mime_downgrade(&w.base, &in.base, &o, &err) == 0) {
		for (size_t i = 0; i < out.len; i++)
			CHECK((unsigned char)out.data[i] < 0x80);
	} else {
		CHECK(err.code != 0 && err.text[0]);
	}
	ba_buf_release(&out);
	return 0;
}
