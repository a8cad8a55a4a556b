"""Sequence classifier: recurrent stack -> dropout -> linear head, pooled over time.

Pooling (the paper does not state it; the VA-LSTM network it follows averages per-step class
scores over the valid steps):

- ``"mean"``: the mean over each sequence's valid steps of the per-step class scores (logits).
  The head is affine, so this equals the head applied to the mean hidden state, which is how it
  is computed (one (B, N) product instead of (B, T, N)).
- ``"last"``: the class scores of each sequence's last valid step.

Online use (per-step outputs): :meth:`SequenceClassifier.running_scores` gives the class scores
the model would output had the sequence stopped at each step -- for ``"last"`` the scores of
that step, for ``"mean"`` the mean of the scores up to it -- so step ``t`` sees no input after
``t``, and the scores at each sequence's last valid step are :meth:`~SequenceClassifier.forward`'s.
:meth:`SequenceClassifier.step` continues a sequence from an :class:`OnlineState` (the layer
states, and for ``"mean"`` the running sum), one frame or a chunk at a time, without re-running
the prefix: a stream stepped frame by frame gets the running scores of the whole sequence.

Input standardisation (``input_norm="standardize"``, our addition, not the paper's): each
feature dimension is mapped to ``(x - mean) / std`` with statistics of the training features,
held as buffers so that checkpoints carry them to evaluation, attention analysis and raw-video
prediction. CNN features (untrained ones especially) differ in scale by orders of magnitude
across dimensions; the statistics are set once with :meth:`SequenceClassifier.set_input_statistics`
(training does it before the first step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from video_eleatt.models.eleatt import State
from video_eleatt.models.sequence_checks import (
    check_gate_activation,
    check_sequence_input,
    resolve_lengths,
)
from video_eleatt.models.stack import RecurrentStack, check_cell

POOLINGS = ("mean", "last")
INPUT_NORMS = ("none", "standardize")


@dataclass
class ClassifierConfig:
    """What a :class:`SequenceClassifier` is made of.

    Attributes:
        input_size: D, the per-step feature size.
        num_classes: C, the number of classes.
        cell: recurrent type, "gru", "lstm" or "rnn" (the paper's sRNN).
        hidden_size: N, neurons per layer (the same for every layer).
        num_eleatt_layers: m, layers with the attention gate; they come first.
        num_plain_layers: n, plain torch layers after them (the baseline is m = 0, n = k).
        gate_activation: "sigmoid" (the paper's) or "softmax".
        dropout: between layers and before the head (the paper uses 0.5).
        pooling: "mean" of per-step class scores over valid steps, or "last" valid step.
        input_norm: "none" (the paper's) or "standardize" (per-dimension mean and std of the
            training features, see :meth:`SequenceClassifier.set_input_statistics`).
    """

    input_size: int
    num_classes: int
    cell: Literal["gru", "lstm", "rnn"] = "gru"
    hidden_size: int = 512
    num_eleatt_layers: int = 1
    num_plain_layers: int = 0
    gate_activation: Literal["sigmoid", "softmax"] = "sigmoid"
    dropout: float = 0.5
    pooling: Literal["mean", "last"] = "mean"
    input_norm: Literal["none", "standardize"] = "none"

    def __post_init__(self) -> None:
        check_cell(self.cell)
        check_gate_activation(self.gate_activation)
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}"
            )
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(
                f"unknown input_norm {self.input_norm!r}; choose one of {', '.join(INPUT_NORMS)}"
            )
        for name in ("input_size", "num_classes", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")


@dataclass
class OnlineState:
    """What a classifier carries from one call of :meth:`SequenceClassifier.step` to the next.

    Attributes:
        layers: The state of every recurrent layer after the last step, in order.
        hidden_sum: (B, N) the sum of the last layer's outputs so far (pooling ``"mean"``).
        num_steps: (B,) int64 steps seen so far by each stream.
    """

    layers: list[State]
    hidden_sum: Tensor
    num_steps: Tensor

    def reset(self, rows: Tensor) -> OnlineState:
        """The state with the streams where ``rows`` (B,) bool is True started afresh."""
        keep = (~rows).unsqueeze(1)  # (B, 1)

        def cleared(tensor: Tensor) -> Tensor:
            return torch.where(keep, tensor, 0.0)

        layers: list[State] = [
            (cleared(s[0]), cleared(s[1])) if isinstance(s, tuple) else cleared(s)
            for s in self.layers
        ]
        return OnlineState(
            layers=layers,
            hidden_sum=cleared(self.hidden_sum),
            num_steps=torch.where(rows, 0, self.num_steps),
        )


class SequenceClassifier(nn.Module):
    """Class scores for a batch of feature sequences.

    >>> config = ClassifierConfig(input_size=32, num_classes=5, hidden_size=16, dropout=0.0)
    >>> model = SequenceClassifier(config)
    >>> features = torch.randn(4, 10, 32)                # (B, T, D)
    >>> logits, attentions = model(features, lengths=torch.tensor([10, 7, 3, 10]),
    ...                            return_attention=True)
    >>> logits.shape, [tuple(a.shape) for a in attentions]
    (torch.Size([4, 5]), [(4, 10, 32)])
    >>> model.parameter_counts()
    {'eleatt_gru1': 3968, 'head': 85, 'total': 4053}
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.stack = RecurrentStack(
            config.cell,
            config.input_size,
            config.hidden_size,
            num_eleatt_layers=config.num_eleatt_layers,
            num_plain_layers=config.num_plain_layers,
            gate_activation=config.gate_activation,
            dropout=config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.num_classes)
        self.num_features = config.hidden_size
        if config.input_norm == "standardize":
            self.register_buffer("input_mean", torch.zeros(config.input_size))
            self.register_buffer("input_std", torch.ones(config.input_size))
            self.register_buffer("input_statistics_set", torch.tensor(False))

    def set_input_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Sets the per-dimension mean and std (D,) that ``input_norm="standardize"`` uses.

        A std below 1e-6 (a constant dimension) is raised to 1e-6.

        Raises:
            ValueError: the model does not standardise, or the statistics are not finite
                (D,) vectors.
        """
        if self.config.input_norm != "standardize":
            raise ValueError(
                f"set_input_statistics: this classifier has input_norm="
                f"{self.config.input_norm!r}; build it with input_norm='standardize'"
            )
        size = self.config.input_size
        for name, value in (("mean", mean), ("std", std)):
            if tuple(value.shape) != (size,) or not bool(torch.isfinite(value).all()):
                raise ValueError(
                    f"set_input_statistics: {name} must be a finite ({size},) vector; got "
                    f"shape {tuple(value.shape)}"
                )
        self.input_mean.copy_(mean)
        self.input_std.copy_(std.clamp(min=1e-6))
        self.input_statistics_set.fill_(True)

    @property
    def needs_input_statistics(self) -> bool:
        """True when the model standardises its input and the statistics are not set yet."""
        return self.config.input_norm == "standardize" and not bool(self.input_statistics_set)

    def forward_features(
        self,
        features: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        return_attention: bool = False,
    ) -> tuple[Tensor, Tensor | None, list[Tensor]]:
        """The stack's last-layer output (B, T, N) (zero at padded steps), validated lengths
        (None when all sequences are full) and the per-EleAtt-layer attentions."""
        check_sequence_input(
            features, self.config.input_size, self.head.weight, "SequenceClassifier"
        )
        lengths = resolve_lengths(features, lengths, owner="SequenceClassifier")
        hidden, _, attentions = self.stack(
            self._standardized(features), lengths=lengths, return_attention=return_attention
        )
        return hidden, lengths, attentions

    def _standardized(self, features: Tensor) -> Tensor:
        """``features`` (B, T, D) as the stack takes them: standardised with ``input_norm``."""
        if self.config.input_norm != "standardize":
            return features
        return (features - self.input_mean.to(features.dtype)) / self.input_std.to(features.dtype)

    @staticmethod
    def _zero_padded(scores: Tensor, lengths: Tensor | None) -> Tensor:
        """Per-step ``scores`` (B, T, C) set to zero after each sequence's valid length."""
        if lengths is None:
            return scores
        valid = torch.arange(scores.shape[1], device=scores.device) < lengths.unsqueeze(1)
        return torch.where(valid.unsqueeze(2), scores, 0.0)

    def forward_head(self, hidden: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Pool the stack's output over time and apply dropout and the head -> logits (B, C)."""
        if self.config.pooling == "last":
            if lengths is None:
                pooled = hidden[:, -1]
            else:
                pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths - 1]
        elif lengths is None:
            pooled = hidden.mean(dim=1)
        else:
            # Padded steps are zero, so the sum over all steps is the sum over valid ones.
            pooled = hidden.sum(dim=1) / lengths.unsqueeze(1).to(hidden.dtype)  # (B, N)
        return self.head(self.dropout(pooled))  # (B, C)

    def step_scores(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Per-step class scores (B, T, C), zero at padded steps (for analysis, not training)."""
        hidden, lengths, _ = self.forward_features(features, lengths)
        return self._zero_padded(self.head(self.dropout(hidden)), lengths)  # (B, T, C)

    def running_scores(
        self, features: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> Tensor:
        """Class scores after every step, with the model's pooling (see the module docstring).

        Args:
            features: (B, T, D) per-step features.
            lengths: (B,) valid lengths in [1, T]; None means all T steps.

        Returns:
            (B, T, C) logits: at step t those of the prefix 0..t (zero at padded steps). At
            each sequence's last valid step they equal :meth:`forward`'s logits.
        """
        hidden, lengths, _ = self.forward_features(features, lengths)
        scores = self._pooled_steps(hidden, hidden.new_zeros(hidden.shape[0], hidden.shape[2]), 0)
        return self._zero_padded(scores, lengths)

    def _pooled_steps(
        self, hidden: Tensor, hidden_sum: Tensor, steps_before: Tensor | int
    ) -> Tensor:
        """Per-step running logits (B, T, C) of the stack's output (B, T, N), given the sum of
        the ``steps_before`` ((B,) or one int) earlier outputs (pooling "mean")."""
        if self.config.pooling == "last":
            pooled = hidden
        else:
            # Padded steps come after the valid ones, so the cumulative sums at valid steps
            # are sums over valid steps only.
            steps = torch.arange(1, hidden.shape[1] + 1, device=hidden.device)  # (T,)
            before = torch.as_tensor(steps_before, device=hidden.device).reshape(-1, 1)
            counts = (before + steps).to(hidden.dtype)  # (B or 1, T)
            pooled = (hidden_sum.unsqueeze(1) + hidden.cumsum(dim=1)) / counts.unsqueeze(2)
        return self.head(self.dropout(pooled))  # (B, T, C)

    def initial_state(self, batch_size: int = 1) -> OnlineState:
        """The state of a stream before its first step (zeros; ``batch_size`` streams)."""
        first = self.head.weight
        zeros = first.new_zeros(batch_size, self.config.hidden_size)
        layers: list[State] = [
            (zeros, zeros) if self.config.cell == "lstm" else zeros
            for _ in range(self.stack.num_layers)
        ]
        steps = torch.zeros(batch_size, dtype=torch.long, device=first.device)
        return OnlineState(layers=layers, hidden_sum=zeros, num_steps=steps)

    def step(
        self, features: Tensor, state: OnlineState | None = None
    ) -> tuple[Tensor, OnlineState]:
        """Continue streams by one frame (or a chunk of frames), carrying their state.

        Args:
            features: (B, D) one frame's features per stream, or (B, T, D) a chunk.
            state: what the previous call returned; None starts new streams.

        Returns:
            The running logits, (B, C) for one frame or (B, T, C) for a chunk, and the state
            after the last frame.

        >>> config = ClassifierConfig(input_size=8, num_classes=3, hidden_size=4, dropout=0.0)
        >>> model = SequenceClassifier(config).eval()
        >>> features = torch.randn(1, 5, 8)
        >>> state, steps = None, []
        >>> for t in range(5):
        ...     scores, state = model.step(features[:, t], state)
        ...     steps.append(scores)
        >>> bool(torch.allclose(torch.stack(steps, 1), model.running_scores(features), atol=1e-6))
        True
        """
        one_frame = features.dim() == 2
        chunk = features.unsqueeze(1) if one_frame else features  # (B, T, D)
        if state is None:
            state = self.initial_state(chunk.shape[0])
        check_sequence_input(chunk, self.config.input_size, self.head.weight, "SequenceClassifier")
        hidden, layers, _ = self.stack(self._standardized(chunk), states=state.layers)  # (B, T, N)
        scores = self._pooled_steps(hidden, state.hidden_sum, state.num_steps)  # (B, T, C)
        new_state = OnlineState(
            layers=layers,
            hidden_sum=state.hidden_sum + hidden.sum(dim=1),
            num_steps=state.num_steps + chunk.shape[1],
        )
        return (scores[:, 0] if one_frame else scores), new_state

    def forward(
        self,
        features: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Classify a batch.

        Args:
            features: (B, T, D) per-step features, batch first.
            lengths: (B,) valid lengths in [1, T]; None means all T steps.
            return_attention: also return each EleAtt layer's gate values.

        Returns:
            logits (B, C); with ``return_attention``, (logits, attentions) where attentions
            holds one (B, T, D_l) tensor per EleAtt layer (zero at padded steps).
        """
        hidden, lengths, attentions = self.forward_features(features, lengths, return_attention)
        logits = self.forward_head(hidden, lengths)
        if return_attention:
            return logits, attentions
        return logits

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per layer (named as :meth:`RecurrentStack.layer_names`), head and total."""
        counts = self.stack.parameter_counts()
        counts["head"] = sum(p.numel() for p in self.head.parameters())
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts
