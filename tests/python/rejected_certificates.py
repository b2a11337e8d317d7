"""Handshakes with distinct self-signed client certificates, each refused by the gateway,
driven by tests/e2e/attack_certificates.rs.

Usage: rejected_certificates.py <port> <server-cert.der> <count>

Certificate i has the common name "flood-<i, 3 digits>"; all share one RSA key (generating a
key per certificate is slow, and a distinct certificate is all the attack needs). Prints one
JSON object per handshake, {"i": i, "refused": bool, "error": str}, then {"done": true}.
"""

import asyncio
import datetime
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

CLIENT_URI = "urn:opcgw:flood"


def write_certificates(directory, count):
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
    paths = []
    for i in range(count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"flood-{i:03d}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(CLIENT_URI)]),
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
        path = directory / f"client-{i:03d}.der"
        path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        paths.append(path)
    return key_path, paths


async def handshake(port, server_cert, cert_path, key_path):
    client = Client(f"opc.tcp://127.0.0.1:{port}/", timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(cert_path),
        str(key_path),
        server_certificate=str(server_cert),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    try:
        await client.connect()
    except Exception as e:  # noqa: BLE001
        return True, type(e).__name__ + ": " + str(e)[:160]
    await client.disconnect()
    return False, ""


async def main():
    port, server_cert, count = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    with tempfile.TemporaryDirectory() as tmp:
        key_path, certs = write_certificates(Path(tmp), count)
        for i, cert_path in enumerate(certs):
            refused, error = await handshake(port, server_cert, cert_path, key_path)
            print(json.dumps({"i": i, "refused": refused, "error": error}), flush=True)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
