import numpy as np
import pytest
from PIL import Image

from wildhands.data.images import ImageError, check_image, list_images, read_image
from wildhands.fileio import write_json, write_obj


def test_reads_rgb_grayscale_rgba_and_16bit(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    rgba = np.dstack([rgb, np.zeros((40, 50), np.uint8)])  # fully transparent: white after compositing
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 200)).save(tmp_path / "deep.png")
    assert np.array_equal(read_image(tmp_path / "rgb.png"), rgb)
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (40, 50, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    assert (read_image(tmp_path / "rgba.png") == 255).all()
    assert read_image(tmp_path / "deep.png").dtype == np.uint8


@pytest.mark.parametrize("name,payload,message", [
    ("empty.jpg", b"", "empty file"),
    ("notes.jpg", b"this is text, not a jpeg", "not an image"),
    ("truncated.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image"),
])
def test_bad_files_get_named_errors(tmp_path, name, payload, message):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(ImageError, match=message) as err:
        read_image(path)
    assert name in str(err.value)


def test_tiny_image_and_missing_file(tmp_path):
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(ImageError, match="too small"):
        read_image(tmp_path / "dot.png")
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(ImageError, match="expected an"):
        check_image(np.zeros((20, 20, 2)))


def test_list_images_expands_folders(tmp_path):
    for name in ("b.jpg", "a.png", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path])] == ["a.png", "b.jpg"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images([tmp_path / "nowhere"])


def test_atomic_writers_leave_nothing_half_written(tmp_path):
    write_obj(tmp_path / "m.obj", np.eye(3), [[0, 1, 2]])
    assert (tmp_path / "m.obj").read_text().splitlines()[-1] == "f 1 2 3"
    with pytest.raises(TypeError):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.obj"]
