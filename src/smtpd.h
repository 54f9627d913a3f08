/* smtpd: `sendmail -bs` — an SMTP server (RFC 5321) on a pair of file
 * descriptors, for programs (Symfony Mailer, SwiftMailer, Laravel) that run
 * "sendmail -bs" and talk SMTP over the pipe.
 *
 * Offered: PIPELINING (RFC 2920), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
 * ENHANCEDSTATUSCODES (RFC 2034), SIZE (RFC 1870). Not offered: AUTH and
 * STARTTLS (the pipe is local), DSN (its parameters are not passed on),
 * CHUNKING.
 *
 * Each message is spooled through an unlinked temporary file (constant
 * memory, any size) into a struct message and handed to the deliver
 * callback; the callback's result is the reply to the final ".". Like the
 * rest of the engine, smtpd never prints, never exits and writes only to
 * out_fd.
 *
 * Deliberate departures and choices:
 * - A line of message text may end in CRLF or a bare LF (PHP libraries
 *   send LF); a bare CR is kept as text, and message_spool then ends the
 *   line there. Only CRLF ever leaves postbote (RFC 5321 2.3.8).
 * - A command line may end in a bare LF as well.
 * - MAIL FROM: and RCPT TO: may have spaces before the '<'; a source
 *   route (<@a,@b:user@d>) is accepted and dropped (RFC 5321 4.1.2, C).
 * - A recipient given twice is kept once (ASCII case-insensitive).
 * - The idle timeout is the longest wait for input (or for out_fd to take
 *   a reply), not a deadline for a whole command or message. */
#ifndef POSTBOTE_SMTPD_H
#define POSTBOTE_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "message.h"

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. */
#define SMTPD_COMMAND_MAX 512
/* RFC 5321 4.5.3.1.8 asks for at least 100; more get 452 4.5.3
 * (4.5.3.1.10). */
#define SMTPD_RCPT_MAX 1000
/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF. */
#define SMTPD_REPLY_MAX 512

struct smtpd_message {
	const char *sender;        /* "" for the null sender <> */
	const char *const *rcpts;  /* as given; bare local names unqualified */
	size_t nrcpts;
	struct message *msg;       /* spooled with CRLF via message_spool */
	bool body_8bit_declared;   /* MAIL ... BODY=8BITMIME */
};

struct smtpd_result {
	int code;           /* 250, 451, 554...; 2xx, 4xx or 5xx */
	char enhanced[16];  /* "2.0.0" (RFC 3463), or "" for a default of
			     * the code's class */
	char text[512];     /* made safe (printable ASCII) and cut to fit
			     * one reply line before it is sent */
};

/* Called once per message after the final "."; fills in r. The message
 * and the strings belong to smtpd and are freed when deliver returns. A
 * result left with code 0 (or another code not 2xx/4xx/5xx) is answered
 * with 451 4.3.0. */
typedef void (*smtpd_deliver_fn)(void *ctx, const struct smtpd_message *m,
				 struct smtpd_result *r);

struct smtpd_options {
	const char *hostname;   /* for the greeting and EHLO; NULL, empty or
				 * not printable ASCII: "localhost" */
	uint64_t size_max;      /* 0: no limit ("SIZE" without a number) */
	int idle_timeout_ms;    /* longest wait for input; 0: none */
	smtpd_deliver_fn deliver; /* NULL: every message gets 451 4.3.5 */
	void *ctx;
	const char *tmpdir;     /* NULL: $TMPDIR, else /tmp */
};

/* Serve one SMTP session on in_fd/out_fd until QUIT or end of input.
 * Returns 0 after QUIT, 1 when the client went away without QUIT (or a
 * timeout, after "421 4.4.2"), -1 on an I/O error (reading in_fd or
 * writing out_fd; SIGPIPE is the caller's to ignore). A message whose
 * text was cut off by end of input is never delivered. Neither descriptor
 * is closed or has its flags changed. */
int smtpd_run(int in_fd, int out_fd, const struct smtpd_options *opt);

#endif
