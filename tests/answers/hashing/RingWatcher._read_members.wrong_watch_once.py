# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: sets a data watch once per member name: a watch fires once, so a second change (or a change after the
# member left and joined again) is never seen
# fails: weight-change
def _read_members(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    watched = self.__dict__.setdefault("_watched", set())
    pending = {name: self.client.get_async(f"{self.path}/{name}", watch=None if name in watched else self._member_changed)
               for name in names}
    watched.update(names)
    weights, refused = {}, {}
    for name, answer in pending.items():
        try:
            data, stat = answer.get(timeout=self.timeout)
            weight = parse_weight(data)
            if not stat.ephemeralOwner:
                raise ValueError(NOT_EPHEMERAL)
            weights[name] = weight
        except NoNodeError:
            continue
        except ValueError as exc:
            refused[name] = str(exc)
    return weights, refused
