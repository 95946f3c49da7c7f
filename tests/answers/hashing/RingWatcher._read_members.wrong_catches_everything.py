# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: catches every exception as a refusal: a lost connection (ConnectionLoss) drops a live member for good
# fails: weight-change
def _read_members(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    pending = {name: self.client.get_async(f"{self.path}/{name}", watch=self._member_changed) for name in names}
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
        except Exception as exc:
            refused[name] = str(exc)
    return weights, refused
