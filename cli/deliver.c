/* cli/deliver.c - a given message submitted; the progress bar and the password prompt (see deliver.h) */
#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/io.h"
#include "bluearrow/msg_read.h"
#include "bluearrow/outbox.h"
#include "cli.h"
#include "outbox_cmd.h"
#include "output.h"

/* A message this large (octets on the wire) gets a progress bar on a terminal. */
#define PROGRESS_MIN (4u << 20)
#define PROGRESS_EVERY_MS 100

struct progress {
	int64_t t0, last;
	int shown;
};

static void fmt_size(char *out, size_t n, double b)
{
	if (b >= 1024.0 * 1024 * 1024)
		snprintf(out, n, "%.1f GB", b / (1024.0 * 1024 * 1024));
	else if (b >= 1024.0 * 1024)
		snprintf(out, n, "%.1f MB", b / (1024.0 * 1024));
	else
		snprintf(out, n, "%.0f kB", b / 1024.0);
}

/* One line "  45%  9.0 MB / 20.0 MB  3.1 MB/s  0:03 left", redrawn in place. */
static void progress_draw(struct progress *p, uint64_t sent, uint64_t total, int64_t now)
{
	if (total && sent > total)
		sent = total;
	double secs = (double)(now - p->t0) / 1000.0;
	double rate = secs > 0.05 ? (double)sent / secs : 0.0;
	char s[32], t[32], r[32], left[32] = "";
	fmt_size(s, sizeof(s), (double)sent);
	fmt_size(t, sizeof(t), (double)total);
	fmt_size(r, sizeof(r), rate);
	if (rate > 0 && sent < total) {
		unsigned long rem = (unsigned long)((double)(total - sent) / rate + 0.5);
		snprintf(left, sizeof(left), "  %lu:%02lu left", rem / 60, rem % 60);
	}
	unsigned pct = total ? (unsigned)(sent * 100 / total) : 100;
	fprintf(stderr, "\r%3u%%  %s / %s  %s/s%s\033[K", pct, s, t, r, left);
	fflush(stderr);
	p->shown = 1;
	p->last = now;
}

/* the bar shows what the server has acknowledged, not what was written (the socket buffers) */
static void progress_cb(void *ctx, uint64_t sent, uint64_t acked, uint64_t total)
{
	struct progress *p = ctx;
	int64_t now = ba_now_ms();
	(void)sent;
	if (p->shown && now - p->last < PROGRESS_EVERY_MS)
		return;
	progress_draw(p, acked, total, now);
}

/* After the send: the bar at 100% when it went through, and the newline that ends it. */
static void progress_finish(struct progress *p, uint64_t total, int ok)
{
	if (ok)
		progress_draw(p, total, total, ba_now_ms());
	if (p->shown)
		fputc('\n', stderr);
}

/* The terminal's settings while echo is off, restored if a signal ends the program there. */
static struct termios tty_saved;
static volatile sig_atomic_t tty_fd = -1;
static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

static void tty_restore_and_die(int sig)
{
	if (tty_fd >= 0)
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * The password prompt, as msmtp's: on the controlling terminal (/dev/tty),
 * without echo; no terminal, no prompt.
 */
static int ask_password(void *ctx, const char *user, const char *host, struct ba_buf *out,
                        struct ba_err *err)
{
	(void)ctx;
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return ba_err_set(err, EX_CONFIG, "auth is on but no password is configured for user "
		                  "'%s' at %s, and there is no terminal to ask for one: set password "
		                  "or passwordeval in the account, or add a netrc entry", user, host);
	struct termios quiet;
	struct sigaction sa, old_sa[sizeof(tty_signals) / sizeof(tty_signals[0])];
	int restore = tcgetattr(fd, &tty_saved) == 0;
	if (restore) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = tty_restore_and_die;
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < sizeof(tty_signals) / sizeof(tty_signals[0]); i++)
			sigaction(tty_signals[i], &sa, &old_sa[i]);
		tty_fd = fd;
		quiet = tty_saved;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	char prompt[600];
	int n = snprintf(prompt, sizeof(prompt), "password for %s at %s: ", user, host);
	ssize_t w = n > 0 ? write(fd, prompt, (size_t)n < sizeof(prompt) ? (size_t)n
	                                                      : sizeof(prompt) - 1) : 0;
	int rc = 0;
	for (;;) {
		char c;
		ssize_t k = read(fd, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = ba_err_set(err, EX_IOERR, "cannot read the password from the terminal: %s",
			                strerror(errno));
			break;
		}
		if (k == 0 || c == '\n' || c == '\r')
			break;
		ba_buf_addch(out, c);
		c = 0;
	}
	if (restore) {
		tcsetattr(fd, TCSAFLUSH, &tty_saved);
		tty_fd = -1;
		for (size_t i = 0; i < sizeof(tty_signals) / sizeof(tty_signals[0]); i++)
			sigaction(tty_signals[i], &old_sa[i], NULL);
	}
	w = write(fd, "\n", 1); /* the user's Enter was not echoed */
	(void)w;
	close(fd);
	if (rc == 0 && ba_buf_failed(out))
		rc = ba_err_set(err, EX_OSERR, "out of memory");
	if (rc < 0)
		ba_buf_release_secret(out);
	return rc;
}

int cli_submit_run(struct ba_submit *sub, const struct cli_send_opts *so)
{
	struct ba_err err = BA_ERR_INIT;
	return cli_submit_run_err(sub, so, &err, NULL);
}

int cli_submit_run_err(struct ba_submit *sub, const struct cli_send_opts *so,
                       struct ba_err *errp, unsigned char *pending)
{
	struct ba_err err = BA_ERR_INIT;
	if (so->dry_run) {
		struct ba_buf d = BA_BUF_INIT;
		int rc = ba_submit_describe(&d, sub, &err);
		if (rc == 0)
			fputs(ba_buf_str(&d), stdout);
		ba_buf_release(&d);
		return rc < 0 ? cli_fail(&err) : 0;
	}
	struct ba_log log;
	cli_log_stderr_init(&log, so->verbose);
	sub->log = &log;
	sub->ask_password = ask_password;
	uint64_t total = ba_spool_wire_size(sub->spool);
	struct progress p;
	memset(&p, 0, sizeof(p));
	int show = so->progress > 0 ||
	           (so->progress < 0 && total > PROGRESS_MIN && isatty(STDERR_FILENO));
	if (show) {
		p.t0 = ba_now_ms();
		sub->progress = progress_cb;
		sub->progress_ctx = &p;
	}
	struct ba_submit_result res;
	int rc = ba_submit_send(&res, sub, &err);
	if (show)
		progress_finish(&p, total, rc == 0);
	int code = cli_report(sub, &res, rc, &err);
	for (size_t i = 0; pending && i < sub->nrcpt; i++) {
		const struct ba_result *r = res.result;
		/* without per-recipient replies (the route failed) every recipient is still to do */
		pending[i] = !r || i >= r->nrcpts ||
		             (!r->rcpts[i].accepted && r->rcpts[i].code < 500);
	}
	ba_submit_result_release(&res);
	sub->log = NULL;
	*errp = err;
	return code;
}

/* *down: set when a direct attempt failed temporarily (the route is down for now) */
static int submit_or_queue(struct ba_submit *sub, int delivery, const char *config,
                           const struct cli_send_opts *so, int *down)
{
	const struct ba_account *acc = sub->acc;
	int mode = delivery ? delivery : acc->queue == BA_QUEUE_ALWAYS ? 'b' : 'i';
	struct ba_err err = BA_ERR_INIT;
	char id[BA_OUTBOX_ID_MAX];
	/* send later: held in the outbox, withdrawable with `outbox rm` until then */
	int64_t next = so->at ? so->at : acc->queue_delay > 0 ? (int64_t)time(NULL) + acc->queue_delay
	                                                      : 0;
	if (next)
		mode = 'q';
	if (so->dry_run || mode == 'i') {
		unsigned char *pending = calloc(sub->nrcpt ? sub->nrcpt : 1, 1);
		const char **left = calloc(sub->nrcpt ? sub->nrcpt : 1, sizeof(*left));
		if (!pending || !left) {
			free(pending);
			free(left);
			fprintf(stderr, "%s: out of memory\n", cli_progname);
			return EX_OSERR;
		}
		int code = cli_submit_run_err(sub, so, &err, pending);
		*down = code != 0 && ba_outbox_temporary(&err);
		if (code == 0 || so->dry_run || acc->queue == BA_QUEUE_OFF || !*down) {
			free(pending);
			free(left);
			return code;
		}
		/* only the recipients still to deliver (direct delivery may have reached others) */
		struct ba_submit q = *sub;
		q.rcpt = left;
		q.nrcpt = 0;
		for (size_t i = 0; i < sub->nrcpt; i++)
			if (pending[i])
				left[q.nrcpt++] = sub->rcpt[i];
		struct ba_err qerr = BA_ERR_INIT;
		int queued = cli_outbox_enqueue(&q, &err, 0, id, sizeof(id), NULL, &qerr);
		free(pending);
		free(left);
		if (queued < 0) {
			fprintf(stderr, "%s: the message could not be queued either: %s\n",
			        cli_progname, qerr.text);
			return code;
		}
		fprintf(stderr, "%s: queued as %s; 'bluearrow sendmail -q' or 'bluearrow outbox "
		        "flush' sends it\n", cli_progname, id);
		return 0;
	}
	int hold = -1;
	if (cli_outbox_enqueue(sub, NULL, next, id, sizeof(id), mode == 'b' ? &hold : NULL,
	                       &err) < 0) {
		fprintf(stderr, "%s: cannot queue the message: %s\n", cli_progname, err.text);
		return err.code ? err.code : EX_SOFTWARE;
	}
	if (so->at)
		printf("%s\n", id);
	if (mode == 'b') {
		const char *ids[1] = { id };
		struct cli_flush f;
		memset(&f, 0, sizeof(f));
		f.config = config;
		f.ids = ids;
		f.nids = 1;
		f.hold_fd = hold;
		if (cli_outbox_background(&f) < 0)
			fprintf(stderr, "%s: queued as %s, but no process could be started to send it: "
			        "%s\n", cli_progname, id, strerror(errno));
		close(hold);
	}
	return 0;
}

int cli_submit_or_queue(struct ba_submit *sub, int delivery, const char *config,
                        const struct cli_send_opts *so)
{
	int down = 0;
	int code = submit_or_queue(sub, delivery, config, so, &down);
	/*
	 * The due entries of this run's account, never waited for (the server
	 * just answered for that account, not for the others sharing the
	 * outbox); not when this run found the server unreachable (they would
	 * only be deferred again), nor for -odq, which asks for no delivery now.
	 */
	if (sub->acc->queue_flush_on_run && !so->dry_run && !down && delivery != 'q') {
		struct cli_flush f;
		memset(&f, 0, sizeof(f));
		f.config = config;
		f.account = sub->acc->name;
		f.exclusive = 1;
		cli_outbox_background(&f);
	}
	return code;
}

int cli_deliver_message(const struct cli_message *a, const struct cli_send_opts *so)
{
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	struct ba_submit_input in;
	char **rcpt = NULL;
	size_t nrcpt = 0;
	int code;
	memset(&in, 0, sizeof(in));
	if (ba_submit_config_kv(&cfg, a->config, a->kv, a->nkv, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	/* the header first: the account (also by the From field) and the sender come from it */
	struct ba_submit_read_req rq;
	memset(&rq, 0, sizeof(rq));
	rq.account = a->account;
	rq.from = a->from;
	rq.full_name = a->name;
	rq.read_envelope_from = a->read_env_from;
	rq.flags = (a->i ? BA_SUBMIT_READ_DOTS_ARE_DATA : 0) |
	           (a->t ? BA_SUBMIT_READ_RCPT_FROM_HEADERS : 0) |
	           /* a "." typed at a terminal ends the input there, as it always did */
	           (isatty(a->in_fd) ? BA_SUBMIT_READ_DOT_NO_COUNT : 0);
	rq.in_fd = a->in_fd; /* a message given as a file is not copied */
	struct ba_fd_reader in_r;
	ba_fd_reader_init(&in_r, a->in_fd, a->in_name);
	if (ba_submit_read(&in, cfg, &in_r.base, &rq, &err) < 0) {
		code = cli_fail(&err);
		goto out;
	}
	if (in.msg.dropped_after_dot) /* sendmail's rule ends the message there: never in silence */
		fprintf(stderr, "%s: warning: %llu bytes after a line '.' were not sent; use -i\n",
		        cli_progname, (unsigned long long)in.msg.dropped_after_dot);
	if (ba_submit_recipients(&rcpt, &nrcpt, in.acc, a->rcpt, a->nrcpt,
	                         (const char *const *)in.msg.rcpt, in.msg.nrcpt, &err) < 0) {
		code = err.code == EX_USAGE ? cli_usage_error(a->cmd, "%s", err.text) : cli_fail(&err);
		goto out;
	}
	struct ba_submit sub;
	memset(&sub, 0, sizeof(sub));
	sub.acc = in.acc;
	sub.from = ba_buf_str(&in.from);
	sub.rcpt = (const char *const *)rcpt;
	sub.nrcpt = nrcpt;
	sub.spool = in.msg.spool;
	sub.notify = a->dsn_notify;
	sub.ret = a->dsn_ret;
	sub.envid = a->envid;
	sub.smtp_flags = a->smtp_flags;
	sub.repeat = a->repeat;
	sub.dropped_after_dot = in.msg.dropped_after_dot;
	code = cli_submit_or_queue(&sub, a->delivery, a->config, so);
out:
	ba_submit_recipients_free(rcpt, nrcpt);
	ba_submit_input_release(&in);
	ba_config_free(cfg);
	return code;
}
