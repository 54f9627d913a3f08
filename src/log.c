#include "autoconf.h"
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const struct {
	const char *name;
	int facility;
} facilities[] = {
	{ "LOG_MAIL", LOG_MAIL },     { "LOG_USER", LOG_USER },
	{ "LOG_LOCAL0", LOG_LOCAL0 }, { "LOG_LOCAL1", LOG_LOCAL1 },
	{ "LOG_LOCAL2", LOG_LOCAL2 }, { "LOG_LOCAL3", LOG_LOCAL3 },
	{ "LOG_LOCAL4", LOG_LOCAL4 }, { "LOG_LOCAL5", LOG_LOCAL5 },
	{ "LOG_LOCAL6", LOG_LOCAL6 }, { "LOG_LOCAL7", LOG_LOCAL7 },
};

int log_facility(const char *name)
{
	for (size_t i = 0; i < sizeof facilities / sizeof facilities[0]; i++)
		if (ascii_casecmp(name, facilities[i].name) == 0)
			return facilities[i].facility;
	return -1;
}

static void to_file(const char *path, const char *line)
{
	char stamp[64];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;
	if (strcmp(path, "-") == 0) {
		f = stdout;
	} else {
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || !(f = fdopen(fd, "a"))) {
			if (fd >= 0)
				close(fd);
			fprintf(stderr, "postbote: cannot write log file %s: %m\n", path);
			return;
		}
	}
	localtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S%z", &tm);
	fprintf(f, "%s %s\n", stamp, line);
	if (f != stdout)
		fclose(f);
	else
		fflush(f);
}

void log_message(const struct account *acct, const char *line, bool failed)
{
	if (acct->logfile && acct->logfile[0])
		to_file(acct->logfile, line);
	if (acct->syslog) {
		int fac = log_facility(acct->syslog);
		openlog("postbote", LOG_PID, fac >= 0 ? fac : LOG_MAIL);
		syslog(failed ? LOG_ERR : LOG_INFO, "%s", line);
		closelog();
	}
}
