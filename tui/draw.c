/* tui/draw.c - text by cell width, attributes that survive NO_COLOR and vt100
 *
 * Every state is written as a word; colour only adds to it, so a monochrome
 * terminal (TERM=vt100) or NO_COLOR (https://no-color.org) loses nothing.
 * Widths come from wcwidth(): a Korean syllable takes two cells, a combining
 * mark none, and a wide character is never cut in half at the right edge.
 */
#include <curses.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "tui.h"

static int use_color;

void tui_draw_init(int color)
{
	const char *nc = getenv("NO_COLOR");
	use_color = color && !(nc && *nc) && has_colors();
	if (use_color) {
		start_color();
		use_default_colors();
		init_pair(1, COLOR_RED, -1);
		init_pair(2, COLOR_GREEN, -1);
		init_pair(3, COLOR_YELLOW, -1);
		init_pair(4, COLOR_CYAN, -1);
		init_pair(5, COLOR_BLUE, -1);
	}
}

void tui_attr(enum tui_attr a)
{
	attr_t v = A_NORMAL;
	short pair = 0;
	switch (a) {
	case TA_TITLE: v = A_REVERSE; break;
	case TA_SELECT: v = A_REVERSE; break;
	case TA_ERROR: v = A_BOLD; pair = 1; break;
	case TA_OK: pair = 2; break;
	case TA_WARN: v = A_BOLD; pair = 3; break;
	case TA_BUSY: pair = 4; break;
	case TA_DIM: v = use_color ? A_DIM : A_NORMAL; break;
	case TA_LABEL: v = A_BOLD; break;
	default: break;
	}
	attr_set(v, use_color ? pair : 0, NULL);
}

/* The next character of s: its code point in *wc (L'?' for a bad byte or a control), length returned. */
static size_t next_char(const char *s, size_t n, wchar_t *wc)
{
	mbstate_t st;
	memset(&st, 0, sizeof st);
	size_t len = mbrtowc(wc, s, n, &st);
	if (len == (size_t)-1 || len == (size_t)-2 || len == 0) {
		*wc = L'?';
		return 1;
	}
	if (*wc < 32 || *wc == 127 || (*wc >= 0x80 && *wc < 0xa0))
		*wc = (*wc == L'\t') ? L' ' : L'?';
	return len;
}

static int cell_width(wchar_t wc)
{
	int w = wcwidth(wc);
	return w < 0 ? 1 : w;
}

int tui_put(int y, int x, int w, const char *s)
{
	if (!s || y < 0 || y >= LINES || x < 0 || x >= COLS || w <= 0)
		return 0;
	if (x + w > COLS)
		w = COLS - x;
	size_t n = strlen(s);
	int used = 0;
	move(y, x);
	while (n) {
		wchar_t wc[2] = { 0, 0 };
		size_t len = next_char(s, n, &wc[0]);
		int cw = cell_width(wc[0]);
		if (used + cw > w)
			break;
		if (cw == 0 && used == 0)
			wc[0] = L' ', cw = 1;   /* a combining mark with nothing to combine with */
		/* the bottom-right cell cannot be written without scrolling: ncurses refuses it */
		if (!(y == LINES - 1 && x + used + cw >= COLS))
			addnwstr(wc, 1);
		used += cw;
		s += len;
		n -= len;
	}
	return used;
}

void tui_put_pad(int y, int x, int w, const char *s)
{
	if (x + w > COLS)
		w = COLS - x;
	int used = tui_put(y, x, w, s);
	for (int i = used; i < w; i++)
		if (!(y == LINES - 1 && x + i == COLS - 1))
			mvaddch(y, x + i, ' ');
}

int tui_width(const char *s)
{
	size_t n = strlen(s);
	int w = 0;
	while (n) {
		wchar_t wc;
		size_t len = next_char(s, n, &wc);
		w += cell_width(wc);
		s += len;
		n -= len;
	}
	return w;
}

const char *tui_size(char *buf, size_t n, uint64_t b)
{
	if (b < 1024)
		snprintf(buf, n, "%u B", (unsigned)b);
	else if (b < 10 * 1024)
		snprintf(buf, n, "%.1f KiB", b / 1024.0);
	else if (b < 1024 * 1024)
		snprintf(buf, n, "%u KiB", (unsigned)(b / 1024));
	else if (b < 10ull * 1024 * 1024)
		snprintf(buf, n, "%.1f MiB", b / 1048576.0);
	else
		snprintf(buf, n, "%u MiB", (unsigned)(b / 1048576));
	return buf;
}

/* ---- the line editor -------------------------------------------------------- */

static int line_grow(struct tui_line *l, size_t extra)
{
	if (l->len + extra + 1 <= l->cap)
		return 0;
	size_t cap = (l->len + extra + 1) * 2 + 16;
	wchar_t *nb = realloc(l->buf, cap * sizeof(wchar_t));
	if (!nb)
		return -1;
	l->buf = nb;
	l->cap = cap;
	return 0;
}

void tui_line_release(struct tui_line *l)
{
	free(l->buf);
	memset(l, 0, sizeof(*l));
}

int tui_line_replace(struct tui_line *l, size_t from, const char *s)
{
	size_t n = strlen(s);
	if (from > l->cur)
		from = l->cur;
	if (line_grow(l, n) < 0)
		return -1;
	memmove(l->buf + from, l->buf + l->cur, (l->len - l->cur) * sizeof(wchar_t));
	l->len -= l->cur - from;
	l->cur = from;
	while (n) {
		wchar_t wc;
		size_t len = next_char(s, n, &wc);
		memmove(l->buf + l->cur + 1, l->buf + l->cur, (l->len - l->cur) * sizeof(wchar_t));
		l->buf[l->cur++] = wc;
		l->len++;
		s += len;
		n -= len;
	}
	return 0;
}

int tui_line_set(struct tui_line *l, const char *s)
{
	l->len = l->cur = 0;
	return tui_line_replace(l, 0, s ? s : "");
}

int tui_line_get(const struct tui_line *l, struct ba_buf *out)
{
	ba_buf_reset(out);
	for (size_t i = 0; i < l->len; i++) {
		char mb[MB_LEN_MAX];
		mbstate_t st;
		memset(&st, 0, sizeof st);
		size_t n = wcrtomb(mb, l->buf[i], &st);
		if (n != (size_t)-1)
			ba_buf_add(out, mb, n);
	}
	ba_buf_add(out, "", 0);
	return ba_buf_failed(out) ? -1 : 0;
}

static int is_word(wchar_t c)
{
	return c != L' ' && c != L',' && c != L'/';
}

int tui_line_key(struct tui_line *l, int key)
{
	switch (key) {
	case TUI_FN | KEY_LEFT: case TUI_CTRL('b'):
		if (l->cur)
			l->cur--;
		return 0;
	case TUI_FN | KEY_RIGHT: case TUI_CTRL('f'):
		if (l->cur < l->len)
			l->cur++;
		return 0;
	case TUI_FN | KEY_HOME: case TUI_CTRL('a'):
		l->cur = 0;
		return 0;
	case TUI_FN | KEY_END: case TUI_CTRL('e'):
		l->cur = l->len;
		return 0;
	case TUI_FN | KEY_BACKSPACE: case 127: case TUI_CTRL('h'):
		if (!l->cur)
			return 0;
		l->cur--;
		/* fall through */
	case TUI_FN | KEY_DC: case TUI_CTRL('d'):
		if (l->cur >= l->len)
			return 0;
		memmove(l->buf + l->cur, l->buf + l->cur + 1, (l->len - l->cur - 1) * sizeof(wchar_t));
		l->len--;
		return 1;
	case TUI_CTRL('k'):
		l->len = l->cur;
		return 1;
	case TUI_CTRL('u'):
		memmove(l->buf, l->buf + l->cur, (l->len - l->cur) * sizeof(wchar_t));
		l->len -= l->cur;
		l->cur = 0;
		return 1;
	case TUI_CTRL('w'): {
		size_t from = l->cur;
		while (from && !is_word(l->buf[from - 1]))
			from--;
		while (from && is_word(l->buf[from - 1]))
			from--;
		memmove(l->buf + from, l->buf + l->cur, (l->len - l->cur) * sizeof(wchar_t));
		l->len -= l->cur - from;
		l->cur = from;
		return 1;
	}
	}
	if ((key & TUI_FN) || key < 32 || key == 127)
		return -1;
	if (line_grow(l, 1) < 0)
		return 0;
	memmove(l->buf + l->cur + 1, l->buf + l->cur, (l->len - l->cur) * sizeof(wchar_t));
	l->buf[l->cur++] = (wchar_t)key;
	l->len++;
	return 1;
}

void tui_line_draw(const struct tui_line *l, int y, int w, const char *label)
{
	if (y < 0 || y >= LINES || w <= 0)
		return;
	tui_attr(TA_LABEL);
	int lw = tui_put(y, 0, w / 2, label);
	tui_attr(TA_NORMAL);
	int avail = w - lw - 1; /* one cell for the cursor at the end */
	if (avail <= 0)
		return;
	/* the first character shown: as far left as keeps the cursor visible */
	size_t start = 0;
	int width = 0;
	for (size_t i = l->cur; i > 0; i--) {
		int cw = cell_width(l->buf[i - 1]);
		if (width + cw > avail)
			break;
		width += cw;
		start = i - 1;
	}
	if (l->cur == 0)
		start = 0;
	int x = lw, cx = lw;
	for (size_t i = start; i < l->len; i++) {
		int cw = cell_width(l->buf[i]);
		if (x + cw > w - (y == LINES - 1 ? 1 : 0))
			break;
		if (i == l->cur)
			cx = x;
		mvaddnwstr(y, x, &l->buf[i], 1);
		x += cw;
	}
	if (l->cur >= l->len || l->cur < start)
		cx = x;
	if (cx >= COLS)
		cx = COLS - 1;
	move(y, cx);
}
