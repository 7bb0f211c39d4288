"""Build-time fixed-point parameters, computed exactly the way TFLite Micro computes them.

Bit-exactness starts here: a multiplier that differs in its last bit from the reference changes
outputs. Every function states which double/float roundings it reproduces, because the reference
mixes float32 products with double divisions and the order matters.
"""

from __future__ import annotations

import math

import numpy as np


def round_half_away(x: float) -> int:
    """std::round: halves go away from zero (Python's round() goes to even)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """A double multiplier as (q31 significand, power-of-two exponent): real ~= q * 2^(shift-31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


def conv_channel_multipliers(
    input_scale: float, filter_scales: np.ndarray, output_scale: float, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) for CONV_2D / DEPTHWISE_CONV_2D.

    The reference widens each float32 scale to double and multiplies in double.
    """
    scales = np.asarray(filter_scales, dtype=np.float32).reshape(-1)
    mult = np.zeros(channels, dtype=np.int32)
    shift = np.zeros(channels, dtype=np.int32)
    for c in range(channels):
        fs = float(scales[c] if scales.size > 1 else scales[0])
        real = float(np.float32(input_scale)) * fs / float(np.float32(output_scale))
        mult[c], shift[c] = quantize_multiplier(real)
    return mult, shift


def fc_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """FULLY_CONNECTED per-tensor: float32 scales widened to double, multiplied in double.

    (TFLite's older GetQuantizedConvolutionMultipler rounded the product to float32 first; the
    TFLite Micro in use computes it like the per-channel conv path, and 3 of 200 AD outputs
    differ by one LSB if the float32 product is used.)
    """
    real = float(np.float32(input_scale)) * float(np.float32(filter_scale))
    return quantize_multiplier(real / float(np.float32(output_scale)))


def activation_range(activation: str, scale: float, zero_point: int, dtype: str) -> tuple[int, int]:
    """Clamp bounds of a fused activation in the output's quantized domain."""
    info = np.iinfo(np.dtype(dtype))
    qmin, qmax = int(info.min), int(info.max)
    s = np.float32(scale)

    def q(x: float) -> int:
        return zero_point + round_half_away(float(np.float32(x) / s))

    if activation == "none":
        return qmin, qmax
    if activation == "relu":
        return max(qmin, q(0.0)), qmax
    if activation == "relu6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "relu_n1_to_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"unknown activation {activation}")


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    max_rescaled = (
        1.0
        * ((1 << integer_bits) - 1)
        * float(1 << (total_signed_bits - integer_bits))
        / float(1 << left_shift)
    )
    return int(math.floor(max_rescaled))


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) for int8 softmax with 5 integer bits."""
    scaled_diff_integer_bits = 5
    real = min(
        float(beta) * float(np.float32(input_scale)) * float(1 << (31 - scaled_diff_integer_bits)),
        float((1 << 31) - 1),
    )
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax input multiplier below one")
    diff_min = -calculate_input_radius(scaled_diff_integer_bits, shift)
    return mult, shift, diff_min


def add_params(
    scale1: float, scale2: float, out_scale: float, left_shift: int = 20
) -> dict[str, int]:
    """Multipliers for int8 ADD/SUB: both inputs are brought to twice the larger scale first."""
    s1, s2, so = (float(np.float32(s)) for s in (scale1, scale2, out_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return {
        "left_shift": left_shift,
        "input1_multiplier": m1,
        "input1_shift": sh1,
        "input2_multiplier": m2,
        "input2_shift": sh2,
        "output_multiplier": mo,
        "output_shift": sho,
    }


def mul_params(scale1: float, scale2: float, out_scale: float) -> tuple[int, int]:
    """int8 MUL: both input scales widened to double, multiplied and divided in double.

    (TFLite's own MUL kernel multiplies the float32 scales in float32 first; TFLM does not. The
    two multipliers differ in their low bits for almost every scale triple; outputs differ only
    when a product lands within that tiny error of a rounding tie, so tests rarely see it.)
    """
    s1, s2, so = (float(np.float32(s)) for s in (scale1, scale2, out_scale))
    return quantize_multiplier(s1 * s2 / so)


def requantize_params(in_scale: float, out_scale: float) -> tuple[int, int]:
    """QUANTIZE int8 -> int8 (a rescale): input scale over output scale in double."""
    return quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))


def quantize_float(
    value: float, scale: float, zero_point: int, lo: int = -128, hi: int = 127
) -> int:
    """TFLM's FloatToQuantizedType: float32 division, round half away, offset, clamp."""
    q = float(np.float32(value) / np.float32(scale))
    return min(hi, max(lo, round_half_away(q) + zero_point))


def sigmoid_tanh_params(input_scale: float) -> tuple[int, int, int]:
    """(multiplier, left shift, input radius) that bring an int8 LOGISTIC/TANH input to Q4.27.

    The reference scales by input_scale * 2^27 in double and rounds frexp's mantissa itself,
    without QuantizeMultiplier's fix-up for a mantissa that rounds up to 2^31.
    """
    integer_bits = 4
    real = float(np.float32(input_scale)) * float(1 << (31 - integer_bits))
    q, shift = math.frexp(real)
    mult = round_half_away(q * float(1 << 31))
    if mult >= 1 << 31:
        raise ValueError(
            "input scale rounds to a multiplier of 2^31, which the reference mishandles"
        )
    if shift < 0:
        raise ValueError(f"input scale {input_scale} is too small for the Q4 input rescale")
    return mult, shift, calculate_input_radius(integer_bits, shift)


def mean_params(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """int8 MEAN: input/output scale ratio with the 1/count of the mean folded in.

    The reference quantizes in_scale/out_scale (double) as usual, then shifts the multiplier left
    by floor(log2(count)) (at most 32, and no further than leaves the final shift >= -31) and
    divides it by count with int64 truncation; the shift drops by the same amount.
    """
    mult, shift = quantize_multiplier(
        float(np.float32(input_scale)) / float(np.float32(output_scale))
    )
    if count <= 0:
        return mult, shift
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return (mult << extra) // count, shift - extra


# --- exact integer helpers, the Python twins of csrc/edgekit_fixedpoint.h, used by tests -------

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def srdhm(a: int, b: int) -> int:
    """Saturating rounding doubling high multiply of two int32 values."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    num = ab + nudge
    # C integer division truncates toward zero
    q = abs(num) // (1 << 31)
    return q if num >= 0 else -q


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rounding_divide_by_pot(srdhm(x * (1 << left), multiplier), right)


def downscale_multiplier_int16(multiplier: int) -> int:
    """A Q31 multiplier rounded to Q15 (TFLite's DownScaleInt32ToInt16Multiplier): add half an
    int16 step then drop 16 bits, saturating where the rounding would reach 2^15."""
    if multiplier < 0:
        raise ValueError("int16 multipliers are made from non-negative Q31 multipliers")
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def leaky_relu_params(
    input_scale: float, alpha: float, output_scale: float
) -> tuple[int, int, int, int]:
    """(identity multiplier, shift, alpha multiplier, shift) of int8 LEAKY_RELU.

    The reference forms both ratios in float32 (scale * alpha first, then the division) and only
    widens the result to double for the multiplier."""
    s_in, s_out, a = np.float32(input_scale), np.float32(output_scale), np.float32(alpha)
    identity = float(np.float32(s_in / s_out))
    alpha_real = float(np.float32(np.float32(s_in * a) / s_out))
    m_id, sh_id = quantize_multiplier(identity)
    m_a, sh_a = quantize_multiplier(alpha_real)
    return m_id, sh_id, m_a, sh_a


def hard_swish_params(input_scale: float, output_scale: float) -> dict[str, int]:
    """Q15 multipliers and exponents of int8 HARD_SWISH, formed in float32 as the reference does.

    The input is first moved to a "high resolution" scale (input scale / 128, the raw value
    shifted left by 7); from there one multiplier reaches the output scale and another the
    "reluish" scale 3/32768, on which relu6(x + 3) / 6 is computed as a Q15 fraction."""
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(input_scale))
    out_real = float(np.float32(hires / np.float32(output_scale)))
    reluish_real = float(np.float32(hires / np.float32(3.0 / 32768.0)))
    m_out, e_out = quantize_multiplier(out_real)
    m_rel, e_rel = quantize_multiplier(reluish_real)
    return {
        "output_multiplier": downscale_multiplier_int16(m_out),
        "output_exponent": e_out,
        "reluish_multiplier": downscale_multiplier_int16(m_rel),
        "reluish_exponent": e_rel,
    }


def multiply_by_quantized_multiplier_64(x: int, multiplier: int, shift: int) -> int:
    """The int64 requantization of TFLite's 16x8 kernels (C twin: ek_mbqm64): the multiplier is
    rounded to 16 bits first, then one rounding right shift. Valid for |x| < 2^47."""
    reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    return (x * reduced + (1 << (total - 1))) >> total
