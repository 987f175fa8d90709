"""The shipped model is signed by the development key whose public half ships beside it.

Whoever replaces the shipped model (retraining, ``remotair model adapt``) must re-sign it; this
test says how in its failure message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agent.models import VerificationError
from agent.models.signing import (
    TrustedKeys,
    key_id,
    load_private_key,
    read_manifest_json,
    verify_release,
)
from agent.vision.factory import shipped_model_path
from agent.vision.manifest import manifest_path_for, sha256_file

MODELS = Path(__file__).resolve().parents[2] / "models"
DEV_PUBLIC_KEY = MODELS / "dev-signing.pub"
DEV_PRIVATE_KEY = MODELS / "DEV-ONLY-signing.key"
RESIGN = (
    "remotair model sign models/visual_clean_resnet18_int8.onnx"
    " --key models/DEV-ONLY-signing.key --version N --expires-days 0"
)


def test_shipped_manifest_verifies_with_the_shipped_dev_key() -> None:
    model = shipped_model_path()
    trusted = TrustedKeys.load([DEV_PUBLIC_KEY])
    try:
        release = verify_release(
            read_manifest_json(manifest_path_for(model)),
            trusted,
            now=datetime.now(UTC),
            file_sha256=sha256_file(model),
        )
    except VerificationError as exc:
        raise AssertionError(f"shipped model: {exc}; re-sign it with: {RESIGN}") from exc
    assert release.model_version is not None and release.model_version >= 1
    assert release.expires is None, "a shipped model must not expire on boards in the field"


def test_the_dev_only_private_key_is_the_shipped_public_key() -> None:
    private = load_private_key(DEV_PRIVATE_KEY)
    assert key_id(private.public_key()) in TrustedKeys.load([DEV_PUBLIC_KEY]).keys


def test_shipped_manifest_carries_reference_images() -> None:
    manifest = read_manifest_json(manifest_path_for(shipped_model_path()))
    images = manifest["reference"]["images"]
    assert len(images) >= 2
    labels = {image["dirty_probability"] >= 0.5 for image in images}
    assert labels == {True, False}, "reference images should show the model both classes"
