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
    """Base of the model store's and the signature checks' errors."""


class StoreError(ModelRolloutError):
    """The model store cannot do what was asked (unknown model, nothing to roll back to...)."""


class KeyFileError(ModelRolloutError):
    """A signing or public key file is missing, unreadable or not an Ed25519 key."""

    exit_code = ExitCode.USAGE


class VerificationError(ModelRolloutError):
    """A model failed one check of its signed manifest; ``check`` names which one.

    ``check`` is one of :data:`CHECKS`, so that scripts (and the install state published over
    MQTT) can tell "not signed" from "tampered" without parsing the sentence.
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.reason = message


CHECKS: tuple[str, ...] = (
    "no signature",
    "wrong key",
    "manifest changed",
    "file changed",
    "expired",
    "needs newer agent",
    "invalid manifest",
)
