#include "autoconf.h"
#include "sasl.h"

#include <gsasl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "util.h"

/* Strongest first. SCRAM never reveals the password to the server; the
 * -PLUS variants also bind the exchange to this TLS channel (RFC 5802 6).
 * PLAIN and LOGIN hand over the password and are only used under TLS;
 * CRAM-MD5 and DIGEST-MD5 (RFC 6331: obsolete) come last among the
 * password mechanisms. Kerberos, a client certificate and OAuth2 tokens
 * are other credentials: they are chosen when that credential is there.
 * OAuth2 bearer tokens are as good as a password to whoever reads them,
 * so they need TLS too. */
struct mechanism {
	const char *name;
	enum sasl_credential cred;
	bool needs_tls;     /* reveals the secret, or only exists under TLS */
	bool needs_cb;      /* needs TLS channel binding */
	bool client_first;
	bool own;           /* formatted by postbote: libgsasl lacks it */
};

static const struct mechanism mechanisms[] = {
	{ "SCRAM-SHA-256-PLUS", SASL_CRED_PASSWORD, false, true, true, false },
	{ "SCRAM-SHA-1-PLUS", SASL_CRED_PASSWORD, false, true, true, false },
	{ "SCRAM-SHA-256", SASL_CRED_PASSWORD, false, false, true, false },
	{ "SCRAM-SHA-1", SASL_CRED_PASSWORD, false, false, true, false },
	{ "PLAIN", SASL_CRED_PASSWORD, true, false, true, false },
	{ "LOGIN", SASL_CRED_PASSWORD, true, false, false, false },
	{ "CRAM-MD5", SASL_CRED_PASSWORD, false, false, false, false },
	{ "DIGEST-MD5", SASL_CRED_PASSWORD, false, false, false, false },
	{ "GS2-KRB5", SASL_CRED_TICKET, false, false, true, false },
	{ "GSSAPI", SASL_CRED_TICKET, false, false, true, false },
	{ "EXTERNAL", SASL_CRED_CERT, true, false, true, false },
	{ "OAUTHBEARER", SASL_CRED_TOKEN, true, false, true, true },
	{ "XOAUTH2", SASL_CRED_TOKEN, true, false, true, true },
};
#define NMECH (sizeof mechanisms / sizeof mechanisms[0])

struct sasl_client {
	const struct mechanism *m;
	Gsasl *ctx;
	Gsasl_session *session;
	char *pending;          /* base64, handed out at the next step */
	char *server_error;     /* decoded OAuth2 error challenge */
};

static const struct mechanism *find_mechanism(const char *name)
{
	for (size_t i = 0; i < NMECH; i++)
		if (ascii_casecmp(mechanisms[i].name, name) == 0)
			return &mechanisms[i];
	return NULL;
}

static bool offered_has(const char *offered, const char *mech)
{
	size_t n = strlen(mech);
	const char *p = offered;
	while (p && *p) {
		while (*p == ' ')
			p++;
		if (ascii_ncasecmp(p, mech, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
		p = strchr(p, ' ');
	}
	return false;
}

static bool usable(const struct mechanism *m, bool tls_active)
{
	return (!m->needs_tls || tls_active) && (!m->needs_cb || tls_active);
}

static bool have_credential(const struct mechanism *m,
			    const struct sasl_available *avail)
{
	switch (m->cred) {
	case SASL_CRED_PASSWORD: return avail->password;
	case SASL_CRED_TICKET: return avail->ticket;
	case SASL_CRED_CERT: return avail->cert;
	case SASL_CRED_TOKEN: return avail->token;
	}
	return false;
}

static const char *credential_name(enum sasl_credential cred)
{
	switch (cred) {
	case SASL_CRED_PASSWORD: return "a password (password, passwordeval, "
		"password_env, password_file, ~/.netrc or secret-tool, or a "
		"terminal to ask on)";
	case SASL_CRED_TICKET: return "a Kerberos ticket";
	case SASL_CRED_CERT: return "a TLS client certificate (tls_cert_file)";
	case SASL_CRED_TOKEN: return "an OAuth2 access token";
	}
	return "";
}

static const char *choose_forced(const char *offered, const char *forced,
				 bool tls_active, char *err, size_t errlen)
{
	const struct mechanism *m = find_mechanism(forced);
	if (!m) {
		format_into(err, errlen, "authentication mechanism %s is not "
			    "supported by postbote", forced);
		return NULL;
	}
	if (!usable(m, tls_active)) {
		format_into(err, errlen, "%s would expose %s: it is only used "
			    "over TLS", m->name, m->cred == SASL_CRED_TOKEN
			    ? "the access token" : m->cred == SASL_CRED_CERT
			    ? "nothing, but needs TLS for the certificate"
			    : "the password");
		return NULL;
	}
	if (!offered_has(offered, m->name)) {
		format_into(err, errlen, "the server does not offer %s (it offers: %s)",
			    m->name, offered[0] ? offered : "no mechanisms");
		return NULL;
	}
	return m->name;
}

/* Why nothing could be chosen: name what is missing. */
static void explain_no_choice(const char *offered, bool tls_active,
			      const char *skip, char *err, size_t errlen)
{
	const struct mechanism *wanted = NULL;
	if (offered[0] == '\0') {
		format_into(err, errlen, "the server does not offer authentication");
		return;
	}
	for (size_t i = 0; i < NMECH && !wanted; i++)
		if (offered_has(offered, mechanisms[i].name) &&
		    !offered_has(skip, mechanisms[i].name) &&
		    usable(&mechanisms[i], tls_active))
			wanted = &mechanisms[i];
	if (wanted)
		format_into(err, errlen, "no usable authentication mechanism: the "
			    "server offers %s; %s needs %s, which is not "
			    "configured", offered, wanted->name,
			    credential_name(wanted->cred));
	else
		format_into(err, errlen, "no usable authentication mechanism: the "
			    "server offers %s%s", offered,
			    tls_active ? "" : " (without TLS, only the SCRAM "
			    "mechanisms are used)");
}

const char *sasl_choose_mechanism(const char *offered, const char *forced,
				  bool tls_active,
				  const struct sasl_available *avail,
				  const char *skip, char *err, size_t errlen)
{
	if (!offered)
		offered = "";
	if (!skip)
		skip = "";
	if (forced)
		return choose_forced(offered, forced, tls_active, err, errlen);
	for (size_t i = 0; i < NMECH; i++)
		if (usable(&mechanisms[i], tls_active) &&
		    have_credential(&mechanisms[i], avail) &&
		    offered_has(offered, mechanisms[i].name) &&
		    !offered_has(skip, mechanisms[i].name))
			return mechanisms[i].name;
	explain_no_choice(offered, tls_active, skip, err, errlen);
	return NULL;
}

enum sasl_credential sasl_mechanism_credential(const char *mech)
{
	const struct mechanism *m = find_mechanism(mech);
	return m ? m->cred : SASL_CRED_PASSWORD;
}

bool sasl_mechanism_sends_first(const char *mech)
{
	const struct mechanism *m = find_mechanism(mech);
	return m && m->client_first;
}

static int set_channel_binding(Gsasl_session *session, struct tls_session *tls,
			       char *err, size_t errlen)
{
	bool exporter = false;
	char *cb = tls ? tls_channel_binding_b64(tls, &exporter) : NULL;
	if (!cb) {
		format_into(err, errlen, "no TLS channel binding data is available");
		return -1;
	}
	gsasl_property_set(session, exporter ? GSASL_CB_TLS_EXPORTER
					     : GSASL_CB_TLS_UNIQUE, cb);
	free(cb);
	return 0;
}

/* RFC 7628 3.1: in the GS2 header's authzid, ',' and '=' are escaped. */
static char *gs2_escape(const char *user)
{
	char *out = xmalloc(strlen(user) * 3 + 1), *o = out;
	for (const char *p = user; *p; p++) {
		if (*p == ',' || *p == '=') {
			memcpy(o, *p == ',' ? "=2C" : "=3D", 3);
			o += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

char *sasl_xoauth2_message(const char *user, const char *token)
{
	return xasprintf("user=%s\001auth=Bearer %s\001\001", user, token);
}

char *sasl_oauthbearer_message(const char *user, const char *host, int port,
			       const char *token)
{
	char *authzid = gs2_escape(user);
	char *msg = xasprintf("n,a=%s,\001host=%s\001port=%d\001auth=Bearer "
			      "%s\001\001", authzid, host, port, token);
	free(authzid);
	return msg;
}

static char *base64_of(const char *data, size_t len)
{
	char *b64 = NULL, *copy;
	size_t b64len;
	if (gsasl_base64_to(data, len, &b64, &b64len) != GSASL_OK)
		return NULL;
	copy = xstrdup(b64);
	explicit_bzero(b64, b64len);
	gsasl_free(b64);
	return copy;
}

static bool valid_token_text(const char *s)
{
	/* RFC 6750 2.1 b64token; anything else would break the message. */
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || strchr("-._~+/=", *s)))
			return false;
	return true;
}

static int own_start(struct sasl_client *c, const struct sasl_params *p,
		     char *err, size_t errlen)
{
	char *msg;
	if (!p->token || !p->token[0]) {
		format_into(err, errlen, "%s needs an OAuth2 access token",
			    c->m->name);
		return -1;
	}
	if (!valid_token_text(p->token)) {
		format_into(err, errlen, "the OAuth2 access token contains "
			    "characters a bearer token cannot have (is "
			    "passwordeval printing something else?)");
		return -1;
	}
	if (strpbrk(p->user, "\001\r\n")) {
		format_into(err, errlen, "the user name contains a control "
			    "character");
		return -1;
	}
	msg = strcmp(c->m->name, "XOAUTH2") == 0
	      ? sasl_xoauth2_message(p->user, p->token)
	      : sasl_oauthbearer_message(p->user, p->host, p->port, p->token);
	c->pending = base64_of(msg, strlen(msg));
	free_secret(msg);
	if (!c->pending) {
		format_into(err, errlen, "%s: cannot encode the response",
			    c->m->name);
		return -1;
	}
	return 0;
}

static void keep_server_error(struct sasl_client *c, const char *b64)
{
	char *raw = NULL;
	size_t len = 0;
	json_object *obj = NULL;
	const char *text;
	char *shown;
	free(c->server_error);
	c->server_error = NULL;
	char *decoded;
	if (gsasl_base64_from(b64, strlen(b64), &raw, &len) != GSASL_OK)
		return;
	/* Decoded data is not NUL-terminated. */
	decoded = xstrndup(raw, len);
	gsasl_free(raw);
	raw = decoded;
	/* RFC 7628 3.2.2: a JSON object with status, scope and
	 * openid-configuration; XOAUTH2 servers send the same shape. */
	obj = json_tokener_parse(raw);
	text = obj && json_object_is_type(obj, json_type_object)
	       ? json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
						JSON_C_TO_STRING_NOSLASHESCAPE)
	       : raw;
	shown = xmalloc(strlen(text) * 4 + 1);
	make_visible(shown, strlen(text) * 4 + 1, text, strlen(text));
	c->server_error = shown;
	json_object_put(obj);
	free(raw);
}

/* After the initial response, a challenge can only be the server's error
 * report; RFC 7628 3.2.3: answer it with a single %x01 (XOAUTH2: an empty
 * line) and the server then sends its failure reply. */
static int own_step(struct sasl_client *c, const char *input, char **output,
		    char *err, size_t errlen)
{
	if (c->pending) {
		*output = c->pending;
		c->pending = NULL;
		return 0;
	}
	keep_server_error(c, input);
	*output = xstrdup(strcmp(c->m->name, "XOAUTH2") == 0 ? "" : "AQ==");
	return 0;
}

/* Kerberos: run the first step now. Without a usable ticket
 * gss_init_sec_context fails here, before AUTH is sent, and auth on can
 * go on to another mechanism. */
static int prime_kerberos(struct sasl_client *c, char *err, size_t errlen)
{
	char *out = NULL;
	int rc = gsasl_step64(c->session, "", &out);
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		/* gsasl_strerror() adds nothing here but length. */
		format_into(err, errlen, "%s: no usable Kerberos ticket for this "
			    "server (see klist; kinit gets one)", c->m->name);
		gsasl_free(out);
		return -1;
	}
	c->pending = xstrdup(out ? out : "");
	gsasl_free(out);
	return 0;
}

int sasl_client_new(const char *mech, const struct sasl_params *params,
		    struct sasl_client **out, char *err, size_t errlen)
{
	const struct mechanism *m = find_mechanism(mech);
	struct sasl_client *c = xcalloc(1, sizeof *c);
	int rc;
	*out = NULL;
	c->m = m;
	if (m && m->own) {
		if (own_start(c, params, err, errlen) < 0) {
			sasl_client_free(c);
			return -1;
		}
		*out = c;
		return 0;
	}
	rc = gsasl_init(&c->ctx);
	if (rc == GSASL_OK)
		rc = gsasl_client_start(c->ctx, mech, &c->session);
	if (rc != GSASL_OK) {
		format_into(err, errlen, "SASL %s: %s", mech, gsasl_strerror(rc));
		sasl_client_free(c);
		return -1;
	}
	if (params->user && params->user[0])
		gsasl_property_set(c->session, GSASL_AUTHID, params->user);
	if (params->password)
		gsasl_property_set(c->session, GSASL_PASSWORD, params->password);
	gsasl_property_set(c->session, GSASL_SERVICE, params->service);
	gsasl_property_set(c->session, GSASL_HOSTNAME, params->host);
	/* Channel binding goes only to the mechanisms that use it. */
	if ((m && m->needs_cb &&
	     set_channel_binding(c->session, params->tls, err, errlen) < 0) ||
	    (m && m->cred == SASL_CRED_TICKET &&
	     prime_kerberos(c, err, errlen) < 0)) {
		sasl_client_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int sasl_client_step(struct sasl_client *c, const char *input, char **output,
		     char *err, size_t errlen)
{
	char *out = NULL;
	int rc;
	if (c->m && c->m->own)
		return own_step(c, input ? input : "", output, err, errlen);
	if (c->pending) {
		*output = c->pending;
		c->pending = NULL;
		return 1;
	}
	rc = gsasl_step64(c->session, input ? input : "", &out);
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		format_into(err, errlen, "SASL: %s", gsasl_strerror(rc));
		gsasl_free(out);
		return -1;
	}
	*output = xstrdup(out ? out : "");
	if (out) {
		explicit_bzero(out, strlen(out));
		gsasl_free(out);
	}
	return rc == GSASL_OK ? 0 : 1;
}

void sasl_client_keep_pending(struct sasl_client *c, char *data)
{
	free_secret(c->pending);
	c->pending = data;
}

const char *sasl_client_server_error(const struct sasl_client *c)
{
	return c->server_error;
}

void sasl_client_free(struct sasl_client *c)
{
	if (!c)
		return;
	if (c->session)
		gsasl_finish(c->session);
	if (c->ctx)
		gsasl_done(c->ctx);
	free_secret(c->pending);
	free(c->server_error);
	free(c);
}

const char *sasl_library_version(void)
{
	return gsasl_check_version(NULL);
}

char *sasl_available_mechanisms(void)
{
	Gsasl *ctx;
	char *list = NULL, *copy;
	if (gsasl_init(&ctx) != GSASL_OK)
		return xstrdup("");
	if (gsasl_client_mechlist(ctx, &list) != GSASL_OK) {
		gsasl_done(ctx);
		return xstrdup("");
	}
	copy = xasprintf("%s OAUTHBEARER XOAUTH2", list);
	gsasl_free(list);
	gsasl_done(ctx);
	return copy;
}
