"""ThumbHash: a ~25-byte placeholder that decodes to a blurred image, with alpha and aspect ratio.

Written from Evan Wallace's reference algorithm (https://evanw.github.io/thumbhash/, MIT) so
hashes interoperate with the JS/Swift/Kotlin decoders clients use. Pure Python: the DCTs are
separable, so a 32x32 input costs a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

MAX_INPUT_SIDE: Final = 100  # the format's own limit
_DECODED_SIDE: Final = 32


def rgba_to_thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """Encode non-premultiplied RGBA pixels (row by row, at most 100x100) to a ThumbHash."""
    if not (0 < width <= MAX_INPUT_SIDE and 0 < height <= MAX_INPUT_SIDE):
        raise ValueError(f"{width}x{height} does not fit in {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}")
    if len(rgba) != width * height * 4:
        raise ValueError(f"expected {width * height * 4} bytes of RGBA, got {len(rgba)}")
    alphas = [value / 255 for value in rgba[3::4]]
    total_alpha = sum(alphas)
    average = [0.0, 0.0, 0.0]
    for band in range(3):
        weighted = sum(a * v for a, v in zip(alphas, rgba[band::4], strict=True)) / 255
        average[band] = weighted / total_alpha if total_alpha > 0 else 0.0
    has_alpha = total_alpha < width * height
    luminance_limit = 5 if has_alpha else 7  # fewer luminance terms leave room for alpha
    lx = max(1, _round_half_up(luminance_limit * width / max(width, height)))
    ly = max(1, _round_half_up(luminance_limit * height / max(width, height)))

    # RGBA -> LPQA, composited atop the average colour so transparent pixels don't bias it.
    l_values, p_values, q_values = [], [], []
    for index, alpha in enumerate(alphas):
        r, g, b = (
            average[band] * (1 - alpha) + alpha / 255 * rgba[index * 4 + band] for band in range(3)
        )
        l_values.append((r + g + b) / 3)
        p_values.append((r + g) / 2 - b)
        q_values.append(r - g)

    l_dc, l_ac, l_scale = _encode_channel(l_values, width, height, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel(p_values, width, height, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(q_values, width, height, 3, 3)
    a_dc, a_ac, a_scale = (
        _encode_channel(alphas, width, height, 5, 5) if has_alpha else (1.0, [], 1.0)
    )

    is_landscape = width > height
    header24 = (
        _round_half_up(63 * l_dc)
        | _round_half_up(31.5 + 31.5 * p_dc) << 6
        | _round_half_up(31.5 + 31.5 * q_dc) << 12
        | _round_half_up(31 * l_scale) << 18
        | int(has_alpha) << 23
    )
    header16 = (
        (ly if is_landscape else lx)
        | _round_half_up(63 * p_scale) << 3
        | _round_half_up(63 * q_scale) << 9
        | int(is_landscape) << 15
    )
    hash_bytes = bytearray(header24.to_bytes(3, "little") + header16.to_bytes(2, "little"))
    if has_alpha:
        hash_bytes.append(_round_half_up(15 * a_dc) | _round_half_up(15 * a_scale) << 4)
    nibbles = [_round_half_up(15 * value) for value in (*l_ac, *p_ac, *q_ac, *a_ac)]
    nibbles += [0] * (len(nibbles) % 2)
    hash_bytes += bytes(
        low | high << 4 for low, high in zip(nibbles[::2], nibbles[1::2], strict=True)
    )
    return bytes(hash_bytes)


def thumbhash_to_rgba(hash_bytes: bytes) -> tuple[int, int, bytes]:
    """Decode a ThumbHash to (width, height, RGBA bytes) of a placeholder at most 32 px."""
    header24 = int.from_bytes(hash_bytes[:3], "little")
    header16 = int.from_bytes(hash_bytes[3:5], "little")
    has_alpha = bool(header24 >> 23)
    is_landscape = bool(header16 >> 15)
    luminance_limit = 5 if has_alpha else 7
    lx = max(3, luminance_limit if is_landscape else header16 & 7)
    ly = max(3, header16 & 7 if is_landscape else luminance_limit)
    l_dc = (header24 & 63) / 63
    p_dc = ((header24 >> 6) & 63) / 31.5 - 1
    q_dc = ((header24 >> 12) & 63) / 31.5 - 1
    l_scale = ((header24 >> 18) & 31) / 31
    p_scale = ((header16 >> 3) & 63) / 63 * 1.25  # 1.25: undo the quantisation's desaturation
    q_scale = ((header16 >> 9) & 63) / 63 * 1.25
    a_dc, a_scale = 1.0, 1.0
    if has_alpha:
        a_dc, a_scale = (hash_bytes[5] & 15) / 15, (hash_bytes[5] >> 4) / 15
    start = 6 if has_alpha else 5
    nibbles = [nibble for byte in hash_bytes[start:] for nibble in (byte & 15, byte >> 4)]
    position = 0

    def read_channel(nx: int, ny: int, scale: float) -> list[tuple[int, int, float]]:
        nonlocal position
        terms = []
        for cx, cy in _ac_terms(nx, ny):
            terms.append((cx, cy, (nibbles[position] / 7.5 - 1) * scale))
            position += 1
        return terms

    l_terms = read_channel(lx, ly, l_scale)
    p_terms = read_channel(3, 3, p_scale)
    q_terms = read_channel(3, 3, q_scale)
    a_terms = read_channel(5, 5, a_scale) if has_alpha else []

    ratio = lx / ly
    width = _DECODED_SIDE if ratio > 1 else round(_DECODED_SIDE * ratio)
    height = round(_DECODED_SIDE / ratio) if ratio > 1 else _DECODED_SIDE
    out = bytearray()
    for y in range(height):
        fy = [math.cos(math.pi / height * (y + 0.5) * cy) * 2 for cy in range(7)]
        for x in range(width):
            fx = [math.cos(math.pi / width * (x + 0.5) * cx) for cx in range(7)]
            lum = l_dc + sum(c * fx[cx] * fy[cy] for cx, cy, c in l_terms)
            p = p_dc + sum(c * fx[cx] * fy[cy] for cx, cy, c in p_terms)
            q = q_dc + sum(c * fx[cx] * fy[cy] for cx, cy, c in q_terms)
            a = a_dc + sum(c * fx[cx] * fy[cy] for cx, cy, c in a_terms)
            b = lum - 2 / 3 * p
            r = (3 * lum - b + q) / 2
            out += bytes(round(255 * min(1.0, max(0.0, v))) for v in (r, r - q, b, a))
    return width, height, bytes(out)


def _round_half_up(value: float) -> int:
    # The reference rounds with JS Math.round; Python's round() is banker's rounding.
    return math.floor(value + 0.5)


def _ac_terms(nx: int, ny: int) -> list[tuple[int, int]]:
    """The (cx, cy) of the AC coefficients kept: a triangle, in the reference's order."""
    return [
        (cx, cy) for cy in range(ny) for cx in range(nx) if cx * ny < nx * (ny - cy) and cx + cy
    ]


def _encode_channel(
    values: Sequence[float], width: int, height: int, nx: int, ny: int
) -> tuple[float, list[float], float]:
    cos_x = [[math.cos(math.pi / width * cx * (x + 0.5)) for x in range(width)] for cx in range(nx)]
    cos_y = [
        [math.cos(math.pi / height * cy * (y + 0.5)) for y in range(height)] for cy in range(ny)
    ]
    # Separable DCT: project each row on the x cosines once; a coefficient is then a column sum.
    rows = [
        [
            sum(v * c for v, c in zip(values[y * width : (y + 1) * width], cos_x[cx], strict=True))
            for cx in range(nx)
        ]
        for y in range(height)
    ]

    def coefficient(cx: int, cy: int) -> float:
        return sum(rows[y][cx] * cos_y[cy][y] for y in range(height)) / (width * height)

    ac = [coefficient(cx, cy) for cx, cy in _ac_terms(nx, ny)]
    scale = max((abs(value) for value in ac), default=0.0)
    if scale > 0:
        ac = [0.5 + 0.5 / scale * value for value in ac]
    return coefficient(0, 0), ac, scale
