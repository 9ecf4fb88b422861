/* bluearrow/mtasts.h - SMTP MTA Strict Transport Security (RFC 8461)
 *
 * A recipient domain publishes a TXT record at _mta-sts.DOMAIN ("v=STSv1;
 * id=20260101T000000;") and a policy at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt naming the MX hosts that
 * may receive its mail and whether TLS to them must be verified ("mode:
 * enforce") or failures only reported ("mode: testing").  This module
 * parses both, fetches the policy (bluearrow/http.h: TLS verified, no
 * redirects, 64 KB, the caller's deadline) and caches it under
 * $XDG_CACHE_HOME/bluearrow/mta-sts/ for its max_age, fetching again when
 * the TXT id changes (RFC 8461 §5.1).  The TXT lookup is the caller's
 * (bluearrow/dns.h): this module does no DNS of its own.
 *
 * Everything parsed here comes from the peer: bounded and validated, never
 * trusted further than the policy says.
 */
#ifndef BLUEARROW_MTASTS_H
#define BLUEARROW_MTASTS_H

#include <stddef.h>
#include <time.h>

#include "bluearrow/err.h"
#include "bluearrow/log.h"

#define BA_MTASTS_POLICY_MAX (64u * 1024) /* policy body bound */
#define BA_MTASTS_MAX_AGE_MAX 31557600L   /* RFC 8461 §3.2: larger values are cut to this */
#define BA_MTASTS_ID_MAX 32               /* RFC 8461 §3.1: 1*32(ALPHA / DIGIT) */

enum ba_mtasts_mode {
	BA_MTASTS_MODE_NONE = 0, /* the domain withdrew its policy: as if there were none */
	BA_MTASTS_MODE_TESTING,  /* deliver as usual; report what enforce would refuse */
	BA_MTASTS_MODE_ENFORCE,  /* only matching MX hosts, only with verified TLS */
};

/* "none", "testing", "enforce". */
const char *ba_mtasts_mode_name(enum ba_mtasts_mode m);

/* A parsed policy.  Release with ba_mtasts_policy_release(). */
struct ba_mtasts_policy {
	enum ba_mtasts_mode mode;
	long max_age;                     /* seconds, 0..BA_MTASTS_MAX_AGE_MAX */
	size_t nmx;
	char **mx;                        /* the mx patterns, lowercase: "mx.example.com" or
	                                     "*.example.com" */
	char id[BA_MTASTS_ID_MAX + 1];    /* the TXT id it was fetched under; "" if parsed alone */
	time_t fetched;                   /* when it was fetched (0 if parsed alone) */
};

void ba_mtasts_policy_release(struct ba_mtasts_policy *p);

/*
 * Parses one TXT record (len bytes; the character-strings concatenated):
 * "v=STSv1" first, fields separated by ';' with optional blanks, an "id"
 * field of 1 to 32 letters and digits; other fields are ignored (RFC 8461
 * §3.1).  On success copies the id to id.
 * Errors: EX_DATAERR (the reason: "not an STSv1 record", "no id field", ...).
 */
int ba_mtasts_parse_txt(char id[BA_MTASTS_ID_MAX + 1], const char *txt, size_t len,
                        struct ba_err *err);

/*
 * Picks the record of a domain from all TXT records found at _mta-sts.DOMAIN
 * (txt[i] of len[i] bytes): those not beginning with "v=STSv1" are ignored;
 * exactly one must remain and parse (RFC 8461 §3.1).  Returns 1 with its id,
 * or 0 with the reason in err (class EX_DATAERR) when the domain has no
 * usable record.
 */
int ba_mtasts_pick_txt(char id[BA_MTASTS_ID_MAX + 1], const char *const *txt,
                       const size_t *len, size_t n, struct ba_err *err);

/*
 * Parses a policy body (RFC 8461 §3.2): lines of "key: value" ending in CRLF
 * or LF (empty lines ignored), values of printable ASCII and blanks;
 * "version: STSv1", "mode" and "max_age" exactly once each, "mx" one or more
 * times (none needed for mode none), each "[*.]domain"; unknown keys are
 * ignored.  At most BA_MTASTS_POLICY_MAX bytes.  On success fills *p (id and
 * fetched zero), which the caller releases; on failure *p is empty.
 * Errors: EX_DATAERR naming the line ("line 2: mode 'strict' is not
 * enforce, testing or none"); EX_OSERR out of memory.
 */
int ba_mtasts_parse_policy(struct ba_mtasts_policy *p, const char *text, size_t len,
                           struct ba_err *err);

/*
 * 1 if host (an MX host name, any case, a trailing dot allowed) matches
 * pattern (RFC 8461 §4.1): equal ignoring case, or for "*.example.com" a
 * name of exactly one more label ("mx.example.com", not "example.com" nor
 * "a.mx.example.com").  Else 0.
 */
int ba_mtasts_pattern_match(const char *pattern, const char *host);
/* 1 if host matches one of p's mx patterns. */
int ba_mtasts_match(const struct ba_mtasts_policy *p, const char *host);

/* What the TXT lookup at _mta-sts.DOMAIN gave. */
struct ba_mtasts_txt {
	int failed;              /* the lookup failed (SERVFAIL, timeout): not "no record" */
	size_t n;                /* records found */
	const char *const *txt;  /* borrowed: each record's character-strings concatenated */
	const size_t *len;
};

struct ba_mtasts_params {
	const char *trust_file;  /* PEM CA bundle for the HTTPS fetch; NULL or "system" = the
	                            system store (the account's tls_trust_file) */
	int timeout_ms;          /* the fetch; <= 0: 60 s (pass what is left of the deadline) */
	time_t now;              /* the clock; 0 = time(NULL) */
	const char *cache_dir;   /* NULL = $XDG_CACHE_HOME/bluearrow/mta-sts (~/.cache/...) */
	int no_cache_write;      /* 1: read the cache, never write it (`bluearrow mx`) */
	/* tests only, never from a configuration: "HOST:PORT" the HTTPS fetch connects
	   to instead of mta-sts.DOMAIN:443 (the certificate is still checked against
	   mta-sts.DOMAIN) */
	const char *connect_to;
	const struct ba_log *log; /* optional: fetches, cache use and failures */
};

/* Where the policy in a ba_mtasts_result came from. */
enum ba_mtasts_source {
	BA_MTASTS_SRC_NONE = 0, /* no policy: deliver as the domain had no MTA-STS */
	BA_MTASTS_SRC_FETCHED,  /* fetched now (and cached) */
	BA_MTASTS_SRC_CACHED,   /* from the cache, unexpired */
};

struct ba_mtasts_result {
	enum ba_mtasts_source source;
	struct ba_mtasts_policy policy; /* when source != NONE (its mode may still be none) */
	char note[BA_ERR_TEXT_MAX];  /* why there is no policy, or why the cache was used although the
	                    TXT id changed ("fetching 'https://...' failed: ..."); else "" */
};

/*
 * The MTA-STS policy of domain (an A-label) that applies now, RFC 8461
 * §5.1: with a valid TXT record whose id is the cached policy's, the cached
 * policy; with a new id (or nothing cached), the policy fetched from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (HTTP 200, text/plain,
 * valid), then cached; when that fails, or there is no TXT record or the
 * lookup failed, the cached policy while it is unexpired; else no policy
 * (out->note says why).  A fetch failure is therefore never an error: it
 * makes no policy (the caller delivers opportunistically).  Cache files are
 * written atomically (0600, directories 0700); a cache that cannot be
 * written is logged as a warning.  On success the caller releases
 * out->policy with ba_mtasts_policy_release().
 * Errors: EX_DATAERR domain is not a host name; EX_OSERR out of memory.
 */
int ba_mtasts_lookup(struct ba_mtasts_result *out, const char *domain,
                     const struct ba_mtasts_txt *txt, const struct ba_mtasts_params *p,
                     struct ba_err *err);

#endif
