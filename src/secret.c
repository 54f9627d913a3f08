#include "autoconf.h"
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

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

static int spawn_shell(const char *command, int pipefd[2], pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	int rc;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	posix_spawn_file_actions_addclose(&fa, pipefd[1]);
	/* The message is on our stdin; the command must not eat it. */
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", 0, 0);
	rc = posix_spawn(pid, "/bin/sh", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

char *secret_run_command(const char *command, char *err, size_t errlen)
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
	rc = spawn_shell(command, pipefd, &pid);
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

char *secret_password(const struct account *acct, char *err, size_t errlen)
{
	err[0] = '\0';
	if (acct->password)
		return xstrdup(acct->password);
	if (acct->passwordeval) {
		char why[256];
		char *p = secret_run_command(acct->passwordeval, why, sizeof why);
		if (!p)
			format_into(err, errlen, "passwordeval: %s", why);
		return p;
	}
	return NULL;
}
