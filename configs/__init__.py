"""The shipped configs: this folder is installed as the package ``video_eleatt.configs``.

Find them by name with :mod:`video_eleatt.config_files` or ``video-eleatt configs list``.
"""
