/* fuzz/fuzz_addr.c - the address-list parser on arbitrary input, checked by round trips
 *
 * Whatever parses must render (with CRLF and with LF folding) to text that
 * parses back to the same entries: display name, local part, domain, group.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void roundtrip(const struct ba_addr_list *l, const char *eol)
{
	struct ba_buf out = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	size_t col = 4;
	CHECK(ba_addr_list_format(&out, l, &col, eol, 0, &err) == 0);
	/* every line break is a fold */
	for (size_t i = 0; i < out.len; i++)
		if (out.data[i] == '\n')
			CHECK(i + 1 < out.len && out.data[i + 1] == ' ');
	struct ba_addr_list back = BA_ADDR_LIST_INIT;
	CHECK(ba_addr_list_parse(&back, out.data, out.len, BA_ADDR_EMPTY_GROUPS, &err) == 0);
	CHECK(back.n == l->n);
	for (size_t i = 0; i < l->n; i++) {
		CHECK(same(back.v[i].display, l->v[i].display));
		CHECK(same(back.v[i].local, l->v[i].local));
		CHECK(same(back.v[i].domain, l->v[i].domain));
		CHECK(same(back.v[i].group, l->v[i].group));
	}
	ba_addr_list_release(&back);
	/* the ASCII rendering may refuse a UTF-8 local part or domain, never crash */
	ba_buf_reset(&out);
	col = 0;
	(void)ba_addr_list_format(&out, l, &col, eol, BA_ADDR_ASCII, &err);
	ba_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	struct ba_err err = BA_ERR_INIT;
	if (ba_addr_list_parse(&l, (const char *)data, size, BA_ADDR_EMPTY_GROUPS, &err) == 0) {
		for (size_t i = 0; i < l.n; i++) {
			const struct ba_addr *a = &l.v[i];
			CHECK(!a->display || (*a->display && !strpbrk(a->display, "\r\n")));
			CHECK(!a->local == !a->domain);
			CHECK(!a->local || (*a->local && !strpbrk(a->local, "\r\n")));
			CHECK(!a->domain || (*a->domain && !strpbrk(a->domain, "\r\n")));
			if (a->local) {
				struct ba_buf spec = BA_BUF_INIT;
				CHECK(ba_addr_spec_format(&spec, a, 0, &err) == 0);
				ba_buf_release(&spec);
				/* an ASCII form is LDH (or a literal) and converts to itself */
				struct ba_buf d = BA_BUF_INIT, d2 = BA_BUF_INIT;
				if (ba_addr_domain_to_ascii(&d, a->domain, &err) == 0) {
					const char *t = ba_buf_str(&d);
					if (t[0] != '[')
						CHECK(strspn(t, "abcdefghijklmnopqrstuvwxyz"
						                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == d.len &&
						      d.len <= 253);
					CHECK(ba_addr_domain_to_ascii(&d2, t, &err) == 0);
					CHECK(!strcmp(ba_buf_str(&d2), t));
				}
				ba_buf_release(&d);
				ba_buf_release(&d2);
			}
		}
		roundtrip(&l, "\r\n");
		roundtrip(&l, "\n");
	}
	ba_addr_list_release(&l);
	struct ba_addr a;
	if (ba_addr_parse_mailbox(&a, (const char *)data, size, 0, &err) == 0)
		ba_addr_release(&a);
	/* the envelope check on the input as a string */
	char *s = malloc(size + 1);
	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
		if (ba_addr_spec_valid(s))
			CHECK(!strpbrk(s, "<> \r\n\t"));
		free(s);
	}
	return 0;
}
