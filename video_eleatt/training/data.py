"""Cached feature sequences as a LightningDataModule: subsets, temporal sampling, batches.

The data module reads a feature cache (per-video files or the packed form, see
``video_eleatt.features.opening.open_features``) and the dataset index of the split
(``video_eleatt.datasets.load_index``): the index says which videos are train, val and test
and their labels; the cache holds each video's (T, D) features.

Temporal sampling (the paper states none; these are the usual choices):

- training, ``train_sampling``:
    - ``"segments"`` (TSN): cut the sequence into ``num_steps`` equal segments and take one
      step at a random offset in each -> exactly ``num_steps`` steps (steps repeat when the
      video has fewer).
    - ``"window"``: ``num_steps`` consecutive steps from a random start (the whole sequence
      when shorter).
    - ``"full"``: every step.
- evaluation, ``eval_sampling``:
    - ``"full"``: every step of the video, one pass.
    - ``"clips"``: ``num_eval_clips`` deterministic clips sampled like training (segment
      offsets or window starts evenly spread), the video's score is the mean of the clips'
      softmax probabilities.

Randomness is a pure function of (seed, epoch, video index): the same seed gives the same data
order and the same offsets whatever the number of workers or devices, also after a resume. The
seed is the run's ``seed_everything`` value.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from video_eleatt.datasets import DatasetError, DatasetIndex, DatasetSpec, load_index
from video_eleatt.features.layout import CacheError
from video_eleatt.features.opening import open_features
from video_eleatt.training.errors import TrainingError, first_differences

TrainSampling = Literal["segments", "window", "full"]
EvalSampling = Literal["full", "clips"]
UNKNOWN_LABEL = -1


@rank_zero_only
def say(message: str) -> None:
    """Prints a line for the user (stderr, global rank 0 only)."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- temporal sampling


def segment_steps(
    length: int, num_segments: int, rng: np.random.Generator | None = None, position: float = 0.5
) -> np.ndarray:
    """One step per segment of ``num_segments`` equal segments of ``[0, length)``.

    Args:
        length: number of steps of the sequence, >= 1.
        num_segments: K.
        rng: draw the offset inside each segment at random (training); ``None`` takes the
            step at ``position`` of each segment (evaluation).
        position: relative offset in [0, 1) inside each segment when ``rng`` is None.

    Returns:
        (K,) int64 step indices, non-decreasing, in ``[0, length)``.

    >>> segment_steps(10, 5).tolist()
    [1, 3, 5, 7, 9]
    """
    edges = np.linspace(0.0, float(length), num_segments + 1)
    starts = np.floor(edges[:-1]).astype(np.int64)
    widths = np.maximum(np.floor(edges[1:]).astype(np.int64) - starts, 1)
    if rng is None:
        offsets = np.floor(position * widths).astype(np.int64)
    else:
        offsets = rng.integers(0, widths)
    return np.minimum(starts + offsets, length - 1)


def window_start(
    length: int, num_steps: int, rng: np.random.Generator | None = None, position: float = 0.5
) -> int:
    """Start of a window of ``num_steps`` consecutive steps (0 when the sequence is shorter).

    ``rng`` draws it uniformly; otherwise it is at ``position`` in [0, 1] of the possible
    starts.

    >>> window_start(10, 4, position=1.0)
    6
    """
    last_start = max(length - num_steps, 0)
    if rng is None:
        return int(np.floor(position * last_start + 0.5))
    return int(rng.integers(0, last_start + 1))


def clip_positions(num_clips: int, kind: str) -> list[float]:
    """Relative positions of ``num_clips`` evaluation clips: segment offsets spread inside
    [0, 1), window starts spread over [0, 1] (the first and last possible window)."""
    if kind == "segments":
        return [(j + 0.5) / num_clips for j in range(num_clips)]
    if num_clips == 1:
        return [0.5]
    return [j / (num_clips - 1) for j in range(num_clips)]


# --------------------------------------------------------------------------- dataset


class FeatureSequenceDataset(Dataset):
    """Videos of one subset: item -> dict of features, label, index, rel_path.

    Args:
        cache: an opened feature cache (``open_features``).
        keys: rel_paths of the videos, in a stable order.
        labels: class id per video (``UNKNOWN_LABEL`` when unknown).
        train: training-time sampling (random, needs items ``(index, epoch)``) or evaluation.
        train_sampling: "segments", "window" or "full".
        num_steps: K segments or T window steps.
        eval_sampling: "full" or "clips".
        num_eval_clips: clips per video with ``eval_sampling="clips"``.
        seed: with the epoch and the index, fixes every random draw.

    Items: ``features`` (t, D) -- or (N, t, D) for N evaluation clips -- numpy, in the cache's
    dtype, ``length`` t, ``label``, ``index``, ``rel_path``.
    """

    def __init__(
        self,
        cache: Any,
        keys: Sequence[str],
        labels: Sequence[int],
        *,
        train: bool,
        train_sampling: str = "segments",
        num_steps: int = 32,
        eval_sampling: str = "full",
        num_eval_clips: int = 1,
        seed: int = 0,
    ) -> None:
        self.cache = cache
        self.keys = list(keys)
        self.labels = [int(label) for label in labels]
        self.train = train
        self.train_sampling = train_sampling
        self.num_steps = num_steps
        self.eval_sampling = eval_sampling
        self.num_eval_clips = num_eval_clips
        self.seed = seed

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        rel_path = self.keys[index]
        # numpy from here on: single-threaded copies, no intra-op thread pool to wait on.
        features = self.cache.load(rel_path).features.numpy()  # (L, D)
        length = features.shape[0]
        if length == 0:
            raise TrainingError(
                f"{rel_path} has 0 cached steps in {self.cache.cache_dir}; run "
                f"`video-eleatt verify {self.cache.cache_dir}` and re-extract it"
            )
        if self.train:
            rng = np.random.default_rng([self.seed, epoch, index])
            sample = self._sample(features, rng, 0.5)  # (t, D)
        elif self.eval_sampling == "full":
            sample = features
        else:
            positions = clip_positions(self.num_eval_clips, self.train_sampling)
            sample = np.stack([self._sample(features, None, p) for p in positions])  # (N, t, D)
        return {
            "features": sample,
            "length": sample.shape[-2],
            "label": self.labels[index],
            "index": index,
            "rel_path": rel_path,
        }

    def _sample(
        self, features: np.ndarray, rng: np.random.Generator | None, position: float
    ) -> np.ndarray:
        length = features.shape[0]
        if self.train_sampling == "segments":
            return features[segment_steps(length, self.num_steps, rng, position)]
        if self.train_sampling == "window":
            start = window_start(length, self.num_steps, rng, position)
            return features[start : start + self.num_steps]
        return features


def collate_sequences(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Pads a list of items into a batch.

    Returns:
        ``features`` (B, T, D) or (B, N, T, D), zero-padded to the longest; ``lengths`` (B,)
        int64; ``labels`` (B,) int64; ``indices`` (B,) int64; ``rel_paths`` list of B str.
    """
    lengths = [sample["length"] for sample in samples]
    first = samples[0]["features"]
    shape = (len(samples), *first.shape[:-2], max(lengths), first.shape[-1])
    features = np.zeros(shape, dtype=first.dtype)  # (B, [N,] T, D)
    for row, sample in enumerate(samples):
        features[row, ..., : sample["length"], :] = sample["features"]
    return {
        "features": torch.from_numpy(features),
        "lengths": torch.tensor(lengths, dtype=torch.int64),
        "labels": torch.tensor([sample["label"] for sample in samples], dtype=torch.int64),
        "indices": torch.tensor([sample["index"] for sample in samples], dtype=torch.int64),
        "rel_paths": [sample["rel_path"] for sample in samples],
    }


def pin_memory_for(device: torch.device | None) -> bool:
    """Whether a loader should put its batches in page-locked memory: only when they go to a
    CUDA device (pinning makes the copy asynchronous; for CPU training it only costs time and
    locked memory). Without a known device (a data module used outside a trainer): when CUDA
    is available."""
    if device is None:
        return torch.cuda.is_available()
    return device.type == "cuda"


class EpochSampler(DistributedSampler):
    """A DistributedSampler (shuffled by seed + epoch) that yields ``(index, epoch)``.

    The epoch travels with the index into the dataset (and its worker processes), where it
    seeds the temporal offsets. Lightning calls ``set_epoch`` before every epoch and, as this
    is a DistributedSampler, leaves it in place under DDP.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        for index in super().__iter__():
            yield (index, epoch)


# --------------------------------------------------------------------------- data module


class FeatureDataModule(pl.LightningDataModule):
    """Cached features of one dataset split for training and evaluation.

    Args:
        cache: the feature cache: a cache directory, its ``packed`` directory, or the
            extract-config YAML that made it.
        dataset: the dataset whose index gives subsets and labels; default: the dataset the
            cache was extracted from (its ``config.json``).
        split: overrides the dataset's split ("1", "2", "3", "cs", "cv", ...).
        batch_size: videos per training batch (per device).
        eval_batch_size: videos per evaluation batch; default ``batch_size``.
        num_workers: DataLoader worker processes per device (0 = load in the main process).
        train_sampling: "segments" (TSN, one random step in each of ``num_steps`` segments),
            "window" (``num_steps`` consecutive steps from a random start) or "full".
        num_steps: segments K or window length T.
        eval_sampling: "full" (whole sequence) or "clips" (mean of softmax over
            ``num_eval_clips`` clips sampled like training, evenly spread).
        num_eval_clips: clips per video with ``eval_sampling="clips"``.
        val_subset: validation videos: "auto" (the split's "val" subset when it has one, else
            "test", common practice for UCF101/HMDB51/JHMDB/NTU, which have no val), "val",
            "test", or "holdout" (a stratified ``holdout_fraction`` of train, fixed by
            ``holdout_seed``, removed from training).
        holdout_fraction: fraction of each class's training videos held out for "holdout".
        holdout_seed: seed of the held-out draw (independent of the run's seed).
        test_subset: "auto" (the "test" subset if labelled, else "val", as for Kinetics),
            "test" or "val".
        predict_subset: videos to write predictions for: "train", "val", "test" or "all".
    """

    def __init__(
        self,
        cache: str,
        dataset: DatasetSpec | None = None,
        split: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        train_sampling: TrainSampling = "segments",
        num_steps: int = 32,
        eval_sampling: EvalSampling = "full",
        num_eval_clips: int = 1,
        val_subset: Literal["auto", "val", "test", "holdout"] = "auto",
        holdout_fraction: float = 0.1,
        holdout_seed: int = 0,
        test_subset: Literal["auto", "test", "val"] = "auto",
        predict_subset: Literal["train", "val", "test", "all"] = "test",
    ) -> None:
        super().__init__()
        _check_positive(batch_size=batch_size, num_steps=num_steps, num_eval_clips=num_eval_clips)
        if eval_batch_size is not None:
            _check_positive(eval_batch_size=eval_batch_size)
        if num_workers < 0:
            raise TrainingError(f"data.num_workers must be >= 0; got {num_workers}")
        if eval_sampling == "clips" and train_sampling == "full":
            raise TrainingError(
                "data.eval_sampling 'clips' samples clips like training, but train_sampling is "
                "'full'; use train_sampling 'segments' or 'window', or eval_sampling 'full'"
            )
        if val_subset == "holdout" and not 0.0 < holdout_fraction < 1.0:
            raise TrainingError(
                f"data.holdout_fraction must be in (0, 1) for val_subset 'holdout'; got "
                f"{holdout_fraction}"
            )
        self.cache_path = str(cache)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.train_sampling = train_sampling
        self.num_steps = num_steps
        self.eval_sampling = eval_sampling
        self.num_eval_clips = num_eval_clips
        self.val_subset = val_subset
        self.holdout_fraction = holdout_fraction
        self.holdout_seed = holdout_seed
        self.test_subset = test_subset
        self.predict_subset = predict_subset

        self.cache = _open_cache(self.cache_path)
        self.spec = self._resolve_spec(dataset, split)
        self.index = self._load_index()
        self.class_names = self._check_classes()
        self.subset_reports: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, FeatureSequenceDataset] = {}

    # ------------------------------------------------------------------ what the model links

    @property
    def feature_dim(self) -> int:
        """D of the cached features (linked to ``model.input_size``)."""
        return self.cache.feature_dim

    @property
    def num_classes(self) -> int:
        """C of the dataset (linked to ``model.num_classes``)."""
        return len(self.class_names)

    # ------------------------------------------------------------------ resolution and checks

    def _resolve_spec(self, dataset: DatasetSpec | None, split: str | None) -> DatasetSpec:
        recorded = self.cache.dataset
        if dataset is None:
            if recorded is None:
                raise TrainingError(
                    f"data.dataset is not set and the cache {self.cache.cache_dir} records no "
                    "dataset (made by import-features?); set data.dataset, e.g. "
                    "{name: list, root: data/mine} (see `video-eleatt datasets`)"
                )
            dataset = recorded
        elif recorded is not None and recorded.name != dataset.name:
            raise TrainingError(
                f"data.dataset.name is {dataset.name!r} but the cache {self.cache.cache_dir} was "
                f"extracted from {recorded.name!r}; point data.cache at features of "
                f"{dataset.name!r} (or drop data.dataset to use the cache's own dataset)"
            )
        if split is not None:
            dataset = replace(dataset, split=str(split))
        return dataset

    def _load_index(self) -> DatasetIndex:
        try:
            return load_index(self.spec)
        except DatasetError as err:
            raise TrainingError(
                f"cannot read the dataset index for {self.spec}: {err}\nTraining takes subsets "
                "and labels from the dataset's own lists; set data.dataset (root, split, "
                "annotations) to where the dataset lives."
            ) from err

    def _check_classes(self) -> list[str]:
        index_names = list(self.index.class_names)
        cache_names = self.cache.class_names
        if cache_names is not None and list(cache_names) != index_names:
            differing = first_differences(list(cache_names), index_names, "cache", "index")
            raise TrainingError(
                f"class mismatch: the cache {self.cache.cache_dir} has {len(cache_names)} "
                f"classes, the {self.spec.name} index at {self.spec.root} has "
                f"{len(index_names)}"
                + (f" (first differences: {differing})" if differing else "")
                + "; use the cache extracted from this dataset, or re-extract"
            )
        if not index_names:
            raise TrainingError(f"the {self.spec.name} index at {self.spec.root} has no classes")
        return index_names

    # ------------------------------------------------------------------ subsets

    def _resolved_subset(self, role: str) -> str:
        present = set(self.index.subset_names())
        if role == "val":
            if self.val_subset == "auto":
                return "val" if "val" in present else "test"
            return self.val_subset
        if role == "test":
            if self.test_subset == "auto":
                labelled = any(
                    r.subset == "test" and r.label is not None for r in self.index.records
                )
                return "test" if labelled else "val"
            return self.test_subset
        if role == "predict":
            return self.predict_subset
        return "train"

    def _records(self, role: str) -> tuple[str, list[tuple[str, int | None]]]:
        """(description, [(rel_path, label)]) of the videos a role uses."""
        subset = self._resolved_subset(role)
        if subset == "all":
            return "every video", [(r.rel_path, r.label) for r in self.index.records]
        if subset == "holdout" or (role == "train" and self.val_subset == "holdout"):
            train, held_out = self._holdout()
            if role == "train":
                return "'train' minus the held-out part", train
            fraction = f"{self.holdout_fraction:g}"
            return f"held-out {fraction} of 'train' (seed {self.holdout_seed})", held_out
        records = [(r.rel_path, r.label) for r in self.index.subset(subset)]
        note = ""
        if role == "val" and self.val_subset == "auto" and subset == "test":
            note = " (the split has no 'val' subset: the test subset validates)"
        if role == "test" and self.test_subset == "auto" and subset == "val":
            note = " (the 'test' subset is unlabelled: 'val' is tested)"
        return f"'{subset}'{note}", records

    def _holdout(self) -> tuple[list[tuple[str, int | None]], list[tuple[str, int | None]]]:
        rng = np.random.default_rng(self.holdout_seed)
        ok = set(self.cache.ok_keys())
        by_class: dict[int | None, list[str]] = {}
        for record in self.index.subset("train"):
            if record.rel_path in ok:  # hold out videos that have features
                by_class.setdefault(record.label, []).append(record.rel_path)
        held: set[str] = set()
        for label in sorted(by_class, key=lambda value: -1 if value is None else value):
            keys = by_class[label]
            count = round(self.holdout_fraction * len(keys)) if len(keys) >= 2 else 0
            count = max(count, 1) if len(keys) >= 2 else 0
            order = rng.permutation(len(keys))
            held.update(keys[i] for i in order[:count])
        train = [(r.rel_path, r.label) for r in self.index.subset("train")]
        return (
            [item for item in train if item[0] not in held],
            [item for item in train if item[0] in held],
        )

    def _build(self, role: str) -> FeatureSequenceDataset:
        description, records = self._records(role)
        where = f"{self.spec.name} split {self.index.split}" if self.index.split else self.spec.name
        if not records:
            hint = " or data.val_subset: holdout (part of train)" if role == "val" else ""
            raise TrainingError(
                f"the {role} subset {description} of {where} has no videos; "
                f"the index has subsets {self.index.subset_names()} (choose another "
                f"data.{role}_subset or data.split{hint})"
            )
        ok = set(self.cache.ok_keys())
        failed = _failed_entries(self.cache)
        kept = [(key, label) for key, label in records if key in ok]
        failed_here = [key for key, _ in records if key not in ok and key in failed]
        missing_here = [key for key, _ in records if key not in ok and key not in failed]
        report = {
            "subset": description,
            "listed": len(records),
            "videos": len(kept),
            "excluded_failed": len(failed_here),
            "excluded_not_extracted": len(missing_here),
        }
        self.subset_reports[role] = report
        message = f"data: {role} = {description} of {where}: {len(kept)} videos"
        if failed_here or missing_here:
            message += f" ({len(records)} listed; excluded:"
            if failed_here:
                reasons = Counter(_first_line(failed[key]) for key in failed_here)
                top = "; ".join(f"{count}x {reason}" for reason, count in reasons.most_common(2))
                message += f" {len(failed_here)} failed extraction [{top}]"
            if missing_here:
                message += f" {len(missing_here)} not in the cache, e.g. {missing_here[0]!r}"
            message += ")"
        say(message)
        if not kept:
            raise TrainingError(
                f"the {role} subset {description} of {where} has {len(records)} videos but "
                f"none has features in {self.cache.cache_dir} ({len(failed_here)} failed, "
                f"{len(missing_here)} not extracted); run `video-eleatt extract` for this "
                "split (or check data.cache / data.split)"
            )
        unlabelled = [key for key, label in kept if label is None]
        if role != "predict" and unlabelled:
            raise TrainingError(
                f"the {role} subset {description} of {where} has {len(unlabelled)} unlabelled "
                f"videos (e.g. {unlabelled[0]!r}); accuracy needs labels: choose a labelled "
                f"subset (data.{role}_subset) or use `predict`"
            )
        return FeatureSequenceDataset(
            self.cache,
            [key for key, _ in kept],
            [UNKNOWN_LABEL if label is None else label for _, label in kept],
            train=role == "train",
            train_sampling=self.train_sampling,
            num_steps=self.num_steps,
            eval_sampling=self.eval_sampling,
            num_eval_clips=self.num_eval_clips,
            seed=_run_seed(),
        )

    def setup(self, stage: str) -> None:
        roles = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
        }[stage]
        for role in roles:
            if role not in self.datasets:
                self.datasets[role] = self._build(role)
        if stage == "fit":
            say(f"data: evaluation protocol: {self.eval_protocol()['description']}")

    def feature_statistics(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Per-dimension mean and standard deviation of every step of the training videos.

        Computed in float64 one video at a time (means and squared deviations merged with
        Chan's formula, so large feature values lose no precision), over all cached steps of
        each training video, whatever ``train_sampling`` later draws. Every rank computes the
        same values from the whole subset.

        Returns:
            mean (D,) and std (D,) float32 tensors (population std), and the number of steps.
        """
        dataset = self.datasets.get("train") or self._build("train")
        count = 0
        mean = np.zeros(self.feature_dim, np.float64)
        squares = np.zeros(self.feature_dim, np.float64)  # sum of squared deviations
        for key in dataset.keys:
            features = self.cache.load(key).features.numpy().astype(np.float64)  # (L, D)
            n = features.shape[0]
            if n == 0:
                continue
            video_mean = features.mean(axis=0)
            video_squares = ((features - video_mean) ** 2).sum(axis=0)
            delta = video_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            squares = squares + video_squares + delta**2 * (count * n / total)
            count = total
        if count == 0:
            raise TrainingError("input standardisation: the training videos have no steps")
        std = np.sqrt(squares / count)
        return torch.from_numpy(mean).float(), torch.from_numpy(std).float(), count

    # ------------------------------------------------------------------ loaders

    def _loader(self, role: str, **kwargs: Any) -> DataLoader:
        # Its own generator: the loader never draws from the global one, which dropout uses.
        return DataLoader(
            self.datasets[role],
            generator=torch.Generator().manual_seed(_run_seed()),
            num_workers=self.num_workers,
            collate_fn=collate_sequences,
            pin_memory=pin_memory_for(self._device()),
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def _device(self) -> torch.device | None:
        """The device the batches go to: the trainer's, None without a trainer."""
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else None

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        dataset.seed = _run_seed()
        trainer = self.trainer
        sampler = EpochSampler(
            dataset,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            shuffle=True,
            seed=dataset.seed,
        )
        return self._loader("train", batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", batch_size=self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", batch_size=self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", batch_size=self.eval_batch_size, shuffle=False)

    # ------------------------------------------------------------------ records

    def eval_protocol(self) -> dict[str, Any]:
        """How videos are sampled and scored, for logs, metrics files and the report."""
        if self.eval_sampling == "full":
            description = "full sequence: every cached step of each video, one pass"
        elif self.train_sampling == "segments":
            description = (
                f"mean of softmax scores over {self.num_eval_clips} clip(s) of "
                f"{self.num_steps} segments (one step per segment, offsets evenly spread)"
            )
        else:
            description = (
                f"mean of softmax scores over {self.num_eval_clips} window(s) of "
                f"{self.num_steps} consecutive steps (starts evenly spread)"
            )
        return {
            "description": description,
            "eval_sampling": self.eval_sampling,
            "num_eval_clips": self.num_eval_clips if self.eval_sampling == "clips" else 1,
            "train_sampling": self.train_sampling,
            "num_steps": self.num_steps,
        }

    def describe(self) -> dict[str, Any]:
        """What the features and labels are (JSON-safe; stored in checkpoints)."""
        return {
            "cache_dir": str(self.cache.cache_dir),
            "cache_fingerprint": cache_fingerprint(self.cache.config),
            "cache_config": self.cache.config,
            "feature_dim": self.feature_dim,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "dataset": self.spec.to_dict(),
            "split": self.index.split,
            "subsets": dict(self.subset_reports),
            "protocol": self.eval_protocol(),
        }


# --------------------------------------------------------------------------- helpers


def cache_fingerprint(config: dict[str, Any]) -> str:
    """sha256 (16 hex digits) of a cache's canonical ``config.json``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _open_cache(path: str) -> Any:
    # An extract config that is not on disk may be a shipped one (open_features finds it).
    if not os.path.exists(path) and not path.endswith((".yaml", ".yml")):
        raise TrainingError(
            f"data.cache {path!r} does not exist; give a feature cache directory or the "
            "extract config that made it (run `video-eleatt extract --config <config>` first)"
        )
    try:
        return open_features(path)
    except CacheError as err:
        raise TrainingError(f"data.cache {path!r}: {err}") from err


def _failed_entries(cache: Any) -> dict[str, str]:
    failed = getattr(cache, "failed", None)
    return dict(failed()) if callable(failed) else {}


def _first_line(text: str) -> str:
    line = (text or "unknown error").strip().splitlines()[0] if text else "unknown error"
    return line[:120]


def _run_seed() -> int:
    # seed_everything records the run's seed here (Lightning's DistributedSampler uses it too).
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise TrainingError(f"data.{name} must be >= 1; got {value}")
