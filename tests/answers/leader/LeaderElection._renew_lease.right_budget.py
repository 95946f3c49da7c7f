# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: computes what is left of the lease first and gives up early when nothing is
def _renew_lease(self) -> None:
    mine, started = self._node, time.monotonic()
    left = self._lease_until - started
    if mine is None or left <= 0:
        self._set_leader(False, "lease ran out")
        self._wake.set()
        return
    self._sync()
    try:
        stat = self.client.exists_async(self._node_path(mine[0])).get(timeout=left)
    except KazooTimeoutError:
        self._set_leader(False, "no answer within the lease")
        self._wake.set()
        return
    if stat is not None and stat.ephemeralOwner == self._session_id():
        self._set_leader(True, "lease renewed", lease_from=started, renewal=True)
    else:
        self._wake.set()
