/* http.c - HTTPS requests through libcurl, loaded with dlopen() on first use
 *
 * As libmagic in mime.c: only curl/curl.h is needed to build, and nothing
 * links libcurl, so a process that makes no request never maps it (nor the
 * libraries it pulls in).
 */
#include "bluearrow/http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bluearrow/io.h"
#include "bluearrow/version.h"

#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_BODY_MAX (64u * 1024)

struct curl_api {
	CURL *(*init)(void);
	CURLcode (*setopt)(CURL *, CURLoption, ...);
	CURLcode (*perform)(CURL *);
	CURLcode (*getinfo)(CURL *, CURLINFO, ...);
	void (*cleanup)(CURL *);
	const char *(*error_text)(CURLcode);
	CURLcode (*global_init)(long);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
};

static struct curl_api g_curl;
static int g_curl_ok;
static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

static void curl_load(void)
{
	static const char *const names[] = {
		"curl_easy_init", "curl_easy_setopt", "curl_easy_perform", "curl_easy_getinfo",
		"curl_easy_cleanup", "curl_easy_strerror", "curl_global_init", "curl_slist_append",
		"curl_slist_free_all"
	};
	void *sym[9];
	void *h = ba_dl_open(BA_HTTP_LIBRARY, names, sym, 9);
	if (!h)
		return;
	struct curl_api a;
	/* POSIX dlsym() returns void *; conversion to a function pointer goes through memcpy */
	memcpy(&a.init, &sym[0], sizeof(a.init));
	memcpy(&a.setopt, &sym[1], sizeof(a.setopt));
	memcpy(&a.perform, &sym[2], sizeof(a.perform));
	memcpy(&a.getinfo, &sym[3], sizeof(a.getinfo));
	memcpy(&a.cleanup, &sym[4], sizeof(a.cleanup));
	memcpy(&a.error_text, &sym[5], sizeof(a.error_text));
	memcpy(&a.global_init, &sym[6], sizeof(a.global_init));
	memcpy(&a.slist_append, &sym[7], sizeof(a.slist_append));
	memcpy(&a.slist_free_all, &sym[8], sizeof(a.slist_free_all));
	/* the prototypes above must be curl.h's (checked, never evaluated: no link reference) */
	(void)sizeof(a.init == &curl_easy_init);
	(void)sizeof(a.perform == &curl_easy_perform);
	(void)sizeof(a.cleanup == &curl_easy_cleanup);
	(void)sizeof(a.error_text == &curl_easy_strerror);
	(void)sizeof(a.global_init == &curl_global_init);
	(void)sizeof(a.slist_append == &curl_slist_append);
	(void)sizeof(a.slist_free_all == &curl_slist_free_all);
	/* once, here: curl_easy_init() would do it lazily and not thread-safely */
	if (a.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dlclose(h);
		return;
	}
	g_curl = a;
	g_curl_ok = 1;
}

int ba_http_available(void)
{
	pthread_once(&g_curl_once, curl_load);
	return g_curl_ok;
}

struct sink {
	struct ba_buf *body;
	size_t max;
	int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;
	size_t len = size * n;
	if (s->body->len + len > s->max || ba_buf_add(s->body, p, len) < 0) {
		s->too_big = 1;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	return len;
}

int ba_http_request(struct ba_http_reply *r, const char *url, const char *form,
                    size_t form_len, const struct ba_http_params *p, struct ba_err *err)
{
	r->status = 0;
	r->content_type[0] = '\0';
	if (strncmp(url, "https://", 8) != 0)
		return ba_err_set(err, EX_UNAVAILABLE, "not an https URL");
	if (!ba_http_available())
		return ba_err_set(err, EX_UNAVAILABLE, "cannot load %s (Debian package %s)",
		                  BA_HTTP_LIBRARY, BA_HTTP_PACKAGE);
	CURL *c = g_curl.init();
	if (!c)
		return ba_err_set(err, EX_OSERR, "cannot initialise libcurl");
	int timeout = p && p->timeout_ms > 0 ? p->timeout_ms : DEFAULT_TIMEOUT_MS;
	struct sink s = { &r->body, p && p->body_max ? p->body_max : DEFAULT_BODY_MAX, 0 };
	struct curl_slist *connect_to = NULL;
	ba_log(p ? p->log : NULL, BA_LOG_INFO, "https: %s %s", form ? "POST" : "GET", url);
	CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                  \
	do {                                                           \
		if (cc == CURLE_OK)                                    \
			cc = g_curl.setopt(c, opt, val);               \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_NOPROGRESS, 1L);
	SET(CURLOPT_VERBOSE, 0L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (p && p->ca_file)
		SET(CURLOPT_CAINFO, p->ca_file);
	if (p && p->connect_to) {
		struct ba_buf spec = BA_BUF_INIT;
		ba_buf_addf(&spec, "::%s", p->connect_to);
		connect_to = ba_buf_failed(&spec) ? NULL : g_curl.slist_append(NULL, ba_buf_str(&spec));
		ba_buf_release(&spec);
		if (!connect_to)
			cc = CURLE_OUT_OF_MEMORY;
		SET(CURLOPT_CONNECT_TO, connect_to);
	}
	SET(CURLOPT_TIMEOUT_MS, (long)timeout);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
	SET(CURLOPT_USERAGENT, "bluearrow/" BA_VERSION);
	if (form) {
		SET(CURLOPT_POSTFIELDSIZE, (long)form_len);
		SET(CURLOPT_POSTFIELDS, form);
	}
	SET(CURLOPT_MAXFILESIZE, (long)s.max);
	SET(CURLOPT_WRITEFUNCTION, on_data);
	SET(CURLOPT_WRITEDATA, &s);
#undef SET
	if (cc == CURLE_OK)
		cc = g_curl.perform(c);
	if (cc == CURLE_OK) {
		char *ct = NULL;
		g_curl.getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		if (g_curl.getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
			snprintf(r->content_type, sizeof r->content_type, "%s", ct);
	}
	g_curl.cleanup(c);
	g_curl.slist_free_all(connect_to);
	if (cc == CURLE_OK)
		return 0;
	int code = EX_TEMPFAIL;
	const char *why = g_curl.error_text(cc);
	if (s.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		return ba_err_set(err, EX_PROTOCOL, "the reply is larger than %zu KB", s.max / 1024);
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		why = "no reply in time";
	} else if (cc == CURLE_OUT_OF_MEMORY) {
		code = EX_OSERR;
	} else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
	           cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_UNSUPPORTED_PROTOCOL) {
		code = EX_UNAVAILABLE;
	}
	return ba_err_set(err, code, "%s", why);
}
