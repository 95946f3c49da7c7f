"""Running a challenge script as a learner does: a real process, its output, its exit code."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from zklab.launcher import free_ports

ROOT = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ZK_HOSTS"}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_script(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", str(ROOT / script), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 30) -> list[str]:
    """Lines the process printed up to and including the first that contains `marker`."""
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"process ended before printing {marker!r}: {proc.stderr.read()}")
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} within {timeout}s")


def interrupt(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    """Ctrl-C, as a terminal sends it; return (exit code, rest of stdout, stderr)."""
    proc.send_signal(signal.SIGINT)
    # Not communicate(): it reads the raw pipe and would lose what readline() already buffered.
    out, err = proc.stdout.read(), proc.stderr.read()
    return proc.wait(timeout), out, err


def unreachable_hosts() -> str:
    return f"127.0.0.1:{free_ports(1)[0]}"


def third_party_imports(script: str) -> set[str]:
    """Top-level modules the script imports that are not in the standard library."""
    tree = ast.parse((ROOT / script).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}
