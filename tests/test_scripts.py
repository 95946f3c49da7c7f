"""What both challenge scripts promise a learner: they stand alone, and bad input never gets a traceback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.cli import ROOT, run_script, third_party_imports, unreachable_hosts

SCRIPTS = {"challenge_leader_election.py": {"kazoo"}, "challenge_consistent_hashing.py": {"kazoo", "mmh3"}}
CONNECT_TIMEOUT = 5.0  # both scripts' CONNECT_TIMEOUT


@pytest.mark.parametrize("script, allowed", SCRIPTS.items())
def test_imports_only_its_dependencies_and_the_standard_library(script: str, allowed: set[str]) -> None:
    """A learner can copy the one file: it imports nothing of the lab's own."""
    assert third_party_imports(script) == allowed


@pytest.mark.parametrize("script", SCRIPTS)
def test_import_has_no_side_effects(script: str) -> None:
    """Importing the module prints nothing and connects to nothing."""
    module = script.removesuffix(".py")
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


@pytest.mark.parametrize("script", SCRIPTS)
def test_unreachable_zookeeper_is_one_line_and_fast(script: str) -> None:
    """No ZooKeeper: exit 1 within the connect timeout, one line naming the hosts and how to start one."""
    hosts = unreachable_hosts()
    started = time.monotonic()
    result = run_script(script, "--zk", hosts)
    assert result.returncode == 1
    assert time.monotonic() - started < CONNECT_TIMEOUT + 4  # plus the interpreter's start-up
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and hosts in lines[0] and "docker compose up -d" in lines[0]


BAD = [["--duration", "-1"], ["--zk", ""], ["--zk", "host:port"], ["--seed", "abc"], ["--interval", "0"]]


@pytest.mark.parametrize("script, args", [(s, a) for s in SCRIPTS for a in BAD] + [
    ("challenge_leader_election.py", ["--workers", "0"]),
    ("challenge_leader_election.py", ["--session-timeout", "-2"]),
    ("challenge_consistent_hashing.py", ["--vnodes", "0"]),
    ("challenge_consistent_hashing.py", ["--keys", "many"]),
    ("challenge_consistent_hashing.py", ["--show", "-2"]),
])
def test_bad_arguments_exit_2(script: str, args: list[str]) -> None:
    """Bad input gets argparse's one-line error and exit code 2, never a traceback."""
    result = run_script(script, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error:" in result.stderr
