"""Checkpoint averaging: the mean of one lineage's weights, refused across unlike networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from models.average import AverageError, average, main
from models.deposit_maps import DEPOSIT_HEAD_KEY
from models.export import load_checkpoint


def _checkpoint(path: Path, value: float, *, arch: str = "resnet18", head: bool = True) -> Path:
    data: dict[str, Any] = {
        "arch": arch,
        "input_size": [144, 192],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "labels": ["clean", "dirty"],
        "state_dict": {
            "conv.weight": torch.full((2, 3), value),
            "bn.running_var": torch.full((2,), 2 * value),
            "bn.num_batches_tracked": torch.tensor(int(value * 10)),
        },
        "best_epoch": 3,
        "best_val_accuracy": 0.9,
        "history": [{"epoch": 1}],
        "train_seconds": 100.0 * value,
        "config": {"pool": "max"},
    }
    if head:
        data[DEPOSIT_HEAD_KEY] = {"conv.weight": torch.full((1, 4), -value)}
    torch.save(data, path)
    return path


def test_the_mean_of_every_float_tensor_and_the_first_counter(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pt", 1.0)
    b = _checkpoint(tmp_path / "b.pt", 2.0)
    c = _checkpoint(tmp_path / "c.pt", 6.0)
    average([a, b, c], tmp_path / "mean.pt")
    mean = load_checkpoint(tmp_path / "mean.pt")
    state = mean["state_dict"]
    assert torch.allclose(state["conv.weight"], torch.full((2, 3), 3.0))
    assert torch.allclose(state["bn.running_var"], torch.full((2,), 6.0))
    assert int(state["bn.num_batches_tracked"]) == 10
    assert torch.allclose(mean[DEPOSIT_HEAD_KEY]["conv.weight"], torch.full((1, 4), -3.0))
    assert mean["averaged_from"] == [str(a), str(b), str(c)]
    assert mean["train_seconds"] == pytest.approx(900.0)
    assert mean["config"] == {"pool": "max"}
    for stale in ("best_epoch", "best_val_accuracy", "history"):
        assert stale not in mean


def test_a_deposit_head_only_some_have_is_dropped(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pt", 1.0)
    b = _checkpoint(tmp_path / "b.pt", 2.0, head=False)
    assert DEPOSIT_HEAD_KEY not in average([a, b], tmp_path / "mean.pt")


def test_unlike_networks_are_refused_by_name(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pt", 1.0)
    b = _checkpoint(tmp_path / "b.pt", 2.0, arch="resnet50")
    with pytest.raises(AverageError, match=r"b\.pt: arch 'resnet50' differs"):
        average([a, b], tmp_path / "mean.pt")
    assert not (tmp_path / "mean.pt").exists()


def test_other_tensors_are_refused(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pt", 1.0)
    b = _checkpoint(tmp_path / "b.pt", 2.0)
    data = torch.load(b, weights_only=False)
    data["state_dict"]["conv.weight"] = torch.zeros(3, 3)
    torch.save(data, b)
    with pytest.raises(AverageError, match=r"'conv\.weight' differs in shape"):
        average([a, b], tmp_path / "mean.pt")


def test_the_command_ends_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _checkpoint(tmp_path / "a.pt", 1.0)
    assert main([str(a), "--out", str(tmp_path / "mean.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["python -m models.average: error: give at least two checkpoints to average"]
    assert main([str(a), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.pt")]) != 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "missing.pt" in line


def test_the_exported_manifest_names_the_checkpoints_averaged(tmp_path: Path) -> None:
    from agent.vision.manifest import load_manifest, manifest_path_for
    from models.export import export
    from models.resnet import build_model

    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = build_model("resnet18", 2, "max")
        path = tmp_path / f"stage{seed}.pt"
        torch.save(
            {
                "arch": "resnet18",
                "input_size": [64, 64],
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "labels": ["clean", "dirty"],
                "state_dict": model.state_dict(),
                "train_seconds": 10.0,
                "config": {"pool": "max"},
            },
            path,
        )
        paths.append(path)
    average(paths, tmp_path / "mean.pt")
    export(tmp_path / "mean.pt", tmp_path / "mean.onnx")
    extra = load_manifest(manifest_path_for(tmp_path / "mean.onnx")).extra
    assert extra["averaged_from"] == [str(p) for p in paths]
    assert extra["train_seconds"] == 20.0
