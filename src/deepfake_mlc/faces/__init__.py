"""Faces in real photos and videos: detection with landmarks, alignment to a model's crop policy, tracks.

Nothing here needs torch: the detector's networks run under ONNX Runtime (the serving image has no torch).
"""
