"""AVE on its labelled event segment, as PMR's data/AVE/video_preprocessing.py prepares it: the audio against
an independent numpy / scipy run of their extractWav_SE, the frames against their video2frame_update_SE rule on
a generated video, the lists' StartTime / EndTime, and the refusal of data prepared for the other --segment."""
import shutil
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import soundfile
from scipy import signal

import main_AVE
from conftest import ROOT, TINY_FLAGS
from dataset import DataError
from dataset.audio_recipes import Spectrogram
from dataset.ave import MARKER, EventRow, event_segments, read_event_rows
from dataset.ave_event import event_audio, event_frame_indices
from dataset.demo_layouts import write_ave_demo
from dataset.video import write_wav
from test_prepare_frames import write_mp4_with_audio
from utils.caching import attach_caches

sys.path.insert(0, str(ROOT / "scripts"))
import prepare_ave  # noqa: E402


def pmr_extract_wav_se(samples, start_t, end_t, sr=16000):
    """extractWav_SE (video_preprocessing.py:199-228) on samples librosa.load returned."""
    shape = sr * 10
    samples = samples[sr * start_t:sr * end_t]
    resamples = np.tile(samples, 10)
    if resamples.shape[0] < shape:
        resamples = np.tile(resamples, 10)[:shape]
    else:
        resamples = resamples[:shape]
    resamples[resamples > 1.] = 1.
    resamples[resamples < -1.] = -1.
    frequencies, times, spectrogram = signal.spectrogram(resamples, sr, nperseg=512, noverlap=353)
    spectrogram = np.log(np.abs(spectrogram) + 1e-7)
    mean = np.mean(spectrogram)
    std = np.std(spectrogram)
    return np.divide(spectrogram - mean, std + 1e-9)


@pytest.mark.parametrize("start,end", [(0, 10), (3, 5), (6, 10), (1, 2), (0, 7)])
def test_event_audio_is_pmrs_extract_wav_se(tmp_path, start, end):
    g = np.random.default_rng(start * 11 + end)
    t = np.arange(10 * 16000) / 16000
    wave = 0.4 * np.sin(2 * np.pi * (300 + 100 * t) * t) + g.normal(0, 0.3, t.shape)  # some samples clip
    soundfile.write(tmp_path / "video.wav", wave, 16000, subtype="PCM_16")
    samples, _ = soundfile.read(tmp_path / "video.wav", dtype="float32")
    write_wav(event_audio(samples, start, end), tmp_path / "event.wav")  # what prepare_ave.py writes
    ours = Spectrogram(10.0).features(tmp_path / "event.wav")[0].numpy()
    theirs = pmr_extract_wav_se(samples.astype(np.float64), start, end)
    assert ours.shape == theirs.shape == (257, 1004)
    assert np.abs(ours - theirs).max() < 1e-4


def test_a_zero_length_event_takes_its_one_second():
    wave = np.arange(5 * 16000, dtype=np.float32)
    assert np.array_equal(event_audio(wave, 2, 2), wave[32000:48000])
    with pytest.raises(RuntimeError, match="starts after the audio ends"):
        event_audio(wave, 6, 8)


def test_event_frame_rule():
    # 10 s at 10 fps: the first frame of each second from start to end, both included
    assert event_frame_indices(100, 10, 0, 10, "v") == (list(range(0, 100, 10)), [])  # second 10 does not exist
    kept, extra = event_frame_indices(100, 10, 3, 5, "v")
    assert kept == [30, 40, 50] and len(extra) == 7 and len(set(extra)) == 7
    assert all(30 <= c < 50 and c not in kept for c in extra)  # np.random.randint(start*fps, end*fps), new names
    assert event_frame_indices(100, 10, 3, 5, "v") == (kept, extra)  # seeded by the video id
    assert event_frame_indices(100, 10, 3, 5, "w")[1] != extra
    kept, extra = event_frame_indices(100, 10, 0, 0, "v")  # 0&0: their randint(0, 0) raises; ours, its second
    assert kept == [0] and len(extra) == 9 and all(0 < c < 10 for c in extra)
    kept, extra = event_frame_indices(45, 10, 3, 5, "v")  # a video shorter than its event: what there is
    assert kept == [30, 40] and len(extra) == 8 and set(extra) < set(range(31, 45)) - {40}


def brightness(i):
    return 2 * i + 20


def test_prepare_writes_pmrs_event_frames_and_audio(tmp_path, capsys):
    root = tmp_path / "AVE_Dataset"
    (root / "AVE").mkdir(parents=True)
    (root / "trainSet.txt").write_text("Bark&v1&good&3&5\nBark&v2&good&0&10\nBark&v1&good&0&10\n")
    (root / "valSet.txt").write_text("Bark&v3&good&2&9\n")
    (root / "testSet.txt").write_text("Bark&v2&good&0&10\n")
    for vid in ("v1", "v2", "v3"):
        write_mp4_with_audio(root / "AVE" / f"{vid}.mp4", seconds=10, fps=10,
                             frame_at=lambda i: np.full((48, 64, 3), brightness(i), np.uint8))
    assert prepare_ave.main(["--data_root", str(root)]) == 0
    assert "1 video(s) have rows with different segments (first: v1)" in capsys.readouterr().out
    for vid, (start, end) in (("v1", (3, 5)), ("v2", (0, 10)), ("v3", (2, 9))):
        names = sorted(p.name for p in (root / "frames_event" / vid).iterdir())
        indices = [int(n[:-4]) for n in names]
        kept = [s * 10 for s in range(start, end + 1) if s * 10 < 100]
        assert len(indices) == 10 and set(kept) <= set(indices), vid
        assert all(start * 10 <= c < end * 10 for c in set(indices) - set(kept)), vid
        for name, index in zip(names, indices):  # each file is the video frame its name says
            assert abs(cv2.imread(str(root / "frames_event" / vid / name)).mean() - brightness(index)) <= 3
        wave, rate = soundfile.read(root / "audio_event" / f"{vid}.wav")
        assert rate == 16000 and len(wave) == 16000 * (end - start), vid
    assert (root / "frames_event" / MARKER).read_text().strip() == "event" == \
        (root / "audio_event" / MARKER).read_text().strip()
    assert not (root / "frames").exists() and not (root / "audio").exists()
    again = tmp_path / "again"
    shutil.copytree(root, again, ignore=shutil.ignore_patterns("*_event"))
    prepare_ave.main(["--data_root", str(again)])
    for vid in ("v1", "v3"):  # the extra frames are drawn the same way every time
        names = sorted(p.name for p in (again / "frames_event" / vid).iterdir())
        assert len(names) == 10 and names == sorted(p.name for p in (root / "frames_event" / vid).iterdir())


# ---- the lists
def test_start_and_end_are_read_and_checked(tmp_path):
    path = tmp_path / "trainSet.txt"
    path.write_text("Church bell&fCZi6I6kPpU&good&6&10\nBark&x&good&0&0\n")
    assert read_event_rows(path) == [EventRow("Church bell", "fCZi6I6kPpU", 6, 10), EventRow("Bark", "x", 0, 0)]
    for bad in ("Bark&x&good&6&\n", "Bark&x&good&a&10\n", "Bark&x&good&7&3\n", "Bark&x&good&1\n"):
        path.write_text(bad)
        with pytest.raises(DataError, match="line 1: expected 'Category&VideoID&Quality&StartTime&EndTime'"):
            read_event_rows(path)


def test_a_video_keeps_its_first_rows_segment(tmp_path):
    (tmp_path / "trainSet.txt").write_text("A&v&good&2&5\nA&w&good&0&10\nB&v&good&0&10\n")
    (tmp_path / "valSet.txt").write_text("A&w&good&1&3\n")
    (tmp_path / "testSet.txt").write_text("A&u&good&0&4\nB&v&good&2&5\n")
    segments, conflicting = event_segments(tmp_path)
    assert segments == {"v": (2, 5), "w": (0, 10), "u": (0, 4)} and conflicting == ["v", "w"]


# ---- a run reads only data prepared for its --segment
@pytest.fixture(scope="module")
def ave_tree(tmp_path_factory):
    return write_ave_demo(tmp_path_factory.mktemp("ave") / "AVE", clips_per_class=4, image_size=32)


def test_the_demo_tree_is_the_event_layout_with_short_events(ave_tree):
    rows = [r for name in ("trainSet.txt", "valSet.txt", "testSet.txt") for r in read_event_rows(ave_tree / name)]
    assert any((r.start, r.end) == (0, 10) for r in rows) and any((r.start, r.end) != (0, 10) for r in rows)
    assert (ave_tree / "frames_event" / MARKER).read_text().strip() == "event"
    assert len(list((ave_tree / "frames_event" / rows[0].video).iterdir())) == 10


def refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_AVE.main([*argv, *TINY_FLAGS, "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    return err[0]


def test_data_of_the_other_segment_is_refused(ave_tree, tmp_path, capsys):
    line = refused(["--train", "--data_root", str(ave_tree), "--segment", "whole"], capsys)
    assert f"AVE folder {ave_tree / 'audio'} not found" in line
    assert f"python scripts/prepare_ave.py --data_root {ave_tree} --segment whole" in line
    root = tmp_path / "AVE"
    shutil.copytree(ave_tree, root)
    for name in ("audio", "frames"):  # event data where whole videos go
        shutil.copytree(root / f"{name}_event", root / name)
    line = refused(["--train", "--data_root", str(root), "--segment", "whole"], capsys)
    assert f"{root / 'audio'} holds AVE prepared with --segment event" in line and "--segment whole" in line
    for name in ("audio", "frames"):
        (root / name / MARKER).write_text("whole\n")
    line = refused(["--train", "--data_root", str(root), "--audio_dir", "audio"], capsys)
    assert f"{root / 'audio'} holds AVE prepared with --segment whole" in line
    assert f"prepare_ave.py --data_root {root} --segment event" in line
    (root / "frames_event" / MARKER).unlink()
    line = refused(["--train", "--data_root", str(root)], capsys)
    assert f"{root / 'frames_event'} does not say which AVE segment it holds" in line
    assert prepare_ave.main(["--data_root", str(root)]) == 2  # nor does preparation add to it
    assert f"{root / 'frames_event'} does not say which AVE segment it holds" in capsys.readouterr().err
    (root / "frames_event" / MARKER).write_text("whole\n")
    assert prepare_ave.main(["--data_root", str(root)]) == 2
    assert "holds AVE prepared with --segment whole" in capsys.readouterr().err
    (root / "frames_event" / MARKER).unlink()
    assert prepare_ave.main(["--data_root", str(root), "--segment", "event", "--fps", "2"]) == 2
    assert "1 frame a second" in capsys.readouterr().err
    for name in ("audio", "frames"):  # whole videos prepared before the markers existed are whole
        (root / name / MARKER).unlink()
    main_AVE.main(["--train", "--data_root", str(root), "--segment", "whole", "--run_dir", str(tmp_path / "run"),
                   *TINY_FLAGS, "--epochs", "1"])


def test_caches_of_the_two_segments_are_separate(ave_tree, tmp_path):
    root = tmp_path / "AVE"
    shutil.copytree(ave_tree, root)
    for name in ("audio", "frames"):
        shutil.copytree(root / f"{name}_event", root / name)
        (root / name / MARKER).write_text("whole\n")
    folders = []
    for segment in ("event", "whole"):
        args = main_AVE.build_parser().parse_args(["--data_root", str(root), "--segment", segment, *TINY_FLAGS])
        data = main_AVE.build_datasets(args, False)
        attach_caches(data, SimpleNamespace(cache_dir=str(tmp_path / "cache"), cache_frame_size=64, num_workers=0),
                      "ave", False)
        folders.append(data.test.cache.folder)
    assert folders[0] != folders[1]
