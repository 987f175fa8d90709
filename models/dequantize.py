"""Float weights back out of a shipped int8 QDQ model: an fp32 ONNX twin, and named tensors.

Only the int8 model is committed (the fp32 one is four times larger and never runs on a board),
yet two tools need float weights: the benchmark and the report compare fp32 with int8, and the
trainer fine-tunes from the shipped model. A QDQ graph keeps every weight as int8 values with a
per-channel scale and zero point, so ``(q - zero) * scale`` gives the float weight back to within
one quantization step; removing the activations' Quantize/Dequantize pairs then leaves exactly the
fp32 graph the quantizer started from (after its pre-processing, which folded each BatchNorm into
the convolution before it: the convolutions carry biases, and there are no BatchNorm nodes), with
one repair: a pair whose range starts at 0 stands for a Relu the quantizer dropped.

Needs ``onnx`` (the train extra), not torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def _dequantize(node: Any, inits: dict[str, Any]) -> FloatArray:
    from onnx import numpy_helper

    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    zero = (
        numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        if len(node.input) > 2 and node.input[2]
        else np.zeros_like(scale)
    )
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    result: FloatArray = ((q - zero) * scale).astype(np.float32)
    return result


def _clips_at_zero(quantize: Any, inits: dict[str, Any]) -> bool:
    """Whether a QuantizeLinear's range starts at 0 (zero point at the type's minimum).

    ONNX Runtime's quantizer drops a Relu that follows a Conv when the activation's quantized
    range starts at 0: the QuantizeLinear clips negatives by itself. The twin must put it back.
    """
    from onnx import numpy_helper

    if len(quantize.input) < 3 or quantize.input[2] not in inits:
        return True  # no zero point: uint8 with zero point 0
    zero = numpy_helper.to_array(inits[quantize.input[2]])
    return bool(np.all(zero == np.iinfo(zero.dtype).min))


def fp32_twin(int8_model: Path, out: Path) -> Path:
    """Write an fp32 graph equivalent to the int8 QDQ one (weights dequantized, Q/DQ removed)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(int8_model))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    new_inits = []
    keep = []
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            new_inits.append(numpy_helper.from_array(_dequantize(node, inits), node.output[0]))
        elif node.op_type == "DequantizeLinear":
            quantize = producers[node.input[0]]
            # DQ(Q(x)) -> Relu(x) or Identity(x), keeping every tensor name (ORT drops an Identity).
            op = "Relu" if _clips_at_zero(quantize, inits) else "Identity"
            keep.append(helper.make_node(op, [quantize.input[0]], [node.output[0]]))
        elif node.op_type != "QuantizeLinear":
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {name for node in keep for name in node.input}
    kept_inits = [i for i in graph.initializer if i.name in used] + [
        i for i in new_inits if i.name in used
    ]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def module_name(node_name: str) -> str:
    """torch module path of an exported node: ``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``.

    The TorchScript exporter names a node by its module scopes, then the op.
    """
    scopes = [part for part in node_name.split("/") if part][:-1]
    if not scopes:
        raise ValueError(f"node {node_name!r} carries no module scope")
    # A Sequential's child scope repeats its parent: layer1 / layer1.0 / conv1 -> layer1.0.conv1.
    path: list[str] = []
    for scope in scopes:
        if path and scope.startswith(path[-1] + "."):
            path[-1] = scope
        else:
            path.append(scope)
    return ".".join(path)


def float_weights(model_path: Path) -> dict[str, FloatArray]:
    """Float weight and bias of every Conv and Gemm of an int8 QDQ (or fp32) exported ResNet.

    Keys are torch names (``layer2.0.downsample.0.weight``, ``fc.bias``...). Quantized tensors
    are dequantized; float initializers are taken as they are.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    inits = {i.name: i for i in graph.initializer}
    dequantized = {
        node.output[0]: node
        for node in graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in inits
    }

    def value(name: str) -> FloatArray:
        if name in dequantized:
            return _dequantize(dequantized[name], inits)
        if name in inits:
            return numpy_helper.to_array(inits[name]).astype(np.float32)
        raise ValueError(f"{model_path}: tensor {name!r} is not a (dequantized) initializer")

    weights: dict[str, FloatArray] = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        name = module_name(node.name)
        weight = value(node.input[1])
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            weight = weight if trans_b else np.ascontiguousarray(weight.T)
        weights[f"{name}.weight"] = weight
        if len(node.input) > 2 and node.input[2]:
            weights[f"{name}.bias"] = value(node.input[2])
    if not weights:
        raise ValueError(f"{model_path}: no Conv or Gemm nodes; not an exported ResNet")
    return weights


def global_pool(model_path: Path) -> Literal["avg", "max"]:
    """Which global pooling an exported ResNet ends with (``models.resnet.POOLS``): a
    ``GlobalAveragePool`` node, or a second ``MaxPool`` (PyTorch exports an adaptive max pool to
    one output as a plain ``MaxPool`` over the whole map, after the stem's)."""
    import onnx

    ops = [node.op_type for node in onnx.load(str(model_path), load_external_data=False).graph.node]
    if "GlobalAveragePool" in ops:
        return "avg"
    if "GlobalMaxPool" in ops or ops.count("MaxPool") >= 2:
        return "max"
    raise ValueError(f"{model_path}: no global pooling found; not a models.export ResNet")
