"""Minimal safetensors writer/reader (no `safetensors` package needed).

Format: 8-byte little-endian u64 header length N, then N bytes of JSON
{name: {"dtype": "F32"|"I32"|"BF16"|..., "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian tensor bytes; offsets are relative to the end of the header.
The header is padded with spaces to a multiple of 8 bytes, as the reference implementation does.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float32: ("F32", np.float32),
    torch.float64: ("F64", np.float64),
    torch.int32: ("I32", np.int32),
    torch.int64: ("I64", np.int64),
    torch.float16: ("F16", np.float16),
}


def _tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return "BF16", t.view(torch.int16).numpy().astype("<i2").tobytes()
    code, npdt = _DTYPES[t.dtype]
    return code, t.numpy().astype(np.dtype(npdt).newbyteorder("<")).tobytes()


def save(path, tensors, metadata=None):
    """tensors: ordered dict name -> torch.Tensor (stored in insertion order)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        code, data = _tensor_bytes(t)
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> torch.Tensor, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        buf = raw[base + b:base + e]
        if info["dtype"] == "BF16":
            t = torch.from_numpy(np.frombuffer(buf, dtype="<i2").copy()).view(torch.bfloat16)
        else:
            npdt = {c: d for _, (c, d) in _DTYPES.items()}[info["dtype"]]
            t = torch.from_numpy(np.frombuffer(buf, dtype=np.dtype(npdt).newbyteorder("<")).astype(npdt))
        out[name] = t.reshape(info["shape"])
    return out, meta
