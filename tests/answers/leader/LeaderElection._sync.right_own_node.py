# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: syncs on our own node's path when we have one (any path goes through the ZooKeeper leader)
def _sync(self) -> None:
    mine = self._node
    self.client.sync_async(self._node_path(mine[0]) if mine else self.path)
