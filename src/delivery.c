#include "autoconf.h"
#include "delivery.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deadline.h"
#include "net.h"
#include "oauth2.h"
#include "sasl.h"
#include "secret.h"
#include "util.h"

int delivery_port(const struct account *acct)
{
	if (acct->port > 0)
		return acct->port;
	if (!acct->tls)
		return 25;
	/* RFC 6409 submission with STARTTLS, or RFC 8314 implicit TLS. */
	return acct->tls_starttls ? 587 : 465;
}

static enum failure failure_from_net(enum net_failure f)
{
	switch (f) {
	case NET_RESOLVE_TEMPORARY: return FAIL_RESOLVE_TEMPORARY;
	case NET_RESOLVE_PERMANENT: return FAIL_RESOLVE_PERMANENT;
	case NET_REFUSED: return FAIL_REFUSED;
	case NET_UNREACHABLE: return FAIL_UNREACHABLE;
	case NET_TIMEOUT: return FAIL_TIMEOUT;
	default: return FAIL_IO;
	}
}

static void set_timeouts(struct smtp_timeouts *t, int seconds)
{
	int ms = seconds * 1000;
	if (seconds <= 0)
		return;
	*t = (struct smtp_timeouts){ ms, ms, ms, ms, ms, ms, ms };
}

static char *helo_name(const struct account *acct)
{
	char host[256];
	if (acct->domain)
		return xstrdup(acct->domain);
	if (gethostname(host, sizeof host) == 0 && host[0]) {
		host[sizeof host - 1] = '\0';
		return xstrdup(host);
	}
	return xstrdup("localhost");
}

static void tls_options_from(const struct account *a, struct tls_options *t)
{
	*t = (struct tls_options){
		.host = a->host,
		.trust_file = a->tls_trust_file,
		.fingerprint = a->tls_fingerprint,
		.cert_file = a->tls_cert_file,
		.key_file = a->tls_key_file,
		.priorities = a->tls_priorities,
		.min_dh_prime_bits = a->tls_min_dh_prime_bits,
		.certcheck = a->tls_certcheck,
	};
}

static bool wants_auth(const struct account *a)
{
	if (ascii_casecmp(a->auth, "off") == 0)
		return false;
	/* "auth on" without a user means: this relay needs no login. */
	return a->user != NULL || ascii_casecmp(a->auth, "on") != 0;
}

/* What the account can authenticate with. A password that only a prompt
 * could give is left for a second round, so that a Kerberos ticket or a
 * client certificate is used before anyone is asked to type. */
static void available(const struct delivery *d, bool with_prompt,
		      struct sasl_available *av)
{
	const struct account *a = d->acct;
	bool oauth2 = oauth2_configured(a);
	av->password = !oauth2 && a->user &&
		       credentials_password_possible(d->creds, with_prompt);
	av->ticket = !oauth2;
	av->cert = !oauth2 && a->tls_cert_file != NULL;
	av->token = a->user && credentials_token_possible(d->creds);
}

static const char *choose(struct smtp_session *s, const struct delivery *d,
			  const char *skip, char *err, size_t errlen)
{
	const struct account *a = d->acct;
	const char *forced = ascii_casecmp(a->auth, "on") == 0 ? NULL : a->auth;
	struct sasl_available av;
	const char *mech;
	available(d, false, &av);
	mech = sasl_choose_mechanism(s->caps.auth, forced,
				     stream_is_tls(s->stream), &av, skip, err,
				     errlen);
	if (!mech && !forced && !av.password) {
		char first[256];
		format_into(first, sizeof first, "%s", err);
		available(d, true, &av);
		mech = sasl_choose_mechanism(s->caps.auth, NULL,
					     stream_is_tls(s->stream), &av, skip,
					     err, errlen);
		if (!mech)
			format_into(err, errlen, "%s", first);
	}
	return mech;
}

/* The secret the mechanism needs, into p. */
static int fetch_credential(const struct delivery *d, const char *mech,
			    bool fresh, struct sasl_params *p, char **token,
			    bool *from_cache, struct outcome *o)
{
	char err[SECRET_ERROR_MAX];
	enum oauth2_status st;
	enum sasl_credential cred = sasl_mechanism_credential(mech);
	if ((cred == SASL_CRED_PASSWORD || cred == SASL_CRED_TOKEN) &&
	    !d->acct->user) {
		outcome_set(o, STAGE_AUTH, FAIL_NO_AUTH, NULL, "%s needs a user "
			    "name, and none is set (user)", mech);
		return -1;
	}
	switch (cred) {
	case SASL_CRED_PASSWORD:
		p->password = credentials_password(d->creds, err, sizeof err);
		if (!p->password) {
			outcome_set(o, STAGE_AUTH, FAIL_AUTH_LOCAL, NULL, "%s", err);
			return -1;
		}
		return 0;
	case SASL_CRED_TOKEN:
		st = credentials_token(d->creds, fresh, token, from_cache, err,
				       sizeof err);
		if (st != OAUTH2_OK) {
			outcome_set(o, STAGE_AUTH, st == OAUTH2_TEMPFAIL
				    ? FAIL_TOKEN_TEMPORARY : FAIL_AUTH_LOCAL, NULL,
				    "%s", err);
			return -1;
		}
		p->token = *token;
		return 0;
	case SASL_CRED_TICKET:
	case SASL_CRED_CERT:
		return 0;
	}
	return 0;
}

/* One AUTH exchange with mech. 1: the mechanism could not start here
 * (no Kerberos ticket): nothing was sent, another one may be tried. */
static int auth_once(struct smtp_session *s, const struct delivery *d,
		     const char *mech, bool fresh, bool *from_cache,
		     struct outcome *o)
{
	const struct account *a = d->acct;
	char err[SECRET_ERROR_MAX];
	char *token = NULL;
	struct sasl_client *client;
	struct sasl_params p = { a->user ? a->user : "", NULL, NULL, "smtp",
				 a->host, delivery_port(a), stream_tls(s->stream) };
	int rc;
	*from_cache = false;
	if (fetch_credential(d, mech, fresh, &p, &token, from_cache, o) < 0)
		return -1;
	if (sasl_client_new(mech, &p, &client, err, sizeof err) < 0) {
		free_secret(token);
		outcome_set(o, STAGE_AUTH, FAIL_AUTH_LOCAL, NULL, "%s", err);
		return sasl_mechanism_credential(mech) == SASL_CRED_TICKET ? 1 : -1;
	}
	rc = smtp_auth(s, mech, client, o);
	sasl_client_free(client);
	free_secret(token);
	return rc;
}

static bool rejected(const struct outcome *o)
{
	return o->failure == FAIL_REPLY && o->code / 100 == 5;
}

static int authenticate(struct smtp_session *s, const struct delivery *d,
			struct outcome *o)
{
	bool forced = ascii_casecmp(d->acct->auth, "on") != 0;
	char skip[128] = "";
	for (;;) {
		char err[SECRET_ERROR_MAX];
		bool from_cache;
		int rc;
		const char *mech = choose(s, d, skip, err, sizeof err);
		if (!mech) {
			/* After a mechanism that could not start, say both. */
			char before[OUTCOME_DETAIL_MAX];
			format_into(before, sizeof before, "%s%s", skip[0] ?
				    o->detail : "", skip[0] ? "; and " : "");
			outcome_set(o, STAGE_AUTH, FAIL_NO_AUTH, NULL, "%s%s",
				    before, err);
			return -1;
		}
		rc = auth_once(s, d, mech, false, &from_cache, o);
		/* A cached access token the server refuses may have been
		 * revoked early: once more with a fresh one (the same
		 * connection may try AUTH again, RFC 4954 4). */
		if (rc < 0 && from_cache && rejected(o)) {
			if (s->trace)
				s->trace(s->trace_ctx, TRACE_INFO, "the server refused "
					 "the cached access token; fetching a new "
					 "one");
			outcome_clear(o);
			rc = auth_once(s, d, mech, true, &from_cache, o);
		}
		if (rc != 1 || forced)
			return rc == 0 ? 0 : -1;
		format_into(skip, sizeof skip, "%s%s%s", skip, skip[0] ? " " : "",
			    mech);
	}
}

/* Limits the server announced, checked before anything is sent. */
static int check_limits(const struct smtp_session *s,
			const struct smtp_envelope *env, struct outcome *o)
{
	if (s->caps.size && s->caps.size_max > 0 &&
	    (uint64_t)env->size > s->caps.size_max) {
		outcome_set(o, STAGE_MAIL, FAIL_TOO_BIG, NULL,
			    "the message has %jd bytes; the server accepts at most %ju "
			    "(EHLO SIZE)", (intmax_t)env->size,
			    (uintmax_t)s->caps.size_max);
		return -1;
	}
	if (env->smtputf8 && !s->caps.smtputf8) {
		outcome_set(o, STAGE_MAIL, FAIL_NEEDS_SMTPUTF8, NULL,
			    "an address is not plain ASCII, and the server does not "
			    "offer SMTPUTF8");
		return -1;
	}
	return 0;
}

static int open_session(struct smtp_session *s, const struct delivery *d,
			struct outcome *o)
{
	const struct account *a = d->acct;
	struct tls_options tls;
	tls_options_from(a, &tls);
	if (a->tls && !a->tls_starttls && smtp_implicit_tls(s, &tls, o) < 0)
		return -1;
	if (smtp_greeting(s, o) < 0)
		return -1;
	/* HELO only when nothing needs ESMTP (RFC 5321 3.2). */
	if (smtp_ehlo(s, !a->tls && !wants_auth(a), o) < 0)
		return -1;
	if (a->tls && a->tls_starttls && smtp_starttls(s, &tls, o) < 0)
		return -1;
	/* PLAIN's AUTH may ride with the first MAIL group (not for -bv,
	 * whose answers must each be the server's word on a recipient). */
	s->auth_may_wait = !d->verify_only;
	if (wants_auth(a) && authenticate(s, d, o) < 0)
		return -1;
	return 0;
}

static int connect_stream(const struct delivery *d, struct smtp_session *s,
			  struct outcome *o)
{
	struct net_error ne;
	int port = delivery_port(d->acct);
	int fd;
	char *name = helo_name(d->acct);
	smtp_session_init(s, NULL, name);
	free(name);
	set_timeouts(&s->timeouts, d->acct->timeout);
	s->trace = d->trace;
	s->trace_ctx = d->trace_ctx;
	fd = net_connect(d->acct->host, port, deadline_after(s->timeouts.connect),
			 &ne);
	if (fd < 0) {
		outcome_set(o, STAGE_CONNECT, failure_from_net(ne.failure), NULL, "%s",
			    ne.detail);
		return -1;
	}
	s->stream = stream_new(fd);
	return 0;
}

static bool too_many(const struct rcpt_result *r)
{
	return !r->accepted && r->outcome.failure == FAIL_REPLY &&
	       (r->outcome.code == 452 ||
		strcmp(r->outcome.enhanced, "4.5.3") == 0);
}

/* Send again to the recipients the server deferred for being too many,
 * until all got it or a round brings no progress. */
static void send_remaining(struct smtp_session *s, struct delivery_item *it)
{
	struct smtp_transaction_result *tx = &it->res.tx;
	for (;;) {
		struct smtp_envelope env = it->env;
		struct smtp_transaction_result more;
		const char **rcpts = xcalloc(tx->nrcpts, sizeof *rcpts);
		size_t *index = xcalloc(tx->nrcpts, sizeof *index);
		size_t n = 0;
		for (size_t i = 0; i < tx->nrcpts; i++)
			if (too_many(&tx->rcpts[i])) {
				index[n] = i;
				rcpts[n++] = tx->rcpts[i].rcpt;
			}
		env.rcpts = rcpts;
		env.nrcpts = n;
		if (n > 0)
			(void)smtp_send_mail(s, &env, it->msg, &it->emit, &more);
		for (size_t k = 0; n > 0 && k < n; k++) {
			struct rcpt_result *r = &tx->rcpts[index[k]];
			if (more.delivered && more.rcpts[k].accepted) {
				r->accepted = true;
				outcome_clear(&r->outcome);
				tx->naccepted++;
			} else if (more.rcpts[k].outcome.failure != FAIL_NONE) {
				outcome_copy(&r->outcome, &more.rcpts[k].outcome);
			} else if (more.outcome.failure != FAIL_NONE) {
				outcome_copy(&r->outcome, &more.outcome);
			}
		}
		free(rcpts);
		free(index);
		if (n == 0)
			return;
		n = more.delivered ? more.naccepted : 0;
		smtp_transaction_result_free(&more);
		if (n == 0 || s->state == SMTP_STATE_FAILED)
			return;
	}
}

/* One message on an open session; a failure is the item's alone unless
 * the connection is gone (state FAILED). */
static void transact(struct smtp_session *s, const struct delivery *d,
		     struct delivery_item *it)
{
	struct delivery_result *res = &it->res;
	int rc;
	it->attempted = true;
	if (s->state != SMTP_STATE_READY && smtp_rset(s, &res->outcome) < 0)
		return;
	if (d->verify_only) {
		rc = smtp_verify(s, &it->env, &res->tx);
	} else if (check_limits(s, &it->env, &res->outcome) < 0) {
		return;
	} else {
		rc = smtp_send_mail(s, &it->env, it->msg, &it->emit, &res->tx);
		if (rc == 0)
			send_remaining(s, it);
	}
	if (rc < 0)
		outcome_copy(&res->outcome, &res->tx.outcome);
}

/* The EHLO argument goes on the command line as it is. */
static bool name_is_safe(const char *name)
{
	for (const char *p = name; p && *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return true;
}

int deliver_batch(const struct delivery *d, struct delivery_item *items,
		  size_t n)
{
	struct smtp_session s;
	struct outcome session = { 0 };
	for (size_t i = 0; i < n; i++) {
		memset(&items[i].res, 0, sizeof items[i].res);
		items[i].attempted = false;
	}
	memset(&s, 0, sizeof s);
	if (!d->acct->host || !name_is_safe(d->acct->domain)) {
		outcome_set(&session, STAGE_CONFIG, FAIL_CONFIG, NULL,
			    !d->acct->host ? "the account \"%s\" names no host"
			    : "the account \"%s\" has a domain (EHLO name) with "
			      "spaces or control characters",
			    d->acct->name ? d->acct->name : "default");
	} else if (connect_stream(d, &s, &session) == 0 &&
		   open_session(&s, d, &session) == 0) {
		for (size_t i = 0; i < n && s.state != SMTP_STATE_FAILED; i++) {
			transact(&s, d, &items[i]);
			if (d->item_done)
				d->item_done(d->item_ctx, items, i);
			/* What ended the session (a lost connection, or a
			 * login refused with the first message's group)
			 * is the outcome of the messages it leaves unsent. */
			if (s.state == SMTP_STATE_FAILED)
				outcome_copy(&session, &items[i].res.outcome);
		}
	}
	/* Whatever stopped the session is the outcome of the items it left
	 * unsent; the first of them counts as attempted. */
	for (size_t i = 0; i < n; i++) {
		if (items[i].attempted)
			continue;
		if (session.failure == FAIL_NONE)
			outcome_set(&session, STAGE_CONNECT, FAIL_CLOSED, NULL,
				    "the connection failed before this message "
				    "was offered");
		outcome_copy(&items[i].res.outcome, &session);
	}
	if (s.stream && s.state != SMTP_STATE_FAILED)
		smtp_quit(&s);
	stream_free(s.stream);
	smtp_session_free(&s);
	outcome_clear(&session);
	return items[0].res.outcome.failure == FAIL_NONE ? 0 : -1;
}

int deliver(const struct delivery *d, struct delivery_result *res)
{
	struct delivery_item it = { .env = d->env, .msg = d->msg, .emit = d->emit };
	int rc = deliver_batch(d, &it, 1);
	*res = it.res;
	return rc;
}

void delivery_result_free(struct delivery_result *res)
{
	outcome_clear(&res->outcome);
	smtp_transaction_result_free(&res->tx);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* STARTTLS (or implicit TLS) with report_only: the handshake finishes
 * whatever the certificate, and the report says whether it verified. */
static int serverinfo_tls(struct smtp_session *s, const struct account *a,
			  struct serverinfo *si, bool implicit)
{
	struct tls_options tls;
	tls_options_from(a, &tls);
	tls.report_only = true;
	if (implicit ? smtp_implicit_tls(s, &tls, &si->outcome) < 0
		     : smtp_starttls(s, &tls, &si->outcome) < 0)
		return -1;
	si->tls_report = tls_peer_report(stream_tls(s->stream), a->host);
	return 0;
}

static void serverinfo_session(struct smtp_session *s, const struct account *a,
			       struct serverinfo *si)
{
	bool implicit = a->tls && !a->tls_starttls;
	if (implicit && serverinfo_tls(s, a, si, true) < 0)
		return;
	if (smtp_greeting(s, &si->outcome) < 0)
		return;
	si->greeting = dup_or_null(s->greeting);
	if (smtp_ehlo(s, true, &si->outcome) < 0)
		return;
	if (implicit) {
		si->ehlo_tls = dup_or_null(s->caps.raw);
		return;
	}
	si->ehlo_plain = dup_or_null(s->caps.raw);
	/* Ask for TLS whenever it is offered, even with "tls off": the point
	 * is to show what the server can do. */
	if (!s->caps.starttls)
		return;
	if (serverinfo_tls(s, a, si, false) == 0)
		si->ehlo_tls = dup_or_null(s->caps.raw);
}

int delivery_serverinfo(const struct delivery *d, struct serverinfo *si)
{
	struct smtp_session s;
	memset(si, 0, sizeof *si);
	memset(&s, 0, sizeof s);
	si->port = delivery_port(d->acct);
	if (!d->acct->host) {
		outcome_set(&si->outcome, STAGE_CONFIG, FAIL_CONFIG, NULL,
			    "the account names no host");
		return -1;
	}
	if (connect_stream(d, &s, &si->outcome) == 0)
		serverinfo_session(&s, d->acct, si);
	if (s.stream && s.state != SMTP_STATE_FAILED)
		smtp_quit(&s);
	stream_free(s.stream);
	smtp_session_free(&s);
	return si->outcome.failure == FAIL_NONE ? 0 : -1;
}

void serverinfo_free(struct serverinfo *si)
{
	free(si->greeting);
	free(si->ehlo_plain);
	free(si->ehlo_tls);
	free(si->tls_report);
	outcome_clear(&si->outcome);
	memset(si, 0, sizeof *si);
}
