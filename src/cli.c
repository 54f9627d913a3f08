#include "autoconf.h"
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "address.h"

enum {
	OPT_HELP = 256,
	OPT_VERSION,
	OPT_ACCOUNT,
};

/* sendmail's single-letter options; ':' marks an argument, which may be
 * attached (-fuser) or separate (-f user). */
static const char short_options[] = "+C:f:r:F:tio:vB:b:";

static const struct option long_options[] = {
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "account", required_argument, NULL, OPT_ACCOUNT },
	{ NULL, 0, NULL, 0 },
};

const char *cli_usage(void)
{
	return "usage: postbote [-C file] [--account name] [-f sender] [-F name] "
	       "[-t] [-i] [-v] [--] [recipient ...] < message\n"
	       "       postbote --help | --version\n";
}

/* -o takes sendmail's option letters; only -oi means anything to a client
 * that hands mail to a server, the rest is accepted and ignored. */
static void option_o(struct cli *c, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		c->ignore_dots = true;
	else
		strlist_add(&c->ignored, arg);
}

static int option_b(struct cli *c, const char *arg, char *err, size_t errlen)
{
	if (strcmp(arg, "m") == 0) {
		c->mode = MODE_SEND;
		return 0;
	}
	format_into(err, errlen, "option -b%s is not supported (only -bm, "
		    "deliver mail, is)", arg);
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

static int check_name(const char *s, char *err, size_t errlen)
{
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			format_into(err, errlen, "the full name given with -F contains a "
				    "control character");
			return -1;
		}
	}
	return 0;
}

static int apply_option(struct cli *c, int opt, const char *arg, char *err,
			size_t errlen)
{
	switch (opt) {
	case 'C': c->config_file = arg; return 0;
	case 'f':
	case 'r': c->sender = arg; return check_sender(arg, err, errlen);
	case 'F': c->full_name = arg; return check_name(arg, err, errlen);
	case 't': c->read_recipients = true; return 0;
	case 'i': c->ignore_dots = true; return 0;
	case 'o': option_o(c, arg); return 0;
	case 'v': c->verbose++; return 0;
	case 'B': strlist_add(&c->ignored, "B"); return 0;
	case 'b': return option_b(c, arg, err, errlen);
	case OPT_HELP: c->mode = MODE_HELP; return 0;
	case OPT_VERSION: c->mode = MODE_VERSION; return 0;
	case OPT_ACCOUNT: c->account = arg; return 0;
	default: return -1;
	}
}

static void unknown_option(char **argv, int index, int opt, char *err,
			   size_t errlen)
{
	const char *word = index > 0 ? argv[index - 1] : "?";
	if (opt > 0 && opt < 256 && strchr(short_options, opt))
		format_into(err, errlen, "option -%c needs an argument", opt);
	else if (opt > 0 && opt < 256)
		format_into(err, errlen, "unknown option -%c (in \"%s\")", opt, word);
	else
		format_into(err, errlen, "unknown option \"%s\"", word);
}

int cli_parse(int argc, char **argv, struct cli *out, char *err, size_t errlen)
{
	int opt;
	memset(out, 0, sizeof *out);
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
}
