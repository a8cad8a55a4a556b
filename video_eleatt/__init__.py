"""video_eleatt: RGB video action recognition with CNN features and EleAtt-gated RNNs.

Importing the package does no work: submodules are imported where they are used.
"""

__version__ = "0.1.0"
