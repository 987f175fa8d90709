"""Ed25519 keys and signatures over a model's manifest.

The signature covers the whole manifest (every key but ``signature`` itself) in one canonical JSON
form: keys sorted, no insignificant whitespace, UTF-8. Signing the manifest rather than the model
file is what lets one small document carry everything a board must trust (the file's sha256, the
version, the expiry, the input spec, the labels), and lets a board check it before downloading
megabytes. Verification names the first check that failed, in a fixed order, so that an operator
reads "wrong key" rather than "invalid signature" when the model is fine but signed by someone else.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import __version__ as AGENT_VERSION
from agent.models import KeyFileError, VerificationError
from agent.models.release import SIGNATURE, Release

if TYPE_CHECKING:  # cryptography costs ~9 MB of RSS: imported by the functions that use it, so an
    # agent without trusted keys (or between installs) never loads it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

ALGORITHM = "ed25519"
PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"
DEV_PUBLIC_KEY = "dev-signing.pub"
"""The development key's public half, shipped in ``models/``: it signed the shipped model. Its
private half is in the source tree for anyone to use, so a fleet trusts its own key instead."""


def dev_public_key_path() -> Path:
    return Path(str(importlib.resources.files("models").joinpath(DEV_PUBLIC_KEY)))


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Write ``signing.key`` (PKCS#8 PEM, mode 0600 from its creation) and ``signing.pub``.

    Refuses to overwrite an existing key: a lost signing key cannot be recovered, and a replaced
    one would make every board that trusts the old key refuse new models.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / PRIVATE_KEY_FILE
    public_path = directory / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; keep it, or remove it to make a new key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = _read_pem(
        path,
        "signing key",
        "an unencrypted PEM private key (remotair model keygen)",
        lambda data: serialization.load_pem_private_key(data, password=None),
    )
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is a {type(key).__name__}, not an Ed25519 signing key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = _read_pem(
        path,
        "public key",
        "a PEM public key (the signing.pub of remotair model keygen)",
        serialization.load_pem_public_key,
    )
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is a {type(key).__name__}, not an Ed25519 public key")
    return key


def _read_pem(path: Path, what: str, expected: str, parse: Callable[[bytes], object]) -> object:
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not {expected}") from exc


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw public key: short enough to read aloud."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def canonical_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the manifest without ``signature``, in canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign_manifest(manifest: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``manifest`` with a ``signature`` block over everything else in it."""
    signed = {k: v for k, v in manifest.items() if k != SIGNATURE}
    signed[SIGNATURE] = {
        "algorithm": ALGORITHM,
        "key_id": key_id(key.public_key()),
        "value": base64.b64encode(key.sign(canonical_bytes(signed))).decode("ascii"),
    }
    return signed


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The public keys a board accepts model signatures from, by key id."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def load(cls, paths: Iterable[Path]) -> TrustedKeys:
        keys = [load_public_key(p) for p in paths]
        return cls({key_id(k): k for k in keys})

    @classmethod
    def of(cls, keys: Iterable[Ed25519PublicKey]) -> TrustedKeys:
        return cls({key_id(k): k for k in keys})

    def __bool__(self) -> bool:
        return bool(self.keys)


def verify_signature(manifest: Mapping[str, Any], trusted: TrustedKeys) -> str:
    """The key id that signed ``manifest``; :class:`VerificationError` naming the failed check."""
    from cryptography.exceptions import InvalidSignature

    block = manifest.get(SIGNATURE)
    if block is None:
        raise VerificationError("no signature", "the manifest is not signed (remotair model sign)")
    if not isinstance(block, Mapping) or block.get("algorithm") != ALGORITHM:
        algorithm = block.get("algorithm") if isinstance(block, Mapping) else block
        raise VerificationError(
            "invalid manifest", f"signature algorithm {algorithm!r} is not ed25519"
        )
    signer = str(block.get("key_id", ""))
    key = trusted.keys.get(signer)
    if key is None:
        names = ", ".join(sorted(trusted.keys)) or "none configured"
        raise VerificationError(
            "wrong key", f"signed by key {signer or '?'}, trusted keys are {names}"
        )
    try:
        raw = base64.b64decode(str(block.get("value", "")), validate=True)
        key.verify(raw, canonical_bytes(manifest))
    except (ValueError, InvalidSignature) as exc:
        raise VerificationError(
            "manifest changed",
            f"the signature by key {signer} does not match the manifest (edited after signing?)",
        ) from exc
    return signer


def verify_release(
    manifest: Mapping[str, Any],
    trusted: TrustedKeys,
    *,
    now: datetime | None,
    file_sha256: str | None = None,
    agent_version: str = AGENT_VERSION,
) -> Release:
    """Every check a board makes on a manifest, in order; the first failure raises.

    Order: signature present, signed by a trusted key, manifest unchanged, file unchanged (when
    ``file_sha256`` is given: the hash of the file at hand), not expired (unless ``now`` is None:
    expiry bounds when a release may be *installed*; a model already running keeps running),
    this agent new enough.
    """
    verify_signature(manifest, trusted)
    if file_sha256 is not None and str(manifest.get("sha256", "")).lower() != file_sha256:
        raise VerificationError(
            "file changed",
            f"the model's sha256 is {file_sha256[:16]}..., the signed manifest says"
            f" {str(manifest.get('sha256'))[:16]}...",
        )
    release = Release.from_manifest(manifest)
    if now is not None and release.is_expired(now):
        assert release.expires is not None
        raise VerificationError(
            "expired", f"the manifest expired at {release.expires:%Y-%m-%d %H:%M}Z"
        )
    if not release.runs_on(agent_version):
        raise VerificationError(
            "needs newer agent",
            f"the model needs agent {release.requires_agent} or newer, this is {agent_version}",
        )
    return release


def read_manifest_json(path: Path) -> dict[str, Any]:
    """The raw manifest object (signature fields included), or a one-line error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VerificationError(
            "invalid manifest", f"{path} not found (it must sit next to the model)"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError("invalid manifest", f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise VerificationError("invalid manifest", f"{path} is not a JSON object")
    return data


def write_manifest_json(data: Mapping[str, Any], path: Path) -> None:
    """Indented JSON (diff-friendly); the signature does not depend on this layout."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
