"""Units: a strict parser and explicit systems. Expected values are powers of two and ten by hand."""

import pytest

from fitcalc.core.errors import UnitError
from fitcalc.core.units import format_bits, format_both, format_bytes, format_params, parse_bytes, parse_count


@pytest.mark.parametrize("text,expected", [
    ("16GB", 16 * 10**9),
    ("16GiB", 16 * 2**30),
    ("16384MiB", 16384 * 2**20),  # = 16 GiB
    ("16 GiB", 16 * 2**30),
    ("1.5TiB", 3 * 2**39),
    ("24564MiB", 24564 * 1048576),  # RTX 4090 as nvidia-smi reports it
    ("80gb", 80 * 10**9),  # all lower case is how people type bytes
    ("24gib", 24 * 2**30),
    ("123", 123),
    ("1_000", 1000),
    ("0.5KiB", 512),
    ("0.1KiB", 102),  # 102.4 rounds to the nearest byte
    (4096, 4096),
], ids=lambda v: str(v))
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


def test_gb_is_not_gib():
    assert parse_bytes("16GB") != parse_bytes("16GiB")
    assert parse_bytes("16GiB") - parse_bytes("16GB") == 17179869184 - 16000000000


@pytest.mark.parametrize("text", ["16G", "16 g", "16Gb", "16Mb", "sixteen", "", "-5GB", "0", "16XB", "1e9"])
def test_parse_bytes_rejects(text):
    with pytest.raises(UnitError) as e:
        parse_bytes(text)
    assert e.value.hint  # every refusal says how to fix it


def test_ambiguous_suffix_hint_offers_both():
    with pytest.raises(UnitError) as e:
        parse_bytes("24G")
    assert "24GiB" in e.value.hint and "24GB" in e.value.hint


@pytest.mark.parametrize("n,system,expected", [
    (2**30, "iec", "1.00 GiB"),
    (10**9, "si", "1.00 GB"),
    (10**9, "iec", "953.67 MiB"),  # 10^9 / 2^20 = 953.674
    (13761264768, "iec", "12.82 GiB"),  # 13761264768 / 2^30 = 12.816
    (13761264768, "si", "13.76 GB"),
    (512, "iec", "512 B"),
    (-(2**20), "iec", "-1.00 MiB"),
])
def test_format_bytes(n, system, expected):
    assert format_bytes(n, system) == expected


def test_format_both_shows_both_labels():
    assert format_both(16 * 2**30) == "16.00 GiB (17.18 GB)"


@pytest.mark.parametrize("n,expected", [(20914757184, "20.91B"), (3608307264, "3.61B"), (579133440, "579.13M"),
                                        (116829156672, "116.83B"), (999, "999")])
def test_format_params(n, expected):
    assert format_params(n) == expected


def test_format_bits():
    from fractions import Fraction

    assert format_bits(Fraction(17, 4)) == "4.25"
    assert format_bits(Fraction(16)) == "16"


@pytest.mark.parametrize("text,expected", [("131072", 131072), ("128k", 131072), ("32K", 32768), (4096, 4096)])
def test_parse_count(text, expected):
    assert parse_count(text) == expected
