/* tests/unit/outbox.c - the outbox state file (round trip, corrupt files) and the directory */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/outbox.h"

static struct ba_outbox_entry sample(void)
{
	struct ba_outbox_entry e;
	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "%s", "1733500000.000001.P42R0badcafe");
	e.account = strdup("work");
	e.from = strdup("me@example.org");
	e.nrcpt = 2;
	e.rcpt = calloc(2, sizeof(*e.rcpt));
	e.rcpt[0].addr = strdup("a@example.net");
	e.rcpt[0].state = BA_OUTBOX_RCPT_SENT;
	e.rcpt[0].code = 250;
	e.rcpt[1].addr = strdup("b@example.net");
	e.rcpt[1].code = 452;
	e.rcpt[1].reply = strdup("452 4.2.2 mailbox full\r\n(try later)");
	e.notify = 6;
	e.ret = 2;
	e.envid = strdup("QQ314159");
	e.msgid = strdup("<x.1@example.org>");
	e.created = 1733500000;
	e.next = 1733500300;
	e.attempts = 1;
	e.error_class = 75;
	e.error_code = 451;
	e.error = strdup("mx.example.net:25: 451 4.7.1 greylisted\r\ntry later");
	return e;
}

static void test_outbox__round_trip(void **state)
{
	(void)state;
	struct ba_outbox_entry e = sample(), f;
	struct ba_buf b = BA_BUF_INIT, c = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_entry_format(&b, &e), 0);
	/* the CR LF of the server's text does not break the line format */
	assert_non_null(strstr(b.data, "error 75 451 mx.example.net:25: 451 4.7.1 greylisted  "
	                               "try later\n"));
	assert_int_equal(ba_outbox_entry_parse(&f, b.data, b.len, &err), 0);
	assert_string_equal(f.id, e.id);
	assert_string_equal(f.account, "work");
	assert_string_equal(f.from, "me@example.org");
	assert_int_equal(f.nrcpt, 2);
	assert_string_equal(f.rcpt[0].addr, "a@example.net");
	assert_int_equal(f.rcpt[0].state, BA_OUTBOX_RCPT_SENT);
	assert_int_equal(f.rcpt[0].code, 250);
	assert_int_equal(f.rcpt[1].state, BA_OUTBOX_RCPT_PENDING);
	assert_null(f.rcpt[0].reply);
	/* a recipient's reply follows its rcpt line, on one line */
	assert_non_null(strstr(b.data, "rcpt pending 452 b@example.net\n"
	                               "reply 452 4.2.2 mailbox full  (try later)\n"));
	assert_string_equal(f.rcpt[1].reply, "452 4.2.2 mailbox full  (try later)");
	assert_int_equal(f.notify, 6);
	assert_int_equal(f.ret, 2);
	assert_string_equal(f.envid, "QQ314159");
	assert_string_equal(f.msgid, "<x.1@example.org>");
	assert_int_equal(f.created, 1733500000);
	assert_int_equal(f.next, 1733500300);
	assert_int_equal(f.attempts, 1);
	assert_int_equal(f.error_class, 75);
	assert_int_equal(f.error_code, 451);
	assert_int_equal(ba_outbox_entry_format(&c, &f), 0);
	assert_string_equal(b.data, c.data);
	ba_outbox_entry_release(&f);
	ba_outbox_entry_release(&e);
	ba_buf_release(&b);
	ba_buf_release(&c);
}

/* The in-flight and cancelled marks next to a recipient's reply: parsed and written back alike. */
static void test_outbox__marks_and_replies_round_trip(void **state)
{
	(void)state;
	struct ba_outbox_entry e = sample(), f;
	e.inflight = 1733500123;
	e.cancelled = 1;
	struct ba_buf b = BA_BUF_INIT, c = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_entry_format(&b, &e), 0);
	assert_non_null(strstr(b.data, "inflight 1733500123\n"));
	assert_non_null(strstr(b.data, "cancelled 1\n"));
	assert_int_equal(ba_outbox_entry_parse(&f, b.data, b.len, &err), 0);
	assert_int_equal(f.inflight, 1733500123);
	assert_true(f.cancelled);
	assert_null(f.rcpt[0].reply);
	assert_string_equal(f.rcpt[1].reply, "452 4.2.2 mailbox full  (try later)");
	assert_int_equal(ba_outbox_entry_format(&c, &f), 0);
	assert_string_equal(b.data, c.data);
	ba_outbox_entry_release(&f);
	ba_outbox_entry_release(&e);
	ba_buf_release(&b);
	ba_buf_release(&c);
}

/* The null sender and an entry without optional fields. */
static void test_outbox__minimal(void **state)
{
	(void)state;
	const char *t = "bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom \n"
	                "rcpt pending 0 root@localhost\ncreated 5\nend\n";
	struct ba_outbox_entry e;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_entry_parse(&e, t, strlen(t), &err), 0);
	assert_string_equal(e.from, "");
	assert_null(e.envid);
	assert_null(e.error);
	ba_outbox_entry_release(&e);
}

static void test_outbox__corrupt(void **state)
{
	(void)state;
	const char *good = "bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\n"
	                   "rcpt pending 0 c@d\ncreated 5\nend\n";
	static const char *const bad[] = {
		"",                                            /* empty */
		"From me Mon Jan 1\n",                         /* a foreign file */
		"bluearrow-outbox 2\n",                        /* another version */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\n", /* truncated */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\nrcpt pending 0 c@d\n"
		"created 5\nend", /* no line end */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\nrcpt maybe 0 c@d\n"
		"created 5\nend\n", /* unknown recipient state */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\nrcpt pending 0 c@d\n"
		"created five\nend\n", /* not a number */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\nrcpt pending 0 c@d\n"
		"created 5\ncolour blue\nend\n", /* unknown key */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\ncreated 5\nend\n",
		/* no recipient */
		"bluearrow-outbox 1\nid ../x\naccount default\nfrom a@b\nrcpt pending 0 c@d\n"
		"created 5\nend\n", /* a path as id */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount a\naccount b\nfrom a@b\nrcpt pending 0 c@d\n"
		"created 5\nend\n", /* a key twice */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\nrcpt pending 0 c@d\n"
		"created 5\nend\nid 2\n", /* text after end */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\nreply 550 no\n"
		"rcpt pending 0 c@d\ncreated 5\nend\n", /* a reply before any recipient */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a@b\nrcpt pending 0 c@d\n"
		"reply 550 no\nreply 551 no\ncreated 5\nend\n", /* two replies for one */
		"bluearrow-outbox 1\nid 1.2.P3R4\naccount default\nfrom a\022@b\nrcpt pending 0 c@d\n"
		"created 5\nend\n", /* a control character: never written */
		"bluearrow-outbox 1\r\nid 1.2.P3R4\naccount default\nfrom a@b\nrcpt pending 0 c@d\n"
		"created 5\nend\n", /* CRLF */
	};
	struct ba_outbox_entry e;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_entry_parse(&e, good, strlen(good), &err), 0);
	ba_outbox_entry_release(&e);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ba_err_clear(&err);
		if (ba_outbox_entry_parse(&e, bad[i], strlen(bad[i]), &err) != -1)
			fail_msg("case %zu parsed: %s", i, bad[i]);
		assert_int_equal(err.code, EX_DATAERR);
		assert_null(e.account);
	}
	/* a NUL byte inside */
	char nul[] = "bluearrow-outbox 1\nid 1\0.2\naccount d\nfrom a@b\nrcpt pending 0 c@d\n"
	             "created 5\nend\n";
	assert_int_equal(ba_outbox_entry_parse(&e, nul, sizeof(nul) - 1, &err), -1);
}

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/ba-outbox-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *d)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(WEXITSTATUS(system(cmd)), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* add, list, get, retry, remove; a corrupt and a foreign file are moved to corrupt/. */
static void test_outbox__directory(void **state)
{
	(void)state;
	char *root = tmpdir();
	char dir[512], path[600];
	snprintf(dir, sizeof(dir), "%s/a/b/outbox", root);
	ba_outbox *ob;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_open(&ob, dir, NULL, &err), 0);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	struct ba_outbox_entry e = sample();
	e.id[0] = '\0';
	e.created = 0;
	e.next = 0;
	free(e.msgid);
	e.msgid = NULL;
	const char *msg = "From: me@example.org\nMessage-ID:  <q.7@example.org>\n\nhello\n";
	struct ba_mem_reader mr;
	ba_mem_reader_init(&mr, msg, strlen(msg));
	int hold;
	assert_int_equal(ba_outbox_add(ob, &e, &mr.base, &hold, &err), 0);
	assert_true(hold >= 0);
	assert_int_equal(e.size, strlen(msg));
	assert_string_equal(e.msgid, "<q.7@example.org>");
	/* held: nobody else can take it */
	assert_int_equal(ba_outbox_remove(ob, e.id, &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	close(hold);
	/* one file: the state block, then the message */
	snprintf(path, sizeof(path), "%s/q/%s.entry", dir, e.id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char text[4096];
	FILE *ef = fopen(path, "r");
	size_t tlen = fread(text, 1, sizeof(text) - 1, ef);
	fclose(ef);
	text[tlen] = '\0';
	const char *endl = strstr(text, "\nend\n");
	assert_non_null(endl);
	assert_int_equal(strncmp(text, "bluearrow-outbox 1\n", 19), 0);
	assert_string_equal(endl + 5, msg);
	snprintf(path, sizeof(path), "%s/q/%s.msg", dir, e.id);
	assert_int_equal(access(path, F_OK), -1);

	/* foreign and corrupt files */
	snprintf(path, sizeof(path), "%s/q/notes.txt", dir);
	write_file(path, "hello");
	snprintf(path, sizeof(path), "%s/q/1.2.P3R4.st", dir);
	write_file(path, "bluearrow-outbox 1\nid 1.2.P3R4\n");
	snprintf(path, sizeof(path), "%s/q/1.2.P3R4.msg", dir);
	write_file(path, "x");
	/* a message left without state by a crash */
	snprintf(path, sizeof(path), "%s/q/9.9.P9R9.msg", dir);
	write_file(path, "y");

	struct ba_outbox_entry *v;
	size_t n;
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, e.id);
	assert_string_equal(v[0].msgid, "<q.7@example.org>");
	assert_int_equal(v[0].size, strlen(msg));
	ba_outbox_list_free(v, n);
	assert_int_equal(access(path, F_OK), -1); /* the orphan is gone */
	snprintf(path, sizeof(path), "%s/q/notes.txt", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/corrupt", dir);
	DIR *d = opendir(path);
	int moved = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		moved += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(moved, 3); /* notes.txt, 1.2.P3R4.st and its message */

	struct ba_outbox_entry g;
	assert_int_equal(ba_outbox_get(ob, e.id, &g, NULL, NULL, &err), 0);
	assert_string_equal(g.account, "work");
	ba_outbox_entry_release(&g);
	assert_int_equal(ba_outbox_get(ob, "../x", &g, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_int_equal(ba_outbox_get(ob, "1.1.P1R1", &g, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(ba_outbox_retry(ob, e.id, &err), 0);
	assert_int_equal(ba_outbox_remove(ob, e.id, &err), 0);
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	ba_outbox_list_free(v, n);
	ba_outbox_entry_release(&e);
	ba_outbox_free(ob);

	/* a directory open to others is refused */
	chmod(dir, 0755);
	assert_int_equal(ba_outbox_open(&ob, dir, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOPERM);
	/* and a symbolic link */
	chmod(dir, 0700);
	snprintf(path, sizeof(path), "%s/link", root);
	assert_int_equal(symlink(dir, path), 0);
	assert_int_equal(ba_outbox_open(&ob, path, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOPERM);
	rm_rf(root);
	free(root);
}

/* One handle listed again and again (a long-running process) sees every entry added meanwhile. */
static void test_outbox__list_again(void **state)
{
	(void)state;
	char *root = tmpdir();
	ba_outbox *ob;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_open(&ob, root, NULL, &err), 0);
	struct ba_outbox_entry *v;
	size_t n;
	for (size_t k = 1; k <= 3; k++) {
		struct ba_outbox_entry e = sample();
		e.id[0] = '\0';
		const char *msg = "From: me@example.org\n\nhello\n";
		struct ba_mem_reader mr;
		ba_mem_reader_init(&mr, msg, strlen(msg));
		assert_int_equal(ba_outbox_add(ob, &e, &mr.base, NULL, &err), 0);
		ba_outbox_entry_release(&e);
		assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
		assert_int_equal(n, k);
		ba_outbox_list_free(v, n);
	}
	ba_outbox_free(ob);
	rm_rf(root);
	free(root);
}

/* The in-flight and cancelled marks: kept in the state file, cleared by retry. */
static void test_outbox__marks(void **state)
{
	(void)state;
	char *root = tmpdir();
	ba_outbox *ob;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_open(&ob, root, NULL, &err), 0);
	struct ba_outbox_entry e = sample();
	e.id[0] = '\0';
	e.inflight = 1733500000;
	const char *msg = "From: me@example.org\n\nhello\n";
	struct ba_mem_reader mr;
	ba_mem_reader_init(&mr, msg, strlen(msg));
	assert_int_equal(ba_outbox_add(ob, &e, &mr.base, NULL, &err), 0);
	struct ba_outbox_entry g;
	assert_int_equal(ba_outbox_get(ob, e.id, &g, NULL, NULL, &err), 0);
	assert_int_equal(g.inflight, 1733500000);
	assert_false(g.cancelled);
	ba_outbox_entry_release(&g);
	assert_int_equal(ba_outbox_cancel(ob, e.id, &err), 0);
	assert_int_equal(ba_outbox_get(ob, e.id, &g, NULL, NULL, &err), 0);
	assert_true(g.cancelled);
	ba_outbox_entry_release(&g);
	assert_int_equal(ba_outbox_retry(ob, e.id, &err), 0);
	assert_int_equal(ba_outbox_get(ob, e.id, &g, NULL, NULL, &err), 0);
	assert_int_equal(g.inflight, 0);
	assert_false(g.cancelled);
	ba_outbox_entry_release(&g);
	/* a mark with a bad value does not parse */
	const char *bad = "bluearrow-outbox 1\nid 1.2.P3R4\naccount a\nfrom \nrcpt pending 0 x@y\n"
	                  "created 5\ncancelled 2\nend\n";
	assert_int_equal(ba_outbox_entry_parse(&g, bad, strlen(bad), &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_outbox_entry_release(&e);
	ba_outbox_free(ob);
	rm_rf(root);
	free(root);
}

/* The whole message of entry id through ba_outbox_get()'s descriptor, into buf. */
static void read_message(ba_outbox *ob, const char *id, char *buf, size_t n, int *failed)
{
	struct ba_outbox_entry g;
	struct ba_err err = BA_ERR_INIT;
	int fd = -1;
	assert_int_equal(ba_outbox_get(ob, id, &g, failed, &fd, &err), 0);
	assert_true(fd >= 0);
	ssize_t k = read(fd, buf, n - 1);
	close(fd);
	assert_true(k >= 0);
	buf[k] = '\0';
	assert_int_equal((size_t)k, g.size);
	ba_outbox_entry_release(&g);
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *de; d && (de = readdir(d)) != NULL;)
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/*
 * Both forms of an entry: one file (ID.entry, its later states in ID.up,
 * which win) and the pair of files an earlier version wrote (ID.msg and
 * ID.st): each is listed, read, updated in its own form, moved to failed/
 * and back, and removed; a state left alone by a cut removal is dropped once
 * old; an ID.entry without a state block is set aside.
 */
static void test_outbox__forms(void **state)
{
	(void)state;
	char *root = tmpdir();
	char path[600], buf[4096];
	ba_outbox *ob;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_open(&ob, root, NULL, &err), 0);
	/* an entry an earlier version queued */
	snprintf(path, sizeof(path), "%s/q/1.2.P3R4.st", root);
	write_file(path, "bluearrow-outbox 1\nid 1.2.P3R4\naccount d\nfrom a@b\n"
	                 "rcpt pending 0 c@d\ncreated 5\nnext 5\nend\n");
	snprintf(path, sizeof(path), "%s/q/1.2.P3R4.msg", root);
	write_file(path, "Subject: old\n\nbody\n");
	/* and one of now, with a message far larger than one read */
	struct ba_outbox_entry e = sample();
	e.id[0] = '\0';
	size_t big = 200000;
	char *msg = malloc(big + 1);
	memcpy(msg, "Subject: new\n\n", 14);
	for (size_t i = 14; i < big; i++)
		msg[i] = i % 77 == 76 ? '\n' : (char)('a' + i % 26);
	msg[big] = '\0';
	struct ba_mem_reader mr;
	ba_mem_reader_init(&mr, msg, big);
	assert_int_equal(ba_outbox_add(ob, &e, &mr.base, NULL, &err), 0);

	struct ba_outbox_entry *v;
	size_t n;
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "1.2.P3R4");
	assert_int_equal(v[0].size, strlen("Subject: old\n\nbody\n"));
	assert_int_equal(v[1].size, big);
	ba_outbox_list_free(v, n);
	read_message(ob, "1.2.P3R4", buf, sizeof(buf), NULL);
	assert_string_equal(buf, "Subject: old\n\nbody\n");
	char *back = malloc(big + 1);
	read_message(ob, e.id, back, big + 1, NULL);
	assert_memory_equal(back, msg, big);

	/* updates: each form keeps its own; ID.up wins over the block in ID.entry */
	struct stat st;
	snprintf(path, sizeof(path), "%s/q/%s.entry", root, e.id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600); /* never updated: no ID.up to look for */
	assert_int_equal(ba_outbox_cancel(ob, "1.2.P3R4", &err), 0);
	assert_int_equal(ba_outbox_cancel(ob, e.id, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0400); /* it has one now */
	snprintf(path, sizeof(path), "%s/q/1.2.P3R4.up", root);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/q/%s.up", root, e.id);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/q/%s.st", root, e.id);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_true(v[0].cancelled && v[1].cancelled);
	ba_outbox_list_free(v, n);
	read_message(ob, e.id, back, big + 1, NULL);
	assert_memory_equal(back, msg, big);

	/* a state left without its entry: kept while young, dropped once old */
	snprintf(path, sizeof(path), "%s/q/9.9.P9R9.up", root);
	write_file(path, "bluearrow-outbox 1\nid 9.9.P9R9\n");
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	ba_outbox_list_free(v, n);
	assert_int_equal(access(path, F_OK), 0);
	struct timespec old[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	ba_outbox_list_free(v, n);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/corrupt", root);
	assert_int_equal(count_files(path), 0);

	/* an ID.entry that is no entry (no state block) is set aside */
	snprintf(path, sizeof(path), "%s/q/7.7.P7R7.entry", root);
	write_file(path, "Subject: no state\n\nx\n");
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	ba_outbox_list_free(v, n);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/corrupt", root);
	assert_int_equal(count_files(path), 1);

	/* remove: nothing of either form is left */
	assert_int_equal(ba_outbox_remove(ob, "1.2.P3R4", &err), 0);
	assert_int_equal(ba_outbox_remove(ob, e.id, &err), 0);
	snprintf(path, sizeof(path), "%s/q", root);
	assert_int_equal(count_files(path), 0);
	struct ba_outbox_entry g;
	assert_int_equal(ba_outbox_get(ob, e.id, &g, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	free(back);
	free(msg);
	ba_outbox_entry_release(&e);
	ba_outbox_free(ob);
	rm_rf(root);
	free(root);
}

/*
 * A flush locks only what it sends: entries held for later are read, not
 * locked (an `outbox rm` or the TUI meanwhile never finds them "being
 * sent"), so one that another process holds is not counted as skipped.
 * And a flush of given IDs reads no other entry.
 */
static void test_outbox__flush_locks_only_what_it_sends(void **state)
{
	(void)state;
	char *root = tmpdir();
	char path[600];
	ba_outbox *ob;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_open(&ob, root, NULL, &err), 0);
	const char *rc = "account work\nhost 127.0.0.1\nport 1\nfrom me@example.org\n";
	ba_config *cfg = NULL;
	assert_int_equal(ba_config_parse(&cfg, "t.rc", rc, strlen(rc), &err), 0);
	char ids[2][BA_OUTBOX_ID_MAX];
	for (int k = 0; k < 2; k++) {
		struct ba_outbox_entry e = sample();
		e.id[0] = '\0';
		e.attempts = 0;
		e.created = (int64_t)time(NULL);
		e.next = e.created + 3600; /* held for an hour */
		const char *msg = "Subject: later\n\nx\n";
		struct ba_mem_reader mr;
		ba_mem_reader_init(&mr, msg, strlen(msg));
		assert_int_equal(ba_outbox_add(ob, &e, &mr.base, NULL, &err), 0);
		snprintf(ids[k], sizeof(ids[k]), "%s", e.id);
		ba_outbox_entry_release(&e);
	}
	/* another process (here: another open file) holds the first */
	snprintf(path, sizeof(path), "%s/q/%s.entry", root, ids[0]);
	int held = open(path, O_RDONLY);
	assert_true(held >= 0);
	assert_int_equal(flock(held, LOCK_EX | LOCK_NB), 0);
	struct ba_outbox_flush_opts o;
	memset(&o, 0, sizeof(o));
	o.cfg = cfg;
	o.all = 1; /* sendmail -q: every entry but those held and never tried */
	struct ba_outbox_flush_stats st;
	assert_int_equal(ba_outbox_flush(ob, &o, &st, &err), 0);
	assert_int_equal(st.skipped, 0);
	assert_int_equal(st.delivered + st.deferred + st.failed, 0);
	/*
	 * A flush of given IDs (the TUI's, -qI) reads those alone: a broken
	 * file elsewhere in q/ is left for a listing to set aside.  The entry
	 * asked for is tried (the server is down: deferred).
	 */
	snprintf(path, sizeof(path), "%s/q/9.9.P9R9.entry", root);
	write_file(path, "not an entry");
	const char *one[1] = { ids[1] };
	o.all = 0;
	o.ids = one;
	o.nids = 1;
	assert_int_equal(ba_outbox_flush(ob, &o, &st, &err), 0);
	assert_int_equal(st.deferred, 1);
	assert_int_equal(access(path, F_OK), 0);
	/* and the second, which the flush read, is free: removed at once */
	assert_int_equal(ba_outbox_remove(ob, ids[1], &err), 0);
	/* the held one is refused while held */
	assert_int_equal(ba_outbox_remove(ob, ids[0], &err), -1);
	assert_int_equal(err.code, EX_TEMPFAIL);
	close(held);
	assert_int_equal(ba_outbox_remove(ob, ids[0], &err), 0);
	struct ba_outbox_entry *v;
	size_t n;
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0); /* a listing sets it aside */
	assert_int_equal(n, 0);
	ba_outbox_list_free(v, n);
	assert_int_equal(access(path, F_OK), -1);
	ba_config_free(cfg);
	ba_outbox_free(ob);
	rm_rf(root);
	free(root);
}

/* A crash between the two steps of a move to failed/ is finished by the next list. */
static void test_outbox__interrupted_move_to_failed(void **state)
{
	(void)state;
	char *root = tmpdir();
	char path[600];
	ba_outbox *ob;
	struct ba_err err = BA_ERR_INIT;
	assert_int_equal(ba_outbox_open(&ob, root, NULL, &err), 0);
	snprintf(path, sizeof(path), "%s/failed/1.2.P3R4.st", root);
	write_file(path, "bluearrow-outbox 1\nid 1.2.P3R4\naccount d\nfrom a@b\n"
	                 "rcpt failed 550 c@d\ncreated 5\nend\n");
	snprintf(path, sizeof(path), "%s/q/1.2.P3R4.msg", root);
	write_file(path, "Subject: x\n\nbody\n");
	struct ba_outbox_entry *v;
	size_t n;
	assert_int_equal(ba_outbox_list(ob, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	ba_outbox_list_free(v, n);
	assert_int_equal(access(path, F_OK), -1);
	struct ba_outbox_entry e;
	int failed = 0;
	assert_int_equal(ba_outbox_get(ob, "1.2.P3R4", &e, &failed, NULL, &err), 0);
	assert_int_equal(failed, 1);
	assert_int_equal(e.size, strlen("Subject: x\n\nbody\n"));
	ba_outbox_entry_release(&e);
	ba_outbox_free(ob);
	rm_rf(root);
	free(root);
}

/* send --at: relative, absolute (local, UTC, offsets), and what is refused */
static void test_outbox__parse_time(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	const int64_t now = 1800000000; /* 2027-01-15T08:00:00Z */
	int64_t t = 0;
	assert_int_equal(ba_outbox_parse_time(&t, "+10m", now, &err), 0);
	assert_int_equal(t, now + 600);
	assert_int_equal(ba_outbox_parse_time(&t, "+2h", now, &err), 0);
	assert_int_equal(t, now + 7200);
	assert_int_equal(ba_outbox_parse_time(&t, "+1d", now, &err), 0);
	assert_int_equal(t, now + 86400);
	assert_int_equal(ba_outbox_parse_time(&t, "+30s", now, &err), 0);
	assert_int_equal(t, now + 30);
	assert_int_equal(ba_outbox_parse_time(&t, "+5", now, &err), 0);
	assert_int_equal(t, now + 5);
	assert_int_equal(ba_outbox_parse_time(&t, "2027-01-15T08:00:00Z", now, &err), 0);
	assert_int_equal(t, now);
	assert_int_equal(ba_outbox_parse_time(&t, "2027-01-15T09:30+01:00", now, &err), 0);
	assert_int_equal(t, now + 1800);
	assert_int_equal(ba_outbox_parse_time(&t, "2027-01-15T03:00:00-0500", now, &err), 0);
	assert_int_equal(t, now);
	assert_int_equal(ba_outbox_parse_time(&t, "2028-02-29T00:00Z", now, &err), 0);
	assert_int_equal(t, 1835395200);
	/* local time: in UTC here */
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(ba_outbox_parse_time(&t, "2027-01-15 08:10", now, &err), 0);
	assert_int_equal(t, now + 600);
	assert_int_equal(ba_outbox_parse_time(&t, "2027-01-15T08:10:30", now, &err), 0);
	assert_int_equal(t, now + 630);
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	assert_int_equal(ba_outbox_parse_time(&t, "2027-01-15 09:10", now, &err), 0);
	assert_int_equal(t, now + 600);
	unsetenv("TZ");
	tzset();
	static const char *const bad[] = {
		"", "+", "+m", "+10x", "+-5m", "+ 5m", "10m", "tomorrow", "2027-01-15",
		"2027-01-15 8:10", "2027-13-01 00:00", "2027-02-29 00:00", "2027-01-32T00:00Z",
		"2027-01-15T24:00Z", "2027-01-15T08:60Z", "2027-01-15T08:10Zjunk",
		"2027-01-15T08:10+1", "2027-01-15T08:10 ", "+99999999999d",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ba_err_clear(&err);
		if (ba_outbox_parse_time(&t, bad[i], now, &err) == 0)
			fail_msg("'%s' was accepted", bad[i]);
		assert_int_equal(err.code, EX_USAGE);
		if (!strstr(err.text, "invalid time '"))
			fail_msg("'%s': %s", bad[i], err.text);
	}
	ba_err_clear(&err);
	assert_int_equal(ba_outbox_parse_time(&t, "2027-01-15T07:59:59Z", now, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_string_equal(err.text, "time '2027-01-15T07:59:59Z' is in the past");
}

/* The default directory: the account's outbox, /var/spool/bluearrow for a system file, else XDG. */
static void test_outbox__account_dir(void **state)
{
	(void)state;
	char *root = tmpdir();
	char path[512];
	snprintf(path, sizeof(path), "%s/conf", root);
	write_file(path, "account a\nhost h\naccount b\nhost h\noutbox /srv/q\n");
	setenv("XDG_STATE_HOME", "/xdg", 1);
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf d = BA_BUF_INIT;
	for (int sys = 0; sys < 2; sys++) {
		ba_config *cfg = NULL;
		assert_int_equal(ba_config_load(&cfg, path, sys ? BA_CONFIG_SYSTEM : 0, &err), 0);
		const struct ba_account *a = ba_config_account(cfg, "a", &err);
		const struct ba_account *b = ba_config_account(cfg, "b", &err);
		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(a->system_file, sys);
		assert_int_equal(ba_outbox_account_dir(&d, a, &err), 0);
		assert_string_equal(ba_buf_str(&d), sys ? "/var/spool/bluearrow" : "/xdg/bluearrow/outbox");
		assert_int_equal(ba_outbox_account_dir(&d, b, &err), 0);
		assert_string_equal(ba_buf_str(&d), "/srv/q");
		ba_config_free(cfg);
	}
	/* a file in memory (and -C FILE) is a user's */
	ba_config *cfg = NULL;
	assert_int_equal(ba_config_parse(&cfg, "mem", "account a\nhost h\n", 17, &err), 0);
	assert_int_equal(ba_outbox_account_dir(&d, ba_config_account(cfg, "a", &err), &err), 0);
	assert_string_equal(ba_buf_str(&d), "/xdg/bluearrow/outbox");
	ba_config_free(cfg);
	unsetenv("XDG_STATE_HOME");
	ba_buf_release(&d);
	rm_rf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outbox__round_trip),
		cmocka_unit_test(test_outbox__marks_and_replies_round_trip),
		cmocka_unit_test(test_outbox__minimal),
		cmocka_unit_test(test_outbox__corrupt),
		cmocka_unit_test(test_outbox__directory),
		cmocka_unit_test(test_outbox__interrupted_move_to_failed),
		cmocka_unit_test(test_outbox__forms),
		cmocka_unit_test(test_outbox__flush_locks_only_what_it_sends),
		cmocka_unit_test(test_outbox__parse_time),
		cmocka_unit_test(test_outbox__account_dir),
		cmocka_unit_test(test_outbox__list_again),
		cmocka_unit_test(test_outbox__marks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
