"""Leave-one-family-out runs: a family left out of training is the one tested on."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.vision import LABELS, UNCERTAIN
from agent.vision.onnx_backend import OnnxClassifier
from hil.render_domain import MATERIALS, Domain
from models import lofo
from models.dataset import LOOKS_FILE, generate
from models.folders import list_samples, resolve_splits


def test_lofo_leaves_the_family_out_of_training_and_tests_on_it(tmp_path: Path) -> None:
    small = {"width": 64, "height": 48, "render_width": 64, "render_height": 48}
    generate(tmp_path / "data", {"train": 24, "val": 8}, **small)
    looks = json.loads((tmp_path / "data" / LOOKS_FILE).read_text())
    train = resolve_splits(tmp_path / "data")["train"]  # de-duplicated by content
    shown = [set(looks[s.path.relative_to(tmp_path / "data").as_posix()]) for s in train]
    # the group's second family: the duct material most often seen without rust in this set
    without_rust = Counter(m for f in shown if "rust" not in f for m in f & set(MATERIALS))
    other = without_rust.most_common(1)[0][0]
    for n, family in enumerate(("rust", other)):
        generate(
            tmp_path / "heldout" / family,
            {"test": 6},
            domain=Domain.of(include=[family]),
            seed_offset=5_000_000 + n * 1000,
            **small,
        )
    with_rust = sum("rust" in f for f in shown)
    with_either = sum(bool(f & {"rust", other}) for f in shown)
    result = lofo.run(
        tmp_path / "data",
        tmp_path / "heldout",
        Path("models/visual_clean_resnet18_int8.onnx"),
        [("rust",), ("rust", other)],
        epochs=1,
        lr=1e-3,
        seed=1,
        threads=1,
        train_images_wanted=24,
        val_images_wanted=8,
        heldout_images_wanted=6,
        size=(32, 32),
    )
    runs = result["runs"]
    assert runs["none held out"]["train_images"] == len(train)
    assert runs["rust"]["train_images"] == len(train) - with_rust > 0
    report = runs["rust"]["results"]["rust"]
    assert report["images"] == 6
    assert sum(map(sum, report["confusion_matrix"])) == 6
    # every wrong verdict is listed by its path in the held-out directory
    assert len(report["missed"]) == report["errors"]
    for entry in report["missed"]:
        assert entry["image"].startswith("rust/test/")
        assert (tmp_path / "heldout" / entry["image"]).is_file()
    # a group holds all its families out at once and is tested on each
    group = runs[f"rust+{other}"]
    assert group["train_images"] == len(train) - with_either < len(train) - with_rust
    assert set(group["results"]) == {"rust", other}


def test_measuring_a_shipped_model_applies_its_manifest_as_the_runtime_does(tmp_path: Path) -> None:
    generate(
        tmp_path / "heldout" / "rust",
        {"test": 12},
        width=320,
        height=240,
        render_width=320,
        render_height=240,
        domain=Domain.of(include=["rust"]),
        seed_offset=5_100_000,
    )
    model = Path("models/visual_clean_resnet18_int8.onnx")
    report = lofo.measure_model(model, tmp_path / "heldout", ["rust"], images=12, threads=1)
    row = report["results"]["rust"]
    classifier = OnnxClassifier(model, threads=1)
    samples = list_samples(tmp_path / "heldout" / "rust" / "test")
    verdicts = [classifier.classify_file(s.path) for s in samples]
    classifier.close()
    assert row["images"] == len(samples) == 12
    assert row["decided"] == sum(v.label != UNCERTAIN for v in verdicts)
    assert row["decided"] < row["images"]  # one is uncertain: the band is exercised too
    right = sum(
        LABELS.index(v.label) == s.label
        for v, s in zip(verdicts, samples, strict=True)
        if v.label in LABELS
    )
    assert row["accuracy_decided"] == pytest.approx(right / max(1, row["decided"]), abs=1e-4)
    # its wrong verdicts at the manifest's threshold are listed by path, as a run's are
    assert len(row["missed"]) == row["errors"]
    by_path = {s.path.relative_to(tmp_path / "heldout").as_posix(): s.label for s in samples}
    assert all(LABELS[by_path[m["image"]]] == m["label"] for m in row["missed"])


def test_a_split_missing_from_looks_json_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A validation split copied in from another set, without its looks.json entries, would
    keep images of the held-out family in the run: the tool names the file instead."""
    small = {"width": 64, "height": 48, "render_width": 64, "render_height": 48}
    generate(tmp_path / "data", {"train": 6, "val": 4}, **small)
    looks_path = tmp_path / "data" / LOOKS_FILE
    looks = json.loads(looks_path.read_text())
    looks_path.write_text(json.dumps({k: v for k, v in looks.items() if k.startswith("train/")}))
    (tmp_path / "heldout" / "rust" / "test").mkdir(parents=True)
    code = lofo.main(
        [
            str(tmp_path / "data"),
            str(tmp_path / "heldout"),
            "--init-from",
            "models/visual_clean_resnet18_int8.onnx",
            "--families",
            "rust",
            "--out",
            str(tmp_path / "out.json"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1
    assert f"{looks_path}: 4 images not listed (first val/" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.json").exists()


def test_a_run_that_ranks_a_family_right_but_calls_it_clean_shows_it_in_the_auc() -> None:
    """Accuracy alone cannot tell a threshold set for other deposits from features that miss
    this one: every dirty duct here scores above every clean one, yet all are called clean."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 8))
    labels = np.repeat([0, 1], 20)
    val_logits = np.where(labels[:, None] == 1, [[-2.0, 2.0]], [[2.0, -2.0]])
    val_logits = val_logits + rng.normal(scale=0.5, size=val_logits.shape)
    test_logits = np.stack([np.zeros(40), np.where(labels == 1, -1.0, -3.0)], axis=1)
    test_logits[:, 1] += rng.uniform(0.0, 0.5, size=40)
    val = (val_logits, features, labels)
    report = lofo.evaluate_run(val, val, (test_logits, features, labels))
    assert report["accuracy"] == 0.5
    assert report["confusion_matrix"] == [[20, 0], [20, 0]]
    assert report["auc"] == 1.0
    assert report["hindsight_accuracy"] == 1.0
    shuffled = (test_logits[rng.permutation(40)], features, labels)
    assert 0.2 < lofo.evaluate_run(val, val, shuffled)["auc"] < 0.8


def test_the_ranking_auc_counts_ties_half_and_needs_both_labels() -> None:
    assert lofo.ranking_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert lofo.ranking_auc(np.array([0.1, 0.9, 0.4]), np.array([0, 1, 1])) == 1.0
    assert lofo.ranking_auc(np.array([0.1, 0.9]), np.array([1, 1])) is None


def test_the_hindsight_accuracy_is_the_best_any_threshold_gives() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6])
    labels = np.array([0, 1, 0, 1, 1])
    assert lofo.hindsight_accuracy(scores, labels) == 0.8  # cut at 0.4
    assert lofo.hindsight_accuracy(np.array([0.2, 0.1]), np.array([0, 0])) == 1.0  # above all


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.integers(0, 1)),
        min_size=1,
        max_size=40,
    )
)
def test_the_sorted_scores_agree_with_counting_every_pair_and_every_cut(
    scored: list[tuple[float, int]],
) -> None:
    scores = np.array([s for s, _ in scored])
    labels = np.array([y for _, y in scored])
    dirty, clean = scores[labels == 1], scores[labels == 0]
    if dirty.size and clean.size:
        pairs = (dirty[:, None] > clean).sum() + 0.5 * (dirty[:, None] == clean).sum()
        assert lofo.ranking_auc(scores, labels) == round(pairs / (dirty.size * clean.size), 4)
    cuts = [*np.unique(scores), np.inf]
    best = max(float(((scores >= cut) == labels).mean()) for cut in cuts)
    assert lofo.hindsight_accuracy(scores, labels) == round(best, 4)


def test_missed_lists_the_wrong_verdicts_most_confident_first() -> None:
    p_dirty = np.array([0.9, 0.45, 0.05, 0.6, 0.2, 0.99])
    labels = np.array([1, 1, 1, 0, 0, 0])
    names = ["a", "b", "c", "d", "e", "f"]
    listed = lofo.missed(p_dirty, labels, names)
    assert [m["image"] for m in listed] == ["f", "c", "d", "b"]
    assert [m["label"] for m in listed] == ["clean", "dirty", "clean", "dirty"]
    assert listed[0]["p_dirty"] == 0.99
