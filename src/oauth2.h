/* oauth2: access tokens for XOAUTH2 and OAUTHBEARER from the OAuth 2.0
 * refresh-token grant (RFC 6749 6), fetched over HTTPS with libcurl,
 * parsed with json-c, and cached with their expiry in a per-account token
 * store; plus the first authorisation of a user (authorization code with
 * PKCE and a loopback redirect, RFC 7636 / RFC 8252, or the device
 * authorization grant, RFC 8628).
 *
 * The engine part (oauth2_access_token) never prints and never exits. */
#ifndef POSTBOTE_OAUTH2_H
#define POSTBOTE_OAUTH2_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum oauth2_status {
	OAUTH2_OK = 0,
	OAUTH2_TEMPFAIL,  /* endpoint unreachable, timeout, 5xx, 429: try later */
	OAUTH2_FAIL,      /* bad configuration, invalid_grant, 4xx, bad TLS cert */
};

enum oauth2_flow {
	OAUTH2_FLOW_AUTO = 0, /* browser with DISPLAY/WAYLAND_DISPLAY, for Google,
			       * or without a device URL; else device */
	OAUTH2_FLOW_BROWSER,  /* authorization code + PKCE, loopback redirect */
	OAUTH2_FLOW_DEVICE,   /* device authorization grant */
};

/* True when the account gets its access token from postbote's own OAuth2
 * client: oauth2_provider or oauth2_token_url is set. (With "auth
 * xoauth2" alone, the password is taken as the access token, as msmtp
 * does.) */
bool oauth2_configured(const struct account *a);

/* Check the account's OAuth2 settings after presets are applied: a token
 * URL and a client id are known, and no secret is given twice (value and
 * _eval). The refresh token may come from the token store, so its
 * absence is found by oauth2_access_token. 0, or -1 with a message naming
 * the keyword. */
int oauth2_check_account(const struct account *a, char *err, size_t errlen);

/* Open (creating it with mode 0600, and its directory 0700) the token
 * store of this account: a file under dir, or under
 * $XDG_STATE_HOME/postbote/oauth2 (~/.local/state/...) when dir is NULL.
 * Opened once, early, so that a setgid postbote can open the system
 * store before it drops its group. Returns an fd or -1 with err. */
int oauth2_store_open(const struct account *a, const char *dir, char *err,
		      size_t errlen);

/* A valid access token: the cached one when it is still valid for at
 * least a minute and force_refresh is false, else a new one from the
 * token endpoint (stored with its expiry, and with the rotated refresh
 * token when the provider returns one). store_fd may be -1 (no cache).
 * *from_cache tells where it came from: when a server refuses a cached
 * token, call again once with force_refresh. Returns the status; on
 * success *token is a new string (wipe with free_secret) and err is
 * empty, or holds a warning when the store could not be written;
 * otherwise err says what went wrong, including the endpoint's error and
 * error_description. */
enum oauth2_status oauth2_access_token(const struct account *a, int store_fd,
				       bool force_refresh, char **token,
				       bool *from_cache, char *err,
				       size_t errlen);

/* --oauth2-authorize: run the first authorisation interactively, printing
 * what the user must open or enter on stdout, and store the refresh token
 * in the token store. Returns a sysexits code; errors go to stderr. */
int oauth2_authorize(const struct account *a, int store_fd,
		     enum oauth2_flow flow);

#endif
