# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: asks ZooKeeper, but counts the lease from the answer: an answer that took its time stretches the lease
# past the moment ZooKeeper may expire the session
# fails: partition
def _renew_lease(self) -> None:
    asked_at, mine = time.monotonic(), self._node
    if mine is None:
        return self._wake.set()
    self._sync()
    answer = self.client.exists_async(self._node_path(mine[0]))
    try:
        stat = answer.get(timeout=max(0.0, self._lease_until - asked_at))
    except KazooTimeoutError:
        self._set_leader(False, "lease expired: ZooKeeper did not answer in time")
        return self._wake.set()
    if stat is None or stat.ephemeralOwner != self._session_id():
        self._wake.set()
    else:
        self._set_leader(True, "lease renewed", lease_from=time.monotonic(), renewal=True)
