/* cli/account_opts.c - an account on the command line: msmtp's --host=H --port=N --tls ... */
#include <stdlib.h>
#include <string.h>

#include "bluearrow/config.h"
#include "cli.h"
#include "output.h"

int cli_kv_init(struct cli_kv *kv, int argc)
{
	kv->n = 0;
	kv->kv = calloc((size_t)argc + 1, sizeof(*kv->kv));
	return kv->kv ? 0 : EX_OSERR;
}

void cli_kv_release(struct cli_kv *kv)
{
	for (size_t i = 0; kv->kv && i < kv->n; i++)
		free((char *)kv->kv[i].key);
	free(kv->kv);
	kv->kv = NULL;
	kv->n = 0;
}

int cli_account_option(struct cli_kv *kv, const char *cmd, int *i, int argc, char **argv)
{
	const char *s = argv[*i] + 2, *eq = strchr(s, '=');
	size_t n = eq ? (size_t)(eq - s) : strlen(s);
	char *key = strndup(s, n);
	if (!key)
		return EX_OSERR;
	for (char *c = key; *c; c++)
		if (*c == '-')
			*c = '_';
	/* from is the envelope sender (-f, --from); a secret never goes on a command line */
	int opt = strcmp(key, "from") == 0 || strcmp(key, "password") == 0 ||
	                          strcmp(key, "oauth2_client_secret") == 0 ||
	                          strcmp(key, "oauth2_refresh_token") == 0
	                  ? -1
	                  : ba_config_key_value_optional(key);
	if (opt < 0) {
		const char *near = ba_config_key_near(key);
		free(key);
		if (near) { /* a misspelt account key: say which one was meant */
			char *o = strdup(near);
			for (char *c = o; c && *c; c++)
				if (*c == '_')
					*c = '-';
			int rc = cli_usage_error(cmd, "unknown option '--%.*s' (did you mean '--%s'?)",
			                         (int)n, s, o ? o : near);
			free(o);
			return rc;
		}
		return -1;
	}
	const char *val = eq ? eq + 1 : "";
	if (!eq && !opt) {
		if (*i + 1 >= argc) {
			free(key);
			return cli_usage_error(cmd, "option '%s' needs a value", argv[*i]);
		}
		val = argv[++*i];
	}
	if (cli_check_value(cmd, argv[*i], val)) {
		free(key);
		return EX_USAGE;
	}
	kv->kv[kv->n].key = key;
	kv->kv[kv->n].value = val;
	kv->n++;
	return 0;
}

const char **cli_file_or_account(const char *opt, const char **file, const char **account)
{
	if (strcmp(opt, "-C") == 0 || strcmp(opt, "--file") == 0)
		return file;
	if (strcmp(opt, "-a") == 0 || strcmp(opt, "--account") == 0)
		return account;
	return NULL;
}
