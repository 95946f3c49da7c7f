# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: builds the ring of every member read, without _fit: past MAX_POINTS, HashRing refuses and every
# rebuild fails, so the router stays on its old ring for good
# fails: foreign
def _rebuild(self, children: list[str]) -> None:
    old = self.ring
    weights, refused = self._read_members(children)
    new = HashRing(self.vnodes, weights)
    with self._built:
        self.ring = new
        self.changes += 1
        self._built.notify_all()
    self._note_ignored(refused)
    if self._on_change and new.fingerprint != old.fingerprint:
        self._on_change(old, new)
