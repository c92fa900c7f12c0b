"""Frames of a video at a chosen rate, decoded by PyAV (FFmpeg ships inside its wheel: nothing to install).

A damaged stream is reported as :class:`~deepfake_mlc.errors.CorruptVideoError` naming the file, whether
it fails at opening or halfway: the frames read before are kept by the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
from PIL import Image

from deepfake_mlc.errors import CorruptVideoError

T = TypeVar("T")
_END = object()
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: the duration may be unknown (0) for a stream without an index."""

    width: int
    height: int
    fps: float
    duration: float

    def samples(self, fps: float) -> int:
        """About how many frames :func:`sample_frames` yields at ``fps`` (for a progress bar)."""
        return max(1, round(self.duration * min(fps, self.fps or fps)))


def video_info(path: Path) -> VideoInfo:
    with _open(path) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
        return VideoInfo(stream.width, stream.height, float(stream.average_rate or 0), duration)


def sample_frames(path: Path, fps: float) -> Iterator[tuple[float, Image.Image]]:
    """``(seconds, RGB frame)`` for the first frame at or after each multiple of ``1 / fps``.

    Every frame is decoded (seeking lands on key frames only), but only the sampled ones are converted.
    """
    period, due = 1.0 / fps, 0.0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else due
                if t + 1e-6 >= due:
                    yield t, frame.to_image()
                    due = (int(t / period + 1e-6) + 1) * period
        except (av.error.FFmpegError, ValueError) as err:
            raise CorruptVideoError(f"cannot decode video {path}: {err}") from None


def read_ahead(frames: Iterator[T], size: int = 8) -> Iterator[T]:
    """``frames``, decoded by a thread ``size`` items ahead of the caller: FFmpeg releases the GIL, so decoding
    overlaps face detection. An error in the decoder reaches the caller at the item where it happened."""
    ahead: queue.Queue = queue.Queue(size)
    stop = threading.Event()

    def decode() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        ahead.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put((_END, None))
        except BaseException as err:  # handed over to the caller, raised there
            ahead.put((_END, err))

    worker = threading.Thread(target=decode, daemon=True, name="video-decoder")
    worker.start()
    try:
        while True:
            item, err = ahead.get()
            if err is not None:
                raise err
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as err:
        raise CorruptVideoError(f"cannot read video {path}: {err}") from None
    if not container.streams.video:
        container.close()
        raise CorruptVideoError(f"cannot read video {path}: it has no video stream")
    return container
