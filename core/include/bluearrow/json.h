/* bluearrow/json.h - a small, strict, bounded JSON reader for one object
 *
 * Reads the replies of OAuth2 endpoints (RFC 6749 §5, RFC 8628 §3.2): one
 * JSON object (RFC 8259) whose members are looked up by name.  Strict: the
 * whole input must be exactly one object (blanks around it allowed), UTF-8
 * valid, no control characters inside strings, no duplicate member names
 * at the top level, no leading zeros or other liberties; nested arrays and
 * objects are checked and skipped, to a depth of BA_JSON_DEPTH_MAX.  Pure:
 * no I/O.  Values may be secrets (tokens): ba_json_release() wipes them.
 */
#ifndef BLUEARROW_JSON_H
#define BLUEARROW_JSON_H

#include <stddef.h>

#include "bluearrow/err.h"

#define BA_JSON_DEPTH_MAX 16
#define BA_JSON_MEMBERS_MAX 256

enum ba_json_type { BA_JSON_STRING, BA_JSON_NUMBER, BA_JSON_TRUE, BA_JSON_FALSE, BA_JSON_NULL,
	            BA_JSON_ARRAY, BA_JSON_OBJECT };

/* One member of the top-level object. */
struct ba_json_member {
	char *name;                 /* decoded, NUL-terminated (a NUL inside is refused) */
	enum ba_json_type type;
	char *value;                /* a string: decoded; a number: its text; else NULL */
};

/* The top-level object: owned by it, released with ba_json_release(). */
struct ba_json {
	struct ba_json_member *m;
	size_t n;
};

/*
 * Parses text (len bytes, borrowed; need not be NUL-terminated) as one
 * JSON object into *out, which the caller releases with ba_json_release()
 * (also on failure).  Errors: EX_PROTOCOL "malformed JSON at offset N:
 * WHY" (never quoting the input, which may hold a secret), "JSON nested
 * deeper than 16", "more than 256 JSON members", "duplicate JSON member
 * 'NAME'"; EX_OSERR when out of memory.
 */
int ba_json_parse(struct ba_json *out, const char *text, size_t len, struct ba_err *err);

/* The string value of member name, or NULL when absent or not a string.  Borrowed. */
const char *ba_json_str(const struct ba_json *j, const char *name);

/*
 * The value of member name as a non-negative integer in *out: a number
 * without fraction or exponent (or such a number in a string, as some
 * providers send "expires_in": "3599").  Returns 1 when found, 0 when
 * absent, -1 when present but not such a number or above max.
 */
int ba_json_uint(const struct ba_json *j, const char *name, long max, long *out);

/* Wipes and frees every name and value; the struct is then empty.  NULL is a no-op. */
void ba_json_release(struct ba_json *j);

#endif
