"""Recurrent models: EleAtt layers, the layer stack and the sequence classifier.

- :mod:`video_eleatt.models.eleatt`: ``EleAttGRU``, ``EleAttLSTM``, ``EleAttRNN`` (one layer each,
  ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` arithmetic plus the element-wise attention gate).
- :mod:`video_eleatt.models.sequence_checks`: input, length and gate-activation checks shared
  by the layers and the fused path.
- :mod:`video_eleatt.models.fused_gru`: the fused fast path ``EleAttGRU`` uses where it applies,
  over :mod:`~video_eleatt.models.matmul` (oneDNN / ``torch.mm`` products, their precision),
  :mod:`~video_eleatt.models.gru_loop` (the C++ time loops: build, load, or the Python
  fallback) and :mod:`~video_eleatt.models.cuda_graphs` (the loops replayed on CUDA).
- :mod:`video_eleatt.models.stack`: ``RecurrentStack``, m EleAtt layers then n plain torch layers.
- :mod:`video_eleatt.models.classifier`: ``ClassifierConfig`` and ``SequenceClassifier``.
- :mod:`video_eleatt.models.toy`: ``video-eleatt toy``, baseline vs EleAtt on a generated task.
"""

from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier
from video_eleatt.models.eleatt import EleAttGRU, EleAttLSTM, EleAttRNN
from video_eleatt.models.stack import RecurrentStack

__all__ = [
    "ClassifierConfig",
    "EleAttGRU",
    "EleAttLSTM",
    "EleAttRNN",
    "RecurrentStack",
    "SequenceClassifier",
]
