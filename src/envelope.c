#include "autoconf.h"
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "address.h"

/* The domain that completes bare local names and our Message-IDs. */
static const char *local_domain(const struct envelope_input *in)
{
	if (in->acct->maildomain)
		return in->acct->maildomain;
	return in->hostname;
}

static char *qualify(const struct envelope_input *in, const char *addr)
{
	if (!address_is_local(addr) || addr[0] == '\0')
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, local_domain(in));
}

static int add_qualified(const struct envelope_input *in, struct envelope *env,
			 const char *addr, struct outcome *o)
{
	char why[160];
	char *full;
	if (!address_is_safe_for_envelope(addr, why, sizeof why) || !addr[0]) {
		outcome_set(o, STAGE_INPUT, FAIL_USAGE, NULL,
			    "invalid recipient address \"%s\": %s", addr,
			    addr[0] ? why : "empty");
		return -1;
	}
	full = qualify(in, addr);
	strlist_add_unique(&env->rcpts, full);
	env->smtputf8 |= address_is_8bit(full);
	free(full);
	return 0;
}

/* A bare local recipient goes through the aliases file first (one step,
 * as msmtp does: the addresses it maps to are not looked up again). */
static int add_recipient(const struct envelope_input *in, struct envelope *env,
			 const char *addr, struct outcome *o)
{
	struct strlist expanded = { 0 };
	int rc = 0;
	if (!address_is_local(addr) || !addr[0] ||
	    aliases_expand(in->aliases, addr, &expanded) <= 0) {
		strlist_free(&expanded);
		return add_qualified(in, env, addr, o);
	}
	for (size_t i = 0; i < expanded.n && rc == 0; i++)
		rc = add_qualified(in, env, expanded.v[i], o);
	strlist_free(&expanded);
	return rc;
}

/* RFC 5322 3.6.6: when Resent-* fields exist, the first block of them
 * names the recipients of this resending; otherwise To, Cc and Bcc. */
static bool has_resent_block(const struct message *msg)
{
	for (size_t i = 0; i < msg->nheaders; i++)
		if (ascii_ncasecmp(msg->headers[i].name, "Resent-", 7) == 0)
			return true;
	return false;
}

static int header_recipients(const struct envelope_input *in,
			     struct envelope *env, struct outcome *o)
{
	static const char *const plain[] = { "To", "Cc", "Bcc", NULL };
	static const char *const resent[] = { "Resent-To", "Resent-Cc",
					      "Resent-Bcc", NULL };
	const char *const *names = has_resent_block(in->msg) ? resent : plain;
	const struct message *msg = in->msg;
	for (size_t i = 0; i < msg->nheaders; i++) {
		struct strlist found = { 0 };
		char err[200];
		bool wanted = false;
		for (const char *const *n = names; *n; n++)
			wanted |= ascii_casecmp(msg->headers[i].name, *n) == 0;
		if (!wanted)
			continue;
		if (address_list_parse(msg->headers[i].value, &found, err,
				       sizeof err) < 0) {
			outcome_set(o, STAGE_INPUT, FAIL_USAGE, NULL,
				    "cannot read the %s header: %s",
				    msg->headers[i].name, err);
			strlist_free(&found);
			return -1;
		}
		for (size_t k = 0; k < found.n; k++) {
			if (add_recipient(in, env, found.v[k], o) < 0) {
				strlist_free(&found);
				return -1;
			}
		}
		strlist_free(&found);
	}
	return 0;
}

static char *default_sender(const struct envelope_input *in)
{
	if (in->cli->sender)
		return qualify(in, in->cli->sender);
	if (in->acct->from)
		return qualify(in, in->acct->from);
	return xasprintf("%s@%s", in->login, local_domain(in));
}

char *envelope_date(time_t t)
{
	char buf[64];
	struct tm tm;
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
					    "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May",
					      "Jun", "Jul", "Aug", "Sep", "Oct",
					      "Nov", "Dec" };
	long off;
	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	/* Day and month names are fixed English (RFC 5322 3.3), not locale. */
	snprintf(buf, sizeof buf, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
	return xstrdup(buf);
}

static char *message_id(const struct envelope_input *in)
{
	unsigned char r[12];
	char hex[25];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		memset(r, 0, sizeof r);
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	return xasprintf("<%lld.%s.postbote@%s>", (long long)in->now, hex,
			 local_domain(in));
}

/* RFC 5322 3.2.4: a display name with specials goes in a quoted string. */
static char *display_name(const char *name)
{
	size_t n = strlen(name), o = 0;
	char *q = xmalloc(2 * n + 3);
	q[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '"' || name[i] == '\\')
			q[o++] = '\\';
		q[o++] = name[i];
	}
	q[o++] = '"';
	q[o] = '\0';
	return q;
}

static void add_line(char **prepend, const char *name, const char *value)
{
	char *old = *prepend ? *prepend : xstrdup("");
	*prepend = xasprintf("%s%s: %s\r\n", old, name, value);
	free(old);
}

static void missing_headers(const struct envelope_input *in,
			    struct envelope *env)
{
	if (!message_header_find(in->msg, "From")) {
		char *from;
		if (in->cli->full_name) {
			char *dn = display_name(in->cli->full_name);
			from = xasprintf("%s <%s>", dn, env->sender);
			free(dn);
		} else {
			from = xstrdup(env->sender);
		}
		add_line(&env->prepend, "From", from);
		free(from);
	}
	if (!message_header_find(in->msg, "Date")) {
		char *date = envelope_date(in->now);
		add_line(&env->prepend, "Date", date);
		free(date);
	}
	if (!message_header_find(in->msg, "Message-ID")) {
		char *id = message_id(in);
		add_line(&env->prepend, "Message-ID", id);
		free(id);
	}
}

/* "Name: value" with CRLF, folded before the space after a comma where a
 * line would grow past 78 characters (RFC 5322 2.2.3: unfolding removes
 * just the CRLF, so the value is unchanged). */
static char *fold_field(const char *name, const char *value)
{
	size_t cap = strlen(name) + strlen(value) * 2 + 8, o, line;
	char *out = xmalloc(cap);
	o = (size_t)sprintf(out, "%s: ", name);
	line = o;
	for (const char *p = value; *p; p++) {
		if (p[0] == ',' && p[1] == ' ') {
			const char *next = strstr(p + 2, ", ");
			size_t word = next ? (size_t)(next - p) : strlen(p);
			if (line + word > 78) {
				memcpy(out + o, ",\r\n", 3);
				o += 3;
				line = 0;
				continue;
			}
		}
		out[o++] = *p;
		line++;
	}
	memcpy(out + o, "\r\n", 3);
	return out;
}

static bool is_address_field(const char *name)
{
	static const char *const fields[] = { "From", "To", "Cc", "Sender",
		"Reply-To", "Resent-From", "Resent-To", "Resent-Cc",
		"Resent-Sender", NULL };
	for (const char *const *f = fields; *f; f++)
		if (ascii_casecmp(name, *f) == 0)
			return true;
	return false;
}

/* A field that does not parse is left as it is: it cannot be qualified,
 * and refusing the message for it would lose mail (with -t, the
 * recipient fields were already checked). */
static void qualify_headers(const struct envelope_input *in,
			    struct envelope *env)
{
	const struct message *msg = in->msg;
	for (size_t i = 0; i < msg->nheaders; i++) {
		char err[160];
		char *q;
		if (!is_address_field(msg->headers[i].name))
			continue;
		q = address_list_qualify(msg->headers[i].value, local_domain(in),
					 err, sizeof err);
		if (!q)
			continue;
		if (!env->replace) {
			env->replace = xcalloc(msg->nheaders, sizeof *env->replace);
			env->nreplace = msg->nheaders;
		}
		env->replace[i] = fold_field(msg->headers[i].name, q);
		free(q);
	}
}

int envelope_build(const struct envelope_input *in, struct envelope *env,
		   struct outcome *o)
{
	char why[160];
	memset(env, 0, sizeof *env);
	env->sender = default_sender(in);
	/* -f is checked by cli; the config's "from" and the login name are
	 * checked here, so nothing can inject a command (CR, LF, NUL). */
	if (!address_is_safe_for_envelope(env->sender, why, sizeof why)) {
		outcome_set(o, STAGE_CONFIG, FAIL_CONFIG, NULL,
			    "invalid sender address \"%s\": %s", env->sender, why);
		goto fail;
	}
	env->smtputf8 = address_is_8bit(env->sender);
	for (size_t i = 0; i < in->cli->recipients.n; i++)
		if (add_recipient(in, env, in->cli->recipients.v[i], o) < 0)
			goto fail;
	if (in->cli->read_recipients && header_recipients(in, env, o) < 0)
		goto fail;
	if (env->rcpts.n == 0) {
		outcome_set(o, STAGE_INPUT, FAIL_USAGE, NULL, "%s",
			    in->cli->read_recipients
				    ? "no recipients: the message has no To, Cc or "
				      "Bcc addresses and none were given"
				    : "no recipients given (name them as arguments, "
				      "or use -t to read them from the message)");
		goto fail;
	}
	missing_headers(in, env);
	qualify_headers(in, env);
	return 0;
fail:
	envelope_free(env);
	return -1;
}

void envelope_free(struct envelope *env)
{
	free(env->sender);
	strlist_free(&env->rcpts);
	free(env->prepend);
	for (size_t i = 0; i < env->nreplace; i++)
		free(env->replace[i]);
	free(env->replace);
	memset(env, 0, sizeof *env);
}
