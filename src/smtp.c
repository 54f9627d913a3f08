#include "autoconf.h"
#include "smtp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "address.h"
#include "sasl.h"
#include "util.h"

static const char *const state_names[] = {
	[SMTP_STATE_CONNECTED] = "connected",
	[SMTP_STATE_GREETING] = "greeting",
	[SMTP_STATE_EHLO] = "ehlo",
	[SMTP_STATE_HELO] = "helo",
	[SMTP_STATE_STARTTLS] = "starttls",
	[SMTP_STATE_TLS] = "tls",
	[SMTP_STATE_AUTH] = "auth",
	[SMTP_STATE_READY] = "ready",
	[SMTP_STATE_MAIL] = "mail",
	[SMTP_STATE_RCPT] = "rcpt",
	[SMTP_STATE_DATA] = "data",
	[SMTP_STATE_BODY] = "body",
	[SMTP_STATE_DOT] = "dot",
	[SMTP_STATE_RSET] = "rset",
	[SMTP_STATE_QUIT] = "quit",
	[SMTP_STATE_FAILED] = "failed",
};

const char *smtp_state_name(enum smtp_state state)
{
	if ((size_t)state < sizeof state_names / sizeof state_names[0] &&
	    state_names[state])
		return state_names[state];
	return "?";
}

/* ---------------------------------------------------------------- parsers */

int smtp_parse_reply_line(const char *line, int *code, bool *last,
			  const char **text)
{
	/* RFC 5321 4.2: Reply-code [ SP / "-" textstring ] CRLF, with the
	 * first digit 2..5 (4.2.1). */
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (line[3] == '\0') {
		*last = true;
		*text = line + 3;
		return 0;
	}
	if (line[3] != ' ' && line[3] != '-')
		return -1;
	*last = line[3] == ' ';
	*text = line + 4;
	return 0;
}

static size_t digits(const char *p, size_t max)
{
	size_t n = 0;
	while (n < max && p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

size_t smtp_parse_enhanced_code(int code, const char *text, char out[16])
{
	/* RFC 3463 2: class "." subject "." detail; class is 2, 4 or 5 and
	 * must match the reply; subject 1-3 digits, detail 1-3 digits. */
	size_t i = 0, n;
	out[0] = '\0';
	if (text[0] != '2' && text[0] != '4' && text[0] != '5')
		return 0;
	if (text[0] - '0' != code / 100 || text[1] != '.')
		return 0;
	i = 2;
	n = digits(text + i, 4);
	if (n < 1 || n > 3 || text[i + n] != '.')
		return 0;
	i += n + 1;
	n = digits(text + i, 4);
	if (n < 1 || n > 3)
		return 0;
	i += n;
	if (text[i] != '\0' && text[i] != ' ')
		return 0;
	memcpy(out, text, i);
	out[i] = '\0';
	return text[i] == ' ' ? i + 1 : i;
}

void smtp_reply_add_line(struct smtp_reply *r, int code, const char *text)
{
	char enh[16];
	size_t skip = smtp_parse_enhanced_code(code, text, enh);
	size_t old = r->text ? strlen(r->text) : 0;
	size_t add = strlen(text + skip);
	if (r->nlines == 0) {
		r->code = code;
		memcpy(r->enhanced, enh, sizeof enh);
	}
	r->text = xrealloc(r->text, old + add + 2);
	if (r->nlines > 0)
		r->text[old++] = '\n';
	memcpy(r->text + old, text + skip, add + 1);
	r->nlines++;
}

void smtp_reply_free(struct smtp_reply *r)
{
	free(r->text);
	memset(r, 0, sizeof *r);
}

static bool keyword_is(const char *line, const char *kw, const char **rest)
{
	size_t n = strlen(kw);
	if (ascii_ncasecmp(line, kw, n) != 0)
		return false;
	if (line[n] != '\0' && line[n] != ' ' && line[n] != '=')
		return false;
	*rest = line[n] ? line + n + 1 : line + n;
	return true;
}

static void caps_add_auth(struct smtp_caps *caps, const char *list)
{
	char *up = xstrdup(list);
	for (char *p = up; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 32);
	if (caps->auth) {
		/* Both "AUTH" and the pre-standard "AUTH=" lines: merge. */
		char *both = xasprintf("%s %s", caps->auth, up);
		free(caps->auth);
		free(up);
		caps->auth = both;
	} else {
		caps->auth = up;
	}
}

static void caps_parse_keyword(struct smtp_caps *caps, const char *line)
{
	const char *rest;
	if (keyword_is(line, "PIPELINING", &rest))
		caps->pipelining = true;
	else if (keyword_is(line, "STARTTLS", &rest))
		caps->starttls = true;
	else if (keyword_is(line, "8BITMIME", &rest))
		caps->eightbitmime = true;
	else if (keyword_is(line, "SMTPUTF8", &rest))
		caps->smtputf8 = true;
	else if (keyword_is(line, "DSN", &rest))
		caps->dsn = true;
	else if (keyword_is(line, "CHUNKING", &rest))
		caps->chunking = true;
	else if (keyword_is(line, "ENHANCEDSTATUSCODES", &rest))
		caps->enhancedstatuscodes = true;
	else if (keyword_is(line, "SIZE", &rest)) {
		caps->size = true;
		caps->size_max = strtoull(rest, NULL, 10); /* RFC 1870: 0 = none */
	} else if (keyword_is(line, "AUTH", &rest) && *rest)
		caps_add_auth(caps, rest);
}

void smtp_caps_parse(struct smtp_caps *caps, const struct smtp_reply *ehlo)
{
	const char *p = ehlo->text ? ehlo->text : "";
	const char *nl = strchr(p, '\n');
	smtp_caps_free(caps);
	caps->esmtp = true;
	caps->raw = xstrdup(p);
	caps->domain = xstrndup(p, nl ? (size_t)(nl - p) : strlen(p));
	while (nl) {
		const char *start = nl + 1;
		char *line;
		nl = strchr(start, '\n');
		line = xstrndup(start, nl ? (size_t)(nl - start) : strlen(start));
		caps_parse_keyword(caps, line);
		free(line);
	}
}

void smtp_caps_free(struct smtp_caps *caps)
{
	free(caps->auth);
	free(caps->domain);
	free(caps->raw);
	memset(caps, 0, sizeof *caps);
}

/* ---------------------------------------------------------------- session */

void smtp_session_init(struct smtp_session *s, struct stream *stream,
		       const char *helo_name)
{
	memset(s, 0, sizeof *s);
	s->stream = stream;
	s->helo_name = xstrdup(helo_name);
	/* RFC 5321 4.5.3.2: 5 minutes for the greeting, MAIL and RCPT, 2 for
	 * DATA, 3 per data block, 10 for the final dot. */
	s->timeouts = (struct smtp_timeouts){
		.connect = 60000, .greeting = 300000, .command = 300000,
		.tls = 120000, .data_init = 120000, .data_block = 180000,
		.dot = 600000,
	};
}

void smtp_session_free(struct smtp_session *s)
{
	smtp_caps_free(&s->caps);
	free(s->helo_name);
	free(s->greeting);
	free(s->auth_pending);
	s->helo_name = NULL;
	s->greeting = NULL;
	s->auth_pending = NULL;
}

static void trace(struct smtp_session *s, enum trace_dir dir, const char *text)
{
	if (s->trace)
		s->trace(s->trace_ctx, dir, text);
}

static void tracef(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void tracef(struct smtp_session *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	if (!s->trace)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	trace(s, TRACE_INFO, buf);
}

void smtp_set_state(struct smtp_session *s, enum smtp_state state)
{
	s->state = state;
}

static enum failure failure_from_io(enum io_status st)
{
	switch (st) {
	case IO_TIMEOUT:
		return FAIL_TIMEOUT;
	case IO_CLOSED:
		return FAIL_CLOSED;
	case IO_TOO_LONG:
		return FAIL_PROTOCOL;
	default:
		return FAIL_IO;
	}
}

static int io_failed(struct smtp_session *s, struct outcome *o,
		     enum stage stage, const char *command,
		     const struct io_error *err)
{
	outcome_set(o, stage, failure_from_io(err->status), command, "%s",
		    err->detail);
	smtp_set_state(s, SMTP_STATE_FAILED);
	return -1;
}

/* Queue a command line (without CRLF); shown in the trace unless a redacted
 * form is given. */
static int queue_command(struct smtp_session *s, const char *line,
			 const char *shown, enum stage stage, struct outcome *o)
{
	struct io_error err;
	int64_t dl = deadline_after(s->timeouts.command);
	trace(s, TRACE_CLIENT, shown ? shown : line);
	if (stream_write(s->stream, line, strlen(line), dl, &err) != IO_OK ||
	    stream_write(s->stream, "\r\n", 2, dl, &err) != IO_OK)
		return io_failed(s, o, stage, shown ? shown : line, &err);
	return 0;
}

static int flush(struct smtp_session *s, enum stage stage, const char *command,
		 struct outcome *o)
{
	struct io_error err;
	if (stream_flush(s->stream, deadline_after(s->timeouts.command), &err) !=
	    IO_OK)
		return io_failed(s, o, stage, command, &err);
	return 0;
}

static int reply_line_failed(struct smtp_session *s, struct outcome *o,
			     enum stage stage, const char *command,
			     const char *line, size_t len)
{
	char shown[200];
	make_visible(shown, sizeof shown, line, len);
	outcome_set(o, stage, FAIL_PROTOCOL, command,
		    "the server sent a malformed reply line: \"%s\"", shown);
	smtp_set_state(s, SMTP_STATE_FAILED);
	return -1;
}

int smtp_read_reply(struct smtp_session *s, int timeout_ms, enum stage stage,
		    const char *command, struct smtp_reply *r, struct outcome *o)
{
	char line[SMTP_REPLY_LINE_MAX + 1];
	int64_t dl = deadline_after(timeout_ms);
	memset(r, 0, sizeof *r);
	for (;;) {
		struct io_error err;
		size_t len;
		bool bare_lf, last;
		int code;
		const char *text;
		if (stream_read_line(s->stream, line, sizeof line, &len, &bare_lf,
				     dl, &err) != IO_OK) {
			smtp_reply_free(r);
			return io_failed(s, o, stage, command, &err);
		}
		trace(s, TRACE_SERVER, line);
		/* A NUL inside the line would hide the rest of it. */
		if (memchr(line, '\0', len) ||
		    smtp_parse_reply_line(line, &code, &last, &text) < 0 ||
		    (r->nlines > 0 && code != r->code) ||
		    r->nlines >= SMTP_REPLY_LINES_MAX) {
			smtp_reply_free(r);
			return reply_line_failed(s, o, stage, command, line, len);
		}
		r->bare_lf |= bare_lf;
		smtp_reply_add_line(r, code, text);
		if (last)
			return 0;
	}
}

/* Read the reply to command; unless it has the expected first digit, record
 * it as the outcome and return -1. */
static int expect(struct smtp_session *s, int timeout_ms, enum stage stage,
		  const char *command, int want_class, struct smtp_reply *r,
		  struct outcome *o)
{
	if (smtp_read_reply(s, timeout_ms, stage, command, r, o) < 0)
		return -1;
	if (r->code / 100 == want_class)
		return 0;
	outcome_set_reply(o, stage, command, r->code, r->enhanced, r->text);
	smtp_reply_free(r);
	return -1;
}

int smtp_greeting(struct smtp_session *s, struct outcome *o)
{
	struct smtp_reply r;
	smtp_set_state(s, SMTP_STATE_GREETING);
	if (expect(s, s->timeouts.greeting, STAGE_GREETING, "(greeting)", 2, &r,
		   o) < 0) {
		smtp_set_state(s, SMTP_STATE_FAILED);
		return -1;
	}
	free(s->greeting);
	s->greeting = xstrdup(r.text ? r.text : "");
	smtp_reply_free(&r);
	return 0;
}

static int send_helo(struct smtp_session *s, struct outcome *o)
{
	struct smtp_reply r;
	char *cmd = xasprintf("HELO %s", s->helo_name);
	int rc = -1;
	smtp_set_state(s, SMTP_STATE_HELO);
	if (queue_command(s, cmd, NULL, STAGE_EHLO, o) == 0 &&
	    flush(s, STAGE_EHLO, cmd, o) == 0 &&
	    expect(s, s->timeouts.command, STAGE_EHLO, cmd, 2, &r, o) == 0) {
		smtp_caps_free(&s->caps);
		smtp_reply_free(&r);
		rc = 0;
	}
	free(cmd);
	return rc;
}

int smtp_ehlo(struct smtp_session *s, bool allow_helo, struct outcome *o)
{
	struct smtp_reply r;
	char *cmd = xasprintf("EHLO %s", s->helo_name);
	int rc = -1;
	smtp_set_state(s, SMTP_STATE_EHLO);
	if (queue_command(s, cmd, NULL, STAGE_EHLO, o) == 0 &&
	    flush(s, STAGE_EHLO, cmd, o) == 0) {
		if (expect(s, s->timeouts.command, STAGE_EHLO, cmd, 2, &r, o) == 0) {
			smtp_caps_parse(&s->caps, &r);
			smtp_reply_free(&r);
			rc = 0;
		} else if (allow_helo && o->failure == FAIL_REPLY &&
			   o->code / 100 == 5) {
			/* RFC 5321 3.2: an old server may only know HELO. */
			smtp_reply_free(&r);
			outcome_clear(o);
			rc = send_helo(s, o);
		} else {
			smtp_reply_free(&r);
		}
	}
	free(cmd);
	if (rc == 0)
		smtp_set_state(s, SMTP_STATE_READY);
	return rc;
}

static int tls_failed(struct smtp_session *s, struct outcome *o,
		      const struct tls_failure *tf, const struct io_error *err)
{
	enum failure f = tf->kind == TLS_FAIL_VERIFY ? FAIL_TLS_VERIFY
		       : tf->kind == TLS_FAIL_SETUP ? FAIL_TLS_SETUP
		       : tf->kind == TLS_FAIL_HANDSHAKE &&
				 err->status == IO_TIMEOUT ? FAIL_TIMEOUT
		       : FAIL_TLS_HANDSHAKE;
	outcome_set(o, STAGE_TLS, f, NULL, "%s",
		    tf->detail[0] ? tf->detail : err->detail);
	smtp_set_state(s, SMTP_STATE_FAILED);
	return -1;
}

static int handshake(struct smtp_session *s, const struct tls_options *tls,
		     struct outcome *o)
{
	struct tls_failure tf = { TLS_FAIL_NONE, "" };
	struct io_error err = { IO_OK, "" };
	char desc[256];
	smtp_set_state(s, SMTP_STATE_TLS);
	if (stream_start_tls(s->stream, tls, deadline_after(s->timeouts.tls), &tf,
			     &err) != IO_OK)
		return tls_failed(s, o, &tf, &err);
	tls_describe(stream_tls(s->stream), desc, sizeof desc);
	tracef(s, "TLS established: %s; certificate %s", desc,
	       !tls->certcheck ? "NOT CHECKED (tls_certcheck off)"
	       : tls->fingerprint ? "matches the pinned fingerprint"
				  : "verified for the host name");
	return 0;
}

int smtp_implicit_tls(struct smtp_session *s, const struct tls_options *tls,
		      struct outcome *o)
{
	return handshake(s, tls, o);
}

int smtp_starttls(struct smtp_session *s, const struct tls_options *tls,
		  struct outcome *o)
{
	struct smtp_reply r;
	smtp_set_state(s, SMTP_STATE_STARTTLS);
	if (!s->caps.starttls) {
		outcome_set(o, STAGE_STARTTLS, FAIL_NO_STARTTLS, "EHLO",
			    "the server does not offer STARTTLS, and TLS is required");
		smtp_set_state(s, SMTP_STATE_FAILED);
		return -1;
	}
	if (queue_command(s, "STARTTLS", NULL, STAGE_STARTTLS, o) < 0 ||
	    flush(s, STAGE_STARTTLS, "STARTTLS", o) < 0 ||
	    expect(s, s->timeouts.command, STAGE_STARTTLS, "STARTTLS", 2, &r,
		   o) < 0)
		return -1;
	smtp_reply_free(&r);
	/* RFC 3207 4 / CVE-2011-0411: anything the server sent after its 220
	 * and before the handshake could have been injected in plain text. */
	if (stream_pending_input(s->stream) > 0) {
		outcome_set(o, STAGE_STARTTLS, FAIL_PROTOCOL, "STARTTLS",
			    "the server sent data after its 220 reply to STARTTLS "
			    "and before the TLS handshake (possible injection)");
		smtp_set_state(s, SMTP_STATE_FAILED);
		return -1;
	}
	if (handshake(s, tls, o) < 0)
		return -1;
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	smtp_caps_free(&s->caps);
	return smtp_ehlo(s, false, o);
}

/* ------------------------------------------------------------------- AUTH */

static int auth_send(struct smtp_session *s, const char *line, const char *shown,
		     struct outcome *o)
{
	if (queue_command(s, line, shown, STAGE_AUTH, o) < 0)
		return -1;
	return flush(s, STAGE_AUTH, shown, o);
}

static int auth_local_failure(struct smtp_session *s, struct outcome *o,
			      const char *shown, const char *why)
{
	struct smtp_reply r;
	struct outcome ignored = { 0 };
	/* RFC 4954 4: "*" cancels the exchange; the server answers 501. */
	if (auth_send(s, "*", NULL, &ignored) == 0 &&
	    smtp_read_reply(s, s->timeouts.command, STAGE_AUTH, "*", &r,
			    &ignored) == 0)
		smtp_reply_free(&r);
	outcome_clear(&ignored);
	outcome_set(o, STAGE_AUTH, FAIL_AUTH_LOCAL, shown, "%s", why);
	return -1;
}

static char *auth_first_line(const char *mech, struct sasl_client *client,
			     char *err, size_t errlen, int *rc)
{
	char *initial = NULL;
	*rc = 0;
	if (!sasl_mechanism_sends_first(mech))
		return xasprintf("AUTH %s", mech);
	*rc = sasl_client_step(client, NULL, &initial, err, errlen);
	if (*rc < 0)
		return NULL;
	{
		/* RFC 4954 4: "=" stands for an empty initial response. A
		 * response that would make the line longer than 512 octets
		 * goes in the first 334 exchange instead. */
		char *line = xasprintf("AUTH %s %s", mech,
				       initial[0] ? initial : "=");
		if (strlen(line) + 2 > 512) {
			free_secret(line);
			line = xasprintf("AUTH %s", mech);
			sasl_client_keep_pending(client, initial);
			return line;
		}
		free_secret(initial);
		return line;
	}
}

/* One-message mechanisms: after the initial response the server's only
 * possible answer is the final reply, never a 334 challenge that a
 * following MAIL would be taken as the answer to. */
static bool auth_can_wait(const struct smtp_session *s, const char *mech)
{
	return s->auth_may_wait && s->caps.pipelining &&
	       (strcmp(mech, "PLAIN") == 0 || strcmp(mech, "EXTERNAL") == 0);
}

/* The reply to an AUTH that went out with this transaction's commands.
 * 0 when it was 235; -1 with o set otherwise (the connection failed, or
 * the server refused: then the rest of the group is refused too). */
static int read_pending_auth(struct smtp_session *s, struct outcome *o)
{
	struct smtp_reply r;
	char *shown = s->auth_pending;
	int rc;
	s->auth_pending = NULL;
	rc = smtp_read_reply(s, s->timeouts.command, STAGE_AUTH, shown, &r, o);
	if (rc == 0) {
		if (r.code != 235) {
			outcome_set_reply(o, STAGE_AUTH, shown, r.code, r.enhanced,
					  r.text);
			rc = -1;
		}
		smtp_reply_free(&r);
	}
	free(shown);
	return rc;
}

int smtp_auth(struct smtp_session *s, const char *mech,
	      struct sasl_client *client, struct outcome *o)
{
	char err[256] = "";
	char shown[128];
	int rc;
	char *line = auth_first_line(mech, client, err, sizeof err, &rc);
	format_into(shown, sizeof shown, "AUTH %s", mech);
	smtp_set_state(s, SMTP_STATE_AUTH);
	if (!line) {
		outcome_set(o, STAGE_AUTH, FAIL_AUTH_LOCAL, shown, "%s", err);
		return -1;
	}
	{
		char redacted[160];
		bool has_data = strlen(line) > strlen(shown);
		format_into(redacted, sizeof redacted, "%s <credentials redacted>",
			    shown);
		if (has_data && auth_can_wait(s, mech)) {
			rc = queue_command(s, line, redacted, STAGE_AUTH, o);
			free_secret(line);
			if (rc < 0)
				return -1;
			s->auth_pending = xstrdup(shown);
			smtp_set_state(s, SMTP_STATE_READY);
			return 0;
		}
		rc = auth_send(s, line, has_data ? redacted : NULL, o);
		free_secret(line);
		if (rc < 0)
			return -1;
	}
	for (;;) {
		struct smtp_reply r;
		char *response = NULL;
		if (smtp_read_reply(s, s->timeouts.command, STAGE_AUTH, shown, &r,
				    o) < 0)
			return -1;
		if (r.code == 235) {
			smtp_reply_free(&r);
			smtp_set_state(s, SMTP_STATE_READY);
			return 0;
		}
		if (r.code != 334) {
			const char *why = sasl_client_server_error(client);
			outcome_set_reply(o, STAGE_AUTH, shown, r.code, r.enhanced,
					  r.text);
			if (why)
				format_into(o->detail, sizeof o->detail, "the "
					    "server's OAuth2 error: %s", why);
			smtp_reply_free(&r);
			return -1;
		}
		rc = sasl_client_step(client, r.text ? r.text : "", &response, err,
				      sizeof err);
		smtp_reply_free(&r);
		if (rc < 0)
			return auth_local_failure(s, o, shown, err);
		rc = auth_send(s, response, "<credentials redacted>", o);
		free_secret(response);
		if (rc < 0)
			return -1;
	}
}

/* ------------------------------------------------------------ transaction */

char *smtp_xtext(const char *s)
{
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			o += sprintf(o, "+%02X", *p);
		else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

static bool wants_dsn(const struct smtp_envelope *env)
{
	return env->dsn_notify || env->dsn_ret || env->dsn_envid;
}

static char *mail_command(struct smtp_session *s, const struct smtp_envelope *env)
{
	char size[40] = "";
	bool utf8 = env->smtputf8 && s->caps.smtputf8;
	bool dsn = s->caps.dsn && wants_dsn(env);
	char *envid = dsn && env->dsn_envid ? smtp_xtext(env->dsn_envid) : NULL;
	char *cmd;
	if (s->caps.size && env->size > 0)
		snprintf(size, sizeof size, " SIZE=%" PRIu64, (uint64_t)env->size);
	if (wants_dsn(env) && !s->caps.dsn)
		tracef(s, "the server does not offer DSN: -N/-R/-V are dropped, "
		       "the message is sent without them");
	/* RFC 6152: BODY=8BITMIME; RFC 6531 3.4: SMTPUTF8 implies 8-bit. */
	cmd = xasprintf("MAIL FROM:<%s>%s%s%s%s%s%s%s", env->sender, size,
			env->body_8bit && s->caps.eightbitmime ? " BODY=8BITMIME" : "",
			utf8 ? " SMTPUTF8" : "",
			dsn && env->dsn_ret ? " RET=" : "",
			dsn && env->dsn_ret ? env->dsn_ret : "",
			envid ? " ENVID=" : "", envid ? envid : "");
	free(envid);
	return cmd;
}

static char *rcpt_command(const struct smtp_session *s,
			  const struct smtp_envelope *env, const char *rcpt)
{
	char *orcpt, *cmd;
	if (!s->caps.dsn || !wants_dsn(env))
		return xasprintf("RCPT TO:<%s>", rcpt);
	/* RFC 3461 4.2: ORCPT keeps the address the sender used. */
	orcpt = smtp_xtext(rcpt);
	cmd = xasprintf("RCPT TO:<%s>%s%s ORCPT=%s;%s", rcpt,
			env->dsn_notify ? " NOTIFY=" : "",
			env->dsn_notify ? env->dsn_notify : "",
			address_is_8bit(rcpt) ? "utf-8" : "rfc822", orcpt);
	free(orcpt);
	return cmd;
}

/* Queue RCPT commands [from, to). */
static int queue_rcpts(struct smtp_session *s, const struct smtp_envelope *env,
		       size_t from, size_t to, struct outcome *o)
{
	for (size_t i = from; i < to; i++) {
		char *cmd = rcpt_command(s, env, env->rcpts[i]);
		int rc = queue_command(s, cmd, NULL, STAGE_RCPT, o);
		free(cmd);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Read RCPT replies for [from, to). Returns -1 only when the connection
 * failed; refusals are recorded per recipient. */
static int read_rcpt_replies(struct smtp_session *s,
			     const struct smtp_envelope *env, size_t from,
			     size_t to, struct smtp_transaction_result *res)
{
	for (size_t i = from; i < to; i++) {
		struct rcpt_result *rr = &res->rcpts[i];
		struct smtp_reply r;
		char *cmd = rcpt_command(s, env, env->rcpts[i]);
		int rc = smtp_read_reply(s, s->timeouts.command, STAGE_RCPT, cmd, &r,
					 &res->outcome);
		if (rc == 0 && r.code / 100 == 2) {
			rr->accepted = true;
			res->naccepted++;
		} else if (rc == 0) {
			outcome_set_reply(&rr->outcome, STAGE_RCPT, cmd, r.code,
					  r.enhanced, r.text);
		}
		free(cmd);
		smtp_reply_free(&r);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Without PIPELINING: one command, one reply. */
static int envelope_lockstep(struct smtp_session *s,
			     const struct smtp_envelope *env, const char *mail,
			     struct smtp_transaction_result *res)
{
	struct smtp_reply r;
	if (queue_command(s, mail, NULL, STAGE_MAIL, &res->outcome) < 0 ||
	    flush(s, STAGE_MAIL, mail, &res->outcome) < 0 ||
	    expect(s, s->timeouts.command, STAGE_MAIL, mail, 2, &r,
		   &res->outcome) < 0)
		return -1;
	smtp_reply_free(&r);
	smtp_set_state(s, SMTP_STATE_RCPT);
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (queue_rcpts(s, env, i, i + 1, &res->outcome) < 0 ||
		    flush(s, STAGE_RCPT, "RCPT", &res->outcome) < 0 ||
		    read_rcpt_replies(s, env, i, i + 1, res) < 0)
			return -1;
	}
	return 0;
}

/* A group whose MAIL (or the AUTH ahead of it) was refused: the RCPT
 * replies after it ("503 need MAIL", "530 authentication required") say
 * nothing about the recipients, so they are forgotten and why is the
 * outcome (taken over from *why, which is cleared). */
static int void_group(struct smtp_transaction_result *res, struct outcome *why)
{
	for (size_t i = 0; i < res->nrcpts; i++) {
		res->rcpts[i].accepted = false;
		outcome_clear(&res->rcpts[i].outcome);
	}
	res->naccepted = 0;
	outcome_copy(&res->outcome, why);
	outcome_clear(why);
	return -1;
}

/* The AUTH that went out ahead of this group was refused. A server that
 * still opened DATA (it accepted mail without the login) must not get the
 * message: the connection is dropped without another byte, which leaves
 * the transaction incomplete (RFC 5321 4.1.1.4 and 3.8). Without that,
 * the session is of no use for the next message either. */
static int refused_auth(struct smtp_session *s,
			struct smtp_transaction_result *res,
			struct outcome *auth_failure,
			struct outcome *mail_failure, struct smtp_reply *data)
{
	if (data && data->code == 354)
		tracef(s, "the server opened DATA after refusing AUTH: the "
		       "connection is closed without sending the message");
	outcome_clear(mail_failure);
	smtp_set_state(s, SMTP_STATE_FAILED);
	return void_group(res, auth_failure);
}

/* RFC 2920: MAIL, the RCPTs and DATA go out together (in groups of at
 * most SMTP_PIPELINE_RCPT_MAX recipients); every reply is then read in
 * order and matched to its command. The DATA reply is left in *data;
 * with data NULL, DATA is not sent (-bv). */
static int envelope_pipelined(struct smtp_session *s,
			      const struct smtp_envelope *env, const char *mail,
			      struct smtp_transaction_result *res,
			      struct smtp_reply *data)
{
	struct smtp_reply r;
	struct outcome mail_failure = { 0 }, auth_failure = { 0 };
	size_t from = 0;
	if (queue_command(s, mail, NULL, STAGE_MAIL, &res->outcome) < 0)
		return -1;
	do {
		size_t to = env->nrcpts - from > SMTP_PIPELINE_RCPT_MAX
				    ? from + SMTP_PIPELINE_RCPT_MAX : env->nrcpts;
		bool last = to == env->nrcpts;
		if (queue_rcpts(s, env, from, to, &res->outcome) < 0 ||
		    (last && data && queue_command(s, "DATA", NULL, STAGE_DATA,
						   &res->outcome) < 0) ||
		    flush(s, STAGE_MAIL, mail, &res->outcome) < 0)
			return -1;
		if (from == 0) {
			if (s->auth_pending &&
			    read_pending_auth(s, &auth_failure) < 0 &&
			    auth_failure.failure != FAIL_REPLY) {
				outcome_copy(&res->outcome, &auth_failure);
				outcome_clear(&auth_failure);
				smtp_set_state(s, SMTP_STATE_FAILED);
				return -1;
			}
			if (expect(s, s->timeouts.command, STAGE_MAIL, mail, 2, &r,
				   &mail_failure) < 0 &&
			    mail_failure.failure != FAIL_REPLY) {
				outcome_copy(&res->outcome, &mail_failure);
				outcome_clear(&mail_failure);
				return -1;
			}
			smtp_reply_free(&r);
			smtp_set_state(s, SMTP_STATE_RCPT);
		}
		if (read_rcpt_replies(s, env, from, to, res) < 0)
			return -1;
		/* After a refused MAIL the rest would only be refused too. */
		if (mail_failure.failure != FAIL_NONE && !last)
			break;
		from = to;
	} while (from < env->nrcpts);
	if (data && from == env->nrcpts &&
	    smtp_read_reply(s, s->timeouts.data_init, STAGE_DATA, "DATA", data,
			    &res->outcome) < 0)
		return -1;
	if (auth_failure.failure != FAIL_NONE)
		return refused_auth(s, res, &auth_failure, &mail_failure, data);
	if (mail_failure.failure != FAIL_NONE)
		return void_group(res, &mail_failure);
	return 0;
}

struct body_sink {
	struct smtp_session *s;
	struct dot_stuffer stuffer;
	char *buf;
	size_t cap;
	struct io_error err;
};

static int body_write(void *ctx, const void *data, size_t len)
{
	struct body_sink *b = ctx;
	size_t n;
	if (2 * len > b->cap) {
		b->cap = 2 * len;
		b->buf = xrealloc(b->buf, b->cap);
	}
	n = dot_stuff(&b->stuffer, data, len, b->buf);
	return stream_write(b->s->stream, b->buf, n,
			    deadline_after(b->s->timeouts.data_block),
			    &b->err) == IO_OK ? 0 : 1;
}

static int send_body(struct smtp_session *s, const struct message *msg,
		     const struct emit_options *emit, struct outcome *o)
{
	struct body_sink b = { .s = s };
	struct emit_options opt = *emit;
	int rc;
	dot_stuffer_init(&b.stuffer);
	opt.dot_stuff = false; /* done here, so the sink sees raw blocks */
	smtp_set_state(s, SMTP_STATE_BODY);
	tracef(s, "(message text: %jd bytes)",
	       (intmax_t)message_emit_size(msg, emit));
	rc = message_emit(msg, &opt, body_write, &b);
	free(b.buf);
	if (rc > 0)
		return io_failed(s, o, STAGE_BODY, "(message text)", &b.err);
	if (rc < 0) {
		outcome_set(o, STAGE_BODY, FAIL_LOCAL, "(message text)",
			    "reading the spooled message failed");
		return -1;
	}
	/* RFC 5321 4.1.1.4: the message text ends with CRLF "." CRLF; the
	 * spooled text always ends with CRLF. */
	if (queue_command(s, ".", NULL, STAGE_DOT, o) < 0)
		return -1;
	return flush(s, STAGE_DOT, ".", o);
}

static void result_init(struct smtp_transaction_result *res,
			const struct smtp_envelope *env)
{
	memset(res, 0, sizeof *res);
	res->rcpts = xcalloc(env->nrcpts, sizeof *res->rcpts);
	res->nrcpts = env->nrcpts;
	for (size_t i = 0; i < env->nrcpts; i++)
		res->rcpts[i].rcpt = env->rcpts[i];
}

/* When no recipient was accepted, the first refusal is the outcome. */
static int no_recipients(struct smtp_session *s,
			 struct smtp_transaction_result *res, bool data_open)
{
	struct smtp_reply r;
	struct outcome ignored = { 0 };
	/* RFC 2920 3.1: a server that still said 354 gets an empty message
	 * that it will refuse for lack of recipients. */
	if (data_open && queue_command(s, ".", NULL, STAGE_DOT, &ignored) == 0 &&
	    flush(s, STAGE_DOT, ".", &ignored) == 0 &&
	    smtp_read_reply(s, s->timeouts.dot, STAGE_DOT, ".", &r, &ignored) == 0)
		smtp_reply_free(&r);
	outcome_clear(&ignored);
	for (size_t i = 0; i < res->nrcpts; i++) {
		if (!res->rcpts[i].accepted) {
			outcome_copy(&res->outcome, &res->rcpts[i].outcome);
			break;
		}
	}
	smtp_set_state(s, SMTP_STATE_READY);
	return -1;
}

static int data_command(struct smtp_session *s, bool pipelined,
			struct smtp_reply *data, struct outcome *o)
{
	smtp_set_state(s, SMTP_STATE_DATA);
	if (!pipelined &&
	    (queue_command(s, "DATA", NULL, STAGE_DATA, o) < 0 ||
	     flush(s, STAGE_DATA, "DATA", o) < 0 ||
	     smtp_read_reply(s, s->timeouts.data_init, STAGE_DATA, "DATA", data,
			     o) < 0))
		return -1;
	if (data->code != 354) {
		outcome_set_reply(o, STAGE_DATA, "DATA", data->code, data->enhanced,
				  data->text);
		smtp_set_state(s, SMTP_STATE_READY);
		return -1;
	}
	return 0;
}

int smtp_send_mail(struct smtp_session *s, const struct smtp_envelope *env,
		   const struct message *msg, const struct emit_options *emit,
		   struct smtp_transaction_result *res)
{
	struct smtp_reply data = { 0 }, dot;
	bool pipe = s->caps.pipelining;
	char *mail = mail_command(s, env);
	int rc;
	result_init(res, env);
	smtp_set_state(s, SMTP_STATE_MAIL);
	rc = pipe ? envelope_pipelined(s, env, mail, res, &data)
		  : envelope_lockstep(s, env, mail, res);
	free(mail);
	if (rc < 0) {
		smtp_reply_free(&data);
		return -1;
	}
	if (res->naccepted == 0) {
		rc = no_recipients(s, res, data.code == 354);
		smtp_reply_free(&data);
		return rc;
	}
	rc = data_command(s, pipe, &data, &res->outcome);
	smtp_reply_free(&data);
	if (rc < 0 || send_body(s, msg, emit, &res->outcome) < 0)
		return -1;
	smtp_set_state(s, SMTP_STATE_DOT);
	if (expect(s, s->timeouts.dot, STAGE_DOT, ".", 2, &dot, &res->outcome) < 0)
		return -1;
	res->delivered = true;
	res->queue_reply = dot.text ? xstrdup(dot.text) : xstrdup("");
	smtp_reply_free(&dot);
	smtp_set_state(s, SMTP_STATE_READY);
	return 0;
}

int smtp_verify(struct smtp_session *s, const struct smtp_envelope *env,
		struct smtp_transaction_result *res)
{
	struct outcome o = { 0 };
	char *mail = mail_command(s, env);
	int rc;
	result_init(res, env);
	smtp_set_state(s, SMTP_STATE_MAIL);
	rc = s->caps.pipelining ? envelope_pipelined(s, env, mail, res, NULL)
				: envelope_lockstep(s, env, mail, res);
	free(mail);
	if (rc < 0 && res->outcome.failure != FAIL_REPLY)
		return -1;
	rc = smtp_rset(s, &o);
	if (rc < 0 && res->outcome.failure == FAIL_NONE)
		outcome_copy(&res->outcome, &o);
	outcome_clear(&o);
	return rc;
}

void smtp_transaction_result_free(struct smtp_transaction_result *res)
{
	for (size_t i = 0; i < res->nrcpts; i++)
		outcome_clear(&res->rcpts[i].outcome);
	free(res->rcpts);
	outcome_clear(&res->outcome);
	free(res->queue_reply);
	memset(res, 0, sizeof *res);
}

int smtp_rset(struct smtp_session *s, struct outcome *o)
{
	struct smtp_reply r;
	smtp_set_state(s, SMTP_STATE_RSET);
	if (queue_command(s, "RSET", NULL, STAGE_MAIL, o) < 0 ||
	    flush(s, STAGE_MAIL, "RSET", o) < 0 ||
	    expect(s, s->timeouts.command, STAGE_MAIL, "RSET", 2, &r, o) < 0)
		return -1;
	smtp_reply_free(&r);
	smtp_set_state(s, SMTP_STATE_READY);
	return 0;
}

void smtp_quit(struct smtp_session *s)
{
	struct outcome ignored = { 0 };
	smtp_set_state(s, SMTP_STATE_QUIT);
	/* The result is known; waiting for 221 would only cost a round trip. */
	if (queue_command(s, "QUIT", NULL, STAGE_QUIT, &ignored) == 0)
		(void)flush(s, STAGE_QUIT, "QUIT", &ignored);
	outcome_clear(&ignored);
}
