"""Peak memory of a render process, per input format and bit depth.

    uv run python bench/render_memory.py [--megapixels 100] [--full-frame-megapixels 24]

Each input is rendered once to the default presets by a fresh process, whose peak RSS (VmHWM)
is read from /proc. `over baseline` is that peak less the same process's peak on a tiny PNG and
less the input's own bytes (which the worker holds while it renders): what the decode costs.
Formats libvips streams or decodes at reduced scale stay near constant; formats that need the
whole frame decoded cost bytes per pixel, the figure that turns into their pixel limits
(bench/README.md holds the measured table; worker/costs.py the limits drawn from it).

Inputs are generated (smooth colour fields with fine noise: photo-like, compressible enough
that the input bytes do not dominate). HEIC, AVIF and lossless WebP are encoded at a smaller
size, since encoding 100 MP of any of them takes minutes; their cost is per pixel, so the size
does not matter.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
import pyvips
from PIL import Image

MIB = 1024 * 1024

# Quarantine's pixel limits are set off: what is measured is what the render itself costs.
PROBE = """
import sys
from worker.renditions import Limits, render
data = open(sys.argv[1], "rb").read()
render(data, limits=Limits(memory_bytes=64 * 2**30))
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
"""


@dataclass(frozen=True)
class Case:
    label: str
    bits: int
    full_frame: bool  # needs the whole frame decoded (no streaming, no shrink-on-load)
    encode: Callable[[pyvips.Image], bytes]
    # Encoded at --full-frame-megapixels rather than --megapixels: too slow to encode at 100 MP.
    small: bool = False
    # Photo-like by default. A GIF of a photograph at 100 MP takes longer to encode than the
    # run has, and libnsgif holds the whole frame as RGBA whatever the picture. (Not so
    # lossless WebP: a palette of a few colours packs up to 8 pixels to the word its decoder
    # holds for each, so a flat picture would understate what a photograph costs.)
    flat: bool = False


def photo_field(width: int, height: int, *, bits: int = 8, seed: int = 3) -> pyvips.Image:
    """Colour clouds upscaled from a small Perlin field, plus fine Gaussian noise."""
    small_w, small_h = max(16, width // 64), max(16, height // 64)
    bands = [
        pyvips.Image.perlin(small_w, small_h, cell_size=max(4, small_w // 6), seed=seed + band)
        for band in range(3)
    ]
    coarse = (bands[0].bandjoin(bands[1:]) * 100 + 128).resize(
        width / small_w, vscale=height / small_h, kernel="cubic"
    )
    fine = pyvips.Image.gaussnoise(width, height, sigma=3, mean=0, seed=seed)
    image = (coarse + fine).cast("uchar").copy(interpretation="srgb")
    if bits == 16:
        return (image.cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16")
    return image


def flat_field(width: int, height: int) -> pyvips.Image:
    """Four colour blocks: a few KB as lossless WebP or GIF whatever the size, as an attacker's
    file is."""
    block = pyvips.Image.black(width // 2, height // 2, bands=3)
    blocks = [block + colour for colour in ([200, 60, 30], [30, 160, 90], [40, 70, 200], [240] * 3)]
    image = pyvips.Image.arrayjoin(blocks, across=2)
    return image.cast("uchar").copy(interpretation="srgb")


def heic(image: pyvips.Image) -> bytes:
    pillow = Image.frombytes("RGB", (image.width, image.height), image.write_to_memory())
    buffer = io.BytesIO()
    pillow_heif.from_pillow(pillow).save(buffer, quality=60)
    return buffer.getvalue()


CASES: tuple[Case, ...] = (
    Case("JPEG baseline", 8, False, lambda image: image.jpegsave_buffer(Q=90)),
    Case(
        "JPEG progressive",
        8,
        True,
        lambda image: image.jpegsave_buffer(Q=90, interlace=True, subsample_mode="off"),
    ),
    Case(
        "JPEG prog. 4:2:0",
        8,
        True,
        lambda image: image.jpegsave_buffer(Q=90, interlace=True, subsample_mode="on"),
    ),
    Case("PNG", 8, False, lambda image: image.pngsave_buffer(compression=1)),
    Case("PNG", 16, False, lambda image: image.pngsave_buffer(compression=1)),
    Case("PNG interlaced", 8, True, lambda i: i.pngsave_buffer(compression=1, interlace=True)),
    Case("PNG interlaced", 16, True, lambda i: i.pngsave_buffer(compression=1, interlace=True)),
    Case("WebP lossy", 8, False, lambda image: image.webpsave_buffer(Q=80, effort=0)),
    Case(
        "WebP lossless",
        8,
        True,
        lambda image: image.webpsave_buffer(lossless=True, effort=0),
        small=True,
    ),
    Case("GIF", 8, True, lambda image: image.gifsave_buffer(effort=1, dither=0), flat=True),
    Case("HEIC", 8, True, heic, small=True),
    Case(
        "AVIF",
        8,
        True,
        lambda image: image.heifsave_buffer(Q=50, compression="av1", effort=0),
        small=True,
    ),
    Case(
        "AVIF",
        10,
        True,
        lambda i: i.heifsave_buffer(Q=50, compression="av1", effort=0, bitdepth=10),
        small=True,
    ),
)


def peak_rss(path: Path) -> int:
    """VmHWM of a fresh process that renders the file once, in bytes. (A child's ru_maxrss is
    not its own: exec() folds the parent's high-water mark into it.)"""
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
    )
    return int(completed.stdout) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--megapixels", type=int, default=100)
    parser.add_argument(
        "--full-frame-megapixels", type=int, default=24, help="HEIC, AVIF and lossless WebP"
    )
    parser.add_argument("--only", default="", help="just the inputs whose label contains this")
    args = parser.parse_args()
    print_table(args.megapixels, args.full_frame_megapixels, args.only)


def print_table(megapixels: int, small_megapixels: int, only: str = "") -> None:
    with tempfile.TemporaryDirectory() as folder:
        tiny = Path(folder) / "tiny.png"
        tiny.write_bytes(photo_field(64, 64).pngsave_buffer())
        baseline = peak_rss(tiny)
        print(f"\npeak RSS of a render process (baseline: {baseline / MIB:.0f} MiB on a tiny PNG)")
        print(
            f"{'input':<18}{'bits':>5}{'size':>13}{'input MiB':>11}{'peak MiB':>10}"
            f"{'over baseline':>15}{'bytes/pixel':>13}"
        )
        for case in (case for case in CASES if only in case.label):
            side = round((small_megapixels if case.small else megapixels) ** 0.5 * 1000)
            if case.flat:
                data = case.encode(flat_field(side, side))
            else:
                data = case.encode(photo_field(side, side, bits=case.bits))
            path = Path(folder) / "input"
            path.write_bytes(data)
            peak = peak_rss(path)
            over = peak - baseline - len(data)
            per_pixel = f"{over / side**2:>13.2f}" if case.full_frame else f"{'streams':>13}"
            print(
                f"{case.label:<18}{case.bits:>5}{f'{side}x{side}':>13}{len(data) / MIB:>11.1f}"
                f"{peak / MIB:>10.0f}{over / MIB:>15.0f}{per_pixel}",
                flush=True,
            )


if __name__ == "__main__":
    main()
