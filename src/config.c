#include "autoconf.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A real msmtprc is a few kilobytes; the cap only stops a mistaken -C
 * /dev/zero (or a log file) from being read into memory without end. */
#define CONFIG_FILE_MAX (4u * 1024 * 1024)
/* RFC 4422 3.1: a SASL mechanism name is 1 to 20 characters. */
#define SASL_MECHANISM_MAX 20
/* SHA-256 is 32 bytes: "AA:BB:...", 32 pairs and 31 colons. */
#define SHA256_BYTES 32
#define FINGERPRINT_TEXT_LEN (SHA256_BYTES * 3 - 1)
/* How much of a bad value an error message repeats. */
#define ECHO_MAX 64

/* How a keyword's value is stored in struct account, which also says how it
 * is copied when an account inherits it and how it is freed. */
enum kind {
	KIND_STRING,
	KIND_SECRET,            /* a string wiped before it is freed */
	KIND_INT,
	KIND_BOOL,
	KIND_UNSUPPORTED,       /* an msmtp keyword postbote does not implement */
};

union value {
	char *str;
	int num;
	bool flag;
};

struct keyword;

/* Turn the (unquoted) argument into a value, or write why it is wrong into
 * msg (the caller adds "FILE:LINE: "). */
typedef bool parse_fn(const struct keyword *kw, const char *arg,
		      union value *out, char *msg, size_t msglen);

struct keyword {
	const char *name;
	enum kind kind;
	parse_fn *parse;
	size_t offset;          /* of the field in struct account */
};

static parse_fn parse_string, parse_required, parse_path, parse_trust_file,
	parse_port, parse_bool, parse_fingerprint, parse_dh_bits, parse_auth,
	parse_timeout, parse_syslog, parse_unsupported, parse_protocol,
	parse_lifetime, parse_env_name, parse_oauth2_provider, parse_https_url;

#define FIELD(f) offsetof(struct account, f)
#define UNSUPPORTED(name) { name, KIND_UNSUPPORTED, parse_unsupported, 0 }

static const struct keyword keywords[] = {
	{ "host", KIND_STRING, parse_required, FIELD(host) },
	{ "port", KIND_INT, parse_port, FIELD(port) },
	{ "tls", KIND_BOOL, parse_bool, FIELD(tls) },
	{ "tls_starttls", KIND_BOOL, parse_bool, FIELD(tls_starttls) },
	{ "tls_certcheck", KIND_BOOL, parse_bool, FIELD(tls_certcheck) },
	{ "tls_trust_file", KIND_STRING, parse_trust_file, FIELD(tls_trust_file) },
	{ "tls_fingerprint", KIND_STRING, parse_fingerprint, FIELD(tls_fingerprint) },
	{ "tls_cert_file", KIND_STRING, parse_path, FIELD(tls_cert_file) },
	{ "tls_key_file", KIND_STRING, parse_path, FIELD(tls_key_file) },
	{ "tls_priorities", KIND_STRING, parse_string, FIELD(tls_priorities) },
	{ "tls_min_dh_prime_bits", KIND_INT, parse_dh_bits,
	  FIELD(tls_min_dh_prime_bits) },
	{ "auth", KIND_STRING, parse_auth, FIELD(auth) },
	{ "user", KIND_STRING, parse_string, FIELD(user) },
	{ "password", KIND_SECRET, parse_string, FIELD(password) },
	{ "passwordeval", KIND_STRING, parse_string, FIELD(passwordeval) },
	{ "password_env", KIND_STRING, parse_env_name, FIELD(password_env) },
	{ "password_file", KIND_STRING, parse_path, FIELD(password_file) },
	{ "oauth2_provider", KIND_STRING, parse_oauth2_provider,
	  FIELD(oauth2_provider) },
	{ "oauth2_token_url", KIND_STRING, parse_https_url, FIELD(oauth2_token_url) },
	{ "oauth2_auth_url", KIND_STRING, parse_https_url, FIELD(oauth2_auth_url) },
	{ "oauth2_device_url", KIND_STRING, parse_https_url,
	  FIELD(oauth2_device_url) },
	{ "oauth2_client_id", KIND_STRING, parse_required, FIELD(oauth2_client_id) },
	{ "oauth2_client_secret", KIND_SECRET, parse_string,
	  FIELD(oauth2_client_secret) },
	{ "oauth2_client_secret_eval", KIND_STRING, parse_required,
	  FIELD(oauth2_client_secret_eval) },
	{ "oauth2_refresh_token", KIND_SECRET, parse_required,
	  FIELD(oauth2_refresh_token) },
	{ "oauth2_refresh_token_eval", KIND_STRING, parse_required,
	  FIELD(oauth2_refresh_token_eval) },
	{ "oauth2_scope", KIND_STRING, parse_required, FIELD(oauth2_scope) },
	{ "oauth2_trust_file", KIND_STRING, parse_trust_file, FIELD(oauth2_trust_file) },
	{ "from", KIND_STRING, parse_string, FIELD(from) },
	{ "domain", KIND_STRING, parse_string, FIELD(domain) },
	{ "maildomain", KIND_STRING, parse_string, FIELD(maildomain) },
	{ "aliases", KIND_STRING, parse_path, FIELD(aliases) },
	{ "timeout", KIND_INT, parse_timeout, FIELD(timeout) },
	{ "logfile", KIND_STRING, parse_path, FIELD(logfile) },
	{ "syslog", KIND_STRING, parse_syslog, FIELD(syslog) },
	{ "queue", KIND_BOOL, parse_bool, FIELD(queue) },
	{ "queue_dir", KIND_STRING, parse_path, FIELD(queue_dir) },
	{ "queue_lifetime", KIND_INT, parse_lifetime, FIELD(queue_lifetime) },
	{ "protocol", KIND_UNSUPPORTED, parse_protocol, 0 },
	UNSUPPORTED("auto_from"),
	UNSUPPORTED("proxy_host"),
	UNSUPPORTED("proxy_port"),
	UNSUPPORTED("socket"),
	UNSUPPORTED("source_ip"),
	UNSUPPORTED("tls_crl_file"),
	UNSUPPORTED("tls_host_override"),
	UNSUPPORTED("ntlmdomain"),
	UNSUPPORTED("dsn_notify"),
	UNSUPPORTED("dsn_return"),
	UNSUPPORTED("add_missing_from_header"),
	UNSUPPORTED("add_missing_date_header"),
	UNSUPPORTED("remove_bcc_headers"),
	UNSUPPORTED("undisclosed_recipients"),
	UNSUPPORTED("set_from_header"),
	UNSUPPORTED("set_date_header"),
	UNSUPPORTED("set_msgid_header"),
	UNSUPPORTED("allow_from_override"),
	UNSUPPORTED("eval"),
	UNSUPPORTED("logfile_time_format"),
	UNSUPPORTED("keepbcc"),
	UNSUPPORTED("tls_force_sslv3"),
	UNSUPPORTED("tls_nocertcheck"),
	UNSUPPORTED("tls_nostarttls"),
	UNSUPPORTED("connect_timeout"),
};

#define NKEYWORDS (sizeof keywords / sizeof keywords[0])

/* struct account.set has one bit per table row. */
_Static_assert(NKEYWORDS <= CONFIG_KEYWORDS_MAX,
	       "too many keywords for struct account.set");

#define BITS_PER_WORD (sizeof(unsigned long) * CHAR_BIT)

static bool bit_get(const unsigned long *set, size_t i)
{
	return (set[i / BITS_PER_WORD] >> (i % BITS_PER_WORD)) & 1UL;
}

static void bit_set(unsigned long *set, size_t i)
{
	set[i / BITS_PER_WORD] |= 1UL << (i % BITS_PER_WORD);
}

static const struct keyword *find_keyword(const char *name, size_t *index)
{
	for (size_t i = 0; i < NKEYWORDS; i++) {
		if (strcmp(keywords[i].name, name) == 0) {
			if (index)
				*index = i;
			return &keywords[i];
		}
	}
	return NULL;
}

/* A user's value repeated in a message: control characters made visible
 * and long values cut, so a stray binary line cannot garble the terminal. */
static const char *echo(char *buf, size_t size, const char *text)
{
	make_visible(buf, size, text, strlen(text));
	return buf;
}

/* ---- value parsers ---- */

static bool parse_string(const struct keyword *kw, const char *arg,
			 union value *out, char *msg, size_t msglen)
{
	(void)kw, (void)msg, (void)msglen;      /* every value is valid */
	out->str = *arg ? xstrdup(arg) : NULL;
	return true;
}

static bool parse_required(const struct keyword *kw, const char *arg,
			   union value *out, char *msg, size_t msglen)
{
	if (!*arg) {
		format_into(msg, msglen, "keyword '%s' needs an argument",
			    kw->name);
		return false;
	}
	out->str = xstrdup(arg);
	return true;
}

static const char *home_directory(void)
{
	const char *home = getenv("HOME");
	if (home && *home)
		return home;
	struct passwd *pw = getpwuid(getuid());
	return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

/* msmtp replaces a leading "~" in file names with the home directory, and
 * existing msmtprc files rely on it ("logfile ~/.msmtp.log"). Only "~" and
 * "~/..." are expanded; "~user" is left as it is. */
static bool parse_path(const struct keyword *kw, const char *arg,
		       union value *out, char *msg, size_t msglen)
{
	if (!*arg) {
		out->str = NULL;
		return true;
	}
	if (arg[0] != '~' || (arg[1] != '\0' && arg[1] != '/')) {
		out->str = xstrdup(arg);
		return true;
	}
	const char *home = home_directory();
	if (!home) {
		format_into(msg, msglen, "%s: cannot expand '~': HOME is not "
			    "set and the user has no home directory", kw->name);
		return false;
	}
	out->str = xasprintf("%s%s", home, arg + 1);
	return true;
}

/* "system" (and nothing) mean the system trust store, as in msmtp. */
static bool parse_trust_file(const struct keyword *kw, const char *arg,
			     union value *out, char *msg, size_t msglen)
{
	if (strcmp(arg, "system") == 0) {
		out->str = NULL;
		return true;
	}
	return parse_path(kw, arg, out, msg, msglen);
}

/* Decimal digits only (no sign, no blanks), at most max. */
static bool parse_number(const char *s, long max, long *out)
{
	long n = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		n = n * 10 + (*s - '0');
		if (n > max)
			return false;
	}
	*out = n;
	return true;
}

static bool parse_port(const struct keyword *kw, const char *arg,
		       union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	long n;
	if (!*arg) {
		format_into(msg, msglen, "keyword '%s' needs an argument",
			    kw->name);
		return false;
	}
	if (!parse_number(arg, 65535, &n) || n < 1) {
		format_into(msg, msglen, "%s: expected a port number from 1 "
			    "to 65535, not '%s'", kw->name,
			    echo(shown, sizeof shown, arg));
		return false;
	}
	out->num = (int)n;
	return true;
}

/* An environment variable's name as POSIX shells accept it. */
static bool parse_env_name(const struct keyword *kw, const char *arg,
			   union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	bool ok = (*arg >= 'A' && *arg <= 'Z') || (*arg >= 'a' && *arg <= 'z') ||
		  *arg == '_';
	for (const char *p = arg; ok && *p; p++)
		ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		     (*p >= '0' && *p <= '9') || *p == '_';
	if (!ok) {
		format_into(msg, msglen, "%s: expected the name of an environment "
			    "variable (letters, digits and '_'), not '%s'",
			    kw->name, echo(shown, sizeof shown, arg));
		return false;
	}
	out->str = xstrdup(arg);
	return true;
}

static bool parse_oauth2_provider(const struct keyword *kw, const char *arg,
				  union value *out, char *msg, size_t msglen)
{
	static const char *const providers[] = { "google", "microsoft", "custom" };
	char shown[ECHO_MAX];
	for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
		if (ascii_casecmp(arg, providers[i]) == 0) {
			out->str = xstrdup(providers[i]);
			return true;
		}
	format_into(msg, msglen, "%s: expected google, microsoft or custom, not "
		    "'%s'", kw->name, echo(shown, sizeof shown, arg));
	return false;
}

/* Tokens travel only over HTTPS: a plain http:// endpoint is refused here
 * rather than when the first token is due. */
static bool parse_https_url(const struct keyword *kw, const char *arg,
			    union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	if (ascii_ncasecmp(arg, "https://", 8) != 0 || !arg[8] ||
	    strpbrk(arg, " \t\r\n")) {
		format_into(msg, msglen, "%s: expected an https:// URL, not '%s'",
			    kw->name, echo(shown, sizeof shown, arg));
		return false;
	}
	out->str = xstrdup(arg);
	return true;
}

static bool parse_timeout(const struct keyword *kw, const char *arg,
			  union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	long n;
	if (!*arg) {
		format_into(msg, msglen, "keyword '%s' needs an argument",
			    kw->name);
		return false;
	}
	if (strcmp(arg, "off") == 0) {
		out->num = 0;
		return true;
	}
	if (!parse_number(arg, INT_MAX, &n) || n < 1) {
		format_into(msg, msglen, "%s: expected off or a number of "
			    "seconds (1 or more), not '%s'", kw->name,
			    echo(shown, sizeof shown, arg));
		return false;
	}
	out->num = (int)n;
	return true;
}

/* A duration: a number with an optional unit s, m, h or d (seconds by
 * default), at most 365 days. */
static bool parse_lifetime(const struct keyword *kw, const char *arg,
			   union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	char *end;
	long n = strtol(arg, &end, 10);
	long unit = *end == 'd' ? 86400 : *end == 'h' ? 3600
		  : *end == 'm' ? 60 : 1;
	if (*end && strchr("smhd", *end))
		end++;
	if (!*arg || *end || n < 1 || n > 365L * 86400 / unit) {
		format_into(msg, msglen, "%s: expected a duration such as 5d, 12h, "
			    "30m or 3600 (at most 365d), not '%s'", kw->name,
			    echo(shown, sizeof shown, arg));
		return false;
	}
	out->num = (int)(n * unit);
	return true;
}

static bool parse_dh_bits(const struct keyword *kw, const char *arg,
			  union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	long n = 0;
	if (*arg && !parse_number(arg, INT_MAX, &n)) {
		format_into(msg, msglen, "%s: expected a number of bits "
			    "(0 or more), not '%s'", kw->name,
			    echo(shown, sizeof shown, arg));
		return false;
	}
	out->num = (int)n;
	return true;
}

static bool parse_bool(const struct keyword *kw, const char *arg,
		       union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	if (!*arg || strcmp(arg, "on") == 0) {
		out->flag = true;
	} else if (strcmp(arg, "off") == 0) {
		out->flag = false;
	} else {
		format_into(msg, msglen, "%s: expected on or off, not '%s'",
			    kw->name, echo(shown, sizeof shown, arg));
		return false;
	}
	return true;
}

static int hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_sha256_fingerprint(const char *s)
{
	if (strlen(s) != FINGERPRINT_TEXT_LEN)
		return false;
	for (size_t i = 0; i < FINGERPRINT_TEXT_LEN; i++) {
		bool colon_place = i % 3 == 2;
		if (colon_place ? s[i] != ':' : hex_digit_value(s[i]) < 0)
			return false;
	}
	return true;
}

/* Stored upper-case so the TLS code can compare it with what it formats. */
static bool parse_fingerprint(const struct keyword *kw, const char *arg,
			      union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	if (!*arg) {
		out->str = NULL;
		return true;
	}
	if (!is_sha256_fingerprint(arg)) {
		format_into(msg, msglen, "%s: expected a SHA-256 fingerprint, "
			    "32 hex byte pairs separated by ':' "
			    "(like 3F:A0:...:9C), not '%s'", kw->name,
			    echo(shown, sizeof shown, arg));
		return false;
	}
	out->str = xstrdup(arg);
	for (char *p = out->str; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	return true;
}

static bool is_mechanism_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SASL_MECHANISM_MAX)
		return false;
	for (; *s; s++) {
		bool ok = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
			|| (*s >= '0' && *s <= '9') || *s == '-' || *s == '_';
		if (!ok)
			return false;
	}
	return true;
}

/* on/off are taken in any case: "auth ON" must not become a mechanism that
 * no server offers. */
static bool parse_auth(const struct keyword *kw, const char *arg,
		       union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	if (!*arg || ascii_casecmp(arg, "on") == 0) {
		out->str = xstrdup("on");
	} else if (ascii_casecmp(arg, "off") == 0) {
		out->str = xstrdup("off");
	} else if (is_mechanism_name(arg)) {
		out->str = xstrdup(arg);
		for (char *p = out->str; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
	} else {
		format_into(msg, msglen, "%s: expected on, off or a SASL "
			    "mechanism name (letters, digits, '-' and '_', at "
			    "most %d), not '%s'", kw->name, SASL_MECHANISM_MAX,
			    echo(shown, sizeof shown, arg));
		return false;
	}
	return true;
}

static bool is_syslog_facility(const char *s)
{
	static const char *const facilities[] = {
		"LOG_MAIL", "LOG_USER", "LOG_LOCAL0", "LOG_LOCAL1",
		"LOG_LOCAL2", "LOG_LOCAL3", "LOG_LOCAL4", "LOG_LOCAL5",
		"LOG_LOCAL6", "LOG_LOCAL7",
	};
	for (size_t i = 0; i < sizeof facilities / sizeof facilities[0]; i++)
		if (strcmp(s, facilities[i]) == 0)
			return true;
	return false;
}

static bool parse_syslog(const struct keyword *kw, const char *arg,
			 union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	if (!*arg || strcmp(arg, "on") == 0) {
		out->str = xstrdup("LOG_MAIL");
	} else if (strcmp(arg, "off") == 0) {
		out->str = NULL;
	} else if (is_syslog_facility(arg)) {
		out->str = xstrdup(arg);
	} else {
		format_into(msg, msglen, "%s: expected on, off, LOG_MAIL, "
			    "LOG_USER or LOG_LOCAL0 to LOG_LOCAL7, not '%s'",
			    kw->name, echo(shown, sizeof shown, arg));
		return false;
	}
	return true;
}

static bool parse_unsupported(const struct keyword *kw, const char *arg,
			      union value *out, char *msg, size_t msglen)
{
	(void)arg, (void)out;
	format_into(msg, msglen, "msmtp keyword '%s' is not supported by "
		    "postbote", kw->name);
	return false;
}

/* SMTP is the only protocol postbote speaks, so saying so is harmless. */
static bool parse_protocol(const struct keyword *kw, const char *arg,
			   union value *out, char *msg, size_t msglen)
{
	char shown[ECHO_MAX];
	(void)out;
	if (strcmp(arg, "smtp") == 0)
		return true;
	if (!*arg) {
		format_into(msg, msglen, "keyword '%s' needs an argument",
			    kw->name);
		return false;
	}
	format_into(msg, msglen, "msmtp keyword '%s %s' is not supported by "
		    "postbote (only '%s smtp' is)", kw->name,
		    echo(shown, sizeof shown, arg), kw->name);
	return false;
}

/* ---- accounts ---- */

static void *field_of(struct account *acct, const struct keyword *kw)
{
	return (char *)acct + kw->offset;
}

static const void *const_field_of(const struct account *acct,
				  const struct keyword *kw)
{
	return (const char *)acct + kw->offset;
}

/* Store a parsed value, taking ownership of a string. */
static void store_value(struct account *acct, const struct keyword *kw,
			union value v)
{
	void *field = field_of(acct, kw);
	switch (kw->kind) {
	case KIND_STRING:
		free(*(char **)field);
		*(char **)field = v.str;
		break;
	case KIND_SECRET:
		free_secret(*(char **)field);
		*(char **)field = v.str;
		break;
	case KIND_INT:
		*(int *)field = v.num;
		break;
	case KIND_BOOL:
		*(bool *)field = v.flag;
		break;
	case KIND_UNSUPPORTED:
		break;
	}
}

static void copy_value(struct account *dst, const struct account *src,
		       const struct keyword *kw)
{
	const void *field = const_field_of(src, kw);
	union value v = { .str = NULL };
	switch (kw->kind) {
	case KIND_STRING:
	case KIND_SECRET:
		v.str = *(char *const *)field ? xstrdup(*(char *const *)field)
					      : NULL;
		break;
	case KIND_INT:
		v.num = *(const int *)field;
		break;
	case KIND_BOOL:
		v.flag = *(const bool *)field;
		break;
	case KIND_UNSUPPORTED:
		return;
	}
	store_value(dst, kw, v);
}

void account_init(struct account *acct)
{
	memset(acct, 0, sizeof *acct);
	acct->tls = true;
	acct->tls_starttls = true;
	acct->tls_certcheck = true;
	acct->queue = true;
	acct->auth = xstrdup("on");
}

void account_free(struct account *acct)
{
	for (size_t i = 0; i < NKEYWORDS; i++) {
		const struct keyword *kw = &keywords[i];
		if (kw->kind == KIND_STRING || kw->kind == KIND_SECRET)
			store_value(acct, kw, (union value){ .str = NULL });
	}
	free(acct->name);
	memset(acct, 0, sizeof *acct);
}

/* A new account starts as the defaults stand now; nothing counts as set
 * in it yet (account_init clears set: msmtp semantics, which "account A :
 * B" inheritance relies on). */
static void account_from_defaults(struct account *dst,
				  const struct account *defaults,
				  const char *name)
{
	account_init(dst);
	for (size_t i = 0; i < NKEYWORDS; i++)
		copy_value(dst, defaults, &keywords[i]);
	dst->name = xstrdup(name);
}

/* Take every setting the parent was given explicitly. */
static void account_inherit(struct account *dst, const struct account *parent)
{
	for (size_t i = 0; i < NKEYWORDS; i++) {
		if (bit_get(parent->set, i)) {
			copy_value(dst, parent, &keywords[i]);
			bit_set(dst->set, i);
		}
	}
}

bool account_is_set(const struct account *acct, const char *keyword)
{
	size_t i;
	const struct keyword *kw = find_keyword(keyword, &i);
	return kw && kw->kind != KIND_UNSUPPORTED && bit_get(acct->set, i);
}

static struct account *config_lookup(const struct config *cfg,
				     const char *name)
{
	for (size_t i = 0; i < cfg->naccounts; i++)
		if (strcmp(cfg->accounts[i].name, name) == 0)
			return &cfg->accounts[i];
	return NULL;
}

const struct account *config_find_account(const struct config *cfg,
					  const char *name)
{
	const struct account *acct;
	if (name)
		return config_lookup(cfg, name);
	if (cfg->default_name && (acct = config_lookup(cfg, cfg->default_name)))
		return acct;
	if ((acct = config_lookup(cfg, "default")))
		return acct;
	return cfg->naccounts ? &cfg->accounts[0] : NULL;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->naccounts; i++)
		account_free(&cfg->accounts[i]);
	free(cfg->accounts);
	free(cfg->path);
	free(cfg->default_name);
	memset(cfg, 0, sizeof *cfg);
}

/* ---- the parser ---- */

enum section {
	SECTION_NONE,           /* no "defaults" or "account" line yet */
	SECTION_DEFAULTS,
	SECTION_ACCOUNT,        /* the last account in cfg */
};

struct parser {
	const char *name;       /* file name for messages */
	size_t lineno;
	enum section section;
	struct account defaults;
	struct config *cfg;
	size_t *account_lines;  /* where each account was defined */
	char *err;
	size_t errlen;
};

static int fail(struct parser *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

static int fail(struct parser *p, const char *fmt, ...)
{
	char msg[CONFIG_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	else if ((size_t)n >= sizeof msg)
		memcpy(msg + sizeof msg - 4, "...", 4);
	format_into(p->err, p->errlen, "%s:%zu: %s", p->name, p->lineno, msg);
	return -1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Narrow [*s, *s + *len) to its non-blank middle. */
static void trim(const char **s, size_t *len)
{
	while (*len && is_blank(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_blank((*s)[*len - 1]))
		(*len)--;
}

/* An argument that starts with '"' must be one quoted string ("\"" and
 * "\\" stand for '"' and '\'; any other backslash is kept, so Windows-ish
 * paths survive). Otherwise the argument is literal, quotes and all. */
static int unquote(struct parser *p, const char *raw, size_t len, char **out)
{
	if (len == 0 || raw[0] != '"') {
		*out = xstrndup(raw, len);
		return 0;
	}
	char *buf = xmalloc(len);
	size_t o = 0, i;
	for (i = 1; i < len && raw[i] != '"'; i++) {
		if (raw[i] == '\\' && i + 1 < len
		    && (raw[i + 1] == '"' || raw[i + 1] == '\\'))
			i++;
		buf[o++] = raw[i];
	}
	buf[o] = '\0';
	if (i >= len || i + 1 != len) {
		free_secret(buf);
		return fail(p, i >= len ? "unbalanced double quote in the "
			    "argument" : "text after the closing double quote");
	}
	*out = buf;
	return 0;
}

static struct account *current_section(struct parser *p);

static int apply_keyword(struct parser *p, const char *name, const char *arg)
{
	char msg[CONFIG_ERROR_MAX];
	char shown[ECHO_MAX];
	size_t i;
	const struct keyword *kw = find_keyword(name, &i);
	if (!kw)
		return fail(p, "unknown keyword '%s'",
			    echo(shown, sizeof shown, name));
	union value v = { .str = NULL };
	if (!kw->parse(kw, arg, &v, msg, sizeof msg))
		return fail(p, "%s", msg);
	if (kw->kind == KIND_UNSUPPORTED)
		return 0;
	struct account *acct = current_section(p);
	store_value(acct, kw, v);
	bit_set(acct->set, i);
	if (kw->kind == KIND_SECRET && v.str)
		p->cfg->has_secret = true;
	return 0;
}

static void append_account(struct parser *p, struct account *acct)
{
	struct config *cfg = p->cfg;
	cfg->accounts = xrealloc(cfg->accounts,
				 (cfg->naccounts + 1) * sizeof *cfg->accounts);
	p->account_lines = xrealloc(p->account_lines, (cfg->naccounts + 1)
				    * sizeof *p->account_lines);
	cfg->accounts[cfg->naccounts] = *acct;
	p->account_lines[cfg->naccounts] = p->lineno;
	cfg->naccounts++;
	p->section = SECTION_ACCOUNT;
}

/* msmtp (up to 1.8.x, for files from 1.2.x) puts keywords that come before
 * any "defaults" or "account" line into an account named "default". */
static struct account *current_section(struct parser *p)
{
	if (p->section == SECTION_NONE) {
		struct account acct;
		account_from_defaults(&acct, &p->defaults, "default");
		append_account(p, &acct);
	}
	if (p->section == SECTION_DEFAULTS)
		return &p->defaults;
	return &p->cfg->accounts[p->cfg->naccounts - 1];
}

/* Apply the comma-separated parents in list (modified) to acct. */
static int inherit_parents(struct parser *p, struct account *acct, char *list)
{
	char shown[ECHO_MAX];
	for (char *item = list, *next; item; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		const char *name = item;
		size_t len = strlen(item);
		trim(&name, &len);
		char *parent_name = xstrndup(name, len);
		const struct account *parent = config_lookup(p->cfg,
							     parent_name);
		if (!parent) {
			int rc = len == 0
				? fail(p, "missing account name after ':'")
				: fail(p, "account '%s' after ':' is not "
				       "defined (yet)", echo(shown,
				       sizeof shown, parent_name));
			free(parent_name);
			return rc;
		}
		free(parent_name);
		account_inherit(acct, parent);
	}
	return 0;
}

static int check_account_name(struct parser *p, const char *name)
{
	char shown[ECHO_MAX];
	if (!*name)
		return fail(p, "keyword 'account' needs an account name");
	if (strchr(name, ','))
		return fail(p, "an account name must not contain ',' or ':'");
	for (size_t i = 0; i < p->cfg->naccounts; i++) {
		if (strcmp(p->cfg->accounts[i].name, name) == 0)
			return fail(p, "account '%s' is already defined on "
				    "line %zu", echo(shown, sizeof shown, name),
				    p->account_lines[i]);
	}
	return 0;
}

/* "account NAME" or "account NAME : PARENT[, PARENT...]". */
static int start_account(struct parser *p, char *arg)
{
	char *parents = strchr(arg, ':');
	if (parents)
		*parents++ = '\0';
	const char *name = arg;
	size_t len = strlen(arg);
	trim(&name, &len);
	char *account_name = xstrndup(name, len);
	struct account acct;
	int rc = check_account_name(p, account_name);
	if (rc == 0) {
		account_from_defaults(&acct, &p->defaults, account_name);
		if (parents)
			rc = inherit_parents(p, &acct, parents);
		if (rc == 0)
			append_account(p, &acct);
		else
			account_free(&acct);
	}
	if (rc == 0 && parents && strcmp(account_name, "default") == 0)
		p->cfg->default_name = xstrdup("default");
	free(account_name);
	return rc;
}

static int dispatch(struct parser *p, const char *name, char *arg)
{
	if (strcmp(name, "defaults") == 0) {
		if (*arg)
			return fail(p, "keyword 'defaults' takes no argument");
		p->section = SECTION_DEFAULTS;
		return 0;
	}
	if (strcmp(name, "account") == 0)
		return start_account(p, arg);
	return apply_keyword(p, name, arg);
}

static int parse_line(struct parser *p, const char *line, size_t len)
{
	if (memchr(line, '\0', len))
		return fail(p, "the line contains a NUL byte");
	trim(&line, &len);
	if (len == 0 || line[0] == '#')
		return 0;
	size_t name_len = 0;
	while (name_len < len && !is_blank(line[name_len]))
		name_len++;
	const char *raw = line + name_len;
	size_t raw_len = len - name_len;
	trim(&raw, &raw_len);
	char *arg = NULL;
	if (unquote(p, raw, raw_len, &arg) < 0)
		return -1;
	char *name = xstrndup(line, name_len);
	int rc = dispatch(p, name, arg);
	free(name);
	free_secret(arg);       /* it may be a password */
	return rc;
}

static int parse_buffer(const char *text, size_t len, const char *name,
			struct config *out, char *err, size_t errlen)
{
	struct parser p = {
		.name = name, .cfg = out, .err = err, .errlen = errlen,
	};
	int rc = 0;
	memset(out, 0, sizeof *out);
	account_init(&p.defaults);
	for (size_t start = 0; rc == 0 && start < len;) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;
		p.lineno++;
		rc = parse_line(&p, text + start, end - start);
		start = end + 1;
	}
	account_free(&p.defaults);
	free(p.account_lines);
	if (rc < 0)
		config_free(out);
	return rc;
}

int config_parse_string(const char *text, const char *name, struct config *out,
			char *err, size_t errlen)
{
	return parse_buffer(text, strlen(text), name, out, err, errlen);
}

/* ---- files ---- */

/* Like xrealloc, but the old copy is wiped: the file may hold a password. */
static char *grow_secret_buffer(char *buf, size_t used, size_t newcap)
{
	char *bigger = xmalloc(newcap);
	memcpy(bigger, buf, used);
	explicit_bzero(buf, used);
	free(buf);
	return bigger;
}

static void free_secret_buffer(char *buf, size_t used)
{
	explicit_bzero(buf, used);
	free(buf);
}

/* Read all of fd; a growing buffer, so no line is ever split. */
static int read_whole_file(int fd, const char *path, char **text, size_t *len,
			   char *err, size_t errlen)
{
	size_t cap = 4096, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (n == cap && cap >= CONFIG_FILE_MAX) {
			format_into(err, errlen, "%s: larger than %u bytes; "
				    "not a configuration file", path,
				    CONFIG_FILE_MAX);
			free_secret_buffer(buf, n);
			return -1;
		}
		if (n == cap)
			buf = grow_secret_buffer(buf, n, cap *= 2);
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			format_into(err, errlen, "%s: %s", path,
				    strerror(errno));
			free_secret_buffer(buf, n);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*text = buf;
	*len = n;
	return 0;
}

/* Only the owner may read a file that holds a secret, except for the
 * system-wide setup: a file whose group is the credentials group that a
 * setgid postbote runs as may be readable by that group (see README,
 * "One relay account for all users"). */
bool config_secret_mode_ok(const struct stat *st)
{
	struct group *gr;
	if ((st->st_mode & 077) == 0)
		return true;
	if (st->st_mode & 007)
		return false;
	gr = getgrnam(CREDENTIALS_GROUP);
	return gr && gr->gr_gid == st->st_gid && !(st->st_mode & 020);
}

/* The mode comes from the descriptor that was read, so the file checked is
 * the file parsed. */
static int read_config_file(const char *path, char **text, size_t *len,
			    struct stat *st_out, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		format_into(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		format_into(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	*st_out = st;
	int rc = read_whole_file(fd, path, text, len, err, errlen);
	close(fd);
	return rc;
}

int config_load(const char *path, struct config *out, char *err, size_t errlen)
{
	char *text;
	size_t len;
	struct stat st;
	memset(out, 0, sizeof *out);
	if (read_config_file(path, &text, &len, &st, err, errlen) < 0)
		return -1;
	int rc = parse_buffer(text, len, path, out, err, errlen);
	free_secret_buffer(text, len);
	if (rc < 0)
		return -1;
	if (out->has_secret && !config_secret_mode_ok(&st)) {
		format_into(err, errlen, "%s: holds a password or an OAuth2 secret "
			    "but is readable by others (mode %04o); run: chmod "
			    "600 %s", path,
			    (unsigned)(st.st_mode & 07777), path);
		config_free(out);
		return -1;
	}
	out->path = xstrdup(path);
	return 0;
}
