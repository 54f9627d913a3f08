/* envelope: the envelope sender and recipients from the command line, the
 * config and (with -t) the message headers, and the header fields that a
 * message without them must get (RFC 5322 3.6: From and Date are
 * required; Message-ID should be present). */
#ifndef POSTBOTE_ENVELOPE_H
#define POSTBOTE_ENVELOPE_H

#include <stdbool.h>
#include <time.h>

#include "aliases.h"
#include "cli.h"
#include "config.h"
#include "message.h"
#include "status.h"
#include "util.h"

struct envelope_input {
	const struct cli *cli;
	const struct account *acct;
	const struct message *msg;
	const char *login;        /* the caller's user name */
	const char *hostname;     /* the local host name */
	time_t now;
	const struct aliases *aliases; /* NULL: none configured */
};

struct envelope {
	char *sender;
	struct strlist rcpts;
	char *prepend;            /* header lines to add, CRLF-terminated */
	char **replace;           /* NULL, or per header field: the field with
				   * bare local names qualified (or NULL) */
	size_t nreplace;
	bool smtputf8;            /* an address is not ASCII */
};

/* Bare local names ("root") are completed with the account's maildomain
 * (else the host name) in the envelope and in the From, To, Cc, Sender,
 * Reply-To and Resent-* header fields, so that relays accept them; a bare
 * recipient with an entry in the aliases file (or a "default" entry) is
 * replaced by its addresses first.
 * Returns 0, or -1 with o filled in (no recipients, an address that
 * cannot be parsed or is unsafe). */
int envelope_build(const struct envelope_input *in, struct envelope *env,
		   struct outcome *o);
void envelope_free(struct envelope *env);

/* "Sun, 22 Nov 2026 04:25:06 +0100" (RFC 5322 3.3) in a new string. */
char *envelope_date(time_t t);

#endif
