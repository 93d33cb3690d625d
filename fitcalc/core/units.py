"""Bytes, bits and parameter counts: exact integers inside, explicit systems outside.

CORE: standard library only. Every size inside fitcalc is an ``int`` of bytes. Text is
produced and parsed here and nowhere else, always with an explicit system:

* IEC (binary): KiB, MiB, GiB, TiB = 2^10, 2^20, 2^30, 2^40 bytes. Default for memory.
* SI (decimal): kB, MB, GB, TB = 10^3, 10^6, 10^9, 10^12 bytes. For vendor labels and downloads.

The parser is strict: ``16GB`` is 16 * 10^9 bytes, ``16GiB`` is 16 * 2^30 bytes, a bare
number is bytes, and a lone ``G`` or ``Gb`` (gigabit?) is an error with a hint.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Literal

from fitcalc.core.errors import UnitError

System = Literal["iec", "si"]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
PiB = 1 << 50
KB = 10**3
MB = 10**6
GB = 10**9
TB = 10**12
PB = 10**15

# Canonical spelling -> multiplier. Matching is case-insensitive except that a lower-case
# "b" after a prefix (bits) is refused below.
_UNITS: dict[str, int] = {
    "B": 1,
    "KIB": KiB, "MIB": MiB, "GIB": GiB, "TIB": TiB, "PIB": PiB,
    "KB": KB, "MB": MB, "GB": GB, "TB": TB, "PB": PB,
}
_IEC_STEPS = (("PiB", PiB), ("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB))
_SI_STEPS = (("PB", PB), ("TB", TB), ("GB", GB), ("MB", MB), ("kB", KB))

_SIZE_RE = re.compile(r"^\s*(?P<num>[0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*(?P<unit>[A-Za-z]*)\s*$")


def parse_bytes(text: str | int) -> int:
    """Parse a size such as ``16GB``, ``16GiB``, ``16384MiB``, ``1.5 TiB`` or ``123`` into bytes.

    Fractions of a byte are rounded to the nearest byte (``0.1KiB`` = 102 bytes); a size
    must be positive. Raises UnitError with a hint for anything ambiguous.
    """
    if isinstance(text, bool):
        raise UnitError(f"not a size: {text!r}", hint="write a number of bytes or a value with a unit, e.g. 24GiB")
    if isinstance(text, int):
        if text <= 0:
            raise UnitError(f"size must be positive, got {text}", hint="e.g. 24GiB or 24000000000")
        return text
    m = _SIZE_RE.match(str(text))
    if not m:
        raise UnitError(
            f"cannot read {text!r} as a size",
            hint="write a number and a unit: 24GiB (2^30), 24GB (10^9), 24576MiB, or plain bytes",
        )
    num_text, unit = m.group("num").replace("_", "").replace(",", ""), m.group("unit")
    if len(unit) >= 2 and unit[-1] == "b" and unit != unit.lower():
        # "Gb"/"Mb" with a capital prefix is the networking spelling of bits; all-lower-case
        # "gb" is how people type bytes, and is read as bytes.
        raise UnitError(
            f"{text!r}: 'b' after a capital prefix means bits",
            hint=f"write {num_text}{unit[:-1].upper()}B for bytes (or ...iB for powers of two)",
        )
    key = unit.upper() if unit else "B"
    if key not in _UNITS:
        if key in {"K", "M", "G", "T", "P"}:
            raise UnitError(
                f"{text!r} is ambiguous: {unit} could mean {unit}iB (2^n) or {unit}B (10^n)",
                hint=f"write {num_text}{unit.upper()}iB or {num_text}{unit.upper()}B",
            )
        raise UnitError(f"unknown unit {unit!r} in {text!r}", hint="use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB")
    value = Fraction(num_text) * _UNITS[key]
    result = round(value)
    if result <= 0:
        raise UnitError(f"size must be positive, got {text!r}", hint="e.g. 24GiB")
    return int(result)


def format_bytes(n: int, system: System = "iec", precision: int = 2) -> str:
    """Render a byte count with the unit of its system: ``format_bytes(2**30) == '1.00 GiB'``."""
    sign = "-" if n < 0 else ""
    a = abs(n)
    steps = _IEC_STEPS if system == "iec" else _SI_STEPS
    for label, size in steps:
        if a >= size:
            return f"{sign}{a / size:.{precision}f} {label}"
    return f"{sign}{a} B"


def format_both(n: int, precision: int = 2) -> str:
    """``'12.82 GiB (13.76 GB)'``: for comparisons with a vendor's or a download's label."""
    return f"{format_bytes(n, 'iec', precision)} ({format_bytes(n, 'si', precision)})"


def to_unit(n: int, unit: str) -> float:
    """Bytes expressed in a named unit (``to_unit(n, 'GiB')``), for tables with one unit per column."""
    key = unit.upper()
    if key not in _UNITS:
        raise UnitError(f"unknown unit {unit!r}", hint="use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB")
    return n / _UNITS[key]


def format_params(n: int | float, precision: int = 2) -> str:
    """Parameter counts in powers of ten: ``format_params(20_914_757_184) == '20.91B'``."""
    a = abs(n)
    for label, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if a >= size:
            return f"{n / size:.{precision}f}{label}"
    return f"{int(n)}"


def bits_to_bytes(bits: int) -> int:
    """Whole bytes that hold ``bits`` bits (a partial byte still occupies a byte)."""
    return (bits + 7) // 8


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def format_bits(bits: Fraction) -> str:
    """Bits per weight as a short decimal (``Fraction(17, 4)`` -> ``'4.25'``)."""
    f = float(bits)
    text = f"{f:.4f}".rstrip("0").rstrip(".")
    return text


def parse_count(text: str | int) -> int:
    """Parse a token or sequence count: ``131072``, ``128k`` (=128*1024 tokens, as engines write it), ``32K``."""
    if isinstance(text, int):
        return text
    s = str(text).strip().replace("_", "").replace(",", "")
    m = re.fullmatch(r"([0-9]+)\s*([kKmM]?)", s)
    if not m:
        raise UnitError(f"cannot read {text!r} as a count", hint="write a whole number such as 131072, or 128k for 131072")
    n = int(m.group(1))
    suffix = m.group(2).lower()
    # Context lengths are quoted in binary thousands: "128k context" is 131,072 tokens.
    return n * {"": 1, "k": 1024, "m": 1024 * 1024}[suffix]
