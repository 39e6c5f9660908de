"""Throwaway X.509 material for the local fakes.

* :func:`make_ca_and_server_cert` creates a self-signed CA and a server certificate it signs, valid for
  ``IP:127.0.0.1`` and ``DNS:localhost``, written as PEM files into a directory (the CA file is what clients
  trust: ``requests.Session.verify``, ``ssl.create_default_context(cafile=...)``).
* :func:`make_client_certificate` creates a self-signed certificate + key for an app's *certificate
  credential* (msal ``client_credential={"private_key": ..., "public_certificate": ...}`` or
  ``{"private_key": ..., "thumbprint": ...}``).

Nothing here is meant to be secure; keys are small-ish RSA 2048 and live in a temp dir.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ServerTLS:
    """Paths of the PEM files for a TLS server and the CA its clients must trust."""

    ca_file: str
    cert_file: str
    key_file: str


def make_ca_and_server_cert(directory: str | os.PathLike[str], common_name: str = "localhost") -> ServerTLS:
    """Create ``ca.pem``, ``server.pem`` (leaf + CA chain) and ``server-key.pem`` in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = _now()

    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Relais test CA (throwaway)")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = _key()
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(
        leaf_cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    key_file.write_bytes(_pem_key(leaf_key))
    os.chmod(key_file, 0o600)
    return ServerTLS(ca_file=str(ca_file), cert_file=str(cert_file), key_file=str(key_file))


@dataclass(frozen=True)
class ClientCertificate:
    """An app's certificate credential, in the shapes msal and the fake want."""

    private_key_pem: str
    certificate_pem: str
    certificate: x509.Certificate
    sha1_thumbprint: str  # hex, upper-case, as the Entra portal shows it
    sha256_thumbprint: str  # hex, lower-case

    def msal_credential(self, *, sha1: bool = False) -> dict[str, str]:
        """msal ``client_credential``: public_certificate → PS256 + x5t#S256; ``sha1=True`` → RS256 + x5t."""
        if sha1:
            return {"private_key": self.private_key_pem, "thumbprint": self.sha1_thumbprint}
        return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}


def make_client_certificate(common_name: str = "relais-test-app") -> ClientCertificate:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return ClientCertificate(
        private_key_pem=_pem_key(key).decode(),
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        certificate=cert,
        sha1_thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1 by spec
        sha256_thumbprint=cert.fingerprint(hashes.SHA256()).hex(),
    )
