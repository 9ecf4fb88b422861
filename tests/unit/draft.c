/* tests/unit/draft.c - the draft model: accessors, file format round trips, hostile and
 * truncated files, atomic saves, the drafts directory, and building the same bytes as compose */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bluearrow/draft.h"
#include "../helper/fixed.h"

/* ---- helpers ------------------------------------------------------------ */

static char tmpdir[256];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ba-unit-draft-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static void rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		chmod(path, 0700);
		DIR *d = opendir(path);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char sub[1024];
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			rm_rf(sub);
		}
		if (d)
			closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static int teardown_dir(void **state)
{
	(void)state;
	rm_rf(tmpdir);
	return 0;
}

static const char *tpath(const char *name)
{
	static char p[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
	return p[k];
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = malloc(1 << 20);
	*n = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

/* Names in dir other than . and .., as one string "a b c" in readdir order. */
static size_t count_entries(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

/* Values no line format survives unescaped: each must round-trip byte for byte. */
static const char *const hostile[] = {
	"plain",
	"",
	" leading and trailing spaces ",
	"\ttabs\tinside\t",
	"line one\nline two\r\nthree\rfour",
	"back\\slash \\n not an escape \\x41",
	"Grüße, 日本語, emoji 😀",
	"invalid utf-8: \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 (surrogate) \xc0\xaf (overlong)",
	"controls \x01\x02\x1b[31m\x7f end",
	"X-Bluearrow-Attach: injected",
	"\nX-Bluearrow-Body: 5\n\nhello",
	":colon: first",
	"  ",
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static ba_draft *hostile_draft(void)
{
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	assert_int_equal(ba_draft_new(&d, &err), 0);
	for (size_t i = 0; i < NHOSTILE; i++) {
		for (int f = 0; f < BA_DRAFT_NFIELDS; f++)
			assert_int_equal(ba_draft_add(d, (enum ba_draft_field)f, hostile[i], &err), 0);
		assert_int_equal(ba_draft_attach_add(d, hostile[i], i % 2 ? hostile[i] : NULL,
		                                     i % 3 ? NULL : hostile[i], &err), 0);
	}
	assert_int_equal(ba_draft_set_html_file(d, "/a dir/with spaces\n/and newline.html", &err), 0);
	static const char body[] = "body with\0NUL\r\nCRLF\n\nX-Bluearrow-Body: 3\n\\x00 no escape";
	assert_int_equal(ba_draft_set_body_text(d, body, sizeof(body) - 1, &err), 0);
	return d;
}

static void assert_same_draft(const ba_draft *a, const ba_draft *b)
{
	for (int f = 0; f < BA_DRAFT_NFIELDS; f++) {
		enum ba_draft_field x = (enum ba_draft_field)f;
		assert_int_equal(ba_draft_count(a, x), ba_draft_count(b, x));
		for (size_t i = 0; i < ba_draft_count(a, x); i++)
			assert_string_equal(ba_draft_get(a, x, i), ba_draft_get(b, x, i));
	}
	assert_int_equal(ba_draft_attach_count(a), ba_draft_attach_count(b));
	for (size_t i = 0; i < ba_draft_attach_count(a); i++) {
		assert_string_equal(ba_draft_attach_path(a, i), ba_draft_attach_path(b, i));
		const char *ta = ba_draft_attach_type(a, i), *tb = ba_draft_attach_type(b, i);
		const char *na = ba_draft_attach_name(a, i), *nb = ba_draft_attach_name(b, i);
		assert_true(ta ? tb && !strcmp(ta, tb) : !tb);
		assert_true(na ? nb && !strcmp(na, nb) : !nb);
	}
	const char *fa = ba_draft_body_file(a), *fb = ba_draft_body_file(b);
	assert_true(fa ? fb && !strcmp(fa, fb) : !fb);
	fa = ba_draft_html_file(a), fb = ba_draft_html_file(b);
	assert_true(fa ? fb && !strcmp(fa, fb) : !fb);
	size_t la, lb;
	const char *xa = ba_draft_body_text(a, &la), *xb = ba_draft_body_text(b, &lb);
	assert_true(xa ? xb != NULL : xb == NULL);
	assert_int_equal(la, lb);
	if (la)
		assert_memory_equal(xa, xb, la);
}

/* ---- the model ---------------------------------------------------------- */

static void test_draft__accessors(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	assert_int_equal(ba_draft_new(&d, &err), 0);
	assert_int_equal(ba_draft_add(d, BA_DRAFT_TO, "a@example.org", &err), 0);
	assert_int_equal(ba_draft_add(d, BA_DRAFT_TO, "b@example.org", &err), 0);
	assert_int_equal(ba_draft_count(d, BA_DRAFT_TO), 2);
	assert_string_equal(ba_draft_get(d, BA_DRAFT_TO, 1), "b@example.org");
	assert_null(ba_draft_get(d, BA_DRAFT_TO, 2));
	/* a single field is replaced, as a repeated option */
	assert_int_equal(ba_draft_add(d, BA_DRAFT_SUBJECT, "one", &err), 0);
	assert_int_equal(ba_draft_add(d, BA_DRAFT_SUBJECT, "two", &err), 0);
	assert_int_equal(ba_draft_count(d, BA_DRAFT_SUBJECT), 1);
	assert_string_equal(ba_draft_get(d, BA_DRAFT_SUBJECT, 0), "two");
	assert_int_equal(ba_draft_set(d, BA_DRAFT_TO, "c@example.org", &err), 0);
	assert_int_equal(ba_draft_count(d, BA_DRAFT_TO), 1);
	assert_int_equal(ba_draft_set(d, BA_DRAFT_TO, NULL, &err), 0);
	assert_int_equal(ba_draft_count(d, BA_DRAFT_TO), 0);
	/* setters copy */
	char buf[] = "copied";
	assert_int_equal(ba_draft_add(d, BA_DRAFT_CC, buf, &err), 0);
	buf[0] = 'X';
	assert_string_equal(ba_draft_get(d, BA_DRAFT_CC, 0), "copied");
	/* body: a file or text, not both */
	assert_int_equal(ba_draft_set_body_text(d, "hi", 2, &err), 0);
	size_t n;
	assert_string_equal(ba_draft_body_text(d, &n), "hi");
	assert_int_equal(n, 2);
	assert_int_equal(ba_draft_set_body_file(d, "/tmp/b", &err), 0);
	assert_null(ba_draft_body_text(d, &n));
	assert_int_equal(n, 0);
	assert_int_equal(ba_draft_set_body_text(d, NULL, 0, &err), 0);
	assert_null(ba_draft_body_file(d));
	assert_non_null(ba_draft_body_text(d, &n));
	/* attachments: add, reorder, remove */
	const char *names[] = { "a", "b", "c", "d" };
	for (int i = 0; i < 4; i++)
		assert_int_equal(ba_draft_attach_add(d, names[i], NULL, NULL, &err), 0);
	assert_int_equal(ba_draft_attach_move(d, 0, 3, &err), 0); /* b c d a */
	assert_int_equal(ba_draft_attach_move(d, 2, 0, &err), 0); /* d b c a */
	assert_int_equal(ba_draft_attach_remove(d, 1, &err), 0);  /* d c a */
	assert_int_equal(ba_draft_attach_count(d), 3);
	assert_string_equal(ba_draft_attach_path(d, 0), "d");
	assert_string_equal(ba_draft_attach_path(d, 1), "c");
	assert_string_equal(ba_draft_attach_path(d, 2), "a");
	assert_int_equal(ba_draft_attach_set_type(d, 1, "text/csv", &err), 0);
	assert_int_equal(ba_draft_attach_set_name(d, 1, "n.csv", &err), 0);
	assert_string_equal(ba_draft_attach_type(d, 1), "text/csv");
	assert_string_equal(ba_draft_attach_name(d, 1), "n.csv");
	assert_int_equal(ba_draft_attach_set_type(d, 1, NULL, &err), 0);
	assert_null(ba_draft_attach_type(d, 1));
	assert_int_equal(ba_draft_attach_remove(d, 3, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_int_equal(ba_draft_attach_move(d, 0, 3, &err), -1);
	assert_null(ba_draft_attach_path(d, 3));
	ba_draft_free(d);
	ba_draft_free(NULL);
}

/* ---- the file format ---------------------------------------------------- */

static void test_draft__format_is_documented_text(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	assert_int_equal(ba_draft_new(&d, &err), 0);
	ba_draft_add(d, BA_DRAFT_FROM, "Me <me@example.org>", &err);
	ba_draft_add(d, BA_DRAFT_TO, "a@example.org", &err);
	ba_draft_add(d, BA_DRAFT_SUBJECT, "Grüße\n", &err);
	ba_draft_add(d, BA_DRAFT_HEADER, "X-A: b", &err);
	ba_draft_attach_add(d, "/tmp/a file.pdf", "application/pdf", NULL, &err);
	ba_draft_set_body_text(d, "Hi\n", 3, &err);
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_draft_format(&b, d, &err), 0);
	assert_string_equal(ba_buf_str(&b),
		"X-Bluearrow-Draft: 1\n"
		"From: Me <me@example.org>\n"
		"To: a@example.org\n"
		"Subject: Grüße\\n\n"
		"X-Bluearrow-Header: X-A: b\n"
		"X-Bluearrow-Attach: /tmp/a file.pdf\n"
		"X-Bluearrow-Attach-Type: application/pdf\n"
		"X-Bluearrow-Body: 3\n"
		"\n"
		"Hi\n");
	ba_buf_release(&b);
	ba_draft_free(d);
}

static void test_draft__round_trip_hostile(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d = hostile_draft(), *e;
	struct ba_buf b = BA_BUF_INIT, b2 = BA_BUF_INIT;
	assert_int_equal(ba_draft_format(&b, d, &err), 0);
	/* the header is one line per value: no raw CR or control byte before the body */
	const char *end = strstr(b.data, "\n\n");
	assert_non_null(end);
	for (const char *p = b.data; p < end; p++)
		assert_true((unsigned char)*p >= 0x20 || *p == '\n');
	assert_int_equal(ba_draft_parse(&e, b.data, b.len, "mem", &err), 0);
	assert_same_draft(d, e);
	assert_int_equal(ba_draft_format(&b2, e, &err), 0);
	assert_int_equal(b.len, b2.len);
	assert_memory_equal(b.data, b2.data, b.len);
	ba_draft_free(e);
	/* the same through a file */
	const char *path = tpath("hostile.draft");
	assert_int_equal(ba_draft_save(d, path, &err), 0);
	assert_int_equal(ba_draft_load(&e, path, &err), 0);
	assert_same_draft(d, e);
	ba_draft_free(e);
	/* a body file instead of text, and an empty draft */
	assert_int_equal(ba_draft_set_body_file(d, "/x\n/y z", &err), 0);
	assert_int_equal(ba_draft_save(d, path, &err), 0);
	assert_int_equal(ba_draft_load(&e, path, &err), 0);
	assert_same_draft(d, e);
	ba_draft_free(e);
	ba_draft_free(d);
	assert_int_equal(ba_draft_new(&d, &err), 0);
	assert_int_equal(ba_draft_save(d, path, &err), 0);
	assert_int_equal(ba_draft_load(&e, path, &err), 0);
	assert_same_draft(d, e);
	ba_draft_free(e);
	ba_draft_free(d);
	ba_buf_release(&b);
	ba_buf_release(&b2);
}

static void test_draft__lenient_forms(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	/* names without case, "Name:" without space (an editor stripped it), raw TAB */
	static const char in[] = "x-bluearrow-draft: 1\nTO: a@b\nsubject:\ncc: x\ty\n\n";
	assert_int_equal(ba_draft_parse(&d, in, sizeof(in) - 1, "f", &err), 0);
	assert_string_equal(ba_draft_get(d, BA_DRAFT_TO, 0), "a@b");
	assert_string_equal(ba_draft_get(d, BA_DRAFT_SUBJECT, 0), "");
	assert_string_equal(ba_draft_get(d, BA_DRAFT_CC, 0), "x\ty");
	ba_draft_free(d);
}

struct bad_case {
	const char *data;
	const char *needle; /* in the error, after "'f', line " */
};

static void test_draft__corrupt_files(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{ "", "line 1: empty file" },
		{ "\n", "line 1: not a bluearrow draft" },
		{ "From: a@b\n\n", "line 1: not a bluearrow draft" },
		{ "X-Bluearrow-Draft: 2\n\n", "line 1: draft format version '2'" },
		{ "X-Bluearrow-Draft: 01\n\n", "line 1: draft format version" },
		{ "X-Bluearrow-Draft: 1", "line 1: truncated: the last line has no end" },
		{ "X-Bluearrow-Draft: 1\n", "line 2: truncated: the header does not end" },
		{ "X-Bluearrow-Draft: 1\nTo: a@b\n", "line 3: truncated" },
		{ "X-Bluearrow-Draft: 1\nTo: a@b", "line 2: truncated: the last line" },
		{ "X-Bluearrow-Draft: 1\nFoo: x\n\n", "line 2: unknown field 'Foo'" },
		{ "X-Bluearrow-Draft: 1\nno colon\n\n", "line 2: 'no colon' is not 'Name: value'" },
		{ "X-Bluearrow-Draft: 1\nTo: a\r\n\n", "line 2: carriage return" },
		{ "X-Bluearrow-Draft: 1\nTo: a\x01\n\n", "line 2: control character 0x01" },
		{ "X-Bluearrow-Draft: 1\nTo: a\\q\n\n", "line 2: invalid escape '\\q'" },
		{ "X-Bluearrow-Draft: 1\nTo: a\\\n\n", "line 2: a backslash ends the value" },
		{ "X-Bluearrow-Draft: 1\nTo: a\\x4\n\n", "line 2: invalid escape: \\x needs" },
		{ "X-Bluearrow-Draft: 1\nTo: a\\x00b\n\n", "line 2: invalid escape: \\x needs" },
		{ "X-Bluearrow-Draft: 1\nTo: a\\xg0\n\n", "line 2: invalid escape" },
		{ "X-Bluearrow-Draft: 1\nSubject: a\nSubject: b\n\n", "line 3: Subject given twice" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Draft: 1\n\n", "line 2: X-Bluearrow-Draft given twice" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Attach-Type: a/b\n\n", "line 2: X-Bluearrow-Attach-Type before" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Attach: p\nX-Bluearrow-Attach-Name: a\n"
		  "X-Bluearrow-Attach-Name: b\n\n", "line 4: X-Bluearrow-Attach-Name given twice" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Body-File: a\nX-Bluearrow-Body-File: b\n\n",
		  "line 3: X-Bluearrow-Body-File given twice" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Body: 1\nX-Bluearrow-Body-File: b\n\nx",
		  "line 3: X-Bluearrow-Body-File given twice, or with" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Body: -1\n\n", "line 2: X-Bluearrow-Body: '-1'" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Body: 99999999999999999999999\n\n", "line 2: X-Bluearrow-Body" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Body: 16777217\n\n", "line 2: X-Bluearrow-Body" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Body: 5\n\nabc", "line 4: truncated body: 3 of 5" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Body: 2\n\nabc", "line 4: 1 octets after the body" },
		{ "X-Bluearrow-Draft: 1\n\ntrailing", "line 3: 8 octets after the header" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Attach: -\n\n", "line 2: X-Bluearrow-Attach: '-'" },
		{ "X-Bluearrow-Draft: 1\nX-Bluearrow-Html-File: -\n\n", "line 2: X-Bluearrow-Html-File: '-'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ba_err err = BA_ERR_INIT;
		ba_draft *d = (ba_draft *)1;
		int rc = ba_draft_parse(&d, cases[i].data, strlen(cases[i].data), "f", &err);
		if (rc != -1 || err.code != EX_DATAERR || !strstr(err.text, cases[i].needle) ||
		    strncmp(err.text, "'f', line ", 10) != 0)
			fail_msg("case %zu: rc %d code %d text '%s', expected '%s'", i, rc, err.code,
			         err.text, cases[i].needle);
		assert_null(d);
	}
}

static void test_draft__every_truncation_fails(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d = hostile_draft(), *e;
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_draft_format(&b, d, &err), 0);
	/* a draft cut anywhere (a crash of a non-atomic writer, a full disk) never loads as a
	 * shorter, different draft */
	for (size_t n = 0; n < b.len; n++) {
		ba_err_clear(&err);
		if (ba_draft_parse(&e, b.data, n, "cut", &err) != -1 || err.code != EX_DATAERR)
			fail_msg("prefix of %zu of %zu octets loaded", n, b.len);
	}
	ba_buf_release(&b);
	ba_draft_free(d);
}

static void test_draft__bounds(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	struct ba_buf b = BA_BUF_INIT;
	/* a line over BA_DRAFT_LINE_MAX, with or without its LF */
	ba_buf_addstr(&b, "X-Bluearrow-Draft: 1\nTo: ");
	for (int i = 0; i < BA_DRAFT_LINE_MAX; i++)
		ba_buf_addch(&b, 'a');
	assert_int_equal(ba_draft_parse(&d, b.data, b.len, "f", &err), -1);
	assert_non_null(strstr(err.text, "line 2: line longer than"));
	ba_buf_addstr(&b, "\n\n");
	assert_int_equal(ba_draft_parse(&d, b.data, b.len, "f", &err), -1);
	assert_non_null(strstr(err.text, "line 2: line longer than"));
	/* too many lines */
	ba_buf_reset(&b);
	ba_buf_addstr(&b, "X-Bluearrow-Draft: 1\n");
	for (int i = 0; i < BA_DRAFT_LINES_MAX; i++)
		ba_buf_addstr(&b, "To: a\n");
	ba_buf_addstr(&b, "\n");
	assert_int_equal(ba_draft_parse(&d, b.data, b.len, "f", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "more than 10000 header lines"));
	/* a body over the bound cannot be set */
	assert_int_equal(ba_draft_new(&d, &err), 0);
	assert_int_equal(ba_draft_set_body_text(d, "", (size_t)BA_DRAFT_BODY_MAX + 1, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ba_draft_free(d);
	/* a file larger than any draft is refused before it is read (sparse: costs nothing) */
	const char *path = tpath("huge.draft");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "X-Bluearrow-Draft: 1\n", 21), 21);
	assert_int_equal(ftruncate(fd, (off_t)1 << 32), 0);
	close(fd);
	assert_int_equal(ba_draft_load(&d, path, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, path));
	unlink(path);
	/* a file just under the largest a draft can be is read whole and judged by its content */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "X-Bluearrow-Draft: 1\n", 21), 21);
	assert_int_equal(ftruncate(fd, (off_t)(4u << 20) + BA_DRAFT_BODY_MAX - 10), 0);
	close(fd);
	assert_int_equal(ba_draft_load(&d, path, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "line 2: line longer than"));
	unlink(path);
	/* not a file, no file */
	assert_int_equal(ba_draft_load(&d, tmpdir, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(ba_draft_load(&d, tpath("absent.draft"), &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	/* a corrupt file names itself and the line */
	write_file(path, "X-Bluearrow-Draft: 1\nTo: x\nBogus: y\n\n", 36);
	assert_int_equal(ba_draft_load(&d, path, &err), -1);
	char want[600];
	snprintf(want, sizeof(want), "'%s', line 3: unknown field 'Bogus'", path);
	assert_string_equal(err.text, want);
	ba_buf_release(&b);
}

/* ---- saving ------------------------------------------------------------- */

static void test_draft__save_is_atomic_and_private(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d = hostile_draft(), *e;
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/atomic", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	char path[600], target[600];
	snprintf(path, sizeof(path), "%s/x.draft", dir);
	snprintf(target, sizeof(target), "%s/target", tmpdir);
	/* the final name is a symbolic link: it is replaced, its target left alone */
	write_file(target, "precious", 8);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(ba_draft_save(d, path, &err), 0);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	size_t n;
	char *t = read_file(target, &n);
	assert_int_equal(n, 8);
	assert_memory_equal(t, "precious", 8);
	free(t);
	assert_int_equal(count_entries(dir), 1); /* no temporary file left */
	/* replacing an existing draft */
	assert_int_equal(ba_draft_add(d, BA_DRAFT_SUBJECT, "new", &err), 0);
	assert_int_equal(ba_draft_save(d, path, &err), 0);
	assert_int_equal(ba_draft_load(&e, path, &err), 0);
	assert_string_equal(ba_draft_get(e, BA_DRAFT_SUBJECT, 0), "new");
	ba_draft_free(e);
	assert_int_equal(count_entries(dir), 1);
	/* a draft that reads standard input cannot be saved; nothing is written */
	assert_int_equal(ba_draft_set_body_file(d, "-", &err), 0);
	assert_int_equal(ba_draft_save(d, path, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_int_equal(ba_draft_load(&e, path, &err), 0);
	assert_string_equal(ba_draft_get(e, BA_DRAFT_SUBJECT, 0), "new");
	ba_draft_free(e);
	/* a directory that does not exist */
	char nodir[600];
	snprintf(nodir, sizeof(nodir), "%s/absent/x.draft", tmpdir);
	assert_int_equal(ba_draft_set_body_file(d, NULL, &err), 0);
	assert_int_equal(ba_draft_save(d, nodir, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	assert_non_null(strstr(err.text, nodir));
	ba_draft_free(d);
}

static void test_draft__full_disk_leaves_nothing(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d, *e;
	char dir[512], path[600];
	snprintf(dir, sizeof(dir), "%s/full", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/x.draft", dir);
	assert_int_equal(ba_draft_new(&d, &err), 0);
	assert_int_equal(ba_draft_add(d, BA_DRAFT_SUBJECT, "old", &err), 0);
	assert_int_equal(ba_draft_save(d, path, &err), 0);
	/* a big draft on a "disk" that takes 4 KiB per file: RLIMIT_FSIZE gives write(2) the
	 * EFBIG a full file system gives as ENOSPC, the same path through the writer */
	static char big[1 << 16];
	memset(big, 'x', sizeof(big));
	assert_int_equal(ba_draft_set_body_text(d, big, sizeof(big), &err), 0);
	assert_int_equal(ba_draft_add(d, BA_DRAFT_SUBJECT, "new", &err), 0);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int rc = ba_draft_save(d, path, &err);
	char *p2 = NULL;
	int rc2 = ba_draft_save_new(&p2, d, dir, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	assert_int_equal(rc, -1);
	assert_int_equal(rc2, -1);
	assert_null(p2);
	assert_int_equal(err.code, EX_IOERR);
	assert_non_null(strstr(err.text, dir));
	/* the old draft is whole, and no temporary file remains */
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(ba_draft_load(&e, path, &err), 0);
	assert_string_equal(ba_draft_get(e, BA_DRAFT_SUBJECT, 0), "old");
	ba_draft_free(e);
	ba_draft_free(d);
}

static void test_draft__read_only_directory(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	char dir[512], path[600];
	snprintf(dir, sizeof(dir), "%s/ro", tmpdir);
	assert_int_equal(mkdir(dir, 0500), 0);
	snprintf(path, sizeof(path), "%s/x.draft", dir);
	assert_int_equal(ba_draft_new(&d, &err), 0);
	if (geteuid() != 0) {
		assert_int_equal(ba_draft_save(d, path, &err), -1);
		assert_int_equal(err.code, EX_CANTCREAT);
		assert_non_null(strstr(err.text, dir));
	} else { /* root writes anywhere: try as nobody, in a child */
		assert_int_equal(chmod(tmpdir, 0711), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgid(65534) < 0 || setuid(65534) < 0)
				_exit(100);
			_exit(ba_draft_save(d, path, &err) == -1 && strstr(err.text, dir) ? err.code
			                                                                    : 101);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		chmod(tmpdir, 0700);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), EX_CANTCREAT);
	}
	assert_int_equal(count_entries(dir), 0);
	ba_draft_free(d);
}

static void test_draft__directory_list_delete(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	char xdg[512], want[600];
	snprintf(xdg, sizeof(xdg), "%s/xdg", tmpdir);
	char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	setenv("XDG_DATA_HOME", xdg, 1);
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(ba_draft_dir(&b, 0, &err), 0);
	snprintf(want, sizeof(want), "%s/bluearrow/drafts", xdg);
	assert_string_equal(ba_buf_str(&b), want);
	/* listing a directory not yet made: no drafts */
	char **v;
	size_t n;
	assert_int_equal(ba_draft_list(&v, &n, NULL, &err), 0);
	assert_int_equal(n, 0);
	ba_draft_list_free(v, n);
	ba_draft *d;
	assert_int_equal(ba_draft_new(&d, &err), 0);
	char *p1, *p2;
	assert_int_equal(ba_draft_save_new(&p1, d, NULL, &err), 0);
	assert_int_equal(ba_draft_save_new(&p2, d, NULL, &err), 0);
	assert_string_not_equal(p1, p2);
	assert_int_equal(strncmp(p1, want, strlen(want)), 0);
	struct stat st;
	assert_int_equal(stat(want, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(p1, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* other files are not drafts */
	char other[700];
	snprintf(other, sizeof(other), "%s/notes.txt", want);
	write_file(other, "x", 1);
	assert_int_equal(ba_draft_list(&v, &n, NULL, &err), 0);
	assert_int_equal(n, 2);
	assert_true((!strcmp(v[0], p1) && !strcmp(v[1], p2)) ||
	            (!strcmp(v[0], p2) && !strcmp(v[1], p1)));
	assert_true(strcmp(v[0], v[1]) < 0);
	ba_draft_list_free(v, n);
	assert_int_equal(ba_draft_delete(p1, &err), 0);
	assert_int_equal(ba_draft_delete(p1, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(ba_draft_delete(other, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_int_equal(ba_draft_list(&v, &n, NULL, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], p2);
	ba_draft_list_free(v, n);
	/* without $XDG_DATA_HOME (or with a relative one): ~/.local/share */
	setenv("XDG_DATA_HOME", "relative/dir", 1);
	setenv("HOME", "/home/someone", 1);
	ba_buf_reset(&b);
	assert_int_equal(ba_draft_dir(&b, 0, &err), 0);
	assert_string_equal(ba_buf_str(&b), "/home/someone/.local/share/bluearrow/drafts");
	unsetenv("HOME");
	unsetenv("XDG_DATA_HOME");
	ba_buf_reset(&b);
	assert_int_equal(ba_draft_dir(&b, 0, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	/* a file where the directory should be */
	char file[600];
	snprintf(file, sizeof(file), "%s/afile", tmpdir);
	write_file(file, "x", 1);
	setenv("XDG_DATA_HOME", file, 1);
	ba_buf_reset(&b);
	assert_int_equal(ba_draft_dir(&b, 1, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	if (old_xdg)
		setenv("XDG_DATA_HOME", old_xdg, 1);
	else
		unsetenv("XDG_DATA_HOME");
	if (old_home)
		setenv("HOME", old_home, 1);
	free(old_xdg);
	free(old_home);
	free(p1);
	free(p2);
	ba_buf_release(&b);
	ba_draft_free(d);
}

/* ---- building ----------------------------------------------------------- */

/*
 * What `bluearrow compose` built before drafts existed, call for call: the
 * reference the draft's builder must match byte for byte.
 */
static ba_msg *reference_build(const char *body, const char *html, const char *const *att,
                               const char *const *types, const char *const *names, size_t natt)
{
	struct ba_err err = BA_ERR_INIT;
	ba_msg *m;
	assert_int_equal(ba_msg_new(&m, &err), 0);
	assert_int_equal(ba_msg_add_from(m, "Jane Doe <jane@example.org>", &err), 0);
	assert_int_equal(ba_msg_add_to(m, "bob@example.net", &err), 0);
	assert_int_equal(ba_msg_add_to(m, "\"Doe, J.\" <j@example.net>, Grüße <g@bücher.example>", &err), 0);
	assert_int_equal(ba_msg_add_cc(m, "cc@example.net", &err), 0);
	assert_int_equal(ba_msg_add_bcc(m, "hidden@example.net", &err), 0);
	assert_int_equal(ba_msg_set_subject(m, "Grüße aus Köln, a long subject that has to be folded somewhere", &err), 0);
	assert_int_equal(ba_msg_set_in_reply_to(m, "<p@example.org>", &err), 0);
	assert_int_equal(ba_msg_add_references(m, "<a@x> <p@example.org>", &err), 0);
	assert_int_equal(ba_msg_add_references(m, "<z@x>", &err), 0);
	assert_int_equal(ba_msg_add_header(m, "X-Test:  yes  ", &err), 0);
	ba_mime_part *text = NULL, *h = NULL, *b = NULL, *root = NULL;
	if (body)
		assert_int_equal(ba_mime_file_new(&text, body, BA_MIME_BODY, &err), 0);
	if (html) {
		assert_int_equal(ba_mime_file_new(&h, html, BA_MIME_BODY, &err), 0);
		assert_int_equal(ba_mime_set_type(h, "text/html", &err), 0);
	}
	if (text && h) {
		assert_int_equal(ba_mime_multipart_new(&b, "alternative", &err), 0);
		ba_mime_add(b, text, &err);
		ba_mime_add(b, h, &err);
	} else {
		b = text ? text : h;
	}
	if (natt) {
		assert_int_equal(ba_mime_multipart_new(&root, "mixed", &err), 0);
		if (b)
			ba_mime_add(root, b, &err);
		for (size_t i = 0; i < natt; i++) {
			ba_mime_part *p;
			assert_int_equal(ba_mime_file_new(&p, att[i], BA_MIME_ATTACHMENT, &err), 0);
			ba_mime_add(root, p, &err);
			if (types[i])
				assert_int_equal(ba_mime_set_type(p, types[i], &err), 0);
			if (names[i])
				assert_int_equal(ba_mime_set_filename(p, names[i], &err), 0);
		}
		b = root;
	}
	ba_msg_set_body(m, b);
	return m;
}

static ba_draft *same_draft(const char *body, const char *html, const char *const *att,
                            const char *const *types, const char *const *names, size_t natt)
{
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	assert_int_equal(ba_draft_new(&d, &err), 0);
	/* set in another order than built: the builder orders the fields */
	ba_draft_add(d, BA_DRAFT_HEADER, "X-Test:  yes  ", &err);
	ba_draft_add(d, BA_DRAFT_REFERENCES, "<a@x> <p@example.org>", &err);
	ba_draft_add(d, BA_DRAFT_REFERENCES, "<z@x>", &err);
	ba_draft_add(d, BA_DRAFT_SUBJECT, "Grüße aus Köln, a long subject that has to be folded somewhere", &err);
	ba_draft_add(d, BA_DRAFT_IN_REPLY_TO, "<p@example.org>", &err);
	ba_draft_add(d, BA_DRAFT_BCC, "hidden@example.net", &err);
	ba_draft_add(d, BA_DRAFT_TO, "bob@example.net", &err);
	ba_draft_add(d, BA_DRAFT_TO, "\"Doe, J.\" <j@example.net>, Grüße <g@bücher.example>", &err);
	ba_draft_add(d, BA_DRAFT_CC, "cc@example.net", &err);
	ba_draft_add(d, BA_DRAFT_FROM, "Jane Doe <jane@example.org>", &err);
	if (body)
		ba_draft_set_body_file(d, body, &err);
	if (html)
		ba_draft_set_html_file(d, html, &err);
	for (size_t i = 0; i < natt; i++)
		assert_int_equal(ba_draft_attach_add(d, att[i], types[i], names[i], &err), 0);
	return d;
}

static void test_draft__build_equals_compose(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	char body[600], html[600], a1[600], a2[600];
	snprintf(body, sizeof(body), "%s/body.txt", tmpdir);
	snprintf(html, sizeof(html), "%s/body.html", tmpdir);
	snprintf(a1, sizeof(a1), "%s/a file é.bin", tmpdir);
	snprintf(a2, sizeof(a2), "%s/data.csv", tmpdir);
	write_file(body, "Grüße,\n.\nline with trailing space \nbye\n", 40);
	write_file(html, "<p>hi</p>\n", 10);
	unsigned char bin[3000];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7 + 3);
	write_file(a1, bin, sizeof(bin));
	write_file(a2, "a,b\n1,2\n", 8);
	const char *att[] = { a1, a2, a1 };
	const char *types[] = { NULL, "text/x-csv", NULL };
	const char *names[] = { NULL, NULL, "Übersicht.bin" };
	const struct {
		const char *body, *html;
		size_t natt;
	} shapes[] = {
		{ NULL, NULL, 0 }, { body, NULL, 0 }, { NULL, html, 0 }, { body, html, 0 },
		{ NULL, NULL, 3 }, { body, NULL, 2 }, { body, html, 3 }, { NULL, html, 1 },
	};
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		for (int crlf = 0; crlf < 2; crlf++) {
			ba_msg *want = reference_build(shapes[s].body, shapes[s].html, att, types, names,
			                               shapes[s].natt);
			ba_draft *d = same_draft(shapes[s].body, shapes[s].html, att, types, names,
			                         shapes[s].natt);
			ba_msg *got;
			assert_int_equal(ba_draft_build(&got, d, &err), 0);
			struct ba_buf w = BA_BUF_INIT, g = BA_BUF_INIT;
			const char *eol = crlf ? "\r\n" : "\n";
			assert_int_equal(render(want, &w, eol, &err), 0);
			assert_int_equal(render(got, &g, eol, &err), 0);
			if (w.len != g.len || memcmp(w.data, g.data, w.len))
				fail_msg("shape %zu crlf %d differs:\n%s\n----\n%s", s, crlf, w.data, g.data);
			/* and after a save and load of the draft */
			ba_draft *e;
			const char *path = tpath("eq.draft");
			assert_int_equal(ba_draft_save(d, path, &err), 0);
			assert_int_equal(ba_draft_load(&e, path, &err), 0);
			ba_msg_free(got);
			assert_int_equal(ba_draft_build(&got, e, &err), 0);
			ba_buf_reset(&g);
			assert_int_equal(render(got, &g, eol, &err), 0);
			assert_int_equal(w.len, g.len);
			assert_memory_equal(w.data, g.data, w.len);
			assert_int_equal(ba_msg_rcpt_count(got), 5);
			ba_buf_release(&w);
			ba_buf_release(&g);
			ba_msg_free(want);
			ba_msg_free(got);
			ba_draft_free(d);
			ba_draft_free(e);
		}
	}
	/* a body held in memory builds the same message as the same body in a file */
	ba_draft *d = same_draft(body, NULL, att, types, names, 1), *e;
	e = same_draft(NULL, NULL, att, types, names, 1);
	assert_int_equal(ba_draft_set_body_text(e, "Grüße,\n.\nline with trailing space \nbye\n", 40,
	                                        &err), 0);
	ba_msg *m1, *m2;
	assert_int_equal(ba_draft_build(&m1, d, &err), 0);
	assert_int_equal(ba_draft_build(&m2, e, &err), 0);
	struct ba_buf b1 = BA_BUF_INIT, b2 = BA_BUF_INIT;
	assert_int_equal(render(m1, &b1, "\n", &err), 0);
	assert_int_equal(render(m2, &b2, "\n", &err), 0);
	assert_string_equal(ba_buf_str(&b1), ba_buf_str(&b2));
	ba_buf_release(&b1);
	ba_buf_release(&b2);
	ba_msg_free(m1);
	ba_msg_free(m2);
	ba_draft_free(d);
	ba_draft_free(e);
}

static void test_draft__build_errors(void **state)
{
	(void)state;
	struct ba_err err = BA_ERR_INIT;
	ba_draft *d;
	ba_msg *m = (ba_msg *)1;
	assert_int_equal(ba_draft_new(&d, &err), 0);
	/* the first bad value in the builder's order is reported: To before Subject */
	ba_draft_add(d, BA_DRAFT_SUBJECT, "a\nBcc: evil@example.org", &err);
	ba_draft_add(d, BA_DRAFT_FROM, "me@example.org", &err);
	ba_draft_add(d, BA_DRAFT_TO, "broken@", &err);
	assert_int_equal(ba_draft_build(&m, d, &err), -1);
	assert_null(m);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.text, "to:"));
	ba_draft_set(d, BA_DRAFT_TO, "ok@example.org", &err);
	assert_int_equal(ba_draft_build(&m, d, &err), -1);
	assert_non_null(strstr(err.text, "subject: contains a line feed"));
	ba_draft_set(d, BA_DRAFT_SUBJECT, "fine", &err);
	/* standard input at most once */
	ba_draft_set_body_file(d, "-", &err);
	ba_draft_attach_add(d, "-", NULL, NULL, &err);
	assert_int_equal(ba_draft_build(&m, d, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	ba_draft_attach_remove(d, 0, &err);
	ba_draft_set_body_file(d, NULL, &err);
	/* a missing attachment */
	ba_draft_attach_add(d, tpath("no-such-file"), NULL, NULL, &err);
	assert_int_equal(ba_draft_build(&m, d, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	ba_draft_attach_remove(d, 0, &err);
	/* Reply-To: an address field after Cc, not a recipient, once */
	ba_draft_add(d, BA_DRAFT_REPLY_TO, "Liste <list@example.org>", &err);
	ba_draft_add(d, BA_DRAFT_CC, "c@example.org", &err);
	assert_int_equal(ba_draft_build(&m, d, &err), 0);
	assert_int_equal(ba_msg_rcpt_count(m), 2);
	struct ba_buf b = BA_BUF_INIT;
	assert_int_equal(render(m, &b, "\n", &err), 0);
	assert_non_null(strstr(b.data, "Cc: c@example.org\nReply-To: Liste <list@example.org>\n"
	                               "Subject: fine\n"));
	ba_msg_free(m);
	ba_draft_add(d, BA_DRAFT_HEADER, "Reply-To: other@example.org", &err);
	assert_int_equal(ba_draft_build(&m, d, &err), 0);
	assert_int_equal(render(m, &b, "\n", &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	ba_msg_free(m);
	ba_draft_set(d, BA_DRAFT_REPLY_TO, "bad@", &err);
	assert_int_equal(ba_draft_build(&m, d, &err), -1);
	assert_non_null(strstr(err.text, "reply-to:"));
	ba_buf_release(&b);
	ba_draft_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_draft__accessors),
		cmocka_unit_test(test_draft__format_is_documented_text),
		cmocka_unit_test(test_draft__round_trip_hostile),
		cmocka_unit_test(test_draft__lenient_forms),
		cmocka_unit_test(test_draft__corrupt_files),
		cmocka_unit_test(test_draft__every_truncation_fails),
		cmocka_unit_test(test_draft__bounds),
		cmocka_unit_test(test_draft__save_is_atomic_and_private),
		cmocka_unit_test(test_draft__full_disk_leaves_nothing),
		cmocka_unit_test(test_draft__read_only_directory),
		cmocka_unit_test(test_draft__directory_list_delete),
		cmocka_unit_test(test_draft__build_equals_compose),
		cmocka_unit_test(test_draft__build_errors),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
