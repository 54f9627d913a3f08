/* config: msmtp-compatible configuration file parser.
 *
 * Syntax (as msmtp): one "keyword [argument]" per line, '#' starts a comment
 * line, an argument may be enclosed in double quotes (with \" and \\ escapes
 * inside), "defaults" starts the section whose settings every later account
 * starts from, "account NAME [: PARENT[, PARENT...]]" starts an account that
 * inherits from its parents, "account default : NAME" names the default.
 */
#ifndef POSTBOTE_CONFIG_H
#define POSTBOTE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_ERROR_MAX 512
/* Room in struct account.set: one bit per keyword table row. */
#define CONFIG_KEYWORDS_MAX 128

struct account {
	char *name;
	char *host;
	int port;               /* 0: chosen from the TLS mode (587, 465, 25) */
	bool tls;               /* default on */
	bool tls_starttls;      /* default on: STARTTLS; off: implicit TLS */
	bool tls_certcheck;     /* default on */
	char *tls_trust_file;   /* NULL: system trust store */
	char *tls_fingerprint;  /* SHA-256 pin "AA:BB:..." or NULL */
	char *tls_cert_file;    /* client certificate, or NULL */
	char *tls_key_file;
	char *tls_priorities;   /* GnuTLS priority string, or NULL */
	int tls_min_dh_prime_bits; /* 0: GnuTLS default */
	char *auth;             /* "on" (default), "off", or a mechanism name */
	char *user;
	char *password;
	char *passwordeval;
	char *from;
	char *domain;           /* EHLO argument; NULL: the local host name */
	char *maildomain;       /* domain that qualifies bare local names */
	char *aliases;          /* aliases file path, or NULL */
	int timeout;            /* seconds; 0: the built-in defaults */
	char *logfile;          /* NULL: no log file */
	char *syslog;           /* NULL: off; "LOG_MAIL" style facility name */
	bool queue;             /* default on: keep temporarily failed mail */
	char *queue_dir;        /* NULL: the default queue directory */
	int queue_lifetime;     /* seconds; 0: the default (5 days) */
	char *password_env;     /* name of an environment variable */
	char *password_file;    /* file whose first line is the password */
	char *oauth2_provider;  /* "google", "microsoft", "custom", or NULL */
	char *oauth2_token_url;
	char *oauth2_auth_url;  /* authorization endpoint (--oauth2-authorize) */
	char *oauth2_device_url; /* device authorization endpoint */
	char *oauth2_client_id;
	char *oauth2_client_secret;
	char *oauth2_client_secret_eval;
	char *oauth2_refresh_token;
	char *oauth2_refresh_token_eval;
	char *oauth2_scope;
	char *oauth2_trust_file; /* CA for the token endpoint; NULL: system */
	/* bit i set: keyword table entry i was given */
	unsigned long set[CONFIG_KEYWORDS_MAX / (sizeof(unsigned long) * CHAR_BIT)];
};

struct config {
	char *path;             /* file it came from (NULL when from a string) */
	struct account *accounts;
	size_t naccounts;
	char *default_name;     /* from "account default : NAME", or NULL */
	bool has_secret;        /* some account holds a password or an OAuth2
				 * client secret or refresh token */
};

/* Parse the file at path. On failure return -1 and write
 * "FILE:LINE: what is wrong" into err. A file that holds a password and is
 * readable by group or others is refused. */
int config_load(const char *path, struct config *out, char *err, size_t errlen);

/* Parse text; name is used in error messages. No permission check. */
int config_parse_string(const char *text, const char *name, struct config *out,
			char *err, size_t errlen);

/* The account called name; with name NULL, the default account ("account
 * default : X", else an account named "default", else the first one).
 * NULL when there is none. */
const struct account *config_find_account(const struct config *cfg,
					  const char *name);

/* Defaults for an account built without a config file (all on/NULL). */
void account_init(struct account *acct);

/* Free what an account holds (the password wiped first) and zero it. */
void account_free(struct account *acct);

/* True when keyword (e.g. "port") was given for this account: in its own
 * section or in an account it inherits from ("account A : B"). As in msmtp,
 * values that came from a defaults section do not count. */
bool account_is_set(const struct account *acct, const char *keyword);

void config_free(struct config *cfg);

struct stat;
/* Whether a file that holds a secret has safe permissions: readable by
 * its owner only, or also by the credentials group of the system-wide
 * setup (never by others, never writable by the group). */
bool config_secret_mode_ok(const struct stat *st);

#endif
