# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: compares epochs on the client, then writes without ZooKeeper's check
# fails: stale-write
def fenced_write(client: KazooClient, token: FencingToken, ledger: str, value: str | bytes,
                 timeout: float | None = None) -> int:
    wait = client._session_timeout / 1000.0 if timeout is None else timeout
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    record = json.dumps({"epoch": token.epoch, "leader": token.leader, "value": text}).encode()
    if client.exists_async(ledger).get(timeout=wait) is None:
        client.create_async(ledger, record).get(timeout=wait)
        return 0
    data, _ = client.get_async(ledger).get(timeout=wait)
    if json.loads(data)["epoch"] > token.epoch:
        raise NotLeaderError("a later leader wrote the ledger")
    return client.set_async(ledger, record).get(timeout=wait).version
