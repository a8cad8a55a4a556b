"""The LightningModule: a :class:`SequenceClassifier` trained with cross-entropy.

The baseline GRU and the EleAtt-GRU are this one class with different options (``cell``,
``hidden_size``, ``num_eleatt_layers``, ``num_plain_layers``, ``gate_activation``); feature
size and class count come from the data module (linked by the CLI). Defaults are the paper's
RGB settings: Adam, learning rate 1e-3 divided by 10 when the monitored metric stops improving,
dropout 0.5 (gradient clipping at 1 is a Trainer default set by the CLI).

Every constructor argument is a plain int/float/str, so checkpoints hold only plain data and
load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier
from video_eleatt.training.data import say
from video_eleatt.training.errors import TrainingError, first_differences
from video_eleatt.training.metrics import ClassificationMetrics, warn_if_no_top5
from video_eleatt.training.online import (
    STEP_SUPERVISIONS,
    EarlyRecognition,
    StepSupervision,
    clip_running_log_probs,
    step_losses,
)

LrMonitor = Literal[
    "train/top1", "train/loss", "val/top1", "val/loss", "val/mean_class_accuracy", "none"
]
# Options that fix the network's shape: a checkpoint must agree on all of them.
ARCHITECTURE_KEYS = (
    "input_size",
    "num_classes",
    "cell",
    "hidden_size",
    "num_eleatt_layers",
    "num_plain_layers",
    "gate_activation",
    "pooling",
    "input_norm",
)
CHECKPOINT_KEY = "video_eleatt"


class ActionClassifier(pl.LightningModule):
    """Video-level action classifier over cached per-step features.

    Args:
        input_size: D of the features (linked from ``data.feature_dim``).
        num_classes: C (linked from ``data.num_classes``).
        cell: "gru", "lstm" or "rnn" (sRNN).
        hidden_size: N neurons per layer.
        num_eleatt_layers: m layers with the element-wise attention gate (first).
        num_plain_layers: n plain torch layers after them; baseline: m = 0.
        gate_activation: "sigmoid" (paper) or "softmax".
        dropout: between layers and before the classifier (paper: 0.5).
        pooling: "mean" of per-step class scores over valid steps, or the "last" valid step.
        lr: Adam learning rate (paper: 1e-3 for RGB, 5e-3 for skeletons).
        weight_decay: Adam L2 penalty (paper: none).
        lr_monitor: the epoch metric whose plateau divides the learning rate by
            ``1 / lr_factor``; "none" keeps it constant. Default "train/top1", the paper's
            rule ("when training accuracy stops improving"), which also never looks at the
            test videos when they double as validation set.
        lr_factor: multiplier on a plateau (paper: 0.1).
        lr_patience: epochs without improvement before the learning rate drops.
        min_lr: the learning rate never goes below this.
        input_norm: "none" (the paper's) or "standardize": each feature dimension is
            standardised with the mean and std of the training videos' features, computed
            when ``fit`` starts and kept in the checkpoint (our addition).
        step_supervision: "none" (the paper's: the loss of each clip's final prediction),
            "uniform" (the mean over steps of the loss of the running prediction) or "late"
            (the same, step t weighted t + 1), for models meant to answer before a video
            ends (:mod:`video_eleatt.training.online`; our addition).
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        cell: Literal["gru", "lstm", "rnn"] = "gru",
        hidden_size: int = 512,
        num_eleatt_layers: int = 1,
        num_plain_layers: int = 0,
        gate_activation: Literal["sigmoid", "softmax"] = "sigmoid",
        dropout: float = 0.5,
        pooling: Literal["mean", "last"] = "mean",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_monitor: LrMonitor = "train/top1",
        lr_factor: float = 0.1,
        lr_patience: int = 5,
        min_lr: float = 1e-6,
        input_norm: Literal["none", "standardize"] = "none",
        step_supervision: StepSupervision = "none",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if step_supervision not in STEP_SUPERVISIONS:
            raise TrainingError(
                f"model.step_supervision {step_supervision!r}: choose one of "
                f"{', '.join(STEP_SUPERVISIONS)}"
            )
        if num_eleatt_layers + num_plain_layers < 1:
            raise TrainingError(
                f"model needs at least one recurrent layer; got num_eleatt_layers="
                f"{num_eleatt_layers}, num_plain_layers={num_plain_layers}"
            )
        try:
            config = ClassifierConfig(
                input_size=input_size,
                num_classes=num_classes,
                cell=cell,
                hidden_size=hidden_size,
                num_eleatt_layers=num_eleatt_layers,
                num_plain_layers=num_plain_layers,
                gate_activation=gate_activation,
                dropout=dropout,
                pooling=pooling,
                input_norm=input_norm,
            )
        except ValueError as err:
            raise TrainingError(f"model options: {err}") from err
        self.classifier = SequenceClassifier(config)
        self.train_loss = MeanMetric()
        self.train_top1 = MulticlassAccuracy(num_classes, average="micro")
        self.val_metrics = ClassificationMetrics(num_classes)
        self.test_metrics = ClassificationMetrics(num_classes)
        self.test_early = EarlyRecognition()
        self.plateau: ReduceLROnPlateau | None = None
        self.last_evaluation: dict[str, Any] | None = None
        self._pending_plateau_state: dict[str, Any] | None = None
        self._pending_rng_state: dict[str, Tensor] | None = None
        self._forward_seconds = 0.0
        warn_if_no_top5(num_classes)

    # ------------------------------------------------------------------ forward

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Logits (B, C) of features (B, T, D) with valid lengths (B,)."""
        return self.classifier(features.to(self.dtype), lengths)

    def video_log_probs(self, batch: dict[str, Any]) -> Tensor:
        """Log class probabilities (B, C) of each video of an evaluation batch.

        With clips (features (B, N, T, D)) the video's probabilities are the mean of its
        clips' softmax, computed in log space.
        """
        features, lengths = batch["features"], batch["lengths"]
        if features.dim() == 3:
            return F.log_softmax(self(features, lengths).float(), dim=1)  # (B, C)
        batch_size, num_clips = features.shape[:2]
        flat = features.flatten(0, 1)  # (B*N, T, D)
        log_probs = F.log_softmax(self(flat, lengths.repeat_interleave(num_clips)).float(), dim=1)
        log_probs = log_probs.view(batch_size, num_clips, -1)  # (B, N, C)
        return torch.logsumexp(log_probs, dim=1) - math.log(num_clips)

    # ------------------------------------------------------------------ training

    def running_log_probs(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Log class probabilities after every step of each video of an evaluation batch
        (:mod:`video_eleatt.training.online`): ``(log_probs (B, T, C), lengths (B,))``; with
        clips, per clip step, averaged over the clips."""
        features, lengths = batch["features"], batch["lengths"]
        num_clips = features.shape[1] if features.dim() == 4 else 1
        running = self.classifier.running_scores(
            features.reshape(-1, *features.shape[-2:]).to(self.dtype),  # (B*N, t, D)
            lengths.repeat_interleave(num_clips),
        )  # (B*N, t, C)
        return clip_running_log_probs(running, num_clips), lengths

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        labels = batch["labels"]
        supervision = self.hparams.step_supervision
        if supervision == "none":
            logits = self(batch["features"], batch["lengths"])  # (B, C)
            losses = F.cross_entropy(logits.float(), labels, reduction="none")  # (B,)
        else:
            lengths = batch["lengths"]
            running = self.classifier.running_scores(
                batch["features"].to(self.dtype), lengths
            )  # (B, T, C)
            losses = step_losses(running, labels, lengths, supervision)
            last = (lengths - 1).to(running.device)
            logits = running[torch.arange(running.shape[0], device=running.device), last]
        loss = losses.mean()
        self.train_loss.update(losses.detach())
        self.train_top1.update(logits.detach(), labels)
        batch_size = labels.shape[0]
        self.log(
            "train/loss_step",
            loss.detach(),
            on_step=True,
            on_epoch=False,
            prog_bar=True,
            batch_size=batch_size,
        )
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log(
            "train/top1",
            self.train_top1,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch_size,
        )
        return loss

    def on_fit_start(self) -> None:
        # After a resume the statistics come from the checkpoint (restored before this hook).
        if not self.classifier.needs_input_statistics:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "feature_statistics"):
            raise TrainingError(
                "model.input_norm: standardize takes its statistics from the training features "
                "of the FeatureDataModule; fit with a data module (data.cache)"
            )
        mean, std, steps = datamodule.feature_statistics()
        self.classifier.set_input_statistics(mean.to(self.device), std.to(self.device))
        say(f"model: inputs standardised per dimension with the statistics of {steps} steps")

    def on_train_start(self) -> None:
        # Restored here, after the sanity check, right before the first resumed epoch.
        state, self._pending_rng_state = self._pending_rng_state, None
        if state is not None:
            restore_rng_state(state, self.device)

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.learning_rate(), on_step=False, on_epoch=True, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        # The plateau scheduler is stepped here, not by Lightning after the epoch, so the
        # end-of-epoch checkpoint (saved after this hook) holds its updated state and a
        # resumed run continues exactly.
        if self.plateau is None or self.trainer.sanity_checking:
            return
        monitor = self.hparams.lr_monitor
        value = self.trainer.callback_metrics.get(monitor)
        if value is None:
            available = sorted(self.trainer.callback_metrics)
            raise TrainingError(
                f"model.lr_monitor {monitor!r} was not logged this epoch (logged: {available}); "
                "validation metrics need validation every epoch "
                "(trainer.check_val_every_n_epoch: 1, limit_val_batches > 0), or use "
                "train/top1"
            )
        self.plateau.step(float(value))

    def learning_rate(self) -> float:
        """The current learning rate of the (single) optimiser."""
        if self._trainer is None or not self.trainer.optimizers:
            return float(self.hparams.lr)
        return float(self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        monitor = self.hparams.lr_monitor
        if monitor != "none":
            self.plateau = ReduceLROnPlateau(
                optimizer,
                mode="min" if monitor.endswith("loss") else "max",
                factor=self.hparams.lr_factor,
                patience=self.hparams.lr_patience,
                min_lr=self.hparams.min_lr,
            )
            if self._pending_plateau_state is not None:
                self.plateau.load_state_dict(self._pending_plateau_state)
                self._pending_plateau_state = None
        return optimizer

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, batch: dict[str, Any], metrics: ClassificationMetrics) -> None:
        started = time.perf_counter()
        log_probs = self.video_log_probs(batch)
        if log_probs.is_cuda:
            torch.cuda.synchronize(log_probs.device)
        self._forward_seconds += time.perf_counter() - started
        metrics.update(log_probs.exp(), batch["labels"], log_probs)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)
        # A second pass, outside the timed forward: the metrics above stay exactly as they were.
        running, lengths = self.running_log_probs(batch)
        self.test_early.update(running, lengths, batch["labels"])

    def on_validation_epoch_start(self) -> None:
        self._forward_seconds = 0.0

    def on_test_epoch_start(self) -> None:
        self._forward_seconds = 0.0

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test", self.test_metrics)

    def _finish_evaluation(self, prefix: str, metrics: ClassificationMetrics) -> None:
        values = metrics.compute()  # synced over processes by torchmetrics
        confusion = metrics.confusion_matrix()
        metrics.reset()
        early = None
        if prefix == "test":
            early = self.test_early.compute()
            self.test_early.reset()
        num_videos = int(confusion.sum())
        # The values are equal on every process already; sync_dist only silences Lightning.
        self.log_dict(
            {f"{prefix}/{name}": value for name, value in values.items() if value is not None},
            sync_dist=True,
        )
        self.last_evaluation = {
            "stage": prefix,
            "metrics": values,
            "confusion_matrix": confusion.cpu(),
            "num_videos": num_videos,
            "forward_seconds": self._forward_seconds,
            "early_recognition": early,
        }

    # ------------------------------------------------------------------ prediction

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        probs = self.video_log_probs(batch).exp()  # (B, C)
        return {
            "rel_paths": list(batch["rel_paths"]),
            "labels": batch["labels"].cpu(),
            "probs": probs.float().cpu(),
        }

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record: dict[str, Any] = {
            "format_version": 1,
            "model": {key: self.hparams[key] for key in ARCHITECTURE_KEYS},
        }
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and hasattr(datamodule, "describe"):
            record["data"] = datamodule.describe()
        if self.plateau is not None:
            record["plateau"] = self.plateau.state_dict()
        # The global generator drives dropout; with it a resumed run repeats the dropout masks
        # of an uninterrupted one (the data order and offsets have their own seeds).
        record["rng"] = capture_rng_state(self.device)
        checkpoint[CHECKPOINT_KEY] = record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.get(CHECKPOINT_KEY)
        saved = (record or {}).get("model") or checkpoint.get("hyper_parameters", {})
        check_checkpoint_compatible(saved, dict(self.hparams), record)
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        saved_names = ((record or {}).get("data") or {}).get("class_names")
        current_names = getattr(datamodule, "class_names", None)
        if saved_names is not None and current_names is not None:
            check_class_names(list(saved_names), list(current_names))
        self._pending_rng_state = (record or {}).get("rng")
        plateau_state = (record or {}).get("plateau")
        if plateau_state is not None:
            if self.plateau is not None:
                self.plateau.load_state_dict(plateau_state)
            else:
                self._pending_plateau_state = plateau_state


def capture_rng_state(device: torch.device) -> dict[str, Tensor]:
    """The random state that drives dropout on ``device``: the CPU generator's (always) and,
    on a CUDA device, that device's generator's (``"cuda"``), as uint8 tensors."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    """Puts back a :func:`capture_rng_state` state. The CUDA part is restored only when
    resuming on a CUDA device: a run checkpointed on a GPU resumes on a CPU with the CPU
    generator restored and the GPU's state ignored."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def check_checkpoint_compatible(
    saved: dict[str, Any], current: dict[str, Any], record: dict[str, Any] | None = None
) -> None:
    """Raises TrainingError naming every architecture option where a checkpoint differs.

    Args:
        saved: the checkpoint's model options.
        current: the options of the model built from the config.
        record: the checkpoint's ``video_eleatt`` entry (feature cache and classes), if any.
    """
    differences = [
        f"{key}: checkpoint {saved[key]!r}, config {current.get(key)!r}"
        for key in ARCHITECTURE_KEYS
        if key in saved and saved[key] != current.get(key)
    ]
    data = (record or {}).get("data") or {}
    if differences:
        hints = []
        if any(line.startswith(("input_size", "num_classes")) for line in differences):
            hints.append(
                "input_size and num_classes come from data.cache and data.dataset: use the "
                "features and dataset the checkpoint was trained on"
                + (f" (cache {data['cache_dir']}, dataset {data.get('dataset')})" if data else "")
            )
        hints.append(
            "use the config the checkpoint was trained with (config.yaml in its run directory, "
            "e.g. --config <run_dir>/config.yaml) or a checkpoint of this config"
        )
        raise TrainingError(
            "the checkpoint was trained with another configuration:\n  "
            + "\n  ".join(differences)
            + "\nFix: "
            + "; ".join(hints)
        )


def check_class_names(saved: list[str], current: list[str]) -> None:
    """Raises TrainingError when a checkpoint's classes are not the data's, in order."""
    if saved == current:
        return
    differing = first_differences(saved, current, "checkpoint", "data")
    raise TrainingError(
        f"the checkpoint's {len(saved)} classes are not the data's {len(current)} classes "
        f"(first differences: {differing}); its class ids would mean other actions. Evaluate it "
        "on the dataset it was trained on (data.dataset / data.cache of its config.yaml)"
    )
