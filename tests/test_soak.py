"""The chaos soak: one minute of every fault finds no violation, and its checks catch what they claim to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import kept_soak_section
from bench.soak import main, write_results
from bench.soak_nemesis import KINDS
from bench.soak_observer import (
    STDLIB,
    epochs_never_go_back,
    in_interpreter_startup,
    leaders_at_once,
    ledger_matches,
    one_leader_per_epoch,
    terms,
    tracebacks,
)
from zklab.launcher import four_letter_word

ROOT = Path(__file__).resolve().parent.parent
SOAK_SEED = 7


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the soak's work dir is in every demo's)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(cmdline)
    return found


@pytest.mark.timeout(150)
def test_one_minute_soak_deals_every_fault_checks_every_invariant_and_finds_nothing(tmp_path: Path) -> None:
    """A 60-second soak deals every fault kind, checks every invariant, finds 0 violations, leaves nothing running."""
    result = subprocess.run([sys.executable, "-m", "bench.soak", "--minutes", "1", "--seed", str(SOAK_SEED),
                             "--workdir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=140)
    summary = json.loads((tmp_path / "summary.json").read_text())
    violations = {name: found["violations"][:3] for name, found in summary["invariants"].items() if found["violations"]}
    assert not violations, f"soak violations (evidence in {tmp_path}):\n{result.stdout[-4000:]}"
    assert not summary["nemesis_errors"]
    assert {kind for kind, count in summary["faults"].items() if count == 0} == set(), summary["faults"]
    assert set(summary["faults"]) == set(KINDS)
    unchecked = [name for name, found in summary["invariants"].items() if found["checked"] == 0]
    assert unchecked == [], f"invariants never exercised: {unchecked}"
    assert summary["peak_mb"] < 300
    assert result.returncode == 0, result.stderr[-2000:]
    assert _processes_mentioning(str(tmp_path)) == [], "a demo process outlived the soak"
    ensemble = next(line for line in result.stdout.splitlines() if "ensemble 127.0.0.1:" in line)
    ports = [int(hp.rsplit(":", 1)[1]) for hp in ensemble.split("ensemble ")[1].split(";")[0].split(",")]
    assert [four_letter_word(port, "ruok") for port in ports] == ["", "", ""], "a ZooKeeper outlived the soak"


# ---------------------------------------------------------------- the checks catch what they claim to

def _write(version: int, epoch: int, worker: str) -> dict:
    return {"event": "write", "version": version, "epoch": epoch, "worker": worker, "pid": 1, "t": 0.0}


def test_an_epoch_that_goes_back_in_version_order_is_a_violation() -> None:
    """Accepted writes are ordered by the ledger's version; a lower epoch after a higher one is reported."""
    assert epochs_never_go_back([_write(2, 7, "a"), _write(1, 5, "b"), _write(3, 7, "a")]) == []
    problems = epochs_never_go_back([_write(1, 5, "b"), _write(3, 6, "c"), _write(2, 7, "a")])
    assert len(problems) == 1 and "epoch went back" in problems[0] and "version 3" in problems[0]


def test_an_epoch_written_by_two_workers_is_a_violation() -> None:
    """Two workers writing under one epoch means two leaders held the same term."""
    assert one_leader_per_epoch([_write(1, 5, "a"), _write(2, 5, "a")]) == []
    assert one_leader_per_epoch([_write(1, 5, "a"), _write(2, 5, "b")]) == ["epoch 5 written by 2 leaders: a, b"]


def test_two_terms_that_overlap_in_time_are_a_violation_and_a_hand_off_is_not() -> None:
    """Terms from lead/unlead events overlap only if both acted at one instant; a missing unlead ends at exit."""
    events = [{"event": "lead", "worker": "w1", "epoch": 1, "t": 1.0},
              {"event": "unlead", "worker": "w1", "epoch": 1, "t": 2.0},
              {"event": "lead", "worker": "w2", "epoch": 2, "t": 2.0}]  # no unlead: ends at exit
    intervals = terms(events, ended=5.0)
    assert sorted(intervals)[1][:2] == (2.0, 5.0)
    assert leaders_at_once(intervals) == []
    late = terms([{"event": "lead", "worker": "w9", "epoch": 3, "t": 4.5}], ended=6.0, who_prefix="other:")
    problems = leaders_at_once(intervals + late)
    assert len(problems) == 1 and "other:w9" in problems[0] and "0.500 s together" in problems[0]


def test_the_observers_ledger_must_match_what_the_demos_reported() -> None:
    """A ledger version whose record names another epoch or leader than the reported write is a violation."""
    writes = [_write(1, 5, "a"), _write(2, 6, "b")]
    seen = [(1, b'{"epoch": 5, "leader": "a", "value": "x"}'), (2, b'{"epoch": 6, "leader": "c", "value": "y"}')]
    compared, problems = ledger_matches(seen, writes)
    assert compared == 2 and len(problems) == 1 and "version 2" in problems[0]


def test_a_traceback_counts_against_the_demo_unless_python_printed_it_before_the_script_ran(tmp_path: Path) -> None:
    """Chained tracebacks are one; the one CPython prints (and swallows) while it starts is told apart."""
    stderr = tmp_path / "demo.stderr"
    stderr.write_text("\n".join([
        "Failed checking if argv[0] is an import path entry",
        "Traceback (most recent call last):", '  File "<frozen zipimport>", line 92, in __init__', "KeyError: 'x'",
        "", "During handling of the above exception, another exception occurred:", "",
        "Traceback (most recent call last):", '  File "<frozen zipimport>", line 94, in __init__', "KeyboardInterrupt",
        "some output",
        "Traceback (most recent call last):", '  File "/lab/challenge_leader_election.py", line 27, in <module>',
        "    import signal", "KeyboardInterrupt", "error: cannot reach ZooKeeper",
        "Traceback (most recent call last):", '  File "/lab/challenge_leader_election.py", line 0, in <module>',
        "KeyboardInterrupt",
        "Traceback (most recent call last):", '  File "<frozen site>", line 616, in <module>', "KeyboardInterrupt",
        "Traceback (most recent call last):", '  File "<frozen runpy>", line 189, in _run_module_as_main',
        '  File "<frozen runpy>", line 112, in _get_module_details', "KeyboardInterrupt",
        "Traceback (most recent call last):", '  File "<frozen runpy>", line 198, in _run_module_as_main',
        '  File "/lab/zklab/demo_hashing.py", line 30, in <module>', "KeyboardInterrupt",
        # runpy importing the standard library on its way to the module (seen in a soak): Python's own
        "Traceback (most recent call last):", '  File "<frozen runpy>", line 15, in <module>',
        f'  File "{STDLIB}/functools.py", line 35, in update_wrapper', "KeyboardInterrupt"]))
    groups = tracebacks(stderr)
    assert [len(g) for g in groups] == [8, 4, 3, 3, 4, 4, 4]
    assert [in_interpreter_startup(g) for g in groups] == [True, False, True, True, True, False, True]
    assert groups[1][-1] == "KeyboardInterrupt"


def test_write_results_replaces_only_the_soak_section(tmp_path: Path) -> None:
    """--write swaps its own section of RESULTS.md and keeps every other benchmark's."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## 1. Election hand-off\n\nkept\n\n"
                       "## Chaos soak\n\nold\n\n## 6. Scale\n\nkept too\n")
    write_results("## Chaos soak\n\nnew", results)
    text = results.read_text()
    assert "old" not in text and text.count("## Chaos soak") == 1 and "new" in text
    assert "## 1. Election hand-off\n\nkept" in text and "## 6. Scale\n\nkept too" in text


def test_the_benchmarks_write_keeps_the_soak_section(tmp_path: Path) -> None:
    """`python -m bench --write` rewrites the benchmarks' sections but keeps the soak's, a run of its own."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## 1. Election hand-off\n\nold\n\n## Chaos soak\n\nthe soak's table\n")
    assert kept_soak_section(results) == "\n## Chaos soak\n\nthe soak's table\n"
    results.unlink()
    assert kept_soak_section(results) == ""


@pytest.mark.parametrize("minutes", ["nan", "inf", "0", "-1", "ten"])
def test_bad_minutes_exit_2(minutes: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--minutes must be a finite number from 0.5 to 1440: anything else is one argparse error, exit 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--minutes", minutes])
    assert exit_info.value.code == 2
    assert "--minutes" in capsys.readouterr().err
