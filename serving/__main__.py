"""`python -m serving`: serve the model directory with BentoML on CYCLEGAN_HOST:CYCLEGAN_PORT."""

from __future__ import annotations

import os
import sys

from serving.registry import find_packages
from serving.settings import ROOT, get_settings


def main() -> int:
    settings = get_settings()
    if not find_packages(settings.model_dir):
        print(f"no model package in {settings.model_dir}", file=sys.stderr)
        return 1
    command = [
        sys.executable, "-m", "bentoml", "serve", "serving.service:Translator",
        "--host", settings.host, "--port", str(settings.port), "--working-dir", str(ROOT),
    ]  # fmt: skip
    os.execv(sys.executable, command)  # BentoML takes over this process (and its signals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
