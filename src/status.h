/* status: every outcome of a submission, and the one place that maps an
 * outcome to a sysexits(3) code and to words for the user. */
#ifndef POSTBOTE_STATUS_H
#define POSTBOTE_STATUS_H

#include <stdbool.h>
#include <stddef.h>

/* Where it happened. */
enum stage {
	STAGE_NONE = 0,
	STAGE_USAGE,
	STAGE_CONFIG,
	STAGE_INPUT,      /* reading and spooling the message */
	STAGE_CONNECT,    /* resolving and connecting */
	STAGE_GREETING,
	STAGE_EHLO,
	STAGE_STARTTLS,
	STAGE_TLS,        /* the TLS handshake and certificate check */
	STAGE_AUTH,
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_DATA,       /* the DATA command */
	STAGE_BODY,       /* sending the message text */
	STAGE_DOT,        /* the reply to the end of the message */
	STAGE_QUIT,
};

/* What went wrong. */
enum failure {
	FAIL_NONE = 0,
	FAIL_REPLY,             /* the server answered with an error code */
	FAIL_TIMEOUT,           /* the server went silent */
	FAIL_CLOSED,            /* the connection was lost */
	FAIL_IO,                /* a local or socket error */
	FAIL_PROTOCOL,          /* the server broke the protocol */
	FAIL_RESOLVE_TEMPORARY,
	FAIL_RESOLVE_PERMANENT,
	FAIL_REFUSED,           /* connection refused */
	FAIL_UNREACHABLE,
	FAIL_TLS_SETUP,         /* our TLS settings could not be used */
	FAIL_TLS_HANDSHAKE,
	FAIL_TLS_VERIFY,        /* the certificate was not accepted */
	FAIL_NO_STARTTLS,       /* TLS required, STARTTLS not offered */
	FAIL_NO_AUTH,           /* authentication needed but not possible */
	FAIL_AUTH_LOCAL,        /* SASL library or credential source failed */
	FAIL_TOKEN_TEMPORARY,   /* the OAuth2 token endpoint failed for now */
	FAIL_TOO_BIG,           /* larger than the server's SIZE */
	FAIL_NEEDS_SMTPUTF8,
	FAIL_CONFIG,
	FAIL_USAGE,
	FAIL_LOCAL,             /* out of resources, spool file errors */
};

#define OUTCOME_COMMAND_MAX 512   /* RFC 5321 4.5.3.1.4: 512 octets */
#define OUTCOME_DETAIL_MAX 1024

struct outcome {
	enum stage stage;
	enum failure failure;
	char command[OUTCOME_COMMAND_MAX]; /* as sent, AUTH data redacted */
	int code;                 /* server reply code, 0 if none */
	char enhanced[16];        /* "5.1.1", or "" (RFC 3463) */
	char *text;               /* server text, lines joined by '\n', or NULL */
	char detail[OUTCOME_DETAIL_MAX]; /* local explanation */
};

void outcome_clear(struct outcome *o);
/* Record a server reply as this outcome (copies text). */
void outcome_set_reply(struct outcome *o, enum stage stage,
		       const char *command, int code, const char *enhanced,
		       const char *text);
void outcome_set(struct outcome *o, enum stage stage, enum failure failure,
		 const char *command, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void outcome_copy(struct outcome *dst, const struct outcome *src);

bool outcome_is_temporary(const struct outcome *o);
/* The sysexits code (see the EXIT STATUS table in postbote(8)). */
int status_exit_code(const struct outcome *o);
const char *stage_name(enum stage stage);

/* A full description for the user, several lines, newly allocated:
 * "postbote: RCPT TO:<x@y> (recipient x@y) was refused: 550 5.1.1 ...
 *  meaning: ...". Server text is shown with control characters made
 * visible. */
char *status_describe(const struct outcome *o);

/* One sentence of what an outcome means for the user. */
const char *status_meaning(const struct outcome *o);

#endif
