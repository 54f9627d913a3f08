/* libFuzzer harness: the RFC 5322 address-list parser and the envelope
 * check (src/address.h). The input is one header value (NUL-terminated).
 *
 * Checked, as address.h promises:
 *  - address_list_parse returns the number of addr-specs it appended (to
 *    an empty list: the list's length), or -1 with a message; the list
 *    holds no two entries equal ignoring ASCII case (strlist_add_unique);
 *    each entry is an addr-spec, so it parses again to itself alone;
 *  - address_list_qualify: NULL with a message when the value does not
 *    parse or the domain is empty; NULL without one when no mailbox is a
 *    bare local name; else the value with "@domain" put in after each such
 *    local part and nothing else changed, and then no mailbox is local;
 *  - address_is_safe_for_envelope is true exactly when the rules listed in
 *    address.h hold (checked against an independent reading of them);
 *  - address_is_8bit is true exactly when a byte is >= 0x80.
 * Not checked: that parsed addresses are safe for the envelope. address.h
 * does not promise it (quoted local parts may hold control characters,
 * addresses may exceed 254 octets); callers run the envelope check. */
#include "autoconf.h"

#include "address.h"
#include "util.h"

#include "fuzz_util.h"

#define DOMAIN "example.org"

/* address.h's rules for an envelope address, read independently: no
 * control character anywhere, no unquoted space, '<' or '>', at most one
 * unquoted '@', balanced quotes (a backslash inside quotes takes the next
 * byte literally), at most 256 octets with '<' and '>'. */
static bool envelope_rules_hold(const char *addr)
{
	size_t len = strlen(addr);
	bool quoted = false;
	int ats = 0;

	if (len + 2 > 256)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		if (quoted && c == '\\' && i + 1 < len) {
			unsigned char next = (unsigned char)addr[++i];
			if (next < 0x20 || next == 0x7f)
				return false;
			continue;
		}
		if (c == '"')
			quoted = !quoted;
		else if (!quoted && (c == ' ' || c == '<' || c == '>'))
			return false;
		else if (!quoted && c == '@' && ++ats > 1)
			return false;
	}
	return !quoted;
}

static void check_envelope(const char *addr)
{
	char err[256] = "";
	bool safe = address_is_safe_for_envelope(addr, err, sizeof err);
	bool eight = false;

	FUZZ_CHECK(safe == envelope_rules_hold(addr));
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		eight |= *p >= 0x80;
	FUZZ_CHECK(address_is_8bit(addr) == eight);
}

/* An addr-spec is an address-list of one: it must come back unchanged. */
static void check_reparse(const char *addr)
{
	struct strlist again = { 0 };
	char err[256];

	FUZZ_CHECK(addr[0] != '\0');
	FUZZ_CHECK(address_list_parse(addr, &again, err, sizeof err) == 1);
	FUZZ_CHECK(again.n == 1 && strcmp(again.v[0], addr) == 0);
	strlist_free(&again);
}

/* Returns the parse result; sets *any_local when a mailbox has no '@'. */
static int check_parse(const char *text, bool *any_local)
{
	struct strlist out = { 0 };
	char err[256] = "";
	int n = address_list_parse(text, &out, err, sizeof err);

	*any_local = false;
	if (n < 0) {
		FUZZ_CHECK(n == -1);
		FUZZ_CHECK(err[0] != '\0');
	} else {
		FUZZ_CHECK((size_t)n == out.n);
	}
	for (size_t i = 0; n >= 0 && i < out.n; i++) {
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(!fuzz_ascii_eq(out.v[i], out.v[j]));
		*any_local |= address_is_local(out.v[i]);
		check_envelope(out.v[i]);
		check_reparse(out.v[i]);
	}
	strlist_free(&out);
	return n;
}

/* qualified is value with "@" DOMAIN inserted at one or more places and
 * nothing else changed. Matching greedily is exact here: an insertion
 * follows a local part, which is never followed by '@' in value. */
static void check_only_insertions(const char *value, const char *qualified)
{
	static const char ins[] = "@" DOMAIN;
	size_t i = 0, j = 0, inserted = 0;

	while (value[i] || qualified[j]) {
		if (value[i] && value[i] == qualified[j]) {
			i++;
			j++;
			continue;
		}
		FUZZ_CHECK(strncmp(qualified + j, ins, sizeof ins - 1) == 0);
		j += sizeof ins - 1;
		inserted++;
	}
	FUZZ_CHECK(inserted > 0);
}

static void check_qualify(const char *text, int parsed, bool any_local)
{
	char err[256] = "x";
	char *q = address_list_qualify(text, DOMAIN, err, sizeof err);

	if (parsed < 0) {
		FUZZ_CHECK(q == NULL && err[0] != '\0');
	} else if (!any_local) {
		FUZZ_CHECK(q == NULL && err[0] == '\0');
	} else {
		bool still_local;
		FUZZ_CHECK(q != NULL);
		check_only_insertions(text, q);
		FUZZ_CHECK(check_parse(q, &still_local) >= 0);
		FUZZ_CHECK(!still_local);
	}
	free(q);
	err[0] = '\0';
	q = address_list_qualify(text, "", err, sizeof err);
	FUZZ_CHECK(q == NULL && err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size);
	bool any_local;
	int parsed = check_parse(text, &any_local);

	check_qualify(text, parsed, any_local);
	check_envelope(text);
	(void)address_is_local(text);
	free(text);
	return 0;
}
