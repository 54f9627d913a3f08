/* runstat: run a command and report what it cost.
 *
 *     runstat OUTFILE INFILE COMMAND [ARG...]
 *
 * Runs COMMAND with standard input from INFILE and standard output and
 * error into OUTFILE, and prints one line on its own standard output:
 *
 *     <wall seconds> <user+system CPU seconds> <peak RSS KiB> <exit status>
 *
 * Why not time it from Python directly: Linux counts the resident set a
 * process had before exec() in its peak RSS, so a command forked from the
 * Python driver would report the driver's size. Forked from this small
 * program, it reports its own. Wall time runs from just before fork() to
 * just after wait4(). The exit status is 128 + N for a signal N. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	int status, code;
	double start, wall;
	pid_t pid;

	if (argc < 4) {
		fprintf(stderr, "usage: runstat OUTFILE INFILE COMMAND [ARG...]\n");
		return 64;
	}
	start = now();
	pid = fork();
	if (pid < 0) {
		perror("runstat: fork");
		return 71;
	}
	if (pid == 0) {
		int in = open(argv[2], O_RDONLY);
		int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(out, 2) < 0)
			_exit(126);
		close(in);
		close(out);
		execv(argv[3], argv + 3);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("runstat: wait4");
		return 71;
	}
	wall = now() - start;
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("%.6f %.6f %ld %d\n", wall,
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	       ru.ru_maxrss, code);
	return 0;
}
