"""The embedded synthetic data set: procedurally drawn faces with stacked, traceable manipulations.

Written in the official Seq-DeepFake layout (``facial_components/``, ``facial_attributes/``, CSVs of
step-id labels), so the normal reader loads it. Each label is a manipulation of its own face region
that leaves generator-like traces (resampling, colour shift, noise mismatch, blending seam), and
originals may show the same attributes drawn cleanly: the task is forensic, not just "is there a beard".
"""

from deepfake_mlc.data.synth.config import CorrelatedPrior, SplitSizes, SynthConfig
from deepfake_mlc.data.synth.priors import StepPrior
from deepfake_mlc.data.synth.sample import RenderedSample, render_sample
from deepfake_mlc.data.synth.writer import SynthSummary, generate

__all__ = [
    "CorrelatedPrior",
    "RenderedSample",
    "SplitSizes",
    "StepPrior",
    "SynthConfig",
    "SynthSummary",
    "generate",
    "render_sample",
]
