#!/usr/bin/python3
"""sink.py: a discard server for the throughput comparison.

    sink.py --cert PEM --key PEM SMTP_PORT RAW_PORT

On 127.0.0.1:SMTP_PORT it speaks just enough SMTP for a submission client
(EHLO with PIPELINING, SIZE, 8BITMIME and STARTTLS, then AUTH, MAIL, RCPT,
DATA, RSET, NOOP, QUIT) and throws every message away. Any AUTH succeeds.
On 127.0.0.1:RAW_PORT it takes implicit TLS and a line "RAW <bytes>",
reads and discards that many bytes, and answers "OK". So the same TLS
stack on the same loopback receives both, and the difference in
throughput is the client's.

Prints "ready" on standard output once both ports listen; runs until
SIGTERM or SIGINT.
"""

import argparse
import signal
import socket
import socketserver
import ssl
import sys
import threading

CHUNK = 256 * 1024


class Conn:
    """Buffered reader over a plain or TLS socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self):
        data = self.sock.recv(CHUNK)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                text = bytes(self.buf[:end + 1])
                del self.buf[:end + 1]
                return text.rstrip(b"\r\n").decode("latin-1")
            if len(self.buf) > 65536:
                raise EOFError
            self.fill()

    def send(self, text):
        self.sock.sendall(text.encode("ascii"))

    def discard_data(self):
        """Read message text up to the line "."; return its size."""
        size = 0
        # The text starts at a line start: look for the terminator with
        # the CRLF before it, starting from a virtual CRLF.
        window = bytearray(b"\r\n")
        while True:
            window += self.buf
            size += len(self.buf)
            self.buf.clear()
            end = window.find(b"\r\n.\r\n")
            if end >= 0:
                rest = window[end + 5:]
                size -= len(rest)
                self.buf[:] = rest
                return size
            del window[:-4]
            self.fill()

    def discard_exactly(self, count):
        got = min(count, len(self.buf))
        del self.buf[:got]
        while got < count:
            data = self.sock.recv(min(CHUNK, count - got))
            if not data:
                raise EOFError
            got += len(data)


def smtp_session(sock, context):
    conn = Conn(sock)
    conn.send("220 sink ESMTP discard server\r\n")
    tls = False
    while True:
        # Replies to pipelined commands go out together, as a real
        # server sends them: flush only when no command is waiting.
        out = []
        while True:
            line = conn.line()
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                caps = ["sink", "PIPELINING", "SIZE 2000000000", "8BITMIME",
                        "ENHANCEDSTATUSCODES"]
                caps.append("AUTH PLAIN LOGIN" if tls else "STARTTLS")
                out.append("".join("250%s%s\r\n" % (
                    " " if i == len(caps) - 1 else "-", c)
                    for i, c in enumerate(caps)))
            elif verb == "STARTTLS" and not tls:
                conn.send("".join(out) + "220 2.0.0 go ahead\r\n")
                out = []
                conn.sock = context.wrap_socket(conn.sock, server_side=True)
                conn.buf.clear()
                tls = True
            elif verb == "AUTH":
                out.append("235 2.7.0 ok\r\n")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                out.append("250 2.0.0 ok\r\n")
            elif verb == "DATA":
                conn.send("".join(out) + "354 go ahead\r\n")
                out = []
                size = conn.discard_data()
                out.append("250 2.0.0 discarded %d bytes\r\n" % size)
            elif verb == "QUIT":
                conn.send("".join(out) + "221 2.0.0 bye\r\n")
                return
            else:
                out.append("502 5.5.2 not here\r\n")
            if not conn.buf:
                break
        if out:
            conn.send("".join(out))


def raw_session(sock, context):
    conn = Conn(context.wrap_socket(sock, server_side=True))
    words = conn.line().split()
    if len(words) != 2 or words[0] != "RAW":
        return
    conn.discard_exactly(int(words[1]))
    conn.send("OK\r\n")


def make_handler(session, context):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                session(self.request, context)
            except (EOFError, OSError, ssl.SSLError):
                pass
    return Handler


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("smtp_port", type=int)
    parser.add_argument("raw_port", type=int)
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    servers = [Server(("127.0.0.1", args.smtp_port),
                      make_handler(smtp_session, context)),
               Server(("127.0.0.1", args.raw_port),
                      make_handler(raw_session, context))]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
