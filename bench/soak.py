"""Chaos soak (issue 10): both demos, two copies of each, under a seeded nemesis, watched by an observer.

    python -m bench.soak --minutes 10 [--seed S] [--write]      (also: ./run.sh soak ...)

A 3-server ensemble from the launcher. Two election demos and two hashing demos run as separate
processes; one copy of each reaches ZooKeeper through partition proxies (one per server). Each demo
run gets a random --duration and is started again after it exits. The nemesis (soak_nemesis.py)
kills, pauses and restarts servers, cuts and black-holes the proxied links, writes hostile member
znodes and signals demo processes. The observer (soak_observer.py) reads every demo's --events file
and holds its own ZooKeeper client; from both it checks the safety invariants. The soak ends with a
table of every fault and every check, and exits 0 only if nothing was violated.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.client import KazooClient

from bench.common import machine, table
from bench.soak_nemesis import KINDS, Nemesis
from bench.soak_observer import (
    CONNECTION_RETRY,
    MEMORY_LIMIT_MB,
    ROUTERS,
    SWALLOWED_AT_STARTUP,
    LeftoverCheck,
    MemorySampler,
    Observer,
    RunLog,
    epochs_never_go_back,
    in_interpreter_startup,
    leaders_at_once,
    ledger_matches,
    one_leader_per_epoch,
    terms,
    tracebacks,
    warned_once,
)
from zklab.launcher import ZooKeeperCluster, ZooKeeperMissing, _die_with_parent
from zklab.plumbing import number_arg
from zklab.proxy import PartitionProxy

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"leader": "challenge_leader_election.py", "hashing": "challenge_consistent_hashing.py"}
# The rich demos run the scripts as edited: `./run.sh leader|hashing` runs the same modules.
DEMOS = {"leader": "zklab.demo_leader", "hashing": "zklab.demo_hashing"}
# Seeds are 0 to 999,999, as every --seed takes them (six digits a learner can copy from a log line).
SEEDS = 1_000_000
# Small demos: four of them share 2 cores with three JVMs and the soak itself.
DEMO_OPTIONS = {
    "leader": ["--workers", "3", "--interval", "3"],
    "hashing": ["--members", "3", "--keys", "2000", "--show", "0", "--interval", "3"],
}
SLOTS = [("leader", False), ("leader", True), ("hashing", False), ("hashing", True)]  # (demo, behind proxies?)
SESSION_TIMEOUT = 4.0
# Issue 10: --duration holds within the session timeout + 5 s, even with ZooKeeper gone; so must a signal.
EXIT_BOUND = SESSION_TIMEOUT + 5
# Before its --duration starts, a demo starts Python, imports kazoo and connects (CONNECT_TIMEOUT 5 s).
START_ALLOWANCE = 8.0
# After an exit, a session that ZooKeeper must expire is gone within the session timeout, counted from
# the later of the exit and the ensemble's recovery (a new ZooKeeper leader re-times every session).
LEFTOVER_MARGIN = 3.0
DURATION = (15.0, 45.0)       # each demo run's --duration, seconds
RESTART_AFTER = (0.2, 1.0)    # a slot's demo starts again this long after the last one exited
QUIET_EVERY = 25.0            # seconds of chaos between two quiet checks
QUIET_BOUND = 10.0            # routers must agree with the observer within this, once all is healed
FINAL_RESERVE = QUIET_BOUND + 2.0  # the last quiet check runs in the soak's final seconds
TICK = 0.05


T0 = time.monotonic()  # the soak's log counts seconds from here
LOG: list = []         # the log file in the work dir, once main() opened it


def _say(who: str, what: str) -> None:
    line = f"{time.monotonic() - T0:8.2f}s  {who:<8} {what}"
    print(line, flush=True)
    for log in LOG:
        print(line, file=log, flush=True)


# ---------------------------------------------------------------- the demo processes

@dataclass
class Run:
    """One demo process: its command, its files, and how it ended."""
    label: str
    kind: str
    slot: int | None          # None: an extra copy, started once to be signalled early
    proc: subprocess.Popen
    log: RunLog
    stderr: Path
    started: float
    deadline: float           # when it must have exited: its --duration, or a signal, plus EXIT_BOUND
    winds_down: float         # from here its --duration may be over and the demo shutting down
    duration: float
    signaled: str | None = None
    signaled_at: float | None = None
    resent: bool = False      # the interpreter swallowed the first signal at start-up; it was sent again
    exit_t: float | None = None
    hung: str | None = None
    peak_kb: int = 0


class Demos:
    """The four demo copies, restarted after each exit, plus the extra copies the nemesis signals early."""

    def __init__(self, workdir: Path, direct: str, proxied: str, rng: random.Random,
                 on_exit: Callable[[Run], None]):
        self.workdir, self.hosts, self.rng, self.on_exit = workdir, {False: direct, True: proxied}, rng, on_exit
        self.runs: list[Run] = []
        self.stopping = False
        self._exited: queue.Queue[Run] = queue.Queue()
        self._restart_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._count = Counter()

    def start_slots(self) -> None:
        for slot in range(len(SLOTS)):
            self._start(slot)

    def start_extra(self, kind: str) -> Run:
        return self._launch(kind, False, None)

    def _start(self, slot: int) -> Run:
        kind, proxied = SLOTS[slot]
        return self._launch(kind, proxied, slot)

    def _launch(self, kind: str, proxied: bool, slot: int | None) -> Run:
        self._count[kind] += 1
        name = f"{kind}-{'proxied' if proxied else 'direct' if slot is not None else 'extra'}-{self._count[kind]}"
        events, stderr, stdout = (self.workdir / f"{name}.{ext}" for ext in ("events.jsonl", "stderr", "stdout"))
        duration = self.rng.uniform(*DURATION)
        argv = [sys.executable, "-m", DEMOS[kind], "--zk", self.hosts[proxied],
                "--session-timeout", str(SESSION_TIMEOUT), "--events", str(events),
                "--seed", str(self.rng.randrange(SEEDS)), "--duration", f"{duration:.1f}", *DEMO_OPTIONS[kind]]
        env = {k: v for k, v in os.environ.items() if k != "ZK_HOSTS"}
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            # Its own session: the terminal's Ctrl-C reaches the soak, which stops the demos itself.
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        started = time.monotonic()
        run = Run(name, kind, slot, proc, RunLog(events), stderr, started,
                  started + START_ALLOWANCE + duration + EXIT_BOUND, started + duration, duration)
        with self._lock:
            self.runs.append(run)
        threading.Thread(target=self._wait, args=(run,), name=f"wait-{name}", daemon=True).start()
        _say("soak", f"started {name} (--duration {duration:.1f})")
        return run

    def _wait(self, run: Run) -> None:
        run.proc.wait()
        run.exit_t = time.monotonic()
        self._exited.put(run)

    def live(self) -> list[Run]:
        with self._lock:
            return [r for r in self.runs if r.exit_t is None]

    def signalable(self) -> list[Run]:
        return [r for r in self.live() if r.slot is not None and r.signaled is None]

    def signal(self, run: Run, sig: signal.Signals) -> None:
        if run.exit_t is not None or run.signaled is not None:
            return
        run.proc.send_signal(sig)
        run.signaled, run.signaled_at = sig.name, time.monotonic()
        run.deadline = min(run.deadline, run.signaled_at + EXIT_BOUND)
        age = (run.signaled_at - run.started) * 1000
        _say("nemesis", f"{sig.name} to {run.label} ({age:.0f} ms after its start)")

    def _resend(self, run: Run) -> None:
        """Python itself swallowed the signal before the script's first line: press Ctrl-C again."""
        run.resent = True
        run.proc.send_signal(signal.Signals[run.signaled])
        run.signaled_at = time.monotonic()
        run.deadline = run.signaled_at + EXIT_BOUND
        _say("nemesis", f"{run.signaled} again to {run.label}: the interpreter swallowed the first at start-up")

    def kill(self, run: Run, why: str) -> None:
        if run.exit_t is None and run.hung is None:
            run.hung = why
            run.proc.kill()
            _say("soak", f"KILLED {run.label}: {why}")

    def service(self, now: float) -> None:
        """Note exits, kill what outlived its bound, start slots again."""
        while True:
            try:
                run = self._exited.get_nowait()
            except queue.Empty:
                break
            self.on_exit(run)
            if run.slot is not None and not self.stopping:
                self._restart_at[run.slot] = now + self.rng.uniform(*RESTART_AFTER)
        for run in self.live():
            if run.signaled and not run.resent and SWALLOWED_AT_STARTUP in _text(run.stderr):
                self._resend(run)
            if now > run.deadline:
                after = run.signaled or f"its --duration (allowing {START_ALLOWANCE:.0f} s to start)"
                self.kill(run, f"demo did not exit within {EXIT_BOUND:.0f} s of {after}")
        for slot, at in list(self._restart_at.items()):
            if now >= at and not self.stopping:
                del self._restart_at[slot]
                self._start(slot)

    def stop_all(self) -> None:
        """SIGTERM every live demo, wait for them within EXIT_BOUND, kill -9 what is left."""
        self.stopping = True
        for run in self.live():
            self.signal(run, signal.SIGTERM)
        deadline = time.monotonic() + EXIT_BOUND
        while self.live() and time.monotonic() < deadline:
            time.sleep(TICK)
        for run in self.live():
            self.kill(run, f"demo did not exit within {EXIT_BOUND:.0f} s of SIGTERM")
        for run in self.runs:
            run.proc.wait(10)
        self.service(time.monotonic())


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------- the soak

@dataclass
class Verdict:
    name: str
    checked: int
    what: str
    problems: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, minutes: float, seed: int, workdir: Path):
        self.minutes, self.seed, self.workdir = minutes, seed, workdir
        self.rng = random.Random(seed)
        self.started = time.monotonic()
        self.ends = self.started + minutes * 60
        self.outcomes: Counter[str] = Counter()
        self.signal_ages: dict[str, list[float]] = {}  # outcome -> ms from start to the signal
        self.exit_problems: list[str] = []
        self.memory_problems: list[str] = []
        self.interrupted = False
        self.where = ""
        self.scripts = scripts_version()  # read at the start: the demos that ran are the ones named

    # -- the whole run

    def run(self) -> list[Verdict]:
        with ZooKeeperCluster(servers=3) as cluster:
            _say("soak", f"ensemble {cluster.hosts}; seed {self.seed}; work dir {self.workdir}")
            self.where = machine(cluster)
            proxies = [PartitionProxy(server.address) for server in cluster.servers]
            proxied = ",".join(proxy.address for proxy in proxies)
            observer = Observer(cluster.hosts)
            admin = self._client(cluster.hosts)
            self.demos = Demos(self.workdir, cluster.hosts, proxied, self.rng, self._exited)
            self.observer = observer
            self.nemesis = Nemesis(self.rng, cluster, proxies, admin, observer.members, self.demos, _say)
            sampler = MemorySampler(self.demos.live, self._over_memory)
            try:
                self._chaos()
            except KeyboardInterrupt:
                self.interrupted = True
                _say("soak", "interrupted: tearing down")
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_IGN)  # the teardown is bounded: let it finish
                self._teardown(sampler, admin, proxies)
            self.sampler = sampler
        return self._verdicts()

    @staticmethod
    def _client(hosts: str) -> KazooClient:
        """The nemesis's own session, for hostile znodes: long enough to outlive every fault it deals."""
        client = KazooClient(hosts=hosts, timeout=30.0, connection_retry=CONNECTION_RETRY)
        client.start(timeout=30)
        return client

    def _chaos(self) -> None:
        self.demos.start_slots()
        chaos_ends = self.ends - FINAL_RESERVE
        next_quiet = time.monotonic() + QUIET_EVERY
        while (now := time.monotonic()) < chaos_ends:
            self.nemesis.step(now)
            self._service(now)
            if now >= next_quiet and chaos_ends - now > QUIET_BOUND:
                self._quiet_check()
                next_quiet = time.monotonic() + QUIET_EVERY
            time.sleep(TICK)
        self._quiet_check()

    def _service(self, now: float) -> None:
        self.demos.service(now)
        self.observer.look_for_leftovers(now)

    def _quiet_check(self) -> None:
        """Heal everything, then every live router must reach the observer's ring within QUIET_BOUND."""
        self.nemesis.heal()
        deadline = time.monotonic() + QUIET_BOUND
        while True:
            now = time.monotonic()  # a demo shutting down (signalled, or at its --duration) routes no more
            logs = {r.label: r.log for r in self.demos.live()
                    if r.kind == "hashing" and r.signaled is None and now < r.winds_down}
            differ = self.observer.disagreeing(logs)
            if logs and not differ:
                self.observer.quiet_checks += 1
                self.observer.routers_compared += len(ROUTERS) * len(logs)
                _say("observer", f"quiet: {len(logs)} hashing processes' routers agree with the observer, "
                                 f"fingerprint {self.observer.ring.fingerprint}")
                return
            if time.monotonic() > deadline:
                break
            self._service(time.monotonic())
            time.sleep(TICK)
        if logs:
            self.observer.quiet_checks += 1
            self.observer.disagreements.append(f"after {QUIET_BOUND:.0f} s of quiet: " + "; ".join(differ))
            _say("observer", f"VIOLATION: routers disagree after {QUIET_BOUND:.0f} s of quiet: {differ[0]}")
        else:
            _say("observer", "quiet check skipped: no hashing demo was live")

    def _teardown(self, sampler: MemorySampler, admin: KazooClient, proxies: list[PartitionProxy]) -> None:
        self.nemesis.heal(lanes=("zookeeper", "link", "data"))
        self.demos.stop_all()
        deadline = time.monotonic() + SESSION_TIMEOUT + LEFTOVER_MARGIN + 2
        while self.observer.pending and time.monotonic() < deadline:
            self.observer.look_for_leftovers(time.monotonic())
            time.sleep(TICK)
        for check in self.observer.pending:
            self.observer.leftovers.append(f"{check.label} (run {check.run_id}): could not list the znodes to check")
        sampler.stop()
        for run in self.demos.runs:
            run.log.read()
        admin.stop()
        admin.close()
        self.observer.close()
        for proxy in proxies:
            proxy.close()

    # -- one demo process ended

    def _exited(self, run: Run) -> None:
        run.log.read()
        rc, started = run.proc.returncode, run.log.started
        outcome, problem = self._classify(run, rc, started)
        self.outcomes[outcome] += 1
        if run.signaled_at is not None:
            self.signal_ages.setdefault(outcome, []).append((run.signaled_at - run.started) * 1000)
        if problem:
            self.exit_problems.append(f"{run.label}: {problem}")
            _say("observer", f"VIOLATION {run.label}: {problem}")
        if run.log.run_id:
            self.observer.expect_gone(LeftoverCheck(run.label, run.log.run_id, lambda run=run: self._expiry(run)))
        _say("soak", f"{run.label} exited {rc} ({outcome}), {run.exit_t - run.started:.1f}s after its start")

    def _expiry(self, run: Run) -> float:
        return max(run.exit_t, self.nemesis.zk_recovered) + SESSION_TIMEOUT + LEFTOVER_MARGIN

    @staticmethod
    def _classify(run: Run, rc: int, started: bool) -> tuple[str, str | None]:
        """(outcome, violation or None) for a demo process that ended with code `rc`."""
        if run.hung:
            return "killed by the soak", run.hung
        if rc == 0 and run.log.exit_event is None and started:
            return "exit 0", "exited 0 without its exit event"
        if run.signaled_at is None and started and overrun(run) > EXIT_BOUND:
            return f"exit {rc}", (f"ran {overrun(run):.1f} s past its --duration of {run.duration:.1f} s (counted "
                                  f"from its start event; bound {EXIT_BOUND:.0f} s)")
        if rc == 0:
            return "exit 0" if started else "exit 0 before it started", None
        if rc in (-signal.SIGTERM, -signal.SIGINT) and not started:
            # A signal that lands while the interpreter itself starts has its default effect; nothing
            # was registered yet, so nothing is left behind.
            return f"killed by {signal.Signals(-rc).name} before its start event", None
        err = [line for line in _text(run.stderr).splitlines() if line.strip()]
        if rc == 1 and not started and len(err) == 1 and "ZooKeeper" in err[0]:
            # Contract A: ZooKeeper unreachable (or lost) before the demo started is one line and exit 1.
            return "exit 1: ZooKeeper unreachable at start", None
        if rc == 1 and run.log.exit_event is not None:
            # The demos' documented exit when ZooKeeper stops answering while they start: an orderly
            # shutdown that reports what it could not clean up (the leftover check holds it to that).
            return "exit 1: ZooKeeper lost while starting (orderly, with its exit event)", None
        groups = tracebacks(run.stderr)
        python_startup = err == ["KeyboardInterrupt"] or (groups and all(map(in_interpreter_startup, groups)))
        if rc == 1 and not started and python_startup:
            # Python exits 1 for a SIGINT while it imports site or compiles the script: no line had run.
            return "SIGINT inside Python's own start-up (exit 1)", None
        return f"exit {rc}", f"exit code {rc}; stderr: {' | '.join(err[-3:])[:300]}"

    def _over_memory(self, run: Run, rss_kb: int) -> None:
        self.memory_problems.append(f"{run.label}: {rss_kb / 1024:.0f} MB resident")
        self.demos.kill(run, f"over {MEMORY_LIMIT_MB} MB resident ({rss_kb / 1024:.0f} MB)")

    # -- verdicts

    def _verdicts(self) -> list[Verdict]:
        runs = self.demos.runs
        writes = [w for r in runs for w in r.log.writes]
        intervals = [i for r in runs for i in terms(r.log.leadership, r.exit_t or time.monotonic(), f"{r.label}:")]
        compared, ledger_problems = ledger_matches(self.observer.ledger.seen, writes)
        groups = [(r.label, group) for r in runs for group in tracebacks(r.stderr)]
        self.startup_tracebacks = [(label, g) for label, g in groups if in_interpreter_startup(g)]
        self.tracebacks = [(label, g) for label, g in groups if not in_interpreter_startup(g)]
        bad_lines = [f"{r.label}: {line}" for r in runs for line in r.log.bad_lines]
        invalid = self.nemesis.invalid_members
        accepted = [f"{r.label}: a ring held {sorted(r.log.members_seen & invalid)}" for r in runs
                    if r.log.members_seen & invalid]
        ignored = [event for r in runs for event in r.log.ignored]
        lines = sum(r.log.lines for r in runs)
        peak = self.sampler.peak_kb / 1024
        return [
            Verdict("ledger epochs never go back (accepted writes in version order)", len(writes), "writes",
                    epochs_never_go_back(writes)),
            Verdict("the observer's ledger watch matches the writes reported", len(self.observer.ledger.seen),
                    f"versions seen ({compared} matched to a write)", ledger_problems),
            Verdict("no epoch written by two leaders", len({w["epoch"] for w in writes}), "epochs",
                    one_leader_per_epoch(writes)),
            Verdict("no two workers lead at the same instant, across processes", len(intervals), "terms",
                    leaders_at_once(intervals)),
            Verdict("when quiet, every router holds the observer's ring", self.observer.quiet_checks,
                    f"quiet checks ({self.observer.routers_compared} routers compared)",
                    self.observer.disagreements),
            Verdict("no ring ever holds a member that is invalid or not ephemeral",
                    sum(r.log.ring_events for r in runs),
                    f"ring events ({len(invalid)} invalid hostile members written)", accepted),
            Verdict("an ignored member is warned about once per router", len(ignored), "warnings",
                    warned_once(ignored)),
            Verdict("no znode of a run outlives its exit (+ session expiry)", self.observer.leftover_checks,
                    "exits checked", self.observer.leftovers),
            Verdict(f"every demo exits 0 within {EXIT_BOUND:.0f} s of a signal or its --duration", len(runs),
                    "demo runs", self.exit_problems),
            Verdict(f"no demo process over {MEMORY_LIMIT_MB} MB", self.sampler.samples,
                    f"samples (peak {peak:.0f} MB, {self.sampler.peak_of})", self.memory_problems),
            Verdict("no traceback in any demo's stderr", len(runs),
                    f"stderr files ({len(self.startup_tracebacks)} more inside Python's own start-up, "
                    "before the script's first line)",
                    [f"{label}: {group[-1]}" for label, group in self.tracebacks]),
            Verdict("every events line is a JSON event", lines, "lines", bad_lines),
        ]


# ---------------------------------------------------------------- the report

def report(soak: Soak, verdicts: list[Verdict]) -> str:
    nemesis = soak.nemesis
    violations = sum(len(v.problems) for v in verdicts)
    fault_rows = [[kind, nemesis.counts[kind], _detail(nemesis, kind)] for kind in KINDS]
    outcome = ", ".join(f"{n} {what}{_ages(soak.signal_ages.get(what), 'start' in what)}"
                        for what, n in soak.outcomes.most_common())
    runs = [r for r in soak.demos.runs if r.exit_t is not None and not r.hung]
    after_signal = [r.exit_t - r.signaled_at for r in runs if r.signaled_at is not None]
    after_duration = [overrun(r) for r in runs if r.signaled_at is None and r.log.started_at is not None]
    check_rows = [[v.name, f"{v.checked} {v.what}", len(v.problems) if not v.problems else f"**{len(v.problems)}**"]
                  for v in verdicts]
    parts = [
        "## Chaos soak",
        f"`python -m bench.soak --minutes {soak.minutes:g} --seed {soak.seed}`, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, demos from {soak.scripts}: "
        "a 3-server ensemble, two copies of "
        "each demo (one of each behind partition proxies), session timeout 4 s, every demo run with a random "
        "--duration and started again after it exits.",
        "Faults injected:",
        table(["fault", "count", "detail"], fault_rows),
        f"Demo runs: {len(soak.demos.runs)} ({outcome}). Slowest exit: {max(after_signal, default=0):.1f} s "
        f"after a signal, {max(after_duration, default=0):.1f} s after its --duration ran out (counted from its "
        f"start event; bound {EXIT_BOUND:.0f} s for both). Quorum lost for {nemesis.quorum_lost_s:.1f} s in total. "
        + (f"ZooKeeper itself wedged {len(nemesis.wedged)} time(s) (all servers reported a mode, no write "
           f"committed for 10 s; after {', '.join(nemesis.wedged)}); a rolling restart recovered it each time."
           if nemesis.wedged else "ZooKeeper always committed writes again after a fault."),
        "Invariants checked:",
        table(["invariant", "checked", "violations"], check_rows),
        f"**{violations} violations, {len(soak.tracebacks)} tracebacks, {len(soak.observer.leftovers)} leftovers, "
        f"peak memory {soak.sampler.peak_kb / 1024:.0f} MB.**"
        + (f" Nemesis errors: {'; '.join(nemesis.errors)}." if nemesis.errors else ""),
        f"_Measured on {soak.where}._",
    ]
    evidence = [f"- {v.name}: {p}" for v in verdicts for p in v.problems[:10]]
    if evidence:
        parts += ["Violations (first 10 of each):", "\n".join(evidence)]
    if soak.tracebacks:
        parts += ["First traceback of each run that printed one:"]
        parts += [f"```\n{label}:\n" + "\n".join(group[:6] + ["  ...", group[-1]]) + "\n```"
                  for label, group in soak.tracebacks[:5]]
    return "\n\n".join(parts)


def overrun(run: Run) -> float:
    """How long a demo ran past its --duration, counted from its start event (it had connected by then)."""
    return run.exit_t - (run.log.started_at + run.duration)


def _ages(ages: list[float] | None, show: bool) -> str:
    """For start-up outcomes: how soon after the process started its signal was sent."""
    return f" (signalled {min(ages):.0f}-{max(ages):.0f} ms after start)" if ages and show else ""


def scripts_version() -> str:
    """The commit the demo scripts came from, and whether the working tree changed them since."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    try:
        commit = git("rev-parse", "--short", "HEAD").stdout.strip()
        changed = git("diff", "--quiet", "HEAD", "--", *SCRIPTS.values()).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit"
    return f"commit {commit}" + (" with uncommitted changes to the demos" if changed else "") if commit else "no git"


def _detail(nemesis: Nemesis, kind: str) -> str:
    notes = nemesis.notes[kind]
    text = ", ".join(f"{what} {n}" for what, n in sorted(notes.items()))
    if kind.startswith("SIGTERM/SIGINT within") and nemesis.early_ms:
        text += f"; {min(nemesis.early_ms):.0f}-{max(nemesis.early_ms):.0f} ms after start"
    if kind.startswith("lose quorum"):
        text = f"{nemesis.quorum_lost_s:.1f} s without quorum in total"
    return text


def write_results(section: str, path: Path = ROOT / "bench" / "RESULTS.md") -> None:
    """Put the soak's section in RESULTS.md, replacing an earlier one and keeping everything else."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start = text.find("\n## Chaos soak")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end:] if end >= 0 else "\n")
    path.write_text(text.rstrip("\n") + "\n\n" + section + "\n")


def summary(soak: Soak, verdicts: list[Verdict]) -> dict:
    """The machine-readable result, for the test: every fault's count, every invariant's checks."""
    return {
        "seed": soak.seed,
        "minutes": soak.minutes,
        "faults": {kind: soak.nemesis.counts[kind] for kind in KINDS},
        "invariants": {v.name: {"checked": v.checked, "violations": v.problems} for v in verdicts},
        "outcomes": dict(soak.outcomes),
        "peak_mb": soak.sampler.peak_kb / 1024,
        "nemesis_errors": soak.nemesis.errors,
        "zookeeper_wedged": soak.nemesis.wedged,
        "interrupted": soak.interrupted,
    }


# ---------------------------------------------------------------- command line



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", allow_abbrev=False,
                                     description="Both demos under a seeded nemesis, checked by an observer.")
    parser.add_argument("--minutes", type=number_arg(float, 0.5, 1440), default=10.0,
                        help="how long (default 10; teardown adds ~20 s)")
    parser.add_argument("--seed", type=number_arg(int, 0, 999_999), default=None,
                        help="seed for the nemesis (default: random, printed)")
    parser.add_argument("--write", action="store_true", help="record the table in bench/RESULTS.md")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the soak's log and the demos' events, stdout and stderr go "
                             "(default: a new folder under /tmp)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(SEEDS)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="zklab-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    LOG.append(open(workdir / "soak.log", "a"))  # noqa: SIM115 - open for the whole run
    _say("soak", f"{args.minutes:g} minutes, seed {seed}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM tears down like Ctrl-C
    soak = Soak(args.minutes, seed, workdir)
    try:
        verdicts = soak.run()
    except (ZooKeeperMissing, RuntimeError, TimeoutError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 1
    section = report(soak, verdicts)
    print("\n" + section, flush=True)
    result = summary(soak, verdicts)
    (workdir / "summary.json").write_text(json.dumps(result, indent=1))
    if args.write:
        write_results(section)
        print(f"wrote the soak's section in {ROOT / 'bench' / 'RESULTS.md'}", file=sys.stderr)
    print(f"demo events, stdout and stderr: {workdir}", file=sys.stderr)
    failed = any(v.problems for v in verdicts) or soak.nemesis.errors or soak.interrupted
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
