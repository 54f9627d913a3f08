#include "autoconf.h"
#include "run_suite.h"
#include "config.h"
#include "curl_loader.h"
#include "oauth2.h"
#include "oauth2_internal.h"
#include "util.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Nothing listens on port 1: a request there fails at once, so a test
 * sees whether postbote tried the network at all. */
#define DEAD_URL "https://127.0.0.1:1/token"

static struct config cfg;
static char err[1024];
static char tmpdir[256];

static void setup(void)
{
	memset(&cfg, 0, sizeof cfg);
	err[0] = '\0';
}

static void teardown(void)
{
	config_free(&cfg);
}

/* "account a" with body; returns it. */
static const struct account *account_with(const char *body)
{
	char *text = xasprintf("account a\nhost h\n%s\n", body);
	config_free(&cfg);
	int rc = config_parse_string(text, "t.rc", &cfg, err, sizeof err);
	free(text);
	ck_assert_msg(rc == 0, "parse failed: %s", err);
	return config_find_account(&cfg, "a");
}

/* ---- PKCE and encoding ---- */

START_TEST(test_pkce_rfc7636_appendix_b)
{
	/* RFC 7636 Appendix B: the 32 octets, the verifier they encode to,
	 * and its S256 challenge. */
	static const unsigned char octets[32] = {
		116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216,
		173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5,
		88, 83, 132, 141, 121 };
	char verifier[45], challenge[OAUTH2_CHALLENGE_LEN + 1];
	oauth2_base64url(octets, sizeof octets, verifier);
	ck_assert_str_eq(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
	oauth2_pkce_challenge(verifier, challenge);
	ck_assert_str_eq(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}
END_TEST

START_TEST(test_base64url)
{
	static const unsigned char odd[] = { 0xfb, 0xff };
	char out[16];
	oauth2_base64url((const unsigned char *)"", 0, out);
	ck_assert_str_eq(out, "");
	oauth2_base64url((const unsigned char *)"f", 1, out);
	ck_assert_str_eq(out, "Zg");
	oauth2_base64url((const unsigned char *)"fo", 2, out);
	ck_assert_str_eq(out, "Zm8");
	oauth2_base64url((const unsigned char *)"foo", 3, out);
	ck_assert_str_eq(out, "Zm9v");
	oauth2_base64url(odd, sizeof odd, out);
	ck_assert_str_eq(out, "-_8");
}
END_TEST

START_TEST(test_random_string)
{
	char a[OAUTH2_CHALLENGE_LEN + 1], b[OAUTH2_CHALLENGE_LEN + 1];
	oauth2_random_string(a);
	oauth2_random_string(b);
	ck_assert_uint_eq(strlen(a), 43);
	/* RFC 7636 4.1: unreserved characters only */
	ck_assert_uint_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				 "qrstuvwxyz0123456789-._~"), 43);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_sha256_hex)
{
	char hex[65];
	oauth2_sha256_hex("abc", hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a"
			 "9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_form_encode)
{
	const struct oauth2_field fields[] = {
		{ "grant_type", "refresh_token" },
		{ "skipped", NULL },
		{ "refresh_token", "a b&c=d/\xc3\xa9+~" },
		{ "scope", "https://outlook.office.com/SMTP.Send offline_access" },
	};
	char *form = oauth2_form_encode(fields, 4);
	ck_assert_str_eq(form, "grant_type=refresh_token&refresh_token="
			 "a%20b%26c%3Dd%2F%C3%A9%2B~&scope=https%3A%2F%2F"
			 "outlook.office.com%2FSMTP.Send%20offline_access");
	free_secret(form);
	form = oauth2_form_encode(fields + 1, 1);
	ck_assert_str_eq(form, "");
	free_secret(form);
}
END_TEST

START_TEST(test_form_decode)
{
	char *s = oauth2_form_decode("a+b%2Fc%3d%C3%A9", 16);
	ck_assert_str_eq(s, "a b/c=\xc3\xa9");
	free(s);
	s = oauth2_form_decode("abc&rest", 3);
	ck_assert_str_eq(s, "abc");
	free(s);
	ck_assert_ptr_null(oauth2_form_decode("a%00b", 5));
}
END_TEST

/* ---- loading libcurl ---- */

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

START_TEST(test_curl_load_missing_file)
{
	struct curl_api api;
	ck_assert_int_eq(curl_api_load("libcurl-postbote-none.so.4", &api, err,
				       sizeof err), -1);
	ck_assert_msg(starts_with(err, "libcurl (libcurl-postbote-none.so.4): "),
		      "%s", err);
	ck_assert_msg(strstr(err, "cannot open shared object file"), "%s", err);
	ck_assert_ptr_null(api.easy_init);
}
END_TEST

/* A library that loads but is not libcurl: the missing function named. */
START_TEST(test_curl_load_not_libcurl)
{
	struct curl_api api;
	ck_assert_int_eq(curl_api_load("libc.so.6", &api, err, sizeof err), -1);
	ck_assert_msg(starts_with(err, "libcurl (libc.so.6): "), "%s", err);
	ck_assert_msg(strstr(err, "curl_global_init"), "%s", err);
	ck_assert_ptr_null(api.global_init);
}
END_TEST

START_TEST(test_curl_load_configured)
{
	struct curl_api api;
	const struct curl_api *kept;
	ck_assert_msg(curl_api_load(CURL_SONAME, &api, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_ptr_nonnull(api.url_cleanup);
	/* configure requires 7.68 */
	ck_assert_uint_ge(api.version_info(CURLVERSION_NOW)->version_num,
			  0x074400);
	kept = curl_api_get(err, sizeof err);
	ck_assert_ptr_nonnull(kept);
	ck_assert_ptr_eq(kept, curl_api_get(err, sizeof err));
	ck_assert_ptr_eq(kept->easy_init, api.easy_init);
	ck_assert_int_eq(oauth2_http_start(err, sizeof err), 0);
}
END_TEST

START_TEST(test_visible_redacts)
{
	const char *secrets[] = { "rt-secret", "cs", NULL };
	char out[80];
	const char text[] = "token rt-secret\r\nbad cs!\x01";
	oauth2_visible(out, sizeof out, text, sizeof text - 1, secrets);
	ck_assert_str_eq(out, "token <redacted>\\r\\nbad <redacted>!\\x01");
	oauth2_visible(out, 12, text, sizeof text - 1, secrets);
	ck_assert_str_eq(out, "token <r...");
	oauth2_visible(out, sizeof out, "plain", 5, NULL);
	ck_assert_str_eq(out, "plain");
}
END_TEST

/* ---- presets and the account check ---- */

START_TEST(test_preset_google)
{
	struct oauth2_endpoints e;
	oauth2_resolve(account_with("oauth2_provider google"), &e);
	ck_assert_str_eq(e.token_url, "https://oauth2.googleapis.com/token");
	ck_assert_str_eq(e.auth_url, "https://accounts.google.com/o/oauth2/v2/auth");
	ck_assert_str_eq(e.device_url, "https://oauth2.googleapis.com/device/code");
	ck_assert_str_eq(e.scope, "https://mail.google.com/");
	ck_assert_str_eq(e.auth_extra, "access_type=offline&prompt=consent");
	ck_assert(e.browser_first);
}
END_TEST

START_TEST(test_preset_microsoft)
{
	struct oauth2_endpoints e;
	oauth2_resolve(account_with("oauth2_provider microsoft"), &e);
	ck_assert_str_eq(e.token_url, "https://login.microsoftonline.com/"
			 "common/oauth2/v2.0/token");
	ck_assert_str_eq(e.auth_url, "https://login.microsoftonline.com/"
			 "common/oauth2/v2.0/authorize");
	ck_assert_str_eq(e.device_url, "https://login.microsoftonline.com/"
			 "common/oauth2/v2.0/devicecode");
	ck_assert_str_eq(e.scope, "https://outlook.office.com/SMTP.Send "
			 "offline_access");
	ck_assert_ptr_null(e.auth_extra);
	ck_assert(!e.browser_first);
}
END_TEST

START_TEST(test_preset_overridden)
{
	struct oauth2_endpoints e;
	oauth2_resolve(account_with("oauth2_provider microsoft\n"
				    "oauth2_token_url https://t.example/tenant/token\n"
				    "oauth2_scope https://outlook.office.com/.default"),
		       &e);
	ck_assert_str_eq(e.token_url, "https://t.example/tenant/token");
	ck_assert_str_eq(e.scope, "https://outlook.office.com/.default");
	ck_assert_str_eq(e.auth_url, "https://login.microsoftonline.com/"
			 "common/oauth2/v2.0/authorize");
}
END_TEST

START_TEST(test_custom_has_only_keywords)
{
	struct oauth2_endpoints e;
	oauth2_resolve(account_with("oauth2_provider custom\n"
				    "oauth2_token_url https://t.example/token"), &e);
	ck_assert_str_eq(e.token_url, "https://t.example/token");
	ck_assert_ptr_null(e.auth_url);
	ck_assert_ptr_null(e.device_url);
	ck_assert_ptr_null(e.scope);
	ck_assert_ptr_null(e.auth_extra);
}
END_TEST

static const struct {
	const char *body;
	const char *message;
} bad_accounts[] = {
	{ "user u", "OAuth2 is not configured (set oauth2_provider, or "
	  "oauth2_token_url)" },
	{ "oauth2_provider custom\noauth2_client_id c",
	  "oauth2_provider custom needs oauth2_token_url" },
	{ "oauth2_provider google", "oauth2_client_id is missing (the id of "
	  "the application registered with the provider)" },
	{ "oauth2_provider google\noauth2_client_id c\noauth2_client_secret s\n"
	  "oauth2_client_secret_eval echo s", "both oauth2_client_secret and "
	  "oauth2_client_secret_eval are set; keep one" },
	{ "oauth2_provider google\noauth2_client_id c\noauth2_refresh_token r\n"
	  "oauth2_refresh_token_eval echo r", "both oauth2_refresh_token and "
	  "oauth2_refresh_token_eval are set; keep one" },
};

START_TEST(test_check_account_refuses)
{
	const struct account *a = account_with(bad_accounts[_i].body);
	ck_assert_int_eq(oauth2_check_account(a, err, sizeof err), -1);
	ck_assert_str_eq(err, bad_accounts[_i].message);
}
END_TEST

START_TEST(test_check_account_accepts)
{
	const struct account *a = account_with("oauth2_token_url "
					       "https://t.example/token\n"
					       "oauth2_client_id c");
	ck_assert(oauth2_configured(a));
	ck_assert_int_eq(oauth2_check_account(a, err, sizeof err), 0);
	ck_assert(!oauth2_configured(account_with("auth xoauth2\npassword x")));
}
END_TEST

/* ---- token endpoint answers ---- */

static struct oauth2_token_reply reply;

static enum oauth2_status token_reply(long status, const char *body)
{
	const char *secrets[] = { "rt-SECRET", "cs-SECRET", NULL };
	err[0] = '\0';
	return oauth2_parse_token_reply(status, body, strlen(body),
					"token endpoint https://t.example/token",
					secrets, &reply, err, sizeof err);
}

static void reply_teardown(void)
{
	oauth2_token_reply_free(&reply);
	teardown();
}

START_TEST(test_reply_success)
{
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"ya29.a0-_~+/=\","
				     "\"token_type\":\"Bearer\",\"expires_in\":3599,"
				     "\"scope\":\"https://mail.google.com/\"}\n"),
			 OAUTH2_OK);
	ck_assert_str_eq(reply.access_token, "ya29.a0-_~+/=");
	ck_assert_int_eq(reply.expires_in, 3599);
	ck_assert_ptr_null(reply.refresh_token);
	ck_assert_str_eq(reply.error, "");
}
END_TEST

START_TEST(test_reply_rotated_refresh_token)
{
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"a\",\"token_type\":"
				     "\"bearer\",\"refresh_token\":\"new-rt\"}"),
			 OAUTH2_OK);
	ck_assert_str_eq(reply.refresh_token, "new-rt");
	ck_assert_int_eq(reply.expires_in, OAUTH2_DEFAULT_EXPIRES_IN);
}
END_TEST

START_TEST(test_reply_expires_in_forms)
{
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"a\",\"expires_in\":"
				     "\"120\"}"), OAUTH2_OK);
	ck_assert_int_eq(reply.expires_in, 120);
	oauth2_token_reply_free(&reply);
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"a\",\"expires_in\":"
				     "null}"), OAUTH2_OK);
	ck_assert_int_eq(reply.expires_in, OAUTH2_DEFAULT_EXPIRES_IN);
	oauth2_token_reply_free(&reply);
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"a\",\"expires_in\":"
				     "90.5}"), OAUTH2_OK);
	ck_assert_int_eq(reply.expires_in, 90);
}
END_TEST

static const char *const bad_expires[] = { "\"soon\"", "-5", "\"12x\"",
					   "\"-1\"", "[]", "1e12", "NaN",
					   "\"\"", "true" };

START_TEST(test_reply_bad_expires_in)
{
	char *body = xasprintf("{\"access_token\":\"a\",\"expires_in\":%s}",
			       bad_expires[_i]);
	ck_assert_int_eq(token_reply(200, body), OAUTH2_FAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token sent "
			 "an expires_in that is not a number of seconds");
	ck_assert_ptr_null(reply.access_token);
	free(body);
}
END_TEST

START_TEST(test_reply_invalid_grant)
{
	ck_assert_int_eq(token_reply(400, "{\"error\":\"invalid_grant\",\"error_"
				     "description\":\"Token rt-SECRET has been\\n"
				     "expired or revoked.\"}"), OAUTH2_FAIL);
	ck_assert_str_eq(reply.error, "invalid_grant");
	ck_assert_str_eq(err, "the token endpoint https://t.example/token answered "
			 "HTTP 400 invalid_grant (Token <redacted> has been\\n"
			 "expired or revoked.)");
}
END_TEST

START_TEST(test_reply_error_without_description)
{
	ck_assert_int_eq(token_reply(401, "{\"error\":\"invalid_client\"}"),
			 OAUTH2_FAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token answered "
			 "HTTP 401 invalid_client");
}
END_TEST

START_TEST(test_reply_temporary)
{
	ck_assert_int_eq(token_reply(503, "<html>Service Unavailable</html>"),
			 OAUTH2_TEMPFAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token answered "
			 "HTTP 503 with something other than the JSON of RFC "
			 "6749: \"<html>Service Unavailable</html>\"");
	ck_assert_int_eq(token_reply(429, "{\"error\":\"slow\"}"), OAUTH2_TEMPFAIL);
	ck_assert_int_eq(token_reply(500, "{\"error\":\"temporarily_unavailable\"}"),
			 OAUTH2_TEMPFAIL);
	ck_assert_str_eq(reply.error, "temporarily_unavailable");
}
END_TEST

START_TEST(test_reply_not_json)
{
	ck_assert_int_eq(token_reply(404, "Not found: cs-SECRET\x01"), OAUTH2_FAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token answered "
			 "HTTP 404 with something other than the JSON of RFC "
			 "6749: \"Not found: <redacted>\\x01\"");
	ck_assert_int_eq(token_reply(200, "access_token=abc"), OAUTH2_FAIL);
	ck_assert_ptr_nonnull(strstr(err, "HTTP 200 with something other"));
	ck_assert_int_eq(token_reply(200, "[\"access_token\"]"), OAUTH2_FAIL);
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"a\"} x"), OAUTH2_FAIL);
	ck_assert_int_eq(token_reply(200, ""), OAUTH2_FAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token answered "
			 "HTTP 200 with an empty body: \"\"");
}
END_TEST

START_TEST(test_reply_without_access_token)
{
	/* The message names the fields, never their values. */
	ck_assert_int_eq(token_reply(200, "{\"refresh_token\":\"rt-other\","
				     "\"token_type\":\"Bearer\"}"), OAUTH2_FAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token answered "
			 "with success but without an access_token (fields: "
			 "refresh_token, token_type)");
}
END_TEST

START_TEST(test_reply_bad_token)
{
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"a b\"}"),
			 OAUTH2_FAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token sent an "
			 "access_token with characters a bearer token cannot have");
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"\"}"), OAUTH2_FAIL);
	ck_assert_int_eq(token_reply(200, "{\"access_token\":\"a\",\"token_type\":"
				     "\"mac\"}"), OAUTH2_FAIL);
	ck_assert_str_eq(err, "the token endpoint https://t.example/token sent a "
			 "token of type \"mac\"; SMTP needs a Bearer token");
}
END_TEST

/* ---- device authorization answers ---- */

static struct oauth2_device_reply device;

static void device_teardown(void)
{
	oauth2_device_reply_free(&device);
	teardown();
}

static enum oauth2_status device_reply(long status, const char *body)
{
	err[0] = '\0';
	return oauth2_parse_device_reply(status, body, strlen(body),
					 "device endpoint", &device, err,
					 sizeof err);
}

START_TEST(test_device_microsoft)
{
	ck_assert_int_eq(device_reply(200, "{\"device_code\":\"dc\",\"user_code\":"
				      "\"ABC\",\"verification_uri\":\"https://v/\","
				      "\"expires_in\":900,\"interval\":5,\"message\":"
				      "\"To sign in...\"}"), OAUTH2_OK);
	ck_assert_str_eq(device.device_code, "dc");
	ck_assert_str_eq(device.user_code, "ABC");
	ck_assert_str_eq(device.verification_uri, "https://v/");
	ck_assert_ptr_null(device.verification_uri_complete);
	ck_assert_int_eq(device.expires_in, 900);
	ck_assert_int_eq(device.interval, 5);
}
END_TEST

START_TEST(test_device_google)
{
	ck_assert_int_eq(device_reply(200, "{\"device_code\":\"dc\",\"user_code\":"
				      "\"ABC\",\"verification_url\":\"https://g/\","
				      "\"verification_uri_complete\":\"https://g/?c\","
				      "\"expires_in\":\"1800\"}"), OAUTH2_OK);
	ck_assert_str_eq(device.verification_uri, "https://g/");
	ck_assert_str_eq(device.verification_uri_complete, "https://g/?c");
	ck_assert_int_eq(device.expires_in, 1800);
	ck_assert_int_eq(device.interval, 5);
}
END_TEST

START_TEST(test_device_incomplete)
{
	ck_assert_int_eq(device_reply(200, "{\"device_code\":\"dc\"}"),
			 OAUTH2_FAIL);
	ck_assert_str_eq(err, "the device endpoint answered without device_code, "
			 "user_code and verification_uri (fields: device_code)");
	ck_assert_int_eq(device_reply(400, "{\"error\":\"invalid_scope\"}"),
			 OAUTH2_FAIL);
	ck_assert_str_eq(err, "the device endpoint answered HTTP 400 invalid_scope");
}
END_TEST

/* ---- the redirect to the loopback listener ---- */

static struct oauth2_callback cb;

static void callback_teardown(void)
{
	oauth2_callback_free(&cb);
	teardown();
}

static enum oauth2_request_kind callback(const char *head)
{
	oauth2_callback_free(&cb);
	return oauth2_parse_callback(head, strlen(head), &cb);
}

START_TEST(test_callback_code)
{
	ck_assert_int_eq(callback("GET /?state=s%2B1&code=4%2F0Ab+c&scope=x "
				  "HTTP/1.1\r\nHost: 127.0.0.1:5\r\n\r\n"),
			 OAUTH2_REQUEST_CALLBACK);
	ck_assert_str_eq(cb.code, "4/0Ab c");
	ck_assert_str_eq(cb.state, "s+1");
	ck_assert_ptr_null(cb.error);
}
END_TEST

START_TEST(test_callback_error)
{
	ck_assert_int_eq(callback("GET /?error=access_denied&error_description="
				  "User+declined&state=s HTTP/1.1\n\n"),
			 OAUTH2_REQUEST_CALLBACK);
	ck_assert_str_eq(cb.error, "access_denied");
	ck_assert_str_eq(cb.error_description, "User declined");
	ck_assert_ptr_null(cb.code);
}
END_TEST

START_TEST(test_callback_first_value_counts)
{
	ck_assert_int_eq(callback("GET /?code=a&code=b&state=s HTTP/1.1\r\n\r\n"),
			 OAUTH2_REQUEST_CALLBACK);
	ck_assert_str_eq(cb.code, "a");
}
END_TEST

START_TEST(test_callback_other_requests)
{
	ck_assert_int_eq(callback("GET /?code=a HTTP/1.1\r\nHost: x\r\n"),
			 OAUTH2_REQUEST_INCOMPLETE);
	ck_assert_int_eq(callback("GET /favicon.ico HTTP/1.1\r\n\r\n"),
			 OAUTH2_REQUEST_OTHER);
	ck_assert_int_eq(callback("GET / HTTP/1.1\r\n\r\n"), OAUTH2_REQUEST_OTHER);
	ck_assert_int_eq(callback("GET /?state=s HTTP/1.1\r\n\r\n"),
			 OAUTH2_REQUEST_OTHER);
	ck_assert_int_eq(callback("POST /?code=a HTTP/1.1\r\n\r\n"),
			 OAUTH2_REQUEST_OTHER);
	ck_assert_int_eq(callback("GET /x?code=a HTTP/1.1\r\n\r\n"),
			 OAUTH2_REQUEST_OTHER);
	ck_assert_int_eq(callback("GET /?code=a\r\n\r\n"), OAUTH2_REQUEST_OTHER);
	ck_assert_int_eq(callback("GET /?code=a%00 HTTP/1.1\r\n\r\n"),
			 OAUTH2_REQUEST_OTHER);
}
END_TEST

/* ---- the store ---- */

START_TEST(test_store_round_trip)
{
	struct oauth2_store_data d = { xstrdup("at-1"), 1700000000LL,
				       xstrdup("rt \"q\"/\n"),
				       xstrdup("sha256:00ff") }, back;
	char *text = oauth2_store_format(&d);
	ck_assert_int_eq(oauth2_store_parse(text, strlen(text), &back, err,
					    sizeof err), 0);
	ck_assert_str_eq(back.access_token, "at-1");
	ck_assert_int_eq(back.expires_at, 1700000000LL);
	ck_assert_str_eq(back.refresh_token, "rt \"q\"/\n");
	ck_assert_str_eq(back.refresh_source, "sha256:00ff");
	ck_assert_ptr_nonnull(strstr(text, "\"version\":1"));
	free_secret(text);
	oauth2_store_data_free(&back);
	oauth2_store_data_free(&d);
	ck_assert_ptr_null(d.access_token);
}
END_TEST

START_TEST(test_store_empty)
{
	struct oauth2_store_data d = { 0 }, back;
	char *text = oauth2_store_format(&d);
	ck_assert_int_eq(oauth2_store_parse(text, strlen(text), &back, err,
					    sizeof err), 0);
	ck_assert_ptr_null(back.access_token);
	ck_assert_ptr_null(back.refresh_token);
	ck_assert_ptr_null(back.refresh_source);
	ck_assert_ptr_null(strstr(text, "expires_at"));
	free_secret(text);
	ck_assert_int_eq(oauth2_store_parse(" \n", 2, &back, err, sizeof err), 0);
	ck_assert_int_eq(oauth2_store_parse("", 0, &back, err, sizeof err), 0);
	ck_assert_ptr_null(back.access_token);
}
END_TEST

static const struct {
	const char *text;
	const char *message;
} bad_stores[] = {
	{ "{", "not a JSON object" },
	{ "[]", "not a JSON object" },
	{ "{} {}", "not a JSON object" },
	{ "{\"access_token\":5}", "\"access_token\" is not a string" },
	{ "{\"refresh_token\":[]}", "\"refresh_token\" is not a string" },
	{ "{\"expires_at\":\"x\"}", "\"expires_at\" is not a number" },
	{ "{\"version\":2}", "\"version\" is not 1 (written by another version "
	  "of postbote?)" },
};

START_TEST(test_store_refuses)
{
	struct oauth2_store_data d;
	ck_assert_int_eq(oauth2_store_parse(bad_stores[_i].text,
					    strlen(bad_stores[_i].text), &d, err,
					    sizeof err), -1);
	ck_assert_str_eq(err, bad_stores[_i].message);
	ck_assert_ptr_null(d.access_token);
}
END_TEST

START_TEST(test_store_file_name)
{
	char *a = oauth2_store_file_name(account_with(
		"oauth2_provider google\noauth2_client_id c1\nuser u"));
	char *b = oauth2_store_file_name(account_with(
		"oauth2_provider google\noauth2_client_id c2\nuser u"));
	char *c = oauth2_store_file_name(account_with(
		"oauth2_provider google\noauth2_client_id c1\nuser u"));
	char *d = oauth2_store_file_name(account_with(
		"oauth2_provider google\noauth2_client_id c1\nuser v"));
	ck_assert_uint_eq(strlen(a), strlen("a-") + 12 + strlen(".json"));
	ck_assert_int_eq(strncmp(a, "a-", 2), 0);
	ck_assert_str_eq(a, c);
	ck_assert_str_ne(a, b);
	ck_assert_str_ne(a, d);
	free(a);
	free(b);
	free(c);
	free(d);
}
END_TEST

START_TEST(test_store_file_name_is_safe)
{
	struct account acct;
	char *name;
	account_init(&acct);
	acct.name = xstrdup("../work mail/\xc3\xa4.x");
	name = oauth2_store_file_name(&acct);
	ck_assert_int_eq(strncmp(name, "_._work_mail___.x-", 18), 0);
	ck_assert_ptr_null(strchr(name, '/'));
	free(name);
	free(acct.name);
	acct.name = xstrdup("0123456789012345678901234567890123456789012345678901"
			    "2345678901234567890");
	name = oauth2_store_file_name(&acct);
	ck_assert_uint_eq(strlen(name), 64 + 1 + 12 + 5);
	free(name);
	account_free(&acct);
}
END_TEST

START_TEST(test_default_dir)
{
	char *dir;
	setenv("XDG_STATE_HOME", "/state", 1);
	setenv("HOME", "/home/t", 1);
	dir = oauth2_store_default_dir(err, sizeof err);
	ck_assert_str_eq(dir, "/state/postbote/oauth2");
	free(dir);
	/* The XDG spec: a relative path is ignored. */
	setenv("XDG_STATE_HOME", "relative", 1);
	dir = oauth2_store_default_dir(err, sizeof err);
	ck_assert_str_eq(dir, "/home/t/.local/state/postbote/oauth2");
	free(dir);
	unsetenv("XDG_STATE_HOME");
	dir = oauth2_store_default_dir(err, sizeof err);
	ck_assert_str_eq(dir, "/home/t/.local/state/postbote/oauth2");
	free(dir);
}
END_TEST

/* ---- the store on disk ---- */

static void file_setup(void)
{
	const char *base = getenv("TMPDIR");
	setup();
	snprintf(tmpdir, sizeof tmpdir, "%s/test_oauth2.XXXXXX",
		 base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void file_teardown(void)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	teardown();
}

static const char dead_account[] =
	"oauth2_token_url " DEAD_URL "\noauth2_client_id c\nuser u";

static mode_t mode_of(const char *path)
{
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_mode & 07777;
}

START_TEST(test_store_open_creates)
{
	const struct account *a = account_with(dead_account);
	char *dir = xasprintf("%s/x/oauth2", tmpdir);
	char *name = oauth2_store_file_name(a);
	char *path = xasprintf("%s/%s", dir, name);
	mode_t old = umask(0);
	int fd = oauth2_store_open(a, dir, err, sizeof err);
	umask(old);
	ck_assert_msg(fd >= 0, "%s", err);
	ck_assert_uint_eq(mode_of(dir), 0700);
	ck_assert_uint_eq(mode_of(path), 0600);
	close(fd);
	/* opened again: the same file */
	fd = oauth2_store_open(a, dir, err, sizeof err);
	ck_assert_int_ge(fd, 0);
	close(fd);
	free(path);
	free(name);
	free(dir);
}
END_TEST

START_TEST(test_store_open_fixes_directory_mode)
{
	const struct account *a = account_with(dead_account);
	int fd;
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
	fd = oauth2_store_open(a, tmpdir, err, sizeof err);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(mode_of(tmpdir), 0700);
	close(fd);
}
END_TEST

START_TEST(test_store_open_refuses_open_file)
{
	const struct account *a = account_with(dead_account);
	char *name = oauth2_store_file_name(a);
	char *path = xasprintf("%s/%s", tmpdir, name);
	char *expected = xasprintf("%s holds OAuth2 tokens but is open to others "
				   "(mode 0640); run: chmod 600 %s", path, path);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchmod(fd, 0640), 0);
	close(fd);
	ck_assert_int_eq(oauth2_store_open(a, tmpdir, err, sizeof err), -1);
	ck_assert_str_eq(err, expected);
	free(expected);
	free(path);
	free(name);
}
END_TEST

START_TEST(test_store_open_refuses_symlink)
{
	const struct account *a = account_with(dead_account);
	char *name = oauth2_store_file_name(a);
	char *path = xasprintf("%s/%s", tmpdir, name);
	char *target = xasprintf("%s/elsewhere", tmpdir);
	char *expected = xasprintf("cannot open %s: it is a symbolic link", path);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(oauth2_store_open(a, tmpdir, err, sizeof err), -1);
	ck_assert_str_eq(err, expected);
	ck_assert_int_eq(access(target, F_OK), -1);
	free(expected);
	free(target);
	free(path);
	free(name);
}
END_TEST

START_TEST(test_store_write_read)
{
	const struct account *a = account_with(dead_account);
	struct oauth2_store_data d = { xstrdup("at"), 42, NULL, NULL }, back;
	int fd = oauth2_store_open(a, tmpdir, err, sizeof err);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(oauth2_store_lock_read(fd, &back, err, sizeof err), 0);
	ck_assert_ptr_null(back.access_token);
	ck_assert_int_eq(oauth2_store_write(fd, &d, err, sizeof err), 0);
	oauth2_store_unlock(fd);
	/* a shorter content replaces a longer one completely */
	free_secret(d.access_token);
	d.access_token = NULL;
	ck_assert_int_eq(oauth2_store_lock_read(fd, &back, err, sizeof err), 0);
	ck_assert_str_eq(back.access_token, "at");
	ck_assert_int_eq(back.expires_at, 42);
	oauth2_store_data_free(&back);
	ck_assert_int_eq(oauth2_store_write(fd, &d, err, sizeof err), 0);
	oauth2_store_unlock(fd);
	ck_assert_int_eq(oauth2_store_lock_read(fd, &back, err, sizeof err), 0);
	ck_assert_ptr_null(back.access_token);
	oauth2_store_unlock(fd);
	close(fd);
}
END_TEST

START_TEST(test_store_corrupt)
{
	const struct account *a = account_with(dead_account);
	struct oauth2_store_data back;
	char path[512], *expected;
	int fd = oauth2_store_open(a, tmpdir, err, sizeof err);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "{oops", 5), 5);
	oauth2_store_path(fd, path, sizeof path);
	expected = xasprintf("token store %s: not a JSON object (remove it and "
			     "run postbote --oauth2-authorize)", path);
	ck_assert_int_eq(oauth2_store_lock_read(fd, &back, err, sizeof err), -1);
	ck_assert_str_eq(err, expected);
	free(expected);
	close(fd);
}
END_TEST

/* ---- which token: cache or refresh (nothing listens at DEAD_URL) ---- */

static int store_with(const struct account *a, const char *access,
		      long long expires_at, const char *source)
{
	struct oauth2_store_data d = { 0 }, old;
	int fd = oauth2_store_open(a, tmpdir, err, sizeof err);
	ck_assert_int_ge(fd, 0);
	d.access_token = access ? xstrdup(access) : NULL;
	d.expires_at = expires_at;
	d.refresh_source = source ? xstrdup(source) : NULL;
	ck_assert_int_eq(oauth2_store_lock_read(fd, &old, err, sizeof err), 0);
	ck_assert_int_eq(oauth2_store_write(fd, &d, err, sizeof err), 0);
	oauth2_store_unlock(fd);
	oauth2_store_data_free(&old);
	oauth2_store_data_free(&d);
	return fd;
}

static enum oauth2_status get_token(const struct account *a, int fd,
				    bool force, char **token, bool *cached)
{
	err[0] = '\0';
	return oauth2_access_token(a, fd, force, token, cached, err, sizeof err);
}

START_TEST(test_cached_token_used)
{
	const struct account *a = account_with(dead_account);
	int fd = store_with(a, "cached-at", (long long)time(NULL) + 120, NULL);
	char *token = NULL;
	bool cached = false;
	ck_assert_int_eq(get_token(a, fd, false, &token, &cached), OAUTH2_OK);
	ck_assert_str_eq(token, "cached-at");
	ck_assert(cached);
	free_secret(token);
	close(fd);
}
END_TEST

START_TEST(test_cached_token_too_old)
{
	const struct account *a = account_with(dead_account);
	int fd = store_with(a, "cached-at", (long long)time(NULL) + 59, NULL);
	char *token = NULL;
	bool cached = true;
	/* no refresh token anywhere: the message says what to do */
	ck_assert_int_eq(get_token(a, fd, false, &token, &cached), OAUTH2_FAIL);
	ck_assert_ptr_null(token);
	ck_assert(!cached);
	ck_assert_str_eq(err, "no refresh token for account a: run postbote "
			 "--account a --oauth2-authorize (or set "
			 "oauth2_refresh_token)");
	close(fd);
}
END_TEST

START_TEST(test_force_refresh_skips_cache)
{
	const struct account *a = account_with("oauth2_token_url " DEAD_URL "\n"
					       "oauth2_client_id c\nuser u\n"
					       "oauth2_refresh_token rt-conf");
	char hex[65], source[80];
	char *token = NULL;
	bool cached;
	int fd;
	oauth2_sha256_hex("rt-conf", hex);
	snprintf(source, sizeof source, "sha256:%s", hex);
	fd = store_with(a, "cached-at", (long long)time(NULL) + 3600, source);
	ck_assert_int_eq(get_token(a, fd, false, &token, &cached), OAUTH2_OK);
	ck_assert_str_eq(token, "cached-at");
	free_secret(token);
	token = NULL;
	ck_assert_int_eq(get_token(a, fd, true, &token, &cached), OAUTH2_TEMPFAIL);
	ck_assert_ptr_null(token);
	ck_assert_int_eq(strncmp(err, "no answer from the token endpoint "
				 DEAD_URL ": ", strlen("no answer from the token "
				 "endpoint " DEAD_URL ": ")), 0);
	ck_assert_ptr_null(strstr(err, "rt-conf"));
	close(fd);
}
END_TEST

START_TEST(test_changed_configured_token_wins)
{
	const struct account *a = account_with("oauth2_token_url " DEAD_URL "\n"
					       "oauth2_client_id c\nuser u\n"
					       "oauth2_refresh_token_eval echo rt-new");
	char *token = NULL;
	bool cached;
	/* the cache came from another configured token: not used */
	int fd = store_with(a, "cached-at", (long long)time(NULL) + 3600,
			    "sha256:0000");
	ck_assert_int_eq(get_token(a, fd, false, &token, &cached), OAUTH2_TEMPFAIL);
	ck_assert_ptr_null(token);
	close(fd);
}
END_TEST

START_TEST(test_eval_failure)
{
	const struct account *a = account_with("oauth2_token_url " DEAD_URL "\n"
					       "oauth2_client_id c\n"
					       "oauth2_refresh_token_eval exit 3");
	char *token = NULL;
	bool cached;
	ck_assert_int_eq(get_token(a, -1, false, &token, &cached), OAUTH2_FAIL);
	ck_assert_str_eq(err, "oauth2_refresh_token_eval: the command \"exit 3\" "
			 "failed (exit status 3)");
	a = account_with("oauth2_token_url " DEAD_URL "\noauth2_client_id c\n"
			 "oauth2_refresh_token_eval true");
	ck_assert_int_eq(get_token(a, -1, false, &token, &cached), OAUTH2_FAIL);
	ck_assert_str_eq(err, "oauth2_refresh_token_eval: the command printed "
			 "nothing");
}
END_TEST

static Suite *oauth2_suite(void)
{
	Suite *s = suite_create("oauth2");
	TCase *tc = tcase_create("encoding");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pkce_rfc7636_appendix_b);
	tcase_add_test(tc, test_base64url);
	tcase_add_test(tc, test_random_string);
	tcase_add_test(tc, test_sha256_hex);
	tcase_add_test(tc, test_form_encode);
	tcase_add_test(tc, test_form_decode);
	tcase_add_test(tc, test_visible_redacts);
	suite_add_tcase(s, tc);

	tc = tcase_create("libcurl");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_curl_load_missing_file);
	tcase_add_test(tc, test_curl_load_not_libcurl);
	tcase_add_test(tc, test_curl_load_configured);
	suite_add_tcase(s, tc);

	tc = tcase_create("account");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_preset_google);
	tcase_add_test(tc, test_preset_microsoft);
	tcase_add_test(tc, test_preset_overridden);
	tcase_add_test(tc, test_custom_has_only_keywords);
	tcase_add_loop_test(tc, test_check_account_refuses, 0,
			    sizeof bad_accounts / sizeof bad_accounts[0]);
	tcase_add_test(tc, test_check_account_accepts);
	suite_add_tcase(s, tc);

	tc = tcase_create("replies");
	tcase_add_checked_fixture(tc, setup, reply_teardown);
	tcase_add_test(tc, test_reply_success);
	tcase_add_test(tc, test_reply_rotated_refresh_token);
	tcase_add_test(tc, test_reply_expires_in_forms);
	tcase_add_loop_test(tc, test_reply_bad_expires_in, 0,
			    sizeof bad_expires / sizeof bad_expires[0]);
	tcase_add_test(tc, test_reply_invalid_grant);
	tcase_add_test(tc, test_reply_error_without_description);
	tcase_add_test(tc, test_reply_temporary);
	tcase_add_test(tc, test_reply_not_json);
	tcase_add_test(tc, test_reply_without_access_token);
	tcase_add_test(tc, test_reply_bad_token);
	suite_add_tcase(s, tc);

	tc = tcase_create("device");
	tcase_add_checked_fixture(tc, setup, device_teardown);
	tcase_add_test(tc, test_device_microsoft);
	tcase_add_test(tc, test_device_google);
	tcase_add_test(tc, test_device_incomplete);
	suite_add_tcase(s, tc);

	tc = tcase_create("callback");
	tcase_add_checked_fixture(tc, setup, callback_teardown);
	tcase_add_test(tc, test_callback_code);
	tcase_add_test(tc, test_callback_error);
	tcase_add_test(tc, test_callback_first_value_counts);
	tcase_add_test(tc, test_callback_other_requests);
	suite_add_tcase(s, tc);

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_store_round_trip);
	tcase_add_test(tc, test_store_empty);
	tcase_add_loop_test(tc, test_store_refuses, 0,
			    sizeof bad_stores / sizeof bad_stores[0]);
	tcase_add_test(tc, test_store_file_name);
	tcase_add_test(tc, test_store_file_name_is_safe);
	tcase_add_test(tc, test_default_dir);
	suite_add_tcase(s, tc);

	tc = tcase_create("store files");
	tcase_add_checked_fixture(tc, file_setup, file_teardown);
	tcase_add_test(tc, test_store_open_creates);
	tcase_add_test(tc, test_store_open_fixes_directory_mode);
	tcase_add_test(tc, test_store_open_refuses_open_file);
	tcase_add_test(tc, test_store_open_refuses_symlink);
	tcase_add_test(tc, test_store_write_read);
	tcase_add_test(tc, test_store_corrupt);
	tcase_add_test(tc, test_cached_token_used);
	tcase_add_test(tc, test_cached_token_too_old);
	tcase_add_test(tc, test_force_refresh_skips_cache);
	tcase_add_test(tc, test_changed_configured_token_wins);
	tcase_add_test(tc, test_eval_failure);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(oauth2_suite());
}
