"""The lab's one dialect for plumbing: the --zk grammar, number arguments, signals, reconnects, client start/stop.

Each challenge script must stay standalone (kazoo, mmh3 and the standard library), so each carries its
own copy of the block between the two marker lines below, character for character; tests/test_project.py
compares the three copies. The lab's tools (runner, tree, smoke, checker) import it from here.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable

from kazoo.client import KazooClient

# ---------------------------------------------------------------- plumbing (the same in both scripts)
# Kazoo doubles its reconnect delay up to a minute by default: after an outage a client could sleep
# long after ZooKeeper is back. Capped, it is back within half a second.
RECONNECT = {"max_tries": -1, "delay": 0.1, "max_delay": 0.5}
# A host name: dot-separated labels of letters, digits and inner hyphens (RFC 1123); IPv4 fits it too.
HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
ZK_FORM = "host:port[,host:port...][/chroot]"


def parse_zk(text: str) -> tuple[list[tuple[str, int]], str]:
    """'host:port[,host:port...][/chroot]' as (hosts, chroot); ValueError says what is wrong."""
    hosts_part, slash, rest = text.strip().partition("/")
    chroot = slash + rest
    if chroot and any(not p or p in (".", "..") or not p.isprintable() for p in rest.split("/")):
        raise ValueError(f"the chroot {chroot!r} must be an absolute znode path like /lab, with no empty, "
                         "'.' or '..' part and no trailing '/'")
    return [parse_host(item.strip()) for item in hosts_part.split(",")], chroot


def parse_host(item: str) -> tuple[str, int]:
    """'host[:port]' or '[ipv6][:port]'; the port defaults to 2181."""
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{item!r}: write an IPv6 address as [::1]:2181")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{item!r}: {host!r} is not an IPv6 address") from None
        port = rest[1:] if rest else None
    else:
        host, colon, port = item.rpartition(":") if ":" in item else (item, "", None)
        if len(host) > 253 or not (host.isascii() and HOSTNAME.fullmatch(host)):
            raise ValueError(f"{item!r} is not host:port (a host is a name or IPv4 address; an IPv6 "
                             "address goes in brackets: [::1]:2181)")
    if port is None:
        return host, 2181
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{item!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def zk_arg(text: str) -> str:
    """An argparse type for --zk (and $ZK_HOSTS): the connection string, checked by parse_zk."""
    try:
        parse_zk(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be {ZK_FORM}: {exc}") from None
    return text.strip()


def number_arg(kind: type, low: float, high: float, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` within [low, high] (or (low, high] if `above`)."""
    noun = "whole number" if kind is int else "finite number"
    rule = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"

    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not (low < value if above else low <= value) \
                or value > high:
            raise argparse.ArgumentTypeError(f"must be a {noun} {rule}, not {text!r}")
        return value
    check.__name__ = kind.__name__
    return check


def new_client(hosts: str, session_timeout: float = 10.0, **kwargs: object) -> KazooClient:
    """A KazooClient with the lab's reconnect policy."""
    return KazooClient(hosts=hosts, timeout=session_timeout, connection_retry=dict(RECONNECT), **kwargs)


def start_client(client: KazooClient, timeout: float, stop: threading.Event | None = None) -> bool:
    """client.start() without its surprises: on a time-out it stops the client, which can block for
    10 s, and it warns about a missing chroot. Waits at most `timeout`; True once connected."""
    connected, deadline = client.start_async(), time.monotonic() + timeout
    while not connected.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            break
    return client.connected


def stop_client(client: KazooClient, timeout: float) -> bool:
    """Close the session, waiting at most `timeout`: kazoo's stop() can block for max(10 s, session
    timeout) while it cannot reach ZooKeeper. True if it finished in time."""
    def stop_and_close() -> None:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
    thread = threading.Thread(target=stop_and_close, name="stop-client", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    return not thread.is_alive()


class Shutdown:
    """Ctrl-C, SIGTERM and a closed stdout all land here, as events the main thread waits on.

    A Python signal handler runs between two steps of the main thread, maybe while it holds the lock
    inside an Event: setting the Event there could deadlock. So the handlers do nothing; Python also
    writes each signal's number to a pipe (set_wakeup_fd), and a thread of ours acts on it. The first
    signal asks for a clean stop; a second one asks to hurry (stop waiting for confirmations).
    """

    def __init__(self) -> None:
        self.requested = threading.Event()  # stop and clean up
        self.hurry = threading.Event()      # a second signal: stop waiting for confirmations
        self.why = ""
        self._print_lock = threading.Lock()

    def install(self) -> Shutdown:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)
        threading.Thread(target=self._listen, args=(read_end,), name="signals", daemon=True).start()
        return self

    def _listen(self, read_end: int) -> None:
        while received := os.read(read_end, 16):
            for signum in received:
                if self.requested.is_set():
                    self.hurry.set()
                else:
                    self.request(f"{signal.Signals(signum).name} received")

    def request(self, why: str) -> None:
        self.why = self.why or why
        self.requested.set()

    def print(self, text: str, file: object = None) -> None:
        """print() that survives a reader who left (`| head`) or a full disk: it asks for a stop instead."""
        with self._print_lock:
            try:
                print(text, file=file or sys.stdout, flush=True)
            except (BrokenPipeError, OSError, ValueError):
                # Point stdout at /dev/null, so that Python's last flush at exit has nowhere to fail.
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                self.request("stdout closed")


def leave_now(code: int) -> None:
    """Exit without Python's finalization: sessions are closed and output flushed by now, and a last
    Ctrl-C landing during finalization would otherwise print a traceback instead of exiting `code`."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
# ---------------------------------------------------------------- end of plumbing
