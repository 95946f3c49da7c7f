# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: one member at a time, each read bounded, each with its data watch
def _read_members(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    weights, refused = {}, {}
    for name in names:
        try:
            data, stat = self.client.get_async(f"{self.path}/{name}", watch=self._member_changed).get(
                timeout=self.timeout)
        except NoNodeError:
            continue
        try:
            weight = parse_weight(data)
        except ValueError as exc:
            refused[name] = str(exc)
            continue
        if stat.ephemeralOwner == 0:
            refused[name] = NOT_EPHEMERAL
        else:
            weights[name] = weight
    return weights, refused
