/* libFuzzer harness: the msmtp-compatible configuration parser
 * (src/config.h), on the input as a string (config_parse_string) and as a
 * file (config_load on a memfd with mode 0644, through /proc/self/fd/N).
 *
 * Checked, as config.h promises:
 *  - a failure returns -1 with "NAME:LINE: ..." in err;
 *  - config_find_account(cfg, NULL): the account named by "account default
 *    : X", else one named "default", else the first, NULL without any;
 *    config_find_account(cfg, name) finds each account by its name;
 *  - has_secret when an account holds a password; auth is never NULL; a
 *    fingerprint is a SHA-256 pin "AA:BB:..."; path is NULL from a string;
 *  - config_load parses the same text the same way, but refuses a file
 *    that holds a password and is readable by others (this one is). */
#include "autoconf.h"

#include <sys/stat.h>

#include "config.h"
#include "util.h"

#include "fuzz_util.h"

#define NAME "fuzz.rc"

/* Every keyword of the table in config.c that account_is_set knows,
 * and one it does not. */
static const char *const keywords[] = {
	"host", "port", "tls", "tls_starttls", "tls_certcheck",
	"tls_trust_file", "tls_fingerprint", "tls_cert_file", "tls_key_file",
	"tls_priorities", "tls_min_dh_prime_bits", "auth", "user", "password",
	"passwordeval", "from", "domain", "maildomain", "aliases", "timeout",
	"logfile", "syslog", "queue", "queue_dir", "queue_lifetime",
	"protocol", "no_such_keyword",
};

static bool is_hex(char c)
{
	return fuzz_is_digit(c) || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* "AA:BB:...": 32 hex pairs separated by ':'. */
static bool is_fingerprint(const char *s)
{
	if (strlen(s) != 32 * 3 - 1)
		return false;
	for (size_t i = 0; s[i]; i++)
		if (i % 3 == 2 ? s[i] != ':' : !is_hex(s[i]))
			return false;
	return true;
}

static const struct account *by_name(const struct config *cfg,
				     const char *name)
{
	for (size_t i = 0; i < cfg->naccounts; i++)
		if (strcmp(cfg->accounts[i].name, name) == 0)
			return &cfg->accounts[i];
	return NULL;
}

static void check_default(const struct config *cfg)
{
	const struct account *want = NULL;

	if (cfg->default_name)
		want = by_name(cfg, cfg->default_name);
	if (!want)
		want = by_name(cfg, "default");
	if (!want && cfg->naccounts)
		want = &cfg->accounts[0];
	FUZZ_CHECK(config_find_account(cfg, NULL) == want);
}

static void check_account(const struct config *cfg, const struct account *a)
{
	const struct account *found = config_find_account(cfg, a->name);

	FUZZ_CHECK(a->name != NULL);
	FUZZ_CHECK(found != NULL && strcmp(found->name, a->name) == 0);
	FUZZ_CHECK(a->auth != NULL);
	if (a->password)
		FUZZ_CHECK(cfg->has_secret);
	if (a->tls_fingerprint)
		FUZZ_CHECK(is_fingerprint(a->tls_fingerprint));
	for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
		(void)account_is_set(a, keywords[k]);
	FUZZ_CHECK(!account_is_set(a, "no_such_keyword"));
}

static void check_config(const struct config *cfg)
{
	FUZZ_CHECK(cfg->path == NULL);
	FUZZ_CHECK(cfg->naccounts == 0 || cfg->accounts != NULL);
	check_default(cfg);
	for (size_t i = 0; i < cfg->naccounts; i++)
		check_account(cfg, &cfg->accounts[i]);
	/* Lines end at LF, so no account name holds one. */
	FUZZ_CHECK(config_find_account(cfg, "no such\naccount") == NULL);
}

/* The same text from a file readable by others. */
static void check_load(const uint8_t *data, size_t size, int parsed,
		       const struct config *from_string)
{
	char path[64], err[CONFIG_ERROR_MAX] = "";
	struct config cfg;
	int fd = fuzz_memfd(data, size);
	int rc;

	FUZZ_CHECK(fchmod(fd, 0644) == 0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	rc = config_load(path, &cfg, err, sizeof err);
	close(fd);
	if (rc != 0) {
		FUZZ_CHECK(rc == -1);
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 &&
			   err[strlen(path)] == ':');
	}
	if (memchr(data, '\0', size))
		return;         /* the string parser stopped at the NUL */
	FUZZ_CHECK((rc == 0) == (parsed == 0 && !from_string->has_secret));
	if (rc != 0)
		return;
	FUZZ_CHECK(cfg.path != NULL && strcmp(cfg.path, path) == 0);
	FUZZ_CHECK(cfg.naccounts == from_string->naccounts);
	for (size_t i = 0; i < cfg.naccounts; i++)
		FUZZ_CHECK(strcmp(cfg.accounts[i].name,
				  from_string->accounts[i].name) == 0);
	config_free(&cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "~/..." expands to $HOME: a fixed one keeps runs reproducible. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	setenv("HOME", "/home/fuzz", 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size);
	char err[CONFIG_ERROR_MAX] = "";
	struct config cfg;
	int rc = config_parse_string(text, NAME, &cfg, err, sizeof err);

	if (rc != 0) {
		FUZZ_CHECK(rc == -1);
		FUZZ_CHECK(strncmp(err, NAME ":", sizeof NAME) == 0);
		memset(&cfg, 0, sizeof cfg);
	} else {
		check_config(&cfg);
	}
	check_load(data, size, rc, &cfg);
	if (rc == 0)
		config_free(&cfg);
	free(text);
	return 0;
}
