#include "autoconf.h"
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_MAGIC "postbote-queue 1"
#define ROOT_QUEUE_DIR "/var/spool/postbote/queue"
/* Copies made while loading a message move in blocks this large. */
#define COPY_BLOCK (64 * 1024)
/* Largest value of a signed integer type, without overflowing on the way. */
#define SIGNED_MAX(type) \
	(((uintmax_t)1 << (sizeof(type) * CHAR_BIT - 2)) * 2 - 1)

/* ---- small file helpers ---- */

/* "DIR/ID.env", "DIR/tmp/ID.msg", ...: sub is a subdirectory or NULL. */
static char *entry_path(const char *dir, const char *sub, const char *id,
			const char *ext)
{
	if (sub)
		return xasprintf("%s/%s/%s%s", dir, sub, id, ext);
	return xasprintf("%s/%s%s", dir, id, ext);
}

/* A rename or unlink is durable only once its directory is synced. Some
 * file systems cannot sync a directory (EINVAL): nothing more to do. */
static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	if (rc != 0 && saved == EINVAL)
		return 0;
	errno = saved;
	return rc;
}

static int fsync_subdir(const char *dir, const char *sub)
{
	char *path = xasprintf("%s/%s", dir, sub);
	int rc = fsync_dir(path);
	int saved = errno;

	free(path);
	errno = saved;
	return rc;
}

/* Reads a whole envelope file from offset 0 (the descriptor may be the
 * locked one, whose offset we leave alone). */
static char *read_envelope_file(int fd, size_t *len, char *why, size_t whylen)
{
	struct stat st;
	char *buf;
	size_t n = 0;

	if (fstat(fd, &st) != 0) {
		format_into(why, whylen, "%s", strerror(errno));
		return NULL;
	}
	if (st.st_size > QUEUE_ENVELOPE_MAX) {
		format_into(why, whylen, "larger than %d bytes",
			    QUEUE_ENVELOPE_MAX);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (n < (size_t)st.st_size) {
		ssize_t r = pread(fd, buf + n, (size_t)st.st_size - n,
				  (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			format_into(why, whylen, "%s", r < 0 ? strerror(errno)
					: "shorter than its size");
			free(buf);
			return NULL;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* ---- problems with single entries, collected into err ---- */

struct report {
	char *buf;
	size_t size;
	int count;
};

static void report_add(struct report *r, const char *path, const char *why)
{
	size_t used = r->count && r->size ? strlen(r->buf) : 0;

	if (r->size && r->count)
		format_into(r->buf + used, r->size - used, "; %s: %s", path,
			    why);
	else if (r->size)
		format_into(r->buf, r->size, "%s: %s", path, why);
	r->count++;
}

/* ---- values ---- */

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if (is_control((unsigned char)*s))
			return true;
	return false;
}

/* Server replies have several lines and may carry anything: a run of
 * control characters (a line end, a tab) and the blanks after it (the
 * next line's indentation) become one space, and the text is cut (not
 * inside a UTF-8 sequence) to QUEUE_ERROR_MAX bytes. */
static char *one_line(const char *text)
{
	size_t len = strlen(text), n = 0;
	char *s = xmalloc(len + 1);
	bool in_break = false;

	for (size_t i = 0; i < len; i++) {
		if (is_control((unsigned char)text[i])) {
			if (n > 0 && s[n - 1] != ' ')
				s[n++] = ' ';
			in_break = true;
		} else if (!(in_break && text[i] == ' ')) {
			s[n++] = text[i];
			in_break = false;
		}
	}
	while (n > 0 && s[n - 1] == ' ')
		n--;
	if (n > QUEUE_ERROR_MAX) {
		n = QUEUE_ERROR_MAX - 3;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		memcpy(s + n, "...", 3);
		n += 3;
	}
	s[n] = '\0';
	return s;
}

static bool is_id_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	       (c >= 'a' && c <= 'z') || c == '.' || c == '-';
}

static bool valid_id(const char *id, size_t len)
{
	if (len == 0 || len > QUEUE_ID_MAX || id[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_id_char(id[i]))
			return false;
	return true;
}

/* Strict decimal: digits only, no sign, no leading zero, at most max. */
static bool parse_decimal(const char *s, uintmax_t max, uintmax_t *out)
{
	uintmax_t v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (d > 9 || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* ---- the envelope file: one table drives writing and parsing ---- */

enum field_type {
	FIELD_TEXT,           /* required string */
	FIELD_OPTIONAL_TEXT,  /* string, line left out when NULL */
	FIELD_TIME,
	FIELD_COUNT,
	FIELD_SIZE,
	FIELD_FLAG,           /* "yes" or "no" */
	FIELD_RCPT,           /* repeated, at least once */
};

struct envelope_field {
	const char *key;
	enum field_type type;
	size_t offset;        /* of the member in struct queue_entry */
};

#define FIELD(key, type, member) \
	{ key, type, offsetof(struct queue_entry, member) }

static const struct envelope_field fields[] = {
	FIELD("id", FIELD_TEXT, id),
	FIELD("created", FIELD_TIME, created),
	FIELD("next-attempt", FIELD_TIME, next_attempt),
	FIELD("attempts", FIELD_COUNT, attempts),
	FIELD("size", FIELD_SIZE, size),
	FIELD("account", FIELD_OPTIONAL_TEXT, account),
	FIELD("sender", FIELD_TEXT, sender),
	FIELD("body-8bit", FIELD_FLAG, body_8bit),
	FIELD("smtputf8", FIELD_FLAG, smtputf8),
	FIELD("dsn-notify", FIELD_OPTIONAL_TEXT, dsn_notify),
	FIELD("dsn-ret", FIELD_OPTIONAL_TEXT, dsn_ret),
	FIELD("dsn-envid", FIELD_OPTIONAL_TEXT, dsn_envid),
	FIELD("last-error", FIELD_OPTIONAL_TEXT, last_error),
	FIELD("rcpt", FIELD_RCPT, rcpts),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static char **field_text(struct queue_entry *e, const struct envelope_field *f)
{
	return (char **)((char *)e + f->offset);
}

struct text {
	char *s;
	size_t len, cap;
};

static void text_addf(struct text *t, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void text_addf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (t->len + (size_t)n + 1 > t->cap) {
		/* doubling: thousands of recipient lines in linear time */
		t->cap = 2 * (t->len + (size_t)n + 1);
		t->s = xrealloc(t->s, t->cap);
	}
	va_start(ap, fmt);
	vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static void format_field(struct text *t, const struct envelope_field *f,
			 struct queue_entry *e)
{
	const char *p = (const char *)e + f->offset;

	switch (f->type) {
	case FIELD_TEXT:
	case FIELD_OPTIONAL_TEXT:
		if (*field_text(e, f))
			text_addf(t, "%s %s\n", f->key, *field_text(e, f));
		break;
	case FIELD_TIME:
		text_addf(t, "%s %jd\n", f->key, (intmax_t)*(const time_t *)p);
		break;
	case FIELD_COUNT:
		text_addf(t, "%s %u\n", f->key, *(const unsigned *)p);
		break;
	case FIELD_SIZE:
		text_addf(t, "%s %jd\n", f->key, (intmax_t)*(const off_t *)p);
		break;
	case FIELD_FLAG:
		text_addf(t, "%s %s\n", f->key,
			  *(const bool *)p ? "yes" : "no");
		break;
	case FIELD_RCPT:
		for (size_t i = 0; i < e->rcpts.n; i++)
			text_addf(t, "%s %s\n", f->key, e->rcpts.v[i]);
		break;
	}
}

/* The envelope file's text; NULL (err set) when it would be too large to
 * read back. The values were checked by entry_check. */
static char *envelope_format(struct queue_entry *e, size_t *len,
			     char *err, size_t errlen)
{
	struct text t = { 0 };

	text_addf(&t, "%s\n", QUEUE_MAGIC);
	for (size_t i = 0; i < NFIELDS; i++)
		format_field(&t, &fields[i], e);
	text_addf(&t, "end\n");
	if (t.len > QUEUE_ENVELOPE_MAX) {
		format_into(err, errlen, "the envelope is larger than %d bytes "
			    "(%zu recipients)", QUEUE_ENVELOPE_MAX, e->rcpts.n);
		free(t.s);
		return NULL;
	}
	*len = t.len;
	return t.s;
}

static const struct envelope_field *field_find(const char *key)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (strcmp(fields[i].key, key) == 0)
			return &fields[i];
	return NULL;
}

static bool parse_number(const struct envelope_field *f, const char *value,
			 struct queue_entry *e)
{
	char *p = (char *)e + f->offset;
	uintmax_t v;

	switch (f->type) {
	case FIELD_TIME:
		if (!parse_decimal(value, SIGNED_MAX(time_t), &v))
			return false;
		*(time_t *)p = (time_t)v;
		return true;
	case FIELD_COUNT:
		if (!parse_decimal(value, UINT_MAX, &v))
			return false;
		*(unsigned *)p = (unsigned)v;
		return true;
	default:
		if (!parse_decimal(value, SIGNED_MAX(off_t), &v))
			return false;
		*(off_t *)p = (off_t)v;
		return true;
	}
}

static bool parse_value(const struct envelope_field *f, const char *value,
			struct queue_entry *e)
{
	switch (f->type) {
	case FIELD_TEXT:
	case FIELD_OPTIONAL_TEXT:
		*field_text(e, f) = xstrdup(value);
		return true;
	case FIELD_FLAG:
		if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
			return false;
		*(bool *)((char *)e + f->offset) = value[0] == 'y';
		return true;
	case FIELD_RCPT:
		if (!*value)
			return false;
		strlist_add(&e->rcpts, value);
		return true;
	default:
		return parse_number(f, value, e);
	}
}

/* One "key value" line; seen has a bit per table row. */
static int parse_line(char *line, size_t lineno, unsigned *seen,
		      struct queue_entry *e, char *why, size_t whylen)
{
	char *value = strchr(line, ' ');
	const struct envelope_field *f;
	unsigned bit;

	if (value)
		*value++ = '\0';
	f = field_find(line);
	if (!f) {
		format_into(why, whylen, "line %zu: unknown key \"%s\"",
			    lineno, line);
		return -1;
	}
	bit = 1u << (f - fields);
	if ((*seen & bit) && f->type != FIELD_RCPT) {
		format_into(why, whylen, "line %zu: \"%s\" appears twice",
			    lineno, line);
		return -1;
	}
	*seen |= bit;
	if (!value || !parse_value(f, value, e)) {
		format_into(why, whylen, "line %zu: bad value for \"%s\"",
			    lineno, line);
		return -1;
	}
	return 0;
}

static int check_complete(unsigned seen, const char *id,
			  const struct queue_entry *e, char *why, size_t whylen)
{
	for (size_t i = 0; i < NFIELDS; i++) {
		if (fields[i].type == FIELD_OPTIONAL_TEXT ||
		    (seen & (1u << i)))
			continue;
		format_into(why, whylen, "no \"%s\" line", fields[i].key);
		return -1;
	}
	if (strcmp(e->id, id) != 0) {
		format_into(why, whylen, "holds the id of another entry (%s)",
			    e->id);
		return -1;
	}
	return 0;
}

/* The next line of text at *pos, NUL-terminated in place; NULL at the
 * end. A line without LF or with a control character is an error. */
static char *next_line(char *text, size_t len, size_t *pos, size_t lineno,
		       char *why, size_t whylen)
{
	char *line = text + *pos;
	char *lf = memchr(line, '\n', len - *pos);

	if (!lf) {
		format_into(why, whylen, "line %zu: %s", lineno,
			    *pos < len ? "no line end (truncated?)"
				       : "no \"end\" line (truncated?)");
		return NULL;
	}
	*lf = '\0';
	*pos = (size_t)(lf + 1 - text);
	for (char *c = line; c < lf; c++) {
		if (is_control((unsigned char)*c)) {
			format_into(why, whylen,
				    "line %zu: control character 0x%02x",
				    lineno, (unsigned char)*c);
			return NULL;
		}
	}
	return line;
}

/* Parses text (modified in place) into a zeroed e. id is the one the file
 * name says. On error e is freed and why says what is wrong. */
static int envelope_parse(char *text, size_t len, const char *id,
			  struct queue_entry *e, char *why, size_t whylen)
{
	size_t pos = 0, lineno = 1;
	unsigned seen = 0;
	char *line = next_line(text, len, &pos, lineno, why, whylen);

	e->lock_fd = -1;
	if (line && strcmp(line, QUEUE_MAGIC) != 0) {
		format_into(why, whylen, "not a \"%s\" file", QUEUE_MAGIC);
		line = NULL;
	}
	while (line) {
		line = next_line(text, len, &pos, ++lineno, why, whylen);
		if (!line)
			break;
		if (strcmp(line, "end") == 0) {
			if (pos == len &&
			    check_complete(seen, id, e, why, whylen) == 0)
				return 0;
			if (pos != len)
				format_into(why, whylen, "text after \"end\"");
			break;
		}
		if (parse_line(line, lineno, &seen, e, why, whylen) != 0)
			break;
	}
	queue_entry_free(e);
	return -1;
}

/* Reads and parses the envelope file open at fd. */
static int envelope_read(int fd, const char *id, struct queue_entry *e,
			 char *why, size_t whylen)
{
	size_t len;
	char *text = read_envelope_file(fd, &len, why, whylen);
	int rc;

	memset(e, 0, sizeof *e);
	e->lock_fd = -1;
	if (!text)
		return -1;
	if (memchr(text, '\0', len)) {
		format_into(why, whylen, "contains a NUL byte");
		free(text);
		return -1;
	}
	rc = envelope_parse(text, len, id, e, why, whylen);
	free(text);
	return rc;
}

/* Everything queue_add would write must read back the same. */
static int entry_check(const struct queue_entry *e, char *err, size_t errlen)
{
	const char *const named[][2] = {
		{ "account", e->account }, { "sender", e->sender },
		{ "DSN NOTIFY value", e->dsn_notify },
		{ "DSN RET value", e->dsn_ret }, { "DSN ENVID", e->dsn_envid },
	};

	if (!e->sender || e->rcpts.n == 0) {
		format_into(err, errlen, "cannot queue a message without %s",
			    e->sender ? "recipients" : "a sender");
		return -1;
	}
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
		if (named[i][1] && has_control(named[i][1])) {
			format_into(err, errlen, "cannot queue: the %s "
				    "contains a control character",
				    named[i][0]);
			return -1;
		}
	}
	for (size_t i = 0; i < e->rcpts.n; i++) {
		if (!*e->rcpts.v[i] || has_control(e->rcpts.v[i])) {
			format_into(err, errlen, "cannot queue: recipient %zu "
				    "is empty or contains a control character",
				    i + 1);
			return -1;
		}
	}
	return 0;
}

/* ---- the directory ---- */

char *queue_default_dir_for(uid_t euid)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");

	if (euid == 0)
		return xstrdup(ROOT_QUEUE_DIR);
	if (state && state[0] == '/')
		return xasprintf("%s/postbote/queue", state);
	if (!home || !*home) {
		struct passwd *pw = getpwuid(euid);
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return NULL;
	return xasprintf("%s/.local/state/postbote/queue", home);
}

char *queue_default_dir(void)
{
	return queue_default_dir_for(geteuid());
}

/* mkdir -p with mode 0700 for whatever is created. */
static int make_dirs(const char *path, char *err, size_t errlen)
{
	char *p = xstrdup(path);
	int rc = 0;

	for (char *slash = p + 1; rc == 0; slash++) {
		bool last = *slash == '\0';
		if (!last && *slash != '/')
			continue;
		*slash = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			format_into(err, errlen, "cannot create %s: %s", p,
				    strerror(errno));
			rc = -1;
		}
		if (last)
			break;
		*slash = '/';
	}
	free(p);
	return rc;
}

static int check_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		format_into(err, errlen, "cannot use queue directory %s: %s",
			    path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		format_into(err, errlen, "%s is not a directory", path);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		format_into(err, errlen, "refusing to use queue directory %s: "
			    "it must belong to uid %ju and be writable by it "
			    "alone", path, (uintmax_t)geteuid());
		return -1;
	}
	return 0;
}

static int make_subdir(const char *dir, const char *sub, char *err,
		       size_t errlen)
{
	char *path = xasprintf("%s/%s", dir, sub);
	int rc = 0;

	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		format_into(err, errlen, "cannot create %s: %s", path,
			    strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		rc = check_dir(path, err, errlen);
	free(path);
	return rc;
}

static int cmp_ids(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids of the entry files DIR/ID<ext>, sorted (ids sort by creation,
 * so this is oldest first). Other names are not ours: skipped. */
static int scan_ids(const char *dir, const char *ext, struct strlist *ids,
		    char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	size_t extlen = strlen(ext);
	struct dirent *de;

	/* The first queue_open makes the directory: empty till then. */
	if (!d && errno == ENOENT)
		return 0;
	if (!d) {
		format_into(err, errlen, "cannot read queue directory %s: %s",
			    dir, strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len <= extlen ||
		    strcmp(de->d_name + len - extlen, ext) != 0 ||
		    !valid_id(de->d_name, len - extlen))
			continue;
		char *id = xstrndup(de->d_name, len - extlen);
		strlist_add(ids, id);
		free(id);
	}
	if (errno != 0) {
		format_into(err, errlen, "cannot read queue directory %s: %s",
			    dir, strerror(errno));
		closedir(d);
		strlist_free(ids);
		return -1;
	}
	closedir(d);
	if (ids->n > 1)
		qsort(ids->v, ids->n, sizeof *ids->v, cmp_ids);
	return 0;
}

static bool file_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 || errno != ENOENT;
}

static bool is_stale(const char *path, time_t now)
{
	struct stat st;
	return lstat(path, &st) == 0 && now - st.st_mtime >= QUEUE_STALE_AGE;
}

/* A message file without envelope: finish an interrupted queue_expire, or
 * remove a crashed queue_add's (or queue_remove's) leftover once it is
 * old enough not to belong to a queue_add still running. */
static void clean_orphan(const char *dir, const char *id, time_t now,
			 struct report *r)
{
	char *env = entry_path(dir, NULL, id, ".env");
	char *msg = entry_path(dir, NULL, id, ".msg");
	char *failed_env = entry_path(dir, "failed", id, ".env");

	if (file_exists(env)) {
		/* an entry, not an orphan */
	} else if (file_exists(failed_env)) {
		char *failed_msg = entry_path(dir, "failed", id, ".msg");
		if (rename(msg, failed_msg) != 0 && errno != ENOENT)
			report_add(r, msg, strerror(errno));
		free(failed_msg);
	} else if (is_stale(msg, now) && unlink(msg) != 0 && errno != ENOENT) {
		report_add(r, msg, strerror(errno));
	}
	free(env);
	free(msg);
	free(failed_env);
}

static void clean_tmp(const char *dir, time_t now, struct report *r)
{
	char *tmp = xasprintf("%s/tmp", dir);
	DIR *d = opendir(tmp);
	struct dirent *de;

	if (!d) {
		report_add(r, tmp, strerror(errno));
		free(tmp);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *path;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		path = xasprintf("%s/%s", tmp, de->d_name);
		if (is_stale(path, now) && unlink(path) != 0 && errno != ENOENT)
			report_add(r, path, strerror(errno));
		free(path);
	}
	closedir(d);
	free(tmp);
}

int queue_open(const char *dir, char *err, size_t errlen)
{
	struct report r = { err, errlen, 0 };
	struct strlist msgs = { 0 };
	time_t now = time(NULL);

	if (!dir || !*dir) {
		format_into(err, errlen, "no queue directory");
		return -1;
	}
	if (make_dirs(dir, err, errlen) != 0 ||
	    check_dir(dir, err, errlen) != 0 ||
	    make_subdir(dir, "tmp", err, errlen) != 0 ||
	    make_subdir(dir, "failed", err, errlen) != 0)
		return -1;
	if (err && errlen)
		err[0] = '\0';
	clean_tmp(dir, now, &r);
	if (scan_ids(dir, ".msg", &msgs, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < msgs.n; i++)
		clean_orphan(dir, msgs.v[i], now, &r);
	strlist_free(&msgs);
	return r.count;
}

time_t queue_backoff(unsigned attempts)
{
	time_t delay = QUEUE_BACKOFF_FIRST;

	for (unsigned i = 1; i < attempts && delay < QUEUE_BACKOFF_MAX; i++)
		delay *= 2;
	return delay < QUEUE_BACKOFF_MAX ? delay : QUEUE_BACKOFF_MAX;
}

/* ---- adding ---- */

/* Wall-clock time to the microsecond, strictly increasing within this
 * process, so that ids made here sort in the order they were made even
 * within one microsecond. */
static struct timespec creation_time(void)
{
	static struct timespec last;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec -= ts.tv_nsec % 1000;
	if (ts.tv_sec < last.tv_sec ||
	    (ts.tv_sec == last.tv_sec && ts.tv_nsec <= last.tv_nsec)) {
		ts = last;
		ts.tv_nsec += 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	last = ts;
	return ts;
}

/* Time first (fixed width, UTC) so that ids sort by creation; pid and 64
 * random bits keep processes apart, even several that share a pid (one
 * queue directory mounted into several containers). */
static char *make_id(time_t *created)
{
	struct timespec ts = creation_time();
	uint64_t rnd;
	struct tm tm;
	char stamp[32];

	if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
		rnd = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
		      (uint64_t)(uintptr_t)&rnd;
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
	*created = ts.tv_sec;
	return xasprintf("%s.%06ldZ-%ld-%016" PRIx64, stamp,
			 (long)(ts.tv_nsec / 1000), (long)getpid(), rnd);
}

struct file_sink {
	int fd;
	off_t written;
};

static int file_sink_write(void *ctx, const void *data, size_t len)
{
	struct file_sink *s = ctx;

	if (write_all(s->fd, data, len) != 0)
		return -1;
	s->written += (off_t)len;
	return 0;
}

/* The paths of one queue_add. */
struct add_paths {
	char *tmp_msg, *tmp_env, *msg, *env;
};

static void add_paths_free(struct add_paths *p)
{
	free(p->tmp_msg);
	free(p->tmp_env);
	free(p->msg);
	free(p->env);
}

/* A new file under tmp/ for e->id; EEXIST means the id is taken. */
static int create_tmp(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

static int write_message(const struct add_paths *p, int fd,
			 struct queue_entry *e, const struct message *msg,
			 const struct emit_options *emit,
			 char *err, size_t errlen)
{
	struct emit_options plain = { 0 };
	struct file_sink sink = { fd, 0 };

	if (emit)
		plain = *emit;
	plain.dot_stuff = false;	/* stored as sent, stuffed on sending */
	if (message_emit(msg, &plain, file_sink_write, &sink) != 0 ||
	    fsync(fd) != 0) {
		format_into(err, errlen, "cannot write queue file %s: %s",
			    p->tmp_msg, strerror(errno));
		return -1;
	}
	e->size = sink.written;
	return 0;
}

static int write_envelope(const char *path, int fd, struct queue_entry *e,
			  char *err, size_t errlen)
{
	size_t len;
	char *text = envelope_format(e, &len, err, errlen);
	int rc = 0;

	if (!text)
		return -1;
	if (write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		format_into(err, errlen, "cannot write queue file %s: %s",
			    path, strerror(errno));
		rc = -1;
	}
	free(text);
	return rc;
}

/* Both files into place, the envelope last: that is the commit. The sync
 * between the renames keeps that order through a power failure too. */
static int commit_entry(const char *dir, const struct add_paths *p,
			char *err, size_t errlen)
{
	if (rename(p->tmp_msg, p->msg) != 0 || fsync_dir(dir) != 0) {
		format_into(err, errlen, "cannot move %s into the queue: %s",
			    p->tmp_msg, strerror(errno));
		return -1;
	}
	if (rename(p->tmp_env, p->env) != 0) {
		format_into(err, errlen, "cannot move %s into the queue: %s",
			    p->tmp_env, strerror(errno));
		unlink(p->msg);
		return -1;
	}
	if (fsync_dir(dir) != 0) {
		/* Taken back, so that -1 always means "not queued": the
		 * caller then keeps the message some other way. */
		format_into(err, errlen, "cannot sync queue directory %s: %s",
			    dir, strerror(errno));
		unlink(p->env);
		unlink(p->msg);
		return -1;
	}
	return 0;
}

/* Creates the two temporary files under a fresh id (a new id when one is
 * taken). Returns 0 with both descriptors, -1 with err set. */
static int create_entry_files(const char *dir, struct queue_entry *e,
			      struct add_paths *p, int *msg_fd, int *env_fd,
			      char *err, size_t errlen)
{
	for (int tries = 0; tries < 5; tries++) {
		free(e->id);
		add_paths_free(p);
		e->id = make_id(&e->created);
		*p = (struct add_paths){
			entry_path(dir, "tmp", e->id, ".msg"),
			entry_path(dir, "tmp", e->id, ".env"),
			entry_path(dir, NULL, e->id, ".msg"),
			entry_path(dir, NULL, e->id, ".env"),
		};
		*msg_fd = create_tmp(p->tmp_msg);
		if (*msg_fd < 0 && errno == EEXIST)
			continue;
		*env_fd = *msg_fd < 0 ? -1 : create_tmp(p->tmp_env);
		if (*msg_fd >= 0 && *env_fd >= 0)
			return 0;
		format_into(err, errlen, "cannot create queue file in "
			    "%s/tmp: %s", dir, strerror(errno));
		if (*msg_fd >= 0) {
			close(*msg_fd);
			unlink(p->tmp_msg);
		}
		return -1;
	}
	format_into(err, errlen, "cannot find a free queue id in %s/tmp", dir);
	return -1;
}

static int add_files(const char *dir, struct queue_entry *e,
		     const struct message *msg, const struct emit_options *emit,
		     char *err, size_t errlen)
{
	struct add_paths p = { 0 };
	int msg_fd, env_fd, rc;

	if (create_entry_files(dir, e, &p, &msg_fd, &env_fd, err,
			       errlen) != 0) {
		add_paths_free(&p);
		return -1;
	}
	e->next_attempt = e->created + queue_backoff(e->attempts);
	rc = write_message(&p, msg_fd, e, msg, emit, err, errlen);
	if (rc == 0)
		rc = write_envelope(p.tmp_env, env_fd, e, err, errlen);
	close(msg_fd);
	close(env_fd);
	if (rc == 0)
		rc = commit_entry(dir, &p, err, errlen);
	if (rc != 0) {
		unlink(p.tmp_msg);
		unlink(p.tmp_env);
	}
	add_paths_free(&p);
	return rc;
}

int queue_add(const char *dir, struct queue_entry *e,
	      const struct message *msg, const struct emit_options *emit,
	      char *err, size_t errlen)
{
	e->lock_fd = -1;
	if (entry_check(e, err, errlen) != 0)
		return -1;
	if (e->last_error) {
		char *line = one_line(e->last_error);
		free(e->last_error);
		e->last_error = line;
	}
	if (add_files(dir, e, msg, emit, err, errlen) != 0) {
		free(e->id);
		e->id = NULL;
		return -1;
	}
	return 0;
}

/* ---- listing, claiming, expiring ---- */

struct entry_array {
	struct queue_entry *v;
	size_t n, cap;
};

static void entry_array_add(struct entry_array *a, const struct queue_entry *e)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = xrealloc(a->v, a->cap * sizeof *a->v);
	}
	a->v[a->n++] = *e;
}

enum take {
	TAKE_OK,       /* e filled in (and locked, when asked) */
	TAKE_SKIP,     /* gone, claimed elsewhere, or not wanted */
	TAKE_PROBLEM,  /* why says what is wrong with this entry */
	TAKE_STOP,     /* out of file descriptors: stop scanning */
};

static enum take open_failed(char *why, size_t whylen)
{
	if (errno == ENOENT)
		return TAKE_SKIP;	/* removed since the scan */
	format_into(why, whylen, "%s", strerror(errno));
	return errno == EMFILE || errno == ENFILE ? TAKE_STOP : TAKE_PROBLEM;
}

/* Reads an entry without locking it. */
static enum take read_entry(const char *path, const char *id,
			    struct queue_entry *e, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc;

	if (fd < 0)
		return open_failed(why, whylen);
	rc = envelope_read(fd, id, e, why, whylen);
	close(fd);
	return rc == 0 ? TAKE_OK : TAKE_PROBLEM;
}

/* Whether a locked entry is one the caller wants (due, expired). */
typedef bool (*entry_filter)(const struct queue_entry *e, const void *ctx);

/* flock is per open file description; after the lock is ours the path
 * must still name the same file: a queue_remove, queue_defer or
 * queue_expire that held the lock before us has replaced or moved it. */
static enum take lock_entry(const char *path, int *fd_out,
			    char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat locked, named;

	if (fd < 0)
		return open_failed(why, whylen);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		enum take t = errno == EWOULDBLOCK ? TAKE_SKIP : TAKE_PROBLEM;
		format_into(why, whylen, "cannot lock: %s", strerror(errno));
		close(fd);
		return t;
	}
	if (fstat(fd, &locked) != 0 || stat(path, &named) != 0 ||
	    locked.st_dev != named.st_dev || locked.st_ino != named.st_ino) {
		close(fd);
		return TAKE_SKIP;
	}
	*fd_out = fd;
	return TAKE_OK;
}

/* Locks and reads an entry; keeps it locked only when want(e) says so. */
static enum take claim_entry(const char *path, const char *id,
			     entry_filter want, const void *ctx,
			     struct queue_entry *e, char *why, size_t whylen)
{
	int fd;
	enum take t = lock_entry(path, &fd, why, whylen);

	if (t != TAKE_OK)
		return t;
	if (envelope_read(fd, id, e, why, whylen) != 0) {
		close(fd);
		return TAKE_PROBLEM;
	}
	if (!want(e, ctx)) {
		close(fd);
		queue_entry_free(e);
		return TAKE_SKIP;
	}
	e->lock_fd = fd;
	return TAKE_OK;
}

struct scan {
	const char *dir;
	bool lock;
	entry_filter want;
	const void *ctx;
	/* for queue_expire: moves a claimed entry, 0 or -1 with why */
	int (*then)(const char *dir, struct queue_entry *e, char *why,
		    size_t whylen);
};

static enum take scan_one(const struct scan *sc, const char *id,
			  struct queue_entry *e, char *why, size_t whylen)
{
	char *path = entry_path(sc->dir, NULL, id, ".env");
	enum take t;

	if (sc->lock)
		t = claim_entry(path, id, sc->want, sc->ctx, e, why, whylen);
	else
		t = read_entry(path, id, e, why, whylen);
	if (t == TAKE_OK && sc->then &&
	    sc->then(sc->dir, e, why, whylen) != 0) {
		queue_entry_free(e);
		t = TAKE_PROBLEM;
	}
	free(path);
	return t;
}

/* Runs sc over every entry, oldest first, collecting the ones taken. */
static int scan_entries(const struct scan *sc, struct queue_entry **entries,
			size_t *n, char *err, size_t errlen)
{
	struct report r = { err, errlen, 0 };
	struct entry_array a = { 0 };
	struct strlist ids = { 0 };
	char why[512];

	*entries = NULL;
	*n = 0;
	if (scan_ids(sc->dir, ".env", &ids, err, errlen) != 0)
		return -1;
	if (err && errlen)
		err[0] = '\0';
	for (size_t i = 0; i < ids.n; i++) {
		struct queue_entry e;
		char *path;
		enum take t = scan_one(sc, ids.v[i], &e, why, sizeof why);
		if (t == TAKE_OK)
			entry_array_add(&a, &e);
		if (t != TAKE_PROBLEM && t != TAKE_STOP)
			continue;
		path = entry_path(sc->dir, NULL, ids.v[i], ".env");
		report_add(&r, path, why);
		free(path);
		if (t == TAKE_STOP)
			break;
	}
	strlist_free(&ids);
	*entries = a.v;
	*n = a.n;
	return r.count;
}

int queue_list(const char *dir, struct queue_entry **entries, size_t *n,
	       char *err, size_t errlen)
{
	struct scan sc = { .dir = dir };
	return scan_entries(&sc, entries, n, err, errlen);
}

struct due {
	time_t now;
	bool force;
};

static bool is_due(const struct queue_entry *e, const void *ctx)
{
	const struct due *d = ctx;
	return d->force || e->next_attempt <= d->now;
}

int queue_claim(const char *dir, time_t now, bool force,
		struct queue_entry **entries, size_t *n,
		char *err, size_t errlen)
{
	struct due d = { now, force };
	struct scan sc = {
		.dir = dir, .lock = true, .want = is_due, .ctx = &d,
	};
	return scan_entries(&sc, entries, n, err, errlen);
}

struct age {
	time_t now, lifetime;
};

static bool is_expired(const struct queue_entry *e, const void *ctx)
{
	const struct age *a = ctx;
	return a->now - e->created >= a->lifetime;
}

/* The envelope leaves the queue first: from then on the entry is out of
 * it, whatever happens. The message follows once that is on disk; when a
 * crash (or a failed sync) comes in between, queue_open finishes the move
 * (a message whose envelope is in failed/ goes there too). */
static int move_to_failed(const char *dir, struct queue_entry *e,
			  char *why, size_t whylen)
{
	char *env = entry_path(dir, NULL, e->id, ".env");
	char *failed_env = entry_path(dir, "failed", e->id, ".env");
	int rc = rename(env, failed_env);

	if (rc != 0) {
		format_into(why, whylen, "cannot move to %s: %s", failed_env,
			    strerror(errno));
	} else if (fsync_subdir(dir, "failed") == 0 && fsync_dir(dir) == 0) {
		char *msg = entry_path(dir, NULL, e->id, ".msg");
		char *failed_msg = entry_path(dir, "failed", e->id, ".msg");
		if (rename(msg, failed_msg) == 0)
			(void)fsync_subdir(dir, "failed");
		free(msg);
		free(failed_msg);
	}
	if (rc == 0)
		queue_release(e);
	free(env);
	free(failed_env);
	return rc;
}

int queue_expire(const char *dir, time_t now, time_t lifetime,
		 struct queue_entry **expired, size_t *n,
		 char *err, size_t errlen)
{
	struct age a = { now, lifetime };
	struct scan sc = {
		.dir = dir, .lock = true, .want = is_expired, .ctx = &a,
		.then = move_to_failed,
	};
	return scan_entries(&sc, expired, n, err, errlen);
}

/* ---- one claimed entry ---- */

static bool starts_with_from(int fd)
{
	char head[5];
	return pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
	       memcmp(head, "From ", 5) == 0;
}

static int copy_fd(int from, int to)
{
	char *buf = xmalloc(COPY_BLOCK);
	ssize_t r;

	while ((r = read(from, buf, COPY_BLOCK)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || write_all(to, buf, (size_t)r) != 0)
			break;
	}
	free(buf);
	return r == 0 ? 0 : -1;
}

/* message_spool drops a first line that looks like an mbox "From " line.
 * A stored message can start with one (when nothing was prepended and
 * its original first line was such a line, then a second one): it is
 * spooled behind a throwaway From_ line, so only that one is dropped. */
static int spool_behind_from_line(int fd, const struct spool_options *opt,
				  struct message *msg, char *err, size_t errlen)
{
	static const char from_line[] = "From postbote-queue\r\n";
	char *path = xasprintf("%s/load.XXXXXX", opt->tmpdir);
	int tmp = mkostemp(path, O_CLOEXEC);
	int rc = -1;

	if (tmp < 0 || unlink(path) != 0 ||
	    write_all(tmp, from_line, sizeof from_line - 1) != 0 ||
	    copy_fd(fd, tmp) != 0 || lseek(tmp, 0, SEEK_SET) != 0) {
		format_into(err, errlen, "cannot copy the queued message to "
			    "%s: %s", path, strerror(errno));
	} else {
		rc = message_spool(tmp, opt, msg, err, errlen);
		msg->dropped_mbox_from = false;
	}
	if (tmp >= 0)
		close(tmp);
	free(path);
	return rc;
}

static int spool_stored(const char *dir, int fd, struct message *msg,
			char *err, size_t errlen)
{
	char *tmpdir = xasprintf("%s/tmp", dir);
	struct spool_options opt = {
		.dot_ends_input = false, .tmpdir = tmpdir,
	};
	int rc;

	if (starts_with_from(fd))
		rc = spool_behind_from_line(fd, &opt, msg, err, errlen);
	else
		rc = message_spool(fd, &opt, msg, err, errlen);
	free(tmpdir);
	return rc;
}

int queue_load_message(const char *dir, const struct queue_entry *e,
		       struct message *msg, char *err, size_t errlen)
{
	char *path = entry_path(dir, NULL, e->id, ".msg");
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	int rc = -1;

	memset(msg, 0, sizeof *msg);
	msg->fd = -1;
	if (fd < 0 || fstat(fd, &st) != 0)
		format_into(err, errlen, "cannot open queue file %s: %s", path,
			    strerror(errno));
	else if (st.st_size != e->size)
		format_into(err, errlen, "queue file %s has %jd bytes, its "
			    "envelope says %jd", path, (intmax_t)st.st_size,
			    (intmax_t)e->size);
	else
		rc = spool_stored(dir, fd, msg, err, errlen);
	if (rc == 0 && msg->size != e->size) {
		format_into(err, errlen, "queue file %s did not read back as "
			    "stored (%jd of %jd bytes)", path,
			    (intmax_t)msg->size, (intmax_t)e->size);
		message_free(msg);
		rc = -1;
	}
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

static int require_claim(const struct queue_entry *e, const char *what,
			 char *err, size_t errlen)
{
	if (e->lock_fd >= 0)
		return 0;
	format_into(err, errlen, "cannot %s queue entry %s: not claimed", what,
		    e->id);
	return -1;
}

int queue_remove(const char *dir, struct queue_entry *e,
		 char *err, size_t errlen)
{
	char *env, *msg;
	int rc = 0;

	if (require_claim(e, "remove", err, errlen) != 0)
		return -1;
	env = entry_path(dir, NULL, e->id, ".env");
	msg = entry_path(dir, NULL, e->id, ".msg");
	/* The envelope's removal must be on disk before the message's: the
	 * other order could leave an envelope without its message. */
	if (unlink(env) != 0 || fsync_dir(dir) != 0) {
		format_into(err, errlen, "cannot remove queue file %s: %s", env,
			    strerror(errno));
		rc = -1;
	} else if (unlink(msg) != 0 && errno != ENOENT) {
		/* Harmless: queue_open removes it later. */
		format_into(err, errlen, "cannot remove queue file %s: %s", msg,
			    strerror(errno));
		rc = -1;
	}
	if (rc == 0 || !file_exists(env))
		queue_release(e);
	free(env);
	free(msg);
	return rc;
}

/* The new file is locked before it replaces the old one, so the entry
 * is never unclaimed on the way: a claim that opens the new file finds it
 * locked, one that opened the old file finds it replaced. */
static int lock_and_rename(int fd, const char *tmp, const char *env,
			   char *err, size_t errlen)
{
	if (flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, env) != 0) {
		format_into(err, errlen, "cannot replace %s: %s", env,
			    strerror(errno));
		return -1;
	}
	return 0;
}

/* Writes the envelope of next into a new file under tmp/ and puts it in
 * place of the old one. Returns the new file's descriptor, locked. */
static int replace_envelope(const char *dir, struct queue_entry *next,
			    char *err, size_t errlen)
{
	char *tmp = entry_path(dir, "tmp", next->id, ".env.XXXXXX");
	char *env = entry_path(dir, NULL, next->id, ".env");
	int fd = mkostemp(tmp, O_CLOEXEC);

	if (fd < 0) {
		format_into(err, errlen, "cannot create %s: %s", tmp,
			    strerror(errno));
	} else if (write_envelope(tmp, fd, next, err, errlen) != 0 ||
		   lock_and_rename(fd, tmp, env, err, errlen) != 0) {
		close(fd);
		unlink(tmp);
		fd = -1;
	}
	free(tmp);
	free(env);
	return fd;
}

int queue_defer(const char *dir, struct queue_entry *e, const char *error,
		time_t now, char *err, size_t errlen)
{
	struct queue_entry next;
	int fd;

	if (require_claim(e, "defer", err, errlen) != 0)
		return -1;
	if (e->rcpts.n == 0) {
		format_into(err, errlen, "queue entry %s has no recipients "
			    "left to defer (remove it instead)", e->id);
		return -1;
	}
	if (entry_check(e, err, errlen) != 0)
		return -1;
	next = *e;
	if (next.attempts < UINT_MAX)
		next.attempts++;
	next.last_error = error ? one_line(error) : NULL;
	next.next_attempt = now + queue_backoff(next.attempts);
	fd = replace_envelope(dir, &next, err, errlen);
	if (fd < 0) {
		free(next.last_error);
		return -1;
	}
	/* The new file is in place and locked: the old lock can go. */
	close(e->lock_fd);
	free(e->last_error);
	*e = next;
	e->lock_fd = fd;
	if (fsync_dir(dir) != 0) {
		format_into(err, errlen, "cannot sync queue directory %s: %s",
			    dir, strerror(errno));
		return -1;
	}
	return 0;
}

void queue_release(struct queue_entry *e)
{
	if (e->lock_fd >= 0)
		close(e->lock_fd);
	e->lock_fd = -1;
}

void queue_entry_free(struct queue_entry *e)
{
	queue_release(e);
	free(e->id);
	free(e->account);
	free(e->sender);
	strlist_free(&e->rcpts);
	free(e->dsn_notify);
	free(e->dsn_ret);
	free(e->dsn_envid);
	free(e->last_error);
	memset(e, 0, sizeof *e);
	e->lock_fd = -1;
}

void queue_entries_free(struct queue_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queue_entry_free(&entries[i]);
	free(entries);
}
