/* tui/keys.c - the key map (mutt-like defaults, rebindable) and the TUI's own settings file
 *
 * The TUI's settings are not in the msmtprc-syntax configuration: that file
 * is shared with msmtp, which refuses unknown keys, so a `bind` line there
 * would break msmtp.  The TUI reads its own small file, in muttrc syntax:
 *
 *   set undo_seconds 10
 *   set alias_file ~/.mutt/aliases
 *   set query_command "abook --mutt-query '%s'"
 *   bind compose ^X send-message
 */
#include <ctype.h>
#include <curses.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <wchar.h>

#include "tui.h"

static const struct {
	const char *name, *help;
} funcs[F_NFUNCS] = {
	[F_NONE] = { "noop", "do nothing" },
	[F_UP] = { "previous", "move up" },
	[F_DOWN] = { "next", "move down" },
	[F_PAGE_UP] = { "page-up", "one page up" },
	[F_PAGE_DOWN] = { "page-down", "one page down" },
	[F_TOP] = { "first", "to the first row" },
	[F_BOTTOM] = { "last", "to the last row" },
	[F_HELP] = { "help", "this help" },
	[F_QUIT] = { "quit", "leave this screen (the composer asks to postpone)" },
	[F_REDRAW] = { "redraw", "redraw the screen" },
	[F_OUTBOX] = { "outbox", "the outbox screen" },
	[F_COMPOSE] = { "compose", "the composer" },
	[F_DRAFTS] = { "drafts", "the postponed drafts" },
	[F_EDIT] = { "edit", "edit the focused row" },
	[F_EDIT_FROM] = { "edit-from", "choose the account (From)" },
	[F_EDIT_TO] = { "edit-to", "edit To (Tab completes)" },
	[F_EDIT_CC] = { "edit-cc", "edit Cc (Tab completes)" },
	[F_EDIT_BCC] = { "edit-bcc", "edit Bcc (Tab completes)" },
	[F_EDIT_SUBJECT] = { "edit-subject", "edit Subject" },
	[F_EDIT_BODY] = { "edit-message", "edit the body ($VISUAL, $EDITOR or built in)" },
	[F_ATTACH] = { "attach-file", "attach files (path or glob, Tab completes)" },
	[F_DETACH] = { "detach-file", "remove the focused attachment" },
	[F_UNDO] = { "undo", "undo the last attachment change" },
	[F_RENAME] = { "rename-attachment", "the name the attachment is sent under (the file is not touched)" },
	[F_EDIT_TYPE] = { "edit-type", "the content type of the focused attachment" },
	[F_SEND] = { "send-message", "send (queued, with the undo window)" },
	[F_SEND_LATER] = { "send-later", "send at a time (+10m, 18:00, 2026-12-24 09:00)" },
	[F_PREVIEW] = { "preview", "view the message as it will be sent" },
	[F_POSTPONE] = { "postpone-message", "save as a draft and start a new message" },
	[F_CANCEL] = { "cancel", "cancel the send of the entry (or take back a held one)" },
	[F_RETRY] = { "retry", "send the entry now" },
	[F_DELETE] = { "delete", "delete the entry" },
	[F_VIEW] = { "view", "view the entry's message" },
	[F_REOPEN] = { "reopen", "reopen the entry's message in the composer" },
	[F_ACK] = { "acknowledge", "acknowledge the entry's error" },
	[F_RECALL] = { "recall", "recall the draft into the composer" },
};

static const char *const menu_names[MENU_NMENUS] = { "generic", "compose", "outbox", "drafts",
	                                              "pager" };

#define K(c) (c)
#define FN(k) (TUI_FN | (k))
static const struct tui_bind defaults[] = {
	{ MENU_GENERIC, FN(KEY_UP), F_UP },
	{ MENU_GENERIC, K('k'), F_UP },
	{ MENU_GENERIC, FN(KEY_DOWN), F_DOWN },
	{ MENU_GENERIC, K('j'), F_DOWN },
	{ MENU_GENERIC, FN(KEY_PPAGE), F_PAGE_UP },
	{ MENU_GENERIC, K('-'), F_PAGE_UP },
	{ MENU_GENERIC, FN(KEY_NPAGE), F_PAGE_DOWN },
	{ MENU_GENERIC, K(' '), F_PAGE_DOWN },
	{ MENU_GENERIC, FN(KEY_HOME), F_TOP },
	{ MENU_GENERIC, K('='), F_TOP },
	{ MENU_GENERIC, FN(KEY_END), F_BOTTOM },
	{ MENU_GENERIC, K('*'), F_BOTTOM },
	{ MENU_GENERIC, K('?'), F_HELP },
	{ MENU_GENERIC, K('q'), F_QUIT },
	{ MENU_GENERIC, K(TUI_CTRL('l')), F_REDRAW },
	{ MENU_COMPOSE, K('\r'), F_EDIT },
	{ MENU_COMPOSE, K('\n'), F_EDIT },
	{ MENU_COMPOSE, FN(KEY_ENTER), F_EDIT },
	{ MENU_COMPOSE, K('f'), F_EDIT_FROM },
	{ MENU_COMPOSE, K('t'), F_EDIT_TO },
	{ MENU_COMPOSE, K('c'), F_EDIT_CC },
	{ MENU_COMPOSE, K('b'), F_EDIT_BCC },
	{ MENU_COMPOSE, K('s'), F_EDIT_SUBJECT },
	{ MENU_COMPOSE, K('e'), F_EDIT_BODY },
	{ MENU_COMPOSE, K('a'), F_ATTACH },
	{ MENU_COMPOSE, K('D'), F_DETACH },
	{ MENU_COMPOSE, K('u'), F_UNDO },
	{ MENU_COMPOSE, K('R'), F_RENAME },
	{ MENU_COMPOSE, K(TUI_CTRL('t')), F_EDIT_TYPE },
	{ MENU_COMPOSE, K('y'), F_SEND },
	{ MENU_COMPOSE, K('L'), F_SEND_LATER },
	{ MENU_COMPOSE, K('p'), F_PREVIEW },
	{ MENU_COMPOSE, K('P'), F_POSTPONE },
	{ MENU_COMPOSE, K('o'), F_OUTBOX },
	{ MENU_COMPOSE, K('r'), F_DRAFTS },
	{ MENU_OUTBOX, K('c'), F_CANCEL },
	{ MENU_OUTBOX, K(TUI_CTRL('c')), F_CANCEL },
	{ MENU_OUTBOX, K('u'), F_CANCEL },
	{ MENU_OUTBOX, K('r'), F_RETRY },
	{ MENU_OUTBOX, K('d'), F_DELETE },
	{ MENU_OUTBOX, K('\r'), F_VIEW },
	{ MENU_OUTBOX, K('\n'), F_VIEW },
	{ MENU_OUTBOX, K('v'), F_VIEW },
	{ MENU_OUTBOX, K('e'), F_REOPEN },
	{ MENU_OUTBOX, K('!'), F_ACK },
	{ MENU_OUTBOX, K('m'), F_COMPOSE },
	{ MENU_OUTBOX, K('q'), F_COMPOSE },
	{ MENU_OUTBOX, K('i'), F_COMPOSE },
	{ MENU_DRAFTS, K('\r'), F_RECALL },
	{ MENU_DRAFTS, K('\n'), F_RECALL },
	{ MENU_DRAFTS, K('m'), F_COMPOSE },
	{ MENU_DRAFTS, K('n'), F_COMPOSE },
	{ MENU_DRAFTS, K('q'), F_COMPOSE },
	{ MENU_DRAFTS, K('d'), F_DELETE },
	{ MENU_DRAFTS, K('o'), F_OUTBOX },
	{ MENU_PAGER, K('q'), F_QUIT },
	{ MENU_PAGER, K('i'), F_QUIT },
};

const char *tui_func_name(enum tui_func f)
{
	return (f >= 0 && f < F_NFUNCS && funcs[f].name) ? funcs[f].name : "noop";
}

const char *tui_func_help(enum tui_func f)
{
	return (f >= 0 && f < F_NFUNCS && funcs[f].help) ? funcs[f].help : "";
}

static enum tui_func lookup(const struct tui_bind *b, size_t n, enum tui_menu m, int key,
                            int *found)
{
	for (size_t i = n; i-- > 0;)   /* a later bind wins */
		if (b[i].menu == m && b[i].key == key) {
			*found = 1;
			return b[i].func;
		}
	return F_NONE;
}

enum tui_func tui_key_func(const struct tui_conf *c, enum tui_menu m, int key)
{
	int found = 0;
	enum tui_func f = lookup(c->binds, c->nbinds, m, key, &found);
	if (!found)
		f = lookup(defaults, sizeof(defaults) / sizeof(defaults[0]), m, key, &found);
	if (!found && m != MENU_GENERIC)
		f = lookup(c->binds, c->nbinds, MENU_GENERIC, key, &found);
	if (!found && m != MENU_GENERIC)
		f = lookup(defaults, sizeof(defaults) / sizeof(defaults[0]), MENU_GENERIC, key, &found);
	return f;
}

static const struct {
	const char *name;
	int key;
} named[] = {
	{ "<Enter>", '\r' }, { "<Return>", '\n' }, { "<Tab>", '\t' }, { "<Esc>", 27 },
	{ "<Space>", ' ' }, { "<Up>", FN(KEY_UP) }, { "<Down>", FN(KEY_DOWN) },
	{ "<Left>", FN(KEY_LEFT) }, { "<Right>", FN(KEY_RIGHT) }, { "<PageUp>", FN(KEY_PPAGE) },
	{ "<PageDown>", FN(KEY_NPAGE) }, { "<Home>", FN(KEY_HOME) }, { "<End>", FN(KEY_END) },
	{ "<Backspace>", FN(KEY_BACKSPACE) }, { "<Delete>", FN(KEY_DC) },
	{ "<Insert>", FN(KEY_IC) }, { "<KeypadEnter>", FN(KEY_ENTER) },
};

const char *tui_key_name(int key, char *buf, size_t n)
{
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (named[i].key == key) {
			snprintf(buf, n, "%s", named[i].name);
			return buf;
		}
	if (key & TUI_FN) {
		int k = key & ~TUI_FN;
		if (k >= KEY_F(1) && k <= KEY_F(12))
			snprintf(buf, n, "<F%d>", k - KEY_F(0));
		else
			snprintf(buf, n, "<%s>", keyname(k) ? keyname(k) : "?");
		return buf;
	}
	if (key < 32) {
		snprintf(buf, n, "^%c", key + '@');
		return buf;
	}
	char mb[MB_LEN_MAX + 1];
	mbstate_t st;
	memset(&st, 0, sizeof st);
	size_t len = wcrtomb(mb, (wchar_t)key, &st);
	if (len == (size_t)-1)
		len = 0;
	mb[len] = '\0';
	snprintf(buf, n, "%s", mb);
	return buf;
}

/* "a", "^T", "<Enter>", "<F5>" -> key; -1 when unknown. */
static int parse_key(const char *s)
{
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strcasecmp(named[i].name, s) == 0)
			return named[i].key;
	if (s[0] == '^' && s[1] && !s[2]) {
		int c = toupper((unsigned char)s[1]);
		if (c == '?')
			return 127;
		if (c >= '@' && c <= '_')
			return c - '@';
		return -1;
	}
	if ((s[0] == '<' || s[0] == '<') && (s[1] == 'F' || s[1] == 'f')) {
		char *end;
		long n = strtol(s + 2, &end, 10);
		if (n >= 1 && n <= 12 && strcmp(end, ">") == 0)
			return FN(KEY_F((int)n));
		return -1;
	}
	wchar_t wc;
	mbstate_t st;
	memset(&st, 0, sizeof st);
	size_t len = mbrtowc(&wc, s, strlen(s), &st);
	if (len == 0 || len == (size_t)-1 || len == (size_t)-2 || s[len])
		return -1;
	return (int)wc;
}

const char *tui_func_key(const struct tui_conf *c, enum tui_menu m, enum tui_func f, char *buf,
                         size_t n)
{
	/* the key must still reach f: a user bind may have taken it */
	for (size_t i = c->nbinds; i-- > 0;)
		if (c->binds[i].menu == m && c->binds[i].func == f &&
		    tui_key_func(c, m, c->binds[i].key) == f)
			return tui_key_name(c->binds[i].key, buf, n);
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if ((defaults[i].menu == m || defaults[i].menu == MENU_GENERIC) &&
		    defaults[i].func == f && tui_key_func(c, m, defaults[i].key) == f)
			return tui_key_name(defaults[i].key, buf, n);
	snprintf(buf, n, "%s", "-");
	return buf;
}

void tui_keys_each(const struct tui_conf *c, enum tui_menu m,
                   void (*fn)(void *ctx, int key, enum tui_func f), void *ctx)
{
	enum tui_menu menus[2] = { m, MENU_GENERIC };
	for (int k = 0; k < (m == MENU_GENERIC ? 1 : 2); k++) {
		for (size_t i = 0; i < c->nbinds; i++)
			if (c->binds[i].menu == menus[k] &&
			    tui_key_func(c, m, c->binds[i].key) == c->binds[i].func)
				fn(ctx, c->binds[i].key, c->binds[i].func);
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			if (defaults[i].menu == menus[k] &&
			    tui_key_func(c, m, defaults[i].key) == defaults[i].func &&
			    defaults[i].key != '\n')
				fn(ctx, defaults[i].key, defaults[i].func);
	}
}

/* ---- the settings file ---------------------------------------------------- */

void tui_conf_release(struct tui_conf *c)
{
	free(c->alias_file);
	free(c->query_command);
	free(c->editor);
	free(c->drafts_dir);
	free(c->binds);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

static char *next_word(char **p)
{
	char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return NULL;
	char *w = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return w;
}

/* The rest of the line, trimmed, outer double quotes removed (nothing inside is an escape). */
static char *rest(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		p[--n] = '\0';
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
		p[n - 1] = '\0';
		p++;
	}
	return p;
}

static int set_str(char **dst, const char *v, int path)
{
	struct ba_buf b = BA_BUF_INIT;
	if (path)
		tui_expand_home(&b, v);
	else
		ba_buf_addstr(&b, v);
	if (ba_buf_failed(&b))
		return -1;
	free(*dst);
	*dst = *v ? ba_buf_detach(&b, NULL) : NULL;
	ba_buf_release(&b);
	return 0;
}

static int parse_line(struct tui_conf *c, char *line, const char *file, unsigned lineno,
                      struct ba_err *err)
{
	char *p = line;
	char *cmd = next_word(&p);
	if (!cmd || cmd[0] == '#')
		return 0;
	if (strcmp(cmd, "set") == 0) {
		char *key = next_word(&p);
		char *v = key ? rest(p) : NULL;
		if (!key)
			return ba_err_set(err, EX_CONFIG, "%s:%u: 'set' needs a key and a value", file, lineno);
		if (strcmp(key, "undo_seconds") == 0) {
			char *end;
			errno = 0;
			long n = strtol(v, &end, 10);
			if (!*v || *end || errno || n < 0 || n > 3600)
				return ba_err_set(err, EX_CONFIG, "%s:%u: invalid value '%s' for 'undo_seconds' "
				                  "(0 to 3600)", file, lineno, v);
			c->undo_seconds = (int)n;
			return 0;
		}
		if (strcmp(key, "retry_seconds") == 0) {
			char *end;
			errno = 0;
			long n = strtol(v, &end, 10);
			if (!*v || *end || errno || n < 1 || n > 86400)
				return ba_err_set(err, EX_CONFIG, "%s:%u: invalid value '%s' for 'retry_seconds' "
				                  "(1 to 86400)", file, lineno, v);
			c->retry_seconds = (int)n;
			return 0;
		}
		if (strcmp(key, "color") == 0) {
			if (strcmp(v, "on") && strcmp(v, "off"))
				return ba_err_set(err, EX_CONFIG, "%s:%u: invalid value '%s' for 'color' (on or off)",
				                  file, lineno, v);
			c->color = strcmp(v, "on") == 0;
			return 0;
		}
		char **dst = NULL;
		int path = 0;
		if (strcmp(key, "alias_file") == 0)
			dst = &c->alias_file, path = 1;
		else if (strcmp(key, "query_command") == 0)
			dst = &c->query_command;
		else if (strcmp(key, "editor") == 0)
			dst = &c->editor;
		else if (strcmp(key, "drafts_dir") == 0)
			dst = &c->drafts_dir, path = 1;
		if (!dst)
			return ba_err_set(err, EX_CONFIG, "%s:%u: unknown setting '%s'", file, lineno, key);
		if (set_str(dst, v, path) < 0)
			return ba_err_set(err, EX_OSERR, "out of memory");
		return 0;
	}
	if (strcmp(cmd, "bind") == 0) {
		char *menu = next_word(&p), *key = menu ? next_word(&p) : NULL;
		char *fn = key ? next_word(&p) : NULL;
		if (!fn || next_word(&p))
			return ba_err_set(err, EX_CONFIG, "%s:%u: usage: bind MENU KEY FUNCTION", file, lineno);
		int m = -1, k = parse_key(key), f = -1;
		for (int i = 0; i < MENU_NMENUS; i++)
			if (strcmp(menu_names[i], menu) == 0)
				m = i;
		for (int i = 0; i < F_NFUNCS; i++)
			if (strcmp(funcs[i].name, fn) == 0)
				f = i;
		if (m < 0)
			return ba_err_set(err, EX_CONFIG, "%s:%u: unknown menu '%s' (generic, compose, outbox, "
			                  "drafts, pager)", file, lineno, menu);
		if (k < 0)
			return ba_err_set(err, EX_CONFIG, "%s:%u: unknown key '%s'", file, lineno, key);
		if (f < 0)
			return ba_err_set(err, EX_CONFIG, "%s:%u: unknown function '%s'", file, lineno, fn);
		struct tui_bind *nb = realloc(c->binds, (c->nbinds + 1) * sizeof(*nb));
		if (!nb)
			return ba_err_set(err, EX_OSERR, "out of memory");
		c->binds = nb;
		c->binds[c->nbinds++] = (struct tui_bind){ (enum tui_menu)m, k, (enum tui_func)f };
		return 0;
	}
	return ba_err_set(err, EX_CONFIG, "%s:%u: unknown command '%s' (set or bind)", file, lineno,
	                  cmd);
}

int tui_conf_load(struct tui_conf *c, const char *path, struct ba_err *err)
{
	struct ba_buf def = BA_BUF_INIT;
	memset(c, 0, sizeof(*c));
	c->undo_seconds = 10;
	c->color = 1;
	int must_exist = path != NULL;
	if (!path && (path = getenv("BLUEARROW_TUI_CONFIG")) && *path)
		must_exist = 1;
	else if (!path || !*path) {
		const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
		if (x && x[0] == '/')
			ba_buf_addf(&def, "%s/bluearrow/tui", x);
		else if (home && *home)
			ba_buf_addf(&def, "%s/.config/bluearrow/tui", home);
		else
			return 0;
		path = ba_buf_str(&def);
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		ba_buf_release(&def);
		if (!must_exist && e == ENOENT)
			return 0;
		return ba_err_set(err, EX_CONFIG, "cannot open '%s': %s", path, strerror(e));
	}
	c->path = strdup(path);
	ba_buf_release(&def);
	char line[4096];
	unsigned n = 0;
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		n++;
		size_t len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f))
			rc = ba_err_set(err, EX_CONFIG, "%s:%u: line too long", c->path, n);
		if (rc == 0)
			rc = parse_line(c, line, c->path, n, err);
	}
	fclose(f);
	return rc;
}
