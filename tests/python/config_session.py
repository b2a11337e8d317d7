"""One OPC UA session (Python asyncua, user/password) kept open while the web console edits the
configuration; driven by tests/e2e/web_browser_config.rs.

Usage: config_session.py <port> <password> <metric-id>

Connects, subscribes to <metric-id> (namespace 2, a metric the simulator feeds) and prints
{"step": "subscribed", ...}. Then answers one command per line on stdin, one JSON line each:

  BROWSE    {"step": "browse", "session": ..., "lost": [...], "tree": [{"id", "name",
             "devices": [{"id", "name", "children": [browse names]}]}]}: a real Browse from
             Objects down to the device folders' children, on the session opened at the start.
  NOTIFIED  {"step": "notified", "ok": bool, "total": n, "new": n, ...}: waits (up to 60 s) for
             a data-change notification of the subscription made at the start that arrived after
             the previous NOTIFIED (or after "subscribed").
  END       deletes the subscription, closes the session, prints {"step": "done"}.

"session" is the session's authentication token: the same value at every step means the same
session. "lost" lists connection losses the client saw (it never reconnects by itself).
"""

import asyncio
import json
import sys

from asyncua import Client, ua

NAMESPACE = "urn:chirpstack:opcua:gateway:gateway"
USER = "opcua-user"
# Every name the browse returns is cut to this (the tree of a test configuration is small).
MAX_NODES = 500


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


class Recorder:
    def __init__(self):
        self.values = []

    def datachange_notification(self, node, val, data):
        self.values.append(val)


async def wait_until(predicate, timeout):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def children(node, ns):
    """(node id, browse name) of the hierarchical children of `node` in the gateway's namespace."""
    found = []
    for child in (await node.get_children())[:MAX_NODES]:
        if child.nodeid.NamespaceIndex != ns:
            continue
        found.append((child, (await child.read_browse_name()).Name))
    return found


async def browse(client, ns):
    tree = []
    for app, app_name in await children(client.nodes.objects, ns):
        devices = []
        for device, device_name in await children(app, ns):
            names = [name for _, name in await children(device, ns)]
            devices.append({"id": device.nodeid.Identifier, "name": device_name, "children": names})
        tree.append({"id": app.nodeid.Identifier, "name": app_name, "devices": devices})
    return tree


async def main():
    port, password, metric_id = sys.argv[1:4]
    client = Client(f"opc.tcp://127.0.0.1:{port}/", timeout=10)
    client.set_user(USER)
    client.set_password(password)
    lost = []

    async def on_lost(exc):
        lost.append(type(exc).__name__ + ": " + str(exc)[:200])

    client.connection_lost_callback = on_lost
    await client.connect()
    try:
        session = client.uaclient.session.authentication_token.to_string()
        ns = await client.get_namespace_index(NAMESPACE)
        node = client.get_node(ua.NodeId(metric_id, ns))
        recorder = Recorder()
        subscription = await client.create_subscription(200, recorder)
        await subscription.subscribe_data_change(node)
        # The first notification carries the current value.
        ok = await wait_until(lambda: recorder.values, 30)
        emit("subscribed", ok=ok, session=session, values=len(recorder.values))
        seen = len(recorder.values)
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            current = client.uaclient.session.authentication_token.to_string()
            if line == "BROWSE":
                emit("browse", session=current, lost=lost, tree=await browse(client, ns))
            elif line == "NOTIFIED":
                before = seen
                ok = await wait_until(lambda: len(recorder.values) > before, 60)
                seen = len(recorder.values)
                emit("notified", ok=ok, session=current, lost=lost, total=seen, new=seen - before,
                     last=recorder.values[-1] if recorder.values else None)
            elif line in ("END", ""):
                await subscription.delete()
                break
            else:
                raise SystemExit(f"unknown command {line[:40]!r}")
    finally:
        await client.disconnect()
    emit("done")


if __name__ == "__main__":
    asyncio.run(main())
