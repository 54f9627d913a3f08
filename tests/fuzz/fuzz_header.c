/* libFuzzer harness: spooling and emitting a message (src/message.h).
 *
 * The first input byte holds options (bit 0: dot_ends_input, as sendmail
 * without -i); the rest is the message as it would come on stdin, given to
 * message_spool through a memfd. Then message_emit runs with prepended
 * lines, Bcc removed and To replaced (Bcc also replaced, which must not
 * bring it back), once without and once with dot-stuffing.
 *
 * Checked, as message.h promises:
 *  - the spool file: CRLF line ends only (no bare CR or LF), a final CRLF,
 *    no NUL, no line over MESSAGE_LINE_MAX (longest_line is the longest),
 *    eight_bit / has_nul / nul_removed / dropped_mbox_from agree with the
 *    bytes; when nothing had to be split or dropped it is exactly the
 *    input with line ends made CRLF, NULs removed and, with dot_ends_input,
 *    cut before the line ".";
 *  - the header block: fields back to back from offset 0, each "name
 *    [WSP] ':' value CRLF" with continuation lines starting with WSP, the
 *    value unfolded with leading WSP removed; header_end after the empty
 *    line; needs_separator exactly when a body follows with no empty line;
 *    message_header_find finds the first field of a name;
 *  - message_emit: prepend + the header block with removed fields left
 *    out and replaced ones in place + CRLF when needs_separator + the
 *    body, byte for byte; blocks of at least 16 KiB except the last; with
 *    dot-stuffing, the same bytes stuffed per RFC 5321 4.5.2; lines of at
 *    most 998 octets + CRLF; message_emit_size is the unstuffed length; a
 *    sink's non-zero return value is what message_emit returns. */
#include "autoconf.h"

#include <sys/stat.h>

#include "message.h"
#include "util.h"

#include "fuzz_util.h"

#define EMIT_MIN_BLOCK (16 * 1024)

static const char prepend[] =
	"Received: from client.example.org by postbote (fuzz);\r\n"
	"\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
	"X-Fuzz: prepended\r\n";
static const char *const remove_fields[] = { "Bcc", NULL };
static const char to_replacement[] = "To: replaced@example.org\r\n";
static const char bcc_replacement[] = "Bcc: must-stay-removed@example.org\r\n";

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- the spool file ---- */

static char *read_spool(const struct message *msg)
{
	struct stat st;
	char *buf = malloc((size_t)msg->size + 1);
	size_t off = 0;

	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(fstat(msg->fd, &st) == 0 && st.st_size == msg->size);
	while (off < (size_t)msg->size) {
		ssize_t n = pread(msg->fd, buf + off, (size_t)msg->size - off,
				  (off_t)off);
		FUZZ_CHECK(n > 0);
		off += (size_t)n;
	}
	buf[off] = '\0';
	return buf;
}

/* CRLF only, a final CRLF, no NUL; returns the longest line (CRLF not
 * counted). */
static size_t check_crlf_text(const char *p, size_t n)
{
	size_t longest = 0, start = 0;

	FUZZ_CHECK(n == 0 || (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n'));
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(p[i] != '\0');
		if (p[i] == '\r')
			FUZZ_CHECK(i + 1 < n && p[i + 1] == '\n');
		if (p[i] != '\n')
			continue;
		FUZZ_CHECK(i > 0 && p[i - 1] == '\r');
		if (i - 1 - start > longest)
			longest = i - 1 - start;
		start = i + 1;
	}
	return longest;
}

/* What message.h says spooling does when no line needs splitting and no
 * From_ line is dropped: CR, LF and CRLF each end a line and become CRLF,
 * NULs go, a last line without end gets CRLF, and with dot_ends_input the
 * line "." ends the input. */
struct model {
	struct fuzz_buf spool;
	bool from_line;        /* the first line starts with "From " */
	bool needs_split;      /* a line is over MESSAGE_LINE_MAX without NULs */
	bool any_nul, any_8bit;
	size_t longest_input;  /* NULs counted */
};

static void model_spool(const uint8_t *p, size_t n, bool dot_ends,
			struct model *m)
{
	size_t i = 0;
	bool first = true;

	while (i < n) {
		size_t start = i, kept = 0;
		while (i < n && p[i] != '\r' && p[i] != '\n')
			i++;
		size_t len = i - start;
		if (i < n)
			i += p[i] == '\r' && i + 1 < n && p[i + 1] == '\n' ? 2 : 1;
		if (dot_ends && len == 1 && p[start] == '.')
			break;
		if (first && len >= 5 && memcmp(p + start, "From ", 5) == 0)
			m->from_line = true;
		first = false;
		for (size_t k = start; k < start + len; k++) {
			m->any_nul |= p[k] == 0;
			m->any_8bit |= p[k] >= 0x80;
			if (p[k] != 0) {
				fuzz_buf_addc(&m->spool, (char)p[k]);
				kept++;
			}
		}
		fuzz_buf_add(&m->spool, "\r\n", 2);
		m->needs_split |= kept > MESSAGE_LINE_MAX;
		if (len > m->longest_input)
			m->longest_input = len;
	}
}

static void check_spool(const struct message *msg, const char *spool,
			const uint8_t *in, size_t in_len, bool dot_ends)
{
	struct model m = { 0 };
	bool spool_8bit = false;

	FUZZ_CHECK(check_crlf_text(spool, (size_t)msg->size) ==
		   msg->longest_line);
	FUZZ_CHECK(msg->longest_line <= MESSAGE_LINE_MAX);
	for (off_t i = 0; i < msg->size; i++)
		spool_8bit |= (unsigned char)spool[i] >= 0x80;
	if (spool_8bit)
		FUZZ_CHECK(msg->eight_bit);
	FUZZ_CHECK(msg->has_nul == (msg->nul_removed > 0));
	model_spool(in, in_len, dot_ends, &m);
	if (msg->eight_bit)
		FUZZ_CHECK(m.any_8bit);
	if (msg->has_nul)
		FUZZ_CHECK(m.any_nul);
	if (msg->dropped_mbox_from)
		FUZZ_CHECK(m.from_line);
	if (!m.from_line) {
		FUZZ_CHECK(msg->has_nul == m.any_nul);
		FUZZ_CHECK(msg->eight_bit == m.any_8bit);
		FUZZ_CHECK(msg->longest_input_line == m.longest_input);
		if (m.needs_split)
			FUZZ_CHECK(msg->lines_split > 0);
	}
	if (!m.from_line && !m.needs_split) {
		FUZZ_CHECK(msg->lines_split == 0);
		FUZZ_CHECK((size_t)msg->size == m.spool.n);
		FUZZ_CHECK(m.spool.n == 0 ||
			   memcmp(spool, m.spool.p, m.spool.n) == 0);
	}
	fuzz_buf_free(&m.spool);
}

/* ---- the header block ---- */

/* RFC 5322 3.6.8 ftext: printable US-ASCII except ':'. */
static bool is_ftext(char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* value is the raw text after the colon with CRLFs removed and leading WSP
 * removed; trailing WSP may be removed too. */
static void check_value(const char *raw, size_t len, const char *value)
{
	struct fuzz_buf u = { 0 };
	size_t i = 0, vlen = strlen(value);

	while (i < len) {
		if (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n') {
			i += 2;
			continue;
		}
		fuzz_buf_addc(&u, raw[i++]);
	}
	fuzz_buf_addc(&u, '\0');
	const char *v = u.p;
	while (is_wsp(*v))
		v++;
	FUZZ_CHECK(strlen(v) >= vlen && memcmp(v, value, vlen) == 0);
	for (const char *t = v + vlen; *t; t++)
		FUZZ_CHECK(is_wsp(*t));
	FUZZ_CHECK(!is_wsp(value[0]));
	FUZZ_CHECK(strpbrk(value, "\r\n") == NULL);
	fuzz_buf_free(&u);
}

static void check_field(const struct header_field *h, const char *spool)
{
	const char *raw = spool + h->offset;
	size_t name_len = strlen(h->name), i;

	FUZZ_CHECK(h->length >= 2 && raw[h->length - 2] == '\r' &&
		   raw[h->length - 1] == '\n');
	FUZZ_CHECK(name_len > 0 && memcmp(raw, h->name, name_len) == 0);
	for (i = 0; i < name_len; i++)
		FUZZ_CHECK(is_ftext(h->name[i]));
	while (is_wsp(raw[i]))
		i++;
	FUZZ_CHECK(raw[i] == ':');
	/* RFC 5322 2.2.3: every line after the first starts with WSP. */
	for (size_t k = 0; k + 2 < h->length; k++)
		if (raw[k] == '\n')
			FUZZ_CHECK(is_wsp(raw[k + 1]));
	check_value(raw + i + 1, h->length - 2 - (i + 1), h->value);
}

static bool line_before_is_empty(const char *spool, off_t end)
{
	if (end == 2)
		return spool[0] == '\r' && spool[1] == '\n';
	return end >= 4 && memcmp(spool + end - 4, "\r\n\r\n", 4) == 0;
}

static void check_header_block(const struct message *msg, const char *spool)
{
	off_t end = 0;
	const struct header_field *bcc = NULL;

	FUZZ_CHECK(msg->header_end >= 0 && msg->header_end <= msg->size);
	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct header_field *h = &msg->headers[i];
		FUZZ_CHECK(h->offset == end);
		end += (off_t)h->length;
		FUZZ_CHECK(end <= msg->header_end);
		check_field(h, spool);
		if (!bcc && fuzz_ascii_eq(h->name, "bcc"))
			bcc = h;
	}
	FUZZ_CHECK(message_header_find(msg, "bCC") == bcc);
	/* After the fields: nothing, or the empty line. */
	FUZZ_CHECK(msg->header_end == end ||
		   (msg->header_end == end + 2 &&
		    line_before_is_empty(spool, msg->header_end)));
	if (msg->needs_separator) {
		FUZZ_CHECK(msg->header_end < msg->size);
		FUZZ_CHECK(!line_before_is_empty(spool, msg->header_end));
		FUZZ_CHECK(memcmp(spool + msg->header_end, "\r\n", 2) != 0);
	} else if (msg->header_end < msg->size) {
		FUZZ_CHECK(line_before_is_empty(spool, msg->header_end));
	}
}

/* ---- emitting ---- */

struct sink {
	struct fuzz_buf out;
	bool short_block;     /* a block under EMIT_MIN_BLOCK came already */
	int fail_with;        /* return this from the first call, if non-zero */
};

static int sink_write(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;

	if (s->fail_with)
		return s->fail_with;
	FUZZ_CHECK(!s->short_block);
	s->short_block = len < EMIT_MIN_BLOCK;
	fuzz_buf_add(&s->out, data, len);
	return 0;
}

static bool is_removed(const char *name)
{
	for (size_t i = 0; remove_fields[i]; i++)
		if (fuzz_ascii_eq(name, remove_fields[i]))
			return true;
	return false;
}

static const char **make_replacements(const struct message *msg)
{
	const char **v = calloc(msg->nheaders + 1, sizeof *v);

	FUZZ_CHECK(v != NULL);
	for (size_t i = 0; i < msg->nheaders; i++) {
		if (fuzz_ascii_eq(msg->headers[i].name, "To"))
			v[i] = to_replacement;
		else if (fuzz_ascii_eq(msg->headers[i].name, "Bcc"))
			v[i] = bcc_replacement;
	}
	return v;
}

static void expected_output(const struct message *msg, const char *spool,
			    const char *const *replace, struct fuzz_buf *want)
{
	off_t from = 0;

	fuzz_buf_add(want, prepend, sizeof prepend - 1);
	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct header_field *h = &msg->headers[i];
		if (!is_removed(h->name) && !replace[i])
			continue;
		fuzz_buf_add(want, spool + from, (size_t)(h->offset - from));
		if (!is_removed(h->name))
			fuzz_buf_add(want, replace[i], strlen(replace[i]));
		from = h->offset + (off_t)h->length;
	}
	fuzz_buf_add(want, spool + from, (size_t)(msg->header_end - from));
	if (msg->needs_separator)
		fuzz_buf_add(want, "\r\n", 2);
	fuzz_buf_add(want, spool + msg->header_end,
		     (size_t)(msg->size - msg->header_end));
}

/* RFC 5321 4.5.2: a line that starts with '.' gets one more. */
static void reference_stuff(const char *p, size_t n, struct fuzz_buf *out)
{
	bool line_start = true;

	for (size_t i = 0; i < n; i++) {
		if (line_start && p[i] == '.')
			fuzz_buf_addc(out, '.');
		fuzz_buf_addc(out, p[i]);
		line_start = p[i] == '\n';
	}
}

static bool same_bytes(const struct fuzz_buf *a, const struct fuzz_buf *b)
{
	return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

static void check_emit(const struct message *msg, const char *spool)
{
	const char **replace = make_replacements(msg);
	struct emit_options opt = {
		.prepend = prepend, .remove = remove_fields, .replace = replace,
	};
	struct sink plain = { 0 }, stuffed = { 0 }, failing = { .fail_with = 7 };
	struct fuzz_buf want = { 0 }, want_stuffed = { 0 };

	expected_output(msg, spool, replace, &want);
	FUZZ_CHECK(message_emit(msg, &opt, sink_write, &plain) == 0);
	FUZZ_CHECK(same_bytes(&plain.out, &want));
	FUZZ_CHECK(check_crlf_text(plain.out.p, plain.out.n) <=
		   MESSAGE_LINE_MAX);
	FUZZ_CHECK(message_emit_size(msg, &opt) == (off_t)plain.out.n);
	if (msg->size == 0)
		FUZZ_CHECK(plain.out.n == sizeof prepend - 1);

	opt.dot_stuff = true;
	FUZZ_CHECK(message_emit_size(msg, &opt) == (off_t)plain.out.n);
	FUZZ_CHECK(message_emit(msg, &opt, sink_write, &stuffed) == 0);
	reference_stuff(plain.out.p, plain.out.n, &want_stuffed);
	FUZZ_CHECK(same_bytes(&stuffed.out, &want_stuffed));

	FUZZ_CHECK(message_emit(msg, &opt, sink_write, &failing) == 7);

	fuzz_buf_free(&plain.out);
	fuzz_buf_free(&stuffed.out);
	fuzz_buf_free(&want);
	fuzz_buf_free(&want_stuffed);
	free(replace);
}

/* dot_stuff() on its own, the spool split in two at an arbitrary point:
 * the state carries over between calls. */
static void check_dot_stuff(const char *spool, size_t n, size_t cut)
{
	struct dot_stuffer st;
	struct fuzz_buf want = { 0 };
	char *out = malloc(2 * n + 1);
	size_t len;

	FUZZ_CHECK(out != NULL);
	cut = n ? cut % (n + 1) : 0;
	dot_stuffer_init(&st);
	len = dot_stuff(&st, spool, cut, out);
	len += dot_stuff(&st, spool + cut, n - cut, out + len);
	reference_stuff(spool, n, &want);
	FUZZ_CHECK(len == want.n && (len == 0 || memcmp(out, want.p, len) == 0));
	fuzz_buf_free(&want);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_options opt = { 0 };
	struct message msg;
	char err[256] = "";
	int fd;

	if (size == 0)
		return 0;
	opt.dot_ends_input = data[0] & 1;
	fd = fuzz_memfd(data + 1, size - 1);
	if (message_spool(fd, &opt, &msg, err, sizeof err) != 0) {
		FUZZ_CHECK(err[0] != '\0');
		close(fd);
		return 0;
	}
	close(fd);
	char *spool = read_spool(&msg);
	check_spool(&msg, spool, data + 1, size - 1, opt.dot_ends_input);
	check_header_block(&msg, spool);
	check_emit(&msg, spool);
	check_dot_stuff(spool, (size_t)msg.size, data[0] >> 1);
	free(spool);
	message_free(&msg);
	return 0;
}
