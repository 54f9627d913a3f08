/* oauth2_authorize: --oauth2-authorize, the first authorisation of a user,
 * which ends with a refresh token in the token store.
 *
 * browser: the authorization code grant (RFC 6749 4.1) with PKCE S256
 *          (RFC 7636) and a loopback redirect URI (RFC 8252 7.3): a one-
 *          shot HTTP listener on 127.0.0.1 at a random port receives the
 *          code from the user's browser.
 * device:  the device authorization grant (RFC 8628): the user enters a
 *          code on any device while postbote polls the token endpoint.
 *
 * This is front-end code: it prints instructions on standard output and
 * errors on standard error, and returns a sysexits code. */
#include "autoconf.h"
#include "oauth2.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "oauth2_internal.h"
#include "util.h"

extern char **environ;

/* How long the browser flow waits for the redirect. */
#define CALLBACK_WAIT_SECONDS 300
/* An HTTP request head from a browser is a few hundred bytes. */
#define CALLBACK_HEAD_MAX 8192
/* Browsers open spare connections; each gets a slot until it sends a
 * request or stays silent for CLIENT_IDLE_MS. */
#define CALLBACK_CLIENTS 8
#define CLIENT_IDLE_MS 30000
/* RFC 8628 3.5: slow_down adds 5 seconds to the polling interval. */
#define SLOW_DOWN_STEP 5
#define POLL_INTERVAL_MIN 1
/* Device codes live 15 or 30 minutes; postbote waits at most an hour. */
#define DEVICE_WAIT_MAX 3600

static int exit_status(enum oauth2_status st)
{
	switch (st) {
	case OAUTH2_OK: return EX_OK;
	case OAUTH2_TEMPFAIL: return EX_TEMPFAIL;
	default: return EX_NOPERM;
	}
}

/* ---- the redirect request ---- */

static const char *head_end(const char *head, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (head[i] == '\n' && head[i + 1] == '\n')
			return head + i + 2;
		if (i + 3 < len && memcmp(head + i, "\r\n\r\n", 4) == 0)
			return head + i + 4;
	}
	return NULL;
}

static void take_parameter(struct oauth2_callback *cb, const char *name,
			   const char *pair, size_t len)
{
	const char *eq = memchr(pair, '=', len);
	size_t name_len = eq ? (size_t)(eq - pair) : len;
	char **slot = NULL;
	if (name_len != strlen(name) || memcmp(pair, name, name_len) != 0)
		return;
	if (strcmp(name, "code") == 0)
		slot = &cb->code;
	else if (strcmp(name, "state") == 0)
		slot = &cb->state;
	else if (strcmp(name, "error") == 0)
		slot = &cb->error;
	else
		slot = &cb->error_description;
	/* RFC 6749 3.1: a parameter appears at most once; the first counts. */
	if (!*slot)
		*slot = oauth2_form_decode(eq ? eq + 1 : pair + len,
					   eq ? len - name_len - 1 : 0);
}

static void parse_query(const char *query, size_t len,
			struct oauth2_callback *cb)
{
	static const char *const names[] = { "code", "state", "error",
					     "error_description" };
	while (len > 0) {
		const char *amp = memchr(query, '&', len);
		size_t n = amp ? (size_t)(amp - query) : len;
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			take_parameter(cb, names[i], query, n);
		query += n;
		len -= n;
		if (len > 0) {
			query++;
			len--;
		}
	}
}

enum oauth2_request_kind oauth2_parse_callback(const char *head, size_t len,
					       struct oauth2_callback *cb)
{
	const char *end = head_end(head, len), *target, *space, *query;
	memset(cb, 0, sizeof *cb);
	if (!end)
		return OAUTH2_REQUEST_INCOMPLETE;
	/* request-line = method SP request-target SP HTTP-version (RFC 9112 3) */
	if (len < 5 || memcmp(head, "GET /", 5) != 0)
		return OAUTH2_REQUEST_OTHER;
	target = head + 4;
	space = memchr(target, ' ', (size_t)(end - target));
	if (!space || (size_t)(end - space) < 6 || memcmp(space, " HTTP/", 6) != 0)
		return OAUTH2_REQUEST_OTHER;
	if (space - target < 2 || target[1] != '?')
		return OAUTH2_REQUEST_OTHER;   /* the redirect URI's path is "/" */
	query = target + 2;
	parse_query(query, (size_t)(space - query), cb);
	if (!cb->code && !cb->error) {
		oauth2_callback_free(cb);
		return OAUTH2_REQUEST_OTHER;
	}
	return OAUTH2_REQUEST_CALLBACK;
}

void oauth2_callback_free(struct oauth2_callback *cb)
{
	free_secret(cb->code);
	free(cb->state);
	free(cb->error);
	free(cb->error_description);
	memset(cb, 0, sizeof *cb);
}

/* ---- the loopback listener ---- */

struct client {
	int fd;                 /* -1: free slot */
	size_t len;
	int64_t since;
	char head[CALLBACK_HEAD_MAX];
};

static int listen_loopback(unsigned *port, char *err, size_t errlen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Port 0: the kernel picks a free one (RFC 8252 7.3 lets the
	 * client choose the port at the time of the request). */
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(fd, CALLBACK_CLIENTS) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) < 0) {
		format_into(err, errlen, "cannot listen on 127.0.0.1 for the "
			    "browser's redirect: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

static void answer(int fd, int code, const char *reason, const char *text)
{
	char *page = xasprintf("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			       "<title>postbote</title></head>\n<body><p>%s</p>"
			       "</body></html>\n", text);
	char *reply = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: text/html; "
				"charset=utf-8\r\nContent-Length: %zu\r\n"
				"Cache-Control: no-store\r\nConnection: close\r\n"
				"\r\n%s", code, reason, strlen(page), page);
	/* One small write; a browser that went away must not kill us with
	 * SIGPIPE. */
	(void)!send(fd, reply, strlen(reply), MSG_NOSIGNAL);
	free(reply);
	free(page);
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	explicit_bzero(c->head, c->len);
	c->fd = -1;
	c->len = 0;
}

static void accept_client(int lfd, struct client *clients)
{
	struct client *slot = NULL;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (size_t i = 0; i < CALLBACK_CLIENTS; i++)
		if (!slot || clients[i].fd < 0 || (slot->fd >= 0 &&
		    clients[i].since < slot->since))
			slot = &clients[i];
	client_close(slot);     /* the oldest, when all are taken */
	slot->fd = fd;
	slot->since = monotonic_ms();
}

/* What the redirect brought: OK with cb->code, or FAIL with err. */
static enum oauth2_status judge_callback(int fd, const struct oauth2_callback *cb,
					 const char *state, char *err,
					 size_t errlen)
{
	char code[OAUTH2_ERROR_CODE_MAX], text[300] = "";
	if (!cb->state || strcmp(cb->state, state) != 0) {
		answer(fd, 400, "Bad Request", "postbote: this answer does not "
		       "belong to the authorisation postbote asked for.");
		format_into(err, errlen, "the browser came back with a state that "
			    "postbote did not send (an answer to another request?); "
			    "run postbote --oauth2-authorize again");
		return OAUTH2_FAIL;
	}
	if (cb->error) {
		answer(fd, 200, "OK", "postbote: the authorisation failed; see "
		       "the terminal for the reason.");
		make_visible(code, sizeof code, cb->error, strlen(cb->error));
		if (cb->error_description)
			make_visible(text, sizeof text, cb->error_description,
				     strlen(cb->error_description));
		format_into(err, errlen, "the authorization server answered %s%s%s%s",
			    code, *text ? " (" : "", text, *text ? ")" : "");
		return OAUTH2_FAIL;
	}
	answer(fd, 200, "OK", "postbote has the authorisation and is finishing "
	       "up. You can close this page.");
	return OAUTH2_OK;
}

/* Read from a client; 1 when its request was the redirect (cb filled
 * in, *st the verdict), 0 otherwise. */
static int client_read(struct client *c, const char *state,
		       struct oauth2_callback *cb, enum oauth2_status *st,
		       char *err, size_t errlen)
{
	enum oauth2_request_kind kind;
	ssize_t n = read(c->fd, c->head + c->len, sizeof c->head - c->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		client_close(c);
		return 0;
	}
	c->len += (size_t)n;
	kind = oauth2_parse_callback(c->head, c->len, cb);
	if (kind == OAUTH2_REQUEST_INCOMPLETE && c->len < sizeof c->head)
		return 0;
	if (kind != OAUTH2_REQUEST_CALLBACK) {
		answer(c->fd, 404, "Not Found", "postbote: nothing here.");
		client_close(c);
		return 0;
	}
	*st = judge_callback(c->fd, cb, state, err, errlen);
	client_close(c);
	return 1;
}

static size_t poll_set(int lfd, struct client *clients, struct pollfd *fds,
		       struct client **owners)
{
	size_t n = 1;
	int64_t now = monotonic_ms();
	fds[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	for (size_t i = 0; i < CALLBACK_CLIENTS; i++) {
		if (clients[i].fd >= 0 && now - clients[i].since > CLIENT_IDLE_MS)
			client_close(&clients[i]);
		if (clients[i].fd < 0)
			continue;
		fds[n] = (struct pollfd){ .fd = clients[i].fd, .events = POLLIN };
		owners[n++] = &clients[i];
	}
	return n;
}

static enum oauth2_status wait_for_redirect(int lfd, const char *state,
					    struct oauth2_callback *cb,
					    char *err, size_t errlen)
{
	struct client *clients = xcalloc(CALLBACK_CLIENTS, sizeof *clients);
	struct pollfd fds[CALLBACK_CLIENTS + 1];
	struct client *owners[CALLBACK_CLIENTS + 1];
	int64_t deadline = deadline_after(CALLBACK_WAIT_SECONDS * 1000);
	enum oauth2_status st = OAUTH2_TEMPFAIL;
	int done = 0;
	for (size_t i = 0; i < CALLBACK_CLIENTS; i++)
		clients[i].fd = -1;
	format_into(err, errlen, "no answer from the browser within %d minutes",
		    CALLBACK_WAIT_SECONDS / 60);
	while (!done && deadline_left(deadline) > 0) {
		size_t n = poll_set(lfd, clients, fds, owners);
		int ready = poll(fds, n, deadline_left(deadline));
		if (ready < 0 && errno != EINTR) {
			format_into(err, errlen, "poll: %s", strerror(errno));
			break;
		}
		for (size_t i = 1; ready > 0 && i < n && !done; i++)
			if (fds[i].revents)
				done = client_read(owners[i], state, cb, &st, err,
						   errlen);
		if (ready > 0 && (fds[0].revents & POLLIN))
			accept_client(lfd, clients);
	}
	for (size_t i = 0; i < CALLBACK_CLIENTS; i++)
		client_close(&clients[i]);
	free(clients);
	return st;
}

/* ---- the browser flow ---- */

static char *authorization_url(const struct account *a,
			       const struct oauth2_endpoints *e,
			       const char *redirect, const char *challenge,
			       const char *state)
{
	const struct oauth2_field fields[] = {
		{ "response_type", "code" },
		{ "client_id", a->oauth2_client_id },
		{ "redirect_uri", redirect },
		{ "scope", e->scope },
		{ "state", state },
		{ "code_challenge", challenge },
		{ "code_challenge_method", "S256" },
		/* a hint for the account chooser; servers that do not know
		 * it ignore it (RFC 6749 3.1) */
		{ "login_hint", a->user },
	};
	char *query = oauth2_form_encode(fields, sizeof fields / sizeof fields[0]);
	char *url = xasprintf("%s%c%s%s%s", e->auth_url,
			      strchr(e->auth_url, '?') ? '&' : '?', query,
			      e->auth_extra ? "&" : "",
			      e->auth_extra ? e->auth_extra : "");
	free(query);
	return url;
}

/* Offer to open the page when someone is at a graphical session. */
static void open_browser(const char *url)
{
	const char *x = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");
	posix_spawn_file_actions_t fa;
	char *argv[] = { "xdg-open", (char *)url, NULL };
	pid_t pid;
	if ((!x || !*x) && (!w || !*w))
		return;
	if (!isatty(STDOUT_FILENO))
		return;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	/* Not waited for: some browsers keep xdg-open running. */
	(void)posix_spawnp(&pid, "xdg-open", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
}

static enum oauth2_status exchange_code(const struct account *a,
					const struct oauth2_endpoints *e,
					const char *code, const char *redirect,
					const char *verifier,
					struct oauth2_token_reply *r, char *err,
					size_t errlen)
{
	char *secret = NULL, *form;
	enum oauth2_status st;
	if (oauth2_client_secret(a, &secret, err, errlen) < 0)
		return OAUTH2_FAIL;
	{
		const struct oauth2_field fields[] = {
			{ "grant_type", "authorization_code" },
			{ "code", code },
			{ "redirect_uri", redirect },
			{ "client_id", a->oauth2_client_id },
			{ "code_verifier", verifier },
			{ "client_secret", secret },
		};
		const char *secrets[] = { code, verifier, secret, NULL };
		form = oauth2_form_encode(fields, sizeof fields / sizeof fields[0]);
		st = oauth2_token_request(a, e->token_url, form, secrets, r, err,
					  errlen);
	}
	free_secret(form);
	free_secret(secret);
	return st;
}

static enum oauth2_status browser_flow(const struct account *a,
				       const struct oauth2_endpoints *e,
				       struct oauth2_token_reply *r, char *err,
				       size_t errlen)
{
	char verifier[OAUTH2_CHALLENGE_LEN + 1], challenge[OAUTH2_CHALLENGE_LEN + 1];
	char state[OAUTH2_CHALLENGE_LEN + 1];
	struct oauth2_callback cb = { 0 };
	enum oauth2_status st;
	char *redirect, *url;
	unsigned port;
	int lfd = listen_loopback(&port, err, errlen);
	if (lfd < 0)
		return OAUTH2_FAIL;
	oauth2_random_string(verifier);
	oauth2_random_string(state);
	oauth2_pkce_challenge(verifier, challenge);
	redirect = xasprintf("http://127.0.0.1:%u/", port);
	url = authorization_url(a, e, redirect, challenge, state);
	printf("To authorise postbote for account %s, open this address in a "
	       "web browser on this computer:\n\n  %s\n\nWaiting up to %d minutes "
	       "for the browser to come back to %s ...\n", a->name, url,
	       CALLBACK_WAIT_SECONDS / 60, redirect);
	fflush(stdout);
	open_browser(url);
	st = wait_for_redirect(lfd, state, &cb, err, errlen);
	close(lfd);
	if (st == OAUTH2_OK)
		st = exchange_code(a, e, cb.code, redirect, verifier, r, err,
				   errlen);
	oauth2_callback_free(&cb);
	explicit_bzero(verifier, sizeof verifier);
	free(redirect);
	free(url);
	return st;
}

/* ---- the device flow ---- */

static void sleep_seconds(long seconds)
{
	struct timespec ts = { .tv_sec = seconds };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void show_device_code(const struct account *a,
			     const struct oauth2_device_reply *d)
{
	char uri[512], code[128], complete[1024];
	make_visible(uri, sizeof uri, d->verification_uri,
		     strlen(d->verification_uri));
	make_visible(code, sizeof code, d->user_code, strlen(d->user_code));
	printf("To authorise postbote for account %s, open\n\n  %s\n\nin a web "
	       "browser on any device and enter the code\n\n  %s\n\n", a->name,
	       uri, code);
	if (d->verification_uri_complete) {
		make_visible(complete, sizeof complete,
			     d->verification_uri_complete,
			     strlen(d->verification_uri_complete));
		printf("(or open %s, which carries the code)\n\n", complete);
	}
	printf("Waiting up to %ld minutes for the authorisation ...\n",
	       (d->expires_in + 59) / 60);
	fflush(stdout);
}

static enum oauth2_status device_start(const struct account *a,
				       const struct oauth2_endpoints *e,
				       struct oauth2_device_reply *d, char *err,
				       size_t errlen)
{
	const struct oauth2_field fields[] = {
		{ "client_id", a->oauth2_client_id },
		{ "scope", e->scope },
	};
	struct oauth2_http_reply reply;
	char where[256], endpoint[300];
	char *form = oauth2_form_encode(fields, 2);
	enum oauth2_status st = oauth2_http_post(a, e->device_url,
						 "device authorization endpoint",
						 form, &reply, err, errlen);
	free(form);
	if (st != OAUTH2_OK)
		return st;
	oauth2_url_display(e->device_url, where, sizeof where);
	format_into(endpoint, sizeof endpoint, "device authorization endpoint %s",
		    where);
	st = oauth2_parse_device_reply(reply.status, reply.body, reply.len,
				       endpoint, d, err, errlen);
	oauth2_http_reply_free(&reply);
	return st;
}

/* One poll of the token endpoint (RFC 8628 3.4). */
static enum oauth2_status device_poll(const struct account *a,
				      const struct oauth2_endpoints *e,
				      const char *device_code, const char *secret,
				      struct oauth2_token_reply *r, char *err,
				      size_t errlen)
{
	const struct oauth2_field fields[] = {
		{ "grant_type", "urn:ietf:params:oauth:grant-type:device_code" },
		{ "device_code", device_code },
		{ "client_id", a->oauth2_client_id },
		{ "client_secret", secret },
	};
	const char *secrets[] = { device_code, secret, NULL };
	char *form = oauth2_form_encode(fields, 4);
	enum oauth2_status st = oauth2_token_request(a, e->token_url, form,
						     secrets, r, err, errlen);
	free_secret(form);
	return st;
}

static enum oauth2_status device_wait(const struct account *a,
				      const struct oauth2_endpoints *e,
				      const struct oauth2_device_reply *d,
				      const char *secret,
				      struct oauth2_token_reply *r, char *err,
				      size_t errlen)
{
	long wait = d->expires_in < DEVICE_WAIT_MAX ? d->expires_in :
						      DEVICE_WAIT_MAX;
	int64_t deadline = deadline_after((int)(wait * 1000));
	long interval = d->interval < POLL_INTERVAL_MIN ? POLL_INTERVAL_MIN :
							 d->interval;
	for (;;) {
		enum oauth2_status st;
		if (deadline_left(deadline) < interval * 1000) {
			format_into(err, errlen, "the code expired before the "
				    "authorisation was given; run postbote "
				    "--oauth2-authorize again");
			return OAUTH2_TEMPFAIL;
		}
		sleep_seconds(interval);
		st = device_poll(a, e, d->device_code, secret, r, err, errlen);
		if (strcmp(r->error, "access_denied") == 0)
			oauth2_append(err, errlen, "; the authorisation was "
				      "declined");
		else if (strcmp(r->error, "expired_token") == 0)
			oauth2_append(err, errlen, "; the code expired: run "
				      "postbote --oauth2-authorize again");
		if (st == OAUTH2_OK || (strcmp(r->error, "authorization_pending") &&
					strcmp(r->error, "slow_down")))
			return st;
		if (strcmp(r->error, "slow_down") == 0)
			interval += SLOW_DOWN_STEP;
		oauth2_token_reply_free(r);
	}
}

static enum oauth2_status device_flow(const struct account *a,
				      const struct oauth2_endpoints *e,
				      struct oauth2_token_reply *r, char *err,
				      size_t errlen)
{
	struct oauth2_device_reply d;
	char *secret = NULL;
	enum oauth2_status st;
	if (oauth2_client_secret(a, &secret, err, errlen) < 0)
		return OAUTH2_FAIL;
	st = device_start(a, e, &d, err, errlen);
	if (st == OAUTH2_OK) {
		show_device_code(a, &d);
		st = device_wait(a, e, &d, secret, r, err, errlen);
		oauth2_device_reply_free(&d);
	}
	free_secret(secret);
	return st;
}

/* ---- the whole ---- */

/* AUTO: the browser flow when a graphical session suggests a browser on
 * this machine (its redirect comes to 127.0.0.1 here), else the device
 * flow, which works from any terminal, e.g. over ssh; whichever the
 * endpoints allow, and the browser for a provider whose device flow
 * cannot give what SMTP needs. */
static int choose_flow(const struct account *a, const struct oauth2_endpoints *e,
		       enum oauth2_flow *flow)
{
	const char *x = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");
	bool graphical = (x && *x) || (w && *w);
	if (*flow == OAUTH2_FLOW_AUTO)
		*flow = e->auth_url && (graphical || !e->device_url ||
					e->browser_first) ?
			OAUTH2_FLOW_BROWSER : OAUTH2_FLOW_DEVICE;
	if (*flow == OAUTH2_FLOW_BROWSER && !e->auth_url) {
		fprintf(stderr, "postbote: account %s: the browser flow needs "
			"oauth2_auth_url (or oauth2_provider google or "
			"microsoft)\n", a->name);
		return -1;
	}
	if (*flow == OAUTH2_FLOW_DEVICE && !e->device_url) {
		fprintf(stderr, "postbote: account %s: the device flow needs "
			"oauth2_device_url (or oauth2_provider google or "
			"microsoft)\n", a->name);
		return -1;
	}
	return 0;
}

static int save_tokens(int fd, struct oauth2_token_reply *r, char *err,
		       size_t errlen)
{
	struct oauth2_store_data d = { 0 };
	int rc;
	/* Whatever the store held (even something unreadable) is replaced. */
	if (oauth2_store_lock(fd, err, errlen) < 0)
		return -1;
	d.access_token = r->access_token;
	d.expires_at = (long long)time(NULL) + r->expires_in;
	d.refresh_token = r->refresh_token;
	rc = oauth2_store_write(fd, &d, err, errlen);
	oauth2_store_unlock(fd);
	return rc;
}

static void report_success(const struct account *a, int fd)
{
	char path[512];
	oauth2_store_path(fd, path, sizeof path);
	printf("Account %s is authorised; its refresh token is stored in\n  %s\n",
	       a->name, path);
	if (a->oauth2_refresh_token || a->oauth2_refresh_token_eval)
		printf("Note: the account's oauth2_refresh_token%s setting takes "
		       "precedence over the stored token; remove it from the "
		       "configuration to use the new one.\n",
		       a->oauth2_refresh_token ? "" : "_eval");
	else
		printf("No change to the configuration is needed: postbote finds "
		       "the stored token by itself.\n");
}

int oauth2_authorize(const struct account *a, int store_fd,
		     enum oauth2_flow flow)
{
	struct oauth2_endpoints e;
	struct oauth2_token_reply r = { 0 };
	char err[1024];
	enum oauth2_status st;
	int status = EX_OK;
	oauth2_resolve(a, &e);
	if (oauth2_check_account(a, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: account %s: %s\n", a->name, err);
		return EX_CONFIG;
	}
	if (store_fd < 0) {
		fprintf(stderr, "postbote: account %s: no token store to keep the "
			"authorisation in\n", a->name);
		return EX_CANTCREAT;
	}
	if (choose_flow(a, &e, &flow) < 0)
		return EX_CONFIG;
	/* before the user is sent to a browser for nothing */
	if (oauth2_http_start(err, sizeof err) < 0) {
		fprintf(stderr, "postbote: account %s: %s\n", a->name, err);
		return exit_status(OAUTH2_FAIL);
	}
	st = flow == OAUTH2_FLOW_BROWSER ? browser_flow(a, &e, &r, err, sizeof err)
					 : device_flow(a, &e, &r, err, sizeof err);
	if (st != OAUTH2_OK) {
		fprintf(stderr, "postbote: account %s: %s\n", a->name, err);
		status = exit_status(st);
	} else if (!r.refresh_token) {
		fprintf(stderr, "postbote: account %s: the token endpoint sent no "
			"refresh token, so the authorisation cannot be kept\n",
			a->name);
		status = EX_PROTOCOL;
	} else if (save_tokens(store_fd, &r, err, sizeof err) < 0) {
		fprintf(stderr, "postbote: account %s: %s\n", a->name, err);
		status = EX_CANTCREAT;
	} else {
		report_success(a, store_fd);
	}
	oauth2_token_reply_free(&r);
	return status;
}
