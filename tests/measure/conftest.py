"""Measurement tests need PyTorch (the `measure` extra); GPU ones a CUDA device."""

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (scripts/gpu-validate.sh runs these)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
