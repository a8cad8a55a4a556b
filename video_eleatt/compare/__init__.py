"""Baseline vs EleAtt: the comparison runner, its statistics and report, and attention maps.

- :mod:`~video_eleatt.compare.stats`: mean ± sample std, paired tests, bootstrap CIs, verdicts.
- :mod:`~video_eleatt.compare.plan`: the comparison config, its variants and runs, run identity.
- :mod:`~video_eleatt.compare.runner`: executes the planned runs through the training code.
- :mod:`~video_eleatt.compare.rows`: the report's numbers as typed rows (summary, comparisons).
- :mod:`~video_eleatt.compare.report` (CSVs, figures), :mod:`~video_eleatt.compare.markdown`
  (report.md, one function per section), :mod:`~video_eleatt.compare.plots` (the report's
  plots, drawn with :mod:`video_eleatt.figures`).
- :mod:`~video_eleatt.compare.attention` / :mod:`~video_eleatt.compare.attention_run`: what
  the first EleAtt layer attends to per dimension and over time, over a comparison's test
  videos; the overlays on the frames are drawn by :mod:`video_eleatt.inference.spatial`.
- :mod:`~video_eleatt.compare.options`: a config dataclass from YAML and command-line options.
- :mod:`~video_eleatt.compare.cli`: ``video-eleatt compare`` and ``video-eleatt attention``.
"""
