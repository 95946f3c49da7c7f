"""Check the challenge scripts' guarantees, in the lesson's words: `./run.sh check [leader|hashing] [-v]`.

Starts a ZooKeeper of its own, runs the scripts as they stand (or from --scripts DIR) in a process of
their own (zklab.check_child), and prints one line per guarantee: a mark, the guarantee, and the
figure measured. A failure adds where to look (the step functions that hold its rule) and a few lines
of evidence. The rules of the judge:
- a verdict counts only when the script's process reported it: a missing line, an exit of any kind
  or a crash of that process is a failure in plain words, never a pass;
- this process owns every deadline: loading the script, each scenario, the whole challenge;
- it watches its own ZooKeeper: if that dies mid-run, it says so and blames nobody's code;
- guarantees print in the order of the rules they test, so the first advice is about the earliest rule.
Exit 0 when every guarantee holds, 1 otherwise, 2 for bad arguments. `--watch` re-checks on every save.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from zklab import check_hashing, check_leader, interrupts
from zklab.check_lab import CLOSE_TIMEOUT, ROOT, SCRIPTS, Check, Verdict
from zklab.interrupts import Terminated
from zklab.launcher import ZooKeeperCluster, jvms_in, live_processes, process_stat
from zklab.launcher import _die_with_parent as die_with_parent
from zklab.zk import output_lost

CHECKS: dict[str, list[Check]] = {"leader": check_leader.CHECKS, "hashing": check_hashing.CHECKS}
# The most a challenge's failing scenarios may take together (a scenario that holds draws nothing, so a
# slow machine never cuts a correct script short): past it, what is left is reported as not run. Kept
# under the documented 25 s for a script that hangs, with room to load and close.
BUDGET = {"leader": 22.0, "hashing": 12.0}
# Beyond a scenario's own bound: its clean-up, then the process's chance to report.
GRACE = CLOSE_TIMEOUT + 2.0
# Loading the script: the process's own watchdog reports at 10 s; this is the hard stop behind it.
LOAD_DEADLINE = 14.0
# How long the clean-up waits for the JVMs of the script's ensemble (they die with its process) to exit before it
# removes the work folder they write in.
JVM_EXIT = 10.0
WIDTH = 100
SAME_ADVICE = "(the same advice as for '{}', above)"


def guarantees(challenge: str) -> dict[str, str]:
    """Every guarantee `check <challenge>` reports, key -> plain words, in output order."""
    return {key: words for check in CHECKS[challenge] for key, words in check.guarantees.items()}


def guarantee_keys(text: str) -> set[str]:
    """--only's argument: guarantee keys, comma-separated (check and its watch read it alike)."""
    return set(filter(None, text.split(",")))


def selected(challenge: str, only: set[str]) -> list[int]:
    """The indexes of the scenarios that measure any guarantee in `only` (all of them when it is empty)."""
    return [i for i, check in enumerate(CHECKS[challenge]) if not only or only & set(check.guarantees)]


SHARED_ZK = "ZKLAB_CHECK_ZK"


class ZooKeeperNotReady(Exception):
    pass


class Background:
    """The checker's ZooKeeper, started on a thread while the script loads and the checks that need none run.

    The thread lives until stop(): the launcher ties each server's life to the thread that started it.
    """

    def __init__(self, workdir: Path):
        self.cluster: ZooKeeperCluster | None = None
        self.error: Exception | None = None
        self._ready, self._done = threading.Event(), threading.Event()
        # ZKLAB_CHECK_ZK=host:port: a ZooKeeper to use instead of starting one (every check works in a fresh
        # chroot of its own, so checkers can share one: the test suite does, to save a JVM per run).
        self.given = os.environ.get(SHARED_ZK, "").strip()
        self._thread = threading.Thread(target=self._serve, args=(workdir,), name="zookeeper", daemon=True)
        if self.given:
            self._ready.set()
        else:
            self._thread.start()

    def _serve(self, workdir: Path) -> None:
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            self.cluster = ZooKeeperCluster(servers=1, workdir=str(workdir)).start()
        except Exception as exc:
            self.error = exc
        self._ready.set()
        self._done.wait()
        if self.cluster is not None:
            self.cluster.stop()

    def address(self) -> str:
        if self.given:
            return self.given
        self._ready.wait(60)
        if self.cluster is None:
            raise ZooKeeperNotReady(str(self.error or "ZooKeeper did not start within 60 s"))
        return self.cluster.servers[0].address

    def stopped_serving(self) -> str:
        """'' while our server serves; once it started, what stopped it: 'died' (its process ended, kill -9
        included) or 'was paused (SIGSTOP)': a frozen server answers nobody, and every scenario would fail."""
        if not self._ready.is_set() or self.cluster is None:
            return ""
        server = self.cluster.servers[0]
        if not server.running:
            return "died"
        stat = process_stat(server.process.pid)
        return "was paused (SIGSTOP)" if stat is not None and stat[0] == "T" else ""

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(30)


def marks() -> tuple[str, str]:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return ("\u2714", "\u2718") if encoding == "utf8" else ("ok", "XX")


def say(text: str = "") -> None:
    print(text, flush=True)


def report(verdict: Verdict, words: str, said: dict[str, str] | None = None) -> None:
    """One line per guarantee; under a failure, its advice (once: the same advice again only points up) and
    its evidence."""
    good, bad = marks()
    say(f"{good if verdict.ok else bad} {words}: {verdict.figure}")
    if not verdict.ok and verdict.advice and said is not None and verdict.advice in said:
        say(f"    {SAME_ADVICE.format(said[verdict.advice])}")
    elif not verdict.ok and verdict.advice:
        say(textwrap.fill(verdict.advice, WIDTH, initial_indent="    ", subsequent_indent="    "))
        if said is not None:
            said[verdict.advice] = words
    if not verdict.ok:
        for line in verdict.evidence[:12]:
            say(f"    {line}"[:WIDTH])


# ---------------------------------------------------------------- the script's process

# The script's processes not ended yet: the clean-up ends any that a second Ctrl-C kept check_challenge from ending.
LIVE: list[Child] = []


class Child:
    """The process that runs the learner's script (zklab.check_child), and the pipes to it."""

    def __init__(self, challenge: str, directory: Path, work: Path, budget: float, verbose: bool,
                 checks: list[int]):
        report_r, report_w = os.pipe()
        control_r, self._control_w = os.pipe()
        sink = None if verbose else subprocess.DEVNULL
        cmd = [sys.executable, "-m", "zklab.check_child", challenge, "--scripts", str(directory),
               "--workdir", str(work / challenge), "--report", str(report_w), "--control", str(control_r),
               "--budget", f"{budget:.1f}", "--checks", ",".join(map(str, checks))]
        cmd += (["--utf8"] if marks()[0] != "ok" else []) + (["-v"] if verbose else [])
        # Its own process group (killed whole at the end), and dead with us even if we are killed -9.
        self.process = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                                        pass_fds=(report_w, control_r), start_new_session=True,
                                        preexec_fn=die_with_parent, env={**os.environ, "PYTHONPATH": str(ROOT)})
        os.close(report_w)
        os.close(control_r)
        self._report, self._buffer = report_r, b""
        self._killed, self.left_behind = False, []
        LIVE.append(self)

    def send_zk(self, address: str | None) -> None:
        with contextlib.suppress(OSError):
            os.write(self._control_w, (json.dumps({"zk": address}) + "\n").encode())

    def lines(self, timeout: float) -> Iterator[dict] | None:
        """The messages that arrive within `timeout`; None once the process closed the pipe (it ended)."""
        ready, _, _ = select.select([self._report], [], [], max(0.0, timeout))
        if not ready:
            return iter(())
        chunk = os.read(self._report, 65536)
        if not chunk:
            return None
        self._buffer += chunk
        *whole, self._buffer = self._buffer.split(b"\n")
        return iter([message for line in whole if (message := decode(line)) is not None])

    def end(self, grace: float = 0.0) -> int | None:
        """Its exit code, once it ended: by itself within `grace`, or killed with its process group (anything
        it started too). If it ended by itself, what is still in its group was left by the script (a fork):
        `left_behind`, killed too."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(grace)
        if self.process.poll() is not None and not self._killed and not self.left_behind:
            self.left_behind = group_members(self.process.pid)
        if self.process.poll() is None or self.left_behind:
            self._killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        for fd in (self._report, self._control_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ValueError):
            LIVE.remove(self)
        return self.process.returncode


def group_members(pgid: int) -> list[int]:
    """The live processes (not zombies) in process group `pgid`, read from /proc (none where there is none)."""
    return [pid for pid, (_, _, group) in live_processes().items() if group == pgid]


def decode(line: bytes) -> dict | None:
    """One report line; anything that is not one of ours (a JSON object with an event) is dropped."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and "event" in message else None


def exit_words(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


# ---------------------------------------------------------------- one challenge

class Run:
    """What the parent knows of one challenge's run: the verdicts reported, and where the child is."""

    def __init__(self, challenge: str, checks: list[int]):
        self.challenge = challenge
        self.words = {k: w for i in checks for k, w in CHECKS[challenge][i].guarantees.items()}
        self.verdicts: dict[str, Verdict] = {}
        self.said: dict[str, str] = {}   # advice printed already -> the guarantee it was printed for
        self.loaded = False
        self.left_behind: list[int] = []  # processes the script left, outside its group (setsid), as reported
        self.load_said = False   # the child said why it could not load the script
        self.zk_died = False     # then nothing failed for the script's sake: no progress is recorded
        self.check: Check | None = None
        self.deadline = time.monotonic() + LOAD_DEADLINE

    def take(self, message: dict, zookeeper: Background) -> bool:
        """Handle one message; False once the child has said all it will."""
        event = message.get("event")
        if event == "load":
            return self.on_load(message)
        if event == "begin" and message.get("index") in range(len(CHECKS[self.challenge])):
            self.check = CHECKS[self.challenge][message["index"]]
            self.deadline = time.monotonic() + float(message.get("bound", 0)) + GRACE
        elif event == "left" and isinstance(message.get("pids"), list):  # what the script left, killed there
            self.left_behind = [pid for pid in message["pids"] if isinstance(pid, int)]
        elif event == "verdict" and (verdict := verdict_of(message)) is not None:
            if not verdict.ok and (why := zookeeper.stopped_serving()):
                verdict, self.zk_died = zookeeper_died(verdict.key, why), True
            if verdict.key in self.words and verdict.key not in self.verdicts:
                self.verdicts[verdict.key] = verdict
                report(verdict, self.words[verdict.key], self.said)
        return event != "done"

    def on_load(self, message: dict) -> bool:
        if message.get("ok"):
            self.loaded = True
            return True
        self.load_said = True
        _, bad = marks()
        say(f"{bad} the script imports: {message.get('figure')}")
        if message.get("advice"):
            say(textwrap.fill(message["advice"], WIDTH, initial_indent="    ", subsequent_indent="    "))
        return False

    def missing(self, why: str, advice: str) -> None:
        """Every guarantee not reported fails, with why: nothing unreported counts."""
        if not self.loaded:
            return
        for key, words in self.words.items():
            if key not in self.verdicts:
                self.verdicts[key] = Verdict(key, False, why, advice)
                report(self.verdicts[key], words, self.said)


def verdict_of(message: dict) -> Verdict | None:
    """A verdict line as the script's process sent it; None for anything malformed."""
    try:
        return Verdict(str(message["key"]), message["ok"] is True, str(message["figure"]), str(message["advice"]),
                       [str(x) for x in message["evidence"]], str(message["unwritten"]))
    except (KeyError, TypeError):
        return None


def zookeeper_died(key: str, why: str) -> Verdict:
    return Verdict(key, False, f"not judged: the checker's own ZooKeeper {why} during the run",
                   "This says nothing about your script: the check's ZooKeeper stopped serving under it. "
                   "Run the check again.")


def check_challenge(challenge: str, directory: Path, zookeeper: Background, work: Path, verbose: bool,
                    only: set[str]) -> bool:
    started, checks = time.monotonic(), selected(challenge, only)
    say(SCRIPTS[challenge] + ("" if directory == ROOT else f" in {directory}"))
    child = Child(challenge, directory, work, BUDGET[challenge], verbose, checks)
    run = Run(challenge, checks)
    threading.Thread(target=hand_address, args=(zookeeper, child), daemon=True).start()
    try:
        follow(child, run, zookeeper)
    finally:
        code = child.end(grace=3.0)  # having said all, the child exits at once: what stays is the script's
    if not run.loaded and not run.load_said:
        _, bad = marks()
        say(f"{bad} the script imports: its process {exit_words(code)} while loading it")
    if not run.loaded:
        return False
    held = sum(v.ok for v in run.verdicts.values())
    say(f"{held} of {len(run.words)} guarantees hold ({time.monotonic() - started:.1f} s)")
    left = sorted(set(child.left_behind + run.left_behind))
    if left:
        say(f"{marks()[1]} the script left {len(left)} process(es) running after the check (pids "
            f"{' '.join(map(str, left[:5]))}{' ...' if len(left) > 5 else ''}); the "
            "checker killed them")
        say(textwrap.fill("A fork copies the process with its ZooKeeper session: two processes then act on one "
                          "session, and the copy outlives everything. Code under test must not fork or leave "
                          "programs running.", WIDTH, initial_indent="    ", subsequent_indent="    "))
    if not only and not run.zk_died:
        progress(challenge, run, directory)
    return held == len(run.words) and not left


def hand_address(zookeeper: Background, child: Child) -> None:
    try:
        child.send_zk(zookeeper.address())
    except ZooKeeperNotReady:
        child.send_zk(None)


def follow(child: Child, run: Run, zookeeper: Background) -> None:
    """Read the child's verdicts until it is done, dies, stops answering, or our ZooKeeper dies."""
    while True:
        interrupts.raise_noted()
        if zookeeper.error is not None:
            raise ZooKeeperNotReady(str(zookeeper.error))
        if why := zookeeper.stopped_serving():
            child.end()
            died, run.zk_died = zookeeper_died("", why), True
            run.missing(died.figure, died.advice)
            return
        messages = child.lines(min(0.2, run.deadline - time.monotonic()))
        if messages is None:
            code = child.end()
            where = f" during '{next(iter(run.check.guarantees.values()))}'" if run.check else ""
            run.missing(f"the script's process {exit_words(code)}{where}, before it reported this",
                        "Something in the script ended its process (sys.exit, os._exit, a crash): a check "
                        "counts only what was reported. Code under test must never exit the process.")
            return
        for message in messages:
            if not run.take(message, zookeeper):
                return
        if time.monotonic() > run.deadline:
            child.end()
            where = f" during '{next(iter(run.check.guarantees.values()))}'" if run.check else " while loading"
            run.missing(f"the script's process stopped answering{where}",
                        "Its process was stopped: something in the script held it (a loop that never "
                        "yields, a lock taken forever).")
            return


def progress(challenge: str, run: Run, directory: Path) -> None:
    """Hand the verdicts to the exercises' progress record (kept beside the scripts checked: --scripts DIR
    never overwrites the checkout's own) and print the line it returns, if it is there."""
    try:
        from zklab.exercise import record_check
        line = record_check(challenge, {k: v.ok for k, v in run.verdicts.items()},
                            {k: v.unwritten for k, v in run.verdicts.items() if v.unwritten},
                            scripts=None if directory == ROOT else directory)
    except (ImportError, AttributeError):
        return
    except Exception as exc:  # progress is a courtesy: never let it change the verdict
        line = f"(progress not recorded: {type(exc).__name__})"
    if line:
        say(line)


# ---------------------------------------------------------------- command line

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run.sh check", description="Check the challenge scripts' guarantees "
                                     "against a ZooKeeper of the checker's own.", allow_abbrev=False)
    parser.add_argument("challenge", nargs="?", choices=sorted(SCRIPTS), help="one challenge (default: both)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the script's output and logs")
    parser.add_argument("--scripts", type=Path, default=ROOT, metavar="DIR",
                        help="where the challenge scripts are (default: this checkout)")
    parser.add_argument("--watch", action="store_true", help="check again each time a script is saved")
    parser.add_argument("--only", metavar="KEY,...", type=guarantee_keys,
                        default=set(), help="run only the scenarios that measure these guarantees (e.g. wrap)")
    args = parser.parse_args(argv)
    wanted = [args.challenge] if args.challenge else list(SCRIPTS)
    known = {key for challenge in wanted for key in guarantees(challenge)}
    if args.only - known:
        parser.error(f"argument --only: no such guarantee: {', '.join(sorted(args.only - known))} "
                     f"(known: {', '.join(sorted(known))})")
    wanted = [c for c in wanted if selected(c, args.only)]
    missing = [SCRIPTS[c] for c in wanted if not (args.scripts / SCRIPTS[c]).is_file()]
    if missing:
        parser.error(f"argument --scripts: {args.scripts} has no {', '.join(missing)}")
    args.challenges = wanted
    return args


def watch(argv: list[str]) -> int:
    """`--watch`: zklab.watch re-runs the check on every save (it is the exercises' module)."""
    try:
        from zklab.watch import main as watch_main
    except ImportError:
        print("./run.sh check: error: --watch is not available in this checkout", file=sys.stderr)
        return 2
    return watch_main([a for a in argv if a != "--watch"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.watch:
        return watch(argv)
    work = Path(tempfile.mkdtemp(prefix="zklab-check-"))
    restore = interrupts.install()
    zookeeper = Background(work / "zookeeper")
    try:
        return 0 if all(check_all(args, zookeeper, work)) else 1
    except ZooKeeperNotReady as exc:
        print(f"error: the checker needs a ZooKeeper of its own and could not start one: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    except OSError as exc:  # `| head` (the reader left: exit 0, quietly) or a full disk (one line, exit 1)
        if (code := output_lost(exc, "check")) is None:
            raise
        return code
    finally:
        while not clean_up(zookeeper, work):
            pass  # a second Ctrl-C came before the clean-up could ignore it: start it again
        restore()


def clean_up(zookeeper: Background, work: Path) -> bool:
    """Stop our ZooKeeper, remove the work folder; a second Ctrl-C or SIGTERM must not cut this short (a JVM
    and a folder would stay), so both are ignored meanwhile. False if one came before that took hold."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except (KeyboardInterrupt, Terminated):
        return False
    for child in list(LIVE):  # a second Ctrl-C cut check_challenge's own end short: its ensemble writes on
        child.end()
    zookeeper.stop()
    deadline = time.monotonic() + JVM_EXIT   # the script's ensemble dies with its process, a moment later
    while jvms_in(work) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(work, ignore_errors=True)
    return True


def check_all(args: argparse.Namespace, zookeeper: Background, work: Path) -> list[bool]:
    results = []
    for i, challenge in enumerate(args.challenges):
        interrupts.raise_noted()
        if i:
            say()
        results.append(check_challenge(challenge, args.scripts.resolve(), zookeeper, work, args.verbose, args.only))
    return results


if __name__ == "__main__":
    sys.exit(main())
