"""The launch as the loop understood it: the Accelerator, checked against what was asked for, and said aloud.

``accelerate launch --cpu --num_processes 2 train ...`` runs *one* process (Accelerate ignores the count
without ``--multi_gpu``) and a ``--multi_gpu`` launch on a CPU machine without ``ACCELERATE_USE_CPU=1``
starts independent copies: the first is said at start with the command that does what was meant, the
second refused. Every training prints processes, machines, device, precision, batch and threads first.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration

from deepfake_mlc.config import Config
from deepfake_mlc.errors import ConfigError, LaunchError

CPU_DDP = "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N train --cpu ..."


def make_accelerator(cfg: Config, cpu: bool) -> Accelerator:
    """An Accelerator for ``cfg``, after checking that the launch matches what the user asked for."""
    precision = cfg.train.mixed_precision
    if precision == "fp16" and (cpu or not torch.cuda.is_available()):
        raise ConfigError(
            "bad value for 'train.mixed_precision': fp16 needs a CUDA GPU (on a CPU Accelerate would silently "
            "train in fp32); use bf16 or no"
        )
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.train.grad_accum_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.seed),
        step_scheduler_with_optimizer=False,
    )
    expected = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != expected:
        hint = f" On a CPU machine, start real CPU DDP with {CPU_DDP}" if not torch.cuda.is_available() else ""
        raise LaunchError(
            f"launched as {expected} processes but the process group has {accelerator.num_processes}: each process "
            f"would train alone and overwrite the same run folder.{hint}"
        )
    threads = cfg.train.num_threads or max(1, (os.cpu_count() or 1) // accelerator.num_processes)
    torch.set_num_threads(threads)
    return accelerator


def launch_summary(cfg: Config, accelerator: Accelerator) -> list[str]:
    """What runs, in a few lines: the first thing a training prints (and the warning when it is not what was asked)."""
    processes = accelerator.num_processes
    machines = max(1, processes // int(os.environ.get("LOCAL_WORLD_SIZE", processes)))
    device = accelerator.device
    if device.type == "cuda":
        device_text = f"{torch.cuda.get_device_name(device)} ({device})"
    else:
        device_text = f"CPU ({os.cpu_count()} cores)"
    batch, accumulate = cfg.data.batch_size, cfg.train.grad_accum_steps
    lines = [
        f"launch: {processes} process{'es' if processes > 1 else ''} on {machines} machine{'s' if machines > 1 else ''}"
        f", {device_text} per process, mixed precision {accelerator.mixed_precision}",
        f"batch: {batch} per process x {processes} process{'es' if processes > 1 else ''}"
        + (f" x {accumulate} accumulation steps" if accumulate > 1 else "")
        + f" = {batch * processes * accumulate} per optimiser step; {torch.get_num_threads()} CPU threads and "
        f"{cfg.data.num_workers} loader workers per process",
    ]
    asked = requested_processes()
    if asked is not None and asked > processes:
        lines.append(
            f"warning: accelerate launch was asked for {asked} processes but started {processes}: Accelerate runs one "
            f"process unless the launch is distributed. For {asked}: {distributed_command(asked)}"
        )
    return lines


def parent_command() -> list[str]:
    """The command line of the process that started this one (Linux ``/proc``; empty elsewhere)."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def requested_processes(command: list[str] | None = None) -> int | None:
    """The process count an ``accelerate launch`` parent was given (flag or config file), if that is our parent."""
    command = parent_command() if command is None else command
    if "launch" not in command or not any(
        Path(part).name == "accelerate" for part in command[: command.index("launch")]
    ):
        return None
    from accelerate.commands.launch import launch_command_parser

    try:
        args, _ = launch_command_parser().parse_known_args(command[command.index("launch") + 1 :])
    except SystemExit:  # not a launch line Accelerate's own parser takes
        return None
    if args.num_processes is None and args.config_file:
        import yaml

        try:
            return int((yaml.safe_load(Path(args.config_file).read_text()) or {}).get("num_processes") or 1)
        except (OSError, ValueError, yaml.YAMLError):
            return None
    return args.num_processes


def distributed_command(processes: int, command: list[str] | None = None) -> str:
    """The parent's ``accelerate launch`` line made distributed (``--multi_gpu``; ``ACCELERATE_USE_CPU=1`` on a CPU)."""
    command = parent_command() if command is None else command
    launch = command.index("launch") if "launch" in command else None
    if launch is None:
        return (
            CPU_DDP.replace("N", str(processes))
            if not torch.cuda.is_available()
            else "accelerate launch --multi_gpu ..."
        )
    rest = command[launch + 1 :]
    script = next(
        (i for i, part in enumerate(rest) if not part.startswith("-") and Path(part).name == "train"), len(rest)
    )
    # on a CPU, ACCELERATE_USE_CPU=1 says --cpu: Accelerate refuses --cpu beside --multi_gpu
    dropped = {"--multi_gpu"} | ({"--cpu"} if not torch.cuda.is_available() else set())
    launcher = [part for part in rest[:script] if part not in dropped]
    line = shlex.join(["accelerate", "launch", "--multi_gpu", *launcher, *rest[script:]])
    return line if torch.cuda.is_available() else f"ACCELERATE_USE_CPU=1 {line}"
