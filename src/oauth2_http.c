/* oauth2_http: form POSTs to the OAuth2 endpoints with libcurl: HTTPS
 * only, no redirects, the peer's certificate and name verified (against
 * oauth2_trust_file, else the system trust store), bounded in time and in
 * the size of the answer. libcurl is loaded (curl_loader) on first use. */
#include "autoconf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_loader.h"
#include "oauth2_internal.h"
#include "util.h"

/* libcurl loaded, and its global state set up, once; NULL with err. */
static const struct curl_api *curl_ready(char *err, size_t errlen)
{
	static bool initialised;
	const struct curl_api *curl = curl_api_get(err, errlen);
	if (curl && !initialised) {
		if (curl->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			format_into(err, errlen, "libcurl (%s): curl_global_init "
				    "failed", CURL_SONAME);
			return NULL;
		}
		initialised = true;
	}
	return curl;
}

int oauth2_http_start(char *err, size_t errlen)
{
	char why[512];
	if (curl_ready(why, sizeof why))
		return 0;
	format_into(err, errlen, "OAuth2 needs %s", why);
	return -1;
}

/* libcurl for the functions that cannot fail: their callers have called
 * oauth2_http_start, so a failure here is a bug in postbote. */
static const struct curl_api *curl_started(void)
{
	char err[512];
	const struct curl_api *curl = curl_ready(err, sizeof err);
	if (!curl) {
		fprintf(stderr, "postbote: OAuth2 needs %s\n", err);
		abort();
	}
	return curl;
}

static CURL *new_handle(const struct curl_api *curl)
{
	CURL *h = curl->easy_init();
	if (!h) {
		fputs("postbote: libcurl cannot start\n", stderr);
		abort();
	}
	return h;
}

char *oauth2_form_encode(const struct oauth2_field *fields, size_t n)
{
	const struct curl_api *curl = curl_started();
	CURL *h = new_handle(curl);
	char *out = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *name, *value, *joined;
		if (!fields[i].value)
			continue;
		name = curl->easy_escape(h, fields[i].name, 0);
		value = curl->easy_escape(h, fields[i].value, 0);
		if (!name || !value) {
			fputs("postbote: out of memory\n", stderr);
			abort();
		}
		joined = xasprintf("%s%s%s=%s", out, *out ? "&" : "", name, value);
		free_secret(out);
		out = joined;
		curl->free(name);
		explicit_bzero(value, strlen(value));
		curl->free(value);
	}
	curl->easy_cleanup(h);
	return out;
}

char *oauth2_form_decode(const char *text, size_t len)
{
	const struct curl_api *curl = curl_started();
	CURL *h = new_handle(curl);
	char *plus = xstrndup(text, len), *decoded, *out = NULL;
	int outlen = 0;
	for (char *p = plus; *p; p++)
		if (*p == '+')
			*p = ' ';
	decoded = curl->easy_unescape(h, plus, (int)len, &outlen);
	if (decoded && strlen(decoded) == (size_t)outlen)
		out = xstrdup(decoded);
	if (decoded) {
		explicit_bzero(decoded, (size_t)outlen);
		curl->free(decoded);
	}
	free_secret(plus);
	curl->easy_cleanup(h);
	return out;
}

void oauth2_url_display(const char *url, char *out, size_t outlen)
{
	const struct curl_api *curl = curl_started();
	CURLU *u = curl->url();
	char *host = NULL, *port = NULL, *path = NULL;
	if (u && curl->url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl->url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl->url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		curl->url_get(u, CURLUPART_PORT, &port, 0);
		format_into(out, outlen, "https://%s%s%s%s", host, port ? ":" : "",
			    port ? port : "", path);
	} else {
		make_visible(out, outlen, url, strcspn(url, "?#@"));
	}
	curl->free(host);
	curl->free(port);
	curl->free(path);
	curl->url_cleanup(u);
}

/* ---- the request ---- */

struct body {
	char *p;
	size_t len;
	bool too_big;
};

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct body *b = userdata;
	size_t n = size * nmemb;
	if (n > OAUTH2_BODY_MAX - b->len) {
		b->too_big = true;
		return 0;   /* libcurl stops with CURLE_WRITE_ERROR */
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return n;
}

static bool set_options(const struct curl_api *curl, CURL *h,
			const struct account *a, const char *url,
			const char *form, struct curl_slist *headers,
			struct body *b, char *errbuf)
{
	long connect = a->timeout > 0 ? a->timeout : OAUTH2_CONNECT_TIMEOUT;
	long total = a->timeout > 0 ? a->timeout : OAUTH2_REQUEST_TIMEOUT;
	bool bad = false;
	bad |= curl->easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 has the _STR forms */
	bad |= curl->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK;
#else
	bad |= curl->easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS) != CURLE_OK;
#endif
	bad |= curl->easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (a->oauth2_trust_file) {
		/* The file replaces the system store rather than adding to it. */
		bad |= curl->easy_setopt(h, CURLOPT_CAINFO, a->oauth2_trust_file) != CURLE_OK;
		bad |= curl->easy_setopt(h, CURLOPT_CAPATH, NULL) != CURLE_OK;
	}
	bad |= curl->easy_setopt(h, CURLOPT_CONNECTTIMEOUT, connect) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_TIMEOUT, total) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_USERAGENT, "postbote/" PACKAGE_VERSION) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_POSTFIELDS, form) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(form)) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_WRITEFUNCTION, collect) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_WRITEDATA, b) != CURLE_OK;
	bad |= curl->easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
	return !bad;
}

/* Why a transfer failed, and whether waiting can help. */
static enum oauth2_status transfer_failed(CURLcode rc, const struct account *a,
					  const char *what, const char *where,
					  const char *detail, const struct body *b,
					  char *err, size_t errlen)
{
	char trust[300] = "";
	if (a->oauth2_trust_file)
		make_visible(trust, sizeof trust, a->oauth2_trust_file,
			     strlen(a->oauth2_trust_file));
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		if (*trust)
			format_into(err, errlen, "the certificate of the %s %s "
				    "could not be verified against oauth2_trust_file "
				    "%s (%s)", what, where, trust, detail);
		else
			format_into(err, errlen, "the certificate of the %s %s "
				    "could not be verified against the system trust "
				    "store (%s); if it comes from a private CA, name "
				    "that CA's certificate file in oauth2_trust_file",
				    what, where, detail);
		return OAUTH2_FAIL;
	case CURLE_SSL_CACERT_BADFILE:
		format_into(err, errlen, "oauth2_trust_file %s cannot be used "
			    "(%s)", trust, detail);
		return OAUTH2_FAIL;
	case CURLE_WRITE_ERROR:
		if (b->too_big) {
			format_into(err, errlen, "the %s %s sent an answer larger "
				    "than %d bytes", what, where, OAUTH2_BODY_MAX);
			return OAUTH2_FAIL;
		}
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		format_into(err, errlen, "the %s URL %s cannot be used (%s)", what,
			    where, detail);
		return OAUTH2_FAIL;
	default:
		break;
	}
	format_into(err, errlen, "no answer from the %s %s: %s", what, where,
		    detail);
	return OAUTH2_TEMPFAIL;
}

enum oauth2_status oauth2_http_post(const struct account *a, const char *url,
				    const char *what, const char *form,
				    struct oauth2_http_reply *reply, char *err,
				    size_t errlen)
{
	char errbuf[CURL_ERROR_SIZE] = "", where[256], detail[CURL_ERROR_SIZE];
	const struct curl_api *curl;
	struct body b;
	struct curl_slist *headers = NULL;
	CURL *h;
	CURLcode rc;
	memset(reply, 0, sizeof *reply);
	if (oauth2_http_start(err, errlen) < 0)
		return OAUTH2_FAIL;
	curl = curl_started();
	h = new_handle(curl);
	b = (struct body){ xmalloc(OAUTH2_BODY_MAX + 1), 0, false };
	oauth2_url_display(url, where, sizeof where);
	headers = curl->slist_append(headers, "Content-Type: "
				     "application/x-www-form-urlencoded");
	headers = curl->slist_append(headers, "Accept: application/json");
	if (!headers || !set_options(curl, h, a, url, form, headers, &b, errbuf))
		rc = CURLE_FAILED_INIT;
	else
		rc = curl->easy_perform(h);
	if (rc == CURLE_OK) {
		curl->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->status);
		b.p[b.len] = '\0';
		reply->body = b.p;
		reply->len = b.len;
	} else {
		const char *why = *errbuf ? errbuf : curl->easy_strerror(rc);
		make_visible(detail, sizeof detail, why, strlen(why));
		explicit_bzero(b.p, b.len);
		free(b.p);
	}
	curl->slist_free_all(headers);
	curl->easy_cleanup(h);
	if (rc != CURLE_OK)
		return transfer_failed(rc, a, what, where, detail, &b, err, errlen);
	return OAUTH2_OK;
}

void oauth2_http_reply_free(struct oauth2_http_reply *reply)
{
	if (reply->body) {
		explicit_bzero(reply->body, reply->len);
		free(reply->body);
	}
	memset(reply, 0, sizeof *reply);
}
