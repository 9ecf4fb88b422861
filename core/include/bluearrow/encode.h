/* bluearrow/encode.h - transfer and header encodings, streaming and I/O-free
 *
 * base64 (RFC 2045 §6.8, RFC 4648 §4), quoted-printable (RFC 2045 §6.7),
 * RFC 2047 encoded-words for header text, RFC 2231 parameter values.  The
 * body encoders are writer filters: bytes written to them come out encoded on
 * the downstream writer, in bounded memory whatever the size.  The header
 * encoders append to a ba_buf and fold lines themselves.
 *
 * eol arguments are "\n" or "\r\n": the line ending the output uses.
 */
#ifndef BLUEARROW_ENCODE_H
#define BLUEARROW_ENCODE_H

#include <stddef.h>

#include "bluearrow/buf.h"
#include "bluearrow/err.h"
#include "bluearrow/io.h"

/* ---- UTF-8 -------------------------------------------------------------- */

/*
 * 1 if s[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), else 0 and the offset of the first bad byte in
 * *bad (if bad is not NULL).
 */
int ba_utf8_valid(const char *s, size_t n, size_t *bad);

/* ---- base64 --------------------------------------------------------------- */

/* Appends the base64 of p[0..n) to out, one line, with padding.  0 or -1 (out failed). */
int ba_base64_encode(struct ba_buf *out, const void *p, size_t n);
/*
 * Appends the decoded bytes of s[0..n) to out.  Accepts padding (and its
 * absence: a last group of 2 or 3 characters), ignores CR, LF, space and
 * tab; anything else, misplaced padding, data after padding or a dangling
 * single character is an error (-1, EX_DATAERR) and leaves out unchanged.
 */
int ba_base64_decode(struct ba_buf *out, const char *s, size_t n, struct ba_err *err);

/*
 * Streaming base64 encoder: a ba_writer that encodes what is written to it
 * into lines of line_len characters (76 per RFC 2045; 0 = no line breaks)
 * each ended by eol, and writes them to out (borrowed).  A line's eol is
 * written as soon as the line is full.  Output is batched in the internal
 * 16 KB buffer, so out sees few large writes.  ba_b64_writer_finish()
 * encodes the last bytes with padding, ends the last line with eol (if any
 * output), and flushes the internal buffer to out (it does not flush out
 * itself).  The writer's flush op pushes the complete groups encoded so far.
 * Errors are those of out.  eol other than "\n" or "\r\n" is a BA_BUG().
 */
struct ba_b64_writer {
	ba_writer base;
	ba_writer *out;
	const char *eol;
	size_t eol_len, line_len, col, npend, olen;
	unsigned char pend[3];
	unsigned char obuf[16384];
};
void ba_b64_writer_init(struct ba_b64_writer *w, ba_writer *out, const char *eol, size_t line_len);
int ba_b64_writer_finish(struct ba_b64_writer *w, struct ba_err *err);

/* ---- quoted-printable ----------------------------------------------------- */

enum ba_qp_flags {
	/* Input is text: CRLF or LF in the input is a hard line break, written as eol.
	 * Without it every CR and LF is encoded (=0D, =0A). */
	BA_QP_TEXT = 1 << 0,
};

/*
 * Streaming quoted-printable encoder (RFC 2045 §6.7): lines of at most 76
 * characters with soft breaks ("=" eol), trailing space and tab encoded,
 * "=" and non-ASCII and controls encoded, and lines that start with "From "
 * or "." protected by encoding their first character (=46, =2E), so no mail
 * system on the path can alter them.  The output depends only on the bytes
 * written, never on how they were split across writes (at most 5 input bytes
 * are held back to decide).  ba_qp_writer_finish() ends the output: when the
 * input did not end with a hard line break the last line gets a soft break
 * ("=" eol), so the output always ends with eol (or is empty) and decodes to
 * exactly the input.  It flushes to out (borrowed); it does not flush out
 * itself.  The writer's flush op pushes the encoded bytes decided so far.
 */
struct ba_qp_writer {
	ba_writer base;
	ba_writer *out;
	const char *eol;
	unsigned flags;
	size_t eol_len, olen;
	size_t col;               /* characters on the current output line */
	int pending_cr;           /* a CR seen, waiting for LF (BA_QP_TEXT) */
	unsigned char hold[8];    /* input not yet decided ("From " prefix, trailing space) */
	size_t nhold;
	unsigned char obuf[16384];
};
void ba_qp_writer_init(struct ba_qp_writer *w, ba_writer *out, const char *eol, unsigned flags);
int ba_qp_writer_finish(struct ba_qp_writer *w, struct ba_err *err);
/*
 * Appends the decoding of s[0..n) to out: soft breaks removed, hard line
 * breaks kept as they are (CRLF or LF), white space at the end of a line
 * removed (added in transport, RFC 2045 §6.7 rule 3), lowercase hex
 * accepted.  -1 with EX_DATAERR on "=" not followed by two hex digits or a
 * line break.
 */
int ba_qp_decode(struct ba_buf *out, const char *s, size_t n, struct ba_err *err);

/* ---- RFC 2047 encoded-words --------------------------------------------- */

enum ba_rfc2047_flags {
	/* text is a phrase (a display name): encoded-words use the restricted
	 * character set of RFC 2047 §5(3), and ASCII text that needs it is quoted */
	BA_RFC2047_PHRASE = 1 << 0,
};

/*
 * Appends UTF-8 text (validated: invalid UTF-8 is EX_DATAERR) to out as the
 * body of a header field whose line is already *col characters long (e.g.
 * strlen("Subject: ")).  Printable ASCII that needs no encoding is written as
 * is; otherwise RFC 2047 encoded-words (charset utf-8, B or Q, whichever is
 * shorter), each at most 75 characters and never splitting a UTF-8 sequence.
 * Lines are folded (eol + one space) so that no line exceeds 78 characters
 * where white space or word boundaries allow; *col is updated to the column
 * after the last character written.  Controls (CR, LF, TAB, ...) in text are
 * encoded, never written raw.  Returns 0 or -1.
 *
 * Words are separated by spaces.  A word is encoded when it has 8-bit
 * bytes or controls, contains "=?" (it could be read as an encoded-word),
 * or cannot fit a folded line (longer than 78 with its spaces, or the first
 * word when it does not fit after *col); consecutive such words form one
 * run whose inner spaces are inside the encoded-words, since white space
 * between encoded-words is dropped by decoders (§6.2).  Leading and
 * trailing spaces are kept inside encoded-words too, so that
 * ba_rfc2047_decode() of the unfolded output (white space after the colon
 * trimmed) gives text back exactly.  A fold may be inserted before the
 * first encoded-word when *col leaves too little room.
 *
 * BA_RFC2047_PHRASE: ASCII text with specials (RFC 5322 §3.2.3) or with
 * leading, trailing or repeated spaces is written as one quoted-string
 * ("\" and DQUOTE escaped) if that fits the lines; otherwise words with
 * specials are encoded along with the 8-bit ones, and Q uses only the
 * characters of §5(3).
 */
int ba_rfc2047_encode(struct ba_buf *out, const char *text, size_t n, size_t *col,
                      const char *eol, unsigned flags, struct ba_err *err);
/*
 * Appends the decoding of a header field body (unfolded) to out as UTF-8.
 * An encoded-word is recognised when white space, "(" or the start precede
 * it and white space, ")" or the end follow it (RFC 2047 §5); white space
 * between adjacent encoded-words is dropped (§6.2), and their bytes are
 * joined before conversion, so a sequence split across words is mended.
 * Charsets utf-8, us-ascii and iso-8859-1 are converted directly, others by
 * iconv(3); bytes invalid in the charset become U+FFFD.  An RFC 2231 §5
 * language suffix ("utf-8*en") is ignored.  Malformed words are kept as
 * they are.  Returns 0, or -1 if out failed or a word's charset is unknown
 * (EX_DATAERR).
 */
int ba_rfc2047_decode(struct ba_buf *out, const char *s, size_t n, struct ba_err *err);

/* ---- RFC 2231 parameters -------------------------------------------------- */

/*
 * Appends ";" and a MIME parameter name=value to out, folding before it
 * (eol + space) when the line would pass 78 characters; *col is the current
 * column and is updated.  ASCII values are written as a token or a quoted
 * string (DQUOTE and "\" escaped); a value with 8-bit bytes (UTF-8,
 * validated: EX_DATAERR) or controls is written with RFC 2231 extended
 * syntax, name*=utf-8''%XX... (attribute-chars of §7 as they are).  When the
 * parameter does not fit one line it is split into RFC 2231 §3
 * continuations, each on its own line of at most 78 characters (room kept
 * for a following ";"): name*0="...", name*1="..." for ASCII, name*0*=
 * utf-8''..., name*1*=... otherwise, never splitting a UTF-8 sequence or an
 * escape.  name must be non-empty attribute-chars (else EX_DATAERR).
 * Returns 0 or -1.
 */
int ba_rfc2231_param(struct ba_buf *out, const char *name, const char *value, size_t *col,
                     const char *eol, struct ba_err *err);

/* The value of the hex digit c ('0'-'9', 'a'-'f', 'A'-'F'), or -1 for any other byte. */
int ba_hex_digit(int c);

#endif
