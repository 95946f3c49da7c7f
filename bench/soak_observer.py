"""The chaos soak's observer: what each demo said (its --events file), what ZooKeeper holds, and the checks.

The demos write one JSON object per line (CONTRACTS B). The observer reads every file as it grows,
keeps its own ZooKeeper client (a ledger watch and a ring of its own), and turns both into verdicts.
The invariant checks are pure functions over parsed events, so a test can feed them a violation.
"""

from __future__ import annotations

import json
import logging
import sysconfig
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.recipe.watchers import DataWatch

from challenge_consistent_hashing import ROOT as HASHING_ROOT
from challenge_consistent_hashing import RingWatcher, members_path
from zklab.demo_leader import CANDIDATES, LEDGER

# The hashing demo runs two routers, numbered 0 and 1; a quiet check wants a ring from each.
ROUTERS = (0, 1)
# A process over this much resident memory fails the soak (issue 10), and is killed at once so that a
# runaway ring cannot take the machine down with it.
MEMORY_LIMIT_MB = 300
# How often the memory sampler reads /proc: a runaway grows by hundreds of MB a second.
SAMPLE_EVERY = 0.2
# The observer's session outlives every fault the nemesis deals, so its watches never lapse; its
# reconnect backoff is capped like every client the lab makes (CONTRACTS A).
OBSERVER_SESSION = 30.0
CONNECTION_RETRY = {"max_tries": -1, "max_delay": 0.5}
# A listing of the demos' znodes that takes longer than this is skipped and tried again next tick.
LIST_TIMEOUT = 1.0


# ---------------------------------------------------------------- one demo process's events

@dataclass
class RunLog:
    """Everything one demo process wrote to its --events file, read as the file grows."""
    path: Path
    offset: int = 0
    lines: int = 0
    run_id: str | None = None
    pid: int | None = None
    started: bool = False
    started_at: float | None = None   # the "start" event's time
    exit_event: dict | None = None
    rings: dict[int, dict] = field(default_factory=dict)   # router -> its latest "ring" event
    ring_events: int = 0
    members_seen: set[str] = field(default_factory=set)    # every member any of its rings ever held
    leadership: list[dict] = field(default_factory=list)   # "lead" and "unlead" events, in file order
    writes: list[dict] = field(default_factory=list)
    rejected: int = 0
    ignored: list[dict] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        try:
            with open(self.path, "rb") as events:
                events.seek(self.offset)
                chunk = events.read()
        except FileNotFoundError:
            return  # the process has not opened it yet (or died first)
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        for raw in chunk[:end].splitlines():
            self._take(raw)

    def _take(self, raw: bytes) -> None:
        self.lines += 1
        try:
            event = json.loads(raw)
            kind, _ = event["event"], float(event["t"])
        except (ValueError, KeyError, TypeError):
            self.bad_lines.append(raw[:200].decode(errors="replace"))
            return
        self.run_id = self.run_id or event.get("run")
        self.pid = self.pid or event.get("pid")
        if kind == "start":
            self.started, self.started_at = True, event["t"]
        elif kind == "exit":
            self.exit_event = event
        elif kind == "ring":
            self.rings[event.get("router")] = event
            self.ring_events += 1
            self.members_seen.update(event.get("members") or [])
        elif kind in ("lead", "unlead"):
            self.leadership.append(event)
        elif kind == "write":
            self.writes.append(event)
        elif kind == "rejected":
            self.rejected += 1
        elif kind == "ignored":
            self.ignored.append(event)


# ---------------------------------------------------------------- the safety invariants (pure)

Interval = tuple[float, float, str]  # (start, end, who)


def _write_line(write: dict) -> str:
    return f"version {write['version']}: epoch {write['epoch']} by {write['worker']} (pid {write.get('pid')})"


def epochs_never_go_back(writes: Iterable[dict]) -> list[str]:
    """Accepted ledger writes in ZooKeeper's order (the znode's version): epochs must not decrease."""
    ordered = sorted(writes, key=lambda w: w["version"])
    problems = []
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after["version"] == before["version"]:
            problems.append(f"ledger version accepted twice: {_write_line(before)} and {_write_line(after)}")
        elif after["epoch"] < before["epoch"]:
            problems.append(f"epoch went back: {_write_line(before)}, then {_write_line(after)}")
    return problems


def one_leader_per_epoch(writes: Iterable[dict]) -> list[str]:
    """No epoch is ever written by two different workers."""
    writers: dict[int, set[str]] = {}
    for write in writes:
        writers.setdefault(write["epoch"], set()).add(write["worker"])
    return [f"epoch {epoch} written by {len(names)} leaders: {', '.join(sorted(names))}"
            for epoch, names in sorted(writers.items()) if len(names) > 1]


def terms(leadership: list[dict], ended: float, who_prefix: str = "") -> list[Interval]:
    """The intervals each worker acted as leader, from its lead/unlead events.

    A term whose unlead is missing ends at `ended` (the process's exit): a dead process acts no more.
    """
    by_worker: dict[str, list[dict]] = {}
    for event in leadership:
        by_worker.setdefault(event["worker"], []).append(event)
    intervals = []
    for worker, events in by_worker.items():
        start = None
        for event in sorted(events, key=lambda e: e["t"]):  # stable: file order breaks ties
            if event["event"] == "lead" and start is None:
                start = event
            elif event["event"] == "unlead" and start is not None:
                intervals.append((start["t"], event["t"], f"{who_prefix}{worker} epoch {start.get('epoch')}"))
                start = None
        if start is not None:
            intervals.append((start["t"], ended, f"{who_prefix}{worker} epoch {start.get('epoch')} (until exit)"))
    return intervals


def leaders_at_once(intervals: Iterable[Interval]) -> list[str]:
    """Pairs of terms that overlap in time (touching ends are a hand-off, not an overlap)."""
    problems, active = [], []
    for start, end, who in sorted(intervals):
        active = [(s, e, w) for s, e, w in active if e > start]
        problems += [f"{w} led until {e:.3f} while {who} led from {start:.3f} ({min(e, end) - start:.3f} s together)"
                     for s, e, w in active if w != who]
        active.append((start, end, who))
    return problems


def warned_once(ignored: Iterable[dict]) -> list[str]:
    """A member the routers ignore is warned about once per router, not once per rebuild."""
    counts: dict[tuple, int] = {}
    for event in ignored:
        key = (event.get("pid"), event.get("router"), event.get("member"))
        counts[key] = counts.get(key, 0) + 1
    return [f"pid {pid} router {router} warned {n} times about member {member!r}"
            for (pid, router, member), n in counts.items() if n > 1]


def ledger_matches(observed: Iterable[tuple[int, bytes]], writes: Iterable[dict]) -> tuple[int, list[str]]:
    """What the observer's own watch saw in the ledger agrees with the writes the demos reported.

    Returns (versions compared, problems). The observer's versions must also carry epochs that never
    go back, independently of what the demos said.
    """
    reported = {w["version"]: w for w in writes}
    problems, seen, compared = [], [], 0
    for version, data in sorted(observed):
        try:
            record = json.loads(data)
            epoch, leader = record["epoch"], record["leader"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"ledger version {version} holds data that is not a ledger record: {data[:80]!r}")
            continue
        if seen and epoch < seen[-1][1]:
            problems.append(f"the observer saw the ledger's epoch go back: version {seen[-1][0]} epoch "
                            f"{seen[-1][1]}, then version {version} epoch {epoch}")
        seen.append((version, epoch))
        if (write := reported.get(version)) is not None:
            compared += 1
            if (write["epoch"], write["worker"]) != (epoch, leader):
                problems.append(f"ledger version {version} holds epoch {epoch} by {leader}, but {_write_line(write)}")
    return compared, problems


# ---------------------------------------------------------------- the observer's own view of ZooKeeper

class LedgerWatch:
    """Every version of the ledger znode this client saw; the callback only records it."""

    def __init__(self, client: KazooClient, path: str):
        self.seen: list[tuple[int, bytes]] = []
        DataWatch(client, path, self._changed)

    def _changed(self, data: bytes | None, stat: object) -> None:
        if data is not None and stat is not None:
            self.seen.append((stat.version, data))


class LeftoverCheck:
    """After a demo process exits, no znode carrying its RUN_ID may outlive `deadline`."""

    def __init__(self, label: str, run_id: str, deadline: Callable[[], float]):
        self.label, self.run_id, self.deadline = label, run_id, deadline
        self.verdict: str | None = None   # None while pending, then "clean" or the leftovers

    def carries_run(self, name: str) -> bool:
        # Worker names end "-<RUN_ID>" (inside "<guid>__w1-ab12__0000000007"); member names end with it.
        return name.endswith(f"-{self.run_id}") or f"-{self.run_id}__" in name

    def look(self, children: list[str], now: float) -> None:
        left = [name for name in children if self.carries_run(name)]
        if not left:
            self.verdict = "clean"
        elif now > self.deadline():
            self.verdict = f"{self.label} (run {self.run_id}) left {len(left)} znode(s): {', '.join(left[:3])}"


class MemorySampler:
    """Reads VmRSS and VmHWM of every live demo process from /proc; kills one that passes the limit."""

    def __init__(self, live: Callable[[], list], on_over: Callable[[object, int], None]):
        self._live, self._on_over = live, on_over
        self.samples = 0
        self.peak_kb = 0
        self.peak_of = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            for run in self._live():
                self.sample(run)

    def sample(self, run: object) -> None:
        status = read_status(run.proc.pid)
        if not status:
            return  # exited between the listing and the read
        self.samples += 1
        rss, hwm = status.get("VmRSS", 0), status.get("VmHWM", 0)
        run.peak_kb = max(run.peak_kb, rss, hwm)
        if run.peak_kb > self.peak_kb:
            self.peak_kb, self.peak_of = run.peak_kb, run.label
        if rss > MEMORY_LIMIT_MB * 1024:
            self._on_over(run, rss)


def read_status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/status ({} if the process is gone)."""
    figures = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    figures[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return figures


# CPython's own start-up runs before a script's first line, and a signal that lands there is the
# interpreter's to handle: no script can. A SIGINT while Python looks at argv[0] is reported with this
# line and a traceback of frozen frames, then swallowed: the script runs as if nothing happened.
SWALLOWED_AT_STARTUP = "Failed checking if argv[0] is an import path entry"


def tracebacks(stderr: Path) -> list[list[str]]:
    """Every traceback in a demo's stderr, chained ones ("During handling ...") kept together."""
    try:
        text = stderr.read_text(errors="replace").splitlines()
    except OSError:
        return []
    groups: list[list[str]] = []
    inside = chained = False
    previous = ""
    for line in text:
        previous, before = (line, previous) if line.strip() else (previous, previous)
        if line.startswith("Traceback (most recent call last):"):
            if not chained:
                groups.append([before] if before == SWALLOWED_AT_STARTUP else [])
            groups[-1].append(line)
            inside, chained = True, False
        elif inside and line.strip():
            groups[-1].append(line)
            inside = line.startswith(" ")  # the first line not indented is the exception itself
        elif groups and line.startswith(("During handling", "The above exception")):
            groups[-1].append(line)
            chained = True
        elif line.strip():
            chained = False
    return groups


# The standard library's folder: a frame there, under runpy, is Python starting, not our code running.
STDLIB = sysconfig.get_paths()["stdlib"]


def in_interpreter_startup(group: list[str]) -> bool:
    """A traceback that Python printed while it started, before the script's first line: the swallowed
    one (see above), one inside the site module (which Python imports before any script), one whose
    frames are all Python's own start-up (runpy finding a `-m` module, frozen, and the standard library
    modules it imports on the way, such as functools: none of ours had a line run), or one whose only
    frame is the script at line 0 (not a statement of it had run)."""
    frames = [line.strip() for line in group if line.strip().startswith('File "')]
    in_site = any(frame.startswith('File "<frozen site>"') for frame in frames)
    in_runpy = bool(frames) and frames[0].startswith('File "<frozen ') and all(
        frame.startswith(('File "<frozen ', f'File "{STDLIB}/')) for frame in frames)
    at_line_0 = len(frames) == 1 and frames[0].endswith(", line 0, in <module>")
    return group[0] == SWALLOWED_AT_STARTUP or in_site or in_runpy or at_line_0


# ---------------------------------------------------------------- the observer

class Observer:
    """An independent client: its own ring, a watch on the ledger, and the leftover checks."""

    def __init__(self, hosts: str):
        self.client = KazooClient(hosts=hosts, timeout=OBSERVER_SESSION, connection_retry=CONNECTION_RETRY)
        self.client.start(timeout=30)
        self.client.ensure_path(CANDIDATES)
        # The observer's ring ignores hostile members as the routers do; the nemesis log says what they were.
        logging.getLogger("challenge_consistent_hashing").setLevel(logging.ERROR)
        self.ring = RingWatcher(self.client, HASHING_ROOT)
        self.ledger = LedgerWatch(self.client, LEDGER)
        self.members = members_path(HASHING_ROOT)
        self.pending: list[LeftoverCheck] = []
        self.leftover_checks = 0
        self.leftovers: list[str] = []
        self.quiet_checks = 0
        self.routers_compared = 0
        self.disagreements: list[str] = []

    def close(self) -> None:
        self.ring.close()
        self.client.stop()
        self.client.close()

    # -- routers agree when all is quiet

    def disagreeing(self, logs: dict[str, RunLog]) -> list[str]:
        """Routers of live hashing processes (label -> events) whose latest ring is not the observer's."""
        ring = self.ring.ring
        found = []
        for label, log in logs.items():
            log.read()
            for router in ROUTERS:
                event = log.rings.get(router)
                if event is None:
                    found.append(f"{label} router {router}: no ring yet; observer {ring.fingerprint} {ring.nodes}")
                elif event.get("fingerprint") != ring.fingerprint:
                    found.append(f"{label} router {router}: {event.get('fingerprint')} {event.get('members')}; "
                                 f"observer {ring.fingerprint} {ring.nodes}")
        return found

    # -- no ephemeral left behind

    def expect_gone(self, check: LeftoverCheck) -> None:
        self.pending.append(check)

    def look_for_leftovers(self, now: float) -> None:
        if not self.pending:
            return
        try:
            children = (self.client.get_children_async(CANDIDATES).get(timeout=LIST_TIMEOUT)
                        + self.client.get_children_async(self.members).get(timeout=LIST_TIMEOUT))
        except Exception:  # noqa: BLE001 - ZooKeeper unavailable for now: look again next tick
            return
        for check in list(self.pending):
            check.look(children, now)
            if check.verdict is not None:
                self.pending.remove(check)
                self.leftover_checks += 1
                if check.verdict != "clean":
                    self.leftovers.append(check.verdict)
