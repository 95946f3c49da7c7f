# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: fills a fresh ring member by member, aside, then swaps it in
def _rebuild(self, children: list[str]) -> None:
    weights, refused = self._read_members(children)
    fresh, before = HashRing(self.vnodes), self.ring
    for name, weight in self._fit(weights, refused).items():
        fresh.add(name, weight)
    with self._built:
        self.ring, self.changes = fresh, self.changes + 1
        self._built.notify_all()
    self._note_ignored(refused)
    if self._on_change is not None and fresh.fingerprint != before.fingerprint:
        self._on_change(before, fresh)
