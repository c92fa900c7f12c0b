"""Explanations: where in a photo the model saw each manipulation it reports, and how well that matches the truth.

Per-label class activation maps (:mod:`~deepfake_mlc.explain.cam`, torch and pytorch-grad-cam) are carried
back through the face crop onto the photo and drawn over it (:mod:`~deepfake_mlc.explain.heatmaps`), and
measured against manipulation masks (:mod:`~deepfake_mlc.explain.localisation`). ``heatmaps`` needs only
numpy and PIL, so the serving image (no torch) can draw maps it is given.
"""
