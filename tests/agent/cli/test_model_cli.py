"""``remotair model ...`` as an operator types it: keygen, sign, verify, use, list, rollback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli import main
from agent.cli.model.signing import sign_model
from agent.models.signing import load_private_key, write_manifest_json
from tests.agent.models.conftest import MakeModel, write_model
from tests.support.vision_models import shipped_model_version


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def make_model(tmp_path: Path) -> MakeModel:
    def make(content: bytes = b"model-bytes", *, folder: str = "src") -> Path:
        return write_model(tmp_path / folder, content)

    return make


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, _ = run(capsys, "model", "keygen", tmp_path / "keys")
    assert code == 0
    return tmp_path / "keys"


def test_sign_then_verify(
    capsys: pytest.CaptureFixture[str], keys: Path, make_model: MakeModel
) -> None:
    model = make_model()
    pub = keys / "signing.pub"
    code, out, _ = run(capsys, "model", "verify", model, "--pub", pub)
    assert (code, out.strip()) == (
        1,
        f"{model}: no signature: the manifest is not signed (remotair model sign)",
    )
    code, out, _ = run(
        capsys, "model", "sign", model, "--key", keys / "signing.key", "--version", "4", "--json"
    )
    assert code == 0
    assert json.loads(out)["model_version"] == 4
    code, out, _ = run(capsys, "model", "verify", model, "--pub", pub, "--json")
    assert code == 0
    assert json.loads(out)["model_version"] == 4


def test_verify_names_the_failed_check_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, keys: Path, make_model: MakeModel
) -> None:
    model = make_model(b"weights")
    run(capsys, "model", "sign", model, "--key", keys / "signing.key", "--version", "1")
    run(capsys, "model", "keygen", tmp_path / "other")
    code, out, _ = run(capsys, "model", "verify", model, "--pub", tmp_path / "other/signing.pub")
    assert code == 1 and len(out.splitlines()) == 1 and ": wrong key: signed by key" in out

    manifest = model.with_suffix(".json")
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "decision_threshold": 0.2}))
    code, out, _ = run(capsys, "model", "verify", model, "--pub", keys / "signing.pub", "--json")
    assert code == 1 and json.loads(out)["check"] == "manifest changed"

    manifest.write_text(json.dumps(data))
    model.write_bytes(b"weights, edited")
    code, out, _ = run(capsys, "model", "verify", model, "--pub", keys / "signing.pub")
    assert code == 1 and ": file changed: " in out

    model.write_bytes(b"weights")
    signed_long_ago = sign_model(  # a release that expired yesterday
        model,
        load_private_key(keys / "signing.key"),
        version=1,
        now=datetime.now(UTC) - timedelta(days=2),
        expires_days=1,
    )
    write_manifest_json(signed_long_ago, manifest)
    code, out, _ = run(capsys, "model", "verify", model, "--pub", keys / "signing.pub")
    assert code == 1 and ": expired: the manifest expired at " in out


def test_keygen_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], keys: Path) -> None:
    before = (keys / "signing.key").read_bytes()
    code, _, err = run(capsys, "model", "keygen", keys)
    assert code == 2 and "already exists" in err and len(err.splitlines()) == 1
    assert (keys / "signing.key").read_bytes() == before


def test_use_list_rollback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_model: MakeModel
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\ndir = "{tmp_path / "state"}"\n')
    first = make_model(b"first", folder="a")
    second = make_model(b"second", folder="b")
    assert run(capsys, "model", "use", first, "--config", config)[0] == 0
    code, out, _ = run(capsys, "model", "use", second, "--config", config, "--json")
    assert code == 0
    shas = json.loads(out)
    code, out, _ = run(capsys, "model", "list", "--config", config, "--json")
    listed = json.loads(out)
    # The configured model was adopted by the first "use": the store holds it, not as previous.
    assert [m["role"] for m in listed["models"]] == ["active", "previous", ""]
    assert listed["models"][2]["file"] == "visual_clean_resnet18_int8.onnx"
    assert listed["models"][0]["sha256"] == shas["active"]
    assert listed["models"][0]["signer"] is None

    code, out, _ = run(capsys, "model", "rollback", "--config", config)
    assert code == 0 and out.startswith(f"rolled back to {shas['previous'][:12]}")
    code, out, _ = run(capsys, "model", "use", shas["active"][:10], "--config", config)
    assert code == 0 and out.startswith(f"active {shas['active'][:12]}")
    code, out, _ = run(capsys, "model", "list", "--config", config)
    assert out.splitlines()[1].split()[:2] == ["*", shas["active"][:12]]

    code, _, err = run(capsys, "model", "use", "ffff", "--config", config)
    assert code == 1 and err.strip().startswith("remotair model: error: no model in ")


@pytest.mark.parametrize("sub", ["list", "use", "rollback", "verify", "keygen", "sign"])
def test_every_model_subcommand_has_help_with_an_example(
    capsys: pytest.CaptureFixture[str], sub: str
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["model", sub, "--help"])
    assert done.value.code == 0
    assert f"example: remotair model {sub}" in capsys.readouterr().out


def test_status_of_a_stopped_agent_shows_the_model_and_its_last_install(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_model: MakeModel
) -> None:
    config = tmp_path / "agent.toml"
    state = tmp_path / "state"
    config.write_text(
        f'[storage]\ndir = "{state}"\n[control]\nsocket = "{tmp_path / "control.sock"}"\n'
    )
    code, out, _ = run(capsys, "status", "--config", config)
    assert code == 4
    version = shipped_model_version()
    assert f"model:    visual_clean_resnet18_int8.onnx, version {version}, signed by " in out
    assert "from the config" in out

    run(capsys, "model", "use", make_model(b"weights"), "--config", config)
    (state / "models" / "last_install.json").write_text(
        json.dumps({"id": "r7", "state": "failed", "check": "wrong key", "reason": "signed by x"})
    )
    code, out, _ = run(capsys, "status", "--config", config)
    assert "model:    duct.onnx, version -, unsigned, from the store" in out
    assert "install:  r7 failed: wrong key: signed by x\n" in out
