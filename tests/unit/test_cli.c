/* Unit tests for the sendmail command line: the exact argv real callers
 * pass, the ignored MTA options, DSN options, modes and usage errors. */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "cli.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })

static int parse(char **argv, struct cli *c, char *err)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	return cli_parse(argc, argv, c, err, 256);
}

START_TEST(debian_cron)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-FCronDaemon", "-i", "-B8BITMIME",
				    "-oem", "user"), &c, err), 0);
	ck_assert_str_eq(c.full_name, "CronDaemon");
	ck_assert(c.ignore_dots);
	ck_assert(!c.read_recipients);
	ck_assert_uint_eq(c.recipients.n, 1);
	ck_assert_str_eq(c.recipients.v[0], "user");
	ck_assert_int_eq(c.mode, MODE_SEND);
	cli_free(&c);
}
END_TEST

START_TEST(cronie)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-FCronDaemon", "-i", "-odi", "-oem",
				    "-oi", "-t", "-f", "root"), &c, err), 0);
	ck_assert(c.read_recipients && c.ignore_dots);
	ck_assert_str_eq(c.sender, "root");
	ck_assert_uint_eq(c.recipients.n, 0);
	cli_free(&c);
}
END_TEST

START_TEST(mutt)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-oem", "-oi", "-f", "a@example.org",
				    "-B8BITMIME", "-N", "success,failure", "-R",
				    "hdrs", "--", "one@example.net",
				    "two@example.net"), &c, err), 0);
	ck_assert_str_eq(c.sender, "a@example.org");
	ck_assert_str_eq(c.dsn_notify, "SUCCESS,FAILURE");
	ck_assert_str_eq(c.dsn_ret, "HDRS");
	ck_assert_uint_eq(c.recipients.n, 2);
	ck_assert_str_eq(c.recipients.v[1], "two@example.net");
	cli_free(&c);
}
END_TEST

START_TEST(attached_arguments)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-oi", "-fsender@example.org", "-t",
				    "-rother@example.org", "-Vid.42", "-X/tmp/x"),
			       &c, err), 0);
	ck_assert_str_eq(c.sender, "other@example.org");
	ck_assert_str_eq(c.dsn_envid, "id.42");
	ck_assert_str_eq(c.traffic_log, "/tmp/x");
	cli_free(&c);
}
END_TEST

START_TEST(ignored_mta_options)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-odb", "-oee", "-OTimeout=5", "-G",
				    "-h", "5", "-Ltag", "-m", "-n", "-Ac", "-U", "-i",
				    "x@example.org"), &c, err), 0);
	ck_assert_uint_eq(c.recipients.n, 1);
	ck_assert_uint_ge(c.ignored.n, 9);
	ck_assert(c.ignore_dots);
	cli_free(&c);
}
END_TEST

START_TEST(modes)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-bs"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_SMTP_STDIO);
	cli_free(&c);
	ck_assert_int_eq(parse(ARGV("sendmail", "-bv", "a@b.example"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_VERIFY);
	cli_free(&c);
	ck_assert_int_eq(parse(ARGV("sendmail", "-bp"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_LIST_QUEUE);
	cli_free(&c);
	ck_assert_int_eq(parse(ARGV("sendmail", "-q"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_FLUSH_QUEUE);
	cli_free(&c);
	ck_assert_int_eq(parse(ARGV("sendmail", "-q30m"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_FLUSH_QUEUE);
	cli_free(&c);
	ck_assert_int_eq(parse(ARGV("/usr/bin/mailq"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_LIST_QUEUE);
	cli_free(&c);
	ck_assert_int_eq(parse(ARGV("newaliases"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_NEWALIASES);
	cli_free(&c);
	ck_assert_int_eq(parse(ARGV("sendmail", "-bi"), &c, err), 0);
	ck_assert_int_eq(c.mode, MODE_NEWALIASES);
	cli_free(&c);
}
END_TEST

START_TEST(usage_errors_name_the_option)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-Z", "x"), &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown option -Z"));
	ck_assert_int_eq(parse(ARGV("sendmail", "--frobnicate"), &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "--frobnicate"));
	ck_assert_int_eq(parse(ARGV("sendmail", "-f"), &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "-f needs an argument"));
	ck_assert_int_eq(parse(ARGV("sendmail", "-bd"), &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "-bd"));
	ck_assert_int_eq(parse(ARGV("sendmail", "-N", "sometimes"), &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "sometimes"));
	ck_assert_int_eq(parse(ARGV("sendmail", "-N", "never,success"), &c, err), -1);
	ck_assert_int_eq(parse(ARGV("sendmail", "-R", "body"), &c, err), -1);
	ck_assert_int_eq(parse(ARGV("sendmail", "-V", "has space"), &c, err), -1);
}
END_TEST

START_TEST(injection_refused)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-f", "a@b\r\nRCPT TO:<x@y>"), &c,
			       err), -1);
	ck_assert_ptr_nonnull(strstr(err, "-f"));
	ck_assert_int_eq(parse(ARGV("sendmail", "-F", "Name\nBcc: x@y"), &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "-F"));
}
END_TEST

START_TEST(double_dash_and_dash_recipient)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-i", "--", "-odd@example.org"), &c,
			       err), 0);
	ck_assert_uint_eq(c.recipients.n, 1);
	ck_assert_str_eq(c.recipients.v[0], "-odd@example.org");
	cli_free(&c);
}
END_TEST

START_TEST(dsn_never)
{
	struct cli c;
	char err[256];
	ck_assert_int_eq(parse(ARGV("sendmail", "-N", "NEVER", "-R", "FULL", "x"), &c,
			       err), 0);
	ck_assert_str_eq(c.dsn_notify, "NEVER");
	ck_assert_str_eq(c.dsn_ret, "FULL");
	cli_free(&c);
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *t = tcase_create("argv");
	tcase_add_test(t, debian_cron);
	tcase_add_test(t, cronie);
	tcase_add_test(t, mutt);
	tcase_add_test(t, attached_arguments);
	tcase_add_test(t, ignored_mta_options);
	tcase_add_test(t, modes);
	tcase_add_test(t, usage_errors_name_the_option);
	tcase_add_test(t, injection_refused);
	tcase_add_test(t, double_dash_and_dash_recipient);
	tcase_add_test(t, dsn_never);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return run_suite(cli_suite());
}
