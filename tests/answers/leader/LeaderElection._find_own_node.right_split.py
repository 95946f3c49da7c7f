# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: splits each name at the first separator and compares the GUID part
def _find_own_node(self) -> tuple[str, int] | None:
    try:
        children = self.client.get_children(self.path)
    except NoNodeError:
        return None
    session = self._session_id()
    for child in sorted(c for c in children if c.split(SEP, 1)[0] == self._guid):
        stat = self.client.exists(self._node_path(child))
        if stat is not None and stat.ephemeralOwner == session:
            return child, session
    return None
