"""Reading photographs safely: any file in, an RGB uint8 array or a clear error out.

Handles what users' folders contain: unreadable files, non-images, empty files, tiny
(1x1) and huge images, grayscale, RGBA (composited on white), 16-bit images and EXIF
orientation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIDE = 16                 # smaller images cannot hold a hand worth detecting
MAX_PIXELS = 200_000_000      # refuse before decoding: about 800 MB as RGB


class ImageError(ValueError):
    """An input image that cannot be used; the message names the file and the problem."""


def list_images(inputs) -> list[Path]:
    """Expand files and folders (non-recursive, sorted) into image paths; missing paths are an error."""
    paths = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif item.exists():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return paths


def read_image(path) -> np.ndarray:
    """Read ``path`` as an RGB uint8 array (H, W, 3), EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"{path}: {width}x{height} is too large (over {MAX_PIXELS // 1_000_000} MP); "
                                 "downscale it first")
            img = ImageOps.exif_transpose(img)
            array = _to_rgb(img)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(f"{path}: unreadable image ({err})") from None
    return check_image(array, str(path))


def _to_rgb(img) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        from PIL import Image

        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / max(arr.max(), 1.0)
        return np.repeat((arr * scale).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def check_image(image, name: str = "image") -> np.ndarray:
    """Validate an in-memory image and return it as RGB uint8 (H, W, 3).

    Accepts (H, W) grayscale, (H, W, 1), (H, W, 3) RGB and (H, W, 4) RGBA (alpha dropped),
    uint8 or float in [0, 1].
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    if arr.shape[0] < MIN_SIDE or arr.shape[1] < MIN_SIDE:
        raise ImageError(f"{name}: {arr.shape[1]}x{arr.shape[0]} is too small (at least {MIN_SIDE}x{MIN_SIDE})")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and np.nanmax(arr) <= 1.0:
            arr = np.nan_to_num(arr * 255.0)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])
