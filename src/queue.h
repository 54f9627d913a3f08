/* queue: messages kept for a later attempt, without a daemon.
 *
 * When a submission fails temporarily, the message (in the form it is to
 * be transmitted) and its envelope are stored in a queue directory;
 * `postbote -q` delivers the entries that are due, `postbote -bp` lists
 * them. Any number of postbote processes may work on one queue at once.
 *
 * On disk, for an entry ID in DIR:
 *   DIR/ID.msg      the message exactly as transmitted, without
 *                   dot-stuffing (written once, never changed)
 *   DIR/ID.env      the envelope, a small text file (format below); its
 *                   presence is what makes the entry exist
 *   DIR/tmp/        files being written; never read as entries
 *   DIR/failed/     expired entries, both files, same names
 *
 * Every change is a write to a new file under DIR/tmp/, fsync, then
 * rename(2) into place, so a crash (even kill -9) leaves either the old or
 * the new state, never half a file. Adding renames the message first and
 * the envelope last (the commit point); removing unlinks the envelope
 * first. A message file without an envelope is thus never an entry: it is
 * left by a crash between those steps and queue_open deletes it once it is
 * older than QUEUE_STALE_AGE (or moves it to failed/ when its envelope is
 * there: an interrupted queue_expire).
 *
 * An entry is claimed with flock(LOCK_EX | LOCK_NB) on its envelope file,
 * so of several processes (or several claims in one process) exactly one
 * gets it; the lock goes away with the process, so a crash never leaves an
 * entry stuck. flock needs a local file system (not NFS).
 *
 * Delivery is at least once: a crash after the server accepted a message
 * but before queue_remove delivers it again on the next run.
 *
 * Envelope file format (UTF-8 text, LF line ends, parsed strictly):
 *   postbote-queue 1                  first line: format and version
 *   id 20261122T050810.123456Z-4242-0123456789abcdef
 *   created 1795323010                seconds since the epoch
 *   next-attempt 1795323310
 *   attempts 1
 *   size 1234                         bytes of ID.msg
 *   account work                      only when not NULL
 *   sender alice@example.org          may be empty (null reverse-path)
 *   body-8bit yes                     yes or no
 *   smtputf8 no                       yes or no
 *   dsn-notify SUCCESS,FAILURE        dsn-* only when not NULL
 *   dsn-ret HDRS
 *   dsn-envid QQ314159
 *   last-error 421 4.7.0 try later    only when not NULL
 *   rcpt bob@example.net              one line per recipient, at least one
 *   end                               last line
 * A line is a key, one space and the value (the rest of the line). No
 * value may hold a control character (so no CR or LF): queue_add refuses
 * such values, except last_error, which is made one line. A file that
 * breaks any of this (unknown or repeated key, missing field, bad number,
 * no "end", an id that is not its file name, ...) is corrupt: it is never
 * used, and every function that meets it reports it.
 *
 * Results: functions that look at many entries (queue_open, queue_list,
 * queue_claim, queue_expire) return -1 when the queue cannot be used at
 * all (err says why, no entries are returned), else the number of entry
 * files they had to skip or could not clean up; when that is not 0, err
 * lists them ("DIR/ID.env: line 3: unknown key \"foo\"; ..."). The other
 * functions return 0 or -1 with err filled in. Nothing here prints or
 * exits. */
#ifndef POSTBOTE_QUEUE_H
#define POSTBOTE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "message.h"
#include "util.h"

/* Back-off after n failed attempts: 5 min after the first, doubling each
 * time (10, 20, 40, 80, 160 min), at most 4 hours. Short enough to ride
 * out a server restart, long enough not to hammer a server that is down,
 * and the 4 h cap keeps the last tries of a long outage a few hours apart
 * at most. */
#define QUEUE_BACKOFF_FIRST (5 * 60)
#define QUEUE_BACKOFF_MAX (4 * 60 * 60)
/* A file in DIR/tmp/ or a message file without envelope younger than this
 * may belong to a queue_add still running; older ones are a crash's
 * leftovers. */
#define QUEUE_STALE_AGE (60 * 60)
/* A few lines per recipient: larger envelope files are not read (nor
 * written) rather than read into memory whatever their size. */
#define QUEUE_ENVELOPE_MAX (4 * 1024 * 1024)
/* last_error is cut to this many bytes: one line for mailq, not a log. */
#define QUEUE_ERROR_MAX 1000
/* Our ids are about 45 characters; file names of other lengths or with
 * other characters than [0-9A-Za-z.-] are not entries. */
#define QUEUE_ID_MAX 64

/* Every string is owned by the entry (malloc'd) and freed by
 * queue_entry_free. */
struct queue_entry {
	char *id;             /* unique, sorts by creation: "20261122T050810
			       * .123456Z-<pid>-<64 random bits in hex>" */
	char *account;        /* account the message was for, NULL: default */
	char *sender;         /* "" is the null reverse-path */
	struct strlist rcpts; /* the recipients still to deliver */
	char *dsn_notify, *dsn_ret, *dsn_envid; /* RFC 3461, may be NULL */
	bool body_8bit, smtputf8;
	time_t created, next_attempt;
	unsigned attempts;    /* failed attempts so far */
	char *last_error;     /* one line, no control characters, or NULL */
	off_t size;           /* bytes of the stored message */
	int lock_fd;          /* >= 0 while claimed by this process */
};

/* The default queue directory, a new string: /var/spool/postbote/queue
 * for root (euid 0), else $XDG_STATE_HOME/postbote/queue (when set to an
 * absolute path, as the XDG base directory spec asks), else
 * $HOME/.local/state/postbote/queue (the home directory from the password
 * database when HOME is unset). NULL when there is no home directory. */
char *queue_default_dir(void);
/* The same for a given effective uid (queue_default_dir passes geteuid();
 * tests use it for the branch they do not run as). */
char *queue_default_dir_for(uid_t euid);

/* Creates dir (and missing parents), dir/tmp and dir/failed, mode 0700,
 * and refuses a queue directory not owned by the effective user or
 * writable by others (whoever can write there could make us send mail as
 * this user). Then removes leftovers of crashes (see above). */
int queue_open(const char *dir, char *err, size_t errlen);

/* Seconds to wait after `attempts` failed attempts (0 counts as 1). */
time_t queue_backoff(unsigned attempts);

/* Stores a new entry. The caller fills in account, sender, rcpts, dsn_*,
 * body_8bit, smtputf8, attempts (1 for the submission that just failed)
 * and last_error; queue_add sets id, created, next_attempt (created +
 * queue_backoff(attempts)), size and lock_fd (-1), and replaces last_error
 * with its one-line form. The message is written with message_emit(msg,
 * emit) without dot-stuffing (whatever emit says), so every retry sends
 * exactly these bytes: same added headers, same Message-ID, Bcc removed.
 * A value with a control character, no recipient or a NULL sender is
 * refused before anything is written. */
int queue_add(const char *dir, struct queue_entry *e,
	      const struct message *msg, const struct emit_options *emit,
	      char *err, size_t errlen);

/* Every entry, oldest first, without claiming any (for -bp/mailq). A
 * queue directory that does not exist is an empty queue (so that mailq
 * need not create it). */
int queue_list(const char *dir, struct queue_entry **entries, size_t *n,
	       char *err, size_t errlen);

/* Claims every entry due at now (next_attempt <= now), or every entry
 * when force, oldest first. Call queue_open first: it checks who may
 * write to the directory and cleans up. Entries claimed elsewhere
 * (another process or another claim of this one) are left out without a
 * word. Each returned entry holds its lock until queue_remove,
 * queue_release or queue_entries_free. When the process runs out of file descriptors, the
 * entries claimed so far are returned and err says so. */
int queue_claim(const char *dir, time_t now, bool force,
		struct queue_entry **entries, size_t *n,
		char *err, size_t errlen);

/* The stored message of an entry as a struct message (its own unlinked
 * copy under dir/tmp, header block parsed) for smtp_send_mail; send it
 * with an emit_options of just { .dot_stuff = true }: nothing to add or
 * remove any more. */
int queue_load_message(const char *dir, const struct queue_entry *e,
		       struct message *msg, char *err, size_t errlen);

/* Delivered to every recipient: removes a claimed entry (the envelope
 * first, so that it can never be delivered again) and releases it. */
int queue_remove(const char *dir, struct queue_entry *e,
		 char *err, size_t errlen);

/* Not delivered to all: e->rcpts must hold the recipients still to
 * deliver (at least one). Rewrites the claimed entry's envelope with them,
 * attempts + 1, error as last_error (made one line) and next_attempt =
 * now + queue_backoff(attempts + 1), and updates e. The entry stays
 * claimed: the new envelope file is locked before it replaces the old
 * one. On failure e and the stored entry are unchanged, except when only
 * the final sync of the directory fails: then the new envelope is in
 * place (e describes it) but may not survive a power failure. */
int queue_defer(const char *dir, struct queue_entry *e, const char *error,
		time_t now, char *err, size_t errlen);

/* Moves every entry created at least lifetime seconds before now (and not
 * claimed elsewhere) into dir/failed/ and returns those entries, not
 * claimed, for the caller to report. */
int queue_expire(const char *dir, time_t now, time_t lifetime,
		 struct queue_entry **expired, size_t *n,
		 char *err, size_t errlen);

/* Unclaims an entry and keeps it in the queue. */
void queue_release(struct queue_entry *e);
/* Releases the entry and frees its strings. */
void queue_entry_free(struct queue_entry *e);
/* queue_entry_free on each, then the array. */
void queue_entries_free(struct queue_entry *entries, size_t n);

#endif
