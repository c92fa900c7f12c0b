"""The config schema: one typed section per concern, every field with its default and its range."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from deepfake_mlc.config.loader import StrictModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = get_args(Split)
Subset = Literal["components", "attributes"]  # the two Seq-DeepFake subsets
SUBSETS: tuple[Subset, ...] = get_args(Subset)
JitterRange = tuple[float, float] | float


class ColorJitterConfig(StrictModel):
    """Arguments of torchvision's ColorJitter; a number ``x`` means the range ``[1 - x, 1 + x]``.

    Defaults are the Seq-DeepFake (SeqFakeFormer) training recipe's.
    """

    brightness: JitterRange = (0.5, 1.3)
    contrast: JitterRange = (0.8, 1.5)
    saturation: JitterRange = (0.2, 1.5)
    hue: JitterRange = 0.0


def _range(low: float, high: float, low_open: bool) -> AfterValidator:
    """A check that a value is a range ``[a, b]``, ``a <= b``, inside the bounds; the error names them."""
    bounds = f"{low:g} {'<' if low_open else '<='} a <= b <= {high:g}"

    def check(value: tuple[float, float]) -> tuple[float, float]:
        a, b = value
        if not ((a > low if low_open else a >= low) and a <= b <= high):
            raise ValueError(f"[{a:g}, {b:g}] is not a range [a, b] with {bounds}")
        return value

    return AfterValidator(check)


class JpegAugment(StrictModel):
    """Re-encode as JPEG at a quality drawn uniformly (integers) from ``quality``, as a shared image is."""

    p: float = Field(0.5, ge=0.0, le=1.0, description="probability per image")
    quality: Annotated[tuple[int, int], _range(1, 100, low_open=False)] = Field(
        (30, 95), description="lowest and highest JPEG quality, 1..100"
    )


class DownscaleAugment(StrictModel):
    """Shrink width and height by a factor drawn from ``scale``; the model's resize then brings it back."""

    p: float = Field(0.5, ge=0.0, le=1.0, description="probability per image")
    scale: Annotated[tuple[float, float], _range(0, 1, low_open=True)] = Field(
        (0.25, 1.0), description="smallest and largest factor, 0 < a <= b <= 1"
    )


class BlurAugment(StrictModel):
    """Gaussian blur with a standard deviation (pixels of the image as read) drawn from ``sigma``."""

    p: float = Field(0.3, ge=0.0, le=1.0, description="probability per image")
    sigma: Annotated[tuple[float, float], _range(0, 10, low_open=True)] = Field(
        (0.1, 2.0), description="smallest and largest sigma, 0 < a <= b <= 10"
    )


class NoiseAugment(StrictModel):
    """Additive Gaussian noise with a standard deviation (share of the full intensity range) drawn from ``std``."""

    p: float = Field(0.3, ge=0.0, le=1.0, description="probability per image")
    std: Annotated[tuple[float, float], _range(0, 1, low_open=True)] = Field(
        (0.005, 0.05), description="smallest and largest std, 0 < a <= b <= 1"
    )


class AugmentConfig(StrictModel):
    """Training-time augmentation; evaluation only resizes and normalises.

    The degradations (``downscale``, ``blur``, ``noise``, ``jpeg``; off unless set, ``{}`` for the defaults)
    are what sharing does to an image; they apply first, to the image as read (:mod:`deepfake_mlc.data.degrade`).
    """

    hflip: float = Field(0.5, ge=0.0, le=1.0, description="probability of a horizontal flip")
    color_jitter: ColorJitterConfig | None = Field(
        default_factory=ColorJitterConfig, description="null disables colour jitter"
    )
    downscale: DownscaleAugment | None = Field(None, description="null (default): no downscaling")
    blur: BlurAugment | None = Field(None, description="null (default): no blur")
    noise: NoiseAugment | None = Field(None, description="null (default): no noise")
    jpeg: JpegAugment | None = Field(None, description="null (default): no JPEG re-compression")


Point = tuple[float, float]


class FaceCropConfig(StrictModel):
    """How a face is cut out of a photo: the crop a model's training images have, applied again at prediction.

    ``ffhq``: FFHQ's alignment (from the eye centres and mouth corners an oriented square around the face),
    which Seq-DeepFake's CelebA-HQ / FFHQ images have. ``template``: the similarity transform that puts the
    five landmarks (eyes, nose tip, mouth corners) nearest to ``template`` (fractions of the crop's side).
    ``none``: no face detection; the whole image is resized (the synthetic set draws its faces aligned).
    """

    policy: Literal["ffhq", "template", "none"] = "ffhq"
    size: int = Field(256, ge=16, le=4096, description="side of the square crop in pixels (Seq-DeepFake: 256)")
    scale: float = Field(1.0, gt=0.0, le=4.0, description="above 1: more of the head and background in the crop")
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"
    template: tuple[Point, Point, Point, Point, Point] | None = Field(
        None, description="template policy: where eyes, nose tip and mouth corners go, as fractions of size"
    )

    @model_validator(mode="after")
    def _template_iff_asked(self) -> FaceCropConfig:
        if (self.policy == "template") != (self.template is not None):
            raise ValueError("face_crop.template is required with policy 'template' and only then")
        return self


class ManifestSplits(StrictModel):
    """CSV manifests (columns ``path``, ``labels``) of a user's own data set, one per split."""

    train: Path
    val: Path | None = None
    test: Path | None = None


class DataConfig(StrictModel):
    """Where the images are, how they are read and how they are turned into tensors."""

    format: Literal["seqdeepfake", "manifest"] = "seqdeepfake"
    root: Path | None = Field(None, description="Seq-DeepFake root: the folder holding both subsets")
    subset: Subset = "components"
    manifests: ManifestSplits | None = None
    labels: list[str] | None = Field(None, description="label names of a manifest data set, in order")
    image_size: int = Field(224, ge=16, le=2048)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    face_crop: FaceCropConfig = Field(
        default_factory=FaceCropConfig, description="the face crop of the images; predict cuts photos the same way"
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    fraction: float = Field(
        1.0, gt=0, le=1, description="share of the training split used, spread evenly over it (quick runs, searches)"
    )
    batch_size: int = Field(128, ge=1, description="per-process batch size")
    eval_batch_size: int | None = Field(None, ge=1, description="defaults to batch_size")
    num_workers: int = Field(4, ge=0)
    on_corrupt: Literal["error", "skip"] = Field(
        "error", description="unreadable image: stop with its path, or skip it and count it"
    )

    @model_validator(mode="after")
    def _source_is_complete(self) -> DataConfig:
        if self.format == "seqdeepfake" and self.root is None:
            raise ValueError("data.root is required when data.format is 'seqdeepfake'")
        if self.format == "manifest":
            if self.manifests is None:
                raise ValueError("data.manifests.train is required when data.format is 'manifest'")
            if not self.labels:
                raise ValueError("data.labels is required when data.format is 'manifest'")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("data.labels has a repeated name")
        if any(s <= 0 for s in self.std):
            raise ValueError("data.std values must be positive")
        return self


class EmbeddingConfig(StrictModel):
    """Node features of the label graph (one vector per label); unset fields take the method's default.

    ``word``: a GloVe-format text file (a label's vector is the mean of its words' vectors) or a
    ``.npy`` / ``.safetensors`` matrix with one row per label; ``text_model``: a sentence-transformers
    model that works offline (the ``embeddings`` extra); ``image``: computed from the training images
    (read from ``path`` if given, else computed at the start of training); ``onehot``: identity baseline.
    """

    kind: Literal["word", "text_model", "image", "onehot"] | None = None
    path: Path | None = None
    dim: int | None = Field(None, ge=1, description="must match the file or model; onehot: the label count")
    text_model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers name or folder")


class GraphConfig(StrictModel):
    """The label graph and the graph network of the indirect methods (ML-GCN, IML-GCN, ML-AGCN)."""

    t: float = Field(0.4, ge=0.0, le=1.0, description="binarisation threshold on P(j | i)")
    p: float = Field(0.25, ge=0.0, le=1.0, description="weight given to neighbours when re-weighting")
    reweight: Literal["code", "paper"] = Field(
        "code",
        description="code: the public ML-GCN code (column-scaled, identity added); paper: Eq. 8 of the "
        "CVPR paper as corrected by its authors (diagonal 1 - p)",
    )
    hidden: int = Field(1024, ge=1, description="width of the first graph layer")
    negative_slope: float = Field(0.2, ge=0.0, description="LeakyReLU slope between graph layers")
    similarity_topk: int | None = Field(None, ge=1, description="ML-AGCN: keep the k most similar nodes per row")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)


class ModelConfig(StrictModel):
    """Which network: a registered model (``deepfake-mlc models``) or any timm backbone name."""

    name: str = "resnet50"
    backbone: str | None = Field(None, description="graph models: the timm CNN (default: the method's)")
    pretrained: bool = Field(False, description="download ImageNet weights through timm's hub")
    pretrained_path: Path | None = Field(None, description="local .safetensors or timm checkpoint")
    pool: Literal["avg", "max"] | None = Field(None, description="global pooling (default: the method's)")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    graph: GraphConfig = Field(default_factory=GraphConfig)

    @model_validator(mode="after")
    def _one_weight_source(self) -> ModelConfig:
        if self.pretrained and self.pretrained_path is not None:
            raise ValueError("set model.pretrained or model.pretrained_path, not both")
        return self


class LossConfig(StrictModel):
    """Training loss; the ASL parameters are the reference implementation's defaults."""

    name: Literal["bce", "multilabel_soft_margin", "asl"] = "bce"
    gamma_neg: float = Field(4.0, ge=0.0)
    gamma_pos: float = Field(0.0, ge=0.0)
    clip: float = Field(0.05, ge=0.0, lt=1.0)
    eps: float = Field(1e-8, gt=0.0)
    reduction: Literal["sum", "mean"] | None = Field(
        None, description="default: ASL sums like its reference; the others average"
    )


class TrainConfig(StrictModel):
    """How long and how to optimise (timm's train.py options, for one process or many)."""

    epochs: int = Field(40, ge=1, description="the paper: 40 epochs or until convergence")
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-4, gt=0.0, description="peak learning rate")
    weight_decay: float = Field(1e-4, ge=0.0, description="not applied to norms and biases")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD only")
    backbone_lr_scale: float = Field(1.0, gt=0.0, description="backbone lr = lr x this (ML-GCN: 0.1)")
    scheduler: Literal["onecycle", "cosine", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0, description="cosine: linear warm-up length")
    pct_start: float = Field(0.2, gt=0.0, lt=1.0, description="onecycle: share of the cycle spent rising")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="cosine: final lr = lr x this")
    grad_accum_steps: int = Field(1, ge=1)
    clip_grad_norm: float | None = Field(None, gt=0.0)
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("no", description="fp16 needs a GPU; bf16 works on CPU")
    ema: bool = Field(False, description="keep an exponential moving average of the weights; evaluate both")
    ema_decay: float = Field(0.9997, gt=0.0, lt=1.0)
    channels_last: bool = False
    compile: bool = Field(False, description="torch.compile the model")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many evaluations without a better validation mAP"
    )
    eval_every: int = Field(1, ge=1, description="evaluate every this many epochs (and after the last)")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="probability above which a label fires")
    convention: Literal["asl", "mlgcn"] = Field("asl", description="metric convention (see the metrics docs)")
    num_threads: int | None = Field(None, ge=1, description="CPU threads per process (default: all cores / processes)")
    checkpoint_every_minutes: float | None = Field(
        30.0, gt=0.0, description="also save the training state mid-epoch this often (a kill loses at most this)"
    )
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="also save the training state mid-epoch every this many optimiser steps"
    )


class TrackingConfig(StrictModel):
    """MLflow: where runs go. No server needed: the default is an SQLite file in the output folder."""

    enabled: bool = True
    uri: str | None = Field(None, description="tracking URI; default $MLFLOW_TRACKING_URI, else sqlite in output.dir")
    experiment: str = "deepfake-mlc"
    log_checkpoint: bool = Field(True, description="log the best checkpoint as an artifact")


class OutputConfig(StrictModel):
    """Where a run writes its checkpoints, metrics and plots."""

    dir: Path = Field(Path("runs"), description="parent folder of all runs")
    name: str | None = Field(None, description="run folder name (default: model-subset-loss-time)")


class Config(StrictModel):
    """A whole run's configuration; dumped to YAML and logged with every run."""

    seed: int = 0
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
