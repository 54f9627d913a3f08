/* libFuzzer harness: the aliases file loader and expansion
 * (src/aliases.h). The input is the file, read through /proc/self/fd/N of
 * a memfd; then names from the file and a few fixed ones are expanded.
 *
 * Checked, as aliases.h promises:
 *  - a failure returns -1 with *out NULL and "PATH: ..." or "PATH:LINE:
 *    ..." in err;
 *  - after a successful load, every entry the file starts ("name:" at the
 *    start of a line) expands to at least one address, matched ASCII
 *    case-insensitively, with the count returned;
 *  - a name with '@' and a NULL table expand to nothing;
 *  - a name without an entry takes the "default" entry's addresses when
 *    there is one, else expands to nothing. */
#include "autoconf.h"

#include "aliases.h"
#include "util.h"

#include "fuzz_util.h"

#define MAX_NAMES 32
#define UNKNOWN_NAME "no-such-alias-here"

struct names {
	char *v[MAX_NAMES];
	size_t n;
};

/* The names that lines of a file that loaded must have started: a line
 * that does not start with white space and is not blank once a comment
 * is cut off starts an entry, "name:" with the name before the colon. A
 * '#' before the colon cannot belong to a name that loaded (names cannot
 * hold '"', so it is outside quotes and cuts the line there). */
static void entry_names(const uint8_t *data, size_t size, struct names *out)
{
	struct fuzz_lines it = { .p = data, .left = size };
	char *line;

	while ((line = fuzz_next_line(&it)) != NULL) {
		char *colon = strchr(line, ':');
		char *hash = strchr(line, '#');
		size_t len;
		if (line[0] == ' ' || line[0] == '\t' || !colon ||
		    (hash && hash < colon) || out->n == MAX_NAMES) {
			free(line);
			continue;
		}
		len = (size_t)(colon - line);
		while (len > 0 && strchr(" \t\r", line[len - 1]))
			len--;
		line[len] = '\0';
		out->v[out->n++] = line;
	}
}

static bool names_contain(const struct names *names, const char *name)
{
	for (size_t i = 0; i < names->n; i++)
		if (fuzz_ascii_eq(names->v[i], name))
			return true;
	return false;
}

static int expand(const struct aliases *a, const char *name,
		  size_t *naddrs)
{
	struct strlist out = { 0 };
	int n = aliases_expand(a, name, &out);

	FUZZ_CHECK(n >= 0 && out.n <= (size_t)n);
	FUZZ_CHECK((n == 0) == (out.n == 0));
	for (size_t i = 0; i < out.n; i++)
		FUZZ_CHECK(out.v[i][0] != '\0');
	*naddrs = out.n;
	strlist_free(&out);
	return n;
}

static void check_expansions(const struct aliases *a, struct names *names)
{
	size_t naddrs, again;

	for (size_t i = 0; i < names->n; i++) {
		char *upper = strdup(names->v[i]);
		int n = expand(a, names->v[i], &naddrs);
		FUZZ_CHECK(upper != NULL);
		FUZZ_CHECK(n > 0);
		for (char *p = upper; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 32);
		FUZZ_CHECK(expand(a, upper, &again) == n && again == naddrs);
		free(upper);
	}
	FUZZ_CHECK(expand(a, "root@example.org", &naddrs) == 0);
	FUZZ_CHECK(expand(a, "\"odd name\"@example.org", &naddrs) == 0);
	if (!names_contain(names, UNKNOWN_NAME)) {
		int n = expand(a, UNKNOWN_NAME, &naddrs);
		if (names_contain(names, "default"))
			FUZZ_CHECK(n > 0 &&
				   n == expand(a, "default", &again));
		else
			FUZZ_CHECK(n == 0);
	}
	(void)expand(a, "root", &naddrs);
	(void)expand(a, "postmaster", &naddrs);
	(void)expand(a, "\"quoted@local\"", &naddrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int not_set;
	char path[64], err[512] = "";
	struct aliases *a = (struct aliases *)(void *)&not_set;
	struct names names = { .n = 0 };
	size_t naddrs;
	int fd = fuzz_memfd(data, size);
	int rc;

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	rc = aliases_load(path, &a, err, sizeof err);  /* a must be set */
	close(fd);
	FUZZ_CHECK(expand(NULL, "root", &naddrs) == 0);
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && a == NULL);
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 &&
			   err[strlen(path)] == ':');
		return 0;
	}
	FUZZ_CHECK(a != NULL);
	entry_names(data, size, &names);
	check_expansions(a, &names);
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	aliases_free(a);
	return 0;
}
