"""The runner finds a ZooKeeper in the documented order, and stops the one it started."""

from __future__ import annotations

import pytest

import zklab.run as run
from zklab.launcher import ZooKeeperCluster, free_ports, server_mode


def test_zk_hosts_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """ZK_HOSTS wins, and the runner starts nothing it would have to stop."""
    monkeypatch.setenv("ZK_HOSTS", "zk.example:2181")
    hosts, done = run.find_zookeeper()
    assert hosts == "zk.example:2181"
    done()


def test_a_server_on_the_default_port_comes_next(monkeypatch: pytest.MonkeyPatch, zk_server: ZooKeeperCluster) -> None:
    """With no ZK_HOSTS, a server answering on the default port is used as it is."""
    monkeypatch.delenv("ZK_HOSTS", raising=False)
    monkeypatch.setattr(run, "DEFAULT_PORT", zk_server.servers[0].client_port)
    hosts, _ = run.find_zookeeper()
    assert hosts == zk_server.servers[0].address


def test_without_docker_the_local_launcher_starts_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing on the default port and no Docker engine: a local server, stopped by `done()`."""
    monkeypatch.delenv("ZK_HOSTS", raising=False)
    monkeypatch.setattr(run, "DEFAULT_PORT", free_ports(1)[0])
    monkeypatch.setattr(run, "_docker_engine_answers", lambda: False)  # as on this machine: a client, no engine
    hosts, done = run.find_zookeeper()
    port = int(hosts.rsplit(":", 1)[1])
    assert server_mode(port) == "standalone"
    done()
    assert server_mode(port) is None
