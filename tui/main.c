/* tui/main.c - bluearrow-tui: start-up, the event loop, the frame around every screen
 *
 * One loop polls standard input, the worker's descriptor and a pipe the
 * signal handlers write to (SIGWINCH, SIGHUP, SIGTERM, SIGINT), so the UI
 * never waits for anything else: delivery is the worker's.  Keys are read
 * only when they are typed and handled at once, in order; nothing typed
 * while a send runs is kept and replayed later.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sysexits.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/version.h"
#include "tui.h"

#define MIN_COLS 20
#define MIN_ROWS 5

static int sigpipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	if (write(sigpipe[1], &c, 1) < 0) {
		/* the pipe is full: a wake-up is pending anyway */
	}
	errno = saved;
}

int64_t tui_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tui_message(struct tui *t, int error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof t->msg, fmt, ap);
	va_end(ap);
	t->msg_error = error;
}

void tui_error(struct tui *t, const struct ba_err *err)
{
	tui_message(t, 1, "%s", err->text[0] ? err->text : "failed");
}

void tui_refresh_outbox(struct tui *t)
{
	struct ba_err err = BA_ERR_INIT;
	struct tui_entry *v;
	size_t n;
	if (!t->worker)
		return;
	tui_worker_drain(t->worker);
	if (tui_worker_snapshot(t->worker, &v, &n, &err) < 0) {
		tui_error(t, &err);
		return;
	}
	tui_worker_snapshot_free(t->ent, t->nent);
	t->ent = v;
	t->nent = n;
}

/* ---- the frame ------------------------------------------------------------------ */

static enum tui_menu menu_of(enum tui_screen s)
{
	switch (s) {
	case SCR_COMPOSE: return MENU_COMPOSE;
	case SCR_OUTBOX: return MENU_OUTBOX;
	case SCR_DRAFTS: return MENU_DRAFTS;
	default: return MENU_PAGER;
	}
}

static void help_line(struct tui *t, int cols)
{
	static const enum tui_func compose[] = { F_SEND, F_EDIT_TO, F_EDIT_SUBJECT, F_EDIT_BODY,
		                                 F_ATTACH, F_PREVIEW, F_OUTBOX, F_QUIT, F_HELP, F_NONE };
	static const enum tui_func outbox[] = { F_CANCEL, F_RETRY, F_DELETE, F_VIEW, F_REOPEN,
		                                F_ACK, F_COMPOSE, F_HELP, F_NONE };
	static const enum tui_func drafts[] = { F_RECALL, F_DELETE, F_COMPOSE, F_HELP, F_NONE };
	static const enum tui_func pager[] = { F_QUIT, F_DOWN, F_PAGE_DOWN, F_NONE };
	static const char *const shortname[F_NFUNCS] = {
		[F_SEND] = "Send", [F_EDIT_TO] = "To", [F_EDIT_SUBJECT] = "Subj", [F_EDIT_BODY] = "Body",
		[F_ATTACH] = "Attach", [F_PREVIEW] = "Preview", [F_OUTBOX] = "Outbox", [F_QUIT] = "Quit",
		[F_HELP] = "Help", [F_CANCEL] = "Cancel", [F_RETRY] = "Retry", [F_DELETE] = "Del",
		[F_VIEW] = "View", [F_REOPEN] = "Reopen", [F_ACK] = "Ack", [F_COMPOSE] = "Compose",
		[F_RECALL] = "Recall", [F_DOWN] = "Down", [F_PAGE_DOWN] = "Page",
	};
	enum tui_menu m = menu_of(t->screen);
	const enum tui_func *fs = m == MENU_COMPOSE ? compose : m == MENU_OUTBOX ? outbox :
	                          m == MENU_DRAFTS ? drafts : pager;
	struct ba_buf b = BA_BUF_INIT;
	if (t->screen == SCR_EDITOR) {
		ba_buf_addstr(&b, "^X:Done  (built-in editor; set $EDITOR for yours)");
	} else {
		for (size_t i = 0; fs[i] != F_NONE; i++) {
			char k[32];
			ba_buf_addf(&b, "%s%s:%s", i ? "  " : "", tui_func_key(&t->conf, m, fs[i], k, sizeof k),
			            shortname[fs[i]]);
		}
	}
	tui_attr(TA_TITLE);
	tui_put_pad(0, 0, cols, ba_buf_str(&b));
	tui_attr(TA_NORMAL);
	ba_buf_release(&b);
}

static void status_line(struct tui *t, int y, int cols)
{
	struct ba_buf b = BA_BUF_INIT;
	static const char *const names[] = { "Compose", "Outbox", "Drafts", "", "Help", "Body" };
	const char *name = t->screen == SCR_PAGER ? t->pager_title : names[t->screen];
	size_t busy = 0, held = 0;
	const struct tui_entry *cur = NULL;
	for (size_t i = 0; i < t->nent; i++) {
		enum tui_state s = t->ent[i].state;
		busy += s == TUI_CONNECTING || s == TUI_SENDING || s == TUI_AWAITING || s == TUI_QUEUED;
		held += s == TUI_HELD;
		if (tui_shown_state(&t->ent[i]) == TUI_SENDING && !cur)
			cur = &t->ent[i];
	}
	ba_buf_addf(&b, "-- %s", name);
	if (t->screen == SCR_COMPOSE || t->screen == SCR_EDITOR)
		ba_buf_addstr(&b, t->dirty ? " [saving]" : t->draft_path ? " [saved]" : "");
	ba_buf_addf(&b, " -- outbox: %zu", t->nent);
	if (busy)
		ba_buf_addf(&b, ", %zu sending", busy);
	if (cur) {   /* the progress of the send under way, seen from every screen */
		uint64_t total = cur->total ? cur->total : cur->size;
		ba_buf_addf(&b, " %d%%", total ? (int)((cur->acked > total ? total : cur->acked) * 100 /
		                                       total) : 0);
	}
	if (held)
		ba_buf_addf(&b, ", %zu held", held);
	int errs = tui_unacked_errors(t);
	if (errs)
		ba_buf_addf(&b, ", %d ERROR%s", errs, errs == 1 ? "" : "S");
	ba_buf_addstr(&b, " --");
	tui_attr(TA_TITLE);
	tui_put_pad(y, 0, cols, ba_buf_str(&b));
	tui_attr(TA_NORMAL);
	ba_buf_release(&b);
}

static void draw(struct tui *t)
{
	int rows = LINES, cols = COLS;
	erase();
	if (rows < MIN_ROWS || cols < MIN_COLS) {
		/* as much of the sentence as fits, over as many rows as there are */
		const char *s = "terminal too small";
		size_t len = strlen(s), off = 0;
		for (int y = 0; y < rows && off < len; y++) {
			char line[64];
			size_t n = len - off < (size_t)cols ? len - off : (size_t)cols;
			if (n >= sizeof line)
				n = sizeof line - 1;
			memcpy(line, s + off, n);
			line[n] = '\0';
			tui_put(y, 0, cols, line);
			off += n;
		}
		move(0, 0);
		refresh();
		return;
	}
	help_line(t, cols);
	switch (t->screen) {
	case SCR_COMPOSE: tui_compose_draw(t, rows, cols); break;
	case SCR_OUTBOX: tui_outbox_draw(t, rows, cols); break;
	case SCR_DRAFTS: tui_drafts_draw(t, rows, cols); break;
	case SCR_PAGER: case SCR_HELP: tui_pager_draw(t, rows, cols); break;
	case SCR_EDITOR: break;
	}
	if (t->prompt != P_NONE && t->prompt != P_ASK && t->msg[0]) {
		/* the prompt has the last row: its messages (completions, errors) go above it */
		tui_attr(t->msg_error ? TA_ERROR : TA_TITLE);
		tui_put_pad(rows - 2, 0, cols, t->msg);
		tui_attr(TA_NORMAL);
	} else {
		status_line(t, rows - 2, cols);
	}
	tui_prompt_draw(t, rows - 1, cols);
	if (t->screen == SCR_EDITOR) {
		tui_editor_draw(t, rows, cols);   /* last: it places the cursor */
		curs_set(1);
	} else {
		curs_set(t->prompt != P_NONE && t->prompt != P_ASK ? 1 : 0);
		if (t->prompt == P_NONE || t->prompt == P_ASK)
			move(rows - 1, cols - 1);
	}
	refresh();
}

/* ---- keys ------------------------------------------------------------------------ */

static int sending(const struct tui *t)
{
	for (size_t i = 0; i < t->nent; i++)
		if (t->ent[i].state == TUI_CONNECTING || t->ent[i].state == TUI_SENDING ||
		    t->ent[i].state == TUI_AWAITING)
			return 1;
	return 0;
}

static void key(struct tui *t, int k)
{
	if (k == (TUI_FN | KEY_RESIZE))
		return;
	if (t->prompt != P_NONE) {
		tui_prompt_key(t, k);
	} else {
		if (t->screen != SCR_EDITOR && t->msg[0] && !t->msg_error)
			t->msg[0] = '\0';
		switch (t->screen) {
		case SCR_COMPOSE: tui_compose_key(t, k); break;
		case SCR_OUTBOX: tui_outbox_key(t, k); break;
		case SCR_DRAFTS: tui_drafts_key(t, k); break;
		case SCR_PAGER: case SCR_HELP: tui_pager_key(t, k); break;
		case SCR_EDITOR: tui_editor_key(t, k); break;
		}
	}
	/* leaving while a message is on the wire: ask (quitting cancels it, it stays queued) */
	if (t->quit == 1 && sending(t)) {
		t->quit = 0;
		t->prompt = P_ASK;
		t->ask = ASK_QUIT_SENDING;
		tui_message(t, 0, "A message is being sent; quitting cancels it (it stays in the outbox). "
		            "Quit? (y/n)");
	}
}

static void resize(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
		resize_term(ws.ws_row, ws.ws_col);
	clearok(curscr, TRUE);
}

/* ---- start-up ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: bluearrow-tui [-C CONFIG] [-F SETTINGS] [--drafts] [--version] [--help]\n"
	           "  -C FILE    the msmtprc-syntax configuration (accounts)\n"
	           "  -F FILE    the TUI's settings (keys, undo window, completion sources)\n"
	           "  --drafts   start in the drafts list\n"
	           "See bluearrow-tui(1).\n");
}

static int load_config(struct tui *t, const char *file, struct ba_err *err)
{
	struct ba_buf path = BA_BUF_INIT;
	unsigned flags = 0;
	int rc;
	if (file)
		return ba_config_load(&t->cfg, file, 0, err);
	if (ba_config_find_default_path(&path, &flags, err) < 0)
		return -1;
	rc = ba_config_load(&t->cfg, ba_buf_str(&path), flags, err);
	ba_buf_release(&path);
	return rc;
}

static void loop(struct tui *t)
{
	while (!t->quit) {
		draw(t);
		int timeout = -1;
		if (t->dirty)
			timeout = 250;
		for (size_t i = 0; i < t->nent; i++)
			if (t->ent[i].state == TUI_HELD || t->ent[i].state == TUI_SENDING ||
			    t->ent[i].state == TUI_AWAITING || t->ent[i].state == TUI_DEFERRED)
				timeout = (timeout < 0 || timeout > 500) ? 500 : timeout;
		struct pollfd p[3] = {
			{ STDIN_FILENO, POLLIN, 0 },
			{ sigpipe[0], POLLIN, 0 },
			{ t->worker ? tui_worker_fd(t->worker) : -1, POLLIN, 0 },
		};
		int n = poll(p, 3, timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			unsigned char sigs[16];
			ssize_t r = read(sigpipe[0], sigs, sizeof sigs);
			for (ssize_t i = 0; i < r; i++) {
				if (sigs[i] == SIGWINCH)
					resize();
				else if (sigs[i] == SIGHUP || sigs[i] == SIGTERM)
					t->quit = 3;
			}
		}
		if (p[2].revents & POLLIN) {
			tui_refresh_outbox(t);
			tui_enqueue_check(t, 0);
		}
		if (p[0].revents & (POLLHUP | POLLERR) && !(p[0].revents & POLLIN))
			t->quit = 3;   /* the terminal is gone: like SIGHUP */
		wint_t wc;
		int r;
		while (!t->quit && (r = get_wch(&wc)) != ERR) {
			key(t, r == KEY_CODE_YES ? (int)(TUI_FN | (int)wc) : (int)wc);
			tui_compose_autosave(t, 0);
		}
		tui_compose_autosave(t, 0);
		struct ba_err err = BA_ERR_INIT;
		if (tui_saver_error(t->saver, &err) < 0)
			tui_error(t, &err);
		if (t->undo_id[0] && tui_now_ms() >= t->undo_until_ms)
			t->undo_id[0] = '\0';
	}
	/* SIGHUP, SIGTERM, a lost terminal: the composition as it is now, on disk */
	tui_compose_autosave(t, 1);
}

int main(int argc, char **argv)
{
	const char *cfg_file = NULL, *set_file = NULL;
	int start_drafts = 0;
	struct ba_err err = BA_ERR_INIT;
	struct tui t;
	memset(&t, 0, sizeof t);
	setlocale(LC_ALL, "");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-C") || !strcmp(a, "-F")) && i + 1 < argc)
			*(a[1] == 'C' ? &cfg_file : &set_file) = argv[++i];
		else if (!strncmp(a, "--config=", 9))
			cfg_file = a + 9;
		else if (!strcmp(a, "--drafts"))
			start_drafts = 1;
		else if (!strcmp(a, "--version")) {
			printf("bluearrow-tui %s\n", BA_VERSION);
			return 0;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "bluearrow-tui: unknown option '%s'\n", a);
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "bluearrow-tui: standard input and output must be a terminal\n");
		return EX_USAGE;
	}
	if (tui_conf_load(&t.conf, set_file, &err) < 0 || load_config(&t, cfg_file, &err) < 0) {
		fprintf(stderr, "bluearrow-tui: %s\n", err.text);
		tui_conf_release(&t.conf);
		return err.code ? err.code : EX_SOFTWARE;
	}
	if (tui_saver_start(&t.saver) < 0)
		t.saver = NULL;   /* saves are then made in this thread */
	struct tui_worker_opts wo = { .cfg = t.cfg, .retry_s = t.conf.retry_seconds };
	if (tui_worker_start(&t.worker, &wo, &err) < 0) {
		/* composing still works: drafts are saved; sending says why it cannot */
		t.worker = NULL;
	}
	if (pipe(sigpipe) < 0) {
		fprintf(stderr, "bluearrow-tui: pipe: %s\n", strerror(errno));
		return EX_OSERR;
	}
	fcntl(sigpipe[0], F_SETFL, O_NONBLOCK);
	fcntl(sigpipe[1], F_SETFL, O_NONBLOCK);
	fcntl(sigpipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(sigpipe[1], F_SETFD, FD_CLOEXEC);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);   /* before initscr: ours, not ncurses' */
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!getenv("ESCDELAY"))
		set_escdelay(25);
	initscr();
	raw();   /* ^C, ^Z, ^S are keys: no signal interrupts a send or replays a key */
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	tui_draw_init(t.conf.color);
	ba_buf_init(&t.ed, 0);
	tui_compose_new(&t);
	tui_refresh_outbox(&t);
	if (!t.worker)
		tui_message(&t, 1, "outbox unavailable: %s", err.text);
	tui_drafts_load(&t);
	if (t.ndrafts || start_drafts) {
		t.screen = SCR_DRAFTS;
		if (t.ndrafts)
			tui_message(&t, 0, "%zu draft%s saved before: Enter recalls the selected one, "
			            "m starts a new message", t.ndrafts, t.ndrafts == 1 ? "" : "s");
	}
	loop(&t);
	int code = 0;
	endwin();
	tui_enqueue_check(&t, 1); /* a message being written is finished, its draft dropped */
	tui_worker_stop(t.worker);
	tui_saver_stop(t.saver);
	if (t.quit == 3)
		code = 128 + SIGHUP;
	tui_worker_snapshot_free(t.ent, t.nent);
	ba_draft_free(t.d);
	free(t.draft_path);
	free(t.prompt_orig);
	tui_line_release(&t.line);
	tui_matches_release(&t.matches);
	ba_draft_list_free(t.drafts, t.ndrafts);
	free(t.pager_text);
	ba_buf_release(&t.ed);
	for (size_t i = 0; i < t.nundo; i++) {
		for (size_t j = 0; j < t.undo[i].n; j++) {
			free(t.undo[i].path[j]);
			free(t.undo[i].type[j]);
			free(t.undo[i].name[j]);
		}
		free(t.undo[i].path);
		free(t.undo[i].type);
		free(t.undo[i].name);
	}
	free(t.undo);
	ba_config_free(t.cfg);
	tui_conf_release(&t.conf);
	return code;
}
