# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: forgets to wrap past the last point
# fails: wrap
def owner_at(self, position: int) -> str:
    if not self._points:
        raise LookupError("the ring is empty")
    return self._owners[bisect.bisect_left(self._points, position)]
