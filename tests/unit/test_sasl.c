/* Unit tests for the choice of SASL mechanism and the OAuth2 messages
 * postbote formats itself. */
#include "autoconf.h"

#include <check.h>
#include <gsasl.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "sasl.h"
#include "util.h"

static const struct sasl_available password_only = { .password = true };
static const struct sasl_available everything = {
	.password = true, .ticket = true, .cert = true, .token = true,
};

static const char *pick(const char *offered, const char *forced, bool tls,
			const struct sasl_available *av, const char *skip)
{
	static char err[512];
	return sasl_choose_mechanism(offered, forced, tls, av, skip, err,
				     sizeof err);
}

START_TEST(strongest_password_mechanism_first)
{
	const char *all = "LOGIN PLAIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 "
			  "SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS";
	ck_assert_str_eq(pick(all, NULL, true, &password_only, NULL),
			 "SCRAM-SHA-256-PLUS");
	ck_assert_str_eq(pick("PLAIN SCRAM-SHA-1-PLUS SCRAM-SHA-256", NULL, true,
			      &password_only, NULL), "SCRAM-SHA-1-PLUS");
	ck_assert_str_eq(pick("LOGIN PLAIN", NULL, true, &password_only, NULL),
			 "PLAIN");
	ck_assert_str_eq(pick("login cram-md5", NULL, true, &password_only, NULL),
			 "LOGIN");
}
END_TEST

START_TEST(without_tls_only_scram_and_the_md5s)
{
	ck_assert_str_eq(pick("PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256-PLUS", NULL,
			      false, &password_only, NULL), "SCRAM-SHA-1");
	ck_assert_ptr_null(pick("PLAIN LOGIN XOAUTH2 EXTERNAL", NULL, false,
				&everything, NULL));
	ck_assert_ptr_null(pick("PLAIN", "PLAIN", false, &password_only, NULL));
	ck_assert_ptr_null(pick("XOAUTH2", "XOAUTH2", false, &everything, NULL));
}
END_TEST

START_TEST(credentials_decide)
{
	const struct sasl_available token = { .token = true };
	const struct sasl_available cert = { .cert = true };
	const struct sasl_available ticket = { .ticket = true };
	const char *gmail = "LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH";
	ck_assert_str_eq(pick(gmail, NULL, true, &token, NULL), "OAUTHBEARER");
	ck_assert_str_eq(pick("LOGIN XOAUTH2", NULL, true, &token, NULL), "XOAUTH2");
	/* A password never goes to a token mechanism, nor a token to PLAIN. */
	ck_assert_str_eq(pick(gmail, NULL, true, &password_only, NULL), "PLAIN");
	ck_assert_ptr_null(pick("XOAUTH2 OAUTHBEARER", NULL, true, &password_only,
				NULL));
	ck_assert_str_eq(pick("PLAIN EXTERNAL", NULL, true, &cert, NULL),
			 "EXTERNAL");
	ck_assert_str_eq(pick("PLAIN GSSAPI GS2-KRB5", NULL, true, &ticket, NULL),
			 "GS2-KRB5");
	/* With a password too, the password mechanisms come first. */
	ck_assert_str_eq(pick("GSSAPI SCRAM-SHA-256", NULL, true, &everything,
			      NULL), "SCRAM-SHA-256");
}
END_TEST

START_TEST(skip_list_moves_on)
{
	ck_assert_str_eq(pick("GS2-KRB5 GSSAPI PLAIN", NULL, true, &everything,
			      "GS2-KRB5"), "PLAIN");
	ck_assert_str_eq(pick("GS2-KRB5 GSSAPI", NULL, true,
			      &(struct sasl_available){ .ticket = true },
			      "GS2-KRB5"), "GSSAPI");
	ck_assert_ptr_null(pick("GSSAPI", NULL, true,
				&(struct sasl_available){ .ticket = true },
				"GSSAPI"));
}
END_TEST

START_TEST(errors_name_the_problem)
{
	char err[512];
	ck_assert_ptr_null(sasl_choose_mechanism("PLAIN", "NTLM", true,
						 &everything, NULL, err,
						 sizeof err));
	ck_assert_str_eq(err, "authentication mechanism NTLM is not supported "
			 "by postbote");
	ck_assert_ptr_null(sasl_choose_mechanism("PLAIN", "CRAM-MD5", true,
						 &everything, NULL, err,
						 sizeof err));
	ck_assert_str_eq(err, "the server does not offer CRAM-MD5 (it offers: "
			 "PLAIN)");
	ck_assert_ptr_null(sasl_choose_mechanism("", NULL, true, &everything,
						 NULL, err, sizeof err));
	ck_assert_str_eq(err, "the server does not offer authentication");
	ck_assert_ptr_null(sasl_choose_mechanism("PLAIN EXTERNAL", NULL, true,
						 &(struct sasl_available){ 0 },
						 NULL, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "PLAIN needs a password"));
	ck_assert_ptr_null(sasl_choose_mechanism("EXTERNAL", NULL, true,
						 &password_only, NULL, err,
						 sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "EXTERNAL needs a TLS client "
				     "certificate (tls_cert_file)"));
}
END_TEST

START_TEST(credential_kinds)
{
	ck_assert_int_eq(sasl_mechanism_credential("SCRAM-SHA-256"),
			 SASL_CRED_PASSWORD);
	ck_assert_int_eq(sasl_mechanism_credential("gssapi"), SASL_CRED_TICKET);
	ck_assert_int_eq(sasl_mechanism_credential("EXTERNAL"), SASL_CRED_CERT);
	ck_assert_int_eq(sasl_mechanism_credential("XOAUTH2"), SASL_CRED_TOKEN);
	ck_assert(sasl_mechanism_sends_first("OAUTHBEARER"));
	ck_assert(!sasl_mechanism_sends_first("LOGIN"));
}
END_TEST

START_TEST(oauth2_messages)
{
	char *x = sasl_xoauth2_message("a@example.org", "ya29.tok");
	char *o = sasl_oauthbearer_message("a,b=c@example.org", "smtp.example",
					   587, "tok");
	ck_assert_str_eq(x, "user=a@example.org\001auth=Bearer ya29.tok\001\001");
	/* RFC 7628 3.1: ',' and '=' in the authzid are escaped. */
	ck_assert_str_eq(o, "n,a=a=2Cb=3Dc@example.org,\001host=smtp.example"
			 "\001port=587\001auth=Bearer tok\001\001");
	free_secret(x);
	free_secret(o);
}
END_TEST

/* Runs the client side of a mechanism against canned server input. */
static char *decode(const char *b64)
{
	char *raw = NULL;
	size_t len = 0;
	ck_assert_int_eq(gsasl_base64_from(b64, strlen(b64), &raw, &len),
			 GSASL_OK);
	char *copy = xstrndup(raw, len);
	gsasl_free(raw);
	return copy;
}

START_TEST(oauthbearer_exchange_and_error)
{
	struct sasl_params p = { .user = "u@example.org", .token = "t0k",
				 .service = "smtp", .host = "mx.example",
				 .port = 465 };
	struct sasl_client *c;
	char err[256], *out, *plain;
	ck_assert_int_eq(sasl_client_new("OAUTHBEARER", &p, &c, err, sizeof err), 0);
	ck_assert_int_eq(sasl_client_step(c, NULL, &out, err, sizeof err), 0);
	plain = decode(out);
	ck_assert_str_eq(plain, "n,a=u@example.org,\001host=mx.example\001"
			 "port=465\001auth=Bearer t0k\001\001");
	free(plain);
	free_secret(out);
	ck_assert_ptr_null(sasl_client_server_error(c));
	/* {"status":"invalid_token","scope":"mail"} */
	ck_assert_int_eq(sasl_client_step(c, "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJtYWlsIn0=",
					  &out, err, sizeof err), 0);
	ck_assert_str_eq(out, "AQ==");  /* %x01, RFC 7628 3.2.3 */
	free_secret(out);
	ck_assert_str_eq(sasl_client_server_error(c),
			 "{\"status\":\"invalid_token\",\"scope\":\"mail\"}");
	sasl_client_free(c);
}
END_TEST

START_TEST(xoauth2_error_answer_is_empty)
{
	struct sasl_params p = { .user = "u", .token = "t", .service = "smtp",
				 .host = "h", .port = 587 };
	struct sasl_client *c;
	char err[256], *out;
	ck_assert_int_eq(sasl_client_new("XOAUTH2", &p, &c, err, sizeof err), 0);
	ck_assert_int_eq(sasl_client_step(c, NULL, &out, err, sizeof err), 0);
	free_secret(out);
	/* not JSON: shown as it came, made visible */
	ck_assert_int_eq(sasl_client_step(c, "bm8KanNvbg==", &out, err, sizeof err), 0);
	ck_assert_str_eq(out, "");
	free_secret(out);
	ck_assert_str_eq(sasl_client_server_error(c), "no\\njson");
	sasl_client_free(c);
}
END_TEST

START_TEST(bad_tokens_refused_locally)
{
	struct sasl_params p = { .user = "u", .service = "smtp", .host = "h",
				 .port = 587 };
	struct sasl_client *c;
	char err[256];
	ck_assert_int_eq(sasl_client_new("XOAUTH2", &p, &c, err, sizeof err), -1);
	ck_assert_str_eq(err, "XOAUTH2 needs an OAuth2 access token");
	p.token = "two words";
	ck_assert_int_eq(sasl_client_new("XOAUTH2", &p, &c, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "characters a bearer token cannot have"));
	p.token = "ok";
	p.user = "evil\001user";
	ck_assert_int_eq(sasl_client_new("OAUTHBEARER", &p, &c, err, sizeof err), -1);
	ck_assert_str_eq(err, "the user name contains a control character");
}
END_TEST

static Suite *sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *t = tcase_create("choice");
	tcase_add_test(t, strongest_password_mechanism_first);
	tcase_add_test(t, without_tls_only_scram_and_the_md5s);
	tcase_add_test(t, credentials_decide);
	tcase_add_test(t, skip_list_moves_on);
	tcase_add_test(t, errors_name_the_problem);
	tcase_add_test(t, credential_kinds);
	suite_add_tcase(s, t);
	t = tcase_create("oauth2");
	tcase_add_test(t, oauth2_messages);
	tcase_add_test(t, oauthbearer_exchange_and_error);
	tcase_add_test(t, xoauth2_error_answer_is_empty);
	tcase_add_test(t, bad_tokens_refused_locally);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return run_suite(sasl_suite());
}
