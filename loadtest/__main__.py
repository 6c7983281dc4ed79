"""`python -m loadtest --host URL`: run locust headless, write CSV + HTML, apply the SLO gate.

Exit status 0 when the SLO holds, 1 when it does not, 2 when locust could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from loadtest.mix import MixError, choose_weights, parse_mix
from loadtest.slo import evaluate

log = logging.getLogger("loadtest")
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    parser.add_argument("--host", default="http://127.0.0.1:3000")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--spawn-rate", type=float, default=4.0)
    parser.add_argument("--duration", type=int, default=60, help="seconds")
    parser.add_argument("--shape", choices=["constant", "step", "spike"], default="constant")
    parser.add_argument("--wait", default="0,0", help="think time MIN,MAX seconds per user")
    parser.add_argument("--images", default="", help="image folders, ':'-separated")
    parser.add_argument(
        "--mix", nargs="+", default=[], metavar="DIRECTION=WEIGHT",
        help="send only these directions, in proportion to their weights (default: all alike)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/loadtest"), help="report folder")
    parser.add_argument("--max-error-rate", type=float, default=0.01)
    parser.add_argument("--max-p95-ms", type=float, default=2000.0)
    return parser


def offered_directions(host: str) -> list[str]:
    with urllib.request.urlopen(f"{host}/directions", timeout=30) as response:
        return list(json.load(response)["directions"])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        mix = parse_mix(" ".join(args.mix))
        if mix:  # checked here, so a wrong name stops the run before locust starts
            choose_weights(offered_directions(args.host), mix)
    except (MixError, OSError, ValueError) as error:
        log.error("--mix: %s", error)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = args.out / "locust"
    env = {
        **os.environ,
        "LOADTEST_WAIT": args.wait,
        "LOADTEST_SHAPE": "" if args.shape == "constant" else args.shape,
        "LOADTEST_USERS": str(args.users),
        "LOADTEST_DURATION": str(args.duration),
        "LOADTEST_MIX": ",".join(f"{name}={weight}" for name, weight in mix.items()),
    }
    if args.images:
        env["LOADTEST_IMAGES"] = args.images
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", args.host,
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{args.duration}s", "--stop-timeout", "10",
        "--csv", str(prefix), "--html", str(args.out / "report.html"), "--only-summary",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    log.info(
        "locust: %d users, %s shape, %d s against %s",
        args.users,
        args.shape,
        args.duration,
        args.host,
    )
    completed = subprocess.run(command, env=env)
    if not Path(f"{prefix}_stats.csv").is_file():
        log.error("locust wrote no statistics (exit %d)", completed.returncode)
        return 2
    result = evaluate(prefix, args.max_error_rate, args.max_p95_ms)
    log.info("%s", result.summary())
    log.info("reports: %s_stats.csv, %s", prefix, args.out / "report.html")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
