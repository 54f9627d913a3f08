/* Unit tests for composing a message: subject encoding (decoded back by a
 * small RFC 2047 decoder here), base64, the text part's encodings, the
 * multipart structure (parsed back here, parts decoded and compared byte
 * for byte), file names, failures, and streaming of large input. */
#include "autoconf.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "run_suite.h"
#include "compose.h"
#include "message.h"
#include "util.h"

#define NOW 1700000000

/* ---- a predictable boundary: this definition of getrandom takes the
 * place of the C library's for compose.c linked into this program ---- */

enum random_mode { RANDOM_REAL, RANDOM_ZERO, RANDOM_FAIL };
static enum random_mode random_mode = RANDOM_REAL;

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	if (random_mode == RANDOM_ZERO) {
		memset(buf, 0, len);
		return (ssize_t)len;
	}
	if (random_mode == RANDOM_FAIL) {
		errno = ENOSYS;
		return -1;
	}
	return syscall(SYS_getrandom, buf, len, flags);
}

#define ZERO_BOUNDARY "=_00000000000000000000000000000000.1700000000.example.org"

/* ---- files for bodies and attachments ---- */

static char test_dir[] = "/tmp/test_compose.XXXXXX";
static struct strlist created;	/* paths of the files made by a test */

/* Made once, in check's parent process, and removed there with whatever
 * the tests left in it, even after a failed test. */
static void dir_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
}

static void dir_teardown(void)
{
	DIR *d = opendir(test_dir);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		char *path;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		path = xasprintf("%s/%s", test_dir, e->d_name);
		unlink(path);
		free(path);
	}
	if (d)
		closedir(d);
	rmdir(test_dir);
}

static void test_setup(void)
{
	random_mode = RANDOM_REAL;
}

static void test_teardown(void)
{
	for (size_t i = 0; i < created.n; i++)
		unlink(created.v[i]);
	strlist_free(&created);
}

/* A file called name in the test directory; returns its path (owned by
 * the created list). */
static const char *make_file(const char *name, const void *data, size_t len)
{
	char *path = xasprintf("%s/%s", test_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, data, len), 0);
	close(fd);
	strlist_add(&created, path);
	free(path);
	return created.v[created.n - 1];
}

static int fd_with(const void *data, size_t len)
{
	char err[256];
	int fd = temp_file_unlinked(NULL, "test_compose", err, sizeof err);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, data, len), 0);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static char *read_all(int fd, size_t *len)
{
	struct stat st;
	char *p;
	ck_assert_int_eq(fstat(fd, &st), 0);
	p = xmalloc((size_t)st.st_size + 1);
	ck_assert_int_eq(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
	p[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return p;
}

struct composed {
	int rc;
	char err[512];
	char *text;
	size_t len;
};

static void compose_from(int body_fd, const struct compose_options *o,
			 struct composed *c)
{
	int out = fd_with("", 0);
	c->rc = compose_message(body_fd, out, o, c->err, sizeof c->err);
	c->text = read_all(out, &c->len);
	close(out);
}

static void compose_str(const char *body, size_t len,
			const struct compose_options *o, struct composed *c)
{
	int in = fd_with(body, len);
	compose_from(in, o, c);
	close(in);
}

static void compose_ok(const char *body, size_t len,
		       const struct compose_options *o, struct composed *c)
{
	compose_str(body, len, o, c);
	ck_assert_msg(c->rc == 0, "compose failed: %s", c->err);
	ck_assert_uint_eq(strlen(c->text), c->len);	/* no NUL in output */
}

static size_t longest_line(const char *p, size_t n)
{
	size_t longest = 0, cur = 0;
	for (size_t i = 0; i < n; i++) {
		cur = p[i] == '\n' ? 0 : cur + 1;
		if (cur > longest)
			longest = cur;
	}
	return longest;
}

/* ---- decoders, written independently of compose.c ---- */

static int b64_value(char c)
{
	const char *alphabet =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alphabet, c) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

/* Base64 with LF between lines; out has room for len bytes. (No check
 * assertion inside the loop: each one is a message to check's parent
 * process, far too slow for megabytes.) */
static size_t b64_decode(const char *in, size_t len, unsigned char *out)
{
	unsigned long acc = 0;
	size_t o = 0, bits = 0, pad = 0;
	for (size_t i = 0; i < len; i++) {
		int v;
		if (in[i] == '\n')
			continue;
		if (in[i] == '=') {
			pad++;
			continue;
		}
		v = b64_value(in[i]);
		if (v < 0 || pad > 0)	/* padding only at the end */
			ck_abort_msg("bad base64 at offset %zu", i);
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')	/* RFC 2045 6.7 (1): uppercase */
		return c - 'A' + 10;
	ck_abort_msg("bad hex digit 0x%02x", (unsigned char)c);
	return 0;
}

static size_t qp_decode(const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] != '=') {
			out[o++] = in[i];
		} else if (i + 1 < len && in[i + 1] == '\n') {
			i++;	/* soft line break */
		} else {
			if (i + 2 >= len)
				ck_abort_msg("quoted-printable ends in '='");
			out[o++] = (char)(hex_value(in[i + 1]) * 16 +
					  hex_value(in[i + 2]));
			i += 2;
		}
	}
	return o;
}

/* True when s is whole UTF-8 characters (no sequence cut short). */
static bool utf8_complete(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = s[i] < 0x80 ? 1 : s[i] < 0xe0 ? 2 : s[i] < 0xf0 ? 3 : 4;
		if (s[i] >= 0x80 && s[i] < 0xc2)
			return false;
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

/* Decodes one encoded word; asserts its form and that it holds whole
 * characters. Returns the bytes added to out. */
static size_t decode_word(const char *w, size_t len, char *out)
{
	const char *text = w + 10;
	size_t tlen, o = 0;
	ck_assert_uint_le(len, 75);	/* RFC 2047 2 */
	ck_assert_uint_gt(len, 12);
	ck_assert_int_eq(strncmp(w, "=?utf-8?", 8), 0);
	ck_assert(w[8] == 'Q' || w[8] == 'B');
	ck_assert_int_eq(w[9], '?');
	ck_assert_int_eq(strncmp(w + len - 2, "?=", 2), 0);
	tlen = len - 12;
	for (size_t i = 0; i < tlen; i++)
		ck_assert(text[i] > ' ' && text[i] < 0x7f && text[i] != '?');
	if (w[8] == 'B') {
		o = b64_decode(text, tlen, (unsigned char *)out);
	} else {
		for (size_t i = 0; i < tlen; i++) {
			if (text[i] == '_') {
				out[o++] = ' ';
			} else if (text[i] == '=') {
				out[o++] = (char)(hex_value(text[i + 1]) * 16 +
						  hex_value(text[i + 2]));
				i += 2;
			} else {
				out[o++] = text[i];
			}
		}
	}
	ck_assert_msg(utf8_complete((unsigned char *)out, o),
		      "encoded word splits a character: %.*s", (int)len, w);
	return o;
}

/* A Subject value made of encoded words separated by folding white space
 * (RFC 2047 6.2: that white space is not part of the text). */
static char *decode_subject(const char *value)
{
	char *out = xmalloc(strlen(value) + 1);
	size_t o = 0;
	const char *p = value;
	while (*p) {
		size_t len;
		while (*p == ' ' || *p == '\n')
			p++;
		len = strcspn(p, " \n");
		if (len > 0)
			o += decode_word(p, len, out + o);
		p += len;
	}
	out[o] = '\0';
	return out;
}

/* No line over 78 with "Subject: " in front; folds are LF + WSP. */
static void assert_subject_lines(const char *value)
{
	size_t col = 9;
	for (const char *p = value;; p++) {
		if (*p == '\n' || *p == '\0') {
			ck_assert_msg(col <= 78, "line of %zu in %s", col, value);
			if (!*p)
				break;
			ck_assert(p[1] == ' ' || p[1] == '\t');
			col = 0;
		} else {
			col++;
		}
	}
}

static void assert_subject_round_trip(const char *subject)
{
	char *value = compose_encode_subject(subject);
	char *decoded = decode_subject(value);
	assert_subject_lines(value);
	ck_assert_str_eq(decoded, subject);
	free(decoded);
	free(value);
}

/* ---- reading the composed message back ---- */

/* The unfolded value of the first field called name in a header block
 * (which ends at the first empty line), or NULL. */
static char *field(const char *head, const char *name)
{
	size_t nlen = strlen(name);
	const char *end = strstr(head, "\n\n");
	for (const char *line = head; line && (!end || line <= end);) {
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			char *out = xmalloc(strlen(v) + 1);
			size_t o = 0;
			while (*v == ' ')
				v++;
			for (; *v && !(v[0] == '\n' && v[1] != ' ' &&
				       v[1] != '\t'); v++)
				if (*v != '\n')
					out[o++] = *v;
			out[o] = '\0';
			return out;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

static void assert_field(const char *head, const char *name, const char *want)
{
	char *got = field(head, name);
	ck_assert_msg(got != NULL, "no %s field", name);
	ck_assert_str_eq(got, want);
	free(got);
}

static const char *body_of(const char *text)
{
	const char *sep = strstr(text, "\n\n");
	ck_assert_ptr_nonnull(sep);
	return sep + 2;
}

struct part {
	char *head;		/* header block, NUL-terminated copy */
	const char *body;	/* into the message */
	size_t len;
};

#define MAX_PARTS 32

struct multipart {
	char *boundary;
	size_t nparts;
	struct part parts[MAX_PARTS];
};

/* RFC 2046 5.1.1: parts lie between "--boundary" lines; the LF before a
 * delimiter belongs to it; the last delimiter ends in "--". */
static void parse_multipart(const struct composed *c, struct multipart *m)
{
	char *ctype = field(c->text, "Content-Type");
	const char *b, *p, *end = c->text + c->len;
	char *delim;

	memset(m, 0, sizeof *m);
	ck_assert_ptr_nonnull(ctype);
	b = strstr(ctype, "; boundary=\"");
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(strncmp(ctype, "multipart/mixed;", 16), 0);
	b += 12;
	m->boundary = xstrndup(b, strcspn(b, "\""));
	free(ctype);
	delim = xasprintf("\n--%s", m->boundary);
	p = body_of(c->text) - 1;	/* the header's last LF */
	ck_assert_int_eq(strncmp(p, delim, strlen(delim)), 0);
	for (;;) {
		const char *start, *next, *sep;
		p += strlen(delim);
		if (strncmp(p, "--\n", 3) == 0) {
			ck_assert_ptr_eq(p + 3, end);	/* no epilogue */
			break;
		}
		ck_assert_int_eq(*p, '\n');
		start = p + 1;
		next = memmem(start, (size_t)(end - start), delim, strlen(delim));
		ck_assert_ptr_nonnull(next);
		sep = memmem(start, (size_t)(next - start), "\n\n", 2);
		ck_assert_ptr_nonnull(sep);
		ck_assert_uint_lt(m->nparts, MAX_PARTS);
		m->parts[m->nparts].head = xstrndup(start, (size_t)(sep - start + 1));
		m->parts[m->nparts].body = sep + 2;
		m->parts[m->nparts].len = (size_t)(next - (sep + 2));
		m->nparts++;
		p = next;
	}
	free(delim);
}

static void multipart_free(struct multipart *m)
{
	for (size_t i = 0; i < m->nparts; i++)
		free(m->parts[i].head);
	free(m->boundary);
}

static void assert_base64_part(const struct part *p, const void *want,
			       size_t wantlen)
{
	unsigned char *got = xmalloc(p->len + 1);
	size_t n;
	assert_field(p->head, "Content-Transfer-Encoding", "base64");
	ck_assert_uint_le(longest_line(p->body, p->len), 76);	/* RFC 2045 6.8 */
	n = b64_decode(p->body, p->len, got);
	ck_assert_uint_eq(n, wantlen);
	ck_assert_int_eq(memcmp(got, want, n), 0);
	free(got);
}

/* Percent-decodes RFC 2231 extended text up to ';' or the end. */
static size_t percent_decode(const char *in, char *out)
{
	size_t o = 0;
	for (; *in && *in != ';'; in++) {
		if (*in == '%') {
			out[o++] = (char)(hex_value(in[1]) * 16 + hex_value(in[2]));
			in += 2;
		} else {
			ck_assert(*in != ' ' && *in != '"' && *in != '\'');
			out[o++] = *in;
		}
	}
	return o;
}

/* The file name from an unfolded Content-Disposition value, in any of
 * the three forms (RFC 2183 quoted, RFC 2231 extended, continuations). */
static char *disposition_filename(const char *disp)
{
	char *out = xmalloc(strlen(disp) + 1);
	size_t o = 0;
	const char *p;
	ck_assert_int_eq(strncmp(disp, "attachment; ", 12), 0);
	if ((p = strstr(disp, "filename=\"")) != NULL) {
		p += 10;
		o = strcspn(p, "\"");
		memcpy(out, p, o);
	} else if ((p = strstr(disp, "filename*=utf-8''")) != NULL) {
		o = percent_decode(p + 17, out);
	} else {
		for (size_t k = 0;; k++) {
			char *name = k == 0 ? xstrdup("filename*0*=utf-8''")
				   : xasprintf("filename*%zu*=", k);
			p = strstr(disp, name);
			if (p)
				o += percent_decode(p + strlen(name), out + o);
			free(name);
			if (!p)
				break;
		}
		ck_assert_uint_gt(o, 0);
	}
	out[o] = '\0';
	return out;
}

/* ---- base64 ---- */

static char *b64(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	out[base64_encode((const unsigned char *)s, n, out)] = '\0';
	return out;
}

START_TEST(base64_rfc4648_vectors)
{
	static const char *const v[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *got = b64(v[i][0]);
		ck_assert_str_eq(got, v[i][1]);
		free(got);
	}
}
END_TEST

START_TEST(base64_all_byte_values)
{
	unsigned char in[256], back[256];
	char out[4 * ((256 + 2) / 3)];
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)(255 - i);
	for (size_t n = 250; n <= 256; n++) {
		size_t len = base64_encode(in, n, out);
		ck_assert_uint_eq(len, 4 * ((n + 2) / 3));
		ck_assert_uint_eq(b64_decode(out, len, back), n);
		ck_assert_int_eq(memcmp(in, back, n), 0);
	}
}
END_TEST

/* ---- the Subject ---- */

START_TEST(subject_ascii_untouched)
{
	static const char *const plain[] = {
		"Hello, world", "", "a=b c_d? (e) [f] \"g\"", "tab\tand  two",
		" leading and trailing  ",
	};
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		char *v = compose_encode_subject(plain[i]);
		ck_assert_str_eq(v, plain[i]);
		free(v);
	}
}
END_TEST

START_TEST(subject_ascii_long_folds_at_white_space)
{
	const char *s = "The quarterly report on the state of the mail "
			"submission client is attached; please read it before "
			"the meeting on Thursday afternoon at three o'clock.";
	char *v = compose_encode_subject(s);
	char *unfolded = xmalloc(strlen(v) + 1);
	size_t o = 0;
	ck_assert_ptr_nonnull(strchr(v, '\n'));
	ck_assert_ptr_null(strstr(v, "=?"));
	assert_subject_lines(v);
	for (const char *p = v; *p; p++)
		if (*p != '\n')
			unfolded[o++] = *p;	/* RFC 5322 2.2.3 unfolding */
	unfolded[o] = '\0';
	ck_assert_str_eq(unfolded, s);
	free(unfolded);
	free(v);
}
END_TEST

START_TEST(subject_utf8_q_encoding)
{
	char *v = compose_encode_subject("100% = a_b?");
	ck_assert_str_eq(v, "100% = a_b?");	/* plain: no 8-bit, no "=?" */
	free(v);
	v = compose_encode_subject("Frage? a=b_c über alles, gut");
	ck_assert_str_eq(v, "=?utf-8?Q?Frage=3F_a=3Db=5Fc_=C3=BCber_alles,_gut?=");
	free(v);
}
END_TEST

/* B wins when it is shorter, as it is for most text with a few umlauts. */
START_TEST(subject_utf8_b_when_shorter)
{
	char *v = compose_encode_subject("Grüße aus Köln");	/* B 24, Q 29 */
	ck_assert_str_eq(v, "=?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=");
	free(v);
	v = compose_encode_subject("Preis: 5€ = fünf_Euro?");	/* 36, 41 */
	ck_assert_str_eq(v, "=?utf-8?B?UHJlaXM6IDXigqwgPSBmw7xuZl9FdXJvPw==?=");
	free(v);
}
END_TEST

START_TEST(subject_utf8_b_encoding)
{
	char *v = compose_encode_subject("Привет, мир");
	ck_assert_int_eq(strncmp(v, "=?utf-8?B?", 10), 0);
	ck_assert_str_eq(v, "=?utf-8?B?0J/RgNC40LLQtdGCLCDQvNC40YA=?=");
	free(v);
	assert_subject_round_trip("日本語のテスト");
}
END_TEST

START_TEST(subject_long_multibyte_limits)
{
	static const char *const unit[] = {
		"Grüße aus Köln und Düsseldorf, ",	/* Q */
		"Съешь же ещё этих мягких булок ",	/* B */
		"日本語の件名、",			/* 3-byte, B */
		"😀🎉 party ",				/* 4-byte */
		"€",					/* one character */
	};
	for (size_t i = 0; i < sizeof unit / sizeof unit[0]; i++) {
		char s[2048] = "";
		while (strlen(s) + strlen(unit[i]) < 600)
			strcat(s, unit[i]);
		assert_subject_round_trip(s);
		char *v = compose_encode_subject(s);
		ck_assert_ptr_nonnull(strstr(v, "\n "));	/* several words */
		free(v);
	}
}
END_TEST

START_TEST(subject_special_text_is_encoded)
{
	static const char *const s[] = {
		"hi\nBcc: victim@example.org",		/* header injection */
		"carriage\rreturn and \x01 control",
		"=?utf-8?Q?looks_encoded?=",		/* RFC 2047 6.1 */
		"ThisIsOneVeryLongWordWithoutAnyWhiteSpaceThatCannotBeFolded"
		"AnywhereAtAllBecauseItGoesOnAndOn",	/* > 69 */
		"short then OneVeryLongWordWithoutAnyWhiteSpaceThatCannotBeFol"
		"dedAnywhereAtAllBecauseItGoesOnAndOnAndOn",	/* > 77 */
		"\xff\xfe not UTF-8 \xc3",		/* still carried */
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		char *v = compose_encode_subject(s[i]);
		ck_assert_int_eq(strncmp(v, "=?utf-8?", 8), 0);
		for (const char *p = strchr(v, '\n'); p; p = strchr(p + 1, '\n'))
			ck_assert_int_eq(p[1], ' ');
		ck_assert_ptr_null(strchr(v, '\r'));
		free(v);
		if (i < 5)
			assert_subject_round_trip(s[i]);
	}
}
END_TEST

/* ---- messages without attachments ---- */

START_TEST(message_7bit_exact)
{
	const char *to[] = { "you@example.org", "other@example.net" };
	struct compose_options o = { .subject = "Hello", .from = "me@example.org",
				     .to = to, .nto = 2, .now = NOW };
	struct composed c;
	compose_ok("line one\nline two\n", 18, &o, &c);
	ck_assert_str_eq(c.text,
			 "From: me@example.org\n"
			 "To: you@example.org, other@example.net\n"
			 "Subject: Hello\n"
			 "MIME-Version: 1.0\n"
			 "Content-Type: text/plain; charset=us-ascii\n"
			 "Content-Transfer-Encoding: 7bit\n"
			 "\n"
			 "line one\nline two\n");
	free(c.text);
}
END_TEST

START_TEST(message_minimal)
{
	struct compose_options o = { .now = NOW };
	struct composed c;
	compose_ok("", 0, &o, &c);
	ck_assert_str_eq(c.text,
			 "MIME-Version: 1.0\n"
			 "Content-Type: text/plain; charset=us-ascii\n"
			 "Content-Transfer-Encoding: 7bit\n\n");
	free(c.text);
	o.subject = "";
	compose_ok("x", 1, &o, &c);
	ck_assert_int_eq(strncmp(c.text, "Subject:\nMIME-Version: 1.0\n", 27), 0);
	ck_assert_str_eq(body_of(c.text), "x");
	free(c.text);
}
END_TEST

START_TEST(message_8bit_body)
{
	const char *body = "Grüße\r\naus Köln\r\n";
	struct compose_options o = { .subject = "Grüße", .now = NOW };
	struct composed c;
	compose_ok(body, strlen(body), &o, &c);
	assert_field(c.text, "Subject", "=?utf-8?B?R3LDvMOfZQ==?=");
	assert_field(c.text, "Content-Type", "text/plain; charset=utf-8");
	assert_field(c.text, "Content-Transfer-Encoding", "8bit");
	ck_assert_str_eq(body_of(c.text), body);	/* CRLF kept as given */
	free(c.text);
}
END_TEST

/* Decoding gives the text back, with the line ends written as LF. */
static void assert_qp_round_trip(const char *body, size_t len)
{
	char *want = xmalloc(len + 1);
	size_t wantlen = 0;
	struct compose_options o = { .now = NOW };
	struct composed c;
	const char *enc;
	char *back;
	size_t n;

	compose_ok(body, len, &o, &c);
	assert_field(c.text, "Content-Transfer-Encoding", "quoted-printable");
	enc = body_of(c.text);
	ck_assert_uint_le(longest_line(enc, strlen(enc)), 76);
	for (const char *p = enc; *p; p++) {
		ck_assert((*p >= 32 && *p < 127) || *p == '\n' || *p == '\t');
		if (*p == '\n' && p > enc)	/* RFC 2045 6.7 (3) */
			ck_assert(p[-1] != ' ' && p[-1] != '\t');
	}
	ck_assert(enc[strlen(enc) - 1] != ' ');
	for (size_t i = 0; i < len; i++)
		if (!(body[i] == '\r' && i + 1 < len && body[i + 1] == '\n'))
			want[wantlen++] = body[i];
	back = xmalloc(strlen(enc) + 1);
	n = qp_decode(enc, strlen(enc), back);
	ck_assert_uint_eq(n, wantlen);
	ck_assert_int_eq(memcmp(back, want, wantlen), 0);
	free(want);
	free(back);
	free(c.text);
}

START_TEST(message_long_line_quoted_printable)
{
	char body[6000];
	size_t n = 0;
	n += (size_t)sprintf(body + n, "short line \nnext\t\n");
	for (int i = 0; i < 300; i++)	/* one line of 2700 octets */
		n += (size_t)sprintf(body + n, "a=b ü\t_ ");
	n += (size_t)sprintf(body + n, "\nlast line ends in space ");
	assert_qp_round_trip(body, n);

	struct compose_options o = { .now = NOW };
	struct composed c;
	compose_ok(body, n, &o, &c);
	assert_field(c.text, "Content-Type", "text/plain; charset=utf-8");
	free(c.text);
}
END_TEST

START_TEST(message_exactly_998_octets_stays_7bit)
{
	char body[1000];
	struct compose_options o = { .now = NOW };
	struct composed c;
	memset(body, 'x', 998);
	body[998] = '\n';
	compose_ok(body, 999, &o, &c);
	assert_field(c.text, "Content-Transfer-Encoding", "7bit");
	free(c.text);
	body[998] = 'x';	/* 999 octets, no line end */
	assert_qp_round_trip(body, 999);
}
END_TEST

START_TEST(message_nul_and_bare_cr_quoted_printable)
{
	static const char body[] = "nul \0 here\r\nbare\rcr \r\nend\r";
	assert_qp_round_trip(body, sizeof body - 1);
	assert_qp_round_trip("x \r", 3);
}
END_TEST

START_TEST(address_fields_fold)
{
	const char *to[12];
	char addr[12][40];
	struct compose_options o = { .from = "sender@example.org", .now = NOW };
	struct composed c;
	char *value;

	for (int i = 0; i < 12; i++) {
		snprintf(addr[i], sizeof addr[i], "recipient-%02d@example.org", i);
		to[i] = addr[i];
	}
	o.to = to;
	o.nto = 12;
	compose_ok("x\n", 2, &o, &c);
	ck_assert_uint_le(longest_line(c.text, c.len), 78);
	value = field(c.text, "To");
	ck_assert_str_eq(value, "recipient-00@example.org, recipient-01@example.org,"
			 " recipient-02@example.org, recipient-03@example.org,"
			 " recipient-04@example.org, recipient-05@example.org,"
			 " recipient-06@example.org, recipient-07@example.org,"
			 " recipient-08@example.org, recipient-09@example.org,"
			 " recipient-10@example.org, recipient-11@example.org");
	free(value);
	assert_field(c.text, "From", "sender@example.org");
	free(c.text);
}
END_TEST

START_TEST(control_character_in_address_is_refused)
{
	const char *to[] = { "ok@example.org", "evil@example.org\nBcc: x@y" };
	struct compose_options o = { .to = to, .nto = 2, .now = NOW };
	struct composed c;
	compose_str("x\n", 2, &o, &c);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_uint_eq(c.len, 0);
	ck_assert_str_eq(c.err, "invalid recipient address "
			 "\"evil@example.org\\nBcc: x@y\": it contains a control "
			 "character");
	free(c.text);
	o.nto = 0;
	o.from = "me\r@example.org";
	compose_str("x\n", 2, &o, &c);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_uint_eq(c.len, 0);
	ck_assert_ptr_nonnull(strstr(c.err, "invalid sender address"));
	free(c.text);
}
END_TEST

/* ---- attachments ---- */

START_TEST(two_attachments_round_trip)
{
	unsigned char binary[3 * 256];
	const char *text = "Zeile eins\nZeile zwei mit Umlaut: ä\n";
	const char *files[2];
	const char *body = "Hello,\n\nsee the files.\n";
	struct compose_options o = { .subject = "Files", .attachments = files,
				     .nattachments = 2, .from = "me@example.org",
				     .now = NOW, .domain = "example.org" };
	struct composed c;
	struct multipart m;
	char *name;

	for (size_t i = 0; i < sizeof binary; i++)
		binary[i] = (unsigned char)(i % 256);
	files[0] = make_file("blob.bin", binary, sizeof binary);
	files[1] = make_file("Grüße.txt", text, strlen(text));
	compose_ok(body, strlen(body), &o, &c);
	ck_assert_uint_le(longest_line(c.text, c.len), 78);
	assert_field(c.text, "MIME-Version", "1.0");
	ck_assert_ptr_null(field(c.text, "Content-Transfer-Encoding"));
	parse_multipart(&c, &m);
	ck_assert_uint_eq(m.nparts, 3);

	assert_field(m.parts[0].head, "Content-Type", "text/plain; charset=us-ascii");
	assert_field(m.parts[0].head, "Content-Transfer-Encoding", "7bit");
	ck_assert_uint_eq(m.parts[0].len, strlen(body));
	ck_assert_int_eq(memcmp(m.parts[0].body, body, strlen(body)), 0);

	assert_field(m.parts[1].head, "Content-Type", "application/octet-stream");
	assert_field(m.parts[1].head, "Content-Disposition",
		     "attachment; filename=\"blob.bin\"");
	assert_base64_part(&m.parts[1], binary, sizeof binary);

	assert_field(m.parts[2].head, "Content-Type", "text/plain");
	assert_field(m.parts[2].head, "Content-Disposition",
		     "attachment; filename*=utf-8''Gr%C3%BC%C3%9Fe.txt");
	name = field(m.parts[2].head, "Content-Disposition");
	char *decoded = disposition_filename(name);
	ck_assert_str_eq(decoded, "Grüße.txt");
	free(decoded);
	free(name);
	assert_base64_part(&m.parts[2], text, strlen(text));
	multipart_free(&m);
	free(c.text);
}
END_TEST

START_TEST(attachment_media_types)
{
	static const char *const cases[][2] = {
		{ "a.txt", "text/plain" }, { "a.log", "text/plain" },
		{ "a.html", "text/html" }, { "a.htm", "text/html" },
		{ "a.csv", "text/csv" }, { "a.pdf", "application/pdf" },
		{ "a.png", "image/png" }, { "a.jpg", "image/jpeg" },
		{ "a.jpeg", "image/jpeg" }, { "a.gif", "image/gif" },
		{ "a.zip", "application/zip" }, { "a.tar.gz", "application/gzip" },
		{ "a.tar", "application/x-tar" },
		{ "a.json", "application/json" }, { "a.xml", "application/xml" },
		{ "a.patch", "text/x-diff" }, { "a.diff", "text/x-diff" },
		{ "a.eml", "message/rfc822" }, { "B.PDF", "application/pdf" },
		{ "Photo.JpEg", "image/jpeg" },
		{ "a.exe", "application/octet-stream" },
		{ "noextension", "application/octet-stream" },
		{ ".txt", "application/octet-stream" },	/* a hidden file */
		{ "a.", "application/octet-stream" },
	};
	enum { N = sizeof cases / sizeof cases[0] };
	const char *files[N];
	struct compose_options o = { .attachments = files, .nattachments = N,
				     .now = NOW };
	struct composed c;
	struct multipart m;

	for (size_t i = 0; i < N; i++)
		files[i] = make_file(cases[i][0], "", 0);
	compose_ok("", 0, &o, &c);
	parse_multipart(&c, &m);
	ck_assert_uint_eq(m.nparts, N + 1);
	ck_assert_uint_eq(m.parts[0].len, 0);
	for (size_t i = 0; i < N; i++) {
		char *disp = field(m.parts[i + 1].head, "Content-Disposition");
		char *name = disposition_filename(disp);
		ck_assert_str_eq(name, cases[i][0]);
		assert_field(m.parts[i + 1].head, "Content-Type", cases[i][1]);
		ck_assert_uint_eq(m.parts[i + 1].len, 0);
		free(name);
		free(disp);
	}
	multipart_free(&m);
	free(c.text);
}
END_TEST

START_TEST(attachment_file_names)
{
	static const char *const cases[][2] = {
		{ "report 2024.pdf", "attachment; filename=\"report 2024.pdf\"" },
		{ "say \"hi\".txt",
		  "attachment; filename*=utf-8''say%20%22hi%22.txt" },
		{ "back\\slash", "attachment; filename*=utf-8''back%5Cslash" },
		{ "tab\there", "attachment; filename*=utf-8''tab%09here" },
		{ "Ünïcödé-ñame.csv",
		  "attachment; filename*=utf-8''%C3%9Cn%C3%AF"
		  "c%C3%B6d%C3%A9-%C3%B1ame.csv" },
		{ "", NULL },	/* long names, filled in below */
		{ "", NULL },
	};
	enum { N = sizeof cases / sizeof cases[0] };
	char long_utf8[256] = "", long_ascii[256] = "";
	const char *files[N], *names[N];
	struct compose_options o = { .attachments = files, .nattachments = N,
				     .now = NOW };
	struct composed c;
	struct multipart m;

	while (strlen(long_utf8) + 13 <= 250)	/* 13 bytes a round */
		strcat(long_utf8, "Ärger€😀");
	memset(long_ascii, 'n', 200);
	for (size_t i = 0; i < N; i++) {
		names[i] = i == N - 2 ? long_utf8 : i == N - 1 ? long_ascii
		         : cases[i][0];
		files[i] = make_file(names[i], names[i], strlen(names[i]));
	}
	compose_ok("", 0, &o, &c);
	ck_assert_uint_le(longest_line(c.text, c.len), 78);
	parse_multipart(&c, &m);
	ck_assert_uint_eq(m.nparts, N + 1);
	for (size_t i = 0; i < N; i++) {
		char *disp = field(m.parts[i + 1].head, "Content-Disposition");
		char *name = disposition_filename(disp);
		if (cases[i][1])
			ck_assert_str_eq(disp, cases[i][1]);
		else
			ck_assert_ptr_nonnull(strstr(disp, "filename*1*="));
		ck_assert_str_eq(name, names[i]);
		assert_base64_part(&m.parts[i + 1], names[i], strlen(names[i]));
		free(name);
		free(disp);
	}
	multipart_free(&m);
	free(c.text);
}
END_TEST

START_TEST(missing_attachment_fails_before_writing)
{
	const char *files[2];
	struct compose_options o = { .attachments = files, .nattachments = 2,
				     .subject = "x", .now = NOW };
	struct composed c;
	int in = fd_with("body\n", 5);

	files[0] = make_file("there.txt", "x", 1);
	files[1] = "/nonexistent/missing.pdf";
	compose_from(in, &o, &c);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_str_eq(c.err, "cannot read attachment /nonexistent/missing.pdf: "
			 "No such file or directory");
	ck_assert_uint_eq(c.len, 0);
	ck_assert_int_eq(lseek(in, 0, SEEK_CUR), 0);	/* body not read */
	free(c.text);

	files[1] = test_dir;
	compose_from(in, &o, &c);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_uint_eq(c.len, 0);
	ck_assert_ptr_nonnull(strstr(c.err, ": Is a directory"));
	free(c.text);
	close(in);
}
END_TEST

START_TEST(multipart_8bit_text)
{
	const char *files[1];
	const char *body = "Grüße\n";
	struct compose_options o = { .attachments = files, .nattachments = 1,
				     .now = NOW };
	struct composed c;
	struct multipart m;

	files[0] = make_file("a.bin", "\x80", 1);
	compose_ok(body, strlen(body), &o, &c);
	assert_field(c.text, "Content-Transfer-Encoding", "8bit");	/* 2045 6.4 */
	parse_multipart(&c, &m);
	assert_field(m.parts[0].head, "Content-Type", "text/plain; charset=utf-8");
	assert_field(m.parts[0].head, "Content-Transfer-Encoding", "8bit");
	ck_assert_uint_eq(m.parts[0].len, strlen(body));
	ck_assert_int_eq(memcmp(m.parts[0].body, body, strlen(body)), 0);
	assert_base64_part(&m.parts[1], "\x80", 1);
	multipart_free(&m);
	free(c.text);
}
END_TEST

START_TEST(boundary_in_text_forces_quoted_printable)
{
	const char *files[1];
	const char *body = "before\n--" ZERO_BOUNDARY "\nafter\n--" ZERO_BOUNDARY
			   "--\n";
	struct compose_options o = { .attachments = files, .nattachments = 1,
				     .now = NOW, .domain = "example.org" };
	struct composed c;
	struct multipart m;
	char *back;

	random_mode = RANDOM_ZERO;
	files[0] = make_file("a.txt", "x", 1);
	compose_ok(body, strlen(body), &o, &c);
	parse_multipart(&c, &m);
	ck_assert_str_eq(m.boundary, ZERO_BOUNDARY);
	ck_assert_uint_eq(m.nparts, 2);
	assert_field(m.parts[0].head, "Content-Transfer-Encoding",
		     "quoted-printable");
	back = xmalloc(m.parts[0].len + 1);
	ck_assert_uint_eq(qp_decode(m.parts[0].body, m.parts[0].len, back),
			  strlen(body));
	ck_assert_int_eq(memcmp(back, body, strlen(body)), 0);
	assert_base64_part(&m.parts[1], "x", 1);
	free(back);
	multipart_free(&m);
	free(c.text);

	/* Not at the start of a line: no delimiter, no need to encode. */
	compose_ok(" --" ZERO_BOUNDARY "\n", strlen(ZERO_BOUNDARY) + 4, &o, &c);
	parse_multipart(&c, &m);
	assert_field(m.parts[0].head, "Content-Transfer-Encoding", "7bit");
	multipart_free(&m);
	free(c.text);
}
END_TEST

START_TEST(boundary_form)
{
	const char *files[1];
	struct compose_options o = { .attachments = files, .nattachments = 1,
				     .now = NOW, .domain = "ex@mple.örg" };
	struct composed c1, c2;
	struct multipart m1, m2;

	files[0] = make_file("a.txt", "x", 1);
	compose_ok("", 0, &o, &c1);
	compose_ok("", 0, &o, &c2);
	parse_multipart(&c1, &m1);
	parse_multipart(&c2, &m2);
	ck_assert_str_ne(m1.boundary, m2.boundary);
	ck_assert_int_eq(strncmp(m1.boundary, "=_", 2), 0);
	ck_assert_uint_le(strlen(m1.boundary), 70);	/* RFC 2046 5.1.1 */
	ck_assert_ptr_nonnull(strstr(m1.boundary, ".1700000000.exmple.rg"));
	ck_assert_uint_eq(strspn(m1.boundary, "0123456789abcdefghijklmnopqrstuvwxyz"
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"),
			  strlen(m1.boundary));
	multipart_free(&m1);
	multipart_free(&m2);
	free(c1.text);
	free(c2.text);

	o.domain = "a-very-long-domain-name-that-does-not-fit.example.org";
	compose_ok("", 0, &o, &c1);
	parse_multipart(&c1, &m1);
	ck_assert_uint_eq(strlen(m1.boundary), 64);
	ck_assert_uint_le(longest_line(c1.text, c1.len), 78);
	multipart_free(&m1);
	free(c1.text);

	o.domain = NULL;
	compose_ok("", 0, &o, &c1);
	parse_multipart(&c1, &m1);
	ck_assert_uint_eq(strlen(m1.boundary), 2 + 32 + 1 + 10);
	ck_assert_str_eq(m1.boundary + 34, ".1700000000");
	multipart_free(&m1);
	free(c1.text);
}
END_TEST

START_TEST(message_attachments)
{
	static const char plain[] = "From: a@example.org\nSubject: inner\n\nhi\n";
	static const char eight[] = "Subject: \xc3\xbc\n\n\xc3\xbc";
	char long_line[1200];
	const char *files[3];
	struct compose_options o = { .attachments = files, .nattachments = 3,
				     .now = NOW };
	struct composed c;
	struct multipart m;

	memset(long_line, 'x', sizeof long_line);
	files[0] = make_file("plain.eml", plain, strlen(plain));
	files[1] = make_file("long.eml", long_line, sizeof long_line);
	files[2] = make_file("eight.EML", eight, sizeof eight - 1);
	compose_ok("text\n", 5, &o, &c);
	assert_field(c.text, "Content-Transfer-Encoding", "8bit");
	parse_multipart(&c, &m);
	ck_assert_uint_eq(m.nparts, 4);
	/* RFC 2046 5.2.1: message/rfc822 only as 7bit or 8bit */
	assert_field(m.parts[1].head, "Content-Type", "message/rfc822");
	assert_field(m.parts[1].head, "Content-Transfer-Encoding", "7bit");
	ck_assert_uint_eq(m.parts[1].len, strlen(plain));
	ck_assert_int_eq(memcmp(m.parts[1].body, plain, strlen(plain)), 0);
	assert_field(m.parts[2].head, "Content-Type", "application/octet-stream");
	assert_field(m.parts[2].head, "Content-Disposition",
		     "attachment; filename=\"long.eml\"");
	assert_base64_part(&m.parts[2], long_line, sizeof long_line);
	assert_field(m.parts[3].head, "Content-Type", "message/rfc822");
	assert_field(m.parts[3].head, "Content-Transfer-Encoding", "8bit");
	ck_assert_uint_eq(m.parts[3].len, sizeof eight - 1);
	ck_assert_int_eq(memcmp(m.parts[3].body, eight, sizeof eight - 1), 0);
	multipart_free(&m);
	free(c.text);
}
END_TEST

/* What main does next: the spooler takes the output as it is, with no
 * line to split, no NUL to drop, and the header fields where they belong. */
START_TEST(output_passes_the_spooler_unchanged)
{
	unsigned char binary[5000];
	char body[3000];
	const char *files[2], *to[] = { "you@example.org" };
	struct compose_options o = { .subject = "Grüße aus Köln", .to = to,
				     .nto = 1, .attachments = files,
				     .nattachments = 2, .now = NOW };
	struct spool_options so = { .dot_ends_input = false };
	struct message msg = { 0 };
	struct composed c;
	size_t lines = 0;
	char err[256];
	int fd;

	for (size_t i = 0; i < sizeof binary; i++)
		binary[i] = (unsigned char)(i * 13);
	memset(body, 'y', sizeof body);	/* one line of 3000: QP */
	memcpy(body + 100, "\n.\nü", 5);
	files[0] = make_file("data.bin", binary, sizeof binary);
	files[1] = make_file("note.eml", "Subject: n\n\n.\n", 15);
	compose_ok(body, sizeof body, &o, &c);
	for (size_t i = 0; i < c.len; i++)
		lines += c.text[i] == '\n';
	fd = fd_with(c.text, c.len);
	ck_assert_int_eq(message_spool(fd, &so, &msg, err, sizeof err), 0);
	ck_assert_int_eq(msg.size, (off_t)(c.len + lines));	/* LF -> CRLF */
	ck_assert_uint_eq(msg.lines_split, 0);
	ck_assert_uint_eq(msg.nul_removed, 0);
	ck_assert(!msg.needs_separator);
	ck_assert_uint_le(msg.longest_line, 78);
	ck_assert_str_eq(message_header_find(&msg, "To")->value,
			 "you@example.org");
	ck_assert_str_eq(message_header_find(&msg, "Subject")->value,
			 "=?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=");
	ck_assert_str_eq(message_header_find(&msg, "MIME-Version")->value, "1.0");
	ck_assert_int_eq(strncmp(message_header_find(&msg, "Content-Type")->value,
				 "multipart/mixed; boundary=\"=_", 29), 0);
	message_free(&msg);
	close(fd);
	free(c.text);
}
END_TEST

/* ---- failures while working ---- */

START_TEST(write_error_is_reported)
{
	struct compose_options o = { .subject = "x", .now = NOW };
	char err[256];
	int in = fd_with("body\n", 5);
	int out = open("/dev/full", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(out, 0);
	ck_assert_int_eq(compose_message(in, out, &o, err, sizeof err), -1);
	ck_assert_str_eq(err, "cannot write the composed message: "
			 "No space left on device");
	close(out);
	close(in);
}
END_TEST

START_TEST(body_read_error_is_reported)
{
	struct compose_options o = { .now = NOW };
	struct composed c;
	int in = open(test_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(in, 0);
	compose_from(in, &o, &c);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_str_eq(c.err, "cannot read the message text: Is a directory");
	ck_assert_uint_eq(c.len, 0);
	free(c.text);
	close(in);
}
END_TEST

START_TEST(random_failure_is_reported)
{
	const char *files[1];
	struct compose_options o = { .attachments = files, .nattachments = 1,
				     .now = NOW };
	struct composed c;
	files[0] = make_file("a.txt", "x", 1);
	random_mode = RANDOM_FAIL;
	compose_str("x", 1, &o, &c);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_str_eq(c.err, "cannot make a MIME boundary: getrandom: "
			 "Function not implemented");
	ck_assert_uint_eq(c.len, 0);
	free(c.text);
}
END_TEST

START_TEST(spool_file_errors_are_reported)
{
	struct compose_options o = { .now = NOW };
	struct composed c;
	struct rlimit old, small;
	char body[5000];
	int in = fd_with("x\n", 2), out = fd_with("", 0);

	setenv("TMPDIR", "/nonexistent/tmp", 1);
	c.rc = compose_message(in, out, &o, c.err, sizeof c.err);
	unsetenv("TMPDIR");
	ck_assert_int_eq(c.rc, -1);
	ck_assert_int_eq(lseek(out, 0, SEEK_END), 0);
	ck_assert_ptr_nonnull(strstr(c.err, "cannot create a spool file in "
				     "/nonexistent/tmp"));
	close(out);
	close(in);

	/* A full disk while spooling: files may not grow past 1000 bytes. */
	memset(body, 'x', sizeof body);
	in = fd_with(body, sizeof body);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_cur = 1000;	/* the soft limit only: it can go back up */
	small.rlim_max = old.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	compose_from(in, &o, &c);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_uint_eq(c.len, 0);
	ck_assert_str_eq(c.err, "cannot write the spool file: File too large");
	free(c.text);
	close(in);
}
END_TEST

/* A file that opens but cannot be read: the error names it; what was
 * written so far is to be discarded by the caller. */
START_TEST(attachment_read_error_is_reported)
{
	const char *files[] = { "/proc/self/mem" };
	struct compose_options o = { .attachments = files, .nattachments = 1,
				     .now = NOW };
	struct composed c;
	compose_str("x\n", 2, &o, &c);
	ck_assert_int_eq(c.rc, -1);
	ck_assert_str_eq(c.err, "cannot read attachment /proc/self/mem: "
			 "Input/output error");
	free(c.text);
}
END_TEST

/* ---- large input, through a pipe ---- */

#define LARGE (5 * 1024 * 1024)

struct feeder {
	int fd;
	const char *data;
	size_t len;
};

static void *feeder_run(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0;
	while (off < f->len) {
		size_t n = f->len - off < 7000 ? f->len - off : 7000;
		ssize_t w = write(f->fd, f->data + off, n);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

static void compose_piped(const char *body, size_t len,
			  const struct compose_options *o, struct composed *c)
{
	int p[2];
	pthread_t t;
	struct feeder f = { .data = body, .len = len };
	ck_assert_int_eq(pipe(p), 0);
	f.fd = p[1];
	ck_assert_int_eq(pthread_create(&t, NULL, feeder_run, &f), 0);
	compose_from(p[0], o, c);
	close(p[0]);
	pthread_join(t, NULL);
	ck_assert_msg(c->rc == 0, "compose failed: %s", c->err);
}

static char *large_text(void)
{
	char *body = xmalloc(LARGE);
	for (size_t i = 0; i < LARGE; i++)
		body[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
	return body;
}

START_TEST(large_body_streams)
{
	static const char head[] = "Subject: big\nMIME-Version: 1.0\n"
		"Content-Type: text/plain; charset=us-ascii\n"
		"Content-Transfer-Encoding: 7bit\n\n";
	struct compose_options o = { .subject = "big", .now = NOW };
	struct composed c;
	char *body = large_text();

	compose_piped(body, LARGE, &o, &c);
	ck_assert_uint_eq(c.len, sizeof head - 1 + LARGE);
	ck_assert_int_eq(memcmp(c.text, head, sizeof head - 1), 0);
	ck_assert_int_eq(memcmp(c.text + sizeof head - 1, body, LARGE), 0);
	free(c.text);
	free(body);
}
END_TEST

START_TEST(large_body_and_attachment_stream)
{
	const char *files[1];
	struct compose_options o = { .attachments = files, .nattachments = 1,
				     .now = NOW };
	struct composed c;
	struct multipart m;
	char *body = large_text();
	unsigned char *blob = xmalloc(LARGE + 1);
	char *back;
	size_t lines = (LARGE + 1 + 56) / 57;

	for (size_t i = 0; i <= LARGE; i++)
		blob[i] = (unsigned char)(i * 7 + i / 256);
	files[0] = make_file("big.bin", blob, LARGE + 1);
	for (size_t i = 1000; i < 3000; i++)	/* a line too long: QP */
		if (body[i] == '\n')
			body[i] = '=';
	compose_piped(body, LARGE, &o, &c);
	parse_multipart(&c, &m);
	ck_assert_uint_eq(m.nparts, 2);
	assert_field(m.parts[0].head, "Content-Transfer-Encoding",
		     "quoted-printable");
	back = xmalloc(m.parts[0].len);
	ck_assert_uint_eq(qp_decode(m.parts[0].body, m.parts[0].len, back), LARGE);
	ck_assert_int_eq(memcmp(back, body, LARGE), 0);
	free(back);
	/* 4 characters per 3 octets, lines separated by LF */
	ck_assert_uint_eq(m.parts[1].len, 4 * ((LARGE + 1 + 2) / 3) + lines - 1);
	assert_base64_part(&m.parts[1], blob, LARGE + 1);
	multipart_free(&m);
	free(c.text);
	free(blob);
	free(body);
}
END_TEST

static Suite *compose_suite(void)
{
	Suite *s = suite_create("compose");
	TCase *t = tcase_create("compose");
	tcase_add_unchecked_fixture(t, dir_setup, dir_teardown);
	tcase_add_checked_fixture(t, test_setup, test_teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, base64_rfc4648_vectors);
	tcase_add_test(t, base64_all_byte_values);
	tcase_add_test(t, subject_ascii_untouched);
	tcase_add_test(t, subject_ascii_long_folds_at_white_space);
	tcase_add_test(t, subject_utf8_q_encoding);
	tcase_add_test(t, subject_utf8_b_when_shorter);
	tcase_add_test(t, subject_utf8_b_encoding);
	tcase_add_test(t, subject_long_multibyte_limits);
	tcase_add_test(t, subject_special_text_is_encoded);
	tcase_add_test(t, message_7bit_exact);
	tcase_add_test(t, message_minimal);
	tcase_add_test(t, message_8bit_body);
	tcase_add_test(t, message_long_line_quoted_printable);
	tcase_add_test(t, message_exactly_998_octets_stays_7bit);
	tcase_add_test(t, message_nul_and_bare_cr_quoted_printable);
	tcase_add_test(t, address_fields_fold);
	tcase_add_test(t, control_character_in_address_is_refused);
	tcase_add_test(t, two_attachments_round_trip);
	tcase_add_test(t, attachment_media_types);
	tcase_add_test(t, attachment_file_names);
	tcase_add_test(t, missing_attachment_fails_before_writing);
	tcase_add_test(t, multipart_8bit_text);
	tcase_add_test(t, boundary_in_text_forces_quoted_printable);
	tcase_add_test(t, boundary_form);
	tcase_add_test(t, message_attachments);
	tcase_add_test(t, output_passes_the_spooler_unchanged);
	tcase_add_test(t, write_error_is_reported);
	tcase_add_test(t, body_read_error_is_reported);
	tcase_add_test(t, random_failure_is_reported);
	tcase_add_test(t, spool_file_errors_are_reported);
	tcase_add_test(t, attachment_read_error_is_reported);
	tcase_add_test(t, large_body_streams);
	tcase_add_test(t, large_body_and_attachment_stream);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);	/* a feeder whose reader gave up */
	return run_suite(compose_suite());
}
