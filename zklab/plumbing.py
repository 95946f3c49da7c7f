"""The lab's one dialect for plumbing: the --zk grammar, number arguments, signals, reconnects, client start/stop.

Each challenge script must stay standalone (kazoo, mmh3 and the standard library), so each carries its
own copy of the block between the two marker lines below, character for character; tests/test_project.py
compares the three copies. The lab's tools (runner, tree, smoke, checker) import it from here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import ipaddress
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from kazoo.client import KazooClient

# ---------------------------------------------------------------- plumbing (the same in both scripts)
# Kazoo backs off up to a minute by default: capped, a client is back within 0.5 s of ZooKeeper.
RECONNECT = {"max_tries": -1, "delay": 0.1, "max_delay": 0.5}
# A host name (RFC 1123): dot-separated labels of letters, digits and inner hyphens; IPv4 fits it too.
HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
ZK_FORM = "host:port[,host:port...][/chroot]"
def parse_zk(text: str) -> tuple[list[tuple[str, int]], str]:
    """ZK_FORM as (hosts, chroot); ValueError says what is wrong."""
    hosts, slash, rest = text.strip().partition("/")
    if slash and any(not p or p in (".", "..") or not p.isprintable() for p in rest.split("/")):
        raise ValueError(f"the chroot {slash + rest!r} must be an absolute znode path like /lab, with no empty, "
                         "'.' or '..' part and no trailing '/'")
    return [parse_host(item.strip()) for item in hosts.split(",")], slash + rest
def parse_host(item: str) -> tuple[str, int]:
    """'host[:port]' or '[ipv6][:port]', in ASCII; the port defaults to 2181."""
    match = re.fullmatch(r"(?:\[(.*)\]|([^:\[\]]*))(?::([0-9]{1,5}))?", item)
    if match is None or not 1 <= int(match[3] or 2181) <= 65535:
        raise ValueError(f"{item!r} is not host:port with a port from 1 to 65535 (IPv6 in brackets: [::1]:2181)")
    v6, name, port = match.groups()
    try:
        host = name if v6 is None else ipaddress.IPv6Address(v6).compressed
    except ValueError:
        raise ValueError(f"{item!r}: {v6!r} is not an IPv6 address") from None
    if len(host) > 253 or not (v6 or HOSTNAME.fullmatch(host)):
        raise ValueError(f"{item!r}: {host!r} is neither a host name nor an IPv4 address")
    return host, int(port or 2181)
def zk_arg(text: str) -> str:
    try:
        return parse_zk(text) and text.strip()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be {ZK_FORM}: {exc}") from None
def number_arg(kind: type, low: float, high: float, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` in ASCII digits ("٣" is not 3), within [low, high] ((low, high] if above)."""
    rule = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"
    def check(text: str) -> float:
        with contextlib.suppress(ValueError, OverflowError):
            value = kind(text) if text.isascii() else math.nan
            if math.isfinite(value) and low <= value <= high and (value > low or not above):
                return value
        raise argparse.ArgumentTypeError(f"must be a {'whole' if kind is int else 'finite'} number {rule}, "
                                         f"not {text!r}")
    return check
def new_client(hosts: str, session_timeout: float = 10.0, **kwargs: object) -> KazooClient:
    return KazooClient(hosts=hosts, timeout=session_timeout, connection_retry=dict(RECONNECT), **kwargs)
def start_client(client: KazooClient, timeout: float, stop: threading.Event | None = None) -> bool:
    """Connect within `timeout` or until `stop`; True if connected. (start() may block 10 s more, and warns.)"""
    connected, deadline = client.start_async(), time.monotonic() + timeout
    while not connected.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            break
    return client.connected
def stop_client(client: KazooClient, timeout: float) -> bool:
    """Close the session within `timeout` (kazoo's stop() blocks 10 s or more while ZooKeeper is away)."""
    def stop_and_close() -> None:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
    thread = threading.Thread(target=stop_and_close, name="stop-client", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    return not thread.is_alive()
class Shutdown:
    """Ctrl-C, SIGTERM and a closed stdout, as events. Setting an Event in a signal handler can deadlock, so the
    handlers do nothing: a thread reads the signals from set_wakeup_fd's pipe. A second signal: hurry."""
    def __init__(self) -> None:
        self.requested, self.hurry, self._print_lock = threading.Event(), threading.Event(), threading.Lock()
        self.why = self.stdout_error = ""  # stdout_error: stdout failed for real (a full disk), not a reader who left
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
                self.hurry.set() if self.requested.is_set() else self.request(f"{signal.Signals(signum).name} received")
    def request(self, why: str) -> None:
        self.why = self.why or why
        self.requested.set()
    def print(self, text: str, file: object = None) -> None:
        """print(); if stdout fails, ask for a stop, and keep a real error (not a reader who left) in stdout_error."""
        with self._print_lock:
            try:
                print(text, file=file or sys.stdout, flush=True)
            except (OSError, ValueError) as exc:
                if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                    self.stdout_error = self.stdout_error or exc.strerror or str(exc)
                with contextlib.suppress(OSError, ValueError):  # Python's last flush at exit: to /dev/null
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                self.request("stdout closed")
def leave_now(code: int) -> None:
    """Flush, then exit without finalization, where a last Ctrl-C would print a traceback instead."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
# ---------------------------------------------------------------- end of plumbing


def chroot_hint(hosts: str) -> str:
    """Commands that create a missing chroot, one zkCli.sh create per level (create makes no parents)."""
    servers, chroot = parse_zk(hosts)
    host, port = servers[0]
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    parts = chroot.strip("/").split("/")
    levels = ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]
    # `;`, not `&&`: a level that exists already fails its create, and the next must still run.
    return "; ".join(f"zkCli.sh -server {server} create {shlex.quote(level)}" for level in levels)


def one_line_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's error without the usage block above it: a bad argument is one line, exit 2 (the scripts
    say it the same way, with a lambda in their parse_args)."""
    parser.exit(2, f"{parser.prog}: error: {message}; --help says more\n")


# Every parser of the lab's tools (they all import this module) is held to the rule.
argparse.ArgumentParser.error = one_line_error


def load_script(path: Path, timeout: float) -> ModuleType | str:
    """Import the learner's script (as edited) off the calling thread, within `timeout`: the module, or one
    line saying why not. Its top level is the learner's code: it may raise, exit or block, and none of that
    may take the caller, which keeps the time, with it."""
    loaded: list[ModuleType | BaseException] = []

    def load() -> None:
        sys.path.insert(0, str(path.parent))
        try:
            loaded.append(importlib.import_module(path.stem))
        except BaseException as exc:  # a SyntaxError, a SystemExit or KeyboardInterrupt raised at import
            loaded.append(exc)

    loader = threading.Thread(target=load, name="load-script", daemon=True)
    loader.start()
    loader.join(timeout)
    if not loaded:
        return f"error: {path.name} does not load: still loading after {timeout:g} s (a wait at its top level?)"
    if isinstance(loaded[0], BaseException):
        exc = loaded[0]
        return f"error: {path.name} does not load: {type(exc).__name__}: {exc}".rstrip(": ")
    return loaded[0]
