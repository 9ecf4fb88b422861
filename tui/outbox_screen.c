/* tui/outbox_screen.c - the outbox: every entry in one visible state, its details, its keys
 *
 * Each state is a word (colour only adds to it).  Progress is the share of
 * the message the server has acknowledged (the worker subtracts what still
 * sits in the socket), not what was written.  An error (deferred, failed,
 * sent-unknown) stays marked until the user acknowledges it.  Only the rows
 * on the screen are formatted, so 10,000 entries scroll like 10.
 */
#include <curses.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "tui.h"

/*
 * The state shown: the worker reports "awaiting reply" once the end of the
 * data is written, but while the server has not acknowledged every byte the
 * user is still waiting on the upload, so it shows as sending with the
 * acknowledged percentage.
 */
enum tui_state tui_shown_state(const struct tui_entry *e)
{
	if (e->state == TUI_AWAITING && e->sent && e->acked < e->sent)
		return TUI_SENDING;
	return e->state;
}

static int is_error(const struct tui_entry *e)
{
	return (e->state == TUI_DEFERRED || e->state == TUI_FAILED || e->state == TUI_SENT_UNKNOWN) &&
	       !e->acknowledged;
}

int tui_unacked_errors(const struct tui *t)
{
	int n = 0;
	for (size_t i = 0; i < t->nent; i++)
		n += is_error(&t->ent[i]);
	return n;
}

static enum tui_attr state_attr(enum tui_state s)
{
	switch (s) {
	case TUI_SENT: return TA_OK;
	case TUI_FAILED: case TUI_SENT_UNKNOWN: return TA_ERROR;
	case TUI_DEFERRED: return TA_WARN;
	case TUI_CONNECTING: case TUI_SENDING: case TUI_AWAITING: return TA_BUSY;
	default: return TA_NORMAL;
	}
}

static int percent(const struct tui_entry *e)
{
	uint64_t total = e->total ? e->total : e->size;
	if (!total)
		return 0;
	uint64_t a = e->acked > total ? total : e->acked;
	return (int)(a * 100 / total);
}

/* "17:39" today (with seconds when secs), "Dec 07 17:39" on another day. */
static void hhmm(char *buf, size_t n, int64_t t, int secs)
{
	time_t w = (time_t)t, now = time(NULL);
	struct tm tm, tn;
	localtime_r(&w, &tm);
	localtime_r(&now, &tn);
	int today = tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday;
	strftime(buf, n, today ? (secs ? "%H:%M:%S" : "%H:%M") : "%b %d %H:%M", &tm);
}

/* The state and what it needs to be read at a glance: "sending 42%", "held 8 s". */
static void state_text(struct ba_buf *b, const struct tui_entry *e)
{
	int64_t now = (int64_t)time(NULL);
	char when[32];
	enum tui_state st = tui_shown_state(e);
	ba_buf_addstr(b, tui_state_name(st));
	switch (st) {
	case TUI_HELD:
		if (e->hold_until - now <= 3600)
			ba_buf_addf(b, " %ld s", (long)(e->hold_until > now ? e->hold_until - now : 0));
		else
			hhmm(when, sizeof when, e->hold_until, 0), ba_buf_addf(b, " until %s", when);
		break;
	case TUI_SENDING:
	case TUI_AWAITING:
		if (st == TUI_SENDING)
			ba_buf_addf(b, " %d%%", percent(e));
		break;
	case TUI_DEFERRED:
		hhmm(when, sizeof when, e->next_try, 1);
		ba_buf_addf(b, " (try %u at %s)", e->attempts + 1, when);
		break;
	default:
		break;
	}
}

static void row(struct tui *t, int y, int cols, const struct tui_entry *e, int selected)
{
	struct ba_buf b = BA_BUF_INIT, st = BA_BUF_INIT;
	char when[32], sz[32];
	state_text(&st, e);
	hhmm(when, sizeof when, e->created, 0);
	/* narrow: the state alone, whole (it is what the row is for) */
	int sw = cols >= 60 ? 22 : cols >= 40 ? cols / 2 : cols;
	if (sw > cols)
		sw = cols;
	tui_attr(selected ? TA_SELECT : state_attr(tui_shown_state(e)));
	ba_buf_addf(&b, "%s%s", is_error(e) ? "ERROR " : "", ba_buf_str(&st));
	tui_put_pad(y, 0, sw, ba_buf_str(&b));
	ba_buf_reset(&b);
	tui_attr(selected ? TA_SELECT : TA_NORMAL);
	ba_buf_addf(&b, " %5s %8s  %s  %s", when, tui_size(sz, sizeof sz, e->size),
	            *e->subject ? e->subject : "(no subject)", e->rcpts);
	if (cols > sw)
		tui_put_pad(y, sw, cols - sw, ba_buf_str(&b));
	ba_buf_release(&b);
	ba_buf_release(&st);
	(void)t;
}

/* The details of e, one line each, into lines (caller frees each). */
static size_t details(const struct tui_entry *e, char **lines, size_t max)
{
	struct ba_buf b = BA_BUF_INIT;
	char a[32], c[32], when[32];
	size_t n = 0;
	int64_t now = (int64_t)time(NULL);
#define LINE() do { ba_buf_add(&b, "", 0); if (n < max) lines[n++] = ba_buf_detach(&b, NULL); \
		ba_buf_release(&b); } while (0)
	ba_buf_addf(&b, "State: %s%s   Id: %s   Account: %s", tui_state_name(tui_shown_state(e)),
	            is_error(e) ? " (ERROR, ! acknowledges)" : "", e->id, e->account);
	LINE();
	if (e->state == TUI_SENDING || e->state == TUI_AWAITING) {
		uint64_t total = e->total ? e->total : e->size;
		ba_buf_addf(&b, "Acknowledged by the server: %s of %s (%d%%)", tui_size(a, sizeof a, e->acked),
		            tui_size(c, sizeof c, total), percent(e));
		if (e->rate > 0) {
			ba_buf_addf(&b, ", %s/s", tui_size(a, sizeof a, (uint64_t)e->rate));
			if (total > e->acked)
				ba_buf_addf(&b, ", %.0f s left", (double)(total - e->acked) / e->rate);
		}
		if (tui_shown_state(e) == TUI_AWAITING)
			ba_buf_addstr(&b, "; all data acknowledged, awaiting the server's reply");
		LINE();
	}
	if (e->state == TUI_HELD) {
		hhmm(when, sizeof when, e->hold_until, 1);
		ba_buf_addf(&b, "Held until %s (%ld s): c or u takes it back, nothing is sent", when,
		            (long)(e->hold_until > now ? e->hold_until - now : 0));
		LINE();
	}
	if (e->attempts || e->state == TUI_DEFERRED) {
		ba_buf_addf(&b, "Attempts: %u", e->attempts);
		if (e->state == TUI_DEFERRED) {
			hhmm(when, sizeof when, e->next_try, 1);
			ba_buf_addf(&b, "   next try at %s (r retries now)", when);
		}
		LINE();
	}
	if (e->state == TUI_SENT_UNKNOWN) {
		ba_buf_addstr(&b, "The connection was lost after the end of the data: the server may "
		                  "have accepted it. It is never sent again unless you retry (r).");
		LINE();
	}
	if (*e->reply) {
		const char *p = e->reply;
		int first = 1;
		while (*p) {
			size_t len = strcspn(p, "\n");
			ba_buf_addstr(&b, first ? (e->state == TUI_SENT ? "Server reply: " : "Reason: ") : "  ");
			ba_buf_add(&b, p, len);
			LINE();
			first = 0;
			p += len + (p[len] == '\n');
		}
	}
	/* what the message is comes last: on a short screen the state and its reason come first */
	ba_buf_addf(&b, "From: %s   To: %s", *e->from ? e->from : "<>", e->rcpts);
	LINE();
	ba_buf_addf(&b, "Subject: %s   Size: %s", e->subject, tui_size(a, sizeof a, e->size));
	LINE();
#undef LINE
	ba_buf_release(&b);
	return n;
}

static void keep_selection(struct tui *t)
{
	if (t->sel_id[0])
		for (size_t i = 0; i < t->nent; i++)
			if (strcmp(t->ent[i].id, t->sel_id) == 0) {
				t->sel = i;
				return;
			}
	if (t->sel >= t->nent)
		t->sel = t->nent ? t->nent - 1 : 0;
}

void tui_outbox_draw(struct tui *t, int rows, int cols)
{
	keep_selection(t);
	if (!t->nent) {
		tui_put_pad(1, 0, cols, "The outbox is empty.");
		return;
	}
	char *lines[24];
	size_t nd = 0;
	int area = rows - 3;       /* rows 1 .. rows-3 */
	if (area >= 8) {
		nd = details(&t->ent[t->sel], lines, area >= 20 ? 12 : 6);
		if ((int)nd > area - 5)
			nd = (size_t)(area - 5);
	}
	int list = area - (nd ? (int)nd + 1 : 0);
	if (list < 1)
		list = 1;
	if (t->sel < t->top)
		t->top = t->sel;
	if (t->sel >= t->top + (size_t)list)
		t->top = t->sel - (size_t)list + 1;
	if (t->top + (size_t)list > t->nent)
		t->top = t->nent > (size_t)list ? t->nent - (size_t)list : 0;
	int y = 1;
	for (size_t i = t->top; i < t->nent && y <= list; i++, y++)
		row(t, y, cols, &t->ent[i], i == t->sel);
	tui_attr(TA_NORMAL);
	if (nd) {
		y = rows - 2 - (int)nd - 1;
		tui_attr(TA_DIM);
		char pos[64];
		snprintf(pos, sizeof pos, "-- entry %zu of %zu --", t->sel + 1, t->nent);
		tui_put_pad(y++, 0, cols, pos);
		tui_attr(TA_NORMAL);
		for (size_t i = 0; i < nd; i++) {
			if (i == 0 && is_error(&t->ent[t->sel]))
				tui_attr(TA_ERROR);
			tui_put_pad(y++, 0, cols, lines[i]);
			tui_attr(TA_NORMAL);
			free(lines[i]);
		}
	}
}

static void view(struct tui *t, const struct tui_entry *e)
{
	struct ba_buf text = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	int fd = -1;
	if (tui_worker_message_open(t->worker, e->id, &fd, &err) < 0) {
		tui_error(t, &err);
		return;
	}
	char tmp[65536];
	ssize_t r;
	while (text.len < (2u << 20) && (r = read(fd, tmp, sizeof tmp)) > 0)
		for (ssize_t i = 0; i < r; i++)
			if (tmp[i] != '\r')
				ba_buf_addch(&text, tmp[i]);
	close(fd);
	ba_buf_add(&text, "", 0);
	size_t len;
	char *s = ba_buf_detach(&text, &len);
	char title[128];
	snprintf(title, sizeof title, "Message %s (as sent: no Bcc)", e->id);
	tui_pager_show(t, title, s, len);
}

/* Takes the saved composition of e back into the composer; with remove, the entry goes. */
static void reopen(struct tui *t, const struct tui_entry *e, int remove)
{
	struct ba_buf copy = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d = NULL;
	if (tui_copy_path(&copy, e->id) < 0 || ba_draft_load(&d, ba_buf_str(&copy), &err) < 0) {
		tui_message(t, 1, "no saved composition for %s (v views the message)", e->id);
		ba_buf_release(&copy);
		return;
	}
	if (remove && tui_worker_remove(t->worker, e->id, &err) < 0) {
		tui_error(t, &err);
		ba_draft_free(d);
		ba_buf_release(&copy);
		return;
	}
	int kept = t->touched && t->draft_path;
	tui_compose_autosave(t, 1);
	if (t->touched)
		free(t->draft_path), t->draft_path = NULL;   /* it stays in the drafts */
	tui_compose_take(t, d);
	if (remove) {
		unlink(ba_buf_str(&copy));
		if (!strcmp(t->undo_id, e->id))
			t->undo_id[0] = '\0';
		tui_message(t, 0, "taken back: nothing was sent%s",
		            kept ? " (the other message is in the drafts, r)" : "");
	} else {
		tui_message(t, 0, "reopened in the composer%s",
		            kept ? " (the other message is in the drafts, r)" : "");
	}
	tui_refresh_outbox(t);
	ba_buf_release(&copy);
}

int tui_outbox_take_back(struct tui *t, const char *id)
{
	for (size_t i = 0; i < t->nent; i++)
		if (strcmp(t->ent[i].id, id) == 0 && t->ent[i].state == TUI_HELD) {
			reopen(t, &t->ent[i], 1);
			return 0;
		}
	return -1;
}

void tui_outbox_key(struct tui *t, int key)
{
	enum tui_func f = key == (TUI_FN | 0) ? F_NONE : tui_key_func(&t->conf, MENU_OUTBOX, key);
	struct ba_err err = BA_ERR_INIT;
	size_t page = LINES > 6 ? (size_t)LINES - 6 : 1;
	keep_selection(t);
	const struct tui_entry *e = t->nent ? &t->ent[t->sel] : NULL;
	switch (f) {
	case F_UP:
		if (t->sel)
			t->sel--;
		break;
	case F_DOWN:
		if (t->sel + 1 < t->nent)
			t->sel++;
		break;
	case F_PAGE_UP: t->sel = t->sel > page ? t->sel - page : 0; break;
	case F_PAGE_DOWN:
		t->sel = t->sel + page < t->nent ? t->sel + page : (t->nent ? t->nent - 1 : 0);
		break;
	case F_TOP: t->sel = 0; break;
	case F_BOTTOM: t->sel = t->nent ? t->nent - 1 : 0; break;
	case F_COMPOSE: t->screen = SCR_COMPOSE; break;
	case F_DRAFTS:
		tui_drafts_load(t);
		t->screen = SCR_DRAFTS;
		break;
	case F_HELP: tui_help_show(t, MENU_OUTBOX); break;
	case F_REDRAW: clearok(curscr, TRUE); break;
	case F_NONE: break;
	default:
		if (!e) {
			tui_message(t, 1, "the outbox is empty");
			break;
		}
		switch (f) {
		case F_CANCEL:
			if (e->state == TUI_HELD)
				reopen(t, e, 1);
			else if (tui_worker_cancel(t->worker, e->id, &err) < 0)
				tui_error(t, &err);
			else
				tui_message(t, 0, "cancelling %s", e->id);
			break;
		case F_RETRY:
			if (e->state == TUI_SENT_UNKNOWN) {
				snprintf(t->ask_id, sizeof t->ask_id, "%s", e->id);
				t->prompt = P_ASK;
				t->ask = ASK_RESEND_UNKNOWN;
				tui_message(t, 0, "The server may have this message already. Send it again? (y/n)");
			} else if (tui_worker_retry(t->worker, e->id, &err) < 0) {
				tui_error(t, &err);
			} else {
				tui_message(t, 0, "retrying %s now", e->id);
			}
			break;
		case F_DELETE:
			snprintf(t->ask_id, sizeof t->ask_id, "%s", e->id);
			t->prompt = P_ASK;
			t->ask = ASK_DELETE;
			tui_message(t, 0, "Delete %s from the outbox? (y/n)", e->id);
			break;
		case F_VIEW: view(t, e); break;
		case F_REOPEN: reopen(t, e, 0); break;
		case F_ACK:
			tui_worker_ack(t->worker, e->id);
			tui_message(t, 0, "acknowledged");
			break;
		default: {
			char k[32];
			if (key != (TUI_FN | KEY_RESIZE))
				tui_message(t, 1, "key %s is not bound here; ? lists the keys",
				            tui_key_name(key, k, sizeof k));
			break;
		}
		}
		break;
	}
	if (t->nent && t->sel < t->nent)
		snprintf(t->sel_id, sizeof t->sel_id, "%s", t->ent[t->sel].id);
	tui_refresh_outbox(t);
}
