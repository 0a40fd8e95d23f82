#!/usr/bin/env python3
"""TEST HARNESS (not part of the collection): which gateway carries traffic, and outages.

    udp_flow.py echo ADDRESS PORT
        On the host standing for the Internet: answer every UDP datagram with the datagram
        followed by the source address it came from (the gateway's uplink address, after
        the gateway's masquerade).
    udp_flow.py flow TARGET PORT STEP [steady]
        On a client: send a datagram every STEP seconds and print one line per reply:
        "<seq> <sent> <received> <source address the target saw>", times from
        CLOCK_MONOTONIC (shared by the host and its containers and namespaces).  Each
        datagram comes from a new socket (a new flow, as a new connection would), or
        with "steady" all from one socket (one conntrack entry all along).

The functions below read those lines back and measure an event's outage; the failover
benchmark (benchmarks/bench_gw_failover.py) and the client scenario's tests use them.
"""

from __future__ import annotations

import select
import socket
import sys
import time


def echo(address, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))  # bound, so replies leave from the address asked
    while True:
        data, peer = sock.recvfrom(512)
        sock.sendto(data + b" " + peer[0].encode(), peer)


def flow(target, port, step, steady):
    one = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if steady else None
    open_socks, seq, next_send = {}, 0, time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_send:
            seq += 1
            sock = one or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.sendto(b"%d %.4f" % (seq, now), (target, port))
            except OSError:
                pass  # no route right now: that is an outage, not an error
            open_socks[sock] = now
            next_send += step
        for sock in [s for s, t in open_socks.items() if now - t > 3 and s is not one]:
            sock.close()
            del open_socks[sock]
        ready, _writable, _errored = select.select(list(open_socks), [], [],
                                                   max(0, next_send - time.monotonic()))
        for sock in ready:
            try:
                fields = sock.recv(512).decode().split()
            except OSError:
                continue
            print(fields[0], fields[1], "%.4f" % time.monotonic(), fields[2], flush=True)


def parse(text):
    """[(sent, received, via)] from a flow's output."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4:
            out.append((float(fields[1]), float(fields[2]), fields[3]))
    return out


def measure(replies, t0, expect, now, step):
    """An event at t0: (outage, settled) in seconds.

    outage: the longest time without a reply around the event, measured between the
    send times of consecutive answered datagrams from one second before t0 until now
    (no reply since: the time since the last one; none at all: that whole time), less
    one step.
    settled: from t0 until the first datagram from which on every reply came via
    `expect`; None if that has not happened.
    """
    window = sorted(r for r in replies if r[0] >= t0 - 1.0)
    sends = [t0 - 1.0] + [r[0] for r in window] + [now]
    outage = max(b - a for a, b in zip(sends, sends[1:], strict=False)) - step
    settled = None
    for i, reply in enumerate(window):
        if reply[0] >= t0 and all(r[2] == expect for r in window[i:]):
            settled = reply[0] - t0
            break
    return max(outage, 0.0), settled


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(sys.argv[2], int(sys.argv[3]))
    else:
        flow(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
             len(sys.argv) > 5 and sys.argv[5] == "steady")
