"""Face detection + alignment time per photo, next to the classifier's, and video analysis speed.

Scenes are built from the photos scikit-image ships (its astronaut's face pasted on its coffee photo);
the classifier is ``--model`` (any model file of ours), or a paper-size ResNet-50 at 224 px with random
weights exported to ONNX (its speed does not depend on its weights). Everything runs on the CPU; scikit-image
comes with the dev extra (`pip install -e ".[dev]"`):

    python benchmarks/faces_speed.py --threads 2 [--min-face 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage import data as photos

from deepfake_mlc.config import FaceCropConfig
from deepfake_mlc.data.preprocess import Preprocessing
from deepfake_mlc.faces.cutter import MIN_FACE, FaceCutter
from deepfake_mlc.runtime import open_runner
from deepfake_mlc.runtime.predict import Predictor


def paper_model(folder: Path) -> Path:
    """ResNet-50 at 224 px (random weights), trained on FFHQ-aligned faces as far as its metadata says."""
    import torch

    from deepfake_mlc.artifacts import CheckpointMeta, Preprocessing, write_checkpoint
    from deepfake_mlc.config import Config, DataConfig
    from deepfake_mlc.data.labels import SUBSET_LABELS
    from deepfake_mlc.export import export_onnx
    from deepfake_mlc.models import build_model

    cfg = Config(data=DataConfig(root=folder), model={"name": "resnet50"})
    labels = SUBSET_LABELS["components"]
    torch.manual_seed(0)
    model = build_model(cfg.model, len(labels)).eval()
    d = cfg.data
    meta = CheckpointMeta(
        config=cfg.model_dump(mode="json"),
        label_names=labels,
        preprocessing=Preprocessing(
            image_size=d.image_size, interpolation=d.interpolation, mean=d.mean, std=d.std, face_crop=d.face_crop
        ),
        threshold=0.5,
    )
    write_checkpoint(folder / "checkpoints" / "best", model.state_dict(), meta)
    return export_onnx(folder, folder / "resnet50.onnx")


def scene(size: tuple[int, int], face_height: int) -> Image.Image:
    """``size`` coffee background with the astronaut's head (``face_height`` px tall) near the middle."""
    head = Image.fromarray(photos.astronaut()).crop((130, 10, 320, 230))
    head = head.resize((round(head.width * face_height / head.height), face_height))
    picture = Image.fromarray(photos.coffee()).resize(size)
    picture.paste(head, (size[0] // 2 - head.width // 2, size[1] // 3))
    return picture


def median_ms(work: Callable[[], object], repeat: int) -> float:
    work()  # warm-up: sessions built, caches filled
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def write_clip(path: Path, seconds: float, size: tuple[int, int], fps: int = 30) -> None:
    """A ``seconds`` long H.264 clip: the head crossing the frame."""
    background = Image.fromarray(photos.coffee()).resize(size)
    head = Image.fromarray(photos.astronaut()).crop((130, 10, 320, 230)).resize((190, 220))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        frames = round(seconds * fps)
        for i in range(frames):
            frame = background.copy()
            frame.paste(head, (round((size[0] - head.width) * i / frames), size[1] // 3))
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model file of ours (default: random ResNet-50, 224 px)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--min-face", type=int, default=MIN_FACE, help="as predict's (MTCNN's own default: 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or paper_model(Path(tmp))
        runner = open_runner(model, "ort-cpu", threads=args.threads)
        policy = runner.info.preprocessing.face_crop
        policy = policy if policy.policy != "none" else FaceCropConfig()
        cutter = FaceCutter(policy, threads=args.threads, min_face=args.min_face)
        preprocessing = Preprocessing.of(runner.info.preprocessing)
        print(f"| photo | faces | detect + align ms | classifier ms per face ({runner.info.model}, "
              f"{runner.info.preprocessing.image_size} px) |")  # fmt: skip
        print("|---|---|---|---|")
        for size, face in (((640, 480), 160), ((1920, 1080), 400)):
            picture = scene(size, face)
            faces = cutter(picture)
            batch = np.stack([preprocessing(f.image) for f in faces])
            detect = median_ms(lambda picture=picture: cutter(picture), args.repeat)
            classify = median_ms(lambda batch=batch: runner(batch[:1]), args.repeat)
            print(f"| {size[0]}×{size[1]} | {len(faces)} | {detect:.0f} | {classify:.0f} |")
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, args.seconds, (1280, 720))
        predictor = Predictor(runner, cutter, runner.info.decision_thresholds())
        start = time.perf_counter()
        result = predictor.predict([clip], fps=args.fps)[0]
        seconds = time.perf_counter() - start
        sampled = len(result.frames)
        print(
            f"\nvideo: {args.seconds:.0f} s 1280×720 H.264 at {args.fps:g} fps: {sampled} frames sampled and analysed "
            f"in {seconds:.1f} s = {sampled / seconds:.1f} frames/s, {args.seconds / seconds:.2f}× real time "
            f"({len(result.tracks)} track)"
        )
    print(
        f"min face {args.min_face} px | {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
