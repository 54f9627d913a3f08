#include "autoconf.h"
#include "sasl.h"

#include <gsasl.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "util.h"

/* Strongest first. SCRAM never reveals the password to the server; the
 * -PLUS variants also bind the exchange to this TLS channel (RFC 5802 6).
 * PLAIN and LOGIN hand over the password and are only used under TLS;
 * CRAM-MD5 and DIGEST-MD5 (RFC 6331: obsolete) come last. */
struct mechanism {
	const char *name;
	bool needs_tls;     /* sends the password in a readable form */
	bool needs_cb;      /* needs TLS channel binding */
	bool client_first;
};

static const struct mechanism mechanisms[] = {
	{ "SCRAM-SHA-256-PLUS", false, true, true },
	{ "SCRAM-SHA-1-PLUS", false, true, true },
	{ "SCRAM-SHA-256", false, false, true },
	{ "SCRAM-SHA-1", false, false, true },
	{ "PLAIN", true, false, true },
	{ "LOGIN", true, false, false },
	{ "CRAM-MD5", false, false, false },
	{ "DIGEST-MD5", false, false, false },
};
#define NMECH (sizeof mechanisms / sizeof mechanisms[0])

struct sasl_client {
	Gsasl *ctx;
	Gsasl_session *session;
	char *pending;
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
		format_into(err, errlen, "%s would expose the password: it is "
			    "only used over TLS", m->name);
		return NULL;
	}
	if (!offered_has(offered, m->name)) {
		format_into(err, errlen, "the server does not offer %s (it offers: %s)",
			    m->name, offered[0] ? offered : "no mechanisms");
		return NULL;
	}
	return m->name;
}

const char *sasl_choose_mechanism(const char *offered, const char *forced,
				  bool tls_active, char *err, size_t errlen)
{
	if (!offered)
		offered = "";
	if (forced)
		return choose_forced(offered, forced, tls_active, err, errlen);
	for (size_t i = 0; i < NMECH; i++)
		if (usable(&mechanisms[i], tls_active) &&
		    offered_has(offered, mechanisms[i].name))
			return mechanisms[i].name;
	if (offered[0] == '\0')
		format_into(err, errlen, "the server does not offer authentication");
	else
		format_into(err, errlen, "no usable authentication mechanism: the "
			    "server offers %s%s", offered,
			    tls_active ? "" : " (without TLS, only the SCRAM "
			    "mechanisms are used)");
	return NULL;
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

int sasl_client_new(const char *mech, const struct sasl_params *params,
		    struct sasl_client **out, char *err, size_t errlen)
{
	const struct mechanism *m = find_mechanism(mech);
	struct sasl_client *c = xcalloc(1, sizeof *c);
	int rc = gsasl_init(&c->ctx);
	*out = NULL;
	if (rc == GSASL_OK)
		rc = gsasl_client_start(c->ctx, mech, &c->session);
	if (rc != GSASL_OK) {
		format_into(err, errlen, "SASL %s: %s", mech, gsasl_strerror(rc));
		sasl_client_free(c);
		return -1;
	}
	gsasl_property_set(c->session, GSASL_AUTHID, params->user);
	gsasl_property_set(c->session, GSASL_PASSWORD, params->password);
	gsasl_property_set(c->session, GSASL_SERVICE, params->service);
	gsasl_property_set(c->session, GSASL_HOSTNAME, params->host);
	/* Channel binding goes only to the mechanisms that use it. */
	if (m && m->needs_cb &&
	    set_channel_binding(c->session, params->tls, err, errlen) < 0) {
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

void sasl_client_free(struct sasl_client *c)
{
	if (!c)
		return;
	if (c->session)
		gsasl_finish(c->session);
	if (c->ctx)
		gsasl_done(c->ctx);
	free_secret(c->pending);
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
	copy = xstrdup(list);
	gsasl_free(list);
	gsasl_done(ctx);
	return copy;
}
