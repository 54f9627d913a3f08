/* tls: GnuTLS client sessions: credentials, priorities, certificate and
 * host name verification (or a SHA-256 pin), and session facts. */
#ifndef POSTBOTE_TLS_H
#define POSTBOTE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_options {
	const char *host;          /* name to verify and to send as SNI */
	const char *trust_file;    /* NULL: the system trust store */
	const char *fingerprint;   /* "AA:BB:..." SHA-256 pin, or NULL */
	const char *cert_file;     /* client certificate, or NULL */
	const char *key_file;
	const char *priorities;    /* NULL: TLS 1.2 and 1.3, GnuTLS NORMAL */
	int min_dh_prime_bits;     /* 0: GnuTLS default */
	bool certcheck;            /* false: no verification at all */
	bool report_only;          /* --serverinfo: load the trust store and
				    * finish the handshake whatever the
				    * certificate; tls_peer_report says */
};

enum tls_failure_kind {
	TLS_FAIL_NONE = 0,
	TLS_FAIL_SETUP,            /* credentials, trust file, priorities */
	TLS_FAIL_HANDSHAKE,        /* protocol failure during the handshake */
	TLS_FAIL_VERIFY,           /* the certificate was not accepted */
};

struct tls_failure {
	enum tls_failure_kind kind;
	char detail[512];
};

struct tls_session;

/* Create a client session on fd (non-blocking). */
struct tls_session *tls_session_new(int fd, const struct tls_options *opt,
				    struct tls_failure *err);
/* One handshake step: 0 done, 1 wants to read, 2 wants to write, -1 failed
 * (err filled in). */
int tls_handshake_step(struct tls_session *t, struct tls_failure *err);
/* After the handshake: verify the SHA-256 pin when one is configured. */
int tls_check_pin(struct tls_session *t, struct tls_failure *err);
void tls_session_free(struct tls_session *t);

/* Record I/O: > 0 bytes, 0 peer closed, TLS_AGAIN_READ / TLS_AGAIN_WRITE
 * to wait, or TLS_IO_ERROR (detail filled in). */
#define TLS_AGAIN_READ  (-2)
#define TLS_AGAIN_WRITE (-3)
#define TLS_IO_ERROR    (-1)
long tls_recv(struct tls_session *t, void *buf, size_t len, char *detail,
	      size_t detail_len);
long tls_send(struct tls_session *t, const void *buf, size_t len,
	      char *detail, size_t detail_len);
/* Bytes decrypted and buffered inside GnuTLS. */
size_t tls_pending(struct tls_session *t);
void tls_bye(struct tls_session *t);

/* "TLS1.3 / ECDHE-X25519 / AES-256-GCM" style description. */
void tls_describe(struct tls_session *t, char *buf, size_t size);

/* Channel binding data (RFC 5929 tls-unique for TLS 1.2, RFC 9266
 * tls-exporter for TLS 1.3); base64 in a new string, or NULL. */
char *tls_channel_binding_b64(struct tls_session *t, bool *is_exporter);

/* Several lines for --serverinfo: protocol and cipher, each certificate
 * of the chain (subject, issuer, validity, SHA-256 fingerprint) and
 * whether it verified for host (or matches the pin). New string. */
char *tls_peer_report(struct tls_session *t, const char *host);

/* Versions for --version. */
const char *tls_library_version(void);

#endif
