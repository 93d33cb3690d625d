"""Measurement: build the quantized layer stack in PyTorch, run it, measure its memory. EDGE.

This package is the only place fitcalc imports torch, and it does so lazily: importing
``fitcalc.edges.measure`` (or ``fitcalc.core.measure.compare``, which is CORE) does not load torch.
``require_torch()`` is the one door; without the ``measure`` extra it raises
``MeasureUnavailable`` with the install line.

Modules:
  compare.py   CORE  prediction vs measurement per term id, tolerances, extrapolation
  packed.py    EDGE  storage formats as real torch tensors, dequantize-on-the-fly kernels
  tracker.py   EDGE  live tensor-storage accounting by tag (the CPU "allocator")
  stack.py     EDGE  the layer stack: weights, KV cache, prefill and decode
  harness.py   EDGE  devices, phases, counters (CUDA, MPS, CPU RSS), OOM as a result
"""

from __future__ import annotations

from fitcalc.core.errors import InputError, MeasureUnavailable

INSTALL_HINT = "pip install 'fitcalc[measure]' (PyTorch, psutil, numpy)"


def require_torch():
    """Import and return torch, or raise MeasureUnavailable saying how to install it."""
    try:
        import torch
    except ImportError:
        raise MeasureUnavailable("fitcalc verify needs PyTorch, which is not installed here",
                                 hint=INSTALL_HINT) from None
    return torch


# Storage formats the stack builds with their real layout (fitcalc.edges.measure.packed; a test keeps
# the two lists equal). GGUF block types run in llama.cpp, not in a PyTorch stack.
BUILDABLE_FORMATS = frozenset({"bf16", "fp16", "fp32", "fp8-e4m3", "fp8-e5m2", "mxfp4", "nvfp4", "fp8", "fp8-channel",
                               "fp8-block128", "int8", "int4-gptq", "int4-awq", "nf4", "nf4-dq"})


def check_buildable(model) -> None:
    """Raise InputError (one line) for a model the stack cannot build. Pure: no torch."""
    a = model.architecture
    if a is None:
        raise InputError(f"{model.id} is a coarse spec (totals only); verify needs its architecture",
                         hint="give a spec with an architecture block, a config.json folder or a Hub id")
    if a.linear_attention is not None and "linear_attention" in a.layer_kinds():
        raise InputError(f"{model.id} has linear-attention (Gated DeltaNet) layers, which verify does not build yet",
                         hint="verify builds GQA/MQA attention with sliding windows and sinks, dense and MoE MLPs")
    if a.mla is not None:
        raise InputError(f"{model.id} uses multi-head latent attention (MLA), which verify does not build yet",
                         hint="verify builds GQA/MQA attention with sliding windows and sinks, dense and MoE MLPs")


__all__ = ["require_torch", "INSTALL_HINT", "MeasureUnavailable", "BUILDABLE_FORMATS", "check_buildable"]
