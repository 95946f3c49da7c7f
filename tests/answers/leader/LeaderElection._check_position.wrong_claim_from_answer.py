# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: takes the time for the lease after the read came back: a claim whose answer was slow leads past the
# moment ZooKeeper may expire its session
# fails: partition
def _check_position(self) -> None:
    self._sync()
    queue = election_order(self.client.get_children(self.path))
    asked_at = time.monotonic()
    nodes, mine = [c.node for c in queue], self._node
    if mine is None or mine[0] not in nodes or mine[1] != self._session_id():
        return self._forget_node("our node is gone")
    position = nodes.index(mine[0])
    if position == 0:
        self._claim(queue[0].seq, asked_at)
    elif self.client.exists(self._node_path(nodes[position - 1]), watch=self._predecessor_changed) is None:
        self._wake.set()
