/* tui/tui.h - bluearrow-tui's screens, shared state and helpers (internal to tui/)
 *
 * One thread draws and reads keys (main.c's loop polls standard input, the
 * worker's descriptor and a signal pipe); delivery runs in the worker
 * (worker.h).  Every screen is redrawn whole from the state after each
 * event; ncurses sends only the difference, and only visible rows are
 * formatted, so a frame costs the same for 10 or 10,000 outbox entries.
 */
#ifndef BLUEARROW_TUI_TUI_H
#define BLUEARROW_TUI_TUI_H

#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/draft.h"
#include "bluearrow/err.h"

#include "worker.h"

/* A key: a character (its code point), or a function key (KEY_*) with TUI_FN set. */
#define TUI_FN 0x40000000
#define TUI_CTRL(c) ((c) & 0x1f)

enum tui_menu { MENU_GENERIC, MENU_COMPOSE, MENU_OUTBOX, MENU_DRAFTS, MENU_PAGER, MENU_NMENUS };

enum tui_func {
	F_NONE,
	/* generic */
	F_UP, F_DOWN, F_PAGE_UP, F_PAGE_DOWN, F_TOP, F_BOTTOM, F_HELP, F_QUIT, F_REDRAW,
	F_OUTBOX, F_COMPOSE, F_DRAFTS,
	/* compose */
	F_EDIT, F_EDIT_FROM, F_EDIT_TO, F_EDIT_CC, F_EDIT_BCC, F_EDIT_SUBJECT, F_EDIT_BODY,
	F_ATTACH, F_DETACH, F_UNDO, F_RENAME, F_EDIT_TYPE, F_SEND, F_SEND_LATER, F_PREVIEW,
	F_POSTPONE,
	/* outbox */
	F_CANCEL, F_RETRY, F_DELETE, F_VIEW, F_REOPEN, F_ACK,
	/* drafts */
	F_RECALL,
	F_NFUNCS
};

/* ---- configuration (keys.c) ---------------------------------------------- */

struct tui_bind {
	enum tui_menu menu;
	int key;
	enum tui_func func;
};

struct tui_conf {
	int undo_seconds;        /* the undo window after send; default 10 */
	int retry_seconds;       /* first retry of a deferred entry (doubling); 0 = the worker's */
	char *alias_file;        /* a mutt alias file; NULL = none */
	char *query_command;     /* mutt's query_command ("%s" = the query); NULL = none */
	char *editor;            /* overrides $VISUAL/$EDITOR; "builtin" = the built-in editor */
	char *drafts_dir;        /* NULL = the core default */
	int color;               /* 0: never (also NO_COLOR); default 1 */
	struct tui_bind *binds;  /* user bindings, searched before the defaults */
	size_t nbinds;
	char *path;              /* the file read, or NULL */
};

/* Reads path (NULL: $BLUEARROW_TUI_CONFIG, else $XDG_CONFIG_HOME/bluearrow/tui, absent = defaults). */
int tui_conf_load(struct tui_conf *c, const char *path, struct ba_err *err);
void tui_conf_release(struct tui_conf *c);
enum tui_func tui_key_func(const struct tui_conf *c, enum tui_menu m, int key);
/* The key name ("a", "^T", "<Enter>") of the first key bound to f in m, into buf. */
const char *tui_func_key(const struct tui_conf *c, enum tui_menu m, enum tui_func f, char *buf,
                         size_t n);
const char *tui_func_name(enum tui_func f);
const char *tui_func_help(enum tui_func f);
const char *tui_key_name(int key, char *buf, size_t n);
/* Every function bound in m (user first), for the help screen: calls fn per (key, func). */
void tui_keys_each(const struct tui_conf *c, enum tui_menu m,
                   void (*fn)(void *ctx, int key, enum tui_func f), void *ctx);

/* ---- drawing (draw.c) ------------------------------------------------------ */

enum tui_attr { TA_NORMAL, TA_TITLE, TA_SELECT, TA_ERROR, TA_OK, TA_WARN, TA_BUSY, TA_DIM, TA_LABEL };

void tui_draw_init(int color);
/* Sets the attribute for what follows. */
void tui_attr(enum tui_attr a);
/*
 * Writes s (UTF-8; invalid bytes and controls shown as '?') at y, x in at
 * most w cells, by cell width (wcwidth): a wide character that would not fit
 * whole is left out.  Returns the cells used.  Nothing happens outside the
 * screen.
 */
int tui_put(int y, int x, int w, const char *s);
/* tui_put() padded with spaces to w cells. */
void tui_put_pad(int y, int x, int w, const char *s);
/* Cell width of s (UTF-8). */
int tui_width(const char *s);
/* Human size: "512 B", "12 KiB", "3.4 MiB". */
const char *tui_size(char *buf, size_t n, uint64_t bytes);

/* ---- line editor (line.c) -------------------------------------------------- */

struct tui_line {
	wchar_t *buf;
	size_t len, cap, cur;
};
int tui_line_set(struct tui_line *l, const char *utf8);
/* The text as UTF-8 into out (reset first). */
int tui_line_get(const struct tui_line *l, struct ba_buf *out);
/* Handles an editing key; returns 1 when the text changed, 0 when only the cursor moved or
 * the key is not an editing key (-1). */
int tui_line_key(struct tui_line *l, int key);
/* Draws label and text on row y (w cells), scrolled so the cursor shows; leaves the
 * terminal cursor there. */
void tui_line_draw(const struct tui_line *l, int y, int w, const char *label);
void tui_line_release(struct tui_line *l);
/* Replaces [from, cur) with the UTF-8 text s. */
int tui_line_replace(struct tui_line *l, size_t from, const char *s);

/* ---- completion (complete.c) ----------------------------------------------- */

struct tui_matches {
	char **v;
	size_t n;
};
void tui_matches_release(struct tui_matches *m);
/* Addresses for the query q (a prefix of an alias, address or name word), from the
 * account's aliases file, the mutt alias file, the query command and the sent-to history. */
int tui_complete_addr(struct tui_matches *m, const char *q, const char *aliases_file,
                      const struct tui_conf *c);
/* Paths that start with q (~ expanded), directories ending in '/'. */
int tui_complete_path(struct tui_matches *m, const char *q);
/* Adds the addresses of a sent message's To/Cc/Bcc values to the history file. */
void tui_history_add(const ba_draft *d);
/* ~/ expanded into out. */
void tui_expand_home(struct ba_buf *out, const char *path);

/* ---- autosave (autosave.c): a thread writes the draft files ---------------------- */

struct tui_saver;
int tui_saver_start(struct tui_saver **out);
/* Queues a copy of d to be saved at path (a newer copy replaces a queued one).  s NULL:
 * saves now.  Errors: ba_draft_format()'s, ba_draft_save()'s when s is NULL. */
int tui_saver_put(struct tui_saver *s, const ba_draft *d, const char *path, struct ba_err *err);
/* Waits until everything queued is on disk; -1 with the last failure. */
int tui_saver_sync(struct tui_saver *s, struct ba_err *err);
/* The last failure of a save in the background, once (-1), else 0. */
int tui_saver_error(struct tui_saver *s, struct ba_err *err);
/* Writes what is queued, stops the thread, frees s; NULL is a no-op. */
void tui_saver_stop(struct tui_saver *s);

/* ---- the application (main.c, compose.c, outbox_screen.c, pager.c) ---------- */

enum tui_screen { SCR_COMPOSE, SCR_OUTBOX, SCR_DRAFTS, SCR_PAGER, SCR_HELP, SCR_EDITOR };

enum tui_prompt {
	P_NONE,
	P_FIELD,    /* a header field: prompt_field */
	P_ATTACH,   /* a path or glob */
	P_RENAME,   /* the name sent for the selected attachment */
	P_TYPE,     /* its content type */
	P_SENDAT,   /* send at TIME */
	P_ASK       /* a question answered by one key: ask */
};

enum tui_ask {
	ASK_NONE, ASK_NO_SUBJECT, ASK_NO_ATTACH, ASK_TOO_BIG, ASK_POSTPONE, ASK_RESEND_UNKNOWN,
	ASK_DELETE, ASK_DELETE_DRAFT, ASK_QUIT_SENDING
};

struct tui_att_snap {       /* the attachment list before a change, for undo */
	char **path, **type, **name;
	size_t n;
};

struct tui {
	ba_config *cfg;
	struct tui_conf conf;
	struct tui_worker *worker;
	struct tui_saver *saver;
	enum tui_screen screen, back;   /* back: where the pager, help and editor return to */
	int quit;
	int64_t now_ms;

	/* the composition */
	ba_draft *d;
	char *draft_path;          /* its file, once saved */
	int dirty;                 /* changed since the last save */
	int touched;               /* changed since it was opened (unsent changes) */
	int64_t last_save_ms;
	size_t focus;              /* row of the compose list */
	size_t compose_top;
	struct tui_att_snap *undo;
	size_t nundo;
	int64_t send_at;           /* after the pre-send checks: 0 = now (with the undo window) */

	/* the prompt line */
	enum tui_prompt prompt;
	enum ba_draft_field prompt_field;
	char *prompt_orig;         /* the field's value before, restored on cancel */
	struct tui_line line;
	struct tui_matches matches;
	size_t imatch, match_from;
	enum tui_ask ask;
	char ask_id[TUI_ID_MAX];

	/* the outbox */
	struct tui_entry *ent;
	size_t nent, sel, top;
	char sel_id[TUI_ID_MAX];
	char undo_id[TUI_ID_MAX];  /* the last message sent, while it may be taken back */
	unsigned enq_ticket;       /* a message being written into the outbox (0 = none): */
	ba_draft *enq_d;           /* ... its composition, */
	char *enq_path;            /* ... its draft file (NULL = none), */
	int64_t enq_send_at;       /* ... and its send_at */
	int64_t undo_until_ms;

	/* the drafts picker */
	char **drafts;
	size_t ndrafts, dsel, dtop;

	/* the pager (preview, view, help) */
	char *pager_text;
	size_t pager_len, pager_top;
	char pager_title[128];

	/* the built-in editor */
	struct ba_buf ed;
	size_t ed_cur, ed_top;

	char msg[512];             /* the message line */
	int msg_error;
};

/* main.c */
void tui_message(struct tui *t, int error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tui_error(struct tui *t, const struct ba_err *err);
int64_t tui_now_ms(void);
void tui_refresh_outbox(struct tui *t);

/* compose.c */
int tui_compose_new(struct tui *t);
int tui_compose_open(struct tui *t, const char *path);
int tui_compose_take(struct tui *t, ba_draft *d);
void tui_compose_draw(struct tui *t, int rows, int cols);
void tui_compose_key(struct tui *t, int key);
void tui_compose_autosave(struct tui *t, int force);
void tui_prompt_key(struct tui *t, int key);
void tui_prompt_draw(struct tui *t, int y, int cols);
void tui_ask_answer(struct tui *t, int key);
void tui_compose_discard(struct tui *t);
char *tui_field_str(const ba_draft *d, enum ba_draft_field f);
void tui_do_send(struct tui *t);
/*
 * A message being written into the outbox (Send returned before it was
 * durable): when it is, its draft file goes and the undo window starts;
 * when it failed, the error is shown and the draft file stays.  wait: until
 * it is done.  Returns 1 while still being written (wait 0), else 0.
 */
int tui_enqueue_check(struct tui *t, int wait);
void tui_drafts_load(struct tui *t);
void tui_drafts_draw(struct tui *t, int rows, int cols);
void tui_drafts_key(struct tui *t, int key);
/* The saved copy of a message in the outbox, to take it back or reopen it. */
int tui_copy_path(struct ba_buf *out, const char *id);

/* outbox_screen.c */
void tui_outbox_draw(struct tui *t, int rows, int cols);
void tui_outbox_key(struct tui *t, int key);
int tui_unacked_errors(const struct tui *t);
enum tui_state tui_shown_state(const struct tui_entry *e);
/* Takes the held entry id back into the composer (removed from the outbox); -1 if not held. */
int tui_outbox_take_back(struct tui *t, const char *id);

/* pager.c */
void tui_pager_show(struct tui *t, const char *title, char *text, size_t len);
void tui_pager_draw(struct tui *t, int rows, int cols);
void tui_pager_key(struct tui *t, int key);
void tui_help_show(struct tui *t, enum tui_menu m);
int tui_run_editor(struct tui *t, const char *cmd, const char *path);
void tui_editor_start(struct tui *t);
void tui_editor_draw(struct tui *t, int rows, int cols);
void tui_editor_key(struct tui *t, int key);
const char *tui_editor_cmd(const struct tui *t);

#endif
