/* cli/outbox_cmd.c - `bluearrow outbox`, sendmail's -bp/-q/-odq/-odb and queueing on failure */
#define _GNU_SOURCE
#include "outbox_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/config.h"
#include "bluearrow/outbox.h"
#include "bluearrow/submit.h"
#include "cli.h"
#include "output.h"

#define OB "outbox"

const char cli_outbox_usage[] =
	"usage: bluearrow outbox list [--json] [-C FILE]\n"
	"       bluearrow outbox show ID [-C FILE]\n"
	"       bluearrow outbox flush [-a ACCOUNT] [-v] [-C FILE] [ID ...]\n"
	"       bluearrow outbox retry ID [-C FILE]\n"
	"       bluearrow outbox rm ID [-C FILE]\n"
	"\n"
	"Messages queued by 'sendmail -odq', '-odb', or 'queue on_failure|always' wait\n"
	"in the outbox (the 'outbox' key; default $XDG_STATE_HOME/bluearrow/outbox).\n"
	"\n"
	"   list    ID, age, size, sender, recipients, attempts, last error, next attempt\n"
	"           (--json: one JSON array)\n"
	"   show    the entry's state and the message\n"
	"   flush   send every due entry (with IDs: those, due or not), one connection per\n"
	"           account; -a: only that account's\n"
	"   retry   make an entry due now (a failed one goes back to the queue)\n"
	"   rm      remove an entry (queued or failed)\n"
	"\n"
	"Exit status: 0, or the sysexits(3) class of the error; flush exits 75\n"
	"(EX_TEMPFAIL) when an entry stays queued and 69 when one failed.\n";

/* ---- which outbox ------------------------------------------------------- */

/* The outbox directories of cfg's accounts, each once (ba_outbox_account_dir()). */
static int outbox_dirs(char ***out, size_t *n, const ba_config *cfg, const char *account,
                       struct ba_err *err)
{
	*out = NULL;
	*n = 0;
	struct ba_buf d = BA_BUF_INIT;
	size_t count = cfg ? ba_config_count(cfg) : 0;
	char **v = calloc(count + 1, sizeof(*v));
	if (!v)
		return ba_err_set(err, EX_OSERR, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i <= count; i++) {
		int rc;
		if (i < count) {
			const struct ba_account *a = ba_config_at(cfg, i);
			if (account && strcmp(a->name, account) != 0)
				continue;
			rc = ba_outbox_account_dir(&d, a, err);
		} else if (count == 0) {
			rc = ba_outbox_default_dir(&d, err);
		} else {
			break;
		}
		if (rc < 0) {
			ba_buf_release(&d);
			cli_outbox_free_dirs(v, k);
			return -1;
		}
		size_t j = 0;
		while (j < k && strcmp(v[j], ba_buf_str(&d)) != 0)
			j++;
		if (j == k && !(v[k++] = strdup(ba_buf_str(&d)))) {
			ba_buf_release(&d);
			cli_outbox_free_dirs(v, k);
			return ba_err_set(err, EX_OSERR, "out of memory");
		}
	}
	ba_buf_release(&d);
	*out = v;
	*n = k;
	return 0;
}

void cli_outbox_free_dirs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static struct ba_log quiet_log;

/* Opens the outbox of acc (ba_outbox_account_dir()); NULL: the default. */
static int open_for(ba_outbox **ob, const struct ba_account *acc, struct ba_err *err)
{
	cli_log_stderr_init(&quiet_log, 0);
	struct ba_buf d = BA_BUF_INIT;
	int rc = acc ? ba_outbox_account_dir(&d, acc, err) : ba_outbox_default_dir(&d, err);
	if (rc == 0)
		rc = ba_outbox_open(ob, ba_buf_str(&d), &quiet_log, err);
	ba_buf_release(&d);
	return rc;
}

/* ---- enqueueing --------------------------------------------------------- */

int cli_outbox_enqueue(const struct ba_submit *s, const struct ba_err *why, int64_t next,
                       char *id, size_t idlen, int *hold, struct ba_err *err)
{
	ba_outbox *ob;
	if (open_for(&ob, s->acc, err) < 0)
		return -1;
	struct ba_outbox_entry e;
	memset(&e, 0, sizeof(e));
	int rc = -1;
	e.account = strdup(s->acc->name);
	e.from = strdup(s->from);
	e.rcpt = calloc(s->nrcpt ? s->nrcpt : 1, sizeof(*e.rcpt));
	e.envid = s->envid ? strdup(s->envid) : NULL;
	if (!e.account || !e.from || !e.rcpt || (s->envid && !e.envid)) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->nrcpt; i++) {
		if (!(e.rcpt[i].addr = strdup(s->rcpt[i]))) {
			ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		e.nrcpt++;
	}
	e.notify = s->notify;
	e.ret = s->ret;
	e.next = next;
	if (why) { /* the attempt that failed, for list */
		e.attempts = 1;
		e.error_class = why->code;
		e.error_code = why->smtp_code;
		e.error = strdup(why->text);
	}
	rc = ba_outbox_add(ob, &e, ba_spool_reader(s->spool), hold, err);
	if (rc == 0)
		snprintf(id, idlen, "%s", e.id);
out:
	ba_outbox_entry_release(&e);
	ba_outbox_free(ob);
	return rc;
}

/* ---- flushing ----------------------------------------------------------- */

struct flush_show {
	int verbose;
};

static void flush_done(void *ctx, const struct ba_outbox_entry *e, enum ba_outbox_outcome o,
                       const struct ba_err *err)
{
	struct flush_show *fs = ctx;
	switch (o) {
	case BA_OUTBOX_DELIVERED:
		if (fs->verbose)
			fprintf(stderr, "%s: %s: delivered\n", cli_progname, e->id);
		break;
	case BA_OUTBOX_DEFERRED:
		fprintf(stderr, "%s: %s: deferred (attempt %u): %s\n", cli_progname, e->id,
		        e->attempts, e->error ? e->error : err ? err->text : "");
		break;
	case BA_OUTBOX_FAILED:
		fprintf(stderr, "%s: %s: failed, moved to failed/: %s\n", cli_progname, e->id,
		        e->error ? e->error : err ? err->text : "");
		break;
	case BA_OUTBOX_UNKNOWN:
		fprintf(stderr, "%s: %s: sent-unknown (the connection was lost after the end of the "
		        "data): not sent again without 'outbox retry': %s\n", cli_progname, e->id,
		        e->error ? e->error : err ? err->text : "");
		break;
	case BA_OUTBOX_CANCELLED:
	case BA_OUTBOX_SKIPPED:
		break;
	}
}

/* How many entries the default outbox holds (0 when it does not exist), or -1. */
static long queued_in_default(struct ba_err *err)
{
	struct ba_buf d = BA_BUF_INIT;
	struct stat st;
	long n = 0;
	if (ba_outbox_default_dir(&d, err) < 0) {
		n = -1;
	} else if (stat(ba_buf_str(&d), &st) == 0) {
		ba_outbox *ob = NULL;
		struct ba_outbox_entry *v;
		size_t k;
		cli_log_stderr_init(&quiet_log, 0);
		if (ba_outbox_open(&ob, ba_buf_str(&d), &quiet_log, err) < 0)
			n = -1;
		else if (ba_outbox_list(ob, &v, &k, err) < 0)
			n = -1;
		else {
			n = (long)k;
			ba_outbox_list_free(v, k);
		}
		ba_outbox_free(ob);
	}
	ba_buf_release(&d);
	return n;
}

int cli_outbox_flush(const struct cli_flush *f)
{
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	char **dirs = NULL;
	size_t ndirs = 0;
	int code = 0;
	if (ba_submit_config(&cfg, f->config, &err) < 0) {
		/* without a configuration an empty default outbox is nothing to do (cron's -q) */
		struct ba_err derr = BA_ERR_INIT;
		if (f->config || queued_in_default(&derr) != 0)
			code = cli_fail(&err);
		goto out;
	}
	if ((f->account && !ba_config_account(cfg, f->account, &err)) ||
	    outbox_dirs(&dirs, &ndirs, cfg, f->account, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	struct ba_log log;
	cli_log_stderr_init(&log, f->verbose);
	struct flush_show fs = { f->verbose };
	struct ba_outbox_flush_stats total;
	memset(&total, 0, sizeof(total));
	for (size_t i = 0; i < ndirs; i++) {
		ba_outbox *ob;
		if (ba_outbox_open(&ob, dirs[i], &log, &err) < 0) {
			code = cli_fail(&err);
			continue;
		}
		int lock = -1;
		if (f->exclusive) {
			lock = open(dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) { /* another one is at it */
				if (lock >= 0)
					close(lock);
				ba_outbox_free(ob);
				continue;
			}
		}
		struct ba_outbox_flush_opts o;
		memset(&o, 0, sizeof(o));
		o.cfg = cfg;
		o.account = f->account;
		o.ids = f->ids;
		o.nids = f->nids;
		o.all = f->all;
		o.hold_fd = f->hold_fd;
		o.log = &log;
		o.done = flush_done;
		o.done_ctx = &fs;
		struct ba_outbox_flush_stats st;
		if (ba_outbox_flush(ob, &o, &st, &err) < 0)
			code = cli_fail(&err);
		total.delivered += st.delivered;
		total.deferred += st.deferred;
		total.failed += st.failed;
		total.skipped += st.skipped;
		ba_outbox_free(ob);
		if (lock >= 0)
			close(lock);
	}
	if (!code)
		code = total.failed ? EX_UNAVAILABLE : total.deferred ? EX_TEMPFAIL : 0;
out:
	cli_outbox_free_dirs(dirs, ndirs);
	ba_config_free(cfg);
	return code;
}

int cli_outbox_background(const struct cli_flush *f)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		/* the intermediate child exits at once; the delivery runs in its child */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return 0;
	}
	setsid();
	signal(SIGHUP, SIG_IGN);
	pid = fork();
	if (pid != 0)
		_exit(0);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2); /* the caller is gone: errors are in the entry's state */
		if (nul > 2)
			close(nul);
	}
	_exit(cli_outbox_flush(f));
}

/* ---- listing ------------------------------------------------------------ */

static void fmt_age(char *out, size_t n, int64_t secs)
{
	int neg = secs < 0;
	if (neg)
		secs = -secs;
	if (secs < 120)
		snprintf(out, n, "%" PRId64 "s", secs);
	else if (secs < 7200)
		snprintf(out, n, "%" PRId64 "m", secs / 60);
	else if (secs < 172800)
		snprintf(out, n, "%" PRId64 "h", secs / 3600);
	else
		snprintf(out, n, "%" PRId64 "d", secs / 86400);
}

static void json_str(FILE *o, const char *s)
{
	if (!s) {
		fputs("null", o);
		return;
	}
	fputc('"', o);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(o, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(o, "\\u%04x", *c);
		else
			fputc(*c, o);
	}
	fputc('"', o);
}

static const char *const rcpt_state[] = { "pending", "sent", "failed" };

/* Never tried and not due yet: held for later (send --at, queue_delay), not backing off. */
static int held(const struct ba_outbox_entry *e, int64_t now)
{
	/* a cancelled or sent-unknown entry waits for a retry, not for its time */
	return e->attempts == 0 && e->next > now && !e->inflight && !e->cancelled;
}

static void print_json(FILE *o, const struct ba_outbox_entry *e, const char *dir, int first,
                       int64_t now)
{
	fputs(first ? "\n  {" : ",\n  {", o);
	fputs("\"id\": ", o);
	json_str(o, e->id);
	fputs(", \"outbox\": ", o);
	json_str(o, dir);
	fputs(", \"account\": ", o);
	json_str(o, e->account);
	fputs(", \"from\": ", o);
	json_str(o, e->from);
	fputs(", \"recipients\": [", o);
	for (size_t i = 0; i < e->nrcpt; i++) {
		fputs(i ? ", {\"address\": " : "{\"address\": ", o);
		json_str(o, e->rcpt[i].addr);
		fprintf(o, ", \"state\": \"%s\", \"code\": %d, \"reply\": ",
		        rcpt_state[e->rcpt[i].state], e->rcpt[i].code);
		if (e->rcpt[i].reply)
			json_str(o, e->rcpt[i].reply);
		else
			fputs("null", o);
		fputc('}', o);
	}
	fprintf(o, "], \"size\": %" PRIu64 ", \"created\": %" PRId64 ", \"next_attempt\": %" PRId64
	        ", \"attempts\": %u, \"message_id\": ", e->size, e->created, e->next, e->attempts);
	json_str(o, e->msgid);
	fputs(", \"last_error\": ", o);
	json_str(o, e->error);
	fprintf(o, ", \"last_code\": %d, \"sent_unknown\": %s, \"cancelled\": %s", e->error_code,
	        e->inflight ? "true" : "false", e->cancelled ? "true" : "false");
	if (held(e, now))
		fprintf(o, ", \"held\": true, \"hold_until\": %" PRId64 "}", e->next);
	else
		fputs(", \"held\": false, \"hold_until\": null}", o);
}

static void print_text(FILE *o, const struct ba_outbox_entry *e, int64_t now)
{
	char age[32], next[48];
	fmt_age(age, sizeof(age), now - e->created);
	if (e->next <= now)
		snprintf(next, sizeof(next), "now");
	else {
		char in[24];
		fmt_age(in, sizeof(in), e->next - now);
		snprintf(next, sizeof(next), "in %s%s", in, held(e, now) ? " (held)" : "");
	}
	if (e->inflight)
		snprintf(next, sizeof(next), "never (sent-unknown: retry to send again)");
	else if (e->cancelled)
		snprintf(next, sizeof(next), "never (cancelled: retry to send)");
	fprintf(o, "%s  age %s  %" PRIu64 " bytes  attempts %u  next attempt %s\n", e->id, age,
	        e->size, e->attempts, next);
	fprintf(o, "  from <%s>  account %s\n", e->from, e->account);
	for (size_t i = 0; i < e->nrcpt; i++)
		fprintf(o, "  to <%s>%s%s%s\n", e->rcpt[i].addr,
		        e->rcpt[i].state == BA_OUTBOX_RCPT_SENT     ? " (sent)"
		        : e->rcpt[i].state == BA_OUTBOX_RCPT_FAILED ? " (failed)"
		                                                    : "",
		        e->rcpt[i].reply && e->rcpt[i].state != BA_OUTBOX_RCPT_SENT ? ": " : "",
		        e->rcpt[i].reply && e->rcpt[i].state != BA_OUTBOX_RCPT_SENT ? e->rcpt[i].reply
		                                                                    : "");
	if (e->error)
		fprintf(o, "  last error: %s\n", e->error);
}

/* Loads the configuration; for listing, a missing one means the default outbox. */
static int load_cfg(ba_config **cfg, const char *file, int optional, struct ba_err *err)
{
	*cfg = NULL;
	if (ba_submit_config(cfg, file, err) == 0)
		return 0;
	if (optional && !file && err->code == EX_CONFIG &&
	    strstr(err->text, "no configuration file found")) {
		ba_err_clear(err);
		return 0;
	}
	return -1;
}

int cli_outbox_list(const char *config, int json, int mailq)
{
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	char **dirs = NULL;
	size_t ndirs = 0, total = 0;
	int code = 0;
	if (load_cfg(&cfg, config, 1, &err) < 0 || outbox_dirs(&dirs, &ndirs, cfg, NULL, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	int64_t now = (int64_t)time(NULL);
	if (json)
		fputc('[', stdout);
	for (size_t i = 0; i < ndirs; i++) {
		struct stat st;
		if (stat(dirs[i], &st) < 0 && errno == ENOENT)
			continue; /* nothing was ever queued there: do not create it for a look */
		ba_outbox *ob;
		struct ba_log log;
		cli_log_stderr_init(&log, 0);
		struct ba_outbox_entry *v;
		size_t n;
		if (ba_outbox_open(&ob, dirs[i], &log, &err) < 0) {
			code = cli_fail(&err);
			continue;
		}
		if (ba_outbox_list(ob, &v, &n, &err) < 0) {
			code = cli_fail(&err);
			ba_outbox_free(ob);
			continue;
		}
		for (size_t k = 0; k < n; k++) {
			if (json)
				print_json(stdout, &v[k], dirs[i], total == 0, now);
			else
				print_text(stdout, &v[k], now);
			total++;
		}
		ba_outbox_list_free(v, n);
		ba_outbox_free(ob);
	}
	if (json)
		fputs(total ? "\n]\n" : "]\n", stdout);
	else if (!total)
		fputs(mailq ? "Mail queue is empty\n" : "The outbox is empty\n", stdout);
	else
		printf("-- %zu message%s queued\n", total, total == 1 ? "" : "s");
out:
	cli_outbox_free_dirs(dirs, ndirs);
	ba_config_free(cfg);
	return code;
}

/* ---- one entry ---------------------------------------------------------- */

enum one_op { ONE_SHOW, ONE_RETRY, ONE_RM };

static int one(const char *config, const char *id, enum one_op op)
{
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	char **dirs = NULL;
	size_t ndirs = 0;
	int code = 0;
	if (load_cfg(&cfg, config, 1, &err) < 0 || outbox_dirs(&dirs, &ndirs, cfg, NULL, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	code = EX_NOINPUT;
	for (size_t i = 0; i < ndirs; i++) {
		ba_outbox *ob;
		struct ba_log log;
		cli_log_stderr_init(&log, 0);
		if (ba_outbox_open(&ob, dirs[i], &log, &err) < 0) {
			code = cli_fail(&err);
			continue;
		}
		struct ba_outbox_entry e;
		int failed = 0, mfd = -1;
		int rc = ba_outbox_get(ob, id, &e, &failed, op == ONE_SHOW ? &mfd : NULL, &err);
		if (rc == 0) {
			if (op == ONE_SHOW) {
				print_text(stdout, &e, (int64_t)time(NULL));
				if (failed)
					printf("  failed: kept in %s/failed\n", dirs[i]);
				if (e.msgid)
					printf("  message-id %s\n", e.msgid);
				printf("\n");
				fflush(stdout);
				char buf[65536];
				ssize_t k;
				while ((k = read(mfd, buf, sizeof(buf))) > 0 && fwrite(buf, 1, (size_t)k, stdout))
					;
				close(mfd);
				code = 0;
			} else {
				rc = op == ONE_RETRY ? ba_outbox_retry(ob, id, &err)
				                     : ba_outbox_remove(ob, id, &err);
				code = rc == 0 ? 0 : cli_fail(&err);
			}
			ba_outbox_entry_release(&e);
		} else if (err.code != EX_NOINPUT) {
			code = cli_fail(&err);
		}
		ba_outbox_free(ob);
		if (rc == 0 || err.code != EX_NOINPUT)
			break;
	}
	if (code == EX_NOINPUT)
		fprintf(stderr, "%s: outbox: no entry '%s'\n", cli_progname, id);
out:
	cli_outbox_free_dirs(dirs, ndirs);
	ba_config_free(cfg);
	return code;
}

/* ---- bluearrow outbox --------------------------------------------------- */

int cli_cmd_outbox(int argc, char **argv)
{
	const char *config = NULL, *account = NULL;
	int json = 0, verbose = 0;
	const char **args = calloc((size_t)argc + 1, sizeof(*args));
	size_t nargs = 0;
	if (!args)
		return EX_OSERR;
	int code = 0;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--json") == 0) {
			json = 1;
		} else if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
			verbose = 1;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			free(args);
			return cli_print_usage(OB);
		} else if (strcmp(s, "-C") == 0 || strcmp(s, "--file") == 0 || strcmp(s, "-a") == 0 ||
		           strcmp(s, "--account") == 0) {
			if (i + 1 >= argc) {
				code = cli_usage_error(OB, "option %s needs a value", s);
				goto out;
			}
			*(s[1] == 'C' || s[2] == 'f' ? &config : &account) = argv[++i];
		} else if (s[0] == '-' && s[1]) {
			code = cli_usage_error(OB, "unknown option '%s'", s);
			goto out;
		} else {
			args[nargs++] = s;
		}
	}
	const char *sub = nargs ? args[0] : "list";
	if (strcmp(sub, "list") == 0 && nargs <= 1) {
		code = cli_outbox_list(config, json, 0);
	} else if (strcmp(sub, "flush") == 0) {
		struct cli_flush f;
		memset(&f, 0, sizeof(f));
		f.config = config;
		f.account = account;
		f.ids = nargs > 1 ? args + 1 : NULL;
		f.nids = nargs > 1 ? nargs - 1 : 0;
		f.verbose = verbose;
		code = cli_outbox_flush(&f);
	} else if ((strcmp(sub, "show") == 0 || strcmp(sub, "retry") == 0 ||
	            strcmp(sub, "rm") == 0) && nargs == 2) {
		code = one(config, args[1], sub[0] == 's' ? ONE_SHOW : sub[0] == 'r' && sub[1] == 'e'
		                                                  ? ONE_RETRY : ONE_RM);
	} else {
		code = cli_usage_error(OB, "expected list, show ID, flush [ID...], retry ID or rm ID");
	}
out:
	free(args);
	return code;
}
