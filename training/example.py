"""`python -m training example`: store one photo and its translation per direction in a package.

The web page shows them beside its chooser (a before/after thumbnail) and offers the photo as
an example one click away, so a person sees what a direction does before giving it a picture
of their own. The photo is a test image of the pair (never a train image), centre-cropped to
the package's served resolution; the translation is the package's PyTorch generator's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from cyclegan.imaging import served_resolution, tensor_to_image
from cyclegan.package import Example, FileRef, ModelPackage, PackageError, sha256_file
from training.quality.evaluate import load_images

log = logging.getLogger(__name__)

FOLDER = "examples"  # inside the package
JPEG_QUALITY = 90


def parse_images(pairs: list[str]) -> dict[str, Path]:
    """`DOMAIN=PATH` flags as {domain: path}."""
    images: dict[str, Path] = {}
    for pair in pairs:
        domain, sep, path = pair.partition("=")
        if not sep or not domain or not path:
            raise ValueError(
                f"--image {pair!r}: expected DOMAIN=PATH, e.g. horse=examples/horse.jpg"
            )
        images[domain] = Path(path)
    return images


@torch.no_grad()
def store_examples(package: ModelPackage, images: dict[str, Path]) -> list[str]:
    """Translate each domain's photo with every direction that starts there; record them in
    model.json. Returns the directions that got an example."""
    unknown = set(images) - set(package.manifest.domains)
    if unknown:
        raise PackageError(
            f"{package.path}: no domain {', '.join(sorted(unknown))} "
            f"(its domains: {', '.join(package.manifest.domains)})"
        )
    (package.path / FOLDER).mkdir(exist_ok=True)
    done = []
    for name, direction in package.manifest.directions.items():
        if direction.source not in images:
            continue
        path = images[direction.source]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image")
        size = served_resolution(direction.native_resolution)
        photo = load_images([path], size)
        translated = package.load_generator(name)(photo).clamp(-1, 1)
        files = {}
        for kind, tensor in (("input", photo), ("output", translated)):
            file = f"{FOLDER}/{name}.{kind}.jpg"
            tensor_to_image(tensor[0]).save(package.path / file, quality=JPEG_QUALITY)
            files[kind] = FileRef(file=file, sha256=sha256_file(package.path / file))
        direction.example = Example(input=files["input"], output=files["output"], image=path.name)
        log.info("%s: example %s -> %s", name, path.name, files["output"].file)
        done.append(name)
    package.save_manifest()
    return done
