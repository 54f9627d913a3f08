/* secret: where credentials come from, fetched only when authentication
 * needs them, kept in memory no longer than the connection that uses them.
 *
 * Password sources, first configured wins: password, passwordeval (a
 * command), password_env (an environment variable), password_file; then,
 * when none is configured: ~/.netrc, the keyring through secret-tool, and
 * a prompt on the terminal when there is one. */
#ifndef POSTBOTE_SECRET_H
#define POSTBOTE_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "oauth2.h"

#define SECRET_ERROR_MAX 512

struct credentials {
	const struct account *acct;
	int oauth2_fd;          /* the account's token store, or -1 */
	bool own_fd;            /* opened here: closed by credentials_free */
	bool may_prompt;        /* a terminal prompt is allowed */
	char *password;         /* once fetched; wiped by credentials_free */
	bool password_tried;
	char password_error[SECRET_ERROR_MAX];
};

/* oauth2_fd: an open token store (kept by the caller), or -1 to open the
 * user's own store when a token is first needed. may_prompt: whether
 * a missing password may be asked for on /dev/tty. */
void credentials_init(struct credentials *c, const struct account *acct,
		      int oauth2_fd, bool may_prompt);
/* Wipe the password; a token store descriptor given to credentials_init
 * stays the caller's. */
void credentials_free(struct credentials *c);

/* Whether a password can be had without asking the source yet: a source
 * is configured, ~/.netrc has an entry for the host, secret-tool can be
 * asked, or (with_prompt) a terminal prompt is possible. ~/.netrc is
 * read here, once: what it gives is then the fetched password. */
bool credentials_password_possible(struct credentials *c, bool with_prompt);
/* The password (owned by c), fetched once. NULL with err when there is
 * none or a source failed. */
const char *credentials_password(struct credentials *c, char *err,
				 size_t errlen);

/* Whether an OAuth2 access token can be had: postbote's own OAuth2
 * client is configured (oauth2_provider / oauth2_token_url), or auth
 * names XOAUTH2 or OAUTHBEARER and a password source gives the token (as
 * in msmtp, passwordeval running a token helper). */
bool credentials_token_possible(struct credentials *c);
/* A token: new string (free_secret). force_refresh asks the token
 * endpoint even when a cached token looks valid (the server refused it).
 * *from_cache tells whether a retry with force_refresh could help. */
enum oauth2_status credentials_token(struct credentials *c, bool force_refresh,
				     char **token, bool *from_cache, char *err,
				     size_t errlen);

/* Run a command with /bin/sh -c and return the first line of its output
 * without the line end (the whole output is read so that the command never
 * blocks on a full pipe). NULL with err when it cannot run or exits
 * non-zero. */
char *secret_run_command(const char *command, char *err, size_t errlen);

/* The password for login at machine in a .netrc file (RFC-less format of
 * ftp(1): machine/login/password/default/macdef tokens, quoted tokens as
 * curl reads them). login NULL matches any entry for machine. NULL when
 * there is no entry (err empty) or the file cannot be used (err says
 * why: e.g. readable by others). */
char *secret_netrc_lookup(const char *path, const char *machine,
			  const char *login, char *err, size_t errlen);

#endif
