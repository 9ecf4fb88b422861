/* bluearrow/secret.h - an account's password or OAuth2 token
 *
 * Resolution order is msmtp's: the `password` key, else `passwordeval` (a
 * command run through /bin/sh -c whose first output line is the secret,
 * also used for OAUTHBEARER/XOAUTH2 tokens), else ~/.netrc (or $NETRC) by
 * host and user, else nothing (the engine fails with a clear error when AUTH
 * needs a password).  Secrets are returned in a ba_buf the caller releases
 * with ba_buf_release_secret(), which wipes it.  Nothing here logs a secret.
 */
#ifndef BLUEARROW_SECRET_H
#define BLUEARROW_SECRET_H

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"

/* Where a password came from. */
enum ba_secret_source {
	BA_SECRET_NONE,         /* none found: out is empty */
	BA_SECRET_CONFIG,       /* the password key */
	BA_SECRET_EVAL,         /* passwordeval */
	BA_SECRET_NETRC         /* a netrc file */
};

/*
 * Resolves the password of acc and appends it to out (which should be empty;
 * release it with ba_buf_release_secret()).  *source (may be NULL) says where
 * it came from.  Not finding one is not an error (BA_SECRET_NONE).
 * Errors: passwordeval cannot run (EX_OSERR), exits non-zero or is killed
 * (EX_CONFIG, "account 'x': passwordeval: command 'CMD' failed with exit
 * status N"), prints nothing ("account 'x': passwordeval command 'CMD'
 * printed no password"); ~/.netrc unreadable, or readable by group or
 * others while holding the password found (EX_CONFIG).  An unreadable
 * /etc/netrc is skipped.
 */
int ba_secret_password(struct ba_buf *out, enum ba_secret_source *source,
                       const struct ba_account *acc, struct ba_err *err);

/*
 * Looks host (and login, if not NULL) up in the netrc file at path (NULL:
 * $NETRC, else ~/.netrc).  Tokens as ftp(1)/netrc(5): machine NAME, default,
 * login NAME, password SECRET, account X, macdef NAME (skipped up to the
 * next empty line); quoted tokens "..." with \ escapes.  The first machine
 * entry whose name equals host (case-insensitively) and whose login equals
 * login (if both are given) wins; else the default entry.  Appends the
 * password to out, and the entry's login to login_out (may be NULL) when
 * login was NULL.  Returns 1 if found, 0 if not (a missing file is "not
 * found"), -1 on error (EX_CONFIG "'~/.netrc' ...: ...").
 */
int ba_secret_netrc(struct ba_buf *out, struct ba_buf *login_out, const char *path,
                    const char *host, const char *login, struct ba_err *err);

#endif
