"""Check the challenge scripts' guarantees, in the lesson's words: `./run.sh check [leader|hashing] [-v]`.

Starts a ZooKeeper of its own, imports the scripts as they stand (or from --scripts DIR), and prints
one line per guarantee: a mark, the guarantee, and the figure measured. A failure adds what happened,
why it matters and where to look. Exit 0 when every guarantee holds, 1 otherwise, 2 for bad arguments.
The guarantees live in zklab.check_leader and zklab.check_hashing; the test suite runs the same ones.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path

from zklab import check_hashing, check_leader
from zklab.check_lab import ROOT, SCRIPTS, Check, Lab, Verdict, load_script, run_check
from zklab.launcher import ZooKeeperCluster

CHECKS: dict[str, list[Check]] = {"leader": check_leader.CHECKS, "hashing": check_hashing.CHECKS}
# The most each challenge's checks may take together, even when the script hangs: past it, what is
# left is reported as not run. (A clean run takes about 4 s and 2 s.)
BUDGET = {"leader": 20.0, "hashing": 12.0}
WIDTH = 100


def guarantees(challenge: str) -> dict[str, str]:
    """Every guarantee `check <challenge>` reports, key -> plain words, in output order."""
    return {key: words for check in CHECKS[challenge] for key, words in check.guarantees.items()}


class ZooKeeperNotReady(Exception):
    pass


class Background:
    """A ZooKeeper started on a thread while the checks that need none run.

    The thread lives until stop(): the launcher ties each server's life to the thread that started it.
    """

    def __init__(self) -> None:
        self.cluster: ZooKeeperCluster | None = None
        self.error: Exception | None = None
        self._ready, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._serve, name="zookeeper", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.cluster = ZooKeeperCluster(servers=1).start()
        except Exception as exc:
            self.error = exc
        self._ready.set()
        self._done.wait()
        if self.cluster is not None:
            self.cluster.stop()

    def address(self) -> str:
        self._ready.wait(60)
        if self.cluster is None:
            raise ZooKeeperNotReady(str(self.error or "ZooKeeper did not start within 60 s"))
        return self.cluster.servers[0].address

    def stop(self) -> None:
        self._done.set()
        self._thread.join(30)


def marks() -> tuple[str, str]:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return ("\u2714", "\u2718") if encoding == "utf8" else ("ok", "XX")


def say(text: str = "") -> None:
    print(text, flush=True)


def report(verdict: Verdict, words: str, verbose: bool) -> None:
    good, bad = marks()
    say(f"{good if verdict.ok else bad} {words}: {verdict.figure}")
    if not verdict.ok and verdict.advice:
        say(textwrap.fill(verdict.advice, WIDTH, initial_indent="    ", subsequent_indent="    "))


def check_challenge(challenge: str, directory: Path, zookeeper: Background, verbose: bool) -> bool:
    started = time.monotonic()
    say(SCRIPTS[challenge] + ("" if directory == ROOT else f" in {directory}"))
    try:
        script = load_script(challenge, directory)
    except Exception as exc:
        _, bad = marks()
        where = f" line {exc.lineno}" if isinstance(exc, SyntaxError) else ""
        say(f"{bad} the script imports: {type(exc).__name__}{where}: {exc}")
        if verbose:
            traceback.print_exc()
        return False
    held = total = 0
    for check in CHECKS[challenge]:
        left = BUDGET[challenge] - (time.monotonic() - started)
        if left <= 0:
            for key, words in check.guarantees.items():
                report(Verdict(key, False, "not run: earlier checks used up the time", ""), words, verbose)
                total += 1
            continue
        lab = Lab(script, zookeeper.address if check.needs_zk else None)
        verdicts, error = run_check(check, lab, bound=left)
        if isinstance(error, ZooKeeperNotReady):
            raise error
        for verdict in verdicts:
            report(verdict, check.guarantees[verdict.key], verbose)
            held, total = held + verdict.ok, total + 1
        if verbose and error is not None:
            traceback.print_exception(type(error), error, error.__traceback__)
    say(f"{held} of {total} guarantees hold ({time.monotonic() - started:.1f} s)")
    return held == total


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run.sh check", description="Check the challenge scripts' guarantees "
                                     "against a ZooKeeper of the checker's own.")
    parser.add_argument("challenge", nargs="?", choices=sorted(SCRIPTS), help="one challenge (default: both)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and the scripts' logs")
    parser.add_argument("--scripts", type=Path, default=ROOT, metavar="DIR",
                        help="where the challenge scripts are (default: this checkout)")
    args = parser.parse_args(argv)
    wanted = [args.challenge] if args.challenge else list(SCRIPTS)
    missing = [SCRIPTS[c] for c in wanted if not (args.scripts / SCRIPTS[c]).is_file()]
    if missing:
        parser.error(f"argument --scripts: {args.scripts} has no {', '.join(missing)}")
    args.challenges = wanted
    return args


def quiet(verbose: bool) -> None:
    """The scripts' and kazoo's logs and dying threads are findings for -v, noise otherwise."""
    if verbose:
        logging.basicConfig(level=logging.WARNING)
        return
    logging.disable(logging.CRITICAL)
    threading.excepthook = lambda args: None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet(args.verbose)
    zookeeper = Background()
    try:
        results = []
        for i, challenge in enumerate(args.challenges):
            if i:
                say()
            results.append(check_challenge(challenge, args.scripts.resolve(), zookeeper, args.verbose))
    except ZooKeeperNotReady as exc:
        print(f"error: the checker needs a ZooKeeper of its own and could not start one: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `./run.sh check | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        zookeeper.stop()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
