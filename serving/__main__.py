"""`python -m serving`: serve the model directory with BentoML on CYCLEGAN_HOST:CYCLEGAN_PORT."""

from __future__ import annotations

import logging
import os
import sys

from serving.registry import find_packages
from serving.settings import ROOT, SettingsError, get_settings

log = logging.getLogger("serving")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:  # fail here, once and clearly, rather than in every BentoML worker
        settings = get_settings()
    except SettingsError as error:
        log.error("%s", error)
        return 2
    if not find_packages(settings.model_dir):
        log.error("no model package in %s", settings.model_dir)
        return 1
    # Threads that decode and encode images each get a malloc arena by default (8 per core),
    # and freed image memory stays in them: two arenas keep the processes' RSS flat.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    command = [
        sys.executable, "-m", "bentoml", "serve", "serving.service:Translator",
        "--host", settings.host, "--port", str(settings.port), "--working-dir", str(ROOT),
    ]  # fmt: skip
    os.execv(sys.executable, command)  # BentoML takes over this process (and its signals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
