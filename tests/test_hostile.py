"""Every `./run.sh` command under abuse: bad arguments, a ZooKeeper that is unreachable, refuses or is paused,
an ACL that denies us, Ctrl-C at start-up, stdout to /dev/full. Each gives one line and the right exit code
(1: the environment, 2: usage), and leaves no JVM and no temporary folder.

The slow cases (waiting out a connect timeout) run side by side, once per module; each case is a test of
its own that looks up its result. A case that needs a rich demo (zklab.demo_*) is marked xfail while
that module is missing from the checkout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

import zklab.run as run
import zklab.tree as tree
from zklab import zk
from zklab.faults import wait_until
from zklab.launcher import SUITE_TAG, ZooKeeperCluster, free_ports, tagged_jvms

ROOT = Path(__file__).resolve().parent.parent
CASE_TIMEOUT = 40.0   # a case that has not ended by then hangs: a failure of its own
NOBODY_PORT = free_ports(1)[0]  # ZKLAB_PORT for a case where nothing answers on the default port
NO_DEMO = {name: importlib.util.find_spec(f"zklab.demo_{name}") is None for name in ("leader", "hashing")}


def _demo_pending(name: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(NO_DEMO[name], reason=f"zklab.demo_{name} is not in this checkout yet: the runner "
                             "runs the script, which checks its arguments only after a ZooKeeper is found",
                             strict=False)


@dataclass
class Case:
    """One hostile run of `python -m zklab.run ARGS`."""

    args: list[str]
    code: int                       # the exit code the rule asks for
    says: str = ""                  # a phrase the one line must hold
    env: dict[str, str] = field(default_factory=dict)
    full_stdout: bool = False       # stdout is /dev/full
    closed_stdout: bool = False     # stdout is a pipe whose reader has left (`| head`)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float
    tmp: Path
    tag: str


# ---------------------------------------------------------------- a ZooKeeper for the cases

class Refuser:
    """A TCP server that answers every connection like a web server: a port that is not a ZooKeeper."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def places(zk_server: ZooKeeperCluster) -> Iterator[dict[str, str]]:
    """Connection strings: the shared server, a closed port, a web server, and chroots that ACLs deny."""
    base = f"/hostile-{uuid.uuid4().hex[:8]}"
    owner = make_digest_acl("owner", "secret", all=True)
    admin = KazooClient(hosts=zk_server.hosts, auth_data=[("digest", "owner:secret")])
    admin.start(timeout=10)
    admin.create(f"{base}/readonly", acl=[owner, make_acl("world", "anyone", read=True)], makepath=True)
    admin.create(f"{base}/secret", acl=[owner])
    admin.stop()
    admin.close()
    refuser = Refuser()
    yield {"zk": zk_server.hosts, "closed": f"127.0.0.1:{free_ports(1)[0]}", "http": f"127.0.0.1:{refuser.port}",
           "readonly": f"{zk_server.hosts}{base}/readonly", "secret": f"{base}/secret"}
    refuser.close()


def _env(tmp: Path, tag: str, extra: dict[str, str]) -> dict[str, str]:
    """No shared servers, nothing on the default port, temp folders in `tmp`, every JVM tagged."""
    env = {k: v for k, v in os.environ.items() if k not in ("ZK_HOSTS", "ZKLAB_INSTALL", "ZKLAB_CHECK_ZK")}
    env.update({"ZKLAB_STATE": str(tmp / "state"), "ZKLAB_PORT": str(free_ports(1)[0]), "TMPDIR": str(tmp / "tmp"),
                SUITE_TAG: tag, **extra})
    (tmp / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def no_folder_left(tmp: Path) -> None:
    """Every temporary folder the run made is gone (a janitor may still be removing one: it waits for the JVMs
    first); at the deadline, fail naming what is left and what is in it."""
    def left() -> str:
        return "; ".join(f"{p.name}: {sorted(c.name for c in p.iterdir())[:6] if p.is_dir() else 'a file'}"
                         for p in tmp.iterdir())
    wait_until(lambda: not any(tmp.iterdir()), 20, "the temporary folders to go",
               failure=lambda: AssertionError(f"left in {tmp}: {left()}"))


def run_case(case: Case, tmp: Path) -> Outcome:
    tag = f"hostile-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has left: every write to the pipe fails with EPIPE
    with open(os.devnull if not case.full_stdout else "/dev/full", "w") as full:
        stdout = full if case.full_stdout else write_end if case.closed_stdout else subprocess.PIPE
        try:
            proc = subprocess.run([sys.executable, "-m", "zklab.run", *case.args], cwd=ROOT, stdout=stdout,
                                  env=_env(tmp, tag, case.env), stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  text=True, timeout=CASE_TIMEOUT)
        finally:
            os.close(write_end)
    return Outcome(proc.returncode, proc.stdout or "", proc.stderr, time.monotonic() - began, tmp / "tmp", tag)


def assert_one_line(case: Case, out: Outcome) -> None:
    """The rule: the right code, one line that says what happened (no usage block above it: argparse's
    error is one line in every command), no traceback, no JVM and no temporary folder left."""
    assert "Traceback" not in out.stderr, out.stderr
    if case.closed_stdout:  # the reader left: nothing more to say to anyone, and nothing went wrong
        assert out.code == 0 and out.stderr.strip() == "", f"exit {out.code}, stderr:\n{out.stderr}"
    said = [line for line in out.stderr.splitlines() if line.strip()]
    lines = 0 if case.closed_stdout else 1
    assert out.code == case.code and len(said) == lines, f"exit {out.code}, stderr:\n{out.stderr}"
    assert case.closed_stdout or case.says.lower() in said[0].lower(), said[0]
    if case.code == 2:  # a usage error is found before any ZooKeeper is looked for, let alone started
        assert "[run]" not in out.stdout, out.stdout
    wait_until(lambda: tagged_jvms(out.tag) == [], 10, "the case's JVMs to exit")
    wait_until(lambda: not any(out.tmp.iterdir()), 10, f"no temporary folder left in {out.tmp}")


# ---------------------------------------------------------------- the cases

def cases(p: dict[str, str]) -> dict[str, Case]:
    """Every command x every abuse that applies to it. `p`: the places fixture's connection strings."""
    closed, http = {"ZK_HOSTS": p["closed"]}, {"ZK_HOSTS": p["http"]}
    return {
        # bad arguments: exit 2, before anything starts
        "help-unknown-command": Case(["bogus"], 2, "no command"),
        "leader-workers-0": Case(["leader", "--workers", "0"], 2, "--workers"),
        "leader-bogus": Case(["leader", "--bogus"], 2, "--bogus"),
        "hashing-bogus": Case(["hashing", "--bogus"], 2, "--bogus"),
        "smoke-bogus": Case(["smoke", "--bogus"], 2, "--bogus"),
        "smoke-zk-not-ipv6": Case(["smoke", "--zk", "[zz]:1"], 2, "IPv6"),
        "zk-bogus": Case(["zk", "bogus"], 2, "bogus"),
        "zk-kill-not-a-number": Case(["zk", "kill", "x"], 2, "whole number"),
        "tree-dot-dot": Case(["tree", "/a/../lab"], 2, "'..'"),
        "tree-arabic-digits": Case(["tree", "--zk", "127.0.0.1:\u0663\u0661\u0668\u0661"], 2, "port"),
        "check-bogus": Case(["check", "--bogus"], 2, "--bogus"),
        "exercise-bogus": Case(["exercise", "bogus"], 2, "bogus"),
        "soak-bogus": Case(["soak", "--bogus"], 2, "--bogus"),
        "env-zk-hosts-ipv6-smoke": Case(["smoke"], 2, "ZK_HOSTS", {"ZK_HOSTS": "[zz]:1"}),
        "env-zk-hosts-digits-tree": Case(["tree"], 2, "ZK_HOSTS", {"ZK_HOSTS": "127.0.0.1:\u0663\u0661\u0668\u0661"}),
        "env-zk-hosts-leader": Case(["leader"], 2, "ZK_HOSTS", {"ZK_HOSTS": "[::::]:2181"}),
        "env-zk-hosts-hashing": Case(["hashing"], 2, "ZK_HOSTS", {"ZK_HOSTS": "host_1:2181"}),
        # unreachable, or not a ZooKeeper: exit 1 within the connect timeout
        "smoke-closed-port": Case(["smoke"], 1, "no ZooKeeper answered", closed),
        "smoke-http-port": Case(["smoke"], 1, "no ZooKeeper answered", http),
        "tree-closed-port": Case(["tree", "--once"], 1, "cannot reach", closed),
        "tree-http-port": Case(["tree", "--once"], 1, "cannot reach", http),
        "leader-closed-port": Case(["leader", "--duration", "30"], 1, "", closed),
        "hashing-closed-port": Case(["hashing", "--duration", "30"], 1, "", closed),
        "tree-no-zookeeper-names-the-port": Case(["tree", "--once"], 1, f"127.0.0.1:{NOBODY_PORT}",
                                                 {"ZKLAB_PORT": str(NOBODY_PORT)}),
        "smoke-missing-chroot": Case(["smoke"], 1, "zkCli.sh", {"ZK_HOSTS": p["zk"] + "/nope/deeper"}),
        "tree-missing-chroot": Case(["tree", "--once"], 1, "zkCli.sh", {"ZK_HOSTS": p["zk"] + "/nope/deeper"}),
        # ACLs that deny us: exit 1, the line says ZooKeeper refused
        "smoke-acl-no-create": Case(["smoke"], 1, "refused", {"ZK_HOSTS": p["readonly"]}),
        "tree-acl-no-read": Case(["tree", "--once", p["secret"]], 1, "refused", {"ZK_HOSTS": p["zk"]}),
        "leader-acl-no-create": Case(["leader", "--duration", "30"], 1, "", {"ZK_HOSTS": p["readonly"]}),
        "hashing-acl-no-create": Case(["hashing", "--duration", "30"], 1, "", {"ZK_HOSTS": p["readonly"]}),
        # stdout to /dev/full: one line on stderr, exit 1
        "help-dev-full": Case(["help"], 1, "stdout", full_stdout=True),
        "zk-status-dev-full": Case(["zk", "status"], 1, "stdout", full_stdout=True),
        "tree-dev-full": Case(["tree", "--once", "/"], 1, "stdout", {"ZK_HOSTS": p["zk"]}, full_stdout=True),
        "smoke-dev-full": Case(["smoke"], 1, "stdout", {"ZK_HOSTS": p["zk"]}, full_stdout=True),
        "leader-dev-full": Case(["leader", "--duration", "2"], 1, "stdout", {"ZK_HOSTS": p["zk"]}, full_stdout=True),
        "hashing-dev-full": Case(["hashing", "--duration", "2"], 1, "stdout", {"ZK_HOSTS": p["zk"]},
                                 full_stdout=True),
        "exercise-dev-full": Case(["exercise", "list"], 1, "", full_stdout=True),
        "check-dev-full": Case(["check", "hashing"], 1, "stdout", full_stdout=True),
        "leader-help-dev-full": Case(["leader", "--help"], 1, "stdout", full_stdout=True),
        "check-help-dev-full": Case(["check", "--help"], 1, "stdout", full_stdout=True),
        "zk-help-dev-full": Case(["zk", "--help"], 1, "stdout", full_stdout=True),
        "leader-help-closed-stdout": Case(["leader", "--help"], 0, closed_stdout=True),
        # stdout closed by its reader (`| head`): stop quietly, clean up, exit 0
        "help-closed-stdout": Case(["help"], 0, closed_stdout=True),
        "exercise-closed-stdout": Case(["exercise", "list"], 0, closed_stdout=True),
        "check-closed-stdout": Case(["check", "hashing"], 0, closed_stdout=True),
        "zk-status-closed-stdout": Case(["zk", "status"], 0, closed_stdout=True),
        "tree-closed-stdout": Case(["tree", "--once", "/"], 0, "", {"ZK_HOSTS": p["zk"]}, closed_stdout=True),
        "smoke-closed-stdout": Case(["smoke"], 0, "", {"ZK_HOSTS": p["zk"]}, closed_stdout=True),
        "leader-closed-stdout": Case(["leader", "--duration", "2"], 0, "", {"ZK_HOSTS": p["zk"]}, closed_stdout=True),
        "hashing-closed-stdout": Case(["hashing", "--duration", "2"], 0, "", {"ZK_HOSTS": p["zk"]},
                                      closed_stdout=True),
    }


# Cases that hold only once the rich demos exist (the script checks its arguments after the search).
MARKS = {"leader-workers-0": _demo_pending("leader"), "leader-bogus": _demo_pending("leader"),
         "hashing-bogus": _demo_pending("hashing")}
NAMES = list(cases({k: "" for k in ("zk", "closed", "http", "readonly", "secret")}))


@pytest.fixture(scope="module")
def outcomes(places: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case, run side by side: most of their time is spent waiting, not computing."""
    all_cases = cases(places)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {name: pool.submit(run_case, case, tmp_path_factory.mktemp(name)) for name, case in all_cases.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", [pytest.param(n, marks=MARKS.get(n, ())) for n in NAMES])
def test_each_command_under_abuse_says_one_line(name: str, places: dict[str, str],
                                                outcomes: dict[str, Outcome]) -> None:
    """The command gives the rule's exit code and one line, and leaves no JVM and no temporary folder."""
    assert_one_line(cases(places)[name], outcomes[name])


def _seconds_to_give_up(attempt: Callable[[], object]) -> float:
    began = time.monotonic()
    with contextlib.suppress(ConnectionError):
        attempt()
    return time.monotonic() - began


def test_unreachable_is_said_within_the_connect_timeout(places: dict[str, str]) -> None:
    """smoke and tree give up on a closed port or a web server when their 5 s connect timeout says, not
    10-15 s later (kazoo's start() stops the client on a time-out, which can block for 10 s). Timed in
    this process, the four side by side: a subprocess's start-up on a loaded machine would drown the figure."""
    attempts = {f"{tool} {where}": attempt for where in ("closed", "http") for tool, attempt in
                (("smoke", partial(run.smoke, places[where])), ("tree", partial(tree._connect, places[where])))}
    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        took = dict(zip(attempts, pool.map(_seconds_to_give_up, attempts.values()), strict=True))
    slow = {name: round(seconds, 1) for name, seconds in took.items() if seconds > tree.CONNECT_TIMEOUT + 2}
    assert slow == {} and run.CONNECT_TIMEOUT == tree.CONNECT_TIMEOUT == 5, slow


# ---------------------------------------------------------------- the shared servers, paused or lost

@pytest.fixture(scope="module")
def paused_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`./run.sh zk start`, then `zk pause 1`: the lab's servers are recorded but do not serve."""
    env = {"ZKLAB_STATE": str(tmp_path_factory.mktemp("paused") / "state"), "ZKLAB_PORT": str(free_ports(1)[0])}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        zk.start(1)
        try:
            zk.signal_member(1, signal.SIGSTOP)
            yield env
        finally:
            zk.stop()


@pytest.mark.parametrize("args", [["leader", "--duration", "3"], ["hashing", "--duration", "3"], ["smoke"],
                                  ["tree", "--once"]], ids=lambda a: a[0])
def test_a_paused_shared_server_is_refused_not_replaced(args: list[str], paused_shared: dict[str, str],
                                                        tmp_path: Path) -> None:
    """With the lab's server paused, a command says it is recorded but not serving, names `zk resume 1`,
    exits 1, and starts no private ZooKeeper in its place."""
    case = Case(args, 1, "zk resume 1", paused_shared)
    out = run_case(case, tmp_path)
    assert "started a private ZooKeeper" not in out.stdout
    assert_one_line(case, out)


# ---------------------------------------------------------------- Ctrl-C at start-up

# A sitecustomize that stops the run inside the import of one module (ZKLAB_GATE) until a Ctrl-C comes:
# the signal lands at a moment chosen by the test, not by luck.
GATE = '''
import os, sys, time
class Gate:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ.get("ZKLAB_GATE"):
            sys.meta_path.remove(self)
            open(os.environ["ZKLAB_GATE_FILE"], "w").close()
            time.sleep(30)
        return None
sys.meta_path.insert(0, Gate())
'''


@pytest.mark.parametrize(("args", "gate"), [
    (["tree", "--once"], "kazoo"), (["check", "leader"], "kazoo"), (["exercise", "list"], "kazoo"),
    (["smoke"], "kazoo"), (["zk", "status"], "zklab.zk"), (["help"], "zklab.launcher"),
    pytest.param(["leader", "--duration", "3"], "kazoo", marks=_demo_pending("leader")),
    pytest.param(["hashing", "--duration", "3"], "kazoo", marks=_demo_pending("hashing")),
    (["soak", "--help"], "kazoo")], ids=lambda a: a[0] if isinstance(a, list) else None)
def test_ctrl_c_at_start_up_is_quiet(args: list[str], gate: str, tmp_path: Path, zk_server: ZooKeeperCluster) -> None:
    """Ctrl-C while the command is still loading (inside an import) exits 130 without a traceback."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(GATE)
    marker = tmp_path / "at-the-gate"
    env = _env(tmp_path, f"hostile-{uuid.uuid4().hex[:8]}", {
        "PYTHONPATH": str(tmp_path / "site"), "ZKLAB_GATE": gate, "ZKLAB_GATE_FILE": str(marker),
        "ZK_HOSTS": zk_server.hosts})
    proc = subprocess.Popen([sys.executable, "-m", "zklab.run", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(marker.exists, 20, f"the run to reach the import of {gate}")
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to the whole group
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) <= 1, err


# ---------------------------------------------------------------- help, and start_venv.sh

@pytest.mark.parametrize("args", [[], ["help"], ["--help"], ["-h"]], ids=lambda a: " ".join(a) or "nothing")
def test_help_lists_every_command_and_starts_nothing(args: list[str], tmp_path: Path) -> None:
    """`./run.sh`, `help`, `--help`, `-h`: one line per command, exit 0, no JVM, no ZooKeeper searched."""
    tag = f"hostile-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(["bash", "run.sh", *args], cwd=ROOT, env=_env(tmp_path, tag, {}), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for command in ("leader", "hashing", "smoke", "zk", "tree", "check", "exercise", "soak", "help"):
        assert sum(line.split()[:1] == [command] for line in lines) == 1, f"{command} not listed once:\n{out.stdout}"
    assert "[run]" not in out.stdout and tagged_jvms(tag) == []


@pytest.mark.parametrize("name", ["leader", "hashing"])
def test_a_challenge_help_prints_its_options_without_a_zookeeper(name: str, tmp_path: Path) -> None:
    """`./run.sh leader --help` prints the demo's options and looks for no ZooKeeper at all."""
    out = subprocess.run([sys.executable, "-m", "zklab.run", name, "--help"], cwd=ROOT, env=_env(tmp_path, "x", {}),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--duration" in out.stdout and "[run]" not in out.stdout, out


def test_start_venv_tells_an_interrupted_probe_from_a_failed_one(tmp_path: Path) -> None:
    """A Python probe that Ctrl-C ends is reported as interrupted (130), not as "Python 3.10+ is needed"."""
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/bash\nkill -INT $$\n")  # dies of SIGINT, as a probe does when Ctrl-C lands in it
    fake.chmod(0o755)
    out = subprocess.run(["bash", "start_venv.sh", "true"], cwd=ROOT, env={**os.environ, "PYTHON": str(fake)},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 130 and "interrupted" in out.stderr and "needed" not in out.stderr, out.stderr


def test_sigterm_to_check_leaves_no_folder_and_no_jvm(tmp_path: Path) -> None:
    """`kill RUNNER_PID` while `check` runs its ZooKeeper: it stops, and its temporary folders and JVMs go too."""
    tag = f"hostile-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "zklab.run", "check", "leader"], cwd=ROOT,
                            env=_env(tmp_path, tag, {}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: tagged_jvms(tag), 30, "check to start its ZooKeeper")
        proc.send_signal(signal.SIGTERM)  # to the runner alone, as `kill` or a supervisor sends it
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    wait_until(lambda: tagged_jvms(tag) == [], 10, "check's JVMs to exit")
    no_folder_left(tmp_path / "tmp")


# The signal lands while `check` forks its script's process: raised inside an at-fork callback, its exception is
# one Python swallows ("Exception ignored in ..."), and the check used to run on to the end, exit 0.
SIGNAL_DURING_FORK = """
import os, signal, sys, threading
from zklab import check
def land_once():
    if threading.current_thread() is threading.main_thread() and not os.environ.get("LANDED"):
        os.environ["LANDED"] = "1"
        signal.raise_signal(signal.{name})  # its handler runs here, inside the at-fork callback
os.register_at_fork(after_in_parent=land_once)
sys.exit(check.main(["leader", "--only", "one-leader"]))
"""


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_that_lands_while_check_forks_still_stops_it(tmp_path: Path, name: str, code: int) -> None:
    """SIGTERM or Ctrl-C delivered inside the fork of the script's process: check still stops, quietly,
    with the signal's exit code, and its ZooKeeper and temporary folders go."""
    tag = f"hostile-{uuid.uuid4().hex[:8]}"
    out = subprocess.run([sys.executable, "-c", SIGNAL_DURING_FORK.replace("{name}", name)], cwd=ROOT,
                         env=_env(tmp_path, tag, {}), capture_output=True, text=True, timeout=60)
    assert out.returncode == code and "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out
    assert "guarantees hold" not in out.stdout, out.stdout
    wait_until(lambda: tagged_jvms(tag) == [], 10, "check's JVMs to exit")
    no_folder_left(tmp_path / "tmp")


def test_a_signal_that_lands_while_zk_start_forks_stops_it(tmp_path: Path) -> None:
    """SIGTERM inside the fork of a ZooKeeper server: `zk start` stops as for Ctrl-C (130), quietly, and leaves
    no server; it used to start everything and exit 0, the signal swallowed."""
    argv = ["zk", "start"]
    tag = f"hostile-{uuid.uuid4().hex[:8]}"
    code = SIGNAL_DURING_FORK.replace("{name}", "SIGTERM").replace(
        "from zklab import check", "from zklab import run").replace(
        'check.main(["leader", "--only", "one-leader"])', f"run.main({argv!r})")
    env = _env(tmp_path, tag, {})
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60)
    finally:  # were the signal lost, `zk start` would leave its server running for good: stop it either way
        subprocess.run([sys.executable, "-m", "zklab.run", "zk", "stop"], cwd=ROOT, env=env, capture_output=True,
                       timeout=60)
    assert out.returncode == 130 and "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out
    assert "started in the background" not in out.stdout, out.stdout
    wait_until(lambda: tagged_jvms(tag) == [], 10, "the runner's JVMs to exit")


def test_two_ctrl_c_on_check_leave_no_folder_and_no_jvm(tmp_path: Path) -> None:
    """A learner presses Ctrl-C twice while `check` runs (the terminal signals the whole group): the second
    lands in the clean-up, which must still stop the checker's ZooKeeper and remove its temporary folder."""
    tag = f"hostile-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "zklab.run", "check", "leader"], cwd=ROOT, start_new_session=True,
                            env=_env(tmp_path, tag, {}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: tagged_jvms(tag), 30, "check to start its ZooKeeper")
        for _ in range(2):
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.05)  # not a wait for a condition: the gap between two key presses
        pressed = time.monotonic()
        _, err = proc.communicate(timeout=30)
        # The second press cut short the end of the script's process: the clean-up ends it (its ensemble would
        # write on in the work folder: a CI run found part of it left), and leaves within its bounds.
        assert time.monotonic() - pressed < 15, f"check took {time.monotonic() - pressed:.1f} s to leave"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err, err
    wait_until(lambda: tagged_jvms(tag) == [], 10, "check's JVMs to exit")
    no_folder_left(tmp_path / "tmp")
