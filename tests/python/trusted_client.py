"""A SCADA client with its own certificate on the SignAndEncrypt endpoint, refused until an
operator trusts it from the web console; driven by tests/e2e/web_certificates.rs.

Usage: trusted_client.py <port> <server-cert.der> <password> <node-id>

Prints one JSON object per line: {"step": ..., ...}. After the refused attempt it prints
"WAIT trust" with the client's certificate thumbprint and reads "GO" on stdin (the Rust side
has trusted the certificate over HTTP meanwhile), then connects again and reads <node-id>
(in namespace 2).
"""

import asyncio
import datetime
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CLIENT_URI = "urn:opcgw:console-trusted-client"
USER = "opcua-user"


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def write_certificate(directory):
    """A self-signed application instance certificate (OPC UA Part 6 §6.2.2)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = directory / "key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Console trusted client")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(CLIENT_URI), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    cert_path = directory / "cert.der"
    cert_path.write_bytes(der)
    return cert_path, key_path, hashlib.sha1(der).hexdigest()


async def secured_client(port, server_cert, cert_path, key_path, password):
    client = Client(f"opc.tcp://127.0.0.1:{port}/", timeout=10)
    client.application_uri = CLIENT_URI
    client.set_user(USER)
    client.set_password(password)
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(cert_path),
        str(key_path),
        server_certificate=str(server_cert),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    return client


async def main():
    port, server_cert, password, node_id = sys.argv[1:5]
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path, thumbprint = write_certificate(Path(tmp))

        client = await secured_client(port, server_cert, cert_path, key_path, password)
        try:
            await client.connect()
            emit("untrusted", refused=False, thumbprint=thumbprint)
            await client.disconnect()
        except Exception as e:  # noqa: BLE001
            emit("untrusted", refused=True, thumbprint=thumbprint,
                 error=type(e).__name__ + ": " + str(e)[:200])

        print(f"WAIT trust {thumbprint}", flush=True)
        answer = sys.stdin.readline().strip()
        if answer != "GO":
            raise SystemExit(f"unexpected answer {answer!r}")

        client = await secured_client(port, server_cert, cert_path, key_path, password)
        try:
            await client.connect()
        except Exception as e:  # noqa: BLE001
            emit("trusted", connected=False, error=type(e).__name__ + ": " + str(e)[:200])
            return
        try:
            policy = client.security_policy.URI
            mode = client.security_policy.Mode.name
            node = client.get_node(ua.NodeId(node_id, 2))
            for _ in range(100):
                dv = await node.read_data_value(raise_on_bad_status=False)
                if dv.StatusCode.is_good():
                    break
                await asyncio.sleep(0.1)
            emit("trusted", connected=True, policy=policy, mode=mode, status=dv.StatusCode.name,
                 value=dv.Value.Value)
        finally:
            await client.disconnect()
    emit("done")


if __name__ == "__main__":
    asyncio.run(main())
