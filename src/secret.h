/* secret: where the password comes from. */
#ifndef POSTBOTE_SECRET_H
#define POSTBOTE_SECRET_H

#include <stddef.h>

#include "config.h"

/* The account's password: "password", else the first line printed by
 * "passwordeval" (run with /bin/sh -c). Returns a new string (wipe with
 * free_secret), or NULL: with err empty when none is configured, with err
 * set when the command failed. */
char *secret_password(const struct account *acct, char *err, size_t errlen);

/* Run a command and return the first line of its output without the line
 * end (the whole output is read so that the command never blocks on a full
 * pipe). NULL with err when it cannot run or exits non-zero. */
char *secret_run_command(const char *command, char *err, size_t errlen);

#endif
