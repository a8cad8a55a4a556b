"""Video decoding (PyAV, frame-exact), frame sampling by time, a decode worker pool and ``check``.

Import from the submodules, bottom up: ``video_eleatt.video.frame_table`` (which frames a video
has), ``.decode`` (reading them exactly), ``.sampling``, ``.pool``, ``.check``; this package
imports nothing at import time.
"""
