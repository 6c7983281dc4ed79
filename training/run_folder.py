"""The files of a run folder (`--out`), named once for the trainer, the distiller and the tools.

config.json        the run's resolved configuration
commands.jsonl     every command that wrote to the run, one JSON line each
metrics.jsonl      the loss log
validation.jsonl   the held-out score at each --val-every
curves.png         the loss curves (python -m training plot)
samples/           sample grids during training
checkpoints/       the last checkpoint (training/checkpoint.py)
package/           the model package written at the end
"""

from __future__ import annotations

CONFIG = "config.json"
COMMANDS = "commands.jsonl"
LOSS_LOG = "metrics.jsonl"
VALIDATION_LOG = "validation.jsonl"
CURVES = "curves.png"
SAMPLES = "samples"
CHECKPOINTS = "checkpoints"
PACKAGE = "package"
