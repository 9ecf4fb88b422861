/* cli/config_cmd.c - bluearrow config check|show|list|init */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/submit.h"
#include "cli.h"
#include "output.h"

int cmd_config(int argc, char **argv);

struct config_opts {
	const char *file;
	const char *account;
	const char *from;
};

/* -C FILE, -CFILE, --file=FILE, --file FILE; -a ACCOUNT, -f ADDRESS likewise. */
static int parse_opts(struct config_opts *o, int argc, char **argv, int allow_account)
{
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i];
		const char **dst = NULL;
		const char *val = NULL;
		if (strncmp(s, "-C", 2) == 0 || strncmp(s, "--file", 6) == 0) {
			dst = &o->file;
			val = s[1] == 'C' ? s + 2 : s + 6;
		} else if (allow_account &&
		           (strncmp(s, "-a", 2) == 0 || strncmp(s, "--account", 9) == 0)) {
			dst = &o->account;
			val = s[1] == 'a' ? s + 2 : s + 9;
		} else if (allow_account &&
		           (strncmp(s, "-f", 2) == 0 || strncmp(s, "--from", 6) == 0)) {
			dst = &o->from;
			val = s[1] == 'f' ? s + 2 : s + 6;
		} else {
			return cli_usage_error("config", "unknown argument '%s'", s);
		}
		if (s[1] == '-') {
			if (*val == '=')
				val++;
			else if (*val != '\0')
				return cli_usage_error("config", "unknown option '%s'", s);
		}
		if (*val == '\0') {
			if (i + 1 >= argc)
				return cli_usage_error("config", "option '%s' needs a value", s);
			val = argv[++i];
		}
		*dst = val;
	}
	return 0;
}

static int load(ba_config **cfg, const struct config_opts *o, struct ba_err *err)
{
	struct ba_buf path = BA_BUF_INIT;
	unsigned flags = 0;
	int rc;
	if (o->file)
		return ba_config_load(cfg, o->file, 0, err);
	if (ba_config_find_default_path(&path, &flags, err) < 0)
		return -1;
	rc = ba_config_load(cfg, ba_buf_str(&path), flags, err);
	ba_buf_release(&path);
	return rc;
}

static int config_check(ba_config *cfg)
{
	struct ba_err err = BA_ERR_INIT;
	size_t n = ba_config_count(cfg);
	const char *def = ba_config_default_name(cfg);

	for (size_t i = 0; i < n; i++) {
		const struct ba_account *a = ba_config_at(cfg, i);
		if (ba_config_account_check(a, &err) < 0) {
			/* the default account must work; others may be templates for children */
			if (strcmp(a->name, "default") == 0)
				return cli_fail(&err);
			fprintf(stderr, "%s: warning: %s (usable only as a parent)\n", cli_progname,
			        err.text);
			ba_err_clear(&err);
		}
	}
	printf("config '%s': %zu account%s, ", ba_config_path(cfg), n, n == 1 ? "" : "s");
	if (def)
		printf("default '%s'\n", def);
	else
		printf("no default account\n");
	return 0;
}

static int config_show(ba_config *cfg, const struct config_opts *o)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf out = BA_BUF_INIT;
	const struct ba_account *a = NULL;
	/* as a send chooses: -a, else the account of -f, else the default */
	if (!(a = ba_submit_account(cfg, o->account, o->from, NULL, &err)))
		return cli_fail(&err);
	if (ba_config_format_account(&out, a) < 0) {
		ba_buf_release(&out);
		ba_err_set(&err, EX_OSERR, "out of memory");
		return cli_fail(&err);
	}
	fwrite(out.data, 1, out.len, stdout);
	ba_buf_release(&out);
	return 0;
}

/* mkdir -p for the directories of path (0700: the file may hold a passwordeval command) */
static int make_dirs(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		int rc = mkdir(path, 0700);
		int e = errno;
		*p = '/';
		if (rc < 0 && e != EEXIST)
			return -1;
	}
	return 0;
}

/* bluearrow config init [-C FILE] [-a NAME] [-f ADDR] [--host H ...]: a commented file, 0600 */
static int config_init(int argc, char **argv)
{
	struct ba_err err = BA_ERR_INIT;
	struct ba_buf path = BA_BUF_INIT, text = BA_BUF_INIT;
	struct cli_kv keys;
	const char *file = NULL, *account = NULL, *from = NULL;
	int code = cli_kv_init(&keys, argc);
	for (int i = 2; i < argc && !code; i++) {
		const char *s = argv[i], **dst = NULL, *val = NULL;
		if (strcmp(s, "-C") == 0 || strcmp(s, "--file") == 0)
			dst = &file;
		else if (strcmp(s, "-a") == 0 || strcmp(s, "--account") == 0)
			dst = &account;
		else if (strcmp(s, "-f") == 0 || strcmp(s, "--from") == 0)
			dst = &from;
		else if (strncmp(s, "--file=", 7) == 0)
			dst = &file, val = s + 7;
		else if (strncmp(s, "--account=", 10) == 0)
			dst = &account, val = s + 10;
		else if (strncmp(s, "--from=", 7) == 0)
			dst = &from, val = s + 7;
		if (dst) {
			if (!val && i + 1 >= argc)
				code = cli_usage_error("config", "option '%s' needs a value", s);
			else
				*dst = val ? val : argv[++i];
			if (!code && cli_check_value("config", s, *dst))
				code = EX_USAGE;
			continue;
		}
		int rc = strncmp(s, "--", 2) == 0 ? cli_account_option(&keys, "config", &i, argc, argv) : -1;
		if (rc < 0)
			code = cli_usage_error("config", "unknown argument '%s'", s);
		else
			code = rc;
	}
	if (code)
		goto out;
	if (from) {
		keys.kv[keys.n].key = strdup("from");
		keys.kv[keys.n++].value = from;
	}
	if (!file) {
		if (ba_config_user_path(&path, &err) < 0) {
			code = cli_fail(&err);
			goto out;
		}
		file = ba_buf_str(&path);
	}
	if (ba_config_template(&text, account, keys.kv, keys.n, &err) < 0) {
		code = err.code == EX_USAGE ? cli_usage_error("config", "%s", err.text) : cli_fail(&err);
		goto out;
	}
	char *dir = strdup(file);
	int fd = -1;
	if (dir && make_dirs(dir) == 0)
		fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int e = errno;
	free(dir);
	if (fd < 0) {
		if (e == EEXIST)
			ba_err_set(&err, EX_CANTCREAT, "'%s' exists: not overwritten (edit it, or move it "
			           "away first)", file);
		else
			ba_err_set(&err, EX_CANTCREAT, "cannot create '%s': %s", file, strerror(e));
		code = cli_fail(&err);
		goto out;
	}
	ssize_t k = write(fd, text.data, text.len);
	if (close(fd) < 0 || k != (ssize_t)text.len) {
		unlink(file);
		ba_err_set(&err, EX_IOERR, "cannot write '%s'", file);
		code = cli_fail(&err);
		goto out;
	}
	printf("wrote '%s': edit it, then run 'bluearrow config check' and 'bluearrow check'\n",
	       file);
out:
	cli_kv_release(&keys);
	ba_buf_release(&path);
	ba_buf_release(&text);
	return code;
}

int cmd_config(int argc, char **argv)
{
	struct config_opts o = { NULL, NULL, NULL };
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	int rc;

	if (argc < 2)
		return cli_usage_error("config", "missing subcommand (check, show, list or init)");
	const char *sub = argv[1];
	if (strcmp(sub, "init") == 0)
		return config_init(argc, argv);
	int is_show = strcmp(sub, "show") == 0;
	if (!is_show && strcmp(sub, "check") != 0 && strcmp(sub, "list") != 0)
		return cli_usage_error("config", "unknown subcommand '%s'", sub);
	if ((rc = parse_opts(&o, argc, argv, is_show)) != 0)
		return rc;
	if (load(&cfg, &o, &err) < 0)
		return cli_fail(&err);
	if (is_show) {
		rc = config_show(cfg, &o);
	} else if (strcmp(sub, "check") == 0) {
		rc = config_check(cfg);
	} else {
		for (size_t i = 0; i < ba_config_count(cfg); i++)
			printf("%s\n", ba_config_at(cfg, i)->name);
		rc = 0;
	}
	ba_config_free(cfg);
	fflush(stdout);
	return rc;
}
