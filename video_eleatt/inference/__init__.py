"""Inference on raw videos: decode, backbone, recurrent classifier, and spatial overlays."""
