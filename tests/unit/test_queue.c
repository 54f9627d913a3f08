#include "autoconf.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "run_suite.h"
#include "message.h"
#include "queue.h"
#include "util.h"

/* ---- helpers: a scratch queue, messages, files ---- */

/* queue.c's calls to flock(2) come here (the program's definition wins
 * over the C library's), so a test can act, as another process could,
 * between queue_claim's open and its flock. */
static void (*before_flock)(void);

int flock(int fd, int operation)
{
	void (*hook)(void) = before_flock;

	before_flock = NULL;
	if (hook)
		hook();
	return (int)syscall(SYS_flock, fd, operation);
}

static char base[64];
static char qdir[128];

static void queue_setup(void)
{
	char err[512] = "";

	strcpy(base, "/tmp/test_queue.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(qdir, sizeof qdir, "%s/state/postbote/queue", base);
	ck_assert_msg(queue_open(qdir, err, sizeof err) == 0, "%s", err);
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void queue_teardown(void)
{
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *path_of(const char *sub, const char *id, const char *ext)
{
	if (sub)
		return xasprintf("%s/%s/%s%s", qdir, sub, id, ext);
	return xasprintf("%s/%s%s", qdir, id, ext);
}

static bool exists(const char *sub, const char *id, const char *ext)
{
	char *p = path_of(sub, id, ext);
	bool ok = access(p, F_OK) == 0;
	free(p);
	return ok;
}

static char *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	char *buf;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = xmalloc((size_t)st.st_size + 1);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	close(fd);
	return buf;
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Names in dir ending in ext ("" for all but . and ..). */
static size_t count_files(const char *dir, const char *ext)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0, el = strlen(ext);

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (len >= el && strcmp(de->d_name + len - el, ext) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static size_t count_in(const char *sub, const char *ext)
{
	char *dir = sub ? xasprintf("%s/%s", qdir, sub) : xstrdup(qdir);
	size_t n = count_files(dir, ext);
	free(dir);
	return n;
}

static void make_old(const char *path)
{
	struct timespec t[2] = { { time(NULL) - 2 * QUEUE_STALE_AGE, 0 },
				 { time(NULL) - 2 * QUEUE_STALE_AGE, 0 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0);
}

static void spool(const char *text, struct message *m)
{
	char path[] = "/tmp/test_queue_in.XXXXXX";
	int fd = mkstemp(path);
	struct spool_options o = { .dot_ends_input = false };
	char err[256] = "";

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_msg(message_spool(fd, &o, m, err, sizeof err) == 0, "%s",
		      err);
	close(fd);
}

struct membuf {
	char *p;
	size_t len;
};

static int membuf_sink(void *ctx, const void *data, size_t len)
{
	struct membuf *b = ctx;
	b->p = xrealloc(b->p, b->len + len + 1);
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

static struct membuf emit_all(const struct message *m,
			      const struct emit_options *o)
{
	struct membuf b = { xstrdup(""), 0 };
	ck_assert_int_eq(message_emit(m, o, membuf_sink, &b), 0);
	return b;
}

static const char simple_text[] = "Subject: hello\r\n\r\nbody\r\n";

/* An entry as a caller would fill it in before queue_add. */
static void fill_entry(struct queue_entry *e)
{
	memset(e, 0, sizeof *e);
	e->account = xstrdup("work");
	e->sender = xstrdup("alice@example.org");
	strlist_add(&e->rcpts, "bob@example.net");
	strlist_add(&e->rcpts, "carol@example.net");
	e->dsn_notify = xstrdup("SUCCESS,FAILURE");
	e->dsn_ret = xstrdup("HDRS");
	e->dsn_envid = xstrdup("QQ314159");
	e->body_8bit = true;
	e->smtputf8 = true;
	e->attempts = 1;
	e->last_error = xstrdup("421 4.7.0 try again later");
}

/* Adds an entry with the given account name and the simple message. */
static void add_simple(const char *account, struct queue_entry *e)
{
	struct message m;
	char err[512] = "";

	spool(simple_text, &m);
	fill_entry(e);
	free(e->account);
	e->account = account ? xstrdup(account) : NULL;
	ck_assert_msg(queue_add(qdir, e, &m, NULL, err, sizeof err) == 0,
		      "%s", err);
	message_free(&m);
}

static size_t list_count(void)
{
	struct queue_entry *v;
	size_t n;
	char err[512] = "";

	ck_assert_msg(queue_list(qdir, &v, &n, err, sizeof err) == 0, "%s",
		      err);
	queue_entries_free(v, n);
	return n;
}

/* Claims every entry, due or not. */
static void claim_all(struct queue_entry **v, size_t *n)
{
	char err[512] = "";
	int rc = queue_claim(qdir, 0, true, v, n, err, sizeof err);
	ck_assert_msg(rc == 0, "rc %d: %s", rc, err);
}

/* queue_claim in a child process (its own open file descriptions and
 * its own process): how many entries it got. */
static int claim_in_child(bool force)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct queue_entry *v;
		size_t n;
		char err[512];
		int rc = queue_claim(qdir, time(NULL), force, &v, &n, err,
				     sizeof err);
		_exit(rc != 0 ? 100 : (int)n);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void assert_entries_equal(const struct queue_entry *a,
				 const struct queue_entry *b)
{
	ck_assert_str_eq(a->id, b->id);
	if (a->account || b->account)
		ck_assert_str_eq(a->account, b->account);
	ck_assert_str_eq(a->sender, b->sender);
	ck_assert_uint_eq(a->rcpts.n, b->rcpts.n);
	for (size_t i = 0; i < a->rcpts.n; i++)
		ck_assert_str_eq(a->rcpts.v[i], b->rcpts.v[i]);
	ck_assert_pstr_eq(a->dsn_notify, b->dsn_notify);
	ck_assert_pstr_eq(a->dsn_ret, b->dsn_ret);
	ck_assert_pstr_eq(a->dsn_envid, b->dsn_envid);
	ck_assert_pstr_eq(a->last_error, b->last_error);
	ck_assert_int_eq(a->body_8bit, b->body_8bit);
	ck_assert_int_eq(a->smtputf8, b->smtputf8);
	ck_assert_int_eq(a->created, b->created);
	ck_assert_int_eq(a->next_attempt, b->next_attempt);
	ck_assert_uint_eq(a->attempts, b->attempts);
	ck_assert_int_eq(a->size, b->size);
}

/* ---- adding and listing ---- */

START_TEST(test_add_list_round_trip)
{
	struct queue_entry e, *v;
	struct message m;
	size_t n, len;
	struct stat st;
	char err[512] = "";
	time_t before = time(NULL), after;
	char *p, *text;

	spool(simple_text, &m);
	fill_entry(&e);
	e.lock_fd = 42;
	ck_assert_msg(queue_add(qdir, &e, &m, NULL, err, sizeof err) == 0,
		      "%s", err);
	after = time(NULL);
	ck_assert_ptr_nonnull(e.id);
	ck_assert_int_eq(e.lock_fd, -1);
	ck_assert(e.created >= before && e.created <= after);
	ck_assert_int_eq(e.next_attempt, e.created + 5 * 60);
	ck_assert_int_eq(e.size, (off_t)strlen(simple_text));

	ck_assert_int_eq(queue_list(qdir, &v, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 1);
	assert_entries_equal(&v[0], &e);
	ck_assert_int_eq(v[0].lock_fd, -1);

	p = path_of(NULL, e.id, ".msg");
	text = read_all(p, &len);
	ck_assert_str_eq(text, simple_text);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 077, 0);
	free(text);
	free(p);
	p = path_of(NULL, e.id, ".env");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 077, 0);
	free(p);
	ck_assert_uint_eq(count_in("tmp", ""), 0);

	queue_entries_free(v, n);
	queue_entry_free(&e);
	message_free(&m);
}
END_TEST

START_TEST(test_round_trip_without_optional_fields)
{
	struct queue_entry e = { 0 }, *v;
	struct message m;
	size_t n;
	char err[512] = "";

	spool(simple_text, &m);
	e.sender = xstrdup("");	/* null reverse-path */
	strlist_add(&e.rcpts, "bob@example.net");
	ck_assert_msg(queue_add(qdir, &e, &m, NULL, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(queue_list(qdir, &v, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 1);
	assert_entries_equal(&v[0], &e);
	ck_assert_ptr_null(v[0].account);
	ck_assert_ptr_null(v[0].dsn_notify);
	ck_assert_ptr_null(v[0].last_error);
	ck_assert_str_eq(v[0].sender, "");
	ck_assert(!v[0].body_8bit && !v[0].smtputf8);
	ck_assert_uint_eq(v[0].attempts, 0);
	queue_entries_free(v, n);
	queue_entry_free(&e);
	message_free(&m);
}
END_TEST

/* The documented format, byte for byte. */
START_TEST(test_envelope_file_format)
{
	struct queue_entry e;
	size_t len;
	char *p, *text, *want;

	add_simple("work", &e);
	p = path_of(NULL, e.id, ".env");
	text = read_all(p, &len);
	want = xasprintf("postbote-queue 1\n"
			 "id %s\n"
			 "created %jd\n"
			 "next-attempt %jd\n"
			 "attempts 1\n"
			 "size %zu\n"
			 "account work\n"
			 "sender alice@example.org\n"
			 "body-8bit yes\n"
			 "smtputf8 yes\n"
			 "dsn-notify SUCCESS,FAILURE\n"
			 "dsn-ret HDRS\n"
			 "dsn-envid QQ314159\n"
			 "last-error 421 4.7.0 try again later\n"
			 "rcpt bob@example.net\n"
			 "rcpt carol@example.net\n"
			 "end\n",
			 e.id, (intmax_t)e.created, (intmax_t)e.next_attempt,
			 strlen(simple_text));
	ck_assert_str_eq(text, want);
	free(want);
	free(text);
	free(p);
	queue_entry_free(&e);
}
END_TEST

START_TEST(test_id_format)
{
	struct queue_entry e;
	char prefix[32];
	struct tm tm;
	char *pid_part;

	add_simple(NULL, &e);
	gmtime_r(&e.created, &tm);
	strftime(prefix, sizeof prefix, "%Y%m%dT%H%M%S.", &tm);
	ck_assert_msg(strncmp(e.id, prefix, strlen(prefix)) == 0, "%s", e.id);
	ck_assert_uint_le(strlen(e.id), QUEUE_ID_MAX);
	pid_part = xasprintf("Z-%ld-", (long)getpid());
	ck_assert_ptr_nonnull(strstr(e.id, pid_part));
	free(pid_part);
	ck_assert_uint_eq(strspn(e.id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "abcdefghijklmnopqrstuvwxyz.-"), strlen(e.id));
	queue_entry_free(&e);
}
END_TEST

START_TEST(test_list_oldest_first)
{
	struct queue_entry e[6], *v;
	size_t n;
	char err[512] = "";

	for (int i = 0; i < 6; i++) {
		char name[24];
		snprintf(name, sizeof name, "a%d", i);
		add_simple(name, &e[i]);
	}
	ck_assert_int_eq(queue_list(qdir, &v, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 6);
	for (int i = 0; i < 6; i++) {
		ck_assert_str_eq(v[i].id, e[i].id);
		if (i > 0)
			ck_assert_int_lt(strcmp(v[i - 1].id, v[i].id), 0);
		queue_entry_free(&e[i]);
	}
	queue_entries_free(v, n);
}
END_TEST

/* What is stored is what message_emit sends (Bcc gone, added and
 * replaced headers in), not dot-stuffed even when the options ask for it,
 * and it loads back as a message with the same bytes and a parsed header
 * block. */
START_TEST(test_stored_bytes_are_emitted_form)
{
	static const char text[] =
		"To: bob@example.net\r\nBcc: secret@example.net\r\n"
		"Subject: dots\r\n\r\n.leading dot\r\nbody\r\n";
	static const char *const remove[] = { "Bcc", NULL };
	static const char *const replace[] = {
		NULL, NULL, "Subject: replaced\r\n",
	};
	struct emit_options opt = {
		.prepend = "Message-ID: <1@example.org>\r\n",
		.remove = remove, .dot_stuff = true, .replace = replace,
	};
	struct emit_options plain = opt;
	struct queue_entry e;
	struct message m, loaded;
	struct membuf want, again;
	size_t len;
	char err[512] = "";
	char *p, *stored;

	spool(text, &m);
	fill_entry(&e);
	ck_assert_msg(queue_add(qdir, &e, &m, &opt, err, sizeof err) == 0,
		      "%s", err);
	plain.dot_stuff = false;
	want = emit_all(&m, &plain);
	ck_assert_ptr_null(strstr(want.p, "Bcc"));
	ck_assert_ptr_null(strstr(want.p, "dots"));
	ck_assert_ptr_nonnull(strstr(want.p, "\r\n.leading"));
	p = path_of(NULL, e.id, ".msg");
	stored = read_all(p, &len);
	ck_assert_uint_eq(len, want.len);
	ck_assert_int_eq(memcmp(stored, want.p, len), 0);
	ck_assert_int_eq(e.size, (off_t)len);

	ck_assert_msg(queue_load_message(qdir, &e, &loaded, err,
					 sizeof err) == 0, "%s", err);
	again = emit_all(&loaded, NULL);
	ck_assert_uint_eq(again.len, want.len);
	ck_assert_int_eq(memcmp(again.p, want.p, want.len), 0);
	ck_assert_ptr_nonnull(message_header_find(&loaded, "Message-ID"));
	ck_assert_str_eq(message_header_find(&loaded, "Subject")->value,
			 "replaced");
	ck_assert_ptr_null(message_header_find(&loaded, "Bcc"));

	message_free(&loaded);
	message_free(&m);
	free(again.p);
	free(want.p);
	free(stored);
	free(p);
	queue_entry_free(&e);
}
END_TEST

/* A message whose header block did not end in an empty line is stored
 * with the one message_emit adds; loaded back it needs none, so every
 * retry sends the stored bytes. */
START_TEST(test_stored_form_with_separator_round_trips)
{
	static const char *const inputs[] = {
		"From a b\nFrom b c\nSubject: x\n\nbody\n",
		"Subject: x\nnot a field\nbody\n",
		"no header at all\n",
	};

	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		struct queue_entry e;
		struct message m, loaded;
		struct membuf want, got;
		size_t len;
		char err[512] = "";
		char *p, *stored;

		spool(inputs[i], &m);
		ck_assert(m.needs_separator);
		fill_entry(&e);
		ck_assert_int_eq(queue_add(qdir, &e, &m, NULL, err, sizeof err),
				 0);
		want = emit_all(&m, NULL);
		p = path_of(NULL, e.id, ".msg");
		stored = read_all(p, &len);
		ck_assert_str_eq(stored, want.p);
		ck_assert_msg(queue_load_message(qdir, &e, &loaded, err,
						 sizeof err) == 0, "%s", err);
		got = emit_all(&loaded, NULL);
		ck_assert_str_eq(got.p, want.p);
		free(got.p);
		free(want.p);
		free(stored);
		free(p);
		message_free(&loaded);
		message_free(&m);
		queue_entry_free(&e);
	}
}
END_TEST

/* An entry written by hand (or by another version), envelope and message. */
static void write_handmade(const char *id, const char *msg)
{
	char *env = path_of(NULL, id, ".env");
	char *msgpath = path_of(NULL, id, ".msg");
	char *text = xasprintf("postbote-queue 1\nid %s\ncreated 946684800\n"
			       "next-attempt 946685100\nattempts 1\n"
			       "size %zu\nsender a@example.org\n"
			       "body-8bit no\nsmtputf8 no\n"
			       "rcpt b@example.org\nend\n", id, strlen(msg));

	write_file(msgpath, msg, strlen(msg));
	write_file(env, text, strlen(text));
	free(text);
	free(env);
	free(msgpath);
}

/* message_spool drops a first line that looks like an mbox From_ line; a
 * stored message starting with one (a caller's prepend, an older
 * version's entry) must load with that line. */
START_TEST(test_load_keeps_leading_from_line)
{
	static const char stored[] = "From b c\r\nSubject: x\r\n\r\nbody\r\n";
	struct queue_entry *v;
	struct message loaded;
	size_t n;
	char err[512] = "";
	char got[sizeof stored];

	write_handmade("20000101T000000.000000Z-1-f", stored);
	ck_assert_int_eq(queue_list(qdir, &v, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_msg(queue_load_message(qdir, &v[0], &loaded, err,
					 sizeof err) == 0, "%s", err);
	ck_assert_int_eq(loaded.size, (off_t)strlen(stored));
	ck_assert_int_eq(pread(loaded.fd, got, sizeof got, 0),
			 (ssize_t)strlen(stored));
	got[strlen(stored)] = '\0';
	ck_assert_str_eq(got, stored);
	ck_assert(!loaded.dropped_mbox_from);
	message_free(&loaded);
	queue_entries_free(v, n);
}
END_TEST

START_TEST(test_load_detects_changed_message_file)
{
	struct queue_entry e;
	struct message loaded;
	char err[512] = "";
	char *p;

	add_simple(NULL, &e);
	p = path_of(NULL, e.id, ".msg");
	ck_assert_int_eq(truncate(p, 5), 0);
	ck_assert_int_eq(queue_load_message(qdir, &e, &loaded, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "envelope says"));
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(queue_load_message(qdir, &e, &loaded, err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot open"));
	free(p);
	queue_entry_free(&e);
}
END_TEST

static void assert_refused(struct queue_entry *e, const char *why)
{
	struct message m;
	char err[512] = "";

	spool(simple_text, &m);
	ck_assert_int_eq(queue_add(qdir, e, &m, NULL, err, sizeof err), -1);
	ck_assert_msg(strstr(err, why) != NULL, "err: %s", err);
	ck_assert_ptr_null(e->id);
	ck_assert_uint_eq(count_in(NULL, ".env"), 0);
	ck_assert_uint_eq(count_in(NULL, ".msg"), 0);
	ck_assert_uint_eq(count_in("tmp", ""), 0);
	message_free(&m);
	queue_entry_free(e);
}

START_TEST(test_add_refuses_unsafe_values)
{
	struct queue_entry e;

	fill_entry(&e);
	free(e.rcpts.v[1]);
	e.rcpts.v[1] = xstrdup("carol@example.net\r\nrcpt mallory@evil");
	assert_refused(&e, "recipient 2");
	fill_entry(&e);
	free(e.sender);
	e.sender = xstrdup("alice@example.org\nrcpt x@y");
	assert_refused(&e, "sender");
	fill_entry(&e);
	free(e.account);
	e.account = xstrdup("wo\trk");
	assert_refused(&e, "account");
	fill_entry(&e);
	free(e.dsn_envid);
	e.dsn_envid = xstrdup("x\x7f");
	assert_refused(&e, "ENVID");
	fill_entry(&e);
	free(e.rcpts.v[0]);
	e.rcpts.v[0] = xstrdup("");
	assert_refused(&e, "recipient 1");
	fill_entry(&e);
	strlist_free(&e.rcpts);
	assert_refused(&e, "without recipients");
	fill_entry(&e);
	free(e.sender);
	e.sender = NULL;
	assert_refused(&e, "without a sender");
}
END_TEST

START_TEST(test_add_refuses_oversized_envelope)
{
	struct queue_entry e;
	char rcpt[128];

	fill_entry(&e);
	for (int i = 0; i < QUEUE_ENVELOPE_MAX / 50; i++) {
		snprintf(rcpt, sizeof rcpt, "recipient-number-%08d-with-a-long-"
			 "local-part@a-rather-long-domain.example.org", i);
		strlist_add(&e.rcpts, rcpt);
	}
	assert_refused(&e, "larger than");
}
END_TEST

START_TEST(test_last_error_made_one_line)
{
	struct queue_entry e, *v;
	struct message m;
	size_t n;
	char err[512] = "";
	char *long_text = xmalloc(3000);

	spool(simple_text, &m);
	fill_entry(&e);
	free(e.last_error);
	e.last_error = xstrdup("postbote: RCPT TO:<x@y> was refused:\r\n"
			       "  450-4.2.0 busy\n\t450 4.2.0 try later\n");
	ck_assert_int_eq(queue_add(qdir, &e, &m, NULL, err, sizeof err), 0);
	ck_assert_str_eq(e.last_error, "postbote: RCPT TO:<x@y> was refused: "
			 "450-4.2.0 busy 450 4.2.0 try later");
	ck_assert_int_eq(queue_list(qdir, &v, &n, err, sizeof err), 0);
	ck_assert_str_eq(v[0].last_error, e.last_error);
	queue_entries_free(v, n);
	queue_entry_free(&e);

	memset(long_text, 'x', 2999);
	long_text[2999] = '\0';
	long_text[QUEUE_ERROR_MAX - 4] = (char)0xc3;	/* UTF-8 'e' acute */
	long_text[QUEUE_ERROR_MAX - 3] = (char)0xa9;
	fill_entry(&e);
	free(e.last_error);
	e.last_error = long_text;
	ck_assert_int_eq(queue_add(qdir, &e, &m, NULL, err, sizeof err), 0);
	ck_assert_uint_le(strlen(e.last_error), QUEUE_ERROR_MAX);
	/* cut before the two-byte sequence, not inside it */
	ck_assert_uint_eq(strlen(e.last_error), QUEUE_ERROR_MAX - 1);
	ck_assert_str_eq(e.last_error + QUEUE_ERROR_MAX - 4, "...");
	queue_entry_free(&e);
	message_free(&m);
}
END_TEST

/* ---- claiming ---- */

START_TEST(test_claim_only_due_entries)
{
	struct queue_entry e, *v;
	size_t n;
	char err[512] = "";

	add_simple(NULL, &e);
	ck_assert_int_eq(queue_claim(qdir, e.next_attempt - 1, false, &v, &n,
				     err, sizeof err), 0);
	ck_assert_uint_eq(n, 0);
	queue_entries_free(v, n);
	ck_assert_int_eq(queue_claim(qdir, e.next_attempt, false, &v, &n,
				     err, sizeof err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_ge(v[0].lock_fd, 0);
	assert_entries_equal(&v[0], &e);
	queue_release(&v[0]);
	ck_assert_int_eq(v[0].lock_fd, -1);
	queue_entries_free(v, n);
	ck_assert_int_eq(queue_claim(qdir, e.created, true, &v, &n, err,
				     sizeof err), 0);
	ck_assert_uint_eq(n, 1);
	queue_entries_free(v, n);
	queue_entry_free(&e);
}
END_TEST

/* flock belongs to the open file description: a second claim in the same
 * process opens the file again and must not get the entry. */
START_TEST(test_claim_twice_in_one_process)
{
	struct queue_entry e1, e2, *v, *w;
	size_t n, k;

	add_simple("one", &e1);
	add_simple("two", &e2);
	claim_all(&v, &n);
	ck_assert_uint_eq(n, 2);
	claim_all(&w, &k);
	ck_assert_uint_eq(k, 0);
	queue_entries_free(w, k);
	queue_release(&v[0]);
	claim_all(&w, &k);
	ck_assert_uint_eq(k, 1);
	ck_assert_str_eq(w[0].id, e1.id);
	queue_entries_free(w, k);
	queue_entries_free(v, n);
	queue_entry_free(&e1);
	queue_entry_free(&e2);
}
END_TEST

START_TEST(test_claim_in_other_process)
{
	struct queue_entry e, *v;
	size_t n;

	add_simple(NULL, &e);
	claim_all(&v, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(claim_in_child(true), 0);
	queue_entries_free(v, n);	/* releases */
	ck_assert_int_eq(claim_in_child(true), 1);
	queue_entry_free(&e);
}
END_TEST

/* Several processes claim and remove ("deliver") at once: every entry is
 * delivered exactly once. */
START_TEST(test_concurrent_claims_deliver_once)
{
	enum { ENTRIES = 40, WORKERS = 4, ROUNDS = 3 };
	struct queue_entry e;
	int p[2], seen[ENTRIES] = { 0 }, total = 0;
	char line[64];
	FILE *in;

	for (int i = 0; i < ENTRIES; i++) {
		char name[24];
		snprintf(name, sizeof name, "%d", i);
		add_simple(name, &e);
		queue_entry_free(&e);
	}
	ck_assert_int_eq(pipe(p), 0);
	for (int w = 0; w < WORKERS; w++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid > 0)
			continue;
		close(p[0]);
		for (int r = 0; r < ROUNDS; r++) {
			struct queue_entry *v;
			size_t n;
			char err[512];
			if (queue_claim(qdir, 0, true, &v, &n, err,
					sizeof err) != 0)
				_exit(1);
			for (size_t i = 0; i < n; i++) {
				char out[16];
				int len = snprintf(out, sizeof out, "%s\n",
						   v[i].account);
				if (queue_remove(qdir, &v[i], err,
						 sizeof err) != 0 ||
				    write(p[1], out, (size_t)len) != len)
					_exit(1);
			}
			queue_entries_free(v, n);
		}
		_exit(0);
	}
	close(p[1]);
	in = fdopen(p[0], "r");
	while (fgets(line, sizeof line, in)) {
		int i = atoi(line);
		ck_assert(i >= 0 && i < ENTRIES);
		ck_assert_msg(seen[i] == 0, "entry %d delivered twice", i);
		seen[i]++;
		total++;
	}
	fclose(in);
	for (int w = 0; w < WORKERS; w++) {
		int status;
		ck_assert_int_gt(wait(&status), 0);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ck_assert_int_eq(total, ENTRIES);
	ck_assert_uint_eq(list_count(), 0);
}
END_TEST

/* While a claim has the envelope file open but not yet locked, its owner
 * defers the entry (a new file replaces the old one) and lets go of the
 * old one: the lock on the old file is then free, but the entry is not. */
static struct queue_entry *owner;

static void owner_defers(void)
{
	char err[512] = "";
	ck_assert_msg(queue_defer(qdir, owner, "busy", 0, err, sizeof err) == 0,
		      "%s", err);
}

static void owner_removes(void)
{
	char err[512] = "";
	ck_assert_msg(queue_remove(qdir, owner, err, sizeof err) == 0, "%s",
		      err);
}

static size_t claim_racing(void (*owner_action)(void))
{
	struct queue_entry *v, *w;
	size_t n, k;

	claim_all(&v, &n);
	ck_assert_uint_eq(n, 1);
	owner = &v[0];
	before_flock = owner_action;
	claim_all(&w, &k);
	ck_assert_ptr_null(before_flock);	/* the race did happen */
	queue_entries_free(w, k);
	queue_entries_free(v, n);
	return k;
}

START_TEST(test_claim_skips_entry_replaced_while_locking)
{
	struct queue_entry e;

	add_simple(NULL, &e);
	ck_assert_uint_eq(claim_racing(owner_defers), 0);
	ck_assert_uint_eq(list_count(), 1);
	queue_entry_free(&e);
}
END_TEST

START_TEST(test_claim_skips_entry_removed_while_locking)
{
	struct queue_entry e;

	add_simple(NULL, &e);
	ck_assert_uint_eq(claim_racing(owner_removes), 0);
	ck_assert_uint_eq(list_count(), 0);
	queue_entry_free(&e);
}
END_TEST

/* ---- remove, defer, expire ---- */

START_TEST(test_remove)
{
	struct queue_entry e, *v;
	size_t n;
	char err[512] = "";

	add_simple(NULL, &e);
	ck_assert_int_eq(queue_remove(qdir, &e, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not claimed"));
	ck_assert_uint_eq(list_count(), 1);
	claim_all(&v, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(queue_remove(qdir, &v[0], err, sizeof err), 0);
	ck_assert_int_eq(v[0].lock_fd, -1);
	ck_assert(!exists(NULL, e.id, ".env"));
	ck_assert(!exists(NULL, e.id, ".msg"));
	ck_assert_uint_eq(list_count(), 0);
	queue_entries_free(v, n);
	queue_entry_free(&e);
}
END_TEST

START_TEST(test_backoff)
{
	static const time_t want[] = {
		300, 300, 600, 1200, 2400, 4800, 9600, 14400, 14400, 14400,
	};
	for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_int_eq(queue_backoff(i), want[i]);
	ck_assert_int_eq(queue_backoff(1000), QUEUE_BACKOFF_MAX);
	ck_assert_int_eq(queue_backoff(~0u), QUEUE_BACKOFF_MAX);
}
END_TEST

START_TEST(test_defer)
{
	struct queue_entry e, *v, *w;
	size_t n, k;
	char err[512] = "";
	time_t now = 2000000000;

	add_simple(NULL, &e);
	claim_all(&v, &n);
	ck_assert_uint_eq(n, 1);
	/* bob got it; carol is still to do */
	free(v[0].rcpts.v[0]);
	v[0].rcpts.v[0] = v[0].rcpts.v[1];
	v[0].rcpts.v[1] = NULL;
	v[0].rcpts.n = 1;
	ck_assert_msg(queue_defer(qdir, &v[0], "RCPT TO:<carol@example.net>:\n"
				  "452 4.2.2 mailbox full\n", now, err,
				  sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(v[0].attempts, 2);
	ck_assert_int_eq(v[0].next_attempt, now + 600);
	ck_assert_str_eq(v[0].last_error, "RCPT TO:<carol@example.net>: "
			 "452 4.2.2 mailbox full");
	ck_assert_int_ge(v[0].lock_fd, 0);

	/* still claimed, though the envelope file was replaced */
	claim_all(&w, &k);
	ck_assert_uint_eq(k, 0);
	queue_entries_free(w, k);
	ck_assert_int_eq(claim_in_child(true), 0);

	ck_assert_int_eq(queue_list(qdir, &w, &k, err, sizeof err), 0);
	ck_assert_uint_eq(k, 1);
	assert_entries_equal(&w[0], &v[0]);
	ck_assert_uint_eq(w[0].rcpts.n, 1);
	ck_assert_str_eq(w[0].rcpts.v[0], "carol@example.net");
	queue_entries_free(w, k);

	ck_assert_int_eq(queue_defer(qdir, &v[0], NULL, now + 600, err,
				     sizeof err), 0);
	ck_assert_uint_eq(v[0].attempts, 3);
	ck_assert_int_eq(v[0].next_attempt, now + 600 + 1200);
	ck_assert_ptr_null(v[0].last_error);
	ck_assert_uint_eq(count_in("tmp", ""), 0);
	queue_entries_free(v, n);
	ck_assert_int_eq(claim_in_child(false), 0);	/* not due yet */
	ck_assert_int_eq(claim_in_child(true), 1);
	queue_entry_free(&e);
}
END_TEST

START_TEST(test_defer_refusals_leave_entry_alone)
{
	struct queue_entry e, *v;
	size_t n, len;
	char err[512] = "";
	char *p, *before, *after;

	add_simple(NULL, &e);
	p = path_of(NULL, e.id, ".env");
	before = read_all(p, &len);
	ck_assert_int_eq(queue_defer(qdir, &e, "x", 0, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not claimed"));
	claim_all(&v, &n);
	strlist_free(&v[0].rcpts);
	ck_assert_int_eq(queue_defer(qdir, &v[0], "x", 0, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "no recipients"));
	strlist_add(&v[0].rcpts, "new\nline@example.org");
	ck_assert_int_eq(queue_defer(qdir, &v[0], "x", 0, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "control character"));
	ck_assert_uint_eq(v[0].attempts, 1);
	after = read_all(p, &len);
	ck_assert_str_eq(after, before);
	ck_assert_uint_eq(count_in("tmp", ""), 0);
	queue_entries_free(v, n);
	free(before);
	free(after);
	free(p);
	queue_entry_free(&e);
}
END_TEST

START_TEST(test_expire)
{
	struct queue_entry a, b, *held, *x;
	size_t nheld, nx;
	char err[512] = "";
	time_t life = 5 * 24 * 3600;

	add_simple("a", &a);
	add_simple("b", &b);
	ck_assert_int_eq(queue_expire(qdir, a.created + life - 1, life, &x, &nx,
				      err, sizeof err), 0);
	ck_assert_uint_eq(nx, 0);
	queue_entries_free(x, nx);
	/* a is being delivered right now: it stays */
	claim_all(&held, &nheld);
	ck_assert_uint_eq(nheld, 2);
	queue_release(&held[1]);
	ck_assert_str_eq(held[1].id, b.id);

	ck_assert_int_eq(queue_expire(qdir, b.created + life, life, &x, &nx,
				      err, sizeof err), 0);
	ck_assert_uint_eq(nx, 1);
	assert_entries_equal(&x[0], &b);
	ck_assert_int_eq(x[0].lock_fd, -1);
	ck_assert(!exists(NULL, b.id, ".env"));
	ck_assert(!exists(NULL, b.id, ".msg"));
	ck_assert(exists("failed", b.id, ".env"));
	ck_assert(exists("failed", b.id, ".msg"));
	ck_assert(exists(NULL, a.id, ".env"));
	ck_assert_uint_eq(list_count(), 1);
	queue_entries_free(x, nx);
	queue_entries_free(held, nheld);
	queue_entry_free(&a);
	queue_entry_free(&b);
}
END_TEST

/* The order of the steps on the queue directory is what makes a crash at
 * any point harmless; inotify reports them in the order they happen. */
static char *dir_events(int ino)
{
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	struct membuf out = { xstrdup(""), 0 };
	ssize_t len;

	while ((len = read(ino, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const void *)p;
			const char *what = ev->mask & IN_MOVED_TO ? "in"
				: ev->mask & IN_MOVED_FROM ? "out"
				: ev->mask & IN_DELETE ? "delete" : "create";
			const char *ext = strrchr(ev->name, '.');
			if (!(ev->mask & IN_ISDIR)) {
				char *line = xasprintf("%s %s\n", what, ext);
				membuf_sink(&out, line, strlen(line));
				free(line);
			}
			p += sizeof *ev + ev->len;
		}
	}
	return out.p;
}

START_TEST(test_steps_in_safe_order)
{
	int ino = inotify_init1(IN_NONBLOCK);
	struct queue_entry a, b, *v, *x;
	size_t n, nx;
	char err[512] = "";
	char *got;

	ck_assert_int_ge(ino, 0);
	ck_assert_int_ge(inotify_add_watch(ino, qdir, IN_MOVED_TO |
					   IN_MOVED_FROM | IN_DELETE |
					   IN_CREATE), 0);
	add_simple("a", &a);
	got = dir_events(ino);
	ck_assert_str_eq(got, "in .msg\nin .env\n");	/* envelope last */
	free(got);
	add_simple("b", &b);
	free(dir_events(ino));

	claim_all(&v, &n);
	ck_assert_int_eq(queue_defer(qdir, &v[0], "x", 0, err, sizeof err), 0);
	got = dir_events(ino);
	ck_assert_str_eq(got, "in .env\n");	/* replaced, nothing removed */
	free(got);
	ck_assert_int_eq(queue_remove(qdir, &v[0], err, sizeof err), 0);
	got = dir_events(ino);
	ck_assert_str_eq(got, "delete .env\ndelete .msg\n");
	free(got);
	queue_entries_free(v, n);

	ck_assert_int_eq(queue_expire(qdir, b.created, 0, &x, &nx, err,
				      sizeof err), 0);
	ck_assert_uint_eq(nx, 1);
	got = dir_events(ino);
	ck_assert_str_eq(got, "out .env\nout .msg\n");
	free(got);
	queue_entries_free(x, nx);
	close(ino);
	queue_entry_free(&a);
	queue_entry_free(&b);
}
END_TEST

/* ---- leftovers of crashes, foreign and corrupt files ---- */

/* A crash between the two renames of queue_add leaves the message file
 * without its envelope (which stays in tmp/). */
START_TEST(test_orphan_message_not_listed_and_cleaned)
{
	struct queue_entry e;
	char err[512] = "";
	char *env = NULL, *tmp_env = NULL, *msg = NULL;

	add_simple(NULL, &e);
	env = path_of(NULL, e.id, ".env");
	tmp_env = path_of("tmp", e.id, ".env");
	msg = path_of(NULL, e.id, ".msg");
	ck_assert_int_eq(rename(env, tmp_env), 0);
	ck_assert_uint_eq(list_count(), 0);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), 0);
	ck_assert(exists(NULL, e.id, ".msg"));	/* may be a queue_add at work */
	ck_assert(exists("tmp", e.id, ".env"));
	make_old(msg);
	make_old(tmp_env);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), 0);
	ck_assert(!exists(NULL, e.id, ".msg"));
	ck_assert(!exists("tmp", e.id, ".env"));
	ck_assert_uint_eq(list_count(), 0);
	free(env);
	free(tmp_env);
	free(msg);
	queue_entry_free(&e);
}
END_TEST

/* A crash inside queue_expire, between its renames. */
START_TEST(test_interrupted_expire_completed)
{
	struct queue_entry e;
	char err[512] = "";
	char *env, *failed_env;

	add_simple(NULL, &e);
	env = path_of(NULL, e.id, ".env");
	failed_env = path_of("failed", e.id, ".env");
	ck_assert_int_eq(rename(env, failed_env), 0);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), 0);
	ck_assert(!exists(NULL, e.id, ".msg"));
	ck_assert(exists("failed", e.id, ".msg"));
	free(env);
	free(failed_env);
	queue_entry_free(&e);
}
END_TEST

/* Complete-looking files in tmp/ are never entries. */
START_TEST(test_tmp_files_ignored)
{
	struct queue_entry e;
	char err[512] = "";
	char *from, *to, *junk;

	add_simple(NULL, &e);
	for (int i = 0; i < 2; i++) {
		const char *ext = i ? ".msg" : ".env";
		from = path_of(NULL, e.id, ext);
		to = path_of("tmp", e.id, ext);
		ck_assert_int_eq(rename(from, to), 0);
		free(from);
		free(to);
	}
	junk = xasprintf("%s/tmp/load.123456", qdir);
	write_file(junk, "x", 1);
	ck_assert_uint_eq(list_count(), 0);
	ck_assert_int_eq(claim_in_child(true), 0);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), 0);
	ck_assert_uint_eq(count_in("tmp", ""), 3);	/* young: kept */
	make_old(junk);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), 0);
	ck_assert_uint_eq(count_in("tmp", ""), 2);
	free(junk);
	queue_entry_free(&e);
}
END_TEST

START_TEST(test_foreign_names_ignored)
{
	static const char *const names[] = {
		"README", ".hidden.env", "with space.env", ".env", "x.env~",
		"12345678901234567890123456789012345678901234567890"
		"12345678901234567890.env",
	};
	struct queue_entry *v;
	size_t n;
	char err[512] = "";

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *p = xasprintf("%s/%s", qdir, names[i]);
		write_file(p, "garbage\n", 8);
		free(p);
	}
	ck_assert_int_eq(queue_list(qdir, &v, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 0);
	queue_entries_free(v, n);
}
END_TEST

#define CORRUPT_ID "20000101T000000.000000Z-1-0000000000000001"
#define GOOD_HEAD "postbote-queue 1\nid " CORRUPT_ID "\n"
#define GOOD_BODY \
	"created 946684800\nnext-attempt 946685100\nattempts 1\nsize 6\n" \
	"sender a@example.org\nbody-8bit no\nsmtputf8 no\n" \
	"rcpt b@example.org\n"

static const struct corrupt_case {
	const char *text;
	size_t len;	/* 0: strlen */
	const char *why;
} corrupt_cases[] = {
	{ "", 0, "no \"end\" line" },
	{ "postbote-queue 2\n", 0, "not a \"postbote-queue 1\" file" },
	{ GOOD_HEAD GOOD_BODY, 0, "no \"end\" line" },
	{ GOOD_HEAD GOOD_BODY "end", 0, "no line end" },
	{ GOOD_HEAD GOOD_BODY "end\nrcpt c@example.org\n", 0,
	  "text after \"end\"" },
	{ GOOD_HEAD GOOD_BODY "colour red\nend\n", 0,
	  "line 11: unknown key \"colour\"" },
	{ GOOD_HEAD GOOD_BODY "sender x@example.org\nend\n", 0,
	  "\"sender\" appears twice" },
	{ GOOD_HEAD "created 946684800\nnext-attempt 946685100\nattempts 1\n"
	  "size 6\nsender a@example.org\nbody-8bit no\nsmtputf8 no\nend\n", 0,
	  "no \"rcpt\" line" },
	{ GOOD_HEAD "created -5\nend\n", 0, "bad value for \"created\"" },
	{ GOOD_HEAD "attempts 01\nend\n", 0, "bad value for \"attempts\"" },
	{ GOOD_HEAD "size 99999999999999999999999\nend\n", 0,
	  "bad value for \"size\"" },
	{ GOOD_HEAD "body-8bit maybe\nend\n", 0,
	  "bad value for \"body-8bit\"" },
	{ GOOD_HEAD "sender\nend\n", 0, "bad value for \"sender\"" },
	{ GOOD_HEAD GOOD_BODY "rcpt \nend\n", 0, "bad value for \"rcpt\"" },
	{ GOOD_HEAD GOOD_BODY "rcpt c@exa\tmple.org\nend\n", 0,
	  "line 11: control character 0x09" },
	{ "postbote-queue 1\r\n", 0, "control character 0x0d" },
	{ GOOD_HEAD GOOD_BODY "end\n\0", sizeof(GOOD_HEAD GOOD_BODY "end\n"),
	  "NUL byte" },
	{ "postbote-queue 1\nid 20000101T000000.000000Z-1-0000000000000002\n"
	  GOOD_BODY "end\n", 0, "holds the id of another entry" },
};

static void write_corrupt(const struct corrupt_case *c)
{
	char *env = path_of(NULL, CORRUPT_ID, ".env");
	char *msg = path_of(NULL, CORRUPT_ID, ".msg");

	write_file(msg, "x\r\ny\r\n", 6);
	write_file(env, c->text, c->len ? c->len : strlen(c->text));
	free(env);
	free(msg);
}

static void assert_one_problem(int rc, const char *err, const char *why)
{
	ck_assert_msg(rc == 1, "rc %d, err %s", rc, err);
	ck_assert_msg(strstr(err, "/" CORRUPT_ID ".env: ") != NULL, "%s", err);
	ck_assert_msg(strstr(err, why) != NULL, "want \"%s\" in: %s", why, err);
}

START_TEST(test_corrupt_envelope_reported)
{
	const struct corrupt_case *c = &corrupt_cases[_i];
	struct queue_entry good, *v;
	size_t n;
	char err[512] = "";
	int rc;

	add_simple("good", &good);
	write_corrupt(c);
	rc = queue_list(qdir, &v, &n, err, sizeof err);
	assert_one_problem(rc, err, c->why);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].account, "good");
	queue_entries_free(v, n);
	rc = queue_claim(qdir, 0, true, &v, &n, err, sizeof err);
	assert_one_problem(rc, err, c->why);
	ck_assert_uint_eq(n, 1);
	queue_entries_free(v, n);
	rc = queue_expire(qdir, good.created, 0, &v, &n, err, sizeof err);
	assert_one_problem(rc, err, c->why);
	ck_assert_uint_eq(n, 1);
	queue_entries_free(v, n);
	/* reported, never touched */
	ck_assert(exists(NULL, CORRUPT_ID, ".env"));
	ck_assert(exists(NULL, CORRUPT_ID, ".msg"));
	queue_entry_free(&good);
}
END_TEST

START_TEST(test_valid_handwritten_envelope_accepted)
{
	static const struct corrupt_case ok = { GOOD_HEAD GOOD_BODY "end\n", 0,
						NULL };
	struct queue_entry *v;
	struct message m;
	size_t n;
	char err[512] = "";

	write_corrupt(&ok);
	ck_assert_msg(queue_list(qdir, &v, &n, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].created, 946684800);
	ck_assert_int_eq(v[0].size, 6);
	ck_assert_ptr_null(v[0].account);
	ck_assert_int_eq(queue_load_message(qdir, &v[0], &m, err, sizeof err),
			 0);
	ck_assert_int_eq(m.size, 6);
	message_free(&m);
	queue_entries_free(v, n);
}
END_TEST

START_TEST(test_several_problems_listed)
{
	struct queue_entry *v;
	size_t n;
	char err[512] = "";
	char *a = path_of(NULL, "20000101T000000.000000Z-1-a", ".env");
	char *b = path_of(NULL, "20000101T000000.000000Z-1-b", ".env");

	write_file(a, "junk\n", 5);
	ck_assert_int_eq(symlink("/etc/passwd", b), 0);
	ck_assert_int_eq(queue_list(qdir, &v, &n, err, sizeof err), 2);
	ck_assert_uint_eq(n, 0);
	ck_assert_msg(strstr(err, "-1-a.env: not a") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "; ") != NULL, "%s", err);
	/* not followed: it could point anywhere */
	ck_assert_msg(strstr(err, "-1-b.env: Too many levels of symbolic links")
		      != NULL, "%s", err);
	queue_entries_free(v, n);
	free(a);
	free(b);
}
END_TEST

/* ---- the directory ---- */

START_TEST(test_missing_dir_is_empty_queue)
{
	struct queue_entry *v;
	size_t n = 99;
	char err[512] = "";
	char *missing = xasprintf("%s/never/made", base);
	char *file = xasprintf("%s/plain", base);

	ck_assert_int_eq(queue_list(missing, &v, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 0);
	queue_entries_free(v, n);
	ck_assert_int_eq(queue_claim(missing, 0, true, &v, &n, err, sizeof err),
			 0);
	ck_assert_uint_eq(n, 0);
	queue_entries_free(v, n);
	ck_assert_int_eq(access(missing, F_OK), -1);	/* not created */
	write_file(file, "", 0);
	ck_assert_int_eq(queue_list(file, &v, &n, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot read queue directory"));
	free(missing);
	free(file);
}
END_TEST

START_TEST(test_default_dir)
{
	char *d;

	setenv("XDG_STATE_HOME", "/home/u/.state", 1);
	setenv("HOME", "/home/u", 1);
	d = queue_default_dir_for(0);
	ck_assert_str_eq(d, "/var/spool/postbote/queue");
	free(d);
	d = queue_default_dir_for(1000);
	ck_assert_str_eq(d, "/home/u/.state/postbote/queue");
	free(d);
	setenv("XDG_STATE_HOME", "relative/state", 1);	/* ignored: XDG spec */
	d = queue_default_dir_for(1000);
	ck_assert_str_eq(d, "/home/u/.local/state/postbote/queue");
	free(d);
	unsetenv("XDG_STATE_HOME");
	d = queue_default_dir_for(1000);
	ck_assert_str_eq(d, "/home/u/.local/state/postbote/queue");
	free(d);
	unsetenv("HOME");
	d = queue_default_dir_for(0);	/* root's needs no home */
	ck_assert_str_eq(d, "/var/spool/postbote/queue");
	free(d);
	d = queue_default_dir();
	if (geteuid() == 0) {
		ck_assert_str_eq(d, "/var/spool/postbote/queue");
	} else {
		ck_assert_ptr_nonnull(d);
		ck_assert_ptr_nonnull(strstr(d,
					     "/.local/state/postbote/queue"));
	}
	free(d);
}
END_TEST

START_TEST(test_open_creates_private_dirs)
{
	static const char *const made[] = {
		"/state", "/state/postbote", "/state/postbote/queue",
		"/state/postbote/queue/tmp", "/state/postbote/queue/failed",
	};
	struct stat st;

	for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
		char *p = xasprintf("%s%s", base, made[i]);
		ck_assert_int_eq(stat(p, &st), 0);
		ck_assert(S_ISDIR(st.st_mode));
		ck_assert_int_eq(st.st_mode & 07777, 0700);
		free(p);
	}
}
END_TEST

START_TEST(test_open_refuses_unsafe_dir)
{
	char err[512] = "";
	char *file = xasprintf("%s/plain", base);
	char *tmp = xasprintf("%s/tmp", qdir);

	ck_assert_int_eq(chmod(qdir, 0770), 0);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "refusing"));
	ck_assert_int_eq(chmod(qdir, 0700), 0);
	ck_assert_int_eq(chmod(tmp, 0703), 0);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "/tmp"));
	ck_assert_int_eq(chmod(tmp, 0700), 0);
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), 0);
	write_file(file, "", 0);
	ck_assert_int_eq(queue_open(file, err, sizeof err), -1);
	ck_assert_int_eq(queue_open("", err, sizeof err), -1);
	free(file);
	free(tmp);
}
END_TEST

/* ---- crash safety ---- */

static const char crash_text[] = "Subject: crash\r\n\r\nx\r\n";

static pid_t add_in_child(const struct message *m, int i)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct queue_entry e;
		char err[512];
		fill_entry(&e);
		free(e.account);
		e.account = xasprintf("crash-%d", i);
		_exit(queue_add(qdir, &e, m, NULL, err, sizeof err) == 0
		      ? 0 : 1);
	}
	return pid;
}

static long micros_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000L +
	       (t.tv_nsec - t0->tv_nsec) / 1000;
}

/* Every entry listed must be whole: complete envelope, its message
 * loadable with the expected bytes, no name listed twice. */
static void assert_queue_whole(int iterations, const bool *committed,
			       const char *text)
{
	struct queue_entry *v;
	size_t n;
	char err[512] = "";
	bool *seen = xcalloc((size_t)iterations, sizeof *seen);

	ck_assert_msg(queue_list(qdir, &v, &n, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_uint_eq(n, count_in(NULL, ".env"));
	for (size_t i = 0; i < n; i++) {
		struct message m;
		struct membuf got;
		int k = atoi(v[i].account + strlen("crash-"));
		ck_assert(k >= 0 && k < iterations && !seen[k]);
		seen[k] = true;
		ck_assert_uint_eq(v[i].rcpts.n, 2);
		ck_assert_msg(queue_load_message(qdir, &v[i], &m, err,
						 sizeof err) == 0, "%s", err);
		got = emit_all(&m, NULL);
		ck_assert_str_eq(got.p, text);
		free(got.p);
		message_free(&m);
	}
	for (int k = 0; k < iterations; k++)
		ck_assert_msg(!committed || !committed[k] || seen[k],
			      "entry %d was added but is lost", k);
	queue_entries_free(v, n);
	free(seen);
}

static void age_all(const char *sub)
{
	char *dir = sub ? xasprintf("%s/%s", qdir, sub) : xstrdup(qdir);
	DIR *d = opendir(dir);
	struct dirent *de;

	while ((de = readdir(d)) != NULL) {
		char *p;
		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		make_old(p);
		free(p);
	}
	closedir(d);
	free(dir);
}

START_TEST(test_kill_during_add)
{
	enum { ITERATIONS = 200 };
	bool committed[ITERATIONS] = { false };
	struct message m;
	struct timespec t0;
	long span;
	int status, done = 0, listed;
	char err[512] = "";

	spool(crash_text, &m);
	/* How long a whole queue_add in a child takes here: the kills land
	 * anywhere from before it starts to after it is done. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 3; i++)
		waitpid(add_in_child(&m, 100000 + i), &status, 0);
	span = micros_since(&t0) / 3 * 3 / 2 + 1;
	srand((unsigned)getpid());
	for (int i = 0; i < ITERATIONS; i++) {
		pid_t pid = add_in_child(&m, i);
		usleep((useconds_t)(rand() % span));
		kill(pid, SIGKILL);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		committed[i] = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		done += committed[i];
	}
	/* the three timing runs are entries too; drop them first */
	{
		struct queue_entry *v;
		size_t n;
		claim_all(&v, &n);
		for (size_t i = 0; i < n; i++)
			if (atoi(v[i].account + strlen("crash-")) >= 100000)
				ck_assert_int_eq(queue_remove(qdir, &v[i], err,
							      sizeof err), 0);
		queue_entries_free(v, n);
	}
	assert_queue_whole(ITERATIONS, committed, crash_text);
	listed = (int)count_in(NULL, ".env");
	ck_assert_msg(done < ITERATIONS, "no add was interrupted");
	ck_assert_msg(listed > 0, "no add got through");
	ck_assert_int_ge(listed, done);

	/* what the kills left behind goes once it is old */
	ck_assert_uint_ge(count_in(NULL, ".msg"), (size_t)listed);
	age_all(NULL);
	age_all("tmp");
	ck_assert_int_eq(queue_open(qdir, err, sizeof err), 0);
	ck_assert_uint_eq(count_in(NULL, ".msg"), (size_t)listed);
	ck_assert_uint_eq(count_in("tmp", ""), 0);
	assert_queue_whole(ITERATIONS, NULL, crash_text);
	message_free(&m);
}
END_TEST

/* One pass of `postbote -q` that fails: claim everything, remove every
 * tenth entry (delivered), defer the rest. */
static pid_t defer_in_child(void)
{
	pid_t pid = fork();
	struct queue_entry *v;
	size_t n;
	char err[512];

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	if (queue_claim(qdir, 0, true, &v, &n, err, sizeof err) < 0)
		_exit(1);
	for (size_t k = 0; k < n; k++) {
		int rc = k % 10 == 3
			? queue_remove(qdir, &v[k], err, sizeof err)
			: queue_defer(qdir, &v[k], "busy", 0, err, sizeof err);
		if (rc != 0)
			_exit(1);
	}
	_exit(0);
}

/* Kills during queue_defer and queue_remove: every entry stays whole (the
 * old or the new envelope, or gone), never half there. */
START_TEST(test_kill_during_defer_and_remove)
{
	enum { ENTRIES = 30, ITERATIONS = 100 };
	struct queue_entry e;
	struct timespec t0;
	long span;
	int status;
	pid_t pid;

	for (int i = 0; i < ENTRIES; i++) {
		char name[24];
		snprintf(name, sizeof name, "crash-%d", i);
		add_simple(name, &e);
		queue_entry_free(&e);
	}
	/* an uninterrupted pass first, to time one */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = defer_in_child();
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	span = micros_since(&t0) * 3 / 2 + 1;
	srand((unsigned)getpid());
	for (int i = 0; i < ITERATIONS; i++) {
		pid = defer_in_child();
		usleep((useconds_t)(rand() % span));
		kill(pid, SIGKILL);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(!WIFEXITED(status) || WEXITSTATUS(status) == 0);
	}
	assert_queue_whole(ENTRIES, NULL, simple_text);
	ck_assert_uint_lt(count_in(NULL, ".env"), ENTRIES);  /* some removed */
}
END_TEST

static Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *add = tcase_create("add");
	TCase *claim = tcase_create("claim");
	TCase *change = tcase_create("change");
	TCase *files = tcase_create("files");
	TCase *dir = tcase_create("dir");
	TCase *crash = tcase_create("crash");
	TCase *all[] = { add, claim, change, files, dir, crash };

	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		tcase_add_checked_fixture(all[i], queue_setup, queue_teardown);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(add, test_add_list_round_trip);
	tcase_add_test(add, test_round_trip_without_optional_fields);
	tcase_add_test(add, test_envelope_file_format);
	tcase_add_test(add, test_id_format);
	tcase_add_test(add, test_list_oldest_first);
	tcase_add_test(add, test_stored_bytes_are_emitted_form);
	tcase_add_test(add, test_stored_form_with_separator_round_trips);
	tcase_add_test(add, test_load_keeps_leading_from_line);
	tcase_add_test(add, test_load_detects_changed_message_file);
	tcase_add_test(add, test_add_refuses_unsafe_values);
	tcase_add_test(add, test_add_refuses_oversized_envelope);
	tcase_add_test(add, test_last_error_made_one_line);
	tcase_add_test(claim, test_claim_only_due_entries);
	tcase_add_test(claim, test_claim_twice_in_one_process);
	tcase_add_test(claim, test_claim_in_other_process);
	tcase_add_test(claim, test_concurrent_claims_deliver_once);
	tcase_add_test(claim, test_claim_skips_entry_replaced_while_locking);
	tcase_add_test(claim, test_claim_skips_entry_removed_while_locking);
	tcase_add_test(change, test_remove);
	tcase_add_test(change, test_backoff);
	tcase_add_test(change, test_defer);
	tcase_add_test(change, test_defer_refusals_leave_entry_alone);
	tcase_add_test(change, test_expire);
	tcase_add_test(change, test_steps_in_safe_order);
	tcase_add_test(files, test_orphan_message_not_listed_and_cleaned);
	tcase_add_test(files, test_interrupted_expire_completed);
	tcase_add_test(files, test_tmp_files_ignored);
	tcase_add_test(files, test_foreign_names_ignored);
	tcase_add_loop_test(files, test_corrupt_envelope_reported, 0,
			    sizeof corrupt_cases / sizeof corrupt_cases[0]);
	tcase_add_test(files, test_valid_handwritten_envelope_accepted);
	tcase_add_test(files, test_several_problems_listed);
	tcase_add_test(dir, test_default_dir);
	tcase_add_test(dir, test_missing_dir_is_empty_queue);
	tcase_add_test(dir, test_open_creates_private_dirs);
	tcase_add_test(dir, test_open_refuses_unsafe_dir);
	tcase_add_test(crash, test_kill_during_add);
	tcase_add_test(crash, test_kill_during_defer_and_remove);
	/* hundreds of forks, each syncing files to disk */
	tcase_set_timeout(crash, 300);
	tcase_set_timeout(claim, 60);
	return s;
}

int main(void)
{
	return run_suite(queue_suite());
}
