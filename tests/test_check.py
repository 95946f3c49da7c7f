"""The checker as a learner meets it: one line per guarantee with its figure, plain words on failure, exit codes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zklab.check import guarantees
from zklab.check_lab import ROOT, SCRIPTS

MARK = re.compile(r"^(\u2714|\u2718|ok|XX) ")


def run_check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zklab.check", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def copy_scripts(tmp_path: Path) -> Path:
    for script in SCRIPTS.values():
        shutil.copy(ROOT / script, tmp_path / script)
    return tmp_path


def edit(path: Path, find: str, replace: str) -> None:
    text = path.read_text()
    assert text.count(find) == 1
    path.write_text(text.replace(find, replace))


def test_clean_scripts_pass_with_one_line_per_guarantee() -> None:
    """On the scripts as committed, every guarantee holds, each on one line with its figure, within bounds."""
    result = run_check()
    lines = [line for line in result.stdout.splitlines() if MARK.match(line)]
    words = [*guarantees("leader").values(), *guarantees("hashing").values()]
    assert result.returncode == 0, result.stdout
    assert len(lines) == len(words) and all(line.startswith("\u2714 ") for line in lines), result.stdout
    for text in words:
        assert sum(line[2:].startswith(text + ": ") for line in lines) == 1, text
    times = [float(t) for t in re.findall(r"guarantees hold \(([\d.]+) s\)", result.stdout)]
    # The budgets (15 s and 5 s on an idle 2-core machine) with room for the suite's own load: leader, hashing.
    assert len(times) == 2 and times[0] < 25 and times[1] < 12, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [["nonsense"], ["--scripts", "/nonexistent"], ["leader", "hashing"],
                                  ["--only", "no-such-guarantee"]])
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    """Bad arguments: argparse's one-line error, exit 2, no ZooKeeper started."""
    result = run_check(*args, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error:" in result.stderr.strip().splitlines()[-1]


def test_a_crash_in_the_learners_code_is_a_failed_guarantee_in_plain_words(tmp_path: Path) -> None:
    """LeaderElection.start raising is reported as such on each guarantee's line; a traceback only with -v."""
    scripts = copy_scripts(tmp_path)
    docstring = '"""Join the election and return at once; the work happens on a thread of our own."""'
    edit(scripts / SCRIPTS["leader"], docstring, docstring + '\n        raise TypeError("boom")')
    result = run_check("leader", "--scripts", str(scripts), "--only", "one-leader,in-order")
    assert result.returncode == 1
    assert "LeaderElection.start raised TypeError: boom" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    verbose = run_check("leader", "-v", "--scripts", str(scripts), "--only", "one-leader")
    assert verbose.returncode == 1 and "Traceback" in verbose.stdout + verbose.stderr


def test_epochs_compared_by_the_client_instead_of_zookeeper_fail_the_stale_write(tmp_path: Path) -> None:
    """A fenced_write that compares epochs itself, with no check() of the election node, is caught: a deposed
    leader's late write before its successor's first one still gets through."""
    scripts = copy_scripts(tmp_path)
    edit(scripts / SCRIPTS["leader"], "    tx.check(token.node_path, 0)",
         '    if stat is not None and json.loads(client.get(ledger)[0])["epoch"] > token.epoch:\n'
         '        raise NotLeaderError("a newer epoch wrote the ledger")  # compared here, not in ZooKeeper\n'
         '    tx.check(token.node_path.rsplit("/", 1)[0], -1)  # the candidates\' parent: always there')
    result = run_check("leader", "--scripts", str(scripts), "--only", "stale-write")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith(("\u2718", "XX"))]
    assert len(failed) == 1 and guarantees("leader")["stale-write"] in failed[0] and "accepted" in failed[0], \
        result.stdout


def test_a_weight_check_that_accepts_any_positive_weight_fails_the_foreign_members(tmp_path: Path) -> None:
    """check_weight accepting any weight above 0 is caught: a member of weight 1e-9 gets on the ring, and
    exactly the foreign-data guarantee fails, naming it."""
    scripts = copy_scripts(tmp_path)
    edit(scripts / SCRIPTS["hashing"], "    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:", "    if not weight > 0:")
    result = run_check("hashing", "--scripts", str(scripts), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith(("\u2718", "XX"))]
    assert len(failed) == 1 and guarantees("hashing")["foreign"] in failed[0] and "'tiny'" in failed[0], \
        result.stdout


def test_a_script_that_does_not_import_is_one_line(tmp_path: Path) -> None:
    """A syntax error in the script: one line naming it and its line, exit 1."""
    scripts = copy_scripts(tmp_path)
    path = scripts / SCRIPTS["hashing"]
    path.write_text(path.read_text() + "\ndef broken(:\n")
    result = run_check("hashing", "--scripts", str(scripts), timeout=30)
    assert result.returncode == 1
    assert re.search(r"the script imports: SyntaxError line \d+", result.stdout)
    assert "Traceback" not in result.stdout + result.stderr
