"""Installing ZooKeeper on a fresh machine: who is asked, which commands run, and --yes never reaches a challenge."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from zklab import install
from zklab.install import Machine
from zklab.launcher import DEBIAN_JAR, free_ports

ROOT = Path(__file__).resolve().parent.parent

# A stub records its name and arguments, one line per call, and exits with $STUB_<NAME>_RC (default 0).
# `sudo` runs the rest of its arguments, so the command it wraps is recorded too.
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
name=$(basename "$0" | tr a-z- A-Z_)
{extra}
eval "exit \\${{STUB_${{name}}_RC:-0}}"
"""


def _stub(folder: Path, name: str, extra: str = "") -> None:
    path = folder / name
    path.write_text(STUB.format(extra=extra))
    path.chmod(0o755)


@pytest.fixture
def stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """apt-get, sudo and brew stubs first on PATH; returns a reader of the calls they recorded."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("apt-get", "brew"):
        _stub(folder, name)
    _stub(folder, "sudo", extra='"$@"; exit $?')
    log = tmp_path / "calls.log"
    monkeypatch.setenv("STUB_LOG", str(log))
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return lambda: log.read_text().splitlines() if log.exists() else []


def _machine(**overrides: object) -> Machine:
    values = {"system": "Linux", "is_root": False, "interactive": True, "has_java": True}
    return Machine(**{**values, **overrides})  # type: ignore[arg-type]


def _never_asked(prompt: str) -> str:
    raise AssertionError(f"asked although it should not: {prompt}")


def test_root_on_debian_installs_without_asking(stubs: Callable[[], list[str]]) -> None:
    """As root, apt-get install -y zookeeper runs at once (printed first), and nobody is asked."""
    assert install.offer("no ZooKeeper", False, _machine(is_root=True), ask=_never_asked)
    assert stubs() == ["apt-get install -y zookeeper"]


def test_missing_java_adds_the_headless_jre(stubs: Callable[[], list[str]]) -> None:
    """Without Java, the headless JRE is named in the same apt-get command."""
    assert install.offer("no ZooKeeper", True, _machine(is_root=True, has_java=False), ask=_never_asked)
    assert stubs() == ["apt-get install -y zookeeper default-jre-headless"]


def test_failed_install_refreshes_package_lists_and_retries(stubs: Callable[[], list[str]], tmp_path: Path) -> None:
    """A fresh machine has no package lists: a failed install runs apt-get update, then installs again."""
    # This apt-get cannot install until it has been updated, like one on a fresh image.
    _stub(tmp_path / "bin", "apt-get", extra='[ "$1" = install ] && ! grep -q "apt-get update" "$STUB_LOG" && exit 100')
    assert install.offer("no ZooKeeper", True, _machine(is_root=True))
    assert stubs() == ["apt-get install -y zookeeper", "apt-get update", "apt-get install -y zookeeper"]


def test_failed_install_is_reported_as_not_installed(stubs: Callable[[], list[str]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """When apt-get keeps failing, offer() says so (the runner then prints its one-line error)."""
    monkeypatch.setenv("STUB_APT_GET_RC", "100")
    assert not install.offer("no ZooKeeper", True, _machine(is_root=True))
    assert stubs() == ["apt-get install -y zookeeper", "apt-get update"]


def test_sudo_user_at_a_terminal_is_asked_and_enter_means_yes(stubs: Callable[[], list[str]]) -> None:
    """A user with sudo is asked [Y/n]; Enter runs the install through sudo."""
    prompts: list[str] = []
    assert install.offer("no ZooKeeper", False, _machine(), ask=lambda p: prompts.append(p) or "")
    assert len(prompts) == 1 and "[Y/n]" in prompts[0] and "sudo apt-get install -y zookeeper" in prompts[0]
    assert stubs() == ["sudo apt-get install -y zookeeper", "apt-get install -y zookeeper"]


def test_sudo_user_who_says_no_gets_nothing_installed(stubs: Callable[[], list[str]]) -> None:
    """Answering n installs nothing."""
    assert not install.offer("no ZooKeeper", False, _machine(), ask=lambda _: "n")
    assert stubs() == []


def test_unattended_without_yes_installs_nothing(stubs: Callable[[], list[str]]) -> None:
    """With no terminal and no --yes, nothing is installed, even as root: the caller prints the error."""
    for is_root in (True, False):
        assert not install.offer("no ZooKeeper", False, _machine(is_root=is_root, interactive=False),
                                 ask=_never_asked)
    assert stubs() == []


def test_yes_installs_through_sudo_without_asking(stubs: Callable[[], list[str]]) -> None:
    """--yes as a sudo user with no terminal: sudo apt-get install runs, nobody is asked."""
    assert install.offer("no ZooKeeper", True, _machine(interactive=False), ask=_never_asked)
    assert stubs()[0] == "sudo apt-get install -y zookeeper"


def test_macos_with_homebrew_asks_then_brews(stubs: Callable[[], list[str]]) -> None:
    """On macOS with Homebrew, at a terminal, it asks and runs brew install zookeeper."""
    assert install.offer("no ZooKeeper", False, _machine(system="Darwin"), ask=lambda _: "y")
    assert stubs() == ["brew install zookeeper"]


def test_no_package_manager_means_no_offer(stubs: Callable[[], list[str]]) -> None:
    """Without apt-get or brew (or without root and sudo), there is no plan, so today's error stands."""
    assert install.plan(_machine(system="Linux", which=lambda _: None), True) is None
    assert install.plan(_machine(which=lambda name: None if name == "sudo" else f"/usr/bin/{name}"), True) is None
    assert install.plan(_machine(system="Windows"), True) is None


def test_yes_and_zklab_install_mean_unattended(monkeypatch: pytest.MonkeyPatch) -> None:
    """--yes is taken out of the challenge's arguments; ZKLAB_INSTALL=1 means the same."""
    monkeypatch.delenv("ZKLAB_INSTALL", raising=False)
    assert install.wanted(["--workers", "3", "--yes"]) == (True, ["--workers", "3"])
    assert install.wanted(["--workers", "3"]) == (False, ["--workers", "3"])
    monkeypatch.setenv("ZKLAB_INSTALL", "1")
    assert install.wanted([]) == (True, [])


def test_yes_never_reaches_the_challenge(zk_server: object) -> None:
    """`./run.sh leader --yes --help`: the challenge sees only --help (it would reject --yes, exit 2)."""
    result = subprocess.run(["bash", "run.sh", "leader", "--yes", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "ZK_HOSTS": zk_server.hosts})
    assert result.returncode == 0, result.stderr
    assert "--session-timeout" in result.stdout


@pytest.mark.skipif(not Path(DEBIAN_JAR).exists() or not sys.platform.startswith("linux"),
                    reason="needs Debian's ZooKeeper jars to stand in for the package the stub installs")
def test_run_yes_installs_then_runs_against_a_real_zookeeper(stubs: Callable[[], list[str]], tmp_path: Path) -> None:
    """No ZooKeeper found: `./run.sh smoke --yes` runs apt-get install, then the real server it installed."""
    home = tmp_path / "zookeeper"
    # The stub "installs" by linking Debian's real jar where ZOOKEEPER_HOME looks (its manifest names the rest).
    _stub(Path(os.environ["PATH"].split(os.pathsep)[0]), "apt-get",
          extra=f'mkdir -p {home}/lib && ln -sf {DEBIAN_JAR} {home}/lib/zookeeper.jar')
    _stub(Path(os.environ["PATH"].split(os.pathsep)[0]), "docker", extra="exit 1")  # no Docker engine
    env = {**os.environ, "ZOOKEEPER_HOME": str(home), "ZKLAB_PORT": str(free_ports(1)[0]),
           "ZKLAB_STATE": str(tmp_path / "state")}
    env.pop("ZK_HOSTS", None)
    result = subprocess.run(["bash", "run.sh", "smoke", "--yes"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running: " in result.stdout and "apt-get install -y zookeeper" in result.stdout
    assert "mode standalone" in result.stdout
    assert any(call.endswith("apt-get install -y zookeeper") for call in stubs())
