/* bench/encode_speed.c - throughput of the streaming base64 and quoted-printable writers
 *
 * Not built by default: `ninja -C build bench-encode-speed && build/bench-encode-speed [MB]`.
 * Encodes MB (default 100) megabytes of pseudo-random bytes (base64) and of
 * text-like bytes (quoted-printable) to a counting writer, in 64 KB writes,
 * and prints MB/s of input consumed (best of 3 runs).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bluearrow/encode.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct ba_b64_writer b64;
static struct ba_qp_writer qp;

static double run(int which, const unsigned char *data, size_t size, size_t total, uint64_t *out)
{
	struct ba_count_writer cw;
	struct ba_err err = BA_ERR_INIT;
	ba_writer *w;
	ba_count_writer_init(&cw);
	if (which == 0) {
		ba_b64_writer_init(&b64, &cw.base, "\r\n", 76);
		w = &b64.base;
	} else {
		ba_qp_writer_init(&qp, &cw.base, "\r\n", BA_QP_TEXT);
		w = &qp.base;
	}
	double t0 = now();
	for (size_t done = 0; done < total; done += size) {
		size_t chunk = 65536;
		for (size_t off = 0; off < size; off += chunk)
			if (ba_write(w, data + off, size - off < chunk ? size - off : chunk, &err) < 0)
				return -1;
	}
	int rc = which == 0 ? ba_b64_writer_finish(&b64, &err) : ba_qp_writer_finish(&qp, &err);
	double t = now() - t0;
	if (rc < 0)
		return -1;
	*out = cw.count;
	return t;
}

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
	size_t total = mb << 20, size = total; /* the whole input in memory, not in cache */
	unsigned char *bin = malloc(size), *text = malloc(size);
	uint32_t x = 1;
	if (!bin || !text)
		return 1;
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		bin[i] = (unsigned char)x;
		/* text: mostly letters and spaces, lines of ~70, some 8-bit and "=" */
		unsigned r = x % 100;
		text[i] = r < 14 ? ' ' : r < 15 ? '=' : r < 17 ? 0xC3 : r < 18 ? '\n' : 'a' + x % 26;
	}
	static const char *names[] = { "base64", "qp (random text)", "qp (prose)" };
	unsigned char *prose = malloc(size);
	static const char line[] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
	                           "eiusmod tempor.\nUt enim ad minim veniam, quis nostrud = caf\xC3\xA9 "
	                           "exercitation ullamco.\n";
	if (!prose)
		return 1;
	for (size_t i = 0; i < size; i++)
		prose[i] = (unsigned char)line[i % (sizeof(line) - 1)];
	for (int which = 0; which < 3; which++) {
		double best = 1e9;
		uint64_t out = 0;
		for (int k = 0; k < 3; k++) {
			double t = run(which ? 1 : 0, which == 0 ? bin : which == 1 ? text : prose, size, total,
			               &out);
			if (t < 0)
				return 1;
			if (t < best)
				best = t;
		}
		printf("%-17s %zu MB in %.3f s: %.0f MB/s (output %llu bytes)\n", names[which], mb, best,
		       (double)total / 1048576.0 / best, (unsigned long long)out);
	}
	free(bin);
	free(text);
	free(prose);
	return 0;
}
