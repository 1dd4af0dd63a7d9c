"""Image folders (class-per-folder trees) and load_dataset's layout detection."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlbox.data import imagefolder
from dlbox.data.imagefolder import (
    decode_image,
    describe_skipped,
    load_image_folder,
    skipped_entries,
)
from dlbox.data.loading import detect_layout, load_dataset
from dlbox.data.synthetic import make_synthetic_images, write_fake_cifar10, write_fake_image_folder
from dlbox.errors import DataError, UsageError


def test_png_tree_loads_exactly(tmp_path: Path) -> None:
    write_fake_image_folder(tmp_path, per_class=4, classes=3, seed=2, fmt="png")
    data = load_image_folder(tmp_path)
    assert data.images.shape == (12, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.classes == ("class_0", "class_1", "class_2")
    assert data.labels.tolist() == [0, 1, 2] * 4  # interleaved across classes
    # PNG is lossless: every loaded image is one of the written ones, with the right label.
    images, labels = make_synthetic_images(12, seed=2, num_classes=3)
    written = {images[i].tobytes(): int(labels[i]) for i in range(12)}
    for image, label in zip(data.images.numpy(), data.labels.tolist(), strict=True):
        assert written[image.tobytes()] == label


def test_jpeg_tree_loads_close(tmp_path: Path) -> None:
    write_fake_image_folder(tmp_path, per_class=3, classes=2, fmt="jpg")
    data = load_image_folder(tmp_path)
    assert data.images.shape == (6, 3, 32, 32)
    assert data.labels.bincount().tolist() == [3, 3]


def _save(path: Path, image: Image.Image, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr"])
def test_every_mode_becomes_rgb_32(tmp_path: Path, mode: str) -> None:
    image = Image.new("RGB", (50, 20), (200, 100, 50)).convert(mode)
    fmt = {"CMYK": "JPEG", "YCbCr": "JPEG", "I": "TIFF", "F": "TIFF"}.get(mode, "PNG")
    path = tmp_path / f"img.{fmt.lower()}"
    _save(path, image, fmt)
    array = decode_image(path)
    assert array.shape == (3, 32, 32) and array.dtype == np.uint8
    if mode not in ("1",):
        assert 60 < array.mean() < 200  # the colour survived, not black or white


def test_sixteen_bit_png_scaled(tmp_path: Path) -> None:
    values = np.full((20, 50), 65535, dtype=np.uint16)
    values[:, :25] = 0
    _save(tmp_path / "deep.png", Image.fromarray(values), "PNG")
    array = decode_image(tmp_path / "deep.png")
    # The centre 20x20 square keeps the edge in the middle: black left, white right.
    assert array[:, :, :12].max() == 0 and array[:, :, 20:].min() == 255


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG")
    assert (decode_image(tmp_path / "a.png") == 255).all()


def test_odd_sizes_and_modes_in_one_tree(tmp_path: Path) -> None:
    _save(tmp_path / "cat" / "a.png", Image.new("RGBA", (7, 100), (255, 0, 0, 255)), "PNG")
    _save(tmp_path / "cat" / "b.JPEG", Image.new("L", (300, 200), 128), "JPEG")
    _save(tmp_path / "dog" / "c.jpg", Image.new("RGB", (32, 32), (0, 0, 255)), "JPEG")
    (tmp_path / "dog" / "notes.txt").write_text("ignored: not an image extension")
    data = load_image_folder(tmp_path)
    assert data.images.shape == (3, 3, 32, 32)
    assert data.classes == ("cat", "dog")
    red = data.images[0].float().mean(dim=(1, 2))
    assert red[0] > 250 and red[1] < 5 and red[2] < 5
    assert data.labels.tolist() == [0, 1, 0]  # cat/a, dog/c, cat/b: interleaved
    grey = data.images[2].float()
    assert (grey - 128).abs().max() <= 2


def test_wide_image_keeps_its_centre_square(tmp_path: Path) -> None:
    # 96x32: black left and right thirds, white centre. Cropping keeps only the white;
    # squeezing the whole picture (the old bilinear stretch) would keep the black too.
    wide = np.zeros((32, 96, 3), dtype=np.uint8)
    wide[:, 32:64] = 255
    _save(tmp_path / "wide.png", Image.fromarray(wide), "PNG")
    assert (decode_image(tmp_path / "wide.png") == 255).all()


def test_training_reads_images_as_predict_does(tmp_path: Path) -> None:
    """An image-folder file and the same file given to `dlbox predict` become the same pixels:
    EXIF rotation, centre crop and resampling all agree."""
    from dlbox.training.predict import load_image

    rng = np.random.default_rng(5)
    photo = Image.fromarray(rng.integers(0, 256, (120, 200, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    path = tmp_path / "cls" / "photo.jpg"
    path.parent.mkdir()
    photo.save(path, format="JPEG", exif=exif.tobytes())
    from_folder = load_image_folder(tmp_path).images[0]
    assert torch.equal(from_folder, load_image(path))
    expected = np.asarray(photo.rotate(-90, expand=True).crop((0, 40, 120, 160))
                          .resize((32, 32), Image.Resampling.LANCZOS), dtype=np.int16)
    # JPEG decoding at reduced scale (draft) differs a little from decoding in full
    assert np.abs(from_folder.numpy().transpose(1, 2, 0).astype(np.int16)
                  - expected).mean() < 12


def test_bad_image_names_the_file(tmp_path: Path) -> None:
    write_fake_image_folder(tmp_path, per_class=2, classes=2)
    bad = tmp_path / "class_1" / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path)
    assert "broken.png" in info.value.message


def test_truncated_image_is_a_data_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
    with pytest.raises(DataError):
        decode_image(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_decompression_bomb_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save(tmp_path / "big.png", Image.new("L", (200, 200)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError) as info:
        decode_image(tmp_path / "big.png")
    assert "big.png" in info.value.message and "decompression bomb" in info.value.message


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(DataError):
        load_image_folder(tmp_path)  # no class folders
    (tmp_path / "cls").mkdir()
    with pytest.raises(DataError):
        load_image_folder(tmp_path)  # class folder without images


def test_threaded_decode_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_image_folder(tmp_path, per_class=150, classes=2, fmt="png")
    monkeypatch.setattr(imagefolder, "_worker_count", lambda n: 4)
    threaded = load_image_folder(tmp_path)
    monkeypatch.setattr(imagefolder, "_worker_count", lambda n: 1)
    serial = load_image_folder(tmp_path)
    assert len(threaded) == 300 and threaded.labels.tolist() == [0, 1] * 150
    assert torch.equal(serial.images, threaded.images)


def test_load_dataset_detects_cifar_batches(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path, n_train=20, n_test=10)
    assert detect_layout(tmp_path).kind == "cifar10-batches"  # type: ignore[union-attr]
    assert len(load_dataset(tmp_path, "train")) == 20
    assert len(load_dataset(tmp_path / "cifar-10-batches-py", "test")) == 10


@pytest.mark.parametrize("nested", [False, True])
def test_load_dataset_detects_split_image_tree(tmp_path: Path, nested: bool) -> None:
    root = tmp_path / "cifar10-jpeg" if nested else tmp_path
    write_fake_image_folder(root / "train", per_class=3, classes=3, fmt="jpg")
    write_fake_image_folder(root / "test", per_class=1, classes=2, fmt="jpg")  # lacks class_2
    train = load_dataset(tmp_path, "train")
    test = load_dataset(tmp_path, "test")
    assert len(train) == 9 and len(test) == 2
    assert train.classes == test.classes == ("class_0", "class_1", "class_2")
    assert test.labels.tolist() == [0, 1]


def test_load_dataset_nothing_found_hints_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path, "train")
    assert "dlbox data fetch" in (info.value.hint or "")
    with pytest.raises(DataError):
        load_dataset(tmp_path, "validation")


def test_images_are_interleaved_across_classes_by_name(tmp_path: Path) -> None:
    """Class 0's first file, class 1's first, ...; a class that runs out is skipped."""
    from dlbox.data.imagefolder import list_image_files

    for name, count in (("a", 3), ("b", 1), ("c", 2)):
        for i in range(count):
            _save(tmp_path / name / f"{i}.png", Image.new("RGB", (32, 32), (i, 0, 0)), "PNG")
    files, labels, classes = list_image_files(tmp_path)
    assert classes == ("a", "b", "c") and labels == [0, 1, 2, 0, 2, 0]
    assert [f"{f.parent.name}/{f.name}" for f in files] == [
        "a/0.png", "b/0.png", "c/0.png", "a/1.png", "c/1.png", "a/2.png"]
    data = load_image_folder(tmp_path)
    assert data.labels.tolist() == labels
    assert data.images[:, 0, 0, 0].tolist() == [0, 0, 0, 1, 1, 2]  # image i is files[i]


def test_a_subset_of_an_image_tree_holds_every_class(tmp_path: Path) -> None:
    """--num-train N on a class-per-folder tree: N images spread over every class, not the
    first class's N (and the same N images every time)."""
    for split in ("train", "test"):
        write_fake_image_folder(tmp_path / split, per_class=20, classes=4, seed=3)
    train = load_dataset(tmp_path, "train")
    small = train.subset(10)
    assert small.labels.bincount(minlength=4).tolist() == [3, 3, 2, 2]
    assert torch.equal(small.images, load_dataset(tmp_path, "train").subset(10).images)
    assert load_dataset(tmp_path, "test").subset(8).labels.bincount().tolist() == [2] * 4


def test_a_limit_decodes_only_the_first_images_of_a_tree(tmp_path: Path) -> None:
    # --num-train 500 on a tree of 50,000 JPEGs decoded all 50,000 (14 s) to keep 500.
    from dlbox.data.imagefolder import list_image_files
    from dlbox.data.loading import split_size
    from dlbox.training.loop import load_split

    for split in ("train", "test"):
        write_fake_image_folder(tmp_path / split, per_class=20, classes=4, seed=3)
    whole = load_dataset(tmp_path, "train")
    first = load_dataset(tmp_path, "train", limit=10)
    assert torch.equal(first.images, whole.subset(10).images)
    assert torch.equal(first.labels, whole.subset(10).labels)
    files, _, _ = list_image_files(tmp_path / "train")
    files[-1].write_bytes(b"not an image")  # the last file: decoded only by a whole load
    assert len(load_split(tmp_path, "train", 10, refuse_short=True)) == 10
    assert split_size(tmp_path, "train") == 80
    with pytest.raises(DataError):
        load_dataset(tmp_path, "train")
    with pytest.raises(UsageError, match="--num-train 81 is more than the 80 train images"):
        load_split(tmp_path, "train", 81, refuse_short=True)


def test_a_subset_of_cifar_batches_keeps_the_official_order(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path, n_train=50, n_test=20, seed=3)
    train = load_dataset(tmp_path, "train")
    assert torch.equal(train.subset(7).images, train.images[:7])
    assert torch.equal(train.subset(7).labels, train.labels[:7])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_orientation_kept_only_in_xmp_is_applied(tmp_path: Path, fmt: str) -> None:
    from PIL import PngImagePlugin

    left_red = np.zeros((32, 64, 3), dtype=np.uint8)
    left_red[:, :32, 0] = 255
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
           '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff='
           '"http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    path = tmp_path / f"turned.{fmt.lower()}"
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp)
        Image.fromarray(left_red).save(path, pnginfo=info)
    else:
        Image.fromarray(left_red).save(path, xmp=xmp.encode())
    array = decode_image(path)
    # turned 90 degrees clockwise to view: the red left half is now the top half
    assert array[0, :12].min() > 240 and array[0, 20:].max() < 15


@pytest.mark.parametrize("point_at", ["tree", "split"])
def test_a_tree_without_split_folders_says_so(tmp_path: Path, point_at: str) -> None:
    """DIR/<class>/*.png (the plain ImageFolder layout, or --data at one split folder) is not
    "no CIFAR-10 data": the error says what is there and how to lay it out."""
    if point_at == "tree":
        data_dir = write_fake_image_folder(tmp_path / "pets", per_class=2, classes=2)
    else:
        write_fake_image_folder(tmp_path / "train", per_class=2, classes=2)
        write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
        data_dir = tmp_path / "train"
    with pytest.raises(DataError) as info:
        load_dataset(data_dir, "train")
    message, hint = info.value.message, info.value.hint or ""
    assert "class folders with images (class_0, class_1)" in message
    assert "no train/ or test/ split folder" in message
    if point_at == "tree":
        assert f"{data_dir / 'train'}/" in hint and f"{data_dir / 'test'}/<class>/" in hint
    else:
        assert f"--data {tmp_path} " in hint
    # an empty folder, or one holding class folders without images, keeps the fetch hint
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "empty", "train")
    assert "dlbox data fetch" in (info.value.hint or "")


def test_a_tree_without_split_folders_read_for_its_test_split_is_told_test(
        tmp_path: Path) -> None:
    """Found by review: `dlbox evaluate RUN --data newphotos` (newphotos/<class>/*.png) was
    told to move the class folders into newphotos/train/ and put held-out images in test/:
    done, it failed next with "no 'test' split". Evaluate reads test/<class>/ only."""
    data_dir = write_fake_image_folder(tmp_path / "newphotos", per_class=2, classes=2)
    with pytest.raises(DataError) as info:
        load_dataset(data_dir, "test")
    assert info.value.hint == (f"the test images go in one folder per class under a test/ "
                               f"split folder: move the class folders into {data_dir / 'test'}/")
    # --data at the test split itself: its parent is all evaluate needs, no train/ beside it
    split = write_fake_image_folder(tmp_path / "my tree" / "test", per_class=2, classes=2)
    with pytest.raises(DataError) as info:
        load_dataset(split, "test")
    assert info.value.hint == f"pass --data '{tmp_path / 'my tree'}' (the folder that holds test/)"


def test_images_not_in_class_folders_are_told_where_they_go(tmp_path: Path) -> None:
    """Review: train/*.png and test/*.png (no class folders) were "class folders with images
    (test, train) but no split folder", whose hint moved test/ into train/; and --data at
    one class's folder was told to fetch CIFAR-10."""
    def refused(data_dir: Path) -> DataError:
        with pytest.raises(DataError) as info:
            load_dataset(data_dir, "train")
        return info.value

    tree = write_fake_image_folder(tmp_path / "pets", per_class=2, classes=2)
    loose = tmp_path / "loose"
    for split in ("train", "test"):
        (loose / split).mkdir(parents=True)
        shutil.copy(tree / "class_0" / "0000.png", loose / split / "a.png")
    error = refused(loose)
    assert error.message == (f"no CIFAR-10 data found in {loose}: test/ and train/ hold "
                             "images directly, not in class folders")
    assert error.hint == ("lay the images out by split and class: "
                          f"{loose}/train/<class>/<image> and {loose}/test/<class>/<image>")
    error = refused(loose / "train")  # --data at the split folder itself
    assert error.message.endswith("it holds images directly, not in class folders")
    assert error.hint == ("put each image in a folder named for its class: "
                          f"{loose / 'train'}/<class>/<image>")
    # --data at one class of a tree without splits
    assert refused(tree / "class_0").hint == (
        "class_0/ looks like one class's folder: an image tree is "
        f"{tree}/<split>/<class>/<image>, with train/ and test/ split folders")
    # review: train/ of loose images beside a test/ laid out right was "has no 'train' split"
    half = tmp_path / "half"
    write_fake_image_folder(half / "test", per_class=1, classes=2)
    (half / "train").mkdir()
    shutil.copy(tree / "class_0" / "0000.png", half / "train" / "a.png")
    error = refused(half)
    assert error.message == (f"image folder {half} has no 'train' split: train/ holds images "
                             "directly, not in class folders")
    assert error.hint == ("put each image in a folder named for its class: "
                          f"{half / 'train'}/<class>/<image>")
    from dlbox.cli.data import check_hint
    from dlbox.data.loading import check_data

    report = check_data(half)
    assert f"{half / 'train'} holds no class folders (its images lie directly in it)" in (
        report.problems)
    assert check_hint(report).startswith("put each image in a folder named for its class: ")
    split_tree = tmp_path / "split"
    write_fake_image_folder(split_tree / "train", per_class=1, classes=2)
    assert refused(split_tree / "train" / "class_1").hint == (  # one class of a split
        f"pass --data {split_tree} (the folder that holds train/)")


def test_split_folders_named_as_other_tools_name_them_are_told_to_be_renamed(
        tmp_path: Path) -> None:
    """Review: Train/ and Test/ were "no CIFAR-10 data found" with a hint to fetch it, and a
    val/ beside train/ was passed over ("has no 'test' split")."""
    write_fake_image_folder(tmp_path / "caps" / "Train", per_class=1, classes=2)
    write_fake_image_folder(tmp_path / "caps" / "Test", per_class=1, classes=2)
    # review: a stray image beside the class folders made Train/ a class, left unnamed
    shutil.copy(tmp_path / "caps" / "Train" / "class_0" / "0000.png",
                tmp_path / "caps" / "Train" / "preview.png")
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "caps", "train")
    caps = tmp_path / "caps"
    assert info.value.message == (f"no CIFAR-10 data found in {caps}: it holds Test/, Train/, "
                                  "where an image tree's split folders are named train/ and "
                                  "test/")
    assert info.value.hint == (f"rename them: mv {caps / 'Test'} {caps / 'test'}; "
                               f"mv {caps / 'Train'} {caps / 'train'}")
    write_fake_image_folder(tmp_path / "val" / "train", per_class=1, classes=2)
    write_fake_image_folder(tmp_path / "val" / "val", per_class=1, classes=2)
    assert len(load_dataset(tmp_path / "val", "train")) == 2
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "val", "test")
    assert info.value.message == (f"image folder {tmp_path / 'val'} has no 'test' split: it "
                                  "holds val/ instead")
    assert info.value.hint == (f"rename it: mv {tmp_path / 'val' / 'val'} "
                               f"{tmp_path / 'val' / 'test'}")
    for name in ("Train", "Test"):  # the renames it gives make a tree that loads
        (caps / name).rename(caps / name.lower())
    assert len(load_dataset(caps, "test")) == 2
    # review: a class called `valid` (with its images) is a class, not a split to rename
    flat = write_fake_image_folder(tmp_path / "flat", per_class=1, classes=2)
    (flat / "class_0").rename(flat / "valid")
    with pytest.raises(DataError) as info:
        load_dataset(flat, "train")
    assert "class folders with images (class_1, valid) but no train/ or test/ split" in (
        info.value.message)


def test_skipped_entries_lists_what_loading_passes_over(tmp_path: Path) -> None:
    root = write_fake_image_folder(tmp_path / "train", per_class=1, classes=2)
    (root / "class_0" / "notes.txt").write_text("x")
    (root / "class_0" / "photo.heic").write_bytes(b"x")
    (root / "class_0" / ".DS_Store").write_bytes(b"x")
    (root / "class_1" / "more").mkdir()
    (root / "loose.png").write_bytes((root / "class_1" / "0000.png").read_bytes())
    # review: a link to nothing named .png was "a file without an image extension"
    (root / "class_1" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert skipped_entries(root) == (["class_0/notes.txt", "class_0/photo.heic"],
                                     ["loose.png"], ["class_1/more/"], ["class_1/gone.png"])
    assert describe_skipped(*skipped_entries(root))[-1] == (
        "1 image name that is no file (a link to nothing, a pipe) (class_1/gone.png)")
    assert len(load_image_folder(root)) == 2  # and loading indeed passes over them


def test_two_image_trees_one_level_down_are_named_not_reported_as_nothing(
        tmp_path: Path) -> None:
    for name in ("jpeg", "png"):
        write_fake_image_folder(tmp_path / name / "train", per_class=1, classes=2)
        write_fake_image_folder(tmp_path / name / "test", per_class=1, classes=2)
    assert detect_layout(tmp_path) is None  # dlbox does not guess which one
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path, "train")
    assert "it holds 2 image trees (jpeg/, png/)" in info.value.message
    assert f"--data {tmp_path / 'jpeg'}" in (info.value.hint or "")
    assert len(load_dataset(tmp_path / "png", "train")) == 2
    # pasted, the hint's --data works with a space in the path too (the re-check)
    spaced = tmp_path / "two trees"
    for name in ("set a", "set b"):
        write_fake_image_folder(spaced / name / "train", per_class=1, classes=2)
        write_fake_image_folder(spaced / name / "test", per_class=1, classes=2)
    with pytest.raises(DataError) as info:
        load_dataset(spaced, "train")
    assert info.value.hint == f"pass --data '{spaced / 'set a'}' (or another of them)"


@pytest.mark.parametrize("failure", [DataError("image bad.png: not an image"),
                                     KeyboardInterrupt()])
def test_a_failing_or_interrupted_load_stops_the_other_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> None:
    """A bad file, or Ctrl-C, stops the decode at once: the other threads used to decode the
    rest of the tree before the error (or the interrupt) got through, 5 s and more on the
    shared 60,000-image tree."""
    import threading
    import time

    write_fake_image_folder(tmp_path, per_class=100, classes=4)
    decoded: list[str] = []
    lock = threading.Lock()

    def slow_decode(path: Path, size: int = 32) -> np.ndarray:
        if Path(path).name == "0000.png" and Path(path).parent.name == "class_0":
            raise failure
        time.sleep(0.01)
        with lock:
            decoded.append(str(path))
        return np.zeros((3, size, size), np.uint8)

    monkeypatch.setattr(imagefolder, "_worker_count", lambda n: 4)
    monkeypatch.setattr(imagefolder, "decode_image", slow_decode)
    with pytest.raises(type(failure)):
        load_image_folder(tmp_path)
    assert len(decoded) < 40  # of 399 good files, 100 per thread


def test_batch_files_in_a_renamed_folder_are_pointed_out(tmp_path: Path) -> None:
    """The batches in a folder not named cifar-10-batches-py (a renamed or hand-made copy)
    were "no CIFAR-10 data found" with a hint to download them again."""
    batches = write_fake_cifar10(tmp_path / "src", n_train=10, n_test=10)
    renamed = batches.rename(tmp_path / "cifar10")
    with pytest.raises(DataError) as info:
        load_dataset(renamed, "train")
    assert info.value.message == (f"no CIFAR-10 data found in {renamed}: it holds CIFAR-10 "
                                  "batch files (data_batch_1, data_batch_2, ...) but not in a "
                                  "folder named cifar-10-batches-py")
    assert f"rename {renamed} to {tmp_path / 'cifar-10-batches-py'}" in (info.value.hint or "")
    renamed.rename(tmp_path / "cifar-10-batches-py")
    assert len(load_dataset(tmp_path, "train")) == 10


def test_a_macos_zip_folder_is_not_a_class(tmp_path: Path) -> None:
    """A tree unzipped from a macOS zip has __MACOSX/ beside the class folders (and beside the
    splits): it was taken as an extra, empty class, so the model got one output too many."""
    root = tmp_path / "tree"
    write_fake_image_folder(root / "train", per_class=2, classes=2)
    write_fake_image_folder(root / "test", per_class=1, classes=2)
    for junk in (root / "train" / "__MACOSX" / "class_0",
                 tmp_path / "__MACOSX" / "train" / "class_0"):  # beside the tree itself
        junk.mkdir(parents=True)
        (junk / "._0000.png").write_bytes(b"\x00\x05\x16\x07")
    train = load_dataset(tmp_path, "train")
    assert train.classes == ("class_0", "class_1") and len(train) == 4
    assert skipped_entries(root / "train") == ([], [], [], [])


# ---- found by review of `dlbox data check`: formats, empty splits, permissions ---------------

def test_a_tree_reads_every_format_a_predict_folder_is_searched_for(tmp_path: Path) -> None:
    """.webp, .gif, .bmp, .tif and .tiff files (which read_image reads, and `dlbox predict DIR`
    finds) were passed over by the tree scan without a word: the two lists are one now."""
    from dlbox.data.imagefolder import IMAGE_EXTENSIONS, list_image_files
    from dlbox.training.predict import FOLDER_IMAGE_EXTENSIONS

    assert set(IMAGE_EXTENSIONS) == set(FOLDER_IMAGE_EXTENSIONS)
    colours = {".webp": (200, 0, 0), ".GIF": (0, 200, 0), ".bmp": (0, 0, 200),
               ".tif": (200, 200, 0), ".tiff": (0, 200, 200), ".png": (200, 0, 200)}
    formats = {".webp": "WEBP", ".GIF": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
               ".png": "PNG"}
    for i, (ext, colour) in enumerate(colours.items()):
        _save(tmp_path / "cls" / f"{i}{ext}", Image.new("RGB", (40, 30), colour), formats[ext])
    files, _, _ = list_image_files(tmp_path)
    assert [f.suffix for f in files] == list(colours)
    data = load_image_folder(tmp_path)
    means = data.images.float().mean(dim=(2, 3))
    for row, colour in zip(means.tolist(), colours.values(), strict=True):
        assert max(abs(a - b) for a, b in zip(row, colour, strict=True)) < 3, (row, colour)
    assert skipped_entries(tmp_path) == ([], [], [], [])


def test_a_split_without_images_says_where_they_go_and_what_is_read(tmp_path: Path) -> None:
    """Its hint was "lay it out as ROOT/<class>/<image>.png|jpg": no word of which extensions
    are read, nor of what the class folders hold instead."""
    from dlbox.data.imagefolder import IMAGE_EXTENSIONS

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.heic").write_bytes(b"x")
    (tmp_path / "dog" / "photos").mkdir(parents=True)
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path)
    message, hint = info.value.message, info.value.hint or ""
    assert message.startswith(f"image folder {tmp_path} holds no images: its class folders "
                              "(cat/, dog/) have no file ending in .png, .jpg, .jpeg")
    assert f"{tmp_path}/<class>/<image>" in hint
    assert all(ext in hint for ext in IMAGE_EXTENSIONS), hint
    assert "1 file without an image extension (cat/a.heic)" in hint
    assert "1 folder inside a class folder (dog/photos/)" in hint
    assert "replace" not in hint


def _refuse(monkeypatch: pytest.MonkeyPatch, name: str, refused: Path) -> None:
    """os.<name>(refused) fails as it does for a user without the permission (root, which
    CI runs the tests as, is never refused); every other call goes through."""
    import errno
    import os

    real = getattr(os, name)

    def call(path: object, *args: object, **kwargs: object) -> object:
        if Path(os.fsdecode(path)) == refused:  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, name, call)


@pytest.mark.parametrize("refused", ["listdir", "stat"])
def test_a_class_folder_that_may_not_be_read_is_named_with_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str) -> None:
    """A class folder without read permission (listdir refused) or with read but no search
    permission (each entry's stat refused) was a bare PermissionError: "cannot use ...",
    rerun with DLBOX_DEBUG=1 and please report it."""
    write_fake_image_folder(tmp_path / "train", per_class=2, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    folder = tmp_path / "train" / "class_1"
    if refused == "listdir":
        _refuse(monkeypatch, "listdir", folder)
    else:
        _refuse(monkeypatch, "stat", folder / "0000.png")
        _refuse(monkeypatch, "lstat", folder / "0000.png")
    with pytest.raises(DataError) as info:  # was a bare PermissionError
        load_dataset(tmp_path, "train")
    assert info.value.message == f"cannot read the class folder {folder}: permission denied"
    assert f"`chmod u+rx {folder}`" in (info.value.hint or "")
    assert "chown" in (info.value.hint or "") and "replace" not in (info.value.hint or "")
    assert len(load_dataset(tmp_path, "test")) == 2  # the other split still loads


def test_an_image_that_may_not_be_read_hints_at_its_permissions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its hint was "replace that file with a readable PNG or JPEG": the file is not damaged,
    its permissions are the fix. A damaged file keeps the replace hint."""
    import errno

    from dlbox.data.images import ImageLoadError

    path = tmp_path / "cls" / "a.png"
    _save(path, Image.new("RGB", (32, 32)), "PNG")

    def denied(source: object, size: int, fit: str) -> np.ndarray:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", str(source))
        except PermissionError as error:
            raise ImageLoadError("permission denied") from error
    monkeypatch.setattr(imagefolder, "read_image", denied)
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path)
    assert info.value.message == f"image {path}: permission denied"
    assert f"`chmod u+r {path}`" in (info.value.hint or "")
    assert "replace" not in (info.value.hint or "")
    monkeypatch.undo()
    path.write_bytes(b"damaged")
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path)
    # the damaged file's own fix, and removing it from the tree
    assert info.value.hint == ("check that it is the image you meant, or convert it to PNG or "
                               "JPEG, or remove it from the image folder")


def test_an_unreadable_folder_beside_a_tree_is_not_taken_for_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data dir at the top of a disk holds lost+found, which only root may read: looking for
    a tree one folder down passes over it instead of failing on it."""
    tree = tmp_path / "cifar10-jpeg"
    write_fake_image_folder(tree / "train", per_class=1, classes=2)
    write_fake_image_folder(tree / "test", per_class=1, classes=2)
    (tmp_path / "lost+found").mkdir()
    _refuse(monkeypatch, "listdir", tmp_path / "lost+found")
    _refuse(monkeypatch, "stat", tmp_path / "lost+found" / "train")
    assert detect_layout(tmp_path).root == tree  # type: ignore[union-attr]
    assert len(load_dataset(tmp_path, "train")) == 2


def test_a_class_folder_name_that_is_not_utf8_is_refused_before_training(
        tmp_path: Path) -> None:
    """Found by review: a Latin-1 class folder (`gr\\xfcn`, from an old zip) passed `data check`
    and trained, then every evaluation failed writing predictions.csv (exit 70, "please
    report it"). It is refused when the classes are read, naming the folder and the fix."""
    import os

    for split in ("train", "test"):
        for name in (b"gr\xfcn", b"rot"):
            folder = os.path.join(os.fsencode(tmp_path), split.encode(), name)
            os.makedirs(folder)
            Image.new("RGB", (8, 8), (200, 0, 0)).save(os.fsdecode(folder + b"/0.png"))
    with pytest.raises(DataError) as caught:
        load_dataset(tmp_path, "train")
    assert caught.value.message == (f"the class folder $'{tmp_path / 'train'}/gr\\xfcn' has "
                                    "a name that is not UTF-8")
    # review: the convmv it gave renamed train/ alone, and test/ failed next
    assert f"`convmv -f latin1 -t utf8 --notest -r {tmp_path}`" in (caught.value.hint or "")


def test_file_names_that_are_not_utf8_are_shown_as_bash_writes_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: a Latin-1 file name showed as \\udcfe on stderr and as a raw byte on stdout
    (data check's skipped files, an unreadable image); now as $'...\\xfe...' on both, the
    form a shell takes back."""
    import os

    from dlbox.cli import main

    write_fake_image_folder(tmp_path / "train", per_class=2, classes=2)
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2)
    folder = os.fsencode(tmp_path / "train" / "class_0")
    with open(folder + b"/notes\xff.txt", "wb") as file:
        file.write(b"mine")
    with open(folder + b"/cut\xfe.png", "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "\\udc" not in said and "\udcfe" not in said and "\udcff" not in said
    assert "skipped 1 file without an image extension ($'class_0/notes\\xff.txt')" in said
    assert f"error: data check found 1 problem(s) in {tmp_path}: image " \
           f"$'{tmp_path}/train/class_0/cut\\xfe.png': truncated" in captured.err
    # the data dir's own name too, in the error and its hint (review: X\\udce9)
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/X\xe9")
    os.makedirs(os.path.join(odd, "train"))
    shutil.copy(tmp_path / "test" / "class_0" / "0000.png", os.path.join(odd, "train"))
    assert main(["data", "check", "--data", odd]) == 1
    err = capsys.readouterr().err
    assert "\\udc" not in err and f"no CIFAR-10 data found in $'{tmp_path}/X\\xe9'" in err
    assert f"$'{tmp_path}/X\\xe9/train'/<class>/<image>" in err


def test_a_stray_non_utf8_folder_in_a_data_dir_without_data_is_no_data(tmp_path: Path) -> None:
    """Found by review of the check above: it ran on every folder looked at, so a data dir
    holding only `Caf\\xe9 photos/` read as a bad class folder instead of "no data"."""
    import os

    os.makedirs(os.path.join(os.fsencode(tmp_path), b"Caf\xe9 photos"))
    with pytest.raises(DataError) as caught:
        load_dataset(tmp_path, "train")
    assert caught.value.message == f"no CIFAR-10 data found in {tmp_path}"


def test_jpegs_saved_as_jfif_or_jpe_are_images(tmp_path: Path) -> None:
    """Found by review: Chrome saves JPEGs as photo.jfif; an image tree passed them over
    (then warned that their class had no images) and `dlbox predict DIR` skipped them."""
    from dlbox.training.predict import images_in_folder

    write_fake_image_folder(tmp_path / "train", per_class=2, classes=2, fmt="jpg")
    write_fake_image_folder(tmp_path / "test", per_class=1, classes=2, fmt="jpg")
    for number, path in enumerate(sorted((tmp_path / "train" / "class_1").iterdir())):
        path.rename(path.with_suffix((".jfif", ".jpe")[number]))
    assert len(load_dataset(tmp_path, "train")) == 4
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (8, 8)).save(photos / "saved.jfif", format="JPEG")
    assert images_in_folder(photos) == [photos / "saved.jfif"]


def test_netpbm_images_are_read_in_a_tree_as_predict_reads_them(tmp_path: Path) -> None:
    """Found by review: .ppm and .pgm files, which `dlbox predict` reads when named, were
    passed over in a training tree ("skipped N files without an image extension"), and
    `dlbox predict DIR` did not find them. Every Netpbm extension Pillow reads is one now,
    in the tree and in a folder given to predict, each read as predict reads it."""
    from dlbox.training.predict import images_in_folder, load_image

    images = {".ppm": Image.new("RGB", (40, 30), (200, 0, 0)),
              ".pgm": Image.new("L", (40, 30), 120),
              ".pbm": Image.new("1", (40, 30), 1),
              ".PNM": Image.new("RGB", (40, 30), (0, 0, 200))}
    for number, (ext, image) in enumerate(images.items()):
        _save(tmp_path / "train" / "cls" / f"{number}{ext}", image, "PPM")
    _save(tmp_path / "test" / "cls" / "0.png", Image.new("RGB", (32, 32)), "PNG")
    train = load_dataset(tmp_path, "train")
    files = sorted((tmp_path / "train" / "cls").iterdir())
    assert len(train) == len(images)
    for index, path in enumerate(files):
        assert torch.equal(train.images[index], load_image(path)), path
    assert skipped_entries(tmp_path / "train") == ([], [], [], [])
    assert images_in_folder(tmp_path / "train" / "cls") == files


def test_a_bad_image_in_a_split_points_to_data_check_for_every_other(tmp_path: Path) -> None:
    """Found by review: training stops at the first unreadable image of a tree, so a tree with
    several took one run per image to find them. The hint says which command lists them all;
    `data check` itself lists them, and its own hints do not send the user to it again."""
    write_fake_image_folder(tmp_path / "tree" / "train", per_class=2, classes=2)
    write_fake_image_folder(tmp_path / "tree" / "test", per_class=1, classes=2)
    for name in ("class_0/0000.png", "class_1/0001.png"):
        (tmp_path / "tree" / "train" / name).write_bytes(b"damaged")
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "tree", "train")
    assert info.value.message.startswith(f"image {tmp_path / 'tree' / 'train' / 'class_0'}")
    assert info.value.hint == (
        "check that it is the image you meant, or convert it to PNG or JPEG, or remove it "
        f"from the image folder; `dlbox data check --data {tmp_path / 'tree'}` lists every "
        "unreadable image")
    failures: list[DataError] = []
    load_image_folder(tmp_path / "tree" / "train", failures=failures)
    assert len(failures) == 2 and all("data check" not in (f.hint or "") for f in failures)


@pytest.mark.parametrize("splits", [("train", "test"), ("train",)])
def test_split_folders_without_class_folders_get_the_tree_layout_not_a_download(
        tmp_path: Path, splits: tuple[str, ...]) -> None:
    """Review: `mkdir D/train D/test` (an image tree begun) got "no CIFAR-10 data found" and
    the hint to download CIFAR-10."""
    for split in splits:
        (tmp_path / split).mkdir()
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path, "train")
    shown = " and ".join(f"{split}/" for split in splits)
    assert info.value.message == (f"no image tree found in {tmp_path}: {shown} "
                                  f"hold{'s' if len(splits) == 1 else ''} no class folders "
                                  "with images"), info.value.message
    assert f"{tmp_path / 'train'}/<class>/<image>" in (info.value.hint or "")
    assert "fetch" not in (info.value.hint or "")
