/* core/outbox.c - the crash-safe outbox (see bluearrow/outbox.h for the layout and the promises) */
#define _GNU_SOURCE
#include "bluearrow/outbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "outbox_store.h"

#define STATE_MAGIC "bluearrow-outbox 1"
#define STATE_MAX (1u << 20)       /* a state file larger than this is corrupt */
#define MSGID_SCAN (64u << 10)     /* the Message-ID is looked for in the first 64 KB */
#define TMP_MAX_AGE (36 * 3600)    /* Maildir's rule for leftovers in tmp/ */
#define UP_ORPHAN_AGE 600 /* a q/ID.up without its entry this old is a removal a crash cut */

const char *const outbox_sub_names[D_COUNT] = { "tmp", "q", "failed", "corrupt" };

/* ---- the state file ------------------------------------------------------ */

static const char *const rcpt_state_names[] = { "pending", "sent", "failed" };

void ba_outbox_entry_release(struct ba_outbox_entry *e)
{
	free(e->account);
	free(e->from);
	for (size_t i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].addr);
		free(e->rcpt[i].reply);
	}
	free(e->rcpt);
	free(e->envid);
	free(e->msgid);
	free(e->error);
	memset(e, 0, sizeof(*e));
}

/* A text value on one line: controls (CR, LF, ...) become spaces. */
static void add_text(struct ba_buf *out, const char *key, const char *v)
{
	if (*key)
		ba_buf_addf(out, "%s ", key);
	for (const unsigned char *c = (const unsigned char *)v; *c; c++)
		ba_buf_addch(out, *c < 0x20 || *c == 0x7f ? ' ' : *c);
	ba_buf_addch(out, '\n');
}

int ba_outbox_entry_format(struct ba_buf *out, const struct ba_outbox_entry *e)
{
	ba_buf_reset(out);
	ba_buf_addstr(out, STATE_MAGIC "\n");
	add_text(out, "id", e->id);
	add_text(out, "account", e->account ? e->account : "");
	add_text(out, "from", e->from ? e->from : "");
	for (size_t i = 0; i < e->nrcpt; i++) {
		ba_buf_addf(out, "rcpt %s %d ", rcpt_state_names[e->rcpt[i].state],
		            e->rcpt[i].code);
		add_text(out, "", e->rcpt[i].addr);
		if (e->rcpt[i].reply) /* belongs to the rcpt line above it */
			add_text(out, "reply", e->rcpt[i].reply);
	}
	ba_buf_addf(out, "notify %u\nret %d\n", e->notify, e->ret);
	if (e->envid)
		add_text(out, "envid", e->envid);
	if (e->msgid)
		add_text(out, "msgid", e->msgid);
	ba_buf_addf(out, "created %" PRId64 "\nnext %" PRId64 "\nattempts %u\n", e->created,
	            e->next, e->attempts);
	if (e->error_class || e->error) {
		ba_buf_addf(out, "error %d %d ", e->error_class, e->error_code);
		add_text(out, "", e->error ? e->error : "");
	}
	if (e->inflight)
		ba_buf_addf(out, "inflight %" PRId64 "\n", e->inflight);
	if (e->cancelled)
		ba_buf_addstr(out, "cancelled 1\n");
	ba_buf_addstr(out, "end\n");
	return ba_buf_failed(out) ? -1 : 0;
}

/* A decimal number filling v: 0, else -1. */
static int num(const char *v, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (end == v || *end || errno == ERANGE || x < min || x > max)
		return -1;
	*out = x;
	return 0;
}

/* "A B rest": the first two words of *v into a and b, *v moved to the rest (after one space). */
static int two_words(char **v, char **a, char **b)
{
	char *s1 = strchr(*v, ' ');
	if (!s1)
		return -1;
	*s1 = '\0';
	char *s2 = strchr(s1 + 1, ' ');
	if (!s2)
		return -1;
	*s2 = '\0';
	*a = *v;
	*b = s1 + 1;
	*v = s2 + 1;
	return 0;
}

static int parse_line(struct ba_outbox_entry *e, char *key, char *v)
{
	long long x;
	char *a, *b, **dst = NULL;
	if (strcmp(key, "id") == 0) {
		if (!*v || strlen(v) >= sizeof(e->id) || strchr(v, '/') || *v == '.')
			return -1;
		memcpy(e->id, v, strlen(v) + 1);
		return 0;
	}
	if (strcmp(key, "account") == 0)
		dst = &e->account;
	else if (strcmp(key, "from") == 0)
		dst = &e->from;
	else if (strcmp(key, "envid") == 0)
		dst = &e->envid;
	else if (strcmp(key, "msgid") == 0)
		dst = &e->msgid;
	if (dst) {
		if (*dst)
			return -1; /* twice */
		*dst = strdup(v);
		return *dst ? 0 : -2;
	}
	if (strcmp(key, "rcpt") == 0) {
		if (two_words(&v, &a, &b) < 0 || !*v || num(b, 0, 999, &x) < 0)
			return -1;
		int st = -1;
		for (int k = 0; k < 3; k++)
			if (strcmp(a, rcpt_state_names[k]) == 0)
				st = k;
		if (st < 0)
			return -1;
		struct ba_outbox_rcpt *r = realloc(e->rcpt, (e->nrcpt + 1) * sizeof(*r));
		if (!r)
			return -2;
		e->rcpt = r;
		r[e->nrcpt].addr = strdup(v);
		if (!r[e->nrcpt].addr)
			return -2;
		r[e->nrcpt].state = (enum ba_outbox_rcpt_state)st;
		r[e->nrcpt].code = (int)x;
		r[e->nrcpt].reply = NULL;
		e->nrcpt++;
		return 0;
	}
	if (strcmp(key, "reply") == 0) {
		if (!e->nrcpt || e->rcpt[e->nrcpt - 1].reply)
			return -1;
		e->rcpt[e->nrcpt - 1].reply = strdup(v);
		return e->rcpt[e->nrcpt - 1].reply ? 0 : -2;
	}
	if (strcmp(key, "error") == 0) {
		long long y;
		if (e->error || two_words(&v, &a, &b) < 0 || num(a, 0, 255, &x) < 0 ||
		    num(b, 0, 999, &y) < 0)
			return -1;
		e->error_class = (int)x;
		e->error_code = (int)y;
		e->error = strdup(v);
		return e->error ? 0 : -2;
	}
	if (strcmp(key, "notify") == 0 && num(v, 0, 15, &x) == 0) {
		e->notify = (unsigned)x;
		return 0;
	}
	if (strcmp(key, "ret") == 0 && num(v, 0, 2, &x) == 0) {
		e->ret = (int)x;
		return 0;
	}
	if (strcmp(key, "created") == 0 && num(v, 1, INT64_MAX, &x) == 0) {
		e->created = x;
		return 0;
	}
	if (strcmp(key, "next") == 0 && num(v, 0, INT64_MAX, &x) == 0) {
		e->next = x;
		return 0;
	}
	if (strcmp(key, "attempts") == 0 && num(v, 0, UINT_MAX, &x) == 0) {
		e->attempts = (unsigned)x;
		return 0;
	}
	if (strcmp(key, "inflight") == 0 && num(v, 1, INT64_MAX, &x) == 0) {
		e->inflight = x;
		return 0;
	}
	if (strcmp(key, "cancelled") == 0 && num(v, 1, 1, &x) == 0) {
		e->cancelled = 1;
		return 0;
	}
	return -1;
}

int ba_outbox_entry_parse(struct ba_outbox_entry *e, const char *text, size_t len,
                          struct ba_err *err)
{
	memset(e, 0, sizeof(*e));
	char *copy = malloc(len + 1);
	if (!copy)
		return ba_err_set(err, EX_OSERR, "out of memory");
	memcpy(copy, text, len);
	copy[len] = '\0';
	int rc = 0, ended = 0;
	unsigned lineno = 0;
	char *p = copy;
	if (memchr(copy, '\0', len)) {
		rc = ba_err_set(err, EX_DATAERR, "a NUL byte in the state file");
		goto out;
	}
	while (*p) {
		char *nl = strchr(p, '\n');
		lineno++;
		if (!nl) {
			rc = ba_err_set(err, EX_DATAERR, "line %u: no line end (truncated)", lineno);
			goto out;
		}
		*nl = '\0';
		if (ended) {
			rc = ba_err_set(err, EX_DATAERR, "line %u: text after 'end'", lineno);
			goto out;
		}
		for (const unsigned char *c = (const unsigned char *)p; *c; c++)
			if (*c < 0x20 || *c == 0x7f) { /* never written (add_text()): not ours */
				rc = ba_err_set(err, EX_DATAERR, "line %u: a control character", lineno);
				goto out;
			}
		if (lineno == 1) {
			if (strcmp(p, STATE_MAGIC) != 0) {
				rc = ba_err_set(err, EX_DATAERR, "line 1: not a bluearrow outbox state "
				                "file (expected '" STATE_MAGIC "')");
				goto out;
			}
		} else if (strcmp(p, "end") == 0) {
			ended = 1;
		} else {
			char *sp = strchr(p, ' ');
			int r = sp ? (*sp = '\0', parse_line(e, p, sp + 1)) : -1;
			if (r == -2) {
				rc = ba_err_set(err, EX_OSERR, "out of memory");
				goto out;
			}
			if (r < 0) {
				rc = ba_err_set(err, EX_DATAERR, "line %u: invalid line for key '%.40s'",
				                lineno, p);
				goto out;
			}
		}
		p = nl + 1;
	}
	if (!ended)
		rc = ba_err_set(err, EX_DATAERR, "no 'end' line (truncated)");
	else if (!e->id[0] || !e->account || !e->from || !e->nrcpt || !e->created)
		rc = ba_err_set(err, EX_DATAERR, "a required key is missing (id, account, from, "
		                "rcpt, created)");
out:
	free(copy);
	if (rc < 0)
		ba_outbox_entry_release(e);
	return rc;
}

/* ---- the directory ---------------------------------------------------------- */

int ba_outbox_default_dir(struct ba_buf *out, struct ba_err *err)
{
	ba_buf_reset(out);
	const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
	if (x && *x == '/')
		ba_buf_addf(out, "%s/bluearrow/outbox", x);
	else if (h && *h)
		ba_buf_addf(out, "%s/.local/state/bluearrow/outbox", h);
	else
		return ba_err_set(err, EX_CONFIG, "no outbox directory: set 'outbox DIR' in the "
		                  "configuration, or XDG_STATE_HOME or HOME");
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

int ba_outbox_account_dir(struct ba_buf *out, const struct ba_account *acc, struct ba_err *err)
{
	if (!acc->outbox && !acc->system_file)
		return ba_outbox_default_dir(out, err);
	ba_buf_reset(out);
	ba_buf_addstr(out, acc->outbox ? acc->outbox : BA_OUTBOX_SYSTEM_DIR);
	return ba_buf_failed(out) ? ba_err_set(err, EX_OSERR, "out of memory") : 0;
}

/* Opens (creating it 0700 when missing) the directory name under at; checks owner and mode. */
static int open_dir(int *out, int at, const char *name, const char *shown, struct ba_err *err)
{
	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
		return ba_err_set(err, EX_CANTCREAT, "outbox: cannot create '%s': %s", shown,
		                  ba_strerror_t(errno));
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ba_err_set(err, errno == ELOOP || errno == ENOTDIR ? EX_NOPERM : EX_CANTCREAT,
		                  "outbox: cannot open '%s': %s", shown,
		                  errno == ELOOP ? "it is a symbolic link" : ba_strerror_t(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return ba_err_set(err, EX_NOPERM, "outbox: '%s' %s: refused", shown,
		                  st.st_uid != geteuid() ? "is owned by another user"
		                                         : "is open to group or others (chmod 700)");
	}
	*out = fd;
	return 0;
}

/* mkdir -p of dir's parents (0700 for those created). */
static int make_parents(const char *dir, struct ba_err *err)
{
	char *p = strdup(dir);
	if (!p)
		return ba_err_set(err, EX_OSERR, "out of memory");
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			ba_err_set(err, EX_CANTCREAT, "outbox: cannot create '%s': %s", p,
			           ba_strerror_t(errno));
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	return 0;
}

int ba_outbox_open(ba_outbox **out, const char *dir, const struct ba_log *log,
                   struct ba_err *err)
{
	*out = NULL;
	ba_outbox *ob = calloc(1, sizeof(*ob));
	if (!ob || !(ob->dir = strdup(dir))) {
		free(ob);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	ob->log = log;
	ob->dfd = -1;
	for (int i = 0; i < D_COUNT; i++)
		ob->sub[i] = -1;
	if (make_parents(dir, err) < 0 || open_dir(&ob->dfd, AT_FDCWD, dir, dir, err) < 0)
		goto fail;
	for (int i = 0; i < D_COUNT; i++) {
		char shown[PATH_MAX];
		snprintf(shown, sizeof(shown), "%s/%s", dir, outbox_sub_names[i]);
		if (open_dir(&ob->sub[i], ob->dfd, outbox_sub_names[i], shown, err) < 0)
			goto fail;
	}
	*out = ob;
	return 0;
fail:
	ba_outbox_free(ob);
	return -1;
}

void ba_outbox_free(ba_outbox *ob)
{
	if (!ob)
		return;
	for (int i = 0; i < D_COUNT; i++)
		if (ob->sub[i] >= 0)
			close(ob->sub[i]);
	if (ob->dfd >= 0)
		close(ob->dfd);
	free(ob->dir);
	free(ob);
}

const char *ba_outbox_dir(const ba_outbox *ob)
{
	return ob->dir;
}

static int io_err(const ba_outbox *ob, const char *what, const char *sub, const char *name,
                  int e, struct ba_err *err)
{
	return ba_err_set(err, e == ENOSPC || e == EDQUOT || e == EIO ? EX_IOERR : EX_CANTCREAT,
	                  "outbox %s: cannot %s '%s/%s': %s", ob->dir, what, sub, name,
	                  ba_strerror_t(e));
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int outbox_write_state(ba_outbox *ob, const struct ba_outbox_entry *e, int sub, struct loc *l,
                       struct ba_err *err)
{
	char name[NAME_MAX_ID];
	outbox_state_name(name, e->id, l->one);
	if (l->one && !outbox_loc_updated(l)) {
		if (fchmod(l->fd, ENTRY_MODE_UPDATED) < 0)
			return io_err(ob, "mark", outbox_sub_names[sub], e->id, errno, err);
		l->st.st_mode = (l->st.st_mode & ~(mode_t)07777) | ENTRY_MODE_UPDATED;
	}
	struct ba_buf b = BA_BUF_INIT;
	if (ba_outbox_entry_format(&b, e) < 0) {
		ba_buf_release(&b);
		return ba_err_set(err, EX_OSERR, "out of memory");
	}
	int rc = -1;
	unlinkat(ob->sub[D_TMP], name, 0);
	int fd = openat(ob->sub[D_TMP], name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                0600);
	if (fd < 0) {
		io_err(ob, "create", "tmp", name, errno, err);
		goto out;
	}
	if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0) {
		io_err(ob, "write", "tmp", name, errno, err);
		close(fd);
		unlinkat(ob->sub[D_TMP], name, 0);
		goto out;
	}
	close(fd);
	if (renameat(ob->sub[D_TMP], name, ob->sub[sub], name) < 0) {
		io_err(ob, "rename", "tmp", name, errno, err);
		unlinkat(ob->sub[D_TMP], name, 0);
		goto out;
	}
	if (fsync(ob->sub[sub]) < 0) {
		io_err(ob, "sync", outbox_sub_names[sub], ".", errno, err);
		goto out;
	}
	rc = 0;
out:
	ba_buf_release(&b);
	return rc;
}

/* "1733500000.123456.P4242R1a2b3c4d": sortable by time, unique by pid and 32 random bits. */
static void make_id(char *id, size_t n)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)tv.tv_usec ^ ((uint32_t)getpid() << 12) ^ (uint32_t)(uintptr_t)&r;
	snprintf(id, n, "%010lld.%06ld.P%dR%08" PRIx32, (long long)tv.tv_sec, (long)tv.tv_usec,
	         (int)getpid(), r);
}

/* The body of the first Message-ID field in the header at p[0..n), malloc'd; NULL when none. */
static char *find_msgid(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *line = p + i, *nl = memchr(line, '\n', n - i);
		size_t len = nl ? (size_t)(nl - line) : n - i;
		if (len == 0 || (len == 1 && line[0] == '\r'))
			return NULL; /* the end of the header */
		if (len > 11 && strncasecmp(line, "Message-ID:", 11) == 0) {
			const char *v = line + 11, *end = line + len;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == '\r' || end[-1] == ' '))
				end--;
			return end > v && end - v < 500 ? strndup(v, (size_t)(end - v)) : NULL;
		}
		i += len + 1;
	}
	return NULL;
}

int ba_outbox_add(ba_outbox *ob, struct ba_outbox_entry *e, ba_reader *msg, int *hold,
                  struct ba_err *err)
{
	if (hold)
		*hold = -1;
	char name[NAME_MAX_ID];
	int fd = -1, rc = -1, renamed = 0;
	for (int tries = 0; fd < 0; tries++) {
		if (!e->id[0] || tries)
			make_id(e->id, sizeof(e->id));
		outbox_msg_name(name, e->id, 1);
		fd = openat(ob->sub[D_TMP], name,
		            O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && (errno != EEXIST || tries > 5))
			return io_err(ob, "create", "tmp", name, errno, err);
	}
	flock(fd, LOCK_EX); /* a new file: no one else holds it */
	if (fchmod(fd, ENTRY_MODE_FRESH) < 0) { /* exactly: the mode says it has no ID.up */
		io_err(ob, "create", "tmp", name, errno, err);
		close(fd);
		unlinkat(ob->sub[D_TMP], name, 0);
		return -1;
	}
	/*
	 * The state block comes first and names the Message-ID, so the start
	 * of the message (at most MSGID_SCAN bytes: memory does not grow with
	 * the message) is read before anything is written.
	 */
	struct ba_buf head = BA_BUF_INIT, state = BA_BUF_INIT;
	char buf[65536];
	int eof = 0;
	while (!eof && head.len < MSGID_SCAN) {
		ssize_t k = ba_read(msg, buf, MSGID_SCAN - head.len < sizeof(buf)
		                                  ? MSGID_SCAN - head.len : sizeof(buf), err);
		if (k < 0)
			goto fail;
		eof = k == 0;
		ba_buf_add(&head, buf, (size_t)k);
	}
	if (!e->msgid && head.len)
		e->msgid = find_msgid(head.data, head.len);
	if (!e->created)
		e->created = (int64_t)time(NULL);
	if (!e->next)
		e->next = e->created;
	if (ba_buf_failed(&head) || ba_outbox_entry_format(&state, e) < 0) {
		ba_err_set(err, EX_OSERR, "out of memory");
		goto fail;
	}
	uint64_t size = head.len;
	if (write_all(fd, state.data, state.len) < 0 || write_all(fd, head.data, head.len) < 0) {
		io_err(ob, "write", "tmp", name, errno, err);
		goto fail;
	}
	while (!eof) {
		ssize_t k = ba_read(msg, buf, sizeof(buf), err);
		if (k < 0)
			goto fail;
		eof = k == 0;
		if (k > 0 && write_all(fd, buf, (size_t)k) < 0) {
			io_err(ob, "write", "tmp", name, errno, err);
			goto fail;
		}
		size += (uint64_t)k;
	}
	if (fsync(fd) < 0) {
		io_err(ob, "write", "tmp", name, errno, err);
		goto fail;
	}
	e->size = size;
	/* the entry exists from this rename on, complete */
	if (renameat(ob->sub[D_TMP], name, ob->sub[D_Q], name) < 0) {
		io_err(ob, "rename", "tmp", name, errno, err);
		goto fail;
	}
	renamed = 1;
	if (fsync(ob->sub[D_Q]) < 0) {
		io_err(ob, "sync", "q", ".", errno, err);
		goto fail;
	}
	rc = 0;
	if (hold) {
		*hold = fd;
		fd = -1;
	}
	goto out;
fail:
	unlinkat(renamed ? ob->sub[D_Q] : ob->sub[D_TMP], name, 0);
	if (renamed)
		fsync(ob->sub[D_Q]);
out:
	if (fd >= 0)
		close(fd);
	ba_buf_release(&head);
	ba_buf_release(&state);
	return rc;
}

/* ---- reading entries ------------------------------------------------------- */

/* Reads sub/name (a regular file, not a link, at most STATE_MAX) into out. */
static int read_small(struct ba_buf *out, int dirfd, const char *name, int *eno)
{
	ba_buf_reset(out);
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		*eno = errno;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STATE_MAX) {
		*eno = EINVAL;
		close(fd);
		return -1;
	}
	char buf[8192];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k > 0 && (size_t)k < sizeof(buf) && out->len + (size_t)k >= (size_t)st.st_size) {
			/* the whole file (states are replaced, never appended to): no read for the end */
			ba_buf_add(out, buf, (size_t)k);
			k = 0;
		}
		if (k <= 0) {
			*eno = k < 0 ? errno : 0;
			close(fd);
			return k < 0 || ba_buf_failed(out) ? -1 : 0;
		}
		ba_buf_add(out, buf, (size_t)k);
		if (out->len > STATE_MAX) {
			*eno = EINVAL;
			close(fd);
			return -1;
		}
	}
}

/* Moves sub/name to corrupt/ (under a name that cannot collide) with a warning. */
static void set_aside(ba_outbox *ob, int sub, const char *name, const char *why)
{
	char dst[NAME_MAX + 1];
	char id[BA_OUTBOX_ID_MAX];
	make_id(id, sizeof(id));
	snprintf(dst, sizeof(dst), "%.180s.%s", name, id);
	if (renameat(ob->sub[sub], name, ob->sub[D_CORRUPT], dst) == 0) {
		fsync(ob->sub[sub]);
		ba_log(ob->log, BA_LOG_WARNING, "outbox %s: '%s/%s' %s: moved to 'corrupt/%s'",
		       ob->dir, outbox_sub_names[sub], name, why, dst);
	} else {
		ba_log(ob->log, BA_LOG_WARNING, "outbox %s: '%s/%s' %s, and cannot be moved aside: "
		       "%s", ob->dir, outbox_sub_names[sub], name, why, ba_strerror_t(errno));
	}
}

void outbox_loc_release(struct loc *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->have_st = 0;
	ba_buf_release(&l->head);
}

/*
 * Opens id's message-carrying file in sub into l (form: 1 ID.entry, 0
 * ID.msg, -1 whichever there is).  Returns 0, or -1 with *eno (ENOENT:
 * there is none).
 */
static int open_msg(ba_outbox *ob, int sub, const char *id, int form, struct loc *l, int *eno)
{
	char name[NAME_MAX_ID];
	for (int one = 1; one >= 0; one--) {
		if (form >= 0 && form != one)
			continue;
		l->fd = openat(ob->sub[sub], outbox_msg_name(name, id, one),
		               O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (l->fd >= 0) {
			l->one = one;
			return 0;
		}
		if (errno != ENOENT)
			break;
	}
	*eno = errno;
	return -1;
}

/*
 * The first bytes of the ID.entry file l->fd (size bytes) into l->head,
 * at least to the end of its state block (the line "end"), whose length
 * goes to l->off.  One read for a small entry.  Returns 0, or -1 with *eno
 * (EINVAL: no state block ends within STATE_MAX bytes).
 */
static int read_head(struct loc *l, uint64_t size, int *eno)
{
	ba_buf_reset(&l->head);
	size_t chunk = size < (64u << 10) ? (size_t)size : (64u << 10);
	for (;;) {
		size_t had = l->head.len;
		if (ba_buf_grow(&l->head, chunk) < 0) {
			*eno = ENOMEM;
			return -1;
		}
		ssize_t k = pread(l->fd, l->head.data + had, chunk, (off_t)had);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			*eno = errno;
			return -1;
		}
		l->head.len += (size_t)k;
		size_t from = had > 4 ? had - 4 : 0;
		const char *end = l->head.len > from
		                          ? memmem(l->head.data + from, l->head.len - from, "\nend\n", 5)
		                          : NULL;
		if (end) {
			l->off = (uint64_t)(end + 5 - l->head.data);
			return 0;
		}
		if (k == 0 || l->head.len > STATE_MAX) {
			*eno = EINVAL;
			return -1;
		}
		chunk = 64u << 10;
	}
}

/* Moves the files of entry id in sub (of either form) to corrupt/. */
static void set_aside_entry(ba_outbox *ob, int sub, const char *id, const char *why)
{
	char name[NAME_MAX_ID];
	for (int one = 1; one >= 0; one--) {
		if (faccessat(ob->sub[sub], outbox_state_name(name, id, one), F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			set_aside(ob, sub, name, why);
		if (faccessat(ob->sub[sub], outbox_msg_name(name, id, one), F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			set_aside(ob, sub, name, one ? why : "belongs to a corrupt state file");
	}
}

int outbox_load(ba_outbox *ob, int sub, const char *id, int form, struct loc *l,
                struct ba_outbox_entry *e, struct ba_err *err)
{
	memset(e, 0, sizeof(*e));
	char name[NAME_MAX_ID];
	int eno = 0;
	if (l->fd < 0 && open_msg(ob, sub, id, form, l, &eno) < 0) {
		if (eno == ELOOP) {
			set_aside_entry(ob, sub, id, "is a symbolic link");
			return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt", ob->dir,
			                  id);
		}
		if (eno != ENOENT)
			return io_err(ob, "open", outbox_sub_names[sub], id, eno, err);
		l->one = form == 1; /* no message file: a state alone is corrupt, none is gone */
	}
	const struct stat *st = &l->st;
	if (l->fd >= 0 && !l->have_st && fstat(l->fd, &l->st) < 0)
		return io_err(ob, "read", outbox_sub_names[sub], id, errno, err);
	l->have_st = l->fd >= 0;
	if (l->fd >= 0 && !S_ISREG(st->st_mode)) {
		set_aside_entry(ob, sub, id, "is not a regular file");
		return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt", ob->dir, id);
	}
	if (l->one && l->fd < 0)
		return 1;
	l->off = 0;
	if (l->one && read_head(l, (uint64_t)st->st_size, &eno) < 0) {
		if (eno != EINVAL)
			return io_err(ob, "read", outbox_sub_names[sub], outbox_msg_name(name, id, 1),
			              eno, err);
		set_aside_entry(ob, sub, id, "has no state block");
		return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt", ob->dir, id);
	}
	/* the state: ID.up or ID.st when there is one, else ID.entry's block */
	struct ba_buf b = BA_BUF_INIT;
	const char *text = l->head.data;
	size_t len = (size_t)l->off;
	outbox_state_name(name, id, l->one);
	if (l->one && !outbox_loc_updated(l)) {
		eno = ENOENT; /* never updated: there is no ID.up */
	} else if (read_small(&b, ob->sub[sub], name, &eno) == 0) {
		text = b.data ? b.data : "";
		len = b.len;
	} else if (eno != ENOENT || !l->one) {
		ba_buf_release(&b);
		if (eno == ENOENT)
			return 1; /* a message without its state: not an entry (outbox_scan() tidies) */
		if (eno == EINVAL || eno == ELOOP) {
			set_aside_entry(ob, sub, id, "is not a regular file of at most 1 MB");
			return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt", ob->dir,
			                  id);
		}
		return io_err(ob, "read", outbox_sub_names[sub], name, eno, err);
	}
	struct ba_err perr = BA_ERR_INIT;
	int rc = ba_outbox_entry_parse(e, text, len, &perr);
	ba_buf_release(&b);
	if (rc == 0 && strcmp(e->id, id) != 0) {
		ba_outbox_entry_release(e);
		rc = ba_err_set(&perr, EX_DATAERR, "its id is not its name");
	}
	if (rc < 0) {
		if (perr.code == EX_OSERR) {
			*err = perr;
			return -1;
		}
		char why[BA_ERR_TEXT_MAX + 32];
		snprintf(why, sizeof(why), "does not parse (%s)", perr.text);
		set_aside_entry(ob, sub, id, why);
		return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt: %s", ob->dir,
		                  id, perr.text);
	}
	if (l->fd < 0) {
		ba_outbox_entry_release(e);
		set_aside(ob, sub, outbox_state_name(name, id, 0), "has no message file");
		return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' has no message", ob->dir,
		                  id);
	}
	e->size = (uint64_t)st->st_size - l->off;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct ba_outbox_entry *x = a, *y = b;
	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

enum { K_NONE, K_ST, K_MSG, K_ENTRY, K_UP };

/* ID of a name "ID.SUFFIX" into id; the suffix's kind (K_NONE: no outbox file's). */
static int name_kind(const char *name, char *id, size_t n)
{
	static const struct {
		const char *suffix;
		int kind;
	} kinds[] = { { SUF_ST, K_ST }, { SUF_MSG, K_MSG }, { SUF_ENTRY, K_ENTRY }, { SUF_UP, K_UP } };
	size_t len = strlen(name);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t cut = strlen(kinds[i].suffix);
		if (len <= cut || strcmp(name + len - cut, kinds[i].suffix) != 0)
			continue;
		if (len - cut >= n || name[0] == '.')
			return K_NONE;
		memcpy(id, name, len - cut);
		id[len - cut] = '\0';
		return kinds[i].kind;
	}
	return K_NONE;
}

/* Removes leftovers in tmp/ older than Maildir's 36 hours. */
static void clean_tmp(ba_outbox *ob)
{
	int fd = dup(ob->sub[D_TMP]);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d); /* the dup shares the offset the last reading left at the end */
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_name[0] == '.' ||
		    fstatat(ob->sub[D_TMP], de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (now - st.st_mtime > TMP_MAX_AGE)
			unlinkat(ob->sub[D_TMP], de->d_name, 0);
	}
	closedir(d);
}

/* A message file without its state: removed if no one holds it (a crash left it). */
static void drop_orphan(ba_outbox *ob, const char *id, const char *mname)
{
	char sname[NAME_MAX_ID];
	outbox_state_name(sname, id, 0);
	int fd = openat(ob->sub[D_Q], mname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
	    faccessat(ob->sub[D_Q], sname, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
		if (faccessat(ob->sub[D_FAILED], sname, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			/* a move to failed/ that a crash interrupted: finish it */
			if (renameat(ob->sub[D_Q], mname, ob->sub[D_FAILED], mname) == 0)
				fsync(ob->sub[D_FAILED]);
		} else {
			unlinkat(ob->sub[D_Q], mname, 0);
			ba_log(ob->log, BA_LOG_DEBUG, "outbox %s: removed 'q/%s', a message without "
			       "state", ob->dir, mname);
		}
	}
	close(fd);
}

/*
 * A q/ID.up without its ID.entry: the state of an entry whose removal (or
 * move to failed/) a crash cut short.  Removed once it is old enough that
 * no move back from failed/ (which renames the entry, then writes its
 * state) can be under way.
 */
static void drop_lone_up(ba_outbox *ob, const char *id, const char *uname)
{
	char ename[NAME_MAX_ID];
	struct stat st;
	if (faccessat(ob->sub[D_Q], outbox_msg_name(ename, id, 1), F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT && fstatat(ob->sub[D_Q], uname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    time(NULL) - st.st_mtime > UP_ORPHAN_AGE) {
		unlinkat(ob->sub[D_Q], uname, 0);
		ba_log(ob->log, BA_LOG_DEBUG, "outbox %s: removed 'q/%s', a state without its entry",
		       ob->dir, uname);
	}
}

int outbox_scan(ba_outbox *ob, int (*fn)(void *ctx, struct ba_outbox_entry *e, struct ba_err *err),
                int (*id_fn)(void *ctx, const char *id, struct ba_err *err), void *ctx,
                struct ba_err *err)
{
	clean_tmp(ob);
	int fd = dup(ob->sub[D_Q]);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return io_err(ob, "read", "q", ".", errno, err);
	}
	rewinddir(d); /* the dup shares the offset the last reading left at the end */
	struct dirent *de;
	int rc = 0;
	size_t nmsg = 0, paired = 0;
	/*
	 * Pass 1 loads the entries (or only names them); pass 2 looks for
	 * ID.msg files without a state (an enqueue of an earlier version or a
	 * move a crash interrupted), one system call each, and is needed only
	 * when there are more of them than states that had one.
	 */
	for (int pass = 1; pass <= 2 && rc == 0; pass++) {
		if (pass == 2) {
			if (nmsg == paired)
				break;
			rewinddir(d);
		}
		while (rc == 0 && (de = readdir(d)) != NULL) {
			char id[BA_OUTBOX_ID_MAX];
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			int kind = name_kind(de->d_name, id, sizeof(id));
			if (kind == K_NONE && pass == 1) {
				set_aside(ob, D_Q, de->d_name, "is no outbox file");
			} else if (kind == K_MSG && pass == 2) {
				char sname[NAME_MAX_ID];
				if (faccessat(ob->sub[D_Q], outbox_state_name(sname, id, 0), F_OK,
				              AT_SYMLINK_NOFOLLOW) < 0)
					drop_orphan(ob, id, de->d_name);
			} else if (kind == K_MSG) {
				nmsg++;
			} else if (kind == K_UP && pass == 1) {
				drop_lone_up(ob, id, de->d_name);
			} else if ((kind == K_ST || kind == K_ENTRY) && pass == 1 && id_fn) {
				paired += kind == K_ST;
				rc = id_fn(ctx, id, err);
			} else if ((kind == K_ST || kind == K_ENTRY) && pass == 1) {
				struct ba_err lerr = BA_ERR_INIT;
				struct ba_outbox_entry e;
				struct loc l = LOC_INIT;
				int r = outbox_load(ob, D_Q, id, kind == K_ENTRY, &l, &e, &lerr);
				outbox_loc_release(&l);
				paired += r == 0 && kind == K_ST; /* a state with its message */
				if (r == 0)
					rc = fn(ctx, &e, err);
				else if (r < 0 && lerr.code == EX_OSERR)
					rc = ba_err_set(err, EX_OSERR, "out of memory");
			}
		}
	}
	closedir(d);
	return rc;
}

struct list_ctx {
	struct ba_outbox_entry *v;
	size_t n, cap;
};

static int list_add(void *ctx, struct ba_outbox_entry *e, struct ba_err *err)
{
	struct list_ctx *l = ctx;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct ba_outbox_entry *na = realloc(l->v, nc * sizeof(*na));
		if (!na) {
			ba_outbox_entry_release(e);
			return ba_err_set(err, EX_OSERR, "out of memory");
		}
		l->v = na;
		l->cap = nc;
	}
	l->v[l->n++] = *e;
	return 0;
}

int ba_outbox_list(ba_outbox *ob, struct ba_outbox_entry **v, size_t *n, struct ba_err *err)
{
	*v = NULL;
	*n = 0;
	struct list_ctx l = { NULL, 0, 0 };
	if (outbox_scan(ob, list_add, NULL, &l, err) < 0) {
		ba_outbox_list_free(l.v, l.n);
		return -1;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_entry);
	*v = l.v;
	*n = l.n;
	return 0;
}

int ba_outbox_list_failed(ba_outbox *ob, struct ba_outbox_entry **v, size_t *n,
                          struct ba_err *err)
{
	*v = NULL;
	*n = 0;
	struct list_ctx l = { NULL, 0, 0 };
	int fd = dup(ob->sub[D_FAILED]);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return io_err(ob, "read", "failed", ".", errno, err);
	}
	rewinddir(d);
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char id[BA_OUTBOX_ID_MAX];
		int kind = name_kind(de->d_name, id, sizeof(id));
		if (kind != K_ST && kind != K_ENTRY)
			continue; /* only these name entries; list() tidies q/, not this */
		struct ba_err lerr = BA_ERR_INIT;
		struct ba_outbox_entry e;
		struct loc lc = LOC_INIT;
		int r = outbox_load(ob, D_FAILED, id, kind == K_ENTRY, &lc, &e, &lerr);
		outbox_loc_release(&lc);
		if (r == 0)
			rc = list_add(&l, &e, err);
		else if (r < 0 && lerr.code == EX_OSERR)
			rc = ba_err_set(err, EX_OSERR, "out of memory");
	}
	closedir(d);
	if (rc < 0) {
		ba_outbox_list_free(l.v, l.n);
		return -1;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_entry);
	*v = l.v;
	*n = l.n;
	return 0;
}

void ba_outbox_list_free(struct ba_outbox_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ba_outbox_entry_release(&v[i]);
	free(v);
}

int outbox_id_ok(const char *id)
{
	return *id && *id != '.' && !strchr(id, '/') && strlen(id) < BA_OUTBOX_ID_MAX;
}

static int check_id(const ba_outbox *ob, const char *id, struct ba_err *err)
{
	if (!outbox_id_ok(id))
		return ba_err_set(err, EX_USAGE, "outbox %s: '%s' is no entry id", ob->dir, id);
	return 0;
}

int ba_outbox_get(ba_outbox *ob, const char *id, struct ba_outbox_entry *e, int *failed,
                  int *msg_fd, struct ba_err *err)
{
	memset(e, 0, sizeof(*e));
	if (msg_fd)
		*msg_fd = -1;
	if (check_id(ob, id, err) < 0)
		return -1;
	for (int sub = D_Q; sub <= D_FAILED; sub++) {
		struct loc l = LOC_INIT;
		int r = outbox_load(ob, sub, id, -1, &l, e, err);
		if (r == 0 && msg_fd) {
			if (lseek(l.fd, (off_t)l.off, SEEK_SET) < 0) {
				ba_outbox_entry_release(e);
				r = io_err(ob, "read", outbox_sub_names[sub], id, errno, err);
			} else {
				*msg_fd = l.fd;
				l.fd = -1;
			}
		}
		outbox_loc_release(&l);
		if (r < 0)
			return -1;
		if (r == 1)
			continue;
		if (failed)
			*failed = sub == D_FAILED;
		return 0;
	}
	return ba_err_set(err, EX_NOINPUT, "outbox %s: no entry '%s'", ob->dir, id);
}

int outbox_open_entry(ba_outbox *ob, int sub, const char *id, struct loc *l, struct ba_err *err)
{
	int eno = 0;
	if (open_msg(ob, sub, id, -1, l, &eno) < 0)
		return eno == ENOENT ? 1 : io_err(ob, "open", outbox_sub_names[sub], id, eno, err);
	return 0;
}

int outbox_lock_loc(ba_outbox *ob, const char *id, struct loc *l, struct ba_err *err)
{
	if (flock(l->fd, LOCK_EX | LOCK_NB) < 0)
		return ba_err_set(err, EX_TEMPFAIL, "outbox %s: entry '%s' is being sent", ob->dir,
		                  id);
	if (fstat(l->fd, &l->st) < 0 || l->st.st_nlink == 0) /* removed while we waited */
		return 1;
	l->have_st = 1;
	return 0;
}

int outbox_lock_entry(ba_outbox *ob, int sub, const char *id, struct loc *l, struct ba_err *err)
{
	int r = outbox_open_entry(ob, sub, id, l, err);
	if (r == 0 && (r = outbox_lock_loc(ob, id, l, err)) != 0) {
		close(l->fd);
		l->fd = -1;
	}
	return r;
}

int outbox_remove_files(ba_outbox *ob, int sub, const char *id, int one, int sync,
                        struct ba_err *err)
{
	char name[NAME_MAX_ID];
	if (one)
		outbox_msg_name(name, id, 1);
	else
		outbox_state_name(name, id, 0);
	if (unlinkat(ob->sub[sub], name, 0) < 0 && errno != ENOENT)
		return io_err(ob, "remove", outbox_sub_names[sub], name, errno, err);
	if (one)
		outbox_state_name(name, id, 1);
	else
		outbox_msg_name(name, id, 0);
	unlinkat(ob->sub[sub], name, 0);
	if (sync && fsync(ob->sub[sub]) < 0)
		return io_err(ob, "sync", outbox_sub_names[sub], ".", errno, err);
	return 0;
}

int outbox_move_entry(ba_outbox *ob, int from, int to, const struct ba_outbox_entry *e,
                      struct loc *l, struct ba_err *err)
{
	int one = l->one;
	char mname[NAME_MAX_ID], sname[NAME_MAX_ID];
	outbox_msg_name(mname, e->id, one);
	outbox_state_name(sname, e->id, one);
	if (to == D_FAILED) {
		if (outbox_write_state(ob, e, to, l, err) < 0)
			return -1;
		if (!one && unlinkat(ob->sub[from], sname, 0) < 0 && errno != ENOENT)
			return io_err(ob, "remove", outbox_sub_names[from], sname, errno, err);
	}
	if (renameat(ob->sub[from], mname, ob->sub[to], mname) < 0)
		return io_err(ob, "move", outbox_sub_names[from], mname, errno, err);
	if (to != D_FAILED) {
		if (outbox_write_state(ob, e, to, l, err) < 0)
			return -1;
		unlinkat(ob->sub[from], sname, 0);
	} else {
		if (one)
			unlinkat(ob->sub[from], sname, 0);
		if (fsync(ob->sub[to]) < 0)
			return io_err(ob, "sync", outbox_sub_names[to], ".", errno, err);
	}
	if (fsync(ob->sub[from]) < 0)
		return io_err(ob, "sync", outbox_sub_names[from], ".", errno, err);
	return 0;
}

/* Finds, locks and loads ID (q/ first, then failed/) into e and l: its subdirectory, or -1. */
static int take(ba_outbox *ob, const char *id, struct ba_outbox_entry *e, struct loc *l,
                struct ba_err *err)
{
	memset(e, 0, sizeof(*e));
	if (check_id(ob, id, err) < 0)
		return -1;
	for (int sub = D_Q; sub <= D_FAILED; sub++) {
		int r = outbox_lock_entry(ob, sub, id, l, err);
		if (r < 0)
			return -1;
		if (r == 1)
			continue;
		r = outbox_load(ob, sub, id, l->one, l, e, err);
		if (r == 0)
			return sub;
		outbox_loc_release(l);
		if (r < 0)
			return -1;
	}
	return ba_err_set(err, EX_NOINPUT, "outbox %s: no entry '%s'", ob->dir, id);
}

int ba_outbox_remove(ba_outbox *ob, const char *id, struct ba_err *err)
{
	struct ba_outbox_entry e;
	struct loc l = LOC_INIT;
	int sub = take(ob, id, &e, &l, err);
	if (sub < 0)
		return -1;
	int rc = outbox_remove_files(ob, sub, id, l.one, 1, err);
	ba_outbox_entry_release(&e);
	outbox_loc_release(&l);
	return rc;
}

int ba_outbox_retry(ba_outbox *ob, const char *id, struct ba_err *err)
{
	struct ba_outbox_entry e;
	struct loc l = LOC_INIT;
	int sub = take(ob, id, &e, &l, err);
	if (sub < 0)
		return -1;
	int64_t now = (int64_t)time(NULL);
	e.next = now;
	e.inflight = 0;
	e.cancelled = 0;
	int rc;
	if (sub == D_FAILED) {
		for (size_t i = 0; i < e.nrcpt; i++)
			if (e.rcpt[i].state == BA_OUTBOX_RCPT_FAILED)
				e.rcpt[i].state = BA_OUTBOX_RCPT_PENDING;
		e.created = now; /* a fresh max age */
		rc = outbox_move_entry(ob, D_FAILED, D_Q, &e, &l, err);
	} else {
		rc = outbox_write_state(ob, &e, D_Q, &l, err);
	}
	ba_outbox_entry_release(&e);
	outbox_loc_release(&l);
	return rc;
}

int ba_outbox_cancel(ba_outbox *ob, const char *id, struct ba_err *err)
{
	struct ba_outbox_entry e;
	struct loc l = LOC_INIT;
	int sub = take(ob, id, &e, &l, err);
	if (sub < 0)
		return -1;
	int rc;
	if (sub == D_FAILED) {
		rc = ba_err_set(err, EX_USAGE, "outbox %s: entry '%s' has failed: nothing to cancel",
		                ob->dir, id);
	} else {
		e.cancelled = 1;
		rc = outbox_write_state(ob, &e, D_Q, &l, err);
	}
	ba_outbox_entry_release(&e);
	outbox_loc_release(&l);
	return rc;
}

/* ---- send later ---------------------------------------------------------- */

/* n digits at *p into *v; advances *p.  Returns 0, or -1 when they are not digits. */
static int digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

/* "YYYY-MM-DD HH:MM[:SS]" or "YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM|+HHMM|-...]". */
static int parse_absolute(int64_t *out, const char *s)
{
	const char *p = s;
	int y, mo, d, h, mi, se = 0;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != ' ' && *p != 'T'))
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
		return -1;
	if (*p == ':' && (p++, digits(&p, 2, &se)))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59)
		return -1;
	if (!*p) { /* local time */
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_sec = se;
		tm.tm_isdst = -1;
		time_t t = mktime(&tm);
		if (t == (time_t)-1)
			return -1;
		*out = (int64_t)t;
		return 0;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh))
			return -1;
		if (*p == ':')
			p++;
		if (digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
	return 0;
}

int ba_outbox_parse_time(int64_t *out, const char *s, int64_t now, struct ba_err *err)
{
	if (s[0] == '+') {
		char *end;
		errno = 0;
		long long x = strtoll(s + 1, &end, 10);
		long unit = !*end ? 1 : !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60
		          : !strcmp(end, "h") ? 3600 : !strcmp(end, "d") ? 86400 : 0;
		if (end == s + 1 || s[1] < '0' || s[1] > '9' || !unit || errno == ERANGE ||
		    x > 100LL * 365 * 86400 / unit)
			return ba_err_set(err, EX_USAGE, "invalid time '%s': a relative time is +N "
			                  "with s, m, h or d (+10m, +2h, +1d), at most 100 years", s);
		*out = now + (int64_t)x * unit;
		return 0;
	}
	int64_t t;
	if (parse_absolute(&t, s) < 0)
		return ba_err_set(err, EX_USAGE, "invalid time '%s': use \"YYYY-MM-DD HH:MM\" (local "
		                  "time), ISO 8601 (2026-12-24T18:00:00+01:00) or +N with s, m, h "
		                  "or d (+10m)", s);
	if (t < now)
		return ba_err_set(err, EX_USAGE, "time '%s' is in the past", s);
	*out = t;
	return 0;
}

int ba_outbox_temporary(const struct ba_err *err)
{
	if (err->smtp_code)
		return err->smtp_code >= 400 && err->smtp_code < 500;
	if (err->flags & BA_ERR_TLS_FAILED)
		return 1;
	return err->code == EX_TEMPFAIL || err->code == EX_IOERR || err->code == EX_NOHOST;
}

