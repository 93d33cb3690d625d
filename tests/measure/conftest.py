"""GPU tests (marker ``gpu``) run only with a CUDA device. Tests that need PyTorch skip
themselves without the `measure` extra (pytest.importorskip); the pure ones (comparison logic,
calibration records) run everywhere."""

import pytest

try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:
    HAS_CUDA = False


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (scripts/gpu-validate.sh runs these)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
