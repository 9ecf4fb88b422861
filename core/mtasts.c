/* mtasts.c - SMTP MTA Strict Transport Security (RFC 8461): records, policies, the cache
 *
 * The parsers follow the ABNF of RFC 8461 §3.1 and §3.2 to the letter, with
 * two leniencies listed in docs/STANDARDS.md: policy lines may end in LF
 * alone (and empty lines are skipped), and a max_age above the maximum is
 * cut to it rather than making the policy invalid.  An invalid policy is
 * treated as no policy: the sender falls back to opportunistic TLS, so a
 * strict parser costs the domain nothing it did not ask for.
 */
#include "bluearrow/mtasts.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/buf.h"
#include "bluearrow/http.h"
#include "bluearrow/io.h"

#define CACHE_MAGIC "bluearrow-mta-sts 1"
#define HOST_MAX 253

const char *ba_mtasts_mode_name(enum ba_mtasts_mode m)
{
	switch (m) {
	case BA_MTASTS_MODE_TESTING:
		return "testing";
	case BA_MTASTS_MODE_ENFORCE:
		return "enforce";
	default:
		return "none";
	}
}

void ba_mtasts_policy_release(struct ba_mtasts_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	free(p->mx);
	memset(p, 0, sizeof *p);
}

static int is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* ---- the TXT record (RFC 8461 §3.1) -------------------------------------- */

/* 1 if the record begins with the version field, "v=STSv1" then blanks and ';' or its end. */
static int is_stsv1(const char *s, size_t len, size_t *after)
{
	if (len < 7 || memcmp(s, "v=STSv1", 7) != 0)
		return 0;
	size_t i = 7;
	while (i < len && is_wsp(s[i]))
		i++;
	if (i < len && s[i] != ';')
		return 0;
	*after = i;
	return 1;
}

int ba_mtasts_parse_txt(char id[BA_MTASTS_ID_MAX + 1], const char *txt, size_t len,
                        struct ba_err *err)
{
	size_t i;
	id[0] = '\0';
	if (!is_stsv1(txt, len, &i))
		return ba_err_set(err, EX_DATAERR, "not an STSv1 record");
	int have_id = 0;
	/* sts-text-record = sts-version 1*(*WSP %x3B *WSP sts-field) [%x3B] */
	while (i < len) {
		i++; /* the ';' */
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i == len)
			break; /* the optional final ';' (and blanks) */
		size_t k = i;
		while (k < len && (is_alnum(txt[k]) || txt[k] == '_' || txt[k] == '-' || txt[k] == '.'))
			k++;
		if (k == i || k - i > 32 || k == len || txt[k] != '=')
			return ba_err_set(err, EX_DATAERR, "malformed field at offset %zu", i);
		size_t name = i, name_len = k - i;
		size_t v = k + 1, e = v;
		/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): printable, no ';' nor '=' */
		while (e < len && txt[e] > 0x20 && txt[e] < 0x7f && txt[e] != ';' && txt[e] != '=')
			e++;
		if (e == v)
			return ba_err_set(err, EX_DATAERR, "empty field value at offset %zu", v);
		i = e;
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i < len && txt[i] != ';')
			return ba_err_set(err, EX_DATAERR, "malformed field at offset %zu", name);
		if (name_len == 2 && memcmp(txt + name, "id", 2) == 0) {
			if (have_id)
				return ba_err_set(err, EX_DATAERR, "more than one id field");
			if (e - v > BA_MTASTS_ID_MAX)
				return ba_err_set(err, EX_DATAERR, "id is longer than %d characters",
				                  BA_MTASTS_ID_MAX);
			for (size_t j = v; j < e; j++)
				if (!is_alnum(txt[j]))
					return ba_err_set(err, EX_DATAERR,
					                  "id holds other than letters and digits");
			memcpy(id, txt + v, e - v);
			id[e - v] = '\0';
			have_id = 1;
		}
	}
	if (!have_id)
		return ba_err_set(err, EX_DATAERR, "no id field");
	return 0;
}

int ba_mtasts_pick_txt(char id[BA_MTASTS_ID_MAX + 1], const char *const *txt,
                       const size_t *len, size_t n, struct ba_err *err)
{
	size_t found = 0, which = 0, after;
	id[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (is_stsv1(txt[i], len[i], &after)) {
			found++;
			which = i;
		}
	if (found == 0) {
		ba_err_set(err, EX_DATAERR, n ? "no STSv1 TXT record" : "no TXT record");
		return 0;
	}
	if (found > 1) {
		ba_err_set(err, EX_DATAERR, "%zu STSv1 TXT records (one is needed)", found);
		return 0;
	}
	if (ba_mtasts_parse_txt(id, txt[which], len[which], err) < 0) {
		ba_err_prefix(err, "invalid TXT record: ");
		return 0;
	}
	return 1;
}

/* ---- the policy (RFC 8461 §3.2) ----------------------------------------- */

/* A domain (RFC 5321 Domain: LDH labels, no hyphen at either end), lowercase copy to out. */
static int valid_domain(const char *s, size_t len)
{
	if (len == 0 || len > HOST_MAX)
		return 0;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

static int add_mx(struct ba_mtasts_policy *p, const char *v, size_t len)
{
	char **mx = realloc(p->mx, (p->nmx + 1) * sizeof *mx);
	if (!mx)
		return -1;
	p->mx = mx;
	char *s = malloc(len + 1);
	if (!s)
		return -1;
	for (size_t i = 0; i < len; i++)
		s[i] = (v[i] >= 'A' && v[i] <= 'Z') ? (char)(v[i] + 32) : v[i];
	s[len] = '\0';
	p->mx[p->nmx++] = s;
	return 0;
}

/* One "key: value" line (no terminator).  Returns 0, or -1 with err set. */
static int policy_line(struct ba_mtasts_policy *p, unsigned *seen, const char *l, size_t len,
                       unsigned lineno, struct ba_err *err)
{
	size_t k = 0;
	/* sts-policy-field-name = 1*32(ALPHA / DIGIT / "_" / "-" / ".") */
	while (k < len && (is_alnum(l[k]) || l[k] == '_' || l[k] == '-' || l[k] == '.'))
		k++;
	if (k == 0 || k > 32 || k == len || l[k] != ':')
		return ba_err_set(err, EX_DATAERR, "line %u: not a 'key: value' line", lineno);
	size_t v = k + 1;
	while (v < len && is_wsp(l[v]))
		v++;
	size_t e = len;
	while (e > v && is_wsp(l[e - 1]))
		e--;
	for (size_t i = v; i < e; i++)
		if (!(l[i] > 0x20 && l[i] < 0x7f) && !is_wsp(l[i]))
			return ba_err_set(err, EX_DATAERR,
			                  "line %u: the value holds a control or non-ASCII byte", lineno);
	const char *val = l + v;
	size_t vlen = e - v;
#define KEY(s) (k == sizeof(s) - 1 && memcmp(l, s, k) == 0)
#define VAL(s) (vlen == sizeof(s) - 1 && memcmp(val, s, vlen) == 0)
	if (KEY("version") || KEY("mode") || KEY("max_age")) {
		unsigned bit = KEY("version") ? 1u : KEY("mode") ? 2u : 4u;
		if (*seen & bit)
			return ba_err_set(err, EX_DATAERR, "line %u: '%.*s' appears twice", lineno, (int)k,
			                  l);
		*seen |= bit;
	}
	if (KEY("version")) {
		if (!VAL("STSv1"))
			return ba_err_set(err, EX_DATAERR, "line %u: version is not STSv1", lineno);
	} else if (KEY("mode")) {
		if (VAL("enforce"))
			p->mode = BA_MTASTS_MODE_ENFORCE;
		else if (VAL("testing"))
			p->mode = BA_MTASTS_MODE_TESTING;
		else if (VAL("none"))
			p->mode = BA_MTASTS_MODE_NONE;
		else
			return ba_err_set(err, EX_DATAERR,
			                  "line %u: mode '%.*s' is not enforce, testing or none", lineno,
			                  (int)(vlen > 40 ? 40 : vlen), val);
	} else if (KEY("max_age")) {
		/* sts-policy-max-age-value = 1*10(DIGIT) */
		if (vlen == 0 || vlen > 10)
			return ba_err_set(err, EX_DATAERR, "line %u: max_age is not 1 to 10 digits",
			                  lineno);
		long long age = 0;
		for (size_t i = 0; i < vlen; i++) {
			if (val[i] < '0' || val[i] > '9')
				return ba_err_set(err, EX_DATAERR, "line %u: max_age is not a number",
				                  lineno);
			age = age * 10 + (val[i] - '0');
		}
		p->max_age = age > BA_MTASTS_MAX_AGE_MAX ? BA_MTASTS_MAX_AGE_MAX : (long)age;
	} else if (KEY("mx")) {
		/* sts-policy-mx-value = ["*."] Domain */
		size_t off = vlen >= 2 && val[0] == '*' && val[1] == '.' ? 2 : 0;
		if (!valid_domain(val + off, vlen - off))
			return ba_err_set(err, EX_DATAERR, "line %u: mx '%.*s' is not [*.]domain",
			                  lineno, (int)(vlen > 80 ? 80 : vlen), val);
		if (add_mx(p, val, vlen) < 0)
			return ba_err_set(err, EX_OSERR, "out of memory");
	}
	/* other keys: extensions, ignored (RFC 8461 §3.2) */
#undef KEY
#undef VAL
	return 0;
}

int ba_mtasts_parse_policy(struct ba_mtasts_policy *p, const char *text, size_t len,
                           struct ba_err *err)
{
	memset(p, 0, sizeof *p);
	if (len > BA_MTASTS_POLICY_MAX)
		return ba_err_set(err, EX_DATAERR, "the policy is larger than %u KB",
		                  BA_MTASTS_POLICY_MAX / 1024);
	unsigned seen = 0, lineno = 0;
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t l = end - i;
		lineno++;
		if (l && text[i + l - 1] == '\r')
			l--;
		if (memchr(text + i, '\r', l) || memchr(text + i, '\0', l)) {
			ba_mtasts_policy_release(p);
			return ba_err_set(err, EX_DATAERR, "line %u: a bare CR or a NUL byte", lineno);
		}
		if (l && policy_line(p, &seen, text + i, l, lineno, err) < 0) {
			ba_mtasts_policy_release(p);
			return -1;
		}
		i = nl ? end + 1 : len;
	}
	const char *missing = !(seen & 1) ? "version" : !(seen & 2) ? "mode" : !(seen & 4) ? "max_age"
	                      : (p->mode != BA_MTASTS_MODE_NONE && p->nmx == 0) ? "mx" : NULL;
	if (missing) {
		ba_mtasts_policy_release(p);
		return ba_err_set(err, EX_DATAERR, "the policy has no %s field", missing);
	}
	return 0;
}

/* ---- matching (RFC 8461 §4.1) ------------------------------------------- */

int ba_mtasts_pattern_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host);
	if (hl && host[hl - 1] == '.')
		hl--;
	if (pattern[0] == '*' && pattern[1] == '.') {
		/* the wildcard stands for exactly one label, the leftmost */
		const char *dot = memchr(host, '.', hl);
		if (!dot || dot == host)
			return 0;
		size_t rest = hl - (size_t)(dot + 1 - host);
		return strlen(pattern + 2) == rest && strncasecmp(dot + 1, pattern + 2, rest) == 0;
	}
	return strlen(pattern) == hl && strncasecmp(pattern, host, hl) == 0;
}

int ba_mtasts_match(const struct ba_mtasts_policy *p, const char *host)
{
	for (size_t i = 0; i < p->nmx; i++)
		if (ba_mtasts_pattern_match(p->mx[i], host))
			return 1;
	return 0;
}

/* ---- the cache ---------------------------------------------------------- */

/* The cache directory, created (each missing component 0700) when create is set. */
static int cache_dir(struct ba_buf *out, const struct ba_mtasts_params *p, int create,
                     struct ba_err *err)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	if (p->cache_dir) {
		ba_buf_addstr(out, p->cache_dir);
	} else if (xdg && xdg[0] == '/') {
		/* XDG Base Directory: an unset, empty or relative XDG_CACHE_HOME means ~/.cache */
		ba_buf_addf(out, "%s/bluearrow/mta-sts", xdg);
	} else {
		const char *h = getenv("HOME");
		char pwbuf[4096];
		struct passwd pwb, *pw = NULL;
		if ((!h || !*h) && getpwuid_r(getuid(), &pwb, pwbuf, sizeof pwbuf, &pw) == 0 && pw)
			h = pw->pw_dir;
		if (!h || !*h)
			return ba_err_set(err, EX_CONFIG, "neither XDG_CACHE_HOME nor HOME is set");
		ba_buf_addf(out, "%s/.cache/bluearrow/mta-sts", h);
	}
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	if (!create)
		return 0;
	return ba_mkdirs(ba_buf_str(out), err);
}

/*
 * Reads the cached policy of domain into *pol.  Returns 1, 0 when there is
 * none usable (missing, not ours, not private, malformed: a cache is only a
 * cache), -1 on out of memory.
 */
static int cache_read(struct ba_mtasts_policy *pol, const char *path, struct ba_err *err)
{
	struct ba_buf b;
	ba_buf_init(&b, BA_MTASTS_POLICY_MAX + 512);
	struct ba_err rerr = BA_ERR_INIT;
	int n = ba_read_private(&b, path, &rerr) == 1 ? 0 : -1; /* unreadable: no cache */
	int rc = 0;
	const char *s = ba_buf_str(&b);
	const char *body = strstr(s, "\n\n");
	char id[BA_MTASTS_ID_MAX + 1];
	long long fetched = 0;
	if (n < 0 || ba_buf_failed(&b) || !body || strncmp(s, CACHE_MAGIC "\nid ", 23) != 0)
		goto out;
	size_t idlen = strspn(s + 23, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
	if (idlen == 0 || idlen > BA_MTASTS_ID_MAX || strncmp(s + 23 + idlen, "\nfetched ", 9) != 0)
		goto out;
	memcpy(id, s + 23, idlen);
	id[idlen] = '\0';
	char *end;
	errno = 0;
	fetched = strtoll(s + 23 + idlen + 9, &end, 10);
	if (errno || end != body || fetched <= 0)
		goto out;
	body += 2;
	struct ba_err perr = BA_ERR_INIT;
	if (ba_mtasts_parse_policy(pol, body, b.len - (size_t)(body - s), &perr) < 0) {
		rc = perr.code == EX_OSERR ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
		goto out;
	}
	snprintf(pol->id, sizeof pol->id, "%s", id);
	pol->fetched = (time_t)fetched;
	rc = 1;
out:
	ba_buf_release(&b);
	return rc;
}

/* Writes the policy text fetched under id at time now, atomically. */
static int cache_write(const char *path, const char *id, time_t now,
                       const struct ba_buf *text, struct ba_err *err)
{
	struct ba_buf data = BA_BUF_INIT;
	ba_buf_addf(&data, CACHE_MAGIC "\nid %s\nfetched %lld\n\n", id, (long long)now);
	ba_buf_add(&data, text->data, text->len);
	int rc = ba_buf_failed(&data) ? ba_err_set(err, EX_OSERR, "out of memory")
	                              : ba_write_private(path, &data, err);
	ba_buf_release(&data);
	return rc;
}

/* ---- the lookup (RFC 8461 §3.3, §5.1) ------------------------------------ */

/* Fetches and parses the policy of domain; *text keeps the body for the cache. */
static int fetch(struct ba_mtasts_policy *pol, struct ba_buf *text, const char *domain,
                 const struct ba_mtasts_params *p, struct ba_err *err)
{
	struct ba_buf url = BA_BUF_INIT;
	ba_buf_addf(&url, "https://mta-sts.%s/.well-known/mta-sts.txt", domain);
	if (ba_buf_failed(&url))
		return ba_err_set(err, EX_OSERR, "out of memory");
	const char *ca = p->trust_file && strcmp(p->trust_file, "system") != 0 ? p->trust_file : NULL;
	struct ba_http_params hp = { ca, p->timeout_ms, BA_MTASTS_POLICY_MAX, p->connect_to, p->log };
	struct ba_http_reply r;
	r.body = *text;
	int rc = -1;
	if (p->trust_file && !*p->trust_file) {
		ba_err_set(err, EX_CONFIG, "tls_trust_file is empty (trust no CA)");
	} else if (ba_http_request(&r, ba_buf_str(&url), NULL, 0, &hp, err) < 0) {
		;
	} else if (r.status != 200) {
		/* RFC 8461 §3.3: redirects are not followed, any other status is a failure */
		ba_err_set(err, EX_UNAVAILABLE, "HTTP status %ld", r.status);
	} else if (strncasecmp(r.content_type, "text/plain", 10) != 0 ||
	           (r.content_type[10] && r.content_type[10] != ';' && !is_wsp(r.content_type[10]))) {
		struct ba_buf ct = BA_BUF_INIT;
		ba_log_clean(&ct, r.content_type, strlen(r.content_type));
		ba_err_set(err, EX_UNAVAILABLE, "the media type is '%s', not text/plain",
		           ba_buf_str(&ct));
		ba_buf_release(&ct);
	} else if (ba_mtasts_parse_policy(pol, r.body.data ? r.body.data : "", r.body.len, err) == 0) {
		rc = 0;
	}
	*text = r.body;
	if (rc < 0)
		ba_err_prefix(err, "fetching '%s' failed: ", ba_buf_str(&url));
	ba_buf_release(&url);
	return rc;
}

static void note(struct ba_mtasts_result *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note(struct ba_mtasts_result *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->note, sizeof out->note, fmt, ap);
	va_end(ap);
}

int ba_mtasts_lookup(struct ba_mtasts_result *out, const char *domain,
                     const struct ba_mtasts_txt *txt, const struct ba_mtasts_params *p,
                     struct ba_err *err)
{
	static const struct ba_mtasts_params none;
	if (!p)
		p = &none;
	memset(out, 0, sizeof *out);
	char name[HOST_MAX + 1];
	size_t dl = strlen(domain);
	if (dl && domain[dl - 1] == '.')
		dl--;
	if (dl > HOST_MAX || !valid_domain(domain, dl))
		return ba_err_set(err, EX_DATAERR, "MTA-STS: '%s' is not a domain name", domain);
	for (size_t i = 0; i < dl; i++)
		name[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? (char)(domain[i] + 32) : domain[i];
	name[dl] = '\0';
	time_t now = p->now ? p->now : time(NULL);

	struct ba_buf dir = BA_BUF_INIT, path = BA_BUF_INIT;
	struct ba_mtasts_policy cached = { 0 };
	int have_cache = 0, rc = 0;
	struct ba_err cerr = BA_ERR_INIT;
	if (cache_dir(&dir, p, 0, &cerr) == 0) {
		ba_buf_addf(&path, "%s/%s", ba_buf_str(&dir), name);
		if (ba_buf_failed(&path)) {
			rc = ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		have_cache = cache_read(&cached, ba_buf_str(&path), err);
		if (have_cache < 0) {
			rc = -1;
			goto out;
		}
		if (have_cache && now >= cached.fetched + cached.max_age) {
			ba_log(p->log, BA_LOG_DEBUG, "mta-sts: the cached policy of '%s' has expired",
			       name);
			ba_mtasts_policy_release(&cached);
			have_cache = 0;
		}
	}

	char id[BA_MTASTS_ID_MAX + 1] = "";
	struct ba_err terr = BA_ERR_INIT;
	int have_txt = !txt->failed && ba_mtasts_pick_txt(id, txt->txt, txt->len, txt->n, &terr);
	if (!have_txt) {
		if (txt->failed)
			note(out, "the _mta-sts TXT lookup failed");
		else
			note(out, "_mta-sts.%s: %s", name, terr.text);
		if (have_cache) {
			/* RFC 8461 §5.1: a cached policy holds until it expires */
			out->source = BA_MTASTS_SRC_CACHED;
			out->policy = cached;
			have_cache = 0;
		}
		goto out;
	}
	if (have_cache && strcmp(cached.id, id) == 0) {
		out->source = BA_MTASTS_SRC_CACHED;
		out->policy = cached;
		have_cache = 0;
		goto out;
	}

	struct ba_buf text;
	ba_buf_init(&text, BA_MTASTS_POLICY_MAX + 1);
	struct ba_err ferr = BA_ERR_INIT;
	struct ba_mtasts_policy pol;
	if (fetch(&pol, &text, name, p, &ferr) < 0) {
		ba_buf_release(&text);
		if (ferr.code == EX_OSERR) {
			rc = ba_err_set(err, EX_OSERR, "%s", ferr.text);
			goto out;
		}
		ba_log(p->log, BA_LOG_WARNING, "mta-sts: %s: %s", name, ferr.text);
		note(out, "%s", ferr.text);
		if (have_cache) {
			out->source = BA_MTASTS_SRC_CACHED;
			out->policy = cached;
			have_cache = 0;
		}
		goto out;
	}
	snprintf(pol.id, sizeof pol.id, "%s", id);
	pol.fetched = now;
	ba_log(p->log, BA_LOG_INFO, "mta-sts: '%s' has policy id %s, mode %s, max_age %ld", name,
	       id, ba_mtasts_mode_name(pol.mode), pol.max_age);
	if (!p->no_cache_write) {
		struct ba_err werr = BA_ERR_INIT;
		ba_buf_reset(&dir);
		if (cache_dir(&dir, p, 1, &werr) < 0 ||
		    cache_write(ba_buf_str(&path), id, now, &text, &werr) < 0)
			ba_log(p->log, BA_LOG_WARNING, "mta-sts: cannot cache the policy of '%s': %s",
			       name, werr.text);
	}
	ba_buf_release(&text);
	out->source = BA_MTASTS_SRC_FETCHED;
	out->policy = pol;
out:
	if (have_cache)
		ba_mtasts_policy_release(&cached);
	ba_buf_release(&dir);
	ba_buf_release(&path);
	return rc;
}
