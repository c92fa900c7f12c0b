"""The full training state for ``--resume``: Accelerate's ``save_state`` folder plus the loop's position.

Optimiser, scheduler, scaler, EMA and RNG state are Accelerate's; :func:`save_training_state` writes them
to a temporary folder and swaps it in, so a kill during the save leaves the previous state usable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from deepfake_mlc.artifacts import RunFolder

PROGRESS_FILE = "progress.json"


def save_training_state(accelerator: Any, run: RunFolder, progress: dict[str, Any]) -> None:
    """Accelerate's full training state plus our loop position, swapped in as one folder.

    All processes call it (Accelerate gathers what it needs); only the main process renames.
    """
    final = run.state_dir
    tmp, old = final.with_name(f"{final.name}.tmp"), final.with_name(f"{final.name}.old")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def training_state_dir(run: RunFolder) -> Path | None:
    """The latest complete training state of a run (the previous one if a kill hit the swap)."""
    for state in (run.state_dir, run.state_dir.with_name(f"{run.state_dir.name}.old")):
        if (state / PROGRESS_FILE).is_file():
            return state
    return None


def read_progress(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / PROGRESS_FILE).read_text())
