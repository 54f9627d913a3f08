/* Unit tests for `sendmail -bs`: whole SMTP sessions against smtpd_run in
 * a thread, over pipes or SOCK_SEQPACKET socketpairs (one write, one
 * read: the tests choose where the server's reads break the input), with
 * a deliver callback that records what it was handed. */
#include "autoconf.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "run_suite.h"
#include "message.h"
#include "smtpd.h"
#include "util.h"

#ifdef __SANITIZE_ADDRESS__
/* libasan exports it; GCC 12 ships no header declaring it. */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif

#define HOST "test.example"
#define GREETING "220 " HOST " ESMTP postbote\r\n"
#define EHLO_REPLY "250-" HOST "\r\n250-PIPELINING\r\n250-8BITMIME\r\n" \
	"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE\r\n"
#define DATA_GO "354 end data with <CR><LF>.<CR><LF>\r\n"
#define BYE "221 2.0.0 " HOST " closing connection\r\n"

/* A transaction up to the text: the commands, and the replies to them. */
#define OPEN "EHLO c\r\nMAIL FROM:<s@e.org>\r\nRCPT TO:<r@e.org>\r\n"
#define OPENED GREETING EHLO_REPLY "250 2.1.0 sender ok\r\n" \
	"250 2.1.5 recipient ok\r\n"

/* ------------------------------------------------ recording delivery */

#define RECORD_MAX 4

struct delivery {
	char *sender;
	struct strlist rcpts;
	char *text;            /* the spooled message, NUL-terminated */
	size_t len;
	bool body_8bit;
};

struct recorder {
	size_t calls;
	struct delivery got[RECORD_MAX];
	/* The result for call i; code 0: "250 2.0.0 queued as <i+1>". */
	struct smtpd_result answer[RECORD_MAX];
};

static char *read_spool(const struct message *msg, size_t *len)
{
	char *buf = xmalloc((size_t)msg->size + 1);
	ck_assert_int_eq(pread(msg->fd, buf, (size_t)msg->size, 0), msg->size);
	buf[msg->size] = '\0';
	*len = (size_t)msg->size;
	return buf;
}

static void record(void *ctx, const struct smtpd_message *m,
		   struct smtpd_result *r)
{
	struct recorder *rec = ctx;
	size_t i = rec->calls++;
	struct delivery *d = &rec->got[i];

	ck_assert_uint_lt(i, RECORD_MAX);
	d->sender = xstrdup(m->sender);
	for (size_t k = 0; k < m->nrcpts; k++)
		strlist_add(&d->rcpts, m->rcpts[k]);
	d->text = read_spool(m->msg, &d->len);
	d->body_8bit = m->body_8bit_declared;
	if (rec->answer[i].code != 0) {
		*r = rec->answer[i];
	} else {
		r->code = 250;
		strcpy(r->enhanced, "2.0.0");
		snprintf(r->text, sizeof r->text, "queued as %zu", i + 1);
	}
}

static void recorder_free(struct recorder *rec)
{
	for (size_t i = 0; i < rec->calls && i < RECORD_MAX; i++) {
		free(rec->got[i].sender);
		strlist_free(&rec->got[i].rcpts);
		free(rec->got[i].text);
	}
}

/* ------------------------------------------------------ the harness */

struct server {
	int in_fd, out_fd;
	struct smtpd_options opt;
	int rc;
};

/* Closing out_fd after the session lets the test read to end of file. */
static void *server_main(void *arg)
{
	struct server *s = arg;
	s->rc = smtpd_run(s->in_fd, s->out_fd, &s->opt);
	close(s->out_fd);
	return NULL;
}

static void feed_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		ck_assert_int_gt(w, 0);
		p += w;
		n -= (size_t)w;
	}
}

static char *read_to_end(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = xmalloc(cap);

	for (;;) {
		ssize_t n;
		if (len + 1 == cap)
			buf = xrealloc(buf, cap *= 2);
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

struct run {
	size_t chunk;       /* 0: a pipe, written at once; else SOCK_SEQPACKET
			     * records of this many bytes, read one by one */
	bool keep_open;     /* no end of input until the session is over */
	int rc;
	char *output;       /* everything the server wrote */
};

static void input_channel(const struct run *r, int fds[2])
{
	if (r->chunk)
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), 0);
	else
		ck_assert_int_eq(pipe(fds), 0);
}

static void send_input(const struct run *r, int fd, const char *input)
{
	size_t len = strlen(input);

	if (!r->chunk) {
		feed_all(fd, input, len);
		return;
	}
	for (size_t off = 0; off < len; off += r->chunk) {
		size_t n = len - off < r->chunk ? len - off : r->chunk;
		ck_assert_int_eq(write(fd, input + off, n), (ssize_t)n);
	}
}

/* Runs one session on input; the options default to HOST, no limits and
 * the recorder. */
static void run_session(struct run *r, const struct smtpd_options *opt,
			struct recorder *rec, const char *input)
{
	struct server s = { .opt = { .hostname = HOST, .deliver = record,
				     .ctx = rec } };
	int in[2], out[2];
	pthread_t t;

	if (opt)
		s.opt = *opt;
	input_channel(r, in);
	ck_assert_int_eq(pipe(out), 0);
	s.in_fd = in[0];
	s.out_fd = out[1];
	ck_assert_int_eq(pthread_create(&t, NULL, server_main, &s), 0);
	send_input(r, in[1], input);
	if (!r->keep_open)
		close(in[1]);
	r->output = read_to_end(out[0]);
	pthread_join(t, NULL);
	if (r->keep_open)
		close(in[1]);
	close(in[0]);
	close(out[0]);
	r->rc = s.rc;
}

/* Input as a pipe written at once; returns the output (caller frees). */
static char *session(const char *input, struct recorder *rec, int *rc)
{
	struct run r = { 0 };
	run_session(&r, NULL, rec, input);
	*rc = r.rc;
	return r.output;
}

static struct smtpd_options options(struct recorder *rec)
{
	return (struct smtpd_options){ .hostname = HOST, .deliver = record,
				       .ctx = rec };
}

/* ------------------------------------------------------ full session */

static const char full_input[] =
	"EHLO client.example\r\n"
	"MAIL FROM:<sender@example.org> BODY=8BITMIME\r\n"
	"RCPT TO:<a@example.org>\r\n"
	"RCPT TO:<b@example.org>\r\n"
	"RCPT TO:<A@example.org>\r\n"
	"DATA\r\n"
	"Subject: hello\r\n"
	"\r\n"
	"..leading dot\r\n"
	"...two dots\n"
	"plain line\n"
	"..\r\n"
	". space\n"
	"last\n"
	".\r\n"
	"QUIT\r\n";

static const char full_delivered[] =
	"Subject: hello\r\n\r\n.leading dot\r\n..two dots\r\nplain line\r\n"
	".\r\n space\r\nlast\r\n";

static const char full_output[] =
	GREETING EHLO_REPLY
	"250 2.1.0 sender ok\r\n"
	"250 2.1.5 recipient ok\r\n"
	"250 2.1.5 recipient ok\r\n"
	"250 2.1.5 recipient already given\r\n"
	DATA_GO
	"250 2.0.0 queued as 1\r\n"
	BYE;

static void check_full_session(const struct run *r, struct recorder *rec)
{
	ck_assert_int_eq(r->rc, 0);
	ck_assert_str_eq(r->output, full_output);
	ck_assert_uint_eq(rec->calls, 1);
	ck_assert_str_eq(rec->got[0].sender, "sender@example.org");
	ck_assert_uint_eq(rec->got[0].rcpts.n, 2);
	ck_assert_str_eq(rec->got[0].rcpts.v[0], "a@example.org");
	ck_assert_str_eq(rec->got[0].rcpts.v[1], "b@example.org");
	ck_assert(rec->got[0].body_8bit);
	ck_assert_uint_eq(rec->got[0].len, strlen(full_delivered));
	ck_assert_str_eq(rec->got[0].text, full_delivered);
}

START_TEST(full_session)
{
	struct recorder rec = { 0 };
	struct run r = { 0 };

	run_session(&r, NULL, &rec, full_input);
	check_full_session(&r, &rec);
	free(r.output);
	recorder_free(&rec);
}
END_TEST

/* Every read returns one byte: a '.', CR or LF at the edge of a read must
 * be carried over correctly, and a command may arrive in pieces. */
START_TEST(full_session_byte_by_byte)
{
	struct recorder rec = { 0 };
	struct run r = { .chunk = 1 };

	run_session(&r, NULL, &rec, full_input);
	check_full_session(&r, &rec);
	free(r.output);
	recorder_free(&rec);
}
END_TEST

START_TEST(two_messages_with_rset)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(
		"EHLO c\r\n"
		"MAIL FROM:<one@example.org>\r\nRCPT TO:<x@example.org>\r\n"
		"DATA\r\nSubject: 1\r\n\r\nfirst\r\n.\r\n"
		"MAIL FROM:<abandoned@example.org>\r\nRCPT TO:<gone@example.org>\r\n"
		"RSET\r\n"
		"MAIL FROM:<>\r\nRCPT TO:<y@example.org>\r\nRCPT TO:<root>\r\n"
		"DATA\r\nSubject: 2\r\n\r\nsecond\r\n.\r\n"
		"QUIT\r\n", &rec, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, GREETING EHLO_REPLY
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n" DATA_GO
		"250 2.0.0 queued as 1\r\n"
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n"
		"250 2.0.0 reset\r\n"
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n"
		"250 2.1.5 recipient ok\r\n" DATA_GO
		"250 2.0.0 queued as 2\r\n" BYE);
	ck_assert_uint_eq(rec.calls, 2);
	ck_assert_str_eq(rec.got[0].text, "Subject: 1\r\n\r\nfirst\r\n");
	ck_assert_str_eq(rec.got[1].text, "Subject: 2\r\n\r\nsecond\r\n");
	ck_assert_str_eq(rec.got[1].sender, "");
	ck_assert_uint_eq(rec.got[1].rcpts.n, 2);
	ck_assert_str_eq(rec.got[1].rcpts.v[0], "y@example.org");
	ck_assert_str_eq(rec.got[1].rcpts.v[1], "root");
	ck_assert(!rec.got[1].body_8bit);
	free(out);
	recorder_free(&rec);
}
END_TEST

/* ------------------------------------------------------- pipelining */

/* All of a session in one record: one read holds every command and the
 * text, and the replies still come in order, one per command. */
START_TEST(pipelined_in_one_write)
{
	static const char input[] =
		"EHLO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\n"
		"DATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n";
	struct recorder rec = { 0 };
	struct run r = { .chunk = sizeof input - 1 };

	run_session(&r, NULL, &rec, input);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_str_eq(r.output, GREETING EHLO_REPLY
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n" DATA_GO
		"250 2.0.0 queued as 1\r\n250 2.0.0 reset\r\n250 2.0.0 ok\r\n" BYE);
	ck_assert_str_eq(rec.got[0].text, "Subject: p\r\n\r\nbody\r\n");
	free(r.output);
	recorder_free(&rec);
}
END_TEST

/* Reads from fd until the output so far contains needle; fails the test
 * after 5 s. */
static void expect(int fd, char *buf, size_t cap, size_t *len,
		   const char *needle)
{
	while (!strstr(buf, needle)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		ck_assert_msg(poll(&p, 1, 5000) == 1, "no \"%s\" in \"%s\"",
			      needle, buf);
		n = read(fd, buf + *len, cap - 1 - *len);
		ck_assert_int_gt(n, 0);
		*len += (size_t)n;
		buf[*len] = '\0';
	}
}

/* RFC 2920 3.2: the server answers a group without waiting for more and
 * flushes before it blocks: the greeting comes unasked, and the 354 after
 * one write of EHLO..DATA, while the client sends nothing else. */
START_TEST(pipelined_replies_flushed_before_waiting)
{
	struct recorder rec = { 0 };
	struct server s = { .opt = options(&rec) };
	int in[2], out[2];
	char buf[4096] = "";
	size_t len = 0;
	pthread_t t;
	static const char group[] = "EHLO c\r\nMAIL FROM:<s@example.org>\r\n"
		"RCPT TO:<r1@example.org>\r\nRCPT TO:<r2@example.org>\r\nDATA\r\n";

	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	s.in_fd = in[0];
	s.out_fd = out[1];
	ck_assert_int_eq(pthread_create(&t, NULL, server_main, &s), 0);
	expect(out[0], buf, sizeof buf, &len, GREETING);
	feed_all(in[1], group, strlen(group));
	expect(out[0], buf, sizeof buf, &len, DATA_GO);
	ck_assert_str_eq(buf, GREETING EHLO_REPLY "250 2.1.0 sender ok\r\n"
			 "250 2.1.5 recipient ok\r\n250 2.1.5 recipient ok\r\n"
			 DATA_GO);
	feed_all(in[1], "text\r\n.\r\n", 9);
	expect(out[0], buf, sizeof buf, &len, "queued as 1\r\n");
	feed_all(in[1], "QUIT\r\n", 6);
	expect(out[0], buf, sizeof buf, &len, BYE);
	pthread_join(t, NULL);
	ck_assert_int_eq(s.rc, 0);
	ck_assert_str_eq(rec.got[0].text, "text\r\n");
	close(in[0]);
	close(in[1]);
	close(out[0]);
	recorder_free(&rec);
}
END_TEST

/* ------------------------------------------------ delivery's result */

START_TEST(delivery_temporary_and_permanent_failures)
{
	struct recorder rec = { .answer = {
		{ 451, "4.7.0", "upstream says try later" },
		{ 554, "5.7.1", "rejected by upstream" },
	} };
	int rc;
	char *out = session(
		"EHLO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\n"
		"DATA\r\nx\r\n.\r\n"
		"MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\n"
		"DATA\r\ny\r\n.\r\nQUIT\r\n", &rec, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, GREETING EHLO_REPLY
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n" DATA_GO
		"451 4.7.0 upstream says try later\r\n"
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n" DATA_GO
		"554 5.7.1 rejected by upstream\r\n" BYE);
	ck_assert_uint_eq(rec.calls, 2);
	free(out);
	recorder_free(&rec);
}
END_TEST

/* Text from the delivery (an upstream server's words) cannot forge a
 * reply: line ends become spaces, controls and 8-bit bytes '?'; a wrong
 * or missing enhanced code becomes X.0.0; no code at all is 451. */
START_TEST(delivery_result_made_safe)
{
	struct recorder rec = { .answer = {
		{ 550, "4.1.1", "bad\r\n250 2.0.0 forged\x01\xc3\xa4" },
		{ 250, "", "" },
	} };
	struct run r = { 0 };
	struct smtpd_options opt = options(&rec);

	rec.answer[2] = (struct smtpd_result){ .code = 399 };
	run_session(&r, &opt, &rec,
		"EHLO c\r\n"
		"MAIL FROM:<s@e.org>\r\nRCPT TO:<r@e.org>\r\nDATA\r\nx\r\n.\r\n"
		"MAIL FROM:<s@e.org>\r\nRCPT TO:<r@e.org>\r\nDATA\r\nx\r\n.\r\n"
		"MAIL FROM:<s@e.org>\r\nRCPT TO:<r@e.org>\r\nDATA\r\nx\r\n.\r\n"
		"QUIT\r\n");
	ck_assert_ptr_nonnull(strstr(r.output,
		DATA_GO "550 5.0.0 bad  250 2.0.0 forged???\r\n"));
	ck_assert_ptr_nonnull(strstr(r.output,
		DATA_GO "250 2.0.0 message accepted\r\n"));
	ck_assert_ptr_nonnull(strstr(r.output, DATA_GO
		"451 4.3.0 delivery gave no usable result (code 399)\r\n"));
	free(r.output);
	recorder_free(&rec);
}
END_TEST

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF. */
START_TEST(delivery_long_text_cut_to_one_line)
{
	struct recorder rec = { .answer = { { 451, "4.4.1", "" } } };
	int rc;
	char *out, *line, *end;

	memset(rec.answer[0].text, 'w', sizeof rec.answer[0].text - 1);
	out = session(OPEN "DATA\r\nx\r\n.\r\nQUIT\r\n", &rec, &rc);
	line = strstr(out, "451 4.4.1 www");
	ck_assert_ptr_nonnull(line);
	end = strstr(line, "\r\n");
	ck_assert_int_eq(end + 2 - line, SMTPD_REPLY_MAX);
	ck_assert(memcmp(end - 3, "...", 3) == 0);
	ck_assert_ptr_nonnull(strstr(end, BYE));
	free(out);
	recorder_free(&rec);
}
END_TEST

START_TEST(no_deliver_callback)
{
	struct recorder rec = { 0 };
	struct smtpd_options opt = options(&rec);
	struct run r = { 0 };

	opt.deliver = NULL;
	run_session(&r, &opt, &rec, "HELO c\r\nMAIL FROM:<s@e.org>\r\n"
		    "RCPT TO:<r@e.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	ck_assert_ptr_nonnull(strstr(r.output,
		DATA_GO "451 4.3.5 no delivery is configured\r\n"));
	ck_assert_int_eq(r.rc, 0);
	free(r.output);
}
END_TEST

/* --------------------------------------------------------- SIZE */

START_TEST(size_limit)
{
	struct recorder rec = { 0 };
	struct smtpd_options opt = options(&rec);
	struct run r = { 0 };
	char input[1024], big[151];

	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	opt.size_max = 100;
	snprintf(input, sizeof input,
		 "EHLO c\r\n"
		 "MAIL FROM:<s@e.org> SIZE=101\r\n"
		 "MAIL FROM:<s@e.org> SIZE=100\r\nRCPT TO:<r@e.org>\r\n"
		 "DATA\r\n%s\r\n.\r\n"
		 "MAIL FROM:<s@e.org> SIZE=99999999999999999999\r\n"
		 "MAIL FROM:<s@e.org> SIZE=12x\r\n"
		 "MAIL FROM:<s@e.org>\r\nRCPT TO:<r@e.org>\r\n"
		 "DATA\r\n%.98s\r\n.\r\nQUIT\r\n", big, big);
	run_session(&r, &opt, &rec, input);
	ck_assert_str_eq(r.output, GREETING
		"250-" HOST "\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
		"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 100\r\n"
		"552 5.3.4 message size exceeds the limit of 100 octets\r\n"
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n" DATA_GO
		"552 5.3.4 message exceeds the size limit of 100 octets\r\n"
		"552 5.3.4 message size exceeds the limit of 100 octets\r\n"
		"501 5.5.4 SIZE needs a number of octets\r\n"
		"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n" DATA_GO
		"250 2.0.0 queued as 1\r\n" BYE);
	/* exactly 100 octets (98 + CRLF) is within the limit */
	ck_assert_uint_eq(rec.calls, 1);
	ck_assert_uint_eq(rec.got[0].len, 100);
	free(r.output);
	recorder_free(&rec);
}
END_TEST

/* ------------------------------------------------- MAIL parameters */

START_TEST(mail_and_rcpt_parameters)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(
		"EHLO c\r\n"
		"MAIL FROM:<s@e.org> FOO=bar\r\n"
		"MAIL FROM:<s@e.org> BODY=BINARYMIME\r\n"
		"MAIL FROM:<s@e.org> SMTPUTF8=yes\r\n"
		"MAIL FROM:<s@e.org> size=10  body=7bit smtputf8\r\n"
		"RCPT TO:<r@e.org> NOTIFY=NEVER\r\n"
		"RCPT TO:<r@e.org> ORCPT=rfc822;r@e.org\r\n"
		"RSET\r\n"
		"HELO c\r\n"
		"MAIL FROM:<s@e.org> SIZE=10\r\n"
		"QUIT\r\n", &rec, &rc);

	ck_assert_str_eq(out, GREETING EHLO_REPLY
		"555 5.5.4 unsupported parameter FOO\r\n"
		"501 5.5.4 BODY must be 7BIT or 8BITMIME\r\n"
		"501 5.5.4 SMTPUTF8 takes no value\r\n"
		"250 2.1.0 sender ok\r\n"
		"555 5.5.4 unsupported parameter NOTIFY\r\n"
		"555 5.5.4 unsupported parameter ORCPT\r\n"
		"250 2.0.0 reset\r\n"
		"250 " HOST "\r\n"
		"555 5.5.4 unsupported parameter SIZE\r\n" BYE);
	free(out);
}
END_TEST

/* ----------------------------------------------- command sequence */

START_TEST(commands_out_of_sequence)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(
		"MAIL FROM:<s@e.org>\r\n"
		"EHLO c\r\n"
		"RCPT TO:<r@e.org>\r\n"
		"DATA\r\n"
		"MAIL FROM:<s@e.org>\r\n"
		"MAIL FROM:<t@e.org>\r\n"
		"DATA\r\n"
		"RCPT TO:<r@e.org>\r\n"
		"DATA now\r\n"
		"QUIT\r\n", &rec, &rc);

	ck_assert_str_eq(out, GREETING
		"503 5.5.1 send EHLO or HELO first\r\n"
		EHLO_REPLY
		"503 5.5.1 need MAIL before RCPT\r\n"
		"503 5.5.1 need MAIL and RCPT before DATA\r\n"
		"250 2.1.0 sender ok\r\n"
		"503 5.5.1 nested MAIL command\r\n"
		"554 5.5.1 no valid recipients\r\n"
		"250 2.1.5 recipient ok\r\n"
		"501 5.5.4 DATA takes no arguments\r\n" BYE);
	ck_assert_uint_eq(rec.calls, 0);
	ck_assert_int_eq(rc, 0);
	free(out);
}
END_TEST

/* A later EHLO ends the transaction like RSET (RFC 5321 4.1.4). */
START_TEST(ehlo_resets_transaction)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(OPEN "EHLO again\r\nDATA\r\nRCPT TO:<r@e.org>\r\n"
			    "QUIT\r\n", &rec, &rc);

	ck_assert_str_eq(out, OPENED EHLO_REPLY
		"503 5.5.1 need MAIL and RCPT before DATA\r\n"
		"503 5.5.1 need MAIL before RCPT\r\n" BYE);
	free(out);
}
END_TEST

START_TEST(other_commands)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(
		"ehlo c\r\n"
		"EHLO\r\n"
		"HELO\r\n"
		"noop whatever\r\n"
		"VRFY root\r\n"
		"VRFY\r\n"
		"EXPN staff\r\n"
		"HELP\r\n"
		"STARTTLS\r\n"
		"AUTH PLAIN AGZvbwBiYXI=\r\n"
		"BDAT 10 LAST\r\n"
		"FROB\r\n"
		"\r\n"
		"RSET now\r\n"
		"Rset\r\n"
		"quit\r\n", &rec, &rc);

	ck_assert_str_eq(out, GREETING EHLO_REPLY
		"501 syntax: EHLO domain\r\n"
		"501 syntax: HELO domain\r\n"
		"250 2.0.0 ok\r\n"
		"252 2.5.0 cannot verify, but will accept mail and attempt "
		"delivery\r\n"
		"501 5.5.4 syntax: VRFY address\r\n"
		"502 5.5.1 command not implemented\r\n"
		"214 2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT "
		"VRFY HELP\r\n"
		"502 5.5.1 command not implemented\r\n"
		"502 5.5.1 command not implemented\r\n"
		"502 5.5.1 command not implemented\r\n"
		"500 5.5.2 command not recognized\r\n"
		"500 5.5.2 command not recognized\r\n"
		"501 5.5.4 RSET takes no arguments\r\n"
		"250 2.0.0 reset\r\n" BYE);
	ck_assert_int_eq(rc, 0);
	free(out);
}
END_TEST

/* The string literal above cannot carry the NUL through strlen, so this
 * session is written with an explicit length. */
START_TEST(nul_byte_in_command)
{
	static const char input[] = "EHLO c\r\nNOOP\0QUIT\r\nQUIT\r\n";
	struct recorder rec = { 0 };
	struct server s = { .opt = options(&rec) };
	int in[2], out[2];
	pthread_t t;
	char *output;

	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	s.in_fd = in[0];
	s.out_fd = out[1];
	ck_assert_int_eq(pthread_create(&t, NULL, server_main, &s), 0);
	feed_all(in[1], input, sizeof input - 1);
	close(in[1]);
	output = read_to_end(out[0]);
	pthread_join(t, NULL);
	ck_assert_str_eq(output, GREETING EHLO_REPLY
			 "500 5.5.2 NUL byte in command\r\n" BYE);
	ck_assert_int_eq(s.rc, 0);
	free(output);
	close(in[0]);
	close(out[0]);
}
END_TEST

/* --------------------------------------------------------- addresses */

START_TEST(addresses)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(
		"EHLO c\r\n"
		"MAIL FROM:<a b@e.org>\r\n"
		"MAIL FROM:<@relay.example:@e.org>\r\n"
		"MAIL FROM:s@e.org\r\n"
		"MAIL FROM:<s@e.org>junk\r\n"
		"MAIL FROM:<s@e.org\r\n"
		"MAIL FROM: <@relay.example,@[IPv6:::1]:s@e.org>\r\n"
		"RCPT TO:<>\r\n"
		"RCPT TO:<r@>\r\n"
		"RCPT TO:<r@e.org@f.org>\r\n"
		"RCPT TO:<r\x01@e.org>\r\n"
		"RCPT TO:<j\xc3\xb6rg@e.org>\r\n"
		"RCPT TO:<\"odd>name\"@e.org>\r\n"
		"rcpt to:<Postmaster>\r\n"
		"DATA\r\nx\r\n.\r\n"
		"MAIL FROM:<s@e.org> SMTPUTF8\r\n"
		"RCPT TO:<j\xc3\xb6rg@e.org>\r\n"
		"QUIT\r\n", &rec, &rc);

	ck_assert_str_eq(out, GREETING EHLO_REPLY
		"553 5.1.7 bad sender address: address contains an unquoted "
		"space (0x20) at position 2\r\n"
		"553 5.1.7 bad sender address: address has an empty local part\r\n"
		"501 5.5.4 syntax: MAIL FROM:<address>\r\n"
		"501 5.5.4 syntax: MAIL FROM:<address>\r\n"
		"501 5.5.4 syntax: MAIL FROM:<address>\r\n"
		"250 2.1.0 sender ok\r\n"
		"501 5.1.3 empty recipient address\r\n"
		"553 5.1.3 bad recipient address: address has an empty domain\r\n"
		"553 5.1.3 bad recipient address: address contains a second '@' "
		"at position 8\r\n"
		"553 5.1.3 bad recipient address: address contains a control "
		"character (0x01) at position 2\r\n"
		"553 5.6.7 non-ASCII recipient address needs MAIL ... SMTPUTF8\r\n"
		"250 2.1.5 recipient ok\r\n"
		"250 2.1.5 recipient ok\r\n"
		DATA_GO "250 2.0.0 queued as 1\r\n"
		"250 2.1.0 sender ok\r\n"
		"250 2.1.5 recipient ok\r\n" BYE);
	ck_assert_str_eq(rec.got[0].sender, "s@e.org");
	ck_assert_uint_eq(rec.got[0].rcpts.n, 2);
	ck_assert_str_eq(rec.got[0].rcpts.v[0], "\"odd>name\"@e.org");
	ck_assert_str_eq(rec.got[0].rcpts.v[1], "Postmaster");
	free(out);
	recorder_free(&rec);
}
END_TEST

/* RFC 5321 4.5.3.1.10: past the limit, 452 4.5.3; those accepted are
 * delivered. A recipient given again is not counted twice. */
START_TEST(too_many_recipients)
{
	struct recorder rec = { 0 };
	size_t cap = 64 * (SMTPD_RCPT_MAX + 10), len = 0;
	char *input = xmalloc(cap), *out, *p;
	int rc;
	size_t ok = 0;

	len += (size_t)snprintf(input, cap, "EHLO c\r\nMAIL FROM:<s@e.org>\r\n"
				"RCPT TO:<r0@e.org>\r\n");
	for (int i = 0; i < SMTPD_RCPT_MAX + 1; i++)
		len += (size_t)snprintf(input + len, cap - len,
					"RCPT TO:<r%d@e.org>\r\n", i);
	snprintf(input + len, cap - len, "DATA\r\nx\r\n.\r\nQUIT\r\n");
	out = session(input, &rec, &rc);
	for (p = out; (p = strstr(p, "250 2.1.5 recipient ok\r\n")); p++)
		ok++;
	ck_assert_uint_eq(ok, SMTPD_RCPT_MAX);
	ck_assert_ptr_nonnull(strstr(out, "250 2.1.5 recipient already given\r\n"
				     "250 2.1.5 recipient ok\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "250 2.1.5 recipient ok\r\n"
				     "452 4.5.3 too many recipients\r\n" DATA_GO));
	ck_assert_uint_eq(rec.got[0].rcpts.n, SMTPD_RCPT_MAX);
	ck_assert_str_eq(rec.got[0].rcpts.v[SMTPD_RCPT_MAX - 1], "r999@e.org");
	free(out);
	free(input);
	recorder_free(&rec);
}
END_TEST

/* ------------------------------------------------------ line lengths */

static char *repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* RFC 5321 4.5.3.1.4: 512 octets with CRLF. A longer line is refused
 * whole: "QUIT" past the 512th octet must not run as a command. */
START_TEST(command_line_too_long)
{
	struct recorder rec = { 0 };
	char *x505 = repeat('x', 505), *x506 = repeat('x', 506);
	char *x507 = repeat('x', 507), *x4000 = repeat('x', 4000);
	char *input = xasprintf("EHLO c\r\n"
				"NOOP %s\r\n"       /* 510 + CRLF: fits */
				"NOOP %s\r\n"       /* 511 + CRLF: too long */
				"NOOP %s\n"         /* 511 + LF: too long too */
				"NOOP %sQUIT\r\n"   /* 512 + QUIT */
				"NOOP %s\r\n"
				"QUIT\r\n", x505, x506, x506, x507, x4000);
	int rc;
	char *out = session(input, &rec, &rc);

	ck_assert_str_eq(out, GREETING EHLO_REPLY
		"250 2.0.0 ok\r\n"
		"500 5.5.2 command line longer than 512 octets\r\n"
		"500 5.5.2 command line longer than 512 octets\r\n"
		"500 5.5.2 command line longer than 512 octets\r\n"
		"500 5.5.2 command line longer than 512 octets\r\n" BYE);
	ck_assert_int_eq(rc, 0);
	free(out);
	free(input);
	free(x505);
	free(x506);
	free(x507);
	free(x4000);
}
END_TEST

/* Message lines have no length limit here: the spooler splits lines
 * over 998 octets (RFC 5322 2.1.1) before anything is sent on. */
START_TEST(long_message_line_accepted)
{
	struct recorder rec = { 0 };
	char *line = repeat('y', 200000);
	char *input = xasprintf(OPEN "DATA\r\n.%s\r\n.\r\nQUIT\r\n",
				line);
	/* The spooler splits it into 998-octet lines (RFC 5322 2.1.1). */
	char *chunk = repeat('y', 998);
	char *want = xstrdup("");
	int rc;
	char *out = session(input, &rec, &rc);
	for (int i = 0; i < 200; i++) {
		char *next = xasprintf("%s%s\r\n", want, chunk);
		free(want);
		want = next;
	}
	{
		char *tail = repeat('y', 400);
		char *next = xasprintf("%s%s\r\n", want, tail);
		free(want);
		free(tail);
		want = next;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(rec.calls, 1);
	ck_assert_uint_eq(strlen(rec.got[0].text), strlen(want));
	ck_assert(memcmp(rec.got[0].text, want, strlen(want)) == 0);
	free(chunk);
	free(out);
	free(input);
	free(want);
	free(line);
	recorder_free(&rec);
}
END_TEST

/* A bare CR is text here; message_spool then ends the line there, so
 * nothing delivered has a bare CR: "a\rb" is two lines, ".\rc" a
 * dot-stuffed line "\rc", and "\r\r\n" two empty lines. */
START_TEST(bare_cr_in_text)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(OPEN "DATA\r\na\rb\r\n.\rc\r\n\r\r\n.\r\nQUIT\r\n",
			    &rec, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(rec.got[0].text, "a\r\nb\r\n\r\nc\r\n\r\n\r\n");
	free(out);
	recorder_free(&rec);
}
END_TEST

/* --------------------------------------------- end of input, timeout */

START_TEST(end_of_input_mid_data)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(OPEN "DATA\r\nSubject: cut\r\n\r\npartial text\r\n",
			    &rec, &rc);

	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(rec.calls, 0);
	ck_assert_str_eq(out, OPENED DATA_GO);
	free(out);
}
END_TEST

/* The lone dot without its line end is not the end of the text. */
START_TEST(end_of_input_after_dot_without_line_end)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session(OPEN "DATA\r\ntext\r\n.", &rec, &rc);

	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(rec.calls, 0);
	free(out);
}
END_TEST

START_TEST(end_of_input_without_quit)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session("EHLO c\r\nNOOP", &rec, &rc);

	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(out, GREETING EHLO_REPLY);
	free(out);
	out = session("", &rec, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(out, GREETING);
	free(out);
}
END_TEST

START_TEST(quit_returns_zero)
{
	struct recorder rec = { 0 };
	int rc;
	char *out = session("QUIT\r\nNOOP\r\n", &rec, &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, GREETING BYE);	/* nothing after QUIT runs */
	free(out);
}
END_TEST

START_TEST(idle_timeout)
{
	struct recorder rec = { 0 };
	struct smtpd_options opt = options(&rec);
	struct run r = { .keep_open = true };

	opt.idle_timeout_ms = 200;
	run_session(&r, &opt, &rec, "EHLO c\r\n");
	ck_assert_int_eq(r.rc, 1);
	ck_assert_str_eq(r.output, GREETING EHLO_REPLY
			 "421 4.4.2 " HOST " timeout, closing connection\r\n");
	free(r.output);
}
END_TEST

START_TEST(idle_timeout_mid_data)
{
	struct recorder rec = { 0 };
	struct smtpd_options opt = options(&rec);
	struct run r = { .keep_open = true };

	opt.idle_timeout_ms = 200;
	run_session(&r, &opt, &rec, OPEN "DATA\r\nSubject: slow\r\n\r\nhalf");
	ck_assert_int_eq(r.rc, 1);
	ck_assert_uint_eq(rec.calls, 0);
	ck_assert_ptr_nonnull(strstr(r.output, DATA_GO "421 4.4.2 " HOST
				     " timeout, closing connection\r\n"));
	free(r.output);
}
END_TEST

/* ------------------------------------------------ local failures */

START_TEST(spool_directory_missing)
{
	struct recorder rec = { 0 };
	struct smtpd_options opt = options(&rec);
	struct run r = { 0 };

	opt.tmpdir = "/nonexistent/postbote-test";
	run_session(&r, &opt, &rec, OPEN "DATA\r\nQUIT\r\n");
	ck_assert_int_eq(r.rc, 0);
	ck_assert_str_eq(r.output, OPENED "451 4.3.0 cannot create a spool file in "
		"/nonexistent/postbote-test: No such file or directory\r\n" BYE);
	ck_assert_uint_eq(rec.calls, 0);
	free(r.output);
}
END_TEST

/* message_spool refuses a header block over MESSAGE_HEADER_BLOCK_MAX; the
 * client hears why, and the session goes on. */
START_TEST(message_spool_failure)
{
	struct recorder rec = { 0 };
	size_t n = MESSAGE_HEADER_BLOCK_MAX / 9 + 10, len = 0;
	size_t cap = n * 9 + 256;
	char *input = xmalloc(cap);
	int rc;
	char *out;

	len += (size_t)snprintf(input, cap, OPEN "DATA\r\nX-Big: a\r\n");
	for (size_t i = 0; i < n; i++) {
		memcpy(input + len, " folded\r\n", 9);
		len += 9;
	}
	snprintf(input + len, cap - len, "\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n");
	out = session(input, &rec, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(rec.calls, 0);
	ck_assert_ptr_nonnull(strstr(out, DATA_GO "451 4.3.0 the message header "
				     "block is larger than"));
	ck_assert_ptr_nonnull(strstr(out, "\r\n250 2.0.0 ok\r\n" BYE));
	free(out);
	free(input);
}
END_TEST

START_TEST(write_error_returns_minus_one)
{
	struct smtpd_options opt = { .hostname = HOST };
	int in[2], out[2];

	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	feed_all(in[1], "EHLO c\r\n", 8);
	close(in[1]);
	close(out[0]);	/* nobody reads: EPIPE (SIGPIPE is ignored) */
	ck_assert_int_eq(smtpd_run(in[0], out[1], &opt), -1);
	close(in[0]);
	close(out[1]);
}
END_TEST

START_TEST(read_error_returns_minus_one)
{
	struct smtpd_options opt = { .hostname = HOST };
	int dir = open("/", O_RDONLY | O_DIRECTORY);
	int out[2];
	char *output;

	ck_assert_int_ge(dir, 0);
	ck_assert_int_eq(pipe(out), 0);
	ck_assert_int_eq(smtpd_run(dir, out[1], &opt), -1);	/* EISDIR */
	close(out[1]);
	output = read_to_end(out[0]);
	ck_assert_str_eq(output, GREETING);
	free(output);
	close(out[0]);
	close(dir);
}
END_TEST

START_TEST(unsafe_hostname_replaced)
{
	struct recorder rec = { 0 };
	struct smtpd_options opt = options(&rec);
	struct run r = { 0 };

	opt.hostname = "evil\r\n250 forged";
	run_session(&r, &opt, &rec, "QUIT\r\n");
	ck_assert_str_eq(r.output, "220 localhost ESMTP postbote\r\n"
			 "221 2.0.0 localhost closing connection\r\n");
	free(r.output);
	opt.hostname = NULL;
	run_session(&r, &opt, &rec, "HELO c\r\n");
	ck_assert_str_eq(r.output, "220 localhost ESMTP postbote\r\n"
			 "250 localhost\r\n");
	free(r.output);
}
END_TEST

/* ------------------------------------------- a 5 MB message, O(1) */

#define BIG_SIZE (5 * 1024 * 1024)
#define BIG_HEADER "Subject: big\r\n\r\n"

/* Line i on the wire and as delivered: every 10th starts with a dot
 * (stuffed on the wire), every 3rd ends in a bare LF. */
static size_t big_line(size_t i, bool wire, char *out)
{
	int n = snprintf(out, 128, "%s%sline %07zu abcdefghijklmnopqrstuvwxyz"
			 "0123456789%s", i % 10 == 0 ? "." : "",
			 i % 10 == 0 && wire ? "." : "",
			 i, wire && i % 3 == 0 ? "\n" : "\r\n");
	return (size_t)n;
}

struct big_check {
	size_t lines;
	size_t calls;
	bool matched;
	off_t size;
};

/* Compares the spool file with the expected text block by block. */
static void deliver_big(void *ctx, const struct smtpd_message *m,
			struct smtpd_result *r)
{
	struct big_check *c = ctx;
	char want[128], got[128];
	off_t off = (off_t)strlen(BIG_HEADER);

	c->calls++;
	c->size = m->msg->size;
	c->matched = pread(m->msg->fd, got, (size_t)off, 0) == off &&
		     memcmp(got, BIG_HEADER, (size_t)off) == 0;
	for (size_t i = 0; i < c->lines && c->matched; i++) {
		size_t n = big_line(i, false, want);
		c->matched = pread(m->msg->fd, got, n, off) == (ssize_t)n &&
			     memcmp(got, want, n) == 0;
		off += (off_t)n;
	}
	c->matched = c->matched && off == m->msg->size;
	r->code = 250;
	strcpy(r->enhanced, "2.0.0");
	strcpy(r->text, "big one queued");
}

/* Heap bytes in use in this process (every thread). */
static size_t heap_in_use(void)
{
#ifdef __SANITIZE_ADDRESS__
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

/* Writes the text in 64 KiB blocks; once 4 MB have gone through the pipe
 * (which holds 64 KiB), the heap must not have grown by anything near
 * that: the text goes to the spool file as it arrives. */
static size_t send_big_text(int fd, struct big_check *c, size_t baseline)
{
	char *block = xmalloc(64 * 1024 + 128);
	size_t len = 0, sent = 0, growth = 0;
	bool measured = false;

	for (c->lines = 0; sent + len < BIG_SIZE; c->lines++) {
		len += big_line(c->lines, true, block + len);
		if (len < 64 * 1024)
			continue;
		feed_all(fd, block, len);
		sent += len;
		len = 0;
		if (!measured && sent >= 4 * 1024 * 1024) {
			size_t now = heap_in_use();
			growth = now > baseline ? now - baseline : 0;
			measured = true;
		}
	}
	feed_all(fd, block, len);
	free(block);
	ck_assert(measured);
	return growth;
}

START_TEST(five_megabytes_constant_memory)
{
	struct big_check c = { 0 };
	struct server s = { .opt = { .hostname = HOST, .deliver = deliver_big,
				     .ctx = &c } };
	int in[2], out[2];
	pthread_t t;
	size_t baseline, growth;
	char *output;
	static const char start[] = OPEN "DATA\r\n" BIG_HEADER;

#ifndef __SANITIZE_ADDRESS__
	/* mallinfo2 counts the main arena only: keep the server there. */
	mallopt(M_ARENA_MAX, 1);
#endif
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	s.in_fd = in[0];
	s.out_fd = out[1];
	baseline = heap_in_use();
	ck_assert_int_eq(pthread_create(&t, NULL, server_main, &s), 0);
	feed_all(in[1], start, strlen(start));
	growth = send_big_text(in[1], &c, baseline);
	feed_all(in[1], ".\r\nQUIT\r\n", 9);
	close(in[1]);
	output = read_to_end(out[0]);
	pthread_join(t, NULL);
	ck_assert_msg(growth < 1024 * 1024, "heap grew by %zu bytes", growth);
	ck_assert_int_eq(s.rc, 0);
	ck_assert_uint_eq(c.calls, 1);
	ck_assert_int_ge(c.size, BIG_SIZE);
	ck_assert(c.matched);
	ck_assert_ptr_nonnull(strstr(output, DATA_GO "250 2.0.0 big one queued\r\n"
				     BYE));
	free(output);
	close(in[0]);
	close(out[0]);
}
END_TEST

static Suite *smtpd_suite(void)
{
	Suite *s = suite_create("smtpd");
	TCase *sess = tcase_create("session");
	TCase *cmd = tcase_create("commands");
	TCase *text = tcase_create("text");
	TCase *end = tcase_create("ending");

	tcase_add_test(sess, full_session);
	tcase_add_test(sess, full_session_byte_by_byte);
	tcase_add_test(sess, two_messages_with_rset);
	tcase_add_test(sess, pipelined_in_one_write);
	tcase_add_test(sess, pipelined_replies_flushed_before_waiting);
	tcase_add_test(sess, delivery_temporary_and_permanent_failures);
	tcase_add_test(sess, delivery_result_made_safe);
	tcase_add_test(sess, delivery_long_text_cut_to_one_line);
	tcase_add_test(sess, no_deliver_callback);
	tcase_add_test(cmd, size_limit);
	tcase_add_test(cmd, mail_and_rcpt_parameters);
	tcase_add_test(cmd, commands_out_of_sequence);
	tcase_add_test(cmd, ehlo_resets_transaction);
	tcase_add_test(cmd, other_commands);
	tcase_add_test(cmd, nul_byte_in_command);
	tcase_add_test(cmd, addresses);
	tcase_add_test(cmd, too_many_recipients);
	tcase_add_test(cmd, command_line_too_long);
	tcase_add_test(cmd, unsafe_hostname_replaced);
	tcase_add_test(text, long_message_line_accepted);
	tcase_add_test(text, bare_cr_in_text);
	tcase_add_test(text, message_spool_failure);
	tcase_add_test(text, spool_directory_missing);
	tcase_add_test(text, five_megabytes_constant_memory);
	tcase_add_test(end, end_of_input_mid_data);
	tcase_add_test(end, end_of_input_after_dot_without_line_end);
	tcase_add_test(end, end_of_input_without_quit);
	tcase_add_test(end, quit_returns_zero);
	tcase_add_test(end, idle_timeout);
	tcase_add_test(end, idle_timeout_mid_data);
	tcase_add_test(end, write_error_returns_minus_one);
	tcase_add_test(end, read_error_returns_minus_one);
	tcase_set_timeout(sess, 30);
	tcase_set_timeout(cmd, 30);
	tcase_set_timeout(text, 60);
	tcase_set_timeout(end, 30);
	suite_add_tcase(s, sess);
	suite_add_tcase(s, cmd);
	suite_add_tcase(s, text);
	suite_add_tcase(s, end);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return run_suite(smtpd_suite());
}
