# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: watches the whole list of children, so every departure wakes every candidate (a herd)
# fails: no-herd
def _check_position(self) -> None:
    asked_at = time.monotonic()
    self._sync()
    queue = election_order(self.client.get_children(self.path, watch=self._predecessor_changed))
    nodes, mine = [c.node for c in queue], self._node
    if mine is None or mine[0] not in nodes or mine[1] != self._session_id():
        return self._forget_node("our node is gone")
    if nodes.index(mine[0]) == 0:
        self._claim(queue[0].seq, asked_at)
