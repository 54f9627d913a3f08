/* net: resolve a host and connect to the first of its addresses that
 * answers, IPv6 and IPv4, within a deadline. */
#ifndef POSTBOTE_NET_H
#define POSTBOTE_NET_H

#include <stddef.h>
#include <stdint.h>

enum net_failure {
	NET_OK = 0,
	NET_RESOLVE_TEMPORARY,  /* DNS did not answer (EAI_AGAIN) */
	NET_RESOLVE_PERMANENT,  /* no such host */
	NET_REFUSED,            /* every address refused the connection */
	NET_UNREACHABLE,        /* no route, network down */
	NET_TIMEOUT,
	NET_OTHER,
};

struct net_error {
	enum net_failure failure;
	char detail[256];
};

/* Connected socket (TCP_NODELAY set: we write whole groups ourselves), or
 * -1 with err filled in. */
int net_connect(const char *host, int port, int64_t deadline,
		struct net_error *err);

#endif
