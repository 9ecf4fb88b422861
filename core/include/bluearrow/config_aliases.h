/* bluearrow/config_aliases.h - msmtp's `aliases` file: local recipient names to addresses
 *
 * Format (msmtp(1), `aliases`): one mapping a line, "local: a@b.example,
 * c@d.example"; '#' starts a comment to the end of the line; blank lines
 * are ignored.  A local name has no '@'.  The name "default" matches every
 * local name not listed.  Replacements that are local names themselves
 * are expanded again (at most 16 levels deep; a loop is an error).  Names
 * compare case-sensitively, as in msmtp.  Only the envelope changes: To
 * and Cc fields are left as they are.
 */
#ifndef BLUEARROW_CONFIG_ALIASES_H
#define BLUEARROW_CONFIG_ALIASES_H

#include <stddef.h>

#include "bluearrow/err.h"

typedef struct ba_aliases ba_aliases;

/*
 * Reads the aliases file at path (borrowed).  On success the caller frees
 * *out with ba_aliases_free().
 * Errors (EX_CONFIG, "FILE:LINE: ..." for content): cannot open or read the
 * file, a line without exactly one ':', an invalid name (empty or with
 * '@'), a duplicate name, an empty replacement, a line over 4096 bytes.
 */
int ba_aliases_load(ba_aliases **out, const char *path, struct ba_err *err);
/* As ba_aliases_load() on text in memory; name is used in errors. */
int ba_aliases_parse(ba_aliases **out, const char *name, const char *text, size_t len,
                     struct ba_err *err);
/* NULL is a no-op. */
void ba_aliases_free(ba_aliases *a);

/*
 * Replaces every local name (no '@') in the array *v of *n malloc'd
 * strings by its expansion, in place and in order; addresses with '@' are
 * kept.  A local name without an entry (and no "default") stays as it is.
 * The addresses one name expands to come in reverse order (depth first,
 * then reversed), exactly as msmtp 1.8 orders them, so both send the same
 * envelope.
 * Errors: EX_CONFIG ("too many levels expanding alias 'x'"), EX_OSERR.
 * On failure *v and *n are still a valid array (possibly partly expanded).
 */
int ba_aliases_expand(const ba_aliases *a, char ***v, size_t *n, struct ba_err *err);

#endif
