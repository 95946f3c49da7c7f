"""Watch mode: `./run.sh check --watch [leader|hashing]` checks a challenge again each time its script is saved.

Rules of the watch, as Rustlings keeps them:
- It polls the scripts' modification times with the standard library, every POLL seconds, so a
  save starts a new check within a second; a save during a check stops that check and starts over.
- Each check is `python -m zklab.check CHALLENGE` in a process of its own: the learner's code may
  hang, loop or exit, and the watch goes on.
- After the first check it prints only the lines that changed since the last one, then the progress
  line (`leader: steps 1-3 of 7 hold`), so a save shows what the edit changed.
- A syntax error is one plain line with the file and the line number; the watch waits for the next save.
- Ctrl-C, SIGTERM or a closed stdout stop the check under way and leave, exit 0.
- Each check keeps its temporary folders in one the watch owns (TMPDIR), so that a check killed before it
  could clean up (past STOP_GRACE) leaves nothing: the watch removes that folder when it leaves.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from pathlib import Path

from zklab import interrupts
from zklab.check import guarantee_keys, selected
from zklab.check_lab import ROOT, SCRIPTS

# How often we look at the scripts' modification times: a save is seen within this.
POLL = 0.2
# How long a stopped check may take to close its ZooKeeper before we kill it.
STOP_GRACE = 5.0
# The most a check may take, even when the learner's code never returns; the checker's own budget
# (22 s of failing scenarios for the leader, plus the ones that hold) and starting and stopping its ZooKeeper.
CHECK_BOUND = 120.0


class Stop(Exception):
    """Ctrl-C, SIGTERM or a closed stdout: leave."""


def stamp(path: Path) -> tuple[int, int] | None:
    """What changes when the file is saved: its modification time and size (None if it is missing)."""
    try:
        info = path.stat()   # follows a symlink to the file the editor writes
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def syntax_error(path: Path) -> str | None:
    """'challenge_leader_election.py line 12: invalid syntax', or None if the script compiles."""
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:  # a NUL byte has no line: the file's name is all there is to say
        where = f"{path.name} line {exc.lineno}" if exc.lineno else path.name
        return f"{where}: {exc.msg}; fix it and save again"
    except (OSError, ValueError) as exc:
        return f"{path.name}: {exc}"
    return None


class Watch:
    def __init__(self, challenges: list[str], scripts: Path, verbose: bool, only: Collection[str] = ()):
        self.challenges, self.scripts, self.verbose, self.only = challenges, scripts, verbose, only
        self.paths = {c: scripts / SCRIPTS[c] for c in challenges}
        self.stamps = {c: stamp(p) for c, p in self.paths.items()}
        self.last: dict[str, list[str]] = {}   # each challenge's previous output lines
        self.proc: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="zklab-watch-"))  # every check's temporary folders, in one

    def close(self) -> None:
        """Stop the check under way and remove what any check left in our folder."""
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self) -> None:
        todo = list(self.challenges)
        self.say(f"watching {', '.join(SCRIPTS[c] for c in self.challenges)}: save to check again, Ctrl-C to stop")
        while True:
            while todo:
                challenge = todo.pop(0)
                changed = self.check(challenge)
                todo += [c for c in changed if c not in todo]
            todo = self.changed()
            if not todo:
                time.sleep(POLL)

    def changed(self) -> list[str]:
        interrupts.raise_noted()  # polled often: a signal Python swallowed while we forked is raised here
        found = []
        for challenge, path in self.paths.items():
            now = stamp(path)
            if now != self.stamps[challenge]:
                self.stamps[challenge] = now
                found.append(challenge)
        return found

    def check(self, challenge: str) -> list[str]:
        """Check one challenge; the challenges saved meanwhile (this one included, if it was cut short)."""
        script = SCRIPTS[challenge]
        self.say(f"{time.strftime('%H:%M:%S')} checking {script}")
        if problem := syntax_error(self.paths[challenge]):
            self.say(problem)
            return []
        lines: list[str] = []
        self.proc = proc = self.start(challenge)
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + CHECK_BOUND
        while self.proc.poll() is None:
            if changed := self.changed():
                self.stop()
                self.say(f"{', '.join(SCRIPTS[c] for c in changed)} saved again: starting over")
                return changed
            if time.monotonic() > deadline:
                self.stop()
                self.say(f"the check of {script} took more than {CHECK_BOUND:.0f} s and was stopped")
                return []
            time.sleep(POLL)
        reader.join(STOP_GRACE)
        self.proc = None
        self.show(challenge, [line.rstrip("\n") for line in lines])
        return []

    def start(self, challenge: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "zklab.check", challenge, "--scripts", str(self.scripts),
                   *(["--only", ",".join(sorted(self.only))] if self.only else [])]
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        return subprocess.Popen(command + (["-v"] if self.verbose else []), cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={"ZKLAB_STATE": str(self.scripts / ".zklab"), **os.environ,
                                     "PYTHONIOENCODING": encoding, "TMPDIR": str(self.tmp)}, encoding=encoding,
                                errors="replace", start_new_session=True)  # our Ctrl-C is ours to pass on

    def stop(self) -> None:
        """Stop the check under way: SIGINT lets it close its ZooKeeper; past STOP_GRACE, SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def show(self, challenge: str, lines: list[str]) -> None:
        """Every line the first time; then the lines that are new since the last check, and the last line."""
        before = self.last.get(challenge)
        self.last[challenge] = lines
        if before is None:
            self.say("\n".join(lines))
            return
        seen = set(before)
        new = [line for line in lines[:-1] if line not in seen]
        self.say("\n".join(new + lines[-1:]) if new or lines else "(no output)")

    @staticmethod
    def say(text: str) -> None:
        try:
            print(text, flush=True)
        except (BrokenPipeError, ValueError):
            raise Stop() from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run.sh check --watch", description="Check a challenge again each "
                                     "time its script is saved.")
    parser.add_argument("challenge", nargs="?", choices=sorted(SCRIPTS), help="one challenge (default: both)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and the scripts' logs")
    parser.add_argument("--scripts", type=Path, default=ROOT, metavar="DIR",
                        help="where the challenge scripts are (default: this checkout)")
    parser.add_argument("--only", metavar="KEY,...", type=guarantee_keys, default=set(),
                        help="check only these guarantees each time (`./run.sh check` has checked the names)")
    parser.add_argument("--watch", action="store_true", help=argparse.SUPPRESS)  # passed on by check, harmless
    args = parser.parse_args(argv)
    args.challenges = [c for c in ([args.challenge] if args.challenge else list(SCRIPTS)) if selected(c, args.only)]
    if missing := [SCRIPTS[c] for c in args.challenges if not (args.scripts / SCRIPTS[c]).is_file()]:
        parser.error(f"argument --scripts: {args.scripts} has no {', '.join(missing)}")
    args.scripts = args.scripts.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    watch = Watch(args.challenges, args.scripts, args.verbose, args.only)
    restore = interrupts.install()
    try:
        watch.run()
    except (Stop, KeyboardInterrupt, interrupts.Terminated):
        watch.close()
        try:
            print("\nwatch stopped", flush=True)
        except (BrokenPipeError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        watch.close()  # a second time is harmless; an error we did not expect must not leave the folder
        restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
