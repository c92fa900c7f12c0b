"""``deepfake-mlc`` in a real process that trains slowly and says where it is, for tests that signal or kill it.

Environment: ``SLOW_MARKER`` (a file: each optimiser step writes its global step there), ``SLOW_STEP_SECONDS``
(sleep after each step), ``SLOW_PAUSE_IN_SAVE=N`` (the Nth training-state save stops for a minute after
Accelerate has written its files and before the loop's position is written and the folder swapped in,
writing ``<SLOW_MARKER>.saving`` first: a kill then hits a half-written state). Nothing else is changed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from accelerate import Accelerator

from deepfake_mlc.cli.main import main
from deepfake_mlc.engine.trainer import Trainer

MARKER = Path(os.environ["SLOW_MARKER"])
SECONDS = float(os.environ.get("SLOW_STEP_SECONDS", "0.2"))
PAUSE_IN_SAVE = int(os.environ.get("SLOW_PAUSE_IN_SAVE", "0"))

step, save_state = Trainer.step, Accelerator.save_state
saves = 0


def slow_step(self: Trainer, *args: object, **kwargs: object) -> object:
    loss = step(self, *args, **kwargs)
    MARKER.write_text(str(self.progress.global_step))
    time.sleep(SECONDS)
    return loss


def pausing_save(self: Accelerator, *args: object, **kwargs: object) -> object:
    global saves
    result = save_state(self, *args, **kwargs)
    saves += 1
    if saves == PAUSE_IN_SAVE:
        MARKER.with_name(MARKER.name + ".saving").write_text(str(saves))
        time.sleep(60)
    return result


Trainer.step = slow_step  # type: ignore[method-assign]
Accelerator.save_state = pausing_save  # type: ignore[method-assign]
sys.exit(main(sys.argv[1:]))
