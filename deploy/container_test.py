"""`make container-test`: build the CPU image here and prove it serves, then stops cleanly.

1. A Debian bookworm base image made locally (debootstrap + `docker import`: Docker Hub is
   not reachable from the machines this project is built on), unless it exists already.
2. The service's wheels (requirements/serve.txt) downloaded on the host into
   deploy/docker/wheels, so the image builds offline.
3. `docker build` of deploy/docker/Dockerfile.cpu, then `docker run --network host --read-only`.
4. Checks: /readyz, one real translation, the service's metrics on their own port (and not on
   the public one), a writable HOME, the non-root user, and a SIGTERM while requests are in
   flight: every one of them must complete, and the container must exit in time.
Needs root, a running Docker daemon and debootstrap. Prints how long each stage took.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "cyclegan-base:bookworm"
IMAGE = "cyclegan-translation-cpu:test"
SAMPLE = ROOT / "examples" / "horse.jpg"
JPEG = {"content-type": "image/jpeg"}


def run(*command: str, **options: object) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, check=True, text=True, **options)  # type: ignore[call-overload]


def stage(name: str, started: float) -> float:
    now = time.monotonic()
    print(f"== {name}: {now - started:.1f} s", flush=True)
    return now


def ensure_base_image() -> None:
    if (
        subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode
        == 0
    ):
        return
    if shutil.which("debootstrap") is None:
        sys.exit("debootstrap is missing: apt-get install debootstrap")
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
            "bookworm", str(rootfs), "http://deb.debian.org/debian",
        )  # fmt: skip
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run("docker", "import", "-", BASE_IMAGE, stdin=tar.stdout)
        tar.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        sys.exit("no Docker daemon: apt-get install docker.io, then start dockerd")
    if not (ROOT / "models").is_dir() or not any((ROOT / "models").glob("*/onnx/*.onnx")):
        sys.exit("models/ has no compiled package (python -m compile onnx --package models/...)")
    t0 = started = time.monotonic()
    ensure_base_image()
    started = stage("base image", started)
    wheels = ROOT / "deploy" / "docker" / "wheels"
    run(sys.executable, "-m", "pip", "download", "--quiet", "-r", "requirements/serve.txt",
        "-d", str(wheels), cwd=ROOT)  # fmt: skip
    started = stage("wheels", started)
    run("docker", "build", "--network", "host", "-f", "deploy/docker/Dockerfile.cpu",
        "--build-arg", f"BASE={BASE_IMAGE}", "-t", IMAGE, ".", cwd=ROOT)  # fmt: skip
    size = run("docker", "image", "inspect", "-f", "{{.Size}}", IMAGE, capture_output=True).stdout
    print(f"image size: {int(size) / 1e6:.0f} MB")
    started = stage("image build", started)

    port, metrics_port = free_port(), free_port()
    while metrics_port == port:  # the kernel may hand out a port just closed again
        metrics_port = free_port()
    url = f"http://127.0.0.1:{port}"
    container = run(
        "docker", "run", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp",
        "-e", f"CYCLEGAN_PORT={port}", "-e", f"CYCLEGAN_METRICS_PORT={metrics_port}", IMAGE,
        capture_output=True,
    ).stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            running = ["docker", "inspect", "-f", "{{.State.Running}}", container]
            if run(*running, capture_output=True).stdout.strip() != "true":
                raise RuntimeError("the container exited before it was ready (its log is below)")
            if time.monotonic() > deadline:
                raise TimeoutError("the container never became ready")
            time.sleep(1)
        started = stage("container ready", started)
        image = SAMPLE.read_bytes()
        answer = httpx.post(f"{url}/translate/horse2zebra", content=image, headers=JPEG, timeout=60)
        assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG"), answer.text
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'cyclegan_requests_total{direction="horse2zebra",outcome="ok"}' in metrics
        public = httpx.get(f"{url}/metrics")
        assert "cyclegan_requests_total" not in public.text, "metrics on the public port"
        user = run("docker", "exec", container, "id", "-u", capture_output=True).stdout.strip()
        assert user == "10001", f"runs as uid {user}"
        home = ["docker", "exec", container, "sh", "-c", 'touch "$HOME/.probe" && echo "$HOME"']
        print("HOME is writable:", run(*home, capture_output=True).stdout.strip())
        started = stage("translation, metrics port, writable HOME, non-root user", started)

        # SIGTERM with requests in flight: clients keep sending until the server is gone.
        # Every request that started before the signal must get its answer, and at least one
        # must still be running when the signal arrives (otherwise nothing was tested).
        stop_began = float("inf")
        records: list[tuple[float, float, int]] = []  # (start, end, status; 0 = no answer)

        def client(_: int) -> None:
            big = f"{url}/translate/horse2zebra?resolution=512"
            with httpx.Client(timeout=120) as http:
                while True:
                    began = time.monotonic()
                    try:
                        status = http.post(big, content=image, headers=JPEG).status_code
                    except httpx.HTTPError:
                        status = 0
                    records.append((began, time.monotonic(), status))
                    if status != 200:
                        return

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(client, i) for i in range(6)]
            time.sleep(3.0)  # traffic flowing
            stop_began = time.monotonic()
            run("docker", "stop", "--time", "60", container)
            stopped_in = time.monotonic() - stop_began
            for future in futures:
                future.result()
        state = ["docker", "inspect", "-f", "{{.State.ExitCode}}", container]
        exit_code = run(*state, capture_output=True).stdout.strip()
        before = [r for r in records if r[0] < stop_began]
        overlapping = [r for r in before if r[1] > stop_began]
        lost = [r for r in before if r[2] != 200]
        print(
            f"{len(before)} requests began before SIGTERM, {len(overlapping)} in flight at it, "
            f"{len(lost)} lost; stopped in {stopped_in:.1f} s, exit code {exit_code}"
        )
        assert overlapping, "no request was in flight at SIGTERM"
        assert not lost, lost
        assert stopped_in < 60, "the container had to be killed"
        stage("graceful stop", started)
    finally:
        subprocess.run(["docker", "logs", "--tail", "20", container])
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    print(f"container test passed in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
