/* oauth2: provider presets, the account check, token and device
 * authorization responses (RFC 6749 5, RFC 8628 3.2) and the access token
 * for a send: cached, or from the refresh-token grant (RFC 6749 6).
 * HTTPS is in oauth2_http.c, the token store in oauth2_store.c, the first
 * authorisation in oauth2_authorize.c. */
#include "autoconf.h"
#include "oauth2.h"

#include <errno.h>
#include <stdarg.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compose.h"
#include "oauth2_internal.h"
#include "secret.h"
#include "util.h"

/* Longest piece of a response body quoted in a message. */
#define SNIPPET_MAX 160

/* ---- presets ---- */

static const struct oauth2_endpoints presets[] = {
	{ .provider = "google",
	  .token_url = "https://oauth2.googleapis.com/token",
	  .auth_url = "https://accounts.google.com/o/oauth2/v2/auth",
	  .device_url = "https://oauth2.googleapis.com/device/code",
	  .scope = "https://mail.google.com/",
	  /* a refresh token comes only with offline access, and again on
	   * a repeated authorisation only with the consent screen */
	  .auth_extra = "access_type=offline&prompt=consent",
	  /* Google's device flow does not grant the mail scope */
	  .browser_first = true },
	{ .provider = "microsoft",
	  .token_url = "https://login.microsoftonline.com/common/oauth2/v2.0/token",
	  .auth_url = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
	  .device_url = "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
	  /* offline_access asks for the refresh token */
	  .scope = "https://outlook.office.com/SMTP.Send offline_access" },
};

bool oauth2_configured(const struct account *a)
{
	return a->oauth2_provider || a->oauth2_token_url;
}

static void override(const char **value, const char *explicit)
{
	if (explicit)
		*value = explicit;
}

void oauth2_resolve(const struct account *a, struct oauth2_endpoints *e)
{
	memset(e, 0, sizeof *e);
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (a->oauth2_provider && strcmp(a->oauth2_provider,
						 presets[i].provider) == 0)
			*e = presets[i];
	e->provider = a->oauth2_provider;
	override(&e->token_url, a->oauth2_token_url);
	override(&e->auth_url, a->oauth2_auth_url);
	override(&e->device_url, a->oauth2_device_url);
	override(&e->scope, a->oauth2_scope);
}

int oauth2_check_account(const struct account *a, char *err, size_t errlen)
{
	struct oauth2_endpoints e;
	oauth2_resolve(a, &e);
	if (!oauth2_configured(a)) {
		format_into(err, errlen, "OAuth2 is not configured (set "
			    "oauth2_provider, or oauth2_token_url)");
		return -1;
	}
	if (!e.token_url) {
		format_into(err, errlen, "oauth2_provider %s needs "
			    "oauth2_token_url", e.provider);
		return -1;
	}
	if (!a->oauth2_client_id) {
		format_into(err, errlen, "oauth2_client_id is missing (the id of "
			    "the application registered with the provider)");
		return -1;
	}
	if (a->oauth2_client_secret && a->oauth2_client_secret_eval) {
		format_into(err, errlen, "both oauth2_client_secret and "
			    "oauth2_client_secret_eval are set; keep one");
		return -1;
	}
	if (a->oauth2_refresh_token && a->oauth2_refresh_token_eval) {
		format_into(err, errlen, "both oauth2_refresh_token and "
			    "oauth2_refresh_token_eval are set; keep one");
		return -1;
	}
	return 0;
}

/* ---- encoding ---- */

void oauth2_base64url(const unsigned char *in, size_t n, char *out)
{
	size_t len = base64_encode(in, n, out);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

void oauth2_pkce_challenge(const char *verifier,
			   char out[OAUTH2_CHALLENGE_LEN + 1])
{
	unsigned char digest[32];
	char b64[45];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, verifier, strlen(verifier), digest);
	oauth2_base64url(digest, sizeof digest, b64);
	memcpy(out, b64, OAUTH2_CHALLENGE_LEN + 1);
}

void oauth2_random_string(char out[OAUTH2_CHALLENGE_LEN + 1])
{
	unsigned char bytes[32];
	char b64[45];
	if (gnutls_rnd(GNUTLS_RND_KEY, bytes, sizeof bytes) != 0) {
		/* Without randomness there is no safe verifier or state. */
		fputs("postbote: no random numbers from GnuTLS\n", stderr);
		abort();
	}
	oauth2_base64url(bytes, sizeof bytes, b64);
	memcpy(out, b64, OAUTH2_CHALLENGE_LEN + 1);
	explicit_bzero(bytes, sizeof bytes);
	explicit_bzero(b64, sizeof b64);
}

void oauth2_sha256_hex(const char *text, char out[65])
{
	unsigned char digest[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), digest);
	for (size_t i = 0; i < sizeof digest; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* The length of the secret that text starts with, or 0. */
static size_t secret_at(const char *text, size_t len,
			const char *const *secrets)
{
	for (size_t i = 0; secrets && secrets[i]; i++) {
		size_t n = strlen(secrets[i]);
		if (n > 0 && n <= len && memcmp(text, secrets[i], n) == 0)
			return n;
	}
	return 0;
}

void oauth2_visible(char *out, size_t outlen, const char *text, size_t len,
		    const char *const *secrets)
{
	static const char mark[] = "<redacted>";
	char *copy = xmalloc(len * (sizeof mark - 1) + 1);
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t n = secret_at(text + i, len - i, secrets);
		if (n) {
			memcpy(copy + o, mark, sizeof mark - 1);
			o += sizeof mark - 1;
			i += n;
		} else {
			copy[o++] = text[i++];
		}
	}
	make_visible(out, outlen, copy, o);
	explicit_bzero(copy, o);
	free(copy);
}

void oauth2_append(char *err, size_t errlen, const char *fmt, ...)
{
	char text[512];
	size_t used = strlen(err);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	format_into(err + used, errlen - used, "%s", text);
}

/* ---- JSON answers ---- */

/* The body as a JSON object, or NULL (not JSON, or another JSON type). */
static struct json_object *json_object_from(const char *body, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	size_t end;
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, body, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (o && json_tokener_get_error(tok) == json_tokener_success)
		while (end < len && strchr(" \t\r\n", body[end]))
			end++;
	if (o && (end != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* The string members are overwritten before the object is freed: they
 * may be tokens. */
void oauth2_json_free(struct json_object *o)
{
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return;
	}
	json_object_object_foreach(o, key, val) {
		(void)key;
		if (json_object_is_type(val, json_type_string))
			explicit_bzero((char *)json_object_get_string(val),
				       (size_t)json_object_get_string_len(val));
	}
	json_object_put(o);
}

/* A member's string value, or NULL when absent, null or not a string. */
static const char *json_string_member(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A non-negative whole number given as a JSON number or a string of
 * digits (some providers quote expires_in). 1 when absent, 0 when read
 * into *value, -1 when it is something else. */
static int json_seconds_member(struct json_object *o, const char *key,
			       long *value)
{
	struct json_object *v;
	const char *s;
	char *end;
	long n;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 1;
	if (json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);
		if (!(d >= 0 && d <= 1e9))     /* NaN too */
			return -1;
		*value = (long)d;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (*end || errno || n > 1000000000L)
		return -1;
	*value = n;
	return 0;
}

/* The member names, for a message about an answer that lacks one. */
static void member_names(struct json_object *o, char *out, size_t outlen)
{
	size_t used = 0;
	out[0] = '\0';
	json_object_object_foreach(o, key, val) {
		char shown[64];
		(void)val;
		make_visible(shown, sizeof shown, key, strlen(key));
		format_into(out + used, outlen - used, "%s%s", used ? ", " : "",
			    shown);
		used = strlen(out);
	}
	if (!used)
		format_into(out, outlen, "none");
}

/* 5xx and 429 (RFC 6585 4) say "later"; everything else will not change
 * by waiting. */
static enum oauth2_status status_class(long status)
{
	return status >= 500 || status == 429 ? OAUTH2_TEMPFAIL : OAUTH2_FAIL;
}

/* RFC 6749 5.2: {"error": CODE, "error_description": TEXT}. */
static enum oauth2_status refused(long status, struct json_object *o,
				  const char *endpoint, const char *const *secrets,
				  char code_out[OAUTH2_ERROR_CODE_MAX],
				  char *err, size_t errlen)
{
	const char *code = json_string_member(o, "error");
	const char *text = json_string_member(o, "error_description");
	char description[400] = "";
	oauth2_visible(code_out, OAUTH2_ERROR_CODE_MAX, code, strlen(code),
		       secrets);
	if (text)
		oauth2_visible(description, sizeof description, text,
			       strlen(text), secrets);
	format_into(err, errlen, "the %s answered HTTP %ld %s%s%s%s", endpoint,
		    status, code_out, text ? " (" : "", description,
		    text ? ")" : "");
	return status_class(status);
}

/* Anything that is not a JSON object, or a JSON answer that fits neither
 * success nor RFC 6749 5.2. */
static enum oauth2_status unexpected(long status, const char *body, size_t len,
				     const char *endpoint,
				     const char *const *secrets, char *err,
				     size_t errlen)
{
	char snippet[SNIPPET_MAX];
	oauth2_visible(snippet, sizeof snippet, body, len, secrets);
	format_into(err, errlen, "the %s answered HTTP %ld with %s: \"%s\"",
		    endpoint, status, len ? "something other than the JSON "
		    "of RFC 6749" : "an empty body", snippet);
	return status_class(status);
}

/* Classify an answer: success (a JSON object from a 2xx), refusal
 * (RFC 6749 5.2), or unexpected. On success *out is the object. */
static enum oauth2_status json_answer(long status, const char *body, size_t len,
				      const char *endpoint,
				      const char *const *secrets,
				      struct json_object **out,
				      char code[OAUTH2_ERROR_CODE_MAX],
				      char *err, size_t errlen)
{
	struct json_object *o = json_object_from(body, len);
	enum oauth2_status st;
	*out = NULL;
	if (o && json_string_member(o, "error") &&
	    !json_string_member(o, "access_token"))
		st = refused(status, o, endpoint, secrets, code, err, errlen);
	else if (o && status >= 200 && status < 300) {
		*out = o;
		return OAUTH2_OK;
	} else
		st = unexpected(status, body, len, endpoint, secrets, err, errlen);
	oauth2_json_free(o);
	return st;
}

/* RFC 6750 2.1 b64token: what may follow "Bearer " and go into XOAUTH2. */
static bool is_b64token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr("-._~+/=", *s) && !(*s >= '0' && *s <= '9') &&
		    !(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z'))
			return false;
	return true;
}

static enum oauth2_status token_fields(struct json_object *o, const char *endpoint,
				       struct oauth2_token_reply *r, char *err,
				       size_t errlen)
{
	const char *access = json_string_member(o, "access_token");
	const char *type = json_string_member(o, "token_type");
	const char *refresh = json_string_member(o, "refresh_token");
	char shown[200];
	if (!access) {
		member_names(o, shown, sizeof shown);
		format_into(err, errlen, "the %s answered with success but "
			    "without an access_token (fields: %s)", endpoint,
			    shown);
		return OAUTH2_FAIL;
	}
	if (!is_b64token(access)) {
		format_into(err, errlen, "the %s sent an access_token with "
			    "characters a bearer token cannot have", endpoint);
		return OAUTH2_FAIL;
	}
	if (type && ascii_casecmp(type, "bearer") != 0) {
		make_visible(shown, sizeof shown, type, strlen(type));
		format_into(err, errlen, "the %s sent a token of type \"%s\"; "
			    "SMTP needs a Bearer token", endpoint, shown);
		return OAUTH2_FAIL;
	}
	r->expires_in = OAUTH2_DEFAULT_EXPIRES_IN;
	if (json_seconds_member(o, "expires_in", &r->expires_in) < 0) {
		format_into(err, errlen, "the %s sent an expires_in that is not "
			    "a number of seconds", endpoint);
		return OAUTH2_FAIL;
	}
	r->access_token = xstrdup(access);
	r->refresh_token = refresh && *refresh ? xstrdup(refresh) : NULL;
	return OAUTH2_OK;
}

enum oauth2_status oauth2_parse_token_reply(long status, const char *body,
					    size_t len, const char *endpoint,
					    const char *const *secrets,
					    struct oauth2_token_reply *r,
					    char *err, size_t errlen)
{
	struct json_object *o;
	enum oauth2_status st;
	memset(r, 0, sizeof *r);
	st = json_answer(status, body, len, endpoint, secrets, &o, r->error,
			 err, errlen);
	if (st != OAUTH2_OK)
		return st;
	st = token_fields(o, endpoint, r, err, errlen);
	oauth2_json_free(o);
	return st;
}

void oauth2_token_reply_free(struct oauth2_token_reply *r)
{
	free_secret(r->access_token);
	free_secret(r->refresh_token);
	memset(r, 0, sizeof *r);
}

/* RFC 8628 3.2; Google says verification_url. */
static enum oauth2_status device_fields(struct json_object *o,
					const char *endpoint,
					struct oauth2_device_reply *d, char *err,
					size_t errlen)
{
	const char *code = json_string_member(o, "device_code");
	const char *user = json_string_member(o, "user_code");
	const char *uri = json_string_member(o, "verification_uri");
	const char *complete = json_string_member(o, "verification_uri_complete");
	char shown[200];
	if (!uri)
		uri = json_string_member(o, "verification_url");
	if (!code || !*code || !user || !*user || !uri || !*uri) {
		member_names(o, shown, sizeof shown);
		format_into(err, errlen, "the %s answered without device_code, "
			    "user_code and verification_uri (fields: %s)",
			    endpoint, shown);
		return OAUTH2_FAIL;
	}
	d->expires_in = 600;
	d->interval = 5;    /* RFC 8628 3.2: the default */
	if (json_seconds_member(o, "expires_in", &d->expires_in) < 0 ||
	    json_seconds_member(o, "interval", &d->interval) < 0) {
		format_into(err, errlen, "the %s sent an expires_in or interval "
			    "that is not a number of seconds", endpoint);
		return OAUTH2_FAIL;
	}
	d->device_code = xstrdup(code);
	d->user_code = xstrdup(user);
	d->verification_uri = xstrdup(uri);
	d->verification_uri_complete = complete ? xstrdup(complete) : NULL;
	return OAUTH2_OK;
}

enum oauth2_status oauth2_parse_device_reply(long status, const char *body,
					     size_t len, const char *endpoint,
					     struct oauth2_device_reply *d,
					     char *err, size_t errlen)
{
	struct json_object *o;
	char code[OAUTH2_ERROR_CODE_MAX];
	enum oauth2_status st;
	memset(d, 0, sizeof *d);
	st = json_answer(status, body, len, endpoint, NULL, &o, code, err,
			 errlen);
	if (st != OAUTH2_OK)
		return st;
	st = device_fields(o, endpoint, d, err, errlen);
	oauth2_json_free(o);
	return st;
}

void oauth2_device_reply_free(struct oauth2_device_reply *d)
{
	free_secret(d->device_code);
	free(d->user_code);
	free(d->verification_uri);
	free(d->verification_uri_complete);
	memset(d, 0, sizeof *d);
}

/* ---- credentials from the configuration ---- */

/* keyword's value, else the first line of eval_keyword's command; NULL
 * when neither is set (0) or the command failed (-1). */
static int configured_secret(const char *value, const char *command,
			     const char *eval_keyword, char **out, char *err,
			     size_t errlen)
{
	char why[400];
	*out = NULL;
	if (value) {
		*out = xstrdup(value);
		return 0;
	}
	if (!command)
		return 0;
	*out = secret_run_command(command, why, sizeof why);
	if (!*out) {
		format_into(err, errlen, "%s: %s", eval_keyword, why);
		return -1;
	}
	if (!**out) {
		free_secret(*out);
		*out = NULL;
		format_into(err, errlen, "%s: the command printed nothing",
			    eval_keyword);
		return -1;
	}
	return 0;
}

int oauth2_client_secret(const struct account *a, char **secret, char *err,
			 size_t errlen)
{
	return configured_secret(a->oauth2_client_secret,
				 a->oauth2_client_secret_eval,
				 "oauth2_client_secret_eval", secret, err, errlen);
}

enum oauth2_status oauth2_token_request(const struct account *a,
					const char *token_url, const char *form,
					const char *const *secrets,
					struct oauth2_token_reply *r, char *err,
					size_t errlen)
{
	struct oauth2_http_reply reply;
	char endpoint[300], where[256];
	enum oauth2_status st;
	memset(r, 0, sizeof *r);
	st = oauth2_http_post(a, token_url, "token endpoint", form, &reply, err,
			      errlen);
	if (st != OAUTH2_OK)
		return st;
	oauth2_url_display(token_url, where, sizeof where);
	format_into(endpoint, sizeof endpoint, "token endpoint %s", where);
	st = oauth2_parse_token_reply(reply.status, reply.body, reply.len,
				      endpoint, secrets, r, err, errlen);
	oauth2_http_reply_free(&reply);
	return st;
}

/* ---- the access token for a send ---- */

/* Where the refresh token comes from. */
struct refresh_source {
	char *configured;       /* oauth2_refresh_token(_eval), or NULL */
	char source[72];        /* "sha256:HEX" of it, or "" */
};

static int refresh_source_load(const struct account *a,
			       struct refresh_source *src, char *err,
			       size_t errlen)
{
	char hex[65];
	memset(src, 0, sizeof *src);
	if (configured_secret(a->oauth2_refresh_token,
			      a->oauth2_refresh_token_eval,
			      "oauth2_refresh_token_eval", &src->configured, err,
			      errlen) < 0)
		return -1;
	if (src->configured) {
		oauth2_sha256_hex(src->configured, hex);
		format_into(src->source, sizeof src->source, "sha256:%s", hex);
	}
	return 0;
}

/* The store's tokens count unless the configuration names a refresh token
 * they were not derived from: then the configured one wins, and the
 * cached access token (from the old refresh token) is void. */
static bool store_applies(const struct refresh_source *src,
			  const struct oauth2_store_data *d)
{
	return !src->configured ||
	       (d->refresh_source && strcmp(d->refresh_source, src->source) == 0);
}

static bool cache_usable(const struct oauth2_store_data *d, time_t now)
{
	return d->access_token && d->expires_at - (long long)now >=
				  OAUTH2_MIN_VALIDITY;
}

static enum oauth2_status refresh_grant(const struct account *a,
					const char *refresh_token,
					struct oauth2_token_reply *r, char *err,
					size_t errlen)
{
	struct oauth2_endpoints e;
	char *secret = NULL;
	enum oauth2_status st;
	memset(r, 0, sizeof *r);
	oauth2_resolve(a, &e);
	if (oauth2_http_start(err, errlen) < 0 ||
	    oauth2_client_secret(a, &secret, err, errlen) < 0)
		return OAUTH2_FAIL;
	{
		const struct oauth2_field fields[] = {
			{ "grant_type", "refresh_token" },
			{ "refresh_token", refresh_token },
			{ "client_id", a->oauth2_client_id },
			{ "client_secret", secret },
			{ "scope", e.scope },
		};
		const char *secrets[] = { refresh_token, secret, NULL };
		char *form = oauth2_form_encode(fields, 5);
		st = oauth2_token_request(a, e.token_url, form, secrets, r, err,
					  errlen);
		free_secret(form);
	}
	free_secret(secret);
	return st;
}

/* What to do about a refresh token the provider no longer accepts. */
static void invalid_grant_hint(const struct account *a,
			       const struct refresh_source *src, char *err,
			       size_t errlen)
{
	if (src->configured)
		oauth2_append(err, errlen, "; the refresh token was revoked or "
			      "has expired: replace oauth2_refresh_token%s, or "
			      "remove it and run postbote --account %s "
			      "--oauth2-authorize", a->oauth2_refresh_token ? "" :
			      "_eval", a->name);
	else
		oauth2_append(err, errlen, "; the refresh token was revoked or "
			      "has expired: run postbote --account %s "
			      "--oauth2-authorize", a->name);
}

/* Put a new access token (and a rotated refresh token) into the store. */
static void store_update(struct oauth2_store_data *d,
			 const struct refresh_source *src,
			 struct oauth2_token_reply *r, time_t now)
{
	if (!store_applies(src, d)) {
		free_secret(d->refresh_token);
		d->refresh_token = NULL;
	}
	free_secret(d->access_token);
	d->access_token = r->access_token;
	r->access_token = NULL;
	d->expires_at = (long long)now + r->expires_in;
	if (r->refresh_token) {
		free_secret(d->refresh_token);
		d->refresh_token = r->refresh_token;
		r->refresh_token = NULL;
	}
	free(d->refresh_source);
	d->refresh_source = src->configured ? xstrdup(src->source) : NULL;
}

static enum oauth2_status token_from(const struct account *a, int store_fd,
				     bool force_refresh,
				     const struct refresh_source *src,
				     struct oauth2_store_data *d, char **token,
				     bool *from_cache, char *err, size_t errlen)
{
	time_t now = time(NULL);
	struct oauth2_token_reply r;
	const char *refresh;
	enum oauth2_status st;
	bool stored = store_applies(src, d);
	if (stored && !force_refresh && cache_usable(d, now)) {
		*token = xstrdup(d->access_token);
		*from_cache = true;
		return OAUTH2_OK;
	}
	refresh = stored && d->refresh_token ? d->refresh_token : src->configured;
	if (!refresh) {
		format_into(err, errlen, "no refresh token for account %s: run "
			    "postbote --account %s --oauth2-authorize (or set "
			    "oauth2_refresh_token)", a->name, a->name);
		return OAUTH2_FAIL;
	}
	st = refresh_grant(a, refresh, &r, err, errlen);
	if (strcmp(r.error, "invalid_grant") == 0)
		invalid_grant_hint(a, src, err, errlen);
	if (st != OAUTH2_OK)
		return st;
	*token = xstrdup(r.access_token);
	store_update(d, src, &r, now);
	oauth2_token_reply_free(&r);
	/* When the store cannot be written the token is still good: only
	 * the cache (and perhaps a rotated refresh token) is lost, and err
	 * says so as a warning. */
	if (store_fd >= 0)
		(void)oauth2_store_write(store_fd, d, err, errlen);
	return OAUTH2_OK;
}

enum oauth2_status oauth2_access_token(const struct account *a, int store_fd,
				       bool force_refresh, char **token,
				       bool *from_cache, char *err,
				       size_t errlen)
{
	struct refresh_source src;
	struct oauth2_store_data d = { 0 };
	enum oauth2_status st;
	*token = NULL;
	*from_cache = false;
	err[0] = '\0';
	if (oauth2_check_account(a, err, errlen) < 0 ||
	    refresh_source_load(a, &src, err, errlen) < 0)
		return OAUTH2_FAIL;
	if (store_fd >= 0 && oauth2_store_lock_read(store_fd, &d, err,
						     errlen) < 0) {
		free_secret(src.configured);
		return OAUTH2_FAIL;
	}
	st = token_from(a, store_fd, force_refresh, &src, &d, token, from_cache,
			err, errlen);
	if (store_fd >= 0)
		oauth2_store_unlock(store_fd);
	oauth2_store_data_free(&d);
	free_secret(src.configured);
	return st;
}
