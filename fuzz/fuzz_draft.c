/* fuzz/fuzz_draft.c - the draft file reader (bluearrow/draft.h) on arbitrary files
 *
 * Input: the file.  Checked: a file that loads formats and loads back to
 * the same draft (the formatted bytes are a fixed point); a file that does
 * not load fails with EX_DATAERR naming the file and a line, nothing else.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bluearrow/draft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d = NULL, *e = NULL;
	if (ba_draft_parse(&d, data, size, "fuzz", &err) < 0) {
		if (d || err.code != EX_DATAERR || strncmp(err.text, "'fuzz', line ", 13) != 0)
			abort();
		return 0;
	}
	struct ba_buf a = BA_BUF_INIT, b = BA_BUF_INIT;
	if (ba_draft_format(&a, d, &err) < 0)
		abort(); /* the reader refuses what the writer refuses ("-" paths) */
	if (ba_draft_parse(&e, a.data, a.len, "again", &err) < 0)
		abort();
	if (ba_draft_format(&b, e, &err) < 0 || a.len != b.len || memcmp(a.data, b.data, a.len))
		abort();
	/* the counts survive too */
	for (int f = 0; f < BA_DRAFT_NFIELDS; f++)
		if (ba_draft_count(d, (enum ba_draft_field)f) != ba_draft_count(e, (enum ba_draft_field)f))
			abort();
	if (ba_draft_attach_count(d) != ba_draft_attach_count(e))
		abort();
	ba_buf_release(&a);
	ba_buf_release(&b);
	ba_draft_free(d);
	ba_draft_free(e);
	return 0;
}
