"""Tiny ONNX models that load like the real one (same input and output) but misbehave on purpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_SHAPE = [1, 3, 144, 192]


def write_tiny_model(path: Path, mode: str) -> Path:
    """``constant``: always the same, confident ``clean``; ``nan_on_dark``: finite logits for
    near-white images, NaN for anything darker (every duct snapshot): it passes reference images
    that are white and fails on the board's cameras."""
    mean = helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=0)
    column = helper.make_node("Reshape", ["mean", "shape"], ["column"])
    nodes = [mean, column]
    inits = [numpy_helper.from_array(np.array([1, 1], np.int64), "shape")]
    if mode == "constant":
        inits += [
            numpy_helper.from_array(np.zeros((1, 2), np.float32), "zero"),
            numpy_helper.from_array(np.array([[2.0, -2.0]], np.float32), "bias"),
        ]
        nodes += [
            helper.make_node("Mul", ["column", "zero"], ["scaled"]),
            helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        ]
    elif mode == "nan_on_dark":
        inits.append(numpy_helper.from_array(np.ones((1, 1), np.float32), "one"))
        nodes += [
            helper.make_node("Sub", ["column", "one"], ["shifted"]),
            helper.make_node("Log", ["shifted"], ["log"]),
            helper.make_node("Concat", ["log", "column"], ["logits"], axis=1),
        ]
    else:
        raise ValueError(mode)
    graph = helper.make_graph(
        nodes,
        f"tiny-{mode}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, INPUT_SHAPE)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
