#include "autoconf.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message.h"
#include "util.h"

/* ---- helpers: feeding input, reading the spool, capturing output ---- */

struct feeder {
	int fd;
	const char *data;
	size_t len;
	size_t chunk;         /* bytes per write(2); 0: all at once */
	useconds_t pause_us;  /* sleep before the first write */
};

static void *feeder_run(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0;

	if (f->pause_us)
		usleep(f->pause_us);
	while (off < f->len) {
		size_t n = f->len - off;
		if (f->chunk && n > f->chunk)
			n = f->chunk;
		ssize_t w = write(f->fd, f->data + off, n);
		if (w < 0)
			break;	/* EPIPE: the reader stopped early (lone dot) */
		off += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

/* Spools data through a pipe written by a thread, so any size works and
 * the reader sees the arbitrary read boundaries a pipe gives. */
static int spool_pipe(const char *data, size_t len, size_t chunk, bool dot,
		      struct message *m, char *err, size_t errlen)
{
	int p[2];
	pthread_t t;
	struct feeder f = { .data = data, .len = len, .chunk = chunk };
	struct spool_options o = { .dot_ends_input = dot };
	int rc;

	ck_assert_int_eq(pipe(p), 0);
	f.fd = p[1];
	ck_assert_int_eq(pthread_create(&t, NULL, feeder_run, &f), 0);
	rc = message_spool(p[0], &o, m, err, errlen);
	close(p[0]);
	pthread_join(t, NULL);
	return rc;
}

/* Spools data from a regular file: reads then return exactly 64 KiB
 * blocks, which puts chosen bytes at a read-block boundary. */
static int spool_file(const char *data, size_t len, bool dot,
		      struct message *m, char *err, size_t errlen)
{
	char path[] = "/tmp/test_message.XXXXXX";
	int fd = mkstemp(path);
	struct spool_options o = { .dot_ends_input = dot };
	int rc;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	rc = message_spool(fd, &o, m, err, errlen);
	close(fd);
	return rc;
}

static char *spool_contents(const struct message *m)
{
	char *buf = xmalloc((size_t)m->size + 1);
	ck_assert_int_eq(pread(m->fd, buf, (size_t)m->size, 0), m->size);
	buf[m->size] = '\0';
	return buf;
}

static void assert_bytes(const char *got, size_t gotlen, const char *want,
			 size_t wantlen)
{
	ck_assert_uint_eq(gotlen, wantlen);
	ck_assert_msg(wantlen == 0 || memcmp(got, want, wantlen) == 0,
		      "bytes differ");
}

static void spool_str(const char *in, bool dot, struct message *m)
{
	char err[256] = "";
	int rc = spool_pipe(in, strlen(in), 0, dot, m, err, sizeof err);
	ck_assert_msg(rc == 0, "message_spool failed: %s", err);
}

static void assert_spooled(const char *in, size_t inlen, bool dot,
			   const char *want, size_t wantlen)
{
	struct message m;
	char err[256] = "";
	char *got;

	ck_assert_msg(spool_pipe(in, inlen, 0, dot, &m, err, sizeof err) == 0,
		      "%s", err);
	got = spool_contents(&m);
	assert_bytes(got, (size_t)m.size, want, wantlen);
	free(got);
	message_free(&m);
}

#define ASSERT_SPOOLED(in, dot, want) \
	assert_spooled(in, sizeof(in) - 1, dot, want, sizeof(want) - 1)

struct capture {
	char *data;
	size_t len;
	size_t cap;
	size_t blocks[4096];
	size_t nblocks;
	int fail_with;        /* returned by the sink when non-zero */
};

static int capture_sink(void *ctx, const void *data, size_t len)
{
	struct capture *c = ctx;

	if (c->fail_with)
		return c->fail_with;
	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2;
		c->data = xrealloc(c->data, c->cap);
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
	ck_assert_uint_lt(c->nblocks, 4096);
	c->blocks[c->nblocks++] = len;
	return 0;
}

static struct capture *emit_capture(const struct message *m,
				    const struct emit_options *o)
{
	struct capture *c = xcalloc(1, sizeof *c);
	ck_assert_int_eq(message_emit(m, o, capture_sink, c), 0);
	return c;
}

static void capture_free(struct capture *c)
{
	free(c->data);
	free(c);
}

/* Reference dot-stuffing, written plainly to check the streaming one. */
static char *reference_stuff(const char *in, size_t len, size_t *outlen)
{
	char *out = xmalloc(2 * len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
			out[o++] = '.';
		out[o++] = in[i];
	}
	*outlen = o;
	return out;
}

/* ---- line-end normalisation ---- */

START_TEST(test_lf_becomes_crlf)
{
	ASSERT_SPOOLED("a\nbc\n\nd\n", false, "a\r\nbc\r\n\r\nd\r\n");
}
END_TEST

START_TEST(test_crlf_stays)
{
	ASSERT_SPOOLED("a\r\nbc\r\n\r\nd\r\n", false, "a\r\nbc\r\n\r\nd\r\n");
}
END_TEST

START_TEST(test_lone_cr_becomes_crlf)
{
	ASSERT_SPOOLED("a\rb\r", false, "a\r\nb\r\n");
	ASSERT_SPOOLED("\r\r", false, "\r\n\r\n");
}
END_TEST

START_TEST(test_mixed_line_ends)
{
	ASSERT_SPOOLED("a\r\nb\nc\rd\r\r\ne\n\r", false,
		       "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n\r\n");
	ASSERT_SPOOLED("\n\r\n\r", false, "\r\n\r\n\r\n");
}
END_TEST

START_TEST(test_missing_final_newline)
{
	ASSERT_SPOOLED("Subject: x\n\nno newline", false,
		       "Subject: x\r\n\r\nno newline\r\n");
	ASSERT_SPOOLED("x", false, "x\r\n");
}
END_TEST

START_TEST(test_empty_input)
{
	struct message m;
	spool_str("", false, &m);
	ck_assert_int_eq(m.size, 0);
	ck_assert_int_eq(m.header_end, 0);
	ck_assert_uint_eq(m.nheaders, 0);
	ck_assert_uint_eq(m.longest_line, 0);
	ck_assert(!m.eight_bit && !m.has_nul && !m.dropped_mbox_from);
	message_free(&m);
}
END_TEST

/* A CR as the last byte of one 64 KiB read, its LF (or not) the first of
 * the next: from a regular file the read boundaries are exact. */
static void check_cr_at_block_end(const char *after, const char *want_after)
{
	size_t pre = 65535, alen = strlen(after), wlen = strlen(want_after);
	char *in = xmalloc(pre + 1 + alen), *want = xmalloc(pre + 2 + wlen);
	struct message m;
	char err[256] = "", *got;

	memset(in, 'x', pre);
	in[pre] = '\r';
	memcpy(in + pre + 1, after, alen);
	memset(want, 'x', pre);
	memcpy(want + pre, "\r\n", 2);
	memcpy(want + pre + 2, want_after, wlen);
	ck_assert_msg(spool_file(in, pre + 1 + alen, false, &m, err,
				 sizeof err) == 0, "%s", err);
	got = spool_contents(&m);
	assert_bytes(got, (size_t)m.size, want, pre + 2 + wlen);
	ck_assert_uint_eq(m.longest_line, pre);
	free(got);
	free(in);
	free(want);
	message_free(&m);
}

START_TEST(test_cr_at_read_boundary)
{
	check_cr_at_block_end("\ny\n", "y\r\n");
	check_cr_at_block_end("y\n", "y\r\n");
	check_cr_at_block_end("\r\n", "\r\n");
	check_cr_at_block_end("", "");
	check_cr_at_block_end("\n", "");
}
END_TEST

/* The same through a pipe: the first read returns what was written before
 * the reader started, ending in the CR; the LF comes later. */
START_TEST(test_cr_at_pipe_read_boundary)
{
	static const char second[] = "\nnext\n";
	int p[2];
	pthread_t t;
	struct feeder f = { .data = second, .len = sizeof second - 1,
			    .pause_us = 200000 };
	struct message m;
	char err[256] = "", *got;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "first\r", 6), 6);
	f.fd = p[1];
	ck_assert_int_eq(pthread_create(&t, NULL, feeder_run, &f), 0);
	ck_assert_msg(message_spool(p[0], NULL, &m, err, sizeof err) == 0,
		      "%s", err);
	pthread_join(t, NULL);
	close(p[0]);
	got = spool_contents(&m);
	assert_bytes(got, (size_t)m.size, "first\r\nnext\r\n", 13);
	free(got);
	message_free(&m);
}
END_TEST

/* ---- a lone dot (sendmail without -i) ---- */

START_TEST(test_dot_ends_input)
{
	ASSERT_SPOOLED("a\n.\nb\n", true, "a\r\n");
	ASSERT_SPOOLED("a\r\n.\r\nb\r\n", true, "a\r\n");
	ASSERT_SPOOLED("a\n.", true, "a\r\n");
	ASSERT_SPOOLED(".\nrest\n", true, "");
	ASSERT_SPOOLED("a\n.\rb\n", true, "a\r\n");
}
END_TEST

START_TEST(test_dot_kept_without_option)
{
	ASSERT_SPOOLED("a\n.\nb\n", false, "a\r\n.\r\nb\r\n");
	ASSERT_SPOOLED("a\n.", false, "a\r\n.\r\n");
}
END_TEST

START_TEST(test_dot_not_alone)
{
	ASSERT_SPOOLED("a\n..\n. \n.x\nb.\n", true,
		       "a\r\n..\r\n. \r\n.x\r\nb.\r\n");
}
END_TEST

/* Input after the dot is not read: the writer may still have lots. */
START_TEST(test_dot_stops_reading)
{
	size_t big = 1024 * 1024;
	char *in = xmalloc(big);
	struct message m;
	char err[256] = "", *got;

	memset(in, 'z', big);
	memcpy(in, "Subject: s\n\nbody\n.\n", 19);
	ck_assert_msg(spool_pipe(in, big, 4096, true, &m, err, sizeof err) == 0,
		      "%s", err);
	got = spool_contents(&m);
	assert_bytes(got, (size_t)m.size, "Subject: s\r\n\r\nbody\r\n", 20);
	free(got);
	free(in);
	message_free(&m);
}
END_TEST

/* ---- mbox From_ line ---- */

START_TEST(test_mbox_from_dropped)
{
	struct message m;
	char *got;

	spool_str("From joe@example.org Mon Jan  1 00:00:00 2024\n"
		  "Subject: hi\n\nbody\n", false, &m);
	ck_assert(m.dropped_mbox_from);
	got = spool_contents(&m);
	ck_assert_str_eq(got, "Subject: hi\r\n\r\nbody\r\n");
	ck_assert_uint_eq(m.nheaders, 1);
	ck_assert_str_eq(m.headers[0].name, "Subject");
	ck_assert_int_eq(m.headers[0].offset, 0);
	ck_assert_uint_eq(m.longest_line, 11);
	free(got);
	message_free(&m);
}
END_TEST

START_TEST(test_mbox_from_only_first_line)
{
	struct message m;

	spool_str("Subject: a\nFrom b\n\n", false, &m);
	ck_assert(!m.dropped_mbox_from);
	ck_assert_int_eq(m.size, 22);
	message_free(&m);
	ASSERT_SPOOLED("From x\nFrom y\n", false, "From y\r\n");
	ASSERT_SPOOLED("From \n", false, "");
	ASSERT_SPOOLED("From", false, "From\r\n");
	ASSERT_SPOOLED("Frobnicate\n", false, "Frobnicate\r\n");
	ASSERT_SPOOLED("From x", false, "");
	ASSERT_SPOOLED(".From x\n", true, ".From x\r\n");
}
END_TEST

START_TEST(test_from_field_not_mbox)
{
	struct message m;

	spool_str("From: a@b.example\n\n", false, &m);
	ck_assert(!m.dropped_mbox_from);
	ck_assert_uint_eq(m.nheaders, 1);
	ck_assert_str_eq(m.headers[0].value, "a@b.example");
	message_free(&m);

	/* RFC 5322 4.5: obsolete WSP before the colon */
	spool_str("From \t : a@b.example\nTo: c@d.example\n\n", false, &m);
	ck_assert(!m.dropped_mbox_from);
	ck_assert_uint_eq(m.nheaders, 2);
	ck_assert_str_eq(m.headers[0].name, "From");
	ck_assert_str_eq(m.headers[0].value, "a@b.example");
	ck_assert_int_eq(m.size, 41);
	message_free(&m);
}
END_TEST

/* ---- statistics ---- */

START_TEST(test_eight_bit_and_nul)
{
	struct message m;
	char err[256] = "";

	spool_str("Subject: plain\n\nascii only ~\x7f\n", false, &m);
	ck_assert(!m.eight_bit && !m.has_nul);
	message_free(&m);
	spool_str("Subject: x\n\nGr\xc3\xbc\xc3\x9f" "e\n", false, &m);
	ck_assert(m.eight_bit && !m.has_nul);
	message_free(&m);
	ck_assert(spool_pipe("a\0b\n", 4, 0, false, &m, err, sizeof err) == 0);
	ck_assert(!m.eight_bit && m.has_nul);
	ck_assert_int_eq(m.size, 5);
	message_free(&m);
	/* the dropped From_ line is not part of the message */
	spool_str("From \xff\n\nx\n", false, &m);
	ck_assert(m.dropped_mbox_from && !m.eight_bit);
	message_free(&m);
}
END_TEST

START_TEST(test_longest_line)
{
	struct message m;
	char *in = xmalloc(3000);

	spool_str("abc\r\n0123456789\nxyzde\n", false, &m);
	ck_assert_uint_eq(m.longest_line, 10);
	message_free(&m);
	spool_str("ab\n0123456789abc", false, &m);
	ck_assert_uint_eq(m.longest_line, 13);
	message_free(&m);
	memset(in, 'q', 2999);
	in[2999] = '\0';
	in[500] = '\r';
	spool_str(in, false, &m);
	ck_assert_uint_eq(m.longest_line, 2498);
	free(in);
	message_free(&m);
}
END_TEST

/* ---- spool file handling ---- */

START_TEST(test_spool_file_unlinked)
{
	char dir[] = "/tmp/test_message_dir.XXXXXX";
	struct spool_options o = { .tmpdir = dir };
	int p[2];
	struct message m;
	char err[256] = "";

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "x\n", 2), 2);
	close(p[1]);
	ck_assert_msg(message_spool(p[0], &o, &m, err, sizeof err) == 0, "%s",
		      err);
	close(p[0]);
	/* the directory is empty again while the message is still open */
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(m.size, 3);
	ck_assert(fcntl(m.fd, F_GETFD) & FD_CLOEXEC);
	message_free(&m);
	ck_assert_int_eq(m.fd, -1);
	message_free(&m);	/* harmless twice */
}
END_TEST

START_TEST(test_spool_errors)
{
	struct spool_options o = { .tmpdir = "/nonexistent/postbote-test" };
	struct message m;
	char err[256] = "";

	ck_assert_int_eq(message_spool(0, &o, &m, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/postbote-test"));
	ck_assert_int_eq(m.fd, -1);

	ck_assert_int_eq(message_spool(-1, NULL, &m, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot read the message"));
	ck_assert_int_eq(m.fd, -1);
}
END_TEST

START_TEST(test_spool_tmpdir_from_env)
{
	struct message m;
	char err[256] = "";
	char *old = getenv("TMPDIR") ? xstrdup(getenv("TMPDIR")) : NULL;

	setenv("TMPDIR", "/nonexistent/from-env", 1);
	ck_assert_int_eq(message_spool(0, NULL, &m, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/from-env"));
	if (old)
		setenv("TMPDIR", old, 1);
	else
		unsetenv("TMPDIR");
	free(old);
}
END_TEST

/* ---- header block ---- */

START_TEST(test_header_folding)
{
	struct message m;
	const struct header_field *h;

	spool_str("Subject: one\n two\n\tthree  \nTo:a@b.example\n\nbody\n",
		  false, &m);
	ck_assert_uint_eq(m.nheaders, 2);
	h = message_header_find(&m, "SUBJECT");
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->name, "Subject");
	ck_assert_str_eq(h->value, "one two\tthree");
	ck_assert_int_eq(h->offset, 0);
	ck_assert_uint_eq(h->length, 30);
	h = message_header_find(&m, "to");
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->value, "a@b.example");
	ck_assert_int_eq(h->offset, 30);
	ck_assert_uint_eq(h->length, 16);
	ck_assert_int_eq(m.header_end, 48);
	ck_assert_ptr_null(message_header_find(&m, "Cc"));
	message_free(&m);
}
END_TEST

START_TEST(test_header_obsolete_wsp_and_empty_value)
{
	struct message m;

	spool_str("Subject  \t: x y \nX-Empty:\nX-Blank:   \n\n", false, &m);
	ck_assert_uint_eq(m.nheaders, 3);
	ck_assert_str_eq(m.headers[0].name, "Subject");
	ck_assert_str_eq(m.headers[0].value, "x y");
	ck_assert_str_eq(m.headers[1].name, "X-Empty");
	ck_assert_str_eq(m.headers[1].value, "");
	ck_assert_str_eq(m.headers[2].value, "");
	ck_assert_int_eq(m.header_end, m.size);
	message_free(&m);
}
END_TEST

START_TEST(test_no_header_block)
{
	struct message m;

	spool_str("hello world\nSubject: not a header\n\n", false, &m);
	ck_assert_int_eq(m.header_end, 0);
	ck_assert_uint_eq(m.nheaders, 0);
	message_free(&m);
	spool_str(" indented: first\n\n", false, &m);
	ck_assert_int_eq(m.header_end, 0);
	ck_assert_uint_eq(m.nheaders, 0);
	message_free(&m);
	spool_str(":no name\n\n", false, &m);
	ck_assert_uint_eq(m.nheaders, 0);
	message_free(&m);
}
END_TEST

/* An empty first line is an empty header block and its separator. */
START_TEST(test_empty_header_block)
{
	struct message m;

	spool_str("\nbody: text\n", false, &m);
	ck_assert_uint_eq(m.nheaders, 0);
	ck_assert_int_eq(m.header_end, 2);
	message_free(&m);
}
END_TEST

START_TEST(test_header_only_message)
{
	struct message m;

	spool_str("A: b\nC: d\n continued", false, &m);
	ck_assert_uint_eq(m.nheaders, 2);
	ck_assert_int_eq(m.header_end, m.size);
	ck_assert_int_eq(m.size, 24);
	ck_assert_str_eq(m.headers[1].value, "d continued");
	ck_assert_uint_eq(m.headers[1].length, 18);
	message_free(&m);
}
END_TEST

START_TEST(test_malformed_line_ends_header_block)
{
	struct message m;

	spool_str("A: b\nnot a header\nC: d\n\nbody\n", false, &m);
	ck_assert_uint_eq(m.nheaders, 1);
	ck_assert_int_eq(m.header_end, 6);
	ck_assert_ptr_null(message_header_find(&m, "C"));
	message_free(&m);
}
END_TEST

static char *repeat_field(size_t total, size_t *len)
{
	static const char line[] = "X-Filler: 0123456789012345678901234567890\n";
	/* spooled, each line is one byte longer (CRLF) */
	size_t n = total / sizeof line + 1;
	char *in = xmalloc(n * (sizeof line - 1) + 32);

	for (size_t i = 0; i < n; i++)
		memcpy(in + i * (sizeof line - 1), line, sizeof line - 1);
	*len = n * (sizeof line - 1);
	memcpy(in + *len, "\nbody\n", 6);
	*len += 6;
	return in;
}

START_TEST(test_header_block_too_big)
{
	size_t len;
	char *in = repeat_field(MESSAGE_HEADER_BLOCK_MAX + 10, &len);
	struct message m;
	char err[256] = "";

	ck_assert_int_eq(spool_pipe(in, len, 0, false, &m, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "header block is larger than"));
	ck_assert_int_eq(m.fd, -1);
	ck_assert_uint_eq(m.nheaders, 0);
	free(in);
}
END_TEST

/* One field longer than the limit, without a line end within it. */
START_TEST(test_header_single_field_too_big)
{
	size_t len = 2 * MESSAGE_HEADER_BLOCK_MAX;
	char *in = xmalloc(len);
	struct message m;
	char err[256] = "";

	memset(in, 'a', len);
	memcpy(in, "X-Long: ", 8);
	ck_assert_int_eq(spool_pipe(in, len, 0, false, &m, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "header block is larger than"));
	free(in);
}
END_TEST

START_TEST(test_header_block_just_fits)
{
	size_t len;
	char *in = repeat_field(MESSAGE_HEADER_BLOCK_MAX - 100, &len);
	struct message m;
	char err[256] = "";

	ck_assert_msg(spool_pipe(in, len, 0, false, &m, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_gt(m.nheaders, 20000);
	ck_assert_int_eq(m.header_end, m.size - 6);
	message_free(&m);
	free(in);
}
END_TEST

/* A huge first line that is not a field is body, not an error. */
START_TEST(test_huge_body_line_without_header)
{
	size_t len = 3 * MESSAGE_HEADER_BLOCK_MAX;
	char *in = xmalloc(len);
	struct message m;
	char err[256] = "";

	memset(in, 'b', len);
	ck_assert_msg(spool_pipe(in, len, 0, false, &m, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(m.header_end, 0);
	ck_assert_uint_eq(m.nheaders, 0);
	ck_assert_int_eq(m.size, (off_t)len + 2);
	ck_assert_uint_eq(m.longest_line, len);
	message_free(&m);
	free(in);
}
END_TEST

/* ---- emitting ---- */

static const char *const remove_bcc[] = { "Bcc", NULL };

static void assert_emitted(const char *in, const struct emit_options *o,
			   const char *want)
{
	struct message m;
	struct capture *c;

	spool_str(in, false, &m);
	c = emit_capture(&m, o);
	assert_bytes(c->data, c->len, want, strlen(want));
	if (!o || !o->dot_stuff)
		ck_assert_int_eq(message_emit_size(&m, o), (off_t)c->len);
	capture_free(c);
	message_free(&m);
}

START_TEST(test_emit_unchanged)
{
	assert_emitted("A: b\nC: d\n\nbody\n", NULL, "A: b\r\nC: d\r\n\r\nbody\r\n");
	assert_emitted("", NULL, "");
}
END_TEST

START_TEST(test_emit_remove_bcc)
{
	struct emit_options o = { .remove = remove_bcc };

	assert_emitted("To: a@x\nBcc: b@x\nSubject: s\n\nbody\n", &o,
		       "To: a@x\r\nSubject: s\r\n\r\nbody\r\n");
	assert_emitted("To: a@x\nBcc: b@x,\n  c@x,\n\td@x\nSubject: s\n\nb\n",
		       &o, "To: a@x\r\nSubject: s\r\n\r\nb\r\n");
	assert_emitted("Bcc: b@x\n c@x\nTo: a@x\n\nb\n", &o,
		       "To: a@x\r\n\r\nb\r\n");
	assert_emitted("To: a@x\nbcc: b@x\n\nb\n", &o, "To: a@x\r\n\r\nb\r\n");
	assert_emitted("BCC  : b@x\nbCc: c@x\nTo: a@x\nBcc: d@x\n e@x\n\nb\n",
		       &o, "To: a@x\r\n\r\nb\r\n");
	assert_emitted("To: a@x\nBcc: b@x\n", &o, "To: a@x\r\n");
	assert_emitted("To: a@x\nBcc: b@x\nbad line\nBcc: body\n", &o,
		       "To: a@x\r\nbad line\r\nBcc: body\r\n");
	assert_emitted("To: a@x\nX-Bcc: y\nBccx: z\n\n", &o,
		       "To: a@x\r\nX-Bcc: y\r\nBccx: z\r\n\r\n");
}
END_TEST

START_TEST(test_emit_remove_several)
{
	static const char *const rm[] = { "bcc", "resent-bcc", NULL };
	struct emit_options o = { .remove = rm };

	assert_emitted("Resent-Bcc: r@x\nTo: a@x\nBcc: b@x\n\nb\n", &o,
		       "To: a@x\r\n\r\nb\r\n");
}
END_TEST

START_TEST(test_emit_prepend)
{
	struct emit_options o = {
		.prepend = "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n",
		.remove = remove_bcc,
	};

	assert_emitted("Bcc: b@x\nTo: a@x\n\nb\n", &o,
		       "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nTo: a@x\r\n\r\nb\r\n");
	assert_emitted("\nbody\n", &o,
		       "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n");
}
END_TEST

START_TEST(test_emit_dot_stuff_at_start)
{
	struct emit_options o = { .dot_stuff = true };

	assert_emitted(".start\n..two\nmid.dle\n.\n", &o,
		       "..start\r\n...two\r\nmid.dle\r\n..\r\n");
	o.prepend = ".odd: prepended\r\n";
	assert_emitted("A: b\n\n.x\n", &o, "..odd: prepended\r\nA: b\r\n\r\n..x\r\n");
}
END_TEST

/* A line starting with '.' at and around the 64 KiB read boundary, and at
 * the 32 KiB sink boundary, with a field removed before it. */
START_TEST(test_emit_dot_stuff_block_boundaries)
{
	static const size_t targets[] = { 32768, 65536, 131072 };
	struct emit_options o = { .dot_stuff = true, .remove = remove_bcc };

	for (size_t t = 0; t < 3; t++) {
		for (int shift = -3; shift <= 3; shift++) {
			/* the kept range starts after the 8 bytes of Bcc */
			size_t dot_at = 8 + targets[t] + (size_t)(long)shift;
			static const char head[] = "Bcc: x\r\nA: b\r\n\r\n";
			size_t hl = sizeof head - 1, fill = dot_at - hl - 2;
			size_t len = dot_at + 6, wl, i;
			char *in = xmalloc(len + 1), *want;
			struct message m;
			struct capture *c;

			memcpy(in, head, hl);
			for (i = hl; i < hl + fill; i++) {
				/* CRLF lines: spooled unchanged */
				if (i % 70 == 68 && i + 1 < hl + fill)
					in[i] = '\r';
				else if (i % 70 == 69 && in[i - 1] == '\r')
					in[i] = '\n';
				else
					in[i] = '.';
			}
			memcpy(in + dot_at - 2, "\r\n.end\r\n", 8);
			in[len] = '\0';
			spool_str(in, false, &m);
			ck_assert_int_eq(m.size, (off_t)len);
			c = emit_capture(&m, &o);
			want = reference_stuff(in + 8, len - 8, &wl);
			assert_bytes(c->data, c->len, want, wl);
			ck_assert_uint_ge(c->blocks[0], 16384);
			free(want);
			free(in);
			capture_free(c);
			message_free(&m);
		}
	}
}
END_TEST

static char *make_body(size_t size, size_t *len)
{
	char *in = xmalloc(size + 1);
	size_t i = 0, n = 0;

	memcpy(in, "To: a@x\nBcc: b@x\nSubject: big\n\n", 31);
	i = 31;
	while (i < size) {
		/* lines of varying length, some starting with '.' */
		in[i++] = (n % 7 == 0) ? '.' : 'a' + (char)(n % 26);
		if (++n % 73 == 0 && i < size)
			in[i++] = '\n';
	}
	in[size - 1] = '\n';
	in[size] = '\0';
	*len = size;
	return in;
}

START_TEST(test_emit_block_sizes)
{
	size_t len;
	char *in = make_body(1024 * 1024, &len);
	struct emit_options o = { .remove = remove_bcc };
	struct message m;
	char err[256] = "";

	ck_assert_msg(spool_pipe(in, len, 0, false, &m, err, sizeof err) == 0,
		      "%s", err);
	for (int dot = 0; dot <= 1; dot++) {
		struct capture *c;
		size_t total = 0;
		o.dot_stuff = dot;
		c = emit_capture(&m, &o);
		ck_assert_uint_gt(c->nblocks, 8);
		for (size_t i = 0; i < c->nblocks; i++) {
			if (i + 1 < c->nblocks)
				ck_assert_uint_ge(c->blocks[i], 16384);
			ck_assert_uint_le(c->blocks[i], 65536);
			total += c->blocks[i];
		}
		ck_assert_uint_eq(total, c->len);
		if (!dot)
			ck_assert_int_eq(message_emit_size(&m, &o), (off_t)c->len);
		else
			ck_assert_int_gt((off_t)c->len, message_emit_size(&m, &o));
		capture_free(c);
	}
	message_free(&m);
	free(in);
}
END_TEST

START_TEST(test_emit_size)
{
	struct message m;
	struct emit_options o = { .prepend = "X-A: 1\r\n", .remove = remove_bcc };

	spool_str("To: a\nBcc: b\n c\n\nbody\n", false, &m);
	ck_assert_int_eq(message_emit_size(&m, NULL), m.size);
	ck_assert_int_eq(message_emit_size(&m, &o), m.size + 8 - 12);
	message_free(&m);
}
END_TEST

START_TEST(test_emit_sink_error)
{
	struct message m;
	struct capture c = { .fail_with = 42 };

	spool_str("A: b\n\nbody\n", false, &m);
	ck_assert_int_eq(message_emit(&m, NULL, capture_sink, &c), 42);
	message_free(&m);
}
END_TEST

START_TEST(test_emit_read_error)
{
	struct message m;
	struct capture c = { 0 };

	spool_str("A: b\n\nbody\n", false, &m);
	close(m.fd);
	errno = 0;
	ck_assert_int_eq(message_emit(&m, NULL, capture_sink, &c), -1);
	ck_assert_int_eq(errno, EBADF);
	m.fd = -1;
	message_free(&m);
	free(c.data);
}
END_TEST

/* Emitting twice gives the same bytes: pread, not the file offset. */
START_TEST(test_emit_twice)
{
	struct message m;
	struct capture *a, *b;

	spool_str("A: b\n\nbody\n", false, &m);
	lseek(m.fd, 3, SEEK_SET);
	a = emit_capture(&m, NULL);
	b = emit_capture(&m, NULL);
	assert_bytes(a->data, a->len, b->data, b->len);
	ck_assert_uint_eq(a->len, (size_t)m.size);
	capture_free(a);
	capture_free(b);
	message_free(&m);
}
END_TEST

/* 5 MB through a pipe in small writes from another thread: no deadlock,
 * every byte arrives, line ends converted. */
START_TEST(test_five_megabytes_through_pipe)
{
	size_t len, wl = 0;
	char *in = make_body(5 * 1024 * 1024, &len);
	char *want = xmalloc(2 * len), *got;
	struct message m;
	struct capture *c;
	char err[256] = "";

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n')
			want[wl++] = '\r';
		want[wl++] = in[i];
	}
	ck_assert_msg(spool_pipe(in, len, 3000, false, &m, err, sizeof err) == 0,
		      "%s", err);
	got = spool_contents(&m);
	assert_bytes(got, (size_t)m.size, want, wl);
	c = emit_capture(&m, NULL);
	assert_bytes(c->data, c->len, want, wl);
	ck_assert_uint_eq(m.nheaders, 3);
	ck_assert_int_eq(m.header_end, 35);
	capture_free(c);
	free(got);
	free(want);
	free(in);
	message_free(&m);
}
END_TEST

/* ---- dot_stuff on its own ---- */

START_TEST(test_dot_stuff_basic)
{
	static const char in[] = ".a\r\n..b\r\nc.\r\n.\r\n";
	char out[2 * sizeof in];
	struct dot_stuffer st;
	size_t n;

	dot_stuffer_init(&st);
	n = dot_stuff(&st, in, sizeof in - 1, out);
	assert_bytes(out, n, "..a\r\n...b\r\nc.\r\n..\r\n", 19);
	ck_assert(st.at_line_start);
}
END_TEST

START_TEST(test_dot_stuff_split_calls)
{
	static const char in[] = ".a\r\n.\r\nx.\r\n.";
	char out[64];
	struct dot_stuffer st;
	size_t n = 0;

	dot_stuffer_init(&st);
	for (size_t i = 0; i < sizeof in - 1; i++)
		n += dot_stuff(&st, in + i, 1, out + n);
	assert_bytes(out, n, "..a\r\n..\r\nx.\r\n..", 15);
	ck_assert(!st.at_line_start);
	ck_assert_uint_eq(dot_stuff(&st, ".", 1, out), 1);
}
END_TEST

static Suite *message_suite(void)
{
	Suite *s = suite_create("message");
	TCase *spool = tcase_create("spool");
	TCase *hdr = tcase_create("header");
	TCase *emit = tcase_create("emit");

	tcase_set_timeout(spool, 60);
	tcase_set_timeout(hdr, 60);
	tcase_set_timeout(emit, 60);
	tcase_add_test(spool, test_lf_becomes_crlf);
	tcase_add_test(spool, test_crlf_stays);
	tcase_add_test(spool, test_lone_cr_becomes_crlf);
	tcase_add_test(spool, test_mixed_line_ends);
	tcase_add_test(spool, test_missing_final_newline);
	tcase_add_test(spool, test_empty_input);
	tcase_add_test(spool, test_cr_at_read_boundary);
	tcase_add_test(spool, test_cr_at_pipe_read_boundary);
	tcase_add_test(spool, test_dot_ends_input);
	tcase_add_test(spool, test_dot_kept_without_option);
	tcase_add_test(spool, test_dot_not_alone);
	tcase_add_test(spool, test_dot_stops_reading);
	tcase_add_test(spool, test_mbox_from_dropped);
	tcase_add_test(spool, test_mbox_from_only_first_line);
	tcase_add_test(spool, test_from_field_not_mbox);
	tcase_add_test(spool, test_eight_bit_and_nul);
	tcase_add_test(spool, test_longest_line);
	tcase_add_test(spool, test_spool_file_unlinked);
	tcase_add_test(spool, test_spool_errors);
	tcase_add_test(spool, test_spool_tmpdir_from_env);
	tcase_add_test(hdr, test_header_folding);
	tcase_add_test(hdr, test_header_obsolete_wsp_and_empty_value);
	tcase_add_test(hdr, test_no_header_block);
	tcase_add_test(hdr, test_empty_header_block);
	tcase_add_test(hdr, test_header_only_message);
	tcase_add_test(hdr, test_malformed_line_ends_header_block);
	tcase_add_test(hdr, test_header_block_too_big);
	tcase_add_test(hdr, test_header_single_field_too_big);
	tcase_add_test(hdr, test_header_block_just_fits);
	tcase_add_test(hdr, test_huge_body_line_without_header);
	tcase_add_test(emit, test_emit_unchanged);
	tcase_add_test(emit, test_emit_remove_bcc);
	tcase_add_test(emit, test_emit_remove_several);
	tcase_add_test(emit, test_emit_prepend);
	tcase_add_test(emit, test_emit_dot_stuff_at_start);
	tcase_add_test(emit, test_emit_dot_stuff_block_boundaries);
	tcase_add_test(emit, test_emit_block_sizes);
	tcase_add_test(emit, test_emit_size);
	tcase_add_test(emit, test_emit_sink_error);
	tcase_add_test(emit, test_emit_read_error);
	tcase_add_test(emit, test_emit_twice);
	tcase_add_test(emit, test_five_megabytes_through_pipe);
	tcase_add_test(emit, test_dot_stuff_basic);
	tcase_add_test(emit, test_dot_stuff_split_calls);
	suite_add_tcase(s, spool);
	suite_add_tcase(s, hdr);
	suite_add_tcase(s, emit);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(message_suite());
	int failed;

	/* a writer thread may find the pipe closed after a lone dot */
	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
