# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: no SUSPENDED or LOST handling at all: it only wakes the thread
# fails: partition
# gap: the lease (step 4) and the re-check on reconnect (step 2) cover both states, so no guarantee measures how soon a leader stops on SUSPENDED, nor that LOST forgets the node
def _on_connection_change(self, state: str) -> None:
    self._wake.set()
