/* tui/compose.c - the composer: fields, attachments, body, autosave, pre-send checks, send
 *
 * The composition lives in a ba_draft (bluearrow/draft.h) from the first
 * key: a field being typed is written into the draft at every key, and the
 * draft is saved atomically (ba_draft_save(): temporary file, fsync,
 * rename, directory fsync) at most 250 ms after a change, so SIGKILL loses
 * at most the last quarter second.  A recalled draft is saved over its own
 * file: the old version stays on disk until the new one replaces it.
 *
 * Send hands the draft to the worker (tui_worker_enqueue_start(): a thread
 * of the worker reads the files and writes the message into the outbox),
 * held for the undo window.  The composer closes once the message is
 * durable, or after ENQUEUE_WAIT_MS with the message still being written
 * ("Queuing"); its draft file stays until the message is durable, and stays
 * when it could not be written (tui_enqueue_check()).  A copy of the draft
 * is kept in drafts/outbox/ID.draft so that the message can be taken back
 * or a failed one reopened with its attachments as they were chosen.
 */
#include <ctype.h>
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/addr.h"
#include "bluearrow/outbox.h"
#include "bluearrow/submit.h"
#include "tui.h"

#define NFIELDROWS 5
static const enum ba_draft_field rowfield[NFIELDROWS] = { BA_DRAFT_FROM, BA_DRAFT_TO, BA_DRAFT_CC,
	                                                   BA_DRAFT_BCC, BA_DRAFT_SUBJECT };
static const char *const rowlabel[NFIELDROWS] = { "From", "To", "Cc", "Bcc", "Subject" };

/* A list field's values joined with ", " (caller frees); "" when none. */
char *tui_field_str(const ba_draft *d, enum ba_draft_field f)
{
	struct ba_buf b = BA_BUF_INIT;
	for (size_t i = 0; i < ba_draft_count(d, f); i++) {
		if (i)
			ba_buf_addstr(&b, ", ");
		ba_buf_addstr(&b, ba_draft_get(d, f, i));
	}
	ba_buf_add(&b, "", 0);
	char *s = ba_buf_detach(&b, NULL);
	return s ? s : strdup("");
}

static void changed(struct tui *t)
{
	t->dirty = t->touched = 1;
}

/* ---- the draft's lifetime ------------------------------------------------------ */

static const char *drafts_dir(const struct tui *t)
{
	return t->conf.drafts_dir;
}

static void snap_free(struct tui_att_snap *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->path[i]);
		free(s->type[i]);
		free(s->name[i]);
	}
	free(s->path);
	free(s->type);
	free(s->name);
	memset(s, 0, sizeof(*s));
}

static void undo_clear(struct tui *t)
{
	for (size_t i = 0; i < t->nundo; i++)
		snap_free(&t->undo[i]);
	free(t->undo);
	t->undo = NULL;
	t->nundo = 0;
}

static void reset(struct tui *t, ba_draft *d, char *path)
{
	ba_draft_free(t->d);
	free(t->draft_path);
	undo_clear(t);
	t->d = d;
	t->draft_path = path;
	t->dirty = t->touched = 0;
	t->focus = 1;
	t->compose_top = 0;
}

static int account_of(const struct tui *t, struct ba_buf *name);

/*
 * Starts the size probe of the composition's account, so the answer is there
 * at send.  Only for a message with attachments: the probe connects to the
 * server, and a plain message is never near a limit (the engine's SIZE=
 * parameter still has the server refuse an oversized one before the data).
 */
static void probe_size(struct tui *t)
{
	struct ba_buf acc = BA_BUF_INIT;
	if (!ba_draft_attach_count(t->d))
		return;
	uint64_t limit;
	struct ba_err err = BA_ERR_INIT;
	if (t->worker && account_of(t, &acc) == 0)
		tui_worker_size_limit(t->worker, ba_buf_str(&acc), &limit, &err);
	ba_buf_release(&acc);
}

int tui_compose_new(struct tui *t)
{
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	if (ba_draft_new(&d, &err) < 0) {
		tui_error(t, &err);
		return -1;
	}
	/* the default account's From, shown so the user sees who sends */
	const struct ba_account *acc = ba_config_account(t->cfg, NULL, &err);
	struct ba_buf env = BA_BUF_INIT, from = BA_BUF_INIT;
	if (acc && ba_config_envelope_from(&env, acc, &err) == 0 && ba_buf_str(&env)[0] &&
	    !strpbrk(ba_buf_str(&env), "*?[") &&
	    ba_submit_from_field(&from, acc, ba_buf_str(&env), NULL, &err) == 0)
		ba_draft_set(d, BA_DRAFT_FROM, ba_buf_str(&from), &err);
	ba_buf_release(&env);
	ba_buf_release(&from);
	reset(t, d, NULL);
	t->screen = SCR_COMPOSE;
	probe_size(t);
	return 0;
}

int tui_compose_take(struct tui *t, ba_draft *d)
{
	reset(t, d, NULL);
	changed(t);   /* a new draft file, saved at once */
	tui_compose_autosave(t, 1);
	t->screen = SCR_COMPOSE;
	probe_size(t);
	return 0;
}

int tui_compose_open(struct tui *t, const char *path)
{
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	if (ba_draft_load(&d, path, &err) < 0) {
		tui_error(t, &err);
		return -1;
	}
	char *p = strdup(path);
	if (!p) {
		ba_draft_free(d);
		return -1;
	}
	reset(t, d, p);
	t->screen = SCR_COMPOSE;
	probe_size(t);
	return 0;
}

void tui_compose_autosave(struct tui *t, int force)
{
	struct ba_err err = BA_ERR_INIT;
	if (!t->dirty || !t->d) {
		if (force && tui_saver_sync(t->saver, &err) < 0)
			tui_error(t, &err);
		return;
	}
	int64_t now = tui_now_ms();
	if (!force && now - t->last_save_ms < 250)
		return;
	int rc;
	if (t->draft_path)
		rc = tui_saver_put(t->saver, t->d, t->draft_path, &err);
	else   /* the first save names the file: here, so the name is known at once */
		rc = ba_draft_save_new(&t->draft_path, t->d, drafts_dir(t), &err);
	t->last_save_ms = now;
	if (rc == 0 && force)
		rc = tui_saver_sync(t->saver, &err);
	if (rc < 0) {
		tui_error(t, &err);
		return;
	}
	t->dirty = 0;
}

static int is_empty(const ba_draft *d)
{
	size_t n = 0;
	ba_draft_body_text(d, &n);
	return !ba_draft_count(d, BA_DRAFT_TO) && !ba_draft_count(d, BA_DRAFT_CC) &&
	       !ba_draft_count(d, BA_DRAFT_BCC) &&
	       !(ba_draft_get(d, BA_DRAFT_SUBJECT, 0) && *ba_draft_get(d, BA_DRAFT_SUBJECT, 0)) &&
	       !ba_draft_attach_count(d) && !n && !ba_draft_body_file(d);
}

/* Drops the composition and its draft file (after a send, or "discard"). */
void tui_compose_discard(struct tui *t)
{
	struct ba_err err = BA_ERR_INIT;
	tui_saver_sync(t->saver, &err);   /* no late write may bring the file back */
	if (t->draft_path && ba_draft_delete(t->draft_path, &err) < 0 && err.code != EX_NOINPUT)
		tui_error(t, &err);
	free(t->draft_path);
	t->draft_path = NULL;
	t->dirty = t->touched = 0;
}

int tui_copy_path(struct ba_buf *out, const char *id)
{
	struct ba_err err = BA_ERR_INIT;
	ba_buf_reset(out);
	if (ba_draft_dir(out, 1, &err) < 0)
		return -1;
	ba_buf_addstr(out, "/outbox");
	if (mkdir(ba_buf_str(out), 0700) < 0 && errno != EEXIST)
		return -1;
	ba_buf_addf(out, "/%s.draft", id);
	return ba_buf_failed(out) ? -1 : 0;
}

/* ---- accounts ------------------------------------------------------------------- */

/* The account that sends the composition: by its From address, else the default. */
static int account_of(const struct tui *t, struct ba_buf *name)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_addr_list l = BA_ADDR_LIST_INIT;
	struct ba_buf addr = BA_BUF_INIT;
	const char *from = ba_draft_get(t->d, BA_DRAFT_FROM, 0);
	if (from && ba_addr_list_parse(&l, from, strlen(from), 0, &err) == 0 && l.n && l.v[0].local)
		ba_buf_addf(&addr, "%s@%s", l.v[0].local, l.v[0].domain);
	ba_addr_list_release(&l);
	const struct ba_account *acc =
		ba_submit_account(t->cfg, NULL, NULL, addr.len ? ba_buf_str(&addr) : NULL, &err);
	ba_buf_release(&addr);
	ba_buf_reset(name);
	if (!acc)
		return -1;
	ba_buf_addstr(name, acc->name);
	return 0;
}

/* 1 when needle occurs in hay, ignoring ASCII case. */
static int has_icase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	return n == 0;
}

/* Tab in From: every account's From, "Name <addr>  (account)". */
static void complete_from(struct tui *t, const char *q)
{
	tui_matches_release(&t->matches);
	for (size_t i = 0; i < ba_config_count(t->cfg); i++) {
		const struct ba_account *a = ba_config_at(t->cfg, i);
		struct ba_err err = BA_ERR_INIT;
		struct ba_buf env = BA_BUF_INIT, f = BA_BUF_INIT;
		if (a->alias_of || ba_config_envelope_from(&env, a, &err) < 0 || !env.len ||
		    strpbrk(ba_buf_str(&env), "*?[") ||
		    ba_submit_from_field(&f, a, ba_buf_str(&env), NULL, &err) < 0 ||
		    (*q && !has_icase(ba_buf_str(&f), q) && !has_icase(a->name, q))) {
			ba_buf_release(&env);
			ba_buf_release(&f);
			continue;
		}
		char **nv = realloc(t->matches.v, (t->matches.n + 1) * sizeof(*nv));
		if (nv) {
			t->matches.v = nv;
			nv[t->matches.n] = ba_buf_detach(&f, NULL);
			if (nv[t->matches.n])
				t->matches.n++;
		}
		ba_buf_release(&env);
		ba_buf_release(&f);
	}
}

/* ---- the prompt line -------------------------------------------------------------- */

static void prompt_start(struct tui *t, enum tui_prompt p, const char *initial)
{
	t->prompt = p;
	tui_line_set(&t->line, initial);
	t->line.cur = t->line.len;
	tui_matches_release(&t->matches);
	t->msg[0] = '\0';
}

static void prompt_field(struct tui *t, enum ba_draft_field f)
{
	char *v = tui_field_str(t->d, f);
	free(t->prompt_orig);
	t->prompt_orig = v;
	t->prompt_field = f;
	prompt_start(t, P_FIELD, v);
	for (size_t i = 0; i < NFIELDROWS; i++)
		if (rowfield[i] == f)
			t->focus = i;
}

static void ask(struct tui *t, enum tui_ask a, const char *fmt, const char *arg)
{
	t->prompt = P_ASK;
	t->ask = a;
	snprintf(t->msg, sizeof t->msg, fmt, arg ? arg : "");
	t->msg_error = 0;
}

/* Sets the draft's field from the prompt's text (also while typing: autosave sees it). */
static void field_from_line(struct tui *t)
{
	struct ba_buf v = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	tui_line_get(&t->line, &v);
	const char *s = ba_buf_str(&v);
	while (*s == ' ')
		s++;
	ba_draft_set(t->d, t->prompt_field, *s ? ba_buf_str(&v) : NULL, &err);
	ba_buf_release(&v);
	changed(t);
}

static void att_snapshot(struct tui *t)
{
	struct tui_att_snap s = { 0 };
	size_t n = ba_draft_attach_count(t->d);
	s.path = calloc(n + 1, sizeof(char *));
	s.type = calloc(n + 1, sizeof(char *));
	s.name = calloc(n + 1, sizeof(char *));
	if (!s.path || !s.type || !s.name) {
		snap_free(&s);
		return;
	}
	s.n = n;
	for (size_t i = 0; i < n; i++) {
		const char *ty = ba_draft_attach_type(t->d, i), *nm = ba_draft_attach_name(t->d, i);
		s.path[i] = strdup(ba_draft_attach_path(t->d, i));
		s.type[i] = ty ? strdup(ty) : NULL;
		s.name[i] = nm ? strdup(nm) : NULL;
	}
	struct tui_att_snap *nu = realloc(t->undo, (t->nundo + 1) * sizeof(*nu));
	if (!nu) {
		snap_free(&s);
		return;
	}
	t->undo = nu;
	t->undo[t->nundo++] = s;
}

static int att_undo(struct tui *t)
{
	if (!t->nundo)
		return -1;
	struct tui_att_snap *s = &t->undo[--t->nundo];
	struct ba_err err = BA_ERR_INIT;
	while (ba_draft_attach_count(t->d))
		ba_draft_attach_remove(t->d, 0, &err);
	for (size_t i = 0; i < s->n; i++)
		if (s->path[i])
			ba_draft_attach_add(t->d, s->path[i], s->type[i], s->name[i], &err);
	snap_free(s);
	changed(t);
	return 0;
}

static size_t nrows(const struct tui *t)
{
	return NFIELDROWS + ba_draft_attach_count(t->d) + 1;
}

/* The attachment index of the focused row, or -1. */
static long focused_att(const struct tui *t)
{
	size_t na = ba_draft_attach_count(t->d);
	if (t->focus >= NFIELDROWS && t->focus < NFIELDROWS + na)
		return (long)(t->focus - NFIELDROWS);
	return -1;
}

static int attach_one(struct tui *t, const char *path, int *count)
{
	struct stat st;
	struct ba_err err = BA_ERR_INIT;
	if (stat(path, &st) < 0 || access(path, R_OK) < 0) {
		tui_message(t, 1, "cannot attach '%s': %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		tui_message(t, 1, "cannot attach '%s': not a regular file", path);
		return -1;
	}
	if (ba_draft_attach_add(t->d, path, NULL, NULL, &err) < 0) {
		tui_error(t, &err);
		return -1;
	}
	(*count)++;
	return 0;
}

static void attach(struct tui *t, const char *text)
{
	struct ba_buf p = BA_BUF_INIT;
	tui_expand_home(&p, text);
	const char *path = ba_buf_str(&p);
	int count = 0;
	if (!*path) {
		ba_buf_release(&p);
		return;
	}
	att_snapshot(t);
	if (strpbrk(path, "*?[")) {
		glob_t g;
		if (glob(path, 0, NULL, &g) != 0) {
			tui_message(t, 1, "no file matches '%s'", path);
		} else {
			for (size_t i = 0; i < g.gl_pathc; i++) {
				struct stat st;
				if (stat(g.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode))
					attach_one(t, g.gl_pathv[i], &count);
			}
			globfree(&g);
		}
	} else {
		attach_one(t, path, &count);
	}
	if (count) {
		changed(t);
		t->focus = NFIELDROWS + ba_draft_attach_count(t->d) - 1;
		tui_message(t, 0, "%d file%s attached", count, count == 1 ? "" : "s");
		probe_size(t);
	} else {
		snap_free(&t->undo[--t->nundo]);
	}
	ba_buf_release(&p);
}

static void complete(struct tui *t)
{
	struct ba_buf v = BA_BUF_INIT;
	if (t->matches.n) {      /* Tab again: the next candidate */
		t->imatch = (t->imatch + 1) % t->matches.n;
	} else {
		tui_line_get(&t->line, &v);
		/* the query: from after the last comma before the cursor */
		size_t from = t->line.cur;
		if (t->prompt == P_FIELD)
			while (from && t->line.buf[from - 1] != L',')
				from--;
		else
			from = 0;
		while (from < t->line.cur && t->line.buf[from] == L' ')
			from++;
		struct tui_line q = { 0 };
		for (size_t i = from; i < t->line.cur; i++)
			tui_line_key(&q, (int)t->line.buf[i]);
		tui_line_get(&q, &v);
		tui_line_release(&q);
		t->match_from = from;
		t->imatch = 0;
		if (t->prompt == P_ATTACH) {
			tui_complete_path(&t->matches, ba_buf_str(&v));
		} else if (t->prompt_field == BA_DRAFT_FROM) {
			complete_from(t, ba_buf_str(&v));
		} else {
			struct ba_buf acc = BA_BUF_INIT;
			struct ba_err err = BA_ERR_INIT;
			const struct ba_account *a = NULL;
			if (account_of(t, &acc) == 0)
				a = ba_config_account(t->cfg, ba_buf_str(&acc), &err);
			tui_complete_addr(&t->matches, ba_buf_str(&v), a ? a->aliases : NULL, &t->conf);
			ba_buf_release(&acc);
		}
		if (!t->matches.n) {
			tui_message(t, 1, "no completion for '%s'", ba_buf_str(&v));
			ba_buf_release(&v);
			return;
		}
	}
	tui_line_replace(&t->line, t->match_from, t->matches.v[t->imatch]);
	if (t->prompt == P_FIELD)
		field_from_line(t);
	if (t->matches.n > 1)
		snprintf(t->msg, sizeof t->msg, "%zu of %zu: Tab for the next", t->imatch + 1,
		         t->matches.n);
	else
		t->msg[0] = '\0';
	t->msg_error = 0;
	ba_buf_release(&v);
}

static void prompt_done(struct tui *t)
{
	t->prompt = P_NONE;
	free(t->prompt_orig);
	t->prompt_orig = NULL;
	tui_matches_release(&t->matches);
}

static void send_checks(struct tui *t, int stage);

static void prompt_enter(struct tui *t)
{
	struct ba_buf v = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	tui_line_get(&t->line, &v);
	const char *s = ba_buf_str(&v);
	long a = focused_att(t);
	enum tui_prompt p = t->prompt;
	prompt_done(t);
	switch (p) {
	case P_FIELD:
		probe_size(t);
		break;
	case P_ATTACH:
		attach(t, s);
		break;
	case P_RENAME:
	case P_TYPE:
		if (a < 0)
			break;
		if (p == P_TYPE && *s && !strchr(s, '/')) {
			tui_message(t, 1, "invalid content type '%s' (type/subtype)", s);
			break;
		}
		att_snapshot(t);
		if ((p == P_RENAME ? ba_draft_attach_set_name : ba_draft_attach_set_type)(
			    t->d, (size_t)a, *s ? s : NULL, &err) < 0)
			tui_error(t, &err);
		changed(t);
		break;
	case P_SENDAT: {
		int64_t when;
		if (ba_outbox_parse_time(&when, s, (int64_t)time(NULL), &err) < 0) {
			tui_error(t, &err);
			break;
		}
		t->send_at = when;
		send_checks(t, 0);
		break;
	}
	default:
		break;
	}
	ba_buf_release(&v);
}

void tui_prompt_key(struct tui *t, int key)
{
	if (t->prompt == P_ASK) {
		tui_ask_answer(t, key);
		return;
	}
	if (key == 27 || key == TUI_CTRL('g')) {
		if (t->prompt == P_FIELD) {
			struct ba_err err = BA_ERR_INIT;
			ba_draft_set(t->d, t->prompt_field,
			             t->prompt_orig && *t->prompt_orig ? t->prompt_orig : NULL, &err);
			changed(t);
		}
		prompt_done(t);
		tui_message(t, 0, "cancelled");
		return;
	}
	if (key == '\r' || key == '\n' || key == (TUI_FN | KEY_ENTER)) {
		prompt_enter(t);
		return;
	}
	if (key == '\t') {
		if (t->prompt == P_ATTACH ||
		    (t->prompt == P_FIELD && t->prompt_field != BA_DRAFT_SUBJECT))
			complete(t);
		return;
	}
	tui_matches_release(&t->matches);
	if (tui_line_key(&t->line, key) == 1 && t->prompt == P_FIELD)
		field_from_line(t);
}

static const char *prompt_label(const struct tui *t)
{
	switch (t->prompt) {
	case P_FIELD:
		for (size_t i = 0; i < NFIELDROWS; i++)
			if (rowfield[i] == t->prompt_field)
				return t->prompt_field == BA_DRAFT_FROM ? "From (Tab: accounts): " :
				       t->prompt_field == BA_DRAFT_TO ? "To: " :
				       t->prompt_field == BA_DRAFT_CC ? "Cc: " :
				       t->prompt_field == BA_DRAFT_BCC ? "Bcc: " : "Subject: ";
		return "";
	case P_ATTACH: return "Attach file: ";
	case P_RENAME: return "Send as: ";
	case P_TYPE: return "Content-Type: ";
	case P_SENDAT: return "Send at: ";
	default: return "";
	}
}

void tui_prompt_draw(struct tui *t, int y, int cols)
{
	if (t->prompt == P_ASK || t->prompt == P_NONE) {
		tui_attr(t->msg_error ? TA_ERROR : TA_NORMAL);
		tui_put_pad(y, 0, cols, t->msg);
		tui_attr(TA_NORMAL);
		return;
	}
	move(y, 0);
	clrtoeol();
	tui_line_draw(&t->line, y, cols, prompt_label(t));
}

/* ---- sending --------------------------------------------------------------------- */

static int mentions_attachment(const ba_draft *d)
{
	size_t n = 0;
	const char *body = ba_draft_body_text(d, &n);
	char buf[65536];
	if (!body && ba_draft_body_file(d)) {
		FILE *f = fopen(ba_draft_body_file(d), "r");
		if (f) {
			n = fread(buf, 1, sizeof buf - 1, f);
			fclose(f);
			body = buf;
		}
	}
	static const char *const words[] = { "attach", "enclosed", "첨부", "anbei", "pièce jointe" };
	for (size_t w = 0; body && w < sizeof(words) / sizeof(words[0]); w++) {
		size_t wl = strlen(words[w]);
		for (size_t i = 0; i + wl <= n; i++)
			if (strncasecmp(body + i, words[w], wl) == 0)
				return 1;
	}
	return 0;
}

/* Body plus attachments as base64 (4/3), the figure to hold against the server's SIZE. */
static uint64_t estimate(const ba_draft *d)
{
	uint64_t total = 4096;
	size_t n = 0;
	ba_draft_body_text(d, &n);
	total += n;
	struct stat st;
	if (ba_draft_body_file(d) && stat(ba_draft_body_file(d), &st) == 0)
		total += (uint64_t)st.st_size;
	for (size_t i = 0; i < ba_draft_attach_count(d); i++)
		if (stat(ba_draft_attach_path(d, i), &st) == 0)
			total += (uint64_t)st.st_size / 57 * 78 + 78;
	return total;
}

/* Stage 0: recipients and a message that builds; 1: subject; 2: "attached"; 3: SIZE. */
static void send_checks(struct tui *t, int stage)
{
	struct ba_err err = BA_ERR_INIT;
	if (stage <= 0) {
		if (!ba_draft_count(t->d, BA_DRAFT_TO) && !ba_draft_count(t->d, BA_DRAFT_CC) &&
		    !ba_draft_count(t->d, BA_DRAFT_BCC)) {
			tui_message(t, 1, "no recipients: give To, Cc or Bcc (t, c, b)");
			return;
		}
		ba_msg *m;
		if (ba_draft_build(&m, t->d, &err) < 0) {
			tui_error(t, &err);
			return;
		}
		ba_msg_free(m);
	}
	const char *subj = ba_draft_get(t->d, BA_DRAFT_SUBJECT, 0);
	if (stage <= 1 && !(subj && *subj)) {
		ask(t, ASK_NO_SUBJECT, "%sNo subject. Send anyway? (y/n)", NULL);
		return;
	}
	if (stage <= 2 && !ba_draft_attach_count(t->d) && mentions_attachment(t->d)) {
		ask(t, ASK_NO_ATTACH, "%sThe message mentions an attachment but has none. Send anyway? (y/n)",
		    NULL);
		return;
	}
	if (stage <= 3 && t->worker && ba_draft_attach_count(t->d)) {
		struct ba_buf acc = BA_BUF_INIT;
		uint64_t limit = 0, est = estimate(t->d);
		if (account_of(t, &acc) == 0 &&
		    tui_worker_size_limit(t->worker, ba_buf_str(&acc), &limit, &err) == 0 && limit &&
		    est > limit) {
			char a[32], b[32];
			tui_message(t, 1, "the message is about %s, over the server's limit of %s (SIZE): "
			            "remove attachments", tui_size(a, sizeof a, est),
			            tui_size(b, sizeof b, limit));
			ba_buf_release(&acc);
			return;
		}
		ba_buf_release(&acc);
	}
	tui_do_send(t);
}

/*
 * The message being queued is durable in the outbox (rc 0, id) or could
 * not be written (rc -1, err): the draft file goes only in the first case.
 */
static void enqueue_done(struct tui *t, int rc, const char *id, struct ba_err *qerr)
{
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d = t->enq_d;
	char *path = t->enq_path;
	int64_t send_at = t->enq_send_at;
	t->enq_ticket = 0;
	t->enq_d = NULL;
	t->enq_path = NULL;
	if (rc < 0) {
		tui_message(t, 1, "not queued: %s (the draft is kept: reopen it from the drafts)",
		            qerr->text[0] ? qerr->text : "failed");
		ba_draft_free(d);
		free(path);
		return;
	}
	/* the copy to take it back or reopen it, before the draft goes */
	struct ba_buf copy = BA_BUF_INIT;
	if (tui_copy_path(&copy, id) == 0)
		ba_draft_save(d, ba_buf_str(&copy), &err);
	ba_buf_release(&copy);
	tui_history_add(d);
	tui_saver_sync(t->saver, &err);   /* no late write may bring the file back */
	if (path && ba_draft_delete(path, &err) < 0 && err.code != EX_NOINPUT)
		tui_error(t, &err);
	ba_draft_free(d);
	free(path);
	snprintf(t->sel_id, sizeof t->sel_id, "%s", id);
	if (!send_at && t->conf.undo_seconds) {
		snprintf(t->undo_id, sizeof t->undo_id, "%s", id);
		t->undo_until_ms = tui_now_ms() + t->conf.undo_seconds * 1000LL;
		char k[32];
		tui_message(t, 0, "Queued. %s takes it back within %d s.",
		            tui_func_key(&t->conf, MENU_OUTBOX, F_CANCEL, k, sizeof k), t->conf.undo_seconds);
	} else if (send_at) {
		char when[64];
		time_t w = (time_t)send_at;
		struct tm tm;
		strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime_r(&w, &tm));
		tui_message(t, 0, "Queued for %s.", when);
	} else {
		tui_message(t, 0, "Queued.");
	}
}

int tui_enqueue_check(struct tui *t, int wait)
{
	struct ba_err err = BA_ERR_INIT;
	char id[TUI_ID_MAX] = "";
	if (!t->enq_ticket || !t->worker)
		return 0;
	int rc;
	while ((rc = tui_worker_enqueue_poll(t->worker, t->enq_ticket, id, sizeof id, &err)) == 1) {
		if (!wait)
			return 1;
		struct pollfd p = { tui_worker_fd(t->worker), POLLIN, 0 };
		poll(&p, 1, 100);
		tui_worker_drain(t->worker);
	}
	enqueue_done(t, rc, id, &err);
	return 0;
}

/* How long Send waits for the message to be durable before the composer closes anyway. */
#define ENQUEUE_WAIT_MS 100

void tui_do_send(struct tui *t)
{
	struct ba_err err = BA_ERR_INIT;
	int64_t now = (int64_t)time(NULL);
	int64_t hold = t->send_at ? t->send_at :
	               (t->conf.undo_seconds ? now + t->conf.undo_seconds : 0);
	if (!t->worker) {
		tui_message(t, 1, "cannot send: the outbox is not available");
		return;
	}
	if (t->enq_ticket) {
		tui_message(t, 1, "the last message is still being written into the outbox: "
		            "send this one when it is queued");
		return;
	}
	int64_t t0 = tui_now_ms();
	unsigned ticket;
	/* the files are read and the message written by a thread of the worker */
	if (tui_worker_enqueue_start(t->worker, t->d, NULL, hold, &ticket, &err) < 0) {
		tui_error(t, &err);
		t->send_at = 0;
		return;
	}
	/* the composition is kept, and its draft file on disk, until the message is durable */
	tui_compose_autosave(t, 1);
	t->enq_ticket = ticket;
	t->enq_d = t->d;
	t->enq_path = t->draft_path;
	t->enq_send_at = t->send_at;
	t->d = NULL;
	t->draft_path = NULL;
	t->send_at = 0;
	int left;
	while (tui_enqueue_check(t, 0) && (left = (int)(t0 + ENQUEUE_WAIT_MS - tui_now_ms())) > 0) {
		struct pollfd p = { tui_worker_fd(t->worker), POLLIN, 0 };
		poll(&p, 1, left);
		tui_worker_drain(t->worker);
	}
	/* Keys typed while Send waited were meant for a screen that was not there: they are
	 * dropped, never run as commands. */
	int dropped = tui_now_ms() - t0 > 150 && flushinp() == OK;
	if (t->enq_ticket)
		tui_message(t, 0, "Queuing: the message is being written into the outbox...");
	if (dropped)
		snprintf(t->msg + strlen(t->msg), sizeof t->msg - strlen(t->msg),
		         " (keys typed while it was written were dropped)");
	tui_compose_new(t);
	t->screen = SCR_OUTBOX;
	tui_refresh_outbox(t);
}

/*
 * A writer that keeps the first PREVIEW_MAX bytes and counts the rest: the
 * preview of a message with a 100 MB attachment shows its start without
 * holding it all in memory.
 */
#define PREVIEW_MAX (2u << 20)
struct head_writer {
	ba_writer base;
	struct ba_buf *buf;
	uint64_t skipped;
};

static int head_write(ba_writer *w, const void *p, size_t n, struct ba_err *err)
{
	struct head_writer *h = (struct head_writer *)w;
	size_t keep = h->buf->len < PREVIEW_MAX ? PREVIEW_MAX - h->buf->len : 0;
	if (keep > n)
		keep = n;
	if (keep && ba_buf_add(h->buf, p, keep) < 0)
		return ba_err_set(err, EX_OSERR, "out of memory");
	h->skipped += n - keep;
	return 0;
}

static void preview(struct tui *t)
{
	static const struct ba_writer_ops ops = { head_write, NULL };
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	struct head_writer w = { { &ops }, &out, 0 };
	struct ba_msg_opts o = { 0 };
	ba_msg *m;
	o.mime.eol = "\n";
	o.mime.flags = BA_MIME_ALLOW_8BIT;   /* the body readable as it is */
	if (ba_draft_build(&m, t->d, &err) < 0) {
		tui_error(t, &err);
		return;
	}
	int rc = ba_msg_write(m, &w.base, &o, &err);
	ba_msg_free(m);
	if (rc < 0) {
		tui_error(t, &err);
		ba_buf_release(&out);
		return;
	}
	if (w.skipped)
		ba_buf_addf(&out, "\n[... %" PRIu64 " more bytes not shown]\n", w.skipped);
	size_t len;
	char *text = ba_buf_detach(&out, &len);
	tui_pager_show(t, "Preview (Bcc is not written into the message)", text, len);
}

/* ---- questions ------------------------------------------------------------------- */

void tui_ask_answer(struct tui *t, int key)
{
	enum tui_ask a = t->ask;
	int yes = key == 'y' || key == 'Y', no = key == 'n' || key == 'N';
	int cancel = key == 27 || key == TUI_CTRL('g') || key == 'c' || key == 'C';
	struct ba_err err = BA_ERR_INIT;
	if (!yes && !no && !cancel)
		return;   /* a stray key: the question stays */
	t->prompt = P_NONE;
	t->ask = ASK_NONE;
	t->msg[0] = '\0';
	switch (a) {
	case ASK_NO_SUBJECT:
		if (yes)
			send_checks(t, 2);
		else
			t->send_at = 0;
		break;
	case ASK_NO_ATTACH:
		if (yes)
			send_checks(t, 3);
		else
			t->send_at = 0;
		break;
	case ASK_POSTPONE:
		if (cancel)
			break;
		if (yes) {
			tui_compose_autosave(t, 1);
			tui_message(t, 0, "postponed");
		} else {
			tui_compose_discard(t);
		}
		t->quit = 1;
		break;
	case ASK_RESEND_UNKNOWN:
		if (yes && tui_worker_retry(t->worker, t->ask_id, &err) < 0)
			tui_error(t, &err);
		tui_refresh_outbox(t);
		break;
	case ASK_DELETE:
		if (yes) {
			if (tui_worker_remove(t->worker, t->ask_id, &err) < 0) {
				tui_error(t, &err);
			} else {
				struct ba_buf copy = BA_BUF_INIT;
				if (tui_copy_path(&copy, t->ask_id) == 0)
					unlink(ba_buf_str(&copy));
				ba_buf_release(&copy);
				tui_message(t, 0, "deleted");
			}
		}
		tui_refresh_outbox(t);
		break;
	case ASK_DELETE_DRAFT:
		if (yes && t->dsel < t->ndrafts) {
			if (t->draft_path && strcmp(t->draft_path, t->drafts[t->dsel]) == 0)
				tui_compose_new(t), t->screen = SCR_DRAFTS;
			tui_saver_sync(t->saver, &err);
			if (ba_draft_delete(t->drafts[t->dsel], &err) < 0)
				tui_error(t, &err);
			tui_drafts_load(t);
		}
		break;
	case ASK_QUIT_SENDING:
		if (yes)
			t->quit = 2;
		break;
	default:
		break;
	}
}

/* ---- the screen ------------------------------------------------------------------ */

static void row_text(struct tui *t, size_t r, struct ba_buf *b)
{
	size_t na = ba_draft_attach_count(t->d);
	char sz[32];
	ba_buf_reset(b);
	if (r < NFIELDROWS) {
		char *v = tui_field_str(t->d, rowfield[r]);
		ba_buf_addf(b, "%8s: %s", rowlabel[r], v);
		free(v);
	} else if (r < NFIELDROWS + na) {
		size_t i = r - NFIELDROWS;
		const char *path = ba_draft_attach_path(t->d, i);
		const char *name = ba_draft_attach_name(t->d, i);
		const char *type = ba_draft_attach_type(t->d, i);
		const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		struct stat st;
		int ok = stat(path, &st) == 0;
		ba_buf_addf(b, "  [%zu] %s  %s  %s", i + 1, name ? name : base,
		            type ? type : "(type detected)",
		            ok ? tui_size(sz, sizeof sz, (uint64_t)st.st_size) : "MISSING");
		if (name && strcmp(name, base))
			ba_buf_addf(b, "  (file %s)", base);
		else if (strcmp(path, base))
			ba_buf_addf(b, "  (%s)", path);
	} else {
		size_t n = 0, lines = 0;
		const char *body = ba_draft_body_text(t->d, &n);
		for (size_t i = 0; i < n; i++)
			lines += body[i] == '\n';
		if (n && body[n - 1] != '\n')
			lines++;
		if (ba_draft_body_file(t->d)) {
			ba_buf_addf(b, "%8s: file %s", "Body", ba_draft_body_file(t->d));
		} else if (!n) {
			ba_buf_addf(b, "%8s: (empty; %s edits it)", "Body", "e");
		} else {
			size_t first = strcspn(body, "\n");
			ba_buf_addf(b, "%8s: (%zu line%s) ", "Body", lines, lines == 1 ? "" : "s");
			ba_buf_add(b, body, first < n ? first : n);
		}
	}
}

void tui_compose_draw(struct tui *t, int rows, int cols)
{
	struct ba_buf b = BA_BUF_INIT;
	size_t n = nrows(t), na = ba_draft_attach_count(t->d);
	if (t->focus >= n)
		t->focus = n - 1;
	/* rows 1 .. rows-3 hold the list; an attachments header when there is room */
	int avail = rows - 3;
	int header = avail >= 8;
	int list = avail - header;
	if (list < 1)
		list = 1;
	if (t->focus < t->compose_top)
		t->compose_top = t->focus;
	if (t->focus >= t->compose_top + (size_t)list)
		t->compose_top = t->focus - (size_t)list + 1;
	/* no empty rows at the end while rows above are hidden (after a resize) */
	size_t shown = n + (header && na ? 1 : 0);
	if (t->compose_top && t->compose_top + (size_t)list > shown)
		t->compose_top = shown > (size_t)list ? shown - (size_t)list : 0;
	if (t->focus < t->compose_top)
		t->compose_top = t->focus;
	int y = 1;
	for (size_t r = t->compose_top; r < n && y < rows - 2; r++) {
		if (header && r == NFIELDROWS && y < rows - 2) {
			uint64_t total = 0;
			struct stat st;
			char sz[32];
			for (size_t i = 0; i < na; i++)
				if (stat(ba_draft_attach_path(t->d, i), &st) == 0)
					total += (uint64_t)st.st_size;
			ba_buf_reset(&b);
			if (na)
				ba_buf_addf(&b, "-- Attachments: %zu, %s --", na, tui_size(sz, sizeof sz, total));
			else
				ba_buf_addstr(&b, "-- Attachments: none (a attaches) --");
			tui_attr(TA_DIM);
			tui_put_pad(y++, 0, cols, ba_buf_str(&b));
			if (y >= rows - 2)
				break;
		}
		row_text(t, r, &b);
		int focused = r == t->focus && t->prompt != P_FIELD;
		tui_attr(focused ? TA_SELECT : TA_NORMAL);
		if (r >= NFIELDROWS && r < NFIELDROWS + na) {
			struct stat st;
			if (!focused && stat(ba_draft_attach_path(t->d, r - NFIELDROWS), &st) < 0)
				tui_attr(TA_ERROR);
		}
		tui_put_pad(y, 0, cols, ba_buf_str(&b));
		if (r < NFIELDROWS && t->prompt == P_FIELD && rowfield[r] == t->prompt_field) {
			tui_attr(TA_LABEL);
			tui_put(y, 0, cols, ">");
		}
		y++;
	}
	tui_attr(TA_NORMAL);
	ba_buf_release(&b);
}

void tui_compose_key(struct tui *t, int key)
{
	enum tui_func f = tui_key_func(&t->conf, MENU_COMPOSE, key);
	size_t n = nrows(t);
	long a = focused_att(t);
	char k[32];
	switch (f) {
	case F_UP:
		if (t->focus)
			t->focus--;
		break;
	case F_DOWN:
		if (t->focus + 1 < n)
			t->focus++;
		break;
	case F_TOP: t->focus = 0; break;
	case F_BOTTOM: t->focus = n - 1; break;
	case F_PAGE_UP: t->focus = t->focus > 5 ? t->focus - 5 : 0; break;
	case F_PAGE_DOWN: t->focus = t->focus + 5 < n ? t->focus + 5 : n - 1; break;
	case F_EDIT:
		if (t->focus < NFIELDROWS)
			prompt_field(t, rowfield[t->focus]);
		else if (a >= 0)
			prompt_start(t, P_RENAME, ba_draft_attach_name(t->d, (size_t)a));
		else
			tui_editor_start(t);
		break;
	case F_EDIT_FROM: prompt_field(t, BA_DRAFT_FROM); break;
	case F_EDIT_TO: prompt_field(t, BA_DRAFT_TO); break;
	case F_EDIT_CC: prompt_field(t, BA_DRAFT_CC); break;
	case F_EDIT_BCC: prompt_field(t, BA_DRAFT_BCC); break;
	case F_EDIT_SUBJECT: prompt_field(t, BA_DRAFT_SUBJECT); break;
	case F_EDIT_BODY:
		t->focus = n - 1;
		tui_editor_start(t);
		break;
	case F_ATTACH: prompt_start(t, P_ATTACH, ""); break;
	case F_DETACH:
		if (a < 0) {
			tui_message(t, 1, "no attachment focused (j/k moves)");
			break;
		}
		att_snapshot(t);
		{
			struct ba_err err = BA_ERR_INIT;
			ba_draft_attach_remove(t->d, (size_t)a, &err);
		}
		changed(t);
		tui_message(t, 0, "removed (the file is not touched); %s undoes",
		            tui_func_key(&t->conf, MENU_COMPOSE, F_UNDO, k, sizeof k));
		break;
	case F_UNDO:
		if (att_undo(t) == 0) {
			tui_message(t, 0, "attachment change undone");
		} else if (t->undo_id[0] && tui_now_ms() < t->undo_until_ms) {
			char id[TUI_ID_MAX];
			snprintf(id, sizeof id, "%s", t->undo_id);
			tui_refresh_outbox(t);
			if (tui_outbox_take_back(t, id) < 0)
				tui_message(t, 1, "too late: the message is no longer held");
		} else {
			tui_message(t, 1, "nothing to undo");
		}
		break;
	case F_RENAME:
		if (a < 0) {
			tui_message(t, 1, "no attachment focused (j/k moves)");
			break;
		}
		{
			const char *p = ba_draft_attach_path(t->d, (size_t)a);
			const char *nm = ba_draft_attach_name(t->d, (size_t)a);
			prompt_start(t, P_RENAME, nm ? nm : (strrchr(p, '/') ? strrchr(p, '/') + 1 : p));
		}
		break;
	case F_EDIT_TYPE:
		if (a < 0) {
			tui_message(t, 1, "no attachment focused (j/k moves)");
			break;
		}
		prompt_start(t, P_TYPE, ba_draft_attach_type(t->d, (size_t)a));
		break;
	case F_SEND:
		t->send_at = 0;
		send_checks(t, 0);
		break;
	case F_SEND_LATER: prompt_start(t, P_SENDAT, ""); break;
	case F_PREVIEW:
		preview(t);
		break;
	case F_POSTPONE:
		if (!t->touched && !t->draft_path) {
			tui_message(t, 1, "nothing to postpone");
			break;
		}
		tui_compose_autosave(t, 1);
		tui_message(t, 0, "postponed to %s", t->draft_path ? t->draft_path : "drafts");
		free(t->draft_path);
		t->draft_path = NULL;
		t->touched = 0;
		tui_compose_new(t);
		break;
	case F_QUIT:
		if (t->touched && !is_empty(t->d))
			ask(t, ASK_POSTPONE, "%sPostpone this message? (y: keep the draft, n: discard it, "
			    "c: go back)", NULL);
		else {
			if (t->touched || (t->draft_path && is_empty(t->d)))
				tui_compose_discard(t);
			t->quit = 1;
		}
		break;
	case F_OUTBOX:
		t->screen = SCR_OUTBOX;
		tui_refresh_outbox(t);
		break;
	case F_DRAFTS:
		tui_compose_autosave(t, 1);
		tui_drafts_load(t);
		t->screen = SCR_DRAFTS;
		break;
	case F_HELP: tui_help_show(t, MENU_COMPOSE); break;
	case F_REDRAW: clearok(curscr, TRUE); break;
	default:
		if (key != (TUI_FN | KEY_RESIZE))
			tui_message(t, 1, "key %s is not bound; ? lists the keys", tui_key_name(key, k, sizeof k));
		break;
	}
}

/* ---- the drafts picker --------------------------------------------------------------- */

void tui_drafts_load(struct tui *t)
{
	struct ba_err err = BA_ERR_INIT;
	ba_draft_list_free(t->drafts, t->ndrafts);
	t->drafts = NULL;
	t->ndrafts = 0;
	if (ba_draft_list(&t->drafts, &t->ndrafts, drafts_dir(t), &err) < 0 && err.code != EX_NOINPUT)
		tui_error(t, &err);
	/* newest first */
	for (size_t i = 0; i < t->ndrafts / 2; i++) {
		char *x = t->drafts[i];
		t->drafts[i] = t->drafts[t->ndrafts - 1 - i];
		t->drafts[t->ndrafts - 1 - i] = x;
	}
	if (t->dsel >= t->ndrafts)
		t->dsel = t->ndrafts ? t->ndrafts - 1 : 0;
}

void tui_drafts_draw(struct tui *t, int rows, int cols)
{
	int list = rows - 3;
	if (list < 1)
		list = 1;
	if (!t->ndrafts) {
		tui_put_pad(1, 0, cols, "No drafts. m starts a new message.");
		return;
	}
	if (t->dsel < t->dtop)
		t->dtop = t->dsel;
	if (t->dsel >= t->dtop + (size_t)list)
		t->dtop = t->dsel - (size_t)list + 1;
	if (t->dtop + (size_t)list > t->ndrafts)
		t->dtop = t->ndrafts > (size_t)list ? t->ndrafts - (size_t)list : 0;
	int y = 1;
	for (size_t i = t->dtop; i < t->ndrafts && y < rows - 2; i++, y++) {
		struct ba_buf b = BA_BUF_INIT;
		struct ba_err err = BA_ERR_INIT;
		struct stat st;
		char when[32] = "?";
		if (stat(t->drafts[i], &st) == 0) {
			struct tm tm;
			strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&st.st_mtime, &tm));
		}
		ba_draft *d;
		if (ba_draft_load(&d, t->drafts[i], &err) == 0) {
			char *to = tui_field_str(d, BA_DRAFT_TO);
			const char *s = ba_draft_get(d, BA_DRAFT_SUBJECT, 0);
			ba_buf_addf(&b, "%s  %s  To: %s  [%zu att.]%s", when, s && *s ? s : "(no subject)",
			            *to ? to : "-", ba_draft_attach_count(d),
			            t->draft_path && !strcmp(t->draft_path, t->drafts[i]) ? "  (open)" : "");
			free(to);
			ba_draft_free(d);
		} else {
			ba_buf_addf(&b, "%s  unreadable: %s", when, err.text);
		}
		tui_attr(i == t->dsel ? TA_SELECT : TA_NORMAL);
		tui_put_pad(y, 0, cols, ba_buf_str(&b));
		ba_buf_release(&b);
	}
	tui_attr(TA_NORMAL);
}

void tui_drafts_key(struct tui *t, int key)
{
	enum tui_func f = tui_key_func(&t->conf, MENU_DRAFTS, key);
	switch (f) {
	case F_UP:
		if (t->dsel)
			t->dsel--;
		break;
	case F_DOWN:
		if (t->dsel + 1 < t->ndrafts)
			t->dsel++;
		break;
	case F_TOP: t->dsel = 0; break;
	case F_BOTTOM: t->dsel = t->ndrafts ? t->ndrafts - 1 : 0; break;
	case F_RECALL:
		if (t->dsel < t->ndrafts) {
			/* the open composition is on disk already (autosave): nothing is lost */
			tui_compose_autosave(t, 1);
			if (tui_compose_open(t, t->drafts[t->dsel]) == 0)
				tui_message(t, 0, "draft recalled; it stays on disk until it is sent or "
				            "discarded");
		}
		break;
	case F_DELETE:
		if (t->dsel < t->ndrafts)
			ask(t, ASK_DELETE_DRAFT, "%sDelete this draft? (y/n)", NULL);
		break;
	case F_COMPOSE:
		t->screen = SCR_COMPOSE;
		break;
	case F_OUTBOX:
		t->screen = SCR_OUTBOX;
		tui_refresh_outbox(t);
		break;
	case F_HELP: tui_help_show(t, MENU_DRAFTS); break;
	default: break;
	}
}
