"""Answers are sRGB and say they were made by a model; `?strength=` blends in the original.

A wide-gamut photo (a P3-primaries profile, built here byte by byte) must come back in the
same colours as the same scene sent in sRGB; every format carries the IPTC "made by a trained
algorithm" mark in XMP, read back by exiftool (a real reader) where it is installed.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageCms

from serving import image_io
from serving.provenance import DIGITAL_SOURCE_TYPE, SOFTWARE
from tests.builders import real_images
from tests.serverlib import Server

P3_PRIMARIES = {  # Display P3's primaries adapted to D50, as in Apple's profile
    b"rXYZ": (0.515121, 0.241196, -0.001053),
    b"gXYZ": (0.291977, 0.692245, 0.041885),
    b"bXYZ": (0.157104, 0.066574, 0.784073),
}
SRGB_PRIMARIES_D50 = ((0.436066, 0.222488, 0.013916), (0.385147, 0.716873, 0.097076),
                      (0.143066, 0.060608, 0.714096))  # fmt: skip
P3_COLOUR = (200, 90, 70)
GAMMA = 2.2


def s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def p3_profile() -> bytes:
    """An ICC v2 matrix/TRC profile: P3 primaries, gamma 2.2, D50 white."""
    text = b"P3 primaries, gamma 2.2 (a test profile)\0"
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(79)),
        (b"wtpt", b"XYZ " + bytes(4) + s15(0.964203) + s15(1.0) + s15(0.824905)),
        *((sig, b"XYZ " + bytes(4) + b"".join(map(s15, xyz))) for sig, xyz in P3_PRIMARIES.items()),
        *((sig, b"curv" + bytes(4) + struct.pack(">IH", 1, round(GAMMA * 256)) + bytes(2))
          for sig in (b"rTRC", b"gTRC", b"bTRC")),
    ]  # fmt: skip
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ " + bytes(12) + b"acsp" + bytes(28)
        + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48)
    )  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + data


def p3_in_srgb(colours: np.ndarray) -> np.ndarray:
    """The same colours (..., 3) in sRGB, 0 to 255, by the textbook matrices (no colour
    library); colours outside sRGB are clipped."""
    linear = (np.asarray(colours, dtype=np.float64) / 255.0) ** GAMMA
    to_xyz = np.array(list(P3_PRIMARIES.values())).T
    to_srgb = np.linalg.inv(np.array(SRGB_PRIMARIES_D50).T)
    srgb = np.clip(linear @ (to_srgb @ to_xyz).T, 0, 1)
    encoded = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    return encoded * 255.0


def post(
    server: Server, data: bytes, query: str = "", direction: str = "horse2zebra"
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/translate/{direction}{query}", content=data,
        headers={"content-type": "image/png"}, timeout=60,
    )  # fmt: skip


def png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def pixels(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_a_wide_gamut_photo_keeps_its_colours(server: Server) -> None:
    red = Image.new("RGB", (64, 64), P3_COLOUR)
    expected = p3_in_srgb(np.array(P3_COLOUR))
    # strength 0: the original's pixels, converted to sRGB
    original = pixels(post(server, png(red, icc_profile=p3_profile()), "?strength=0"))
    assert np.abs(original - expected).max() <= 2.0, (original[0, 0], expected)
    assert np.abs(np.array(P3_COLOUR) - expected).max() > 10  # read as sRGB, it would differ
    # a photo whose values are P3: the model sees what it sees in the same photo sent in sRGB
    with Image.open(real_images("testA", 1)[0]) as photo:
        values = np.asarray(photo.convert("RGB"))
    in_srgb = Image.fromarray(np.round(p3_in_srgb(values)).astype(np.uint8))
    wide = png(Image.fromarray(values), icc_profile=p3_profile())
    assert np.abs(pixels(post(server, wide, "?strength=0")) - in_srgb).max() <= 2.0
    # what the model is given: the canvas, made at the working resolution
    canvases = [
        image_io.prepare(*image_io.decode(data, 10**8, 64, "png"), 64).canvas.astype(float)
        for data in (wide, png(in_srgb), png(Image.fromarray(values)))
    ]
    # The service resizes in the photo's own space, then converts (memory: never a converted
    # copy at full size), so edges differ a little from converting first.
    converted, ignored = (np.abs(canvases[i] - canvases[1]).mean() for i in (0, 2))
    assert converted <= 2.5 and ignored > 3 * converted


def test_profiles_are_converted_once_and_srgb_itself_not_at_all() -> None:
    """A profile's transform is built once and kept; sRGB's own profile (as most photos embed)
    changes no pixel and needs none; a wide-gamut one still converts."""
    image_io.srgb_transform.cache_clear()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert image_io.srgb_transform(srgb, "RGB") is None
    photo = Image.new("RGB", (16, 16), P3_COLOUR)
    photo.info["icc_profile"] = srgb
    assert np.asarray(image_io.to_srgb(photo)).reshape(-1, 3).tolist()[0] == list(P3_COLOUR)
    assert image_io.srgb_transform(p3_profile(), "RGB") is not None
    photo.info["icc_profile"] = p3_profile()
    for _ in range(3):
        converted = np.asarray(image_io.to_srgb(photo)).reshape(-1, 3)[0]
    assert np.abs(converted.astype(int) - P3_COLOUR).max() > 10  # wider red: more saturated
    assert image_io.srgb_transform.cache_info().misses == 2  # one build per profile


def test_a_broken_profile_is_read_as_srgb(server: Server) -> None:
    image = Image.new("RGB", (32, 32), P3_COLOUR)
    broken = pixels(post(server, png(image, icc_profile=b"not a profile"), "?strength=0"))
    assert np.abs(broken - np.array(P3_COLOUR)).max() <= 1.0


def test_strength_blends_the_original_and_the_translation(server: Server) -> None:
    photo = real_images("testA", 1)[0].read_bytes()
    with Image.open(io.BytesIO(photo)) as image:
        original = np.asarray(image.convert("RGB"), dtype=np.float64)
    none, full, half = (
        pixels(post(server, photo, f"?strength={s}")) for s in ("0", "1", "0.5")
    )  # fmt: skip
    assert np.abs(none - original).max() <= 1.0  # the original's pixels, at full size
    assert np.abs(full - pixels(post(server, photo))).max() == 0  # 1 is the default
    assert np.abs(half - (none + full) / 2).max() <= 1.0
    assert np.abs(full - none).mean() > 2.0  # the translation did change the picture


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "lots", "inf"])
def test_a_strength_outside_0_to_1_is_422(server: Server, value: str) -> None:
    answer = post(server, png(Image.new("RGB", (8, 8))), f"?strength={value}")
    assert answer.status_code == 422
    assert "strength must be a number from 0 to 1" in answer.json()["error"]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_every_answer_is_marked_as_made_by_a_model_and_srgb(server: Server, fmt: str) -> None:
    photo = real_images("testA", 1)[0].read_bytes()
    answer = httpx.post(
        f"{server.url}/translate/horse2zebra?format={fmt}", content=photo,
        headers={"content-type": "image/jpeg"}, timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200
    with Image.open(io.BytesIO(answer.content)) as image:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        assert "sRGB" in ImageCms.getProfileDescription(profile)
        assert "exif" not in image.info  # nothing of the input's EXIF (or GPS) goes out
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        pytest.skip("needs exiftool to read the XMP back (apt-get install libimage-exiftool-perl)")
    read = subprocess.run(
        [exiftool, "-json", "-XMP:all", "-"], input=answer.content, capture_output=True, check=True
    )
    xmp = json.loads(read.stdout)[0]
    assert xmp["DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert xmp["CreatorTool"] == SOFTWARE
    assert "horse2zebra translation by h2z 1" in xmp["Description"]


def test_no_gps_from_the_input_goes_out(server: Server, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x8825] = {2: (48.0, 51.0, 24.0), 1: "N"}  # a GPS block
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 120, 60)).save(buffer, format="JPEG", exif=exif)
    answer = httpx.post(
        f"{server.url}/translate/horse2zebra?format=jpeg", content=buffer.getvalue(),
        headers={"content-type": "image/jpeg"}, timeout=60,
    )  # fmt: skip
    with Image.open(io.BytesIO(answer.content)) as image:
        assert not image.getexif()
