"""The leader election's guarantees, measured against a real ZooKeeper through the script's public API.

Each scenario drives `LeaderElection` candidates (start, resign, is_leader, history, participants,
leader, epoch, token, fenced_set) and `fenced_write`, breaks the network with real proxies, and
judges what happened. Nothing here reads private attributes or the source, so a learner may
restructure the recipe freely. Short sessions (1-2 s) keep every bound within a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from zklab.check_lab import (
    SESSION_TIMEOUT,
    Broken,
    Check,
    Findings,
    Lab,
    LeaderSampler,
    most_at_once,
    started_leading,
    stopped_leading,
    wait_for,
)
from zklab.faults import settle

PATH, LEDGER = "/election", "/ledger"
# The partitioned leader's session: ZooKeeper expires it 1 s after it last heard from it.
SHORT_SESSION = 1.0
# How long the partition goes on after the next leader was elected: a stale leader shows in that time.
AFTER_ELECTION = 0.5
# How long a candidate gets to take over, or to notice something, once ZooKeeper has told it.
REACT = 2.0
# How long we watch for a candidate that should stay in line but might claim leadership anyway.
TEMPTATION = 0.5
# A pause on the wire this long means every candidate has handled what it heard (pings are rarer).
QUIET = 0.1

ADVICE_TWO_LEADERS = ("Two leaders at once is what an election exists to prevent: both would act and write. "
                      "Look at how LeaderElection decides it is first (election_order, _check_position).")


# ---------------------------------------------------------------- helpers

def must_refuse(call: Callable[[], object], refusal: type[BaseException], key: str, figure: str, advice: str) -> None:
    """`call` must raise `refusal`; if it goes through, the guarantee `key` fails with `figure`."""
    try:
        call()
    except refusal:
        return
    raise Broken(key, figure, advice)


def candidate(lab: Lab, chroot: str, name: str, sampler: LeaderSampler | None = None,
              timeout: float = SESSION_TIMEOUT, via: str | None = None) -> object:
    """A started LeaderElection with a session of its own; it resigns when the lab closes."""
    election = lab.script.LeaderElection(lab.client(chroot, timeout, via), PATH, name)
    lab.on_close(election.resign)
    if sampler is not None:
        sampler.candidates.append(election)
    election.start()
    return election


def join_in_turn(lab: Lab, chroot: str, names: list[str], sampler: LeaderSampler, key: str,
                 vias: list[str] | None = None) -> list[object]:
    """Candidates that join one after another, each node created before the next starts."""
    admin = lab.client(chroot)
    admin.ensure_path(PATH)
    base = len(admin.get_children(PATH))
    elections = []
    for i, name in enumerate(names):
        elections.append(candidate(lab, chroot, name, sampler, via=vias[i] if vias else None))
        wait_for(lambda n=base + i + 1: len(admin.get_children(PATH)) >= n, REACT, key,
                 f"{name} did not create its election node within {REACT:.0f} s",
                 "start() must join the election: one EPHEMERAL_SEQUENTIAL node per candidate.")
    return elections


def sole_leader(elections: list[object], key: str, bound: float = REACT) -> object:
    """Wait until exactly one of `elections` acts as leader; fail `key` with what was seen."""
    def single() -> object | None:
        leading = [e for e in elections if e.is_leader]
        return leading[0] if len(leading) == 1 else None
    try:
        return wait_for(single, bound, key, "", "")
    except Broken:
        leading = [e.name for e in elections if e.is_leader]
        if len(leading) > 1:
            raise Broken(key, f"{len(leading)} candidates act as leader at once ({', '.join(leading)})",
                         ADVICE_TWO_LEADERS) from None
        raise Broken(key, f"no candidate led within {bound:.0f} s", "The first candidate in line must lead; "
                     "each other one must watch the node before its own and look again when it goes.") from None


def overlap_figure(sampler: LeaderSampler, elections: list[object]) -> tuple[int, str]:
    """The most leaders acting at once, sampled and from every candidate's own history."""
    if sampler.error is not None:
        raise sampler.error
    recorded = most_at_once(e.history for e in elections)
    most = max(sampler.most, recorded)
    names = f" ({', '.join(sampler.overlap)})" if sampler.most > 1 else ""
    return most, f"most leaders acting at once: {most}{names}"


def drain(elections: list[object]) -> None:
    """Wait until each candidate's client has handled every notification ZooKeeper sent it so far."""
    for election in elections:
        settle(election.client, REACT)


# ---------------------------------------------------------------- one leader, the first in line

def one_leader(lab: Lab, found: Findings) -> None:
    chroot, sampler = lab.namespace(), LeaderSampler()
    lab.on_close(sampler.stop)
    names = [f"c{i}" for i in range(5)]
    elections = join_in_turn(lab, chroot, names, sampler, "one-leader")
    leader = sole_leader(elections, "one-leader")
    if leader is not elections[0]:
        raise Broken("one-leader", f"{leader.name} leads, but c0 joined first and is first in line",
                     "The lowest sequence number leads. Look at how LeaderElection orders the queue.")
    odd = [f"{e.name} sees {queue}" for e in elections if (queue := e.participants()) != names]
    odd += [f"{e.name}'s leader() is {answer}" for e in elections if (answer := e.leader()) != "c0"]
    if odd:
        raise Broken("one-leader", f"candidates see different queues: {odd[0]}",
                     "Every candidate reads the same children from ZooKeeper and must order them the same "
                     "way. Look at participants() and election_order.")
    leader.fenced_set(LEDGER, "from the leader")
    must_refuse(lambda: elections[1].fenced_set(LEDGER, "from a follower"), lab.script.NotLeaderError,
                "one-leader", "a follower's fenced_set was accepted",
                "Only the leader may write: fenced_set must refuse unless is_leader holds.")
    most, figure = overlap_figure(sampler, elections)
    found.judge("one-leader", most == 1,
                f"1 of 5 candidates leads, the first in line; all see one queue; a follower's write is refused; "
                f"{figure}", ADVICE_TWO_LEADERS)


# ---------------------------------------------------------------- leadership passes down the queue

FIRST_SEQUENCE = 7  # the queue starts at 7, so it crosses from 9 to 10: as text, "10" sorts before "9"


def in_order(lab: Lab, found: Findings) -> None:
    chroot, sampler = lab.namespace(), LeaderSampler()
    lab.on_close(sampler.stop)
    admin = lab.client(chroot)
    for _ in range(FIRST_SEQUENCE):  # every create under the path advances its sequence counter
        admin.delete(admin.create(f"{PATH}/x", sequence=True, makepath=True))
    elections = join_in_turn(lab, chroot, [f"c{i}" for i in range(6)], sampler, "in-order")
    seq = {e.name: FIRST_SEQUENCE + i for i, e in enumerate(elections)}
    handoffs: list[float] = []
    previous, resigned_at = None, 0.0
    for k, expected in enumerate(elections):
        leader = sole_leader(elections[k:], "in-order")
        if leader is not expected:
            raise Broken("in-order", f"{leader.name} (sequence {seq[leader.name]}) leads, but "
                         f"{expected.name} (sequence {seq[expected.name]}) is ahead of it in line",
                         "Order the queue by the sequence number as a number: 10 comes after 9. "
                         "Look at election_order.")
        if previous is not None:
            handoffs.append((time.monotonic() - resigned_at) * 1000)
            if previous.name in leader.participants():
                raise Broken("in-order", f"{previous.name} resigned but is still in the queue",
                             "resign() must delete the candidate's node.")
        if k == len(elections) - 1:
            break
        previous = leader
        leader.resign()
        resigned_at = time.monotonic()
    must_refuse(elections[0].start, RuntimeError, "in-order", "a resigned candidate could start again",
                "resign() is final: a closed election must not rejoin.")
    most, figure = overlap_figure(sampler, elections)
    found.judge("in-order", most == 1,
                f"5 hand-offs, each to the next in line (10 after 9), slowest {max(handoffs):.1f} ms; "
                f"{figure}", ADVICE_TWO_LEADERS)


# ---------------------------------------------------------------- the herd, and the middle departure

def quiet(taps: list[object], key: str) -> None:
    """Wait until no frame has passed any tap for a while: every woken candidate has set its watch again."""
    wait_for(lambda: time.monotonic() - max(t.last_frame for t in taps) > QUIET, REACT, key,
             f"the candidates' connections never fell quiet for {QUIET * 1000:.0f} ms",
             "Candidates that wait in line should not talk to ZooKeeper all the time.")


def woken_by(departure: object, elections: list[object], taps: dict[str, object]) -> dict[str, int]:
    """Watch notifications each other candidate received because `departure` resigned."""
    quiet(list(taps.values()), "no-herd")
    others = [e for e in elections if e is not departure and e.name in taps]
    before = {e.name: len(taps[e.name].events) for e in others}
    departure.resign()
    drain(others)
    return {e.name: len(taps[e.name].events) - before[e.name] for e in others}


def herd(lab: Lab, found: Findings) -> None:
    chroot, sampler = lab.namespace(), LeaderSampler()
    lab.on_close(sampler.stop)
    names = [f"c{i}" for i in range(6)]
    taps = {name: lab.tap() for name in names}
    elections = join_in_turn(lab, chroot, names, sampler, "no-herd", vias=[taps[n].address for n in names])
    alive = list(elections)
    sole_leader(alive, "no-herd")
    drain(alive)
    counts = []
    for departing in (elections[0], elections[3]):   # the leader, then one in the middle of the queue
        counts.append(woken_by(departing, alive, taps))
        alive.remove(departing)
        if departing is elections[0]:
            sole_leader(alive, "no-herd")
    woke = max(sum(1 for n in c.values() if n) for c in counts)
    events = max(sum(c.values()) for c in counts)
    if woke == 1 and events == 1:
        found.hold("no-herd", "a departure woke 1 candidate (watching all children would wake 5)")
    elif woke == 0:
        found.fail("no-herd", "a departure woke no candidate",
                   "The candidate behind the one that left must hear of it, or nobody takes over. "
                   "Look at where LeaderElection._check_position sets its watch.")
    else:
        found.fail("no-herd", f"a departure woke {woke} candidates with {events} notifications "
                   "where 1 should wake: a herd",
                   "Watching all children wakes every candidate on every change, and each then reads the "
                   "whole list again. Watch only the node just before yours: look at where "
                   "LeaderElection._check_position sets its watch.")

    # c3 left while c1 leads: c4 was woken, and must read the queue again and stay in line.
    end = time.monotonic() + TEMPTATION
    while time.monotonic() < end and not elections[4].is_leader:
        time.sleep(0.005)
    most, figure = overlap_figure(sampler, elections)
    found.judge("middle", most == 1 and not elections[4].is_leader,
                f"c3 left the middle of the queue, c4 stayed behind c1: {figure}",
                "c4 took its predecessor's departure as its election while c1 still led. A vanished "
                "predecessor does not mean you lead: read the children again when the watch fires "
                "(LeaderElection's watch callback, _check_position).")


# ---------------------------------------------------------------- a lost reply to create

def lost_create(lab: Lab, found: Findings) -> None:
    chroot, proxy = lab.namespace(), lab.proxy()
    admin = lab.client(chroot)
    admin.ensure_path(PATH)
    # A 4 s session survives the short cut below: the candidate keeps its session, and so its first node.
    election = lab.script.LeaderElection(lab.client(chroot, 4.0, proxy.address), PATH, "lonely")
    lab.on_close(election.resign)
    proxy.blackhole("to_client")             # the request reaches ZooKeeper, its reply never returns
    election.start()
    wait_for(lambda: admin.get_children(PATH), REACT, "lost-create",
             "the candidate did not create its node", "start() must create an election node.")
    proxy.cut()                              # the pending create fails with ConnectionLoss
    proxy.heal()
    try:
        wait_for(lambda: election.is_leader, REACT, "lost-create", "", "")
    except Broken:
        nodes = len(admin.get_children(PATH))
        raise Broken("lost-create", f"after a lost reply to create: {nodes} nodes for one candidate, and it "
                     f"did not lead within {REACT:.0f} s",
                     "A blind retry of create makes a second node while the first lives on in the same "
                     "session: the candidate waits behind its own orphan. Look for your GUID in the "
                     "children before creating again: LeaderElection._join.") from None
    nodes = len(admin.get_children(PATH))
    if nodes != 1:
        raise Broken("lost-create", f"after a lost reply to create: {nodes} nodes for one candidate",
                     "An orphan node holds up everyone behind it until the session ends. "
                     "Look for your GUID before creating again: LeaderElection._join.")
    election.resign()
    wait_for(lambda: not admin.get_children(PATH), REACT, "lost-create",
             "resign() left a node behind", "resign() must delete the candidate's node.")
    found.hold("lost-create", "1 node after a lost reply to create, found by its GUID; it leads")


# ---------------------------------------------------------------- a partitioned leader, fenced

def judge_partition(found: Findings, sampler: LeaderSampler, old: object, rest: list[object], new: object) -> None:
    most, figure = overlap_figure(sampler, [old, *rest])
    stopped, started = stopped_leading(old), started_leading(new)
    gap = started - stopped if stopped is not None and started is not None else None
    ok = most == 1 and old.is_leader is False and gap is not None and gap > 0
    found.judge("partition", ok,
                f"the partitioned leader stopped {gap:.2f} s before {new.name} started; {figure}" if ok else
                f"the partitioned leader went on leading {sampler.together:.2f} s after {new.name} started, until "
                f"the link healed; {figure}",
                "Cut off from ZooKeeper, a leader cannot know whether its session lives on. It must stop on "
                "SUSPENDED and, as SUSPENDED comes late, when its lease (2/3 of a session after ZooKeeper's "
                "last answer) runs out. Look at LeaderElection's connection listener, is_leader and the "
                "lease renewal.")


def partition(lab: Lab, found: Findings, fault: str = "blackhole") -> None:
    chroot, sampler, proxy = lab.namespace(), LeaderSampler(), lab.proxy()
    lab.on_close(sampler.stop)
    old = candidate(lab, chroot, "old", sampler, timeout=SHORT_SESSION, via=proxy.address)
    wait_for(lambda: old.is_leader, REACT, "partition", "the first candidate did not lead",
             "A lone candidate must lead.")
    rest = join_in_turn(lab, chroot, ["c1", "c2"], sampler, "partition")
    token = old.token
    old.fenced_set(LEDGER, "before the partition")

    getattr(proxy, fault)()
    new = sole_leader(rest, "partition", bound=SHORT_SESSION + 2 * REACT)
    time.sleep(AFTER_ELECTION)  # the partition lasts a little past the election, as real ones do
    proxy.heal()
    try:
        wait_for(lambda: old.client.connected, 2 * REACT, "stale-write",
                 "the old leader did not reconnect after the partition healed", "")
    finally:  # judged once the old leader has heard its session is gone: any overlap is over by then
        judge_partition(found, sampler, old, rest, new)
    # The late write comes before the new leader's first one: the ledger still holds the old epoch, so
    # only ZooKeeper's check of the election node can tell that this leader was deposed. (A script that
    # compares epochs itself, on the client, would let it through.)
    try:
        lab.script.fenced_write(old.client, token, LEDGER, "a stale leader's late write")
    except lab.script.NotLeaderError:
        try:
            old.fenced_set(LEDGER, "through the recipe")
        except lab.script.NotLeaderError:
            new.fenced_set(LEDGER, "from the new leader")
            ledger = lab.client(chroot).get(LEDGER)[0]
            found.judge("stale-write", b"from the new leader" in ledger,
                        f"stale write rejected by ZooKeeper (epoch {token.epoch}, after epoch {new.epoch} "
                        "was elected)", "The ledger lost the new leader's write.")
        else:
            found.fail("stale-write", "the deposed leader's fenced_set was accepted",
                       "Only the leader may write: fenced_set must refuse unless is_leader holds.")
    else:
        found.fail("stale-write", f"ZooKeeper accepted the deposed leader's write with its old epoch "
                   f"{token.epoch}, after the new leader (epoch {new.epoch}) was elected",
                   "A leader can pause right after checking that it leads; only ZooKeeper can tell that its "
                   "session ended. Put check(election node) in the write's transaction: fenced_write.")

    wait_for(lambda: old.participants()[-1:] == ["old"] and not old.is_leader, 2 * REACT, "rejoin",
             f"after its session expired, the old leader did not rejoin within {2 * REACT:.0f} s",
             "LOST means the session and its node are gone: forget the node and join again as a new "
             "candidate. Look at LeaderElection's connection listener (LOST) and _step.")
    found.hold("rejoin", "after its session expired, the old leader rejoined last in line")


# ---------------------------------------------------------------- what `check leader` runs, in order

ONE_LEADER = Check({"one-leader": "one leader at a time, the first in line"}, one_leader, bound=8)
IN_ORDER = Check({"in-order": "leadership passes down the queue in sequence order"}, in_order, bound=8)
HERD = Check({"no-herd": "a departure wakes only the candidate behind it",
              "middle": "a departure in the middle of the queue elects nobody"}, herd, bound=8)
LOST_CREATE = Check({"lost-create": "a lost reply to create leaves no orphan node"}, lost_create, bound=8)
PARTITION = Check({"partition": "a partitioned leader stops before the next one starts",
                   "stale-write": "a deposed leader's late write is rejected by ZooKeeper",
                   "rejoin": "an expired leader rejoins at the back of the queue"}, partition, bound=12)
CHECKS = [ONE_LEADER, IN_ORDER, HERD, LOST_CREATE, PARTITION]
