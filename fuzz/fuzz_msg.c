/* fuzz/fuzz_msg.c - the message builder (msg + mime) on fuzzed subjects, filenames and bodies
 *
 * Input: one byte of options (eol, shape of the body, attachment type), then
 * the subject, the attachment's filename, the body text and the attachment,
 * separated by NUL bytes.  Fields the builder refuses are left out (the
 * refusal itself is the behaviour under test for those).  Every message
 * built is then checked by re-parsing it:
 *  - 7-bit clean, every line at most 998 octets, one kind of line end;
 *  - the header section ends at the first empty line, every field line
 *    is "Name: value" or a folded continuation, and the header parser
 *    (header.h) reads it, and every part's header, ending at the same place;
 *  - the Subject decodes (RFC 2047) back to the input;
 *  - the boundary is given in the Content-Type field, and exactly one line
 *    per part plus the close line starts with "--" and the boundary;
 *  - every part decodes (by its Content-Transfer-Encoding) back to its
 *    content: the attachment byte for byte, the body text with its line
 *    ends turned into the message's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bluearrow/encode.h"
#include "bluearrow/header.h"
#include "bluearrow/mime.h"
#include "bluearrow/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static int fixed_random(void *ctx, void *p, size_t n, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	for (size_t i = 0; i < n; i++)
		((unsigned char *)p)[i] = (unsigned char)(i * 7 + 3);
	return 0;
}

static int fixed_clock(void *ctx, int64_t *t, int *off, struct ba_err *err)
{
	(void)ctx;
	(void)err;
	*t = 1790000000;
	*off = 60;
	return 0;
}

/* The next NUL-terminated field of the input, as a fresh string. */
static char *field(const uint8_t **p, const uint8_t *end, size_t *len)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nul ? nul + 1 : end;
	*len = n;
	return s;
}

static int starts(const char *p, size_t n, const char *s)
{
	size_t k = strlen(s);
	return n >= k && memcmp(p, s, k) == 0;
}

static const char *find(const char *h, size_t hn, const char *needle, size_t nn)
{
	if (nn == 0 || hn < nn)
		return NULL;
	for (size_t i = 0; i + nn <= hn; i++)
		if (h[i] == needle[0] && memcmp(h + i, needle, nn) == 0)
			return h + i;
	return NULL;
}

/* Line structure of the whole message; returns the offset just after the header's empty line. */
static size_t check_lines(const char *m, size_t n, const char *eol)
{
	size_t el = strlen(eol), col = 0, hdr_end = 0;
	int in_header = 1, first = 1;
	CHECK(n >= el && memcmp(m + n - el, eol, el) == 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)m[i];
		CHECK(c < 128 && c != 0);
		if (el == 2 && c == '\r') {
			CHECK(i + 1 < n && m[i + 1] == '\n');
			continue;
		}
		if (el == 1)
			CHECK(c != '\r');
		if (c == '\n') {
			if (el == 2)
				CHECK(i > 0 && m[i - 1] == '\r');
			if (in_header && col == 0) {
				in_header = 0;
				hdr_end = i + 1;
			}
			col = 0;
			first = 1;
			continue;
		}
		if (in_header && first) {
			/* a field line starts with a name, a continuation with white space */
			CHECK(c != ':' && (c > 32 || c == ' ' || c == '\t'));
			first = 0;
		}
		CHECK(++col <= 998);
	}
	CHECK(hdr_end != 0);
	return hdr_end;
}

/* The unfolded value of the first field called name in hdr, or NULL. */
static int header_value(struct ba_buf *out, const char *hdr, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n;) {
		const char *line = hdr + i;
		const char *lf = memchr(line, '\n', n - i);
		size_t len = lf ? (size_t)(lf - line) + 1 : n - i;
		if (len > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			size_t j = i + nl + 1;
			if (j < n && hdr[j] == ' ')
				j++;
			for (; j < n; j++) {
				if (hdr[j] == '\r')
					continue;
				if (hdr[j] == '\n') {
					if (j + 1 < n && (hdr[j + 1] == ' ' || hdr[j + 1] == '\t'))
						continue;
					break;
				}
				ba_buf_addch(out, hdr[j]);
			}
			return 1;
		}
		i += len;
	}
	return 0;
}

/*
 * A header section (the message's or a part's) parses with the header
 * parser, ending exactly at its empty line; returns the number of fields.
 * The Subject it finds, unfolded, must be what header_value() found.
 */
static size_t parse_header(const char *h, size_t n, size_t want_end)
{
	struct ba_header_parser hp;
	struct ba_err err = BA_ERR_INIT;
	size_t consumed = 0;
	ba_header_parser_init(&hp, 0, 0, 0);
	CHECK(ba_header_parser_push(&hp, h, n, &consumed, &err) == 1 && consumed == want_end);
	size_t fields = hp.fields.n;
	const struct ba_header_field *subj = ba_header_list_find(&hp.fields, "Subject");
	if (subj) {
		struct ba_buf a = BA_BUF_INIT, b = BA_BUF_INIT;
		CHECK(ba_header_field_unfold(&a, subj, &err) == 0);
		header_value(&b, h, want_end, "Subject");
		/* header_value() keeps white space at the ends, the parser trims it */
		CHECK(a.len <= b.len && (a.len == 0 || find(b.data, b.len, a.data, a.len)));
		ba_buf_release(&a);
		ba_buf_release(&b);
	}
	ba_header_parser_release(&hp);
	return fields;
}

/* Decodes one leaf's content (after its header) by its CTE and compares with want. */
static void check_leaf(const char *part, size_t n, const char *eol, const struct ba_buf *want,
                       int whole_message)
{
	struct ba_buf cte = BA_BUF_INIT, dec = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	size_t el = strlen(eol);
	const char *blank = find(part, n, el == 2 ? "\r\n\r\n" : "\n\n", 2 * el);
	const char *body;
	size_t bn;
	if (starts(part, n, eol)) { /* no header fields at all */
		body = part + el;
	} else {
		CHECK(blank);
		body = blank + 2 * el;
	}
	bn = (size_t)(part + n - body);
	if (!whole_message)
		CHECK(parse_header(part, n, (size_t)(body - part)) >= 1);
	header_value(&cte, part, (size_t)(body - part), "Content-Transfer-Encoding");
	const char *c = ba_buf_str(&cte);
	if (strcmp(c, "base64") == 0)
		CHECK(ba_base64_decode(&dec, body, bn, &err) == 0);
	else if (strcmp(c, "quoted-printable") == 0)
		CHECK(ba_qp_decode(&dec, body, bn, &err) == 0);
	else
		CHECK(strcmp(c, "7bit") == 0 && ba_buf_add(&dec, body, bn) == 0);
	/* the last line of a whole-message leaf is always ended */
	int extra = whole_message && strcmp(c, "base64") != 0 && dec.len == want->len + el &&
	            (want->len < el || memcmp(want->data + want->len - el, eol, el) != 0) &&
	            memcmp(dec.data + want->len, eol, el) == 0;
	CHECK(dec.len == want->len || extra);
	CHECK(want->len == 0 || memcmp(dec.data, want->data, want->len) == 0);
	ba_buf_release(&cte);
	ba_buf_release(&dec);
}

/* Body text as it must come back: LF and CRLF become eol. */
static void canonical(struct ba_buf *out, const char *p, size_t n, const char *eol)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			continue;
		if (p[i] == '\n')
			ba_buf_addstr(out, eol);
		else
			ba_buf_addch(out, p[i]);
	}
}

static void check_message(const struct ba_buf *msg, const char *eol, const char *subject,
                          ba_mime_part *root, const struct ba_buf *want_body,
                          const struct ba_buf *want_att)
{
	const char *m = ba_buf_str(msg);
	size_t el = strlen(eol);
	size_t hdr_end = check_lines(m, msg->len, eol);
	CHECK(parse_header(m, msg->len, hdr_end) >= 5); /* Date, From, To, Message-ID, MIME-Version */
	struct ba_buf v = BA_BUF_INIT, dec = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;

	if (header_value(&v, m, hdr_end, "Subject")) {
		CHECK(ba_rfc2047_decode(&dec, ba_buf_str(&v), v.len, &err) == 0);
		CHECK(subject && dec.len == strlen(subject) && memcmp(dec.data ? dec.data : "", subject, dec.len) == 0);
	} else {
		CHECK(!subject || !*subject);
	}
	ba_buf_release(&v);
	ba_buf_release(&dec);

	const char *b = ba_mime_part_boundary(root);
	if (!*b) { /* a single leaf: the message's own header carries its Content-* fields */
		check_leaf(m, msg->len, eol, want_body, 1);
		return;
	}
	/* boundary occurrences: one in the header, then only delimiter lines */
	size_t bl = strlen(b), delims = 0, close = 0;
	const char *parts[3];
	size_t np = 0;
	struct ba_buf param = BA_BUF_INIT;
	ba_buf_addf(&param, "boundary=\"%s\"", b);
	CHECK(find(m, hdr_end, param.data, param.len));
	ba_buf_release(&param);
	/* delimiter lines: "--" boundary at the start of a line (RFC 2046 §5.1.1) */
	for (const char *p = m + hdr_end - 1; (p = find(p, msg->len - (size_t)(p - m), "\n--", 3));
	     p += 3) {
		const char *q = p + 3;
		if (!starts(q, msg->len - (size_t)(q - m), b))
			continue;
		const char *after = q + bl;
		if (starts(after, msg->len - (size_t)(after - m), "--")) {
			after += 2;
			close++;
		} else {
			CHECK(np < 3);
			parts[np++] = after + el;
		}
		CHECK(starts(after, msg->len - (size_t)(after - m), eol));
		delims++;
	}
	CHECK(close == 1 && np == 2 && delims == 3);
	/* each part runs up to the eol before the next delimiter */
	const char *end1 = parts[1] - el - bl - 2 - el;
	const char *end2 = m + msg->len - el - 2 - bl - 2 - el;
	check_leaf(parts[0], (size_t)(end1 - parts[0]), eol, want_body, 0);
	check_leaf(parts[1], (size_t)(end2 - parts[1]), eol, want_att, 0);
}

/* A small mime.types(5): /etc/mime.types would be read for every message. */
static const char *mime_types(void)
{
	static char path[64];
	if (!path[0]) {
		snprintf(path, sizeof(path), "/tmp/fuzz-mime-types-%ld", (long)getpid());
		FILE *f = fopen(path, "w");
		if (!f)
			abort();
		fputs("# type extensions\ntext/plain txt text\napplication/pdf pdf\n"
		      "image/png png\ntext/x-diff diff patch\napplication/zip zip\n", f);
		fclose(f);
	}
	return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = { NULL, "text/plain", "application/octet-stream",
	                                     "text/x-diff" };
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT, want_body = BA_BUF_INIT, want_att = BA_BUF_INIT;
	struct ba_buf_writer bw;
	ba_msg *m = NULL;
	ba_mime_part *root = NULL, *body = NULL, *att = NULL;
	size_t sn, fn, bn, an;

	if (size < 1 || size > 200000)
		return 0;
	unsigned sel = data[0];
	const uint8_t *p = data + 1, *end = data + size;
	struct ba_msg_opts o = { .mime = { .eol = sel & 1 ? "\r\n" : "\n",
	                                   .flags = BA_MIME_NO_SNIFF, .random = fixed_random,
	                                   .mime_types = mime_types() },
	                         .clock = fixed_clock };
	int multipart = (sel >> 1) & 1;
	char *subject = field(&p, end, &sn);
	char *filename = field(&p, end, &fn);
	char *text = field(&p, end, &bn);
	char *bytes = field(&p, end, &an);
	if (p < end) { /* the rest: the attachment may hold NUL bytes */
		free(bytes);
		an = (size_t)(end - (data + 1 + sn + fn + bn + 3));
		bytes = malloc(an + 1);
		if (!bytes)
			abort();
		memcpy(bytes, data + 1 + sn + fn + bn + 3, an);
	}

	CHECK(ba_msg_new(&m, &err) == 0);
	CHECK(ba_msg_add_from(m, "Sender <sender@example.org>", &err) == 0);
	CHECK(ba_msg_add_to(m, "r@example.net", &err) == 0);
	const char *subj = subject;
	if (ba_msg_set_subject(m, subject, &err) < 0)
		subj = NULL;
	CHECK(ba_mime_mem_new(&body, text, bn, "body", BA_MIME_BODY, &err) == 0);
	canonical(&want_body, text, bn, o.mime.eol);
	if (multipart) {
		CHECK(ba_mime_multipart_new(&root, "mixed", &err) == 0);
		CHECK(ba_mime_add(root, body, &err) == 0);
		CHECK(ba_mime_mem_new(&att, bytes, an, "attachment", BA_MIME_ATTACHMENT, &err) == 0);
		ba_mime_set_filename(att, filename, &err);
		if (types[(sel >> 2) & 3])
			CHECK(ba_mime_set_type(att, types[(sel >> 2) & 3], &err) == 0);
		CHECK(ba_mime_add(root, att, &err) == 0);
		ba_buf_add(&want_att, bytes, an);
	} else {
		root = body;
	}
	ba_msg_set_body(m, root);
	ba_buf_writer_init(&bw, &out);
	if (ba_msg_write(m, &bw.base, &o, &err) == 0) {
		if (getenv("FUZZ_DUMP")) fwrite(out.data, 1, out.len, stderr);
		CHECK(!ba_buf_failed(&out));
		check_message(&out, o.mime.eol, subj, root, &want_body, &want_att);
	} else {
		/* refused: only a body that is not UTF-8 may be, and then nothing was written */
		CHECK(out.len == 0 && !ba_utf8_valid(text, bn, NULL));
	}
	ba_msg_free(m);
	ba_buf_release(&out);
	ba_buf_release(&want_body);
	ba_buf_release(&want_att);
	free(subject);
	free(filename);
	free(text);
	free(bytes);
	return 0;
}
