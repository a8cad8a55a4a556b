"""Training and evaluation over cached features (Lightning).

- ``module.ActionClassifier``: the LightningModule around ``SequenceClassifier``.
- ``data.FeatureDataModule``: feature cache + dataset index -> batches of sequences.
- ``metrics``: top-1 (micro), top-5, mean class accuracy (macro recall), confusion matrix.
- ``callbacks``: the files of a run directory (config, history, metrics, predictions).
- ``run``: ``run_training`` for programs (the Lightning CLI in-process, run directory layout).
- ``cli``: ``video-eleatt fit|validate|test|predict`` over ``run``.

Nothing is imported here: ``from video_eleatt.training.run import run_training``.
"""
