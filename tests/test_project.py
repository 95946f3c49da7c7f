"""The ground a learner stands on: the venv script, the compose file, the runner, the lint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zklab.launcher import ZooKeeperCluster

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_runtime_requirements_are_exactly_kazoo_and_mmh3() -> None:
    """requirements.txt pins kazoo and mmh3 exactly, and nothing else."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    pins = sorted(line for line in lines if line and not line.startswith("#"))
    assert [p.split("==")[0] for p in pins] == ["kazoo", "mmh3"]
    assert all("==" in p for p in pins)


def test_start_venv_runs_a_command_and_returns_its_exit_code() -> None:
    """`bash start_venv.sh CMD` runs CMD inside .venv and passes its exit code through."""
    result = _run(["bash", "start_venv.sh", "python", "-c", "import sys, kazoo, mmh3; print(sys.prefix); sys.exit(3)"])
    assert result.returncode == 3, result.stderr
    assert Path(result.stdout.strip()).resolve() == (ROOT / ".venv").resolve()


def test_start_venv_without_python_is_one_line_error() -> None:
    """No python3: one line on stderr that says what to install, exit 1."""
    result = _run(["bash", "start_venv.sh", "true"], env={"PYTHON": "/nonexistent/python3"})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "install" in result.stderr


def test_compose_file_validates() -> None:
    """docker-compose.yml is valid, pinned to one 3.8/3.9 tag, and has the ensemble profile."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose), so the file is not validated")
    result = _run([tool, "--profile", "ensemble", "config"])
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for service in ("zookeeper:", "zk1:", "zk2:", "zk3:"):
        assert f"  {service}" in config
    images = {line.split("image:")[1].strip() for line in config.splitlines() if "image:" in line}
    assert len(images) == 1 and images.pop().startswith(("zookeeper:3.8.", "zookeeper:3.9."))
    assert config.count("healthcheck:") == 4 and "srvr" in config
    # By default one server runs; the three ensemble members sit in the "ensemble" profile.
    assert config.count("profiles:\n    - ensemble") == 3


def test_run_smoke_against_given_zookeeper(zk_server: ZooKeeperCluster) -> None:
    """`./run.sh smoke` with ZK_HOSTS writes and reads a znode and names the server's mode."""
    result = _run(["bash", "run.sh", "smoke"], env={"ZK_HOSTS": zk_server.hosts})
    assert result.returncode == 0, result.stderr
    assert "mode standalone" in result.stdout and "ok: wrote and read" in result.stdout


def test_ruff_is_clean() -> None:
    """The lab's code passes ruff, the linter pinned in the dev requirements."""
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment (bash start_venv.sh --dev installs it)")
    result = _run([str(ruff), "check", "."])
    assert result.returncode == 0, result.stdout + result.stderr
