# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: changes the ring readers hold, in place
# fails: swap
def _rebuild(self, children: list[str]) -> None:
    weights, refused = self._read_members(children)
    wanted, ring = self._fit(weights, refused), self.ring
    before = ring.copy() if hasattr(ring, "copy") else HashRing(self.vnodes, ring.weights)
    for name in ring.nodes:
        if name not in wanted:
            ring.remove(name)
    for name, weight in wanted.items():
        if ring.weights.get(name) != weight:
            ring.add(name, weight)
    with self._built:
        self.changes += 1
        self._built.notify_all()
    self._note_ignored(refused)
    if self._on_change is not None and ring.fingerprint != before.fingerprint:
        self._on_change(before, ring)
