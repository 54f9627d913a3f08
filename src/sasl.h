/* sasl: SASL client mechanisms through libgsasl, and postbote's own choice
 * of mechanism. */
#ifndef POSTBOTE_SASL_H
#define POSTBOTE_SASL_H

#include <stdbool.h>
#include <stddef.h>

struct tls_session;

struct sasl_params {
	const char *user;
	const char *password;
	const char *service;       /* "smtp" */
	const char *host;          /* server host name (DIGEST-MD5, GSSAPI) */
	struct tls_session *tls;   /* channel binding for -PLUS, or NULL */
};

struct sasl_client;

/* Pick a mechanism from the server's space-separated list. forced is NULL
 * (our preference order) or a name the user asked for. Mechanisms that
 * send the password in a readable form are only chosen with TLS. Returns a
 * static name, or NULL with the reason in err. */
const char *sasl_choose_mechanism(const char *offered, const char *forced,
				  bool tls_active, char *err, size_t errlen);

/* True for mechanisms whose client speaks first (initial response). */
bool sasl_mechanism_sends_first(const char *mech);

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
void sasl_client_free(struct sasl_client *c);

/* For --version: the library version and its client mechanisms. */
const char *sasl_library_version(void);
char *sasl_available_mechanisms(void);

#endif
