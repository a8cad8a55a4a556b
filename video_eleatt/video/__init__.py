"""Video decoding (decord), frame sampling by time, a decode worker pool and ``check``.

Import from the submodules (``video_eleatt.video.decode``, ``.sampling``, ``.pool``,
``.check``); this package imports nothing at import time.
"""
