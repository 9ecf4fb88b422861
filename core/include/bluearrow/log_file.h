/* bluearrow/log_file.h - the per-message log line of msmtp's logfile and syslog
 *
 * msmtp writes one line per message to its `logfile` and to syslog; log
 * tooling (logwatch, fail2ban filters, people's scripts) parses it, so
 * bluearrow writes the same fields in the same order:
 *
 *   host=H tls=on|off auth=on|off [user=U] from=F recipients=A,B
 *   [mailsize=N] [smtpstatus=C] [smtpmsg='REPLY'] [errormsg='TEXT'] exitcode=EX_OK
 *   [dropped_after_dot=N] [mtasts_testing='TEXT']
 *
 * The logfile line is prefixed with the local time in logfile_time_format
 * (default "%b %d %H:%M:%S") and a space.  Secrets never reach this line: it
 * has no field for them, and server text is cleaned (ba_log_clean()).
 */
#ifndef BLUEARROW_LOG_FILE_H
#define BLUEARROW_LOG_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"

struct ba_log_entry {             /* all strings borrowed; NULL = field left out */
	const char *host;             /* host name or socket path */
	int tls, auth;                /* as configured: "on"/"off" */
	const char *user;             /* written only when auth is on */
	const char *from;             /* envelope sender */
	const char *const *rcpt;      /* envelope recipients */
	size_t nrcpt;
	int has_mailsize;             /* the message was read: mailsize=N */
	uint64_t mailsize;
	int smtp_status;              /* last server reply code; 0 = none */
	const char *smtp_msg;         /* the server's last reply text (untrusted); NULL = none */
	const char *errormsg;         /* our error text; NULL on success */
	int exitcode;                 /* sysexits value */
	uint64_t dropped_after_dot;   /* bytes after a lone "." line that were not sent; 0 = the
	                                 field is left out (msmtp has no such field: it comes last,
	                                 after exitcode, as one more key=value) */
	const char *mtasts_testing;   /* direct delivery under an MTA-STS policy in mode testing
	                                 (RFC 8461 §5): what enforce would have refused; NULL or
	                                 "" = left out.  Quoted as smtpmsg, last on the line (no
	                                 msmtp field either) */
};

/*
 * Appends the line (no time prefix, no newline) to out, in msmtp's format.
 * The quoted values (smtpmsg, errormsg) never contain "'": each one is
 * written as '"', so a shell-like split of the line keeps every field whole.
 * Returns 0, or -1 if out failed.
 */
int ba_log_entry_format(struct ba_buf *out, const struct ba_log_entry *e);

/*
 * Appends "TIME LINE\n" to the file at path with a single write(2) on a
 * descriptor opened O_WRONLY|O_APPEND|O_CREAT (mode 0600 before umask), so
 * lines of concurrent senders never interleave; path "-" is standard
 * output (msmtp's logfile -).  time_format is strftime's
 * (NULL = "%b %d %H:%M:%S"); t is seconds since the epoch (local time).
 * Errors: EX_CANTCREAT (cannot open), EX_IOERR (short write).
 */
int ba_log_file_append(const char *path, const char *time_format, int64_t t, const char *line,
                       struct ba_err *err);

/*
 * The syslog facility for a `syslog` value: "on" = LOG_USER (msmtp's
 * default), "LOG_USER", "LOG_MAIL", "LOG_LOCAL0".."LOG_LOCAL7".  Returns the
 * facility, or -1 for an unknown name (EX_CONFIG set).
 */
int ba_log_syslog_facility(const char *name, struct ba_err *err);

/* Sends line to syslog (ident "bluearrow") at LOG_INFO on success, LOG_ERR on failure. */
void ba_log_syslog(int facility, int failed, const char *line);

#endif
