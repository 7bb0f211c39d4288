"""FPGA parts the HLS estimate knows: capacities and a coarse timing class per family.

Capacities are the vendor data-sheet figures for each device (DSP slices, 18 Kb block RAMs,
6-input LUTs). The timing numbers are rough delays of the building blocks edgekit's kernels use,
for the speed grade in the part name; docs/hls.md says how they are used and how far to trust
them. UltraRAM is not modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class Timing:
    """Delays in ns at the part's speed grade, routing included."""

    add: float  # one adder level of an accumulation tree (about 24 bits, carry chain)
    dsp_mul: float  # an 8x8 product in a DSP slice
    wide_mul: float  # a requantisation product (up to 32x32) over cascaded DSP slices
    round: float  # after it: nudge, truncating shift, rounding shift, offset, clamp
    max_clock_mhz: float  # block RAM / DSP limit: no design clocks faster


@dataclass(frozen=True)
class Part:
    name: str
    family: str
    dsp: int
    bram18: int
    lut: int
    ff: int
    dsp_a_bits: int  # signed multiplier input widths of one DSP slice
    dsp_b_bits: int
    timing: Timing


_ULTRASCALE_PLUS_2 = Timing(add=1.0, dsp_mul=2.0, wide_mul=3.0, round=5.0, max_clock_mhz=737.0)
_ULTRASCALE_PLUS_1 = Timing(add=1.15, dsp_mul=2.3, wide_mul=3.5, round=5.8, max_clock_mhz=645.0)
_SERIES7_1 = Timing(add=1.6, dsp_mul=3.2, wide_mul=4.8, round=8.0, max_clock_mhz=388.0)

PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part("xczu7ev-ffvc1156-2-e", "Zynq UltraScale+ MPSoC", 1728, 624, 230_400, 460_800,
             27, 18, _ULTRASCALE_PLUS_2),
        Part("xczu3eg-sbva484-1-e", "Zynq UltraScale+ MPSoC", 360, 432, 70_560, 141_120,
             27, 18, _ULTRASCALE_PLUS_1),
        Part("xcvu9p-flga2104-2-e", "Virtex UltraScale+", 6840, 4320, 1_182_240, 2_364_480,
             27, 18, _ULTRASCALE_PLUS_2),
        Part("xc7z020-clg400-1", "Zynq-7000", 220, 280, 53_200, 106_400, 25, 18, _SERIES7_1),
        Part("xc7a100tcsg324-1", "Artix-7", 240, 270, 63_400, 126_800, 25, 18, _SERIES7_1),
    )
}

DEFAULT_PART = "xczu7ev-ffvc1156-2-e"
DEFAULT_CLOCK_MHZ = 200.0

# Vitis HLS schedules against the period minus its default 27 % clock uncertainty.
CLOCK_UNCERTAINTY = 0.27


def get_part(name: str) -> Part:
    part = PARTS.get(name.strip().lower())
    if part is None:
        raise EdgekitError(
            f"unknown FPGA part '{name}'",
            hint=f"known parts: {', '.join(sorted(PARTS))}",
        )
    return part


_CLOCK = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ghz|mhz|khz|hz|ns)?\s*$", re.I)
_TO_MHZ = {"ghz": 1e3, "mhz": 1.0, "khz": 1e-3, "hz": 1e-6}


def parse_clock(text: str | float, part: Part | None = None) -> float:
    """'200MHz', '200', '5ns', '0.25GHz' -> MHz. A bare number is MHz."""
    if isinstance(text, int | float):
        mhz = float(text)
    else:
        m = _CLOCK.match(text)
        if not m:
            raise EdgekitError(
                f"cannot read the clock '{text}'", hint="write it like 200MHz, 250 or 4ns"
            )
        value, unit = float(m.group(1)), (m.group(2) or "mhz").lower()
        period_mhz = 1e3 / value if value > 0 else 0.0
        mhz = period_mhz if unit == "ns" else value * _TO_MHZ[unit]
    if not mhz > 0:
        raise EdgekitError(f"the clock must be positive, got {text}")
    if part is not None and mhz > part.timing.max_clock_mhz:
        raise EdgekitError(
            f"{mhz:g} MHz is above what {part.name}'s block RAM and DSP slices run at "
            f"({part.timing.max_clock_mhz:g} MHz)",
            hint="choose a lower --clock",
        )
    return mhz
