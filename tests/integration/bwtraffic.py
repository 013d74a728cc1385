# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Loopback traffic for the bandwidth tests (run as a child placed in a cgroup).

  bwtraffic.py tcp-sink PORT SECS   accept one connection, print what arrived in the first
                                    SECS seconds from the first byte, and in its last second
  bwtraffic.py udp-sink PORT SECS   the same for datagrams (window from the first datagram)
  bwtraffic.py tcp-send PORT SECS   connect and send as fast as possible for SECS seconds
  bwtraffic.py udp-send PORT SECS   send 1400-byte datagrams as fast as possible for SECS
Sinks print "ready" once bound, then one JSON line: {"bytes", "last_s_bytes", "secs"}.
"""
import json
import socket
import sys
import time


def measure(recv, secs):
    n = last = 0
    t0 = None
    while True:
        b = recv()
        if b is None:
            break
        now = time.monotonic()
        if t0 is None:
            t0 = now
        if now - t0 > secs:
            break
        n += b
        if now - t0 >= secs - 1:
            last += b
    print(json.dumps({"bytes": n, "last_s_bytes": last, "secs": secs}), flush=True)


def tcp_sink(port, secs):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    print("ready", flush=True)
    c, _ = s.accept()
    c.settimeout(secs + 5)

    def recv():
        try:
            b = c.recv(1 << 20)
        except socket.timeout:
            return None
        return len(b) if b else None
    measure(recv, secs)


def udp_sink(port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    s.bind(("127.0.0.1", port))
    s.settimeout(secs + 5)
    print("ready", flush=True)

    def recv():
        try:
            return len(s.recv(65536))
        except socket.timeout:
            return None
    measure(recv, secs)


def tcp_send(port, secs):
    c = socket.create_connection(("127.0.0.1", port))
    buf = b"x" * 65536
    end = time.monotonic() + secs
    try:
        while time.monotonic() < end:
            c.send(buf)
    except OSError:
        pass


def udp_send(port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    buf = b"y" * 1400
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            s.sendto(buf, ("127.0.0.1", port))
        except OSError:  # ENOBUFS, EPERM of a dropped datagram: go on
            pass


if __name__ == "__main__":
    mode, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    {"tcp-sink": tcp_sink, "udp-sink": udp_sink, "tcp-send": tcp_send,
     "udp-send": udp_send}[mode](port, secs)
