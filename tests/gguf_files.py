"""Small GGUF files for tests, written with the gguf package's own writer.

``write_gguf`` writes the real header (magic, version, key-values, tensor infos) with
``gguf.GGUFWriter`` and makes the tensor data a sparse hole of the right length. The caller
gives each tensor's bytes, worked out by hand from the ggml block sizes, so the tests compare
fitcalc against independent arithmetic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gguf
import numpy as np

T = gguf.GGMLQuantizationType
# (weights per block, bytes per block) from ggml-common.h, written out for the hand arithmetic.
BLOCK = {T.F32: (1, 4), T.F16: (1, 2), T.BF16: (1, 2), T.Q8_0: (32, 34), T.Q4_0: (32, 18), T.Q4_K: (256, 144),
         T.Q5_K: (256, 176), T.Q6_K: (256, 210), T.MXFP4: (32, 17)}


def nbytes(shape: tuple[int, ...], qtype: T) -> int:
    n = 1
    for d in shape:
        n *= d
    block, size = BLOCK[qtype]
    return n // block * size


def write_gguf(path: Path, arch: str, keys: list[tuple[str, str, Any]],
               tensors: list[tuple[str, tuple[int, ...], T]], alignment: int = 32) -> int:
    """Write a GGUF header for ``tensors`` ([name, shape as (out, in), type]); returns the file size.

    ``keys`` are (writer method, key, value), e.g. ("add_uint32", "llama.block_count", 2).
    """
    w = gguf.GGUFWriter(str(path), arch)
    if alignment != 32:
        w.add_custom_alignment(alignment)
    for method, key, value in keys:
        getattr(w, method)(key, value)
    data = 0
    for name, shape, qtype in tensors:
        n = nbytes(shape, qtype)
        w.add_tensor_info(name, shape, np.dtype(np.float32), n, raw_dtype=qtype)
        data += n + (-n % alignment)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    head = path.stat().st_size
    size = head + (-head % alignment) + data
    os.truncate(path, size)
    return size
