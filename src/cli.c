#include "autoconf.h"
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

enum {
	OPT_HELP = 256,
	OPT_VERSION,
	OPT_ACCOUNT,
	OPT_NO_QUEUE,
	OPT_PRETEND,
	OPT_SUBJECT,
	OPT_ATTACH,
	OPT_OAUTH2_AUTHORIZE,
	OPT_OAUTH2_TOKEN,
};

/* sendmail's single-letter options; ':' marks an argument, which may be
 * attached (-fuser) or separate (-f user); "q::" an optional attached one.
 * '+': options end at the first recipient, as in sendmail. */
static const char short_options[] =
	"+A:B:C:F:GL:N:O:R:SUV:X:b:f:h:imno:q::r:tv";

static const struct option long_options[] = {
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "account", required_argument, NULL, OPT_ACCOUNT },
	{ "no-queue", no_argument, NULL, OPT_NO_QUEUE },
	{ "pretend", no_argument, NULL, OPT_PRETEND },
	{ "subject", required_argument, NULL, OPT_SUBJECT },
	{ "attach", required_argument, NULL, OPT_ATTACH },
	{ "serverinfo", no_argument, NULL, 'S' },
	{ "oauth2-authorize", optional_argument, NULL, OPT_OAUTH2_AUTHORIZE },
	{ "oauth2-token", no_argument, NULL, OPT_OAUTH2_TOKEN },
	{ NULL, 0, NULL, 0 },
};

const char *cli_usage(void)
{
	return "usage: postbote [-C file] [--account name] [-f sender] [-F name] "
	       "[-t] [-i] [-v] [--no-queue]\n"
	       "                [-N dsn] [-R full|hdrs] [-V envid] [-X logfile] "
	       "[--] [recipient ...] < message\n"
	       "       postbote -bs | -bv recipient ... | -bp | -q\n"
	       "       postbote --serverinfo | --pretend ...\n"
	       "       postbote [--subject S] [--attach FILE ...] recipient ... < body\n"
	       "       postbote [--account name] --oauth2-authorize[=browser|device]"
	       " | --oauth2-token\n"
	       "       postbote --help | --version\n";
}

/* -o takes sendmail's option letters; only -oi means anything to a client
 * that hands mail to a server, the rest (-oem, -odi, ...) is accepted and
 * ignored. */
static void option_o(struct cli *c, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		c->ignore_dots = true;
	else
		strlist_add(&c->ignored, arg);
}

static int option_oauth2_authorize(struct cli *c, const char *arg, char *err,
				   size_t errlen)
{
	c->mode = MODE_OAUTH2_AUTHORIZE;
	if (!arg)
		c->oauth2_flow = OAUTH2_FLOW_AUTO;
	else if (strcmp(arg, "browser") == 0)
		c->oauth2_flow = OAUTH2_FLOW_BROWSER;
	else if (strcmp(arg, "device") == 0)
		c->oauth2_flow = OAUTH2_FLOW_DEVICE;
	else {
		format_into(err, errlen, "--oauth2-authorize takes browser or "
			    "device, not \"%s\"", arg);
		return -1;
	}
	return 0;
}

static int option_b(struct cli *c, const char *arg, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum cli_mode mode;
	} modes[] = {
		{ "m", MODE_SEND }, { "p", MODE_LIST_QUEUE },
		{ "s", MODE_SMTP_STDIO }, { "v", MODE_VERIFY },
		{ "i", MODE_NEWALIASES },
	};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		if (strcmp(arg, modes[i].name) == 0) {
			c->mode = modes[i].mode;
			return 0;
		}
	}
	format_into(err, errlen, "option -b%s is not supported (postbote knows "
		    "-bm, -bp, -bs, -bv and -bi)", arg);
	return -1;
}

static int check_sender(const char *s, char *err, size_t errlen)
{
	char why[160];
	if (address_is_safe_for_envelope(s, why, sizeof why))
		return 0;
	format_into(err, errlen, "invalid sender address given with -f: %s", why);
	return -1;
}

static bool has_control(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* RFC 3461 4.1: NOTIFY=NEVER, or a list of SUCCESS, FAILURE, DELAY. */
static int option_n(struct cli *c, const char *arg, char *err, size_t errlen)
{
	char *copy = xstrdup(arg), *save = NULL;
	bool never = false, other = false;
	free(c->dsn_notify_buf);
	c->dsn_notify_buf = xstrdup("");
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		const char *name = ascii_casecmp(w, "never") == 0 ? "NEVER"
			: ascii_casecmp(w, "success") == 0 ? "SUCCESS"
			: ascii_casecmp(w, "failure") == 0 ? "FAILURE"
			: ascii_casecmp(w, "delay") == 0 ? "DELAY" : NULL;
		char *next;
		if (!name) {
			format_into(err, errlen, "-N: unknown DSN condition \"%s\" (use "
				    "never, or success,failure,delay)", w);
			free(copy);
			return -1;
		}
		never |= name[0] == 'N';
		other |= name[0] != 'N';
		next = xasprintf("%s%s%s", c->dsn_notify_buf,
				 c->dsn_notify_buf[0] ? "," : "", name);
		free(c->dsn_notify_buf);
		c->dsn_notify_buf = next;
	}
	free(copy);
	if ((never && other) || !c->dsn_notify_buf[0]) {
		format_into(err, errlen, "-N: \"never\" cannot be combined with other "
			    "conditions, and a condition is needed");
		return -1;
	}
	c->dsn_notify = c->dsn_notify_buf;
	return 0;
}

static int option_r_dsn(struct cli *c, const char *arg, char *err, size_t errlen)
{
	if (ascii_casecmp(arg, "full") == 0)
		c->dsn_ret = "FULL";
	else if (ascii_casecmp(arg, "hdrs") == 0)
		c->dsn_ret = "HDRS";
	else {
		format_into(err, errlen, "-R takes full or hdrs, not \"%s\"", arg);
		return -1;
	}
	return 0;
}

static int option_v_envid(struct cli *c, const char *arg, char *err,
			  size_t errlen)
{
	/* RFC 3461 4.4: ENVID is printable ASCII, at most 100 characters. */
	for (const char *p = arg; *p; p++) {
		if (*p < 0x21 || *p > 0x7e) {
			format_into(err, errlen, "-V: the envelope id must be printable "
				    "ASCII without spaces");
			return -1;
		}
	}
	if (strlen(arg) > 100 || !arg[0]) {
		format_into(err, errlen, "-V: the envelope id must have 1 to 100 "
			    "characters");
		return -1;
	}
	c->dsn_envid = arg;
	return 0;
}

static int apply_option(struct cli *c, int opt, const char *arg, char *err,
			size_t errlen)
{
	switch (opt) {
	case 'C': c->config_file = arg; return 0;
	case 'f':
	case 'r': c->sender = arg; return check_sender(arg, err, errlen);
	case 'F':
		c->full_name = arg;
		if (!has_control(arg))
			return 0;
		format_into(err, errlen, "the full name given with -F contains a "
			    "control character");
		return -1;
	case 't': c->read_recipients = true; return 0;
	case 'i': c->ignore_dots = true; return 0;
	case 'o': option_o(c, arg); return 0;
	case 'v': c->verbose++; return 0;
	case 'b': return option_b(c, arg, err, errlen);
	case 'q': c->mode = MODE_FLUSH_QUEUE; return 0;
	case 'N': return option_n(c, arg, err, errlen);
	case 'R': return option_r_dsn(c, arg, err, errlen);
	case 'V': return option_v_envid(c, arg, err, errlen);
	case 'X': c->traffic_log = arg; return 0;
	/* Only meaningful to an MTA that delivers itself: accepted, ignored. */
	case 'A': case 'B': case 'G': case 'L': case 'O': case 'U': case 'h':
	case 'm': case 'n':
		strlist_add(&c->ignored, (char[]){ '-', (char)opt, '\0' });
		return 0;
	case OPT_HELP: c->mode = MODE_HELP; return 0;
	case OPT_VERSION: c->mode = MODE_VERSION; return 0;
	case OPT_ACCOUNT: c->account = arg; return 0;
	case OPT_NO_QUEUE: c->no_queue = true; return 0;
	case OPT_PRETEND: c->pretend = true; return 0;
	case OPT_SUBJECT: c->subject = arg; return 0;
	case OPT_ATTACH: strlist_add(&c->attachments, arg); return 0;
	case 'S': c->mode = MODE_SERVERINFO; return 0;
	case OPT_OAUTH2_AUTHORIZE: return option_oauth2_authorize(c, arg, err,
								  errlen);
	case OPT_OAUTH2_TOKEN: c->mode = MODE_OAUTH2_TOKEN; return 0;
	default: return -1;
	}
}

static void unknown_option(char **argv, int index, int opt, char *err,
			   size_t errlen)
{
	const char *word = index > 0 ? argv[index - 1] : "?";
	if (opt > 0 && opt < 256 && strchr(short_options + 1, opt))
		format_into(err, errlen, "option -%c needs an argument", opt);
	else if (opt > 0 && opt < 256)
		format_into(err, errlen, "unknown option -%c (in \"%s\")", opt, word);
	else
		format_into(err, errlen, "unknown option \"%s\"", word);
}

static void mode_from_name(struct cli *c, const char *argv0)
{
	const char *base = argv0 ? strrchr(argv0, '/') : NULL;
	base = base ? base + 1 : argv0 ? argv0 : "";
	if (strcmp(base, "mailq") == 0)
		c->mode = MODE_LIST_QUEUE;
	else if (strcmp(base, "newaliases") == 0)
		c->mode = MODE_NEWALIASES;
}

int cli_parse(int argc, char **argv, struct cli *out, char *err, size_t errlen)
{
	int opt;
	memset(out, 0, sizeof *out);
	mode_from_name(out, argc > 0 ? argv[0] : NULL);
	optind = 0; /* GNU: start afresh (tests parse several argvs) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, short_options, long_options,
				  NULL)) != -1) {
		if (opt == '?' || opt == ':') {
			unknown_option(argv, optind, optopt, err, errlen);
			cli_free(out);
			return -1;
		}
		if (apply_option(out, opt, optarg, err, errlen) < 0) {
			cli_free(out);
			return -1;
		}
	}
	for (int i = optind; i < argc; i++)
		strlist_add(&out->recipients, argv[i]);
	return 0;
}

void cli_free(struct cli *c)
{
	strlist_free(&c->recipients);
	strlist_free(&c->ignored);
	strlist_free(&c->attachments);
	free(c->dsn_notify_buf);
	c->dsn_notify_buf = NULL;
}
