/* curl_loader: dlopen of libcurl on first use; see curl_loader.h. */
#include "autoconf.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

#include "curl_loader.h"
#include "util.h"

static void load_failed(const char *file, char *err, size_t errlen)
{
	const char *why = dlerror();
	format_into(err, errlen, "libcurl (%s): %s", file,
		    why ? why : "unknown dynamic loader error");
}

/* One function of lib; after the first that is missing, err is set and
 * the rest are not looked up. */
static void *symbol(void *lib, const char *file, const char *name, char *err,
		    size_t errlen)
{
	void *p;
	if (*err)
		return NULL;
	dlerror();
	p = dlsym(lib, name);
	if (!p)
		load_failed(file, err, errlen);
	return p;
}

/* api->MEMBER = curl_MEMBER from lib, as the member's own type. */
#define CURL_SYMBOL(member)                                                   \
	(api->member = (__typeof__(api->member))symbol(lib, file,             \
						       "curl_" #member, err,  \
						       errlen))

int curl_api_load(const char *file, struct curl_api *api, char *err,
		  size_t errlen)
{
	void *lib;
	memset(api, 0, sizeof *api);
	*err = '\0';
	/* RTLD_NOW: a library without a function it promises fails here,
	 * not in the middle of a request. */
	lib = dlopen(file, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		load_failed(file, err, errlen);
		return -1;
	}
	CURL_SYMBOL(global_init);
	CURL_SYMBOL(version_info);
	CURL_SYMBOL(easy_init);
	CURL_SYMBOL(easy_setopt);
	CURL_SYMBOL(easy_perform);
	CURL_SYMBOL(easy_getinfo);
	CURL_SYMBOL(easy_cleanup);
	CURL_SYMBOL(easy_strerror);
	CURL_SYMBOL(easy_escape);
	CURL_SYMBOL(easy_unescape);
	CURL_SYMBOL(free);
	CURL_SYMBOL(slist_append);
	CURL_SYMBOL(slist_free_all);
	CURL_SYMBOL(url);
	CURL_SYMBOL(url_set);
	CURL_SYMBOL(url_get);
	CURL_SYMBOL(url_cleanup);
	if (*err) {
		dlclose(lib);
		memset(api, 0, sizeof *api);
		return -1;
	}
	return 0;
}

const struct curl_api *curl_api_get(char *err, size_t errlen)
{
	static struct curl_api api;
	static bool loaded;
	if (!loaded && curl_api_load(CURL_SONAME, &api, err, errlen) == 0)
		loaded = true;
	return loaded ? &api : NULL;
}
