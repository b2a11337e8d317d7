"""An independent OPC UA client (the Python `asyncua` package) driven by
tests/e2e/opcua_python.rs, so the gateway is not only tested with async-opcua against itself.

Usage: opcua_client.py <port> <password> <metric-id> <history-id> <history-rows>

It prints one JSON object per line: {"step": ..., ...}. Lines "WAIT <what>" ask the Rust side
to do something (start or end a simulator outage) and answer "GO" on stdin.
"""

import asyncio
import dataclasses
import json
import sys
from datetime import datetime, timedelta, timezone

from asyncua import Client, ua

NAMESPACE = "urn:chirpstack:opcua:gateway:gateway"
USER = "opcua-user"


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def wait_for_rust(what):
    print(f"WAIT {what}", flush=True)
    answer = sys.stdin.readline().strip()
    if answer != "GO":
        raise SystemExit(f"unexpected answer {answer!r}")


class Recorder:
    def __init__(self):
        self.statuses = []
        self.values = []

    def datachange_notification(self, node, val, data):
        dv = data.monitored_item.Value
        self.statuses.append(dv.StatusCode.name)
        self.values.append(val)


async def try_connect(step, client):
    """Connects and reports whether the server refused (any refusal is an exception)."""
    try:
        await client.connect()
        emit(step, refused=False)
        await client.disconnect()
    except Exception as e:  # noqa: BLE001
        emit(step, refused=True, error=type(e).__name__ + ": " + str(e)[:200])


async def wait_until(predicate, timeout):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def main():
    port, password, metric_id, history_id, history_rows = sys.argv[1:6]
    url = f"opc.tcp://127.0.0.1:{port}/"

    # A wrong password is refused.
    wrong = Client(url, timeout=10)
    wrong.set_user(USER)
    wrong.set_password("not-the-password")
    await try_connect("wrong_password", wrong)

    # An anonymous session (not allowed by default) is refused by the server.
    await try_connect("anonymous", Client(url, timeout=10))

    # A client that ignores the encrypted token policy and sends the right password in
    # clear on the None endpoint is refused: the password must not cross the wire in clear.
    sneaky = Client(url, timeout=10)
    sneaky.set_user(USER)
    sneaky.set_password(password)
    advertised = sneaky.server_policy

    def cleartext_policy(token_type):
        return dataclasses.replace(advertised(token_type), SecurityPolicyUri=None)

    sneaky.server_policy = cleartext_policy
    await try_connect("cleartext_password", sneaky)

    client = Client(url, timeout=10)
    client.set_user(USER)
    client.set_password(password)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NAMESPACE)
        emit("namespace", index=ns)

        # Browse by name from Objects down to the metric.
        node = client.get_node(f"ns={ns};s={metric_id}")
        device = await node.get_parent()
        application = await device.get_parent()
        path = [
            (await application.read_browse_name()).Name,
            (await device.read_browse_name()).Name,
            (await node.read_browse_name()).Name,
        ]
        found = await client.nodes.objects.get_child([f"{ns}:{name}" for name in path])
        emit("browse", path=path, found=found.nodeid.to_string(), expected=node.nodeid.to_string())

        # Read: value, status and both timestamps.
        async def read_both():
            # Node.read_data_value asks for the source timestamp only; ask for both.
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            rv = ua.ReadValueId()
            rv.NodeId = node.nodeid
            rv.AttributeId = ua.AttributeIds.Value
            params.NodesToRead = [rv]
            return (await client.uaclient.read(params))[0]

        async def read_good():
            for _ in range(100):
                dv = await read_both()
                if dv.StatusCode.is_good():
                    return dv
                await asyncio.sleep(0.1)
            return dv

        dv = await read_good()
        emit(
            "read",
            status=dv.StatusCode.name,
            value=dv.Value.Value,
            source=dv.SourceTimestamp.isoformat() if dv.SourceTimestamp else None,
            server=dv.ServerTimestamp.isoformat() if dv.ServerTimestamp else None,
        )

        # Subscriptions: one without a filter, one with a StatusValue DataChangeFilter.
        plain, filtered = Recorder(), Recorder()
        sub_plain = await client.create_subscription(100, plain)
        await sub_plain.subscribe_data_change(node)
        sub_filtered = await client.create_subscription(100, filtered)
        await sub_filtered.deadband_monitor(node, 0, deadbandtype=0)
        # The gauge (rounded to 0.01) holds still for up to ~9 s at the top and bottom of its
        # sine, where the filtered item rightly stays quiet: allow for one such plateau.
        ok = await wait_until(lambda: len(plain.values) >= 3 and len(filtered.values) >= 3, 30)
        emit("values", ok=ok, plain=plain.statuses[:5], filtered=filtered.statuses[:5])

        wait_for_rust("outage")
        def stale_seen(r):
            return "UncertainLastUsableValue" in r.statuses and "BadNoCommunication" in r.statuses
        ok = await wait_until(lambda: stale_seen(plain) and stale_seen(filtered), 20)
        emit("stale", ok=ok, plain=plain.statuses[-4:], filtered=filtered.statuses[-4:])

        wait_for_rust("recovery")
        def recovered(r):
            return r.statuses and r.statuses[-1] == "Good" and "BadNoCommunication" in r.statuses
        ok = await wait_until(lambda: recovered(plain) and recovered(filtered), 25)
        emit("recovered", ok=ok, plain=plain.statuses[-3:], filtered=filtered.statuses[-3:])
        await sub_plain.delete()
        await sub_filtered.delete()

        # History: asyncua follows the continuation points itself.
        history = client.get_node(f"ns={ns};s={history_id}")
        end = datetime.now(timezone.utc)
        start = end - timedelta(days=30)
        rows = await history.read_raw_history(start, end, numvalues=0, return_bounds=False)
        values = [r.Value.Value for r in rows]
        times = [r.SourceTimestamp for r in rows]
        emit(
            "history",
            rows=len(rows),
            expected=int(history_rows),
            in_order=all(a < b for a, b in zip(times, times[1:])),
            values_are_sequence=values == list(range(len(values))),
        )
        # One call asking for 10,000 rows: a continuation point comes back.
        details = ua.ReadRawModifiedDetails()
        details.IsReadModified = False
        details.StartTime = start
        details.EndTime = end
        details.NumValuesPerNode = 10000
        details.ReturnBounds = False
        result = await history.history_read(details)
        emit(
            "history_page",
            status=result.StatusCode.name,
            rows=len(result.HistoryData.DataValues),
            continuation=bool(result.ContinuationPoint),
        )
        # Processed: hourly Average and Maximum of the same node in one HistoryRead request
        # (ReadProcessedDetails, one aggregate per entry of NodesToRead).
        processed = ua.ReadProcessedDetails()
        processed.StartTime = times[0]
        processed.EndTime = times[0] + timedelta(hours=3)
        processed.ProcessingInterval = 3600 * 1000.0
        processed.AggregateType = [
            ua.NodeId(ua.ObjectIds.AggregateFunction_Average),
            ua.NodeId(ua.ObjectIds.AggregateFunction_Maximum),
        ]
        processed.AggregateConfiguration = ua.AggregateConfiguration(
            UseServerCapabilitiesDefaults=True
        )
        params = ua.HistoryReadParameters()
        params.HistoryReadDetails = processed
        params.TimestampsToReturn = ua.TimestampsToReturn.Source
        params.ReleaseContinuationPoints = False
        for _ in processed.AggregateType:
            to_read = ua.HistoryReadValueId()
            to_read.NodeId = history.nodeid
            params.NodesToRead.append(to_read)
        results = await client.uaclient.history_read(params)

        def figures(result):
            return {
                "status": result.StatusCode.name,
                "values": [dv.Value.Value for dv in result.HistoryData.DataValues],
                "types": [dv.Value.VariantType.name for dv in result.HistoryData.DataValues],
                "calculated": [
                    dv.StatusCode.value & 0x3 == 1 for dv in result.HistoryData.DataValues
                ],
                "hours": [
                    (dv.SourceTimestamp - times[0]).total_seconds() / 3600
                    for dv in result.HistoryData.DataValues
                ],
            }

        emit("processed", average=figures(results[0]), maximum=figures(results[1]))
    finally:
        await client.disconnect()
    emit("done")


asyncio.run(main())
