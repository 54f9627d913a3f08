/* tlsblast: the raw-data reference for the throughput comparison.
 *
 *     tlsblast PORT CAFILE FILE
 *
 * Connects to 127.0.0.1:PORT (bench/sink.py's raw port), makes a TLS
 * session with GnuTLS and the priorities postbote uses by default,
 * verifies the certificate for 127.0.0.1, sends "RAW <size>" and then the
 * file in 64 KiB reads and 16 KiB records (as much as one record holds),
 * and waits for the sink's "OK". Exit status 0 on success. What it
 * measures is what a TLS connection on loopback carries when nothing but
 * the cipher and the socket stand in the way. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define READ_SIZE (64 * 1024)
#define RECORD_MAX 16384

static void die(const char *what, int code)
{
	fprintf(stderr, "tlsblast: %s: %s\n", what,
		code ? gnutls_strerror(code) : "failed");
	exit(1);
}

static void send_all(gnutls_session_t s, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = gnutls_record_send(s, p,
					       len > RECORD_MAX ? RECORD_MAX : len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			die("sending", (int)n);
		p += n;
		len -= (size_t)n;
	}
}

int main(int argc, char **argv)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct stat st;
	static char buf[READ_SIZE];
	char head[64], reply[16];
	int fd, file, one = 1, ret;
	ssize_t n;

	if (argc != 4) {
		fprintf(stderr, "usage: tlsblast PORT CAFILE FILE\n");
		return 64;
	}
	file = open(argv[3], O_RDONLY);
	if (file < 0 || fstat(file, &st) < 0)
		die(argv[3], 0);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connecting", 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	if ((ret = gnutls_certificate_allocate_credentials(&cred)) < 0)
		die("credentials", ret);
	if ((ret = gnutls_certificate_set_x509_trust_file(
		     cred, argv[2], GNUTLS_X509_FMT_PEM)) <= 0)
		die(argv[2], ret);
	if ((ret = gnutls_init(&s, GNUTLS_CLIENT)) < 0 ||
	    (ret = gnutls_priority_set_direct(s, PRIORITIES, NULL)) < 0 ||
	    (ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0)
		die("session", ret);
	gnutls_session_set_verify_cert(s, "127.0.0.1", 0);
	gnutls_transport_set_int(s, fd);
	do
		ret = gnutls_handshake(s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0)
		die("handshake", ret);

	snprintf(head, sizeof head, "RAW %lld\r\n", (long long)st.st_size);
	send_all(s, head, strlen(head));
	while ((n = read(file, buf, sizeof buf)) > 0)
		send_all(s, buf, (size_t)n);
	if (n < 0)
		die("reading the file", 0);
	do
		n = gnutls_record_recv(s, reply, sizeof reply);
	while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
	if (n < 2 || memcmp(reply, "OK", 2) != 0)
		die("no OK from the sink", n < 0 ? (int)n : 0);
	gnutls_bye(s, GNUTLS_SHUT_WR);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	close(fd);
	return 0;
}
