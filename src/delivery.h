/* delivery: one submission session from connect to QUIT, for one message:
 * net -> tls -> smtp -> sasl -> transaction. Returns a result; never
 * prints and never exits. */
#ifndef POSTBOTE_DELIVERY_H
#define POSTBOTE_DELIVERY_H

#include "config.h"
#include "message.h"
#include "secret.h"
#include "smtp.h"
#include "status.h"

struct delivery_item;
/* Called by deliver_batch right after each item's transaction, so that
 * the caller can record the result at once (a crash later must not make
 * a delivered queue entry look undelivered). */
typedef void (*delivery_item_done_fn)(void *ctx, struct delivery_item *items,
				      size_t index);

struct delivery {
	const struct account *acct;
	struct credentials *creds;    /* fetched when AUTH needs them */
	struct smtp_envelope env;
	const struct message *msg;
	struct emit_options emit;
	bool verify_only;             /* -bv: MAIL/RCPT/RSET, no message */
	delivery_item_done_fn item_done; /* or NULL */
	void *item_ctx;
	smtp_trace_fn trace;
	void *trace_ctx;
};

struct delivery_result {
	struct outcome outcome;       /* FAIL_NONE when the server took it */
	struct smtp_transaction_result tx;
};

/* One message of a batch sent over one connection. */
struct delivery_item {
	struct smtp_envelope env;
	const struct message *msg;
	struct emit_options emit;
	struct delivery_result res;
	bool attempted;               /* its transaction was started */
	bool settled;                 /* the caller is done with it */
};


/* The port used when the account names none. */
int delivery_port(const struct account *acct);

/* Returns 0 when the message was accepted for at least one recipient
 * (res->tx tells which were refused), -1 otherwise (res->outcome).
 * Recipients refused with "too many recipients" (452 / 4.5.3) get the
 * message in further transactions on the same connection (RFC 5321
 * 4.5.3.1.10). With verify_only, res->tx holds each recipient's answer. */
int deliver(const struct delivery *d, struct delivery_result *res);
/* Every item over one connection (RSET between them where needed): what
 * -q and the opportunistic flush use. An item not reached because the
 * connection failed gets that failure as its outcome, with attempted
 * false (it was never offered to the server). Returns as deliver() does
 * for the first item. d->env, d->msg and d->emit are not used. */
int deliver_batch(const struct delivery *d, struct delivery_item *items,
		  size_t n);
void delivery_result_free(struct delivery_result *res);

/* What --serverinfo shows: everything the server offers, sending nothing
 * (no AUTH, no MAIL). Fields are NULL when that step was not reached. */
struct serverinfo {
	int port;
	char *greeting;
	char *ehlo_plain;     /* EHLO reply before STARTTLS (or the only one) */
	char *ehlo_tls;       /* EHLO reply under TLS */
	char *tls_report;     /* tls_peer_report() */
	struct outcome outcome; /* why it stopped early, or FAIL_NONE */
};

int delivery_serverinfo(const struct delivery *d, struct serverinfo *si);
void serverinfo_free(struct serverinfo *si);

#endif
