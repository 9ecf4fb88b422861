/* bluearrow/submit.h - the send pipeline: account, envelope, delivery, log, result
 *
 * Layer 5 (docs/ARCHITECTURE.md): the path from "a message and an account"
 * to "a result per recipient", in the order every front end runs it:
 *
 *   ba_submit_config()        the configuration (a file, or the search path)
 *   ba_submit_account()       which account: -a, else by envelope sender,
 *                             else by the message's From, else the default
 *   ba_submit_envelope_from() the envelope sender (-f, from, auto_from)
 *   ba_submit_read()          a given message: its header, then the account
 *                             (by the From field too) and the sender, then
 *                             the rest read as that account wants it
 *                             (ba_submit_read_opts(): Bcc removal,
 *                             From/Date/Message-ID, undisclosed)
 *   ba_submit_recipients()    the envelope recipients: arguments, then the
 *                             header's (-t), through the account's aliases
 *   ba_submit_send()          route, IDN, DSN, the 7-bit decision, the
 *                             engine; the logfile and syslog line; the result
 *
 * `bluearrow sendmail`, `bluearrow send`, `bluearrow check`, the outbox
 * flush and the TUI call these functions and nothing below them, so each
 * decision above is made in exactly one place.  Nothing here prints: the
 * front end shows err and the result.  ba_submit_send() may run in a
 * worker thread while another thread shows its progress and cancels it
 * (struct ba_submit's progress and cancel_fd); calls on different
 * configurations and spools are independent.
 */
#ifndef BLUEARROW_SUBMIT_H
#define BLUEARROW_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

#include "bluearrow/buf.h"
#include "bluearrow/config.h"
#include "bluearrow/err.h"
#include "bluearrow/log.h"
#include "bluearrow/msg_read.h"
#include "bluearrow/route.h"
#include "bluearrow/smtp.h"

/*
 * Loads the configuration from file, or when file is NULL from the first
 * file of the default search path (ba_config_find_default_path(); files in
 * /etc are system files).  The caller frees *out with ba_config_free().
 * Errors: those of ba_config_find_default_path() and ba_config_load().
 */
int ba_submit_config(ba_config **out, const char *file, struct ba_err *err);
/*
 * As ba_submit_config(), then the keys kv[0..n) (msmtp's command-line
 * account settings, --host=H ...) set on every account (ba_config_apply()).
 * When file is NULL and no file exists, kv with a host (or socket, or
 * delivery mx) is the configuration: one account "default" (ba_config_from_kv()); without one
 * the error (EX_CONFIG) says how to create a file (bluearrow config init).
 */
int ba_submit_config_kv(ba_config **out, const char *file, const struct ba_config_kv *kv,
                        size_t n, struct ba_err *err);

/*
 * The account for one message, checked (ba_config_account_check()):
 * the one called name when name is not NULL (-a); else the first whose
 * `from` matches env_from (the envelope sender given with -f; may be NULL);
 * else the first whose `from` matches header_from (the address of the
 * message's From field, so that `git send-email` and mutt, which set only
 * the header, get the account of that address; may be NULL); else the
 * default account.  Matching is ba_config_account_by_from()'s.  Borrowed
 * from cfg.  Returns NULL with err set (EX_CONFIG: no such account, no
 * default account, an unusable account).
 */
const struct ba_account *ba_submit_account(const ba_config *cfg, const char *name,
                                           const char *env_from, const char *header_from,
                                           struct ba_err *err);

/*
 * The envelope sender into out (reset first): cmdline_from (-f; "" = the
 * null sender <>) when given and the account allows it (allow_from_override,
 * or no `from` of its own), else the account's `from` (auto_from:
 * USER@maildomain) with %U %H %C %M expanded.
 * Errors: EX_CONFIG "account 'x' from FILE: envelope-from address is missing
 * (set from, or use -f)"; EX_USAGE when `from` is a pattern (it only selects
 * the account) and no -f was given, or the address holds blanks, controls or
 * angle brackets; EX_OSERR.
 */
int ba_submit_envelope_from(struct ba_buf *out, const struct ba_account *acc,
                            const char *cmdline_from, struct ba_err *err);

/* What the front end asks of the reader, beyond the account's settings. */
enum ba_submit_read_flags {
	BA_SUBMIT_READ_DOTS_ARE_DATA = 1 << 0, /* -i, -oi */
	BA_SUBMIT_READ_RCPT_FROM_HEADERS = 1 << 1, /* -t */
	BA_SUBMIT_READ_DOT_NO_COUNT = 1 << 2, /* after a lone "." read no further (input typed
	                                         at a terminal: msg_read.h) */
};

/*
 * Fills *o (zeroed first) to read a given message for acc: Bcc removal
 * (remove_bcc_headers), undisclosed_recipients, set_from_header,
 * set_date_header, set_msgid_header; the generated From gets the envelope
 * sender env_from (may be NULL or "": then none is generated) and the
 * display name full_name (-F), else the account's from_full_name.
 * flags: enum ba_submit_read_flags.  Strings are borrowed.
 */
void ba_submit_read_opts(struct ba_msg_read_opts *o, const struct ba_account *acc,
                         const char *env_from, const char *full_name, unsigned flags);

/* How a given message (sendmail's standard input, `send FILE`) is to be read. */
struct ba_submit_read_req {
	const char *account;       /* -a; NULL = chosen by sender or From field */
	const char *from;          /* -f; NULL = none ("" = the null sender) */
	const char *full_name;     /* -F; NULL = the account's from_full_name */
	int read_envelope_from;    /* --read-envelope-from: the sender is the From field's address */
	unsigned flags;            /* enum ba_submit_read_flags (-t, -i) */
	int in_fd;                 /* the descriptor in reads, or -1: a regular file is then not
	                              copied into the spool (ba_spool_refer()) */
	size_t mem_max;            /* spool memory; 0 = 1 MB */
};

/* A given message read for an account.  Release with ba_submit_input_release(). */
struct ba_submit_input {
	const struct ba_account *acc; /* the account, chosen once the header was read; borrowed
	                                 from the configuration */
	struct ba_buf from;           /* the envelope sender ("" = <>) */
	struct ba_msg_input msg;      /* the spool, the -t recipients, what the header said */
};

/*
 * Reads a given message from in for sending: the header first, then the
 * account is chosen (ba_submit_account() with the From field's address),
 * the envelope sender computed (the From field's address with
 * read_envelope_from and no -f), and the rest is read with that account's
 * settings (ba_submit_read_opts(), ba_msg_read()).  So one parse decides
 * the recipients, the Bcc removal, the account and the bytes that are sent.
 * On success the caller releases *out; on failure *out is empty.
 * Errors: those of ba_msg_read(), ba_submit_account(),
 * ba_submit_envelope_from(), and EX_DATAERR "--read-envelope-from: the
 * message has no From address".
 */
int ba_submit_read(struct ba_submit_input *out, const ba_config *cfg, ba_reader *in,
                   const struct ba_submit_read_req *rq, struct ba_err *err);
void ba_submit_input_release(struct ba_submit_input *in);

/*
 * The envelope recipients: copies of args[0..nargs) followed by those of
 * hdr[0..nhdr) (the -t recipients; msmtp's order), then every local name
 * expanded through the account's aliases file (read only when a name
 * without '@' is present, as msmtp does).  On success the caller frees the
 * *n strings of *out and *out itself (ba_submit_recipients_free()).
 * Errors: EX_USAGE "no recipients found", those of the aliases file
 * (EX_CONFIG), EX_OSERR.
 */
int ba_submit_recipients(char ***out, size_t *n, const struct ba_account *acc,
                         const char *const *args, size_t nargs, const char *const *hdr,
                         size_t nhdr, struct ba_err *err);
void ba_submit_recipients_free(char **v, size_t n);

/*
 * For a front end that builds the message (bluearrow send): the addresses
 * the local name `name` (a recipient without '@', "root") stands for,
 * through the account's aliases file, as ba_submit_recipients() expands it.
 * On success the caller frees them with ba_submit_recipients_free().
 * Errors: EX_USAGE "recipient 'root' has no domain and account 'x' has no
 * aliases file to expand it (add aliases FILE to the account, or give
 * root@DOMAIN)", EX_USAGE when the aliases file has no entry for it (and no
 * default), those of the aliases file (EX_CONFIG), EX_OSERR.
 */
int ba_submit_local_rcpt(char ***out, size_t *n, const struct ba_account *acc, const char *name,
                         struct ba_err *err);

/*
 * The From field body a built message gets when none was given (bluearrow
 * send without --from): the envelope sender env_from with the display name
 * full_name, else the account's from_full_name, as a quoted-string
 * ("\"Ann Example\" <ann@example.org>"; just the address without a name),
 * into out (reset first).  Errors: EX_USAGE for an empty env_from (the null
 * sender is no author), EX_OSERR.
 */
int ba_submit_from_field(struct ba_buf *out, const struct ba_account *acc, const char *env_from,
                         const char *full_name, struct ba_err *err);

/*
 * Parses a DSN NOTIFY list (-N, --dsn-notify): "never", or a comma list of
 * success, failure, delay, into enum ba_config_dsn_notify bits.  Returns 0,
 * or -1 for a value that is none of these.
 */
int ba_submit_parse_notify(const char *s, unsigned *out);
/* -R, --dsn-return: "full" or "hdrs" into enum ba_config_dsn_return; -1 otherwise. */
int ba_submit_parse_return(const char *s, int *out);

/*
 * Checks a DSN envelope identifier (-V): printable ASCII without spaces, at
 * most 100 characters (RFC 3461 §4.4; the engine xtext-encodes it).
 * Errors: EX_USAGE "the envelope id must be printable ASCII", "the envelope
 * id is longer than 100 characters".
 */
int ba_submit_check_envid(const char *s, struct ba_err *err);

struct ba_submit_result;
/*
 * The outcome of a message ba_submit_send() returned 1 for: res as
 * ba_submit_send() would have filled it (borrowed for the call: the log
 * line is written already), rc 0 or -1 and err (borrowed) as it would have
 * returned them.  It must not use the route.
 */
typedef void ba_submit_done_fn(void *ctx, const struct ba_submit_result *res, int rc,
                               const struct ba_err *err);

/* One message to deliver.  Transparent; zero = defaults; every pointer is borrowed. */
struct ba_submit {
	const struct ba_account *acc;
	const char *from;             /* envelope sender (ba_submit_envelope_from); "" = <> */
	const char *const *rcpt;      /* envelope recipients (ba_submit_recipients) */
	size_t nrcpt;
	ba_spool *spool;              /* the message; read once per attempt */
	unsigned notify;              /* enum ba_config_dsn_notify bits; 0 = the account's */
	int ret;                      /* enum ba_config_dsn_return; 0 = the account's */
	const char *envid;            /* DSN ENVID; NULL = none */
	const struct ba_log *log;     /* optional; BA_LOG_PROTO traces the dialogue (-v) */
	unsigned smtp_flags;          /* extra enum ba_smtp_flags (benchmarks, tests) */
	long repeat;                  /* send the message this many times over one session
	                                 (benchmarks); 0 = once */
	ba_smtp_progress_fn *progress; /* optional: body bytes sent and acknowledged of the
	                                  total, called in the sending thread after each chunk
	                                  and while the reply is awaited (a progress bar) */
	void *progress_ctx;
	ba_smtp_data_end_fn *data_end; /* optional: called before the end of the data goes out
	                                  (smtp.h).  With a kept route (below) the progress and
	                                  data_end of the message that opened it stay in use */
	void *data_end_ctx;
	const int *cancel_fd;         /* optional: when this descriptor becomes readable (a byte
	                                 written to a pipe by a UI thread) the send stops: -1,
	                                 EX_TEMPFAIL with BA_ERR_CANCELLED in err->flags, and the
	                                 server never sees the end of the data */
	ba_route_ask_password_fn *ask_password; /* optional: asks for a password the account
	                                           does not configure (route.h) */
	void *ask_password_ctx;
	uint64_t dropped_after_dot;   /* ba_msg_input's count of bytes after a lone "." that
	                                 were not sent: written in the log line; 0 = none */
	ba_route **route;             /* optional: a route kept across messages of one account
	                                 (the outbox flush).  When *route is open the message
	                                 goes over it (the engine sends RSET between messages),
	                                 and if that session turns out dead before the data
	                                 (421, a closed connection) a new route is opened once;
	                                 when *route is NULL the route opened is left there.
	                                 After a failure *route is freed and set to NULL.  The
	                                 caller frees the last one with ba_route_free() */
	ba_submit_done_fn *done;      /* optional, with route (and repeat <= 1): pipelining
	                                 across messages.  When the session pipelines (never
	                                 with cancel_fd, nor for direct delivery, whose routes
	                                 are not kept), ba_submit_send() returns 1 once the data
	                                 is out (data_end called, the end held for the next
	                                 message's commands), without
	                                 the server's verdict; done(done_ctx, ...) gets the outcome
	                                 exactly once, from within a later ba_submit_send() over
	                                 the same route or its ba_route_free().  Until then
	                                 everything this struct points to (spool, rcpt, from)
	                                 must stay valid; the struct itself may go */
	void *done_ctx;
};

/* The outcome of ba_submit_send().  Release with ba_submit_result_release(). */
struct ba_submit_result {
	struct ba_result *result;  /* per recipient, from the engine (the last repeat); NULL when
	                              the envelope was not reached */
	char server[300];          /* the server tried last: "host:port" or a socket path */
	int smtp_code;             /* the server's last reply code (the data's, else the error's); 0 */
	struct ba_buf smtp_msg;    /* "250 2.0.0 Ok: queued as X", cleaned; for the log */
	int reached_data;          /* the message itself was transferred */
	struct ba_buf hint;        /* on failure, what to change (ba_route_hint()): lines ending
	                              in a newline, config lines indented by two spaces; "" if none */
	char mtasts_testing[BA_ERR_TEXT_MAX]; /* direct delivery: what an MTA-STS policy in mode
	                              testing would have refused, "; "-separated (route.h); also
	                              written to the log line; "" when nothing */
};

/*
 * Delivers s->spool to s->rcpt through s->acc: opens the route
 * (ba_route_open()), rewrites the addresses for the session (IDN A-labels
 * without SMTPUTF8, ba_route_addr()), maps the DSN requests, chooses the
 * body type (8BITMIME when the spool saw 8-bit bytes; re-encoded to 7 bit
 * when the server lacks 8BITMIME or a line is over 998 octets), sends, and
 * writes the account's logfile line and syslog entry in msmtp's format,
 * also on failure.  *res is filled in both cases (release it).
 * Returns 0 when the server accepted the message (with partial_delivery:
 * for at least one recipient; res->result says which were refused), 1 when
 * its verdict is left for later (s->done: nothing in *res but server), else
 * -1 with err set to the failure (classes as ba_route_open() and
 * ba_session_send(); the text is the reason, without the account or
 * server: res->server and s->acc->name give those).
 */
/*
 * Direct delivery (ba_config_delivers_mx(s->acc)): the recipients are
 * grouped by domain; per domain ba_dns_mx() gives the plan (port 25) and a
 * route of its own delivers that domain's recipients (s->route is not kept:
 * it is freed and left NULL).  res->result then holds every recipient of
 * s->rcpt in order, with its fate: accepted, the server's reply, or for a
 * domain that failed before RCPT the reason (text) with code 0 when it may
 * still be reached later, 550 5.1.2 for a domain that does not exist, 556
 * 5.1.10 for a null MX, 550 for another permanent failure.  Returns 0 when
 * every recipient was delivered (with partial_delivery: one was); else -1
 * with err: EX_TEMPFAIL when any recipient may still be reached, else the
 * first permanent failure's class (EX_NOHOST, EX_UNAVAILABLE...), the text
 * naming each recipient not delivered and why.
 */
int ba_submit_send(struct ba_submit_result *res, const struct ba_submit *s, struct ba_err *err);
void ba_submit_result_release(struct ba_submit_result *res);

/*
 * Describes what ba_submit_send(s) would send, without connecting, resolving
 * names or a password (no passwordeval is run), appending lines to out:
 * the account (name, file:line), the server (host:port or socket, protocol,
 * TLS mode, the auth user: never a password), the envelope (sender, each
 * recipient as given: after aliases) and the header as it would go out
 * (the spooled one: Bcc already removed), ending in an empty line.  For
 * --dry-run and the TUI.  Errors: those of ba_route_params_init()
 * (EX_CONFIG), of reading the spool (EX_IOERR), EX_OSERR.
 */
int ba_submit_describe(struct ba_buf *out, const struct ba_submit *s, struct ba_err *err);

#endif
