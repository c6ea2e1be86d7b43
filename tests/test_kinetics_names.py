"""Kinetics-Sounds list names -> Kinetics videos: the shipped test list's `<id>_<start>` names and the
train list's `<id>_<start>_<end>` both reduce to (youtube id, start second); the preparation script builds
the shipped naming from Kinetics-named videos and says how many listed clips it found."""
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from dataset.errors import DataError
from dataset.kinetics_names import clip_key, match_videos, read_mapping
from dataset.kinetics_sounds import SHIPPED, read_clip_list
from test_prepare_frames import write_mp4_with_audio

sys.path.insert(0, str(ROOT / "scripts"))
import prepare_kinetics_sounds  # noqa: E402


def test_both_namings_reduce_to_id_and_start():
    assert clip_key("--4-0ihtnBU_000058_000068") == ("--4-0ihtnBU", 58)
    assert clip_key("-3Mwkq-7TV4_2") == ("-3Mwkq-7TV4", 2)
    assert clip_key("a_b-c_d_e_f_000030_000040") == ("a_b-c_d_e_f", 30)  # '_' inside the id
    assert clip_key("a_b-c_d_e_f_7") == ("a_b-c_d_e_f", 7)
    for other in ("short_1", "abcdefghijk", "abcdefghijk_", "abcdefghijk_x", "abcdefghijk_1_2_3", "abcdefghijkX1"):
        assert clip_key(other) is None


def test_every_shipped_clip_has_a_key_and_no_two_share_one():
    for name in ("my_train.txt", "my_test.txt"):
        clips = [clip for clip, _ in read_clip_list(SHIPPED / name)]
        keys = [clip_key(clip) for clip in clips]
        assert None not in keys and len(set(keys)) == len(clips)
    test = [clip for clip, _ in read_clip_list(SHIPPED / "my_test.txt")]
    assert len(test) == 2597 and all(clip_key(clip)[0] + f"_{clip_key(clip)[1]}" == clip for clip in test)


def test_matching_by_start_never_by_the_id_alone(tmp_path):
    videos = {"abcdefghijk_000003_000013": tmp_path / "a.mp4", "zyxwvutsrqp_000010_000020": tmp_path / "b.mp4",
              "qwertyuiopa_000000_000010": tmp_path / "c.mp4"}
    clips = ["abcdefghijk_3", "zyxwvutsrqp_000010_000020", "qwertyuiopa_5", "mnbvcxzlkjh_1"]
    found, counts = match_videos(clips, videos, {"mnbvcxzlkjh_1": tmp_path / "m.mp4"})
    assert found == {"abcdefghijk_3": tmp_path / "a.mp4", "zyxwvutsrqp_000010_000020": tmp_path / "b.mp4",
                     "mnbvcxzlkjh_1": tmp_path / "m.mp4"}  # qwertyuiopa starts at 0, not 5: not that clip
    assert counts == {"mapping file": 1, "exact name": 1, "id and start": 1}


def test_mapping_file_rows(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("abcdefghijk_3,videos/x.mp4\n\nqwertyuiopa_5,/abs/y.mp4\n")
    assert read_mapping(path) == {"abcdefghijk_3": tmp_path / "videos" / "x.mp4", "qwertyuiopa_5": Path("/abs/y.mp4")}
    path.write_text("abcdefghijk_3\n")
    with pytest.raises(DataError, match="row 1: expected"):
        read_mapping(path)
    with pytest.raises(DataError, match="mapping file not found"):
        read_mapping(tmp_path / "none.csv")


def test_preparation_builds_the_test_naming_from_kinetics_files(tmp_path, capsys):
    root, videos = tmp_path / "KS", tmp_path / "kinetics400"
    root.mkdir()
    (root / "my_train.txt").write_text("abcdefghijk_000010_000020,10,0\n")
    (root / "my_test.txt").write_text("mnopqrstuvw_3,10,1\nqwertyuiopa_5,10,1\nzzzzzzzzzzz_4,10,0\n")
    (videos / "test" / "shoveling snow").mkdir(parents=True)
    (videos / "train").mkdir()
    write_mp4_with_audio(videos / "train" / "abcdefghijk_000010_000020.mp4")
    write_mp4_with_audio(videos / "test" / "shoveling snow" / "mnopqrstuvw_000003_000013.mp4")
    write_mp4_with_audio(videos / "test" / "qwertyuiopa_000000_000010.mp4")  # another start: not the listed clip
    write_mp4_with_audio(tmp_path / "renamed.mp4")
    (tmp_path / "map.csv").write_text("zzzzzzzzzzz_4,renamed.mp4\n")
    code = prepare_kinetics_sounds.main(["--data_root", str(root), "--video_dir", str(videos),
                                         "--mapping", str(tmp_path / "map.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "train list: found videos for 1 of its 1 clips (1 by exact name)" in out
    assert "test list: found videos for 2 of its 3 clips (1 by mapping file, 1 by id and start)" in out
    for clip in ("abcdefghijk_000010_000020", "mnopqrstuvw_3", "zzzzzzzzzzz_4"):
        assert (root / "audio" / f"{clip}.wav").is_file() and (root / "frames" / clip / "00001.jpg").is_file()
    assert (root / "missing.txt").read_text().split() == ["qwertyuiopa_5"]
