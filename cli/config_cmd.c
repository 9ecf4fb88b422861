/* cli/config_cmd.c - bluearrow config check|show|list */
#include <stdio.h>
#include <string.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/submit.h"
#include "cli.h"

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

int cmd_config(int argc, char **argv)
{
	struct config_opts o = { NULL, NULL, NULL };
	struct ba_err err = BA_ERR_INIT;
	ba_config *cfg = NULL;
	int rc;

	if (argc < 2)
		return cli_usage_error("config", "missing subcommand (check, show or list)");
	const char *sub = argv[1];
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
