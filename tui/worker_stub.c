/* tui/worker_stub.c - stands in for worker.c until it exists: no outbox, sending refused */
#include <sysexits.h>

#include "worker.h"

const char *tui_state_name(enum tui_state s)
{
	static const char *const names[TUI_NSTATES] = { "held", "queued", "connecting", "sending",
		"awaiting reply", "sent", "deferred", "failed", "cancelled", "sent-unknown" };
	return s < TUI_NSTATES ? names[s] : "?";
}
int tui_worker_start(struct tui_worker **out, const struct tui_worker_opts *o, struct ba_err *err)
{
	(void)o;
	*out = 0;
	return ba_err_set(err, EX_UNAVAILABLE, "this build has no delivery worker");
}
void tui_worker_stop(struct tui_worker *w) { (void)w; }
int tui_worker_fd(const struct tui_worker *w) { (void)w; return -1; }
void tui_worker_drain(struct tui_worker *w) { (void)w; }
int tui_worker_snapshot(struct tui_worker *w, struct tui_entry **v, size_t *n, struct ba_err *err)
{
	(void)w; (void)err;
	*v = 0;
	*n = 0;
	return 0;
}
void tui_worker_snapshot_free(struct tui_entry *v, size_t n) { (void)v; (void)n; }
int tui_worker_enqueue(struct tui_worker *w, const ba_draft *d, const char *account,
                       int64_t hold_until, char *id_out, size_t idlen, struct ba_err *err)
{
	(void)w; (void)d; (void)account; (void)hold_until; (void)id_out; (void)idlen;
	return ba_err_set(err, EX_UNAVAILABLE, "this build has no delivery worker");
}
int tui_worker_cancel(struct tui_worker *w, const char *id, struct ba_err *err)
{
	(void)w; (void)id;
	return ba_err_set(err, EX_UNAVAILABLE, "no worker");
}
int tui_worker_retry(struct tui_worker *w, const char *id, struct ba_err *err)
{
	(void)w; (void)id;
	return ba_err_set(err, EX_UNAVAILABLE, "no worker");
}
int tui_worker_remove(struct tui_worker *w, const char *id, struct ba_err *err)
{
	(void)w; (void)id;
	return ba_err_set(err, EX_UNAVAILABLE, "no worker");
}
int tui_worker_ack(struct tui_worker *w, const char *id) { (void)w; (void)id; return -1; }
int tui_worker_message_path(struct tui_worker *w, const char *id, struct ba_buf *out,
                            struct ba_err *err)
{
	(void)w; (void)id; (void)out;
	return ba_err_set(err, EX_UNAVAILABLE, "no worker");
}
int tui_worker_size_limit(struct tui_worker *w, const char *account, uint64_t *limit,
                          struct ba_err *err)
{
	(void)w; (void)account; (void)limit;
	return ba_err_set(err, EX_UNAVAILABLE, "no worker");
}
