/* smtp: the SMTP client protocol engine (RFC 5321, with RFC 3207 STARTTLS,
 * RFC 4954 AUTH, RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME,
 * RFC 6531 SMTPUTF8, RFC 2034 enhanced status codes).
 *
 * A small state machine: one function per command, one place that changes
 * the state (smtp_set_state, which also traces it for -v). The engine never
 * prints to the user and never exits: every function returns 0 or -1 and
 * fills in a struct outcome. */
#ifndef POSTBOTE_SMTP_H
#define POSTBOTE_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "message.h"
#include "status.h"
#include "stream.h"

/* RFC 5321 4.5.3.1.5 allows reply lines of 512 octets; we accept longer
 * ones (some servers send them) up to this bound and treat anything longer
 * as a protocol error rather than splitting it. */
#define SMTP_REPLY_LINE_MAX 4096
/* A reply with more lines than this is a misbehaving server. */
#define SMTP_REPLY_LINES_MAX 256
/* Recipients per pipelined group, so that unread replies can never fill
 * the socket buffers of both sides (RFC 2920 3.1 deadlock warning). */
#define SMTP_PIPELINE_RCPT_MAX 100

enum smtp_state {
	SMTP_STATE_CONNECTED = 0,
	SMTP_STATE_GREETING,
	SMTP_STATE_EHLO,
	SMTP_STATE_HELO,
	SMTP_STATE_STARTTLS,
	SMTP_STATE_TLS,
	SMTP_STATE_AUTH,
	SMTP_STATE_READY,       /* may start a mail transaction */
	SMTP_STATE_MAIL,
	SMTP_STATE_RCPT,
	SMTP_STATE_DATA,
	SMTP_STATE_BODY,
	SMTP_STATE_DOT,
	SMTP_STATE_RSET,
	SMTP_STATE_QUIT,
	SMTP_STATE_FAILED,
};

struct smtp_reply {
	int code;
	char enhanced[16];      /* RFC 3463 class.subject.detail, or "" */
	char *text;             /* every line's text, joined by '\n' */
	size_t nlines;
	bool bare_lf;           /* some line ended in LF alone */
};

struct smtp_caps {
	bool esmtp;             /* EHLO was answered */
	bool pipelining, starttls, eightbitmime, smtputf8, dsn, chunking;
	bool enhancedstatuscodes;
	bool size;
	uint64_t size_max;      /* 0: no limit announced */
	char *auth;             /* offered mechanisms, upper case, space
				 * separated, or NULL */
	char *domain;           /* the server's name from the first line */
	char *raw;              /* the whole EHLO reply text */
};

enum trace_dir { TRACE_SERVER, TRACE_CLIENT, TRACE_INFO };
typedef void (*smtp_trace_fn)(void *ctx, enum trace_dir dir, const char *text);

/* Per-stage waits in milliseconds; RFC 5321 4.5.3.2 gives the minimums
 * servers must tolerate, which we use as the defaults. */
struct smtp_timeouts {
	int connect, greeting, command, tls, data_init, data_block, dot;
};

struct smtp_session {
	struct stream *stream;
	enum smtp_state state;
	struct smtp_caps caps;
	struct smtp_timeouts timeouts;
	smtp_trace_fn trace;
	void *trace_ctx;
	char *helo_name;
	char *greeting;         /* the server's 220 text */
	/* Set by the caller before smtp_auth: an AUTH that is complete in
	 * one line may wait in the output buffer and go out with the next
	 * transaction's MAIL/RCPT/DATA group (PIPELINING only). */
	bool auth_may_wait;
	char *auth_pending;     /* that AUTH (as shown), its reply unread */
};

/* --- pure parsers (unit tested) --- */

/* One reply line: "250-text", "250 text" or "250". Returns 0 and sets code,
 * *last (no '-'), *text (after the separator); -1 when malformed. */
int smtp_parse_reply_line(const char *line, int *code, bool *last,
			  const char **text);
/* RFC 3463 / RFC 2034: an enhanced code at the start of text whose class
 * matches the reply code's first digit. Copies it to out and returns how
 * many characters of text it used (with the following space), else 0. */
size_t smtp_parse_enhanced_code(int code, const char *text, char out[16]);
/* Add one parsed line to a reply being built. */
void smtp_reply_add_line(struct smtp_reply *r, int code, const char *text);
void smtp_reply_free(struct smtp_reply *r);

/* Fill caps from an EHLO reply (RFC 5321 4.1.1.1). */
void smtp_caps_parse(struct smtp_caps *caps, const struct smtp_reply *ehlo);
void smtp_caps_free(struct smtp_caps *caps);

const char *smtp_state_name(enum smtp_state state);

/* --- session --- */

void smtp_session_init(struct smtp_session *s, struct stream *stream,
		       const char *helo_name);
void smtp_session_free(struct smtp_session *s);
void smtp_set_state(struct smtp_session *s, enum smtp_state state);

/* Read one complete reply within timeout_ms. A malformed, over-long or
 * truncated reply fills o (stage and command given) and returns -1. */
int smtp_read_reply(struct smtp_session *s, int timeout_ms, enum stage stage,
		    const char *command, struct smtp_reply *r, struct outcome *o);

int smtp_greeting(struct smtp_session *s, struct outcome *o);
/* EHLO; when the server rejects it and allow_helo is set, HELO. */
int smtp_ehlo(struct smtp_session *s, bool allow_helo, struct outcome *o);
/* STARTTLS, the handshake, and the new EHLO (RFC 3207 4.2). */
int smtp_starttls(struct smtp_session *s, const struct tls_options *tls,
		  struct outcome *o);
/* Implicit TLS (RFC 8314 3.3): handshake before the greeting. */
int smtp_implicit_tls(struct smtp_session *s, const struct tls_options *tls,
		      struct outcome *o);

struct sasl_client;
/* The AUTH exchange (RFC 4954) for a started SASL client. With
 * auth_may_wait, the server offering PIPELINING and a mechanism whose only
 * message is the initial response and whose server says nothing but the
 * final reply (PLAIN, EXTERNAL), the command is only queued: it returns 0
 * at once and the reply is read, and checked, with the next transaction's
 * replies, before MAIL's. That saves the round trip of waiting for 235. */
int smtp_auth(struct smtp_session *s, const char *mech,
	      struct sasl_client *client, struct outcome *o);

struct smtp_envelope {
	const char *sender;
	const char *const *rcpts;
	size_t nrcpts;
	bool body_8bit;         /* send BODY=8BITMIME (when offered) */
	bool smtputf8;          /* send SMTPUTF8 (must be offered) */
	off_t size;             /* SIZE= value (when offered), 0 to omit */
	/* RFC 3461 DSN, used when the server offers DSN (else dropped, and
	 * the -v transcript says so); NULL to omit. */
	const char *dsn_notify; /* "NEVER" or e.g. "SUCCESS,FAILURE" */
	const char *dsn_ret;    /* "FULL" or "HDRS" */
	const char *dsn_envid;  /* plain text; sent as xtext */
};

/* RFC 3461 4: xtext encoding of a DSN parameter value, new string. */
char *smtp_xtext(const char *s);

struct rcpt_result {
	const char *rcpt;
	bool accepted;
	struct outcome outcome; /* the refusal, when not accepted */
};

struct smtp_transaction_result {
	struct rcpt_result *rcpts;   /* one per envelope recipient */
	size_t nrcpts;
	size_t naccepted;
	bool delivered;              /* 250 to the end of data */
	struct outcome outcome;      /* MAIL/DATA/body/dot failure */
	char *queue_reply;           /* the server's 250 text after the dot */
};

/* MAIL, RCPT for each recipient, DATA, the message text (dot-stuffed) and
 * the final dot; pipelined when the server offers PIPELINING. Returns 0
 * when the message was accepted for at least one recipient. */
int smtp_send_mail(struct smtp_session *s, const struct smtp_envelope *env,
		   const struct message *msg, const struct emit_options *emit,
		   struct smtp_transaction_result *res);
void smtp_transaction_result_free(struct smtp_transaction_result *res);

/* MAIL and RCPT for every recipient (pipelined when offered), then RSET:
 * what -bv does. Returns 0 when the connection stayed usable; per-recipient
 * results are in res. */
int smtp_verify(struct smtp_session *s, const struct smtp_envelope *env,
		struct smtp_transaction_result *res);

/* RSET between transactions on one connection. */
int smtp_rset(struct smtp_session *s, struct outcome *o);
/* QUIT without waiting for the reply: the outcome is already known. */
void smtp_quit(struct smtp_session *s);

#endif
