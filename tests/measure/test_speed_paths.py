"""The speed paths of the stack keep the measurement: tracking only the chunks that can hold the
prefill's peak (``Stack._chunk_tracking``) gives the per-tag peaks that tracking every chunk
gives, and the MXFP4 decode that keeps its table index inside the output buffer adds no more
scratch than the small temporary it documents."""

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

from fitcalc.edges import catalog
from fitcalc.edges.measure.packed import build_packed
from fitcalc.edges.measure.stack import Stack
from fitcalc.edges.measure.tracker import StorageTracker
from fitcalc.core.recipes import resolve_recipe
from tests.measure.tiny import tiny_gpt_oss, tiny_llama

ENGINE = catalog.load_engine("torch")


def _prefill_stats(model, every: bool, kv_dtype=None, context=97, chunk=8, device="cpu"):
    torch.manual_seed(0)
    tracker = StorageTracker()
    stack = Stack(model, resolve_recipe(model, None), device, tracker=tracker)
    stack.track_every_chunk = every
    with torch.inference_mode(), tracker:
        with tracker.phase("weights"):
            stack.build_weights()
        with tracker.phase("kv"):
            stack.alloc_kv(1, context, kv_dtype, ENGINE)
        with tracker.phase("prefill") as ph:
            stack.prefill(context - 1, chunk)
    return ph, dict(tracker.by_tag)


@pytest.mark.parametrize("kv_dtype", [None, "fp8"])
def test_sampled_chunks_give_the_peaks_of_every_chunk_dense(kv_dtype):
    # 96 prompt tokens in 12 chunks of 8: chunks 2..9 run untracked. A dense model allocates the
    # same tensors in every chunk after the first, or more as the position grows (fp8 KV read
    # back in bf16), so the sampled peaks are the full ones to the byte.
    full, full_live = _prefill_stats(tiny_llama(2), True, kv_dtype)
    sampled, sampled_live = _prefill_stats(tiny_llama(2), False, kv_dtype)
    assert sampled.tag_peak == full.tag_peak
    assert sampled.peak == full.peak
    assert sampled_live == full_live  # nothing counted stays behind from an untracked chunk


def test_sampled_chunks_on_moe_differ_only_by_routing():
    # tiny gpt-oss, 8 experts top-2, 8 tokens a chunk: the only chunk-to-chunk difference is how
    # many tokens the busiest expert gets (at most all 8: 8 x 128 hidden x 2 B = 2 KiB for its
    # gathered input, and as much for its output rows)
    full, _ = _prefill_stats(tiny_gpt_oss(2), True)
    sampled, _ = _prefill_stats(tiny_gpt_oss(2), False)
    assert set(sampled.tag_peak) == set(full.tag_peak)
    for tag, n in full.tag_peak.items():
        assert 0 <= n - sampled.tag_peak[tag] <= 2 * 8 * 128 * 2, tag
    assert sampled.tag_peak["act.dequant_scratch"] == full.tag_peak["act.dequant_scratch"]


def test_mxfp4_decode_scratch_is_the_matrix_and_one_small_temporary():
    # 2,880 x 2,880 (gpt-oss-20b's down projection): the matrix is 2,880 x 2,880 x 2 B =
    # 16,588,800 B. On a CPU the last piece is at most 2^19 / 32 = 16,384 blocks of 16 int32
    # index words = 1,048,576 B; the halving before it leaves 259,200 / 2^4 = 16,200 blocks:
    # 16,200 x 64 B = 1,036,800 B.
    tracker = StorageTracker()
    with torch.inference_mode(), tracker:
        p = build_packed("mxfp4", 2880, 2880, 0, "cpu")  # built under the tracker, as the stack's weights are
        with tracker.phase("d") as ph:
            w = p.matrix()
    assert ph.peak - ph.start_live == 2880 * 2880 * 2 + 16_200 * 64
    del w


def test_fused_mxfp4_kernel_matches_the_eager_decode_in_the_triton_interpreter():
    # The CUDA fast path, run by Triton's CPU interpreter (TRITON_INTERPRET=1 must be set before
    # the kernel is defined, hence a fresh process): every (E8M0 code, byte) pair, bit for bit.
    pytest.importorskip("triton", reason="triton is not installed (it comes with CUDA builds of torch)")
    import os
    import subprocess
    import sys

    code = ("from fitcalc.edges.measure import packed as P\n"
            "fn = P._build_triton_mxfp4()\n"
            "print(P._fused_matches_eager(fn, 'cpu'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "TRITON_INTERPRET": "1"})
    assert r.stdout.strip() == "True", r.stderr[-2000:]


@pytest.mark.gpu
def test_on_cuda_mxfp4_decodes_in_one_checked_kernel():
    # Triton ships with CUDA builds of torch; the fused kernel must pass its bit-for-bit check on
    # this GPU. Failing here (with the reason) means verify runs the slower eager decode.
    from fitcalc.edges.measure import packed

    p = build_packed("mxfp4", 256, 512, 2, "cuda")
    p.matrix(1)
    assert packed.MXFP4_KERNEL["path"] == "triton", packed.MXFP4_KERNEL["why"]


@pytest.mark.gpu
def test_on_cuda_sampled_chunks_give_the_peaks_of_every_chunk():
    full, _ = _prefill_stats(tiny_llama(2), True, device="cuda")
    sampled, _ = _prefill_stats(tiny_llama(2), False, device="cuda")
    assert sampled.tag_peak == full.tag_peak and sampled.peak == full.peak
