# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: looks for "weight" in whatever JSON it got: ["weight"] and "weight" hold it too, and indexing them
# raises TypeError, which freezes every router's rebuild
# fails: foreign
def parse_weight(data: bytes) -> float:
    if not data:
        return 1
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"its data is {len(data):,} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError(f"its data {data[:24]!r} is not JSON") from None
    if "weight" not in doc:
        raise ValueError(f"its data {data[:24]!r} is not {{\"weight\": number}}")
    return check_weight(doc["weight"])
