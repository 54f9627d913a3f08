/* compose: a complete MIME message built from a subject, a body text read
 * from a descriptor and files to attach, for sending a message from a shell
 * without an editor (postbote --subject S [--attach FILE ...] rcpt < body).
 *
 * The output uses LF line ends; message_spool() turns them into CRLF.
 * Header fields written, in this order: From (if given), To (if any),
 * Subject (if given), MIME-Version, Content-Type and, where needed,
 * Content-Transfer-Encoding. Date and Message-ID are left to the envelope
 * module, like for any other message.
 *
 * The body text is spooled to an unlinked temporary file and scanned, so
 * that its encoding is known before the header is written:
 *   7bit   pure ASCII, lines of at most 998 octets (RFC 2045 2.7)
 *   8bit   the same with bytes >= 0x80 (RFC 2045 2.8)
 *   quoted-printable (RFC 2045 6.7) when neither fits: a line longer than
 *          998 octets, a NUL, a CR that is not part of CRLF, or (with
 *          attachments) a line that starts with the MIME boundary delimiter.
 * charset is us-ascii when every byte is < 0x80, else utf-8 (the text is
 * taken to be UTF-8; it is not validated).
 *
 * With attachments the message is multipart/mixed (RFC 2046 5.1): the text
 * first, then one part per file, in base64 (RFC 2045 6.8) with the file's
 * bytes unchanged. A file named *.eml is attached as message/rfc822 when it
 * can go as 7bit or 8bit, which RFC 2046 5.2.1 requires of that type; an
 * .eml file that cannot (long lines, NUL, bare CR) goes as
 * application/octet-stream in base64. */
#ifndef POSTBOTE_COMPOSE_H
#define POSTBOTE_COMPOSE_H

#include <stddef.h>
#include <time.h>

struct compose_options {
	const char *subject;      /* UTF-8, may be NULL: no Subject field */
	const char *const *attachments; /* file paths */
	size_t nattachments;
	const char *from;         /* "addr", or NULL: no From is written (the
				   * caller adds one) */
	const char *const *to;    /* recipients for the To field */
	size_t nto;               /* may be 0: no To field */
	time_t now;
	const char *domain;       /* for the MIME boundary's uniqueness only;
				   * may be NULL */
};

/* Reads the body text from body_fd to its end (in blocks: any size) and
 * writes the complete message to out_fd. The addresses are checked (no
 * control characters) and every attachment opened before body_fd is read,
 * and the body (and any *.eml file) is spooled before anything is written:
 * a failure up to then leaves out_fd untouched. Returns 0, or -1 with a
 * message in err ("cannot read attachment FILE: No such file or
 * directory", "cannot write the composed message: ..."). After a failure
 * while writing (a read error in the middle of an attachment, a full disk)
 * out_fd holds part of a message: discard it. */
int compose_message(int body_fd, int out_fd, const struct compose_options *opt,
		    char *err, size_t errlen);

/* The value of a Subject field, to be written right after "Subject: " (the
 * folding counts those 9 columns). Printable ASCII that folds into lines of
 * at most 78 characters is returned as it is (folded with LF SP before
 * white space when long). Anything else (bytes >= 0x80, control
 * characters, text that looks like an encoded word, a word too long to
 * fold) becomes RFC 2047 encoded words in UTF-8, Q or B whichever is
 * shorter, one per line joined by LF SP: each at most 75 characters, no
 * line over 78, and no UTF-8 character split between two words. A new
 * string (free it). */
char *compose_encode_subject(const char *utf8);

/* RFC 4648 section 4 base64 of n bytes, with padding and without line
 * breaks or a NUL. out must have room for 4 * ((n + 2) / 3) characters;
 * returns the number written. */
size_t base64_encode(const unsigned char *in, size_t n, char *out);

#endif
