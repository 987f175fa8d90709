"""Add a linear head to an ONNX model on the board, without the ``onnx`` package.

A serialized protobuf message followed by another serialized message of the same type parses as
the two merged: repeated fields (a graph's nodes, initializers, outputs) are concatenated, and an
embedded message that occurs twice (``ModelProto.graph``) is merged recursively. So a model gains
a head by appending a few hundred bytes that say "graph: two more initializers, two nodes, one
more output" to the file, with no parser and no copy of the 11 MB graph in memory beyond the file
itself. The backbone's bytes stay exactly as they were (its prefix of the new file proves it).

The head is ``output = features @ weights + bias`` (MatMul, Add; float32), reading the model's
``features`` output; the manifest's ``logits_output`` then names ``output`` as the logits to use.

Field numbers are those of onnx.proto3 (ModelProto.graph = 7; GraphProto.node = 1,
initializer = 5, output = 12; NodeProto.input = 1, output = 2, name = 3, op_type = 4;
TensorProto.dims = 1, data_type = 2, name = 8, raw_data = 9; ValueInfoProto.name = 1, type = 2;
TypeProto.tensor_type = 1; TypeProto.Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1;
Dimension.dim_value = 1).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_VARINT = 0
_BYTES = 2
_FLOAT = 1  # TensorProto.DataType.FLOAT


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative varint")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, embedded message)."""
    return _varint(number << 3 | _BYTES) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(value)


def _tensor(name: str, array: npt.NDArray[np.float32]) -> bytes:
    data = np.ascontiguousarray(array, dtype="<f4")
    dims = b"".join(_int_field(1, int(d)) for d in data.shape)
    return dims + _int_field(2, _FLOAT) + _field(8, name.encode()) + _field(9, data.tobytes())


def _node(op_type: str, inputs: list[str], outputs: list[str], name: str) -> bytes:
    return (
        b"".join(_field(1, i.encode()) for i in inputs)
        + b"".join(_field(2, o.encode()) for o in outputs)
        + _field(3, name.encode())
        + _field(4, op_type.encode())
    )


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_field(1, _int_field(1, d)) for d in shape)
    tensor_type = _int_field(1, _FLOAT) + _field(2, dims)
    return _field(1, name.encode()) + _field(2, _field(1, tensor_type))


def linear_head_suffix(
    *,
    features: str,
    output: str,
    weights: npt.ArrayLike,
    bias: npt.ArrayLike,
    batch: int = 1,
) -> bytes:
    """The bytes to append to a model so that it also computes ``output = features @ W + b``.

    ``weights`` is [D, C] and ``bias`` [C]; every added name starts with ``output`` so two heads
    never collide.
    """
    w = np.asarray(weights, dtype=np.float32)
    b = np.asarray(bias, dtype=np.float32).reshape(-1)
    if w.ndim != 2 or b.shape != (w.shape[1],):
        raise ValueError(f"need weights [D, C] and bias [C], got {w.shape} and {b.shape}")
    product = f"{output}/matmul"
    graph = (
        _field(1, _node("MatMul", [features, f"{output}/W"], [product], f"{output}/MatMul"))
        + _field(1, _node("Add", [product, f"{output}/b"], [output], f"{output}/Add"))
        + _field(5, _tensor(f"{output}/W", w))
        + _field(5, _tensor(f"{output}/b", b))
        + _field(12, _value_info(output, (batch, w.shape[1])))
    )
    return _field(7, graph)
