# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: keeps refused members off the ring but never tells _note_ignored: nobody hears of them
# fails: foreign
def _rebuild(self, children: list[str]) -> None:
    old = self.ring
    weights, refused = self._read_members(children)
    new = HashRing(self.vnodes, self._fit(weights, refused))
    with self._built:
        self.ring = new
        self.changes += 1
        self._built.notify_all()
    if self._on_change and new.fingerprint != old.fingerprint:
        self._on_change(old, new)
