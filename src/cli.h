/* cli: the sendmail command line, parsed into one plain struct. */
#ifndef POSTBOTE_CLI_H
#define POSTBOTE_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "oauth2.h"
#include "util.h"

enum cli_mode {
	MODE_SEND = 0,    /* deliver the message on stdin (-bm, the default) */
	MODE_LIST_QUEUE,  /* -bp, or called as mailq */
	MODE_FLUSH_QUEUE, /* -q */
	MODE_SMTP_STDIO,  /* -bs: speak SMTP on stdin/stdout */
	MODE_VERIFY,      /* -bv: check recipients, send nothing */
	MODE_NEWALIASES,  /* -bi, or called as newaliases: nothing to build */
	MODE_SERVERINFO,  /* --serverinfo / -S */
	MODE_OAUTH2_AUTHORIZE, /* --oauth2-authorize[=browser|device] */
	MODE_OAUTH2_TOKEN, /* --oauth2-token: print a valid access token */
	MODE_HELP,
	MODE_VERSION,
};

struct cli {
	enum cli_mode mode;
	const char *config_file;  /* -C */
	const char *account;      /* --account */
	const char *sender;       /* -f / -r */
	const char *full_name;    /* -F */
	bool read_recipients;     /* -t */
	bool ignore_dots;         /* -i, -oi */
	int verbose;              /* -v, repeatable */
	const char *dsn_notify;   /* -N: "NEVER" or SUCCESS,FAILURE,DELAY */
	const char *dsn_ret;      /* -R: "FULL" or "HDRS" */
	const char *dsn_envid;    /* -V */
	const char *traffic_log;  /* -X file: append the SMTP dialogue */
	bool no_queue;            /* --no-queue */
	bool pretend;             /* --pretend: show, send nothing */
	const char *subject;      /* --subject: compose a message */
	struct strlist attachments; /* --attach FILE, repeatable */
	enum oauth2_flow oauth2_flow; /* --oauth2-authorize=FLOW */
	char *dsn_notify_buf;     /* normalised -N value */
	struct strlist recipients;
	struct strlist ignored;   /* MTA-only options we accepted and ignored */
};

/* Parse argv (argv[0] "mailq" means -bp, "newaliases" -bi). Returns 0, or -1 with a message naming the bad option in
 * err (a usage error, exit status 64). */
int cli_parse(int argc, char **argv, struct cli *out, char *err,
	      size_t errlen);
void cli_free(struct cli *c);
/* The short usage text. */
const char *cli_usage(void);

#endif
