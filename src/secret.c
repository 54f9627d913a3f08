#include "autoconf.h"
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"
#include "config.h"

extern char **environ;

/* A password longer than this is certainly a mistake (a wrong command). */
#define SECRET_OUTPUT_MAX (64 * 1024)

static char *read_all(int fd, size_t *len)
{
	size_t cap = 256, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		ssize_t r;
		if (n + 1 >= cap) {
			if (cap >= SECRET_OUTPUT_MAX)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* argv[0] is looked up in PATH. stderr stays ours: a helper's complaint
 * is worth seeing; stdin is /dev/null, as the message is on ours. */
static int spawn_argv(char *const argv[], int pipefd[2], pid_t *pid,
		      bool quiet)
{
	posix_spawn_file_actions_t fa;
	int rc;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	posix_spawn_file_actions_addclose(&fa, pipefd[1]);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY,
					 0);
	if (quiet)
		posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null",
						 O_WRONLY, 0);
	rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* Run argv; the first line of what it prints, or NULL with err (command
 * names it in messages). */
static char *run_first_line(char *const argv[], const char *command,
			    bool quiet, char *err, size_t errlen)
{
	int pipefd[2], status = 0, rc;
	pid_t pid;
	size_t len;
	char *out;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		format_into(err, errlen, "cannot run \"%s\": %s", command,
			    strerror(errno));
		return NULL;
	}
	rc = spawn_argv(argv, pipefd, &pid, quiet);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		format_into(err, errlen, "cannot run \"%s\": %s", command, strerror(rc));
		return NULL;
	}
	out = read_all(pipefd[0], &len);
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free_secret(out);
		format_into(err, errlen, "the command \"%s\" failed (%s %d)", command,
			    WIFEXITED(status) ? "exit status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return NULL;
	}
	{
		char *line = xstrndup(out, strcspn(out, "\r\n"));
		explicit_bzero(out, len);
		free(out);
		return line;
	}
}

char *secret_run_command(const char *command, char *err, size_t errlen)
{
	/* -p: a shell started with the setgid group (the system-wide
	 * setup, see main.c) keeps it, so the command can read the secret;
	 * without privileges -p changes nothing. */
	char *argv[] = { "/bin/sh", "-p", "-c", (char *)command, NULL };
	return run_first_line(argv, command, false, err, errlen);
}

/* ----------------------------------------------------------- file sources */

/* Read a whole small secret file after checking who may read it. */
static char *read_secret_file(const char *path, const char *what, char *err,
			      size_t errlen)
{
	struct stat st;
	size_t len;
	char *text;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		format_into(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		format_into(err, errlen, "%s %s: not a regular file", what, path);
		close(fd);
		return NULL;
	}
	if (!config_secret_mode_ok(&st)) {
		format_into(err, errlen, "%s %s holds a password but is readable "
			    "by others (mode %04o); run: chmod 600 %s", what, path,
			    (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	text = read_all(fd, &len);
	close(fd);
	return text;
}

static char *password_from_file(const char *path, char *err, size_t errlen)
{
	char *text = read_secret_file(path, "password_file", err, errlen);
	char *line;
	if (!text)
		return NULL;
	line = xstrndup(text, strcspn(text, "\r\n"));
	free_secret(text);
	if (!line[0]) {
		format_into(err, errlen, "password_file %s: the first line is empty",
			    path);
		free_secret(line);
		return NULL;
	}
	return line;
}

/* .netrc tokens are separated by white space; curl also reads
 * "double quoted" tokens with \-escapes, so that a password may hold
 * spaces. Returns the next token (new string) or NULL at the end. */
static char *netrc_token(const char **pos)
{
	const char *p = *pos;
	char *tok, *o;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (!*p) {
		*pos = p;
		return NULL;
	}
	tok = xmalloc(strlen(p) + 1);
	o = tok;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			*o++ = *p;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			*o++ = *p++;
	}
	*o = '\0';
	*pos = p;
	return tok;
}

/* A macdef body runs to the next empty line. */
static void netrc_skip_macdef(const char **pos)
{
	const char *p = strchr(*pos, '\n');
	while (p) {
		const char *next = p + 1;
		if (*next == '\n' || (*next == '\r' && next[1] == '\n') || !*next) {
			*pos = next;
			return;
		}
		p = strchr(next, '\n');
	}
	*pos = *pos + strlen(*pos);
}

struct netrc_entry {
	bool is_default;
	char *machine, *login, *password;
};

static void netrc_entry_clear(struct netrc_entry *e)
{
	free(e->machine);
	free(e->login);
	free_secret(e->password);
	memset(e, 0, sizeof *e);
}

static bool netrc_matches(const struct netrc_entry *e, const char *machine,
			  const char *login)
{
	if (!e->password || (!e->is_default && !e->machine))
		return false;
	if (!e->is_default && ascii_casecmp(e->machine, machine) != 0)
		return false;
	return !login || !e->login || strcmp(e->login, login) == 0;
}

static char *netrc_find(const char *text, const char *machine,
			const char *login)
{
	const char *pos = text;
	struct netrc_entry e = { 0 };
	char *tok, *found = NULL;
	while (!found && (tok = netrc_token(&pos))) {
		bool starts = !strcmp(tok, "machine") || !strcmp(tok, "default");
		if (starts || !strcmp(tok, "macdef")) {
			if (netrc_matches(&e, machine, login))
				found = xstrdup(e.password);
			netrc_entry_clear(&e);
			e.is_default = !strcmp(tok, "default");
			if (!strcmp(tok, "machine"))
				e.machine = netrc_token(&pos);
			if (!strcmp(tok, "macdef"))
				netrc_skip_macdef(&pos);
		} else if (!strcmp(tok, "login")) {
			free(e.login);
			e.login = netrc_token(&pos);
		} else if (!strcmp(tok, "password")) {
			free_secret(e.password);
			e.password = netrc_token(&pos);
		} else if (!strcmp(tok, "account")) {
			free(netrc_token(&pos));
		}
		free_secret(tok);
	}
	if (!found && netrc_matches(&e, machine, login))
		found = xstrdup(e.password);
	netrc_entry_clear(&e);
	return found;
}

char *secret_netrc_lookup(const char *path, const char *machine,
			  const char *login, char *err, size_t errlen)
{
	struct stat st;
	char *text, *found;
	err[0] = '\0';
	if (!machine || stat(path, &st) < 0)
		return NULL;
	text = read_secret_file(path, "netrc file", err, errlen);
	if (!text)
		return NULL;
	found = netrc_find(text, machine, login);
	free_secret(text);
	return found;
}

static char *netrc_path(void)
{
	const char *home = getenv("HOME");
	return home && home[0] ? xasprintf("%s/.netrc", home) : NULL;
}

/* ----------------------------------------------------------- the keyring */

/* secret-tool talks to the Secret Service over the session bus; without
 * one (cron, a server) it is not worth starting. */
static bool keyring_reachable(void)
{
	const char *bus = getenv("DBUS_SESSION_BUS_ADDRESS");
	const char *run = getenv("XDG_RUNTIME_DIR");
	if (bus && bus[0])
		return true;
	if (run && run[0]) {
		char *path = xasprintf("%s/bus", run);
		bool ok = access(path, F_OK) == 0;
		free(path);
		return ok;
	}
	return false;
}

static bool in_path(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	bool found = false;
	if (!path)
		path = "/usr/bin:/bin";
	copy = xstrdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char *file = xasprintf("%s/%s", dir, name);
		found = access(file, X_OK) == 0;
		free(file);
	}
	free(copy);
	return found;
}

/* The attributes msmtp uses ("secret-tool store --label=msmtp host H
 * service smtp user U"), so that a password stored for msmtp is found. */
static char *password_from_keyring(const struct account *a)
{
	char why[256];
	char *argv[] = { "secret-tool", "lookup", "host", a->host, "service",
			 "smtp", "user", a->user, NULL };
	char *p;
	if (!a->host || !a->user || !keyring_reachable() || !in_path(argv[0]))
		return NULL;
	p = run_first_line(argv, "secret-tool lookup", true, why, sizeof why);
	if (p && !p[0]) {
		free_secret(p);
		return NULL;
	}
	return p;
}

/* ------------------------------------------------------ the terminal prompt */

static int prompt_fd = -1;
static struct termios prompt_saved;

static void prompt_restore(void)
{
	if (prompt_fd >= 0)
		tcsetattr(prompt_fd, TCSAFLUSH, &prompt_saved);
}

/* Ctrl-C at the prompt must not leave the terminal without echo. */
static void prompt_signal(int sig)
{
	prompt_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static char *password_from_prompt(const struct account *a)
{
	char buf[1024];
	size_t n = 0;
	struct termios quiet;
	struct sigaction sa = { .sa_handler = prompt_signal }, old_int, old_term;
	char *line;
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (tcgetattr(fd, &prompt_saved) < 0) {
		close(fd);
		return NULL;
	}
	line = xasprintf("postbote: password for %s at %s: ",
			 a->user ? a->user : "?", a->host ? a->host : "?");
	(void)write_all(fd, line, strlen(line));
	free(line);
	quiet = prompt_saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	prompt_fd = fd;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	tcsetattr(fd, TCSAFLUSH, &quiet);
	while (n < sizeof buf - 1) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	prompt_restore();
	prompt_fd = -1;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	(void)write_all(fd, "\n", 1);
	close(fd);
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	line = n ? xstrdup(buf) : NULL;
	explicit_bzero(buf, sizeof buf);
	return line;
}

static bool tty_available(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	bool ok = fd >= 0 && isatty(fd);
	if (fd >= 0)
		close(fd);
	return ok;
}

/* ------------------------------------------------------------ credentials */

void credentials_init(struct credentials *c, const struct account *acct,
		      int oauth2_fd, bool may_prompt)
{
	memset(c, 0, sizeof *c);
	c->acct = acct;
	c->oauth2_fd = oauth2_fd;
	c->may_prompt = may_prompt;
}

void credentials_free(struct credentials *c)
{
	free_secret(c->password);
	c->password = NULL;
	c->password_tried = false;
	if (c->own_fd && c->oauth2_fd >= 0)
		close(c->oauth2_fd);
	c->oauth2_fd = -1;
	c->own_fd = false;
}

static bool explicit_source(const struct account *a)
{
	return a->password || a->passwordeval || a->password_env ||
	       a->password_file;
}

/* ~/.netrc's password for the account; NULL with err empty when it has
 * no entry (or there is no file), with err set when it cannot be used. */
static char *password_from_netrc(const struct account *a, char *err,
				 size_t errlen)
{
	char *path = netrc_path();
	char *p = NULL;
	err[0] = '\0';
	if (path)
		p = secret_netrc_lookup(path, a->host, a->user, err, errlen);
	free(path);
	return p;
}

bool credentials_password_possible(struct credentials *c, bool with_prompt)
{
	const struct account *a = c->acct;
	if (c->password || explicit_source(a))
		return true;
	/* The file's answer is the fetched password (a file that cannot be
	 * used is reported when the password is needed): read it once. */
	if (!c->password_tried) {
		c->password = password_from_netrc(a, c->password_error,
						  sizeof c->password_error);
		if (c->password || c->password_error[0]) {
			c->password_tried = true;
			return true;
		}
	}
	if (a->host && a->user && keyring_reachable() && in_path("secret-tool"))
		return true;
	return with_prompt && c->may_prompt && tty_available();
}

static char *password_from_env(const char *name, char *err, size_t errlen)
{
	const char *v = getenv(name);
	if (!v || !v[0]) {
		format_into(err, errlen, "password_env: the environment variable "
			    "%s is not set", name);
		return NULL;
	}
	return xstrdup(v);
}

static char *fetch_password(const struct credentials *c, char *err,
			    size_t errlen)
{
	const struct account *a = c->acct;
	char why[SECRET_ERROR_MAX];
	char *p;
	err[0] = '\0';
	if (a->password)
		return xstrdup(a->password);
	if (a->passwordeval) {
		p = secret_run_command(a->passwordeval, why, sizeof why);
		if (!p)
			format_into(err, errlen, "passwordeval: %s", why);
		return p;
	}
	if (a->password_env)
		return password_from_env(a->password_env, err, errlen);
	if (a->password_file)
		return password_from_file(a->password_file, err, errlen);
	p = password_from_netrc(a, err, errlen);
	if (p || err[0])
		return p;
	if ((p = password_from_keyring(a)))
		return p;
	if (c->may_prompt && (p = password_from_prompt(a)))
		return p;
	format_into(err, errlen, "no password is configured (password, "
		    "passwordeval, password_env, password_file, ~/.netrc or "
		    "secret-tool), and there is no terminal to ask on");
	return NULL;
}

const char *credentials_password(struct credentials *c, char *err,
				 size_t errlen)
{
	if (!c->password_tried) {
		c->password_tried = true;
		c->password = fetch_password(c, c->password_error,
					     sizeof c->password_error);
	}
	if (!c->password)
		format_into(err, errlen, "%s", c->password_error);
	return c->password;
}

static bool auth_names_token_mechanism(const struct account *a)
{
	return a->auth && (ascii_casecmp(a->auth, "XOAUTH2") == 0 ||
			   ascii_casecmp(a->auth, "OAUTHBEARER") == 0);
}

bool credentials_token_possible(struct credentials *c)
{
	if (oauth2_configured(c->acct))
		return true;
	return auth_names_token_mechanism(c->acct) &&
	       credentials_password_possible(c, true);
}

enum oauth2_status credentials_token(struct credentials *c, bool force_refresh,
				     char **token, bool *from_cache, char *err,
				     size_t errlen)
{
	const struct account *a = c->acct;
	*token = NULL;
	*from_cache = false;
	if (oauth2_configured(a)) {
		if (oauth2_check_account(a, err, errlen) < 0)
			return OAUTH2_FAIL;
		if (c->oauth2_fd < 0) {
			char why[SECRET_ERROR_MAX];
			c->oauth2_fd = oauth2_store_open(a, NULL, why, sizeof why);
			if (c->oauth2_fd < 0) {
				format_into(err, errlen, "OAuth2 token store: %s", why);
				return OAUTH2_FAIL;
			}
			c->own_fd = true;
		}
		{
			enum oauth2_status st = oauth2_access_token(
				a, c->oauth2_fd, force_refresh, token, from_cache,
				err, errlen);
			/* A good token, but its store could not be written:
			 * worth knowing, as a rotated refresh token is lost. */
			if (st == OAUTH2_OK && err[0])
				fprintf(stderr, "postbote: warning: OAuth2: %s\n", err);
			return st;
		}
	}
	/* msmtp style: the password source prints the access token. */
	{
		const char *p = credentials_password(c, err, errlen);
		if (!p)
			return OAUTH2_FAIL;
		*token = xstrdup(p);
		return OAUTH2_OK;
	}
}
