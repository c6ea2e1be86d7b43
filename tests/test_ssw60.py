"""SSW60: the reader on a generated tree in the official layout, its errors, main_SSW.py end to end,
and uni-modal pretraining feeding --audio_pretrain / --visual_pretrain."""
import json

import pytest
import torch

import main_SSW
from conftest import TINY_FLAGS
from dataset import DataError
from dataset.demo import write_ssw60_demo
from dataset.ssw60 import read_video_list


@pytest.fixture(scope="module")
def ssw_root(tmp_path_factory):
    return write_ssw60_demo(tmp_path_factory.mktemp("ssw") / "SSW60", clips_per_class=4, image_size=40)


def test_reader_uses_the_official_split_and_counts_classes_from_the_data(ssw_root):
    classes, splits = read_video_list(ssw_root / "video_ml.csv")
    assert classes == [str(k) for k in range(6)]
    assert len(splits["train"]) == 18 and len(splits["test"]) == 6
    rows = (ssw_root / "video_ml.csv").read_text().splitlines()[1:]
    assert {r.split(",")[0] for r in rows if r.split(",")[2] == "test"} == {a for a, _ in splits["test"]}
    _, reliable = read_video_list(ssw_root / "video_ml.csv", reliable_audio_only=True)
    unreliable = sum(1 for r in rows if r.endswith(",0"))
    assert unreliable > 0 and len(reliable["train"]) + len(reliable["test"]) == 24 - unreliable


def test_numeric_labels_sort_numerically(tmp_path):
    path = tmp_path / "video_ml.csv"
    path.write_text("asset_id,label,split\na,10,train\nb,2,train\nc,10,test\nd,2,test\n")
    assert read_video_list(path)[0] == ["2", "10"]


@pytest.mark.parametrize("text,message", [
    ("asset_id,split\na,train\n", "lacks column"),
    ("asset_id,label,split\na,1,train\nb,1,valid\n", "line 3: split 'valid'"),
    ("asset_id,label,split\na,1,train\n", "no test clips"),
])
def test_bad_metadata_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "video_ml.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_video_list(path)


def test_missing_clip_files_are_reported(ssw_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_SSW.main(["--train", "--data_root", str(ssw_root), "--audio_dir", "nowhere", "--run_dir",
                       str(tmp_path / "run"), *TINY_FLAGS])
    assert exit_info.value.code == 2 and "clip(s) of the test split (official video_ml.csv) lack a wav" in capsys.readouterr().err


def test_unimodal_pretraining_then_joint_fine_tuning(ssw_root, tmp_path, capsys):
    flags = ["--data_root", str(ssw_root), "--epochs", "1", *TINY_FLAGS]
    main_SSW.main(["--train", "--method", "audio_only", "--run_dir", str(tmp_path / "audio"), *flags])
    main_SSW.main(["--train", "--method", "visual_only", "--run_dir", str(tmp_path / "visual"), *flags])
    capsys.readouterr()
    main_SSW.main(["--train", "--mmcosine", "True", "--run_dir", str(tmp_path / "joint"), *flags,
                   "--audio_pretrain", str(tmp_path / "audio" / "best.pt"),
                   "--visual_pretrain", str(tmp_path / "visual" / "best.pt"), "--learning_rate", "0"])
    out = capsys.readouterr().out
    assert "into encoders.audio" in out and "into encoders.visual" in out and "missing 0 []" in out
    # lr 0: the joint model's encoders are exactly the pretrained ones.
    joint = torch.load(tmp_path / "joint" / "last.pt", weights_only=True)["model"]
    audio = torch.load(tmp_path / "audio" / "best.pt", weights_only=True)["model"]
    visual = torch.load(tmp_path / "visual" / "best.pt", weights_only=True)["model"]
    for name in ("encoders.audio.trunk.0.weight", "encoders.audio.trunk.7.1.conv2.weight"):
        assert torch.equal(joint[name], audio[name])
    assert torch.equal(joint["encoders.visual.trunk.0.weight"], visual["encoders.visual.trunk.0.weight"])
    row = json.loads((tmp_path / "joint" / "metrics.jsonl").read_text())
    assert row["test_count"] == 6
    stats = main_SSW.main(["--ckpt_path", str(tmp_path / "joint" / "best.pt"), *flags])
    assert stats["acc"] == pytest.approx(row["test_acc"])
