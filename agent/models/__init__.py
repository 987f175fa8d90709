"""Models across the fleet: the on-board model store, Ed25519-signed manifests, rollout.

A model reaches a board as a file plus its manifest. The manifest's sha256 proves the file is the
one described; the Ed25519 signature over the whole manifest proves who released it, which version
it is and until when it may be installed (:mod:`agent.models.signing`, :mod:`agent.models.release`).
The store keeps each model in a folder named by its sha256 and switches the active one by an atomic
pointer swap, so a power cut never leaves a board without a model (:mod:`agent.models.store`).
"""

from __future__ import annotations

from agent.errors import ExitCode, RemotairError


class ModelRolloutError(RemotairError):
    """Base of the model store's, the signature checks' and the installer's errors.

    ``check`` names what failed in a few fixed words (``wrong key``, ``disk full``...), so that
    scripts and the install state published over MQTT can branch without parsing the sentence.
    """

    check: str = "failed"


class StoreError(ModelRolloutError):
    """The model store cannot do what was asked (unknown model, nothing to roll back to...)."""

    check = "store"


class KeyFileError(ModelRolloutError):
    """A signing or public key file is missing, unreadable or not an Ed25519 key."""

    exit_code = ExitCode.USAGE
    check = "key file"


class CheckFailed(ModelRolloutError):
    """A named check failed: ``check`` says which, ``reason`` says how."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


class VerificationError(CheckFailed):
    """A model failed one check of its signed manifest (one of :data:`CHECKS`)."""


CHECKS: tuple[str, ...] = (
    "no signature",
    "wrong key",
    "manifest changed",
    "file changed",
    "expired",
    "needs newer agent",
    "invalid manifest",
)
