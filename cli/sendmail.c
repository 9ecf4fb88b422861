/* cli/sendmail.c - the minimal sendmail personality: `bluearrow sendmail -C FILE [-f FROM] RCPT...`
 *
 * Reads the message on stdin into a spool (the first 1 MB in memory, the
 * rest in an unlinked temporary file, so nothing is visible on disk), scans
 * it on the way (size for SIZE=, 8-bit or not, lines over 998 octets), then
 * submits it through route + the SMTP engine (route re-encodes it to 7 bit
 * when the server lacks 8BITMIME or a line is too long).  Exit codes: see
 * man/bluearrow-sendmail.8 (the class of the error, sysexits.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bluearrow/config.h"
#include "bluearrow/io.h"
#include "bluearrow/log.h"
#include "bluearrow/route.h"
#include "bluearrow/smtp.h"
#include "cli.h"

#define SPOOL_MEM (1024 * 1024)
#define SPOOL_CHUNK 65536

struct spool {
	ba_reader base;
	unsigned char *mem;
	size_t memlen, off;
	int fd;          /* -1 until the message outgrows memory */
	uint64_t size;   /* bytes as they will travel (LF counted as CRLF) */
	int eight;       /* has 8-bit bytes */
	uint64_t line, long_line; /* current line; first line over 998 octets (0 = none) */
	size_t col;
	int cr;
};

static int spool_tmpfile(struct spool *sp, struct ba_err *err)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
#ifdef O_TMPFILE
	sp->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (sp->fd >= 0)
		return 0;
#endif
	char path[4096];
	snprintf(path, sizeof path, "%s/bluearrow-spool-XXXXXX", dir);
	sp->fd = mkstemp(path);
	if (sp->fd < 0)
		return ba_err_set(err, EX_CANTCREAT, "cannot create a spool file in '%s': %s", dir,
		                  strerror(errno));
	unlink(path);
	return 0;
}

static void spool_scan(struct spool *sp, const unsigned char *p, size_t n)
{
	sp->size += n;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == '\n') {
			if (!sp->cr)
				sp->size++;
			sp->col = 0;
			sp->line++;
			sp->cr = 0;
			continue;
		}
		if (sp->cr) { /* a bare CR becomes a line end */
			sp->size++;
			sp->col = 0;
			sp->line++;
		}
		sp->cr = c == '\r';
		if (sp->cr)
			continue;
		sp->eight |= c >= 0x80;
		if (++sp->col > 998 && !sp->long_line)
			sp->long_line = sp->line;
	}
}

static int spool_fill(struct spool *sp, int in, struct ba_err *err)
{
	unsigned char *buf = malloc(SPOOL_CHUNK);
	sp->mem = malloc(SPOOL_MEM);
	if (!buf || !sp->mem) {
		free(buf);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	sp->line = 1;
	for (;;) {
		ssize_t k = read(in, buf, SPOOL_CHUNK);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			free(buf);
			return ba_err_set(err, EX_IOERR, "cannot read the message from standard input: %s",
			                  strerror(errno));
		}
		if (k == 0)
			break;
		spool_scan(sp, buf, (size_t)k);
		size_t n = (size_t)k, m = 0;
		if (sp->memlen < SPOOL_MEM) {
			m = SPOOL_MEM - sp->memlen < n ? SPOOL_MEM - sp->memlen : n;
			memcpy(sp->mem + sp->memlen, buf, m);
			sp->memlen += m;
		}
		if (m < n) {
			if (sp->fd < 0 && spool_tmpfile(sp, err) < 0) {
				free(buf);
				return -1;
			}
			for (size_t w = m; w < n;) {
				ssize_t x = write(sp->fd, buf + w, n - w);
				if (x < 0 && errno == EINTR)
					continue;
				if (x < 0) {
					free(buf);
					return ba_err_set(err, EX_IOERR, "cannot write the spool file: %s",
					                  strerror(errno));
				}
				w += (size_t)x;
			}
		}
	}
	free(buf);
	return 0;
}

static ssize_t spool_read(ba_reader *base, void *p, size_t n, struct ba_err *err)
{
	struct spool *sp = (struct spool *)base;
	if (sp->off < sp->memlen) {
		size_t k = sp->memlen - sp->off < n ? sp->memlen - sp->off : n;
		memcpy(p, sp->mem + sp->off, k);
		sp->off += k;
		return (ssize_t)k;
	}
	if (sp->fd < 0)
		return 0;
	for (;;) {
		ssize_t k = read(sp->fd, p, n);
		if (k >= 0)
			return k;
		if (errno != EINTR)
			return ba_err_set(err, EX_IOERR, "cannot read the spool file: %s", strerror(errno));
	}
}
static const struct ba_reader_ops spool_ops = { spool_read };

static int spool_rewind(struct spool *sp, struct ba_err *err)
{
	sp->off = 0;
	if (sp->fd >= 0 && lseek(sp->fd, 0, SEEK_SET) < 0)
		return ba_err_set(err, EX_IOERR, "cannot rewind the spool file: %s", strerror(errno));
	return 0;
}

static void log_stderr(void *ctx, enum ba_log_level level, const char *msg)
{
	(void)ctx;
	if (level >= BA_LOG_PROTO)
		fprintf(stderr, "%s\n", msg);
	else
		fprintf(stderr, "%s: %s%s\n", cli_progname,
		        level == BA_LOG_WARNING ? "warning: " : "", msg);
}

struct opts {
	const char *config, *from, *account;
	int verbose;
	long repeat;      /* hidden --ba-repeat N: N copies over one session (benchmarks) */
	unsigned flags;   /* hidden --ba-no-pipelining, --ba-no-chunking */
	char **rcpts;
	int nrcpts;
};

static int parse_args(struct opts *o, int argc, char **argv)
{
	int i = 1;
	o->repeat = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || !a[1])
			break;
		const char **val = NULL;
		if (strncmp(a, "-C", 2) == 0)
			val = &o->config;
		else if (strncmp(a, "-f", 2) == 0)
			val = &o->from;
		else if (strncmp(a, "-a", 2) == 0)
			val = &o->account;
		if (val) {
			if (a[2])
				*val = a + 2;
			else if (i + 1 < argc)
				*val = argv[++i];
			else
				return cli_usage_error("sendmail", "option '%s' needs a value", a);
		} else if (strcmp(a, "-v") == 0) {
			o->verbose = 1;
		} else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0) {
			/* a lone "." never ends our input (we read to EOF) */
		} else if (strcmp(a, "--ba-repeat") == 0 && i + 1 < argc) {
			o->repeat = strtol(argv[++i], NULL, 10);
		} else if (strcmp(a, "--ba-no-pipelining") == 0) {
			o->flags |= BA_SMTP_NO_PIPELINING;
		} else if (strcmp(a, "--ba-no-chunking") == 0) {
			o->flags |= BA_SMTP_NO_CHUNKING;
		} else {
			return cli_usage_error("sendmail", "unknown option '%s'", a);
		}
	}
	o->rcpts = argv + i;
	o->nrcpts = argc - i;
	if (o->nrcpts < 1)
		return cli_usage_error("sendmail", "no recipients given");
	if (o->repeat < 1)
		o->repeat = 1;
	return 0;
}

/* Prints the refused recipients of a partial delivery. */
static void report_refused(const struct ba_result *res)
{
	for (size_t i = 0; res && i < res->nrcpts; i++)
		if (!res->rcpts[i].accepted)
			fprintf(stderr, "%s: recipient '%s' refused: %d %s\n", cli_progname,
			        res->rcpts[i].addr, res->rcpts[i].code, res->rcpts[i].text);
}

static int submit(const struct opts *o, const struct ba_account *acc, const char *from,
                  struct spool *sp, const struct ba_log *log, struct ba_err *err)
{
	struct ba_route_opts ro = { log, o->flags };
	ba_route *r;
	if (ba_route_open(&r, acc, &ro, err) < 0)
		return -1;
	int rc = -1, utf8 = 0;
	struct ba_buf fromb = BA_BUF_INIT;
	struct ba_buf *rb = calloc((size_t)o->nrcpts, sizeof *rb);
	struct ba_rcpt *rc_ = calloc((size_t)o->nrcpts, sizeof *rc_);
	if (!rb || !rc_) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto out;
	}
	if (ba_route_addr(&fromb, &utf8, r, from, err) < 0)
		goto out;
	for (int i = 0; i < o->nrcpts; i++) {
		if (ba_route_addr(&rb[i], &utf8, r, o->rcpts[i], err) < 0)
			goto out;
		rc_[i].addr = ba_buf_str(&rb[i]);
		rc_[i].notify = acc->dsn_notify; /* same bits as enum ba_smtp_notify */
	}
	struct ba_envelope env = { 0 };
	env.from = ba_buf_str(&fromb);
	env.rcpts = rc_;
	env.nrcpts = (size_t)o->nrcpts;
	env.size = sp->size;
	env.body = sp->eight ? BA_BODY_8BITMIME : BA_BODY_7BIT;
	env.smtputf8 = utf8;
	env.ret = acc->dsn_return == BA_DSN_RET_FULL   ? BA_RET_FULL
	          : acc->dsn_return == BA_DSN_RET_HDRS ? BA_RET_HDRS
	                                               : BA_RET_NONE;
	for (long n = 0; n < o->repeat; n++) {
		struct ba_result *res = NULL;
		if (spool_rewind(sp, err) < 0)
			goto out;
		/* a line over 998 octets is re-encoded (quoted-printable), never sent */
		int s = ba_route_send(r, &env, &sp->base, sp->long_line != 0, &res, err);
		if (s == 0)
			report_refused(res);
		ba_result_free(res);
		if (s < 0)
			goto out;
	}
	rc = 0;
out:
	for (int i = 0; rb && i < o->nrcpts; i++)
		ba_buf_release(&rb[i]);
	free(rb);
	free(rc_);
	ba_buf_release(&fromb);
	ba_route_free(r);
	return rc;
}

int cmd_sendmail(int argc, char **argv);
int cmd_sendmail(int argc, char **argv)
{
	struct opts o = { 0 };
	int rc = parse_args(&o, argc, argv);
	if (rc)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	struct ba_err err = BA_ERR_INIT;
	struct ba_log log = { log_stderr, NULL, o.verbose ? BA_LOG_PROTO : BA_LOG_WARNING };
	ba_config *cfg = NULL;
	struct ba_buf path = BA_BUF_INIT, from = BA_BUF_INIT;
	struct spool sp = { .base = { &spool_ops }, .fd = -1 };
	rc = -1;
	unsigned flags = 0;
	if (o.config) {
		if (ba_config_load(&cfg, o.config, 0, &err) < 0)
			goto out;
	} else if (ba_config_find_default_path(&path, &flags, &err) < 0 ||
	           ba_config_load(&cfg, ba_buf_str(&path), flags, &err) < 0) {
		goto out;
	}
	const struct ba_account *acc = NULL;
	if (o.account)
		acc = ba_config_account(cfg, o.account, &err);
	else if (o.from && (acc = ba_config_account_by_from(cfg, o.from)) != NULL &&
	         ba_config_account_check(acc, &err) < 0)
		goto out;
	if (!acc && !o.account)
		acc = ba_config_account(cfg, NULL, &err);
	if (!acc)
		goto out;
	if (o.from && *o.from && acc->allow_from_override)
		ba_buf_addstr(&from, o.from);
	else if (ba_config_envelope_from(&from, acc, &err) < 0)
		goto out;
	if (!from.len) {
		ba_err_set(&err, EX_USAGE, "no envelope-from address: use -f or set 'from' in "
		                           "account '%s'", acc->name);
		goto out;
	}
	if (spool_fill(&sp, 0, &err) < 0)
		goto out;
	rc = submit(&o, acc, ba_buf_str(&from), &sp, &log, &err);
out:
	free(sp.mem);
	if (sp.fd >= 0)
		close(sp.fd);
	ba_buf_release(&path);
	ba_buf_release(&from);
	ba_config_free(cfg);
	return rc < 0 ? cli_fail(&err) : 0;
}
