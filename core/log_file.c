/* log_file.c - msmtp's per-message log line, logfile and syslog (see bluearrow/log_file.h) */
#include "bluearrow/log_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "bluearrow/log.h"

/* A quoted value: cleaned as ba_log_clean(), and "'" (which would end it) written as '"'. */
static void add_quoted(struct ba_buf *out, const char *key, const char *v)
{
	ba_buf_addf(out, " %s='", key);
	size_t from = out->len;
	ba_log_clean(out, v, strlen(v));
	for (size_t i = from; i < out->len && !ba_buf_failed(out); i++)
		if (out->data[i] == '\'')
			out->data[i] = '"';
	ba_buf_addch(out, '\'');
}

int ba_log_entry_format(struct ba_buf *out, const struct ba_log_entry *e)
{
	ba_buf_addstr(out, "host=");
	ba_log_clean(out, e->host ? e->host : "", e->host ? strlen(e->host) : 0);
	ba_buf_addf(out, " tls=%s auth=%s", e->tls ? "on" : "off", e->auth ? "on" : "off");
	if (e->auth && e->user) {
		ba_buf_addstr(out, " user=");
		ba_log_clean(out, e->user, strlen(e->user));
	}
	ba_buf_addstr(out, " from=");
	if (e->from)
		ba_log_clean(out, e->from, strlen(e->from));
	ba_buf_addstr(out, " recipients=");
	for (size_t i = 0; i < e->nrcpt; i++) {
		if (i)
			ba_buf_addch(out, ',');
		ba_log_clean(out, e->rcpt[i], strlen(e->rcpt[i]));
	}
	if (e->has_mailsize)
		ba_buf_addf(out, " mailsize=%llu", (unsigned long long)e->mailsize);
	if (e->smtp_status)
		ba_buf_addf(out, " smtpstatus=%d", e->smtp_status);
	if (e->smtp_msg)
		add_quoted(out, "smtpmsg", e->smtp_msg);
	if (e->errormsg)
		add_quoted(out, "errormsg", e->errormsg);
	ba_buf_addf(out, " exitcode=%s", e->exitcode ? ba_err_class_name(e->exitcode) : "EX_OK");
	if (e->dropped_after_dot)
		ba_buf_addf(out, " dropped_after_dot=%llu", (unsigned long long)e->dropped_after_dot);
	if (e->mtasts_testing && *e->mtasts_testing)
		add_quoted(out, "mtasts_testing", e->mtasts_testing);
	return ba_buf_failed(out) ? -1 : 0;
}

int ba_log_file_append(const char *path, const char *time_format, int64_t t, const char *line,
                       struct ba_err *err)
{
	struct ba_buf b = BA_BUF_INIT;
	char ts[256];
	time_t tt = (time_t)t;
	struct tm tm;
	if (!time_format || !*time_format)
		time_format = "%b %d %H:%M:%S";
	if (!localtime_r(&tt, &tm) || strftime(ts, sizeof(ts), time_format, &tm) == 0)
		ts[0] = '\0';
	ba_buf_addf(&b, "%s %s\n", ts, line);
	if (ba_buf_failed(&b))
		return ba_err_set(err, EX_OSERR, "out of memory");
	int fd = strcmp(path, "-") == 0 ? dup(STDOUT_FILENO) /* msmtp: "-" is standard output */
	                                : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		ba_err_set(err, EX_CANTCREAT, "cannot open logfile '%s': %s", path, ba_strerror_t(errno));
		ba_buf_release(&b);
		return -1;
	}
	/* one write: with O_APPEND the line lands whole at the end, even with concurrent writers */
	ssize_t k;
	do
		k = write(fd, b.data, b.len);
	while (k < 0 && errno == EINTR);
	int e = errno;
	int rc = 0;
	if (k != (ssize_t)b.len)
		rc = ba_err_set(err, EX_IOERR, "cannot write logfile '%s': %s", path,
		                k < 0 ? ba_strerror_t(e) : "short write");
	if (close(fd) < 0 && rc == 0)
		rc = ba_err_set(err, EX_IOERR, "cannot write logfile '%s': %s", path, ba_strerror_t(errno));
	ba_buf_release(&b);
	return rc;
}

int ba_log_syslog_facility(const char *name, struct ba_err *err)
{
	static const struct {
		const char *name;
		int facility;
	} tab[] = {
		{ "on", LOG_USER },       { "LOG_USER", LOG_USER },     { "LOG_MAIL", LOG_MAIL },
		{ "LOG_LOCAL0", LOG_LOCAL0 }, { "LOG_LOCAL1", LOG_LOCAL1 }, { "LOG_LOCAL2", LOG_LOCAL2 },
		{ "LOG_LOCAL3", LOG_LOCAL3 }, { "LOG_LOCAL4", LOG_LOCAL4 }, { "LOG_LOCAL5", LOG_LOCAL5 },
		{ "LOG_LOCAL6", LOG_LOCAL6 }, { "LOG_LOCAL7", LOG_LOCAL7 },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(name, tab[i].name) == 0)
			return tab[i].facility;
	return ba_err_set(err, EX_CONFIG, "unknown syslog facility '%s'", name);
}

void ba_log_syslog(int facility, int failed, const char *line)
{
	openlog("bluearrow", LOG_PID, facility);
	syslog(failed ? LOG_ERR : LOG_INFO, "%s", line);
	closelog();
}
