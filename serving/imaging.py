"""Request and response images: decode with limits, fit to the working canvas, restore, encode.

Every image is scaled so that its longer side equals the working resolution R and reflected
out to an R x R canvas, so requests of any size and aspect ratio share one batch shape. After
translation the canvas is cropped back, resized to the input's exact width and height, the
alpha channel (if any) is put back and the result is encoded as PNG, JPEG or WebP.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cyclegan.generator_config import SIZE_MULTIPLE
from cyclegan.imaging import split_alpha

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FORMAT_ALIASES = {"jpg": "jpeg"}


class ImageRequestError(Exception):
    """A request the service refuses; `status` is the HTTP code, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Prepared:
    """One request's image on the working canvas, and what is needed to undo the fit."""

    canvas: np.ndarray  # (3, R, R) uint8
    content_box: tuple[int, int, int, int]  # (top, left, height, width) of the image on the canvas
    size: tuple[int, int]  # original (width, height)
    alpha: Image.Image | None


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes -> a fully decoded, EXIF-upright Pillow image, or ImageRequestError (400/413)."""
    if not data:
        raise ImageRequestError(400, "the request body is empty: send the image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # from the header: checked before any pixel is decoded
            if width * height > max_pixels:
                raise ImageRequestError(
                    413,
                    f"the image is {width}x{height} = {width * height} pixels; "
                    f"the limit is {max_pixels}",
                )
            image.load()
    except ImageRequestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRequestError(413, f"the image is too large to decode safely: {error}") from None
    except UnidentifiedImageError:
        raise ImageRequestError(
            400,
            "the body is not an image Pillow can read (send PNG, JPEG, WebP, GIF, TIFF, BMP...)",
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageRequestError(
            400, f"the image could not be decoded (truncated or corrupt?): {error}"
        ) from None
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the request its image
        return image


def working_size(requested: int | None, native: int, max_resolution: int) -> int:
    """The canvas side: the model's native resolution unless the request asks (within limits)."""
    if requested is None:
        return native - native % SIZE_MULTIPLE
    if requested < 32 or requested > max_resolution or requested % SIZE_MULTIPLE:
        raise ImageRequestError(
            400,
            f"resolution must be a multiple of {SIZE_MULTIPLE} between 32 and {max_resolution}, "
            f"got {requested}",
        )
    return requested


def prepare(image: Image.Image, resolution: int) -> Prepared:
    """Fit the image into a resolution x resolution canvas (reflect-padded), as uint8."""
    rgb, alpha = split_alpha(image)
    width, height = rgb.size
    scale = resolution / max(width, height)
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    resized = np.asarray(rgb.resize((new_w, new_h), Image.Resampling.BICUBIC))  # (h, w, 3)
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
        size=(width, height),
        alpha=alpha,
    )


def restore(translated: np.ndarray, prepared: Prepared) -> Image.Image:
    """(3, R, R) uint8 canvas -> image at the original size, alpha put back."""
    top, left, height, width = prepared.content_box
    crop = translated[:, top : top + height, left : left + width].transpose(1, 2, 0)
    image = Image.fromarray(np.ascontiguousarray(crop), mode="RGB")
    if image.size != prepared.size:
        image = image.resize(prepared.size, Image.Resampling.BICUBIC)
    if prepared.alpha is not None:
        image.putalpha(prepared.alpha)
    return image


def pick_format(query: str | None, accept: str | None) -> str:
    """?format= wins; else the first Accept type we can make; else PNG. Raises 406."""
    if query:
        name = FORMAT_ALIASES.get(query.lower(), query.lower())
        if name not in FORMATS:
            raise ImageRequestError(
                406, f"format {query!r} is not supported; choose one of {', '.join(FORMATS)}"
            )
        return name
    if not accept:
        return "png"
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for media in wanted:
        for name, media_type in FORMATS.items():
            if media == media_type:
                return name
    if any(media in ("*/*", "image/*", "") for media in wanted):
        return "png"
    raise ImageRequestError(
        406, f"cannot answer with {accept!r}; this service makes {', '.join(FORMATS.values())}"
    )


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "jpeg":
        # JPEG has no alpha channel: the translated colours are kept, transparency is dropped.
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", quality=90)
    else:
        image.save(buffer, format="PNG", compress_level=1)  # fast: the encode is on the hot path
    return buffer.getvalue()
