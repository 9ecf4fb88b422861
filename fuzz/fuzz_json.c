/* fuzz/fuzz_json.c - the strict JSON object reader on arbitrary input
 *
 * Properties: a parse that succeeds has unique member names, and writing
 * its members out again (strings escaped, numbers as read, literals, nested
 * values as empty containers) parses back to the same names, types and
 * values; a parse that fails leaves nothing behind (LSan) and is EX_PROTOCOL
 * (or EX_OSERR).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/buf.h"
#include "bluearrow/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_string(struct ba_buf *b, const char *s)
{
	ba_buf_addch(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			ba_buf_addf(b, "\\%c", *p);
		else if (*p < 0x20)
			ba_buf_addf(b, "\\u%04x", *p);
		else
			ba_buf_addch(b, *p);
	}
	ba_buf_addch(b, '"');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ba_json j, k;
	struct ba_err err = BA_ERR_INIT;
	if (ba_json_parse(&j, (const char *)data, size, &err) < 0) {
		if (err.code != EX_PROTOCOL && err.code != EX_OSERR)
			abort();
		ba_json_release(&j);
		return 0;
	}
	for (size_t a = 0; a < j.n; a++)
		for (size_t b = a + 1; b < j.n; b++)
			if (strcmp(j.m[a].name, j.m[b].name) == 0)
				abort();
	struct ba_buf out = BA_BUF_INIT;
	ba_buf_addch(&out, '{');
	for (size_t i = 0; i < j.n; i++) {
		const struct ba_json_member *m = &j.m[i];
		if (i)
			ba_buf_addch(&out, ',');
		put_string(&out, m->name);
		ba_buf_addch(&out, ':');
		switch (m->type) {
		case BA_JSON_STRING: put_string(&out, m->value); break;
		case BA_JSON_NUMBER: ba_buf_addstr(&out, m->value); break;
		case BA_JSON_TRUE: ba_buf_addstr(&out, "true"); break;
		case BA_JSON_FALSE: ba_buf_addstr(&out, "false"); break;
		case BA_JSON_NULL: ba_buf_addstr(&out, "null"); break;
		case BA_JSON_ARRAY: ba_buf_addstr(&out, "[]"); break;
		case BA_JSON_OBJECT: ba_buf_addstr(&out, "{}"); break;
		}
	}
	ba_buf_addch(&out, '}');
	if (ba_buf_failed(&out) || ba_json_parse(&k, out.data, out.len, &err) < 0 || k.n != j.n)
		abort();
	for (size_t i = 0; i < j.n; i++) {
		if (strcmp(j.m[i].name, k.m[i].name) != 0 || j.m[i].type != k.m[i].type)
			abort();
		if ((j.m[i].value == NULL) != (k.m[i].value == NULL))
			abort();
		if (j.m[i].value && strcmp(j.m[i].value, k.m[i].value) != 0)
			abort();
	}
	ba_json_release(&k);
	ba_json_release(&j);
	ba_buf_release(&out);
	return 0;
}
