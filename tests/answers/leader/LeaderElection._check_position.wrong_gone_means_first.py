# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: takes a predecessor already gone at the second read for its election, instead of reading the queue
# again: right when the leader left, two leaders when one in the middle did
# fails: handover-race
def _check_position(self) -> None:
    asked_at = time.monotonic()
    self._sync()
    queue = election_order(self.client.get_children(self.path))
    names, mine = [c.node for c in queue], self._node
    if mine is None or mine[0] not in names or mine[1] != self._session_id():
        return self._forget_node("our node is gone")
    i = names.index(mine[0])
    if i == 0:
        return self._claim(queue[0].seq, asked_at)
    if self.client.exists(self._node_path(names[i - 1]), watch=self._predecessor_changed) is None:
        self._claim(queue[i].seq, asked_at)  # the one before us is gone: we must be next
