"""The paper's CREMA-D split ships with the project: a data root without split files trains on it,
says so, keeps a copy, and reports clips of it that are missing on disk."""
import json
import shutil

import pytest

import main_CD
from conftest import ROOT, TINY_FLAGS
from dataset.splits import read_split

SHIPPED = ROOT / "data" / "CREMA-D"
CLASSES = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]


@pytest.fixture(scope="module")
def shipped_names_tree(demo_root, tmp_path_factory):
    """The demo's clips under names of the shipped split (3 train and 1 test clip per emotion), no split files."""
    root = tmp_path_factory.mktemp("shipped") / "CREMA-D"
    (root / "AudioWAV").mkdir(parents=True)
    shipped = {name: read_split(SHIPPED / f"{name}.csv", CLASSES) for name in ("train", "test")}
    for name, per_class in (("train", 3), ("test", 1)):
        demo = read_split(demo_root / f"{name}.csv", CLASSES)
        for label in range(6):
            real = [clip for clip, l in shipped[name] if l == label][:per_class]
            fake = [clip for clip, l in demo if l == label][:per_class]
            for new, old in zip(real, fake):
                shutil.copy(demo_root / "AudioWAV" / f"{old}.wav", root / "AudioWAV" / f"{new}.wav")
                shutil.copytree(demo_root / "Image-01-FPS" / old, root / "Image-01-FPS" / new)
    return root


def test_a_root_without_split_files_trains_on_the_shipped_split(shipped_names_tree, tmp_path, capsys):
    run = tmp_path / "run"
    main_CD.main(["--train", "--data_root", str(shipped_names_tree), "--run_dir", str(run), "--epochs", "1",
                  "--skip_missing", "True", *TINY_FLAGS])
    out = capsys.readouterr().out
    assert "split: the paper's, shipped in data/CREMA-D, 6698 train / 744 test clips" in out
    assert "skipped 6680 train clip(s)" in out
    assert "skipped 738 test clip(s) without wav or frames: 6 of the 744 listed are used" in out
    row = json.loads((run / "metrics.jsonl").read_text())
    assert (row["train_count"], row["test_count"]) == (18, 6)
    for name in ("train", "test"):  # the run keeps the split it used, whole
        assert read_split(run / f"{name}.csv", CLASSES) == read_split(SHIPPED / f"{name}.csv", CLASSES)


def test_missing_clips_of_the_shipped_split_are_one_clear_error(shipped_names_tree, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--train", "--data_root", str(shipped_names_tree), "--run_dir", str(tmp_path / "run"),
                      "--epochs", "1", *TINY_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert err[0].startswith("error: 738 clip(s) of the test split (the paper's, shipped in data/CREMA-D) lack a wav")
    assert "--skip_missing True" in err[0]
    assert not (tmp_path / "run" / "args.json").exists()


def test_generate_split_is_only_made_when_asked(shipped_names_tree, tmp_path, capsys):
    run = tmp_path / "run"
    main_CD.main(["--train", "--data_root", str(shipped_names_tree), "--run_dir", str(run), "--epochs", "1",
                  "--generate_split", "True", *TINY_FLAGS])
    assert "split: a stratified 90/10 split made by --generate_split" in capsys.readouterr().out
    train, test = (read_split(run / f"{name}.csv", CLASSES) for name in ("train", "test"))
    assert len(train) + len(test) == 24 and len(test) == 6
