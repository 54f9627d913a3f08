/* sasl: SASL client mechanisms through libgsasl, and postbote's own choice
 * of mechanism. */
#ifndef POSTBOTE_SASL_H
#define POSTBOTE_SASL_H

#include <stdbool.h>
#include <stddef.h>

struct tls_session;

/* What a mechanism authenticates with. */
enum sasl_credential {
	SASL_CRED_PASSWORD,  /* the SCRAM family, PLAIN, LOGIN, CRAM/DIGEST-MD5 */
	SASL_CRED_TICKET,    /* GSSAPI, GS2-KRB5: a Kerberos ticket */
	SASL_CRED_CERT,      /* EXTERNAL: the TLS client certificate */
	SASL_CRED_TOKEN,     /* OAUTHBEARER, XOAUTH2: an OAuth2 access token */
};

struct sasl_params {
	const char *user;
	const char *password;      /* for SASL_CRED_PASSWORD mechanisms */
	const char *token;         /* for SASL_CRED_TOKEN mechanisms */
	const char *service;       /* "smtp" */
	const char *host;          /* server host name (DIGEST-MD5, GSSAPI, */
	int port;                  /* OAUTHBEARER) and port (OAUTHBEARER) */
	struct tls_session *tls;   /* channel binding for -PLUS, or NULL */
};

/* Which kinds of credential can be had for this account. */
struct sasl_available {
	bool password;
	bool ticket;    /* try Kerberos (whether a ticket exists shows when
			 * the mechanism starts: sasl_client_new fails) */
	bool cert;      /* a TLS client certificate is configured */
	bool token;     /* an OAuth2 access token can be had */
};

struct sasl_client;

/* Pick a mechanism from the server's space-separated list. forced is NULL
 * (postbote's order: strongest first, among those whose credential is
 * available and not in the space-separated list skip) or a name the user
 * asked for. Mechanisms that reveal the secret (PLAIN, LOGIN, OAuth2
 * tokens) are only chosen with TLS. Returns a static name, or NULL with
 * the reason in err. */
const char *sasl_choose_mechanism(const char *offered, const char *forced,
				  bool tls_active,
				  const struct sasl_available *avail,
				  const char *skip, char *err, size_t errlen);

/* The credential a mechanism needs (SASL_CRED_PASSWORD for unknown). */
enum sasl_credential sasl_mechanism_credential(const char *mech);

/* True for mechanisms whose client speaks first (initial response). */
bool sasl_mechanism_sends_first(const char *mech);

/* Start a mechanism. For Kerberos the first step runs here, so that a
 * missing ticket shows before anything is sent. */
int sasl_client_new(const char *mech, const struct sasl_params *params,
		    struct sasl_client **out, char *err, size_t errlen);
/* One step: input is the server's base64 challenge (NULL for the initial
 * response); *output is a new base64 string (wipe with free_secret).
 * Returns 0 when the mechanism is done on our side, 1 when it expects more,
 * -1 on failure (err says why). */
int sasl_client_step(struct sasl_client *c, const char *input, char **output,
		     char *err, size_t errlen);
/* An initial response that did not fit on the AUTH line: hand it out at
 * the next step instead (RFC 4954 4). Takes ownership of data. */
void sasl_client_keep_pending(struct sasl_client *c, char *data);
/* The error the server sent as an OAUTHBEARER/XOAUTH2 challenge (RFC 7628
 * 3.2.2), decoded and made visible, or NULL. */
const char *sasl_client_server_error(const struct sasl_client *c);
void sasl_client_free(struct sasl_client *c);

/* The OAuth2 messages, before base64: XOAUTH2 "user=U^Aauth=Bearer
 * T^A^A"; OAUTHBEARER (RFC 7628 3.1) "n,a=U,^Ahost=H^Aport=P^Aauth=Bearer
 * T^A^A". New strings; wipe with free_secret. */
char *sasl_xoauth2_message(const char *user, const char *token);
char *sasl_oauthbearer_message(const char *user, const char *host, int port,
			       const char *token);

/* For --version: the library version and its client mechanisms. */
const char *sasl_library_version(void);
char *sasl_available_mechanisms(void);

#endif
