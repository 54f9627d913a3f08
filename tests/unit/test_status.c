/* Unit tests for the outcome -> exit status map and the user's message. */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "run_suite.h"
#include "status.h"
#include "util.h"

static int code_for_reply(enum stage stage, int code, const char *enh)
{
	struct outcome o = { 0 };
	int rc;
	outcome_set_reply(&o, stage, "CMD", code, enh, "text");
	rc = status_exit_code(&o);
	outcome_clear(&o);
	return rc;
}

static int code_for(enum failure f)
{
	struct outcome o = { 0 };
	int rc;
	outcome_set(&o, STAGE_CONNECT, f, NULL, "detail");
	rc = status_exit_code(&o);
	outcome_clear(&o);
	return rc;
}

START_TEST(temporary_replies_are_tempfail)
{
	for (enum stage s = STAGE_GREETING; s <= STAGE_DOT; s++) {
		ck_assert_int_eq(code_for_reply(s, 421, "4.3.2"), EX_TEMPFAIL);
		ck_assert_int_eq(code_for_reply(s, 451, ""), EX_TEMPFAIL);
		ck_assert_int_eq(code_for_reply(s, 454, "4.7.0"), EX_TEMPFAIL);
	}
}
END_TEST

START_TEST(permanent_replies_by_enhanced_code)
{
	ck_assert_int_eq(code_for_reply(STAGE_RCPT, 550, "5.1.1"), EX_NOUSER);
	ck_assert_int_eq(code_for_reply(STAGE_RCPT, 550, ""), EX_NOUSER);
	ck_assert_int_eq(code_for_reply(STAGE_MAIL, 553, "5.7.1"), EX_NOPERM);
	ck_assert_int_eq(code_for_reply(STAGE_AUTH, 535, "5.7.8"), EX_NOPERM);
	ck_assert_int_eq(code_for_reply(STAGE_AUTH, 535, ""), EX_NOPERM);
	ck_assert_int_eq(code_for_reply(STAGE_DOT, 552, "5.3.4"), EX_DATAERR);
	ck_assert_int_eq(code_for_reply(STAGE_DOT, 552, ""), EX_DATAERR);
	ck_assert_int_eq(code_for_reply(STAGE_DOT, 554, "5.6.0"), EX_DATAERR);
	ck_assert_int_eq(code_for_reply(STAGE_DOT, 554, "5.0.0"), EX_UNAVAILABLE);
	ck_assert_int_eq(code_for_reply(STAGE_GREETING, 554, ""), EX_UNAVAILABLE);
	ck_assert_int_eq(code_for_reply(STAGE_DATA, 554, "5.5.1"), EX_UNAVAILABLE);
}
END_TEST

START_TEST(local_failures)
{
	ck_assert_int_eq(code_for(FAIL_NONE), EX_OK);
	ck_assert_int_eq(code_for(FAIL_TIMEOUT), EX_TEMPFAIL);
	ck_assert_int_eq(code_for(FAIL_CLOSED), EX_TEMPFAIL);
	ck_assert_int_eq(code_for(FAIL_REFUSED), EX_TEMPFAIL);
	ck_assert_int_eq(code_for(FAIL_UNREACHABLE), EX_TEMPFAIL);
	ck_assert_int_eq(code_for(FAIL_RESOLVE_TEMPORARY), EX_TEMPFAIL);
	ck_assert_int_eq(code_for(FAIL_RESOLVE_PERMANENT), EX_NOHOST);
	ck_assert_int_eq(code_for(FAIL_TLS_VERIFY), EX_UNAVAILABLE);
	ck_assert_int_eq(code_for(FAIL_NO_STARTTLS), EX_UNAVAILABLE);
	ck_assert_int_eq(code_for(FAIL_TLS_SETUP), EX_CONFIG);
	ck_assert_int_eq(code_for(FAIL_PROTOCOL), EX_PROTOCOL);
	ck_assert_int_eq(code_for(FAIL_NO_AUTH), EX_NOPERM);
	ck_assert_int_eq(code_for(FAIL_TOO_BIG), EX_DATAERR);
	ck_assert_int_eq(code_for(FAIL_CONFIG), EX_CONFIG);
	ck_assert_int_eq(code_for(FAIL_USAGE), EX_USAGE);
}
END_TEST

START_TEST(describe_reply)
{
	struct outcome o = { 0 };
	char *d;
	outcome_set_reply(&o, STAGE_RCPT, "RCPT TO:<x@example.org>", 550, "5.1.1",
			  "<x@example.org>: Recipient address rejected\nsecond\x1b line");
	d = status_describe(&o);
	ck_assert_ptr_nonnull(strstr(d, "RCPT TO:<x@example.org>: server replied "
					"550 5.1.1 <x@example.org>: Recipient "
					"address rejected\n    second\\x1b line"));
	ck_assert_ptr_nonnull(strstr(d, "mailbox does not exist"));
	ck_assert_ptr_nonnull(strstr(d, "permanent failure, exit status 67"));
	free(d);
	outcome_clear(&o);
}
END_TEST

START_TEST(describe_local)
{
	struct outcome o = { 0 };
	char *d;
	outcome_set(&o, STAGE_TLS, FAIL_TLS_VERIFY, "(TLS handshake)",
		    "the server's certificate for mail.example was not accepted");
	d = status_describe(&o);
	ck_assert_ptr_nonnull(strstr(d, "TLS ((TLS handshake)): the server's"));
	ck_assert_ptr_nonnull(strstr(d, "could not prove its identity"));
	ck_assert_ptr_nonnull(strstr(d, "exit status 69"));
	free(d);
	outcome_clear(&o);
}
END_TEST

START_TEST(outcome_copy_is_deep)
{
	struct outcome a = { 0 }, b = { 0 };
	outcome_set_reply(&a, STAGE_MAIL, "MAIL", 451, "4.3.0", "later");
	outcome_copy(&b, &a);
	outcome_clear(&a);
	ck_assert_str_eq(b.text, "later");
	ck_assert_int_eq(b.code, 451);
	outcome_clear(&b);
}
END_TEST

static Suite *status_suite(void)
{
	Suite *s = suite_create("status");
	TCase *t = tcase_create("map");
	tcase_add_test(t, temporary_replies_are_tempfail);
	tcase_add_test(t, permanent_replies_by_enhanced_code);
	tcase_add_test(t, local_failures);
	tcase_add_test(t, describe_reply);
	tcase_add_test(t, describe_local);
	tcase_add_test(t, outcome_copy_is_deep);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return run_suite(status_suite());
}
