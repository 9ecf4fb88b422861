/* bluearrow/addr.h - RFC 5322 address lists, addr-specs and IDN A-labels
 *
 * The parser reads an address-list as in RFC 5322 §3.4: mailboxes
 * ("a@b", "Name <a@b>"), groups ("G: a@b, c@d;", "Undisclosed:;"), comments
 * (nested) wherever CFWS is allowed, quoted strings with quoted-pairs,
 * domain literals ("[192.0.2.1]") and, tolerated on input only, the obsolete
 * forms of §4.4 (obs-route "<@x,@y:a@b>", obs-phrase with dots, CFWS around
 * the dots of obs-local-part and obs-domain, empty list elements).  UTF-8
 * (RFC 6532) is accepted in local parts, domains and display names, and
 * RFC 2047 encoded-words in display names are decoded to UTF-8.  A display
 * name that is not valid UTF-8 (raw Latin-1) gets U+FFFD for the bad bytes,
 * and controls in it become spaces.  The comment after a bare addr-spec
 * ("a@b (Real Name)", the old style) is taken as its display name.  White
 * space inside a run of atoms of a display name is kept as it is (so that
 * what ba_rfc2047_encode() writes reads back exactly); elsewhere CFWS
 * between words is one space.
 *
 * Everything parsed is untrusted: the strings of a struct ba_addr are
 * well-formed UTF-8 (validated) without NUL, CR or LF, but the local part
 * may contain any other printable character (it was quoted).  Use
 * ba_addr_spec_format() to get the addr-spec back with the quoting it needs.
 */
#ifndef BLUEARROW_ADDR_H
#define BLUEARROW_ADDR_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"

/*
 * One mailbox.  All strings are malloc'd, owned by the struct and released
 * with ba_addr_release() (or the list's release).
 */
struct ba_addr {
	char *display; /* display name, UTF-8, decoded; NULL if none (never "") */
	char *local;   /* local part without quoting ("a b" for "\"a b\"@c"); UTF-8 */
	char *domain;  /* domain ("example.org", "münchen.de") or literal "[192.0.2.1]" */
	char *group;   /* name of the group the mailbox is in (UTF-8), or NULL */
};

/*
 * An ordered list of mailboxes.  With BA_ADDR_EMPTY_GROUPS an empty group
 * ("Undisclosed:;") is kept as an entry whose local and domain are NULL and
 * whose group is its name; without it empty groups are dropped, so every
 * entry has local and domain.
 */
struct ba_addr_list {
	struct ba_addr *v;
	size_t n, alloc;
};

#define BA_ADDR_LIST_INIT { NULL, 0, 0 }

enum ba_addr_flags {
	/* parse: keep empty groups as entries with local == domain == NULL */
	BA_ADDR_EMPTY_GROUPS = 1 << 0,
	/* format: the peer lacks SMTPUTF8 (RFC 6531): domains become A-labels
	 * and a non-ASCII local part is an error */
	BA_ADDR_ASCII = 1 << 1,
};

void ba_addr_list_init(struct ba_addr_list *l);
/* Frees every entry and the array; the list is empty and usable again. */
void ba_addr_list_release(struct ba_addr_list *l);
/* Frees the strings of *a and sets them to NULL (NULL a is a no-op). */
void ba_addr_release(struct ba_addr *a);

/*
 * Appends a copy of the given strings (each may be NULL except local and
 * domain; display "" is stored as NULL).  No syntax check.  Returns 0, or -1
 * with EX_OSERR on out of memory.
 */
int ba_addr_list_append(struct ba_addr_list *l, const char *display, const char *local,
                        const char *domain, const char *group, struct ba_err *err);

/*
 * Parses the address-list s[0..n) (a header field body, folded or not) and
 * appends its mailboxes to out (which must be initialised; on error the
 * entries appended by this call are removed again).  flags: BA_ADDR_EMPTY_GROUPS.
 * An empty list (only CFWS) is not an error.  Errors: EX_DATAERR naming the
 * input and the 1-based column of the offending character, e.g.
 * "invalid address 'foo@' at column 5: missing domain"; EX_OSERR out of memory.
 */
int ba_addr_list_parse(struct ba_addr_list *out, const char *s, size_t n, unsigned flags,
                       struct ba_err *err);

/*
 * Parses exactly one mailbox (name-addr or addr-spec, with CFWS) into *out,
 * which the caller releases with ba_addr_release() on success (on failure
 * it is left zeroed).  A group, a list or nothing at all is EX_DATAERR.
 */
int ba_addr_parse_mailbox(struct ba_addr *out, const char *s, size_t n, unsigned flags,
                          struct ba_err *err);

/*
 * 1 if addr is safe as an SMTP envelope address (MAIL FROM / RCPT TO
 * argument, RFC 5321 §4.1.2): non-empty, no '<', '>', space, controls (CR,
 * LF, TAB, NUL, DEL), exactly one '@' outside a leading quoted local part,
 * non-empty local part and domain, valid UTF-8.  Else 0.  This is the
 * injection guard: it does not check the full RFC 5321 grammar.
 */
int ba_addr_spec_valid(const char *addr);

/*
 * Appends the addr-spec of a ("local@domain") to out: the local part as a
 * dot-atom when it is one, else as a quoted-string (DQUOTE and "\" escaped,
 * RFC 5322 §3.4.1).  With BA_ADDR_ASCII the domain is converted to A-labels
 * and a non-ASCII local part is EX_DATAERR ("local part of 'ü@x' is not
 * ASCII and the server lacks SMTPUTF8").  An entry without local part (an
 * empty group) is a BA_BUG().  Returns 0 or -1 (EX_OSERR when out failed).
 */
int ba_addr_spec_format(struct ba_buf *out, const struct ba_addr *a, unsigned flags,
                        struct ba_err *err);

/*
 * Appends one mailbox to out as a header field body would carry it: the
 * addr-spec alone without display name, else display name and
 * "<addr-spec>".  The display name is written as atoms when it is plain
 * ASCII words, else as a quoted-string or RFC 2047 encoded-words
 * (BA_RFC2047_PHRASE) as ba_rfc2047_encode() decides; with UTF-8 kept
 * (no BA_ADDR_ASCII) a UTF-8 display name is still encoded, so the output
 * reads right for every reader.  *col is the column where the output
 * starts and is updated; a fold (eol + space) is put before "<" when the
 * line would pass 78.  The group is ignored (see ba_addr_list_format()).
 * Errors as ba_addr_spec_format().
 */
int ba_addr_format(struct ba_buf *out, const struct ba_addr *a, size_t *col, const char *eol,
                   unsigned flags, struct ba_err *err);

/*
 * Appends the whole list, ", " separated, folding between addresses (eol +
 * space) when a line would pass 78 characters.  Consecutive entries with the
 * same group are written as one group "G: a@b, c@d;"; an empty-group entry
 * as "G:;".  Group names are written as a phrase like display names.
 * ba_addr_list_parse() of the output gives the same entries back.
 */
int ba_addr_list_format(struct ba_buf *out, const struct ba_addr_list *l, size_t *col,
                        const char *eol, unsigned flags, struct ba_err *err);

/*
 * Appends the ASCII form of domain to out: labels converted to A-labels by
 * IDNA2008 (libidn2, non-transitional, NFC input), "münchen.de" ->
 * "xn--mnchen-3ya.de".  ASCII domains are appended unchanged (case kept)
 * once valid; domain literals ("[...]") unchanged and unchecked.  The ASCII
 * form, given or converted, must be a host name (RFC 5321 §4.1.2, RFC 1035
 * §2.3.4): labels of 1..63 letters, digits and hyphens, not beginning or
 * ending with a hyphen, at most 253 octets in all (no root dot); a label
 * "xn--..." must be a valid A-label (its Punycode decodes to a valid U-label
 * that encodes back to the same label, case aside).  Errors: EX_DATAERR
 * naming the domain and the reason ("invalid domain 'a..b': empty label",
 * "invalid domain 'xn--zz.de': label 'xn--zz' is not a valid A-label: ...",
 * or libidn2's reason), EX_OSERR; out is unchanged on error.
 */
int ba_addr_domain_to_ascii(struct ba_buf *out, const char *domain, struct ba_err *err);

#endif
