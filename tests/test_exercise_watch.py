"""`./run.sh check --watch`: a save starts a new check within 2 s, the output shows what changed, Ctrl-C leaves."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.test_exercise_proofs import ALL_ANSWERS
from tests.test_exercises import STEPS, copy_scripts
from zklab.check import guarantees
from zklab.check_lab import ROOT, SCRIPTS
from zklab.exercise import empty_function, replace_function
from zklab.faults import wait_until
from zklab.launcher import SUITE_TAG, live_processes, tagged_jvms
from zklab.watch import syntax_error

# A save must start a new check within this (the bound).
RECHECK_WITHIN = 2.0
# A whole hashing check, its own ZooKeeper included, on a loaded 2-core machine.
CHECK_WITHIN = 90.0


class Watcher:
    """`python -m zklab.watch` in a process of its own, its lines read on a thread."""

    def __init__(self, *args: str, state: Path, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "zklab.watch", *args], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                                     env={**os.environ, "PYTHONIOENCODING": "utf-8", "ZKLAB_STATE": str(state),
                                          **(env or {})})
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, wanted, within: float) -> tuple[str, list[str]]:
        """The first line for which wanted(line) holds, and every line read before it."""
        deadline, before = time.monotonic() + within, []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if wanted(line):
                return line, before
            before.append(line)
        raise AssertionError(f"nothing wanted within {within} s; the watch printed:\n" + "\n".join(self.seen))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def answer(function: str, kind: str) -> str:
    return next(a.source for a in ALL_ANSWERS if a.function == function and a.variant.startswith(kind))


def progress(line: str) -> bool:
    return line.startswith("hashing:") or "guarantees hold" in line


@pytest.mark.timeout(400)
def test_watch_judges_a_wrong_body_then_a_right_one(tmp_path: Path) -> None:
    """Emptied step, wrong body (✘ order), a syntax error (one line, watch goes on), right body (✔ order)."""
    scripts = copy_scripts(tmp_path / "scripts")
    path = scripts / SCRIPTS["hashing"]
    step = next(s for s in STEPS if s.function == "place_points")
    path.write_text(empty_function(path.read_text(), step)[0])
    order = guarantees("hashing")["order"]
    watch = Watcher("hashing", "--scripts", str(scripts), state=tmp_path / "state")
    try:
        watch.until(progress, CHECK_WITHIN)

        def save(text: str) -> None:
            path.write_text(text)
            saved = time.monotonic()
            watch.until(lambda line: "checking" in line, RECHECK_WITHIN + 1)
            assert time.monotonic() - saved <= RECHECK_WITHIN + 0.5  # the line's own trip through the pipe

        reference = (ROOT / SCRIPTS["hashing"]).read_text()
        save(replace_function(reference, "place_points", answer("place_points", "wrong")))
        line, _ = watch.until(lambda line: order in line, CHECK_WITHIN)
        assert line.startswith(("\u2718", "XX")), line
        watch.until(progress, CHECK_WITHIN)

        save(reference.replace("def place_points(", "def place_points((", 1))
        line, _ = watch.until(lambda line: SCRIPTS["hashing"] in line and " line " in line, 10)
        assert "Traceback" not in "\n".join(watch.seen)

        save(replace_function(reference, "place_points", answer("place_points", "right")))
        line, before = watch.until(lambda line: order in line, CHECK_WITHIN)
        assert line.startswith(("\u2714", "ok")), line
        _, rest = watch.until(progress, CHECK_WITHIN)
        # Only what changed: the guarantees that held under the wrong body too are not printed again.
        assert len(before + [line] + rest) < len(guarantees("hashing")), "\n".join(watch.seen)

        watch.proc.send_signal(signal.SIGINT)
        assert watch.proc.wait(10) == 0
        watch.until(lambda line: "watch stopped" in line, 5)
    finally:
        watch.close()


def checks_of(watch: int) -> list[int]:
    """The `zklab.check` processes the watch `watch` started (its children, read from /proc)."""
    found = []
    for pid, (_, parent, _) in live_processes().items():
        with contextlib.suppress(OSError):  # gone while we looked
            if parent == watch and b"zklab.check" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


@pytest.mark.timeout(120)
def test_a_check_killed_before_its_clean_up_leaves_no_folder_once_the_watch_stops(tmp_path: Path) -> None:
    """A hostile trial sent SIGTERM to `check --watch` while a check started: the watch killed the check past its
    grace, and the check's folder (its ZooKeeper's data) stayed in /tmp. Here the check is killed outright; once
    the watch stops on SIGTERM, no folder is left and no JVM of the check runs."""
    tag, tmp = f"watch-{uuid.uuid4().hex[:8]}", tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp), SUITE_TAG: tag}
    watch = Watcher("leader", "--scripts", str(copy_scripts(tmp_path / "scripts")), state=tmp_path / "state",
                    env={**env, "ZKLAB_CHECK_ZK": ""})
    try:
        wait_until(lambda: tagged_jvms(tag), 60, "the check to start its ZooKeeper")
        (check,) = checks_of(watch.proc.pid)
        os.kill(check, signal.SIGKILL)   # no clean-up at all: what a check killed past its grace leaves
        wait_until(lambda: tagged_jvms(tag) == [], 15, "the killed check's JVMs to exit")
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.proc.wait(15) == 0
        wait_until(lambda: not any(tmp.iterdir()), 10, "the watch's temporary folders to go",
                   failure=lambda: AssertionError(f"left in {tmp}: {[p.name for p in tmp.iterdir()]}"))
    finally:
        watch.close()


@pytest.mark.timeout(120)
def test_watch_passes_only_on_to_each_check(tmp_path: Path) -> None:
    """`check --watch --only wrap hashing` (check's help shows both): each check measures wrap alone."""
    watch = Watcher("hashing", "--only", "wrap", "--scripts", str(copy_scripts(tmp_path / "scripts")),
                    state=tmp_path / "state")
    try:
        _, before = watch.until(lambda line: "guarantees hold" in line, CHECK_WITHIN)
        verdicts = [line for line in before if line.startswith(("\u2714", "\u2718", "ok ", "XX "))]
        assert verdicts == [f"\u2714 {guarantees('hashing')['wrap']}: " + verdicts[0].split(": ", 1)[1]], before
    finally:
        watch.close()


def test_a_nul_byte_in_the_script_is_one_line_without_a_line_number(tmp_path: Path) -> None:
    path = tmp_path / SCRIPTS["leader"]
    path.write_bytes(b"x = 1\x00\n")
    assert syntax_error(path) == f"{path.name}: source code string cannot contain null bytes; fix it and save again"
