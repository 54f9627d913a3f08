#include "autoconf.h"
#include "flush.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "envelope.h"
#include "log.h"
#include "secret.h"
#include "status.h"
#include "util.h"

char *flush_queue_dir(const struct account *acct)
{
	if (acct->queue_dir && acct->queue_dir[0])
		return xstrdup(acct->queue_dir);
	return queue_default_dir();
}

static bool same_account(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* One line for a log or a queue envelope, no control characters. */
static char *one_line(const struct outcome *o)
{
	char *text = status_describe(o);
	char *meaning = strstr(text, "\n  meaning:");
	if (meaning)
		*meaning = '\0';
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return text;
}

/* Recipients the server refused only for now, or never got to see; a
 * recipient refused permanently is not kept (it is reported instead). */
static void temporary_rcpts(const struct delivery_item *it,
			    struct strlist *keep, const struct outcome **why)
{
	const struct smtp_transaction_result *tx = &it->res.tx;
	bool whole = it->res.outcome.failure != FAIL_NONE;
	*why = whole ? &it->res.outcome : NULL;
	if (tx->nrcpts == 0) {
		for (size_t i = 0; whole && i < it->env.nrcpts; i++)
			strlist_add(keep, it->env.rcpts[i]);
		return;
	}
	for (size_t i = 0; i < tx->nrcpts; i++) {
		const struct rcpt_result *r = &tx->rcpts[i];
		bool refused = r->outcome.failure != FAIL_NONE;
		if ((r->accepted && tx->delivered) ||
		    (refused && !outcome_is_temporary(&r->outcome)))
			continue;
		if (refused && !*why)
			*why = &r->outcome;
		if (refused || whole)
			strlist_add(keep, r->rcpt);
	}
}

static int permanent_status(const struct delivery_item *it)
{
	const struct smtp_transaction_result *tx = &it->res.tx;
	for (size_t i = 0; i < tx->nrcpts; i++) {
		const struct outcome *o = &tx->rcpts[i].outcome;
		if (o->failure != FAIL_NONE && !outcome_is_temporary(o))
			return status_exit_code(o);
	}
	return EX_OK;
}

bool flush_keep(const struct account *acct, const struct delivery_item *it,
		const struct queue_entry *meta, int *status, char *id)
{
	struct strlist keep = { 0 };
	const struct outcome *why = NULL;
	struct queue_entry e = *meta;
	char err[1024];
	char *dir;
	bool kept = false;
	if (it->res.outcome.failure != FAIL_NONE &&
	    !outcome_is_temporary(&it->res.outcome))
		return false;
	temporary_rcpts(it, &keep, &why);
	if (keep.n == 0 || !why) {
		strlist_free(&keep);
		return false;
	}
	dir = flush_queue_dir(acct);
	e.rcpts = keep;
	e.attempts = 1;
	e.last_error = one_line(why);
	e.lock_fd = -1;
	if (!dir || queue_open(dir, err, sizeof err) < 0 ||
	    queue_add(dir, &e, it->msg, &it->emit, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: the message could not be queued (%s)\n",
			dir ? err : "no queue directory");
	} else {
		fprintf(stderr, "postbote: %s: temporary failure; queued as %s for "
			"%zu recipient%s (\"postbote -q\" or the next send retries)\n",
			e.last_error, e.id, keep.n, keep.n == 1 ? "" : "s");
		snprintf(id, QUEUE_ID_MAX, "%s", e.id);
		/* The caller has nothing to retry; only a permanent refusal of
		 * other recipients still shows in the status. */
		*status = permanent_status(it);
		kept = true;
	}
	free(e.id);
	free(e.last_error);
	free(dir);
	strlist_free(&keep);
	return kept;
}

void flush_claim(const struct account *acct, bool force,
		 struct queue_entry **claimed, size_t *n)
{
	char err[1024];
	char *dir = flush_queue_dir(acct);
	struct queue_entry *all = NULL;
	size_t nall = 0, k = 0;
	*claimed = NULL;
	*n = 0;
	if (!dir)
		return;
	if (queue_claim(dir, time(NULL), force, &all, &nall, err, sizeof err) > 0)
		fprintf(stderr, "postbote: queue: %s\n", err);
	/* Only this account's entries go over this connection. */
	for (size_t i = 0; i < nall; i++) {
		if (same_account(all[i].account, acct->name)) {
			if (k != i)
				all[k] = all[i];
			k++;
		} else {
			queue_release(&all[i]);
			queue_entry_free(&all[i]);
		}
	}
	*claimed = all;
	*n = k;
	free(dir);
}

static void entry_item(const struct queue_entry *e, struct delivery_item *it,
		       struct message *msg)
{
	memset(it, 0, sizeof *it);
	it->env = (struct smtp_envelope){
		.sender = e->sender,
		.rcpts = (const char *const *)e->rcpts.v,
		.nrcpts = e->rcpts.n,
		.body_8bit = e->body_8bit,
		.smtputf8 = e->smtputf8,
		.size = e->size,
		.dsn_notify = e->dsn_notify,
		.dsn_ret = e->dsn_ret,
		.dsn_envid = e->dsn_envid,
	};
	it->msg = msg;
	/* The stored text is final: headers added, Bcc removed. */
	it->emit = (struct emit_options){ .dot_stuff = true };
}

size_t flush_load(const struct account *acct, struct queue_entry *claimed,
		  size_t n, struct delivery_item *items, struct message *msgs)
{
	char err[1024];
	char *dir = flush_queue_dir(acct);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		msgs[k] = (struct message){ .fd = -1 };
		if (!dir || queue_load_message(dir, &claimed[i], &msgs[k], err,
					       sizeof err) < 0) {
			fprintf(stderr, "postbote: queue entry %s cannot be read: %s\n",
				claimed[i].id, dir ? err : "no queue directory");
			queue_release(&claimed[i]);
			queue_entry_free(&claimed[i]);
			continue;
		}
		if (k != i)
			claimed[k] = claimed[i];
		entry_item(&claimed[k], &items[k], &msgs[k]);
		k++;
	}
	free(dir);
	return k;
}

static char *rcpt_list(const struct strlist *l)
{
	char *out = xstrdup("");
	for (size_t i = 0; i < l->n; i++) {
		char *next = xasprintf("%s%s%s", out, i ? ", " : "", l->v[i]);
		free(out);
		out = next;
	}
	return out;
}

/* A queue event the admin must see: on standard error and in the log. */
static void report_line(const struct account *acct, char *line)
{
	fprintf(stderr, "postbote: %s\n", line);
	log_message(acct, line, true);
	free(line);
}

static void report_permanent(const struct account *acct,
			     const struct queue_entry *e, const char *rcpt,
			     const struct outcome *o)
{
	char *text = one_line(o);
	report_line(acct, xasprintf("queue id=%s from=%s to=%s refused "
				    "permanently, dropped from the queue: %s",
				    e->id, e->sender, rcpt, text));
	free(text);
}

/* A failure before MAIL (a refused login, a certificate that does not
 * verify, a server that does not exist, a broken configuration) says
 * nothing about the message: a queued message is kept until the account
 * is fixed, however permanent the failure looks; queue_lifetime still
 * ends its stay. */
static bool account_problem(const struct outcome *o)
{
	switch (o->stage) {
	case STAGE_CONFIG:
	case STAGE_CONNECT:
	case STAGE_GREETING:
	case STAGE_EHLO:
	case STAGE_STARTTLS:
	case STAGE_TLS:
	case STAGE_AUTH:
		return true;
	default:
		return false;
	}
}

static void report_kept(const struct account *acct,
			const struct queue_entry *e, const struct outcome *o)
{
	char *text = one_line(o);
	report_line(acct, xasprintf("queue id=%s from=%s kept: %s (a problem of "
				    "the account \"%s\", not of the message: fix "
				    "it, then run postbote -q)", e->id, e->sender,
				    text, acct->name ? acct->name : "default"));
	free(text);
}

/* What is left to deliver of entry e after its batch item. */
static void settle_one(const struct account *acct, const char *dir,
		       struct queue_entry *e, struct delivery_item *it,
		       bool verbose)
{
	struct strlist keep = { 0 };
	const struct outcome *why = NULL;
	const struct smtp_transaction_result *tx = &it->res.tx;
	char err[1024];
	bool whole = it->res.outcome.failure != FAIL_NONE;
	bool retry = whole && (outcome_is_temporary(&it->res.outcome) ||
			       account_problem(&it->res.outcome));
	if (whole && !retry) {
		char *all = rcpt_list(&e->rcpts);
		report_permanent(acct, e, all, &it->res.outcome);
		free(all);
	} else if (retry && !outcome_is_temporary(&it->res.outcome)) {
		report_kept(acct, e, &it->res.outcome);
	}
	for (size_t i = 0; i < tx->nrcpts; i++) {
		const struct outcome *o = &tx->rcpts[i].outcome;
		if (o->failure != FAIL_NONE && !outcome_is_temporary(o))
			report_permanent(acct, e, tx->rcpts[i].rcpt, o);
	}
	if (!whole || retry)
		temporary_rcpts(it, &keep, &why);
	if (keep.n == 0) {
		if (queue_remove(dir, e, err, sizeof err) < 0)
			fprintf(stderr, "postbote: queue: %s\n", err);
		else if (verbose)
			fprintf(stderr, "postbote: queue entry %s done\n", e->id);
	} else {
		char *line = one_line(why);
		strlist_free(&e->rcpts);
		e->rcpts = keep;
		keep = (struct strlist){ 0 };
		if (queue_defer(dir, e, line, time(NULL), err, sizeof err) < 0)
			fprintf(stderr, "postbote: queue: %s\n", err);
		else if (verbose)
			fprintf(stderr, "postbote: queue entry %s deferred: %s\n", e->id,
				line);
		free(line);
	}
	strlist_free(&keep);
	queue_release(e);
}

void flush_item_done(void *ctx, struct delivery_item *items, size_t index)
{
	struct flush_progress *p = ctx;
	char *dir;
	if (index < p->offset)
		return;
	dir = flush_queue_dir(p->acct);
	if (dir)
		settle_one(p->acct, dir, &p->claimed[index - p->offset],
			   &items[index], p->verbose);
	items[index].settled = true;
	free(dir);
}

void flush_settle(const struct account *acct, struct queue_entry *claimed,
		  struct delivery_item *items, struct message *msgs, size_t n,
		  bool verbose)
{
	char *dir = flush_queue_dir(acct);
	for (size_t i = 0; i < n; i++) {
		if (dir && !items[i].settled)
			settle_one(acct, dir, &claimed[i], &items[i], verbose);
		delivery_result_free(&items[i].res);
		message_free(&msgs[i]);
	}
	queue_entries_free(claimed, n);
	free(dir);
}

static void report_expired(const struct account *acct,
			   const struct queue_entry *e, time_t lifetime,
			   const char *dir)
{
	char *rcpts = rcpt_list(&e->rcpts);
	report_line(acct, xasprintf("queue id=%s from=%s to=%s expired after %ld "
				    "days in the queue (last error: %s); moved to "
				    "%s/failed", e->id, e->sender, rcpts,
				    (long)(lifetime / 86400),
				    e->last_error ? e->last_error : "none", dir));
	free(rcpts);
}

static int notice_text(const struct queue_entry *e, const char *host,
		       time_t lifetime, struct message *msg, char *err,
		       size_t errlen)
{
	char *rcpts = rcpt_list(&e->rcpts);
	char *date = envelope_date(time(NULL));
	char *created = envelope_date(e->created);
	struct spool_options opt = { .dot_ends_input = false };
	int fd = temp_file_unlinked(NULL, "postbote-notice", err, errlen);
	char *text;
	int rc = -1;
	if (fd < 0)
		goto out;
	/* RFC 3834: an automatic message, so that nobody answers it. */
	text = xasprintf("From: Mail Delivery System <MAILER-DAEMON@%s>\n"
			 "To: <%s>\nSubject: Undelivered mail: %s\n"
			 "Date: %s\nAuto-Submitted: auto-replied\n\n"
			 "postbote on %s could not deliver your message (queue id %s)"
			 "\nto: %s\n\nIt was queued on %s and tried %u times; it was "
			 "given up after %ld days.\nLast error: %s\n",
			 host, e->sender, rcpts, date, host, e->id, rcpts, created,
			 e->attempts, (long)(lifetime / 86400),
			 e->last_error ? e->last_error : "none");
	if (write_all(fd, text, strlen(text)) == 0 && lseek(fd, 0, SEEK_SET) == 0)
		rc = message_spool(fd, &opt, msg, err, errlen);
	free(text);
	close(fd);
out:
	free(rcpts);
	free(date);
	free(created);
	return rc;
}

/* "when possible, a notice to the sender": sent with the null sender
 * (RFC 5321 4.5.5) through the entry's account, never queued itself, and
 * never for a message that had the null sender (no bounce loops). */
static void notify_sender(const struct config *cfg, const struct queue_entry *e,
			  time_t lifetime)
{
	const struct account *a = config_find_account(cfg, e->account);
	char err[512], host[256] = "localhost";
	struct message msg = { .fd = -1 };
	struct delivery_result res;
	struct credentials creds;
	const char *const rcpt[] = { e->sender };
	if (!a || !e->sender[0])
		return;
	if (gethostname(host, sizeof host) != 0)
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	if (notice_text(e, a->maildomain ? a->maildomain : host, lifetime, &msg, err,
			sizeof err) < 0) {
		fprintf(stderr, "postbote: no notice for %s: %s\n", e->id, err);
		return;
	}
	credentials_init(&creds, a, -1, false);
	{
		struct delivery d = {
			.acct = a, .creds = &creds,
			.env = { .sender = "", .rcpts = rcpt, .nrcpts = 1,
				 .smtputf8 = address_is_8bit(e->sender) },
			.msg = &msg, .emit = { .dot_stuff = true },
		};
		d.env.size = message_emit_size(&msg, &d.emit);
		if (deliver(&d, &res) == 0)
			fprintf(stderr, "postbote: notice sent to %s\n", e->sender);
		else
			fprintf(stderr, "postbote: the notice to %s could not be sent "
				"either\n", e->sender);
		delivery_result_free(&res);
	}
	credentials_free(&creds);
	message_free(&msg);
}

static void expire(const struct config *cfg, const struct account *acct,
		   const char *dir)
{
	char err[1024];
	struct queue_entry *old = NULL;
	size_t n = 0;
	time_t lifetime = acct->queue_lifetime > 0 ? acct->queue_lifetime
						   : FLUSH_LIFETIME_DEFAULT;
	if (queue_expire(dir, time(NULL), lifetime, &old, &n, err, sizeof err) != 0)
		fprintf(stderr, "postbote: queue: %s\n", err);
	for (size_t i = 0; i < n; i++) {
		report_expired(acct, &old[i], lifetime, dir);
		notify_sender(cfg, &old[i], lifetime);
	}
	queue_entries_free(old, n);
}

/* One account's share of the queue over one connection. */
static void flush_account(const struct account *acct, struct queue_entry *e,
			  size_t n, smtp_trace_fn trace, void *trace_ctx,
			  bool verbose)
{
	struct delivery_item *items = xcalloc(n, sizeof *items);
	struct message *msgs = xcalloc(n, sizeof *msgs);
	struct credentials creds;
	struct flush_progress progress = { acct, e, 0, verbose };
	struct delivery d = { .acct = acct, .creds = &creds,
			      .trace = trace, .trace_ctx = trace_ctx,
			      .item_done = flush_item_done,
			      .item_ctx = &progress };
	credentials_init(&creds, acct, -1, true);
	n = flush_load(acct, e, n, items, msgs);
	if (n > 0)
		(void)deliver_batch(&d, items, n);
	flush_settle(acct, e, items, msgs, n, verbose);
	credentials_free(&creds);
	free(items);
	free(msgs);
}

int flush_run(const struct config *cfg, const struct account *acct,
	      smtp_trace_fn trace, void *trace_ctx, bool verbose)
{
	char err[1024];
	char *dir = flush_queue_dir(acct);
	struct queue_entry *all = NULL;
	size_t n = 0;
	if (!dir) {
		fprintf(stderr, "postbote: no queue directory (no home directory)\n");
		return EX_CANTCREAT;
	}
	if (queue_open(dir, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: queue %s: %s\n", dir, err);
		free(dir);
		return EX_TEMPFAIL;
	}
	expire(cfg, acct, dir);
	if (queue_claim(dir, time(NULL), true, &all, &n, err, sizeof err) > 0)
		fprintf(stderr, "postbote: queue: %s\n", err);
	if (verbose)
		fprintf(stderr, "postbote: %zu queued message%s to deliver\n", n,
			n == 1 ? "" : "s");
	/* Group by account: the claimed list is sorted by age, so pick each
	 * account's entries in turn, keeping their order. */
	for (size_t i = 0; i < n; i++) {
		const struct account *a;
		struct queue_entry *group;
		size_t k = 0;
		if (!all[i].id)
			continue;
		a = config_find_account(cfg, all[i].account);
		group = xcalloc(n - i, sizeof *group);
		for (size_t j = i; j < n; j++) {
			if (all[j].id && same_account(all[j].account, all[i].account)) {
				group[k++] = all[j];
				all[j].id = NULL;
			}
		}
		if (!a) {
			for (size_t j = 0; j < k; j++) {
				fprintf(stderr, "postbote: queue entry %s is for account "
					"\"%s\", which is no longer configured; kept\n",
					group[j].id, group[j].account);
				queue_release(&group[j]);
			}
			queue_entries_free(group, k);
			continue;
		}
		flush_account(a, group, k, trace, trace_ctx, verbose);
	}
	free(all);
	free(dir);
	return EX_OK;
}

static void print_entry(const struct queue_entry *e, time_t now)
{
	char *rcpts = rcpt_list(&e->rcpts);
	long age = (long)(now - e->created);
	printf("%s  %6jd  %3ldh%02ldm old  <%s>\n", e->id, (intmax_t)e->size,
	       age / 3600, (age % 3600) / 60, e->sender);
	printf("    to: %s\n", rcpts);
	printf("    attempts: %u, next attempt in %ld min%s%s\n", e->attempts,
	       (long)(e->next_attempt > now ? (e->next_attempt - now + 59) / 60 : 0),
	       e->last_error ? "\n    last error: " : "",
	       e->last_error ? e->last_error : "");
	free(rcpts);
}

int flush_list(const struct account *acct)
{
	char err[1024];
	char *dir = flush_queue_dir(acct);
	struct queue_entry *all = NULL;
	size_t n = 0;
	time_t now = time(NULL);
	if (!dir || queue_list(dir, &all, &n, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: cannot read the queue%s%s\n",
			dir ? ": " : " (no home directory)", dir ? err : "");
		free(dir);
		return EX_TEMPFAIL;
	}
	if (n == 0)
		printf("Mail queue is empty\n");
	for (size_t i = 0; i < n; i++)
		print_entry(&all[i], now);
	if (n > 0)
		printf("-- %zu message%s in %s\n", n, n == 1 ? "" : "s", dir);
	queue_entries_free(all, n);
	free(dir);
	return EX_OK;
}
