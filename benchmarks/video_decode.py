"""Sparse frame decoding: storm-hf's VideoReader vs transformers' PyAV loader vs decord vs decoding every frame.

Makes 2-minute 30 fps videos (cached): H.264 MP4s without B-frames (640x360 and 1280x720, keyframe every 30 and
every 250 frames), and at 640x360 with a keyframe every 30 frames an H.264 MPEG-TS with B-frames (x264's default 3, as
a pyramid) and an HEVC MP4 (x265's defaults: B-frames, open GOPs). Then times, side by side in one process, how long
each method takes to open a video and return the same uniformly sampled frames as RGB arrays (32 and 128 of the
3,600). Every frame shows its own number, so the benchmark also checks that each method returned exactly the frames
asked for. It also measures what a seek costs, in frame decodes (the basis of `SEEK_COST_FRAMES`).

    python benchmarks/video_decode.py
    PYTHONPATH=/path/to/decord python benchmarks/video_decode.py   # decord is optional, timed when importable

Writes benchmarks/results/video-decode-<N>cpu.json and prints a Markdown table.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from transformers.video_utils import load_video

from storm_hf.benchmarking.report import machine_info
from storm_hf.data.video_writer import write_video
from storm_hf.processors.video_decoding import SEEK_COST_FRAMES, VideoReader
from storm_hf.processors.video_processing_storm import StormVideoMetadata, StormVideoProcessor

try:
    import decord
except ImportError:
    decord = None

SECONDS, FPS = 120, 30
NO_B_FRAMES = {"bf": "0"}
VIDEOS = {  # name: (width, height, keyframe interval, bit rate, file suffix, codec, encoder options)
    "640x360 GOP 30": (640, 360, 30, 1_000_000, ".mp4", "libx264", NO_B_FRAMES),
    "640x360 GOP 250": (640, 360, 250, 1_000_000, ".mp4", "libx264", NO_B_FRAMES),
    "1280x720 GOP 30": (1280, 720, 30, 3_000_000, ".mp4", "libx264", NO_B_FRAMES),
    "1280x720 GOP 250": (1280, 720, 250, 3_000_000, ".mp4", "libx264", NO_B_FRAMES),
    "640x360 GOP 30 B-frames, MPEG-TS": (640, 360, 30, 1_000_000, ".ts", "libx264", {}),
    "640x360 GOP 30 HEVC B-frames": (640, 360, 30, 1_000_000, ".mp4", "libx265", {}),
}
FRAME_COUNTS = (32, 128)


CELL = 16  # the frame number is drawn top left as a 4x4 grid of CELL-pixel black/white squares (16 bits)


def synthetic_frames(num_frames: int, width: int, height: int):
    """Moving gradients, a moving square and light noise (motion everywhere, like camera footage), and the frame
    number drawn top left so that every decoded frame can be identified."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.integers(0, 8, size=(4, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        t = index / FPS
        frame = np.empty((height, width, 3), np.uint8)
        frame[..., 0] = (cols / width * 255 + 2 * index) % 256
        frame[..., 1] = (rows / height * 255 + index) % 256
        frame[..., 2] = 128 + 100 * np.sin(cols / 40 + t) * np.cos(rows / 30 - t)
        x, y = int(width / 2 + width / 3 * np.sin(t)), int(height / 2 + height / 3 * np.cos(0.7 * t))
        frame[max(y - 40, 0) : y + 40, max(x - 40, 0) : x + 40] = (255, 255, 0)
        frame += noise[index % 4]
        bits = ((index >> np.arange(16)) & 1).reshape(4, 4).astype(np.uint8) * 255
        frame[: 4 * CELL, : 4 * CELL] = bits.repeat(CELL, axis=0).repeat(CELL, axis=1)[..., None]
        yield frame


def frame_numbers(frames: np.ndarray) -> list[int]:
    """The frame numbers drawn by `synthetic_frames`, read from (N, H, W, 3) RGB frames."""
    centers = frames[:, CELL // 2 : 4 * CELL : CELL, CELL // 2 : 4 * CELL : CELL].mean(axis=-1) > 127  # (N, 4, 4)
    return (centers.reshape(len(frames), 16) << np.arange(16)).sum(axis=1).tolist()


def make_videos(folder: Path) -> dict[str, Path]:
    paths = {}
    for name, (width, height, gop, bit_rate, suffix, codec, options) in VIDEOS.items():
        b_frames = "nob" if options == NO_B_FRAMES else "b"
        path = folder / f"{width}x{height}-gop{gop}-{codec}-{b_frames}{suffix}"
        if not path.exists():
            print(f"encoding {path} ...", flush=True)
            partial = path.with_name(f"partial-{path.name}")
            write_video(
                partial, synthetic_frames(SECONDS * FPS, width, height), fps=FPS, gop_size=gop, bit_rate=bit_rate,
                codec=codec, options={"preset": "veryfast", **options},
            )
            partial.rename(path)
        paths[name] = path
    return paths


def uniform_indices(total: int, count: int) -> np.ndarray:
    """The frames StormVideoProcessor picks for num_frames=count."""
    metadata = StormVideoMetadata(total_num_frames=total)
    return StormVideoProcessor(temporal_pool_size=1).sample_frames(metadata, num_frames=count)


def ours(path: Path, indices: np.ndarray) -> np.ndarray:
    with VideoReader(path) as reader:
        return reader.read(indices)


def transformers_pyav(path: Path, indices: np.ndarray) -> np.ndarray:
    video, _ = load_video(str(path), backend="pyav", sample_indices_fn=lambda metadata, **kwargs: indices)
    return video


def decord_get_batch(path: Path, indices: np.ndarray) -> np.ndarray:
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    return reader.get_batch(indices.tolist()).asnumpy()


def every_frame(path: Path, indices: np.ndarray) -> np.ndarray:
    """Decode the whole video with PyAV, converting only the wanted frames."""
    wanted, kept = set(indices.tolist()), {}
    with av.open(str(path)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position in wanted:
                kept[position] = frame.to_ndarray(format="rgb24")
    return np.stack([kept[index] for index in indices.tolist()])


METHODS = {"storm-hf VideoReader": ours, "transformers load_video (pyav)": transformers_pyav}
if decord is not None:
    METHODS["decord get_batch"] = decord_get_batch
METHODS["decode every frame (PyAV)"] = every_frame


def seek_cost_in_frames(path: Path) -> float:
    """CPU time of (seek to a keyframe + decode it) minus one forward decode, in units of a forward decode.

    MPEG-TS is entered at a keyframe by its decoding timestamp, other containers by its presentation timestamp (what
    VideoReader settles on for each)."""
    with VideoReader(path) as reader:
        keyframe_pts = reader.index.seek_timestamps[1:-1, 1 if path.suffix == ".ts" else 0]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = time.process_time()
        for count, _ in enumerate(container.decode(stream), 1):
            if count == 600:
                break
        per_frame = (time.process_time() - start) / 600
        targets = keyframe_pts[np.linspace(0, len(keyframe_pts) - 1, 12).astype(int)]
        start = time.process_time()
        for pts in targets.tolist():
            container.seek(pts, stream=stream, backward=True)
            next(container.decode(stream))
        per_seek = (time.process_time() - start) / len(targets)
    return (per_seek - per_frame) / per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=Path(tempfile.gettempdir()) / "storm-hf-video-benchmark")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / f"video-decode-{os.cpu_count()}cpu.json")
    args = parser.parse_args()
    args.videos.mkdir(parents=True, exist_ok=True)
    videos = make_videos(args.videos)

    rows, seek_costs = [], {}
    for name, path in videos.items():
        seek_costs[name] = round(seek_cost_in_frames(path), 2)
        for count in FRAME_COUNTS:
            indices = uniform_indices(SECONDS * FPS, count)
            wall, cpu = {method: [] for method in METHODS}, {method: [] for method in METHODS}
            for repeat in range(args.repeats):
                order = list(METHODS)[repeat % len(METHODS) :] + list(METHODS)[: repeat % len(METHODS)]
                for method in order:
                    start_wall, start_cpu = time.perf_counter(), time.process_time()
                    frames = METHODS[method](path, indices)
                    wall[method].append(time.perf_counter() - start_wall)
                    cpu[method].append(time.process_time() - start_cpu)
                    if repeat == 0:
                        exact = frame_numbers(frames) == indices.tolist()
                        rows.append({"video": name, "frames": count, "method": method, "exact_frames": exact})
            for row in rows[-len(METHODS) :]:
                method = row["method"]
                row.update(seconds=round(min(wall[method]), 4), cpu_seconds=round(min(cpu[method]), 4))
                row.update(all_seconds=[round(t, 4) for t in wall[method]], all_cpu_seconds=[round(t, 4) for t in cpu[method]])
            print(f"{name}, {count} frames: " + ", ".join(f"{r['method']} {r['seconds']:.3f}s" for r in rows[-len(METHODS):]), flush=True)

    result = {
        "command": "python benchmarks/video_decode.py",
        "machine": {
            **machine_info("cpu"),  # the CPU model as /proc/cpuinfo (and lscpu) name it, cores, versions
            "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
            "av": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
            "decord": getattr(decord, "__version__", None),
        },
        "videos": {
            name: {"seconds": SECONDS, "fps": FPS, "width": w, "height": h, "gop": g, "bit_rate": b, "container": suffix,
                   "codec": codec, "encoder_options": {"preset": "veryfast", **options}}
            for name, (w, h, g, b, suffix, codec, options) in VIDEOS.items()
        },
        "repeats": args.repeats,
        "seek_cost_frames_measured": seek_costs,
        "seek_cost_frames_used": SEEK_COST_FRAMES,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(rows, seek_costs)


def print_table(rows: list[dict], seek_costs: dict) -> None:
    """Best-of-N wall seconds (CPU seconds) per method; speed-ups of ours over transformers, wall and CPU."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    print("\n| video | frames | " + " | ".join(methods) + " | ours vs transformers (wall / CPU) |")
    print("|---|---|" + "---|" * len(methods) + "---|")
    for name in dict.fromkeys(row["video"] for row in rows):
        for count in FRAME_COUNTS:
            cells = {row["method"]: row for row in rows if row["video"] == name and row["frames"] == count}
            text = [
                f"{cells[m]['seconds']:.2f} ({cells[m]['cpu_seconds']:.2f})" + ("" if cells[m]["exact_frames"] else " wrong frames")
                for m in methods
            ]
            ours, theirs = cells["storm-hf VideoReader"], cells["transformers load_video (pyav)"]
            speedup = f"{theirs['seconds'] / ours['seconds']:.1f}x / {theirs['cpu_seconds'] / ours['cpu_seconds']:.1f}x"
            print(f"| {name} | {count} | " + " | ".join(text) + f" | {speedup} |")
    print("\nseek cost, in forward frame decodes: " + ", ".join(f"{k}: {v}" for k, v in seek_costs.items()))


if __name__ == "__main__":
    main()
