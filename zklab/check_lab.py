"""The checker's workbench: a learner's script loaded fresh, a ZooKeeper, namespaces, clients, faults, verdicts.

Every guarantee in zklab.check_leader and zklab.check_hashing runs in a `Lab`. The lab hands out
clients and proxies and closes them afterwards, so a guarantee only describes its scenario. The same
definitions serve `./run.sh check` and the pytest suite: one definition per guarantee.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import itertools
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from zklab.faults import wait_until
from zklab.lanes import MARKS, Lane, draw_timeline, utf8_output
from zklab.proxy import PartitionProxy, no_delay

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"leader": "challenge_leader_election.py", "hashing": "challenge_consistent_hashing.py"}
# Kazoo's reconnect backoff grows without a cap; capped, a client is back within half a second of a heal.
RECONNECT_BACKOFF = {"max_tries": -1, "max_delay": 0.5}
# Long enough for a loaded 2-core machine, short enough that an expiry costs a second or two.
SESSION_TIMEOUT = 2.0
# How long a lab waits for what it closes at the end (resigns, watchers, clients), in all.
CLOSE_TIMEOUT = 3.0
# The lanes of a failed guarantee: printed indented by 4 under its advice, within 100 columns in all.
EVIDENCE_WIDTH = 96
# The longest a tap holds a request back: a forgotten hold must not cost the session (2 s).
HOLD_AT_MOST = 1.0
# After a failure, how long we watch the script's threads for ones that spin, and the share of that window
# they must spend on the CPU together to count as spinning (waiting threads spend none; a 2-core machine
# shared by four busy processes gives a spinning one barely half).
BUSY_WINDOW = 0.2
BUSY_SHARE = 0.15

T = TypeVar("T")
_loaded = itertools.count()


# ---------------------------------------------------------------- verdicts

@dataclass
class Verdict:
    key: str
    ok: bool
    figure: str        # what was measured, in the lesson's words
    advice: str = ""   # on failure: what happened, why it matters, where to look
    evidence: list[str] = field(default_factory=list)  # on failure: a few lines that show it (lanes, keys)
    unwritten: str = ""  # the step function that raised NotImplementedError, if that is why it failed


class Broken(Exception):
    """A guarantee failed part-way through its scenario; later steps were not reached."""

    def __init__(self, key: str, figure: str, advice: str = ""):
        super().__init__(figure)
        self.verdict = Verdict(key, False, figure, advice)


@dataclass
class Findings:
    """The verdicts one scenario has reached so far."""
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    def hold(self, key: str, figure: str) -> None:
        self.verdicts[key] = Verdict(key, True, figure)

    def fail(self, key: str, figure: str, advice: str) -> None:
        self.verdicts[key] = Verdict(key, False, figure, advice)

    def judge(self, key: str, ok: bool, figure: str, advice: str) -> bool:
        self.verdicts[key] = Verdict(key, ok, figure, "" if ok else advice)
        return ok


def wait_for(predicate: Callable[[], T], bound: float, key: str, figure: str, advice: str,
             interval: float = 0.003) -> T:
    """Poll until `predicate` gives something truthy; past `bound` seconds the guarantee `key` fails."""
    return wait_until(predicate, bound, key, interval, failure=lambda: Broken(key, figure, advice))


def crash_figure(exc: BaseException, script: ModuleType) -> str:
    """'LeaderElection.start raised TypeError: boom (line 250)': where the learner's code raised, in one line."""
    found = script_error(exc, script.__file__)
    if found is not None:
        return found.words()
    text = str(exc).splitlines()[0] if str(exc) else ""
    gone = " (a znode the check had made was gone: something deleted it, the script perhaps)" \
        if isinstance(exc, NoNodeError) else ""
    return f"the check stopped with {type(exc).__name__}" + (f": {text}" if text else "") + gone


# ---------------------------------------------------------------- the script's own errors, on any thread

@dataclass(frozen=True)
class ScriptError:
    """An exception raised in the learner's code: the script's innermost function on its way out."""
    where: str     # qualname, e.g. LeaderElection._check_position
    kind: str      # the exception's type
    message: str   # its first line
    line: int

    def words(self) -> str:
        if self.kind == "NotImplementedError":
            return f"not written yet: {self.where}"
        return f"{self.where} raised {self.kind}" + (f": {self.message}" if self.message else "") + \
            f" (line {self.line})"


def script_error(exc: BaseException, script_file: str) -> ScriptError | None:
    """Where in the script `exc` was raised (or came through, from a library it called); None if not in it."""
    tb, mine = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == script_file:
            mine = tb
        tb = tb.tb_next
    if mine is None:
        return None
    code, text = mine.tb_frame.f_code, (str(exc).splitlines() or [""])[0]
    return ScriptError(getattr(code, "co_qualname", code.co_name), type(exc).__name__, text[:160], mine.tb_lineno)


# Exceptions that mean a bug in the code they pass through (kazoo's, and the recipe's own refusals such as
# NotLeaderError or an empty ring's LookupError, are answers, not bugs).
BUG_TYPES = (NotImplementedError, TypeError, ValueError, AttributeError, KeyError, IndexError, NameError,
             UnboundLocalError, ZeroDivisionError, AssertionError, RecursionError)


def qualname_at(path: str | Path, line: int) -> str | None:
    """The qualified name of the innermost function of the file at `path` that holds line `line`."""
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    found, body, prefix = None, tree.body, ""
    while True:
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.lineno <= line <= n.end_lineno), None)
        if node is None:
            return found
        prefix = f"{prefix}{node.name}"
        if not isinstance(node, ast.ClassDef):
            found = prefix
        body, prefix = node.body, prefix + "."


class ErrorWatch(logging.Handler):
    """Collects exceptions from the script's code on every thread: threads that died of one, and the ones a
    thread caught and logged (an election's loop, kazoo's callback thread), which would otherwise hide."""

    def __init__(self, script_file: str):
        super().__init__(logging.WARNING)
        self.script_file = script_file
        self.errors: list[ScriptError] = []
        self._seen: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.note(record.exc_info[1])

    def note(self, exc: BaseException) -> None:
        if any(exc is seen for seen in self._seen):
            return  # the same exception on its way out through another of the script's functions
        self._seen = [*self._seen[-20:], exc]
        found = script_error(exc, self.script_file)
        if found is not None and len(self.errors) < 1000:  # a retry loop may raise forever: keep a bounded few
            self.errors.append(found)

    def instrument(self, module: ModuleType) -> None:
        """Note every bug-like exception that leaves one of the module's functions or methods, on any thread,
        even one the script then catches and hides (a loop's `except Exception`). Behaviour is unchanged:
        the exception goes on its way."""
        for name, value in list(vars(module).items()):
            if isinstance(value, FunctionType) and value.__module__ == module.__name__:
                setattr(module, name, self._traced(value))
            elif isinstance(value, type) and value.__module__ == module.__name__:
                for attr, member in list(vars(value).items()):
                    if isinstance(member, FunctionType) and not attr.startswith("__"):
                        setattr(value, attr, self._traced(member))
                    elif isinstance(member, property) and member.fget is not None:
                        setattr(value, attr, property(self._traced(member.fget), member.fset, member.fdel,
                                                      member.__doc__))

    def _traced(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def traced(*args: object, **kwargs: object) -> object:
            try:
                return function(*args, **kwargs)
            except BUG_TYPES as exc:
                self.note(exc)
                raise
        return traced

    def thread_died(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            self.note(args.exc_value)

    def since(self, start: int) -> ScriptError | None:
        """The error to name after `start`: a step not written first, else the first one."""
        errors = self.errors[start:]
        return next((e for e in errors if e.kind == "NotImplementedError"), errors[0] if errors else None)


# ---------------------------------------------------------------- the learner's script

def load_script(challenge: str, directory: Path | str = ROOT) -> ModuleType:
    """Import challenge's script from `directory` as a fresh module object, whatever is already imported."""
    path = Path(directory, SCRIPTS[challenge]).resolve()
    name = f"zklab_checked_{challenge}_{next(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here while the class is built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# ---------------------------------------------------------------- a relay that reads ZooKeeper's frames

GET_DATA = 4        # ZooKeeper's opcode for getData
GET_CHILDREN = {8, 12}  # getChildren and getChildren2 (the one that also returns the parent's stat)
CREATES = {1, 14, 15, 19, 21}  # create, multi, create2, createContainer, createTTL
WATCHED_READS = {3, 4, 8, 12}  # exists, getData, getChildren(2): each request ends with its watch flag
MULTI = 14          # a transaction: every operation in it commits, or none
WATCH_EVENT_XID = -1  # a reply header with this xid carries a watch notification, not an answer


def request_header(index: int, frame: bytes) -> tuple[int | None, int | None]:
    """(xid, opcode) of a client's request frame; (None, None) for the first frame (the connect request,
    which has neither) or one too short to hold them."""
    if index == 0 or len(frame) < 12:
        return None, None
    return int.from_bytes(frame[4:8], "big", signed=True), int.from_bytes(frame[8:12], "big", signed=True)


def reply_xid(index: int, frame: bytes) -> int | None:
    """The xid a reply frame echoes (WATCH_EVENT_XID for a notification); None for the connect reply."""
    return int.from_bytes(frame[4:8], "big", signed=True) if index > 0 and len(frame) >= 8 else None


class WireTap:
    """A loopback relay between one client and ZooKeeper that reads the frames passing through.

    ZooKeeper's wire format: every frame is a 4-byte length, then (after the connect handshake) a
    header whose first field is the xid. Replies echo the request's xid; a watch notification has
    xid -1. So the tap counts the notifications a session really received, whatever the client
    code does with them, and can hold back the answers to getData requests to make reads slow.
    It counts the reads that asked for a watch, and can hold back one notification (hold_next_event).
    """

    def __init__(self, target: str, delay_data: float = 0.0):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.delay_data = delay_data
        self.events: list[tuple[int, str]] = []   # (event type, path) of every watch notification
        self.last_frame = time.monotonic()        # when a frame last passed, either way
        self.held = threading.Event()             # set while a request is held back (hold_after_children)
        self.held_op: int | None = None           # the opcode of the request held
        self._armed = ""                          # "", "armed", "created" or "children seen"
        self._hold_op: int | None = None          # hold back the next request with this opcode (hold_next)
        self._hold_for = HOLD_AT_MOST             # ... for at most this long
        self._release = threading.Event()
        self.lose_reply_to: set[int] = set()      # drop the reply to the next request with one of these opcodes
        self.reply_lost = threading.Event()       # (CREATES: a create), and the connection; set once dropped
        # Called on the relay's thread once ZooKeeper did the request and before its reply is dropped: the client
        # is still waiting, so what this changes in ZooKeeper is there before the client can look again.
        self.on_reply_lost: Callable[[], object] | None = None
        self._lost_xid: int | None = None
        self.watches = 0                          # reads that asked for a watch (exists, getData, getChildren)
        self._hold_event = False                  # hold back the next watch notification (hold_next_event)
        self._stashed: list[tuple[socket.socket, bytes]] = []  # notifications held, with the socket they go to
        self._send_lock = threading.Lock()        # release() sends what was held beside the relay's thread
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, name="wiretap", daemon=True).start()

    def hold_after_children(self) -> None:
        """Hold back the first request that follows the client's first getChildren after a create,
        until release().

        A candidate creates its node, reads the children, then looks at its predecessor: holding that
        look lets a check change the world between the two reads, every time, instead of by luck.
        Pings and other negative-xid frames pass: only a real request is held (at most HOLD_AT_MOST).
        """
        self.held.clear()
        self._release.clear()
        self._armed = "armed"

    def hold_next(self, op: int, at_most: float = HOLD_AT_MOST) -> None:
        """Hold back the client's next request with opcode `op` until release() (at most `at_most` s): what
        the client read before sending it can go stale meanwhile, and its answer comes that much later."""
        self.held.clear()
        self._release.clear()
        self._hold_op, self._hold_for = op, at_most

    def hold_next_event(self) -> None:
        """Hold back the next watch notification until release(); the frames after it pass (pings, answers).

        As a client whose thread is slow to act on a notification: it looks at the world later than it
        was told of the change, and by then the world (or its server's view of it) has moved on.
        """
        self.held.clear()
        self._hold_event = True

    def release(self) -> None:
        self._armed, self._hold_event, self._hold_op = "", False, None
        self._release.set()
        with self._send_lock:
            stashed, self._stashed = self._stashed, []
            for sock, frame in stashed:
                self._send(sock, frame)

    def close(self) -> None:
        self._release.set()
        self._closed = True
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                near, _ = self._server.accept()
                far = socket.create_connection(self.target, timeout=5)
                far.settimeout(None)
                no_delay(near)
                no_delay(far)
            except OSError:
                with contextlib.suppress(NameError, OSError):
                    near.close()
                continue
            self._sockets += [near, far]
            data_xids: set[int] = set()
            threading.Thread(target=self._requests, args=(near, far, data_xids), daemon=True).start()
            threading.Thread(target=self._replies, args=(far, near, data_xids), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, data_xids: set[int]) -> None:
        for index, frame in self._frames(src):
            self.last_frame = time.monotonic()
            xid, op = request_header(index, frame)
            if xid is not None:
                if op == GET_DATA:
                    data_xids.add(xid)
                if op in self.lose_reply_to and self._lost_xid is None:
                    self._lost_xid = xid
                if op in WATCHED_READS and frame[-1:] == b"\x01":
                    self.watches += 1
                self._maybe_hold(xid, op)
            if not self._send(dst, frame):
                break
        self._hang_up(src, dst)

    def _maybe_hold(self, xid: int, op: int) -> None:
        if (self._armed == "children seen" or self._hold_op == op) and xid >= 0:
            self._armed, self._hold_op, self.held_op = "", None, op
            self.held.set()
            self._release.wait(self._hold_for)   # later frames wait behind it: TCP keeps them in order
            self._hold_for = HOLD_AT_MOST
        elif self._armed == "armed" and op in CREATES:
            self._armed = "created"
        elif self._armed == "created" and op in GET_CHILDREN:
            self._armed = "children seen"

    def _replies(self, src: socket.socket, dst: socket.socket, data_xids: set[int]) -> None:
        for index, frame in self._frames(src):
            self.last_frame = time.monotonic()
            xid = reply_xid(index, frame)
            if xid == WATCH_EVENT_XID and len(frame) >= 32:
                kind = int.from_bytes(frame[20:24], "big", signed=True)
                size = int.from_bytes(frame[28:32], "big", signed=True)
                self.events.append((kind, frame[32:32 + max(0, size)].decode(errors="replace")))
            elif xid in data_xids and self.delay_data:
                data_xids.discard(xid)
                time.sleep(self.delay_data)  # later frames wait too: TCP delivers in order
            elif xid is not None and xid == self._lost_xid:
                # ZooKeeper did it (made the node); its answer is lost with the connection, as in a network failure.
                self.lose_reply_to, self._lost_xid = set(), None
                if self.on_reply_lost is not None:
                    self.on_reply_lost()
                self.reply_lost.set()
                break
            if xid == WATCH_EVENT_XID and self._stash(dst, frame):
                continue
            with self._send_lock:
                sent = self._send(dst, frame)
            if not sent:
                break
        self._hang_up(src, dst)

    def _stash(self, dst: socket.socket, frame: bytes) -> bool:
        """Keep a notification back if one is to be held (hold_next_event); True if this one was."""
        with self._send_lock:
            if not self._hold_event:
                return False
            self._hold_event = False
            self._stashed.append((dst, frame))
        self.held.set()
        return True

    @staticmethod
    def _frames(sock: socket.socket) -> Iterable[tuple[int, bytes]]:
        buffer, index = b"", 0
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 4 and len(buffer) >= 4 + (size := int.from_bytes(buffer[:4], "big")):
                yield index, buffer[:4 + size]
                buffer, index = buffer[4 + size:], index + 1

    @staticmethod
    def _send(sock: socket.socket, frame: bytes) -> bool:
        try:
            sock.sendall(frame)
            return True
        except OSError:
            return False

    @staticmethod
    def _hang_up(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------- the lab

class Lab:
    """What one check needs: the script, a ZooKeeper, and clients and faults that are cleaned up after."""

    def __init__(self, script: ModuleType, zk_address: Callable[[], str] | str | None = None,
                 ensemble: Callable[[], object] | None = None, errors: ErrorWatch | None = None,
                 utf8: bool | None = None):
        self.script = script
        self._zk_address = zk_address
        self._ensemble = ensemble
        self.errors = errors or ErrorWatch(script.__file__)  # installed by the checker's process, else empty
        self.utf8 = utf8_output() if utf8 is None else utf8
        self.samplers: list[LeaderSampler] = []
        self._closers: list[Callable[[], object]] = []

    def ensemble(self) -> object:
        """A 3-server ZooKeeperCluster whose peer links can be cut (isolate); started once, shared."""
        if self._ensemble is None:
            raise RuntimeError("this check needs a 3-server ensemble, and the lab has none")
        return self._ensemble()

    def sampler(self) -> LeaderSampler:
        """A LeaderSampler that stops when the lab closes; a failed guarantee shows its lanes."""
        sampler = LeaderSampler()
        self.samplers.append(sampler)
        self.on_close(sampler.stop)
        return sampler

    @property
    def zk_address(self) -> str:
        """host:port of the lab's ZooKeeper (waiting for it, if it is still starting)."""
        address = self._zk_address() if callable(self._zk_address) else self._zk_address
        if not address:
            raise RuntimeError("this check needs a ZooKeeper, and the lab has none")
        return address

    def namespace(self) -> str:
        """A fresh chroot, so checks sharing one server never see each other's znodes."""
        path = f"/check-{uuid.uuid4().hex[:12]}"
        admin = self.client(chroot="")
        admin.ensure_path(path)
        return path

    def client(self, chroot: str = "", timeout: float = SESSION_TIMEOUT, via: str | None = None) -> KazooClient:
        """A started client, through `via` (a proxy's or tap's address) if given; closed with the lab."""
        client = KazooClient(hosts=(via or self.zk_address) + chroot, timeout=timeout,
                             connection_retry=dict(RECONNECT_BACKOFF))
        self.on_close(lambda: (client.stop(), client.close()))
        client.start(timeout=10)
        return client

    def proxy(self) -> PartitionProxy:
        proxy = PartitionProxy(self.zk_address)
        self.on_close(proxy.close)
        return proxy

    def tap(self, delay_data: float = 0.0, target: str | None = None) -> WireTap:
        """A WireTap to the lab's ZooKeeper, or to `target` (host:port: one server of the ensemble)."""
        tap = WireTap(target or self.zk_address, delay_data)
        self.on_close(tap.close)
        return tap

    def on_close(self, closer: Callable[[], object]) -> None:
        """Run `closer` when the lab closes, most recent first (a resign before its client stops)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Close everything, newest first, within CLOSE_TIMEOUT in all: a hung resign must not hang us."""
        closers, self._closers = self._closers, []
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for closer in reversed(closers):
            bounded(closer, max(0.05, deadline - time.monotonic()))


def bounded(call: Callable[[], object], timeout: float) -> bool:
    """Run `call` on a thread of its own; give up waiting after `timeout`. False if it raised or hung."""
    outcome: list[bool] = []

    def run() -> None:
        try:
            call()
            outcome.append(True)
        except Exception:
            outcome.append(False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


# ---------------------------------------------------------------- measuring leaders

class LeaderSampler:
    """Samples every candidate's `is_leader` on a thread of its own: the most acting at one instant,
    and each candidate's lane (when it acted, as sampled), for the picture of a failed guarantee."""

    def __init__(self, interval: float = 0.002):
        self.candidates: list[object] = []
        self.most = 0
        self.overlap: list[str] = []   # names acting together when `most` was reached
        self.together = 0.0            # seconds during which two or more acted at once
        self.longest_gap = 0.0         # the longest stretch without a leader, once someone had led
        self.error: BaseException | None = None
        self.began = time.monotonic()
        self._gap_since: float | None = None
        self.lanes: dict[str, Lane] = {}
        self._stop = threading.Event()
        self._interval = interval
        self._rounds = 0                     # samples taken and counted so far
        self._counted = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="leader-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)

    def settle(self, bound: float = 1.0) -> None:
        """Wait until a sample begun after this call is counted, so that a judgement made now reads figures no
        older than what the caller just saw (a starved sampler thread may lag the is_leader the judge looked at)."""
        with self._counted:
            target = self._rounds + 2  # the round under way may have begun before this call
            self._counted.wait_for(lambda: self._rounds >= target or not self._thread.is_alive(), bound)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                seen = [(c.name, bool(c.is_leader)) for c in list(self.candidates)]
            except Exception as exc:
                self.error = exc
                return
            now = time.monotonic()
            acting = [name for name, leading in seen if leading]
            self._record(seen, now)
            self._gap(bool(acting), now)
            if len(acting) > 1:
                self.together += now - last
            last = now
            if len(acting) > self.most:
                self.most, self.overlap = len(acting), acting
            with self._counted:
                self._rounds += 1
                self._counted.notify_all()

    def _gap(self, led: bool, now: float) -> None:
        if led:
            self._gap_since = None
        elif self._gap_since is None and any(lane.history for lane in self.lanes.values()):
            self._gap_since = now
        if self._gap_since is not None:
            self.longest_gap = max(self.longest_gap, now - self._gap_since)

    def _record(self, seen: list[tuple[str, bool]], now: float) -> None:
        for name, leading in seen:
            lane = self.lanes.setdefault(name, Lane(name, [], joined=now))
            if (lane.history[-1][1] if lane.history else False) != leading:
                lane.history.append((now, leading, "sampled"))

    def started(self, name: str) -> float | None:
        """When `name` last began to act as leader, as sampled."""
        lane = self.lanes.get(name)
        return next((t for t, leading, _ in reversed(lane.history) if leading), None) if lane else None

    def stopped(self, name: str) -> float | None:
        """When `name` last stopped acting as leader, as sampled."""
        lane = self.lanes.get(name)
        return next((t for t, leading, _ in reversed(lane.history) if not leading), None) if lane else None

    def picture(self, utf8: bool) -> list[str]:
        """The lanes of every candidate, from the samples: who led when, within 100 columns."""
        if not any(leading for lane in self.lanes.values() for _, leading, _ in lane.history):
            return []  # nobody led: lanes of waiting would show nothing
        end = time.monotonic()
        lanes = list(self.lanes.values())
        rows = draw_timeline(lanes, self.began, end, utf8, width=EVIDENCE_WIDTH)
        rows = rows[:-2]  # the demo's legend (partitions, crashes, rejected writes) and scale: not sampled here
        marks = MARKS[utf8]
        said = [f"{marks['lead']} leading  {marks['wait']} in the election (is_leader sampled every 2 ms)"]
        said += [f"two leaders at once for {self.together:.2f} s in all"] if self.together else []
        said += [f"the longest time without a leader: {self.longest_gap:.2f} s"] if self.longest_gap >= 0.1 else []
        return rows + [f"{'':6}{line}" for line in said]


def most_at_once(histories: Iterable[list[tuple[float, bool, str]]]) -> int:
    """The most candidates acting as leader at one instant, from each candidate's own record of its terms."""
    changes = sorted((t, 1 if leading else -1) for history in histories for t, leading, *_ in history)
    acting = peak = 0
    for _, delta in changes:  # at equal times, -1 sorts first: a hand-off is not an overlap
        acting += delta
        peak = max(peak, acting)
    return peak


def started_leading(candidate: object) -> float | None:
    return next((t for t, leading, *_ in reversed(candidate.history) if leading), None)


def stopped_leading(candidate: object) -> float | None:
    return next((t for t, leading, *_ in reversed(candidate.history) if not leading), None)


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


# ---------------------------------------------------------------- running a check

@dataclass(frozen=True)
class Check:
    """One scenario and the guarantees it measures (key -> the guarantee in plain words)."""
    guarantees: dict[str, str]
    run: Callable[..., None]          # run(lab, findings, **options)
    bound: float                      # seconds the scenario may take, guarantees broken or not
    needs_zk: bool = True
    needs_ensemble: bool = False      # a 3-server ensemble with cuttable peer links (started once, shared)
    prepare: Callable[[str], object] | None = None  # started with the script's path before any check runs;
                                                     # what it returns reaches run() as `prepared`


def run_check(check: Check, lab: Lab, bound: float | None = None,
              **options: object) -> tuple[list[Verdict], BaseException | None]:
    """Run a scenario within its bound; every guarantee gets a verdict, crash and hang included."""
    found, outcome = Findings(), []
    bound = check.bound if bound is None else min(bound, check.bound)
    errors_before = len(lab.errors.errors)

    def scenario() -> None:
        try:
            check.run(lab, found, **options)
        except Broken as broken:
            found.verdicts[broken.verdict.key] = broken.verdict
        except BaseException as exc:  # the learner's code may raise anything; it is a finding, not our crash
            outcome.append(exc)
            lab.errors.note(exc)

    thread = threading.Thread(target=scenario, name="check", daemon=True)
    thread.start()
    unwritten = wait_scenario(thread, bound, lambda: lab.errors.since(errors_before))
    hung = thread.is_alive() and not unwritten
    where = stuck_in(thread, lab.script) if hung else ""  # before closing, which may wake it
    evidence = [line for sampler in lab.samplers[:1] for line in sampler.picture(lab.utf8)]
    lab.close()
    error = outcome[0] if outcome else None
    verdicts = [found.verdicts.get(key) or unreached(key, hung, where, bound, error, lab) for key in check.guarantees]
    busy = busy_in(lab.script) if not all(v.ok for v in verdicts) else ""  # a hang in our own wait too
    blame(verdicts, lab.errors.since(errors_before), evidence, busy)
    return verdicts, error


def wait_scenario(thread: threading.Thread, bound: float, error: Callable[[], ScriptError | None]) -> bool:
    """Wait for the scenario, at most `bound` s. A step not written yet ends the wait at once: the guarantees
    still open would only wait out their bounds to say the same. True if that is why we stopped waiting."""
    deadline = time.monotonic() + bound
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
        if thread.is_alive() and (found := error()) is not None and found.kind == "NotImplementedError":
            return True
    return False


def unreached(key: str, hung: bool, where: str, bound: float, error: BaseException | None, lab: Lab) -> Verdict:
    """The verdict of a guarantee the scenario never reached: it hung, crashed, or an earlier step failed."""
    if hung:
        return Verdict(key, False, f"{where} did not return within {bound:.0f} s",
                       "A call into the script never returned: look for a wait without a timeout.")
    if error is not None:
        found = script_error(error, lab.script.__file__)
        return Verdict(key, False, crash_figure(error, lab.script), "The script raised where the guarantee expected "
                       "an answer" + (f": look at {found.where}." if found else "."))
    return Verdict(key, False, "not measured: an earlier step of the scenario failed", "Fix the failure above first.")


def blame(verdicts: list[Verdict], error: ScriptError | None, evidence: list[str], busy: str = "") -> None:
    """Failed verdicts say what the script raised meanwhile, on any thread, or where a thread of it spins;
    the first one shows the lanes."""
    failed = [v for v in verdicts if not v.ok]
    for verdict in failed:
        if error is not None and error.kind == "NotImplementedError":
            verdict.figure, verdict.unwritten = error.words(), error.where
            verdict.advice = f"Write {error.where}: its docstring says what it must do. Then check again."
        elif error is not None and error.words() not in verdict.figure:
            verdict.figure = f"{error.words()}; {verdict.figure}"
            verdict.advice += f" Start with the exception {error.where} raised."
        elif busy and busy not in verdict.figure:
            verdict.figure = f"{verdict.figure}; meanwhile a thread of the script kept busy in {busy}"
            verdict.advice = (f"A thread that spins never gets back to the election or the ring: look for a loop "
                              f"that never ends in {busy.split(' (')[0]}. {verdict.advice}").rstrip()
    if failed and evidence and not failed[0].unwritten:
        failed[0].evidence = evidence


def busy_in(script: ModuleType) -> str:
    """'election_order() (challenge_leader_election.py line 81)': where a thread of the script spins (it used
    CPU for at least BUSY_SHARE of a short window, inside the script's code); '' if none does."""
    def cpu() -> dict[int, float]:
        spent = {}
        for ident in sys._current_frames():
            with contextlib.suppress(OSError, ValueError, OverflowError):
                spent[ident] = time.clock_gettime(time.pthread_getcpuclockid(ident))
        return spent

    before = cpu()
    time.sleep(BUSY_WINDOW)
    frames, used = sys._current_frames(), []
    for ident, spent in cpu().items():
        frame = frames.get(ident)
        while frame is not None and frame.f_code.co_filename != script.__file__:
            frame = frame.f_back
        if frame is not None:
            used.append((spent - before.get(ident, spent), frame))
    if sum(spent for spent, _ in used) < BUSY_SHARE * BUSY_WINDOW:  # threads spinning together share the GIL
        return ""
    _, frame = max(used, key=lambda pair: pair[0])
    name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
    return f"{name}() ({Path(frame.f_code.co_filename).name} line {frame.f_lineno})"


def stuck_in(thread: threading.Thread, script: ModuleType) -> str:
    """'LeaderElection.start (challenge_leader_election.py line 250)': where a hung check waits in the script."""
    frame = sys._current_frames().get(thread.ident)
    mine, checker = [], []
    while frame is not None:
        if frame.f_code.co_filename == script.__file__:
            mine.append(frame)
        elif frame.f_code.co_filename.startswith(str(Path(__file__).parent)):
            checker.append(frame.f_code.co_name)
        frame = frame.f_back
    if not mine:  # the checker's own wait: name it, for whoever reads the report
        return f"the scenario (in the checker's {checker[0]})" if checker else "the scenario"
    outer, inner = mine[-1], mine[0]
    name = getattr(outer.f_code, "co_qualname", outer.f_code.co_name)
    return f"{name}() ({Path(inner.f_code.co_filename).name} line {inner.f_lineno})"


def holds(check: Check, lab: Lab, **options: object) -> None:
    """For the tests: assert every guarantee of `check` holds, failing with the checker's own words."""
    verdicts, error = run_check(check, lab, **options)
    broken = [f"{check.guarantees[v.key]}: {v.figure}. {v.advice}" for v in verdicts if not v.ok]
    if broken:
        raise AssertionError("\n".join(broken)) from error
