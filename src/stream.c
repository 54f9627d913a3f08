#include "autoconf.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deadline.h"
#include "util.h"

/* Reads fill this much at a time; writes go out once this much is queued,
 * in TLS records of the maximum size (RFC 8446 5.1: 2^14). */
#define STREAM_IN_SIZE  (16 * 1024)
#define STREAM_OUT_SIZE (64 * 1024)

struct stream {
	int fd;
	struct tls_session *tls;
	char in[STREAM_IN_SIZE];
	size_t in_start, in_end;
	char *out;
	size_t out_len;
	uint64_t bytes_sent, write_calls;
};

struct stream *stream_new(int fd)
{
	struct stream *s = xcalloc(1, sizeof *s);
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	s->fd = fd;
	s->out = xmalloc(STREAM_OUT_SIZE);
	return s;
}

void stream_free(struct stream *s)
{
	if (!s)
		return;
	if (s->tls) {
		tls_bye(s->tls);
		tls_session_free(s->tls);
	}
	if (s->fd >= 0)
		close(s->fd);
	free(s->out);
	free(s);
}

static enum io_status fail(struct io_error *err, enum io_status st,
			   const char *what)
{
	err->status = st;
	if (what)
		format_into(err->detail, sizeof err->detail, "%s", what);
	else
		err->detail[0] = '\0';
	return st;
}

static enum io_status wait_fd(struct stream *s, short events, int64_t deadline,
			      struct io_error *err)
{
	struct pollfd p = { .fd = s->fd, .events = events };
#ifdef TCP_QUICKACK
	if (events & POLLIN) {
		/* Acknowledge what arrives at once instead of after the delayed
		 * ACK timer (40 ms or more): a server with Nagle on holds its
		 * next reply until its last segment is acknowledged, and a TLS
		 * 1.3 server's session ticket, sent just before the greeting or
		 * the EHLO reply, would otherwise cost a round trip plus that
		 * timer. The kernel falls back to delayed ACKs by itself,
		 * hence before every wait. Fails harmlessly on a non-TCP fd. */
		int one = 1;
		(void)setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
	}
#endif
	for (;;) {
		int ms = deadline_left(deadline);
		int n;
		if (ms == 0)
			return fail(err, IO_TIMEOUT, "timed out");
		n = poll(&p, 1, ms);
		if (n > 0)
			return IO_OK;
		if (n == 0)
			return fail(err, IO_TIMEOUT, "timed out");
		if (errno != EINTR)
			return fail(err, IO_ERROR, strerror(errno));
	}
}

/* One read into the input buffer: > 0 bytes, or a failure status. */
static enum io_status fill(struct stream *s, int64_t deadline,
			   struct io_error *err)
{
	if (s->in_start > 0) {
		memmove(s->in, s->in + s->in_start, s->in_end - s->in_start);
		s->in_end -= s->in_start;
		s->in_start = 0;
	}
	for (;;) {
		size_t room = sizeof s->in - s->in_end;
		long n;
		short want = POLLIN;
		if (s->tls) {
			n = tls_recv(s->tls, s->in + s->in_end, room, err->detail,
				     sizeof err->detail);
			if (n == TLS_AGAIN_WRITE)
				want = POLLOUT;
			else if (n == TLS_IO_ERROR)
				return err->status = IO_ERROR;
			if (n < 0)
				n = -2;
		} else {
			n = recv(s->fd, s->in + s->in_end, room, 0);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return fail(err, errno == ECONNRESET ? IO_CLOSED : IO_ERROR,
					    strerror(errno));
			if (n < 0)
				n = -2;
		}
		if (n == 0)
			return fail(err, IO_CLOSED, "the server closed the connection");
		if (n > 0) {
			s->in_end += (size_t)n;
			return IO_OK;
		}
		if (wait_fd(s, want, deadline, err) != IO_OK)
			return err->status;
	}
}

enum io_status stream_read_line(struct stream *s, char *buf, size_t cap,
				size_t *len, bool *bare_lf, int64_t deadline,
				struct io_error *err)
{
	size_t scanned = 0;
	for (;;) {
		char *start = s->in + s->in_start;
		size_t avail = s->in_end - s->in_start;
		char *nl = memchr(start + scanned, '\n', avail - scanned);
		if (nl) {
			size_t n = (size_t)(nl - start);
			*bare_lf = !(n > 0 && start[n - 1] == '\r');
			if (!*bare_lf)
				n--;
			if (n + 1 > cap)
				return fail(err, IO_TOO_LONG, "reply line too long");
			memcpy(buf, start, n);
			buf[n] = '\0';
			*len = n;
			s->in_start += (size_t)(nl - start) + 1;
			return IO_OK;
		}
		scanned = avail;
		if (avail >= cap || avail == sizeof s->in)
			return fail(err, IO_TOO_LONG, "reply line too long");
		if (fill(s, deadline, err) != IO_OK)
			return err->status;
		scanned = 0;
	}
}

static enum io_status send_some(struct stream *s, const char *p, size_t len,
				size_t *sent, int64_t deadline,
				struct io_error *err)
{
	for (;;) {
		long n;
		short want = POLLOUT;
		s->write_calls++;
		if (s->tls) {
			/* One TLS record holds at most 2^14 bytes (RFC 8446 5.1). */
			n = tls_send(s->tls, p, len > 16384 ? 16384 : len,
				     err->detail, sizeof err->detail);
			if (n == TLS_AGAIN_READ)
				want = POLLIN;
			else if (n == TLS_IO_ERROR)
				return err->status = IO_ERROR;
		} else {
			n = send(s->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return fail(err, (errno == EPIPE || errno == ECONNRESET)
						      ? IO_CLOSED : IO_ERROR,
					    strerror(errno));
		}
		if (n > 0) {
			*sent = (size_t)n;
			return IO_OK;
		}
		if (wait_fd(s, want, deadline, err) != IO_OK)
			return err->status;
	}
}

enum io_status stream_flush(struct stream *s, int64_t deadline,
			    struct io_error *err)
{
	size_t off = 0;
	while (off < s->out_len) {
		size_t n = 0;
		if (send_some(s, s->out + off, s->out_len - off, &n, deadline,
			      err) != IO_OK)
			return err->status;
		off += n;
		s->bytes_sent += n;
	}
	s->out_len = 0;
	return IO_OK;
}

enum io_status stream_write(struct stream *s, const void *data, size_t len,
			    int64_t deadline, struct io_error *err)
{
	const char *p = data;
	while (len > 0) {
		size_t room = STREAM_OUT_SIZE - s->out_len;
		size_t n = len < room ? len : room;
		memcpy(s->out + s->out_len, p, n);
		s->out_len += n;
		p += n;
		len -= n;
		if (s->out_len == STREAM_OUT_SIZE &&
		    stream_flush(s, deadline, err) != IO_OK)
			return err->status;
	}
	return IO_OK;
}

size_t stream_pending_input(const struct stream *s)
{
	return s->in_end - s->in_start;
}

enum io_status stream_start_tls(struct stream *s, const struct tls_options *opt,
				int64_t deadline, struct tls_failure *tls_err,
				struct io_error *err)
{
	struct tls_session *t = tls_session_new(s->fd, opt, tls_err);
	if (!t)
		return fail(err, IO_ERROR, tls_err->detail);
	for (;;) {
		int r = tls_handshake_step(t, tls_err);
		if (r == 0)
			break;
		if (r < 0) {
			tls_session_free(t);
			return fail(err, IO_ERROR, tls_err->detail);
		}
		if (wait_fd(s, r == 1 ? POLLIN : POLLOUT, deadline, err) != IO_OK) {
			tls_session_free(t);
			tls_err->kind = TLS_FAIL_HANDSHAKE;
			format_into(tls_err->detail, sizeof tls_err->detail,
				    "TLS handshake: %s", err->detail);
			return err->status;
		}
	}
	if (tls_check_pin(t, tls_err) < 0) {
		tls_session_free(t);
		return fail(err, IO_ERROR, tls_err->detail);
	}
	s->tls = t;
	return IO_OK;
}

bool stream_is_tls(const struct stream *s)
{
	return s->tls != NULL;
}

struct tls_session *stream_tls(const struct stream *s)
{
	return s->tls;
}

uint64_t stream_bytes_sent(const struct stream *s)
{
	return s->bytes_sent;
}

uint64_t stream_write_calls(const struct stream *s)
{
	return s->write_calls;
}
