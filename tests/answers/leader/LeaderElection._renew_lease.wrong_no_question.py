# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: renews the lease on a timer without asking ZooKeeper anything
# fails: isolated-follower
def _renew_lease(self) -> None:
    self._set_leader(True, "lease renewed", lease_from=time.monotonic(), renewal=True)
