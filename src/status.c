#include "autoconf.h"
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "util.h"

static const char *const stage_names[] = {
	[STAGE_NONE] = "",
	[STAGE_USAGE] = "command line",
	[STAGE_CONFIG] = "configuration",
	[STAGE_INPUT] = "reading the message",
	[STAGE_CONNECT] = "connecting",
	[STAGE_GREETING] = "greeting",
	[STAGE_EHLO] = "EHLO",
	[STAGE_STARTTLS] = "STARTTLS",
	[STAGE_TLS] = "TLS",
	[STAGE_AUTH] = "authentication",
	[STAGE_MAIL] = "sender (MAIL FROM)",
	[STAGE_RCPT] = "recipient (RCPT TO)",
	[STAGE_DATA] = "DATA",
	[STAGE_BODY] = "sending the message text",
	[STAGE_DOT] = "end of message",
	[STAGE_QUIT] = "QUIT",
};

const char *stage_name(enum stage stage)
{
	if ((size_t)stage < sizeof stage_names / sizeof stage_names[0])
		return stage_names[stage];
	return "?";
}

void outcome_clear(struct outcome *o)
{
	free(o->text);
	memset(o, 0, sizeof *o);
}

void outcome_set_reply(struct outcome *o, enum stage stage,
		       const char *command, int code, const char *enhanced,
		       const char *text)
{
	outcome_clear(o);
	o->stage = stage;
	o->failure = FAIL_REPLY;
	format_into(o->command, sizeof o->command, "%s", command ? command : "");
	o->code = code;
	format_into(o->enhanced, sizeof o->enhanced, "%s", enhanced ? enhanced : "");
	o->text = xstrdup(text ? text : "");
}

void outcome_set(struct outcome *o, enum stage stage, enum failure failure,
		 const char *command, const char *fmt, ...)
{
	va_list ap;
	outcome_clear(o);
	o->stage = stage;
	o->failure = failure;
	format_into(o->command, sizeof o->command, "%s", command ? command : "");
	va_start(ap, fmt);
	vsnprintf(o->detail, sizeof o->detail, fmt, ap);
	va_end(ap);
}

void outcome_copy(struct outcome *dst, const struct outcome *src)
{
	outcome_clear(dst);
	*dst = *src;
	dst->text = src->text ? xstrdup(src->text) : NULL;
}

bool outcome_is_temporary(const struct outcome *o)
{
	switch (o->failure) {
	case FAIL_REPLY:
		return o->code / 100 == 4;
	case FAIL_TIMEOUT:
	case FAIL_CLOSED:
	case FAIL_IO:
	case FAIL_RESOLVE_TEMPORARY:
	case FAIL_REFUSED:
	case FAIL_UNREACHABLE:
	case FAIL_TOKEN_TEMPORARY:
		return true;
	default:
		return false;
	}
}

/* RFC 3463 subject codes: 1 addressing, 2 mailbox, 3 mail system,
 * 5 protocol, 6 content, 7 security. */
static int exit_for_permanent_reply(const struct outcome *o)
{
	const char *e = o->enhanced;
	int subject = e[0] ? atoi(e + 2) : -1;
	int detail = e[0] ? atoi(strchr(e + 2, '.') + 1) : -1;
	if (o->stage == STAGE_AUTH || subject == 7)
		return EX_NOPERM;
	if (subject == 1)
		return EX_NOUSER;
	/* RFC 3463: 5.2.3 / 5.3.4 message too big; RFC 1870: 552. */
	if ((subject == 2 && detail == 3) || (subject == 3 && detail == 4) ||
	    (subject == 6) || (o->code == 552 && o->stage >= STAGE_DATA))
		return EX_DATAERR;
	if (o->stage == STAGE_RCPT && o->code == 550 && subject < 0)
		return EX_NOUSER;
	return EX_UNAVAILABLE;
}

int status_exit_code(const struct outcome *o)
{
	if (o->failure == FAIL_NONE)
		return EX_OK;
	if (outcome_is_temporary(o))
		return EX_TEMPFAIL;
	switch (o->failure) {
	case FAIL_REPLY:
		return exit_for_permanent_reply(o);
	case FAIL_USAGE:
		return EX_USAGE;
	case FAIL_CONFIG:
	case FAIL_TLS_SETUP:
		return EX_CONFIG;
	case FAIL_RESOLVE_PERMANENT:
		return EX_NOHOST;
	case FAIL_PROTOCOL:
		return EX_PROTOCOL;
	case FAIL_NO_AUTH:
	case FAIL_AUTH_LOCAL:
		return EX_NOPERM;
	case FAIL_TOO_BIG:
	case FAIL_NEEDS_SMTPUTF8:
		return EX_DATAERR;
	case FAIL_LOCAL:
		return EX_OSERR;
	default:
		return EX_UNAVAILABLE;
	}
}

static const char *meaning_of_reply(const struct outcome *o)
{
	const char *e = o->enhanced;
	bool temp = o->code / 100 == 4;
	if (o->stage == STAGE_AUTH)
		return temp ? "authentication is temporarily unavailable; the "
			      "message should be sent again later"
			    : "the server did not accept the credentials (user "
			      "name and password, access token or certificate) "
			      "or the mechanism";
	if (!strncmp(e + (e[0] ? 1 : 0), ".1.1", 4) && e[0])
		return "the server says the mailbox does not exist";
	if (e[0] && !strncmp(e + 1, ".7.", 3))
		return temp ? "the server refused for a security or policy reason, "
			      "for now"
			    : "the server refused for a security or policy reason "
			      "(not allowed to send this, or not authenticated)";
	if (o->code == 552 || (e[0] && !strncmp(e + 1, ".3.4", 4)))
		return "the message is too large for the server";
	if (temp)
		return "the server had a temporary problem; the message should be "
		       "sent again later";
	if (o->stage == STAGE_RCPT)
		return "the server refused this recipient";
	if (o->stage == STAGE_MAIL)
		return "the server refused the sender address";
	return "the server refused the message permanently";
}

const char *status_meaning(const struct outcome *o)
{
	switch (o->failure) {
	case FAIL_NONE:
		return "the message was delivered";
	case FAIL_REPLY:
		return meaning_of_reply(o);
	case FAIL_TIMEOUT:
		return "the server did not answer in time; the message should be "
		       "sent again later";
	case FAIL_CLOSED:
		return "the connection was lost; the message should be sent again "
		       "later";
	case FAIL_IO:
		return "a network error interrupted the submission; the message "
		       "should be sent again later";
	case FAIL_PROTOCOL:
		return "the server broke the SMTP protocol; nothing was sent after "
		       "that";
	case FAIL_RESOLVE_TEMPORARY:
		return "the name server did not answer; try again later";
	case FAIL_RESOLVE_PERMANENT:
		return "the host name in the configuration does not exist";
	case FAIL_REFUSED:
		return "nothing is listening on that host and port (server down or "
		       "wrong port?)";
	case FAIL_UNREACHABLE:
		return "the network cannot reach the server right now";
	case FAIL_TLS_SETUP:
		return "the TLS settings in the configuration cannot be used";
	case FAIL_TLS_HANDSHAKE:
		return "no secure connection could be made; nothing was sent";
	case FAIL_TLS_VERIFY:
		return "the server could not prove its identity, so nothing was "
		       "sent (wrong host name, untrusted or expired certificate, "
		       "or an interception attempt)";
	case FAIL_NO_STARTTLS:
		return "the server (or something between) does not offer "
		       "encryption, so nothing was sent";
	case FAIL_NO_AUTH:
	case FAIL_AUTH_LOCAL:
		return "postbote could not authenticate to the server";
	case FAIL_TOKEN_TEMPORARY:
		return "no OAuth2 access token could be had from the token "
		       "endpoint for now; the message should be sent again later";
	case FAIL_TOO_BIG:
		return "the message is larger than the server accepts";
	case FAIL_NEEDS_SMTPUTF8:
		return "an address needs SMTPUTF8, which the server does not offer";
	case FAIL_CONFIG:
		return "the configuration must be fixed";
	case FAIL_USAGE:
		return "the command line must be fixed";
	case FAIL_LOCAL:
		return "a local problem stopped the submission";
	}
	return "";
}

/* Server text, each line made visible and indented under the first. */
static char *visible_text(const char *text)
{
	size_t len = strlen(text);
	char *out = xmalloc(len * 4 + 1);
	size_t o = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = xmalloc(n * 4 + 4);
		make_visible(line, n * 4 + 4, p, n);
		o += (size_t)sprintf(out + o, "%s%s", o ? "\n    " : "", line);
		free(line);
		if (!nl)
			break;
		p = nl + 1;
		out = xrealloc(out, o + len * 4 + 8);
	}
	out[o] = '\0';
	return out;
}

char *status_describe(const struct outcome *o)
{
	char *what, *result;
	const char *kind = outcome_is_temporary(o) ? "temporary" : "permanent";
	if (o->failure == FAIL_REPLY) {
		char *text = visible_text(o->text ? o->text : "");
		what = xasprintf("%s: server replied %d%s%s%s%s",
				 o->command[0] ? o->command : stage_name(o->stage),
				 o->code, o->enhanced[0] ? " " : "", o->enhanced,
				 text[0] ? " " : "", text);
		free(text);
	} else if (o->command[0]) {
		what = xasprintf("%s (%s): %s", stage_name(o->stage), o->command,
				 o->detail);
	} else {
		what = xasprintf("%s%s%s", stage_name(o->stage),
				 o->stage != STAGE_NONE ? ": " : "", o->detail);
	}
	if (o->failure == FAIL_REPLY && o->detail[0]) {
		char *more = xasprintf("%s\n  %s", what, o->detail);
		free(what);
		what = more;
	}
	result = xasprintf("%s\n  meaning: %s (%s failure, exit status %d)", what,
			   status_meaning(o), kind, status_exit_code(o));
	free(what);
	return result;
}
