#include "autoconf.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* TLS 1.0 and 1.1 are off (RFC 8996); 1.2 is the minimum. */
#define TLS_DEFAULT_PRIORITIES \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define SHA256_LEN 32

struct tls_session {
	gnutls_session_t session;
	gnutls_certificate_credentials_t cred;
	char *host;
	char *fingerprint;
	bool verify;
	bool report_only;
};

const char *tls_library_version(void)
{
	return gnutls_check_version(NULL);
}

static void set_failure(struct tls_failure *err, enum tls_failure_kind kind,
			const char *what, int code)
{
	err->kind = kind;
	format_into(err->detail, sizeof err->detail, "%s: %s", what,
		    gnutls_strerror(code));
}

static int load_credentials(struct tls_session *t, const struct tls_options *opt,
			    struct tls_failure *err)
{
	int ret = gnutls_certificate_allocate_credentials(&t->cred);
	if (ret < 0) {
		set_failure(err, TLS_FAIL_SETUP, "allocating TLS credentials", ret);
		return -1;
	}
	if ((opt->certcheck || opt->report_only) && !opt->fingerprint) {
		/* The trust store is loaded only when a handshake needs it. */
		if (opt->trust_file)
			ret = gnutls_certificate_set_x509_trust_file(
				t->cred, opt->trust_file, GNUTLS_X509_FMT_PEM);
		else
			ret = gnutls_certificate_set_x509_system_trust(t->cred);
		if (ret <= 0) {
			err->kind = TLS_FAIL_SETUP;
			format_into(err->detail, sizeof err->detail,
				    "no trusted certificates could be loaded from %s%s%s",
				    opt->trust_file ? opt->trust_file : "the system trust store",
				    ret < 0 ? ": " : "",
				    ret < 0 ? gnutls_strerror(ret) : "");
			return -1;
		}
	}
	if (opt->cert_file) {
		ret = gnutls_certificate_set_x509_key_file(
			t->cred, opt->cert_file,
			opt->key_file ? opt->key_file : opt->cert_file,
			GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			err->kind = TLS_FAIL_SETUP;
			format_into(err->detail, sizeof err->detail,
				    "loading client certificate %s: %s",
				    opt->cert_file, gnutls_strerror(ret));
			return -1;
		}
	}
	return 0;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

static int setup_session(struct tls_session *t, int fd,
			 const struct tls_options *opt, struct tls_failure *err)
{
	const char *errpos = NULL;
	const char *prio = opt->priorities ? opt->priorities : TLS_DEFAULT_PRIORITIES;
	/* No session tickets: every run is a new process that could never
	 * resume, and without the ticket extensions in the ClientHello a
	 * server that follows RFC 8446 4.2.9 sends no NewSessionTicket
	 * either, which would otherwise go out just before its greeting or
	 * EHLO reply and, with Nagle on the server, hold that reply back. */
	int ret = gnutls_init(&t->session,
			      GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS);
	if (ret < 0) {
		set_failure(err, TLS_FAIL_SETUP, "starting a TLS session", ret);
		return -1;
	}
	ret = gnutls_priority_set_direct(t->session, prio, &errpos);
	if (ret < 0) {
		err->kind = TLS_FAIL_SETUP;
		format_into(err->detail, sizeof err->detail,
			    "TLS priority string \"%s\" is invalid near \"%s\"",
			    prio, errpos ? errpos : "");
		return -1;
	}
	gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, t->cred);
	/* RFC 6066 3: SNI carries host names only, never address literals. */
	if (!is_ip_literal(opt->host))
		gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, opt->host,
				       strlen(opt->host));
	if (t->verify)
		gnutls_session_set_verify_cert(t->session, opt->host, 0);
	if (opt->min_dh_prime_bits > 0)
		gnutls_dh_set_prime_bits(t->session,
					 (unsigned)opt->min_dh_prime_bits);
	gnutls_transport_set_int(t->session, fd);
	return 0;
}

struct tls_session *tls_session_new(int fd, const struct tls_options *opt,
				    struct tls_failure *err)
{
	struct tls_session *t = xcalloc(1, sizeof *t);
	t->host = xstrdup(opt->host);
	t->fingerprint = opt->fingerprint ? xstrdup(opt->fingerprint) : NULL;
	t->verify = opt->certcheck && !opt->fingerprint && !opt->report_only;
	t->report_only = opt->report_only;
	err->kind = TLS_FAIL_NONE;
	err->detail[0] = '\0';
	if (load_credentials(t, opt, err) < 0 ||
	    setup_session(t, fd, opt, err) < 0) {
		tls_session_free(t);
		return NULL;
	}
	return t;
}

static void describe_verify_failure(struct tls_session *t,
				    struct tls_failure *err)
{
	gnutls_datum_t out = { NULL, 0 };
	unsigned status = gnutls_session_get_verify_cert_status(t->session);
	err->kind = TLS_FAIL_VERIFY;
	if (gnutls_certificate_verification_status_print(
		    status, GNUTLS_CRT_X509, &out, 0) == 0) {
		format_into(err->detail, sizeof err->detail,
			    "the server's certificate for %s was not accepted: %s",
			    t->host, (const char *)out.data);
		gnutls_free(out.data);
	} else {
		format_into(err->detail, sizeof err->detail,
			    "the server's certificate for %s was not accepted",
			    t->host);
	}
}

int tls_handshake_step(struct tls_session *t, struct tls_failure *err)
{
	int ret = gnutls_handshake(t->session);
	if (ret == GNUTLS_E_SUCCESS)
		return 0;
	if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
		return gnutls_record_get_direction(t->session) ? 2 : 1;
	if (!gnutls_error_is_fatal(ret))
		return gnutls_record_get_direction(t->session) ? 2 : 1;
	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
		describe_verify_failure(t, err);
	else
		set_failure(err, TLS_FAIL_HANDSHAKE, "TLS handshake failed", ret);
	return -1;
}

static int peer_sha256(struct tls_session *t, unsigned char out[SHA256_LEN])
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->session, &n);
	if (!certs || n == 0)
		return -1;
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, certs[0].data, certs[0].size,
				out) < 0 ? -1 : 0;
}

static void format_fingerprint(const unsigned char *d, char *out)
{
	for (int i = 0; i < SHA256_LEN; i++)
		sprintf(out + 3 * i, "%02X%s", d[i], i + 1 < SHA256_LEN ? ":" : "");
}

int tls_check_pin(struct tls_session *t, struct tls_failure *err)
{
	unsigned char digest[SHA256_LEN];
	char got[3 * SHA256_LEN + 1];
	if (!t->fingerprint || t->report_only)
		return 0;
	if (peer_sha256(t, digest) < 0) {
		err->kind = TLS_FAIL_VERIFY;
		format_into(err->detail, sizeof err->detail,
			    "the server sent no certificate to compare with tls_fingerprint");
		return -1;
	}
	format_fingerprint(digest, got);
	if (ascii_casecmp(got, t->fingerprint) != 0) {
		err->kind = TLS_FAIL_VERIFY;
		format_into(err->detail, sizeof err->detail,
			    "the server's certificate has SHA-256 fingerprint %s, "
			    "not the configured tls_fingerprint %s", got, t->fingerprint);
		return -1;
	}
	return 0;
}

void tls_session_free(struct tls_session *t)
{
	if (!t)
		return;
	if (t->session)
		gnutls_deinit(t->session);
	if (t->cred)
		gnutls_certificate_free_credentials(t->cred);
	free(t->host);
	free(t->fingerprint);
	free(t);
}

static long io_result(struct tls_session *t, ssize_t ret, char *detail,
		      size_t detail_len)
{
	if (ret >= 0)
		return (long)ret;
	if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
		return gnutls_record_get_direction(t->session) ? TLS_AGAIN_WRITE
							       : TLS_AGAIN_READ;
	if (ret == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	format_into(detail, detail_len, "TLS: %s", gnutls_strerror((int)ret));
	return TLS_IO_ERROR;
}

long tls_recv(struct tls_session *t, void *buf, size_t len, char *detail,
	      size_t detail_len)
{
	return io_result(t, gnutls_record_recv(t->session, buf, len), detail,
			 detail_len);
}

long tls_send(struct tls_session *t, const void *buf, size_t len, char *detail,
	      size_t detail_len)
{
	return io_result(t, gnutls_record_send(t->session, buf, len), detail,
			 detail_len);
}

size_t tls_pending(struct tls_session *t)
{
	return gnutls_record_check_pending(t->session);
}

void tls_bye(struct tls_session *t)
{
	/* Best effort close_notify; the socket is non-blocking, so this never
	 * waits for a silent server. */
	(void)gnutls_bye(t->session, GNUTLS_SHUT_WR);
}

void tls_describe(struct tls_session *t, char *buf, size_t size)
{
	char *desc = gnutls_session_get_desc(t->session);
	format_into(buf, size, "%s", desc ? desc : "TLS");
	gnutls_free(desc);
}

char *tls_channel_binding_b64(struct tls_session *t, bool *is_exporter)
{
	gnutls_datum_t cb = { NULL, 0 }, b64 = { NULL, 0 };
	char *out;
	bool tls13 = gnutls_protocol_get_version(t->session) == GNUTLS_TLS1_3;
	/* RFC 9266: tls-unique is undefined for TLS 1.3; use tls-exporter. */
	if (gnutls_session_channel_binding(
		    t->session, tls13 ? GNUTLS_CB_TLS_EXPORTER : GNUTLS_CB_TLS_UNIQUE,
		    &cb) < 0)
		return NULL;
	if (gnutls_base64_encode2(&cb, &b64) < 0) {
		gnutls_free(cb.data);
		return NULL;
	}
	out = xstrndup((const char *)b64.data, b64.size);
	gnutls_free(cb.data);
	gnutls_free(b64.data);
	*is_exporter = tls13;
	return out;
}

static void append(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void append(char **out, const char *fmt, ...)
{
	va_list ap;
	char *piece, *joined;
	va_start(ap, fmt);
	if (vasprintf(&piece, fmt, ap) < 0)
		piece = NULL;
	va_end(ap);
	joined = xasprintf("%s%s", *out ? *out : "", piece ? piece : "");
	free(piece);
	free(*out);
	*out = joined;
}

static void format_time(time_t t, char *buf, size_t size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void report_cert(char **out, const gnutls_datum_t *der, unsigned i)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { NULL, 0 };
	unsigned char digest[SHA256_LEN];
	char fp[3 * SHA256_LEN + 1], from[40], until[40];
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return;
	}
	append(out, "  certificate %u:\n", i);
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		append(out, "    subject:  %s\n", (const char *)dn.data);
		gnutls_free(dn.data);
	}
	if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) == 0) {
		append(out, "    issuer:   %s\n", (const char *)dn.data);
		gnutls_free(dn.data);
	}
	format_time(gnutls_x509_crt_get_activation_time(crt), from, sizeof from);
	format_time(gnutls_x509_crt_get_expiration_time(crt), until, sizeof until);
	append(out, "    valid:    %s to %s\n", from, until);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, digest) == 0) {
		format_fingerprint(digest, fp);
		append(out, "    SHA-256:  %s\n", fp);
	}
	gnutls_x509_crt_deinit(crt);
}

static void report_verification(char **out, struct tls_session *t,
				const char *host)
{
	unsigned status = 0;
	gnutls_datum_t text = { NULL, 0 };
	if (t->fingerprint) {
		struct tls_failure f = { TLS_FAIL_NONE, "" };
		bool was = t->report_only;
		t->report_only = false;
		append(out, "  pinned fingerprint: %s\n",
		       tls_check_pin(t, &f) == 0 ? "matches" : f.detail);
		t->report_only = was;
		return;
	}
	if (gnutls_certificate_verify_peers3(t->session, host, &status) < 0) {
		append(out, "  verification: not possible\n");
		return;
	}
	if (status == 0) {
		append(out, "  verification: OK for %s\n", host);
		return;
	}
	gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
						     &text, 0);
	append(out, "  verification: FAILED for %s: %s\n", host,
	       text.data ? (const char *)text.data : "");
	gnutls_free(text.data);
}

char *tls_peer_report(struct tls_session *t, const char *host)
{
	char *out = NULL, desc[256];
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->session, &n);
	tls_describe(t, desc, sizeof desc);
	append(&out, "  protocol: %s\n", desc);
	for (unsigned i = 0; certs && i < n; i++)
		report_cert(&out, &certs[i], i);
	report_verification(&out, t, host);
	return out;
}
