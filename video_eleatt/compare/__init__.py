"""Baseline vs EleAtt: the comparison runner, its statistics and report, and attention maps.

- :mod:`~video_eleatt.compare.stats`: mean ± sample std, paired tests, bootstrap CIs, verdicts.
- :mod:`~video_eleatt.compare.runner`: variants x splits x seeds through the training code.
- :mod:`~video_eleatt.compare.report` / :mod:`~video_eleatt.compare.plots`: report.md, CSVs, PNGs.
- :mod:`~video_eleatt.compare.attention` / :mod:`~video_eleatt.compare.attention_run`: what
  the first EleAtt layer attends to (per dimension, over time, over the frames).
- :mod:`~video_eleatt.compare.cli`: ``video-eleatt compare`` and ``video-eleatt attention``.
"""
