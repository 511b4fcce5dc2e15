"""hf_beit.image_loading: decoding from paths/bytes/streams and clear errors for anything that is not an image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from hf_beit.image_loading import InvalidImageError, load_image, pil_padded_rgb_view, pil_to_rgb_array


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea())  # 451x300 RGB


def test_loads_path_bytes_and_stream(tmp_path, photo):
    png = encode(photo, "PNG")
    path = tmp_path / "cat.png"
    path.write_bytes(png)
    for source in [str(path), path, png, bytearray(png), memoryview(png), io.BytesIO(png)]:
        image = load_image(source)
        assert image.size == (451, 300) and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), np.asarray(photo))  # lossless round trip


def test_corrupt_bytes_raise_invalid_image_error():
    with pytest.raises(InvalidImageError, match="Could not identify an image format") as info:
        load_image(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidImageError, match="empty input"):
        load_image(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_raises_invalid_image_error(photo, fmt):
    data = encode(photo, fmt)
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_text_file_raises_invalid_image_error(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n" * 20)
    with pytest.raises(InvalidImageError, match=r"notes\.jpg.*not an image file"):
        load_image(path)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="path, bytes or a binary file object"):
        load_image(12345)


def test_decompression_bomb_is_rejected_before_decoding():
    data = encode(Image.new("L", (400, 300)), "PNG")
    assert load_image(data, max_pixels=120_000).size == (400, 300)
    with pytest.raises(InvalidImageError, match="400x300 = 120000 pixels; at most 119999 pixels"):
        load_image(data, max_pixels=119_999)
    assert load_image(data, max_pixels=None).size == (400, 300)


def test_exif_orientation_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image = load_image(encode(photo, "JPEG", exif=exif.tobytes()))
    assert image.size == (300, 451)


def test_modes_are_kept_or_converted(photo):
    rgba = photo.copy()
    rgba.putalpha(0)  # fully transparent -> white after compositing
    data = encode(rgba, "PNG")
    assert load_image(data).mode == "RGBA"
    rgb = load_image(data, convert_to_rgb=True)
    assert rgb.mode == "RGB" and np.asarray(rgb).min() == 255
    grey16 = (np.arange(256 * 4, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)
    loaded16 = load_image(encode(Image.fromarray(grey16), "PNG"))
    assert loaded16.mode == "I;16"
    converted = pil_to_rgb_array(loaded16)
    assert converted.shape == (32, 32, 3) and converted.dtype == np.uint8
    np.testing.assert_array_equal(converted[..., 0], np.round(grey16 / 257).astype(np.uint8))
    assert np.array_equal(pil_to_rgb_array(photo.convert("L")), np.asarray(photo.convert("L").convert("RGB")))


def test_zero_copy_rgb_view(photo):
    view = pil_padded_rgb_view(photo)
    assert view.shape == (300, 451, 4) and not view.flags.writeable
    assert np.array_equal(view[..., :3], np.asarray(photo))
    assert pil_padded_rgb_view(photo.convert("RGBA")) is None and pil_padded_rgb_view(photo.convert("L")) is None
    # Large images span several Pillow memory blocks and cannot be exported without a copy.
    assert pil_padded_rgb_view(photo.resize((2600, 2000))) is None
