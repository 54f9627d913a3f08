/* curl_loader: libcurl loaded with dlopen when it is first needed (an
 * OAuth2 request, --version), so that the runs that do not need it (most
 * of them) do not pay for loading it and its dozen libraries. curl.h
 * still gives the types and constants; the functions are called through
 * struct curl_api. The file name (CURL_SONAME) comes from configure. */
#ifndef POSTBOTE_CURL_LOADER_H
#define POSTBOTE_CURL_LOADER_H

#include <curl/curl.h>
#include <stddef.h>

/* The functions postbote uses, each pointer of the type curl.h declares
 * (__typeof__ of the declaration, which needs no linking), so that a call
 * through it is checked as a direct call would be. curl_easy_setopt and
 * curl_easy_getinfo are variadic; their pointers are too. */
struct curl_api {
	__typeof__(curl_global_init) *global_init;
	__typeof__(curl_version_info) *version_info;
	__typeof__(curl_easy_init) *easy_init;
	__typeof__(curl_easy_setopt) *easy_setopt;
	__typeof__(curl_easy_perform) *easy_perform;
	__typeof__(curl_easy_getinfo) *easy_getinfo;
	__typeof__(curl_easy_cleanup) *easy_cleanup;
	__typeof__(curl_easy_strerror) *easy_strerror;
	__typeof__(curl_easy_escape) *easy_escape;
	__typeof__(curl_easy_unescape) *easy_unescape;
	__typeof__(curl_free) *free;
	__typeof__(curl_slist_append) *slist_append;
	__typeof__(curl_slist_free_all) *slist_free_all;
	__typeof__(curl_url) *url;
	__typeof__(curl_url_set) *url_set;
	__typeof__(curl_url_get) *url_get;
	__typeof__(curl_url_cleanup) *url_cleanup;
};

/* libcurl, loaded on the first call and kept for the life of the process
 * (never unloaded). NULL with err ("libcurl (FILE): why") when it cannot
 * be loaded or lacks one of the functions; a later call tries again.
 * curl_global_init is the caller's business. */
const struct curl_api *curl_api_get(char *err, size_t errlen);

/* The work of curl_api_get for the library file (a name for dlopen):
 * fills in *api and returns 0, or -1 with err (then nothing stays
 * loaded). */
int curl_api_load(const char *file, struct curl_api *api, char *err,
		  size_t errlen);

#endif
