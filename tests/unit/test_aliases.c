#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_suite.h"
#include "aliases.h"
#include "util.h"

/* ---- helpers ---- */

/* Writes text to a new temporary file; returns its path (free it). */
static char *write_file(const char *text)
{
	char *path = xstrdup("/tmp/test_aliases.XXXXXX");
	int fd = mkstemp(path);
	size_t len = strlen(text);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static struct aliases *load_ok(const char *text)
{
	char *path = write_file(text);
	struct aliases *a = NULL;
	char err[256] = "";

	ck_assert_msg(aliases_load(path, &a, err, sizeof err) == 0,
		      "loading failed: %s", err);
	ck_assert_ptr_nonnull(a);
	unlink(path);
	free(path);
	return a;
}

/* Loading fails with "PATH:LINE: ..." that contains reason. */
static void assert_load_fails(const char *text, size_t line,
			      const char *reason)
{
	char *path = write_file(text);
	struct aliases *a = (struct aliases *)&a;	/* must become NULL */
	char err[256] = "", *where = xasprintf("%s:%zu: ", path, line);

	ck_assert_int_eq(aliases_load(path, &a, err, sizeof err), -1);
	ck_assert_ptr_null(a);
	ck_assert_msg(strncmp(err, where, strlen(where)) == 0,
		      "error \"%s\" does not start with \"%s\"", err, where);
	ck_assert_msg(strstr(err, reason) != NULL,
		      "error \"%s\" lacks \"%s\"", err, reason);
	unlink(path);
	free(path);
	free(where);
}

/* Expands name into a fresh list and checks the result exactly. */
static void assert_expands(const struct aliases *a, const char *name,
			   const char *const *want)
{
	struct strlist out = { 0 };
	size_t count = 0;
	int n;

	while (want[count])
		count++;
	n = aliases_expand(a, name, &out);
	ck_assert_msg(n == (int)count && out.n == count,
		      "\"%s\": returned %d, %zu in list, want %zu", name, n,
		      out.n, count);
	for (size_t i = 0; i < count; i++)
		ck_assert_str_eq(out.v[i], want[i]);
	strlist_free(&out);
}

#define EXPANDS(a, name, ...) \
	assert_expands(a, name, (const char *const[]){ __VA_ARGS__, NULL })
#define EXPANDS_NOT(a, name) \
	assert_expands(a, name, (const char *const[]){ NULL })

/* ---- the file format ---- */

START_TEST(test_single)
{
	struct aliases *a = load_ok("root: admin@example.org\n");

	EXPANDS(a, "root", "admin@example.org");
	EXPANDS_NOT(a, "cron");
	aliases_free(a);
}
END_TEST

START_TEST(test_multiple)
{
	struct aliases *a = load_ok("team:a@x.example,b@x.example ,  "
				    "Carol <c@x.example> (boss)\n");

	EXPANDS(a, "team", "a@x.example", "b@x.example", "c@x.example");
	aliases_free(a);
}
END_TEST

START_TEST(test_continuation_lines)
{
	struct aliases *a = load_ok("staff: a@x.example,\n"
				    "  b@x.example\n"
				    "# a comment does not end the entry\n"
				    "\n"
				    "\tc@x.example, d@x.example\n"
				    "other: o@x.example\n"
				    "    p@x.example\n");

	EXPANDS(a, "staff", "a@x.example", "b@x.example", "c@x.example",
		"d@x.example");
	EXPANDS(a, "other", "o@x.example", "p@x.example");
	aliases_free(a);

	/* the name alone on its line, the addresses below */
	a = load_ok("root:\n  r@x.example\n");
	EXPANDS(a, "root", "r@x.example");
	aliases_free(a);
}
END_TEST

START_TEST(test_comments_and_blank_lines)
{
	struct aliases *a = load_ok("# aliases for this host\n"
				    "\n"
				    "   \n"
				    "  # indented comment\n"
				    "root: r@x.example # the admin\n"
				    "odd: \"a#b\"@x.example, \"c #d\"@x.example#end\n"
				    "crlf: c@x.example\r\n");

	EXPANDS(a, "root", "r@x.example");
	/* '#' inside quotes belongs to the address */
	EXPANDS(a, "odd", "a#b@x.example", "\"c #d\"@x.example");
	EXPANDS(a, "crlf", "c@x.example");
	aliases_free(a);

	a = load_ok("");
	EXPANDS_NOT(a, "root");
	aliases_free(a);
}
END_TEST

START_TEST(test_default_catch_all)
{
	struct aliases *a = load_ok("root: r@x.example\n"
				    "default: all@x.example\n");

	EXPANDS(a, "root", "r@x.example");
	EXPANDS(a, "cron", "all@x.example");
	EXPANDS(a, "nobody", "all@x.example");
	/* an address with '@' is never looked up, not even by default */
	EXPANDS_NOT(a, "cron@other.example");
	EXPANDS_NOT(a, "");
	aliases_free(a);
}
END_TEST

START_TEST(test_case_insensitive)
{
	struct aliases *a = load_ok("Root: r@x.example\nDEFAULT: d@x.example\n");

	EXPANDS(a, "root", "r@x.example");
	EXPANDS(a, "ROOT", "r@x.example");
	EXPANDS(a, "rOoT", "r@x.example");
	EXPANDS(a, "other", "d@x.example");
	aliases_free(a);
	assert_load_fails("root: a@x.example\nROOT: b@x.example\n", 2,
			  "alias \"ROOT\" is already defined on line 1");
}
END_TEST

/* Several local recipients of one message, each mapped differently,
 * collected into one list without duplicates. */
START_TEST(test_several_local_recipients)
{
	struct aliases *a = load_ok("root: admin@x.example\n"
				    "cron: admin@x.example, cron-log@x.example\n"
				    "www-data: web@x.example\n");
	struct strlist out = { 0 };

	strlist_add(&out, "someone@y.example");
	ck_assert_int_eq(aliases_expand(a, "root", &out), 1);
	/* admin@ is already there: cron still counts as expanded */
	ck_assert_int_eq(aliases_expand(a, "cron", &out), 2);
	ck_assert_int_eq(aliases_expand(a, "www-data", &out), 1);
	ck_assert_int_eq(aliases_expand(a, "alice", &out), 0);
	ck_assert_uint_eq(out.n, 4);
	ck_assert_str_eq(out.v[0], "someone@y.example");
	ck_assert_str_eq(out.v[1], "admin@x.example");
	ck_assert_str_eq(out.v[2], "cron-log@x.example");
	ck_assert_str_eq(out.v[3], "web@x.example");
	strlist_free(&out);
	aliases_free(a);
}
END_TEST

START_TEST(test_duplicates_removed)
{
	struct aliases *a = load_ok("team: a@x.example, A@X.EXAMPLE,\n"
				    "  a@x.example, b@x.example\n");
	struct strlist out = { 0 };

	EXPANDS(a, "team", "a@x.example", "b@x.example");
	strlist_add(&out, "b@x.example");
	ck_assert_int_eq(aliases_expand(a, "team", &out), 2);
	ck_assert_uint_eq(out.n, 2);
	ck_assert_str_eq(out.v[1], "a@x.example");
	strlist_free(&out);
	aliases_free(a);
}
END_TEST

/* msmtp does not recurse: a local name an entry maps to stays as it is
 * (the caller qualifies it), and "default" does not apply to it. */
START_TEST(test_no_recursion)
{
	struct aliases *a = load_ok("root: admin, boss@x.example\n"
				    "admin: real@x.example\n"
				    "default: all@x.example\n");

	EXPANDS(a, "root", "admin", "boss@x.example");
	EXPANDS(a, "admin", "real@x.example");
	aliases_free(a);
	a = load_ok("loop: loop\n");
	EXPANDS(a, "loop", "loop");
	aliases_free(a);
}
END_TEST

START_TEST(test_no_aliases)
{
	struct strlist out = { 0 };

	ck_assert_int_eq(aliases_expand(NULL, "root", &out), 0);
	ck_assert_uint_eq(out.n, 0);
	aliases_free(NULL);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_malformed_lines)
{
	assert_load_fails("root: r@x.example\n# fine\nno colon here\n", 3,
			  "no ':'");
	assert_load_fails(": r@x.example\n", 1, "name before ':' is missing");
	assert_load_fails("my root: r@x.example\n", 1, "cannot contain ' '");
	assert_load_fails("root@x.example: r@y.example\n", 1, "without '@'");
	assert_load_fails("  r@x.example\nroot: r@x.example\n", 1,
			  "continuation line");
	assert_load_fails("ok: o@x.example\nroot: <r@x.example\n", 2,
			  "alias \"root\": missing '>'");
	assert_load_fails("root: r@x.example,\n  a@@b\n", 2, "alias \"root\"");
	assert_load_fails("root: \"a\x01\"@x.example\n", 1, "control character");
}
END_TEST

START_TEST(test_entry_without_address)
{
	assert_load_fails("a: a@x.example\nroot:\n\nb: b@x.example\n", 2,
			  "alias \"root\" has no address");
	assert_load_fails("a: a@x.example\nroot: # none\n", 2,
			  "alias \"root\" has no address");
	assert_load_fails("root: ,, ,\n", 1, "has no address");
}
END_TEST

START_TEST(test_local_mta_targets_refused)
{
	assert_load_fails("root: |/usr/bin/procmail\n", 1, "commands, files");
	assert_load_fails("root: a@x.example, \"|/bin/cat\"\n", 1, "commands");
	assert_load_fails("log: /var/log/mail.all\n", 1, "files");
	assert_load_fails("list: :include: /etc/mail/list\n", 1, ":include:");
}
END_TEST

START_TEST(test_unreadable_file)
{
	struct aliases *a = (struct aliases *)&a;
	char err[256] = "";
	char dir[] = "/tmp/test_aliases_dir.XXXXXX";

	ck_assert_int_eq(aliases_load("/nonexistent/aliases", &a, err,
				      sizeof err), -1);
	ck_assert_ptr_null(a);
	ck_assert_str_eq(err, "/nonexistent/aliases: No such file or directory");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(aliases_load(dir, &a, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "Is a directory"));
	ck_assert_ptr_nonnull(strstr(err, dir));
	rmdir(dir);
}
END_TEST

static Suite *aliases_suite(void)
{
	Suite *s = suite_create("aliases");
	TCase *format = tcase_create("format");
	TCase *expand = tcase_create("expand");
	TCase *errors = tcase_create("errors");

	tcase_add_test(format, test_single);
	tcase_add_test(format, test_multiple);
	tcase_add_test(format, test_continuation_lines);
	tcase_add_test(format, test_comments_and_blank_lines);
	tcase_add_test(expand, test_default_catch_all);
	tcase_add_test(expand, test_case_insensitive);
	tcase_add_test(expand, test_several_local_recipients);
	tcase_add_test(expand, test_duplicates_removed);
	tcase_add_test(expand, test_no_recursion);
	tcase_add_test(expand, test_no_aliases);
	tcase_add_test(errors, test_malformed_lines);
	tcase_add_test(errors, test_entry_without_address);
	tcase_add_test(errors, test_local_mta_targets_refused);
	tcase_add_test(errors, test_unreadable_file);
	suite_add_tcase(s, format);
	suite_add_tcase(s, expand);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	return run_suite(aliases_suite());
}
