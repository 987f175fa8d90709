"""``remotair model keygen|sign|verify``: Ed25519 keys and signed manifests on a workstation."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.cli.output import add_json_argument, print_json
from agent.errors import ExitCode
from agent.models import VerificationError
from agent.models.reference import REFERENCE, embed_image, embedded_images, reference_block
from agent.models.release import (
    CREATED,
    EXPIRES,
    MODEL_VERSION,
    REQUIRES_AGENT,
    SIZE_BYTES,
    format_time,
)
from agent.models.signing import (
    TrustedKeys,
    generate_keypair,
    key_id,
    load_private_key,
    read_manifest_json,
    sign_manifest,
    verify_release,
    write_manifest_json,
)
from agent.vision.manifest import ModelManifest, manifest_path_for, sha256_file

DEFAULT_EXPIRY_DAYS = 365


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keygen",
        help="make an Ed25519 signing key pair",
        description="Write DIR/signing.key (private, mode 0600: keep it off the boards) and"
        " DIR/signing.pub (goes into each board's [models] trusted_keys). Never overwrites.",
        epilog="example: remotair model keygen ~/remotair-keys",
    )
    p.add_argument("directory", type=Path, metavar="DIR")
    add_json_argument(p)
    p.set_defaults(func=run_keygen)

    p = sub.add_parser(
        "sign",
        help="sign a model's manifest",
        description="Write a release (version, creation and expiry time, minimum agent version)"
        " and an Ed25519 signature over the whole manifest into MODEL's .json manifest. The"
        " manifest must already describe the file (its sha256).",
        epilog="example: remotair model sign model.onnx --key ~/remotair-keys/signing.key"
        " --version 3",
    )
    p.add_argument("model", type=Path, metavar="MODEL.onnx")
    p.add_argument("--key", type=Path, required=True, metavar="FILE", help="signing.key")
    p.add_argument(
        "--version", type=int, required=True, metavar="N", help="model version (only goes up)"
    )
    p.add_argument(
        "--expires-days",
        type=float,
        default=DEFAULT_EXPIRY_DAYS,
        metavar="DAYS",
        help="boards refuse to install it after this many days (default %(default)s; 0: never)",
    )
    p.add_argument(
        "--requires-agent", metavar="VERSION", help="oldest agent version that may run it"
    )
    p.add_argument(
        "--reference",
        type=Path,
        action="append",
        default=[],
        metavar="IMAGE",
        help="a reference image boards run before switching (repeat; default: keep the"
        " manifest's own, their expected outputs measured again with this model)",
    )
    add_json_argument(p)
    p.set_defaults(func=run_sign)

    p = sub.add_parser(
        "verify",
        help="check a model's signature and hash",
        description="Exit 0 when MODEL's manifest is signed by one of the given keys, unchanged,"
        " describes the file, has not expired and suits this agent; else exit 1 with one line"
        " naming the failed check (no signature, wrong key, manifest changed, file changed,"
        " expired, needs newer agent).",
        epilog="example: remotair model verify model.onnx --pub ~/remotair-keys/signing.pub",
    )
    p.add_argument("model", type=Path, metavar="MODEL.onnx")
    p.add_argument(
        "--pub",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="trusted public key (repeat for several)",
    )
    add_json_argument(p)
    p.set_defaults(func=run_verify)


def run_keygen(args: argparse.Namespace) -> int:
    private_path, public_path = generate_keypair(args.directory)
    ident = key_id(load_private_key(private_path).public_key())
    if args.json:
        print_json(
            {"private_key": str(private_path), "public_key": str(public_path), "key_id": ident}
        )
    else:
        print(f"key id:      {ident}")
        print(f"private key: {private_path}  (mode 0600; keep it off the boards)")
        print(f"public key:  {public_path}  (add it to [models] trusted_keys on each board)")
    return ExitCode.OK


def run_sign(args: argparse.Namespace) -> int:
    manifest_path = manifest_path_for(args.model)
    signed = sign_model(
        args.model,
        load_private_key(args.key),
        version=args.version,
        now=datetime.now(UTC),
        expires_days=args.expires_days,
        requires_agent=args.requires_agent,
        references=args.reference,
    )
    write_manifest_json(signed, manifest_path)
    summary = {
        "manifest": str(manifest_path),
        "model_version": signed[MODEL_VERSION],
        "key_id": signed["signature"]["key_id"],
        "expires": signed[EXPIRES],
        "reference_images": len((signed.get(REFERENCE) or {}).get("images", [])),
    }
    if args.json:
        print_json(summary)
    else:
        print(
            f"signed {manifest_path}: version {summary['model_version']}, key"
            f" {summary['key_id']}, expires {summary['expires'] or 'never'},"
            f" {summary['reference_images']} reference image(s)"
        )
    return ExitCode.OK


def sign_model(
    model: Path,
    key: Any,
    *,
    version: int,
    now: datetime,
    expires_days: float = DEFAULT_EXPIRY_DAYS,
    requires_agent: str | None = None,
    references: Sequence[Path] = (),
) -> dict[str, Any]:
    """``model``'s manifest with the release fields set and signed (not written).

    Reference images (given, or those already in the manifest) get their expected outputs from
    ``model`` itself, so re-signing a replaced model is one command.
    """
    manifest_path = manifest_path_for(model)
    data = read_manifest_json(manifest_path)
    spec = ModelManifest.from_dict(data, source=manifest_path)  # well-formed, or one line
    actual = sha256_file(model)
    if str(data.get("sha256", "")).lower() != actual:
        raise VerificationError(
            "file changed",
            f"{model} has sha256 {actual[:16]}..., its manifest says"
            f" {str(data.get('sha256'))[:16]}... (refusing to sign a manifest of another file)",
        )
    data[MODEL_VERSION] = version
    data[CREATED] = format_time(now)
    data[EXPIRES] = format_time(now + timedelta(days=expires_days)) if expires_days > 0 else None
    data[REQUIRES_AGENT] = requires_agent
    data[SIZE_BYTES] = model.stat().st_size
    images = [(p.stem, embed_image(p, spec.input_size)) for p in references]
    images = images or embedded_images(data)
    if images:
        from agent.vision.onnx_backend import OnnxClassifier

        classifier = OnnxClassifier(model, threads=1)
        try:
            data[REFERENCE] = reference_block(classifier, images)
        finally:
            classifier.close()
    signed: dict[str, Any] = sign_manifest(data, key)
    return signed


def run_verify(args: argparse.Namespace) -> int:
    trusted = TrustedKeys.load(args.pub)
    try:
        data = read_manifest_json(manifest_path_for(args.model))
        release = verify_release(
            data, trusted, now=datetime.now(UTC), file_sha256=sha256_file(args.model)
        )
    except VerificationError as exc:
        if args.json:
            print_json({"ok": False, "check": exc.check, "reason": exc.reason})
        else:
            print(f"{args.model}: {exc}")
        return ExitCode.FAILURE
    if args.json:
        print_json({"ok": True, **release.to_dict()})
    else:
        print(
            f"{args.model}: ok, version {release.model_version}, signed by {release.key_id},"
            f" expires {release.to_dict()[EXPIRES] or 'never'}"
        )
    return ExitCode.OK
