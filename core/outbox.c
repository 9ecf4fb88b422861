/* core/outbox.c - the crash-safe outbox (see bluearrow/outbox.h for the layout and the promises) */
#define _GNU_SOURCE
#include "bluearrow/outbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
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

#include "bluearrow/msg.h"
#include "bluearrow/msg_read.h"
#include "bluearrow/submit.h"

#define STATE_MAGIC "bluearrow-outbox 1"
#define STATE_MAX (1u << 20)       /* a state file larger than this is corrupt */
#define MSGID_SCAN (64u << 10)     /* the Message-ID is looked for in the first 64 KB */
#define TMP_MAX_AGE (36 * 3600)    /* Maildir's rule for leftovers in tmp/ */
#define BACKOFF_FIRST 300          /* seconds before the first retry, doubled each time */
#define BACKOFF_MAX (4 * 3600)

enum { D_TMP, D_Q, D_FAILED, D_CORRUPT, D_COUNT };
static const char *const sub_names[D_COUNT] = { "tmp", "q", "failed", "corrupt" };

/*
 * The two forms of an entry (bluearrow/outbox.h): one file ID.entry, its
 * state block then its message, with ID.up once its state changed; or the
 * pair ID.msg and ID.st that earlier versions wrote.  `one` below is 1 for
 * the first form.  Every suffix is listed here.
 */
#define SUF_ENTRY ".entry"
#define SUF_UP ".up"
#define SUF_MSG ".msg"
#define SUF_ST ".st"
#define NAME_MAX_ID (BA_OUTBOX_ID_MAX + 8)
#define UP_ORPHAN_AGE 600 /* a q/ID.up without its entry this old is a removal a crash cut */

/* The name of id's message-carrying file into name. */
static const char *msg_name(char *name, const char *id, int one)
{
	snprintf(name, NAME_MAX_ID, "%s%s", id, one ? SUF_ENTRY : SUF_MSG);
	return name;
}

/* The name of id's state file (ID.up or ID.st) into name. */
static const char *state_name(char *name, const char *id, int one)
{
	snprintf(name, NAME_MAX_ID, "%s%s", id, one ? SUF_UP : SUF_ST);
	return name;
}

struct ba_outbox {
	char *dir;
	int dfd;
	int sub[D_COUNT];
	const struct ba_log *log;
};

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
		snprintf(shown, sizeof(shown), "%s/%s", dir, sub_names[i]);
		if (open_dir(&ob->sub[i], ob->dfd, sub_names[i], shown, err) < 0)
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

/*
 * Writes e's state as tmp/NAME (ID.up, or ID.st for the pair form), fsyncs
 * it, renames it to sub/NAME and fsyncs sub: the one durable state update.
 */
static int write_state(ba_outbox *ob, const struct ba_outbox_entry *e, int sub, int one,
                       struct ba_err *err)
{
	char name[NAME_MAX_ID];
	state_name(name, e->id, one);
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
		io_err(ob, "sync", sub_names[sub], ".", errno, err);
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
		msg_name(name, e->id, 1);
		fd = openat(ob->sub[D_TMP], name,
		            O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && (errno != EEXIST || tries > 5))
			return io_err(ob, "create", "tmp", name, errno, err);
	}
	flock(fd, LOCK_EX); /* a new file: no one else holds it */
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
		       ob->dir, sub_names[sub], name, why, dst);
	} else {
		ba_log(ob->log, BA_LOG_WARNING, "outbox %s: '%s/%s' %s, and cannot be moved aside: "
		       "%s", ob->dir, sub_names[sub], name, why, ba_strerror_t(errno));
	}
}

/* Where an entry's parts are, as load() found them. */
struct loc {
	int one;             /* its form: ID.entry (+ ID.up) 1, ID.msg + ID.st 0 */
	int up;              /* one: ID.up holds its state (changed since the enqueue) */
	int fd;              /* its message-carrying file, open; -1 = none */
	int have_st;         /* st is that file's status already (lock_entry()) */
	struct stat st;
	int no_up;           /* scan(): the directory listed no ID.up, so none is looked for */
	uint64_t off;        /* where the message starts in that file */
	struct ba_buf head;  /* one: the file's first bytes as read: the state block, then the
	                        start of the message (a small message whole) */
};
#define LOC_INIT { .fd = -1, .head = BA_BUF_INIT }

static void loc_release(struct loc *l)
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
		l->fd = openat(ob->sub[sub], msg_name(name, id, one),
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
		if (faccessat(ob->sub[sub], state_name(name, id, one), F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			set_aside(ob, sub, name, why);
		if (faccessat(ob->sub[sub], msg_name(name, id, one), F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			set_aside(ob, sub, name, one ? why : "belongs to a corrupt state file");
	}
}

/*
 * Reads the state of entry id in sub (form: as open_msg()) into *e; with
 * l->fd open already (the caller's lock) that file is the message's.  A
 * state that does not parse is moved aside with its message.  On success
 * l says where the message is, its file left open in l->fd (the caller
 * releases l in any case).  1 = gone.
 */
static int load(ba_outbox *ob, int sub, const char *id, int form, struct loc *l,
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
			return io_err(ob, "open", sub_names[sub], id, eno, err);
		l->one = form == 1; /* no message file: a state alone is corrupt, none is gone */
	}
	const struct stat *st = &l->st;
	if (l->fd >= 0 && !l->have_st && fstat(l->fd, &l->st) < 0)
		return io_err(ob, "read", sub_names[sub], id, errno, err);
	l->have_st = l->fd >= 0;
	if (l->fd >= 0 && !S_ISREG(st->st_mode)) {
		set_aside_entry(ob, sub, id, "is not a regular file");
		return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt", ob->dir, id);
	}
	if (l->one && l->fd < 0)
		return 1;
	l->off = 0;
	l->up = 0;
	if (l->one && read_head(l, (uint64_t)st->st_size, &eno) < 0) {
		if (eno != EINVAL)
			return io_err(ob, "read", sub_names[sub], msg_name(name, id, 1), eno, err);
		set_aside_entry(ob, sub, id, "has no state block");
		return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt", ob->dir, id);
	}
	/* the state: ID.up or ID.st when there is one, else ID.entry's block */
	struct ba_buf b = BA_BUF_INIT;
	const char *text = l->head.data;
	size_t len = (size_t)l->off;
	state_name(name, id, l->one);
	if (l->one && l->no_up) {
		eno = ENOENT;
	} else if (read_small(&b, ob->sub[sub], name, &eno) == 0) {
		text = b.data ? b.data : "";
		len = b.len;
		l->up = l->one;
	} else if (eno != ENOENT || !l->one) {
		ba_buf_release(&b);
		if (eno == ENOENT)
			return 1; /* a message without its state: not an entry (scan() tidies) */
		if (eno == EINVAL || eno == ELOOP) {
			set_aside_entry(ob, sub, id, "is not a regular file of at most 1 MB");
			return ba_err_set(err, EX_DATAERR, "outbox %s: entry '%s' is corrupt", ob->dir,
			                  id);
		}
		return io_err(ob, "read", sub_names[sub], name, eno, err);
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
		set_aside(ob, sub, state_name(name, id, 0), "has no message file");
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
	state_name(sname, id, 0);
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
	if (faccessat(ob->sub[D_Q], msg_name(ename, id, 1), F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT && fstatat(ob->sub[D_Q], uname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    time(NULL) - st.st_mtime > UP_ORPHAN_AGE) {
		unlinkat(ob->sub[D_Q], uname, 0);
		ba_log(ob->log, BA_LOG_DEBUG, "outbox %s: removed 'q/%s', a state without its entry",
		       ob->dir, uname);
	}
}

/* A sorted set of entry IDs: those with an ID.up in q/ (few: entries whose state changed). */
struct idset {
	char **v;
	size_t n, cap;
	int failed;          /* out of memory: membership is unknown */
};

static void idset_add(struct idset *x, const char *id)
{
	if (x->failed)
		return;
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 16;
		char **nv = realloc(x->v, nc * sizeof(*nv));
		if (!nv) {
			x->failed = 1;
			return;
		}
		x->v = nv;
		x->cap = nc;
	}
	if (!(x->v[x->n] = strdup(id)))
		x->failed = 1;
	else
		x->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 when id is surely not in x (set up with qsort(cmp_str) after the last idset_add()). */
static int idset_lacks(const struct idset *x, const char *id)
{
	return !x->failed && (!x->n || !bsearch(&id, x->v, x->n, sizeof(*x->v), cmp_str));
}

static void idset_free(struct idset *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->v[i]);
	free(x->v);
}

/*
 * Reads every entry of q/ and hands each to fn (which owns it from then on
 * and returns 0, or -1 with err set to stop); sets aside what is no entry
 * and removes crash leftovers.
 */
static int scan(ba_outbox *ob, int (*fn)(void *ctx, struct ba_outbox_entry *e, struct ba_err *err),
                void *ctx, struct ba_err *err)
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
	 * A first look at the names notes which entries have an ID.up, so
	 * that those without one (nearly all) cost no lookup of it.  One that
	 * appears meanwhile is missed, as any change after a listing is: a
	 * flush reads the entry again under its lock.
	 */
	struct idset ups = { NULL, 0, 0, 0 };
	while ((de = readdir(d)) != NULL) {
		char id[BA_OUTBOX_ID_MAX];
		if (name_kind(de->d_name, id, sizeof(id)) == K_UP)
			idset_add(&ups, id);
	}
	if (ups.n)
		qsort(ups.v, ups.n, sizeof(*ups.v), cmp_str);
	rewinddir(d);
	/*
	 * Pass 1 loads the entries; pass 2 looks for ID.msg files without a
	 * state (an enqueue of an earlier version or a move a crash
	 * interrupted), one system call each, and is needed only when there are
	 * more of them than states that had one.
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
				if (faccessat(ob->sub[D_Q], state_name(sname, id, 0), F_OK,
				              AT_SYMLINK_NOFOLLOW) < 0)
					drop_orphan(ob, id, de->d_name);
			} else if (kind == K_MSG) {
				nmsg++;
			} else if (kind == K_UP && pass == 1) {
				drop_lone_up(ob, id, de->d_name);
			} else if ((kind == K_ST || kind == K_ENTRY) && pass == 1) {
				struct ba_err lerr = BA_ERR_INIT;
				struct ba_outbox_entry e;
				struct loc l = LOC_INIT;
				l.no_up = kind == K_ENTRY && idset_lacks(&ups, id);
				int r = load(ob, D_Q, id, kind == K_ENTRY, &l, &e, &lerr);
				loc_release(&l);
				paired += r == 0 && kind == K_ST; /* a state with its message */
				if (r == 0)
					rc = fn(ctx, &e, err);
				else if (r < 0 && lerr.code == EX_OSERR)
					rc = ba_err_set(err, EX_OSERR, "out of memory");
			}
		}
	}
	closedir(d);
	idset_free(&ups);
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
	if (scan(ob, list_add, &l, err) < 0) {
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
		int r = load(ob, D_FAILED, id, kind == K_ENTRY, &lc, &e, &lerr);
		loc_release(&lc);
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

static int check_id(const ba_outbox *ob, const char *id, struct ba_err *err)
{
	if (!*id || *id == '.' || strchr(id, '/') || strlen(id) >= BA_OUTBOX_ID_MAX)
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
		int r = load(ob, sub, id, -1, &l, e, err);
		if (r == 0 && msg_fd) {
			if (lseek(l.fd, (off_t)l.off, SEEK_SET) < 0) {
				ba_outbox_entry_release(e);
				r = io_err(ob, "read", sub_names[sub], id, errno, err);
			} else {
				*msg_fd = l.fd;
				l.fd = -1;
			}
		}
		loc_release(&l);
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

/*
 * Opens and locks ID's message-carrying file in sub (without waiting) into
 * l, with its status.  1 = it is gone.
 */
static int lock_entry(ba_outbox *ob, int sub, const char *id, struct loc *l, struct ba_err *err)
{
	int eno = 0;
	if (open_msg(ob, sub, id, -1, l, &eno) < 0)
		return eno == ENOENT ? 1 : io_err(ob, "open", sub_names[sub], id, eno, err);
	if (flock(l->fd, LOCK_EX | LOCK_NB) < 0) {
		close(l->fd);
		l->fd = -1;
		return ba_err_set(err, EX_TEMPFAIL, "outbox %s: entry '%s' is being sent", ob->dir,
		                  id);
	}
	if (fstat(l->fd, &l->st) < 0 || l->st.st_nlink == 0) { /* removed while we waited */
		close(l->fd);
		l->fd = -1;
		return 1;
	}
	l->have_st = 1;
	return 0;
}

/*
 * Removes ID from sub: the part that makes it an entry first (ID.entry;
 * ID.st), then the other; with sync the directory is fsync'd too (else the
 * caller does it later, for a batch of removals).
 */
static int remove_files(ba_outbox *ob, int sub, const char *id, int one, int sync,
                        struct ba_err *err)
{
	char name[NAME_MAX_ID];
	if (one)
		msg_name(name, id, 1);
	else
		state_name(name, id, 0);
	if (unlinkat(ob->sub[sub], name, 0) < 0 && errno != ENOENT)
		return io_err(ob, "remove", sub_names[sub], name, errno, err);
	if (one)
		state_name(name, id, 1);
	else
		msg_name(name, id, 0);
	unlinkat(ob->sub[sub], name, 0);
	if (sync && fsync(ob->sub[sub]) < 0)
		return io_err(ob, "sync", sub_names[sub], ".", errno, err);
	return 0;
}

/*
 * Moves a locked entry between q/ and failed/ with the state e, in an order
 * that never shows q/ a state without its message (a flush or list would
 * set it aside as corrupt).
 * One file: into failed/, the state written there first (ID.up alone in
 * failed/ is no entry), then ID.entry moved, then the old ID.up removed;
 * into q/, ID.entry moved first (locked, so no flush takes it), then its
 * state written.
 * A pair: into failed/, the new state there, the state in q/ removed (the
 * entry leaves the queue), the message moved; a crash before the move
 * leaves a message in q/ that the next list moves on (drop_orphan()).
 * Into q/: the message first, then the state, then the old state removed.
 */
static int move_entry(ba_outbox *ob, int from, int to, const struct ba_outbox_entry *e, int one,
                      struct ba_err *err)
{
	char mname[NAME_MAX_ID], sname[NAME_MAX_ID];
	msg_name(mname, e->id, one);
	state_name(sname, e->id, one);
	if (to == D_FAILED) {
		if (write_state(ob, e, to, one, err) < 0)
			return -1;
		if (!one && unlinkat(ob->sub[from], sname, 0) < 0 && errno != ENOENT)
			return io_err(ob, "remove", sub_names[from], sname, errno, err);
	}
	if (renameat(ob->sub[from], mname, ob->sub[to], mname) < 0)
		return io_err(ob, "move", sub_names[from], mname, errno, err);
	if (to != D_FAILED) {
		if (write_state(ob, e, to, one, err) < 0)
			return -1;
		unlinkat(ob->sub[from], sname, 0);
	} else {
		if (one)
			unlinkat(ob->sub[from], sname, 0);
		if (fsync(ob->sub[to]) < 0)
			return io_err(ob, "sync", sub_names[to], ".", errno, err);
	}
	if (fsync(ob->sub[from]) < 0)
		return io_err(ob, "sync", sub_names[from], ".", errno, err);
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
		int r = lock_entry(ob, sub, id, l, err);
		if (r < 0)
			return -1;
		if (r == 1)
			continue;
		r = load(ob, sub, id, l->one, l, e, err);
		if (r == 0)
			return sub;
		loc_release(l);
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
	int rc = remove_files(ob, sub, id, l.one, 1, err);
	ba_outbox_entry_release(&e);
	loc_release(&l);
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
		rc = move_entry(ob, D_FAILED, D_Q, &e, l.one, err);
	} else {
		rc = write_state(ob, &e, D_Q, l.one, err);
	}
	ba_outbox_entry_release(&e);
	loc_release(&l);
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
		rc = write_state(ob, &e, D_Q, l.one, err);
	}
	ba_outbox_entry_release(&e);
	loc_release(&l);
	return rc;
}

/* ---- the flush ------------------------------------------------------------- */

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

static void set_error(struct ba_outbox_entry *e, const struct ba_err *err, const char *server)
{
	free(e->error);
	e->error_class = err->code;
	e->error_code = err->smtp_code;
	struct ba_buf b = BA_BUF_INIT;
	if (server && *server)
		ba_buf_addf(&b, "%s: ", server);
	ba_buf_addstr(&b, err->text);
	e->error = ba_buf_failed(&b) ? NULL : strdup(ba_buf_str(&b));
	ba_buf_release(&b);
}

#define SPOOL_COPY_MAX (64u << 10) /* a message up to this size is copied, not referred to */

/*
 * Spools the message of the locked entry l (size bytes) for sending: read
 * once here for the flags; a small one is kept in memory (the send then
 * costs no further system calls), a larger one is read again from its file.
 * What load() read of it already is not read again.
 */
static int spool_file(ba_spool **out, const struct loc *l, const ba_outbox *ob, const char *id,
                      uint64_t size, struct ba_err *err)
{
	if (ba_spool_new(out, 0, err) < 0)
		return -1;
	if (size > SPOOL_COPY_MAX)
		ba_spool_refer(*out, l->fd, (off_t)l->off);
	ba_writer *w = ba_spool_writer(*out);
	uint64_t end = l->off + size, pos = l->off;
	if (l->head.len > pos) {
		size_t n = l->head.len - pos < size ? l->head.len - (size_t)pos : (size_t)size;
		if (ba_write(w, l->head.data + pos, n, err) < 0)
			goto fail;
		pos += n;
	}
	char buf[65536];
	while (pos < end) {
		ssize_t k = pread(l->fd, buf, sizeof(buf), (off_t)pos);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			char name[NAME_MAX_ID];
			ba_err_set(err, EX_IOERR, "outbox %s: cannot read 'q/%s': %s", ob->dir,
			           msg_name(name, id, l->one), ba_strerror_t(errno));
			goto fail;
		}
		if (k == 0)
			break;
		if (ba_write(w, buf, (size_t)k, err) < 0)
			goto fail;
		pos += (uint64_t)k;
	}
	if (ba_flush(w, err) < 0)
		goto fail;
	return 0;
fail:
	ba_spool_free(*out);
	*out = NULL;
	return -1;
}

/*
 * Removals of delivered entries not yet made durable.  A removal lost to a
 * power failure only sends that message again, as a crash after the
 * server's reply does (at-least-once), so q/ is fsync'd once per this many
 * deliveries and at the end of a flush rather than after each one: that
 * fsync costs more than the SMTP exchange of a small message.
 */
#define REMOVE_SYNC_EVERY 256

/*
 * Removing a delivered entry frees its blocks, which on a file system
 * mounted with online discard (common on virtual machines) waits for the
 * device to discard them: about 0.1 ms per file, mostly waiting, and
 * removals made at the same time overlap.  So a flush takes the entry out
 * of the queue at once (ID.entry, or the state ID.st of the pair form,
 * renamed to tmp/ID.sent: cheap, no blocks freed) and hands the removal of
 * the files to a few threads while it goes on sending.  A crash before they
 * are done leaves a file in tmp/ (cleaned after 36 hours) and perhaps an
 * ID.up or ID.msg without its entry in q/ (dropped by a later scan), never
 * an entry sent again.  The entry stays locked until its files are gone.
 */
#define REAPERS 8
#define REAP_QUEUE 256
#define REAP_BATCH 16  /* the threads are woken for this many removals at once */

struct reap_item {
	char id[BA_OUTBOX_ID_MAX];
	int fd;                      /* the entry's locked message file, closed last; or -1 */
	int one, up;                 /* its form and whether it has a q/ID.up (struct loc) */
};

struct reaper {
	pthread_mutex_t mu;
	pthread_cond_t more, room;
	struct reap_item q[REAP_QUEUE];
	size_t head, n;
	int stop, qfd, tmpfd, nth;
	pthread_t th[REAPERS];
};

static void *reaper_main(void *arg)
{
	struct reaper *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->n && !r->stop)
			pthread_cond_wait(&r->more, &r->mu);
		if (!r->n)
			break;
		struct reap_item it = r->q[r->head];
		r->head = (r->head + 1) % REAP_QUEUE;
		r->n--;
		pthread_cond_signal(&r->room);
		pthread_mutex_unlock(&r->mu);
		char name[NAME_MAX_ID];
		snprintf(name, sizeof(name), "%s.sent", it.id);
		unlinkat(r->tmpfd, name, 0);
		if (!it.one)
			unlinkat(r->qfd, msg_name(name, it.id, 0), 0);
		else if (it.up)
			unlinkat(r->qfd, state_name(name, it.id, 1), 0);
		if (it.fd >= 0)
			close(it.fd);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct flush_ctx {
	ba_outbox *ob;
	const struct ba_outbox_flush_opts *o;
	struct ba_outbox_flush_stats *st;
	int64_t now;
	unsigned unsynced;       /* removals since q/ was last fsync'd */
	struct ba_outbox_entry *cur; /* the entry being sent (its phase, its in-flight mark) */
	struct loc *cur_loc;     /* where its files are */
	int end_sent;            /* its end of the data may have reached the server */
	int stopped;             /* a send was cancelled: the flush ends */
	struct job *jobs;        /* sent, the server's verdict still to come */
	/* the entry after the one being sent, prepared while the server works (job_done()) */
	const char *ahead_id;
	const struct ba_account *ahead_acc;
	const struct ba_err *ahead_acc_err;
	struct job *ahead;
	int ahead_tried;
	struct reaper *reaper;   /* removes delivered entries; NULL until the first (or none) */
	int reaper_failed;       /* could not be started: removals are made in place */
};

/*
 * Takes delivered entry id (its files where l says) out of the queue and
 * hands the removal of its files to the reaper, and fd (its locked message
 * file, or -1) to close last.  -1 when that cannot be done: the caller
 * removes the entry itself.
 */
static int reap(struct flush_ctx *c, const char *id, const struct loc *l, int fd)
{
	struct reaper *r = c->reaper;
	if (!r && !c->reaper_failed) {
		r = calloc(1, sizeof(*r));
		if (r && pthread_mutex_init(&r->mu, NULL) == 0) {
			pthread_cond_init(&r->more, NULL);
			pthread_cond_init(&r->room, NULL);
			r->qfd = c->ob->sub[D_Q];
			r->tmpfd = c->ob->sub[D_TMP];
			while (r->nth < REAPERS &&
			       pthread_create(&r->th[r->nth], NULL, reaper_main, r) == 0)
				r->nth++;
		}
		if (!r || !r->nth) {
			if (r) {
				pthread_mutex_destroy(&r->mu);
				pthread_cond_destroy(&r->more);
				pthread_cond_destroy(&r->room);
			}
			free(r);
			r = NULL;
			c->reaper_failed = 1;
		}
		c->reaper = r;
	}
	if (!r)
		return -1;
	char name[NAME_MAX_ID], sent[NAME_MAX_ID];
	if (l->one)
		msg_name(name, id, 1);
	else
		state_name(name, id, 0);
	snprintf(sent, sizeof(sent), "%s.sent", id);
	if (renameat(c->ob->sub[D_Q], name, c->ob->sub[D_TMP], sent) < 0 && errno != ENOENT)
		return -1;
	pthread_mutex_lock(&r->mu);
	while (r->n == REAP_QUEUE)
		pthread_cond_wait(&r->room, &r->mu);
	struct reap_item *it = &r->q[(r->head + r->n) % REAP_QUEUE];
	snprintf(it->id, sizeof(it->id), "%s", id);
	it->fd = fd;
	it->one = l->one;
	it->up = l->up;
	if (++r->n % REAP_BATCH == 0)
		pthread_cond_broadcast(&r->more);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* Waits for every removal handed over. */
static void reap_wait(struct flush_ctx *c)
{
	struct reaper *r = c->reaper;
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->more);
	pthread_mutex_unlock(&r->mu);
	for (int k = 0; k < r->nth; k++)
		pthread_join(r->th[k], NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->more);
	pthread_cond_destroy(&r->room);
	free(r);
	c->reaper = NULL;
}

static void sync_removals(struct flush_ctx *c)
{
	if (c->unsynced && fsync(c->ob->sub[D_Q]) < 0)
		ba_log(c->o->log, BA_LOG_WARNING, "outbox %s: cannot sync 'q': %s", c->ob->dir,
		       ba_strerror_t(errno));
	c->unsynced = 0;
}

/* Records the outcome of one attempt durably.  Returns the outcome. */
static enum ba_outbox_outcome settle(struct flush_ctx *c, struct ba_outbox_entry *e, int sent,
                                     const struct ba_submit_result *res, const size_t *idx,
                                     size_t nidx, const struct ba_account *acc,
                                     struct ba_err *err)
{
	e->attempts++;
	int perm = 0;
	/* each recipient's refusal as the server worded it, kept for show and the report */
	for (size_t k = 0; res && res->result && k < nidx && k < res->result->nrcpts; k++) {
		const struct ba_rcpt_result *rr = &res->result->rcpts[k];
		struct ba_outbox_rcpt *rc = &e->rcpt[idx[k]];
		char *t;
		if (rr->code && rr->code < 400) { /* accepted at RCPT this time */
			free(rc->reply);
			rc->reply = NULL;
		}
		if (rr->accepted || rr->code < 400 || !(t = malloc(strlen(rr->text) + 8)))
			continue;
		snprintf(t, strlen(rr->text) + 8, "%d %s", rr->code, rr->text);
		free(rc->reply);
		rc->reply = t;
		rc->code = rr->code;
	}
	if (sent == 0) {
		/* per recipient: accepted, refused for good, or still to try */
		struct ba_result *r = res->result;
		for (size_t k = 0; r && k < nidx && k < r->nrcpts; k++) {
			struct ba_outbox_rcpt *rc = &e->rcpt[idx[k]];
			rc->code = r->rcpts[k].code;
			if (r->rcpts[k].accepted)
				rc->state = BA_OUTBOX_RCPT_SENT;
			else if (r->rcpts[k].code >= 500)
				rc->state = BA_OUTBOX_RCPT_FAILED;
		}
		int pending = 0, failed = 0;
		for (size_t i = 0; i < e->nrcpt; i++) {
			pending += e->rcpt[i].state == BA_OUTBOX_RCPT_PENDING;
			failed += e->rcpt[i].state == BA_OUTBOX_RCPT_FAILED;
		}
		if (!pending && !failed)
			return BA_OUTBOX_DELIVERED;
		if (!pending) {
			perm = 1;
			ba_err_set(err, EX_UNAVAILABLE, "%u recipient(s) refused", (unsigned)failed);
			for (size_t k = 0; r && k < nidx && k < r->nrcpts; k++)
				if (e->rcpt[idx[k]].state == BA_OUTBOX_RCPT_FAILED) {
					ba_err_smtp(err, EX_UNAVAILABLE, r->rcpts[k].code, r->rcpts[k].enhanced,
					            "recipient '%s' refused: %d %s", r->rcpts[k].addr,
					            r->rcpts[k].code, r->rcpts[k].text);
					break;
				}
		} else {
			ba_err_set(err, EX_TEMPFAIL, "%u recipient(s) deferred", (unsigned)pending);
		}
	} else if (sent < 0) {
		/*
		 * Direct delivery reaches each domain on its own, so a failed
		 * attempt may still have delivered to some recipients (and been
		 * refused for good for others): those are settled, never tried
		 * again.  A relay's failure delivered to no one.
		 */
		struct ba_result *r = res ? res->result : NULL;
		for (size_t k = 0; r && k < nidx && k < r->nrcpts; k++) {
			struct ba_outbox_rcpt *rc = &e->rcpt[idx[k]];
			if (r->rcpts[k].accepted) {
				rc->state = BA_OUTBOX_RCPT_SENT;
				rc->code = r->rcpts[k].code;
			} else if (acc && ba_config_delivers_mx(acc) && r->rcpts[k].code >= 500) {
				rc->state = BA_OUTBOX_RCPT_FAILED;
				rc->code = r->rcpts[k].code;
			}
		}
		perm = !ba_outbox_temporary(err);
	}
	set_error(e, err, res ? res->server : NULL);
	long max_age = acc && acc->queue_max_age ? acc->queue_max_age : BA_OUTBOX_MAX_AGE_DEFAULT;
	if (!perm && c->now - e->created >= max_age) {
		perm = 1;
		char txt[BA_ERR_TEXT_MAX + 64];
		snprintf(txt, sizeof(txt), "queued for longer than queue_max_age (%lds): %s",
		         max_age, e->error ? e->error : "");
		free(e->error);
		e->error = strdup(txt);
	}
	if (perm)
		return BA_OUTBOX_FAILED;
	int64_t wait = BACKOFF_FIRST;
	for (unsigned k = 1; k < e->attempts && wait < BACKOFF_MAX; k++)
		wait *= 2;
	if (wait > BACKOFF_MAX)
		wait = BACKOFF_MAX;
	e->next = c->now + wait;
	return BA_OUTBOX_DEFERRED;
}

/* s with every byte outside printable ASCII as '?' (a report's fields are ASCII). */
static void add_ascii(struct ba_buf *b, const char *s)
{
	for (; s && *s; s++)
		ba_buf_addch(b, *s >= 0x20 && *s < 0x7f ? *s : '?');
}

#define BOUNCE_HEADER_MAX (64u << 10) /* of the original header, at most this is quoted */

/* The original message's header (up to its blank line) from the entry's file l, into b. */
static void add_header_of(struct ba_buf *b, const struct loc *l)
{
	char *buf = malloc(BOUNCE_HEADER_MAX);
	ssize_t k;
	if (!buf)
		return;
	while ((k = pread(l->fd, buf, BOUNCE_HEADER_MAX, (off_t)l->off)) < 0 && errno == EINTR)
		;
	size_t n = k > 0 ? (size_t)k : 0, end = 0;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != '\n')
			continue;
		end = i + 1;
		if (i + 1 < n && (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < n &&
		                                          buf[i + 2] == '\n')))
			break;
	}
	ba_buf_add(b, buf, end);
	free(buf);
}

/*
 * bounce on: the report of an entry that failed for good, mailed to its
 * sender through its account with the null sender (so a report never causes
 * another): an RFC 3464 multipart/report with a text part, the
 * message/delivery-status part (one block per recipient not delivered, with
 * the reason) and the original header.  l says where the entry's message
 * is.  A report that cannot be sent is logged and left: it is not queued.
 */
static void send_bounce(struct flush_ctx *c, const struct ba_outbox_entry *e,
                        const struct loc *l, const struct ba_account *acc, ba_route **route)
{
	const struct ba_outbox_flush_opts *o = c->o;
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf b = BA_BUF_INIT, now = BA_BUF_INIT, arrival = BA_BUF_INIT;
	ba_spool *spool = NULL;
	const char *at = strrchr(e->from, '@');
	const char *domain = at && at[1] ? at + 1 : acc->domain && *acc->domain ? acc->domain
	                                                                         : "localhost";
	const char *mta = acc->domain && *acc->domain ? acc->domain : domain;
	const char *status = e->error_code >= 500 ? "5.0.0" : "4.4.7"; /* 4.4.7: expired */
	ba_msg_format_date(&now, c->now, 0);
	ba_msg_format_date(&arrival, e->created, 0);
	ba_buf_addf(&b, "From: bluearrow outbox <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n"
	            "Subject: Undelivered mail returned to sender\r\nDate: %s\r\n"
	            "Message-ID: <%s.bounce@%s>\r\nAuto-Submitted: auto-replied\r\n"
	            "MIME-Version: 1.0\r\n"
	            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	            "\tboundary=\"=_bluearrow-%s\"\r\n\r\n"
	            "This is a delivery status report (RFC 3464).\r\n\r\n"
	            "--=_bluearrow-%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	            "Your message ", domain, e->from, ba_buf_str(&now), e->id, domain, e->id, e->id);
	if (e->msgid) {
		add_ascii(&b, e->msgid);
		ba_buf_addch(&b, ' ');
	}
	ba_buf_addf(&b, "could not be delivered to the recipient(s) below.\r\n"
	            "bluearrow's outbox gave it up after %u attempt(s) (account '%s', entry\r\n"
	            "%s, kept in failed/).\r\n\r\n", e->attempts, acc->name, e->id);
	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].state != BA_OUTBOX_RCPT_SENT) {
			ba_buf_addf(&b, "<%s>: ", e->rcpt[i].addr);
			add_ascii(&b, e->rcpt[i].reply ? e->rcpt[i].reply : e->error);
			ba_buf_addstr(&b, "\r\n");
		}
	ba_buf_addf(&b, "\r\n--=_bluearrow-%s\r\nContent-Type: message/delivery-status\r\n\r\n"
	            "Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n", e->id, mta,
	            ba_buf_str(&arrival));
	for (size_t i = 0; i < e->nrcpt; i++) {
		const struct ba_outbox_rcpt *r = &e->rcpt[i];
		if (r->state == BA_OUTBOX_RCPT_SENT)
			continue;
		ba_buf_addf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n"
		            "Diagnostic-Code: smtp; ", r->addr, r->code >= 500 ? "5.0.0" : status);
		add_ascii(&b, r->reply ? r->reply : e->error); /* its own refusal, else the entry's */
		ba_buf_addf(&b, "\r\nLast-Attempt-Date: %s\r\n", ba_buf_str(&now));
	}
	ba_buf_addf(&b, "\r\n--=_bluearrow-%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", e->id);
	add_header_of(&b, l);
	ba_buf_addf(&b, "\r\n--=_bluearrow-%s--\r\n", e->id);
	ba_buf_release(&now);
	ba_buf_release(&arrival);
	struct ba_submit_result res;
	memset(&res, 0, sizeof(res));
	int rc;
	if (ba_buf_failed(&b)) {
		rc = ba_err_set(&err, EX_OSERR, "out of memory");
	} else if ((rc = ba_spool_new(&spool, 0, &err)) == 0 &&
	           (rc = ba_write(ba_spool_writer(spool), b.data, b.len, &err)) == 0 &&
	           (rc = ba_flush(ba_spool_writer(spool), &err)) == 0) {
		const char *rcpt[1] = { e->from };
		struct ba_submit sub;
		memset(&sub, 0, sizeof(sub));
		sub.acc = acc;
		sub.from = "";
		sub.rcpt = rcpt;
		sub.nrcpt = 1;
		sub.spool = spool;
		sub.log = o->log;
		sub.smtp_flags = o->smtp_flags;
		sub.ask_password = o->ask_password;
		sub.ask_password_ctx = o->ask_password_ctx;
		sub.route = route;
		rc = ba_submit_send(&res, &sub, &err);
	}
	if (rc < 0)
		ba_log(o->log, BA_LOG_WARNING, "outbox %s: the report of failed entry '%s' to <%s> "
		       "could not be sent: %s", c->ob->dir, e->id, e->from, err.text);
	else
		ba_log(o->log, BA_LOG_INFO, "outbox %s: failed entry '%s' reported to <%s>",
		       c->ob->dir, e->id, e->from);
	ba_submit_result_release(&res);
	ba_spool_free(spool);
	ba_buf_release(&b);
}

/* ---- an interactive send: its phases, in-flight mark, cancel ---- */

static void flush_progress(void *ctx, uint64_t sent, uint64_t acked, uint64_t total)
{
	struct flush_ctx *c = ctx;
	if (c->cur && c->o->phase)
		c->o->phase(c->o->phase_ctx, c->cur->id, c->end_sent ? BA_OUTBOX_AWAITING
		                                                     : BA_OUTBOX_SENDING,
		            sent, acked, total);
}

/* Before the final dot: an interactive flush marks the entry in flight, durably. */
static int flush_data_end(void *ctx, struct ba_err *err)
{
	struct flush_ctx *c = ctx;
	if (!c->cur)
		return 0;
	if (c->o->interactive) {
		c->cur->inflight = (int64_t)time(NULL);
		if (write_state(c->ob, c->cur, D_Q, c->cur_loc->one, err) < 0) {
			c->cur->inflight = 0;
			return -1;
		}
		c->cur_loc->up = c->cur_loc->one;
	}
	c->end_sent = 1;
	if (c->o->phase)
		c->o->phase(c->o->phase_ctx, c->cur->id, BA_OUTBOX_AWAITING, 0, 0, 0);
	return 0;
}

/* Before a send: its cancel descriptor and the callbacks above; the connecting phase. */
static void watch_begin(struct flush_ctx *c, struct ba_submit *sub, struct ba_outbox_entry *e,
                        struct loc *l)
{
	const struct ba_outbox_flush_opts *o = c->o;
	sub->cancel_fd = o->cancel_fd;
	if (o->interactive || o->phase) {
		sub->progress = flush_progress;
		sub->progress_ctx = c;
		sub->data_end = flush_data_end;
		sub->data_end_ctx = c;
	}
	c->cur = e;
	c->cur_loc = l;
	c->end_sent = 0;
	if (o->phase)
		o->phase(o->phase_ctx, e->id, BA_OUTBOX_CONNECTING, 0, 0, 0);
}

/* After a send's verdict: its result to o->result. */
static void watch_end(struct flush_ctx *c, const struct ba_outbox_entry *e,
                      const struct ba_submit_result *res)
{
	if (c->cur == e) { /* pipelined, the next entry's send may be the current one */
		c->cur = NULL;
		c->cur_loc = NULL;
	}
	if (c->o->result)
		c->o->result(c->o->result_ctx, e, res);
}

/*
 * A cancelled send, or an interactive one whose end of the data went out
 * without a reply: recorded (cancelled, or sent-unknown with the in-flight
 * mark kept) instead of settled.  Returns the outcome, or -1 when the
 * attempt is settled as usual (then the in-flight mark is cleared).
 */
static int flush_special(struct flush_ctx *c, struct ba_outbox_entry *e, int sent,
                         const struct ba_submit_result *res, const struct ba_err *err)
{
	if (sent < 0 && (err->flags & BA_ERR_CANCELLED) && !c->end_sent) {
		e->cancelled = 1;
		set_error(e, err, res->server);
		c->stopped = 1;
		return BA_OUTBOX_CANCELLED;
	}
	if (sent < 0 && c->o->interactive && c->end_sent && e->inflight && !err->smtp_code) {
		e->attempts++;
		set_error(e, err, res->server);
		return BA_OUTBOX_UNKNOWN;
	}
	e->inflight = 0;
	return -1;
}

/*
 * One entry being sent.  With pipelining across messages the server's
 * verdict on it arrives while the next entry is sent (job_done() from
 * within ba_submit_send()), so what settling needs lives here until then.
 */
struct job {
	struct flush_ctx *c;
	char id[BA_OUTBOX_ID_MAX];
	struct ba_outbox_entry e;
	const struct ba_account *acc;
	struct loc loc;         /* its files; loc.fd locked (this process's hold_fd: not own_fd) */
	int own_fd;
	size_t *idx;
	const char **rcpt;
	size_t nidx;
	ba_spool *spool;
	int settled;            /* the outcome is recorded; left: the report, closing */
	int bounce;             /* a report is to be mailed (outside of any send) */
	int ready;              /* prepared: 1 to send, 0 nothing left to send, -1 failed (err) */
	int watched;            /* sent lock-step: its verdict came back from ba_submit_send() */
	struct ba_err err;
	struct job *next;
};

/* Records the outcome of j's attempt: its state file, the statistics, o->done. */
static void job_settle(struct job *j, int sent, const struct ba_submit_result *res,
                       struct ba_err *err)
{
	struct flush_ctx *c = j->c;
	const struct ba_outbox_flush_opts *o = c->o;
	ba_outbox *ob = c->ob;
	/* a cancelled or sent-unknown send is recorded as such, not settled */
	int special = j->watched ? flush_special(c, &j->e, sent, res, err) : -1;
	enum ba_outbox_outcome out =
	        special >= 0 ? (enum ba_outbox_outcome)special
	                     : settle(c, &j->e, sent < 0 ? -1 : 0, res, j->idx, j->nidx, j->acc, err);
	struct ba_err serr = BA_ERR_INIT;
	int wr;
	if (out == BA_OUTBOX_DELIVERED) {
		if (reap(c, j->id, &j->loc, j->own_fd ? j->loc.fd : -1) == 0) {
			wr = 0;
			if (j->own_fd)
				j->loc.fd = -1; /* the reaper closes it once the files are gone */
		} else {
			wr = remove_files(ob, D_Q, j->id, j->loc.one, 0, &serr);
		}
		if (++c->unsynced >= REMOVE_SYNC_EVERY)
			sync_removals(c);
	}
	else if (out == BA_OUTBOX_FAILED) {
		wr = move_entry(ob, D_Q, D_FAILED, &j->e, j->loc.one, &serr);
		/* never a report of a report */
		j->bounce = wr == 0 && j->acc && j->acc->bounce && j->e.from[0];
	}
	else if ((wr = write_state(ob, &j->e, D_Q, j->loc.one, &serr)) == 0)
		j->loc.up = j->loc.one;
	if (wr < 0) {
		ba_log(o->log, BA_LOG_ERROR, "%s", serr.text);
		if (out == BA_OUTBOX_DELIVERED)
			ba_log(o->log, BA_LOG_ERROR, "outbox %s: entry '%s' was delivered but stays "
			       "queued: it may be sent again", ob->dir, j->id);
	}
	switch (out) {
	case BA_OUTBOX_DELIVERED: c->st->delivered++; break;
	case BA_OUTBOX_DEFERRED: c->st->deferred++; break;
	case BA_OUTBOX_FAILED: c->st->failed++; break;
	case BA_OUTBOX_SKIPPED: c->st->skipped++; break;
	case BA_OUTBOX_UNKNOWN: c->st->unknown++; break;
	case BA_OUTBOX_CANCELLED: c->st->cancelled++; break;
	}
	if (o->done)
		o->done(o->done_ctx, &j->e, out, out == BA_OUTBOX_DELIVERED ? NULL : err);
	j->settled = 1;
}

static struct job *job_prepare(struct flush_ctx *c, const char *id,
                               const struct ba_account *acc, const struct ba_err *acc_err);

/*
 * ba_submit_send() returned 1 for j: its outcome, once the server's verdict
 * is read.  That is right after the next message went out, so the entry
 * after it is prepared now too, while the server works.
 */
static void job_done(void *ctx, const struct ba_submit_result *res, int rc,
                     const struct ba_err *err)
{
	struct job *j = ctx;
	struct flush_ctx *c = j->c;
	struct ba_err e = BA_ERR_INIT;
	if (rc < 0)
		e = *err;
	watch_end(c, &j->e, res);
	job_settle(j, rc, res, &e);
	if (c->ahead_id && !c->ahead_tried) {
		c->ahead_tried = 1;
		c->ahead = job_prepare(c, c->ahead_id, c->ahead_acc, c->ahead_acc_err);
	}
}

/* The rest of a settled (or never sent) job: the report, the lock, the memory. */
static void job_end(struct job *j, ba_route **route)
{
	if (j->bounce)
		send_bounce(j->c, &j->e, &j->loc, j->acc, route);
	ba_spool_free(j->spool);
	free(j->idx);
	free(j->rcpt);
	ba_outbox_entry_release(&j->e);
	if (!j->own_fd)
		j->loc.fd = -1;
	loc_release(&j->loc);
	free(j);
}

/* Ends every settled job of the list (a report sent meanwhile may settle more). */
static void jobs_reap(struct flush_ctx *c, ba_route **route)
{
	for (;;) {
		struct job **pp = &c->jobs;
		while (*pp && !(*pp)->settled)
			pp = &(*pp)->next;
		if (!*pp)
			return;
		struct job *j = *pp;
		*pp = j->next;
		job_end(j, route);
	}
}

/*
 * One entry locked and read for sending: its state, its recipients still to
 * do, its message spooled.  NULL when it is gone, locked by another flush or
 * unreadable (counted and logged here).
 */
static struct job *job_prepare(struct flush_ctx *c, const char *id,
                               const struct ba_account *acc, const struct ba_err *acc_err)
{
	const struct ba_outbox_flush_opts *o = c->o;
	ba_outbox *ob = c->ob;
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		c->st->skipped++;
		return NULL;
	}
	j->c = c;
	j->acc = acc;
	j->loc = (struct loc)LOC_INIT;
	j->own_fd = 1;
	ba_err_clear(&j->err);
	snprintf(j->id, sizeof(j->id), "%s", id);
	if (o->hold_fd > 0) {
		/* the entry this process added and still holds (sendmail -odb) */
		char mname[NAME_MAX_ID];
		struct stat a, b;
		if (fstat(o->hold_fd, &a) == 0 &&
		    fstatat(ob->sub[D_Q], msg_name(mname, id, 1), &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
			j->loc.fd = o->hold_fd;
			j->loc.one = 1;
			j->own_fd = 0;
		}
	}
	if (j->loc.fd < 0) {
		int r = lock_entry(ob, D_Q, id, &j->loc, &j->err);
		if (r != 0) {
			if (r < 0)
				c->st->skipped++;
			job_end(j, NULL); /* locked by another flush, or already gone */
			return NULL;
		}
	}
	if (load(ob, D_Q, id, j->loc.one, &j->loc, &j->e, &j->err) != 0 || j->e.inflight ||
	    j->e.cancelled) {
		/* gone, or marked sent-unknown or cancelled since the queue was read */
		job_end(j, NULL);
		return NULL;
	}
	struct ba_outbox_entry *e = &j->e;
	j->idx = calloc(e->nrcpt, sizeof(*j->idx));
	j->rcpt = calloc(e->nrcpt, sizeof(*j->rcpt));
	if (!j->idx || !j->rcpt) {
		c->st->skipped++;
		job_end(j, NULL);
		return NULL;
	}
	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].state == BA_OUTBOX_RCPT_PENDING) {
			j->idx[j->nidx] = i;
			j->rcpt[j->nidx++] = e->rcpt[i].addr;
		}
	j->ready = -1;
	if (!acc)
		j->err = *acc_err;
	else if (j->nidx == 0)
		j->ready = 0; /* nothing left to send: settle it */
	else if (spool_file(&j->spool, &j->loc, ob, id, e->size, &j->err) == 0)
		j->ready = 1;
	ba_buf_release(&j->loc.head); /* spooled: what was read of the file is not needed */
	return j;
}

/*
 * One entry: lock, reload, send over *route; its outcome now or from
 * job_done().  next_id: the entry to send after it (same account), prepared
 * while the server answers, or NULL.
 */
static void flush_one(struct flush_ctx *c, const char *id, const char *next_id,
                      const struct ba_account *acc, const struct ba_err *acc_err,
                      ba_route **route)
{
	const struct ba_outbox_flush_opts *o = c->o;
	struct job *j;
	if (c->ahead_tried && c->ahead_id && strcmp(c->ahead_id, id) == 0)
		j = c->ahead; /* prepared already (NULL: it was gone or locked) */
	else
		j = job_prepare(c, id, acc, acc_err);
	c->ahead_id = next_id;
	c->ahead_acc = acc;
	c->ahead_acc_err = acc_err;
	c->ahead = NULL;
	c->ahead_tried = 0;
	if (!j)
		return;
	struct ba_submit_result res;
	memset(&res, 0, sizeof(res));
	int sent = j->ready < 0 ? -1 : 0;
	struct ba_err err = j->err;
	if (j->ready == 1) {
		struct ba_outbox_entry *e = &j->e;
		struct ba_submit sub;
		memset(&sub, 0, sizeof(sub));
		sub.acc = acc;
		sub.from = e->from;
		sub.rcpt = j->rcpt;
		sub.nrcpt = j->nidx;
		sub.spool = j->spool;
		sub.notify = e->notify;
		sub.ret = e->ret;
		sub.envid = e->envid;
		sub.log = o->log;
		sub.smtp_flags = o->smtp_flags;
		sub.ask_password = o->ask_password;
		sub.ask_password_ctx = o->ask_password_ctx;
		sub.route = route;
		/*
		 * A send someone watches or may cancel (bluearrow-tui) goes
		 * lock-step, its verdict awaited before the next message: the
		 * in-flight mark, the phases and a cancel then concern that message
		 * alone.  The bulk flush pipelines across messages (job_done()).
		 */
		int lockstep = o->interactive || o->cancel_fd || o->phase || o->result;
		watch_begin(c, &sub, e, &j->loc);
		if (!lockstep) {
			sub.done = job_done;
			sub.done_ctx = j;
			/* on the list first: the verdict may come before the call returns */
			j->next = c->jobs;
			c->jobs = j;
		}
		sent = ba_submit_send(&res, &sub, &err);
		if (sent == 1) {
			ba_submit_result_release(&res); /* what a failed first try left (reconnected) */
			jobs_reap(c, route);
			return;
		}
		if (!lockstep)
			c->jobs = j->next;
		watch_end(c, e, &res);
		j->watched = 1;
	}
	job_settle(j, sent < 0 ? -1 : 0, &res, &err);
	ba_submit_result_release(&res);
	job_end(j, route);
	jobs_reap(c, route);
}

/*
 * What a flush keeps of each entry until it sends it (the entry itself is
 * read again under its lock): a few dozen bytes, so a long queue costs
 * little memory.
 */
struct due {
	char id[BA_OUTBOX_ID_MAX];
	int64_t created;
	size_t account;             /* index into flush_index.accounts */
	int done;
};

struct flush_index {
	const struct ba_outbox_flush_opts *o;
	int64_t now;
	struct due *v;
	size_t n, cap;
	char **accounts;
	size_t naccounts;
};

static int selected(const struct ba_outbox_flush_opts *o, const struct ba_outbox_entry *e,
                    int64_t now)
{
	if (e->inflight || e->cancelled) /* sent-unknown or cancelled: only after a retry */
		return 0;
	if (o->account && strcmp(o->account, e->account) != 0)
		return 0;
	if (o->nids) {
		for (size_t k = 0; k < o->nids; k++)
			if (strcmp(o->ids[k], e->id) == 0)
				return 1;
		return 0;
	}
	/* -q sends every entry, but not one held for later and never tried yet */
	return e->next <= now || (o->all && e->attempts > 0);
}

static int index_add(void *ctx, struct ba_outbox_entry *e, struct ba_err *err)
{
	struct flush_index *x = ctx;
	int rc = 0;
	if (!selected(x->o, e, x->now))
		goto out;
	size_t a = 0;
	while (a < x->naccounts && strcmp(x->accounts[a], e->account) != 0)
		a++;
	if (a == x->naccounts) {
		char **na = realloc(x->accounts, (a + 1) * sizeof(*na));
		if (!na || !(na[a] = strdup(e->account))) {
			if (na)
				x->accounts = na;
			rc = ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		x->accounts = na;
		x->naccounts++;
	}
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 64;
		struct due *nv = realloc(x->v, nc * sizeof(*nv));
		if (!nv) {
			rc = ba_err_set(err, EX_OSERR, "out of memory");
			goto out;
		}
		x->v = nv;
		x->cap = nc;
	}
	struct due *d = &x->v[x->n++];
	memcpy(d->id, e->id, sizeof(d->id));
	d->created = e->created;
	d->account = a;
	d->done = 0;
out:
	ba_outbox_entry_release(e);
	return rc;
}

static int cmp_due(const void *a, const void *b)
{
	const struct due *x = a, *y = b;
	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

int ba_outbox_flush(ba_outbox *ob, const struct ba_outbox_flush_opts *o,
                    struct ba_outbox_flush_stats *st, struct ba_err *err)
{
	memset(st, 0, sizeof(*st));
	struct flush_ctx c;
	memset(&c, 0, sizeof(c));
	c.ob = ob;
	c.o = o;
	c.st = st;
	c.now = o->now ? o->now : (int64_t)time(NULL);
	struct flush_index x;
	memset(&x, 0, sizeof(x));
	x.o = o;
	x.now = c.now;
	int rc = scan(ob, index_add, &x, err);
	if (rc == 0 && x.n)
		qsort(x.v, x.n, sizeof(*x.v), cmp_due);
	/* by account, in the order of each account's oldest entry; oldest first within one */
	for (size_t i = 0; rc == 0 && i < x.n; i++) {
		if (x.v[i].done)
			continue;
		const char *name = x.accounts[x.v[i].account];
		struct ba_err acc_err = BA_ERR_INIT;
		const struct ba_account *acc = ba_config_account(o->cfg, name, &acc_err);
		ba_route *route = NULL;
		for (size_t j = i; j < x.n && !c.stopped;) {
			size_t k = j + 1; /* the account's next entry */
			while (k < x.n && (x.v[k].done || x.v[k].account != x.v[i].account))
				k++;
			x.v[j].done = 1;
			flush_one(&c, x.v[j].id, k < x.n ? x.v[k].id : NULL, acc, &acc_err, &route);
			j = k;
		}
		ba_route_free(route); /* reads the last verdict */
		if (c.ahead) /* not sent after all: unlock it */
			job_end(c.ahead, NULL);
		c.ahead = NULL;
		c.ahead_id = NULL;
		route = NULL;
		jobs_reap(&c, &route);
		ba_route_free(route);
	}
	reap_wait(&c);
	sync_removals(&c);
	free(x.v);
	for (size_t a = 0; a < x.naccounts; a++)
		free(x.accounts[a]);
	free(x.accounts);
	return rc;
}
