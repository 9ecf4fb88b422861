/* tui/autosave.c - the composition written to disk by a thread of its own
 *
 * ba_draft_save() fsyncs the file and its directory; on a busy disk (a
 * large attachment just written, a send reading it) an fsync can take
 * longer than a keystroke may.  The UI thread therefore hands a copy of the
 * draft to this thread and goes on; a newer copy replaces one not yet
 * written (only the latest state matters).  tui_saver_sync() waits for the
 * disk, before a draft file is deleted (so no late write brings it back)
 * and before the program exits.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "tui.h"

struct tui_saver {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ba_draft *d;        /* queued: the next copy to write */
	char *path;
	int busy, stop;
	struct ba_err err;  /* the last failure, until taken */
};

static void *run(void *arg)
{
	struct tui_saver *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->d && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (!s->d)
			break;
		ba_draft *d = s->d;
		char *path = s->path;
		s->d = NULL;
		s->path = NULL;
		s->busy = 1;
		pthread_mutex_unlock(&s->mu);
		struct ba_err err = BA_ERR_INIT;
		int rc = ba_draft_save(d, path, &err);
		ba_draft_free(d);
		free(path);
		pthread_mutex_lock(&s->mu);
		if (rc < 0)
			s->err = err;
		s->busy = 0;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int tui_saver_start(struct tui_saver **out)
{
	struct tui_saver *s = calloc(1, sizeof(*s));
	*out = NULL;
	if (!s)
		return -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (ba_thread_start(&s->thread, run, s) < 0) { /* signals stay with the UI thread */
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* A copy of d through the file format: nothing is shared with the UI's draft. */
static ba_draft *copy(const ba_draft *d, struct ba_err *err)
{
	struct ba_buf b = BA_BUF_INIT;
	ba_draft *c = NULL;
	if (ba_draft_format(&b, d, err) == 0)
		ba_draft_parse(&c, b.data, b.len, "the composition", err);
	ba_buf_release(&b);
	return c;
}

int tui_saver_put(struct tui_saver *s, const ba_draft *d, const char *path, struct ba_err *err)
{
	if (!s)
		return ba_draft_save(d, path, err);
	ba_draft *c = copy(d, err);
	char *p = strdup(path);
	if (!c || !p) {
		ba_draft_free(c);
		free(p);
		return err->code ? -1 : ba_err_set(err, EX_OSERR, "out of memory");
	}
	pthread_mutex_lock(&s->mu);
	ba_draft_free(s->d);
	free(s->path);
	s->d = c;
	s->path = p;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int tui_saver_sync(struct tui_saver *s, struct ba_err *err)
{
	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	while (s->d || s->busy)
		pthread_cond_wait(&s->cv, &s->mu);
	int rc = 0;
	if (s->err.code) {
		*err = s->err;
		memset(&s->err, 0, sizeof(s->err));
		rc = -1;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int tui_saver_error(struct tui_saver *s, struct ba_err *err)
{
	int rc = 0;
	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	if (s->err.code) {
		*err = s->err;
		memset(&s->err, 0, sizeof(s->err));
		rc = -1;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void tui_saver_stop(struct tui_saver *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);   /* a queued copy is written first */
	ba_draft_free(s->d);
	free(s->path);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}
