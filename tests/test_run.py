"""The runner finds a ZooKeeper in the documented order, stops the one it started, and dispatches commands."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient

import zklab.run as run
from tests.cli import ROOT, read_until
from zklab import zk
from zklab.faults import wait_until
from zklab.launcher import ZooKeeperCluster, free_ports, server_mode


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the learner's shared server (.zklab) or port 2181."""
    monkeypatch.setenv("ZKLAB_STATE", str(tmp_path / "zklab-state"))
    monkeypatch.delenv("ZKLAB_PORT", raising=False)
    monkeypatch.delenv("ZK_HOSTS", raising=False)


def test_zk_hosts_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """ZK_HOSTS wins, and the runner starts nothing it would have to stop."""
    monkeypatch.setenv("ZK_HOSTS", "zk.example:2181")
    hosts, done = run.find_zookeeper()
    assert hosts == "zk.example:2181"
    done()


def test_a_server_on_the_default_port_comes_next(monkeypatch: pytest.MonkeyPatch, zk_server: ZooKeeperCluster) -> None:
    """With no ZK_HOSTS, a server answering on the default port is used as it is."""
    monkeypatch.setattr(run, "DEFAULT_PORT", zk_server.servers[0].client_port)
    hosts, _ = run.find_zookeeper()
    assert hosts == zk_server.servers[0].address


def test_zklab_port_moves_the_default_port(monkeypatch: pytest.MonkeyPatch, zk_server: ZooKeeperCluster) -> None:
    """ZKLAB_PORT names the port of step 2, so tests and a second lab never need 2181."""
    monkeypatch.setenv("ZKLAB_PORT", str(zk_server.servers[0].client_port))
    assert run.existing_zookeeper() == zk_server.servers[0].address


def test_the_shared_server_comes_before_the_default_port(monkeypatch: pytest.MonkeyPatch,
                                                         zk_server: ZooKeeperCluster) -> None:
    """Servers recorded by `zk start` are found first, even when another server answers on the default port."""
    monkeypatch.setattr(run, "DEFAULT_PORT", zk_server.servers[0].client_port)
    monkeypatch.setenv("ZKLAB_PORT", str(free_ports(1)[0]))
    zk.start(1)
    try:
        assert run.existing_zookeeper() == f"127.0.0.1:{zk.base_port()}"
    finally:
        zk.stop()


def test_without_docker_the_local_launcher_starts_and_stops(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing found and no Docker engine: a private local server, one line on sharing one, stopped by `done()`."""
    monkeypatch.setattr(run, "DEFAULT_PORT", free_ports(1)[0])
    monkeypatch.setattr(run, "_docker_engine_answers", lambda: False)  # as on this machine: a client, no engine
    hosts, done = run.find_zookeeper()
    port = int(hosts.rsplit(":", 1)[1])
    assert server_mode(port) == "standalone"
    done()
    assert server_mode(port) is None
    assert "./run.sh zk start" in capsys.readouterr().out


def test_a_command_whose_module_is_missing_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A command whose module this checkout lacks gives one line and exit 1, not a traceback."""
    monkeypatch.setitem(run.MODULES, "check", "zklab.no_such_module")
    assert run.main(["check", "leader"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "zklab.no_such_module" in err[0]


def test_commands_reach_their_modules(capsys: pytest.CaptureFixture[str]) -> None:
    """`run.sh zk status` and `run.sh tree --help` go to their modules without looking for a ZooKeeper."""
    assert run.main(["zk", "status"]) == 0
    assert "not running" in capsys.readouterr().out
    assert run.main(["tree", "--help"]) == 0 and "run.sh tree" in capsys.readouterr().out


def test_unknown_command_is_usage_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command prints the usage, which names every command, and exits 2."""
    assert run.main(["bogus"]) == 2
    usage = capsys.readouterr().err
    assert all(name in usage for name in ("leader", "hashing", "smoke", "zk", "tree", "check", "soak"))


def start_runner(*args: str) -> subprocess.Popen:
    """`./run.sh ARGS` in a process group of its own, as a terminal would start it."""
    return subprocess.Popen([sys.executable, "-u", "-m", "zklab.run", *args], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def test_sigterm_to_the_runner_alone_reaches_the_challenge(monkeypatch: pytest.MonkeyPatch, zk_hosts: str,
                                                           make_client: Callable[..., KazooClient]) -> None:
    """`kill RUNNER_PID` stops the challenge too: its nodes go and the runner exits 0, long before --duration."""
    monkeypatch.setenv("ZK_HOSTS", zk_hosts)
    proc = start_runner("leader", "--workers", "2", "--duration", "60", "--no-timeline")
    try:
        read_until(proc, "ELECTED")
        proc.send_signal(signal.SIGTERM)  # to the runner only, as `kill` or a supervisor sends it
        assert proc.wait(timeout=15) == 0  # not -15: the runner waited for the challenge to finish
        assert "SIGTERM received" in proc.stdout.read()
        assert make_client().get_children("/lab/leader-election/candidates") == []
    finally:
        kill_group(proc)  # whatever is left of it, say an orphaned challenge


def java_child(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return next((int(c) for c in children if Path(f"/proc/{c}/comm").read_text().strip() == "java"), None)
    except OSError:  # a child that just went
        return None


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_while_the_runner_starts_a_server_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the runner starts its private ZooKeeper exits 130 with no traceback, and the server goes too."""
    monkeypatch.setenv("ZKLAB_PORT", str(free_ports(1)[0]))  # nothing answers there: the launcher starts one
    proc = start_runner("leader", "--duration", "60")
    try:
        jvm = wait_until(lambda: java_child(proc.pid), 30, "the runner starting its private ZooKeeper")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert "Traceback" not in proc.stderr.read()
        wait_until(lambda: not alive(jvm), 10, "the private ZooKeeper to stop with the runner")
    finally:
        kill_group(proc)


@pytest.mark.skipif(run._demo_module("leader") is None, reason="zklab.demo_leader is not in this checkout yet")
def test_leader_runs_the_rich_demo_with_the_zookeeper_found_first() -> None:
    """`./run.sh leader ARGS` runs `python -m zklab.demo_leader --zk HOSTS ARGS`: --zk first, so a user's own wins."""
    command = run.challenge_command("leader", "127.0.0.1:9", ["--workers", "3"])
    assert command[1:] == ["-m", "zklab.demo_leader", "--zk", "127.0.0.1:9", "--workers", "3"]


def test_without_a_demo_module_the_script_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until a challenge's rich demo exists, the runner runs the challenge script itself."""
    monkeypatch.setitem(run.DEMOS, "hashing", "zklab.no_such_demo")
    command = run.challenge_command("hashing", "127.0.0.1:9", [])
    assert command[1:] == [str(ROOT / "challenge_consistent_hashing.py"), "--zk", "127.0.0.1:9"]


def test_a_users_own_zk_is_used_and_nothing_else_is_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """`./run.sh leader --zk HOSTS`: the runner checks HOSTS with the lab's grammar and searches no further;
    a bad one is a usage error (exit 2) before anything starts."""
    monkeypatch.setattr(run, "find_zookeeper", lambda *_: pytest.fail("looked for another ZooKeeper"))
    monkeypatch.setattr(run, "run_challenge", lambda command: 0 if "zk.example:2181" in command else 9)
    assert run.main(["leader", "--zk", "zk.example:2181", "--duration", "1"]) == 0
    assert run.main(["leader", "--zk=[zz]:1"]) == 2


def test_an_unexpected_error_is_one_line_unless_asked_with_v(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The lab's rule: a failure nobody foresaw is one line naming it and -v; `./run.sh -v ...` shows the traceback."""
    monkeypatch.setattr(run, "start_challenge", lambda *_: 1 / 0)
    assert run.main(["smoke"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ZeroDivisionError" in err[0] and "-v" in err[0], err
    with pytest.raises(ZeroDivisionError):
        run.main(["-v", "smoke"])


def test_the_chroot_hint_creates_each_level_and_quotes_it() -> None:
    """zkCli.sh's create makes no parents: the hint creates every level, each path quoted for the shell."""
    assert run.chroot_hint("zk1:2181,zk2:2181/nope/deeper") == (
        "zkCli.sh -server zk1:2181 create /nope; zkCli.sh -server zk1:2181 create /nope/deeper")
    assert run.chroot_hint("[::1]:2181/a b") == "zkCli.sh -server [::1]:2181 create '/a b'"


class HeadOne(io.StringIO):
    """stdout read by `| head -1`: the reader takes the first line and leaves, so the next write meets a
    closed pipe (a pipe closed from the start would fail the runner's first line instead, outside smoke)."""

    def write(self, text: str) -> int:
        if "\n" in self.getvalue():
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        return super().write(text)


def test_smoke_read_by_head_is_quiet(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     zk_server: ZooKeeperCluster) -> None:
    """`./run.sh smoke | head -1`: exit 0 and nothing on stderr (it said 'the test failed: Broken pipe')."""
    monkeypatch.setattr(sys, "stdout", HeadOne())
    code = run.main(["smoke", "--zk", zk_server.hosts])
    assert code == 0 and capsys.readouterr().err == ""
