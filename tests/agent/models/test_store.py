"""The model store: folders by sha256, an atomic active/previous swap, pruning, crash safety.

The crash tests stop a change after each durable step (in-process, then with a real SIGKILL of a
child process) and reopen the store: exactly one complete model must be active, the old one or
the new one, never neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.models import StoreError, VerificationError
from agent.models.store import ModelStore, Pointers
from agent.vision.manifest import manifest_path_for, sha256_file
from tests.agent.models.conftest import MakeModel

ROOT = Path(__file__).resolve().parents[3]


def _manifest(model: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(manifest_path_for(model).read_text())
    return data


def _install(store: ModelStore, model: Path) -> str:
    stored = store.add(model, _manifest(model))
    store.activate(stored.sha256)
    return stored.sha256


def _assert_sound(root: Path, allowed: set[str]) -> str:
    """Reopened after a crash: one active model, complete, its file matching its name."""
    store = ModelStore(root)
    active = store.active()
    assert active is not None, "no active model after the crash"
    assert active.sha256 in allowed
    assert sha256_file(active.model_path) == active.sha256
    assert active.manifest()["sha256"] == active.sha256
    return active.sha256


def test_add_then_activate_moves_the_old_model_to_previous(
    tmp_path: Path, make_model: MakeModel
) -> None:
    store = ModelStore(tmp_path / "store")
    assert store.active() is None
    first = _install(store, make_model(b"one", folder="a"))
    second = _install(store, make_model(b"two", folder="b"))
    assert store.pointers() == Pointers(active=second, previous=first)
    stored = store.get(second)
    assert stored.directory.name == second == hashlib.sha256(b"two").hexdigest()
    assert stored.model_path.read_bytes() == b"two"


def test_rollback_swaps_active_and_previous(tmp_path: Path, make_model: MakeModel) -> None:
    store = ModelStore(tmp_path / "store")
    with pytest.raises(StoreError, match="no previous model"):
        store.rollback()
    first = _install(store, make_model(b"one", folder="a"))
    second = _install(store, make_model(b"two", folder="b"))
    assert store.rollback() == Pointers(active=first, previous=second)
    assert store.rollback() == Pointers(active=second, previous=first)


def test_a_file_that_does_not_match_its_manifest_never_enters(
    tmp_path: Path, make_model: MakeModel
) -> None:
    model = make_model(b"described")
    manifest = _manifest(model)
    model.write_bytes(b"swapped")
    store = ModelStore(tmp_path / "store")
    with pytest.raises(VerificationError) as exc:
        store.add(model, manifest)
    assert exc.value.check == "file changed"
    assert store.models() == []
    assert [p.name for p in store.root.iterdir()] == [".lock"]


def test_same_bytes_again_replace_only_the_manifest(tmp_path: Path, make_model: MakeModel) -> None:
    model = make_model(b"same")
    store = ModelStore(tmp_path / "store")
    store.add(model, _manifest(model))
    resigned = {**_manifest(model), "model_version": 2}
    again = store.add(model, resigned)
    assert again.manifest()["model_version"] == 2
    assert len(store.models()) == 1


def test_prune_keeps_the_newest_and_never_active_or_previous(
    tmp_path: Path, make_model: MakeModel
) -> None:
    store = ModelStore(tmp_path / "store", keep=2)
    shas = [_install(store, make_model(f"m{i}".encode(), folder=f"f{i}")) for i in range(4)]
    assert {m.sha256 for m in store.models()} == set(shas[2:])
    # An old model made active again survives pruning even when it is the oldest.
    store.activate(shas[2])
    older = [_install(store, make_model(f"n{i}".encode(), folder=f"g{i}")) for i in range(2)]
    kept = {m.sha256 for m in store.models()}
    assert store.pointers() == Pointers(active=older[1], previous=older[0])
    assert kept == set(older)
    store.rollback()
    _install(store, make_model(b"last", folder="h"))
    assert older[0] in {m.sha256 for m in store.models()}


def test_find_resolves_a_unique_prefix(tmp_path: Path, make_model: MakeModel) -> None:
    store = ModelStore(tmp_path / "store")
    sha = _install(store, make_model(b"one"))
    assert store.find(sha[:8]).sha256 == sha
    with pytest.raises(StoreError, match="no model"):
        store.find("zz")


def _steps_of_a_switch(tmp_path: Path, make_model: MakeModel) -> list[str]:
    steps: list[str] = []
    store = ModelStore(tmp_path / "probe", keep=1, crash_point=steps.append)
    _install(store, make_model(b"probe-oldest", folder="p0"))
    _install(store, make_model(b"probe-old", folder="p1"))
    steps.clear()
    _install(store, make_model(b"probe-new", folder="p2"))
    return steps


class _Crash(Exception):
    pass


def test_crash_after_every_step_leaves_old_or_new_active(
    tmp_path: Path, make_model: MakeModel
) -> None:
    steps = _steps_of_a_switch(tmp_path, make_model)
    assert "pointers-renamed" in steps and "prune-renamed" in steps
    oldest_model = make_model(b"oldest", folder="oldest")
    old_model = make_model(b"old", folder="old")
    new_model = make_model(b"new", folder="new")
    for index, step in enumerate(steps):
        root = tmp_path / f"crash-{index}"
        _install(ModelStore(root, keep=1), oldest_model)
        old = _install(ModelStore(root, keep=1), old_model)

        def crash(name: str, at: str = step) -> None:
            if name == at:
                raise _Crash(name)

        with pytest.raises(_Crash):
            _install(ModelStore(root, keep=1, crash_point=crash), new_model)
        new = hashlib.sha256(b"new").hexdigest()
        active = _assert_sound(root, {old, new})
        assert active == (new if steps.index("pointers-renamed") <= index else old), step
        # The next change clears the leftovers and succeeds.
        _install(ModelStore(root, keep=1), make_model(b"next", folder="next"))
        assert not [p for p in root.iterdir() if p.name.startswith((".incoming", ".trash"))]


_KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from agent.models.store import ModelStore

    root, model, at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def crash(step):
        if step == at:
            os.kill(os.getpid(), signal.SIGKILL)

    store = ModelStore(root, keep=1, crash_point=crash)
    stored = store.add(model, json.loads(model.with_suffix(".json").read_text()))
    store.activate(stored.sha256)
    """
)


def test_sigkill_at_every_step_of_the_swap(tmp_path: Path, make_model: MakeModel) -> None:
    steps = _steps_of_a_switch(tmp_path, make_model)
    oldest_model = make_model(b"oldest", folder="oldest")
    old_model = make_model(b"old", folder="old")
    new_model = make_model(b"new", folder="new")
    new = hashlib.sha256(b"new").hexdigest()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for index, step in enumerate(steps):
        root = tmp_path / f"kill-{index}"
        _install(ModelStore(root, keep=1), oldest_model)
        old = _install(ModelStore(root, keep=1), old_model)
        done = subprocess.run(
            [sys.executable, "-c", _KILLER, str(root), str(new_model), step],
            env=env,
            timeout=60,
            capture_output=True,
            check=False,
        )
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()
        _assert_sound(root, {old, new})
