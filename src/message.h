/* message: the message read from stdin, spooled once into an unlinked
 * temporary file with CRLF line ends, and the parsed header block.
 *
 * Line ends: CRLF stays, a lone LF becomes CRLF, a CR not followed by LF
 * ends the line too (becomes CRLF), so nothing that is sent carries a bare
 * CR or bare LF (RFC 5321 2.3.8). A message whose last line has no line end
 * gets CRLF appended.
 *
 * Lines longer than MESSAGE_LINE_MAX are split while spooling, as Postfix's
 * smtp client does: a header line is folded (CRLF inserted before its last
 * WSP within the limit, else CRLF SP inserted after 998 octets), a body line
 * gets CRLF after every 998 octets. NUL bytes are removed (RFC 5321 2.3.8,
 * RFC 5322 2.1: a message is made of characters other than NUL). */
#ifndef POSTBOTE_MESSAGE_H
#define POSTBOTE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* RFC 5322 2.1.1: lines are at most 998 characters plus CRLF. */
#define MESSAGE_LINE_MAX 998
/* Largest header block we parse and hold in memory. */
#define MESSAGE_HEADER_BLOCK_MAX (1024 * 1024)

struct header_field {
	char *name;      /* field name as written, without the colon */
	char *value;     /* unfolded value: CRLFs removed, leading WSP removed */
	off_t offset;    /* where the raw field starts in the spool file */
	size_t length;   /* raw length, continuation lines and CRLF included */
};

struct message {
	int fd;              /* unlinked spool file, CRLF line ends, -1 if none */
	off_t size;          /* bytes in the spool file */
	off_t header_end;    /* offset of the first body byte (after the empty
			      * line); 0 when the message has no header block */
	struct header_field *headers;
	size_t nheaders;
	bool eight_bit;      /* a byte >= 0x80 anywhere */
	bool has_nul;        /* the input had a NUL byte (all are removed) */
	bool dropped_mbox_from; /* a leading "From " line was removed */
	bool needs_separator; /* the message has a body but no empty line
			       * before it (header_end 0 with text, or the
			       * header block ended at a line that is not a
			       * field): message_emit inserts CRLF at
			       * header_end */
	size_t longest_line; /* longest spooled line (after splitting), CRLF
			      * not counted: at most MESSAGE_LINE_MAX */
	size_t longest_input_line; /* longest line as read (NULs counted,
				    * line end not), before splitting */
	size_t lines_split;  /* line breaks inserted to split long lines */
	size_t nul_removed;  /* NUL bytes removed */
};

struct spool_options {
	bool dot_ends_input; /* sendmail without -i/-oi: a line "." ends input */
	const char *tmpdir;  /* NULL: $TMPDIR, else /tmp */
};

/* Read all of in_fd into msg. Returns 0, or -1 with a message in err
 * (which names what failed: creating the spool file, reading stdin, a
 * header block over MESSAGE_HEADER_BLOCK_MAX...). */
int message_spool(int in_fd, const struct spool_options *opt,
		  struct message *msg, char *err, size_t errlen);

/* The first header field called name (ASCII case-insensitive), or NULL. */
const struct header_field *message_header_find(const struct message *msg,
					       const char *name);

typedef int (*message_sink)(void *ctx, const void *data, size_t len);

struct emit_options {
	const char *prepend;     /* formatted header lines to put first, each
				  * ending in CRLF, or NULL */
	const char *const *remove; /* NULL-terminated list of field names to
				  * leave out (e.g. "Bcc"), or NULL */
	bool dot_stuff;          /* double a leading '.' on every line (DATA) */
	const char *const *replace; /* NULL, or msg->nheaders entries: a
				  * non-NULL entry is the complete raw text
				  * of that field (name, ':', value, CRLF,
				  * folded as the caller likes), sent in its
				  * place. A field that is also removed stays
				  * removed. */
};

/* Write the message as it is to be transmitted to sink, in large blocks
 * (at least 16 KiB each except the last): prepended lines, header fields
 * not removed (replaced ones in their place and order), CRLF when
 * msg->needs_separator, the body. An empty message gives only the
 * prepended lines. Does not write the final ".". Returns 0, the sink's
 * non-zero return value, or -1 on a read error (errno set). */
int message_emit(const struct message *msg, const struct emit_options *opt,
		 message_sink sink, void *ctx);

/* Byte count message_emit would produce without dot-stuffing
 * (for SIZE=). */
off_t message_emit_size(const struct message *msg,
			const struct emit_options *opt);

void message_free(struct message *msg);

/* Dot-stuffing state for streaming (RFC 5321 4.5.2). */
struct dot_stuffer {
	bool at_line_start;
};

void dot_stuffer_init(struct dot_stuffer *st);
/* Copy in to out, doubling a '.' at the start of a line. out must have room
 * for 2 * len bytes. Returns the number of bytes written. Input is CRLF. */
size_t dot_stuff(struct dot_stuffer *st, const char *in, size_t len, char *out);

#endif
