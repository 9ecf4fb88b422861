/* submit.c - the send pipeline: account, envelope, recipients, delivery, log (see submit.h) */
#include "bluearrow/submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bluearrow/config_aliases.h"
#include "bluearrow/dns.h"
#include "bluearrow/log_file.h"
#include "bluearrow/route.h"

int ba_submit_config(ba_config **out, const char *file, struct ba_err *err)
{
	return ba_submit_config_kv(out, file, NULL, 0, err);
}

int ba_submit_config_kv(ba_config **out, const char *file, const struct ba_config_kv *kv,
                        size_t n, struct ba_err *err)
{
	struct ba_buf path = BA_BUF_INIT;
	unsigned flags = 0;
	int has_host = 0;
	*out = NULL;
	for (size_t i = 0; i < n; i++)
		has_host |= strcmp(kv[i].key, "host") == 0 || strcmp(kv[i].key, "socket") == 0 ||
		            (strcmp(kv[i].key, "delivery") == 0 && kv[i].value &&
		             strcmp(kv[i].value, "mx") == 0);
	if (!file) {
		if (ba_config_find_default_path(&path, &flags, err) < 0) {
			ba_buf_release(&path);
			if (err->code == EX_OSERR || getenv("BLUEARROW_CONFIG"))
				return -1;
			/* no file anywhere: the command line is the account, as with msmtp */
			if (has_host)
				return ba_config_from_kv(out, kv, n, err);
			char tried[BA_ERR_TEXT_MAX];
			snprintf(tried, sizeof(tried), "%s", err->text);
			return ba_err_set(err, EX_CONFIG, "%s; create one with 'bluearrow config init "
			                  "--host HOST' (or give the account as options: --host HOST "
			                  "[--port N --tls on --auth on --user NAME ...])", tried);
		}
		file = ba_buf_str(&path);
	}
	int rc = ba_config_load(out, file, flags, err);
	ba_buf_release(&path);
	if (rc == 0 && n && ba_config_apply(*out, kv, n, err) < 0) {
		ba_config_free(*out);
		*out = NULL;
		rc = -1;
	}
	return rc;
}

const struct ba_account *ba_submit_account(const ba_config *cfg, const char *name,
                                           const char *env_from, const char *header_from,
                                           struct ba_err *err)
{
	const struct ba_account *acc = NULL;
	if (!name && env_from && *env_from)
		acc = ba_config_account_by_from(cfg, env_from);
	if (!name && !acc && header_from && *header_from)
		acc = ba_config_account_by_from(cfg, header_from);
	if (acc)
		return ba_config_account_check(acc, err) < 0 ? NULL : acc;
	return ba_config_account(cfg, name, err);
}

static int has_wildcard(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

int ba_submit_envelope_from(struct ba_buf *out, const struct ba_account *acc,
                            const char *cmdline_from, struct ba_err *err)
{
	ba_buf_reset(out);
	if (cmdline_from && (acc->allow_from_override || !acc->from)) {
		ba_buf_addstr(out, cmdline_from);
	} else if (!acc->auto_from && acc->from && has_wildcard(acc->from)) {
		/* a pattern only selects the account (msmtp); it is no address */
		return ba_err_set(err, EX_USAGE, "account %s from %s: its from is a pattern ('%s'): "
		                  "give the envelope sender with -f", acc->name, acc->file, acc->from);
	} else {
		if (ba_config_envelope_from(out, acc, err) < 0)
			return -1;
		if (!out->len)
			return ba_err_set(err, EX_CONFIG, "account %s from %s: envelope-from address is "
			                  "missing (set from, or use -f)", acc->name, acc->file);
	}
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	for (const char *c = ba_buf_str(out); *c; c++)
		if ((unsigned char)*c <= 32 || *c == 127 || *c == '<' || *c == '>')
			return ba_err_set(err, EX_USAGE, "invalid envelope-from address '%s'",
			                  ba_buf_str(out));
	return 0;
}

static enum ba_msg_hdr_mode hdr_mode(enum ba_config_header_mode m)
{
	return m == BA_HDR_ON ? BA_MSG_HDR_ON : m == BA_HDR_OFF ? BA_MSG_HDR_OFF : BA_MSG_HDR_AUTO;
}

void ba_submit_read_opts(struct ba_msg_read_opts *o, const struct ba_account *acc,
                         const char *env_from, const char *full_name, unsigned flags)
{
	memset(o, 0, sizeof(*o));
	o->flags = (flags & BA_SUBMIT_READ_DOTS_ARE_DATA ? BA_MSG_READ_DOTS_ARE_DATA : 0) |
	           (flags & BA_SUBMIT_READ_RCPT_FROM_HEADERS ? BA_MSG_READ_RCPT_FROM_HEADERS : 0) |
	           (acc->remove_bcc_headers ? BA_MSG_READ_REMOVE_BCC : 0) |
	           (acc->undisclosed_recipients ? BA_MSG_READ_UNDISCLOSED : 0);
	o->set_from = hdr_mode(acc->set_from_header);
	o->set_date = hdr_mode(acc->set_date_header);
	o->set_msgid = hdr_mode(acc->set_msgid_header);
	o->from_addr = env_from && *env_from ? env_from : NULL;
	o->from_name = full_name ? full_name : acc->from_full_name;
}

struct read_ctx {
	const ba_config *cfg;
	const struct ba_submit_read_req *rq;
	struct ba_submit_input *out;
};

/* ba_msg_read()'s header_done hook: the account and the sender, then how to read the rest. */
static int choose_on_header(void *ctx, const char *header_from, struct ba_msg_read_opts *o,
                            struct ba_err *err)
{
	struct read_ctx *c = ctx;
	const struct ba_submit_read_req *rq = c->rq;
	const char *env_from = rq->from;
	if (!env_from && rq->read_envelope_from) {
		if (!header_from)
			return ba_err_set(err, EX_DATAERR,
			                  "--read-envelope-from: the message has no From address");
		env_from = header_from;
	}
	const struct ba_account *acc = ba_submit_account(c->cfg, rq->account, env_from, header_from,
	                                                 err);
	if (!acc || ba_submit_envelope_from(&c->out->from, acc, env_from, err) < 0)
		return -1;
	c->out->acc = acc;
	struct ba_msg_read_opts chosen;
	ba_submit_read_opts(&chosen, acc, ba_buf_str(&c->out->from), rq->full_name, rq->flags);
	o->flags = chosen.flags;
	o->set_from = chosen.set_from;
	o->set_date = chosen.set_date;
	o->set_msgid = chosen.set_msgid;
	o->from_addr = chosen.from_addr;
	o->from_name = chosen.from_name;
	return 0;
}

int ba_submit_read(struct ba_submit_input *out, const ba_config *cfg, ba_reader *in,
                   const struct ba_submit_read_req *rq, struct ba_err *err)
{
	memset(out, 0, sizeof(*out));
	ba_buf_init(&out->from, 0);
	struct read_ctx c = { cfg, rq, out };
	struct ba_msg_read_opts o;
	memset(&o, 0, sizeof(o));
	o.flags = (rq->flags & BA_SUBMIT_READ_DOTS_ARE_DATA ? BA_MSG_READ_DOTS_ARE_DATA : 0) |
	          (rq->flags & BA_SUBMIT_READ_DOT_NO_COUNT ? BA_MSG_READ_DOT_NO_COUNT : 0);
	if (rq->in_fd >= 0) {
		o.flags |= BA_MSG_READ_REFER_INPUT; /* a message given as a file is not copied */
		o.in_fd = rq->in_fd;
	}
	o.mem_max = rq->mem_max;
	o.header_done = choose_on_header;
	o.header_ctx = &c;
	if (ba_msg_read(&out->msg, in, &o, err) < 0) {
		ba_submit_input_release(out);
		return -1;
	}
	return 0;
}

void ba_submit_input_release(struct ba_submit_input *in)
{
	ba_msg_read_release(&in->msg);
	ba_buf_release(&in->from);
	memset(in, 0, sizeof(*in));
}

void ba_submit_recipients_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Expands local names through the account's aliases file, in place. */
static int expand_aliases(const struct ba_account *acc, char ***rcpt, size_t *nrcpt,
                          struct ba_err *err)
{
	if (!acc->aliases || !*acc->aliases)
		return 0;
	int any_local = 0;
	for (size_t i = 0; i < *nrcpt; i++)
		if (!strchr((*rcpt)[i], '@'))
			any_local = 1;
	if (!any_local) /* as msmtp: the file is read only when there is something to expand */
		return 0;
	ba_aliases *al;
	if (ba_aliases_load(&al, acc->aliases, err) < 0)
		return -1;
	int rc = ba_aliases_expand(al, rcpt, nrcpt, err);
	ba_aliases_free(al);
	return rc;
}

int ba_submit_recipients(char ***out, size_t *n, const struct ba_account *acc,
                         const char *const *args, size_t nargs, const char *const *hdr,
                         size_t nhdr, struct ba_err *err)
{
	*out = NULL;
	*n = 0;
	char **v = calloc(nargs + nhdr + 1, sizeof(*v));
	size_t k = 0;
	if (!v)
		return ba_err_set(err, EX_OSERR, "out of memory");
	for (size_t i = 0; i < nargs + nhdr; i++) {
		if (!(v[k] = strdup(i < nargs ? args[i] : hdr[i - nargs]))) {
			ba_submit_recipients_free(v, k);
			return ba_err_set(err, EX_OSERR, "out of memory");
		}
		k++;
	}
	if (expand_aliases(acc, &v, &k, err) < 0) {
		ba_submit_recipients_free(v, k);
		return -1;
	}
	if (k == 0) {
		ba_submit_recipients_free(v, k);
		return ba_err_set(err, EX_USAGE, "no recipients found");
	}
	*out = v;
	*n = k;
	return 0;
}

int ba_submit_parse_notify(const char *s, unsigned *out)
{
	*out = 0;
	if (strcmp(s, "never") == 0) {
		*out = BA_DSN_NEVER;
		return 0;
	}
	const char *p = s;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n == 7 && strncmp(p, "success", 7) == 0)
			*out |= BA_DSN_SUCCESS;
		else if (n == 7 && strncmp(p, "failure", 7) == 0)
			*out |= BA_DSN_FAILURE;
		else if (n == 5 && strncmp(p, "delay", 5) == 0)
			*out |= BA_DSN_DELAY;
		else
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	return *out ? 0 : -1;
}

int ba_submit_parse_return(const char *s, int *out)
{
	if (strcmp(s, "full") == 0)
		*out = BA_DSN_RET_FULL;
	else if (strcmp(s, "hdrs") == 0)
		*out = BA_DSN_RET_HDRS;
	else
		return -1;
	return 0;
}

int ba_submit_check_envid(const char *s, struct ba_err *err)
{
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c > 126 || (unsigned char)*c <= ' ')
			return ba_err_set(err, EX_USAGE, "the envelope id must be printable ASCII");
	if (strlen(s) > 100)
		return ba_err_set(err, EX_USAGE, "the envelope id is longer than 100 characters");
	return 0;
}

/* The account's DSN settings in the engine's terms (RFC 3461). */
static unsigned engine_notify(unsigned notify)
{
	return (notify & BA_DSN_NEVER ? BA_NOTIFY_NEVER : 0) |
	       (notify & BA_DSN_SUCCESS ? BA_NOTIFY_SUCCESS : 0) |
	       (notify & BA_DSN_FAILURE ? BA_NOTIFY_FAILURE : 0) |
	       (notify & BA_DSN_DELAY ? BA_NOTIFY_DELAY : 0);
}

static enum ba_smtp_ret engine_ret(int ret)
{
	return ret == BA_DSN_RET_FULL ? BA_RET_FULL : ret == BA_DSN_RET_HDRS ? BA_RET_HDRS : BA_RET_NONE;
}

/* msmtp's log line, to the logfile ("-" = standard output) and to syslog. */
/*
 * The recipient whose refusal (a reply to RCPT TO) failed the message, or
 * NULL: the first refused one, when the failure is that refusal and not a
 * reply after the data (LMTP).
 */
static const struct ba_rcpt_result *refused_at_rcpt(const struct ba_result *r, int code,
                                                    const struct ba_err *err)
{
	if (!code || !r || r->code == 250)
		return NULL;
	for (size_t i = 0; i < r->nrcpts; i++)
		if (!r->rcpts[i].accepted && r->rcpts[i].code >= 400)
			return r->rcpts[i].code == err->smtp_code ? &r->rcpts[i] : NULL;
	return NULL;
}

static void write_log(const struct ba_submit *s, const struct ba_submit_result *res,
                      const struct ba_err *err, int code)
{
	const struct ba_account *acc = s->acc;
	if (!(acc->logfile && *acc->logfile) && !acc->syslog)
		return;
	struct ba_log_entry e;
	memset(&e, 0, sizeof(e));
	e.host = acc->socket ? acc->socket : acc->host;
	e.tls = acc->tls;
	e.auth = acc->auth;
	e.user = acc->user;
	e.from = s->from;
	e.rcpt = s->rcpt;
	e.nrcpt = s->nrcpt;
	e.has_mailsize = res->reached_data || code == 0;
	e.mailsize = ba_spool_size(s->spool);
	e.smtp_status = res->smtp_code;
	e.smtp_msg = res->smtp_code ? ba_buf_str(&res->smtp_msg) : NULL;
	e.errormsg = code ? err->text : NULL;
	e.exitcode = code;
	e.dropped_after_dot = s->dropped_after_dot;
	e.mtasts_testing = res->mtasts_testing;
	struct ba_buf line = BA_BUF_INIT, rmsg = BA_BUF_INIT, rtext = BA_BUF_INIT;
	const struct ba_rcpt_result *refused = refused_at_rcpt(res->result, code, err);
	if (refused) { /* msmtp's fields: the refusing reply, no mailsize (nothing was sent) */
		ba_buf_addf(&rmsg, "%d %s", refused->code, refused->text);
		ba_buf_addf(&rtext, "recipient address %s not accepted by the server", refused->addr);
		e.has_mailsize = 0;
		e.smtp_status = refused->code;
		e.smtp_msg = ba_buf_str(&rmsg);
		e.errormsg = ba_buf_str(&rtext);
	}
	ba_log_entry_format(&line, &e);
	if (acc->logfile && *acc->logfile) {
		struct ba_err lerr = BA_ERR_INIT;
		if (ba_log_file_append(acc->logfile, acc->logfile_time_format, (int64_t)time(NULL),
		                       ba_buf_str(&line), &lerr) < 0)
			ba_log(s->log, BA_LOG_WARNING, "%s", lerr.text);
	}
	if (acc->syslog) {
		struct ba_err serr = BA_ERR_INIT;
		int fac = ba_log_syslog_facility(acc->syslog, &serr);
		if (fac >= 0)
			ba_log_syslog(fac, code != 0, ba_buf_str(&line));
	}
	ba_buf_release(&line);
	ba_buf_release(&rmsg);
	ba_buf_release(&rtext);
}

/* Records the reply to the data (or to the refusal) for the log line. */
static void note_reply(struct ba_submit_result *res, const struct ba_result *result)
{
	ba_buf_reset(&res->smtp_msg);
	res->smtp_code = 0;
	if (result && result->code) {
		res->reached_data = 1;
		res->smtp_code = result->code;
		ba_buf_addf(&res->smtp_msg, "%d %s", result->code, result->text);
	}
}

/* A message whose verdict the engine left for later (ba_submit.done). */
struct submit_pend {
	struct ba_submit sub;        /* a shallow copy: the caller keeps what it points to */
	struct ba_submit_result res;
};

/* The engine's verdict on a pending message: the result, the log line, the caller's done. */
static void submit_done(void *ctx, struct ba_result *result, int rc, const struct ba_err *err)
{
	struct submit_pend *p = ctx;
	struct ba_err e = BA_ERR_INIT;
	if (rc < 0)
		e = *err;
	p->res.result = result;
	note_reply(&p->res, result);
	if (rc < 0 && e.smtp_code && !p->res.smtp_code)
		p->res.smtp_code = e.smtp_code;
	write_log(&p->sub, &p->res, &e, rc == 0 ? 0 : (e.code ? e.code : EX_SOFTWARE));
	p->sub.done(p->sub.done_ctx, &p->res, rc, &e);
	ba_submit_result_release(&p->res);
	free(p);
}

/* The session part: addresses for the session, envelope, 7-bit decision, the engine. */
static int deliver(struct ba_submit_result *res, const struct ba_submit *s, ba_route *r,
                   struct ba_err *err)
{
	const struct ba_account *acc = s->acc;
	struct ba_buf from = BA_BUF_INIT;
	struct ba_buf *rb = calloc(s->nrcpt ? s->nrcpt : 1, sizeof(*rb));
	struct ba_rcpt *rcpts = calloc(s->nrcpt ? s->nrcpt : 1, sizeof(*rcpts));
	int rc = -1, utf8 = 0;
	if (!rb || !rcpts) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	/* IDN domains become A-labels unless the server offers SMTPUTF8 (route) */
	if (ba_route_addr(&from, &utf8, r, s->from, err) < 0)
		goto out;
	unsigned notify = engine_notify(s->notify ? s->notify : acc->dsn_notify);
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (ba_route_addr(&rb[i], &utf8, r, s->rcpt[i], err) < 0)
			goto out;
		rcpts[i].addr = ba_buf_str(&rb[i]);
		rcpts[i].notify = notify;
	}
	unsigned flags = ba_spool_flags(s->spool);
	struct ba_envelope env;
	memset(&env, 0, sizeof(env));
	env.from = ba_buf_str(&from);
	env.rcpts = rcpts;
	env.nrcpts = s->nrcpt;
	env.size = ba_spool_wire_size(s->spool);
	env.body = flags & BA_SPOOL_8BIT ? BA_BODY_8BITMIME : BA_BODY_7BIT;
	env.smtputf8 = utf8;
	env.ret = engine_ret(s->ret ? s->ret : (int)acc->dsn_return);
	env.envid = s->envid;
	/* route re-encodes to 7 bit for a server without 8BITMIME, and for lines over 998 octets */
	int force_7bit = (flags & BA_SPOOL_LONG_LINE) != 0;
	struct submit_pend *pend = NULL;
	if (s->done && s->route && s->repeat <= 1 && (pend = calloc(1, sizeof(*pend)))) {
		pend->sub = *s;
		ba_buf_init(&pend->res.smtp_msg, 0);
		ba_buf_init(&pend->res.hint, 4096);
		memcpy(pend->res.server, res->server, sizeof(res->server));
		env.done = submit_done;
		env.done_ctx = pend;
	}
	for (long n = 0; n < (s->repeat > 0 ? s->repeat : 1); n++) {
		ba_result_free(res->result);
		res->result = NULL;
		int sent = ba_route_send(r, &env, ba_spool_reader(s->spool), force_7bit, &res->result,
		                         err);
		if (sent == 1) { /* submit_done() has pend now */
			res->reached_data = 1;
			rc = 1;
			goto out;
		}
		note_reply(res, res->result);
		if (sent < 0) {
			if (pend)
				ba_submit_result_release(&pend->res);
			free(pend);
			goto out;
		}
	}
	if (pend)
		ba_submit_result_release(&pend->res);
	free(pend);
	rc = 0;
out:
	for (size_t i = 0; rb && i < s->nrcpt; i++)
		ba_buf_release(&rb[i]);
	free(rb);
	free(rcpts);
	ba_buf_release(&from);
	return rc;
}

/* ---- direct delivery: each recipient domain's MX ------------------------ */

/* What happened to one recipient of a direct delivery. */
struct mx_fate {
	int done;            /* its domain was tried */
	int accepted;
	int code;            /* the server's reply, or the one made here (below); 0 = none */
	char enhanced[16];
	int klass;           /* sysexits class of its failure */
	char text[BA_ERR_TEXT_MAX];
};

static const char *rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* Case-insensitive ASCII compare of two domains (the A-label is made by dns). */
static int same_domain(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
		char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
		if (x != y)
			return 0;
	}
	return *a == *b;
}

/*
 * A failure before any RCPT for every recipient of one domain.  The reply
 * code is the server's when there was one; otherwise one made here as
 * Postfix does, so that the outbox and a report can tell a permanent
 * failure (550 5.1.2 for a domain that does not exist, 556 5.1.10 for a
 * null MX, RFC 7505 §4.2) from one to try again (0: no reply).
 */
static void mx_fail(struct mx_fate *f, const struct ba_err *e)
{
	f->done = 1;
	f->accepted = 0;
	f->klass = e->code ? e->code : EX_SOFTWARE;
	snprintf(f->text, sizeof(f->text), "%s", e->text);
	if (e->smtp_code) {
		f->code = e->smtp_code;
		snprintf(f->enhanced, sizeof(f->enhanced), "%s", e->enhanced);
	} else if (e->code == EX_NOHOST) {
		f->code = 550;
		snprintf(f->enhanced, sizeof(f->enhanced), "5.1.2");
	} else if (e->code == EX_UNAVAILABLE && strstr(e->text, "null MX")) {
		f->code = 556;
		snprintf(f->enhanced, sizeof(f->enhanced), "5.1.10");
	} else if (e->code != EX_TEMPFAIL && e->code != EX_IOERR && !(e->flags & BA_ERR_TLS_FAILED)) {
		f->code = 550;
	}
}

/* The route options of a send: one mapping for a relay's route and each MX domain's. */
static void route_opts(struct ba_route_opts *ro, struct ba_route_report *report,
                       const struct ba_submit *s)
{
	memset(report, 0, sizeof(*report));
	memset(ro, 0, sizeof(*ro));
	ro->log = s->log;
	ro->smtp_flags = s->smtp_flags;
	ro->report = report;
	ro->progress = s->progress;
	ro->progress_ctx = s->progress_ctx;
	ro->data_end = s->data_end;
	ro->data_end_ctx = s->data_end_ctx;
	ro->cancel_fd = s->cancel_fd;
	ro->ask_password = s->ask_password;
	ro->ask_password_ctx = s->ask_password_ctx;
}

/* One domain: its MX plan, one route, the recipients of that domain. */
static void mx_domain(struct ba_submit_result *res, const struct ba_submit *s, const char *domain,
                      const size_t *idx, size_t n, struct mx_fate *fate)
{
	const struct ba_account *acc = s->acc;
	struct ba_err err = BA_ERR_INIT;
	struct ba_dns_opts dopts;
	memset(&dopts, 0, sizeof(dopts));
	dopts.timeout_ms = acc->timeout > 0 ? acc->timeout * 1000 : 0;
	dopts.trust_anchor = acc->dnssec_trust_anchor;
	dopts.log = s->log;
	dopts.cancel_fd = s->cancel_fd;
	struct ba_dns_mx_list mxl;
	struct ba_mxsec sec;
	memset(&sec, 0, sizeof(sec));
	struct ba_route_target *plan = NULL;
	const char **rcpt = calloc(n, sizeof(*rcpt));
	ba_route *r = NULL;
	struct ba_submit_result dres;
	memset(&dres, 0, sizeof(dres));
	int rc = -1;
	if (!rcpt) {
		ba_err_set(&err, EX_OSERR, "out of memory");
		goto fail;
	}
	if (ba_dns_mx(&mxl, domain, &dopts, &err) < 0)
		goto fail;
	plan = calloc(mxl.n, sizeof(*plan));
	if (!plan) {
		ba_dns_mx_release(&mxl);
		ba_err_set(&err, EX_OSERR, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < mxl.n; i++) {
		plan[i].host = mxl.mx[i].host;
		plan[i].port = 25;
		ba_log(s->log, BA_LOG_DEBUG, "%s: MX %u %s%s (%s)", mxl.domain, mxl.mx[i].preference,
		       mxl.mx[i].host, mxl.implicit ? " (implicit)" : "",
		       ba_dns_status_name(mxl.status));
	}
	/*
	 * The domain's transport policy (route_policy.h): RFC 7672 DANE from the
	 * TLSA records of a secure MX answer, RFC 8461 MTA-STS, mx_tls_policy;
	 * what TLS each target requires, and which are skipped or deferred
	 */
	struct ba_mtasts_params sts;
	memset(&sts, 0, sizeof(sts));
	sts.timeout_ms = dopts.timeout_ms;
	sts.log = s->log;
	struct ba_mxsec_opts so = { &dopts, &sts, s->log };
	if (ba_mxsec_lookup(&sec, acc, &mxl, &so, &err) < 0) {
		ba_dns_mx_release(&mxl);
		goto fail;
	}
	for (size_t i = 0; i < mxl.n; i++) {
		plan[i].sec = &sec.t[i];
		/* connect where the DNS answer checked above points, not where getaddrinfo would */
		plan[i].addrs = sec.t[i].addrs;
		plan[i].naddrs = sec.t[i].naddrs;
	}
	struct ba_route_report report;
	struct ba_route_opts ro;
	route_opts(&ro, &report, s);
	ro.plan = plan;
	ro.nplan = mxl.n;
	rc = ba_route_open(&r, acc, &ro, &err);
	if (report.server[0])
		memcpy(res->server, report.server, sizeof(res->server));
	if (report.mtasts_testing[0]) { /* RFC 8461 §5: for the log line too, not only -v */
		size_t len = strlen(res->mtasts_testing);
		snprintf(res->mtasts_testing + len, sizeof(res->mtasts_testing) - len, "%s%s",
		         len ? "; " : "", report.mtasts_testing);
	}
	if (rc == 0) {
		for (size_t k = 0; k < n; k++)
			rcpt[k] = s->rcpt[idx[k]];
		struct ba_submit ds = *s;
		ds.rcpt = rcpt;
		ds.nrcpt = n;
		ds.done = NULL; /* this route is freed below: each domain's verdict is awaited */
		ba_buf_init(&dres.smtp_msg, 0);
		rc = deliver(&dres, &ds, r, &err);
		if (dres.smtp_code) {
			res->smtp_code = dres.smtp_code;
			res->reached_data |= dres.reached_data;
			ba_buf_reset(&res->smtp_msg);
			ba_buf_addstr(&res->smtp_msg, ba_buf_str(&dres.smtp_msg));
		}
	}
	ba_route_free(r);
	ba_dns_mx_release(&mxl);
	ba_mxsec_release(&sec);
	free(plan);
	/* per recipient: the engine's replies when the envelope was reached */
	const struct ba_result *dr = dres.result;
	for (size_t k = 0; k < n; k++) {
		struct mx_fate *f = &fate[idx[k]];
		if (dr && k < dr->nrcpts && (dr->rcpts[k].code || dr->rcpts[k].accepted)) {
			const struct ba_rcpt_result *x = &dr->rcpts[k];
			f->done = 1;
			f->accepted = x->accepted;
			f->code = x->accepted || x->code >= 400 ? x->code : dr->code;
			snprintf(f->enhanced, sizeof(f->enhanced), "%s", x->enhanced);
			snprintf(f->text, sizeof(f->text), "%s", x->text);
			if (!x->accepted && x->code >= 400) {
				f->klass = x->code < 500 ? EX_TEMPFAIL : EX_UNAVAILABLE;
			} else if (!x->accepted) { /* accepted at RCPT, refused at the data */
				if (rc < 0)
					mx_fail(f, &err);
				else
					f->klass = EX_UNAVAILABLE;
			}
		} else if (rc < 0) {
			mx_fail(f, &err);
		}
	}
	ba_submit_result_release(&dres);
	free(rcpt);
	return;
fail:
	for (size_t k = 0; k < n; k++)
		mx_fail(&fate[idx[k]], &err);
	free(plan);
	free(rcpt);
}

/* The merged per-recipient result of a direct delivery, in the order of s->rcpt. */
static struct ba_result *mx_result(const struct ba_submit *s, const struct mx_fate *fate)
{
	struct ba_result *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->rcpts = calloc(s->nrcpt ? s->nrcpt : 1, sizeof(*r->rcpts));
	r->text = strdup("");
	if (!r->rcpts || !r->text) {
		ba_result_free(r);
		return NULL;
	}
	for (size_t i = 0; i < s->nrcpt; i++) {
		struct ba_rcpt_result *x = &r->rcpts[i];
		x->addr = strdup(s->rcpt[i]);
		x->text = strdup(fate[i].text);
		r->nrcpts++;
		if (!x->addr || !x->text) {
			ba_result_free(r);
			return NULL;
		}
		x->code = fate[i].code;
		memcpy(x->enhanced, fate[i].enhanced, sizeof(x->enhanced));
		x->accepted = fate[i].accepted;
		r->naccepted += (size_t)x->accepted;
		if (x->accepted && !r->code)
			r->code = 250;
	}
	return r;
}

/*
 * Direct delivery (ba_config_delivers_mx()): the recipients grouped by
 * domain, each domain's MX plan tried in turn over a route of its own, the
 * outcomes merged per recipient in the order given.
 */
static int submit_mx(struct ba_submit_result *res, const struct ba_submit *s, struct ba_err *err)
{
	struct mx_fate *fate = calloc(s->nrcpt ? s->nrcpt : 1, sizeof(*fate));
	size_t *idx = calloc(s->nrcpt ? s->nrcpt : 1, sizeof(*idx));
	if (!fate || !idx) {
		free(fate);
		free(idx);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	if (s->route && *s->route) { /* a kept route reaches one server: not every domain's */
		ba_route_free(*s->route);
		*s->route = NULL;
	}
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (fate[i].done)
			continue;
		const char *dom = rcpt_domain(s->rcpt[i]);
		size_t n = 0;
		for (size_t j = i; j < s->nrcpt; j++)
			if (!fate[j].done && same_domain(rcpt_domain(s->rcpt[j]), dom))
				idx[n++] = j;
		if (!*dom) {
			struct ba_err e = BA_ERR_INIT;
			ba_err_set(&e, EX_DATAERR, "recipient '%s' has no domain", s->rcpt[i]);
			for (size_t k = 0; k < n; k++)
				mx_fail(&fate[idx[k]], &e);
			continue;
		}
		mx_domain(res, s, dom, idx, n, fate);
		for (size_t k = 0; k < n; k++)
			fate[idx[k]].done = 1;
		if (s->cancel_fd && ba_cancel_pending(*s->cancel_fd)) {
			for (size_t j = 0; j < s->nrcpt; j++)
				if (!fate[j].done) {
					struct ba_err e = BA_ERR_INIT;
					ba_err_cancel(&e, "cancelled");
					mx_fail(&fate[j], &e);
				}
			break;
		}
	}
	res->result = mx_result(s, fate);
	size_t accepted = 0, temp = 0, first_bad = (size_t)-1;
	for (size_t i = 0; i < s->nrcpt; i++) {
		accepted += (size_t)fate[i].accepted;
		if (fate[i].accepted)
			continue;
		if (first_bad == (size_t)-1)
			first_bad = i;
		if (fate[i].code == 0 || (fate[i].code >= 400 && fate[i].code < 500))
			temp++;
	}
	int rc = 0;
	if (!res->result) {
		rc = ba_err_set(err, EX_OSERR, "out of memory");
	} else if (accepted < s->nrcpt && !(s->acc->partial_delivery && accepted)) {
		/*
		 * The class: temporary when any recipient may still be reached (the
		 * outbox keeps just those), else the first permanent failure's; the
		 * text names each recipient not delivered
		 */
		const struct mx_fate *f = &fate[first_bad];
		struct ba_buf t = BA_BUF_INIT;
		if (s->nrcpt > 1)
			ba_buf_addf(&t, "%zu of %zu recipients not delivered: ", s->nrcpt - accepted,
			            s->nrcpt);
		for (size_t i = 0, k = 0; i < s->nrcpt; i++)
			if (!fate[i].accepted)
				ba_buf_addf(&t, "%s%s: %s", k++ ? "; " : "", s->rcpt[i], fate[i].text);
		int klass = temp ? EX_TEMPFAIL : f->klass;
		if (temp && (f->code >= 500 || f->klass != EX_TEMPFAIL))
			for (size_t i = 0; i < s->nrcpt; i++)
				if (!fate[i].accepted && (fate[i].code == 0 || fate[i].code < 500)) {
					f = &fate[i];
					break;
				}
		rc = ba_err_smtp(err, klass, f->code, f->enhanced[0] ? f->enhanced : NULL, "%.*s",
		                 BA_ERR_TEXT_MAX - 1, ba_buf_str(&t));
		if (f->klass == EX_TEMPFAIL && f->code == 0)
			err->smtp_code = 0;
		ba_buf_release(&t);
	}
	free(fate);
	free(idx);
	if (!res->server[0])
		snprintf(res->server, sizeof(res->server), "MX");
	write_log(s, res, err, rc == 0 ? 0 : err->code);
	return rc;
}

int ba_submit_send(struct ba_submit_result *res, const struct ba_submit *s, struct ba_err *err)
{
	memset(res, 0, sizeof(*res));
	ba_buf_init(&res->smtp_msg, 0);
	ba_buf_init(&res->hint, 4096);
	if (ba_config_delivers_mx(s->acc))
		return submit_mx(res, s, err);
	struct ba_route_report report;
	struct ba_route_opts ro;
	route_opts(&ro, &report, s);
	ba_route *r = s->route ? *s->route : NULL;
	int reused = r != NULL, rc = 0;
	memset(&report, 0, sizeof(report));
	if (!r)
		rc = ba_route_open(&r, s->acc, &ro, err);
	if (reused)
		snprintf(report.server, sizeof(report.server), "%s", ba_route_server(r));
	memcpy(res->server, report.server, sizeof(res->server));
	if (!res->server[0]) { /* the route stopped before a target: name the configured one */
		const struct ba_account *acc = s->acc;
		if (acc->socket)
			snprintf(res->server, sizeof(res->server), "%s", acc->socket);
		else
			snprintf(res->server, sizeof(res->server), "%s:%u", acc->host ? acc->host : "?",
			         acc->port);
	}
	if (rc == 0)
		rc = deliver(res, s, r, err);
	/*
	 * A kept session the server closed meanwhile (idle timeout, 421): once more
	 * on a new one, but only when the server cannot have taken the message: no
	 * reply was read, or the last one read was a refusal (the data never went
	 * out after it, or its final reply refused it).
	 */
	if (rc < 0 && reused && !(err->flags & BA_ERR_CANCELLED) &&
	    (err->smtp_code == 0 || err->smtp_code == 421) &&
	    (!res->result || res->result->code == 0 || res->result->code >= 400) &&
	    (err->code == EX_TEMPFAIL || err->code == EX_IOERR || err->code == EX_PROTOCOL)) {
		ba_log(s->log, BA_LOG_DEBUG, "the kept session failed (%s): connecting again",
		       err->text);
		ba_route_free(r);
		r = NULL;
		ba_err_clear(err);
		ba_result_free(res->result);
		res->result = NULL;
		rc = ba_route_open(&r, s->acc, &ro, err);
		memcpy(res->server, report.server, sizeof(res->server));
		if (rc == 0)
			rc = deliver(res, s, r, err);
	}
	if (rc < 0 && err->smtp_code && !res->smtp_code)
		res->smtp_code = err->smtp_code;
	if (s->route && rc >= 0) {
		*s->route = r;
	} else {
		ba_route_free(r);
		if (s->route)
			*s->route = NULL;
	}
	if (rc == 1)
		return 1; /* logged when its verdict comes (submit_done()) */
	int code = rc == 0 ? 0 : (err->code ? err->code : EX_SOFTWARE);
	if (rc < 0)
		ba_route_hint(&res->hint, s->acc, err, &report);
	write_log(s, res, err, code);
	return rc;
}

void ba_submit_result_release(struct ba_submit_result *res)
{
	ba_result_free(res->result);
	ba_buf_release(&res->smtp_msg);
	ba_buf_release(&res->hint);
	memset(res, 0, sizeof(*res));
}

int ba_submit_local_rcpt(char ***out, size_t *n, const struct ba_account *acc, const char *name,
                         struct ba_err *err)
{
	*out = NULL;
	*n = 0;
	if (!acc->aliases || !*acc->aliases)
		return ba_err_set(err, EX_USAGE, "recipient '%s' has no domain and account '%s' has no "
		                  "aliases file to expand it (add 'aliases FILE' to the account, or "
		                  "give %s@DOMAIN)", name, acc->name, name);
	char **v;
	size_t k;
	if (ba_submit_recipients(&v, &k, acc, &name, 1, NULL, 0, err) < 0)
		return -1;
	for (size_t i = 0; i < k; i++)
		if (!strchr(v[i], '@')) {
			ba_err_set(err, EX_USAGE, "recipient '%s' has no domain and the aliases file '%s' "
			           "of account '%s' does not expand it", v[i], acc->aliases, acc->name);
			ba_submit_recipients_free(v, k);
			return -1;
		}
	*out = v;
	*n = k;
	return 0;
}

int ba_submit_from_field(struct ba_buf *out, const struct ba_account *acc, const char *env_from,
                         const char *full_name, struct ba_err *err)
{
	ba_buf_reset(out);
	if (!env_from || !*env_from)
		return ba_err_set(err, EX_USAGE, "account '%s': no address for the From field (the "
		                  "envelope sender is empty)", acc->name);
	const char *name = full_name ? full_name : acc->from_full_name;
	if (name && *name) {
		ba_buf_addch(out, '"');
		for (const char *c = name; *c; c++) {
			if (*c == '"' || *c == '\\')
				ba_buf_addch(out, '\\');
			ba_buf_addch(out, *c);
		}
		ba_buf_addf(out, "\" <%s>", env_from);
	} else {
		ba_buf_addstr(out, env_from);
	}
	if (ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return 0;
}

static const char *tls_mode_name(enum ba_tls_mode m)
{
	switch (m) {
	case BA_TLS_STARTTLS: return "STARTTLS";
	case BA_TLS_IMPLICIT: return "implicit TLS";
	case BA_TLS_OPPORTUNISTIC: return "opportunistic STARTTLS";
	default: return "no TLS";
	}
}

/* Appends the header of the spooled message (up to the empty line, or all of it) to out. */
static int describe_header(struct ba_buf *out, ba_spool *spool, struct ba_err *err)
{
	ba_reader *r = ba_spool_reader(spool);
	struct ba_linereader lr;
	if (ba_linereader_init(&lr, r, 1000000, err) < 0)
		return -1;
	int rc = 0;
	for (;;) {
		const char *line;
		size_t len;
		rc = ba_linereader_next(&lr, &line, &len, err);
		if (rc <= 0)
			break;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (!len)
			break;
		ba_buf_add(out, line, len);
		ba_buf_addch(out, '\n');
	}
	ba_linereader_release(&lr);
	return rc < 0 ? -1 : 0;
}

int ba_submit_describe(struct ba_buf *out, const struct ba_submit *s, struct ba_err *err)
{
	const struct ba_account *acc = s->acc;
	struct ba_route_params p;
	memset(&p, 0, sizeof(p));
	int rc = ba_route_params_init(&p, acc, NULL, s->smtp_flags, 0, err);
	if (rc == 0) {
		ba_buf_addf(out, "account   %s (%s:%u)\n", acc->name, acc->file ? acc->file : "?",
		            acc->line);
		if (ba_config_delivers_mx(acc))
			ba_buf_addstr(out, "server    the MX of each recipient domain, port 25");
		else if (acc->socket)
			ba_buf_addf(out, "server    %s", p.net.host);
		else
			ba_buf_addf(out, "server    %s:%u", p.net.host ? p.net.host : "?", p.net.port);
		ba_buf_addf(out, ", %s, %s", p.smtp.variant == BA_SMTP_LMTP ? "LMTP" : "SMTP",
		            tls_mode_name(p.smtp.tls));
		if (p.net.proxy_host)
			ba_buf_addf(out, ", through SOCKS proxy %s:%u", p.net.proxy_host,
			            p.net.proxy_port);
		if (acc->auth)
			ba_buf_addf(out, ", auth as '%s'", p.smtp.user ? p.smtp.user : "");
		else
			ba_buf_addstr(out, ", no auth");
		ba_buf_addf(out, "\nfrom      <%s>\n", s->from ? s->from : "");
		for (size_t i = 0; i < s->nrcpt; i++)
			ba_buf_addf(out, "to        <%s>\n", s->rcpt[i]);
		ba_buf_addf(out, "size      %llu octets\n",
		            (unsigned long long)ba_spool_wire_size(s->spool));
		ba_buf_addstr(out, "header\n");
		rc = describe_header(out, s->spool, err);
		ba_buf_addch(out, '\n');
	}
	ba_route_params_release(&p);
	if (rc == 0 && ba_buf_failed(out))
		return ba_err_set(err, EX_OSERR, "out of memory");
	return rc;
}
