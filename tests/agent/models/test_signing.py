"""Signed manifests: each way a release can be wrong is named by the check that catches it."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli.model.signing import sign_model
from agent.models import KeyFileError, VerificationError
from agent.models.release import Release, parse_version
from agent.models.signing import (
    TrustedKeys,
    canonical_bytes,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    sign_manifest,
    verify_release,
)
from agent.vision.manifest import sha256_file
from tests.agent.models.conftest import MakeModel, shipped_manifest

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _check(exc: pytest.ExceptionInfo[VerificationError]) -> str:
    return exc.value.check


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    private_path, public_path = generate_keypair(tmp_path / "keys")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    private = load_private_key(private_path)
    assert key_id(private.public_key()) == key_id(load_public_key(public_path))
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair(tmp_path / "keys")


def test_a_public_key_is_not_a_signing_key(tmp_path: Path) -> None:
    _, public_path = generate_keypair(tmp_path)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_private_key(public_path)
    with pytest.raises(KeyFileError, match="cannot read public key"):
        load_public_key(tmp_path / "missing.pub")


def test_signed_release_verifies_and_carries_its_fields(
    make_model: MakeModel, signing_key: Ed25519PrivateKey
) -> None:
    model = make_model()
    signed = sign_model(model, signing_key, version=7, now=NOW, expires_days=30)
    release = verify_release(
        signed,
        TrustedKeys.of([signing_key.public_key()]),
        now=NOW + timedelta(days=29),
        file_sha256=sha256_file(model),
    )
    assert release.model_version == 7
    assert release.created == NOW
    assert release.expires == NOW + timedelta(days=30)
    assert release.key_id == key_id(signing_key.public_key())


def test_signature_does_not_depend_on_key_order_or_layout(signing_key: Ed25519PrivateKey) -> None:
    signed = sign_manifest(shipped_manifest(), signing_key)
    reordered = json.loads(json.dumps(dict(reversed(list(signed.items())))))
    assert canonical_bytes(reordered) == canonical_bytes(signed)
    verify_release(reordered, TrustedKeys.of([signing_key.public_key()]), now=NOW)


def test_unsigned_manifest(signing_key: Ed25519PrivateKey) -> None:
    with pytest.raises(VerificationError) as exc:
        verify_release(shipped_manifest(), TrustedKeys.of([signing_key.public_key()]), now=NOW)
    assert _check(exc) == "no signature"


def test_wrong_key_names_both_keys(signing_key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    signed = sign_manifest(shipped_manifest(), signing_key)
    with pytest.raises(VerificationError) as exc:
        verify_release(signed, TrustedKeys.of([other.public_key()]), now=NOW)
    assert _check(exc) == "wrong key"
    assert key_id(signing_key.public_key()) in str(exc.value)
    assert key_id(other.public_key()) in str(exc.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("decision_threshold", 0.1), ("labels", ["dirty", "clean"]), ("model_version", 99)],
)
def test_any_edit_after_signing_is_caught(
    signing_key: Ed25519PrivateKey, key: str, value: object
) -> None:
    signed = sign_manifest({**shipped_manifest(), "model_version": 1}, signing_key)
    signed[key] = value
    with pytest.raises(VerificationError) as exc:
        verify_release(signed, TrustedKeys.of([signing_key.public_key()]), now=NOW)
    assert _check(exc) == "manifest changed"


def test_forged_key_id_does_not_pass_as_the_trusted_key(signing_key: Ed25519PrivateKey) -> None:
    forger = Ed25519PrivateKey.generate()
    forged = sign_manifest(shipped_manifest(), forger)
    forged["signature"]["key_id"] = key_id(signing_key.public_key())
    with pytest.raises(VerificationError) as exc:
        verify_release(forged, TrustedKeys.of([signing_key.public_key()]), now=NOW)
    assert _check(exc) == "manifest changed"


def test_file_changed_after_signing(make_model: MakeModel, signing_key: Ed25519PrivateKey) -> None:
    model = make_model(b"original")
    signed = sign_model(model, signing_key, version=1, now=NOW)
    model.write_bytes(b"tampered")
    with pytest.raises(VerificationError) as exc:
        verify_release(
            signed,
            TrustedKeys.of([signing_key.public_key()]),
            now=NOW,
            file_sha256=sha256_file(model),
        )
    assert _check(exc) == "file changed"


def test_expired_release(make_model: MakeModel, signing_key: Ed25519PrivateKey) -> None:
    signed = sign_model(make_model(), signing_key, version=1, now=NOW, expires_days=1)
    trusted = TrustedKeys.of([signing_key.public_key()])
    verify_release(signed, trusted, now=NOW + timedelta(hours=23))
    with pytest.raises(VerificationError) as exc:
        verify_release(signed, trusted, now=NOW + timedelta(days=1))
    assert _check(exc) == "expired"


def test_release_needing_a_newer_agent(
    make_model: MakeModel, signing_key: Ed25519PrivateKey
) -> None:
    signed = sign_model(make_model(), signing_key, version=1, now=NOW, requires_agent="2.1")
    trusted = TrustedKeys.of([signing_key.public_key()])
    verify_release(signed, trusted, now=NOW, agent_version="2.1.0")
    with pytest.raises(VerificationError) as exc:
        verify_release(signed, trusted, now=NOW, agent_version="2.0.9")
    assert _check(exc) == "needs newer agent"


def test_sign_refuses_a_manifest_of_another_file(
    make_model: MakeModel, signing_key: Ed25519PrivateKey
) -> None:
    model = make_model(b"described")
    model.write_bytes(b"something else")
    with pytest.raises(VerificationError, match="refusing to sign"):
        sign_model(model, signing_key, version=1, now=NOW)


def test_malformed_release_fields_are_one_clear_error() -> None:
    with pytest.raises(VerificationError, match="no time zone"):
        Release.from_manifest({"expires": "2027-01-01T00:00:00"})
    with pytest.raises(VerificationError, match="must be an integer"):
        Release.from_manifest({"model_version": "3"})


def test_versions_compare_numerically() -> None:
    assert parse_version("0.10.0") > parse_version("0.9.1")
    assert parse_version("1.0") == parse_version("1.0.0+source")
