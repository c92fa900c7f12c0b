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
        stream = _video_stream(container)
        duration = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
        return VideoInfo(stream.width, stream.height, float(stream.average_rate or 0), duration)


def sample_frames(path: Path, fps: float) -> Iterator[tuple[float, Image.Image]]:
    """``(seconds, RGB frame as shown)`` for the first frame at or after each multiple of ``1 / fps``.

    Every frame is decoded (seeking lands on key frames only), but only the sampled ones are converted.
    """
    period, due = 1.0 / fps, 0.0
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 0)
        try:
            for index, frame in enumerate(container.decode(stream)):
                # no timestamp (some raw streams): the frame's place at the nominal rate
                t = float(frame.time) if frame.time is not None else index / rate if rate else due
                if t + 1e-6 >= due:
                    yield t, _upright(frame)
                    due = (int(t / period + 1e-6) + 1) * period
        except (av.error.FFmpegError, ValueError) as err:
            raise CorruptVideoError(f"cannot decode video {path}: {err}") from None


def read_ahead(frames: Iterator[T], size: int = 8) -> Iterator[T]:
    """``frames``, decoded by a thread ``size`` items ahead of the caller: FFmpeg releases the GIL, so decoding
    overlaps face detection. An error in the decoder reaches the caller at the item where it happened; a caller
    that stops early (an error of its own, Ctrl-C) stops the thread and closes ``frames`` (the video file)."""
    ahead: queue.Queue = queue.Queue(size)
    stop = threading.Event()

    def hand_over(entry: tuple[object, BaseException | None]) -> bool:
        """Queue ``entry`` unless the caller has stopped; whether it was queued."""
        while not stop.is_set():
            try:
                ahead.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for item in frames:
                if not hand_over((item, None)):
                    return
            hand_over((_END, None))
        except BaseException as err:  # handed over to the caller, raised there
            hand_over((_END, err))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

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


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    """The video itself, not a cover picture some MP4/M4V files carry as a one-frame video stream."""
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise CorruptVideoError(f"cannot read video {container.name}: it has only a cover picture")
    return streams[0]


def _upright(frame: av.VideoFrame) -> Image.Image:
    """The frame as it is shown: phones record portrait video sideways with a rotation in the track's matrix
    (PyAV's ``rotation``: degrees counter-clockwise, as PIL's ``rotate`` takes them)."""
    image = frame.to_image()
    return image.rotate(frame.rotation, expand=True) if frame.rotation else image


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
