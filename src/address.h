/* address: RFC 5322 section 3.4 address-list parser (with the obsolete
 * forms of section 4.4), producing addr-specs for the envelope. */
#ifndef POSTBOTE_ADDRESS_H
#define POSTBOTE_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Parse the unfolded value of an address-list field (To, Cc, Bcc, ...).
 * Appends each mailbox's addr-spec ("local@domain", quoted local parts kept
 * quoted, comments and display names dropped, group names dropped, an empty
 * group adds nothing) to out with strlist_add_unique. A bare local name
 * ("root") is kept as it is. Returns the number added, or -1 with a message
 * naming the problem and its position in err. */
int address_list_parse(const char *text, struct strlist *out, char *err,
		       size_t errlen);

/* Completes bare local names in the raw value of an address-list field
 * (To, Cc, From, Reply-To, Sender, Resent-*; folded or not): each mailbox
 * whose addr-spec has no '@' ("root", "cron <root>", "root (comment)",
 * "\"the boss\"") gets "@" domain right after its local part; nothing
 * else changes, byte for byte (display names, comments, groups, folding
 * white space, encoded words). Returns the new value (free it), or NULL:
 * with err empty when no mailbox needed it, with err set (the problem and
 * its position, as address_list_parse) when the value does not parse or
 * domain is empty. domain is inserted as given. */
char *address_list_qualify(const char *value, const char *domain, char *err,
			   size_t errlen);

/* True when addr can go into MAIL FROM:<...> or RCPT TO:<...> safely:
 * no CR, LF, NUL or other control character, no unquoted space, '<' or '>',
 * at most one unquoted '@', balanced quotes, length within RFC 5321 4.5.3.1.3
 * (256 octets path). The empty string is valid (null sender). */
bool address_is_safe_for_envelope(const char *addr, char *err, size_t errlen);

/* True when the address has no '@' (a bare local name like "root"). */
bool address_is_local(const char *addr);

/* True when any byte is >= 0x80 (needs SMTPUTF8). */
bool address_is_8bit(const char *addr);

#endif
