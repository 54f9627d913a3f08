/* aliases: the aliases file of msmtp (config keyword "aliases", often
 * /etc/aliases), which maps bare local recipient names such as "root" to
 * real addresses before they are qualified with the local domain.
 *
 * Format, one entry per line:
 *     name: address[, address...]
 * '#' outside a quoted string starts a comment that runs to the end of the
 * line; blank lines are ignored; a line that starts with white space
 * continues the entry above it with more addresses. Names are matched
 * ASCII case-insensitively. The name "default" catches every local name
 * that has no entry of its own. Expansion is one step only, as in msmtp:
 * an address that is itself a local name is not looked up again. */
#ifndef POSTBOTE_ALIASES_H
#define POSTBOTE_ALIASES_H

#include <stddef.h>

#include "util.h"

struct aliases;

/* Reads the file at path. Returns 0 with *out set (free it with
 * aliases_free), or -1 with *out NULL and a message in err:
 * "PATH: reason" when the file cannot be read (strerror), "PATH:LINE:
 * reason" for a line that is wrong. */
int aliases_load(const char *path, struct aliases **out, char *err,
		 size_t errlen);

void aliases_free(struct aliases *a);

/* Expands local_name, a recipient without '@', through its entry or else
 * the "default" entry: appends that entry's addresses to out with
 * strlist_add_unique. Returns how many addresses the name stands for,
 * counting ones out held already (so a name that several aliases share
 * is still known to be expanded), or 0 when no entry applies: no entry,
 * no "default", or local_name has an '@' (never looked up); the caller
 * then keeps local_name. a may be NULL (no aliases file). */
int aliases_expand(const struct aliases *a, const char *local_name,
		   struct strlist *out);

#endif
