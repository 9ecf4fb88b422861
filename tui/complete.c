/* tui/complete.c - completion: addresses from four sources, file names by glob
 *
 * Address sources, in this order: the account's msmtp `aliases` file
 * ("name: addr, addr"), a mutt alias file ("alias key [Name] <addr>"),
 * mutt's query_command (its first output line is a status, then one
 * "address<TAB>name[<TAB>other]" per line), and the history of addresses
 * this TUI has sent to ($XDG_DATA_HOME/bluearrow/addresses).  A candidate
 * matches when the query (case-insensitively) begins its alias name, its
 * address or a word of its display name.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bluearrow/addr.h"
#include "tui.h"

void tui_matches_release(struct tui_matches *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i]);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

static int add_match(struct tui_matches *m, const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (!n)
		return 0;
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->v[i]) == n && strncasecmp(m->v[i], s, n) == 0)
			return 0;
	char **nv = realloc(m->v, (m->n + 1) * sizeof(*nv));
	if (!nv)
		return -1;
	m->v = nv;
	if (!(m->v[m->n] = strndup(s, n)))
		return -1;
	m->n++;
	return 0;
}

void tui_expand_home(struct ba_buf *out, const char *path)
{
	const char *home = getenv("HOME");
	if (path[0] == '~' && (path[1] == '/' || !path[1]) && home) {
		ba_buf_addstr(out, home);
		ba_buf_addstr(out, path + 1);
	} else {
		ba_buf_addstr(out, path);
	}
}

/* 1 when q begins s[0..n) or one of its words (after a space, '<', '"', '.' or '@'). */
static int prefix_match(const char *q, const char *s, size_t n)
{
	size_t ql = strlen(q);
	if (!ql)
		return 1;
	for (size_t i = 0; i + ql <= n; i++) {
		if (i && !strchr(" <\"'.@_-", s[i - 1]))
			continue;
		if (strncasecmp(s + i, q, ql) == 0)
			return 1;
	}
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct ba_buf b = BA_BUF_INIT;
	ba_buf_init(&b, 4u << 20);
	char tmp[8192];
	ssize_t r;
	while ((r = read(fd, tmp, sizeof tmp)) > 0)
		ba_buf_add(&b, tmp, (size_t)r);
	close(fd);
	if (ba_buf_failed(&b)) {
		ba_buf_release(&b);
		return NULL;
	}
	ba_buf_add(&b, "", 0);
	return ba_buf_detach(&b, len);
}

/* msmtp aliases: "name: replacement"; the name or the replacement may match. */
static void from_msmtp_aliases(struct tui_matches *m, const char *q, const char *path)
{
	size_t len;
	char *text = slurp(path, &len);
	if (!text)
		return;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		char *name = line;
		while (*name == ' ' || *name == '\t')
			name++;
		if (prefix_match(q, name, (size_t)(colon - name)) || prefix_match(q, colon + 1,
		                                                                  strlen(colon + 1)))
			add_match(m, colon + 1, strlen(colon + 1));
	}
	free(text);
}

/* mutt: "alias key address-list"; the key or the list may match. */
static void from_mutt_aliases(struct tui_matches *m, const char *q, const char *path)
{
	size_t len;
	char *text = slurp(path, &len);
	if (!text)
		return;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, "alias", 5) != 0 || (line[5] != ' ' && line[5] != '\t'))
			continue;
		char *key = line + 6;
		while (*key == ' ' || *key == '\t')
			key++;
		size_t kl = strcspn(key, " \t");
		char *val = key + kl;
		while (*val == ' ' || *val == '\t')
			val++;
		char *hash = strstr(val, " #");
		if (hash)
			*hash = '\0';
		if (*val && (prefix_match(q, key, kl) || prefix_match(q, val, strlen(val))))
			add_match(m, val, strlen(val));
	}
	free(text);
}

/* mutt's query_command: %s is the query, single-quoted for the shell. */
static void from_query(struct tui_matches *m, const char *q, const char *cmd)
{
	struct ba_buf c = BA_BUF_INIT, quoted = BA_BUF_INIT, out = BA_BUF_INIT;
	ba_buf_addch(&quoted, '\'');
	for (const char *p = q; *p; p++)
		*p == '\'' ? ba_buf_addstr(&quoted, "'\\''") : ba_buf_addch(&quoted, *p);
	ba_buf_addch(&quoted, '\'');
	const char *pct = strstr(cmd, "%s");
	if (pct) {
		ba_buf_add(&c, cmd, (size_t)(pct - cmd));
		ba_buf_addstr(&c, ba_buf_str(&quoted));
		ba_buf_addstr(&c, pct + 2);
	} else {
		ba_buf_addf(&c, "%s %s", cmd, ba_buf_str(&quoted));
	}
	int fds[2];
	if (!ba_buf_failed(&c) && pipe(fds) == 0) {
		pid_t pid = fork();
		if (pid == 0) {
			int nul = open("/dev/null", O_RDWR);
			dup2(nul, 0);
			dup2(fds[1], 1);
			dup2(nul, 2);
			execl("/bin/sh", "sh", "-c", ba_buf_str(&c), (char *)NULL);
			_exit(127);
		}
		close(fds[1]);
		if (pid > 0) {
			ba_buf_init(&out, 1u << 20);
			char tmp[4096];
			ssize_t r;
			while ((r = read(fds[0], tmp, sizeof tmp)) > 0 || (r < 0 && errno == EINTR))
				if (r > 0)
					ba_buf_add(&out, tmp, (size_t)r);
			int st;
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
		}
		close(fds[0]);
	}
	char *text = (char *)ba_buf_str(&out);
	char *line = strchr(text, '\n');   /* the first line is the command's status */
	for (line = line ? line + 1 : NULL; line && *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *tab = strchr(line, '\t');
		if (tab) {
			*tab = '\0';
			char *name = tab + 1;
			char *tab2 = strchr(name, '\t');
			if (tab2)
				*tab2 = '\0';
			struct ba_buf v = BA_BUF_INIT;
			if (*name)
				ba_buf_addf(&v, "%s <%s>", name, line);
			else
				ba_buf_addstr(&v, line);
			add_match(m, ba_buf_str(&v), strlen(ba_buf_str(&v)));
			ba_buf_release(&v);
		} else if (strchr(line, '@')) {
			add_match(m, line, strlen(line));
		}
		line = next;
	}
	ba_buf_release(&c);
	ba_buf_release(&quoted);
	ba_buf_release(&out);
}

static int history_path(struct ba_buf *out)
{
	const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	if (x && x[0] == '/')
		ba_buf_addf(out, "%s/bluearrow/addresses", x);
	else if (home && *home)
		ba_buf_addf(out, "%s/.local/share/bluearrow/addresses", home);
	else
		return -1;
	return ba_buf_failed(out) ? -1 : 0;
}

static void from_history(struct tui_matches *m, const char *q)
{
	struct ba_buf p = BA_BUF_INIT;
	if (history_path(&p) == 0) {
		size_t len;
		char *text = slurp(ba_buf_str(&p), &len);
		for (char *line = text, *next; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			if (prefix_match(q, line, strlen(line)))
				add_match(m, line, strlen(line));
		}
		free(text);
	}
	ba_buf_release(&p);
}

int tui_complete_addr(struct tui_matches *m, const char *q, const char *aliases_file,
                      const struct tui_conf *c)
{
	tui_matches_release(m);
	while (*q == ' ')
		q++;
	if (aliases_file)
		from_msmtp_aliases(m, q, aliases_file);
	if (c->alias_file)
		from_mutt_aliases(m, q, c->alias_file);
	if (c->query_command && *q)
		from_query(m, q, c->query_command);
	from_history(m, q);
	return 0;
}

/* Remembers every address of To, Cc and Bcc, once each (the file stays small: a line per address). */
void tui_history_add(const ba_draft *d)
{
	struct ba_buf p = BA_BUF_INIT, have = BA_BUF_INIT;
	if (history_path(&p) < 0)
		goto out;
	size_t len = 0;
	char *text = slurp(ba_buf_str(&p), &len);
	ba_buf_addstr(&have, text ? text : "");
	free(text);
	/* the directory: the drafts' parent, made by ba_draft_dir() */
	struct ba_buf dir = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	ba_draft_dir(&dir, 1, &err);
	ba_buf_release(&dir);
	int fd = open(ba_buf_str(&p), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	enum ba_draft_field fs[] = { BA_DRAFT_TO, BA_DRAFT_CC, BA_DRAFT_BCC };
	for (size_t k = 0; k < 3; k++)
		for (size_t i = 0; i < ba_draft_count(d, fs[k]); i++) {
			struct ba_addr_list list = BA_ADDR_LIST_INIT;
			const char *v = ba_draft_get(d, fs[k], i);
			if (ba_addr_list_parse(&list, v, strlen(v), 0, &err) < 0)
				continue;
			for (size_t j = 0; j < list.n; j++) {
				struct ba_buf line = BA_BUF_INIT;
				if (!list.v[j].local || !list.v[j].domain)
					continue;
				const char *dn = list.v[j].display;
				if (dn && strpbrk(dn, "()<>[]:;@\\,.\"")) {
					/* a quoted-string, so the line reads back as one mailbox */
					ba_buf_addch(&line, '"');
					for (const char *c = dn; *c; c++) {
						if (*c == '"' || *c == '\\')
							ba_buf_addch(&line, '\\');
						ba_buf_addch(&line, *c);
					}
					ba_buf_addf(&line, "\" <%s@%s>", list.v[j].local, list.v[j].domain);
				} else if (dn) {
					ba_buf_addf(&line, "%s <%s@%s>", dn, list.v[j].local, list.v[j].domain);
				} else {
					ba_buf_addf(&line, "%s@%s", list.v[j].local, list.v[j].domain);
				}
				ba_buf_addch(&line, '\n');
				const char *h = ba_buf_str(&have), *l = ba_buf_str(&line);
				int dup = (strncmp(h, l, strlen(l)) == 0);
				struct ba_buf needle = BA_BUF_INIT;
				ba_buf_addf(&needle, "\n%s", l);
				dup = dup || strstr(h, ba_buf_str(&needle));
				ba_buf_release(&needle);
				if (!dup && !ba_buf_failed(&line)) {
					if (write(fd, l, strlen(l)) < 0) {
						/* the history is a convenience: a full disk costs only completions */
					}
					ba_buf_addstr(&have, l);
				}
				ba_buf_release(&line);
			}
			ba_addr_list_release(&list);
		}
	close(fd);
out:
	ba_buf_release(&p);
	ba_buf_release(&have);
}

int tui_complete_path(struct tui_matches *m, const char *q)
{
	struct ba_buf pat = BA_BUF_INIT;
	tui_matches_release(m);
	tui_expand_home(&pat, q);
	ba_buf_addch(&pat, '*');
	if (ba_buf_failed(&pat))
		return -1;
	glob_t g;
	if (glob(ba_buf_str(&pat), GLOB_MARK, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			add_match(m, g.gl_pathv[i], strlen(g.gl_pathv[i]));
		globfree(&g);
	}
	ba_buf_release(&pat);
	return 0;
}
