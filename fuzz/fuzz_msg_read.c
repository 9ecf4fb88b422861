/* fuzz/fuzz_msg_read.c - the sendmail input reader on arbitrary messages
 *
 * The first byte chooses the flags and how the input is split into reads.
 * Whatever the input: no crash, the spool reads back exactly its size (twice:
 * it is rewindable), every -t recipient is a non-empty string.  With nothing
 * to add or remove, the spool must equal the input (minus a leading mbox
 * "From " line), cut before the first lone-dot line unless dots are data:
 * the reader never changes what it keeps.  One step in eight gives the input
 * as a file (a memfd) that the spool refers to instead of copying the body.
 * The spool's flags and wire size (its fast scan) match the plain definition
 * computed here over the bytes it gives back.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bluearrow/msg_read.h"
#include "../tests/helper/spool_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

#include "../tests/helper/chunk_reader.h"

/* The length of p[0..n) before its first line that is ".", ".\n" or ".\r\n" (sendmail's end). */
static size_t before_lone_dot(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const uint8_t *nl = memchr(p + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl + 1 - (p + i)) : n - i;
		if (p[i] == '.' && (len == 1 || (len == 2 && p[i + 1] == '\n') ||
		                    (len == 3 && p[i + 1] == '\r' && p[i + 2] == '\n')))
			return i;
		i += len;
	}
	return n;
}

static int fixed_clock(void *ctx, int64_t *t, int *off, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	*t = 1700000000;
	*off = 0;
	return 0;
}

static int fixed_random(void *ctx, void *p, size_t n, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	memset(p, 7, n);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	data++;
	size--;
	struct chunk_reader r = { { &chunk_ops }, data, size, 0, (sel >> 5) * 13 + 1 };
	ba_reader *input = &r.base;
	struct ba_msg_read_opts o;
	memset(&o, 0, sizeof(o));
	o.flags = sel & 15;
	/* the top step: the input as a file (memfd) that the spool refers to */
	struct ba_fd_reader fr;
	int fd = -1;
	if ((sel >> 5) == 7) {
		fd = memfd_create("fuzz", 0);
		CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0);
		ba_fd_reader_init(&fr, fd, "fuzz file");
		input = &fr.base;
	}
	int plain = (sel & 16) != 0;
	o.set_from = o.set_date = o.set_msgid = plain ? BA_MSG_HDR_OFF : BA_MSG_HDR_AUTO;
	if (plain)
		o.flags = (o.flags & (BA_MSG_READ_DOTS_ARE_DATA | BA_MSG_READ_RCPT_FROM_HEADERS));
	o.from_addr = "me@example.org";
	o.from_name = "Fuzz Name";
	o.header_max = 2048;
	o.mem_max = 257;
	o.msg.clock = fixed_clock;
	o.msg.mime.random = fixed_random;
	if (fd >= 0) {
		o.flags |= BA_MSG_READ_REFER_INPUT;
		o.in_fd = fd;
	}
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	if (ba_msg_read(&m, input, &o, &err) < 0) {
		CHECK(err.code != 0 && m.spool == NULL);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	for (size_t i = 0; i < m.nrcpt; i++)
		CHECK(m.rcpt[i] && m.rcpt[i][0]);
	uint64_t want = ba_spool_size(m.spool);
	unsigned char *got = malloc(want + 1);
	CHECK(got);
	for (int round = 0; round < 2; round++) {
		ba_reader *sr = ba_spool_reader(m.spool);
		uint64_t have = 0;
		ssize_t k;
		while ((k = ba_read(sr, got + have, (size_t)(want + 1 - have), &err)) > 0)
			have += (uint64_t)k;
		CHECK(k == 0 && have == want);
	}
	unsigned ref_flags;
	uint64_t ref_wire;
	spool_ref_scan(got, (size_t)want, &ref_flags, &ref_wire);
	CHECK(ba_spool_flags(m.spool) == ref_flags && ba_spool_wire_size(m.spool) == ref_wire);
	if (plain) {
		const uint8_t *in = data;
		size_t n = size;
		if (n >= 5 && memcmp(in, "From ", 5) == 0) { /* the mbox line is dropped */
			const uint8_t *nl = memchr(in, '\n', n);
			n = nl ? n - (size_t)(nl + 1 - in) : 0;
			in = nl ? nl + 1 : in + size;
		}
		if (!(o.flags & BA_MSG_READ_DOTS_ARE_DATA)) /* up to the first lone-dot line */
			n = before_lone_dot(in, n);
		CHECK(want == n && memcmp(got, in, n) == 0);
	}
	free(got);
	ba_msg_read_release(&m);
	if (fd >= 0)
		close(fd);
	return 0;
}
