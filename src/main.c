/* postbote: the front end. It alone prints verdicts and chooses the exit
 * status; everything below it returns results. */
#include "autoconf.h"

#include <curl/curl.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "compose.h"
#include "config.h"
#include "curl_loader.h"
#include "delivery.h"
#include "envelope.h"
#include "flush.h"
#include "log.h"
#include "message.h"
#include "oauth2.h"
#include "sasl.h"
#include "smtpd.h"
#include "secret.h"
#include "status.h"
#include "tls.h"
#include "util.h"

extern char **environ;

#define SYSTEM_CONFIG "/etc/postbote.conf"

static const char *const remove_always[] = { "Bcc", "Resent-Bcc", NULL };

/* Where the SMTP dialogue goes: stderr with -v, a file with -X. Each line
 * gets the time since the start; the first server line after one of ours
 * also the round-trip time, which is what a slow server costs. */
struct trace_sink {
	bool to_stderr;
	bool colour;        /* only on a terminal */
	FILE *file;
	int64_t start_ms;
	int64_t sent_ms;    /* when our last line went out, 0 once answered */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void trace_line(void *ctx, enum trace_dir dir, const char *text)
{
	static const char *const prefix[] = { "<-- ", "--> ", "*** " };
	static const char *const colours[] = { "\033[36m", "\033[32m", "\033[33m" };
	struct trace_sink *t = ctx;
	char shown[1024], rtt[32] = "";
	int64_t now = now_ms();
	long elapsed = (long)(now - t->start_ms);
	make_visible(shown, sizeof shown, text, strlen(text));
	if (dir == TRACE_CLIENT && !t->sent_ms)
		t->sent_ms = now;
	if (dir == TRACE_SERVER && t->sent_ms) {
		snprintf(rtt, sizeof rtt, "  (%ld ms)", (long)(now - t->sent_ms));
		t->sent_ms = 0;
	}
	if (t->to_stderr)
		fprintf(stderr, "[%3ld.%03ld] %s%s%s%s%s\n", elapsed / 1000,
			elapsed % 1000, t->colour ? colours[dir] : "", prefix[dir],
			shown, t->colour ? "\033[0m" : "", rtt);
	if (t->file) {
		char stamp[32];
		time_t wall = time(NULL);
		struct tm tm;
		localtime_r(&wall, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
		fprintf(t->file, "%s [%ld] %s%s%s\n", stamp, (long)getpid(),
			prefix[dir], shown, rtt);
		fflush(t->file);
	}
}

static int open_trace(const struct cli *cli, struct trace_sink *t)
{
	t->to_stderr = cli->verbose > 0;
	t->colour = t->to_stderr && isatty(STDERR_FILENO) && !getenv("NO_COLOR");
	t->file = NULL;
	t->start_ms = now_ms();
	t->sent_ms = 0;
	if (!cli->traffic_log)
		return EX_OK;
	t->file = fopen(cli->traffic_log, "ae");
	if (!t->file) {
		fprintf(stderr, "postbote: -X %s: %s\n", cli->traffic_log,
			strerror(errno));
		return EX_CANTCREAT;
	}
	return EX_OK;
}

static int fail_with(const struct outcome *o)
{
	char *text = status_describe(o);
	fprintf(stderr, "postbote: %s\n", text);
	free(text);
	return status_exit_code(o);
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "postbote: %s\n%s", msg, cli_usage());
	return EX_USAGE;
}

static int print_version(void)
{
	char *mechs = sasl_available_mechanisms();
	char err[512];
	const struct curl_api *curl = curl_api_get(err, sizeof err);
	printf("postbote %s\nGnuTLS %s, libgsasl %s, libcurl %s\n"
	       "SASL mechanisms: %s\n", PACKAGE_VERSION, tls_library_version(),
	       sasl_library_version(), curl ?
	       curl->version_info(CURLVERSION_NOW)->version : "missing", mechs);
	/* the rest works without it */
	if (!curl)
		fprintf(stderr, "postbote: OAuth2 will not work: %s\n", err);
	free(mechs);
	return EX_OK;
}

/* The system configuration as a setgid postbote read it with its group,
 * before dropping it (see setgid_start); empty otherwise. */
static struct config system_config;

/* -C, else the user's file, else the system file. */
static char *config_path(const struct cli *cli)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char *user = NULL;
	struct stat st;
	if (cli->config_file)
		return xstrdup(cli->config_file);
	if (xdg && xdg[0])
		user = xasprintf("%s/postbote/config", xdg);
	else if (home && home[0])
		user = xasprintf("%s/.config/postbote/config", home);
	if (user && stat(user, &st) == 0)
		return user;
	free(user);
	return xstrdup(SYSTEM_CONFIG);
}

static int load_aliases(const struct account *acct, struct aliases **aliases)
{
	char err[512];
	*aliases = NULL;
	if (!acct->aliases || !acct->aliases[0])
		return EX_OK;
	if (aliases_load(acct->aliases, aliases, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: aliases: %s\n", err);
		return EX_CONFIG;
	}
	return EX_OK;
}

/* Said every time, not only with -v: cron mails it to the admin until the
 * setting is fixed. */
static void warn_unchecked_tls(const struct account *acct)
{
	if (!acct->tls || acct->tls_certcheck || acct->tls_fingerprint)
		return;
	fprintf(stderr, "postbote: WARNING: account %s has tls_certcheck off: "
		"the server's certificate is not checked, so anyone on the "
		"network path can pose as the server and read the password and "
		"the mail. Use tls_trust_file or tls_fingerprint instead.\n",
		acct->name ? acct->name : "default");
}

static int load_account(const struct cli *cli, struct config *cfg,
			const struct account **acct, struct aliases **aliases)
{
	char err[CONFIG_ERROR_MAX];
	char *path = config_path(cli);
	*aliases = NULL;
	if (system_config.path) {
		/* Read by the setgid start before the group was dropped. */
		*cfg = system_config;
		memset(&system_config, 0, sizeof system_config);
	} else if (config_load(path, cfg, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: %s\n", err);
		free(path);
		return EX_CONFIG;
	}
	free(path);
	*acct = config_find_account(cfg, cli->account);
	if (!*acct) {
		fprintf(stderr, "postbote: %s: %s%s\n", cfg->path,
			cli->account ? "no account named " : "no account defined",
			cli->account ? cli->account : "");
		return EX_CONFIG;
	}
	warn_unchecked_tls(*acct);
	return load_aliases(*acct, aliases);
}

static const char *login_name(void)
{
	struct passwd *pw = getpwuid(getuid());
	if (pw && pw->pw_name)
		return pw->pw_name;
	return getenv("USER") ? getenv("USER") : "unknown";
}

static int build_envelope(const struct cli *cli, const struct account *acct,
			  const struct aliases *aliases,
			  const struct message *msg, struct envelope *env)
{
	char host[256] = "localhost";
	struct outcome o = { 0 };
	struct envelope_input in = { cli, acct, msg, login_name(), host,
				     time(NULL), aliases };
	if (gethostname(host, sizeof host) != 0 || !host[0])
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	if (envelope_build(&in, env, &o) < 0) {
		int rc = fail_with(&o);
		outcome_clear(&o);
		return rc;
	}
	return EX_OK;
}

static void report_refused(const struct smtp_transaction_result *tx)
{
	for (size_t i = 0; i < tx->nrcpts; i++) {
		if (tx->rcpts[i].accepted ||
		    tx->rcpts[i].outcome.failure == FAIL_NONE)
			continue;
		char *text = status_describe(&tx->rcpts[i].outcome);
		fprintf(stderr, "postbote: recipient %s refused: %s\n",
			tx->rcpts[i].rcpt, text);
		free(text);
	}
}

/* Exit status when the message went to some recipients but not all: the
 * first refusal decides. Once the message was accepted for anyone, a
 * temporary refusal does not give 75: a caller that retried would send the
 * message to the accepted recipients a second time. */
static int partial_status(const struct smtp_transaction_result *tx,
			  bool delivered)
{
	for (size_t i = 0; i < tx->nrcpts; i++) {
		const struct outcome *o = &tx->rcpts[i].outcome;
		int code;
		if (tx->rcpts[i].accepted)
			continue;
		code = status_exit_code(o);
		return delivered && code == EX_TEMPFAIL ? EX_UNAVAILABLE : code;
	}
	return EX_OK;
}

static void log_result(const struct account *acct, const struct envelope *env,
		       const struct message *msg, const struct delivery_result *res,
		       int status, const char *queue_id)
{
	char *rcpts = xstrdup("");
	char *line;
	for (size_t i = 0; i < env->rcpts.n; i++) {
		char *next = xasprintf("%s%s%s", rcpts, i ? "," : "", env->rcpts.v[i]);
		free(rcpts);
		rcpts = next;
	}
	line = xasprintf("host=%s account=%s from=%s recipients=%s size=%jd "
			 "status=%d%s%s reply=%s", acct->host ? acct->host : "-",
			 acct->name ? acct->name : "-", env->sender, rcpts,
			 (intmax_t)msg->size, status, queue_id[0] ? " queued=" : "",
			 queue_id,
			 res->tx.queue_reply ? res->tx.queue_reply
			 : res->outcome.text ? res->outcome.text
			 : res->outcome.detail[0] ? res->outcome.detail : "-");
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	log_message(acct, line, status != EX_OK);
	free(line);
	free(rcpts);
}

static void report_verified(const struct smtp_transaction_result *tx)
{
	for (size_t i = 0; i < tx->nrcpts; i++) {
		char *text;
		if (tx->rcpts[i].accepted) {
			printf("%s: deliverable\n", tx->rcpts[i].rcpt);
			continue;
		}
		text = status_describe(&tx->rcpts[i].outcome);
		printf("%s: refused: %s\n", tx->rcpts[i].rcpt, text);
		free(text);
	}
}

static void setup_delivery(struct delivery *d, const struct cli *cli,
			   const struct account *acct, const struct message *msg,
			   const struct envelope *env, struct trace_sink *trace)
{
	*d = (struct delivery){
		.acct = acct,
		.env = { env->sender, (const char *const *)env->rcpts.v,
			 env->rcpts.n, msg->eight_bit, env->smtputf8, 0,
			 cli->dsn_notify, cli->dsn_ret, cli->dsn_envid },
		.msg = msg,
		.emit = { .prepend = env->prepend, .remove = remove_always,
			  .dot_stuff = true,
			  .replace = (const char *const *)env->replace },
		.verify_only = cli->mode == MODE_VERIFY,
		.trace = trace->to_stderr || trace->file ? trace_line : NULL,
		.trace_ctx = trace,
	};
	if (!d->verify_only)
		d->env.size = message_emit_size(msg, &d->emit);
}

static int outcome_status(const struct delivery_result *res, bool verify_only,
			  bool verbose)
{
	if (verify_only) {
		if (res->outcome.failure != FAIL_NONE)
			return fail_with(&res->outcome);
		if (res->tx.outcome.failure != FAIL_NONE)
			return fail_with(&res->tx.outcome);
		report_verified(&res->tx);
		return partial_status(&res->tx, false);
	}
	if (res->outcome.failure != FAIL_NONE) {
		int status = fail_with(&res->outcome);
		/* Every recipient refused: show each reply, not only the first. */
		if (res->outcome.stage == STAGE_RCPT && res->tx.nrcpts > 1)
			report_refused(&res->tx);
		return status;
	}
	report_refused(&res->tx);
	if (verbose)
		fprintf(stderr, "postbote: accepted for %zu of %zu recipients: %s\n",
			res->tx.naccepted, res->tx.nrcpts, res->tx.queue_reply);
	return partial_status(&res->tx, true);
}

/* -bs: the answer to the end of the caller's data, from our own result. */
static void smtpd_reply(const struct delivery_result *res, int status,
			struct smtpd_result *r)
{
	const struct outcome *o = res->outcome.failure != FAIL_NONE
					  ? &res->outcome : NULL;
	if (!o) {
		r->code = 250;
		snprintf(r->enhanced, sizeof r->enhanced, "2.0.0");
		format_into(r->text, sizeof r->text, "sent for %zu of %zu "
			    "recipients%s; server said: %s", res->tx.naccepted,
			    res->tx.nrcpts, status == EX_OK ? ""
			    : " (refusals reported on standard error)",
			    res->tx.queue_reply ? res->tx.queue_reply : "");
		return;
	}
	if (o->failure == FAIL_REPLY && (o->code / 100 == 4 || o->code / 100 == 5)) {
		r->code = o->code;
		snprintf(r->enhanced, sizeof r->enhanced, "%s", o->enhanced);
		format_into(r->text, sizeof r->text, "%s: %s", stage_name(o->stage),
			    o->text ? o->text : "");
		return;
	}
	r->code = outcome_is_temporary(o) ? 451 : 554;
	snprintf(r->enhanced, sizeof r->enhanced, "%s",
		 outcome_is_temporary(o) ? "4.4.0" : "5.0.0");
	format_into(r->text, sizeof r->text, "%s: %s", stage_name(o->stage),
		    o->detail);
}

static bool queueing(const struct cli *cli, const struct account *acct)
{
	return acct->queue && !cli->no_queue && cli->mode != MODE_VERIFY;
}

/* What the queue needs to know of this message besides its text. */
static struct queue_entry queue_meta(const struct cli *cli,
				     const struct account *acct,
				     const struct message *msg,
				     const struct envelope *env)
{
	return (struct queue_entry){
		.account = acct->name, .sender = env->sender,
		.dsn_notify = (char *)cli->dsn_notify,
		.dsn_ret = (char *)cli->dsn_ret,
		.dsn_envid = (char *)cli->dsn_envid,
		.body_8bit = msg->eight_bit, .smtputf8 = env->smtputf8,
		.lock_fd = -1,
	};
}

/* The verdict on our own message: printed, or (after a temporary
 * failure) kept in the queue with a one-line notice. */
static int settle_main(const struct cli *cli, const struct account *acct,
		       const struct message *msg, const struct envelope *env,
		       const struct delivery_item *it, struct smtpd_result *reply)
{
	const struct delivery_result *res = &it->res;
	struct queue_entry meta = queue_meta(cli, acct, msg, env);
	char id[QUEUE_ID_MAX] = "";
	bool whole_temporary = res->outcome.failure != FAIL_NONE &&
			       outcome_is_temporary(&res->outcome);
	int status;
	if (whole_temporary && queueing(cli, acct) &&
	    flush_keep(acct, it, &meta, &status, id)) {
		if (res->tx.nrcpts > 0)
			report_refused(&res->tx);
	} else {
		status = outcome_status(res, it->env.nrcpts > 0 &&
				cli->mode == MODE_VERIFY, cli->verbose > 0);
		if (!whole_temporary && res->outcome.failure == FAIL_NONE &&
		    queueing(cli, acct))
			(void)flush_keep(acct, it, &meta, &status, id);
	}
	if (cli->mode != MODE_VERIFY)
		log_result(acct, env, msg, res, status, id);
	if (reply && id[0] && res->outcome.failure != FAIL_NONE) {
		reply->code = 250;
		snprintf(reply->enhanced, sizeof reply->enhanced, "2.0.0");
		format_into(reply->text, sizeof reply->text, "queued as %s after a "
			    "temporary failure", id);
	} else if (reply) {
		smtpd_reply(res, status, reply);
	}
	return status;
}

static int submit(const struct cli *cli, const struct account *acct,
		  const struct message *msg, const struct envelope *env,
		  struct trace_sink *trace, struct smtpd_result *reply)
{
	struct credentials creds;
	struct delivery d;
	struct queue_entry *claimed = NULL;
	size_t nclaimed = 0, k = 0;
	struct delivery_item *items;
	struct message *msgs;
	struct flush_progress progress;
	int status;
	credentials_init(&creds, acct, -1, true);
	setup_delivery(&d, cli, acct, msg, env, trace);
	d.creds = &creds;
	/* Due queued mail for this account rides along on the connection. */
	if (queueing(cli, acct))
		flush_claim(acct, false, &claimed, &nclaimed);
	items = xcalloc(nclaimed + 1, sizeof *items);
	msgs = xcalloc(nclaimed + 1, sizeof *msgs);
	items[0] = (struct delivery_item){ .env = d.env, .msg = msg, .emit = d.emit };
	k = flush_load(acct, claimed, nclaimed, items + 1, msgs);
	progress = (struct flush_progress){ acct, claimed, 1, cli->verbose > 0 };
	d.item_done = flush_item_done;
	d.item_ctx = &progress;
	(void)deliver_batch(&d, items, k + 1);
	status = settle_main(cli, acct, msg, env, &items[0], reply);
	flush_settle(acct, claimed, items + 1, msgs, k, cli->verbose > 0);
	delivery_result_free(&items[0].res);
	free(items);
	free(msgs);
	credentials_free(&creds);
	return status;
}

/* --pretend: what would be sent, marked; nothing is sent. */
static void print_field(const struct message *msg, size_t i, const char *mark)
{
	const struct header_field *h = &msg->headers[i];
	char *raw = xmalloc(h->length + 1);
	ssize_t n = pread(msg->fd, raw, h->length, h->offset);
	raw[n > 0 ? n : 0] = '\0';
	for (char *line = strtok(raw, "\r\n"); line; line = strtok(NULL, "\r\n"))
		printf("%-12s %s\n", mark, line);
	free(raw);
}

static bool is_removed(const char *name)
{
	for (const char *const *r = remove_always; *r; r++)
		if (ascii_casecmp(name, *r) == 0)
			return true;
	return false;
}

static int pretend(const struct cli *cli, const struct account *acct,
		   const struct message *msg, const struct envelope *env)
{
	const char *forced = ascii_casecmp(acct->auth, "on") == 0 ? NULL : acct->auth;
	printf("account:     %s (%s port %d, %s)\n",
	       acct->name ? acct->name : "default", acct->host ? acct->host : "?",
	       delivery_port(acct), !acct->tls ? "no TLS"
	       : acct->tls_starttls ? "STARTTLS" : "implicit TLS");
	printf("auth:        %s\n", ascii_casecmp(acct->auth, "off") == 0 ? "off"
	       : !acct->user ? "none (no user set)"
	       : forced ? forced
	       : oauth2_configured(acct)
	       ? "OAUTHBEARER, else XOAUTH2, with an OAuth2 access token"
	       : "the strongest the server offers of SCRAM-SHA-256-PLUS, "
		 "SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN, "
		 "CRAM-MD5, DIGEST-MD5 (with a password), GS2-KRB5, GSSAPI "
		 "(with a Kerberos ticket), EXTERNAL (with tls_cert_file)");
	printf("sender:      <%s>\n", env->sender);
	for (size_t i = 0; i < env->rcpts.n; i++)
		printf("recipient:   <%s>\n", env->rcpts.v[i]);
	printf("\n");
	for (const char *p = env->prepend; p && *p;) {
		const char *nl = strstr(p, "\r\n");
		printf("%-12s %.*s\n", "(added)", (int)(nl ? nl - p : (long)strlen(p)), p);
		p = nl ? nl + 2 : NULL;
	}
	for (size_t i = 0; i < msg->nheaders; i++) {
		if (is_removed(msg->headers[i].name))
			print_field(msg, i, "(removed)");
		else if (env->replace && env->replace[i])
			printf("%-12s %.*s\n", "(rewritten)",
			       (int)strcspn(env->replace[i], "\r\n"), env->replace[i]);
		else
			print_field(msg, i, "");
	}
	printf("\n(message text: %jd bytes as sent; nothing was sent)\n",
	       (intmax_t)message_emit_size(msg, &(struct emit_options){
		       .prepend = env->prepend, .remove = remove_always,
		       .replace = (const char *const *)env->replace }));
	(void)cli;
	return EX_OK;
}

/* --subject / --attach: stdin is only the body; build the message. */
static int compose(const struct cli *cli, int *fd)
{
	char err[512], host[256] = "localhost";
	struct compose_options opt = {
		.subject = cli->subject,
		.attachments = (const char *const *)cli->attachments.v,
		.nattachments = cli->attachments.n,
		.to = (const char *const *)cli->recipients.v,
		.nto = cli->recipients.n,
		.now = time(NULL),
		.domain = host,
	};
	(void)gethostname(host, sizeof host - 1);
	*fd = temp_file_unlinked(NULL, "postbote-compose", err, sizeof err);
	if (*fd < 0 || compose_message(STDIN_FILENO, *fd, &opt, err, sizeof err) < 0 ||
	    lseek(*fd, 0, SEEK_SET) != 0) {
		fprintf(stderr, "postbote: composing the message: %s\n", err);
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return EX_DATAERR;
	}
	return EX_OK;
}

static int spool(const struct cli *cli, struct message *msg)
{
	char err[256];
	struct spool_options opt = { .dot_ends_input = !cli->ignore_dots };
	int in = STDIN_FILENO;
	if ((cli->subject || cli->attachments.n > 0)) {
		int status = compose(cli, &in);
		if (status != EX_OK)
			return status;
		opt.dot_ends_input = false;
	}
	if (message_spool(in, &opt, msg, err, sizeof err) < 0) {
		if (in != STDIN_FILENO)
			close(in);
		fprintf(stderr, "postbote: reading the message: %s\n", err);
		return EX_TEMPFAIL;
	}
	if (in != STDIN_FILENO)
		close(in);
	return EX_OK;
}

static int run(const struct cli *cli)
{
	struct config cfg = { 0 };
	const struct account *acct = NULL;
	struct message msg = { .fd = -1 };
	struct envelope env = { 0 };
	struct aliases *aliases = NULL;
	struct trace_sink trace;
	int status = open_trace(cli, &trace);
	if (status == EX_OK)
		status = load_account(cli, &cfg, &acct, &aliases);
	/* -bv checks addresses only: there is no message to read. */
	if (status == EX_OK && cli->mode != MODE_VERIFY)
		status = spool(cli, &msg);
	if (status == EX_OK)
		status = build_envelope(cli, acct, aliases, &msg, &env);
	if (status == EX_OK && cli->pretend)
		status = pretend(cli, acct, &msg, &env);
	else if (status == EX_OK)
		status = submit(cli, acct, &msg, &env, &trace, NULL);
	if (trace.file)
		fclose(trace.file);
	envelope_free(&env);
	message_free(&msg);
	aliases_free(aliases);
	config_free(&cfg);
	return status;
}

struct smtpd_context {
	const struct cli *cli;
	const struct account *acct;
	const struct aliases *aliases;
	struct trace_sink *trace;
	int status;               /* the first failure, for the exit status */
};

/* One message the -bs caller gave us: envelope as for the command line,
 * the caller's MAIL and RCPT instead of -f and arguments. */
static void smtpd_deliver(void *ctx, const struct smtpd_message *m,
			  struct smtpd_result *r)
{
	struct smtpd_context *c = ctx;
	struct cli one = *c->cli;
	struct envelope env = { 0 };
	int status;
	one.sender = m->sender;
	one.read_recipients = false;
	one.recipients = (struct strlist){ 0 };
	for (size_t i = 0; i < m->nrcpts; i++)
		strlist_add(&one.recipients, m->rcpts[i]);
	status = build_envelope(&one, c->acct, c->aliases, m->msg, &env);
	if (status == EX_OK) {
		status = submit(&one, c->acct, m->msg, &env, c->trace, r);
	} else {
		r->code = 550;
		snprintf(r->enhanced, sizeof r->enhanced, "5.1.3");
		format_into(r->text, sizeof r->text, "invalid address");
	}
	if (c->status == EX_OK)
		c->status = status;
	envelope_free(&env);
	strlist_free(&one.recipients);
}

static int smtp_stdio(const struct cli *cli)
{
	struct config cfg = { 0 };
	const struct account *acct = NULL;
	struct aliases *aliases = NULL;
	struct trace_sink trace;
	struct smtpd_context ctx = { cli, NULL, NULL, &trace, EX_OK };
	char host[256] = "localhost";
	int status = open_trace(cli, &trace);
	if (status == EX_OK)
		status = load_account(cli, &cfg, &acct, &aliases);
	if (status == EX_OK) {
		struct smtpd_options opt = { .hostname = host,
					     .idle_timeout_ms = 300000,
					     .deliver = smtpd_deliver,
					     .ctx = &ctx };
		ctx.acct = acct;
		ctx.aliases = aliases;
		if (gethostname(host, sizeof host) != 0 || !host[0])
			strcpy(host, "localhost");
		host[sizeof host - 1] = '\0';
		/* A caller that hangs up must not kill us mid-report. */
		signal(SIGPIPE, SIG_IGN);
		if (smtpd_run(STDIN_FILENO, STDOUT_FILENO, &opt) < 0 &&
		    ctx.status == EX_OK)
			ctx.status = EX_IOERR;
		status = ctx.status;
	}
	if (trace.file)
		fclose(trace.file);
	aliases_free(aliases);
	config_free(&cfg);
	return status;
}

static void print_block(const char *title, const char *text)
{
	const char *p = text;
	printf("%s\n", title);
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = xmalloc(4 * n + 4);
		make_visible(line, 4 * n + 4, p, n);
		printf("  %s\n", line);
		free(line);
		p = nl ? nl + 1 : NULL;
	}
}

static void print_caps_summary(const char *label, const char *raw)
{
	struct smtp_reply r = { .text = (char *)raw };
	struct smtp_caps c = { 0 };
	char size[48] = "no size limit";
	if (!raw)
		return;
	smtp_caps_parse(&c, &r);
	if (c.size && c.size_max)
		snprintf(size, sizeof size, "size limit %ju bytes",
			 (uintmax_t)c.size_max);
	printf("%s: AUTH %s; %s;%s%s%s%s%s\n", label, c.auth ? c.auth : "(none)",
	       size, c.pipelining ? " PIPELINING" : "", c.starttls ? " STARTTLS" : "",
	       c.eightbitmime ? " 8BITMIME" : "", c.smtputf8 ? " SMTPUTF8" : "",
	       c.dsn ? " DSN" : "");
	smtp_caps_free(&c);
}

/* --serverinfo: what the server offers; nothing is sent. */
static int serverinfo(const struct cli *cli)
{
	struct config cfg = { 0 };
	const struct account *acct = NULL;
	struct aliases *aliases = NULL;
	struct trace_sink trace;
	struct serverinfo si;
	struct delivery d = { 0 };
	int status = open_trace(cli, &trace);
	if (status == EX_OK)
		status = load_account(cli, &cfg, &acct, &aliases);
	if (status == EX_OK) {
		d.acct = acct;
		d.trace = trace.to_stderr || trace.file ? trace_line : NULL;
		d.trace_ctx = &trace;
		(void)delivery_serverinfo(&d, &si);
		printf("server %s port %d (account %s)\n", acct->host ? acct->host : "?",
		       si.port, acct->name ? acct->name : "default");
		if (si.greeting)
			print_block("greeting:", si.greeting);
		if (si.ehlo_plain)
			print_block("EHLO before TLS:", si.ehlo_plain);
		if (si.tls_report)
			printf("TLS:\n%s", si.tls_report);
		if (si.ehlo_tls)
			print_block("EHLO under TLS:", si.ehlo_tls);
		print_caps_summary("offered before TLS", si.ehlo_plain);
		print_caps_summary("offered under TLS", si.ehlo_tls);
		status = si.outcome.failure == FAIL_NONE ? EX_OK : fail_with(&si.outcome);
		serverinfo_free(&si);
	}
	if (trace.file)
		fclose(trace.file);
	aliases_free(aliases);
	config_free(&cfg);
	return status;
}

/* -bp and -q need the configuration only for the queue directory, the
 * accounts and the log settings. */
static int queue_mode(const struct cli *cli)
{
	struct config cfg = { 0 };
	const struct account *acct = NULL;
	struct aliases *aliases = NULL;
	struct trace_sink trace;
	int status = open_trace(cli, &trace);
	if (status == EX_OK)
		status = load_account(cli, &cfg, &acct, &aliases);
	if (status == EX_OK && cli->mode == MODE_LIST_QUEUE)
		status = flush_list(acct);
	else if (status == EX_OK)
		status = flush_run(&cfg, acct, trace.to_stderr || trace.file
				   ? trace_line : NULL, &trace, cli->verbose > 0);
	if (trace.file)
		fclose(trace.file);
	aliases_free(aliases);
	config_free(&cfg);
	return status;
}

/* --oauth2-authorize and --oauth2-token: the account's OAuth2 client. */
static int oauth2_mode(const struct cli *cli)
{
	struct config cfg = { 0 };
	const struct account *acct = NULL;
	struct aliases *aliases = NULL;
	char err[512];
	int fd = -1;
	int status = load_account(cli, &cfg, &acct, &aliases);
	if (status == EX_OK && oauth2_check_account(acct, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: account %s: %s\n", acct->name, err);
		status = EX_CONFIG;
	}
	if (status == EX_OK) {
		fd = oauth2_store_open(acct, NULL, err, sizeof err);
		if (fd < 0) {
			fprintf(stderr, "postbote: OAuth2 token store: %s\n", err);
			status = EX_CANTCREAT;
		}
	}
	if (status == EX_OK && cli->mode == MODE_OAUTH2_AUTHORIZE) {
		status = oauth2_authorize(acct, fd, cli->oauth2_flow);
	} else if (status == EX_OK) {
		char *token = NULL;
		bool cached;
		enum oauth2_status st = oauth2_access_token(acct, fd, false, &token,
							    &cached, err, sizeof err);
		if (st == OAUTH2_OK) {
			/* the token is good, but the store could not keep it */
			if (err[0])
				fprintf(stderr, "postbote: warning: OAuth2: %s\n",
					err);
			printf("%s\n", token);
			free_secret(token);
		} else {
			fprintf(stderr, "postbote: OAuth2: %s\n", err);
			status = st == OAUTH2_TEMPFAIL ? EX_TEMPFAIL : EX_NOPERM;
		}
	}
	if (fd >= 0)
		close(fd);
	aliases_free(aliases);
	config_free(&cfg);
	return status;
}

/* No core dumps and no ptrace: a crash must not leave a password or a
 * token in a file, and other processes of the same user must not read
 * them out of memory. */
static void harden(void)
{
	struct rlimit none = { 0, 0 };
	(void)setrlimit(RLIMIT_CORE, &none);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static int drop_group(void)
{
	gid_t gid = getgid();
	if (setresgid(gid, gid, gid) < 0 || getegid() != gid) {
		fprintf(stderr, "postbote: cannot give up the setgid group: %s\n",
			strerror(errno));
		return EX_OSERR;
	}
	return EX_OK;
}

/* passwordeval with the group's rights runs in a fixed environment: the
 * caller's PATH must not choose which "cat" reads the secret. */
static char *privileged_eval(const char *command, char *err, size_t errlen)
{
	static char *clean[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
				 "LC_ALL=C", NULL };
	char **saved = environ;
	char *out;
	environ = clean;
	out = secret_run_command(command, err, errlen);
	environ = saved;
	return out;
}

/* The system account's password from a source only the group can read,
 * fetched now, while postbote still has the group. */
static int prefetch_password(struct account *a)
{
	char err[SECRET_ERROR_MAX];
	struct credentials c;
	char *p = NULL;
	if (a->password || (!a->passwordeval && !a->password_file))
		return EX_OK;
	if (a->passwordeval) {
		p = privileged_eval(a->passwordeval, err, sizeof err);
	} else {
		const char *got;
		credentials_init(&c, a, -1, false);
		got = credentials_password(&c, err, sizeof err);
		p = got ? xstrdup(got) : NULL;
		credentials_free(&c);
	}
	if (!p) {
		fprintf(stderr, "postbote: %s: account %s: %s\n", SYSTEM_CONFIG,
			a->name, err);
		return EX_CONFIG;
	}
	a->password = p;
	return EX_OK;
}

/* The system-wide setup (README, "One relay account for all users"):
 * postbote installed setgid to a group that alone may read
 * /etc/postbote.conf. The system file is read, and its account's secret
 * fetched, with that group; then the group is given up for good, before
 * anything the caller names (-C, -X, a user's own configuration,
 * recipients, the message) is touched. */
static int setgid_start(const struct cli *cli)
{
	char err[CONFIG_ERROR_MAX];
	char *path = NULL;
	int status = EX_OK;
	/* root can read the file anyway and needs no help. */
	if (getuid() != 0 && !cli->config_file)
		path = config_path(cli);
	if (path && strcmp(path, SYSTEM_CONFIG) == 0 &&
	    cli->mode != MODE_OAUTH2_AUTHORIZE && cli->mode != MODE_OAUTH2_TOKEN) {
		if (config_load(path, &system_config, err, sizeof err) < 0) {
			fprintf(stderr, "postbote: %s\n", err);
			status = EX_CONFIG;
		} else {
			const struct account *a =
				config_find_account(&system_config, cli->account);
			if (a && oauth2_configured(a)) {
				fprintf(stderr, "postbote: %s: account %s uses OAuth2, "
					"which the setgid system-wide setup does not "
					"offer; use a password for the shared relay "
					"account, or a configuration of your own\n",
					path, a->name);
				status = EX_CONFIG;
			} else if (a) {
				status = prefetch_password((struct account *)a);
			}
		}
	}
	free(path);
	if (drop_group() != EX_OK)
		return EX_OSERR;
	return status;
}

int main(int argc, char **argv)
{
	struct cli cli;
	char err[256];
	int status;
	harden();
	if (cli_parse(argc, argv, &cli, err, sizeof err) < 0)
		return usage_error(err);
	if (getegid() != getgid()) {
		status = setgid_start(&cli);
		if (status != EX_OK) {
			config_free(&system_config);
			cli_free(&cli);
			return status;
		}
	}
	switch (cli.mode) {
	case MODE_HELP:
		fputs(cli_usage(), stdout);
		status = EX_OK;
		break;
	case MODE_VERSION:
		status = print_version();
		break;
	case MODE_LIST_QUEUE:
	case MODE_FLUSH_QUEUE:
		status = queue_mode(&cli);
		break;
	case MODE_SERVERINFO:
		status = serverinfo(&cli);
		break;
	case MODE_SMTP_STDIO:
		status = smtp_stdio(&cli);
		break;
	case MODE_OAUTH2_AUTHORIZE:
	case MODE_OAUTH2_TOKEN:
		status = oauth2_mode(&cli);
		break;
	case MODE_NEWALIASES:
		/* The aliases file is read as it is at each send: nothing to
		 * rebuild (package scripts call newaliases after changes). */
		status = EX_OK;
		break;
	default:
		status = run(&cli);
		break;
	}
	cli_free(&cli);
	return status;
}
