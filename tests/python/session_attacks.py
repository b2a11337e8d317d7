"""Attacks on OPC UA session slots and logins that a well-behaved client library cannot send,
driven by tests/e2e/attack_sessions.rs against the real gateway binary.

Usage: session_attacks.py <port> <password> <scenario>

Scenarios:
  malformed    ActivateSession with malformed encrypted passwords (too short, not whole RSA
               blocks, a length prefix shorter than the nonce...), each from its own source
               address, the connections kept open; then a real client logs in.
  unactivated  As many CreateSession as the gateway has slots, never activated, connections
               kept open; then a real client logs in.
  throttle     A burst of wrong passwords from 127.0.0.1; then a good login from 127.0.0.2, one
               more wrong password from 127.0.0.1 and one from 127.0.0.3, each timed.

It prints one JSON object per line: {"step": ..., ...}.
"""

import asyncio
import json
import sys
import time

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto

USER = "opcua-user"


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def from_source(client, source):
    """Makes `client` connect from the local address `source` (loopback has many)."""
    uaclient = client.uaclient

    async def connect_socket(host, port):
        await asyncio.wait_for(
            asyncio.get_running_loop().create_connection(
                uaclient._make_protocol, host, port, local_addr=(source, 0)
            ),
            uaclient._timeout,
        )

    uaclient.connect_socket = connect_socket
    return client


async def open_session(url, source):
    """Socket, Hello, OpenSecureChannel and CreateSession: a session that is not activated."""
    client = from_source(Client(url, timeout=10), source)
    await client.connect_socket()
    await client.send_hello()
    await client.open_secure_channel()
    await client.create_session()
    return client


def status_name(error):
    code = getattr(error, "code", None)
    if code is not None:
        try:
            return ua.StatusCode(code).name
        except Exception:  # noqa: BLE001
            return str(code)
    return type(error).__name__


async def timed_login(url, source, password):
    client = from_source(Client(url, timeout=15), source)
    client.set_user(USER)
    client.set_password(password)
    started = time.monotonic()
    try:
        await client.connect()
        elapsed = time.monotonic() - started
        await client.disconnect()
        return {"ok": True, "seconds": round(elapsed, 3)}
    except Exception as e:  # noqa: BLE001
        elapsed = time.monotonic() - started
        try:
            client.uaclient.disconnect_socket()
        except Exception:  # noqa: BLE001
            pass
        return {"ok": False, "seconds": round(elapsed, 3), "error": status_name(e)}


def malformed_secrets(client):
    """(name, password bytes) pairs; all are sent as RSA-OAEP encrypted passwords."""
    pubkey = uacrypto.x509_from_der(client.security_policy.peer_certificate).public_key()
    policy_uri = client.server_policy(ua.UserTokenType.UserName).SecurityPolicyUri

    def encrypted(plain):
        return security_policies.encrypt_asymmetric(pubkey, plain, policy_uri)[0]

    block = len(encrypted(b"x"))
    return [
        ("four_bytes", b"\x00\x00\x00\x04"),
        ("three_bytes", b"\x01\x02\x03"),
        ("one_block_minus_one", b"\x5a" * (block - 1)),
        ("garbage_block", b"\x5a" * block),
        ("prefix_zero_zero_padded", encrypted(b"\x00\x00\x00\x00" + b"\x00" * 8)),
        ("prefix_shorter_than_nonce", encrypted(b"\x04\x00\x00\x00" + b"\x00" * 8)),
        ("prefix_beyond_data", encrypted(b"\xff\xff\xff\x7f" + b"pw")),
    ]


async def activate_with_secret(client, secret):
    """ActivateSession with a user-name token whose encrypted password is `secret`."""
    original = client._encrypt_password
    client._encrypt_password = lambda password, uri: (secret, uri)
    try:
        await client.activate_session(USER, "x")
        return "Good"
    except Exception as e:  # noqa: BLE001
        return status_name(e)
    finally:
        client._encrypt_password = original


async def malformed(url, password):
    kept = []
    attempt = 0
    for round_ in range(2):
        probe = await open_session(url, "127.0.0.1")
        secrets = malformed_secrets(probe)
        probe.uaclient.disconnect_socket()
        for name, secret in secrets:
            attempt += 1
            # Each from its own address, so the per-address login delay stays at its first step.
            client = await open_session(url, f"127.0.1.{attempt}")
            started = time.monotonic()
            status = await activate_with_secret(client, secret)
            emit(
                "malformed",
                case=name,
                round=round_,
                status=status,
                seconds=round(time.monotonic() - started, 3),
            )
            kept.append(client)
    emit("real_client", source="127.0.0.1", **await timed_login(url, "127.0.0.1", password))
    for client in kept:
        client.uaclient.disconnect_socket()


async def unactivated(url, password, slots):
    kept = []
    for i in range(slots):
        kept.append(await open_session(url, f"127.0.2.{i + 1}"))
    emit("unactivated_sessions", count=len(kept))
    emit("real_client", source="127.0.0.1", **await timed_login(url, "127.0.0.1", password))
    # The connections stay open; the gateway closes the sessions at the activation deadline.
    await asyncio.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 0)
    for client in kept:
        client.uaclient.disconnect_socket()


async def throttle(url, password):
    burst = await asyncio.gather(
        *[timed_login(url, "127.0.0.1", "wrong-password") for _ in range(6)]
    )
    emit("burst", results=burst)
    emit("good_from_other_address", **await timed_login(url, "127.0.0.2", password))
    emit("bad_from_attacker", **await timed_login(url, "127.0.0.1", "wrong-password"))
    emit("bad_from_third_address", **await timed_login(url, "127.0.0.3", "wrong-password"))


async def main():
    port, password, scenario = sys.argv[1:4]
    url = f"opc.tcp://127.0.0.1:{port}/"
    if scenario == "malformed":
        await malformed(url, password)
    elif scenario == "unactivated":
        await unactivated(url, password, 10)
    elif scenario == "throttle":
        await throttle(url, password)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    emit("done")


if __name__ == "__main__":
    asyncio.run(main())
