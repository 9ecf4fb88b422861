/* fuzz/fuzz_privacy.c - no Bcc leaves the client, every Bcc address is a recipient
 *
 * The privacy property of the sendmail input, checked directly: the input is
 * read with -t and Bcc removal (ba_msg_read(), once without and once with
 * -i).  When the read succeeds:
 *  (a) no Bcc or Resent-Bcc field is left in the spooled header, as a
 *      receiver would see it: the spool is split into lines at CRLF, at
 *      every bare CR and at every bare LF (the data phase turns each into
 *      CRLF), the header ends at the first empty line, and a line is a
 *      field named NAME when it does not start with SP/HT (that is a
 *      continuation of the line before) and its text before the first
 *      colon, without trailing SP/HT, is NAME.  The same is checked on the
 *      output of ba_mime_downgrade() over the spool (the 7-bit rendering);
 *  (b) every address of a Bcc field of the input (Resent-Bcc when the input
 *      has a Resent- field: -t then takes the resent block) is among the -t
 *      recipients.  The input's fields are found by a naive scan written
 *      here (lines split at LF, the header up to the first empty line or,
 *      without -i, a lone "."; a first "From " line skipped; continuation
 *      lines start with SP/HT), the addresses by ba_msg_addr_list() on the
 *      field's body.
 * Neither check uses header.h: they model the wire and the input, not the
 * reader under test.  The first byte chooses how the input is split into
 * reads and whether From/Date/Message-ID are generated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bluearrow/mime.h"
#include "bluearrow/msg_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

#include "../tests/helper/chunk_reader.h"

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

/*
 * The length of the field name of the line p[0..n) (no line end) as a
 * receiver reads it: the text before the colon, trailing SP/HT dropped;
 * 0 for a continuation (SP/HT first) or a line without a colon.
 */
static size_t line_name_len(const uint8_t *p, size_t n)
{
	if (!n || p[0] == ' ' || p[0] == '\t')
		return 0;
	const uint8_t *colon = memchr(p, ':', n);
	if (!colon)
		return 0;
	size_t k = (size_t)(colon - p);
	while (k && (p[k - 1] == ' ' || p[k - 1] == '\t'))
		k--;
	return k;
}

/* 1 if the line names a field called bcc or resent-bcc. */
static int is_bcc_line(const uint8_t *p, size_t n)
{
	size_t k = line_name_len(p, n);
	return (k == 3 && !strncasecmp((const char *)p, "bcc", 3)) ||
	       (k == 10 && !strncasecmp((const char *)p, "resent-bcc", 10));
}

/* (a): the header of the message m[0..n), split into wire lines, has no Bcc field. */
static void check_wire(const uint8_t *m, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && m[j] != '\r' && m[j] != '\n')
			j++;
		if (j == i && j < n)
			return; /* the empty line: the body follows */
		CHECK(!is_bcc_line(m + i, j - i));
		if (j < n && m[j] == '\r' && j + 1 < n && m[j + 1] == '\n')
			j++;
		i = j + 1;
	}
}

/* Reads all of r into a malloc'd buffer. */
static uint8_t *slurp(ba_reader *r, size_t *len)
{
	struct ba_buf b = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	char tmp[4096];
	ssize_t k;
	while ((k = ba_read(r, tmp, sizeof(tmp), &err)) > 0)
		ba_buf_add(&b, tmp, (size_t)k);
	CHECK(k == 0 && !ba_buf_failed(&b));
	return (uint8_t *)ba_buf_detach(&b, len);
}

/* 1 if the line's field name starts "resent-". */
static int is_resent_line(const uint8_t *p, size_t n)
{
	return line_name_len(p, n) > 7 && !strncasecmp((const char *)p, "resent-", 7);
}

/*
 * (b): the addresses of the input's Bcc fields (Resent-Bcc with a resent
 * block) are recipients.  in[0..n) is the input as ba_msg_read() got it.
 */
static void check_bcc_recipients(const uint8_t *in, size_t n, int dots, const struct ba_msg_input *m)
{
	/* the header's lines: split at LF; ends at an empty line, a lone "." (without -i) or EOF */
	size_t end = 0, start = 0;
	int resent = 0;
	for (size_t i = 0; i < n;) {
		const uint8_t *lf = memchr(in + i, '\n', n - i);
		size_t len = lf ? (size_t)(lf - (in + i)) : n - i; /* without the LF */
		size_t text = len && in[i + len - 1] == '\r' && lf ? len - 1 : len;
		if (i == 0 && len >= 5 && !memcmp(in, "From ", 5)) {
			start = lf ? len + 1 : n;
		} else if (dots && in[i] == '.' && ((lf && text == 1) || (!lf && len == 1))) {
			break;
		} else if (text == 0 && (lf || len)) {
			break;
		}
		if (is_resent_line(in + i, text))
			resent = 1;
		i += len + (lf ? 1 : 0);
		end = i;
	}
	for (size_t i = start; i < end;) {
		const uint8_t *lf = memchr(in + i, '\n', end - i);
		size_t len = lf ? (size_t)(lf + 1 - (in + i)) : end - i; /* with the LF */
		const uint8_t *colon = memchr(in + i, ':', len);
		int bcc = 0;
		if (is_bcc_line(in + i, len)) /* the colon is on this line: the name is all before it */
			bcc = resent ? (in[i] == 'r' || in[i] == 'R') : !(in[i] == 'r' || in[i] == 'R');
		size_t next = i + len;
		while (next < end && (in[next] == ' ' || in[next] == '\t')) {
			const uint8_t *l2 = memchr(in + next, '\n', end - next);
			next = l2 ? (size_t)(l2 + 1 - in) : end;
		}
		if (bcc) {
			char **v = NULL;
			size_t nv = 0;
			struct ba_err err = BA_ERR_INIT;
			const char *body = (const char *)colon + 1;
			/* the reader took this field's addresses with the same scanner */
			CHECK(ba_msg_addr_list(&v, &nv, "Bcc", body, (size_t)((const char *)in + next - body),
			                       &err) == 0);
			for (size_t k = 0; k < nv; k++) {
				size_t r = 0;
				while (r < m->nrcpt && strcmp(m->rcpt[r], v[k]) != 0)
					r++;
				CHECK(r < m->nrcpt);
				free(v[k]);
			}
			free(v);
		}
		i = next;
	}
}

static void run(const uint8_t *data, size_t size, unsigned sel, int dots)
{
	struct chunk_reader r = { { &chunk_ops }, data, size, 0, (sel >> 4) * 37 + 1 };
	struct ba_msg_read_opts o;
	memset(&o, 0, sizeof(o));
	o.flags = BA_MSG_READ_RCPT_FROM_HEADERS | BA_MSG_READ_REMOVE_BCC |
	          (dots ? 0 : BA_MSG_READ_DOTS_ARE_DATA);
	o.set_from = o.set_date = o.set_msgid = sel & 1 ? BA_MSG_HDR_OFF : BA_MSG_HDR_AUTO;
	if (sel & 2)
		o.set_from = BA_MSG_HDR_ON;
	o.from_addr = "me@example.org";
	o.header_max = 8192;
	o.mem_max = 4096;
	o.msg.clock = fixed_clock;
	o.msg.mime.random = fixed_random;
	struct ba_msg_input m;
	struct ba_err err = BA_ERR_INIT;
	if (ba_msg_read(&m, &r.base, &o, &err) < 0) {
		CHECK(err.code != 0 && m.spool == NULL);
		return; /* refused: nothing leaves */
	}
	size_t n;
	uint8_t *spooled = slurp(ba_spool_reader(m.spool), &n);
	check_wire(spooled, n);
	/* the 7-bit rendering for a server without 8BITMIME reads the spool again */
	struct ba_buf out = BA_BUF_INIT;
	struct ba_buf_writer w;
	ba_buf_writer_init(&w, &out);
	struct ba_mime_opts mo = { "\r\n", 0, fixed_random, NULL, NULL };
	if (ba_mime_downgrade(&w.base, ba_spool_reader(m.spool), &mo, &err) == 0 && !ba_buf_failed(&out))
		check_wire((const uint8_t *)out.data, out.len);
	ba_buf_release(&out);
	free(spooled);
	check_bcc_recipients(data, size, dots, &m);
	ba_msg_read_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	run(data + 1, size - 1, sel, 0);
	run(data + 1, size - 1, sel, 1);
	return 0;
}
