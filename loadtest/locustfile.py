"""Locust users that post real images to every direction of the service.

Settings come from environment variables (`python -m loadtest` sets them from its flags):
  LOADTEST_IMAGES   folders of images, separated by ':' (default: the pairs' test folders,
                    or examples/ where the data sets are absent)
  LOADTEST_MIX      directions and weights, "horse2zebra=3,summer2winter=1" (default: every
                    direction the server offers, alike; see loadtest/mix.py)
  LOADTEST_WAIT     think time between a user's requests, "MIN,MAX" seconds (default 0,0)
  LOADTEST_SHAPE    "", "step" or "spike": a load shape over the run (default: constant users)
  LOADTEST_USERS, LOADTEST_DURATION   the shape's peak users and length in seconds
Answers 429/503 (deliberate overload) are marked as failures whose message starts with
"overloaded", so the SLO gate can count them apart from real errors.
"""

from __future__ import annotations

import io
import os
import random
import sys
from pathlib import Path

from locust import HttpUser, LoadTestShape, between, task
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # locust runs this file by its path: make `loadtest` importable
from loadtest.mix import choose_weights, parse_mix  # noqa: E402

MIX = parse_mix(os.environ.get("LOADTEST_MIX", ""))
# The pairs' test photos where the data sets are beside the checkout, else examples/.
DEFAULT_IMAGES = [
    folder
    for folder in (
        ROOT.parent / "shared/data/horse2zebra/testA",
        ROOT.parent / "shared/data/horse2zebra/testB",
        ROOT.parent / "shared/data/summer2winter_yosemite/testA",
        ROOT.parent / "shared/data/summer2winter_yosemite/testB",
    )
    if folder.is_dir()
] or [ROOT / "examples"]
OVERLOADED = "overloaded"
# Mixed sizes, square and not: each image is also sent resized to these.
SIZES = [(256, 256), (320, 200), (180, 240), (512, 384)]


def load_images(limit_per_folder: int = 20) -> list[tuple[str, bytes]]:
    """(content type, bytes) for a sample of each folder, at several sizes."""
    folders = [
        Path(p) for p in os.environ.get("LOADTEST_IMAGES", "").split(":") if p
    ] or DEFAULT_IMAGES
    rng = random.Random(0)
    images: list[tuple[str, bytes]] = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file())[:limit_per_folder]
        for path in files:
            with Image.open(path) as image:
                size = rng.choice(SIZES)
                buffer = io.BytesIO()
                image.convert("RGB").resize(size).save(buffer, format="JPEG", quality=90)
            images.append(("image/jpeg", buffer.getvalue()))
    if not images:
        raise RuntimeError(f"no images in {folders}")
    return images


IMAGES = load_images()
low, high = (float(x) for x in os.environ.get("LOADTEST_WAIT", "0,0").split(","))


class TranslateUser(HttpUser):
    wait_time = between(low, high)

    def on_start(self) -> None:
        response = self.client.get("/directions", name="/directions")
        offered = list(response.json()["directions"]) if response.ok else []
        if not offered:
            raise RuntimeError(f"the server offers no directions: {response.text[:200]}")
        self.directions, self.weights = choose_weights(offered, MIX)

    @task
    def translate(self) -> None:
        direction = random.choices(self.directions, weights=self.weights)[0]
        content_type, body = random.choice(IMAGES)
        with self.client.post(
            f"/translate/{direction}", data=body, headers={"Content-Type": content_type},
            name=f"/translate/{direction}", catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code in (429, 503):
                response.failure(f"{OVERLOADED} ({response.status_code})")
            elif response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:120]}")
            elif not response.content.startswith(b"\x89PNG"):
                response.failure("the answer is not a PNG")


SHAPE = os.environ.get("LOADTEST_SHAPE", "")
PEAK = int(os.environ.get("LOADTEST_USERS", "8"))
DURATION = float(os.environ.get("LOADTEST_DURATION", "60"))

if SHAPE == "step":

    class StepShape(LoadTestShape):
        """Four equal steps up to the peak, each a quarter of the run."""

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            if elapsed > DURATION:
                return None
            step = min(3, int(elapsed / (DURATION / 4)))
            users = max(1, round(PEAK * (step + 1) / 4))
            return users, users

elif SHAPE == "spike":

    class SpikeShape(LoadTestShape):
        """A quarter of the peak, a spike to the peak in the middle fifth, then back."""

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            if elapsed > DURATION:
                return None
            in_spike = 0.4 * DURATION <= elapsed < 0.6 * DURATION
            users = PEAK if in_spike else max(1, PEAK // 4)
            return users, PEAK

elif SHAPE:
    raise ValueError(f"LOADTEST_SHAPE must be '', 'step' or 'spike', got {SHAPE!r}")
