# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: collects every failed operation of the transaction in one list
def fenced_write(client: KazooClient, token: FencingToken, ledger: str, value: str | bytes,
                 timeout: float | None = None) -> int:
    wait = client._session_timeout / 1000.0 if timeout is None else timeout
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    record = json.dumps({"epoch": token.epoch, "leader": token.leader, "value": text}).encode()
    existing = client.exists_async(ledger).get(timeout=wait)
    tx = client.transaction()
    tx.check(token.node_path, version=0)
    if existing is None:
        tx.create(ledger, record)
    else:
        tx.set_data(ledger, record, version=existing.version)
    results = tx.commit_async().get(timeout=wait)
    failed = [r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError)]
    if failed:
        raise NotLeaderError(f"ZooKeeper refused the write: {type(failed[0]).__name__}")
    return 0 if existing is None else existing.version + 1
