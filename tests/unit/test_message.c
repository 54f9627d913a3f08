#include "autoconf.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_suite.h"
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

/* pre bytes of CRLF lines 100 octets long (short enough not to be split),
 * the last one cut short. */
static void fill_short_lines(char *p, size_t pre)
{
	for (size_t i = 0; i < pre; i++)
		p[i] = i % 100 == 98 ? '\r' : i % 100 == 99 ? '\n' : 'x';
	if (pre % 100 == 99)
		p[pre - 1] = 'x';	/* no CR without its LF at the end */
}

/* A CR as the last byte of one 64 KiB read, its LF (or not) the first of
 * the next: from a regular file the read boundaries are exact. */
static void check_cr_at_block_end(const char *after, const char *want_after)
{
	size_t pre = 65535, alen = strlen(after), wlen = strlen(want_after);
	char *in = xmalloc(pre + 1 + alen), *want = xmalloc(pre + 2 + wlen);
	struct message m;
	char err[256] = "", *got;

	fill_short_lines(in, pre);
	in[pre] = '\r';
	memcpy(in + pre + 1, after, alen);
	memcpy(want, in, pre);
	memcpy(want + pre, "\r\n", 2);
	memcpy(want + pre + 2, want_after, wlen);
	ck_assert_msg(spool_file(in, pre + 1 + alen, false, &m, err,
				 sizeof err) == 0, "%s", err);
	got = spool_contents(&m);
	assert_bytes(got, (size_t)m.size, want, pre + 2 + wlen);
	ck_assert_uint_eq(m.longest_line, 98);
	ck_assert_uint_eq(m.lines_split, 0);
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
	ck_assert_int_eq(m.size, 4);	/* the NUL is removed */
	ck_assert_uint_eq(m.nul_removed, 1);
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
	/* 2498 octets: split into 998 + 998 + 502 */
	ck_assert_uint_eq(m.longest_line, 998);
	ck_assert_uint_eq(m.longest_input_line, 2498);
	ck_assert_uint_eq(m.lines_split, 2);
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
	ck_assert(m.needs_separator);
	ck_assert_uint_eq(m.nheaders, 0);
	/* split every 998 octets (RFC 5322 2.1.1) */
	ck_assert_uint_eq(m.lines_split, (len - 1) / MESSAGE_LINE_MAX);
	ck_assert_int_eq(m.size, (off_t)(len + 2 * m.lines_split + 2));
	ck_assert_uint_eq(m.longest_line, MESSAGE_LINE_MAX);
	ck_assert_uint_eq(m.longest_input_line, len);
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
	/* the header block ends at "bad line": an empty line is put before
	 * it (needs_separator), and the "Bcc:" after it is body text */
	assert_emitted("To: a@x\nBcc: b@x\nbad line\nBcc: body\n", &o,
		       "To: a@x\r\n\r\nbad line\r\nBcc: body\r\n");
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

	/* no header block: the empty line that starts the body comes first */
	assert_emitted(".start\n..two\nmid.dle\n.\n", &o,
		       "\r\n..start\r\n...two\r\nmid.dle\r\n..\r\n");
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

/* ---- long lines (RFC 5322 2.1.1) ---- */

struct text {
	char *p;
	size_t n;
	size_t cap;
};

static void text_add(struct text *t, const char *p, size_t n)
{
	if (t->n + n + 1 > t->cap) {
		t->cap = (t->n + n + 1) * 2;
		t->p = xrealloc(t->p, t->cap);
	}
	memcpy(t->p + t->n, p, n);
	t->n += n;
	t->p[t->n] = '\0';
}

static void text_str(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

/* n octets of a pattern that shows where each one came from: a split at
 * the wrong place gives different bytes, not the same run of letters. */
static void text_pattern(struct text *t, size_t n, char first)
{
	for (size_t i = 0; i < n; i++) {
		char c = (char)(first + (char)(i % 23));
		text_add(t, &c, 1);
	}
}

/* The expected spooled form of a body line: CRLF after every 998 octets. */
static void text_body_split(struct text *t, const char *line, size_t len)
{
	for (size_t i = 0; i < len; i += MESSAGE_LINE_MAX) {
		size_t k = len - i < MESSAGE_LINE_MAX ? len - i : MESSAGE_LINE_MAX;
		text_add(t, line + i, k);
		text_str(t, "\r\n");
	}
}

/* The expected form of a header line without usable WSP: 998 octets,
 * then CRLF SP and 997 more per line (SP + 997 = 998). */
static void text_header_split(struct text *t, const char *line, size_t len)
{
	size_t first = len < MESSAGE_LINE_MAX ? len : MESSAGE_LINE_MAX;

	text_add(t, line, first);
	text_str(t, "\r\n");
	for (size_t i = first; i < len; i += MESSAGE_LINE_MAX - 1) {
		size_t k = len - i < MESSAGE_LINE_MAX - 1 ? len - i
							  : MESSAGE_LINE_MAX - 1;
		text_str(t, " ");
		text_add(t, line + i, k);
		text_str(t, "\r\n");
	}
}

static size_t max_line_length(const char *p, size_t n)
{
	size_t longest = 0, cur = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
			if (cur > longest)
				longest = cur;
			cur = 0;
			i++;
		} else {
			cur++;
		}
	}
	return cur > longest ? cur : longest;
}

static void assert_spooled_text(const struct text *in, size_t chunk,
				const struct text *want, struct message *m)
{
	char err[256] = "", *got;

	ck_assert_msg(spool_pipe(in->p, in->n, chunk, false, m, err,
				 sizeof err) == 0, "%s", err);
	got = spool_contents(m);
	assert_bytes(got, (size_t)m->size, want->p, want->n);
	free(got);
}

static const size_t long_lengths[] = { 998, 999, 5000, 200000 };
static const size_t chunks[] = { 0, 997, 4096 };

START_TEST(test_body_long_lines)
{
	for (size_t l = 0; l < 4; l++) {
		size_t len = long_lengths[l];
		struct text in = { 0 }, line = { 0 }, want = { 0 };

		text_pattern(&line, len, 'a');
		text_str(&in, "Subject: s\n\n");
		text_add(&in, line.p, line.n);
		text_str(&in, "\nend\n");
		text_str(&want, "Subject: s\r\n\r\n");
		text_body_split(&want, line.p, line.n);
		text_str(&want, "end\r\n");
		for (size_t c = 0; c < 3; c++) {
			struct message m;
			assert_spooled_text(&in, chunks[c], &want, &m);
			ck_assert_uint_eq(m.lines_split, (len - 1) / MESSAGE_LINE_MAX);
			ck_assert_uint_eq(m.longest_line, MESSAGE_LINE_MAX);
			ck_assert_uint_eq(m.longest_input_line, len);
			ck_assert_uint_eq(m.nheaders, 1);
			ck_assert_int_eq(m.header_end, 14);
			ck_assert(!m.needs_separator);
			message_free(&m);
		}
		free(in.p);
		free(line.p);
		free(want.p);
	}
}
END_TEST

/* No WSP after the colon: cut at 998, continued after CRLF SP. The field
 * stays one field whose value has a space at each cut. */
START_TEST(test_header_long_lines_without_wsp)
{
	for (size_t l = 0; l < 4; l++) {
		size_t len = long_lengths[l];
		struct text in = { 0 }, line = { 0 }, want = { 0 }, value = { 0 };
		size_t splits = len > MESSAGE_LINE_MAX
			? (len - MESSAGE_LINE_MAX + MESSAGE_LINE_MAX - 2) /
			  (MESSAGE_LINE_MAX - 1) : 0;

		text_str(&line, "X-Long:");
		text_pattern(&line, len - 7, 'a');
		text_add(&in, line.p, line.n);
		text_str(&in, "\nTo: a@b.example\n\nbody\n");
		text_header_split(&want, line.p, line.n);
		text_str(&want, "To: a@b.example\r\n\r\nbody\r\n");
		for (size_t i = 7; i < line.n; i++) {
			if (i >= MESSAGE_LINE_MAX &&
			    (i - MESSAGE_LINE_MAX) % (MESSAGE_LINE_MAX - 1) == 0)
				text_str(&value, " ");
			text_add(&value, line.p + i, 1);
		}
		for (size_t c = 0; c < 3; c++) {
			struct message m;
			assert_spooled_text(&in, chunks[c], &want, &m);
			ck_assert_uint_eq(m.lines_split, splits);
			ck_assert_uint_eq(m.longest_line, MESSAGE_LINE_MAX);
			ck_assert_uint_eq(m.longest_input_line, len);
			ck_assert_uint_eq(m.nheaders, 2);
			ck_assert_str_eq(m.headers[0].name, "X-Long");
			ck_assert_str_eq(m.headers[0].value, value.p);
			ck_assert_str_eq(m.headers[1].value, "a@b.example");
			ck_assert_int_eq(m.header_end, m.size - 6);
			ck_assert(!m.needs_separator);
			message_free(&m);
		}
		free(in.p);
		free(line.p);
		free(want.p);
		free(value.p);
	}
}
END_TEST

/* A Subject of words: folded before WSP only, so it unfolds to exactly
 * the original text (RFC 5322 2.2.3). */
START_TEST(test_header_long_subject_unfolds)
{
	for (size_t l = 1; l < 4; l++) {
		size_t len = long_lengths[l];
		struct text in = { 0 }, value = { 0 };
		struct message m;
		char err[256] = "", *got;

		for (size_t i = 0; value.n < len - 9; i++) {
			char word[16];
			snprintf(word, sizeof word, "%sw%zu", i ? " " : "", i % 997);
			text_str(&value, word);
		}
		text_str(&in, "Subject: ");
		text_add(&in, value.p, value.n);
		text_str(&in, "\n\nbody\n");
		ck_assert_msg(spool_pipe(in.p, in.n, 0, false, &m, err,
					 sizeof err) == 0, "%s", err);
		ck_assert_uint_eq(m.nheaders, 1);
		ck_assert_str_eq(m.headers[0].value, value.p);
		ck_assert_uint_gt(m.lines_split, 0);
		ck_assert_uint_eq(m.longest_input_line, 9 + value.n);
		got = spool_contents(&m);
		ck_assert_uint_le(max_line_length(got, (size_t)m.size),
				  MESSAGE_LINE_MAX);
		/* each fold is at the last WSP within the limit: the line
		 * would not have fit up to the next one */
		for (char *line = got; line < got + m.header_end - 2;) {
			char *end = strstr(line, "\r\n");
			char *next = end + 2;
			char *sp = *next == ' ' ? strchr(next + 1, ' ') : NULL;
			char *next_end = strstr(next, "\r\n");
			if (sp && sp < next_end)
				ck_assert_uint_gt((size_t)(end - line) +
						  (size_t)(sp - next),
						  MESSAGE_LINE_MAX);
			line = next;
		}
		free(got);
		message_free(&m);
		free(in.p);
		free(value.p);
	}
}
END_TEST

/* pre, then n times c, then post, in a new string */
static char *rep(const char *pre, char c, size_t n, const char *post)
{
	size_t pl = strlen(pre), ql = strlen(post);
	char *s = xmalloc(pl + n + ql + 1);

	memcpy(s, pre, pl);
	memset(s + pl, c, n);
	memcpy(s + pl + n, post, ql + 1);
	return s;
}

/* Spools in (a C string), compares with want, returns the message. */
static void check_spool(char *in, char *want, struct message *m)
{
	struct text tin = { .p = in, .n = strlen(in) };
	struct text twant = { .p = want, .n = strlen(want) };

	assert_spooled_text(&tin, 0, &twant, m);
	free(in);
	free(want);
}

static void check_value(const struct message *m, size_t i, char *want)
{
	ck_assert_uint_gt(m->nheaders, i);
	ck_assert_str_eq(m->headers[i].value, want);
	free(want);
}

START_TEST(test_header_fold_position)
{
	struct message m;
	char *w;

	/* the WSP at index 998: the first line is exactly 998 octets */
	check_spool(rep("Subject: ", 'a', 989, " tail\n\n"),
		    rep("Subject: ", 'a', 989, "\r\n tail\r\n\r\n"), &m);
	ck_assert_uint_eq(m.longest_line, 998);
	ck_assert_uint_eq(m.lines_split, 1);
	check_value(&m, 0, rep("", 'a', 989, " tail"));
	message_free(&m);

	/* the WSP at 999 is past the limit: the one after the colon is used */
	check_spool(rep("Subject: ", 'a', 990, " tail\n\n"),
		    rep("Subject:\r\n ", 'a', 990, " tail\r\n\r\n"), &m);
	ck_assert_uint_eq(m.lines_split, 1);
	check_value(&m, 0, rep("", 'a', 990, " tail"));
	message_free(&m);

	/* 998 octets: not split */
	check_spool(rep("Subject: ", 'a', 989, "\n\n"),
		    rep("Subject: ", 'a', 989, "\r\n\r\n"), &m);
	ck_assert_uint_eq(m.lines_split, 0);
	message_free(&m);

	/* obsolete WSP before the colon (RFC 5322 4.5) is no fold point */
	w = rep("Subject  :", 'a', 988, "\r\n ");
	check_spool(rep("Subject  :", 'a', 1200, "\n\n"),
		    rep(w, 'a', 212, "\r\n\r\n"), &m);
	free(w);
	w = rep("", 'a', 988, " ");
	check_value(&m, 0, rep(w, 'a', 212, ""));
	free(w);
	message_free(&m);

	/* a tab is WSP too; the continuation's own leading WSP is not a
	 * fold point (the line before would be empty) */
	w = rep("Subject:\r\n\t", 'a', 997, "\r\n ");
	check_spool(rep("Subject:\t", 'a', 1000, "\n\n"),
		    rep(w, 'a', 3, "\r\n\r\n"), &m);
	free(w);
	ck_assert_uint_eq(m.lines_split, 2);
	message_free(&m);
}
END_TEST

START_TEST(test_header_continuation_long)
{
	struct message m;
	char *w = rep("X-A: b\r\n\t", 'c', 997, "\r\n ");

	check_spool(rep("X-A: b\n\t", 'c', 1500, "\n\nbody\n"),
		    rep(w, 'c', 503, "\r\n\r\nbody\r\n"), &m);
	free(w);
	ck_assert_uint_eq(m.nheaders, 1);
	w = rep("b\t", 'c', 997, " ");
	check_value(&m, 0, rep(w, 'c', 503, ""));
	free(w);
	ck_assert_uint_eq(m.lines_split, 1);
	message_free(&m);

	/* all of its leading WSP stays on the first line: a fold there
	 * would leave a line of WSP only */
	w = rep("X-A: b\r\n\t\t", 'c', 996, "\r\n ");
	check_spool(rep("X-A: b\n\t\t", 'c', 1500, "\n\n"),
		    rep(w, 'c', 504, "\r\n\r\n"), &m);
	free(w);
	message_free(&m);
}
END_TEST

/* A line with no colon in its first 998 octets cannot be a field: it is
 * body and split hard, as the parser will see it. */
START_TEST(test_long_line_that_is_no_field)
{
	struct message m;
	char *w = rep("", 'n', 998, "\r\n");

	check_spool(rep("", 'n', 1200, ": v\nx\n"),
		    rep(w, 'n', 202, ": v\r\nx\r\n"), &m);
	free(w);
	ck_assert_int_eq(m.header_end, 0);
	ck_assert_uint_eq(m.nheaders, 0);
	ck_assert(m.needs_separator);
	message_free(&m);

	w = rep("A: b\r\n", 'n', 998, "\r\n");
	check_spool(rep("A: b\n", 'n', 1200, ": v\n\nz\n"),
		    rep(w, 'n', 202, ": v\r\n\r\nz\r\n"), &m);
	free(w);
	ck_assert_int_eq(m.header_end, 6);
	ck_assert_uint_eq(m.nheaders, 1);
	ck_assert(m.needs_separator);
	message_free(&m);

	/* a colon at index 998 is one octet too far */
	w = rep("", 'n', 998, "\r\n");
	check_spool(rep("", 'n', 998, ": v\n"), rep(w, 'n', 0, ": v\r\n"), &m);
	free(w);
	ck_assert_uint_eq(m.nheaders, 0);
	message_free(&m);
}
END_TEST

/* Long header and body lines placed across the 64 KiB read boundaries:
 * the result must not depend on where reads end. */
static struct text boundary_input(size_t subject_at, bool wsp)
{
	struct text in = { 0 };
	size_t body_at;

	size_t gap;

	while (in.n + 200 < subject_at)
		text_str(&in, "X-Filler: 0123456789012345678901234567890123456"
			      "789012345678901234567890123456789012345678\n");
	/* one field of the exact length left: Subject starts at subject_at */
	gap = subject_at - in.n;
	text_str(&in, "X:");
	text_pattern(&in, gap - 3, 'a');
	text_str(&in, "\n");
	ck_assert_uint_eq(in.n, subject_at);
	text_str(&in, "Subject:");
	while (in.n < subject_at + 3000) {
		char c = (char)('a' + (char)(in.n % 26));
		text_add(&in, wsp && in.n % 11 == 0 ? " " : &c, 1);
	}
	text_str(&in, "\n\n");
	body_at = 2 * 65536 - 700;
	while (in.n < body_at)
		text_str(&in, "line\n");
	text_pattern(&in, 200000, 'A');
	text_str(&in, "\nlast\n");
	return in;
}

START_TEST(test_long_lines_at_read_boundaries)
{
	static const size_t offsets[] = { 0, 1, 2, 997, 998, 999, 1000 };

	for (int wsp = 0; wsp <= 1; wsp++) {
		for (size_t o = 0; o < 7; o++) {
			struct text in = boundary_input(65536 - offsets[o], wsp);
			struct message a, b;
			char err[256] = "", *ga, *gb;

			ck_assert_msg(spool_file(in.p, in.n, false, &a, err,
						 sizeof err) == 0, "%s", err);
			ck_assert_msg(spool_pipe(in.p, in.n, 7, false, &b, err,
						 sizeof err) == 0, "%s", err);
			ga = spool_contents(&a);
			gb = spool_contents(&b);
			assert_bytes(ga, (size_t)a.size, gb, (size_t)b.size);
			ck_assert_uint_le(max_line_length(ga, (size_t)a.size),
					  MESSAGE_LINE_MAX);
			ck_assert_ptr_nonnull(message_header_find(&a, "Subject"));
			ck_assert_uint_eq(a.nheaders, b.nheaders);
			ck_assert(!a.needs_separator);
			ck_assert_uint_eq(a.lines_split, b.lines_split);
			/* the 200000-octet body line: 200 splits */
			ck_assert_uint_ge(a.lines_split, 200 + 3);
			ck_assert_uint_eq(a.longest_input_line, 200000);
			free(ga);
			free(gb);
			free(in.p);
			message_free(&a);
			message_free(&b);
		}
	}
}
END_TEST

/* ---- NUL bytes (RFC 5321 2.3.8, RFC 5322 2.1) ---- */

START_TEST(test_nul_removed)
{
	static const char in[] = "Sub\0ject: x\0y\n\nb\0\0ody\n\0";
	struct message m;
	char err[256] = "", *got;

	ck_assert(spool_pipe(in, sizeof in - 1, 0, false, &m, err,
			     sizeof err) == 0);
	got = spool_contents(&m);
	assert_bytes(got, (size_t)m.size, "Subject: xy\r\n\r\nbody\r\n\r\n", 23);
	ck_assert(m.has_nul);
	ck_assert_uint_eq(m.nul_removed, 5);
	ck_assert_uint_eq(m.nheaders, 1);
	ck_assert_str_eq(m.headers[0].name, "Subject");
	ck_assert_str_eq(m.headers[0].value, "xy");
	ck_assert_uint_eq(m.longest_line, 11);
	ck_assert_uint_eq(m.longest_input_line, 13);	/* NULs counted */
	free(got);
	message_free(&m);

	/* a line of NULs only becomes the empty separator line */
	ck_assert(spool_pipe("A: b\n\0\0\nbody\n", 13, 0, false, &m, err,
			     sizeof err) == 0);
	ck_assert_int_eq(m.header_end, 8);
	ck_assert(!m.needs_separator);
	ck_assert_uint_eq(m.nul_removed, 2);
	message_free(&m);

	spool_str("no nul\n", false, &m);
	ck_assert(!m.has_nul);
	ck_assert_uint_eq(m.nul_removed, 0);
	message_free(&m);
}
END_TEST

/* NULs at and around the 64 KiB read boundary, and a long line of them:
 * removed before the line is measured, so no split is needed. */
START_TEST(test_nul_at_read_boundary)
{
	size_t len = 65536 + 3000;
	char *in = xmalloc(len), *got;
	struct message m;
	char err[256] = "";
	size_t nuls = 0;

	fill_short_lines(in, len);
	for (size_t i = 65534; i < 65536 + 1500; i++)
		in[i] = '\0';
	memcpy(in + len - 2, "\r\n", 2);
	for (size_t i = 0; i < len; i++)
		nuls += in[i] == '\0';
	ck_assert_msg(spool_file(in, len, false, &m, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(m.nul_removed, nuls);
	ck_assert_int_eq(m.size, (off_t)(len - nuls));
	ck_assert_uint_eq(m.lines_split, 0);
	got = spool_contents(&m);
	ck_assert_ptr_null(memchr(got, '\0', (size_t)m.size));
	free(got);
	free(in);
	message_free(&m);
}
END_TEST

/* ---- body lines: word and read-block boundaries ----
 * Body lines are scanned a word at a time and copied whole; whatever needs
 * a look (CR, LF, NUL, a byte >= 0x80, a "." that may end the input, a
 * line over 998 octets) can fall at any byte of a word and on either side
 * of a read boundary. */

/* The body rules, one byte at a time: what the spooler must store for an
 * input whose header block is empty (it starts with an empty line). */
struct body_model {
	struct text out;
	size_t longest_line, longest_input_line, lines_split, nuls;
	bool eight_bit;
};

static bool model_lone_dot(const char *in, size_t n, size_t i)
{
	return in[i] == '.' &&
	       (i + 1 == n || in[i + 1] == '\r' || in[i + 1] == '\n');
}

static void model_body(const char *in, size_t n, bool dot,
		       struct body_model *m)
{
	size_t out_len = 0, in_len = 0;
	bool after_cr = false, in_line = false;

	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (after_cr) {
			after_cr = false;
			if (c == '\n')
				continue;
		}
		if (!in_line && dot && model_lone_dot(in, n, i))
			return;
		if (c == '\r' || c == '\n') {
			text_str(&m->out, "\r\n");
			out_len = in_len = 0;
			in_line = false;
			after_cr = c == '\r';
			continue;
		}
		in_line = true;
		if (++in_len > m->longest_input_line)
			m->longest_input_line = in_len;
		if (c == '\0') {
			m->nuls++;
			continue;
		}
		m->eight_bit |= (unsigned char)c >= 0x80;
		if (out_len == MESSAGE_LINE_MAX) {
			text_str(&m->out, "\r\n");
			m->lines_split++;
			out_len = 0;
		}
		text_add(&m->out, &c, 1);
		if (++out_len > m->longest_line)
			m->longest_line = out_len;
	}
	if (in_line)
		text_str(&m->out, "\r\n");
}

static void assert_like_model(const char *in, size_t n, bool dot,
			      const struct message *m)
{
	struct body_model want;
	char *got = spool_contents(m);

	model_body(in, n, dot, &want);
	assert_bytes(got, (size_t)m->size, want.out.p, want.out.n);
	ck_assert_int_eq(m->header_end, 2);
	ck_assert_uint_eq(m->nheaders, 0);
	ck_assert_uint_eq(m->longest_line, want.longest_line);
	ck_assert_uint_eq(m->longest_input_line, want.longest_input_line);
	ck_assert_uint_eq(m->lines_split, want.lines_split);
	ck_assert_uint_eq(m->nul_removed, want.nuls);
	ck_assert(m->has_nul == (want.nuls > 0));
	ck_assert(m->eight_bit == want.eight_bit);
	free(want.out.p);
	free(got);
}

/* Spools in from a regular file (64 KiB reads) and through a pipe, in
 * one write and, with small_writes, in writes of a few bytes; checks each
 * against the model. */
static void check_body(const char *in, size_t n, bool dot, bool small_writes)
{
	static const size_t writes[] = { 0, 1, 3, 8, 13 };
	size_t nwrites = small_writes ? sizeof writes / sizeof *writes : 1;
	struct message m;
	char err[256] = "";

	ck_assert_msg(spool_file(in, n, dot, &m, err, sizeof err) == 0, "%s",
		      err);
	assert_like_model(in, n, dot, &m);
	message_free(&m);
	for (size_t w = 0; w < nwrites; w++) {
		ck_assert_msg(spool_pipe(in, n, writes[w], dot, &m, err,
					 sizeof err) == 0, "%s", err);
		assert_like_model(in, n, dot, &m);
		message_free(&m);
	}
}

static uint32_t next_random(uint32_t *state)
{
	/* xorshift32: the same inputs on every run */
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* Mostly text, with every byte that needs a look sprinkled in at random
 * places, and now and then a long run that crosses 998 octets. */
static struct text random_body(uint32_t *state, size_t len, bool eight_bit)
{
	static const char special[] = "\r\n\0.\t \x0b\x7f";
	struct text t = { 0 };

	text_str(&t, "\n");
	while (t.n < len) {
		uint32_t r = next_random(state);
		char c = (char)('a' + (char)(r % 26));
		if (r % 1000 == 0) {
			text_pattern(&t, 990 + (r >> 10) % 20, 'A');
			continue;
		}
		if (r % 7 == 0)
			c = special[(r >> 8) % (sizeof special - 1)];
		else if (eight_bit && r % 97 == 0)
			c = (char)0xe9;
		text_add(&t, &c, 1);
	}
	return t;
}

START_TEST(test_body_like_byte_model)
{
	static const char stops[] = { '\r', '\n', '\0', '.' };
	uint32_t state = 2463534242u;

	for (int i = 0; i < 8; i++) {
		struct text in = random_body(&state, 20000, i % 2 == 1);
		check_body(in.p, in.n, i % 4 >= 2, true);
		free(in.p);
	}
	/* each byte that stops a run at each offset of a word */
	for (size_t len = 0; len < 20; len++) {
		for (size_t c = 0; c < sizeof stops; c++) {
			struct text in = { 0 };
			text_str(&in, "\n");
			for (size_t k = 0; k < 3; k++) {
				text_pattern(&in, len, 'a');
				text_add(&in, &stops[c], 1);
				text_pattern(&in, len, 'a');
				text_str(&in, "\xe9\n.\n");
			}
			check_body(in.p, in.n, len % 2 == 1, true);
			free(in.p);
		}
	}
}
END_TEST

/* A body of pre bytes of short lines (the last one cut short), then
 * after: from a regular file, after[65536 - pre] starts the second read. */
static void check_body_at_block(size_t pre, const char *after, size_t alen,
				bool dot)
{
	char *in = xmalloc(pre + alen);

	fill_short_lines(in, pre);
	in[0] = '\n';	/* an empty header block */
	memcpy(in + pre, after, alen);
	check_body(in, pre + alen, dot, false);
	free(in);
}

#define CHECK_AT_BLOCK(pre, after, dot) \
	check_body_at_block(pre, after, sizeof(after) - 1, dot)

START_TEST(test_body_bytes_at_read_boundary)
{
	/* a CR ends the first read, its LF starts the second */
	CHECK_AT_BLOCK(65535, "\r\nnext\n", false);
	/* a lone CR, then a line that ends only in the second read */
	CHECK_AT_BLOCK(65534, "\rb\nx\n", false);
	CHECK_AT_BLOCK(65532, "\rabc\r\nx\n", false);
	/* NULs on either side; a NUL and an 8-bit byte in one word */
	CHECK_AT_BLOCK(65535, "\0\0x\n", false);
	CHECK_AT_BLOCK(65533, "a\0\xe9z\n", false);
	/* an 8-bit byte last in the first read, first in the second */
	CHECK_AT_BLOCK(65535, "\xe9\n", false);
	CHECK_AT_BLOCK(65536, "\xe9\n", false);
	/* a lone dot on either side ends the input (what follows, 8-bit
	 * byte included, is not part of the message)... */
	CHECK_AT_BLOCK(65534, "\n.\n\xe9\n", true);
	CHECK_AT_BLOCK(65535, "\n.\r\n\xe9\n", true);
	CHECK_AT_BLOCK(65535, "\n.", true);
	/* ...a dot with more after it does not */
	CHECK_AT_BLOCK(65534, "\n.x\n", true);
	CHECK_AT_BLOCK(65535, "\n..\n", true);
}
END_TEST

/* Body lines of 998 and 999 octets (and longer ones) that start before a
 * read boundary and end after it. */
START_TEST(test_body_long_line_across_read_boundary)
{
	static const size_t lengths[] = { 997, 998, 999, 1996, 1997 };
	static const size_t before[] = { 1, 500, 997, 998 };

	for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
		for (size_t b = 0; b < sizeof before / sizeof *before; b++) {
			struct text after = { 0 };
			struct body_model want;

			/* the long line has before[b] octets in the first read */
			text_str(&after, "\n");
			text_pattern(&after, lengths[l], 'A');
			text_str(&after, "\nend\n");
			model_body(after.p, after.n, false, &want);
			ck_assert_uint_eq(want.lines_split,
					  (lengths[l] - 1) / MESSAGE_LINE_MAX);
			free(want.out.p);
			check_body_at_block(65535 - before[b], after.p, after.n,
					    false);
			free(after.p);
		}
	}
}
END_TEST

/* ---- the empty line between header and body ---- */

START_TEST(test_needs_separator)
{
	static const struct {
		const char *in;
		bool needs;
		off_t header_end;
	} cases[] = {
		{ "A: b\n\nbody\n", false, 8 },
		{ "A: b\nC: d\n", false, 12 },	/* header only, no body */
		{ "", false, 0 },
		{ "\nbody\n", false, 2 },
		{ "hello\n", true, 0 },
		{ " indented: x\n\n", true, 0 },
		{ "A: b\nnot a field\n\nbody\n", true, 6 },
		{ "A: b\n c\n:no name\n", true, 10 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct message m;
		spool_str(cases[i].in, false, &m);
		ck_assert_msg(m.needs_separator == cases[i].needs,
			      "case %zu", i);
		ck_assert_int_eq(m.header_end, cases[i].header_end);
		message_free(&m);
	}
}
END_TEST

START_TEST(test_emit_separator)
{
	struct emit_options o = {
		.prepend = "Date: d\r\n", .remove = remove_bcc,
	};

	assert_emitted("hello world\n", &o, "Date: d\r\n\r\nhello world\r\n");
	/* without it the indented line would continue the Date field */
	assert_emitted(" indented\n", &o, "Date: d\r\n\r\n indented\r\n");
	/* after the kept fields, Bcc removed before it */
	assert_emitted("To: a@x\nBcc: b@x\nSubject: s\nplain text\nmore\n",
		       &o, "Date: d\r\nTo: a@x\r\nSubject: s\r\n\r\n"
			   "plain text\r\nmore\r\n");
	/* a message that has its empty line gets no second one */
	assert_emitted("To: a@x\n\nbody\n", &o,
		       "Date: d\r\nTo: a@x\r\n\r\nbody\r\n");
	assert_emitted("To: a@x\n", &o, "Date: d\r\nTo: a@x\r\n");
	assert_emitted("hello\n", NULL, "\r\nhello\r\n");
	o.dot_stuff = true;
	assert_emitted(".dot\n", &o, "Date: d\r\n\r\n..dot\r\n");
}
END_TEST

START_TEST(test_emit_empty_message)
{
	struct emit_options o = { .prepend = "Date: d\r\nFrom: f@x\r\n" };
	struct message m;

	spool_str("", false, &m);
	ck_assert(!m.needs_separator);
	ck_assert_int_eq(message_emit_size(&m, &o), 20);
	message_free(&m);
	assert_emitted("", &o, "Date: d\r\nFrom: f@x\r\n");
	assert_emitted("", NULL, "");
	/* input that is only a dropped From_ line is empty too */
	assert_emitted("From x@y Mon Jan  1 00:00:00 2024\n", &o,
		       "Date: d\r\nFrom: f@x\r\n");
}
END_TEST

/* ---- replacing fields ---- */

static void assert_replaced(const char *in, const char *const *replace,
			    const struct emit_options *base, const char *want)
{
	struct emit_options o = { .replace = replace };

	if (base) {
		o = *base;
		o.replace = replace;
	}
	assert_emitted(in, &o, want);
}

START_TEST(test_emit_replace)
{
	static const char in[] = "From: root\nTo: a,\n b\nSubject: s\n\nbody\n";
	const char *none[3] = { NULL, NULL, NULL };
	const char *mid[3] = { NULL, "To: a@x.example,\r\n b@x.example\r\n", NULL };
	const char *ends[3] = { "From: root@x.example\r\n", NULL,
				"Subject: t\r\n" };

	assert_replaced(in, none, NULL,
			"From: root\r\nTo: a,\r\n b\r\nSubject: s\r\n\r\nbody\r\n");
	assert_replaced(in, mid, NULL,
			"From: root\r\nTo: a@x.example,\r\n b@x.example\r\n"
			"Subject: s\r\n\r\nbody\r\n");
	assert_replaced(in, ends, NULL,
			"From: root@x.example\r\nTo: a,\r\n b\r\n"
			"Subject: t\r\n\r\nbody\r\n");
}
END_TEST

START_TEST(test_emit_replace_with_other_options)
{
	static const char in[] = "Bcc: x\nTo: a\nCc: c\nbody line\n";
	const char *rep3[3] = { "Bcc: replaced\r\n", "To: a@x\r\n", "Cc: c@x\r\n" };
	struct emit_options o = {
		.prepend = "Date: d\r\n", .remove = remove_bcc, .dot_stuff = true,
	};

	/* Bcc stays removed though replaced; separator after the fields */
	assert_replaced(in, rep3, &o,
			"Date: d\r\nTo: a@x\r\nCc: c@x\r\n\r\nbody line\r\n");
	/* a replacement is dot-stuffed like the rest */
	rep3[1] = ".To: odd\r\n";
	o.remove = NULL;
	assert_replaced("To: a\n\n.b\n", rep3 + 1, &o,
			"Date: d\r\n..To: odd\r\n\r\n..b\r\n");
}
END_TEST

/* Replacing fields in a large message still sends large blocks, and the
 * size matches what is emitted. */
START_TEST(test_emit_replace_big)
{
	size_t len;
	char *in = make_body(1024 * 1024, &len);
	const char *replace[3] = { "To: replaced@x.example\r\n", NULL,
				   "Subject: a longer subject than before\r\n" };
	struct emit_options o = { .remove = remove_bcc, .replace = replace };
	struct message m;
	struct capture *c;
	char err[256] = "";
	static const char head[] = "To: replaced@x.example\r\n"
				   "Subject: a longer subject than before\r\n\r\n";

	ck_assert_msg(spool_pipe(in, len, 0, false, &m, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(m.nheaders, 3);
	c = emit_capture(&m, &o);
	ck_assert_int_eq(message_emit_size(&m, &o), (off_t)c->len);
	ck_assert_int_eq(memcmp(c->data, head, sizeof head - 1), 0);
	ck_assert_int_eq((off_t)(c->len - (sizeof head - 1)),
			 m.size - m.header_end);
	for (size_t i = 0; i + 1 < c->nblocks; i++)
		ck_assert_uint_ge(c->blocks[i], 16384);
	capture_free(c);
	message_free(&m);
	free(in);
}
END_TEST

START_TEST(test_emit_size_with_replace_and_separator)
{
	struct message m;
	const char *replace[2] = { "To: longer@x\r\n", NULL };
	struct emit_options o = { .replace = replace, .remove = remove_bcc };

	spool_str("To: a\nBcc: b\nno field\n", false, &m);
	ck_assert(m.needs_separator);
	/* +2 separator, To 7 -> 14, Bcc -8 */
	ck_assert_int_eq(message_emit_size(&m, &o), m.size + 2 + 7 - 8);
	ck_assert_int_eq(message_emit_size(&m, NULL), m.size + 2);
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
	TCase *lines = tcase_create("lines");

	tcase_set_timeout(spool, 60);
	tcase_set_timeout(hdr, 60);
	tcase_set_timeout(emit, 60);
	tcase_set_timeout(lines, 120);
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
	tcase_add_test(lines, test_body_long_lines);
	tcase_add_test(lines, test_header_long_lines_without_wsp);
	tcase_add_test(lines, test_header_long_subject_unfolds);
	tcase_add_test(lines, test_header_fold_position);
	tcase_add_test(lines, test_header_continuation_long);
	tcase_add_test(lines, test_long_line_that_is_no_field);
	tcase_add_test(lines, test_long_lines_at_read_boundaries);
	tcase_add_test(lines, test_nul_removed);
	tcase_add_test(lines, test_nul_at_read_boundary);
	tcase_add_test(lines, test_body_like_byte_model);
	tcase_add_test(lines, test_body_bytes_at_read_boundary);
	tcase_add_test(lines, test_body_long_line_across_read_boundary);
	tcase_add_test(hdr, test_needs_separator);
	tcase_add_test(emit, test_emit_separator);
	tcase_add_test(emit, test_emit_empty_message);
	tcase_add_test(emit, test_emit_replace);
	tcase_add_test(emit, test_emit_replace_with_other_options);
	tcase_add_test(emit, test_emit_replace_big);
	tcase_add_test(emit, test_emit_size_with_replace_and_separator);
	suite_add_tcase(s, spool);
	suite_add_tcase(s, hdr);
	suite_add_tcase(s, emit);
	suite_add_tcase(s, lines);
	return s;
}

int main(void)
{
	/* a writer thread may find the pipe closed after a lone dot */
	signal(SIGPIPE, SIG_IGN);
	return run_suite(message_suite());
}
