"""Dataset loaders on the embedded digits and on data written here in the standard on-disk formats."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dmc.data import load_dataset
from dmc.errors import InvalidInputError


def test_digits_is_a_fixed_cifar_like_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.train), len(a.test), a.num_classes, a.in_channels, a.image_size) == (1437, 360, 10, 3, 32)
    x, y = a.test[0]
    assert x.shape == (3, 32, 32) and 0 <= int(y) < 10
    assert torch.equal(a.test.labels, b.test.labels) and torch.equal(a.test.images, b.test.images)
    assert torch.bincount(a.test.labels).min() >= 35  # stratified
    images = torch.stack([a.train[i][0] for i in range(len(a.train))])
    assert abs(images.mean().item()) < 0.05 and abs(images.std().item() - 1) < 0.05


def _write_cifar10(root, n_train=20, n_test=10, labels_key=b"labels"):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", n_train) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), labels_key: list(rng.integers(0, 10, n)),
                 b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump({k: (v if k != labels_key else [int(i) for i in v]) for k, v in batch.items()}, f)
    return folder


def test_cifar10_in_the_standard_layout(tmp_path):
    _write_cifar10(tmp_path)
    for spec, root in (("cifar10", tmp_path), (f"cifar10:{tmp_path}", None),
                       (f"cifar10:{tmp_path / 'cifar-10-batches-py'}", None)):
        bundle = load_dataset(spec, root, augment=True)
        assert (len(bundle.train), len(bundle.test), bundle.num_classes) == (100, 10, 10)
        x, y = bundle.train[3]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_missing_cifar_folder_says_what_layout_is_expected(tmp_path):
    with pytest.raises(InvalidInputError, match="no CIFAR10 data found") as info:
        load_dataset("cifar10", tmp_path)
    assert "cifar-10-batches-py" in info.value.hint and "data_batch_1" in info.value.hint


def test_cifar_batches_are_read_as_data_never_code(tmp_path):
    folder = _write_cifar10(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": []}, f)
    with pytest.raises(InvalidInputError, match="refusing to load builtins.print"):
        load_dataset("cifar10", tmp_path)


def test_a_cifar_array_that_would_crash_numpy_is_one_error_line(dmc_process, tmp_path, hostile_array):
    folder = _write_cifar10(tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": hostile_array, b"labels": [0]}, f, protocol=2)
    result = dmc_process("search", "tiny", "--dataset", f"cifar10:{tmp_path}", "--epochs", "1",
                         "-o", str(tmp_path / "run"))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert "data_batch_3: not a readable CIFAR batch (numpy dtype 'O8' is not plain data" in result.stderr


def test_image_folder_dataset(tmp_path):
    for split in ("train", "val"):
        for c, color in enumerate(["red", "blue"]):
            (tmp_path / split / f"class{c}").mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (20, 24), color).save(tmp_path / split / f"class{c}" / f"{i}.png")
    bundle = load_dataset(f"folder:{tmp_path}")
    assert (len(bundle.train), len(bundle.test), bundle.num_classes) == (6, 6, 2)
    assert bundle.train[0][0].shape == (3, 32, 32)


def test_bad_folder_layouts(tmp_path):
    with pytest.raises(InvalidInputError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "train").mkdir()
    with pytest.raises(InvalidInputError, match="not an image-folder dataset") as info:
        load_dataset(f"folder:{tmp_path}")
    assert "PATH/train/<class>" in info.value.hint
    with pytest.raises(InvalidInputError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_a_dataset_without_its_folder_names_the_settings_that_give_it(cli, tmp_path):
    with pytest.raises(InvalidInputError, match="cifar10 needs the folder holding it") as info:
        load_dataset("cifar10")
    assert info.value.hint == "pass dataset cifar10:PATH or data_root PATH"
    with pytest.raises(InvalidInputError, match=r"folder datasets need a path \(hint: pass dataset folder:PATH\)"):
        load_dataset("folder")
    result = cli("search", "tiny", "--dataset", "cifar10", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "(hint: pass --dataset cifar10:PATH or --data-root PATH)" in result.stderr


@pytest.mark.parametrize("batch,label", [("data_batch_3", 10), ("test_batch", -1)])
def test_cifar_labels_out_of_range_name_the_batch(tmp_path, batch, label):
    folder = _write_cifar10(tmp_path)
    data = pickle.loads((folder / batch).read_bytes())
    data[b"labels"][4] = label
    (folder / batch).write_bytes(pickle.dumps(data))
    with pytest.raises(InvalidInputError, match=f"{batch}: label {label} is out of range "
                                                r"\(this dataset has 10 classes: 0..9\)"):
        load_dataset("cifar10", tmp_path)


def test_cifar_batches_of_the_wrong_shape(tmp_path):
    folder = _write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InvalidInputError, match="test_batch: malformed CIFAR batch"):
        load_dataset("cifar10", tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [[1, 2]] * 2}))
    with pytest.raises(InvalidInputError, match=r"test_batch: 2 images but labels of shape \(2, 2\)"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("content", [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30])
def test_a_corrupt_image_in_a_folder_dataset_names_the_file(tmp_path, content):
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.new("RGB", (8, 8), "red").save(tmp_path / split / "a" / "ok.png")
    (tmp_path / "train" / "a" / "bad.png").write_bytes(content)
    bundle = load_dataset(f"folder:{tmp_path}")
    index = [p for p, _ in bundle.train.samples].index(str(tmp_path / "train" / "a" / "bad.png"))
    with pytest.raises(InvalidInputError, match=r"bad.png: not a readable image") as info:
        bundle.train[index]
    assert "\n" not in str(info.value)
    assert bundle.test[0][0].shape == (3, 32, 32)


def test_image_folders_with_the_imagenet_policy(tmp_path):
    """Random-resized crop + flip for training; evaluation resizes the shorter side to round(size / 0.875) and takes
    the center square (the standard ImageNet protocol); validation images (augment off) are evaluated alike."""
    from torchvision.transforms import functional as TF

    from dmc.data.folder import IMAGENET_MEAN, IMAGENET_STD, first_image_side

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            (tmp_path / split / f"class{c}").mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # 48 wide, 40 high
                Image.fromarray(pixels).save(tmp_path / split / f"class{c}" / f"{i}.png")
    assert first_image_side(tmp_path) == 40 and first_image_side(tmp_path / "missing") is None
    bundle = load_dataset(f"folder:{tmp_path}", augment=True, image_size=32, policy="imagenet")
    assert bundle.image_size == 32 and bundle.train[0][0].shape == bundle.test[0][0].shape == (3, 32, 32)
    names = [type(t).__name__ for t in bundle.train.transform.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    path = bundle.test.samples[0][0]
    expected = TF.normalize(TF.to_tensor(TF.center_crop(TF.resize(Image.open(path).convert("RGB"), 37), 32)),
                            IMAGENET_MEAN, IMAGENET_STD)  # 37 = round(32 / 0.875)
    assert torch.equal(bundle.test[0][0], expected)
    plain = load_dataset(f"folder:{tmp_path}", image_size=32, policy="imagenet")
    assert torch.equal(plain.train[0][0], plain.train[0][0])  # unaugmented training split: evaluation transform
    assert [type(t).__name__ for t in plain.train.transform.transforms] == \
        ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    torch.manual_seed(0)
    crops = {tuple(bundle.train[0][0].flatten()[:8].tolist()) for _ in range(4)}
    assert len(crops) > 1  # random crops
    with pytest.raises(InvalidInputError, match="imagenet augmentation policy needs a folder:PATH dataset"):
        load_dataset("digits", policy="imagenet")
