/* Unit tests for the password sources: .netrc parsing, password_env,
 * password_file, and when a password counts as available. */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "run_suite.h"
#include "secret.h"
#include "util.h"

static char dir[] = "/tmp/test_secret.XXXXXX";

static char *file_with(const char *name, const char *text, mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

static char *lookup(const char *text, const char *machine, const char *login)
{
	char err[512];
	char *path = file_with("netrc", text, 0600);
	char *p = secret_netrc_lookup(path, machine, login, err, sizeof err);
	ck_assert_str_eq(err, "");
	free(path);
	return p;
}

/* The lookup gives want (NULL: no entry). */
static void check_lookup(const char *text, const char *machine,
			 const char *login, const char *want)
{
	char *p = lookup(text, machine, login);
	if (want)
		ck_assert_str_eq(p, want);
	else
		ck_assert_ptr_null(p);
	free(p);
}

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	strcpy(dir, "/tmp/test_secret.XXXXXX");
}

START_TEST(netrc_machine_and_login)
{
	const char *text =
		"machine a.example login joe password one\n"
		"machine mail.example login ann password two\n"
		"machine mail.example\n\tlogin joe\n\tpassword three\n";
	check_lookup(text, "mail.example", "joe", "three");
	check_lookup(text, "MAIL.example", "ann", "two");
	check_lookup(text, "mail.example", NULL, "two");
	check_lookup(text, "mail.example", "bob", NULL);
	check_lookup(text, "other.example", "joe", NULL);
}
END_TEST

START_TEST(netrc_default_quotes_macdef)
{
	const char *text =
		"macdef init\nmachine evil.example password fromMacro\n\n"
		"machine x.example login joe password \"with space \\\"q\\\"\"\n"
		"default login joe password fallback\n";
	check_lookup(text, "x.example", "joe", "with space \"q\"");
	check_lookup(text, "anything.example", "joe", "fallback");
	/* the macro body is not an entry */
	check_lookup(text, "evil.example", NULL, "fallback");
	check_lookup("machine a account x login b\n", "a", "b", NULL);
}
END_TEST

START_TEST(netrc_open_to_others_refused)
{
	char err[512];
	char *path = file_with("netrc", "default password p\n", 0644);
	ck_assert_ptr_null(secret_netrc_lookup(path, "h", "u", err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "readable by others (mode 0644); run: "
				     "chmod 600"));
	free(path);
	ck_assert_ptr_null(secret_netrc_lookup("/nonexistent/netrc", "h", "u",
					       err, sizeof err));
	ck_assert_str_eq(err, "");
}
END_TEST

static struct account account_with(void)
{
	struct account a;
	account_init(&a);
	a.host = xstrdup("mail.example");
	a.user = xstrdup("joe");
	return a;
}

START_TEST(env_and_file_sources)
{
	struct account a = account_with();
	struct credentials c;
	char err[512];
	const char *p;
	a.password_env = xstrdup("TEST_SECRET_PW");
	setenv("TEST_SECRET_PW", "from env", 1);
	credentials_init(&c, &a, -1, false);
	ck_assert(credentials_password_possible(&c, false));
	p = credentials_password(&c, err, sizeof err);
	ck_assert_str_eq(p, "from env");
	credentials_free(&c);
	unsetenv("TEST_SECRET_PW");
	credentials_init(&c, &a, -1, false);
	ck_assert_ptr_null(credentials_password(&c, err, sizeof err));
	ck_assert_str_eq(err, "password_env: the environment variable "
			 "TEST_SECRET_PW is not set");
	credentials_free(&c);
	free(a.password_env);
	a.password_env = NULL;

	a.password_file = file_with("pw", "line one\nline two\n", 0600);
	credentials_init(&c, &a, -1, false);
	ck_assert_str_eq(credentials_password(&c, err, sizeof err), "line one");
	credentials_free(&c);
	chmod(a.password_file, 0640);
	credentials_init(&c, &a, -1, false);
	ck_assert_ptr_null(credentials_password(&c, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "readable by others (mode 0640)"));
	credentials_free(&c);
	account_free(&a);
}
END_TEST

START_TEST(nothing_configured)
{
	struct account a = account_with();
	struct credentials c;
	char err[512];
	char *home = xasprintf("%s/emptyhome", dir);
	mkdir(home, 0700);
	setenv("HOME", home, 1);
	unsetenv("DBUS_SESSION_BUS_ADDRESS");
	unsetenv("XDG_RUNTIME_DIR");
	credentials_init(&c, &a, -1, false);
	ck_assert(!credentials_password_possible(&c, true));
	ck_assert(!credentials_token_possible(&c));
	ck_assert_ptr_null(credentials_password(&c, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "no password is configured"));
	credentials_free(&c);
	/* with "auth xoauth2" the password source gives the token */
	free(a.auth);
	a.auth = xstrdup("XOAUTH2");
	a.passwordeval = xstrdup("echo tok");
	credentials_init(&c, &a, -1, false);
	ck_assert(credentials_token_possible(&c));
	{
		char *tok;
		bool cached = true;
		ck_assert_int_eq(credentials_token(&c, false, &tok, &cached, err,
						   sizeof err), OAUTH2_OK);
		ck_assert_str_eq(tok, "tok");
		ck_assert(!cached);
		free_secret(tok);
	}
	credentials_free(&c);
	free(home);
	account_free(&a);
}
END_TEST

static Suite *secret_suite(void)
{
	Suite *s = suite_create("secret");
	TCase *t = tcase_create("sources");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, netrc_machine_and_login);
	tcase_add_test(t, netrc_default_quotes_macdef);
	tcase_add_test(t, netrc_open_to_others_refused);
	tcase_add_test(t, env_and_file_sources);
	tcase_add_test(t, nothing_configured);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return run_suite(secret_suite());
}
