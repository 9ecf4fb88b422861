/* fuzz/fuzz_outbox.c - an outbox entry file with arbitrary content, as list, show and flush read it
 *
 * The first byte chooses: bit 0, the entry's file is 0400 (its state has
 * changed, so an ID.up is looked for) instead of 0600; bit 1, the input
 * after the first "\n--up--\n" is written as that ID.up.  The rest is the
 * file q/1.2.P3R4.entry of an outbox in a scratch directory.
 * Properties: the state parser on the bytes alone either fails with
 * EX_DATAERR or gives an entry that is formatted and parsed back to the
 * same fields; listing the outbox never fails; when the entry is listed,
 * the message ba_outbox_get() hands out is exactly the file's bytes after
 * its state block, its size as listed; when it is not, nothing of it is
 * left in q/ (it was set aside in corrupt/, never left half-read).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/buf.h"
#include "bluearrow/outbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ID "1.2.P3R4"

static char root[64];
static ba_outbox *ob;

static void write_file(const char *name, const void *p, size_t n, mode_t mode)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/q/%s", root, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n || fchmod(fd, mode) < 0)
		abort();
	close(fd);
}

/* Removes every file of sub (q, tmp, corrupt); returns how many there were. */
static int empty(const char *sub)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", root, sub);
	DIR *d = opendir(path);
	int n = 0;
	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return n;
}

static void round_trip(const char *p, size_t n)
{
	struct ba_outbox_entry e, f;
	struct ba_err err = BA_ERR_INIT;
	if (ba_outbox_entry_parse(&e, p, n, &err) < 0) {
		if (err.code != EX_DATAERR && err.code != EX_OSERR)
			abort();
		return;
	}
	struct ba_buf b = BA_BUF_INIT;
	if (ba_outbox_entry_format(&b, &e) < 0 ||
	    ba_outbox_entry_parse(&f, b.data, b.len, &err) < 0)
		abort();
	if (strcmp(e.id, f.id) || strcmp(e.account, f.account) || strcmp(e.from, f.from) ||
	    e.nrcpt != f.nrcpt || e.created != f.created || e.next != f.next ||
	    e.attempts != f.attempts || e.inflight != f.inflight || e.cancelled != f.cancelled)
		abort();
	for (size_t i = 0; i < e.nrcpt; i++)
		if (strcmp(e.rcpt[i].addr, f.rcpt[i].addr) || e.rcpt[i].state != f.rcpt[i].state)
			abort();
	ba_buf_release(&b);
	ba_outbox_entry_release(&e);
	ba_outbox_entry_release(&f);
}

/* At exit: the scratch outbox goes, nothing is left behind. */
static void cleanup(void)
{
	static const char *const subs[] = { "q", "tmp", "corrupt", "failed" };
	char path[256];
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		empty(subs[i]);
		snprintf(path, sizeof(path), "%s/%s", root, subs[i]);
		rmdir(path);
	}
	ba_outbox_free(ob);
	rmdir(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ob) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(root, sizeof(root), "%s/fuzz-outbox-%d", base, (int)getpid());
		struct ba_err err = BA_ERR_INIT;
		if (ba_outbox_open(&ob, root, NULL, &err) < 0)
			abort();
		atexit(cleanup);
	}
	if (size < 1)
		return 0;
	unsigned flags = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1, up_len = 0;
	const char *up = NULL;
	if (flags & 2) {
		const char *cut = memmem(p, n, "\n--up--\n", 8);
		if (cut) {
			up = cut + 8;
			up_len = n - (size_t)(up - p);
			n = (size_t)(cut - p) + 1;
		}
	}
	round_trip(p, n);
	write_file(ID ".entry", p, n, flags & 1 ? 0400 : 0600);
	if (up)
		write_file(ID ".up", up, up_len, 0600);

	struct ba_outbox_entry *v = NULL;
	size_t nv = 0;
	struct ba_err err = BA_ERR_INIT;
	if (ba_outbox_list(ob, &v, &nv, &err) < 0 && err.code != EX_OSERR)
		abort();
	if (nv > 1 || (nv == 1 && strcmp(v[0].id, ID) != 0))
		abort();
	if (nv == 1) {
		/* the message handed out is the file after its state block, all of it */
		const char *end = memmem(p, n, "\nend\n", 5);
		if (!end)
			abort();
		size_t off = (size_t)(end + 5 - p);
		struct ba_outbox_entry g;
		int fd = -1;
		if (ba_outbox_get(ob, ID, &g, NULL, &fd, &err) < 0 || g.size != n - off ||
		    v[0].size != g.size)
			abort();
		char *got = malloc(n - off + 1);
		ssize_t k = got ? read(fd, got, n - off + 1) : -1;
		if (k != (ssize_t)(n - off) || memcmp(got, p + off, n - off) != 0)
			abort();
		free(got);
		close(fd);
		ba_outbox_entry_release(&g);
	} else {
		/* not an entry: set aside whole, nothing of it left in the queue */
		char path[256];
		snprintf(path, sizeof(path), "%s/q/" ID ".entry", root);
		if (access(path, F_OK) == 0)
			abort();
	}
	ba_outbox_list_free(v, nv);
	empty("q");
	empty("corrupt");
	empty("tmp");
	return 0;
}
