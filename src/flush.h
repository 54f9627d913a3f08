/* flush: the front end's use of the queue (part of the front end with
 * main.c: it prints notices and reports). Keeping a message that failed
 * temporarily, delivering due entries (-q, and after every send on the
 * same connection), listing them (-bp / mailq). */
#ifndef POSTBOTE_FLUSH_H
#define POSTBOTE_FLUSH_H

#include <stdbool.h>

#include "config.h"
#include "delivery.h"
#include "queue.h"

/* Default lifetime of a queue entry (queue_lifetime). */
#define FLUSH_LIFETIME_DEFAULT (5 * 24 * 60 * 60)

/* The queue directory for an account: queue_dir, else the default. NULL
 * when there is none (no home directory). */
char *flush_queue_dir(const struct account *acct);

/* After a send: keep the recipients that were refused only for now (or
 * all, after a temporary failure of the whole submission) in the queue,
 * and print a one-line notice. Returns true when something was kept;
 * then *status is the exit status that remains (0, or a permanent
 * refusal's) and id (size QUEUE_ID_MAX) holds the queue id. */
bool flush_keep(const struct account *acct, const struct delivery_item *it,
		const struct queue_entry *meta, int *status, char *id);

/* Claim the due entries of acct's queue for the same account (all of
 * them with force) as batch items appended after `first` items; *claimed
 * and *n say what was added. */
void flush_claim(const struct account *acct, bool force,
		 struct queue_entry **claimed, size_t *n);

/* Settle the claimed entries after their batch: remove delivered ones,
 * defer the temporarily refused, report permanent refusals. Frees them.
 * verbose: say what happened to each. */
void flush_settle(const struct account *acct, struct queue_entry *claimed,
		  struct delivery_item *items, struct message *msgs, size_t n,
		  bool verbose);

/* For struct delivery's item_done: settle claimed[index - offset] as soon
 * as its transaction ended. */
struct flush_progress {
	const struct account *acct;
	struct queue_entry *claimed;
	size_t offset;             /* batch items before the first entry */
	bool verbose;
};
void flush_item_done(void *ctx, struct delivery_item *items, size_t index);

/* Load claimed entries into batch items (messages into msgs). Entries that
 * cannot be loaded are reported, released and dropped from the list. */
size_t flush_load(const struct account *acct, struct queue_entry *claimed,
		  size_t n, struct delivery_item *items, struct message *msgs);

/* -q: expire old entries, then deliver every entry (one connection per
 * account). Returns an exit status (0 unless the queue is unusable). */
int flush_run(const struct config *cfg, const struct account *acct,
	      smtp_trace_fn trace, void *trace_ctx, bool verbose);

/* -bp: print the queue. */
int flush_list(const struct account *acct);

#endif
