/* oauth2_store: the per-account token store, a small JSON file (mode
 * 0600 in a 0700 directory) holding the cached access token with its
 * expiry and the refresh token from --oauth2-authorize or from rotation.
 *
 * The file is opened once (oauth2_store_open) and then used through its
 * descriptor: locked with flock for each read-refresh-write cycle, and
 * rewritten in place, so that a setgid postbote can open it before it
 * drops privileges and concurrent sends never refresh at the same time. */
#include "autoconf.h"
#include "oauth2.h"

#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oauth2_internal.h"
#include "util.h"

#define STORE_VERSION 1
/* A store is a few hundred bytes; anything this big is not ours. */
#define STORE_MAX (64 * 1024)
/* The account name's part of the file name. */
#define STORE_NAME_MAX 64
#define STORE_HASH_HEX 12

/* ---- JSON ---- */

static int store_string(struct json_object *o, const char *key, char **out,
			char *err, size_t errlen)
{
	struct json_object *v;
	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		format_into(err, errlen, "\"%s\" is not a string", key);
		return -1;
	}
	*out = xstrdup(json_object_get_string(v));
	return 0;
}

static int store_fields(struct json_object *o, struct oauth2_store_data *d,
			char *err, size_t errlen)
{
	struct json_object *v;
	if (json_object_object_get_ex(o, "version", &v) &&
	    (!json_object_is_type(v, json_type_int) ||
	     json_object_get_int(v) != STORE_VERSION)) {
		format_into(err, errlen, "\"version\" is not %d (written by "
			    "another version of postbote?)", STORE_VERSION);
		return -1;
	}
	if (json_object_object_get_ex(o, "expires_at", &v) && v) {
		if (!json_object_is_type(v, json_type_int)) {
			format_into(err, errlen, "\"expires_at\" is not a number");
			return -1;
		}
		d->expires_at = json_object_get_int64(v);
	}
	if (store_string(o, "access_token", &d->access_token, err, errlen) < 0 ||
	    store_string(o, "refresh_token", &d->refresh_token, err, errlen) < 0 ||
	    store_string(o, "refresh_token_source", &d->refresh_source, err,
			 errlen) < 0)
		return -1;
	return 0;
}

int oauth2_store_parse(const char *text, size_t len,
		       struct oauth2_store_data *d, char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *o;
	int rc = -1;
	memset(d, 0, sizeof *d);
	if (strspn(text, " \t\r\n") >= len)
		return 0;
	tok = json_tokener_new();
	o = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) + strspn(text +
	    json_tokener_get_parse_end(tok), " \t\r\n") != len ||
	    !json_object_is_type(o, json_type_object))
		format_into(err, errlen, "not a JSON object");
	else
		rc = store_fields(o, d, err, errlen);
	if (rc < 0)
		oauth2_store_data_free(d);
	oauth2_json_free(o);
	if (tok)
		json_tokener_free(tok);
	return rc;
}

static void add_string(struct json_object *o, const char *key, const char *value)
{
	if (value)
		json_object_object_add(o, key, json_object_new_string(value));
}

char *oauth2_store_format(const struct oauth2_store_data *d)
{
	struct json_object *o = json_object_new_object();
	const char *text;
	char *out;
	json_object_object_add(o, "version", json_object_new_int(STORE_VERSION));
	add_string(o, "access_token", d->access_token);
	if (d->access_token)
		json_object_object_add(o, "expires_at",
				       json_object_new_int64(d->expires_at));
	add_string(o, "refresh_token", d->refresh_token);
	add_string(o, "refresh_token_source", d->refresh_source);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	out = xasprintf("%s\n", text);
	/* json-c frees its copies without wiping them. */
	explicit_bzero((char *)text, strlen(text));
	oauth2_json_free(o);
	return out;
}

void oauth2_store_data_free(struct oauth2_store_data *d)
{
	free_secret(d->access_token);
	free_secret(d->refresh_token);
	free(d->refresh_source);
	memset(d, 0, sizeof *d);
}

/* ---- where ---- */

char *oauth2_store_file_name(const struct account *a)
{
	struct oauth2_endpoints e;
	char safe[STORE_NAME_MAX + 1], hex[65], *identity;
	const char *name = a->name && *a->name ? a->name : "account";
	size_t n = 0;
	oauth2_resolve(a, &e);
	for (; name[n] && n < STORE_NAME_MAX; n++) {
		char c = name[n];
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
			    (c == '.' && n > 0);
		safe[n] = keep ? c : '_';
	}
	safe[n] = '\0';
	/* Newlines cannot occur in the three values: the config parser
	 * reads one line per keyword. */
	identity = xasprintf("%s\n%s\n%s", e.token_url ? e.token_url : "",
			     a->oauth2_client_id ? a->oauth2_client_id : "",
			     a->user ? a->user : "");
	oauth2_sha256_hex(identity, hex);
	free(identity);
	hex[STORE_HASH_HEX] = '\0';
	return xasprintf("%s-%s.json", safe, hex);
}

static const char *home_directory(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;
	if (home && *home == '/')
		return home;
	pw = getpwuid(geteuid());
	return pw && pw->pw_dir && *pw->pw_dir == '/' ? pw->pw_dir : NULL;
}

char *oauth2_store_default_dir(char *err, size_t errlen)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home;
	/* The XDG Base Directory spec: a relative path is to be ignored. */
	if (state && *state == '/')
		return xasprintf("%s/postbote/oauth2", state);
	home = home_directory();
	if (!home) {
		format_into(err, errlen, "no home directory (set HOME or "
			    "XDG_STATE_HOME)");
		return NULL;
	}
	return xasprintf("%s/.local/state/postbote/oauth2", home);
}

/* mkdir -p with mode 0700 for what is created. */
static int make_directories(char *path, char *err, size_t errlen)
{
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			format_into(err, errlen, "cannot create %s: %s", path,
				    strerror(errno));
			*p = c;
			return -1;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

/* The directory and the file: of the right kind, and the user's. */
static int check_owner(int stat_rc, const struct stat *st, mode_t kind,
		       const char *path, char *err, size_t errlen)
{
	if (stat_rc < 0 || (st->st_mode & S_IFMT) != kind) {
		format_into(err, errlen, "%s is not a %s", path,
			    kind == S_IFDIR ? "directory" : "regular file");
		return -1;
	}
	if (st->st_uid != geteuid()) {
		format_into(err, errlen, "%s belongs to user id %u, not to you",
			    path, (unsigned)st->st_uid);
		return -1;
	}
	return 0;
}

/* The store's own directory: closed to others. */
static int check_directory(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	if (check_owner(lstat(dir, &st), &st, S_IFDIR, dir, err, errlen) < 0)
		return -1;
	if ((st.st_mode & 077) && chmod(dir, 0700) < 0) {
		format_into(err, errlen, "cannot chmod 700 %s: %s", dir,
			    strerror(errno));
		return -1;
	}
	return 0;
}

static int check_file(int fd, const char *path, bool created, char *err,
		      size_t errlen)
{
	struct stat st;
	if (check_owner(fstat(fd, &st), &st, S_IFREG, path, err, errlen) < 0)
		return -1;
	if (created && fchmod(fd, 0600) < 0) {
		format_into(err, errlen, "cannot chmod 600 %s: %s", path,
			    strerror(errno));
		return -1;
	}
	if (!created && (st.st_mode & 077)) {
		format_into(err, errlen, "%s holds OAuth2 tokens but is open to "
			    "others (mode %04o); run: chmod 600 %s", path,
			    (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}

static int open_store_file(const char *path, char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO planted in its place must not hang us; the
	 * flag means nothing for the regular file it must be. */
	int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	bool created = true;
	int fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = open(path, flags);
	}
	if (fd < 0) {
		format_into(err, errlen, "cannot open %s: %s", path,
			    errno == ELOOP ? "it is a symbolic link" :
			    strerror(errno));
		return -1;
	}
	if (check_file(fd, path, created, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int oauth2_store_open(const struct account *a, const char *dir, char *err,
		      size_t errlen)
{
	char *where = dir ? xstrdup(dir) : oauth2_store_default_dir(err, errlen);
	char *name, *path;
	int fd = -1;
	if (!where)
		return -1;
	if (make_directories(where, err, errlen) == 0 &&
	    check_directory(where, err, errlen) == 0) {
		name = oauth2_store_file_name(a);
		path = xasprintf("%s/%s", where, name);
		fd = open_store_file(path, err, errlen);
		free(path);
		free(name);
	}
	free(where);
	return fd;
}

void oauth2_store_path(int fd, char *out, size_t outlen)
{
	char link[64];
	ssize_t n;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, out, outlen - 1);
	if (n < 0)
		format_into(out, outlen, "the token store");
	else
		out[n] = '\0';
}

/* ---- use ---- */

static int read_store(int fd, struct oauth2_store_data *d, char *err,
		      size_t errlen)
{
	struct stat st;
	char *text;
	size_t len = 0;
	ssize_t r = -1;
	int rc;
	if (fstat(fd, &st) < 0) {
		format_into(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (st.st_size > STORE_MAX) {
		format_into(err, errlen, "larger than %d bytes", STORE_MAX);
		return -1;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size && r != 0) {
		r = pread(fd, text + len, (size_t)st.st_size - len, (off_t)len);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0)
			len += (size_t)r;
	}
	text[len] = '\0';
	if (len < (size_t)st.st_size) {
		format_into(err, errlen, "cannot read it: %s", r < 0 ?
			    strerror(errno) : "it shrank while being read");
		rc = -1;
	} else
		rc = oauth2_store_parse(text, len, d, err, errlen);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

/* Prefix what went wrong with the store's path. */
static void store_error(int fd, char *err, size_t errlen)
{
	char path[512];
	char *why = xstrdup(err);
	oauth2_store_path(fd, path, sizeof path);
	format_into(err, errlen, "token store %s: %s", path, why);
	free(why);
}

int oauth2_store_lock(int fd, char *err, size_t errlen)
{
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			format_into(err, errlen, "cannot lock it: %s",
				    strerror(errno));
			store_error(fd, err, errlen);
			return -1;
		}
	}
	return 0;
}

int oauth2_store_lock_read(int fd, struct oauth2_store_data *d, char *err,
			   size_t errlen)
{
	memset(d, 0, sizeof *d);
	if (oauth2_store_lock(fd, err, errlen) < 0)
		return -1;
	if (read_store(fd, d, err, errlen) < 0) {
		oauth2_append(err, errlen, " (remove it and run postbote "
			      "--oauth2-authorize)");
		store_error(fd, err, errlen);
		oauth2_store_unlock(fd);
		return -1;
	}
	return 0;
}

int oauth2_store_write(int fd, const struct oauth2_store_data *d, char *err,
		       size_t errlen)
{
	char *text = oauth2_store_format(d);
	size_t len = strlen(text), done = 0;
	int rc = ftruncate(fd, 0);
	while (rc == 0 && done < len) {
		ssize_t w = pwrite(fd, text + done, len - done, (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = -1;
		else
			done += (size_t)w;
	}
	if (rc == 0)
		rc = fsync(fd);
	if (rc < 0) {
		format_into(err, errlen, "cannot write it: %s; the new tokens are "
			    "not saved", strerror(errno));
		store_error(fd, err, errlen);
	}
	free_secret(text);
	return rc;
}

void oauth2_store_unlock(int fd)
{
	flock(fd, LOCK_UN);
}
