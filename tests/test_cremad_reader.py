"""The CREMA-D reader on generated trees in both frame layouts."""
import codecs
import shutil

import pytest
import torch
from torchvision.transforms import RandomResizedCrop

from dataset import CremadDataset, DataError, load_splits, resolve_class_list, resolve_frames_dir
from conftest import ROOT
from dataset.demo import write_demo
from dataset.frame_picks import pick_evenly
from dataset.splits import read_class_list, read_split, stratified_split
from dataset.visual import ClipTransform


@pytest.fixture
def single_root(tmp_path):
    return write_demo(tmp_path / "single", clips_per_class=3, layout="single", image_size=36, test_fraction=0.34)


def open_split(root, split="train", **kw):
    classes = resolve_class_list(root, None)
    train, test, _ = load_splits(root, classes, None, None)
    opts = dict(frames_dir=resolve_frames_dir(root, None), train=split == "train", image_size=24, audio_seconds=0.5)
    opts.update(kw)
    return CremadDataset(root, train if split == "train" else test, **opts)


def test_folder_layout_reads_every_listed_clip(demo_root):
    ds = open_split(demo_root, "train", num_frames=2)
    listed = read_split(demo_root / "train.csv", read_class_list(demo_root / "stat.csv"))
    assert len(ds) == len(listed)
    audio, visual, label = ds[(0, 123)]
    assert audio.shape == (1, 257, (8000 - 512) // 159 + 1) and audio.dtype == torch.float32
    assert visual.shape == (3, 2, 24, 24)
    assert label == listed[0][1]
    assert resolve_frames_dir(demo_root, None).name == "Image-01-FPS"


def test_single_image_layout(single_root):
    ds = open_split(single_root, "test", num_frames=1)
    audio, visual, label = ds[0]
    assert resolve_frames_dir(single_root, None).name == "image"
    assert visual.shape == (3, 1, 24, 24) and 0 <= label < 6


def test_class_list_with_bom(demo_root):
    raw = (demo_root / "stat.csv").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert read_class_list(demo_root / "stat.csv") == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]


def test_frames_are_chosen_evenly_and_sorted():
    assert pick_evenly(10, 1) == [5]
    assert pick_evenly(10, 2) == [2, 7]
    assert pick_evenly(3, 3) == [0, 1, 2]
    assert pick_evenly(2, 4) == [0, 0, 1, 1]


def test_augmentation_depends_only_on_the_seed(demo_root):
    ds = open_split(demo_root, "train")
    torch.manual_seed(0)
    a = ds[(1, 99)][1]
    torch.manual_seed(12345)
    assert torch.equal(a, ds[(1, 99)][1])
    assert not torch.equal(a, ds[(1, 100)][1])


def test_test_transform_is_deterministic(demo_root):
    ds = open_split(demo_root, "test")
    assert torch.equal(ds[0][1], ds[0][1])


def test_class_count_comes_from_the_class_list(tmp_path, demo_root):
    root = tmp_path / "four"
    shutil.copytree(demo_root, root)
    (root / "stat.csv").write_text("NEU\nHAP\nSAD\nFEA\nDIS\nANG\nCALM\n")
    assert len(resolve_class_list(root, None)) == 7


def test_stratified_split_is_deterministic_and_stratified():
    labelled = {f"c{i:03d}": i % 3 for i in range(60)}
    train, test = stratified_split(labelled, 0.1, seed=0)
    assert (train, test) == stratified_split(dict(reversed(list(labelled.items()))), 0.1, seed=0)
    assert len(test) == 6 and sorted(l for _, l in test) == [0, 0, 1, 1, 2, 2]
    assert not set(c for c, _ in train) & set(c for c, _ in test)


def test_without_split_files_the_shipped_paper_split_is_used(tmp_path, demo_root):
    root = tmp_path / "nosplit"
    shutil.copytree(demo_root, root)
    (root / "train.csv").unlink()
    (root / "test.csv").unlink()
    classes = resolve_class_list(root, None)
    split = load_splits(root, classes, None, None)
    assert (len(split.train), len(split.test)) == (6698, 744) and "shipped" in split.source
    assert split.train[0] == ("1088_IOM_NEU_XX", classes.index("NEU"))
    assert not {c for c, _ in split.train} & {c for c, _ in split.test}
    generated = load_splits(root, classes, None, None, generate=True)  # only when asked for
    assert len(generated.train) + len(generated.test) == 24 and "--generate_split" in generated.source
    assert {l for _, l in generated.test} == set(range(6))
    with pytest.raises(DataError, match="--generate_split True makes its own split"):
        load_splits(root, classes, "train.csv", None, generate=True)


def test_split_files_in_the_data_root_come_first(demo_root):
    split = load_splits(demo_root, resolve_class_list(demo_root, None), None, None)
    assert (len(split.train), len(split.test)) == (18, 6) and str(demo_root / "train.csv") in split.source


def test_the_shipped_split_is_the_papers_with_its_licence():
    shipped = ROOT / "data" / "CREMA-D"
    for name in ("train.csv", "test.csv", "stat.csv", "LICENSE-OGM-GE"):
        source = ROOT.parent / "shared" / "data" / "CREMA-D" / name
        if source.is_file():  # the project's shared folder, where CI has it: byte-for-byte copies
            assert (shipped / name).read_bytes() == source.read_bytes(), name
    assert "MIT License" in (shipped / "LICENSE-OGM-GE").read_text()
    assert read_class_list(shipped / "stat.csv") == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]


def test_header_row_is_skipped(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text("clip,label\n1001_DFA_ANG_XX,ANG\n")
    assert read_split(path, ["NEU", "ANG"]) == [("1001_DFA_ANG_XX", 1)]


def test_unknown_label_names_file_and_row(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text("1001_DFA_ANG_XX,ANG\n1001_DFA_XXX_XX,CALM\n")
    with pytest.raises(DataError, match=r"split.csv row 2: label 'CALM'"):
        read_split(path, ["NEU", "ANG"])


def test_train_transform_crops_once_per_clip_and_flips_about_half():
    torch.manual_seed(0)
    frame = torch.arange(3 * 40 * 60, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 3, 40, 60)
    transform = ClipTransform(train=True, image_size=16)
    clip = transform(frame.repeat(4, 1, 1, 1))
    assert clip.shape == (4, 3, 16, 16) and clip.dtype == torch.uint8
    assert all(torch.equal(clip[0], clip[t]) for t in range(4))  # one crop/flip for all frames of a clip
    outputs = {transform(frame).numpy().tobytes() for _ in range(50)}
    assert len(outputs) > 40  # crops are random
    flips, draws = 0, 200
    for _ in range(draws):
        state = torch.get_rng_state()
        out = transform(frame)
        torch.set_rng_state(state)
        top, left, h, w = RandomResizedCrop.get_params(frame, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0.08 * 2400 * 0.9 <= h * w <= 2400  # area within the recipe's scale range
        plain = torch.nn.functional.interpolate(frame[..., top:top + h, left:left + w].float(), size=(16, 16),
                                                mode="bilinear", antialias=True, align_corners=False)
        flips += int((out.float() - plain.flip(-1)).abs().max() < (out.float() - plain).abs().max())
    assert 70 <= flips <= 130


def test_test_transform_is_a_plain_resize():
    frame = torch.randint(0, 255, (2, 3, 30, 50), dtype=torch.uint8)
    out = ClipTransform(train=False, image_size=20)(frame)
    ref = torch.nn.functional.interpolate(frame.float(), size=(20, 20), mode="bilinear", antialias=True)
    assert out.shape == (2, 3, 20, 20) and (out.float() - ref.round()).abs().max() <= 1
