/* Unit tests for the envelope: sender and recipients from the command
 * line and the headers, aliases, qualification of bare local names in the
 * envelope and in header fields, and the header fields that get added. */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_suite.h"
#include "aliases.h"
#include "config.h"
#include "envelope.h"
#include "message.h"

static void spool_text(struct message *msg, const char *text)
{
	int fds[2];
	char err[128];
	struct spool_options opt = { .dot_ends_input = false };
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(write(fds[1], text, strlen(text)), (ssize_t)strlen(text));
	close(fds[1]);
	ck_assert_int_eq(message_spool(fds[0], &opt, msg, err, sizeof err), 0);
	close(fds[0]);
}

struct setup {
	struct cli cli;
	struct account acct;
	struct message msg;
	struct aliases *aliases;
	struct envelope env;
	struct outcome o;
};

static void setup_with(struct setup *s, const char *message,
		       const char *aliases_text)
{
	memset(s, 0, sizeof *s);
	account_init(&s->acct);
	s->acct.maildomain = xstrdup("example.org");
	spool_text(&s->msg, message);
	if (aliases_text) {
		char path[] = "/tmp/postbote-aliases.XXXXXX";
		char err[256];
		int fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, aliases_text, strlen(aliases_text)),
				 (ssize_t)strlen(aliases_text));
		close(fd);
		ck_assert_int_eq(aliases_load(path, &s->aliases, err, sizeof err), 0);
		unlink(path);
	}
}

static int build(struct setup *s)
{
	struct envelope_input in = { &s->cli, &s->acct, &s->msg, "alice",
				     "host.local", 1795323809, s->aliases };
	return envelope_build(&in, &s->env, &s->o);
}

static void teardown(struct setup *s)
{
	envelope_free(&s->env);
	message_free(&s->msg);
	aliases_free(s->aliases);
	account_free(&s->acct);
	cli_free(&s->cli);
	outcome_clear(&s->o);
}

START_TEST(bare_recipient_and_sender_qualified)
{
	struct setup s;
	setup_with(&s, "Subject: x\n\nbody\n", NULL);
	strlist_add(&s.cli.recipients, "root");
	strlist_add(&s.cli.recipients, "bob@example.net");
	s.cli.sender = "cron";
	ck_assert_int_eq(build(&s), 0);
	ck_assert_str_eq(s.env.sender, "cron@example.org");
	ck_assert_uint_eq(s.env.rcpts.n, 2);
	ck_assert_str_eq(s.env.rcpts.v[0], "root@example.org");
	ck_assert_str_eq(s.env.rcpts.v[1], "bob@example.net");
	teardown(&s);
}
END_TEST

START_TEST(default_sender_is_login_at_domain)
{
	struct setup s;
	setup_with(&s, "Subject: x\n\nbody\n", NULL);
	strlist_add(&s.cli.recipients, "x@example.net");
	ck_assert_int_eq(build(&s), 0);
	ck_assert_str_eq(s.env.sender, "alice@example.org");
	ck_assert_ptr_nonnull(strstr(s.env.prepend, "From: alice@example.org\r\n"));
	teardown(&s);
}
END_TEST

START_TEST(aliases_map_adjacent_local_recipients)
{
	struct setup s;
	setup_with(&s, "Subject: x\n\nbody\n",
		   "root: admin@example.net, ops@example.net\n"
		   "cron: cronadmin@example.net\n"
		   "default: catchall@example.net\n");
	strlist_add(&s.cli.recipients, "root");
	strlist_add(&s.cli.recipients, "cron");
	strlist_add(&s.cli.recipients, "www-data");
	strlist_add(&s.cli.recipients, "someone@example.com");
	ck_assert_int_eq(build(&s), 0);
	ck_assert_uint_eq(s.env.rcpts.n, 5);
	ck_assert_str_eq(s.env.rcpts.v[0], "admin@example.net");
	ck_assert_str_eq(s.env.rcpts.v[1], "ops@example.net");
	ck_assert_str_eq(s.env.rcpts.v[2], "cronadmin@example.net");
	ck_assert_str_eq(s.env.rcpts.v[3], "catchall@example.net");
	ck_assert_str_eq(s.env.rcpts.v[4], "someone@example.com");
	teardown(&s);
}
END_TEST

START_TEST(aliases_without_default_keep_unknown_names)
{
	struct setup s;
	setup_with(&s, "Subject: x\n\nbody\n", "root: admin@example.net\n");
	strlist_add(&s.cli.recipients, "ROOT");
	strlist_add(&s.cli.recipients, "nobody");
	ck_assert_int_eq(build(&s), 0);
	ck_assert_uint_eq(s.env.rcpts.n, 2);
	ck_assert_str_eq(s.env.rcpts.v[0], "admin@example.net");
	ck_assert_str_eq(s.env.rcpts.v[1], "nobody@example.org");
	teardown(&s);
}
END_TEST

START_TEST(t_reads_to_cc_bcc_and_qualifies_headers)
{
	struct setup s;
	setup_with(&s, "From: root (Cron Daemon)\nTo: Admin <admin>, x@example.net\n"
		   "Cc: undisclosed-recipients:;\nBcc: secret@example.net\n"
		   "Subject: s\n\nbody\n", NULL);
	s.cli.read_recipients = true;
	ck_assert_int_eq(build(&s), 0);
	ck_assert_uint_eq(s.env.rcpts.n, 3);
	ck_assert_str_eq(s.env.rcpts.v[0], "admin@example.org");
	ck_assert_str_eq(s.env.rcpts.v[2], "secret@example.net");
	ck_assert_ptr_nonnull(s.env.replace);
	ck_assert_str_eq(s.env.replace[0], "From: root@example.org (Cron Daemon)\r\n");
	ck_assert_str_eq(s.env.replace[1],
			 "To: Admin <admin@example.org>, x@example.net\r\n");
	ck_assert_ptr_null(s.env.replace[2]);
	ck_assert_ptr_null(s.env.replace[4]);
	teardown(&s);
}
END_TEST

START_TEST(resent_block_takes_precedence)
{
	struct setup s;
	setup_with(&s, "Resent-To: new@example.net\nResent-Date: x\n"
		   "To: old@example.net\nSubject: s\n\nbody\n", NULL);
	s.cli.read_recipients = true;
	ck_assert_int_eq(build(&s), 0);
	ck_assert_uint_eq(s.env.rcpts.n, 1);
	ck_assert_str_eq(s.env.rcpts.v[0], "new@example.net");
	teardown(&s);
}
END_TEST

START_TEST(long_qualified_field_is_folded)
{
	struct setup s;
	char text[2048] = "To: ";
	for (int i = 0; i < 30; i++) {
		char one[32];
		snprintf(one, sizeof one, "%suser%02d", i ? ", " : "", i);
		strcat(text, one);
	}
	strcat(text, "\nSubject: s\n\nbody\n");
	setup_with(&s, text, NULL);
	s.cli.read_recipients = true;
	ck_assert_int_eq(build(&s), 0);
	ck_assert_uint_eq(s.env.rcpts.n, 30);
	ck_assert_ptr_nonnull(s.env.replace);
	for (const char *p = s.env.replace[0], *nl; (nl = strstr(p, "\r\n")); p = nl + 2)
		ck_assert_uint_le((size_t)(nl - p), 78);
	ck_assert_ptr_nonnull(strstr(s.env.replace[0], "user29@example.org\r\n"));
	ck_assert_ptr_nonnull(strstr(s.env.replace[0], ",\r\n user"));
	teardown(&s);
}
END_TEST

START_TEST(missing_headers_added_with_full_name)
{
	struct setup s;
	setup_with(&s, "Subject: s\n\nbody\n", NULL);
	strlist_add(&s.cli.recipients, "x@example.net");
	s.cli.full_name = "Cron \"Daemon\"";
	ck_assert_int_eq(build(&s), 0);
	ck_assert_ptr_nonnull(strstr(s.env.prepend,
		"From: \"Cron \\\"Daemon\\\"\" <alice@example.org>\r\n"));
	ck_assert_ptr_nonnull(strstr(s.env.prepend, "Date: "));
	ck_assert_ptr_nonnull(strstr(s.env.prepend, "Message-ID: <1795323809."));
	ck_assert_ptr_nonnull(strstr(s.env.prepend, "@example.org>\r\n"));
	teardown(&s);
}
END_TEST

START_TEST(present_headers_not_added)
{
	struct setup s;
	setup_with(&s, "From: a@example.org\nDate: Sun, 22 Nov 2026 10:00:00 +0000\n"
		   "Message-ID: <m@example.org>\n\nbody\n", NULL);
	strlist_add(&s.cli.recipients, "x@example.net");
	ck_assert_int_eq(build(&s), 0);
	ck_assert_ptr_null(s.env.prepend);
	teardown(&s);
}
END_TEST

START_TEST(errors)
{
	struct setup s;
	setup_with(&s, "To: \"unterminated <x@example.net>\nSubject: s\n\nbody\n", NULL);
	s.cli.read_recipients = true;
	ck_assert_int_eq(build(&s), -1);
	ck_assert_ptr_nonnull(strstr(s.o.detail, "cannot read the To header"));
	teardown(&s);
	setup_with(&s, "Subject: s\n\nbody\n", NULL);
	ck_assert_int_eq(build(&s), -1);
	ck_assert_ptr_nonnull(strstr(s.o.detail, "no recipients"));
	teardown(&s);
	setup_with(&s, "Subject: s\n\nbody\n", NULL);
	strlist_add(&s.cli.recipients, "x@example.net\r\nRCPT TO:<y@example.net>");
	ck_assert_int_eq(build(&s), -1);
	ck_assert_ptr_nonnull(strstr(s.o.detail, "invalid recipient"));
	teardown(&s);
}
END_TEST

START_TEST(date_format)
{
	char *d;
	setenv("TZ", "UTC", 1);
	tzset();
	d = envelope_date(1795323809);
	ck_assert_str_eq(d, "Sun, 22 Nov 2026 05:03:29 +0000");
	free(d);
}
END_TEST

static Suite *envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *t = tcase_create("envelope");
	tcase_add_test(t, bare_recipient_and_sender_qualified);
	tcase_add_test(t, default_sender_is_login_at_domain);
	tcase_add_test(t, aliases_map_adjacent_local_recipients);
	tcase_add_test(t, aliases_without_default_keep_unknown_names);
	tcase_add_test(t, t_reads_to_cc_bcc_and_qualifies_headers);
	tcase_add_test(t, resent_block_takes_precedence);
	tcase_add_test(t, long_qualified_field_is_folded);
	tcase_add_test(t, missing_headers_added_with_full_name);
	tcase_add_test(t, present_headers_not_added);
	tcase_add_test(t, errors);
	tcase_add_test(t, date_format);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return run_suite(envelope_suite());
}
