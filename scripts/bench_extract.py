"""Extraction throughput and memory, side by side on the same generated videos.

Default mode (``--mode speed``): for each backbone (default resnet18 and resnet50 at 224,
random init, no download), on real-size H.264 videos written here (640x480 and 1280x720,
moving colour content, B-frames), every frame:

- the reference: the common per-frame approach (serial decode, per-frame PIL resize, crop
  and normalise, float32 NCHW model on batches of ``--reference_batch_size``, nothing
  overlapped; like v-iashin/video_features);
- backbone only: preloaded preprocessed frames through :class:`FeatureRunner`;
- end to end: ``run_extraction`` with float32 and with ``precision: auto`` (bfloat16 on a
  CPU with native bfloat16 when the parity check passes);
- the parity check of the fast path on frames of these videos;

and prints our end-to-end frames/s over the reference's. Both sides run in this one process
with the same allocator setting (``tune_malloc``, unless ``--no_tune_malloc``).

``--mode pipeline`` is the extraction issue's benchmark, for one backbone:

1. decode + preprocess only: the DecodePool workers (PyAV, sampling, resize + crop in uint8)
   with nothing downstream;
2. backbone only: the same frames preloaded and preprocessed, batches through the backbone
   (normalise, channels_last, inference_mode) as extraction runs it;
3. end to end: ``run_extraction`` into a temporary cache (decode workers overlapped with the
   backbone, full batches, atomic writes);
4. peak memory (PSS of the main process plus all its descendants, sampled every 0.5 s, in
   separate runs: reading PSS walks page tables and would slow the timed runs) for a short
   and a long video (default 10 minutes), to show whether it grows with length.

Prints frames/s for each and the ratio end-to-end / backbone-only (target >= 0.9 on a 2-core
CPU), with the machine's load average, since other jobs on a shared machine skew every figure.

    python scripts/bench_extract.py                      # speed: ~4-6 minutes on 2 idle cores
    python scripts/bench_extract.py --backbones resnet18 --frames_per_video 60
    python scripts/bench_extract.py --mode pipeline --num_videos 2 --long_minutes 2
    python scripts/bench_extract.py --mode decode --frames_per_video 250 --repeats 5

``--mode decode`` is the frame-exact decoding issue's benchmark: decode-only frames/s for sparse
sampling (uniform 8, segments 16, fps 1) and dense sampling (all), on H.264 MP4, on MPEG-4
AVI with B-frames, and on the same AVIs with packed B-frames (DivX/Xvid, as UCF101 and HMDB51
store them; ``tests/video_factory.py``'s ``pack_bframes``), before (decord ``get_batch``, the
sparse path before frame-exact decoding, wrong on those AVIs) and now
(:class:`~video_eleatt.video.decode.VideoReader`), interleaved. A last table gives now's
packed / plain AVI ratio per sampling.

Pipeline-mode videos are written with tests/video_factory.py (h264, the given size).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- memory


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    table[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return table


def _pss(pid: int) -> int:
    """Proportional set size in bytes: pages shared by n processes count 1/n each, so the
    sum over the workers forked from one server does not count torch's pages n times."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(root_pid: int) -> tuple[int, int, int]:
    """Memory (PSS, bytes) of ``root_pid``'s process tree.

    Returns:
        (all of it, ``root_pid`` alone, the largest grandchild): the grandchildren are the
        decode workers (children of the fork server), so the parent and one worker can be
        told apart when the total moves.
    """
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    root = _pss(root_pid)
    total, worker = root, 0
    for child in children.get(root_pid, []):
        total += _pss(child)
        for grandchild in children.get(child, []):
            stack = [grandchild]
            while stack:
                pid = stack.pop()
                pss = _pss(pid)
                total += pss
                worker = max(worker, pss) if pid == grandchild else worker
                stack.extend(children.get(pid, []))
    return total, root, worker


class PeakMemory:
    """Samples ``tree_pss`` of this process in a thread: ``peak`` (whole tree),
    ``parent_peak`` and ``worker_peak`` (largest single decode worker) are the maxima seen."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.peak = self.parent_peak = self.worker_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total, parent, worker = tree_pss(os.getpid())
        self.peak = max(self.peak, total)
        self.parent_peak = max(self.parent_peak, parent)
        self.worker_peak = max(self.worker_peak, worker)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


# ---------------------------------------------------------------------------- measurements


def decode_only(paths, sampling, transform, num_workers, chunk_size) -> tuple[int, float]:
    from video_eleatt.video.pool import DecodePool, DecodeTask, FrameChunk, VideoFailed

    frames = 0
    started = time.perf_counter()
    with DecodePool(num_workers, 600.0, transform=transform, chunk_size=chunk_size) as pool:
        for event in pool.imap(DecodeTask(str(p), str(p), sampling) for p in paths):
            if isinstance(event, FrameChunk):
                frames += len(event.frames)
            elif isinstance(event, VideoFailed):
                raise RuntimeError(event.reason)
    return frames, time.perf_counter() - started


def end_to_end(config, output_root) -> tuple[int, float]:
    from video_eleatt.features.extract import run_extraction

    config.output_root = str(output_root)
    summary = run_extraction(config)
    if summary.failed:
        raise RuntimeError(f"extraction failed: {summary.failures}")
    return summary.frames, summary.seconds


# ---------------------------------------------------------------------------- speed mode


def write_motion_video(path: Path, num_frames: int, size: tuple[int, int], fps: int, seed: int):
    """A real-looking clip: moving colour gradients, a moving block and noise (yuv420p).

    ``.mp4``: H.264, x264 "veryfast" with B-frames, crf 23. ``.avi``: MPEG-4 Part 2 with two
    B-frames between references and a keyframe every 12 frames, as Xvid/DivX wrote HMDB51.
    """
    import av
    import numpy as np

    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        if path.suffix == ".avi":
            stream = container.add_stream("mpeg4", rate=fps)
            stream.codec_context.max_b_frames = 2
            stream.codec_context.gop_size = 12
        else:
            stream = container.add_stream("libx264", rate=fps)
            stream.options = {"preset": "veryfast", "crf": "23"}
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(num_frames):
            image = np.stack(
                [
                    (xx + 4 * i + seed * 40) % 256,
                    (yy + 2 * i) % 256,
                    ((xx + yy) // 2 + 3 * i) % 256,
                ],
                axis=-1,
            ).astype(np.uint8)
            cx = width // 2 + int(width / 3 * np.sin(i / 10 + seed))
            cy = height // 2 + int(height / 3 * np.cos(i / 13))
            image[max(0, cy - 60) : cy + 60, max(0, cx - 60) : cx + 60] = (230, 40, 40)
            image = np.clip(image + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def reference_extract(paths, backbone, batch_size: int):
    """The common per-frame approach: decode one frame, PIL-preprocess it, and run the
    float32 NCHW model on each batch of ``batch_size`` frames as it fills; one step after
    another, nothing prefetched or overlapped.

    Returns:
        ({path: (T, D) float32 features}, frames, seconds).
    """
    import av
    import torch
    from PIL import Image

    from video_eleatt.features.preprocess import pil_transform

    transform = pil_transform(backbone.preprocess)
    model = backbone.model.float().to(memory_format=torch.contiguous_format).eval()
    features, frames = {}, 0
    started = time.perf_counter()
    for path in paths:
        outputs, batch = [], []
        with av.open(str(path)) as container, torch.no_grad():
            for frame in container.decode(video=0):
                batch.append(transform(Image.fromarray(frame.to_ndarray(format="rgb24"))))
                if len(batch) == batch_size:
                    outputs.append(model(torch.stack(batch)))  # (B, D)
                    batch = []
            if batch:
                outputs.append(model(torch.stack(batch)))
        features[str(path)] = torch.cat(outputs)  # (T, D)
        frames += len(features[str(path)])
    return features, frames, time.perf_counter() - started


def speed_main(args) -> None:
    import torch

    from video_eleatt.features.backbones import BackboneConfig, build_backbone
    from video_eleatt.features.config import ExtractConfig
    from video_eleatt.features.precision import candidate_precision, parity_check
    from video_eleatt.features.preprocess import FramePreprocess
    from video_eleatt.features.runner import FeatureRunner
    from video_eleatt.features.tuning import tune_malloc, warm_decode_workers
    from video_eleatt.video.sampling import SamplingConfig

    tuned = tune_malloc() if not args.no_tune_malloc else False
    _print_machine(torch)
    print(
        f"allocator: {'tuned (mmap off, high trim threshold)' if tuned else 'glibc defaults'}"
        " for every measurement below"
    )
    warm_decode_workers()
    with tempfile.TemporaryDirectory() as tmp:
        video_dir = Path(tmp) / "videos"
        sizes = [(640, 480), (1280, 720)]
        paths = [
            write_motion_video(
                video_dir / f"v{i}_{sizes[i % 2][0]}x{sizes[i % 2][1]}.mp4",
                args.frames_per_video,
                sizes[i % 2],
                25,
                seed=i,
            )
            for i in range(args.num_videos)
        ]
        print(
            f"videos: {args.num_videos} H.264 clips of {args.frames_per_video} frames at 25 fps, "
            f"half 640x480, half 1280x720 (yuv420p, crf 23, B-frames); every frame, input 224"
        )
        sampling = SamplingConfig(mode="all")
        results = {}
        for name in args.backbones:
            backbone_config = BackboneConfig(name, "timm", weights="random")
            backbone = build_backbone(backbone_config)
            candidate = candidate_precision(torch.device("cpu"))
            transform = FramePreprocess(backbone.preprocess, output="uint8")
            frames = _preload(paths, sampling, transform)
            report = parity_check(
                backbone,
                frames[:: max(1, len(frames) // 32)][:32],
                torch.device("cpu"),
                candidate,
            )
            auto = candidate if report.passed else "float32"
            print(f"\n== {name} (random init), batch {args.batch_size}")
            print(f"parity on frames of these videos: {report.describe()}")
            print(f"precision auto -> {auto}")
            runs = {"reference": [], "float32": [], auto: []}
            backbone_rates = {}
            for precision in dict.fromkeys(["float32", auto]):
                runner = FeatureRunner(backbone, torch.device("cpu"), precision)
                backbone_rates[precision] = _backbone_only(frames, runner, args.batch_size)
            for repeat in range(args.repeats):  # alternate: other jobs come and go
                reference = build_backbone(backbone_config)
                _, count, seconds = reference_extract(paths, reference, args.reference_batch_size)
                runs["reference"].append(count / seconds)
                for precision in dict.fromkeys(["float32", auto]):
                    config = ExtractConfig(
                        videos=str(video_dir),
                        backbone=backbone_config,
                        sampling=sampling,
                        batch_size=args.batch_size,
                        num_workers=args.num_workers,
                        chunk_size=args.chunk_size,
                        precision=precision,
                        device="cpu",
                        progress=False,
                        output_root=str(Path(tmp) / f"cache_{name}_{precision}_{repeat}"),
                        tune_malloc=not args.no_tune_malloc,
                    )
                    runs[precision].append(_end_to_end_rate(config))
            best = {key: max(values) for key, values in runs.items()}
            ref = best["reference"]
            print(f"reference (per-frame PIL, float32 NCHW): {ref:7.1f} frames/s")
            for precision in dict.fromkeys(["float32", auto]):
                e2e = best[precision]
                print(
                    f"ours end to end, {precision:9s}:           {e2e:7.1f} frames/s = "
                    f"{e2e / ref:.2f} x reference; backbone only {backbone_rates[precision]:.1f}"
                    f" frames/s (e2e / backbone {e2e / backbone_rates[precision]:.2f})"
                )
            results[name] = (best, auto, report)
        print("\ntargets (issue 8; end to end over the reference, same videos, same run):")
        for name, (best, auto, report) in results.items():
            ref = best["reference"]
            f32 = best["float32"] / ref
            fast = best[auto] / ref
            parity = "parity ok" if report.passed else "parity failed"
            if name == "resnet18":
                print(f"  resnet18 float32 >= 2x: {f32:.2f}x {'MET' if f32 >= 2 else 'NOT MET'}")
                verdict = "MET" if fast >= 3 else "NOT MET"
                print(f"  resnet18 {auto} ({parity}) >= 3x: {fast:.2f}x {verdict}")
            else:
                verdict = "MET" if fast >= 2 else "NOT MET"
                print(
                    f"  {name} >= 2x: {auto} ({parity}) {fast:.2f}x {verdict}; float32 {f32:.2f}x"
                )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _print_machine(torch) -> None:
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}"
    )
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        "  (other jobs on this machine lower every figure below; ratios are side by side)"
    )


def _preload(paths, sampling, transform):
    import torch

    from video_eleatt.video.decode import VideoReader
    from video_eleatt.video.sampling import sample_frame_indices

    chunks = []
    for path in paths:
        reader = VideoReader(path)
        indices = sample_frame_indices(
            reader.info.num_frames, reader.info.fps, sampling, reader.frame_timestamps()
        )
        chunks += [transform(frames) for _, frames in reader.iter_frames(indices)]
    return torch.cat(chunks)  # (N, 3, h, w) uint8


def _backbone_only(images, runner, batch_size) -> float:
    usable = max(batch_size, len(images) // batch_size * batch_size)
    runner(images[:batch_size])  # warm-up (oneDNN primitive creation)
    started = time.perf_counter()
    for start in range(0, usable, batch_size):
        runner(images[start : start + batch_size])
    return usable / (time.perf_counter() - started)


def _end_to_end_rate(config) -> float:
    from video_eleatt.features.extract import run_extraction

    summary = run_extraction(config)
    if summary.failed:
        raise RuntimeError(f"extraction failed: {summary.failures}")
    return summary.frames / summary.seconds


# ---------------------------------------------------------------------------- decode mode


def decord_as_before(path, sampling, chunk_size: int) -> int:
    """The decode path before frame-exact decoding, for sparse requests: decord's timestamps
    when they look usable (else index / fps), then ``get_batch`` in sorted chunks, each
    followed by ``seek(0)``. Wrong on B-frame AVIs; timed here as the speed to stay near."""
    import decord
    import numpy as np

    from video_eleatt.video.sampling import sample_frame_indices, usable_timestamps

    reader = decord.VideoReader(str(path), num_threads=1)
    count = len(reader)
    starts = np.asarray(reader.get_frame_timestamp(np.arange(count)), np.float64)[:, 0]
    fps = float(reader.get_avg_fps())
    reader.get_batch([0])
    reader.seek(0)
    timestamps = starts if usable_timestamps(starts, count) else None
    try:
        indices = sample_frame_indices(count, fps, sampling, timestamps)
    except (MemoryError, ValueError):  # -3.7e17 s "timestamps" on B-frame AVIs
        indices = sample_frame_indices(count, fps, sampling, None)
    for start in range(0, len(indices), chunk_size):
        reader.get_batch(indices[start : start + chunk_size].tolist()).asnumpy()
        reader.seek(0)
    return len(indices)


def exact_now(path, sampling, chunk_size: int) -> int:
    """Today's path: :class:`VideoReader` (PyAV, frame table, checked) as the workers run it."""
    from video_eleatt.video.decode import VideoReader
    from video_eleatt.video.sampling import sample_frame_indices

    reader = VideoReader(path)
    indices = sample_frame_indices(
        reader.info.num_frames, reader.info.fps, sampling, reader.frame_timestamps()
    )
    return sum(len(chunk) for chunk, _ in reader.iter_frames(indices, chunk_size))


def decode_main(args) -> None:
    """Decode-only frames/s, before (decord) and now (exact), interleaved in one process."""
    import statistics

    import torch

    from video_eleatt.video.sampling import SamplingConfig

    torch.set_num_threads(1)
    _print_machine(torch)
    samplings = {
        "uniform 8": SamplingConfig(mode="uniform", num_frames=8),
        "segments 16": SamplingConfig(mode="segments", num_segments=16),
        "fps 1": SamplingConfig(mode="fps", fps=1.0),
        "all (dense)": SamplingConfig(mode="all"),
    }
    width, height = args.size
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {}
        for suffix, label in ((".mp4", "H.264 MP4"), (".avi", "MPEG-4 AVI, B-frames")):
            kinds[label] = [
                write_motion_video(
                    Path(tmp) / f"v{i}{suffix}", args.frames_per_video, (width, height), 25, i
                )
                for i in range(args.num_videos)
            ]
        sys.path.insert(0, str(REPO / "tests"))
        from video_factory import pack_bframes

        kinds["MPEG-4 AVI, packed B"] = [
            pack_bframes(path, path.with_name(f"{path.stem}_packed.avi"))
            for path in kinds["MPEG-4 AVI, B-frames"]
        ]
        now_cpu: dict[tuple[str, str], float] = {}
        print(
            f"videos: {args.num_videos} per kind, {args.frames_per_video} frames at 25 fps, "
            f"{width}x{height}; 1 decoder thread; median of {args.repeats} interleaved rounds, "
            "alternating which side goes first; "
            "frames/s counts the frames delivered (sampled), not the frames decoded.\n"
            "per CPU-s: frames per second of CPU time of this process (all its threads): what "
            "extraction gets when its decode workers keep every core busy. wall: one video at a "
            "time (decord's reader thread runs beside its caller, so it gets a second core)."
        )
        print(
            f"{'video':22s} {'sampling':12s} {'before/CPU-s':>13s} {'now/CPU-s':>10s} "
            f"{'ratio':>6s} {'before/wall-s':>14s} {'now/wall-s':>11s} {'ratio':>6s}"
        )
        for label, paths in kinds.items():
            for name, sampling in samplings.items():
                rates: dict[tuple[str, str], list[float]] = {}
                sides = [("before", decord_as_before), ("now", exact_now)]
                for repeat in range(args.repeats):  # the order alternates: neither side is
                    for side, run in sides[:: 1 if repeat % 2 else -1]:  # always the warm one
                        wall, cpu = time.perf_counter(), time.process_time()
                        frames = sum(run(path, sampling, args.chunk_size) for path in paths)
                        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                        rates.setdefault((side, "cpu"), []).append(frames / cpu)
                        rates.setdefault((side, "wall"), []).append(frames / wall)
                rate = {key: statistics.median(values) for key, values in rates.items()}
                now_cpu[label, name] = rate["now", "cpu"]
                print(
                    f"{label:22s} {name:12s} {rate['before', 'cpu']:13.1f} "
                    f"{rate['now', 'cpu']:10.1f} {rate['now', 'cpu'] / rate['before', 'cpu']:6.2f} "
                    f"{rate['before', 'wall']:14.1f} {rate['now', 'wall']:11.1f} "
                    f"{rate['now', 'wall'] / rate['before', 'wall']:6.2f}"
                )
        print("now, packed / plain B-frame AVI (frames per CPU-s; the target is >= 0.90):")
        for name in samplings:
            plain = now_cpu["MPEG-4 AVI, B-frames", name]
            packed = now_cpu["MPEG-4 AVI, packed B", name]
            print(f"  {name:12s} {packed:8.1f} / {plain:8.1f} = {packed / plain:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("speed", "pipeline", "decode"), default="speed")
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--reference_batch_size", type=int, default=32)
    parser.add_argument("--no_tune_malloc", action="store_true")
    parser.add_argument("--backbone", default="resnet18", help="timm model name (pipeline)")
    parser.add_argument("--num_videos", type=int, default=4)
    parser.add_argument("--frames_per_video", type=int, default=100)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), help="width height")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the videos")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--chunk_size", type=int, default=16)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--long_minutes", type=float, default=10.0)
    parser.add_argument(
        "--long_sample_fps",
        type=float,
        default=1.0,
        help="sampling rate for the short/long memory runs",
    )
    parser.add_argument("--repeats", type=int, default=1, help="best of N for each rate")
    parser.add_argument("--skip_memory", action="store_true")
    args = parser.parse_args()
    # as `video-eleatt extract` runs (see video_eleatt/cli.py); torch is not imported yet
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.mode == "speed":
        speed_main(args)
        return
    if args.mode == "decode":
        decode_main(args)
        return

    sys.path.insert(0, str(REPO / "tests"))
    import torch
    from video_factory import write_index_video

    from video_eleatt.features.backbones import BackboneConfig, build_backbone
    from video_eleatt.features.config import ExtractConfig
    from video_eleatt.features.preprocess import FramePreprocess
    from video_eleatt.features.runner import FeatureRunner
    from video_eleatt.features.tuning import warm_decode_workers
    from video_eleatt.video.sampling import SamplingConfig

    load_before = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}"
    )
    print(
        f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
        "  (other jobs on this machine lower every figure below)"
    )
    warm_decode_workers()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        width, height = args.size
        paths = [
            write_index_video(
                tmp_path / "videos" / f"v{i}.mp4",
                args.frames_per_video,
                fps=args.fps,
                size=(width, height),
                lossless=False,
                seed=i,
            )
            for i in range(args.num_videos)
        ]
        print(
            f"videos: {args.num_videos} x {args.frames_per_video} frames, {width}x{height}, "
            f"{args.fps:g} fps, h264; every frame"
        )
        backbone_config = BackboneConfig(args.backbone, "timm", weights="random")
        backbone = build_backbone(backbone_config)
        sampling = SamplingConfig(mode="all")
        transform = FramePreprocess(backbone.preprocess, output="uint8")
        runner = FeatureRunner(backbone, torch.device("cpu"), args.precision)
        print(
            f"backbone: {args.backbone} (random init), input {backbone.preprocess.crop_size}, "
            f"batch {args.batch_size}, {args.precision}, channels_last, inference_mode"
        )

        frames, seconds = decode_only(paths, sampling, transform, args.num_workers, args.chunk_size)
        decode_fps = frames / seconds
        print(f"decode + preprocess ({args.num_workers} workers):  {decode_fps:8.1f} frames/s")
        config = ExtractConfig(
            videos=str(tmp_path / "videos"),
            backbone=backbone_config,
            sampling=sampling,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            chunk_size=args.chunk_size,
            precision=args.precision,
            device="cpu",
            progress=False,
        )
        # alternate the two, best of `repeats` each: other jobs on a shared machine come and go
        images = _preload(paths, sampling, transform)  # decoded once, outside the timing
        backbone_runs, e2e_runs = [], []
        for repeat in range(args.repeats):
            backbone_runs.append(_backbone_only(images, runner, args.batch_size))
            frames, seconds = end_to_end(config, tmp_path / f"cache_e2e{repeat}")
            e2e_runs.append(frames / seconds)
        backbone_fps, e2e_fps = max(backbone_runs), max(e2e_runs)
        runs = ", ".join(f"{x:.1f}" for x in backbone_runs)
        print(f"backbone only (preloaded frames):    {backbone_fps:8.1f} frames/s  (runs: {runs})")
        runs = ", ".join(f"{x:.1f}" for x in e2e_runs)
        print(f"end to end (extract):                {e2e_fps:8.1f} frames/s  (runs: {runs})")
        ratio = e2e_fps / backbone_fps
        verdict = "meets" if ratio >= 0.9 else "BELOW"
        print(f"end-to-end / backbone-only = {ratio:.2f} ({verdict} the 0.9 target)")

        if not args.skip_memory:
            long_frames = round(args.long_minutes * 60 * 10)
            short_path = write_index_video(
                tmp_path / "short" / "short.mp4",
                100,
                fps=10.0,
                size=(width, height),
                lossless=False,
            )
            long_path = write_index_video(
                tmp_path / "long" / "long.mp4",
                long_frames,
                fps=10.0,
                size=(width, height),
                lossless=False,
            )
            sampling = SamplingConfig(mode="fps", fps=args.long_sample_fps)
            peaks = {}
            for name, path in (
                ("short (10 s)", short_path),
                (f"long ({args.long_minutes:g} min)", long_path),
            ):
                config.videos = str(path.parent)
                config.sampling = sampling
                with PeakMemory(interval_s=0.2) as memory:
                    frames, seconds = end_to_end(config, tmp_path / f"cache_{path.stem}")
                peaks[name] = memory
                print(
                    f"peak memory (PSS), {name} video, {frames} frames at "
                    f"{args.long_sample_fps:g} fps: parent + workers {memory.peak / 2**20:.0f} MiB"
                    f" (parent {memory.parent_peak / 2**20:.0f}, largest decode worker "
                    f"{memory.worker_peak / 2**20:.0f})"
                )
            short, long = peaks.values()
            print(
                f"long / short peak memory = {long.peak / short.peak:.2f} (parent "
                f"{long.parent_peak / short.parent_peak:.2f}, worker "
                f"{long.worker_peak / max(short.worker_peak, 1):.2f})"
            )
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")


if __name__ == "__main__":
    main()
