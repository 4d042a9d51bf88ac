"""Rendition throughput against the naive approach and against the floor, in one run.

    uv run python bench/renditions.py [--quick]

Per core, for the default presets on a 12 MP JPEG, a 24 MP JPEG and a 12 MP PNG (synthetic,
photo-like: gradients + shapes + noise at two scales, because flat images make encoders look
fast):
  ours   worker.renditions.render (validation, draft decode, cascade, placeholder included)
  naive  per preset: Image.open -> thumbnail -> save, reopening the bytes each time (the classic
         Lambda thumbnailer), same sizes, format and quality, Pillow's default WebP effort
  floor  the draft decode, the cascade's resizes and the encodes of the same outputs, each
         timed alone and summed: what the pixels cost with no overhead at all
Then bytes against libwebp's default effort, a worker's peak RSS on the 24 MP JPEG (a fresh
process), and 2 worker processes against 1. Prints each target and whether it is met.
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from worker.decoding import DRAFT_SAFETY_FACTOR
from worker.renditions import CASCADE_MIN_RATIO, DEFAULT_PRESETS, WEBP_METHOD, Preset, render

LANCZOS = Image.Resampling.LANCZOS
PILLOW_DEFAULT_WEBP_METHOD = 4

# NOTE: the child's ru_maxrss is not its own: exec() folds the parent's high-water mark into
# it (557 MiB here, the bench's own peak). VmHWM belongs to the new program image alone.
RSS_PROBE = """
import resource, sys
from worker.renditions import render
data = open(sys.argv[1], "rb").read()
render(data)
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def photo_like(width: int, height: int, seed: int = 7) -> Image.Image:
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
    fine = Image.effect_noise((width, height), 16)
    image = ImageChops.add(image, coarse.convert("RGB"), offset=-128)
    return ImageChops.add(image, fine.convert("RGB"), offset=-128)


def encoded(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def cpu_seconds(work: Callable[[], object], repeats: int) -> float:
    """Best CPU time of `repeats` runs: per-core cost, robust to other load on the machine
    (the decoders and encoders here are single-threaded, so CPU time is their wall time alone)."""
    work()  # warm-up: imports, plugin init, caches
    timings = []
    for _ in range(repeats):
        started = time.process_time()
        work()
        timings.append(time.process_time() - started)
    return min(timings)


def naive(data: bytes, presets: tuple[Preset, ...]) -> list[bytes]:
    outputs = []
    for preset in presets:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((preset.width, preset.height), LANCZOS)
            outputs.append(encoded(image, "WEBP", quality=preset.quality))
    return outputs


def floor_parts(
    data: bytes, sizes: list[tuple[int, int]], repeats: int, webp_method: int = WEBP_METHOD
) -> tuple[float, float, float, list[Image.Image]]:
    """Seconds for the draft decode, the cascade's resizes and the encodes, each alone."""
    with Image.open(io.BytesIO(data)) as probe:
        full_size = probe.size
    factor = min(1.0, max(w / full_size[0] for w, _ in sizes) * DRAFT_SAFETY_FACTOR)
    request = (math.ceil(full_size[0] * factor), math.ceil(full_size[1] * factor))

    def decode() -> Image.Image:
        image = Image.open(io.BytesIO(data))  # in-memory: nothing to close
        image.draft("RGB", request)
        image.load()
        return image

    base = decode()
    decode_s = cpu_seconds(decode, repeats)

    def resize_all() -> list[Image.Image]:
        sources, outputs = [base], []
        for size in sizes:  # largest first, each from the smallest source at least 2x larger
            source = next(
                (s for s in reversed(sources) if s.width >= CASCADE_MIN_RATIO * size[0]), base
            )
            resized = source if source.size == size else source.resize(size, LANCZOS)
            sources.append(resized)
            outputs.append(resized)
        return outputs

    resized = resize_all()
    resize_s = cpu_seconds(resize_all, repeats)
    encode_s = sum(
        cpu_seconds(partial(encoded, im, "WEBP", quality=80, method=webp_method), repeats)
        for im in resized
    )
    return decode_s, resize_s, encode_s, resized


def peak_rss_mib(path: Path) -> tuple[float, float]:
    """(VmHWM, ru_maxrss) of a fresh process that renders the file once, in MiB."""
    completed = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(path)], capture_output=True, text=True, check=True
    )
    high_water_kib, maxrss_kib = completed.stdout.split()
    return int(high_water_kib) / 1024, int(maxrss_kib) / 1024


def pool_throughput(data: bytes, workers: int, jobs: int) -> float:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(render, [data] * workers))  # warm every worker
        started = time.perf_counter()
        list(pool.map(render, [data] * jobs))
        return jobs / (time.perf_counter() - started)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, about a minute")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    presets = DEFAULT_PRESETS

    print("generating synthetic photos ...", flush=True)
    twelve = photo_like(4000, 3000)
    inputs = {
        "12 MP JPEG": encoded(twelve, "JPEG", quality=90),
        "24 MP JPEG": encoded(photo_like(6000, 4000, seed=8), "JPEG", quality=90),
        "12 MP PNG": encoded(twelve, "PNG", compress_level=1),
    }
    del twelve

    print(f"\nimages/second per core (CPU time, best of {repeats}), default presets")
    print(f"{'input':<12}{'ours':>8}{'naive':>8}{'floor':>8}{'ours/floor':>12}{'ours/naive':>12}")
    results: dict[str, tuple[float, float, float]] = {}
    byte_ratios: list[tuple[str, int, int]] = []
    for label, data in inputs.items():
        result = render(data)
        sizes = [(r.width, r.height) for r in sorted(result.renditions, key=lambda r: -r.width)]
        ours_s = cpu_seconds(partial(render, data), repeats)
        naive_s = cpu_seconds(partial(naive, data, presets), max(2, repeats // 2))
        decode_s, resize_s, encode_s, resized = floor_parts(data, sizes, repeats)
        floor_s = decode_s + resize_s + encode_s
        results[label] = (ours_s, naive_s, floor_s)
        print(
            f"{label:<12}{1 / ours_s:>8.2f}{1 / naive_s:>8.2f}{1 / floor_s:>8.2f}"
            f"{floor_s / ours_s:>11.0%} {naive_s / ours_s:>10.2f}x"
            f"   (floor: decode {decode_s * 1e3:.0f} + resize {resize_s * 1e3:.0f}"
            f" + encode {encode_s * 1e3:.0f} ms)"
        )
        ours_bytes = sum(len(r.data) for r in result.renditions if r.shares_with is None)
        default_bytes = sum(
            len(encoded(im, "WEBP", quality=80, method=PILLOW_DEFAULT_WEBP_METHOD))
            for im in {im.size: im for im in resized}.values()
        )
        byte_ratios.append((label, ours_bytes, default_bytes))

    print(f"\nWebP method sweep on the 12 MP JPEG's renditions (chosen: method {WEBP_METHOD})")
    data = inputs["12 MP JPEG"]
    sizes = [(r.width, r.height) for r in sorted(render(data).renditions, key=lambda r: -r.width)]
    *_, resized = floor_parts(data, sizes, 1)
    for method in range(7):
        seconds = sum(
            cpu_seconds(partial(encoded, im, "WEBP", quality=80, method=method), repeats)
            for im in resized
        )
        size = sum(len(encoded(im, "WEBP", quality=80, method=method)) for im in resized)
        print(f"  method {method}: {seconds * 1e3:6.1f} ms  {size:>9,} bytes")

    print("\nbytes of all renditions vs libwebp's default effort (method 4)")
    for label, ours_bytes, default_bytes in byte_ratios:
        growth = ours_bytes / default_bytes - 1
        print(f"  {label:<12}{ours_bytes:>10,} vs {default_bytes:>10,}  {growth:+.1%}")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "24mp.jpg"
        path.write_bytes(inputs["24 MP JPEG"])
        rss, maxrss = peak_rss_mib(path)
    print(
        f"\npeak RSS of a fresh worker process rendering the 24 MP JPEG: {rss:.0f} MiB"
        f" (VmHWM; its ru_maxrss, inflated by this parent: {maxrss:.0f} MiB)"
    )

    jobs = 8 if args.quick else 16
    one = pool_throughput(inputs["12 MP JPEG"], 1, jobs)
    two = pool_throughput(inputs["12 MP JPEG"], 2, jobs)
    print(f"\nworker processes, 12 MP JPEG: 1: {one:.2f}/s, 2: {two:.2f}/s ({two / one:.2f}x)")

    ours_s, naive_s, floor_s = results["12 MP JPEG"]
    worst_bytes = max(ours / default - 1 for _, ours, default in byte_ratios)
    floor_share, speedup, scaling = floor_s / ours_s, naive_s / ours_s, two / one
    print("\ntargets")
    print(f"  >= 85% of the floor, 12 MP JPEG:  {floor_share:.0%}  {verdict(floor_share >= 0.85)}")
    print(f"  >= 1.8x naive, 12 MP JPEG:        {speedup:.2f}x  {verdict(speedup >= 1.8)}")
    print(f"  bytes <= +5% vs default effort:   {worst_bytes:+.1%}  {verdict(worst_bytes <= 0.05)}")
    print(f"  peak RSS < 100 MB, 24 MP JPEG:    {rss:.0f} MiB  {verdict(rss * 1.048576 < 100)}")
    print(f"  2 processes >= 1.7x one:          {scaling:.2f}x  {verdict(scaling >= 1.7)}")
    print(f"  (load average while running: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
