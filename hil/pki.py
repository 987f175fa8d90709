"""A throwaway PKI for TLS tests: a CA, broker and client certificates, and an impostor.

Test rig only (like :mod:`hil.broker`): needs the ``cryptography`` package of the dev extra.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path


def make_pki(directory: Path, client_name: str = "device") -> Pki:
    """A test CA, a broker certificate for localhost/127.0.0.1, a client certificate, and an
    impostor's client certificate from another CA (all valid for one day)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def authority(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(name(common))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def leaf(
        common: str,
        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        usage: x509.ObjectIdentifier,
        server: bool,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(issuer[0].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(issuer[1], hashes.SHA256()), key

    ca = authority("Remotair test CA")
    rogue = authority("Rogue CA")
    server = leaf("localhost", ca, ExtendedKeyUsageOID.SERVER_AUTH, server=True)
    client = leaf(client_name, ca, ExtendedKeyUsageOID.CLIENT_AUTH, server=False)
    impostor = leaf(client_name, rogue, ExtendedKeyUsageOID.CLIENT_AUTH, server=False)
    return Pki(
        ca=write_cert(ca[0], directory / "ca.pem"),
        server_cert=write_cert(server[0], directory / "server.pem"),
        server_key=write_key(server[1], directory / "server.key"),
        client_cert=write_cert(client[0], directory / "client.pem"),
        client_key=write_key(client[1], directory / "client.key"),
        rogue_ca=write_cert(rogue[0], directory / "rogue-ca.pem"),
        rogue_cert=write_cert(impostor[0], directory / "rogue.pem"),
        rogue_key=write_key(impostor[1], directory / "rogue.key"),
    )


def make_expired_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 that expired 10 days (and an hour) ago,
    and its key: a broker's or a device's certificate nobody renewed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=40))
        .not_valid_after(now - dt.timedelta(days=10, hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return write_cert(cert, directory / "expired.pem"), write_key(key, directory / "expired.key")


def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_cert(cert: x509.Certificate, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path
