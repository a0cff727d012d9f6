"""What a library transcode costs in CPU seconds, with today's caps and without them.

    uv run python -m bench.transcode                 # 30 s of 720p60, 2 runs each
    uv run python -m bench.transcode --seconds 10 --runs 1

Writes one 720p60 clip with PyAV (a static picture and a tone, so it is small: what an
upload costing the most per byte looks like), then transcodes it in this process with
the caps the worker applies (``VIDEOCHAT_MEDIA__TRANSCODE_MAX_FRAME_RATE``,
``__TRANSCODE_THREADS``) and with them lifted (the source's frame rate, ffmpeg's
automatic thread count), reporting CPU seconds (user + system, every thread) and
peak memory. CPU seconds, not wall time: the machine may be shared.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from tests.media import samples

from videochat.config import MediaSettings
from videochat.media.probe import MediaLimits
from videochat.media.transcode import transcode_to_hls


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(source: Path, *, capped: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one transcode."""
    media = MediaSettings()
    with tempfile.TemporaryDirectory() as folder:
        cpu, wall = _cpu_seconds(), time.monotonic()
        transcode_to_hls(
            source,
            Path(folder) / "out",
            limits=MediaLimits.from_settings(media),
            max_frame_rate=media.transcode_max_frame_rate if capped else 1000,
            threads=media.transcode_threads if capped else 0,
        )
        return _cpu_seconds() - cpu, time.monotonic() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = samples.write_video(
            Path(folder) / "clip.mp4",
            width=1280,
            height=720,
            fps=60,
            seconds=args.seconds,
            marker=True,
        )
        size = source.stat().st_size
        print(f"source: {args.seconds:g} s of 1280x720 at 60 fps, {size / 1e6:.1f} MB")
        for capped in (False, True):
            label = "capped  " if capped else "uncapped"
            for _ in range(args.runs):
                cpu, wall = _run(source, capped=capped)
                print(f"{label} cpu {cpu:5.1f} s  wall {wall:5.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
