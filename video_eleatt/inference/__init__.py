"""Inference on raw videos: decode, backbone, recurrent classifier, and spatial overlays.

Sits above training and below compare. Modules, from the bottom up: ``errors``
(:class:`PredictError`, :class:`AttentionError`), ``gates`` (the EleAtt gate values of a
trained model), ``checkpoints`` (a checkpoint and the feature pipeline it records),
``spatial`` (attention over the frames; our extension, not the paper's), ``predict``
(classify a raw video); ``cli`` (``video-eleatt predict --checkpoint``) on top.
"""
