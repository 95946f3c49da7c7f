"""The learner's script can block, exit or raise at import, and the rich demos still end on time with one line;
an abbreviated option or a non-ASCII digit is a usage error; a ZooKeeper that never answered is never a success."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import unreachable_hosts

ROOT = Path(__file__).resolve().parent.parent
DEMOS = {"zklab.demo_leader": "challenge_leader_election.py", "zklab.demo_hashing": "challenge_consistent_hashing.py"}
# The demos give a script this long to load (their connect timeout), and this long more to say so and exit.
LOAD_BOUND, MARGIN = 5.0, 5.0


def lab_copy(tmp_path: Path, script: str, top_level: str) -> Path:
    """A copy of the lab whose `script` runs `top_level` first thing at import."""
    shutil.copytree(ROOT / "zklab", tmp_path / "zklab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in DEMOS.values():
        shutil.copy(ROOT / name, tmp_path / name)
    path = tmp_path / script
    path.write_text(path.read_text().replace("from __future__ import annotations\n",
                                             f"from __future__ import annotations\n{top_level}\n", 1))
    return tmp_path


def run_demo(cwd: Path, module: str, *args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    return result, time.monotonic() - started


@pytest.mark.parametrize("module", DEMOS)
@pytest.mark.parametrize("top_level, said", [("import time; time.sleep(10**6)", "still loading"),
                                             ("import sys; sys.exit(0)", "SystemExit"),
                                             ("raise KeyboardInterrupt", "KeyboardInterrupt")])
def test_a_script_that_blocks_or_leaves_at_import_is_one_line_and_exit_1(tmp_path: Path, module: str, top_level: str,
                                                                          said: str, zk_hosts: str) -> None:
    """The demo imports the learner's script off the thread that keeps the time: one line, exit 1, on time."""
    copy = lab_copy(tmp_path, DEMOS[module], top_level)
    result, took = run_demo(copy, module, "--zk", zk_hosts, "--duration", "3")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "does not load" in lines[0] and said in lines[0], result
    assert "Traceback" not in result.stdout + result.stderr
    assert took < LOAD_BOUND + MARGIN, f"took {took:.1f} s"


@pytest.mark.parametrize("demo, said", [("zklab.demo_leader", "no ZooKeeper answered"),
                                        ("zklab.demo_hashing", "before --duration ran out")])
def test_a_zookeeper_that_never_answered_before_the_duration_is_no_success(demo: str, said: str) -> None:
    """--duration shorter than the connect timeout, nothing listening: one line and exit 1, not an empty summary,
    within --duration (the hashing demo waited its 5 s connect timeout)."""
    result, took = run_demo(ROOT, demo, "--zk", unreachable_hosts(), "--duration", "1")
    assert result.returncode == 1 and said in result.stderr, result
    assert "summary" not in result.stdout and took < 1 + 3, f"{took:.1f} s"  # 1.2 s measured; start-up under load


@pytest.mark.parametrize("command", [["-m", "zklab.demo_leader"], ["-m", "zklab.demo_hashing"],
                                     ["challenge_leader_election.py"], ["challenge_consistent_hashing.py"]])
@pytest.mark.parametrize("argument", [["--z", "127.0.0.1:1"], ["--duration", "\u0661\u0660"]])
def test_an_abbreviated_option_or_a_non_ascii_digit_is_a_usage_error(command: list[str], argument: list[str]) -> None:
    """`--z` is not `--zk` (the runner would look for a ZooKeeper the demo then does not use), and an
    Arabic-Indic `10` is not 10 (ports refuse it too): exit 2, before anything connects, in one line (no
    usage block above it) that names the argument and points to --help."""
    result = subprocess.run([sys.executable, *command, *argument], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result
    said = result.stderr.strip().splitlines()
    assert len(said) == 1 and argument[0] in said[0] and said[0].endswith("--help says more"), result.stderr
