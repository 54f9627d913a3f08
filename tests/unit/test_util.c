/* Unit tests for util: visible text, bounded formatting, string lists. */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_suite.h"
#include "util.h"

START_TEST(visible_controls)
{
	char buf[64];
	make_visible(buf, sizeof buf, "a\r\nb\tc\x01\x7f\0d", 10);
	ck_assert_str_eq(buf, "a\\r\\nb\\tc\\x01\\x7f\\x00d");
}
END_TEST

START_TEST(visible_truncates_with_marker)
{
	char buf[8];
	make_visible(buf, sizeof buf, "abcdefghijkl", 12);
	ck_assert_str_eq(buf, "abcd...");
}
END_TEST

START_TEST(format_into_marks_truncation)
{
	char buf[10];
	format_into(buf, sizeof buf, "%s", "short");
	ck_assert_str_eq(buf, "short");
	format_into(buf, sizeof buf, "%s", "much too long text");
	ck_assert_str_eq(buf, "much t...");
}
END_TEST

START_TEST(strlist_unique_case_insensitive)
{
	struct strlist l = { 0 };
	ck_assert(strlist_add_unique(&l, "A@example.org"));
	ck_assert(!strlist_add_unique(&l, "a@EXAMPLE.org"));
	ck_assert(strlist_add_unique(&l, "b@example.org"));
	ck_assert_uint_eq(l.n, 2);
	ck_assert_ptr_null(l.v[2]);
	for (int i = 0; i < 100; i++) {
		char s[16];
		snprintf(s, sizeof s, "x%d", i);
		strlist_add(&l, s);
	}
	ck_assert_uint_eq(l.n, 102);
	ck_assert_str_eq(l.v[101], "x99");
	strlist_free(&l);
	ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(ascii_compare)
{
	ck_assert_int_eq(ascii_casecmp("PIPELINING", "pipelining"), 0);
	ck_assert_int_ne(ascii_casecmp("a", "b"), 0);
	ck_assert_int_eq(ascii_ncasecmp("AUTH=PLAIN", "auth", 4), 0);
	ck_assert_int_lt(ascii_casecmp("a", "ab"), 0);
}
END_TEST

START_TEST(temp_file_is_unlinked_and_writable)
{
	char err[256] = "";
	char dir[] = "/tmp/postbote-util.XXXXXX";
	char buf[8];
	int fd;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	fd = temp_file_unlinked(dir, "x", err, sizeof err);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, "hello", 5), 0);
	ck_assert_int_eq(pread(fd, buf, 5, 0), 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
	/* unlinked: the directory is empty and can be removed */
	ck_assert_int_eq(rmdir(dir), 0);
	close(fd);
	ck_assert_int_eq(temp_file_unlinked("/nonexistent/dir", "x", err,
					    sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/dir"));
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *t = tcase_create("util");
	tcase_add_test(t, visible_controls);
	tcase_add_test(t, visible_truncates_with_marker);
	tcase_add_test(t, format_into_marks_truncation);
	tcase_add_test(t, strlist_unique_case_insensitive);
	tcase_add_test(t, ascii_compare);
	tcase_add_test(t, temp_file_is_unlinked_and_writable);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return run_suite(util_suite());
}
