# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: the first point above position - 1 (points are ints), and an explicit wrap instead of a modulo
def owner_at(self, position: int) -> str:
    if len(self._owners) == 0:
        raise LookupError("no member on the ring")
    i = bisect.bisect_right(self._points, position - 1)
    return self._owners[i] if i < len(self._owners) else self._owners[0]
