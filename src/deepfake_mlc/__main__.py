"""``python -m deepfake_mlc ...`` (what ``accelerate launch -m deepfake_mlc train ...`` runs): the CLI."""

from deepfake_mlc.cli.main import run

run()
