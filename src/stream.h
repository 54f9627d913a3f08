/* stream: buffered line I/O over a socket, plain or TLS, with deadlines.
 *
 * The SMTP layer reads lines and writes bytes through this interface and
 * does not know whether the connection is encrypted, except through
 * stream_is_tls(). Every blocking operation waits at most until its
 * deadline (a monotonic time from deadline.h; 0 = no limit). */
#ifndef POSTBOTE_STREAM_H
#define POSTBOTE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls.h"

enum io_status {
	IO_OK = 0,
	IO_TIMEOUT,     /* deadline passed */
	IO_CLOSED,      /* the peer closed the connection */
	IO_ERROR,       /* system or TLS error, see detail */
	IO_TOO_LONG,    /* a line longer than the caller's buffer */
};

struct io_error {
	enum io_status status;
	char detail[256];
};

struct stream;

/* Wrap a connected socket (the stream owns it from now on). */
struct stream *stream_new(int fd);
/* Close the connection (TLS close_notify is sent when possible, without
 * waiting for the peer) and free everything. */
void stream_free(struct stream *s);

/* Read one line, without its line end (CRLF or a bare LF), into buf
 * (NUL-terminated). *bare_lf tells whether the line ended in LF alone.
 * Returns IO_OK or a failure (err filled in). */
enum io_status stream_read_line(struct stream *s, char *buf, size_t cap,
				size_t *len, bool *bare_lf, int64_t deadline,
				struct io_error *err);

/* Queue bytes for sending; sends when the buffer fills. */
enum io_status stream_write(struct stream *s, const void *data, size_t len,
			    int64_t deadline, struct io_error *err);
/* Send everything queued. */
enum io_status stream_flush(struct stream *s, int64_t deadline,
			    struct io_error *err);

/* Bytes already received but not yet read as lines. */
size_t stream_pending_input(const struct stream *s);

/* Run the TLS handshake on this connection (STARTTLS or implicit TLS).
 * Nothing may be queued in either direction. */
enum io_status stream_start_tls(struct stream *s, const struct tls_options *opt,
				int64_t deadline, struct tls_failure *tls_err,
				struct io_error *err);

bool stream_is_tls(const struct stream *s);
/* The TLS session, or NULL before TLS (for channel binding and -v). */
struct tls_session *stream_tls(const struct stream *s);

/* Counters for -v and the benchmark. */
uint64_t stream_bytes_sent(const struct stream *s);
uint64_t stream_write_calls(const struct stream *s);

#endif
