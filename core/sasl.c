/* sasl.c - SASL mechanisms as pure steps on GnuTLS primitives (see bluearrow/sasl.h)
 *
 * Why our own code and not GNU SASL: fewer dependencies, every mechanism is
 * testable with the RFCs' own example exchanges, and channel binding data
 * comes from our tls module.  Nothing here does I/O: the engine sends what we
 * append and hands us what the server said.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"
#include "bluearrow/sasl.h"

/* RFC 5802 §5.1 i=: refuse counts that would make PBKDF2 a denial of service */
#define SCRAM_ITER_MAX 1000000UL
#define SCRAM_NONCE_RAW 18      /* 18 random bytes = 24 base64 characters, no padding */
#define SCRAM_HASH_MAX 32       /* SHA-256 */
#define CHALLENGE_MAX 8192      /* no legitimate challenge is larger */

struct ba_sasl {
	enum ba_sasl_mech mech;
	unsigned nstep;          /* calls of ba_sasl_step() that succeeded */
	int failed;              /* a step failed: the exchange is over */
	int verified;            /* SCRAM: server-final seen and its signature verified */
	char *user, *password, *authzid, *host;
	unsigned port;
	unsigned char *cb_data;
	size_t cb_len;
	const char *cb_type;     /* static string: "tls-exporter" or "tls-unique" */
	char *fixed_nonce;       /* test hook */
	/* SCRAM state between the steps */
	struct ba_buf gs2;               /* gs2-header (RFC 5802 §7) */
	struct ba_buf first_bare;        /* client-first-message-bare */
	size_t nonce_off;                /* where the client nonce starts in first_bare */
	unsigned char server_sig[SCRAM_HASH_MAX];
};

/* ---- names, pick ----------------------------------------------------------- */

static const char *const mech_names[] = {
	[BA_SASL_NONE] = NULL,
	[BA_SASL_PLAIN] = "PLAIN",
	[BA_SASL_LOGIN] = "LOGIN",
	[BA_SASL_CRAM_MD5] = "CRAM-MD5",
	[BA_SASL_SCRAM_SHA_1] = "SCRAM-SHA-1",
	[BA_SASL_SCRAM_SHA_256] = "SCRAM-SHA-256",
	[BA_SASL_SCRAM_SHA_1_PLUS] = "SCRAM-SHA-1-PLUS",
	[BA_SASL_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
	[BA_SASL_XOAUTH2] = "XOAUTH2",
	[BA_SASL_OAUTHBEARER] = "OAUTHBEARER",
	[BA_SASL_EXTERNAL] = "EXTERNAL",
};
#define NMECH (sizeof(mech_names) / sizeof(mech_names[0]))

const char *ba_sasl_mech_name(enum ba_sasl_mech m)
{
	if ((unsigned)m >= NMECH)
		return NULL;
	return mech_names[m];
}

enum ba_sasl_mech ba_sasl_mech_from_name(const char *name)
{
	if (!name)
		return BA_SASL_NONE;
	for (size_t i = 1; i < NMECH; i++)
		if (strcasecmp(name, mech_names[i]) == 0)
			return (enum ba_sasl_mech)i;
	return BA_SASL_NONE;
}

int ba_sasl_mech_is_cleartext(enum ba_sasl_mech m)
{
	return m == BA_SASL_PLAIN || m == BA_SASL_LOGIN;
}

int ba_sasl_mech_uses_token(enum ba_sasl_mech m)
{
	return m == BA_SASL_XOAUTH2 || m == BA_SASL_OAUTHBEARER;
}

static int is_scram(enum ba_sasl_mech m)
{
	return m == BA_SASL_SCRAM_SHA_1 || m == BA_SASL_SCRAM_SHA_256 ||
	       m == BA_SASL_SCRAM_SHA_1_PLUS || m == BA_SASL_SCRAM_SHA_256_PLUS;
}

static int is_plus(enum ba_sasl_mech m)
{
	return m == BA_SASL_SCRAM_SHA_1_PLUS || m == BA_SASL_SCRAM_SHA_256_PLUS;
}

/* 1 if the space-separated list offers the mechanism (case-insensitive, RFC 4422 §3.1) */
static int offered(const char *list, enum ba_sasl_mech m)
{
	const char *name = mech_names[m];
	size_t nlen = strlen(name);
	const char *p = list;

	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *start = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if ((size_t)(p - start) == nlen && strncasecmp(start, name, nlen) == 0)
			return 1;
	}
	return 0;
}

enum ba_sasl_mech ba_sasl_pick(const char *server_list, unsigned flags)
{
	static const enum ba_sasl_mech password_order[] = {
		BA_SASL_SCRAM_SHA_256_PLUS, BA_SASL_SCRAM_SHA_1_PLUS,
		BA_SASL_SCRAM_SHA_256, BA_SASL_SCRAM_SHA_1, BA_SASL_CRAM_MD5,
		BA_SASL_PLAIN, BA_SASL_LOGIN,
	};
	int tls = !!(flags & BA_SASL_TLS_ACTIVE);

	if (!server_list)
		return BA_SASL_NONE;
	/* a presented client certificate is the strongest credential we can have */
	if ((flags & BA_SASL_HAVE_CERT) && tls && offered(server_list, BA_SASL_EXTERNAL))
		return BA_SASL_EXTERNAL;
	if (flags & BA_SASL_HAVE_TOKEN) {
		/*
		 * The configured secret is a bearer token, useless to the
		 * password mechanisms; and a bearer token is as good as a
		 * password to whoever reads it, so never without TLS
		 * (RFC 7628 §5, RFC 6750 §5.3).
		 */
		if (!tls)
			return BA_SASL_NONE;
		if (offered(server_list, BA_SASL_OAUTHBEARER))
			return BA_SASL_OAUTHBEARER;
		if (offered(server_list, BA_SASL_XOAUTH2))
			return BA_SASL_XOAUTH2;
		return BA_SASL_NONE;
	}
	for (size_t i = 0; i < sizeof(password_order) / sizeof(password_order[0]); i++) {
		enum ba_sasl_mech m = password_order[i];
		if (is_plus(m) && !(flags & BA_SASL_HAVE_CB))
			continue;
		if (ba_sasl_mech_is_cleartext(m) && !tls)
			continue;
		if (offered(server_list, m))
			return m;
	}
	return BA_SASL_NONE;
}

/* ---- helpers ----------------------------------------------------------------- */

static void free_secret_str(char *s)
{
	if (s) {
		gnutls_memset(s, 0, strlen(s));
		free(s);
	}
}

/*
 * A minimal SASLprep (RFC 4013): control characters (C0, DEL, C1 in UTF-8)
 * are refused, which also keeps the framing of PLAIN (NUL), XOAUTH2 and
 * OAUTHBEARER (^A) intact.  Simplification: other UTF-8 is passed through
 * unnormalised (no NFKC, no mapping of non-ASCII spaces), which is exact for
 * ASCII credentials and for the already-normalised ones nearly everyone has.
 */
static int saslprep_check(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return -1;
		if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return -1;
	}
	return 0;
}

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(struct ba_buf *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		ba_buf_addch(out, b64chars[(v >> 18) & 63]);
		ba_buf_addch(out, b64chars[(v >> 12) & 63]);
		ba_buf_addch(out, i + 1 < n ? b64chars[(v >> 6) & 63] : '=');
		ba_buf_addch(out, i + 2 < n ? b64chars[v & 63] : '=');
	}
}

static int b64_value(unsigned char c)
{
	const char *q = c ? strchr(b64chars, c) : NULL;
	return q ? (int)(q - b64chars) : -1;
}

/*
 * Strict base64 (RFC 4648 §4, as RFC 5802 §7 requires): length a multiple of
 * 4, padding only at the end, no whitespace.  Decodes into out[0..max);
 * returns the decoded length or -1.
 */
static long b64_decode(unsigned char *out, size_t max, const char *s, size_t n)
{
	size_t o = 0;

	if (n == 0 || n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad || (v[k] = b64_value((unsigned char)s[i + k])) < 0)
				return -1;
		}
		unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
			     (unsigned)v[3];
		unsigned char b[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8),
				       (unsigned char)w };
		for (int k = 0; k < 3 - pad; k++) {
			if (o >= max)
				return -1;
			out[o++] = b[k];
		}
	}
	return (long)o;
}

/* RFC 5802 §5.1 saslname: "," and "=" are escaped as "=2C" and "=3D" */
static void add_saslname(struct ba_buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			ba_buf_addstr(out, "=2C");
		else if (*s == '=')
			ba_buf_addstr(out, "=3D");
		else
			ba_buf_addch(out, *s);
	}
}

static int oom(struct ba_err *err)
{
	return ba_err_set(err, EX_OSERR, "sasl: out of memory");
}

/* ---- new, free ------------------------------------------------------------------ */

static char *dup_or_null(const char *s, int *bad)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*bad = 1;
	return d;
}

static int check_params(const struct ba_sasl_params *p, struct ba_err *err)
{
	const char *name = ba_sasl_mech_name(p->mech);

	if (!name)
		return ba_err_set(err, EX_USAGE, "sasl: no mechanism given");
	if (p->mech != BA_SASL_EXTERNAL) {
		if (!p->user || !*p->user)
			return ba_err_set(err, EX_USAGE, "sasl %s: no user name given", name);
		if (!p->password || !*p->password)
			return ba_err_set(err, EX_USAGE, "sasl %s: no %s given", name,
					  ba_sasl_mech_uses_token(p->mech) ? "token" : "password");
	}
	if ((p->user && saslprep_check(p->user)) || (p->authzid && saslprep_check(p->authzid)))
		return ba_err_set(err, EX_USAGE, "sasl %s: control character in user name", name);
	if (p->password && saslprep_check(p->password))
		return ba_err_set(err, EX_USAGE, "sasl %s: control character in %s", name,
				  ba_sasl_mech_uses_token(p->mech) ? "token" : "password");
	if (p->host && saslprep_check(p->host))
		return ba_err_set(err, EX_USAGE, "sasl %s: control character in host name", name);
	if (is_plus(p->mech)) {
		if (!p->cb_data || !p->cb_len)
			return ba_err_set(err, EX_USAGE, "sasl %s: no channel binding data", name);
		if (p->cb_type && strcmp(p->cb_type, "tls-exporter") != 0 &&
		    strcmp(p->cb_type, "tls-unique") != 0)
			return ba_err_set(err, EX_USAGE, "sasl %s: unknown channel binding type '%s'",
					  name, p->cb_type);
	}
	if (p->client_nonce) {
		/* RFC 5802 §7: nonce is printable ASCII except "," */
		const char *c = p->client_nonce;
		if (!*c || strlen(c) > 63)
			return ba_err_set(err, EX_USAGE, "sasl %s: bad client nonce length", name);
		for (; *c; c++)
			if (*c < 0x21 || *c > 0x7e || *c == ',')
				return ba_err_set(err, EX_USAGE, "sasl %s: bad client nonce", name);
	}
	return 0;
}

int ba_sasl_new(ba_sasl **out, const struct ba_sasl_params *p, struct ba_err *err)
{
	ba_sasl *s;
	int bad = 0;

	*out = NULL;
	if (check_params(p, err) < 0)
		return -1;
	s = calloc(1, sizeof(*s));
	if (!s)
		return oom(err);
	s->mech = p->mech;
	s->port = p->port;
	ba_buf_init(&s->gs2, 0);
	ba_buf_init(&s->first_bare, 0);
	s->user = dup_or_null(p->user, &bad);
	s->password = dup_or_null(p->password, &bad);
	s->authzid = dup_or_null(p->authzid && *p->authzid ? p->authzid : NULL, &bad);
	s->host = dup_or_null(p->host, &bad);
	s->fixed_nonce = dup_or_null(p->client_nonce, &bad);
	s->cb_type = p->cb_type && strcmp(p->cb_type, "tls-unique") == 0 ? "tls-unique"
									    : "tls-exporter";
	if (p->cb_data && p->cb_len) {
		s->cb_data = malloc(p->cb_len);
		if (s->cb_data) {
			memcpy(s->cb_data, p->cb_data, p->cb_len);
			s->cb_len = p->cb_len;
		} else {
			bad = 1;
		}
	}
	if (bad) {
		ba_sasl_free(s);
		return oom(err);
	}
	*out = s;
	return 0;
}

void ba_sasl_free(ba_sasl *s)
{
	if (!s)
		return;
	free_secret_str(s->user);
	free_secret_str(s->password);
	free_secret_str(s->authzid);
	free(s->host);
	free(s->fixed_nonce);
	if (s->cb_data) {
		gnutls_memset(s->cb_data, 0, s->cb_len);
		free(s->cb_data);
	}
	ba_buf_release_secret(&s->gs2);
	ba_buf_release_secret(&s->first_bare);
	gnutls_memset(s->server_sig, 0, sizeof(s->server_sig));
	free(s);
}

int ba_sasl_has_initial(const ba_sasl *s)
{
	switch (s->mech) {
	case BA_SASL_LOGIN:
	case BA_SASL_CRAM_MD5:
		return 0;
	default:
		return 1;
	}
}

int ba_sasl_done(const ba_sasl *s)
{
	if (s->failed)
		return 0;
	if (is_scram(s->mech))
		return s->verified;
	return 1;
}

/* ---- the simple mechanisms ------------------------------------------------------- */

/*
 * Appends a response that contains a secret.  Growing out first keeps
 * realloc from leaving a copy of the secret in freed memory.
 */
static int reserve(struct ba_buf *out, size_t n, struct ba_err *err)
{
	if (ba_buf_grow(out, n) < 0)
		return oom(err);
	return 0;
}

/* RFC 4616 §2: [authzid] NUL authcid NUL passwd */
static int step_plain(ba_sasl *s, struct ba_buf *out, struct ba_err *err)
{
	const char *az = s->authzid ? s->authzid : "";

	if (reserve(out, strlen(az) + strlen(s->user) + strlen(s->password) + 2, err) < 0)
		return -1;
	ba_buf_addstr(out, az);
	ba_buf_addch(out, 0);
	ba_buf_addstr(out, s->user);
	ba_buf_addch(out, 0);
	ba_buf_addstr(out, s->password);
	return 0;
}

/*
 * draft-murchison-sasl-login: the server prompts "Username:" then
 * "Password:"; servers vary the text, so the order alone decides.
 */
static int step_login(ba_sasl *s, struct ba_buf *out, struct ba_err *err)
{
	const char *v = s->nstep == 0 ? s->user : s->password;

	if (reserve(out, strlen(v), err) < 0)
		return -1;
	ba_buf_addstr(out, v);
	return 0;
}

/* RFC 2195 §2: user SP lowercase-hex(HMAC-MD5(password, challenge)) */
static int step_cram_md5(ba_sasl *s, const unsigned char *ch, size_t len, struct ba_buf *out,
			 struct ba_err *err)
{
	unsigned char mac[16];
	static const char hex[] = "0123456789abcdef";

	if (len == 0)
		return ba_err_set(err, EX_PROTOCOL, "sasl CRAM-MD5: empty challenge");
	if (gnutls_hmac_fast(GNUTLS_MAC_MD5, s->password, strlen(s->password), ch, len, mac) < 0)
		return ba_err_set(err, EX_SOFTWARE, "sasl CRAM-MD5: HMAC-MD5 unavailable");
	ba_buf_addstr(out, s->user);
	ba_buf_addch(out, ' ');
	for (size_t i = 0; i < sizeof(mac); i++) {
		ba_buf_addch(out, hex[mac[i] >> 4]);
		ba_buf_addch(out, hex[mac[i] & 15]);
	}
	gnutls_memset(mac, 0, sizeof(mac));
	return 0;
}

/* Google's XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A */
static int step_xoauth2(ba_sasl *s, struct ba_buf *out, struct ba_err *err)
{
	if (s->nstep == 1)
		return 0; /* the challenge is a JSON error: answer empty, the server then fails */
	if (reserve(out, strlen(s->user) + strlen(s->password) + 24, err) < 0)
		return -1;
	/* addstr, not addf: ba_buf_vaddf() formats through a stack buffer it does not wipe */
	ba_buf_addstr(out, "user=");
	ba_buf_addstr(out, s->user);
	ba_buf_addstr(out, "\001auth=Bearer ");
	ba_buf_addstr(out, s->password);
	ba_buf_addstr(out, "\001\001");
	return 0;
}

/* RFC 7628 §3.1: gs2-header kvsep *(kvpair kvsep) kvsep */
static int step_oauthbearer(ba_sasl *s, struct ba_buf *out, struct ba_err *err)
{
	if (s->nstep == 1) {
		/* §3.2.3: the error challenge is answered with a lone kvsep */
		ba_buf_addch(out, 1);
		return 0;
	}
	if (reserve(out, 3 * strlen(s->user) + (s->host ? strlen(s->host) : 0) +
				 strlen(s->password) + 64, err) < 0)
		return -1;
	ba_buf_addstr(out, "n,a=");
	add_saslname(out, s->user);
	ba_buf_addstr(out, ",\001");
	if (s->host && *s->host)
		ba_buf_addf(out, "host=%s\001", s->host);
	if (s->port)
		ba_buf_addf(out, "port=%u\001", s->port);
	ba_buf_addstr(out, "auth=Bearer "); /* not addf: see step_xoauth2() */
	ba_buf_addstr(out, s->password);
	ba_buf_addstr(out, "\001\001");
	return 0;
}

/* RFC 4422 Appendix A: the response is the authorization identity, maybe empty */
static int step_external(ba_sasl *s, struct ba_buf *out)
{
	if (s->authzid)
		ba_buf_addstr(out, s->authzid);
	return 0;
}

/* ---- SCRAM (RFC 5802, RFC 7677) -------------------------------------------------- */

static gnutls_mac_algorithm_t scram_mac(enum ba_sasl_mech m)
{
	return m == BA_SASL_SCRAM_SHA_1 || m == BA_SASL_SCRAM_SHA_1_PLUS ? GNUTLS_MAC_SHA1
									  : GNUTLS_MAC_SHA256;
}

static gnutls_digest_algorithm_t scram_dig(enum ba_sasl_mech m)
{
	return m == BA_SASL_SCRAM_SHA_1 || m == BA_SASL_SCRAM_SHA_1_PLUS ? GNUTLS_DIG_SHA1
									  : GNUTLS_DIG_SHA256;
}

/* client-first-message = gs2-header client-first-message-bare (RFC 5802 §7) */
static int scram_first(ba_sasl *s, struct ba_buf *out, struct ba_err *err)
{
	char nonce[64];

	if (s->fixed_nonce) {
		size_t n = strlen(s->fixed_nonce);
		if (n >= sizeof(nonce))
			n = sizeof(nonce) - 1;
		memcpy(nonce, s->fixed_nonce, n);
		nonce[n] = 0;
	} else {
		unsigned char raw[SCRAM_NONCE_RAW];
		struct ba_buf b = BA_BUF_INIT;
		if (gnutls_rnd(GNUTLS_RND_NONCE, raw, sizeof(raw)) < 0)
			return ba_err_set(err, EX_OSERR, "sasl: no random numbers for the nonce");
		b64_encode(&b, raw, sizeof(raw)); /* 18 bytes: no padding, no "," */
		if (ba_buf_failed(&b)) {
			ba_buf_release(&b);
			return oom(err);
		}
		memcpy(nonce, b.data, b.len + 1);
		ba_buf_release(&b);
	}

	/*
	 * gs2-cbind-flag (RFC 5802 §6): "p=" for -PLUS; "y" when we could bind
	 * but the server offered no -PLUS (so a downgrade by a man in the
	 * middle who stripped -PLUS is detected by a server that has it);
	 * "n" when we cannot bind at all.
	 */
	if (is_plus(s->mech))
		ba_buf_addf(&s->gs2, "p=%s,", s->cb_type);
	else if (s->cb_data)
		ba_buf_addstr(&s->gs2, "y,");
	else
		ba_buf_addstr(&s->gs2, "n,");
	if (s->authzid) {
		ba_buf_addstr(&s->gs2, "a=");
		add_saslname(&s->gs2, s->authzid);
	}
	ba_buf_addch(&s->gs2, ',');

	ba_buf_addstr(&s->first_bare, "n=");
	add_saslname(&s->first_bare, s->user);
	ba_buf_addstr(&s->first_bare, ",r=");
	s->nonce_off = s->first_bare.len;
	ba_buf_addstr(&s->first_bare, nonce);
	if (ba_buf_failed(&s->gs2) || ba_buf_failed(&s->first_bare))
		return oom(err);
	ba_buf_add(out, s->gs2.data, s->gs2.len);
	ba_buf_add(out, s->first_bare.data, s->first_bare.len);
	return 0;
}

/* Parsed server-first-message; pointers into the challenge copy */
struct server_first {
	const char *nonce;
	size_t nonce_len;
	unsigned char salt[256];      /* real salts are 12..64 bytes; longer is refused */
	size_t salt_len;
	unsigned long iter;
};

/* "name=" value up to "," or the end; NULL if the attribute is not next */
static const char *attr(const char *p, char name, size_t *vlen)
{
	const char *e;

	if (p[0] != name || p[1] != '=')
		return NULL;
	p += 2;
	e = strchr(p, ',');
	*vlen = e ? (size_t)(e - p) : strlen(p);
	return p;
}

/* RFC 5802 §7: server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions] */
static int parse_server_first(ba_sasl *s, const char *msg, struct server_first *sf,
			      struct ba_err *err)
{
	const char *name = mech_names[s->mech];
	const char *p = msg, *v;
	const char *cnonce = s->first_bare.data + s->nonce_off;
	size_t vlen, clen = s->first_bare.len - s->nonce_off;
	long sl;

	if (p[0] == 'm' && p[1] == '=')
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: server requires an unsupported extension",
				  name);
	if (!(v = attr(p, 'r', &vlen)))
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: server-first message lacks the nonce", name);
	for (size_t i = 0; i < vlen; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return ba_err_set(err, EX_PROTOCOL, "sasl %s: bad character in server nonce", name);
	/* §5.1 r=: the server's nonce must extend ours; an equal one adds nothing */
	if (vlen <= clen || memcmp(v, cnonce, clen) != 0)
		return ba_err_set(err, EX_PROTOCOL,
				  "sasl %s: server nonce does not extend the client nonce", name);
	sf->nonce = v;
	sf->nonce_len = vlen;
	p = v + vlen;
	if (*p++ != ',' || !(v = attr(p, 's', &vlen)))
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: server-first message lacks the salt", name);
	sl = b64_decode(sf->salt, sizeof(sf->salt), v, vlen);
	if (sl <= 0)
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: bad salt in server-first message", name);
	sf->salt_len = (size_t)sl;
	p = v + vlen;
	if (*p++ != ',' || !(v = attr(p, 'i', &vlen)))
		return ba_err_set(err, EX_PROTOCOL,
				  "sasl %s: server-first message lacks the iteration count", name);
	sf->iter = 0;
	if (vlen == 0 || vlen > 9)
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: bad iteration count", name);
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return ba_err_set(err, EX_PROTOCOL, "sasl %s: bad iteration count", name);
		sf->iter = sf->iter * 10 + (unsigned long)(v[i] - '0');
	}
	if (sf->iter < 1 || sf->iter > SCRAM_ITER_MAX)
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: iteration count %lu out of range 1..%lu",
				  name, sf->iter, SCRAM_ITER_MAX);
	p = v + vlen;
	if (*p && *p != ',')
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: malformed server-first message", name);
	return 0;
}

/*
 * RFC 5802 §3:
 *   SaltedPassword  := Hi(Normalize(password), salt, i)
 *   ClientKey       := HMAC(SaltedPassword, "Client Key")
 *   StoredKey       := H(ClientKey)
 *   ClientSignature := HMAC(StoredKey, AuthMessage)
 *   ClientProof     := ClientKey XOR ClientSignature
 *   ServerKey       := HMAC(SaltedPassword, "Server Key")
 *   ServerSignature := HMAC(ServerKey, AuthMessage)
 */
static int scram_keys(ba_sasl *s, const struct server_first *sf, const struct ba_buf *authmsg,
		      unsigned char *proof, struct ba_err *err)
{
	gnutls_mac_algorithm_t mac = scram_mac(s->mech);
	size_t hl = gnutls_hmac_get_len(mac);
	unsigned char salted[SCRAM_HASH_MAX], ckey[SCRAM_HASH_MAX], stored[SCRAM_HASH_MAX];
	unsigned char csig[SCRAM_HASH_MAX], skey[SCRAM_HASH_MAX];
	gnutls_datum_t key = { (unsigned char *)s->password, (unsigned)strlen(s->password) };
	gnutls_datum_t salt = { (unsigned char *)sf->salt, (unsigned)sf->salt_len };
	int rc = -1;

	if (gnutls_pbkdf2(mac, &key, &salt, (unsigned)sf->iter, salted, hl) < 0 ||
	    gnutls_hmac_fast(mac, salted, hl, "Client Key", 10, ckey) < 0 ||
	    gnutls_hash_fast(scram_dig(s->mech), ckey, hl, stored) < 0 ||
	    gnutls_hmac_fast(mac, stored, hl, authmsg->data, authmsg->len, csig) < 0 ||
	    gnutls_hmac_fast(mac, salted, hl, "Server Key", 10, skey) < 0 ||
	    gnutls_hmac_fast(mac, skey, hl, authmsg->data, authmsg->len, s->server_sig) < 0) {
		ba_err_set(err, EX_SOFTWARE, "sasl %s: hash function failed", mech_names[s->mech]);
		goto out;
	}
	for (size_t i = 0; i < hl; i++)
		proof[i] = ckey[i] ^ csig[i];
	rc = 0;
out:
	gnutls_memset(salted, 0, sizeof(salted));
	gnutls_memset(ckey, 0, sizeof(ckey));
	gnutls_memset(stored, 0, sizeof(stored));
	gnutls_memset(csig, 0, sizeof(csig));
	gnutls_memset(skey, 0, sizeof(skey));
	return rc;
}

/* client-final-message = channel-binding "," nonce ["," extensions] "," proof */
static int scram_final(ba_sasl *s, const char *msg, struct ba_buf *out, struct ba_err *err)
{
	struct server_first sf;
	struct ba_buf cbind = BA_BUF_INIT, without_proof = BA_BUF_INIT, authmsg = BA_BUF_INIT;
	unsigned char proof[SCRAM_HASH_MAX];
	int rc = -1;

	if (parse_server_first(s, msg, &sf, err) < 0)
		return -1;
	/* c= base64(gs2-header [cbind-data]): the data only with "p=" (§7) */
	ba_buf_add(&cbind, s->gs2.data, s->gs2.len);
	if (is_plus(s->mech))
		ba_buf_add(&cbind, s->cb_data, s->cb_len);
	ba_buf_addstr(&without_proof, "c=");
	b64_encode(&without_proof, (const unsigned char *)cbind.data, cbind.len);
	ba_buf_addstr(&without_proof, ",r=");
	ba_buf_add(&without_proof, sf.nonce, sf.nonce_len);
	/* AuthMessage := client-first-message-bare "," server-first-message "," client-final-message-without-proof */
	ba_buf_add(&authmsg, s->first_bare.data, s->first_bare.len);
	ba_buf_addch(&authmsg, ',');
	ba_buf_addstr(&authmsg, msg);
	ba_buf_addch(&authmsg, ',');
	ba_buf_add(&authmsg, without_proof.data, without_proof.len);
	if (ba_buf_failed(&cbind) || ba_buf_failed(&without_proof) || ba_buf_failed(&authmsg)) {
		oom(err);
		goto out;
	}
	if (scram_keys(s, &sf, &authmsg, proof, err) < 0)
		goto out;
	ba_buf_add(out, without_proof.data, without_proof.len);
	ba_buf_addstr(out, ",p=");
	b64_encode(out, proof, gnutls_hmac_get_len(scram_mac(s->mech)));
	rc = 0;
out:
	gnutls_memset(proof, 0, sizeof(proof));
	gnutls_memset(&sf, 0, sizeof(sf));
	ba_buf_release_secret(&cbind);
	ba_buf_release(&without_proof);
	ba_buf_release(&authmsg);
	return rc;
}

/* server-final-message = (server-error / verifier) ["," extensions] (§7) */
static int scram_verify(ba_sasl *s, const char *msg, struct ba_err *err)
{
	const char *name = mech_names[s->mech];
	size_t hl = gnutls_hmac_get_len(scram_mac(s->mech));
	unsigned char sig[SCRAM_HASH_MAX];
	unsigned diff = 0;
	const char *v;
	size_t vlen;
	long n;

	if ((v = attr(msg, 'e', &vlen))) {
		struct ba_buf clean = BA_BUF_INIT;
		ba_log_clean(&clean, v, vlen > 64 ? 64 : vlen);
		ba_err_set(err, EX_PROTOCOL, "sasl %s: server reported error '%s'", name,
			   ba_buf_str(&clean));
		ba_buf_release(&clean);
		return -1;
	}
	if (!(v = attr(msg, 'v', &vlen)))
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: malformed server-final message", name);
	n = b64_decode(sig, sizeof(sig), v, vlen);
	if (n < 0)
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: bad base64 in server signature", name);
	/* constant time, though the value is not secret once we sent our proof */
	for (size_t i = 0; i < hl; i++)
		diff |= (unsigned)(sig[i] ^ s->server_sig[i]);
	if ((size_t)n != hl || diff)
		return ba_err_set(err, EX_NOPERM,
				  "sasl %s: server signature does not verify (server does not know the password)",
				  name);
	s->verified = 1;
	return 0;
}

static int step_scram(ba_sasl *s, const unsigned char *ch, size_t len, struct ba_buf *out,
		      struct ba_err *err)
{
	char *msg;
	int rc;

	if (s->nstep == 0)
		return scram_first(s, out, err);
	/* RFC 5802 §7: the messages are printable; a NUL would cut our parsing short */
	if (len == 0 || memchr(ch, 0, len))
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: malformed %s message", mech_names[s->mech],
				  s->nstep == 1 ? "server-first" : "server-final");
	msg = malloc(len + 1);
	if (!msg)
		return oom(err);
	memcpy(msg, ch, len);
	msg[len] = 0;
	if (s->nstep == 1)
		rc = scram_final(s, msg, out, err);
	else
		rc = scram_verify(s, msg, err); /* the answer to server-final is empty */
	free(msg);
	return rc;
}

/* ---- dispatch ------------------------------------------------------------------- */

/* Number of server challenges a mechanism answers, counting the initial response as one. */
static unsigned max_steps(enum ba_sasl_mech m)
{
	switch (m) {
	case BA_SASL_LOGIN:
	case BA_SASL_XOAUTH2:
	case BA_SASL_OAUTHBEARER:
		return 2;
	case BA_SASL_SCRAM_SHA_1:
	case BA_SASL_SCRAM_SHA_256:
	case BA_SASL_SCRAM_SHA_1_PLUS:
	case BA_SASL_SCRAM_SHA_256_PLUS:
		return 3;
	default:
		return 1;
	}
}

int ba_sasl_step(ba_sasl *s, const unsigned char *challenge, size_t len, struct ba_buf *out,
		 struct ba_err *err)
{
	const char *name = mech_names[s->mech];
	int rc;

	if (s->failed)
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: exchange already failed", name);
	if (!challenge && (s->nstep > 0 || !ba_sasl_has_initial(s)))
		BA_BUG("ba_sasl_step: NULL challenge is only for the initial response");
	if (challenge && len > CHALLENGE_MAX) {
		s->failed = 1;
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: challenge of %zu bytes too long", name,
				  len);
	}
	/*
	 * A mechanism with an initial response whose engine did not send one
	 * gets an empty challenge first (RFC 4422 §5): treat it as the
	 * request for the initial response.
	 */
	if (s->nstep == 0 && ba_sasl_has_initial(s)) {
		if (challenge && len > 0) {
			s->failed = 1;
			return ba_err_set(err, EX_PROTOCOL, "sasl %s: unexpected challenge", name);
		}
		challenge = NULL;
		len = 0;
	}
	if (s->nstep >= max_steps(s->mech)) {
		s->failed = 1;
		return ba_err_set(err, EX_PROTOCOL, "sasl %s: unexpected challenge", name);
	}

	switch (s->mech) {
	case BA_SASL_PLAIN:
		rc = step_plain(s, out, err);
		break;
	case BA_SASL_LOGIN:
		rc = step_login(s, out, err);
		break;
	case BA_SASL_CRAM_MD5:
		rc = step_cram_md5(s, challenge, len, out, err);
		break;
	case BA_SASL_XOAUTH2:
		rc = step_xoauth2(s, out, err);
		break;
	case BA_SASL_OAUTHBEARER:
		rc = step_oauthbearer(s, out, err);
		break;
	case BA_SASL_EXTERNAL:
		rc = step_external(s, out);
		break;
	default:
		rc = step_scram(s, challenge, len, out, err);
		break;
	}
	if (rc == 0 && ba_buf_failed(out))
		rc = oom(err);
	if (rc < 0) {
		s->failed = 1;
		return -1;
	}
	s->nstep++;
	return 0;
}
