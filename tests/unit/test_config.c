#include "autoconf.h"
#include "run_suite.h"
#include "config.h"
#include "util.h"

#include <check.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_HOME "/home/tester"

static struct config cfg;
static char err[CONFIG_ERROR_MAX];
static char tmpdir[256];

static void setup(void)
{
	memset(&cfg, 0, sizeof cfg);
	err[0] = '\0';
	setenv("HOME", TEST_HOME, 1);
}

static void teardown(void)
{
	config_free(&cfg);
}

static int parse(const char *text)
{
	config_free(&cfg);
	return config_parse_string(text, "t.rc", &cfg, err, sizeof err);
}

static void parse_ok(const char *text)
{
	int rc = parse(text);
	ck_assert_msg(rc == 0, "parse failed: %s", err);
}

/* The parse fails with exactly this message and leaves nothing behind. */
static void parse_fails(const char *text, const char *expected)
{
	int rc = parse(text);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(err, expected);
	ck_assert_ptr_null(cfg.accounts);
	ck_assert_uint_eq(cfg.naccounts, 0);
	ck_assert_ptr_null(cfg.default_name);
	ck_assert(!cfg.has_secret);
}

/* "account a" followed by body; returns account a. */
static const struct account *account_with(const char *body)
{
	char *text = xasprintf("account a\n%s\n", body);
	parse_ok(text);
	free(text);
	const struct account *a = config_find_account(&cfg, "a");
	ck_assert_ptr_nonnull(a);
	return a;
}

/* The error for "account a" followed by body. */
static void account_fails(const char *body, const char *expected)
{
	char *text = xasprintf("account a\n%s\n", body);
	parse_fails(text, expected);
	free(text);
}

/* ---- syntax ---- */

START_TEST(test_empty_text)
{
	parse_ok("");
	ck_assert_uint_eq(cfg.naccounts, 0);
	ck_assert_ptr_null(config_find_account(&cfg, NULL));
	ck_assert_ptr_null(cfg.path);
	ck_assert(!cfg.has_secret);
}
END_TEST

START_TEST(test_comments_and_blank_lines)
{
	parse_ok("# a comment\n\n   \t\n\t  # indented comment\n"
		 "account a\n#host commented.example\n\n"
		 "host h.example # not a comment\n");
	ck_assert_uint_eq(cfg.naccounts, 1);
	/* as in msmtp, '#' starts a comment only at the start of a line */
	ck_assert_str_eq(cfg.accounts[0].host, "h.example # not a comment");
}
END_TEST

START_TEST(test_whitespace_around_keyword_and_argument)
{
	parse_ok("  \taccount \t a  \n\t host \t  smtp.example.org \t\n");
	ck_assert_str_eq(cfg.accounts[0].name, "a");
	ck_assert_str_eq(cfg.accounts[0].host, "smtp.example.org");
}
END_TEST

START_TEST(test_crlf_and_missing_final_newline)
{
	parse_ok("account a\r\nhost h.example\r\nfrom me@example.org");
	ck_assert_str_eq(cfg.accounts[0].host, "h.example");
	ck_assert_str_eq(cfg.accounts[0].from, "me@example.org");
}
END_TEST

START_TEST(test_argument_keeps_inner_spaces)
{
	const struct account *a = account_with("passwordeval pass show  mail/x");
	ck_assert_str_eq(a->passwordeval, "pass show  mail/x");
}
END_TEST

START_TEST(test_quoted_arguments)
{
	const struct account *a = account_with(
		"host \"smtp example\"\n"
		"user \"  spaced  \"\n"
		"password \"p\\\"q\\\\r\"\n"
		"from \"a\\nb\"\n"
		"domain \"\"\n"
		"maildomain a\"b c\"d");
	ck_assert_str_eq(a->host, "smtp example");
	ck_assert_str_eq(a->user, "  spaced  ");
	ck_assert_str_eq(a->password, "p\"q\\r");
	/* other backslashes are kept as they are */
	ck_assert_str_eq(a->from, "a\\nb");
	ck_assert_ptr_null(a->domain);
	/* quotes that do not open the argument are literal */
	ck_assert_str_eq(a->maildomain, "a\"b c\"d");
}
END_TEST

START_TEST(test_quoted_account_name)
{
	parse_ok("account \"my account\"\nhost h\n");
	ck_assert_str_eq(cfg.accounts[0].name, "my account");
	ck_assert_ptr_nonnull(config_find_account(&cfg, "my account"));
}
END_TEST

START_TEST(test_unbalanced_quote)
{
	account_fails("host \"smtp.example",
		      "t.rc:2: unbalanced double quote in the argument");
	account_fails("host \"smtp.example\\\"",
		      "t.rc:2: unbalanced double quote in the argument");
	account_fails("host \"",
		      "t.rc:2: unbalanced double quote in the argument");
}
END_TEST

START_TEST(test_text_after_closing_quote)
{
	account_fails("host \"a\" b",
		      "t.rc:2: text after the closing double quote");
}
END_TEST

START_TEST(test_long_lines)
{
	size_t n = 20000;
	char *host = xmalloc(n + 1), *secret = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		host[i] = (char)('a' + i % 26);
		secret[i] = (char)('A' + i % 26);
	}
	host[n] = secret[n] = '\0';
	char *text = xasprintf("account a\nhost %s\npassword \"%s\"\nport 25\n",
			       host, secret);
	parse_ok(text);
	ck_assert_uint_eq(strlen(cfg.accounts[0].host), n);
	ck_assert_str_eq(cfg.accounts[0].host, host);
	ck_assert_str_eq(cfg.accounts[0].password, secret);
	/* the line after the long ones is still its own line */
	ck_assert_int_eq(cfg.accounts[0].port, 25);
	free(text);
	free(host);
	free(secret);
}
END_TEST

START_TEST(test_unknown_keyword)
{
	parse_fails("account a\nhost h\nfrobnicate 1\n",
		    "t.rc:3: unknown keyword 'frobnicate'");
	/* keywords are case-sensitive, as in msmtp */
	parse_fails("account a\nHost h\n", "t.rc:2: unknown keyword 'Host'");
	parse_fails("\n\n\nfrob\n", "t.rc:4: unknown keyword 'frob'");
}
END_TEST

START_TEST(test_unknown_keyword_made_visible)
{
	parse_fails("bad\x1bkey x\n", "t.rc:1: unknown keyword 'bad\\x1bkey'");
}
END_TEST

START_TEST(test_error_uses_given_name)
{
	int rc = config_parse_string("nope\n", "/etc/postbote.conf", &cfg,
				     err, sizeof err);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(err, "/etc/postbote.conf:1: unknown keyword 'nope'");
}
END_TEST

START_TEST(test_error_frees_earlier_accounts)
{
	/* accounts, a default name and a secret exist before the error */
	parse_fails("account a\npassword s\naccount b\nhost h\n"
		    "account default : a\nport x\n",
		    "t.rc:6: port: expected a port number from 1 to 65535, "
		    "not 'x'");
}
END_TEST

START_TEST(test_error_truncated_into_small_buffer)
{
	char small[16];
	int rc = config_parse_string("unknownkeyword\n", "t.rc", &cfg,
				     small, sizeof small);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(small, "t.rc:1: unkn...");
}
END_TEST

/* ---- keywords and values ---- */

START_TEST(test_account_init)
{
	struct account a;
	account_init(&a);
	ck_assert(a.tls);
	ck_assert(a.tls_starttls);
	ck_assert(a.tls_certcheck);
	ck_assert_str_eq(a.auth, "on");
	ck_assert_ptr_null(a.name);
	ck_assert_ptr_null(a.host);
	ck_assert_int_eq(a.port, 0);
	ck_assert_ptr_null(a.tls_trust_file);
	ck_assert_ptr_null(a.password);
	ck_assert_int_eq(a.timeout, 0);
	ck_assert_ptr_null(a.syslog);
	ck_assert_uint_eq(a.set[0] | a.set[1], 0);
	account_free(&a);
	ck_assert_ptr_null(a.auth);
}
END_TEST

START_TEST(test_new_account_has_defaults)
{
	const struct account *a = account_with("");
	ck_assert_str_eq(a->name, "a");
	ck_assert(a->tls && a->tls_starttls && a->tls_certcheck);
	ck_assert_str_eq(a->auth, "on");
	ck_assert_ptr_null(a->host);
	ck_assert_int_eq(a->port, 0);
	ck_assert_ptr_null(a->logfile);
	ck_assert_uint_eq(a->set[0] | a->set[1], 0);
}
END_TEST

START_TEST(test_host)
{
	ck_assert_str_eq(account_with("host smtp.example.org")->host,
			 "smtp.example.org");
	ck_assert_str_eq(account_with("host a\nhost b")->host, "b");
	account_fails("host", "t.rc:2: keyword 'host' needs an argument");
	account_fails("host \"\"", "t.rc:2: keyword 'host' needs an argument");
}
END_TEST

START_TEST(test_port)
{
	ck_assert_int_eq(account_with("port 1")->port, 1);
	ck_assert_int_eq(account_with("port 587")->port, 587);
	ck_assert_int_eq(account_with("port 65535")->port, 65535);
}
END_TEST

static const struct {
	const char *line;
	const char *error;
} bad_values[] = {
	{ "port 0", "port: expected a port number from 1 to 65535, not '0'" },
	{ "port 65536",
	  "port: expected a port number from 1 to 65535, not '65536'" },
	{ "port -1", "port: expected a port number from 1 to 65535, not '-1'" },
	{ "port 25x", "port: expected a port number from 1 to 65535, not '25x'" },
	{ "port +25", "port: expected a port number from 1 to 65535, not '+25'" },
	{ "port 99999999999999999999999",
	  "port: expected a port number from 1 to 65535, "
	  "not '99999999999999999999999'" },
	{ "port smtp",
	  "port: expected a port number from 1 to 65535, not 'smtp'" },
	{ "port", "keyword 'port' needs an argument" },
	{ "timeout 0",
	  "timeout: expected off or a number of seconds (1 or more), not '0'" },
	{ "timeout -5",
	  "timeout: expected off or a number of seconds (1 or more), not '-5'" },
	{ "timeout 10s",
	  "timeout: expected off or a number of seconds (1 or more), "
	  "not '10s'" },
	{ "timeout on",
	  "timeout: expected off or a number of seconds (1 or more), not 'on'" },
	{ "timeout 3000000000",
	  "timeout: expected off or a number of seconds (1 or more), "
	  "not '3000000000'" },
	{ "timeout", "keyword 'timeout' needs an argument" },
	{ "tls yes", "tls: expected on or off, not 'yes'" },
	{ "tls ON", "tls: expected on or off, not 'ON'" },
	{ "tls 1", "tls: expected on or off, not '1'" },
	{ "tls_starttls true", "tls_starttls: expected on or off, not 'true'" },
	{ "tls_certcheck no", "tls_certcheck: expected on or off, not 'no'" },
	{ "tls_fingerprint 3f:a0",
	  "tls_fingerprint: expected a SHA-256 fingerprint, 32 hex byte pairs "
	  "separated by ':' (like 3F:A0:...:9C), not '3f:a0'" },
	{ "tls_min_dh_prime_bits -1",
	  "tls_min_dh_prime_bits: expected a number of bits (0 or more), "
	  "not '-1'" },
	{ "tls_min_dh_prime_bits many",
	  "tls_min_dh_prime_bits: expected a number of bits (0 or more), "
	  "not 'many'" },
	{ "auth pl ain",
	  "auth: expected on, off or a SASL mechanism name (letters, digits, "
	  "'-' and '_', at most 20), not 'pl ain'" },
	{ "auth PLAIN!",
	  "auth: expected on, off or a SASL mechanism name (letters, digits, "
	  "'-' and '_', at most 20), not 'PLAIN!'" },
	{ "auth ABCDEFGHIJKLMNOPQRSTU",
	  "auth: expected on, off or a SASL mechanism name (letters, digits, "
	  "'-' and '_', at most 20), not 'ABCDEFGHIJKLMNOPQRSTU'" },
	{ "syslog LOG_DAEMON",
	  "syslog: expected on, off, LOG_MAIL, LOG_USER or LOG_LOCAL0 to "
	  "LOG_LOCAL7, not 'LOG_DAEMON'" },
	{ "syslog log_mail",
	  "syslog: expected on, off, LOG_MAIL, LOG_USER or LOG_LOCAL0 to "
	  "LOG_LOCAL7, not 'log_mail'" },
	{ "syslog LOG_LOCAL8",
	  "syslog: expected on, off, LOG_MAIL, LOG_USER or LOG_LOCAL0 to "
	  "LOG_LOCAL7, not 'LOG_LOCAL8'" },
	{ "protocol lmtp",
	  "msmtp keyword 'protocol lmtp' is not supported by postbote "
	  "(only 'protocol smtp' is)" },
	{ "protocol", "keyword 'protocol' needs an argument" },
	{ "tls maybe\x07", "tls: expected on or off, not 'maybe\\x07'" },
};

START_TEST(test_bad_value)
{
	char *expected = xasprintf("t.rc:2: %s", bad_values[_i].error);
	account_fails(bad_values[_i].line, expected);
	free(expected);
}
END_TEST

START_TEST(test_bad_value_in_defaults)
{
	parse_fails("defaults\nport 0\n", "t.rc:2: port: expected a port number "
		    "from 1 to 65535, not '0'");
}
END_TEST

START_TEST(test_long_bad_value_is_cut)
{
	char value[300];
	memset(value, '9', sizeof value - 1);
	value[sizeof value - 1] = '\0';
	char *line = xasprintf("port %s", value);
	int rc = parse(line);
	ck_assert_int_eq(rc, -1);
	ck_assert(strstr(err, "t.rc:1: port: expected a port number from 1 to "
			 "65535, not '999") == err);
	ck_assert(strstr(err, "...'") != NULL);
	ck_assert_uint_lt(strlen(err), 200);
	free(line);
}
END_TEST

static const struct {
	const char *keyword;
	size_t offset;
} booleans[] = {
	{ "tls", offsetof(struct account, tls) },
	{ "tls_starttls", offsetof(struct account, tls_starttls) },
	{ "tls_certcheck", offsetof(struct account, tls_certcheck) },
};

static bool bool_field(const struct account *a, int i)
{
	return *(const bool *)((const char *)a + booleans[i].offset);
}

START_TEST(test_booleans)
{
	char *line = xasprintf("%s off", booleans[_i].keyword);
	ck_assert(!bool_field(account_with(line), _i));
	free(line);
	line = xasprintf("%s off\n%s on", booleans[_i].keyword,
			 booleans[_i].keyword);
	ck_assert(bool_field(account_with(line), _i));
	free(line);
	/* an empty argument means on, as in msmtp */
	line = xasprintf("%s off\n%s", booleans[_i].keyword,
			 booleans[_i].keyword);
	ck_assert(bool_field(account_with(line), _i));
	free(line);
}
END_TEST

START_TEST(test_tls_trust_file)
{
	ck_assert_str_eq(account_with("tls_trust_file /etc/ssl/ca.pem")
			 ->tls_trust_file, "/etc/ssl/ca.pem");
	ck_assert_ptr_null(account_with("tls_trust_file system")
			   ->tls_trust_file);
	ck_assert_ptr_null(account_with("tls_trust_file /x\ntls_trust_file")
			   ->tls_trust_file);
	ck_assert_str_eq(account_with("tls_trust_file ~/ca.pem")
			 ->tls_trust_file, TEST_HOME "/ca.pem");
	/* "system" counts as given: it overrides a parent's file */
	ck_assert(account_is_set(account_with("tls_trust_file system"),
				 "tls_trust_file"));
}
END_TEST

START_TEST(test_tilde_expansion)
{
	const struct account *a = account_with(
		"tls_cert_file ~/.certs/me.pem\n"
		"tls_key_file ~\n"
		"aliases ~other/aliases\n"
		"logfile a~/log");
	ck_assert_str_eq(a->tls_cert_file, TEST_HOME "/.certs/me.pem");
	ck_assert_str_eq(a->tls_key_file, TEST_HOME);
	/* only "~" and "~/" are the home directory */
	ck_assert_str_eq(a->aliases, "~other/aliases");
	ck_assert_str_eq(a->logfile, "a~/log");
	/* passwordeval is a command, not a file name: left alone */
	ck_assert_str_eq(account_with("passwordeval cat ~/pw")->passwordeval,
			 "cat ~/pw");
}
END_TEST

START_TEST(test_tilde_without_home_uses_passwd)
{
	unsetenv("HOME");
	struct passwd *pw = getpwuid(getuid());
	if (!pw || !pw->pw_dir || !*pw->pw_dir) {
		account_fails("aliases ~/aliases", "t.rc:2: aliases: cannot "
			      "expand '~': HOME is not set and the user has "
			      "no home directory");
		return;
	}
	char *expected = xasprintf("%s/aliases", pw->pw_dir);
	ck_assert_str_eq(account_with("aliases ~/aliases")->aliases, expected);
	free(expected);
}
END_TEST

#define SHA256_LOWER \
	"3f:a0:01:23:45:67:89:ab:cd:ef:00:11:22:33:44:55:" \
	"66:77:88:99:aa:bb:cc:dd:ee:ff:10:20:30:40:50:9c"
#define SHA256_UPPER \
	"3F:A0:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:" \
	"66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:50:9C"

START_TEST(test_tls_fingerprint)
{
	ck_assert_str_eq(account_with("tls_fingerprint " SHA256_UPPER)
			 ->tls_fingerprint, SHA256_UPPER);
	/* stored upper-case whatever the file says */
	ck_assert_str_eq(account_with("tls_fingerprint " SHA256_LOWER)
			 ->tls_fingerprint, SHA256_UPPER);
	ck_assert_ptr_null(account_with("tls_fingerprint " SHA256_UPPER
					"\ntls_fingerprint")->tls_fingerprint);
}
END_TEST

static const char *const bad_fingerprints[] = {
	/* no colons */
	"3FA00123456789ABCDEF00112233445566778899AABBCCDDEEFF10203040509C",
	/* 31 pairs */
	"3F:A0:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:"
	"66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:50",
	/* 33 pairs */
	SHA256_UPPER ":00",
	/* not hex */
	"3G:A0:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:"
	"66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:50:9C",
	/* '-' as separator */
	"3F-A0-01-23-45-67-89-AB-CD-EF-00-11-22-33-44-55-"
	"66-77-88-99-AA-BB-CC-DD-EE-FF-10-20-30-40-50-9C",
	/* a SHA-1 fingerprint */
	"3F:A0:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:66:77:88:99",
	/* right length, colons misplaced */
	"3FA:0:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:"
	"66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:50:9C",
};

START_TEST(test_bad_fingerprint)
{
	char *line = xasprintf("tls_fingerprint %s", bad_fingerprints[_i]);
	char *text = xasprintf("account a\n%s\n", line);
	ck_assert_int_eq(parse(text), -1);
	ck_assert_msg(strstr(err, "t.rc:2: tls_fingerprint: expected a "
			     "SHA-256 fingerprint, 32 hex byte pairs "
			     "separated by ':'") == err, "got %s", err);
	free(text);
	free(line);
}
END_TEST

START_TEST(test_tls_strings)
{
	const struct account *a = account_with(
		"tls_cert_file /etc/me.pem\n"
		"tls_key_file /etc/me.key\n"
		"tls_priorities NORMAL:-VERS-TLS1.2");
	ck_assert_str_eq(a->tls_cert_file, "/etc/me.pem");
	ck_assert_str_eq(a->tls_key_file, "/etc/me.key");
	ck_assert_str_eq(a->tls_priorities, "NORMAL:-VERS-TLS1.2");
	a = account_with("tls_cert_file /x\ntls_cert_file\ntls_key_file /y\n"
			 "tls_key_file \"\"\ntls_priorities P\ntls_priorities");
	ck_assert_ptr_null(a->tls_cert_file);
	ck_assert_ptr_null(a->tls_key_file);
	ck_assert_ptr_null(a->tls_priorities);
}
END_TEST

START_TEST(test_tls_min_dh_prime_bits)
{
	ck_assert_int_eq(account_with("tls_min_dh_prime_bits 2048")
			 ->tls_min_dh_prime_bits, 2048);
	ck_assert_int_eq(account_with("tls_min_dh_prime_bits 0")
			 ->tls_min_dh_prime_bits, 0);
	ck_assert_int_eq(account_with("tls_min_dh_prime_bits 1024\n"
				      "tls_min_dh_prime_bits")
			 ->tls_min_dh_prime_bits, 0);
}
END_TEST

START_TEST(test_auth)
{
	ck_assert_str_eq(account_with("auth off")->auth, "off");
	ck_assert_str_eq(account_with("auth on")->auth, "on");
	ck_assert_str_eq(account_with("auth off\nauth")->auth, "on");
	ck_assert_str_eq(account_with("auth OFF")->auth, "off");
	ck_assert_str_eq(account_with("auth On")->auth, "on");
	ck_assert_str_eq(account_with("auth plain")->auth, "PLAIN");
	ck_assert_str_eq(account_with("auth scram-sha-256-plus")->auth,
			 "SCRAM-SHA-256-PLUS");
	ck_assert_str_eq(account_with("auth xoauth2")->auth, "XOAUTH2");
	ck_assert_str_eq(account_with("auth X_Mech")->auth, "X_MECH");
	ck_assert_str_eq(account_with("auth ABCDEFGHIJKLMNOPQRST")->auth,
			 "ABCDEFGHIJKLMNOPQRST");
}
END_TEST

START_TEST(test_plain_strings)
{
	const struct account *a = account_with(
		"user joe@example.org\n"
		"password s3cr3t with spaces\n"
		"passwordeval gpg -d ~/.pw.gpg\n"
		"from joe@example.org\n"
		"domain client.example.org\n"
		"maildomain example.org");
	ck_assert_str_eq(a->user, "joe@example.org");
	ck_assert_str_eq(a->password, "s3cr3t with spaces");
	ck_assert_str_eq(a->passwordeval, "gpg -d ~/.pw.gpg");
	ck_assert_str_eq(a->from, "joe@example.org");
	ck_assert_str_eq(a->domain, "client.example.org");
	ck_assert_str_eq(a->maildomain, "example.org");
	a = account_with("user u\nuser\npassword p\npassword\npasswordeval e\n"
			 "passwordeval\nfrom f\nfrom\ndomain d\ndomain\n"
			 "maildomain m\nmaildomain");
	ck_assert_ptr_null(a->user);
	ck_assert_ptr_null(a->password);
	ck_assert_ptr_null(a->passwordeval);
	ck_assert_ptr_null(a->from);
	ck_assert_ptr_null(a->domain);
	ck_assert_ptr_null(a->maildomain);
}
END_TEST

START_TEST(test_aliases)
{
	ck_assert_str_eq(account_with("aliases /etc/aliases")->aliases,
			 "/etc/aliases");
	ck_assert_str_eq(account_with("aliases ~/.aliases")->aliases,
			 TEST_HOME "/.aliases");
	ck_assert_ptr_null(account_with("aliases /x\naliases")->aliases);
}
END_TEST

START_TEST(test_timeout)
{
	ck_assert_int_eq(account_with("timeout 30")->timeout, 30);
	ck_assert_int_eq(account_with("timeout 30\ntimeout off")->timeout, 0);
	ck_assert_int_eq(account_with("timeout 2147483647")->timeout,
			 2147483647);
}
END_TEST

START_TEST(test_logfile)
{
	ck_assert_str_eq(account_with("logfile /var/log/postbote.log")->logfile,
			 "/var/log/postbote.log");
	ck_assert_str_eq(account_with("logfile -")->logfile, "-");
	ck_assert_str_eq(account_with("logfile ~/.msmtp.log")->logfile,
			 TEST_HOME "/.msmtp.log");
	ck_assert_ptr_null(account_with("logfile /x\nlogfile")->logfile);
}
END_TEST

START_TEST(test_syslog)
{
	ck_assert_str_eq(account_with("syslog on")->syslog, "LOG_MAIL");
	ck_assert_str_eq(account_with("syslog")->syslog, "LOG_MAIL");
	ck_assert_ptr_null(account_with("syslog on\nsyslog off")->syslog);
	ck_assert_str_eq(account_with("syslog LOG_USER")->syslog, "LOG_USER");
	ck_assert_str_eq(account_with("syslog LOG_MAIL")->syslog, "LOG_MAIL");
	ck_assert_str_eq(account_with("syslog LOG_LOCAL0")->syslog,
			 "LOG_LOCAL0");
	ck_assert_str_eq(account_with("syslog LOG_LOCAL7")->syslog,
			 "LOG_LOCAL7");
}
END_TEST

START_TEST(test_protocol_smtp_accepted)
{
	const struct account *a = account_with("protocol smtp\nhost h");
	ck_assert_str_eq(a->host, "h");
	ck_assert(!account_is_set(a, "protocol"));
	/* before any section it does not create the implicit account */
	parse_ok("protocol smtp\naccount a\n");
	ck_assert_uint_eq(cfg.naccounts, 1);
}
END_TEST

static const char *const unsupported[] = {
	"auto_from", "proxy_host", "proxy_port", "socket", "source_ip",
	"tls_crl_file", "tls_host_override", "ntlmdomain", "dsn_notify",
	"dsn_return", "add_missing_from_header", "add_missing_date_header",
	"remove_bcc_headers", "undisclosed_recipients", "set_from_header",
	"allow_from_override", "eval", "logfile_time_format",
	"set_date_header", "set_msgid_header", "keepbcc", "tls_force_sslv3",
	"tls_nocertcheck", "tls_nostarttls", "connect_timeout",
};

START_TEST(test_unsupported_keyword)
{
	char *text = xasprintf("account a\nhost h\n%s on\n", unsupported[_i]);
	char *expected = xasprintf("t.rc:3: msmtp keyword '%s' is not "
				   "supported by postbote", unsupported[_i]);
	parse_fails(text, expected);
	free(expected);
	free(text);
	/* also without an argument, and in the defaults section */
	text = xasprintf("defaults\n%s\n", unsupported[_i]);
	expected = xasprintf("t.rc:2: msmtp keyword '%s' is not supported by "
			     "postbote", unsupported[_i]);
	parse_fails(text, expected);
	free(expected);
	free(text);
}
END_TEST

START_TEST(test_account_is_set)
{
	const struct account *a = account_with("port 25\nfrom f\ntls off");
	ck_assert(account_is_set(a, "port"));
	ck_assert(account_is_set(a, "from"));
	ck_assert(account_is_set(a, "tls"));
	ck_assert(!account_is_set(a, "host"));
	ck_assert(!account_is_set(a, "tls_starttls"));
	ck_assert(!account_is_set(a, "no_such_keyword"));
	ck_assert(!account_is_set(a, "auto_from"));
	/* clearing a value is still giving it */
	ck_assert(account_is_set(account_with("user"), "user"));
}
END_TEST

/* ---- sections ---- */

START_TEST(test_defaults_takes_no_argument)
{
	parse_fails("defaults now\n",
		    "t.rc:1: keyword 'defaults' takes no argument");
}
END_TEST

START_TEST(test_account_needs_name)
{
	parse_fails("account\n",
		    "t.rc:1: keyword 'account' needs an account name");
	parse_fails("account a\naccount   \n",
		    "t.rc:2: keyword 'account' needs an account name");
	parse_fails("account a\naccount : a\n",
		    "t.rc:2: keyword 'account' needs an account name");
	parse_fails("account a,b\n",
		    "t.rc:1: an account name must not contain ',' or ':'");
}
END_TEST

START_TEST(test_defaults_apply_to_later_accounts)
{
	parse_ok("defaults\nhost x.example\nport 25\ntls off\n"
		 "account a\nfrom a@example.org\n"
		 "defaults\nhost y.example\n"
		 "account b\n"
		 "account c\nhost c.example\n"
		 "defaults\nport 26\n");
	const struct account *a = config_find_account(&cfg, "a");
	const struct account *b = config_find_account(&cfg, "b");
	const struct account *c = config_find_account(&cfg, "c");
	ck_assert_str_eq(a->host, "x.example");
	ck_assert_str_eq(b->host, "y.example");
	ck_assert_str_eq(c->host, "c.example");
	/* defaults changed after an account do not reach back */
	ck_assert_int_eq(a->port, 25);
	ck_assert_int_eq(b->port, 25);
	ck_assert_int_eq(c->port, 25);
	ck_assert(!a->tls && !b->tls && !c->tls);
	ck_assert_str_eq(a->from, "a@example.org");
	ck_assert_ptr_null(b->from);
	/* what came from defaults does not count as set in the account */
	ck_assert(!account_is_set(a, "host"));
	ck_assert(account_is_set(c, "host"));
}
END_TEST

START_TEST(test_account_values_do_not_leak_into_defaults)
{
	parse_ok("account a\nhost a.example\nuser ua\naccount b\n");
	ck_assert_ptr_null(config_find_account(&cfg, "b")->host);
	ck_assert_ptr_null(config_find_account(&cfg, "b")->user);
}
END_TEST

START_TEST(test_multiple_parents)
{
	parse_ok("account a\nhost a.example\nfrom a@example.org\n"
		 "account b\nhost b.example\nuser ub\nport 2525\n"
		 "account c : a, b\n"
		 "account d : b,a\n"
		 "account e : a\nhost e.example\n");
	const struct account *c = config_find_account(&cfg, "c");
	const struct account *d = config_find_account(&cfg, "d");
	const struct account *e = config_find_account(&cfg, "e");
	/* later parents win */
	ck_assert_str_eq(c->host, "b.example");
	ck_assert_str_eq(d->host, "a.example");
	ck_assert_str_eq(c->from, "a@example.org");
	ck_assert_str_eq(c->user, "ub");
	ck_assert_int_eq(c->port, 2525);
	ck_assert_str_eq(d->from, "a@example.org");
	ck_assert_int_eq(d->port, 2525);
	/* the account's own lines come after inheritance */
	ck_assert_str_eq(e->host, "e.example");
	ck_assert_str_eq(e->from, "a@example.org");
	ck_assert_uint_eq(cfg.naccounts, 5);
}
END_TEST

START_TEST(test_parent_gives_only_what_it_set)
{
	/* msmtp semantics: the child starts from the defaults as they are now
	 * and takes from the parent only what the parent was given */
	parse_ok("defaults\nport 25\nhost d1.example\n"
		 "account a\nfrom a@example.org\ntls off\n"
		 "defaults\nport 465\n"
		 "account b : a\n");
	const struct account *b = config_find_account(&cfg, "b");
	ck_assert_int_eq(b->port, 465);
	ck_assert_str_eq(b->host, "d1.example");
	ck_assert_str_eq(b->from, "a@example.org");
	ck_assert(!b->tls);
	ck_assert(account_is_set(b, "from"));
	ck_assert(!account_is_set(b, "port"));
}
END_TEST

START_TEST(test_inheritance_chains)
{
	parse_ok("account a\nhost a.example\npassword pa\n"
		 "account b : a\nuser ub\n"
		 "account c : b\n");
	const struct account *c = config_find_account(&cfg, "c");
	ck_assert_str_eq(c->host, "a.example");
	ck_assert_str_eq(c->password, "pa");
	ck_assert_str_eq(c->user, "ub");
	/* copies, not shared pointers */
	ck_assert_ptr_ne(c->host, config_find_account(&cfg, "a")->host);
}
END_TEST

START_TEST(test_inherit_cleared_value)
{
	parse_ok("defaults\nfrom d@example.org\n"
		 "account a\nfrom\n"
		 "account b : a\n");
	ck_assert_ptr_null(config_find_account(&cfg, "b")->from);
}
END_TEST

START_TEST(test_unknown_parent)
{
	parse_fails("account a\naccount b : nope\n",
		    "t.rc:2: account 'nope' after ':' is not defined (yet)");
	/* a parent must come first */
	parse_fails("account b : a\naccount a\n",
		    "t.rc:1: account 'a' after ':' is not defined (yet)");
	parse_fails("account a\naccount b : a,\n",
		    "t.rc:2: missing account name after ':'");
	parse_fails("account a\naccount b :\n",
		    "t.rc:2: missing account name after ':'");
	parse_fails("account a\naccount b : b\n",
		    "t.rc:2: account 'b' after ':' is not defined (yet)");
}
END_TEST

START_TEST(test_duplicate_account)
{
	parse_fails("account a\nhost h\naccount b\n\naccount a\n",
		    "t.rc:5: account 'a' is already defined on line 1");
	parse_fails("account a\naccount b : a\naccount b : a\n",
		    "t.rc:3: account 'b' is already defined on line 2");
}
END_TEST

START_TEST(test_account_default_names_parent)
{
	parse_ok("account work\nhost w.example\n"
		 "account home\nhost h.example\nfrom me@home.example\n"
		 "account default : home\n");
	ck_assert_str_eq(cfg.default_name, "default");
	ck_assert_uint_eq(cfg.naccounts, 3);
	const struct account *d = config_find_account(&cfg, NULL);
	ck_assert_str_eq(d->name, "default");
	ck_assert_str_eq(d->host, "h.example");
	ck_assert_str_eq(d->from, "me@home.example");
	ck_assert_ptr_eq(d, config_find_account(&cfg, "default"));
}
END_TEST

START_TEST(test_account_default_is_an_account)
{
	/* as in msmtp: settings after it change the default account only */
	parse_ok("account home\nhost h.example\n"
		 "account default : home\nport 2525\n");
	ck_assert_int_eq(config_find_account(&cfg, NULL)->port, 2525);
	ck_assert_int_eq(config_find_account(&cfg, "home")->port, 0);
	parse_fails("account home\naccount default : home\n"
		    "account default : home\n",
		    "t.rc:3: account 'default' is already defined on line 2");
}
END_TEST

START_TEST(test_keywords_before_any_section)
{
	/* msmtp (for files from 1.2.x) puts them into an account "default" */
	parse_ok("host old.example\nfrom old@example.org\nport 25\n");
	ck_assert_uint_eq(cfg.naccounts, 1);
	const struct account *d = config_find_account(&cfg, NULL);
	ck_assert_str_eq(d->name, "default");
	ck_assert_str_eq(d->host, "old.example");
	ck_assert_int_eq(d->port, 25);
	ck_assert(d->tls);
	ck_assert(account_is_set(d, "host"));
	ck_assert_ptr_null(cfg.default_name);
}
END_TEST

START_TEST(test_keywords_before_section_are_not_defaults)
{
	parse_ok("host old.example\naccount a\ndefaults\nuser u\naccount b\n");
	ck_assert_uint_eq(cfg.naccounts, 3);
	ck_assert_ptr_null(config_find_account(&cfg, "a")->host);
	ck_assert_str_eq(config_find_account(&cfg, "b")->user, "u");
	ck_assert_ptr_null(config_find_account(&cfg, "default")->user);
	parse_fails("host old.example\naccount default\n",
		    "t.rc:2: account 'default' is already defined on line 1");
}
END_TEST

/* ---- finding accounts ---- */

START_TEST(test_find_by_name)
{
	parse_ok("account a\nhost a\naccount b\nhost b\n");
	ck_assert_str_eq(config_find_account(&cfg, "b")->host, "b");
	ck_assert_str_eq(config_find_account(&cfg, "a")->host, "a");
	ck_assert_ptr_null(config_find_account(&cfg, "c"));
	ck_assert_ptr_null(config_find_account(&cfg, "A"));
}
END_TEST

START_TEST(test_find_default_fallbacks)
{
	/* no default: the first account */
	parse_ok("account a\naccount b\n");
	ck_assert_str_eq(config_find_account(&cfg, NULL)->name, "a");
	/* an account called default without parents */
	parse_ok("account a\naccount default\nhost d\naccount b\n");
	ck_assert_ptr_null(cfg.default_name);
	ck_assert_str_eq(config_find_account(&cfg, NULL)->name, "default");
	/* defaults alone make no account */
	parse_ok("defaults\nhost h\n");
	ck_assert_ptr_null(config_find_account(&cfg, NULL));
}
END_TEST

START_TEST(test_find_uses_default_name)
{
	struct config c;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(config_parse_string("account a\naccount b\n", "t.rc",
					     &c, err, sizeof err), 0);
	c.default_name = xstrdup("b");
	ck_assert_str_eq(config_find_account(&c, NULL)->name, "b");
	/* a default name with no such account falls back */
	free(c.default_name);
	c.default_name = xstrdup("gone");
	ck_assert_str_eq(config_find_account(&c, NULL)->name, "a");
	config_free(&c);
	ck_assert_ptr_null(c.accounts);
	ck_assert_ptr_null(c.default_name);
	ck_assert_uint_eq(c.naccounts, 0);
}
END_TEST

START_TEST(test_account_default_with_two_parents)
{
	parse_ok("account a\nhost a\naccount b\nuser ub\n"
		 "account default : a, b\n");
	const struct account *d = config_find_account(&cfg, NULL);
	ck_assert_str_eq(d->name, "default");
	ck_assert_str_eq(d->host, "a");
	ck_assert_str_eq(d->user, "ub");
}
END_TEST

/* ---- secrets ---- */

START_TEST(test_has_secret)
{
	parse_ok("account a\nhost h\npasswordeval pass x\n");
	ck_assert(!cfg.has_secret);
	parse_ok("account a\npassword p\n");
	ck_assert(cfg.has_secret);
	parse_ok("defaults\npassword p\n");
	ck_assert(cfg.has_secret);
	/* an empty password holds nothing */
	parse_ok("account a\npassword \"\"\n");
	ck_assert(!cfg.has_secret);
	parse_ok("password p\n");
	ck_assert(cfg.has_secret);
}
END_TEST

START_TEST(test_config_free_zeroes)
{
	parse_ok("account a\npassword p\naccount default : a\n");
	config_free(&cfg);
	ck_assert_ptr_null(cfg.accounts);
	ck_assert_uint_eq(cfg.naccounts, 0);
	ck_assert_ptr_null(cfg.default_name);
	ck_assert_ptr_null(cfg.path);
	ck_assert(!cfg.has_secret);
	/* freeing twice is harmless */
	config_free(&cfg);
}
END_TEST

/* ---- a realistic msmtprc ---- */

static const char gmail_msmtprc[] =
	"# Set default values for all following accounts.\n"
	"defaults\n"
	"auth           on\n"
	"tls            on\n"
	"tls_trust_file /etc/ssl/certs/ca-certificates.crt\n"
	"logfile        ~/.msmtp.log\n"
	"\n"
	"# Gmail\n"
	"account        gmail\n"
	"host           smtp.gmail.com\n"
	"port           587\n"
	"from           username@gmail.com\n"
	"user           username\n"
	"password       plain-text-password\n"
	"\n"
	"# A freemail service, implicit TLS\n"
	"account        freemail\n"
	"host           smtp.freemail.example\n"
	"port           465\n"
	"tls_starttls   off\n"
	"from           joe_smith@freemail.example\n"
	"user           joe.smith\n"
	"passwordeval   \"gpg --no-tty -q -d ~/.msmtp-password.gpg\"\n"
	"\n"
	"# Set a default account\n"
	"account default : gmail\n";

START_TEST(test_realistic_msmtprc)
{
	parse_ok(gmail_msmtprc);
	ck_assert_uint_eq(cfg.naccounts, 3);
	ck_assert(cfg.has_secret);
	const struct account *d = config_find_account(&cfg, NULL);
	ck_assert_str_eq(d->name, "default");
	ck_assert_str_eq(d->host, "smtp.gmail.com");
	ck_assert_int_eq(d->port, 587);
	ck_assert_str_eq(d->from, "username@gmail.com");
	ck_assert_str_eq(d->user, "username");
	ck_assert_str_eq(d->password, "plain-text-password");
	ck_assert_str_eq(d->auth, "on");
	ck_assert(d->tls && d->tls_starttls && d->tls_certcheck);
	ck_assert_str_eq(d->tls_trust_file,
			 "/etc/ssl/certs/ca-certificates.crt");
	ck_assert_str_eq(d->logfile, TEST_HOME "/.msmtp.log");

	const struct account *f = config_find_account(&cfg, "freemail");
	ck_assert_str_eq(f->host, "smtp.freemail.example");
	ck_assert_int_eq(f->port, 465);
	ck_assert(f->tls && !f->tls_starttls);
	ck_assert_ptr_null(f->password);
	ck_assert_str_eq(f->passwordeval,
			 "gpg --no-tty -q -d ~/.msmtp-password.gpg");
	ck_assert_str_eq(f->tls_trust_file,
			 "/etc/ssl/certs/ca-certificates.crt");
	ck_assert_str_eq(config_find_account(&cfg, "gmail")->password,
			 "plain-text-password");
}
END_TEST

/* ---- files ---- */

static void make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/test_config.XXXXXX",
		 base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* Write a file in tmpdir with exactly this mode, whatever the umask. */
static char *write_file(const char *name, const char *text, size_t len,
			mode_t mode)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
	return path;
}

static void file_setup(void)
{
	setup();
	make_tmpdir();
}

static void remove_tree(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}

static void file_teardown(void)
{
	teardown();
	remove_tree(tmpdir);
}

static const char with_password[] = "account a\nhost h\npassword secret\n";
static const char without_password[] = "account a\nhost h\n";

START_TEST(test_load_refuses_readable_password_file)
{
	char *path = write_file("rc", with_password, strlen(with_password),
				0644);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), -1);
	char *expected = xasprintf("%s: holds a password or an OAuth2 secret but is readable by "
				   "others (mode 0644); run: chmod 600 %s",
				   path, path);
	ck_assert_str_eq(err, expected);
	ck_assert_ptr_null(cfg.accounts);
	ck_assert_ptr_null(cfg.path);
	ck_assert(!cfg.has_secret);
	free(expected);
	free(path);
}
END_TEST

static const mode_t too_open[] = { 0640, 0604, 0660, 0620, 0610, 0601,
				   0666, 0777 };

START_TEST(test_load_refuses_any_group_or_other_bit)
{
	char *path = write_file("rc", with_password, strlen(with_password),
				too_open[_i]);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), -1);
	char *expected = xasprintf("%s: holds a password or an OAuth2 secret but is readable by "
				   "others (mode %04o); run: chmod 600 %s",
				   path, (unsigned)too_open[_i], path);
	ck_assert_str_eq(err, expected);
	free(expected);
	free(path);
}
END_TEST

START_TEST(test_load_accepts_private_password_file)
{
	char *path = write_file("rc", with_password, strlen(with_password),
				0600);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), 0);
	ck_assert_str_eq(cfg.path, path);
	ck_assert(cfg.has_secret);
	ck_assert_str_eq(config_find_account(&cfg, NULL)->password, "secret");
	free(path);
	config_free(&cfg);
	/* only group and other bits matter */
	static const mode_t private_modes[] = { 0400, 0700 };
	for (size_t i = 0; i < 2; i++) {
		path = write_file("rcp", with_password, strlen(with_password),
				  private_modes[i]);
		ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), 0);
		config_free(&cfg);
		free(path);
	}
}
END_TEST

START_TEST(test_load_accepts_readable_file_without_password)
{
	char *path = write_file("rc", without_password,
				strlen(without_password), 0644);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), 0);
	ck_assert_str_eq(cfg.path, path);
	ck_assert(!cfg.has_secret);
	ck_assert_str_eq(config_find_account(&cfg, "a")->host, "h");
	free(path);
}
END_TEST

START_TEST(test_load_realistic_msmtprc)
{
	char *path = write_file("msmtprc", gmail_msmtprc,
				strlen(gmail_msmtprc), 0600);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), 0);
	const struct account *d = config_find_account(&cfg, NULL);
	ck_assert_str_eq(d->host, "smtp.gmail.com");
	ck_assert_str_eq(d->logfile, TEST_HOME "/.msmtp.log");
	free(path);
}
END_TEST

START_TEST(test_load_missing_file)
{
	char *path = xasprintf("%s/does-not-exist", tmpdir);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), -1);
	char *expected = xasprintf("%s: No such file or directory", path);
	ck_assert_str_eq(err, expected);
	ck_assert_ptr_null(cfg.accounts);
	free(expected);
	free(path);
}
END_TEST

START_TEST(test_load_directory)
{
	ck_assert_int_eq(config_load(tmpdir, &cfg, err, sizeof err), -1);
	char *expected = xasprintf("%s: Is a directory", tmpdir);
	ck_assert_str_eq(err, expected);
	free(expected);
}
END_TEST

START_TEST(test_load_reports_file_and_line)
{
	static const char text[] = "account a\nhost h\n\nport 0\n";
	char *path = write_file("rc", text, strlen(text), 0644);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), -1);
	char *expected = xasprintf("%s:4: port: expected a port number from 1 "
				   "to 65535, not '0'", path);
	ck_assert_str_eq(err, expected);
	free(expected);
	free(path);
}
END_TEST

START_TEST(test_load_nul_byte)
{
	static const char text[] = "account a\nhost h\0x\n";
	char *path = write_file("rc", text, sizeof text - 1, 0600);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), -1);
	char *expected = xasprintf("%s:2: the line contains a NUL byte", path);
	ck_assert_str_eq(err, expected);
	free(expected);
	free(path);
}
END_TEST

START_TEST(test_load_long_line)
{
	size_t n = 100000;
	char *text = xmalloc(n + 64);
	int off = snprintf(text, n + 64, "account a\nfrom ");
	memset(text + off, 'x', n);
	strcpy(text + off + n, "@example.org\nport 25\n");
	char *path = write_file("rc", text, strlen(text), 0600);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), 0);
	const struct account *a = config_find_account(&cfg, "a");
	ck_assert_uint_eq(strlen(a->from), n + strlen("@example.org"));
	ck_assert_int_eq(a->port, 25);
	free(path);
	free(text);
}
END_TEST

START_TEST(test_queue_keywords)
{
	parse_ok("account a\nhost h\n"
		 "account b\nhost h\nqueue off\nqueue_dir /var/tmp/q\n"
		 "queue_lifetime 2d\n"
		 "account c\nhost h\nqueue_lifetime 90m\n"
		 "account d\nhost h\nqueue_lifetime 3600\n");
	ck_assert(cfg.accounts[0].queue);
	ck_assert_ptr_null(cfg.accounts[0].queue_dir);
	ck_assert_int_eq(cfg.accounts[0].queue_lifetime, 0);
	ck_assert(!cfg.accounts[1].queue);
	ck_assert_str_eq(cfg.accounts[1].queue_dir, "/var/tmp/q");
	ck_assert_int_eq(cfg.accounts[1].queue_lifetime, 2 * 86400);
	ck_assert_int_eq(cfg.accounts[2].queue_lifetime, 90 * 60);
	ck_assert_int_eq(cfg.accounts[3].queue_lifetime, 3600);
}
END_TEST

static void fails_starting(const char *text, const char *prefix)
{
	ck_assert_int_eq(parse(text), -1);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "got: %s", err);
}

START_TEST(test_queue_lifetime_errors)
{
	fails_starting("account a\nqueue_lifetime 5x\n",
		       "t.rc:2: queue_lifetime: expected a duration");
	fails_starting("account a\nqueue_lifetime 0\n",
		       "t.rc:2: queue_lifetime: expected a duration");
	fails_starting("account a\nqueue_lifetime 400d\n",
		       "t.rc:2: queue_lifetime: expected a duration");
	fails_starting("account a\nqueue maybe\n", "t.rc:2:");
}
END_TEST

START_TEST(test_load_empty_file)
{
	char *path = write_file("rc", "", 0, 0644);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), 0);
	ck_assert_uint_eq(cfg.naccounts, 0);
	ck_assert_str_eq(cfg.path, path);
	free(path);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("syntax");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_empty_text);
	tcase_add_test(tc, test_comments_and_blank_lines);
	tcase_add_test(tc, test_whitespace_around_keyword_and_argument);
	tcase_add_test(tc, test_crlf_and_missing_final_newline);
	tcase_add_test(tc, test_argument_keeps_inner_spaces);
	tcase_add_test(tc, test_quoted_arguments);
	tcase_add_test(tc, test_quoted_account_name);
	tcase_add_test(tc, test_unbalanced_quote);
	tcase_add_test(tc, test_text_after_closing_quote);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_unknown_keyword);
	tcase_add_test(tc, test_unknown_keyword_made_visible);
	tcase_add_test(tc, test_error_uses_given_name);
	tcase_add_test(tc, test_error_frees_earlier_accounts);
	tcase_add_test(tc, test_error_truncated_into_small_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("keywords");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_account_init);
	tcase_add_test(tc, test_new_account_has_defaults);
	tcase_add_test(tc, test_host);
	tcase_add_test(tc, test_port);
	tcase_add_loop_test(tc, test_bad_value, 0,
			    sizeof bad_values / sizeof bad_values[0]);
	tcase_add_test(tc, test_bad_value_in_defaults);
	tcase_add_test(tc, test_long_bad_value_is_cut);
	tcase_add_loop_test(tc, test_booleans, 0,
			    sizeof booleans / sizeof booleans[0]);
	tcase_add_test(tc, test_tls_trust_file);
	tcase_add_test(tc, test_tilde_expansion);
	tcase_add_test(tc, test_tilde_without_home_uses_passwd);
	tcase_add_test(tc, test_tls_fingerprint);
	tcase_add_loop_test(tc, test_bad_fingerprint, 0,
			    sizeof bad_fingerprints / sizeof bad_fingerprints[0]);
	tcase_add_test(tc, test_tls_strings);
	tcase_add_test(tc, test_tls_min_dh_prime_bits);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_plain_strings);
	tcase_add_test(tc, test_aliases);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_logfile);
	tcase_add_test(tc, test_syslog);
	tcase_add_test(tc, test_protocol_smtp_accepted);
	tcase_add_loop_test(tc, test_unsupported_keyword, 0,
			    sizeof unsupported / sizeof unsupported[0]);
	tcase_add_test(tc, test_account_is_set);
	suite_add_tcase(s, tc);

	tc = tcase_create("sections");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults_takes_no_argument);
	tcase_add_test(tc, test_account_needs_name);
	tcase_add_test(tc, test_defaults_apply_to_later_accounts);
	tcase_add_test(tc, test_account_values_do_not_leak_into_defaults);
	tcase_add_test(tc, test_multiple_parents);
	tcase_add_test(tc, test_parent_gives_only_what_it_set);
	tcase_add_test(tc, test_inheritance_chains);
	tcase_add_test(tc, test_inherit_cleared_value);
	tcase_add_test(tc, test_unknown_parent);
	tcase_add_test(tc, test_duplicate_account);
	tcase_add_test(tc, test_account_default_names_parent);
	tcase_add_test(tc, test_account_default_is_an_account);
	tcase_add_test(tc, test_account_default_with_two_parents);
	tcase_add_test(tc, test_keywords_before_any_section);
	tcase_add_test(tc, test_keywords_before_section_are_not_defaults);
	tcase_add_test(tc, test_find_by_name);
	tcase_add_test(tc, test_find_default_fallbacks);
	tcase_add_test(tc, test_find_uses_default_name);
	tcase_add_test(tc, test_has_secret);
	tcase_add_test(tc, test_config_free_zeroes);
	tcase_add_test(tc, test_realistic_msmtprc);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, file_setup, file_teardown);
	tcase_add_test(tc, test_load_refuses_readable_password_file);
	tcase_add_loop_test(tc, test_load_refuses_any_group_or_other_bit, 0,
			    sizeof too_open / sizeof too_open[0]);
	tcase_add_test(tc, test_load_accepts_private_password_file);
	tcase_add_test(tc, test_load_accepts_readable_file_without_password);
	tcase_add_test(tc, test_load_realistic_msmtprc);
	tcase_add_test(tc, test_load_missing_file);
	tcase_add_test(tc, test_load_directory);
	tcase_add_test(tc, test_load_reports_file_and_line);
	tcase_add_test(tc, test_load_nul_byte);
	tcase_add_test(tc, test_load_long_line);
	tcase_add_test(tc, test_load_empty_file);
	tcase_add_test(tc, test_queue_keywords);
	tcase_add_test(tc, test_queue_lifetime_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(config_suite());
}
