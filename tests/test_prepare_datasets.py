"""scripts/prepare_kinetics_sounds.py, prepare_ave.py and prepare_vggsound.py on generated videos in each
dataset's own file naming: frames and 16 kHz wavs where the readers look, missing videos counted,
failures reported, and a second pass resumes."""
import sys

import soundfile

from conftest import ROOT
from test_prepare_frames import write_mp4_with_audio

sys.path.insert(0, str(ROOT / "scripts"))
import prepare_ave  # noqa: E402
import prepare_kinetics_sounds  # noqa: E402
import prepare_vggsound  # noqa: E402


def prepared(root, clip, frames="frames", audio="audio"):
    frames = sorted(p.name for p in (root / frames / clip).iterdir())
    wave, rate = soundfile.read(root / audio / f"{clip}.wav")
    return frames, rate, wave.ndim


def test_kinetics_sounds_videos_in_class_folders(tmp_path, capsys):
    root, videos = tmp_path / "KS", tmp_path / "kinetics" / "train"
    root.mkdir()
    (root / "my_train.txt").write_text("abcdefghijk_000010_000020,10,0\nzyxwvutsrqp_000001_000011,10,1\n")
    (root / "my_test.txt").write_text("mnopqrstuvw_3,10,1\n")
    (videos / "playing guitar").mkdir(parents=True)
    write_mp4_with_audio(videos / "playing guitar" / "abcdefghijk_000010_000020.mp4")
    (videos / "dog barking").mkdir()
    (videos / "dog barking" / "zyxwvutsrqp_000001_000011.mp4").write_bytes(b"not a video")
    code = prepare_kinetics_sounds.main(["--data_root", str(root), "--video_dir", str(tmp_path / "kinetics")])
    assert code == 1 and prepared(root, "abcdefghijk_000010_000020") == (["00001.jpg", "00002.jpg"], 16000, 1)
    assert "zyxwvutsrqp_000001_000011.mp4" in (root / "failed.txt").read_text()
    assert (root / "missing.txt").read_text().split() == ["mnopqrstuvw_3"]
    out = capsys.readouterr().out
    assert "1 of the 3 listed clips have no video" in out
    prepare_kinetics_sounds.main(["--data_root", str(root), "--video_dir", str(tmp_path / "kinetics")])
    assert "1 already done" in capsys.readouterr().out


def test_ave_videos_by_their_id(tmp_path):
    root = tmp_path / "AVE_Dataset"
    (root / "AVE").mkdir(parents=True)
    for name, rows in (("trainSet.txt", "Bark&vid00000001&good&0&10\nBark&vid00000001&good&2&5\n"),
                       ("valSet.txt", "Church bell&vid00000002&good&0&10\n"), ("testSet.txt", "Bark&vid00000003&good&0&4\n"
                                                                                             "Church bell&x&good&0&10\n")):
        (root / name).write_text(rows)
    for vid in ("vid00000001", "vid00000002", "vid00000003"):
        write_mp4_with_audio(root / "AVE" / f"{vid}.mp4")
    assert prepare_ave.main(["--data_root", str(root), "--segment", "whole"]) == 0
    assert prepared(root, "vid00000002") == (["00001.jpg", "00002.jpg"], 16000, 1)
    assert (root / "missing.txt").read_text().split() == ["x"] and not (root / "failed.txt").exists()
    assert prepare_ave.main(["--data_root", str(root)]) == 0  # the event segments (tests/test_ave_event.py)
    frames, rate, channels = prepared(root, "vid00000003", "frames_event", "audio_event")
    assert len(frames) == 10 and {"00000.jpg", "00025.jpg"} <= set(frames) and (rate, channels) == (16000, 1)


def test_vggsound_videos_with_and_without_zero_padded_starts(tmp_path, capsys):
    root, videos = tmp_path / "VGGSound", tmp_path / "videos"
    root.mkdir()
    videos.mkdir()
    (root / "vggsound.csv").write_text("a_b-c_d_e_f,30,dog barking,train\nqwertyuiopa,7,dog barking,test\n"
                                       "gone0000000,0,dog barking,train\n")
    write_mp4_with_audio(videos / "a_b-c_d_e_f_000030.mp4")   # the distributed files' naming
    write_mp4_with_audio(videos / "qwertyuiopa_7.mp4")         # OGM-GE's
    assert prepare_vggsound.main(["--data_root", str(root), "--video_dir", str(videos)]) == 0
    for clip in ("a_b-c_d_e_f_000030", "qwertyuiopa_000007"):
        assert prepared(root, clip) == (["00001.jpg", "00002.jpg"], 16000, 1)
    assert (root / "missing.txt").read_text().split() == ["gone0000000_000000"]
    assert "1 of the 3 listed clips have no video" in capsys.readouterr().out
