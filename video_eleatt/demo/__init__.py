"""The offline demo: a generated action dataset of real encoded videos, and the whole system
run on it.

Bottom up: :mod:`~video_eleatt.demo.synth_config` (the classes and the video parameters),
:mod:`~video_eleatt.demo.render` (drawing the clips), :mod:`~video_eleatt.demo.synth`
(encoding and the resumable dataset writer), :mod:`~video_eleatt.demo.options` and
:mod:`~video_eleatt.demo.main` (``video-eleatt demo``: generate, extract, compare, attention),
:mod:`~video_eleatt.demo.cli` (the ``demo`` and ``make-demo-data`` commands). Nothing is
imported here.
"""
