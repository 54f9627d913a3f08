#!/usr/bin/python3
"""netdelay.py: a link with a fixed round-trip time between two network
namespaces, made of two TUN devices and this process in between.

    netdelay.py --rtt MS CLIENT_NS SERVER_NS

Both namespaces must exist (ip netns add). The program creates the TUN
device "pbdelay0" in each, configures them, prints "ready" on standard
output and then forwards every IP packet from one device to the other
after MS/2 milliseconds, in both directions, until SIGTERM or SIGINT.
The devices vanish when it exits.

The client namespace reaches 127.0.0.1 over the link, so a client run in
it talks to a server listening on 127.0.0.1 in the server namespace with
the same address (and TLS certificate) as without the delay, and TCP runs
end to end between the two kernels: slow start, Nagle, delayed ACKs and
the handshake all cost what they cost on a real path with that RTT.

    client ns:  198.18.0.1 on pbdelay0, lo down, 127.0.0.1/32 via pbdelay0
    server ns:  198.18.0.2 on pbdelay0, lo up (the server's 127.0.0.1),
                198.18.0.1/32 via pbdelay0

198.18.0.0/15 is the range set aside for benchmarks (RFC 2544); it is only
used inside the two namespaces. Packets from or to 127.0.0.1 on a
non-loopback device need route_localnet, set in both namespaces only.
"""

import argparse
import ctypes
import fcntl
import heapq
import os
import select
import signal
import struct
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
DEVICE = "pbdelay0"
CLIENT_ADDR = "198.18.0.1"
SERVER_ADDR = "198.18.0.2"

libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(fd):
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: " + os.strerror(err))


def open_tun_in(ns):
    """Create the TUN device in namespace ns; return its file descriptor."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        enter_netns(target)
        # The device belongs to the namespace the opener is in.
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        ifr = struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
    finally:
        enter_netns(home)
        os.close(home)
        os.close(target)
    return fd


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def sysctl(ns, name, value):
    sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "%s=%s" % (name, value))


def configure(client_ns, server_ns):
    for ns, addr, peer in ((client_ns, CLIENT_ADDR, "127.0.0.1/32"),
                           (server_ns, SERVER_ADDR, CLIENT_ADDR + "/32")):
        for conf in ("all", "default", DEVICE):
            sysctl(ns, "net.ipv4.conf.%s.route_localnet" % conf, 1)
            sysctl(ns, "net.ipv4.conf.%s.rp_filter" % conf, 0)
        # IPv4 only: no link-local address, no router solicitations.
        sysctl(ns, "net.ipv6.conf.%s.disable_ipv6" % DEVICE, 1)
        sh("ip", "-n", ns, "addr", "add", addr + "/32", "dev", DEVICE)
        sh("ip", "-n", ns, "link", "set", DEVICE, "up")
        sh("ip", "-n", ns, "route", "add", peer, "dev", DEVICE, "src", addr)
    # The server's loopback is where the server listens; the client's
    # stays down, so its 127.0.0.1 is the server's, across the link.
    sh("ip", "-n", server_ns, "link", "set", "lo", "up")


def forward(ends, delay):
    """Each packet read from one end is written to the other `delay`
    seconds later. select() sleeps with microsecond precision (epoll, and
    so asyncio, rounds up to whole milliseconds, which would add up to a
    millisecond or two to every round trip)."""
    other = {ends[0]: ends[1], ends[1]: ends[0]}
    pending = []        # heap of (due, sequence, fd, packet)
    sequence = 0
    while True:
        timeout = None
        if pending:
            timeout = max(0.0, pending[0][0] - time.monotonic())
        readable, _, _ = select.select(ends, [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                sequence += 1
                heapq.heappush(pending, (now + delay, sequence, other[fd],
                                         packet))
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, fd, packet = heapq.heappop(pending)
            try:
                os.write(fd, packet)
            except OSError:
                pass    # a full queue drops the packet, as a link would


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtt", type=float, required=True,
                        help="round-trip time in milliseconds")
    parser.add_argument("client_ns")
    parser.add_argument("server_ns")
    args = parser.parse_args()

    client = open_tun_in(args.client_ns)
    server = open_tun_in(args.server_ns)
    configure(args.client_ns, args.server_ns)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    print("ready", flush=True)
    forward([client, server], args.rtt / 2000.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
