"""The checker's other half: the learner's script runs here, in a process of its own, never in the judge's.

Rules of this process (zklab.check starts it and owns every deadline):
- it reports on a pipe of its own, one JSON object a line: `load`, then `begin` and one `verdict` per
  guarantee of each scenario, then `done`. What the script prints (stdout, stderr) goes elsewhere;
- whatever the script does (sys.exit at import, os._exit in a callback, a hang, a crash), the parent
  sees a missing line or a dead process and says so: a verdict counts only when it was reported;
- loading the script is bounded: a top-level call that blocks is reported, with where it waits;
- the script is imported with argv `[script, --help]`, so a script that runs its demo at import
  (no `if __name__ == "__main__":`) exits at once, and is blamed for it, instead of reading our arguments;
- it ends with os._exit: a thread the script left running cannot keep it alive.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

from zklab import check_hashing, check_leader
from zklab.check_lab import SCRIPTS, Check, ErrorWatch, Lab, Verdict, load_script, run_check, script_error
from zklab.launcher import ZooKeeperCluster, live_processes

CHECKS: dict[str, list[Check]] = {"leader": check_leader.CHECKS, "hashing": check_hashing.CHECKS}
# A script imports in well under a second; past this its top level is waiting for something.
LOAD_BOUND = 10.0
# How long a scenario may wait for the parent's ZooKeeper address (it starts in the background).
ZK_WAIT = 60.0
# The 3-server ensemble's folder under the work folder: its servers and janitor name it in their command lines.
ENSEMBLE = "ensemble"


class Report:
    """The pipe to the parent: one JSON object a line, flushed at once."""

    def __init__(self, fd: int):
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def send(self, event: str, **fields: object) -> None:
        with self._lock:
            self._out.write(json.dumps({"event": event, **fields}) + "\n")
            self._out.flush()


class Addresses:
    """ZooKeeper addresses from the parent, read from a pipe when a scenario first needs one."""

    def __init__(self, fd: int):
        self._fd, self._buffer, self._address = fd, b"", ""
        self._lock = threading.Lock()

    def zk(self) -> str:
        with self._lock:
            deadline = time.monotonic() + ZK_WAIT
            while not self._address and time.monotonic() < deadline:
                ready, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(self._fd, 4096) if ready else b""
                if ready and not chunk:
                    break  # the parent closed the pipe: it has no ZooKeeper to give
                self._buffer += chunk
                if b"\n" in self._buffer:
                    self._address = json.loads(self._buffer.split(b"\n", 1)[0]).get("zk") or ""
                    break
            if not self._address:
                raise RuntimeError("the checker's ZooKeeper did not start")
            return self._address


class Ensemble:
    """A 3-server ensemble with cuttable peer links, started on a thread at once and shared by the run.

    The thread lives as long as the process: the launcher ties each JVM's life to the thread that
    started it, and os._exit at the end takes both down.
    """

    def __init__(self, workdir: Path):
        self.cluster: ZooKeeperCluster | None = None
        self.error = ""
        self._ready = threading.Event()
        threading.Thread(target=self._serve, args=(workdir,), name="ensemble", daemon=True).start()

    def _serve(self, workdir: Path) -> None:
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            self.cluster = ZooKeeperCluster(servers=3, peer_proxies=True, workdir=str(workdir)).start()
        except Exception as exc:
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._ready.set()
        threading.Event().wait()

    def get(self) -> ZooKeeperCluster:
        self._ready.wait(ZK_WAIT)
        if self.cluster is None:
            raise RuntimeError(f"the checker's 3-server ensemble did not start: {self.error or 'no answer'}")
        return self.cluster


def load(challenge: str, directory: Path, report: Report) -> ModuleType | None:
    """Import the script on the main thread, as Python would; a watchdog reports a top level that blocks."""
    path = Path(directory, SCRIPTS[challenge]).resolve()
    loaded = threading.Event()
    threading.Thread(target=watch_loading, args=(path, loaded, threading.current_thread().ident, report),
                     name="load-watchdog", daemon=True).start()
    sys.argv = [str(path), "--help"]
    try:
        return load_script(challenge, directory)
    except SystemExit as exc:
        report.send("load", ok=False, figure=f"the script exited while it was being imported (exit code "
                    f"{exc.code})", advice="Importing it ran its command line: the call to main() belongs under "
                    "`if __name__ == \"__main__\":`, and nothing at the top level may exit.")
    except BaseException as exc:
        report.send("load", ok=False, figure=load_figure(exc, path), advice="")
    finally:
        loaded.set()
    return None


def watch_loading(path: Path, loaded: threading.Event, main: int | None, report: Report) -> None:
    """Past LOAD_BOUND, say which line of the script the import waits on, and end this process."""
    if loaded.wait(LOAD_BOUND):
        return
    frame, line = sys._current_frames().get(main), None
    while frame is not None:
        if frame.f_code.co_filename == str(path):
            line = frame.f_lineno
        frame = frame.f_back
    where = f" (line {line} waits)" if line else ""
    report.send("load", ok=False, figure=f"importing it did not finish within {LOAD_BOUND:.0f} s{where}",
                advice="Code at the script's top level waits for something (a sleep, input(), a server). Put it "
                       "in a function, or under `if __name__ == \"__main__\":`.")
    os._exit(3)


def load_figure(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError line {exc.lineno}: {exc.msg}"
    found = script_error(exc, str(path))
    text = (str(exc).splitlines() or [""])[0]
    where = f" line {found.line}" if found else ""
    return f"{type(exc).__name__}{where}" + (f": {text}" if text else "")


class Budget:
    """The seconds the failing scenarios may take together. A scenario that fails (it hung, crashed or
    broke a guarantee) draws what it took; one that holds draws nothing, so a correct script on a slow
    machine is never cut short, and a script that hangs everywhere is judged within the budget."""

    def __init__(self, seconds: float):
        self.left = seconds

    def bound(self, check: Check) -> float:
        return max(0.0, min(self.left, check.bound))

    def spend(self, took: float, verdicts: list[Verdict]) -> None:
        if not all(verdict.ok for verdict in verdicts):
            self.left -= took


def run(args: argparse.Namespace, report: Report) -> None:
    checks = [CHECKS[args.challenge][i] for i in args.checks]
    ensemble = Ensemble(args.workdir / ENSEMBLE) if any(c.needs_ensemble for c in checks) else None
    script = load(args.challenge, args.scripts, report)
    if script is None:
        return
    errors = watch_errors(script, args.verbose)
    report.send("load", ok=True)
    addresses = Addresses(args.control)
    prepared = {i: check.prepare(script.__file__) for i, check in zip(args.checks, checks, strict=True)
                if check.prepare is not None}
    budget = Budget(args.budget)
    for index, check in zip(args.checks, checks, strict=True):
        report.send("begin", index=index, bound=budget.bound(check))
        lab = Lab(script, addresses.zk if check.needs_zk else None, ensemble.get if ensemble else None, errors,
                  args.utf8)
        options = {"prepared": prepared[index]} if index in prepared else {}
        started = time.monotonic()
        verdicts = judge(check, lab, budget.bound(check), args.verbose, options)
        budget.spend(time.monotonic() - started, verdicts)
        for verdict in verdicts:
            report.send("verdict", **asdict(verdict))


def watch_errors(script: ModuleType, verbose: bool) -> ErrorWatch:
    """Exceptions from the script's code, on every thread: traced functions, logged ones, threads that die."""
    errors = ErrorWatch(script.__file__)
    errors.instrument(script)
    logging.getLogger().addHandler(errors)
    threading.excepthook = lambda hook: (errors.thread_died(hook), verbose and sys.__excepthook__(
        hook.exc_type, hook.exc_value, hook.exc_traceback))
    return errors


def judge(check: Check, lab: Lab, bound: float, verbose: bool, options: dict) -> list[Verdict]:
    """One scenario's verdicts within `bound`; none left (failures used up the budget): each is 'not run'."""
    if bound <= 0:
        return [Verdict(key, False, "not run: the failing checks above used up the check's time",
                        "Fix the failures above; this guarantee is judged once they leave it time.")
                for key in check.guarantees]
    started = time.monotonic()
    verdicts, error = run_check(check, lab, bound=bound, **options)
    if verbose and error is not None:
        traceback.print_exception(type(error), error, error.__traceback__)
    if verbose:
        print(f"[{', '.join(check.guarantees)}: {time.monotonic() - started:.2f} s]", file=sys.stderr, flush=True)
    return verdicts


def adopt_orphans() -> None:
    """Become the parent of every process the script starts and leaves, however it hides: a fork that calls
    setsid() leaves our process group, and one that forks again and exits leaves us as its parent; Linux
    hands such orphans to the nearest ancestor that asked for them."""
    if sys.platform.startswith("linux"):
        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)


def strays(workdir: Path) -> list[int]:
    """Our live children that the script started (not the ensemble's servers and janitor, whose command lines
    name its folder), killed: what a script leaves running after the check copies its ZooKeeper session."""
    ours, found = str(workdir / ENSEMBLE).encode(), []
    for pid, (_, parent, _) in live_processes().items():
        if parent == os.getpid():
            with contextlib.suppress(OSError):
                if ours not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m zklab.check_child", description="Run by zklab.check.")
    parser.add_argument("challenge", choices=sorted(SCRIPTS))
    parser.add_argument("--scripts", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--report", type=int, required=True, help="fd to write JSON lines to")
    parser.add_argument("--control", type=int, required=True, help="fd to read ZooKeeper's address from")
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--checks", type=lambda text: [int(i) for i in text.split(",") if i], required=True,
                        help="the indexes of the scenarios to run")
    parser.add_argument("--utf8", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    if args.verbose:
        logging.basicConfig(level=logging.WARNING)
    report = Report(args.report)
    adopt_orphans()
    try:
        run(args, report)
        if left := strays(args.workdir):
            report.send("left", pids=left)
        report.send("done")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
