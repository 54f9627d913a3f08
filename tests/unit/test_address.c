#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "address.h"
#include "util.h"

/* Parses text into a fresh list and checks the exact result. */
static void assert_parses(const char *text, const char *const *want)
{
	struct strlist l = { 0 };
	char err[256] = "";
	size_t count = 0;
	int n;

	while (want[count])
		count++;
	n = address_list_parse(text, &l, err, sizeof err);
	ck_assert_msg(n >= 0, "parsing \"%s\" failed: %s", text, err);
	ck_assert_msg((size_t)n == count && l.n == count,
		      "\"%s\": %d addresses, %zu in list, want %zu", text, n,
		      l.n, count);
	for (size_t i = 0; i < count; i++)
		ck_assert_msg(strcmp(l.v[i], want[i]) == 0,
			      "\"%s\": address %zu is \"%s\", want \"%s\"", text,
			      i, l.v[i], want[i]);
	strlist_free(&l);
}

#define PARSES(text, ...) \
	assert_parses(text, (const char *const[]){ __VA_ARGS__, NULL })
#define PARSES_NOTHING(text) \
	assert_parses(text, (const char *const[]){ NULL })

/* Parsing fails with an error that contains each of the given pieces. */
static void assert_fails(const char *text, const char *reason,
			 const char *where)
{
	struct strlist l = { 0 };
	char err[256] = "";

	strlist_add(&l, "kept@example.org");
	ck_assert_msg(address_list_parse(text, &l, err, sizeof err) == -1,
		      "\"%s\" parsed but should not", text);
	ck_assert_msg(strstr(err, reason) != NULL,
		      "\"%s\": error \"%s\" lacks \"%s\"", text, err, reason);
	ck_assert_msg(where == NULL || strstr(err, where) != NULL,
		      "\"%s\": error \"%s\" lacks \"%s\"", text, err, where);
	/* nothing of a failed text is left in the list */
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0], "kept@example.org");
	ck_assert_ptr_null(l.v[1]);
	strlist_free(&l);
}

/* ---- RFC 5322 Appendix A ---- */

START_TEST(test_rfc5322_a1_1)
{
	PARSES("John Doe <jdoe@machine.example>", "jdoe@machine.example");
	PARSES("Mary Smith <mary@example.net>", "mary@example.net");
	PARSES("Michael Jones <mjones@machine.example>",
	       "mjones@machine.example");
}
END_TEST

START_TEST(test_rfc5322_a1_2)
{
	PARSES("\"Joe Q. Public\" <john.q.public@example.com>",
	       "john.q.public@example.com");
	PARSES("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
	       "mary@x.test", "jdoe@example.org", "one@y.test");
	PARSES("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
	       "boss@nil.test", "sysservices@example.net");
}
END_TEST

START_TEST(test_rfc5322_a1_3_group)
{
	PARSES("Pete <pete@silly.example>", "pete@silly.example");
	PARSES("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	       "c@a.test", "joe@where.test", "jdoe@one.test");
	PARSES_NOTHING("Undisclosed recipients:;");
	PARSES_NOTHING("undisclosed-recipients:;");
}
END_TEST

START_TEST(test_rfc5322_a2_reply)
{
	PARSES("Mary Smith <mary@example.net>", "mary@example.net");
	PARSES("\"Mary Smith: Personal Account\" <smith@home.example>",
	       "smith@home.example");
	PARSES("John Doe <jdoe@machine.example>", "jdoe@machine.example");
}
END_TEST

START_TEST(test_rfc5322_a3_resent_a4_trace)
{
	PARSES("Mary Smith <mary@example.net>", "mary@example.net");
	PARSES("Jane Brown <j-brown@other.example>", "j-brown@other.example");
	PARSES("John Doe <jdoe@node.example>", "jdoe@node.example");
}
END_TEST

START_TEST(test_rfc5322_a5_white_space_comments)
{
	PARSES("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	       "pete@silly.test");
	PARSES("A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
	       "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
	       "c@public.example", "joe@example.org", "jdoe@one.test");
	/* the same, unfolded as the header parser delivers it */
	PARSES("A Group(Some people)     :Chris Jones <c@(Chris's host.)public.example>,"
	       "         joe@example.org,  John <jdoe@one.test> (my dear friend); (the end of the group)",
	       "c@public.example", "joe@example.org", "jdoe@one.test");
	PARSES_NOTHING("(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;");
}
END_TEST

START_TEST(test_rfc5322_a6_obsolete)
{
	PARSES("Joe Q. Public <john.q.public@example.com>",
	       "john.q.public@example.com");
	PARSES("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example",
	       "mary@example.net", "jdoe@test.example");
	PARSES("John Doe <jdoe@machine(comment).  example>",
	       "jdoe@machine.example");
	PARSES("Mary Smith\r\n  \r\n          <mary@example.net>",
	       "mary@example.net");
}
END_TEST

/* ---- more forms ---- */

START_TEST(test_quoted_local_parts)
{
	PARSES("\"john doe\"@example.com", "\"john doe\"@example.com");
	PARSES("Name <\"john doe\"@example.com>", "\"john doe\"@example.com");
	/* quoting that is not needed is dropped (RFC 5321 4.1.2) */
	PARSES("\"john\"@example.com", "john@example.com");
	PARSES("\"john.doe\"@example.com", "john.doe@example.com");
	PARSES("\"a\\b\"@example.com", "ab@example.com");
	/* needed quoting is kept, with escapes where required */
	PARSES("\"a\\\"b\"@example.com", "\"a\\\"b\"@example.com");
	PARSES("\"a\\\\b\"@example.com", "\"a\\\\b\"@example.com");
	PARSES("\"\"@example.com", "\"\"@example.com");
	PARSES("\"a..b\"@example.com", "\"a..b\"@example.com");
	PARSES("\"user@host\"@example.com", "\"user@host\"@example.com");
	PARSES("\"a,b;c<d>\"@example.com", "\"a,b;c<d>\"@example.com");
	/* obs-local-part mixing quoted words and atoms becomes one string */
	PARSES("\"a b\".c@example.com", "\"a b.c\"@example.com");
	PARSES("\"a\".\"b\"@example.com", "a.b@example.com");
	/* folding inside a quoted string is not part of it */
	PARSES("\"a\r\n b\"@example.com", "\"a b\"@example.com");
}
END_TEST

START_TEST(test_obsolete_local_part)
{
	PARSES("john . q . public@example.com", "john.q.public@example.com");
	PARSES("john(c).(d)q@example.com", "john.q@example.com");
	PARSES("john .\"q\". public @ example . com",
	       "john.q.public@example.com");
}
END_TEST

START_TEST(test_domain_literals)
{
	PARSES("user@[192.0.2.1]", "user@[192.0.2.1]");
	PARSES("user@[IPv6:2001:db8::1]", "user@[IPv6:2001:db8::1]");
	PARSES("user@[ 192.0.2.1 ]", "user@[192.0.2.1]");
	PARSES("Name <user@(c)[192.0.2.1](c)>", "user@[192.0.2.1]");
	PARSES("a@[x\\]y]", "a@[x\\]y]");
}
END_TEST

START_TEST(test_comments_everywhere)
{
	PARSES("(a)x(b)@(c)y(d).(e)z(f)", "x@y.z");
	PARSES("a@b.example (outer (inner (deepest)) back)", "a@b.example");
	PARSES("a@b.example (\\( not nested \\))", "a@b.example");
	PARSES("(c1) Name (c2) <(c3) a@b.example (c4)> (c5), (c6) c@d.example",
	       "a@b.example", "c@d.example");
	PARSES("a@b.example (comment with \"quote and , ; < > @ :)",
	       "a@b.example");
	PARSES("G(c):(c)a@b.example(c);(c)", "a@b.example");
}
END_TEST

START_TEST(test_encoded_word_display_names)
{
	PARSES("=?UTF-8?B?w6TDtsO8?= <u@x.de>", "u@x.de");
	PARSES("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
	       "PIRARD@vm1.ulg.ac.be");
	PARSES("=?utf-8?q?Die_Gruppe?=: a@x.de, b@x.de;", "a@x.de", "b@x.de");
	PARSES("\"=?UTF-8?Q?J=C3=B6rg?=\" <j@x.de>", "j@x.de");
}
END_TEST

START_TEST(test_utf8)
{
	PARSES("j\xc3\xb6rg@example.de", "j\xc3\xb6rg@example.de");
	PARSES("J\xc3\xb6rg M\xc3\xbcller <j@x.de>", "j@x.de");
	PARSES("user@b\xc3\xbc" "cher.example", "user@b\xc3\xbc" "cher.example");
	PARSES("\"j\xc3\xb6 rg\"@x.de", "\"j\xc3\xb6 rg\"@x.de");
	PARSES("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
	       "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a");
}
END_TEST

START_TEST(test_duplicates)
{
	struct strlist l = { 0 };
	char err[256];

	PARSES("a@x.example, A@X.EXAMPLE, b@x.example, Name <a@x.example>",
	       "a@x.example", "b@x.example");
	strlist_add(&l, "a@x.example");
	ck_assert_int_eq(address_list_parse("a@x.example, c@x.example", &l,
					    err, sizeof err), 1);
	ck_assert_int_eq(address_list_parse("c@x.example", &l, err, sizeof err),
			 0);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.v[1], "c@x.example");
	strlist_free(&l);
}
END_TEST

START_TEST(test_empty_lists)
{
	PARSES_NOTHING("");
	PARSES_NOTHING("   \t ");
	PARSES_NOTHING("(only a comment)");
	PARSES_NOTHING(",");
	PARSES_NOTHING(" , (c) ,, ");
	PARSES_NOTHING("g:,,;");
}
END_TEST

START_TEST(test_bare_local_names)
{
	PARSES("root", "root");
	PARSES("cron <root>", "root");
	PARSES("<root>", "root");
	PARSES("Cron Daemon <root>, postmaster", "root", "postmaster");
	PARSES("first.last", "first.last");
	PARSES("ops: root, admin;", "root", "admin");
}
END_TEST

START_TEST(test_list_commas)
{
	PARSES("a@x.example,", "a@x.example");
	PARSES(", a@x.example", "a@x.example");
	PARSES("a@x.example,,b@x.example , ", "a@x.example", "b@x.example");
	PARSES("g: a@x.example,;, b@x.example", "a@x.example", "b@x.example");
	PARSES("g: a@x.example;, h:;, i: b@x.example;",
	       "a@x.example", "b@x.example");
}
END_TEST

START_TEST(test_obsolete_routes)
{
	PARSES("<@a.example,@b.example:user@c.example>", "user@c.example");
	PARSES("<,@a.example,,@b.example,:u@c.example>", "u@c.example");
	PARSES("Name <@[192.0.2.1]:u@c.example>", "u@c.example");
	PARSES("<@a.example : u@c.example>", "u@c.example");
}
END_TEST

START_TEST(test_errors)
{
	assert_fails("\"abc@example.com", "unterminated quoted string",
		     "position 1");
	assert_fails("a@x.example, \"bob", "unterminated quoted string",
		     "position 14");
	assert_fails("\"ab\\", "unterminated quoted string", NULL);
	assert_fails("a@x.example (comment", "unterminated comment",
		     "position 13");
	assert_fails("a@x.example (a (b)", "unterminated comment", NULL);
	assert_fails("John <john@x.example", "missing '>'", "position 6");
	assert_fails("John <john@x.example other>", "unexpected other",
		     "position 22");
	assert_fails("john@x.example>", "unexpected character '>'",
		     "position 15");
	assert_fails("a@", "missing domain after '@'", "position 2");
	assert_fails("a@, b@x.example", "missing domain after '@'", NULL);
	assert_fails("a@ <b@x.example>", "missing domain after '@'", NULL);
	assert_fails("a@b@c", "unexpected character '@'", "position 4");
	assert_fails("a@b.example; c@d.example", "unexpected character ';'",
		     "position 12");
	assert_fails("<>", "empty address '<>'", "position 1");
	assert_fails("a@b.", "missing domain label after '.'", "position 4");
	assert_fails("a@b..c", "missing domain label after '.'", NULL);
	assert_fails(".a@b", "empty word", "position 1");
	assert_fails("a.@b", "local part ends with '.'", "position 2");
	assert_fails("a..b@c", "empty word", "position 3");
	assert_fails("John Doe jdoe@x.example", "joined by '.'", "position 6");
}
END_TEST

START_TEST(test_more_errors)
{
	assert_fails("group: a@x.example", "missing ';'", "position 6");
	assert_fails("a: b: c@d.example;;", "group inside a group",
		     "position 5");
	assert_fails(": a@x.example;", "group without a name", "position 1");
	assert_fails("a\x01@b.example", "control character 0x01",
		     "position 2");
	assert_fails("a@b.example)", "')' without '('", "position 12");
	assert_fails("<@a.example user@b.example>", "unexpected user",
		     NULL);
	assert_fails("<@a.example:>", "empty address", NULL);
	assert_fails("<a.example:u@b.example>", "unexpected character ':'",
		     NULL);
	assert_fails("a@[192.0.2.1", "unterminated domain literal",
		     "position 3");
	assert_fails("a@[1[2]", "'[' inside a domain literal", "position 5");
	assert_fails("a@[1\\\r2]", "line break inside a domain literal",
		     "position 6");
	assert_fails("a@x.example <b@y.example>", "unexpected character '<'",
		     "position 13");
	assert_fails("\"a\nb\"@x.example", "line break inside a quoted string",
		     "position 3");
	assert_fails("\"a\\\nb\"@x.example", "line break inside a quoted string",
		     "position 4");
	assert_fails("\"a\r\nb\"@x.example", "line break inside a quoted string",
		     "position 3");
	assert_fails("[192.0.2.1]", "unexpected [192.0.2.1]", "position 1");
	assert_fails("a@\"quoted\"", "missing domain", NULL);
	assert_fails("a@x.example, b@y.example, @", "unexpected character '@'",
		     "position 27");
	assert_fails("a\\b@x.example", "unexpected character '\\'",
		     "position 2");
	/* after a group's ';' only ',' or the end may follow */
	assert_fails("g: a@x.example; b@x.example", "unexpected b",
		     "position 17");
}
END_TEST

START_TEST(test_error_buffer_optional)
{
	struct strlist l = { 0 };
	char small[8];

	ck_assert_int_eq(address_list_parse("\"x", &l, NULL, 0), -1);
	ck_assert_int_eq(address_list_parse("\"x", &l, small, sizeof small), -1);
	ck_assert_str_eq(small, "unte...");
	ck_assert_uint_eq(l.n, 0);
	strlist_free(&l);
}
END_TEST

/* ---- envelope checks ---- */

static void assert_safe(const char *addr)
{
	char err[256] = "";
	ck_assert_msg(address_is_safe_for_envelope(addr, err, sizeof err),
		      "\"%s\" refused: %s", addr, err);
}

static void assert_unsafe(const char *addr, const char *reason)
{
	char err[256] = "";
	ck_assert_msg(!address_is_safe_for_envelope(addr, err, sizeof err),
		      "\"%s\" accepted", addr);
	ck_assert_msg(strstr(err, reason) != NULL, "\"%s\": \"%s\" lacks \"%s\"",
		      addr, err, reason);
}

START_TEST(test_envelope_safe)
{
	assert_safe("");
	assert_safe("a@b.example");
	assert_safe("root");
	assert_safe("\"john doe\"@example.com");
	assert_safe("\"a<b>@c\"@example.com");
	assert_safe("\"a\\\"b\"@example.com");
	assert_safe("j\xc3\xb6rg@example.de");
	assert_safe("user@[192.0.2.1]");
}
END_TEST

START_TEST(test_envelope_unsafe)
{
	assert_unsafe("a\r@b.example", "carriage return (CR) (0x0d) at position 2");
	assert_unsafe("a@b.example\r\nRCPT TO:<x@y>", "carriage return");
	assert_unsafe("a\n@b.example", "line feed (LF) (0x0a) at position 2");
	assert_unsafe("a\x01@b.example", "control character (0x01)");
	assert_unsafe("a\tb@b.example", "control character (0x09)");
	assert_unsafe("a\x7f@b.example", "control character (0x7f)");
	assert_unsafe("\"a\x1b\"@b.example", "control character (0x1b)");
	assert_unsafe("\"a\\\r\"@b.example", "carriage return");
	assert_unsafe("a b@c.example", "unquoted space (0x20) at position 2");
	assert_unsafe("<a@b.example", "'<' (0x3c) at position 1");
	assert_unsafe("a@b.example>", "'>' (0x3e) at position 12");
	assert_unsafe("a@b@c.example", "second '@' at position 4");
	assert_unsafe("\"ab@c.example", "unbalanced");
	assert_unsafe("\"a\\\"@c.example", "unbalanced");
}
END_TEST

START_TEST(test_envelope_length)
{
	char addr[300];
	char err[256] = "";

	/* RFC 5321 4.5.3.1.3: "<" + 254 + ">" is the longest path */
	memset(addr, 'a', sizeof addr);
	memcpy(addr + 240, "@b.example", 10);
	addr[254] = '\0';
	memcpy(addr + 250, "a.ex", 4);
	ck_assert_msg(address_is_safe_for_envelope(addr, err, sizeof err),
		      "%s", err);
	addr[254] = 'e';
	addr[255] = '\0';
	assert_unsafe(addr, "255 octets");
	ck_assert(!address_is_safe_for_envelope(addr, NULL, 0));
}
END_TEST

START_TEST(test_address_is_local)
{
	ck_assert(address_is_local("root"));
	ck_assert(address_is_local(""));
	ck_assert(address_is_local("\"a@b\""));
	ck_assert(!address_is_local("a@b.example"));
	ck_assert(!address_is_local("\"a@b\"@c.example"));
	ck_assert(!address_is_local("\"a\\\"@b\"@c.example"));
	ck_assert(address_is_local("\"a\\\"@b\""));
}
END_TEST

START_TEST(test_address_is_8bit)
{
	ck_assert(!address_is_8bit("a@b.example"));
	ck_assert(!address_is_8bit(""));
	ck_assert(!address_is_8bit("~\x7f@b"));
	ck_assert(address_is_8bit("j\xc3\xb6rg@example.de"));
	ck_assert(address_is_8bit("a@b.\xff"));
}
END_TEST

/* ---- qualifying bare local names in a header value ---- */

static void assert_qualifies(const char *value, const char *want)
{
	char err[256] = "x";
	char *got = address_list_qualify(value, "host.example", err, sizeof err);

	ck_assert_msg(got != NULL, "\"%s\": not qualified (%s)", value, err);
	ck_assert_str_eq(got, want);
	free(got);
}

static void assert_nothing_to_qualify(const char *value)
{
	char err[256] = "x";

	ck_assert_ptr_null(address_list_qualify(value, "host.example", err,
						sizeof err));
	ck_assert_msg(err[0] == '\0', "\"%s\": error \"%s\"", value, err);
}

START_TEST(test_qualify_forms)
{
	assert_qualifies("root", "root@host.example");
	assert_qualifies("cron <root>", "cron <root@host.example>");
	assert_qualifies("Cron Daemon <root>", "Cron Daemon <root@host.example>");
	assert_qualifies("root (comment)", "root@host.example (comment)");
	assert_qualifies("root(comment)", "root@host.example(comment)");
	assert_qualifies("  root  ", "  root@host.example  ");
	assert_qualifies("<root> (the admin)", "<root@host.example> (the admin)");
	assert_qualifies("cron < root >", "cron < root@host.example >");
	assert_qualifies("www-data", "www-data@host.example");
	assert_qualifies("first.last", "first.last@host.example");
	assert_qualifies("\"the boss\"", "\"the boss\"@host.example");
	assert_qualifies("Boss <\"the boss\">", "Boss <\"the boss\"@host.example>");
	assert_qualifies("=?utf-8?q?J=C3=B6rg?= <joerg>",
			 "=?utf-8?q?J=C3=B6rg?= <joerg@host.example>");
	assert_qualifies("\"Doe, John\" <jd>", "\"Doe, John\" <jd@host.example>");
	/* obsolete source route (RFC 5322 4.4) kept */
	assert_qualifies("<@relay.example:root>", "<@relay.example:root@host.example>");
}
END_TEST

START_TEST(test_qualify_lists_and_groups)
{
	assert_qualifies("root, cron, www-data",
			 "root@host.example, cron@host.example, www-data@host.example");
	assert_qualifies("a@x.example, root, \"B\" <b@y.example>, cron <cron>",
			 "a@x.example, root@host.example, \"B\" <b@y.example>, "
			 "cron <cron@host.example>");
	assert_qualifies("admins: root, a@x.example, cron;",
			 "admins: root@host.example, a@x.example, cron@host.example;");
	assert_qualifies("undisclosed-recipients:;, root",
			 "undisclosed-recipients:;, root@host.example");
	/* a duplicate is qualified each time it is written */
	assert_qualifies("root, Root <root>",
			 "root@host.example, Root <root@host.example>");
	/* obs-addr-list: empty elements stay */
	assert_qualifies(",root,,", ",root@host.example,,");
}
END_TEST

START_TEST(test_qualify_folded)
{
	assert_qualifies("Cron\r\n Daemon <root>,\r\n\tadmin (the\r\n admin)",
			 "Cron\r\n Daemon <root@host.example>,\r\n"
			 "\tadmin@host.example (the\r\n admin)");
	assert_qualifies("root\r\n", "root@host.example\r\n");
	assert_qualifies("\"the\r\n boss\"", "\"the\r\n boss\"@host.example");
}
END_TEST

START_TEST(test_qualify_nothing_to_do)
{
	assert_nothing_to_qualify("a@x.example");
	assert_nothing_to_qualify("A <a@x.example>, b@y.example (c)");
	assert_nothing_to_qualify("undisclosed-recipients:;");
	assert_nothing_to_qualify("");
	assert_nothing_to_qualify("  (only a comment) ");
	assert_nothing_to_qualify("\"at@in quotes\"@x.example");
}
END_TEST

START_TEST(test_qualify_errors)
{
	char err[256] = "";

	ck_assert_ptr_null(address_list_qualify("root, <cron", "h.example", err,
						sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "missing '>'"));
	ck_assert_ptr_nonnull(strstr(err, "position 7"));
	err[0] = '\0';
	ck_assert_ptr_null(address_list_qualify("a@", "h.example", err,
						sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "missing domain"));
	err[0] = '\0';
	ck_assert_ptr_null(address_list_qualify("root", "", err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "no domain"));
	ck_assert_ptr_null(address_list_qualify("root", NULL, err, sizeof err));
	/* no error buffer: still NULL, no crash */
	ck_assert_ptr_null(address_list_qualify("<x", "h.example", NULL, 0));
}
END_TEST

static Suite *address_suite(void)
{
	Suite *s = suite_create("address");
	TCase *rfc = tcase_create("rfc5322-appendix-a");
	TCase *forms = tcase_create("forms");
	TCase *errors = tcase_create("errors");
	TCase *env = tcase_create("envelope");
	TCase *qualify = tcase_create("qualify");

	tcase_add_test(rfc, test_rfc5322_a1_1);
	tcase_add_test(rfc, test_rfc5322_a1_2);
	tcase_add_test(rfc, test_rfc5322_a1_3_group);
	tcase_add_test(rfc, test_rfc5322_a2_reply);
	tcase_add_test(rfc, test_rfc5322_a3_resent_a4_trace);
	tcase_add_test(rfc, test_rfc5322_a5_white_space_comments);
	tcase_add_test(rfc, test_rfc5322_a6_obsolete);
	tcase_add_test(forms, test_quoted_local_parts);
	tcase_add_test(forms, test_obsolete_local_part);
	tcase_add_test(forms, test_domain_literals);
	tcase_add_test(forms, test_comments_everywhere);
	tcase_add_test(forms, test_encoded_word_display_names);
	tcase_add_test(forms, test_utf8);
	tcase_add_test(forms, test_duplicates);
	tcase_add_test(forms, test_empty_lists);
	tcase_add_test(forms, test_bare_local_names);
	tcase_add_test(forms, test_list_commas);
	tcase_add_test(forms, test_obsolete_routes);
	tcase_add_test(errors, test_errors);
	tcase_add_test(errors, test_more_errors);
	tcase_add_test(errors, test_error_buffer_optional);
	tcase_add_test(env, test_envelope_safe);
	tcase_add_test(env, test_envelope_unsafe);
	tcase_add_test(env, test_envelope_length);
	tcase_add_test(env, test_address_is_local);
	tcase_add_test(env, test_address_is_8bit);
	tcase_add_test(qualify, test_qualify_forms);
	tcase_add_test(qualify, test_qualify_lists_and_groups);
	tcase_add_test(qualify, test_qualify_folded);
	tcase_add_test(qualify, test_qualify_nothing_to_do);
	tcase_add_test(qualify, test_qualify_errors);
	suite_add_tcase(s, rfc);
	suite_add_tcase(s, forms);
	suite_add_tcase(s, errors);
	suite_add_tcase(s, env);
	suite_add_tcase(s, qualify);
	return s;
}

int main(void)
{
	return run_suite(address_suite());
}
