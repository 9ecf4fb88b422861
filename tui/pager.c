/* tui/pager.c - the pager (preview, view, help) and the body editors
 *
 * The body is edited as mutt does it: with $VISUAL (else $EDITOR) on a
 * temporary file, after endwin() so the editor owns the terminal, and the
 * screen is refreshed afterwards.  When neither is set (or `set editor
 * builtin`), a small editor inside the TUI edits the text; every key is
 * written into the draft, so autosave covers it like any field.
 */
#include <curses.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wchar.h>

#include "tui.h"

void tui_pager_show(struct tui *t, const char *title, char *text, size_t len)
{
	free(t->pager_text);
	t->pager_text = text;
	t->pager_len = len;
	t->pager_top = 0;
	snprintf(t->pager_title, sizeof t->pager_title, "%s", title);
	if (t->screen != SCR_PAGER && t->screen != SCR_HELP)
		t->back = t->screen;
	t->screen = SCR_PAGER;
}

static size_t count_lines(const char *s, size_t n)
{
	size_t lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += s[i] == '\n';
	return lines + (n && s[n - 1] != '\n');
}

void tui_pager_draw(struct tui *t, int rows, int cols)
{
	const char *p = t->pager_text ? t->pager_text : "";
	const char *end = p + t->pager_len;
	size_t skip = t->pager_top;
	while (skip && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		p = nl ? nl + 1 : end;
		skip--;
	}
	for (int y = 1; y < rows - 2; y++) {
		if (p >= end) {
			move(y, 0);
			clrtoeol();
			continue;
		}
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line = strndup(p, n);
		tui_put_pad(y, 0, cols, line ? line : "");
		free(line);
		p = nl ? nl + 1 : end;
	}
}

void tui_pager_key(struct tui *t, int key)
{
	enum tui_func f = tui_key_func(&t->conf, MENU_PAGER, key);
	size_t lines = count_lines(t->pager_text ? t->pager_text : "", t->pager_len);
	size_t page = LINES > 4 ? (size_t)LINES - 4 : 1;
	switch (f) {
	case F_UP:
		if (t->pager_top)
			t->pager_top--;
		break;
	case F_DOWN:
		if (t->pager_top + 1 < lines)
			t->pager_top++;
		break;
	case F_PAGE_UP: t->pager_top = t->pager_top > page ? t->pager_top - page : 0; break;
	case F_PAGE_DOWN:
		if (t->pager_top + page < lines)
			t->pager_top += page;
		break;
	case F_TOP: t->pager_top = 0; break;
	case F_BOTTOM: t->pager_top = lines > page ? lines - page : 0; break;
	case F_QUIT:
		free(t->pager_text);
		t->pager_text = NULL;
		t->screen = t->back;
		break;
	default: break;
	}
}

struct help_ctx {
	struct ba_buf *b;
};

static void help_line(void *ctx, int key, enum tui_func f)
{
	struct help_ctx *h = ctx;
	char k[32];
	ba_buf_addf(h->b, "  %-12s %-18s %s\n", tui_key_name(key, k, sizeof k), tui_func_name(f),
	            tui_func_help(f));
}

void tui_help_show(struct tui *t, enum tui_menu m)
{
	static const char *const names[] = { "generic", "compose", "outbox", "drafts", "pager" };
	struct ba_buf b = BA_BUF_INIT;
	struct help_ctx h = { &b };
	ba_buf_addf(&b, "Keys of the %s screen (bind %s KEY FUNCTION in the settings file%s%s):\n\n",
	            names[m], names[m], t->conf.path ? " " : "", t->conf.path ? t->conf.path : "");
	tui_keys_each(&t->conf, m, help_line, &h);
	if (m == MENU_COMPOSE)
		ba_buf_addstr(&b, "\nIn a prompt: Tab completes (addresses, accounts, file names; again "
		                  "for the next), ^A ^E ^B ^F ^K ^U ^W edit, Enter accepts, Esc or ^G "
		                  "cancels.\nBuilt-in editor: ^X or Esc leaves it; the text is saved as "
		                  "you type.\n");
	if (m == MENU_OUTBOX)
		ba_buf_addstr(&b, "\nStates: held (undo window or send later), queued, connecting, "
		                  "sending (percent the server has acknowledged), awaiting reply, sent, "
		                  "deferred, failed, cancelled, sent-unknown (the connection was lost "
		                  "after the end of the data: retry asks first).\nErrors stay marked "
		                  "ERROR until acknowledged.\n");
	ba_buf_add(&b, "", 0);
	size_t len;
	char *text = ba_buf_detach(&b, &len);
	char title[64];
	snprintf(title, sizeof title, "Help: %s", names[m]);
	tui_pager_show(t, title, text, len);
	t->screen = SCR_PAGER;
}

/* ---- editors ---------------------------------------------------------------------- */

const char *tui_editor_cmd(const struct tui *t)
{
	const char *e = t->conf.editor;
	if (!e || !*e)
		e = getenv("VISUAL");
	if (!e || !*e)
		e = getenv("EDITOR");
	if (!e || !*e || strcmp(e, "builtin") == 0)
		return NULL;
	return e;
}

int tui_run_editor(struct tui *t, const char *cmd, const char *path)
{
	struct ba_buf line = BA_BUF_INIT;
	ba_buf_addf(&line, "%s \"$1\"", cmd);   /* as mutt: the command, then the file */
	if (ba_buf_failed(&line))
		return -1;
	def_prog_mode();
	endwin();
	struct sigaction ign, oint, oquit;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, &oint);
	sigaction(SIGQUIT, &ign, &oquit);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execl("/bin/sh", "sh", "-c", ba_buf_str(&line), "sh", path, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	sigaction(SIGINT, &oint, NULL);
	sigaction(SIGQUIT, &oquit, NULL);
	ba_buf_release(&line);
	reset_prog_mode();
	clearok(curscr, TRUE);
	refresh();
	if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		tui_message(t, 1, "editor '%s' failed (%s %d); the body is unchanged", cmd,
		            pid < 0 ? "cannot start" : WIFEXITED(st) ? "exit status" : "signal",
		            pid < 0 ? errno : WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -1;
	}
	return 0;
}

static int external(struct tui *t, const char *cmd)
{
	struct ba_err err = BA_ERR_INIT;
	if (ba_draft_body_file(t->d)) {   /* a body file is edited where it is */
		return tui_run_editor(t, cmd, ba_draft_body_file(t->d));
	}
	struct ba_buf path = BA_BUF_INIT;
	if (ba_draft_dir(&path, 1, &err) < 0) {
		tui_error(t, &err);
		return -1;
	}
	ba_buf_addstr(&path, "/edit-XXXXXX.txt");
	char *p = ba_buf_detach(&path, NULL);
	int fd = p ? mkstemps(p, 4) : -1;
	if (fd < 0) {
		tui_message(t, 1, "cannot create a file for the editor: %s", strerror(errno));
		free(p);
		return -1;
	}
	size_t n = 0;
	const char *body = ba_draft_body_text(t->d, &n);
	int ok = !n || write(fd, body, n) == (ssize_t)n;
	close(fd);
	if (ok && tui_run_editor(t, cmd, p) == 0) {
		struct ba_buf text = BA_BUF_INIT;
		fd = open(p, O_RDONLY | O_CLOEXEC);
		char tmp[65536];
		ssize_t r;
		while (fd >= 0 && (r = read(fd, tmp, sizeof tmp)) > 0)
			ba_buf_add(&text, tmp, (size_t)r);
		if (fd >= 0)
			close(fd);
		if (fd < 0 || ba_buf_failed(&text) ||
		    ba_draft_set_body_text(t->d, text.data, text.len, &err) < 0)
			tui_message(t, 1, "cannot read the edited body from '%s'", p);
		else
			t->dirty = t->touched = 1;
		ba_buf_release(&text);
	}
	unlink(p);
	free(p);
	return 0;
}

void tui_editor_start(struct tui *t)
{
	const char *cmd = tui_editor_cmd(t);
	if (cmd) {
		external(t, cmd);
		return;
	}
	if (ba_draft_body_file(t->d)) {
		tui_message(t, 1, "the body is the file '%s': set $EDITOR to edit it",
		            ba_draft_body_file(t->d));
		return;
	}
	size_t n = 0;
	const char *body = ba_draft_body_text(t->d, &n);
	ba_buf_reset(&t->ed);
	ba_buf_add(&t->ed, body ? body : "", n);
	ba_buf_add(&t->ed, "", 0);
	t->ed_cur = t->ed.len;
	t->ed_top = 0;
	t->back = t->screen;
	t->screen = SCR_EDITOR;
}

/* Length of the UTF-8 sequence before/at offset i. */
static size_t prev_len(const char *s, size_t i)
{
	size_t k = 1;
	while (k < i && k < 4 && ((unsigned char)s[i - k] & 0xc0) == 0x80)
		k++;
	return i ? k : 0;
}

static size_t next_len(const char *s, size_t i, size_t n)
{
	size_t k = 1;
	if (i >= n)
		return 0;
	while (i + k < n && k < 4 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
		k++;
	return k;
}

static size_t line_start(const char *s, size_t i)
{
	while (i && s[i - 1] != '\n')
		i--;
	return i;
}

/* The offset in the line at ls that is col characters in (or its end). */
static size_t at_col(const char *s, size_t n, size_t ls, size_t col)
{
	size_t i = ls;
	while (col-- && i < n && s[i] != '\n')
		i += next_len(s, i, n);
	return i;
}

static size_t chars(const char *s, size_t from, size_t to)
{
	size_t c = 0;
	for (size_t i = from; i < to; i += next_len(s, i, to))
		c++;
	return c;
}

static void ed_commit(struct tui *t)
{
	struct ba_err err = BA_ERR_INIT;
	if (ba_draft_set_body_text(t->d, t->ed.data, t->ed.len, &err) < 0)
		tui_error(t, &err);
	t->dirty = t->touched = 1;
}

void tui_editor_key(struct tui *t, int key)
{
	char *s = t->ed.data ? t->ed.data : (char *)"";
	size_t n = t->ed.len, c = t->ed_cur;
	switch (key) {
	case TUI_CTRL('x'):
	case 27:
		t->screen = t->back;
		tui_message(t, 0, "body saved in the draft");
		return;
	case TUI_FN | KEY_LEFT: t->ed_cur -= prev_len(s, c); return;
	case TUI_FN | KEY_RIGHT: t->ed_cur += next_len(s, c, n); return;
	case TUI_FN | KEY_HOME: case TUI_CTRL('a'): t->ed_cur = line_start(s, c); return;
	case TUI_FN | KEY_END: case TUI_CTRL('e'):
		while (t->ed_cur < n && s[t->ed_cur] != '\n')
			t->ed_cur++;
		return;
	case TUI_FN | KEY_UP: {
		size_t ls = line_start(s, c);
		if (!ls)
			return;
		size_t pls = line_start(s, ls - 1);
		t->ed_cur = at_col(s, n, pls, chars(s, ls, c));
		return;
	}
	case TUI_FN | KEY_DOWN: {
		size_t ls = line_start(s, c), e = c;
		while (e < n && s[e] != '\n')
			e++;
		if (e >= n)
			return;
		t->ed_cur = at_col(s, n, e + 1, chars(s, ls, c));
		return;
	}
	case TUI_FN | KEY_BACKSPACE: case 127: case TUI_CTRL('h'): {
		size_t k = prev_len(s, c);
		if (!k)
			return;
		memmove(s + c - k, s + c, n - c + 1);
		t->ed.len -= k;
		t->ed_cur -= k;
		ed_commit(t);
		return;
	}
	case TUI_FN | KEY_DC: case TUI_CTRL('d'): {
		size_t k = next_len(s, c, n);
		if (!k)
			return;
		memmove(s + c, s + c + k, n - c - k + 1);
		t->ed.len -= k;
		ed_commit(t);
		return;
	}
	}
	if (key == '\r' || key == (TUI_FN | KEY_ENTER))
		key = '\n';
	if ((key & TUI_FN) || (key < 32 && key != '\n' && key != '\t'))
		return;
	char mb[MB_LEN_MAX];
	mbstate_t st;
	memset(&st, 0, sizeof st);
	size_t k = wcrtomb(mb, (wchar_t)key, &st);
	if (k == (size_t)-1)
		return;
	struct ba_buf nb = BA_BUF_INIT;
	ba_buf_add(&nb, s, c);
	ba_buf_add(&nb, mb, k);
	ba_buf_add(&nb, s + c, n - c);
	ba_buf_add(&nb, "", 0);
	if (ba_buf_failed(&nb)) {
		ba_buf_release(&nb);
		return;
	}
	ba_buf_release(&t->ed);
	t->ed = nb;
	t->ed_cur = c + k;
	ed_commit(t);
}

void tui_editor_draw(struct tui *t, int rows, int cols)
{
	const char *s = t->ed.data ? t->ed.data : "";
	size_t n = t->ed.len, c = t->ed_cur;
	int h = rows - 3 > 0 ? rows - 3 : 1;
	/* the cursor's line number, kept inside the window */
	size_t cl = 0;
	for (size_t i = 0; i < c; i++)
		cl += s[i] == '\n';
	if (cl < t->ed_top)
		t->ed_top = cl;
	if (cl >= t->ed_top + (size_t)h)
		t->ed_top = cl - (size_t)h + 1;
	size_t i = 0, line = 0;
	while (line < t->ed_top && i < n) {
		if (s[i++] == '\n')
			line++;
	}
	int cy = 1, cx = 0;
	for (int y = 1; y < rows - 2; y++, line++) {
		move(y, 0);
		clrtoeol();
		if (i > n || (i == n && line > cl && line != 0))
			continue;
		size_t e = i;
		while (e < n && s[e] != '\n')
			e++;
		/* scroll the cursor's line horizontally when it is wider than the screen */
		size_t from = i;
		if (line == cl) {
			char *head = strndup(s + i, c - i);
			int w = head ? tui_width(head) : 0;
			free(head);
			while (w >= cols - 1 && from < c) {
				size_t k = next_len(s, from, n);
				char *one = strndup(s + from, k);
				w -= one ? tui_width(one) : 1;
				free(one);
				from += k;
			}
			char *pre = strndup(s + from, c - from);
			cy = y;
			cx = pre ? tui_width(pre) : 0;
			free(pre);
		}
		char *text = strndup(s + from, e - from);
		tui_put(y, 0, cols, text ? text : "");
		free(text);
		i = e + 1;
	}
	if (cx >= cols)
		cx = cols - 1;
	move(cy, cx);
}
