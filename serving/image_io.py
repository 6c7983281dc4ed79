"""Request and response images: decode with limits, fit to the working canvas, restore, encode.

Every image is scaled so that its longer side equals the working resolution R and reflected
out to an R x R canvas, so requests of any size and aspect ratio share one batch shape. After
translation the canvas is cropped back, resized to the input's exact width and height,
blended with the original where a strength below 1 asks, the alpha channel (if any) is put
back and the result is encoded as PNG, JPEG or WebP. Colours: an input's ICC profile converts
it to sRGB first; every answer is sRGB, with the profile, and marked as made by a model.

Memory: only formats on an allowlist are decoded; JPEGs are decoded at a reduced scale (DCT
scaling) when that still covers the canvas; the image is resized before any mode conversion,
so a 16-bit or palette image never gets a float or RGB copy at full size. At full size the
front holds the decoded image, its alpha plane, the output and the encoded answer
(settings.PEAK_BYTES_PER_PIXEL).
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from cyclegan.generator_config import SIZE_MULTIPLE
from cyclegan.imaging import served_resolution, split_alpha, to_rgb
from serving.errors import ServiceError
from serving.png_writer import write_png
from serving.provenance import XMP_KEY, Provenance, srgb_icc, srgb_profile

log = logging.getLogger(__name__)
# 16 levels a channel, every combination (a 64 x 64 RGB image): where a profile's transform
# to sRGB moves none of them, it is sRGB
IDENTITY_PROBE = np.stack(
    np.meshgrid(*[np.linspace(0, 255, 16, dtype=np.uint8)] * 3, indexing="ij"), axis=-1
).reshape(64, 64, 3)

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FORMAT_ALIASES = {"jpg": "jpeg"}
# The formats the README promises; no other Pillow decoder (EPS runs Ghostscript) is reached.
DECODED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP")
# Largest side each output format can store (Pillow's JPEG encoder stops at 65,500).
MAX_SIDE = {"png": 2**31 - 1, "jpeg": 65_500, "webp": 16_383}
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class Prepared:
    """One request's image on the working canvas, and what is needed to undo the fit."""

    canvas: np.ndarray  # (3, R, R) uint8
    content_box: tuple[int, int, int, int]  # (top, left, height, width) of the image on the canvas
    size: tuple[int, int]  # original (width, height), upright
    alpha: Image.Image | None  # at the original size
    original: Image.Image | None = None  # sRGB at the original size, kept for a strength < 1


def to_srgb(image: Image.Image) -> Image.Image:
    """8-bit RGB in sRGB: converted from the image's embedded ICC profile where it has one
    (a Display P3 phone photo keeps its colours), else read as sRGB already."""
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "CMYK", "L"):
        try:
            transform = srgb_transform(icc, image.mode)
            if transform is None:  # the profile is sRGB's own: the pixels are sRGB already
                return to_rgb(image)
            converted = ImageCms.applyTransform(image, transform)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError) as error:  # a broken profile
            log.info("ICC profile not applied (%s); the pixels are read as sRGB", error)
    return to_rgb(image)


@functools.lru_cache(maxsize=32)
def srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from an embedded profile to sRGB, or None where it changes no colour by
    more than one level (most photos embed sRGB's own profile).

    Building a transform costs about 4 ms, more than decoding a 256-pixel JPEG, and the
    photos of one camera or phone share their profile, so the last few are kept. NOCACHE:
    lcms's one-pixel cache would be shared by the threads that decode."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    transform = ImageCms.buildTransform(
        source, srgb_profile(), mode, "RGB", flags=ImageCms.Flags.NOCACHE
    )
    if mode != "RGB":
        return transform
    probe = Image.fromarray(IDENTITY_PROBE)
    moved = np.asarray(ImageCms.applyTransform(probe, transform), np.int16) - IDENTITY_PROBE
    return transform if np.abs(moved).max() > 1 else None


def open_image(data: bytes) -> Image.Image:
    """The image's header (no pixels decoded yet), or ServiceError 400 / 415."""
    if not data:
        raise ServiceError(400, "the request body is empty: send the image bytes")
    try:
        return Image.open(io.BytesIO(data), formats=DECODED_FORMATS)
    except Image.DecompressionBombError:
        raise ServiceError(413, "the image has too many pixels to decode safely") from None
    except UnidentifiedImageError:
        other = sniff_format(data)
        if other is not None and other not in DECODED_FORMATS:
            raise ServiceError(
                415, f"{other} images are not accepted; send {', '.join(DECODED_FORMATS)}"
            ) from None
        raise ServiceError(
            400, f"the body is not an image this service reads ({', '.join(DECODED_FORMATS)})"
        ) from None
    except (OSError, ValueError, SyntaxError):
        raise ServiceError(400, "the image could not be decoded (truncated or corrupt?)") from None


def sniff_format(data: bytes) -> str | None:
    """Which Pillow format's signature `data` starts with (the signature only: no decoder runs)."""
    Image.init()
    for name, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(data[:16]):
                return name
        except Exception:  # a signature check that cannot read this prefix
            continue
    return None


def peek_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None when it is not an image the service reads."""
    try:
        with open_image(data) as image:
            return image.size
    except ServiceError:
        return None


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ServiceError(
            413,
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )


def decode(
    data: bytes, max_pixels: int, resolution: int, fmt: str, full: bool = False
) -> tuple[Image.Image, tuple[int, int]]:
    """Bytes -> (upright Pillow image, its full upright size). A JPEG may come back smaller
    than its full size (decoded at 1/2, 1/4 or 1/8 scale, never below `resolution`) unless
    `full` (the original is blended into the answer)."""
    image = open_image(data)
    width, height = image.size  # from the header: checked before any pixel is decoded
    check_pixels(width, height, max_pixels)
    check_output_size((width, height), fmt)  # turning the image does not change its longer side
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if image.format == "JPEG" and not full:
                image.draft(image.mode, (resolution, resolution))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ServiceError(413, "the image is too large to decode safely") from None
    except (OSError, ValueError, SyntaxError):
        raise ServiceError(400, "the image could not be decoded (truncated or corrupt?)") from None
    before = image.size
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the request its image
        upright = image
    turned = upright.size == (before[1], before[0]) and before[0] != before[1]
    return upright, (height, width) if turned else (width, height)


def working_size(requested: int | None, native: int, max_resolution: int) -> int:
    """The canvas side: the model's native resolution unless the request asks (within limits)."""
    if requested is None:
        return served_resolution(native)
    if requested < 32 or requested > max_resolution or requested % SIZE_MULTIPLE:
        raise ServiceError(
            400,
            f"resolution must be a multiple of {SIZE_MULTIPLE} between 32 and {max_resolution}, "
            f"got {requested}",
        )
    return requested


def prepare(image: Image.Image, size: tuple[int, int], resolution: int) -> Prepared:
    """Fit the image into a resolution x resolution canvas (reflect-padded), as uint8 sRGB."""
    if image.mode in ("P", "PA", "1"):  # palettes resize only by nearest neighbour
        has_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    alpha = image.getchannel("A") if image.mode in ALPHA_MODES else None  # (only JPEGs shrink)
    width, height = size
    scale = resolution / max(width, height)
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    # Resize first, convert after: a 16-bit or CMYK image is converted at canvas size.
    rgb = colour_of(image.resize((new_w, new_h), Image.Resampling.BICUBIC), image.info)
    resized = np.asarray(rgb)  # (h, w, 3)
    top, left = (resolution - new_h) // 2, (resolution - new_w) // 2
    pad = ((top, resolution - new_h - top), (left, resolution - new_w - left), (0, 0))
    # Reflection needs the padding to be shorter than the image; 'symmetric' repeats tiles.
    mode = "reflect" if max(pad[0]) < new_h and max(pad[1]) < new_w else "symmetric"
    canvas = np.pad(resized, pad, mode=mode) if any(sum(p) for p in pad[:2]) else resized
    if canvas.shape[0] != resolution or canvas.shape[1] != resolution:  # tiny images: tile
        canvas = np.resize(canvas, (resolution, resolution, 3))
    return Prepared(
        canvas=np.ascontiguousarray(canvas.transpose(2, 0, 1)),
        content_box=(top, left, new_h, new_w),
        size=size,
        alpha=alpha,
    )


def with_original(prepared: Prepared, data: bytes, max_pixels: int, fmt: str) -> Prepared:
    """`prepared` holding the image at full size in sRGB too, for a blend with the
    translation (decoded again, in full: the canvas stays what it is at any strength)."""
    image, _ = decode(data, max_pixels, max(prepared.size), fmt, full=True)
    return replace(prepared, original=colour_of(image, image.info))


def colour_of(image: Image.Image, info: dict[str, object]) -> Image.Image:
    """The image's colours as 8-bit sRGB, alpha dropped; `info` holds the decoded file's ICC
    profile (a resized copy may not carry it)."""
    if image.mode in ALPHA_MODES:
        image, _ = split_alpha(image)
    image.info.setdefault("icc_profile", info.get("icc_profile"))
    return to_srgb(image)


def restore(translated: np.ndarray, prepared: Prepared, strength: float = 1.0) -> Image.Image:
    """(3, R, R) uint8 canvas -> image at the original size, alpha put back; a strength
    below 1 blends it with the original (0: the original's pixels)."""
    top, left, height, width = prepared.content_box
    crop = translated[:, top : top + height, left : left + width].transpose(1, 2, 0)
    image = Image.fromarray(np.ascontiguousarray(crop), mode="RGB")
    if image.size != prepared.size:
        image = image.resize(prepared.size, Image.Resampling.BICUBIC)
    if strength < 1.0 and prepared.original is not None:
        image = Image.blend(prepared.original, image, strength)
    if prepared.alpha is not None:
        image.putalpha(prepared.alpha)
    return image


def check_output_size(size: tuple[int, int], fmt: str) -> None:
    """Refuse, before any inference, an answer the output format cannot store."""
    if max(size) > MAX_SIDE[fmt]:
        raise ServiceError(
            400,
            f"a {size[0]}x{size[1]} image cannot be written as {fmt.upper()} (at most "
            f"{MAX_SIDE[fmt]} pixels a side); ask for ?format=png",
        )


def parse_accept(accept: str) -> list[tuple[str, float]]:
    """`Accept` as (media range, q) in header order; a malformed q counts as 0."""
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = 0.0
        if media:
            ranges.append((media.lower(), q))
    return ranges


def quality(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """(q, position in the header) of the most specific range that matches `media_type`."""
    kind = media_type.split("/")[0] + "/*"
    for wanted in (media_type, kind, "*/*"):  # exact beats image/* beats */*
        for position, (media, q) in enumerate(ranges):
            if media == wanted:
                return q, position
    return 0.0, len(ranges)


def pick_format(query: str | None, accept: str | None) -> str:
    """?format= wins; else the Accept type with the highest q (ties: the one listed first,
    then PNG, JPEG, WebP); else PNG. Raises 406."""
    if query:
        name = FORMAT_ALIASES.get(query.lower(), query.lower())
        if name not in FORMATS:
            raise ServiceError(
                406, f"format {query!r} is not supported; choose one of {', '.join(FORMATS)}"
            )
        return name
    if not accept or not accept.strip():
        return "png"
    ranges = parse_accept(accept)
    scored = []
    for order, (name, media_type) in enumerate(FORMATS.items()):
        q, position = quality(media_type, ranges)
        scored.append((q, -position, -order, name))
    q, _, _, name = max(scored)
    if q <= 0:
        raise ServiceError(
            406,
            f"cannot answer with {accept!r}; this service makes {', '.join(FORMATS.values())}",
        )
    return name


def encode(image: Image.Image, fmt: str, provenance: Provenance) -> bytes:
    """The answer's bytes, in sRGB and marked as made by a model (serving/provenance.py)."""
    buffer = io.BytesIO()
    marks = {"icc_profile": srgb_icc()}
    if fmt == "jpeg":
        # JPEG has no alpha channel: the translated colours are kept, transparency is dropped.
        image.convert("RGB").save(buffer, "JPEG", quality=90, xmp=provenance.xmp(), **marks)
    elif fmt == "webp":
        # method 0: the encoder's fastest effort, half the time of its default for files
        # about a fifth larger; the encode is on every request's path
        image.save(buffer, "WEBP", quality=90, method=0, xmp=provenance.xmp(), **marks)
    else:
        return write_png(image, srgb_icc(), provenance.xmp(), XMP_KEY)
    return buffer.getvalue()
