// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* HTTP probes with libcurl: linked into caelumd only (see probe_int.h). */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "probe_int.h"
#include "version.h"

/* ---- HTTP ---- */

/*
 * The body begins, so the status line and headers are in: stop reading. A large or endless
 * body costs nothing then; curl returns CURLE_WRITE_ERROR, which http_verdict() expects.
 */
static size_t http_body(char *data, size_t size, size_t n, void *ud)
{
	(void)data;
	(void)size;
	(void)n;
	(void)ud;
	return 0;
}

/* A URL with user info ("https://user:secret@host/") */
static bool has_userinfo(const char *url)
{
	const char *auth = strstr(url, "://") + 3;

	return memchr(auth, '@', strcspn(auth, "/?#")) != NULL;
}

static int http_verdict(CURL *c, CURLcode rc, const char *url, const char *errbuf,
			unsigned int timeout_ms, struct probe_result *r)
{
	long code = 0;

	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if ((rc == CURLE_OK || rc == CURLE_WRITE_ERROR) && code > 0)
		return verdict(r, code >= 200 && code < 400, "HTTP %ld", code);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return verdict(r, 0, "timed out after %u ms", timeout_ms);
	/* curl's own words are the clearest, unless they might quote the credentials */
	if (errbuf[0] && !has_userinfo(url))
		return verdict(r, 0, "%.*s", (int)strcspn(errbuf, "\r\n"), errbuf);
	return verdict(r, 0, "%s", curl_easy_strerror(rc));
}

static CURLcode http_setup(CURL *c, const char *url, unsigned int ms, char *errbuf)
{
	CURLcode rc = curl_easy_setopt(c, CURLOPT_URL, url);

#if LIBCURL_VERSION_NUM >= 0x075500
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ms);
	/* no alarm() for the resolver: not in caelumctl, and P may run curl's threads */
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* the service itself, not whatever http_proxy says in the daemon's environment */
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_PROXY, "");
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_USERAGENT, "caelum-probe/" CAELUM_VERSION);
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body);
	rc = rc ? rc : curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	return rc;
}

int probe_http(const char *url, unsigned int timeout_ms, uint64_t deadline, struct probe_result *r)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	unsigned int left = ms_left(deadline);
	CURLcode rc;
	CURL *c;

	if (!left)
		return verdict(r, 0, "timed out after %u ms", timeout_ms);
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc)
		return failed(r, -ENOMEM, "failed to initialize libcurl: %s",
			      curl_easy_strerror(rc));
	c = curl_easy_init();
	if (!c)
		return failed(r, -ENOMEM, "failed to create a curl handle: %s", strerror(ENOMEM));
	rc = http_setup(c, url, left, errbuf);
	if (!rc)
		rc = curl_easy_perform(c);
	http_verdict(c, rc, url, errbuf, timeout_ms, r);
	curl_easy_cleanup(c);
	return 0;
}
