#include "autoconf.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deadline.h"
#include "util.h"

static enum net_failure failure_from_errno(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return NET_REFUSED;
	case ENETUNREACH:
	case EHOSTUNREACH:
	case ENETDOWN:
	case EHOSTDOWN:
	case EADDRNOTAVAIL:
		return NET_UNREACHABLE;
	case ETIMEDOUT:
		return NET_TIMEOUT;
	default:
		return NET_OTHER;
	}
}

static void address_text(const struct addrinfo *ai, char *buf, size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, serv,
			sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		format_into(buf, size, "?");
		return;
	}
	format_into(buf, size, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		    host, serv);
}

/* Non-blocking connect bounded by the deadline: 0 ok, else an errno. */
static int connect_one(int fd, const struct addrinfo *ai, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	for (;;) {
		int ms = deadline_left(deadline);
		int n = ms == 0 ? 0 : poll(&p, 1, ms);
		if (n == 0)
			return ETIMEDOUT;
		if (n > 0)
			break;
		if (errno != EINTR)
			return errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return errno;
	return soerr;
}

static int open_socket(const struct addrinfo *ai)
{
	int one = 1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	if (fd < 0)
		return -1;
	/* We hand the kernel whole pipelined groups; Nagle would only hold
	 * back the last segment of each and cost a round trip. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static int resolve(const char *host, int port, struct addrinfo **res,
		   struct net_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_family = AF_UNSPEC,
				  .ai_flags = AI_ADDRCONFIG };
	char serv[16];
	int rc;
	snprintf(serv, sizeof serv, "%d", port);
	rc = getaddrinfo(host, serv, &hints, res);
	if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {
		/* AI_ADDRCONFIG hides loopback-only setups; ask again without. */
		hints.ai_flags = 0;
		rc = getaddrinfo(host, serv, &hints, res);
	}
	if (rc == 0)
		return 0;
	err->failure = (rc == EAI_AGAIN) ? NET_RESOLVE_TEMPORARY
		     : (rc == EAI_SYSTEM) ? NET_OTHER : NET_RESOLVE_PERMANENT;
	format_into(err->detail, sizeof err->detail, "cannot resolve %s: %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	return -1;
}

int net_connect(const char *host, int port, int64_t deadline,
		struct net_error *err)
{
	struct addrinfo *res = NULL;
	int last_errno = 0;
	char where[96] = "";
	err->failure = NET_OK;
	err->detail[0] = '\0';
	if (resolve(host, port, &res, err) < 0)
		return -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = open_socket(ai);
		int e;
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		e = connect_one(fd, ai, deadline);
		if (e == 0) {
			freeaddrinfo(res);
			return fd;
		}
		close(fd);
		last_errno = e;
		address_text(ai, where, sizeof where);
		if (e == ETIMEDOUT && deadline_left(deadline) == 0)
			break;
	}
	freeaddrinfo(res);
	err->failure = failure_from_errno(last_errno);
	format_into(err->detail, sizeof err->detail, "cannot connect to %s%s%s: %s",
		    host, where[0] ? " at " : "", where, strerror(last_errno));
	return -1;
}
