/* oauth2_internal: what the OAuth2 files (oauth2.c, oauth2_http.c,
 * oauth2_store.c, oauth2_authorize.c) share with each other and with
 * tests/unit/test_oauth2.c. Not for the rest of postbote: use oauth2.h. */
#ifndef POSTBOTE_OAUTH2_INTERNAL_H
#define POSTBOTE_OAUTH2_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "oauth2.h"
#include "util.h"

/* A response body larger than this is refused: a token response is a few
 * kilobytes even with an OpenID id_token in it. */
#define OAUTH2_BODY_MAX (64 * 1024)
/* Used when a token response has no expires_in (RFC 6749 5.1 only
 * recommends it); an hour is what Google and Microsoft hand out. */
#define OAUTH2_DEFAULT_EXPIRES_IN 3600
/* A cached access token must stay valid at least this long, so that it
 * does not expire between the check and the AUTH command. */
#define OAUTH2_MIN_VALIDITY 60
/* Without "timeout" in the account: seconds to connect, and for the whole
 * request. */
#define OAUTH2_CONNECT_TIMEOUT 30
#define OAUTH2_REQUEST_TIMEOUT 60

/* The account's endpoints and scope, explicit keywords over the provider
 * preset. The strings belong to the account or to static presets. */
struct oauth2_endpoints {
	const char *provider;   /* "google", "microsoft", "custom" or NULL */
	const char *token_url;
	const char *auth_url;
	const char *device_url;
	const char *scope;
	/* Extra authorization request parameters, already encoded (Google
	 * hands out a refresh token only with access_type=offline). */
	const char *auth_extra;
	/* --oauth2-authorize picks the browser flow even without a graphical
	 * session */
	bool browser_first;
};

void oauth2_resolve(const struct account *a, struct oauth2_endpoints *e);

/* ---- encoding ---- */

/* RFC 4648 5 base64url without padding; out needs 4 * ((n + 2) / 3) + 1. */
void oauth2_base64url(const unsigned char *in, size_t n, char *out);

/* RFC 7636 4.2 S256: BASE64URL(SHA256(ASCII(verifier))). */
#define OAUTH2_CHALLENGE_LEN 43
void oauth2_pkce_challenge(const char *verifier,
			   char out[OAUTH2_CHALLENGE_LEN + 1]);

/* A new random code verifier or state: 32 random bytes in base64url
 * (43 characters, the RFC 7636 4.1 recommendation). */
void oauth2_random_string(char out[OAUTH2_CHALLENGE_LEN + 1]);

/* Lower-case hex SHA-256 of text (65 bytes with the NUL). */
void oauth2_sha256_hex(const char *text, char out[65]);

/* Load libcurl (curl_loader) and set it up: 0, or -1 with err ("OAuth2
 * needs libcurl (FILE): why"), a permanent failure. Call it before
 * oauth2_form_encode, oauth2_form_decode or oauth2_url_display, which
 * have no way to report it (they abort); oauth2_http_post calls it
 * itself. Only a run that sends a request calls it: a cached token needs
 * no libcurl. */
int oauth2_http_start(char *err, size_t errlen);

struct oauth2_field {
	const char *name;
	const char *value;      /* NULL: the field is left out */
};

/* application/x-www-form-urlencoded (name=value&...), each name and value
 * percent-encoded by libcurl. A new string: wipe with free_secret. */
char *oauth2_form_encode(const struct oauth2_field *fields, size_t n);

/* Percent-decode a form or query component ('+' is a space). NULL when
 * it decodes to a NUL byte. */
char *oauth2_form_decode(const char *text, size_t len);

/* Add to the end of an error message (truncated with "..."). */
void oauth2_append(char *err, size_t errlen, const char *fmt, ...)
	PRINTF_LIKE(3, 4);

/* Copy text into out for an error message: every occurrence of a string
 * in secrets (a NULL-terminated list) replaced by "<redacted>", then
 * control characters made visible, truncated with "...". */
void oauth2_visible(char *out, size_t outlen, const char *text, size_t len,
		    const char *const *secrets);

/* Free a parsed JSON object (json-c) after overwriting its top-level
 * string values, which may be tokens. */
struct json_object;
void oauth2_json_free(struct json_object *o);

/* ---- HTTPS (oauth2_http.c) ---- */

struct oauth2_http_reply {
	long status;            /* HTTP status code */
	char *body;             /* NUL-terminated; wipe with free_secret */
	size_t len;
};

/* POST form to url (what names the endpoint in messages: "token
 * endpoint"). OAUTH2_OK means an HTTP answer of any status arrived. */
enum oauth2_status oauth2_http_post(const struct account *a, const char *url,
				    const char *what, const char *form,
				    struct oauth2_http_reply *reply, char *err,
				    size_t errlen);
void oauth2_http_reply_free(struct oauth2_http_reply *reply);

/* The URL without user information, query and fragment, for messages. */
void oauth2_url_display(const char *url, char *out, size_t outlen);

/* ---- responses (oauth2.c) ---- */

#define OAUTH2_ERROR_CODE_MAX 64

struct oauth2_token_reply {
	char *access_token;     /* wipe with free_secret */
	char *refresh_token;    /* NULL when none came */
	long expires_in;
	/* the "error" of a refused request, made visible ("" otherwise):
	 * the device flow looks for authorization_pending and slow_down */
	char error[OAUTH2_ERROR_CODE_MAX];
};

/* Classify a token endpoint answer (RFC 6749 5.1 and 5.2). secrets are
 * the credentials the request carried, kept out of err. */
enum oauth2_status oauth2_parse_token_reply(long status, const char *body,
					    size_t len, const char *endpoint,
					    const char *const *secrets,
					    struct oauth2_token_reply *r,
					    char *err, size_t errlen);
void oauth2_token_reply_free(struct oauth2_token_reply *r);

/* POST form to the token endpoint and classify the answer. */
enum oauth2_status oauth2_token_request(const struct account *a,
					const char *token_url, const char *form,
					const char *const *secrets,
					struct oauth2_token_reply *r, char *err,
					size_t errlen);

struct oauth2_device_reply {
	char *device_code;      /* wipe with free_secret */
	char *user_code;
	char *verification_uri;
	char *verification_uri_complete; /* or NULL */
	long expires_in;
	long interval;
};

/* Classify a device authorization answer (RFC 8628 3.2). */
enum oauth2_status oauth2_parse_device_reply(long status, const char *body,
					     size_t len, const char *endpoint,
					     struct oauth2_device_reply *d,
					     char *err, size_t errlen);
void oauth2_device_reply_free(struct oauth2_device_reply *d);

/* The client secret from oauth2_client_secret or
 * oauth2_client_secret_eval: 0 with *secret a new string or NULL (a
 * public client), or -1 with err. */
int oauth2_client_secret(const struct account *a, char **secret, char *err,
			 size_t errlen);

/* ---- the token store (oauth2_store.c) ---- */

struct oauth2_store_data {
	char *access_token;     /* NULL: none cached */
	long long expires_at;   /* seconds since the epoch */
	char *refresh_token;    /* from --oauth2-authorize or rotated; NULL */
	/* "sha256:HEX" of the configured oauth2_refresh_token(_eval) the
	 * tokens above come from; NULL when they come from
	 * --oauth2-authorize */
	char *refresh_source;
};

/* Parse the store's JSON (text NUL-terminated at len); an empty text is
 * an empty store. */
int oauth2_store_parse(const char *text, size_t len,
		       struct oauth2_store_data *d, char *err, size_t errlen);
/* The store's JSON; a new string (wipe with free_secret). */
char *oauth2_store_format(const struct oauth2_store_data *d);
void oauth2_store_data_free(struct oauth2_store_data *d);

/* "ACCOUNT-HASH.json": the account name made safe for a file name and
 * 12 hex digits of SHA-256 over the token URL, client id and user, so
 * that different identities never share a store. */
char *oauth2_store_file_name(const struct account *a);

/* $XDG_STATE_HOME/postbote/oauth2, else ~/.local/state/postbote/oauth2. */
char *oauth2_store_default_dir(char *err, size_t errlen);

/* Lock the store (flock, exclusive; waits for another postbote). */
int oauth2_store_lock(int fd, char *err, size_t errlen);
/* Lock the store and read it. -1 with err (then it is not locked). */
int oauth2_store_lock_read(int fd, struct oauth2_store_data *d, char *err,
			   size_t errlen);
/* Replace the store's content (the lock is kept). -1 with err. */
int oauth2_store_write(int fd, const struct oauth2_store_data *d, char *err,
		       size_t errlen);
void oauth2_store_unlock(int fd);

/* The store's path for messages (from /proc/self/fd). */
void oauth2_store_path(int fd, char *out, size_t outlen);

/* ---- the loopback redirect (oauth2_authorize.c) ---- */

struct oauth2_callback {
	char *code;             /* wipe with free_secret */
	char *state;
	char *error;
	char *error_description;
};

enum oauth2_request_kind {
	OAUTH2_REQUEST_INCOMPLETE,  /* the request head has not all arrived */
	OAUTH2_REQUEST_OTHER,       /* not the redirect (favicon, bad method) */
	OAUTH2_REQUEST_CALLBACK,    /* GET / with code or error: cb filled in */
};

/* Look at the head of an HTTP request that came to the redirect URI. */
enum oauth2_request_kind oauth2_parse_callback(const char *head, size_t len,
					       struct oauth2_callback *cb);
void oauth2_callback_free(struct oauth2_callback *cb);

#endif
