"""Dequantization against the value tables of the formats' specifications, with hand-packed
bytes, and the storage layout of every format against the byte formula of fitcalc.core.formats."""

import math

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

from fitcalc.core.formats import get_format
from fitcalc.edges.measure import BUILDABLE_FORMATS
from fitcalc.edges.measure.packed import BUILDERS, Packed, build_packed

# OCP Microscaling Formats (MX) v1.0, sec. 5.3.3, Table: FP4 E2M1 encodings. Bit layout S EE M,
# exponent bias 1; 0b0001 is the subnormal 0.5 (= 2^0 x 0.5). Written out here from the table,
# not from the code under test.
E2M1_TABLE = {0b0000: 0.0, 0b0001: 0.5, 0b0010: 1.0, 0b0011: 1.5, 0b0100: 2.0, 0b0101: 3.0, 0b0110: 4.0, 0b0111: 6.0,
              0b1000: -0.0, 0b1001: -0.5, 0b1010: -1.0, 0b1011: -1.5, 0b1100: -2.0, 0b1101: -3.0, 0b1110: -4.0,
              0b1111: -6.0}


def _mx(blocks, scales):
    rows, nb = scales.shape
    return Packed(fmt="mxfp4", rows=rows, cols=nb * 32, copies=0, parts={"blocks": blocks, "scales": scales})


def test_mxfp4_every_e2m1_code_at_unit_scale():
    # one row of 32 elements: byte j holds element 2j in its low nibble and 2j+1 in its high
    # nibble (gpt-oss *_blocks). Codes 0..15 then 15..0.
    codes = list(range(16)) + list(range(15, -1, -1))
    packed = [codes[2 * j] | (codes[2 * j + 1] << 4) for j in range(16)]
    out = _mx(torch.tensor([[packed]], dtype=torch.uint8), torch.tensor([[127]], dtype=torch.uint8)).matrix()
    got = out.float().view(-1).tolist()
    assert got == [E2M1_TABLE[c] for c in codes]
    assert math.copysign(1.0, got[8]) == -1.0  # code 0b1000 is -0


@pytest.mark.parametrize("code,value", [
    (0, 2.0 ** -127), (1, 2.0 ** -126), (100, 2.0 ** -27), (126, 0.5), (127, 1.0), (128, 2.0), (254, 2.0 ** 127),
])
def test_mxfp4_e8m0_scale(code, value):
    # OCP MX v1.0 sec. 5.4.1: E8M0 is 2^(E - 127); element codes 0b0010 (1.0) and 0b0001 (0.5,
    # the subnormal: 0.5 x 2^-127 = 2^-128 is still a bf16 subnormal)
    blocks = torch.tensor([[[0x12] * 16]], dtype=torch.uint8)  # low nibble 2 (1.0), high nibble 1 (0.5)
    out = _mx(blocks, torch.tensor([[code]], dtype=torch.uint8)).matrix().float().view(-1)
    assert out[0].item() == value and out[1].item() == 0.5 * value


def test_mxfp4_e8m0_nan():
    blocks = torch.tensor([[[0x22] * 16]], dtype=torch.uint8)
    out = _mx(blocks, torch.tensor([[255]], dtype=torch.uint8)).matrix()
    assert torch.isnan(out.float()).all()  # E8M0 0xFF is NaN


def test_mxfp4_scales_apply_per_block_of_32():
    blocks = torch.full((2, 2, 16), 0x22, dtype=torch.uint8)  # every element 1.0
    scales = torch.tensor([[127, 130], [120, 127]], dtype=torch.uint8)
    out = _mx(blocks, scales).matrix().float()
    assert out[0, :32].eq(1.0).all() and out[0, 32:].eq(8.0).all()
    assert out[1, :32].eq(2.0 ** -7).all() and out[1, 32:].eq(1.0).all()


def _fp8(v):
    """FP8 E4M3 bytes from the OFP8 v1.0 encoding (S EEEE MMM, bias 7) written by hand."""
    return torch.tensor(v, dtype=torch.uint8).view(torch.float8_e4m3fn)


def test_nvfp4_element_times_block_scale_times_tensor_scale():
    # 32 elements = 2 blocks of 16. Block 0 scale 0x38 = 2^(7-7) x 1 = 1.0; block 1 scale
    # 0x44 = 2^(8-7) x (1 + 4/8) = 3.0. Tensor scale 0.25. Elements: code 0b0111 (6.0) then 0b1001 (-0.5).
    weight = torch.tensor([[0x97] * 16], dtype=torch.uint8)  # low nibble 7 (6.0), high nibble 9 (-0.5)
    p = Packed(fmt="nvfp4", rows=1, cols=32, copies=0,
               parts={"weight": weight, "weight_scale": _fp8([[0x38, 0x44]]),
                      "weight_scale_2": torch.tensor(0.25), "input_scale": torch.tensor(1.0)})
    out = p.matrix().float().view(-1).tolist()
    assert out[:16] == [6.0 * 1.0 * 0.25, -0.5 * 1.0 * 0.25] * 8
    assert out[16:] == [6.0 * 3.0 * 0.25, -0.5 * 3.0 * 0.25] * 8


def test_fp8_per_tensor_and_per_channel():
    w = _fp8([[0x38, 0x40], [0x30, 0xB8]])  # 1.0, 2.0 / 0.5, -1.0 (E4M3)
    t = Packed(fmt="fp8", rows=2, cols=2, copies=0,
               parts={"weight": w, "weight_scale": torch.tensor(0.5), "input_scale": torch.tensor(1.0)})
    assert t.matrix().float().tolist() == [[0.5, 1.0], [0.25, -0.5]]
    c = Packed(fmt="fp8-channel", rows=2, cols=2, copies=0,
               parts={"weight": w, "weight_scale": torch.tensor([[2.0], [4.0]])})
    assert c.matrix().float().tolist() == [[2.0, 4.0], [2.0, -4.0]]


def test_fp8_block128_tiles():
    w = torch.full((130, 130), 1.0).to(torch.float8_e4m3fn)
    s = torch.tensor([[1.0, 2.0], [4.0, 8.0]])  # tiles [0:128, 0:128], [0:128, 128:], [128:, :128], [128:, 128:]
    out = Packed(fmt="fp8-block128", rows=130, cols=130, copies=0, parts={"weight": w, "weight_scale_inv": s}).matrix()
    out = out.float()
    assert out[0, 0] == 1.0 and out[127, 129] == 2.0 and out[128, 0] == 4.0 and out[129, 129] == 8.0


def _words(nibbles):
    """int32 from 8 nibbles, nibble k at bits 4k..4k+3."""
    v = 0
    for k, n in enumerate(nibbles):
        v |= n << (4 * k)
    return v - (1 << 32) if v >= 1 << 31 else v


def test_gptq_unpacks_along_the_input_dimension():
    # 8 outputs x 128 inputs (one group). qweight[k8, o] packs inputs 8*k8..8*k8+7 of output o.
    rows, cols = 8, 128
    q = [[(i + o) % 16 for i in range(cols)] for o in range(rows)]  # q[o][i]
    qweight = torch.tensor([[_words([q[o][8 * k + j] for j in range(8)]) for o in range(rows)]
                            for k in range(cols // 8)], dtype=torch.int32)
    zeros = [3, 4, 5, 6, 7, 8, 9, 10]  # stored minus one (AutoGPTQ v1 checkpoints): real zero = stored + 1
    qzeros = torch.tensor([[_words(zeros)]], dtype=torch.int32)
    scales = torch.tensor([[0.5 * (o + 1) for o in range(rows)]], dtype=torch.float16)
    g_idx = torch.zeros(cols, dtype=torch.int32)
    p = Packed(fmt="int4-gptq", rows=rows, cols=cols, copies=0,
               parts={"qweight": qweight, "qzeros": qzeros, "scales": scales, "g_idx": g_idx})
    out = p.matrix().float()
    for o in range(rows):
        for i in (0, 1, 7, 8, 127):
            assert out[o, i].item() == 0.5 * (o + 1) * (q[o][i] - (zeros[o] + 1)), (o, i)


def test_awq_uses_its_interleaved_nibble_order():
    # AutoAWQ packs column ORDER[k] of each group of 8 into nibble k, ORDER = 0,2,4,6,1,3,5,7.
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    rows, cols = 8, 128
    q = [[(3 * o + i) % 16 for o in range(rows)] for i in range(cols)]  # q[i][o]
    qweight = torch.tensor([[_words([q[i][order[k]] for k in range(8)])] for i in range(cols)], dtype=torch.int32)
    z = [1, 2, 3, 4, 5, 6, 7, 8]
    qzeros = torch.tensor([[_words([z[order[k]] for k in range(8)])]], dtype=torch.int32)
    scales = torch.tensor([[0.25] * rows], dtype=torch.float16)
    p = Packed(fmt="int4-awq", rows=rows, cols=cols, copies=0,
               parts={"qweight": qweight, "qzeros": qzeros, "scales": scales})
    out = p.matrix().float()
    for o in range(rows):
        for i in (0, 5, 127):
            assert out[o, i].item() == 0.25 * (q[i][o] - z[o]), (o, i)


NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023,
       1.0]  # QLoRA appendix E / bitsandbytes csrc/kernels.cu


def test_nf4_high_nibble_first_times_absmax():
    # 1 x 128 weights = 2 blocks of 64; byte 0x0F: first element code 0 (-1.0), second code 15 (1.0)
    weight = torch.tensor([[0x0F]] * 32 + [[0x7A]] * 32, dtype=torch.uint8)
    p = Packed(fmt="nf4", rows=1, cols=128, copies=0,
               parts={"weight": weight, "absmax": torch.tensor([2.0, 0.5]), "quant_map": torch.tensor(NF4)})
    out = p.matrix().float().view(-1)
    assert out[0].item() == -2.0 and out[1].item() == 2.0
    bf = lambda v: torch.tensor(v).to(torch.bfloat16).item()  # noqa: E731
    assert out[64].item() == bf(NF4[7] * 0.5) and out[65].item() == bf(NF4[10] * 0.5)


def test_nf4_double_quantized_absmax():
    weight = torch.tensor([[0xF0]] * 32, dtype=torch.uint8)  # first element 1.0, second -1.0
    nmap = torch.linspace(0, 1, 256)
    p = Packed(fmt="nf4-dq", rows=1, cols=64, copies=0,
               parts={"weight": weight, "absmax": torch.tensor([255], dtype=torch.uint8),
                      "nested_absmax": torch.tensor([0.5]), "quant_map": torch.tensor(NF4),
                      "nested_quant_map": nmap, "offset": torch.tensor(0.25)})
    out = p.matrix().float().view(-1)
    assert out[0].item() == 1.0 * 0.75 and out[1].item() == -0.75  # absmax = map[255] x 0.5 + 0.25


def test_buildable_list_matches_the_builders():
    assert BUILDABLE_FORMATS == set(BUILDERS)


@pytest.mark.parametrize("fid", sorted(BUILDABLE_FORMATS))
@pytest.mark.parametrize("rows,cols,copies", [(256, 384, 0), (128, 256, 3)])
def test_real_layout_bytes_equal_the_format_formula(fid, rows, cols, copies):
    p = build_packed(fid, rows, cols, copies, "cpu")
    fmt = get_format(fid)
    assert p.nbytes == max(copies, 1) * fmt.matrix_bytes(rows, cols)
    assert p.matrix(0 if copies else None).shape == (rows, cols)


def test_mxfp4_every_e8m0_code():
    codes = torch.arange(255, dtype=torch.uint8).view(255, 1)  # 0..254; 255 (NaN) is tested above
    blocks = torch.full((255, 1, 16), 0x22, dtype=torch.uint8)  # every element 1.0
    out = _mx(blocks, codes).matrix().float()[:, 0]
    assert out.tolist() == [2.0 ** (c - 127) for c in range(255)]


@pytest.mark.parametrize("fid,rows,cols,expect", [
    # 256 x 384 = 98,304 weights: payload 49,152 B; absmax uint8 98,304 / 64 = 1,536 B; nested fp32
    # ceil(1,536 / 256) = 6 -> 24 B; quant_map 16 x 4 = 64; nested map 256 x 4 = 1,024; offset 4
    ("nf4-dq", 256, 384, 49_152 + 1_536 + 24 + 64 + 1_024 + 4),
    # 3 x 100 = 300 weights: blocks of 64 run across rows, ceil(300 / 64) = 5 absmax -> 20 B
    ("nf4", 3, 100, 150 + 20 + 64),
])
def test_bitsandbytes_blocks_run_over_the_flattened_tensor(fid, rows, cols, expect):
    assert get_format(fid).matrix_bytes(rows, cols) == expect
    assert build_packed(fid, rows, cols, 0, "cpu").nbytes == expect
