"""What both challenge scripts promise a learner: they stand alone, and bad input never gets a traceback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli import ROOT, run_script, third_party_imports, unreachable_hosts
from zklab.launcher import ZooKeeperCluster

SCRIPTS = {"challenge_leader_election.py": {"kazoo"}, "challenge_consistent_hashing.py": {"kazoo", "mmh3"}}
CONNECT_TIMEOUT = 5.0  # both scripts' CONNECT_TIMEOUT


@pytest.mark.parametrize("script, allowed", SCRIPTS.items())
def test_imports_only_its_dependencies_and_the_standard_library(script: str, allowed: set[str]) -> None:
    """A learner can copy the one file: it imports nothing of the lab's own."""
    assert third_party_imports(script) == allowed


@pytest.mark.parametrize("script, first", [("challenge_leader_election.py", "kazoo"),
                                           ("challenge_consistent_hashing.py", "mmh3")])
def test_a_missing_dependency_is_one_line_saying_what_to_install(script: str, first: str) -> None:
    """A copy run by a Python without kazoo or mmh3 (here: -S, so no site-packages) says what to install in one
    line and exits 1, where Python would print a ModuleNotFoundError traceback (a broken install: its ImportError)."""
    result = subprocess.run([sys.executable, "-S", script, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == f"error: No module named '{first}'; pip install kazoo mmh3 (in the lab: bash " \
                            "start_venv.sh)\n"


def test_a_broken_kazoo_is_one_line_too(tmp_path: Path) -> None:
    """kazoo installed but broken (its __init__ raises ImportError): Python's words in one line, exit 1."""
    (tmp_path / "kazoo").mkdir()
    (tmp_path / "kazoo" / "__init__.py").write_text("raise ImportError(\"cannot import name 'x' from 'y'\")\n")
    result = subprocess.run([sys.executable, "-S", "challenge_leader_election.py", "--help"], cwd=ROOT, text=True,
                            capture_output=True, timeout=30, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert (result.returncode, result.stderr) == (1, "error: cannot import name 'x' from 'y'; pip install kazoo mmh3 "
                                                     "(in the lab: bash start_venv.sh)\n"), result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_import_has_no_side_effects(script: str) -> None:
    """Importing the module prints nothing and connects to nothing."""
    module = script.removesuffix(".py")
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


@pytest.mark.parametrize("script", SCRIPTS)
def test_unreachable_zookeeper_is_one_line_and_fast(script: str) -> None:
    """No ZooKeeper: exit 1 within the connect timeout, one line naming the hosts and how to start one.

    One host is a bracketed IPv6 literal: a valid host, so the script gets past its arguments to the connect."""
    hosts = f"{unreachable_hosts()},[::1]:{unreachable_hosts().rsplit(':', 1)[1]}"
    started = time.monotonic()
    result = run_script(script, "--zk", hosts)
    assert result.returncode == 1
    assert time.monotonic() - started < CONNECT_TIMEOUT + 4  # plus the interpreter's start-up
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and hosts in lines[0] and "`./run.sh zk start` or `docker compose up -d`" in lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_duration_shorter_than_the_connect_is_still_one_line(script: str) -> None:
    """Something that is no ZooKeeper answers (a web server), and --duration ends before the connect gives up:
    one line on stderr, nothing on stdout (the leader script also said 'time is up; shutting down'), and
    --duration holds (the hashing script waited out its 5 s connect timeout)."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer_like_a_web_server() -> None:
        with contextlib.suppress(OSError):  # until the test closes the server
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    threading.Thread(target=answer_like_a_web_server, daemon=True).start()
    started = time.monotonic()
    try:
        result = run_script(script, "--zk", f"127.0.0.1:{server.getsockname()[1]}", "--duration", "1")
    finally:
        server.close()
    assert time.monotonic() - started < 1 + 3, result  # plus the interpreter's start-up and the close
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr


BAD = [["--duration", "-1"], ["--zk", ""], ["--zk", "host:port"], ["--seed", "abc"], ["--interval", "0"],
       # Numbers must be finite and sane: nan ran forever, inf and nan crashed, 1000 s partitioned for 25 minutes.
       ["--duration", "nan"], ["--duration", "inf"], ["--interval", "nan"], ["--interval", "-inf"],
       ["--session-timeout", "nan"], ["--session-timeout", "inf"], ["--session-timeout", "1000"],
       ["--session-timeout", "0.1"],
       # Ports are 1 to 65535; a chroot is an absolute path without empty segments.
       ["--zk", "127.0.0.1:99999"], ["--zk", "127.0.0.1:0"], ["--zk", "127.0.0.1:2181,"], ["--zk", "[::1"],
       ["--zk", "127.0.0.1:2181/lab/"], ["--zk", "127.0.0.1:2181/a//b"]]


@pytest.mark.parametrize("script, args", [(s, a) for s in SCRIPTS for a in BAD] + [
    ("challenge_leader_election.py", ["--workers", "0"]),
    ("challenge_leader_election.py", ["--workers", "100000"]),
    ("challenge_leader_election.py", ["--session-timeout", "-2"]),
    ("challenge_consistent_hashing.py", ["--members", "0"]),
    ("challenge_consistent_hashing.py", ["--keys", "many"]),
    ("challenge_consistent_hashing.py", ["--keys", "1000000000"]),
    ("challenge_consistent_hashing.py", ["--members", "100000"]),
])
def test_bad_arguments_exit_2(script: str, args: list[str]) -> None:
    """Bad input gets argparse's one-line error and exit code 2, never a traceback."""
    result = run_script(script, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "error:" in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and lines[0].endswith("--help says more"), lines  # no usage


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_says_which_session_timeouts_a_server_grants(script: str) -> None:
    """--help names the range of session timeouts ZooKeeper will grant, so a learner can pick one."""
    result = run_script(script, "--help")
    assert result.returncode == 0
    assert "0.5-60 s" in result.stdout and "4-40 s" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_chroot_is_one_line(script: str, zk_server: ZooKeeperCluster) -> None:
    """A chroot that does not exist: exit 1 with one line naming it, in the same words in both scripts, and no
    kazoo warning."""
    result = run_script(script, "--zk", zk_server.hosts + "/no-such-chroot", "--duration", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: chroot /no-such-chroot does not exist on ZooKeeper at {zk_server.hosts}; create it or "
                     "drop it from --zk"], lines
    assert "Warning" not in result.stderr
