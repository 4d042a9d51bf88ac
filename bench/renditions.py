"""Rendition speed against libvips at its best and against naive Pillow, in one run, one core.

    uv run python bench/renditions.py [--quick]

The default presets (128/320/640/1280 px WebP q80) from photo-like inputs (gradients, blurred
shapes, noise at two scales: flat images flatter encoders): a smooth 12 MP JPEG, a detailed
16 MP JPEG, a 9 MP PNG, a 16 MP WebP and a 12 MP HEIC. CPU ms per image, best of N rounds in
which picforge and its peers take turns (each ratio is the median of the rounds' ratios), with
libvips on one thread (as in a render process), every peer writing the same four renditions at
the same WebP effort and no metadata:
  picforge   worker.renditions.render: quarantine, decode, cascade, encodes, placeholder
  cascade    libvips: one thumbnail_buffer to 1280 px, then each smaller rendition resized
             from the last that is at least twice its size
  per size   libvips: thumbnail_buffer once per rendition (what imgproxy and sharp do)
  naive      Pillow: per rendition Image.open -> thumbnail -> save (the classic thumbnailer)
libvips cannot decode HEIC (its wheel's libheif has no HEVC decoder): those peers show n/a.
Then the bytes against libwebp's default effort (4), and an effort sweep. Memory is
bench/render_memory.py.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import time
from collections.abc import Callable
from functools import partial

import pillow_heif
import pyvips
from PIL import Image, ImageChops, ImageDraw, ImageFilter

import worker.renditions
from worker.renditions import CASCADE_MIN_RATIO, DEFAULT_PRESETS, WEBP_EFFORT, render

LANCZOS = Image.Resampling.LANCZOS
LIBWEBP_DEFAULT_EFFORT = 4
QUALITY = 80
NO_METADATA = pyvips.enums.ForeignKeep.NONE
BOXES = sorted((preset.width for preset in DEFAULT_PRESETS), reverse=True)
TARGETS = {"cascade": 0.95, "per size": 1.3, "naive": 2.0}


def photo_like(width: int, height: int, seed: int = 7, *, smooth: bool = False) -> Image.Image:
    rnd = random.Random(seed)
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, red.transpose(Image.Transpose.ROTATE_180)))
    shapes = Image.new("RGB", (width // 8, height // 8))
    draw = ImageDraw.Draw(shapes)
    for _ in range(250):
        x, y = rnd.randrange(width // 8), rnd.randrange(height // 8)
        side = rnd.randrange(4, width // 40)
        colour = tuple(rnd.randrange(256) for _ in range(3))
        draw.ellipse((x, y, x + side, y + side * rnd.uniform(0.5, 1.5)), fill=colour)
    shapes = shapes.filter(ImageFilter.GaussianBlur(1.5)).resize((width, height), LANCZOS)
    image = Image.blend(image, shapes, 0.6)
    coarse = Image.effect_noise((width // 6, height // 6), 40).resize((width, height))
    image = ImageChops.add(image, coarse.convert("RGB"), offset=-128)
    if smooth:
        return image.filter(ImageFilter.GaussianBlur(1.2))
    fine = Image.effect_noise((width, height), 16)
    return ImageChops.add(image, fine.convert("RGB"), offset=-128)


def encoded(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    if image_format == "HEIF":
        pillow_heif.from_pillow(image).save(buffer, quality=90)
    else:
        image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def cpu_seconds(work: Callable[[], object], repeats: int) -> float:
    """Best CPU time of `repeats` runs: per-core cost, robust to other load on the machine."""
    work()  # warm-up: imports, plugin init, caches
    timings = []
    for _ in range(repeats):
        started = time.process_time()
        work()
        timings.append(time.process_time() - started)
    return min(timings)


def interleaved_cpu_seconds(
    contenders: dict[str, Callable[[], object]], rounds: int
) -> dict[str, list[float]]:
    """CPU seconds of each contender in every round, the contenders taking turns within a
    round: the machine's drift (other load, clocks, caches) falls on all of them alike, so the
    ratio of one round's timings compares like with like."""
    for work in contenders.values():
        work()  # warm-up: imports, plugin init, caches
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, work in contenders.items():
            started = time.process_time()
            work()
            timings[name].append(time.process_time() - started)
    return timings


def webp(image: pyvips.Image) -> bytes:
    return bytes(image.webpsave_buffer(Q=QUALITY, effort=WEBP_EFFORT, keep=NO_METADATA))


def libvips_per_size(data: bytes) -> list[bytes]:
    return [webp(pyvips.Image.thumbnail_buffer(data, box, height=box)) for box in BOXES]


def libvips_cascade(data: bytes) -> list[bytes]:
    sources = [pyvips.Image.thumbnail_buffer(data, BOXES[0], height=BOXES[0]).copy_memory()]
    outputs = [webp(sources[0])]
    for box in BOXES[1:]:
        source = next(s for s in reversed(sources) if max(s.width, s.height) >= 2 * box - 1)
        scale = box / max(source.width, source.height)
        resized = source.resize(scale).copy_memory() if scale < 1 else source
        sources.append(resized)
        outputs.append(webp(resized))
    return outputs


def naive_pillow(data: bytes) -> list[bytes]:
    outputs = []
    for box in BOXES:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((box, box), LANCZOS)
            outputs.append(encoded(image, "WEBP", quality=QUALITY, method=WEBP_EFFORT))
    return outputs


def render_bytes(data: bytes, effort: int) -> int:
    """Bytes of all distinct renditions with picforge's pipeline at another WebP effort."""
    saved = worker.renditions.WEBP_EFFORT
    worker.renditions.WEBP_EFFORT = effort  # read at each encode
    try:
        result = render(data)
    finally:
        worker.renditions.WEBP_EFFORT = saved
    return sum(len(r.data) for r in result.renditions if r.shares_with is None)


def make_inputs() -> dict[str, bytes]:
    print("generating photo-like inputs ...", flush=True)
    smooth = photo_like(4000, 3000, smooth=True)
    detailed = photo_like(4896, 3264, seed=8)
    return {
        "12 MP JPEG, smooth": encoded(smooth, "JPEG", quality=90),
        "16 MP JPEG, detailed": encoded(detailed, "JPEG", quality=90),
        "9 MP PNG": encoded(photo_like(3672, 2448, seed=9), "PNG", compress_level=6),
        "16 MP WebP": encoded(detailed, "WEBP", quality=90),
        "12 MP HEIC": encoded(photo_like(4032, 3024, seed=10), "HEIF"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no effort sweep")
    args = parser.parse_args()
    repeats = 3 if args.quick else 15
    inputs = make_inputs()

    print(
        f"\nCPU ms per image, one core, best of {repeats} rounds taken in turn; "
        "ratio = median over the rounds of peer time / picforge time"
    )
    header = f"{'input':<22}{'picforge':>9}{'cascade':>14}{'per size':>14}{'naive':>14}"
    print(header)
    worst = {peer: float("inf") for peer in TARGETS}
    for label, data in inputs.items():
        contenders: dict[str, Callable[[], object]] = {"picforge": partial(render, data)}
        peers: dict[str, Callable[[bytes], object]] = {
            "cascade": libvips_cascade,
            "per size": libvips_per_size,
            "naive": naive_pillow,
        }
        for peer, work in peers.items():
            if "HEIC" not in label or peer == "naive":
                contenders[peer] = partial(work, data)
        timings = interleaved_cpu_seconds(contenders, repeats)
        ours = timings["picforge"]
        row = f"{label:<22}{min(ours) * 1e3:>9.0f}"
        for peer in peers:
            if peer not in timings:
                row += f"{'n/a':>14}"
                continue
            ratio = statistics.median(t / o for t, o in zip(timings[peer], ours, strict=True))
            worst[peer] = min(worst[peer], ratio)
            row += f"{min(timings[peer]) * 1e3:>7.0f} {ratio:>5.2f}x"
        print(row, flush=True)

    print(f"\nbytes of all renditions, effort {WEBP_EFFORT} against libwebp's default (4)")
    worst_growth = -1.0
    for label, data in inputs.items():
        ours_bytes, default_bytes = render_bytes(data, WEBP_EFFORT), render_bytes(data, 4)
        growth = ours_bytes / default_bytes - 1
        worst_growth = max(worst_growth, growth)
        print(f"  {label:<22}{ours_bytes:>10,} vs {default_bytes:>10,}  {growth:+.1%}")

    data = inputs["16 MP JPEG, detailed"]
    print("\nWebP effort sweep, picforge on the 16 MP JPEG (render CPU ms, bytes)")
    for effort in range(0 if args.quick else 7):
        saved = worker.renditions.WEBP_EFFORT
        worker.renditions.WEBP_EFFORT = effort
        try:
            seconds = cpu_seconds(partial(render, data), max(2, repeats // 2))
        finally:
            worker.renditions.WEBP_EFFORT = saved
        print(f"  effort {effort}: {seconds * 1e3:6.0f} ms  {render_bytes(data, effort):>9,} bytes")

    print("\ntargets (worst input)")
    for peer, target in TARGETS.items():
        met = "MET" if worst[peer] >= target else "NOT MET"
        print(f"  >= {target}x {peer:<9} {worst[peer]:.2f}x  {met}")
    met = "MET" if worst_growth <= 0.05 else "NOT MET"
    print(f"  bytes <= +5% vs default effort: {worst_growth:+.1%}  {met}")
    print(f"  (load average while running: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    assert CASCADE_MIN_RATIO == 2.0  # the cascade peer resizes by the same rule
    main()
