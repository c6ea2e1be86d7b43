"""VoxCeleb train / trial lists and the utterance reader on a generated tree."""
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from dataset import DataError
from dataset.voxceleb import VoxUtterances, crop, read_train_list, read_trials


@pytest.fixture
def vox_tree(tmp_path):
    rng = np.random.default_rng(0)
    for spk in ("id00012", "id00003"):
        for clip in ("a1", "b2"):
            wav = tmp_path / "audio" / spk / clip / "00001.wav"
            wav.parent.mkdir(parents=True)
            soundfile.write(wav, rng.uniform(-0.5, 0.5, 24000).astype(np.float32), 16000)
            faces = tmp_path / "faces" / spk / clip / "00001"
            faces.mkdir(parents=True)
            for j in range(3):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(faces / f"{j:03d}.jpg")
    (tmp_path / "train.csv").write_text("".join(
        f"{spk}/{clip}/00001.wav,{spk}/{clip}/00001,{spk},3\n" for spk in ("id00012", "id00003") for clip in ("a1", "b2")))
    (tmp_path / "trials.txt").write_text("1,id00012/a1/00001.wav,id00012/b2/00001.wav\n"
                                         "0,id00012/a1/00001.wav,id00003/a1/00001.wav\n")
    return tmp_path


def test_train_list_numbers_speakers_in_sorted_order(vox_tree):
    speakers, items = read_train_list(vox_tree / "train.csv", vox_tree / "audio", vox_tree / "faces")
    assert speakers == ["id00003", "id00012"]
    assert [label for _, label in items] == [1, 1, 0, 0]


def test_trials_list_unique_utterances(vox_tree):
    trials, utterances = read_trials(vox_tree / "trials.txt", vox_tree / "audio", vox_tree / "faces")
    assert trials[0] == (1, "id00012/a1/00001.wav", "id00012/b2/00001.wav")
    assert len(utterances) == 3
    assert utterances["id00003/a1/00001.wav"].frames == vox_tree / "faces" / "id00003" / "a1" / "00001"


@pytest.mark.parametrize("text,message", [
    ("2,id00012/a1/00001.wav,id00003/a1/00001.wav\n", "must be 0 or 1"),
    ("1,id00012/a1/00001.wav\n", "expected '<0|1>,<utt1>,<utt2>'"),
    ("1,id00012/a1/00001.wav,id09999/x/00001.wav\n", "1 utterance"),
])
def test_bad_trial_lists(vox_tree, text, message):
    (vox_tree / "bad.txt").write_text(text)
    with pytest.raises(DataError, match=message):
        read_trials(vox_tree / "bad.txt", vox_tree / "audio", vox_tree / "faces")


def test_bad_train_list(vox_tree):
    (vox_tree / "bad.csv").write_text("id00012/a1/00001.wav,id00012/a1/00001,id00012,three\n")
    with pytest.raises(DataError, match="frame count 'three'"):
        read_train_list(vox_tree / "bad.csv", vox_tree / "audio", vox_tree / "faces")


def test_utterance_reader_crops_and_picks_frames(vox_tree):
    _, items = read_train_list(vox_tree / "train.csv", vox_tree / "audio", vox_tree / "faces")
    train = VoxUtterances([u for u, _ in items], [l for _, l in items], train=True, seconds=1.0, num_frames=2,
                          image_size=32)
    audio, visual, label = train[(0, 5)]
    assert audio.shape == (16000,) and visual.shape == (3, 2, 32, 32) and label == 1
    assert np.array_equal(train[(0, 5)][0], audio) and not np.array_equal(train[(0, 6)][0], audio)
    wave, _ = soundfile.read(items[0][0].wav, dtype="float32")
    centre = VoxUtterances([u for u, _ in items], [0] * 4, train=False, seconds=1.0, image_size=32, crop="centre")
    assert np.allclose(centre[0][0].numpy(), wave[4000:20000], atol=1e-4)  # the centre second
    # The release's test crop: max_frames * 160 + 240 samples from the start (400 frames: 4.015 s).
    release = VoxUtterances([u for u, _ in items], [0] * 4, train=False, seconds=4.015, image_size=32)
    expected = np.concatenate([wave, wave, wave])[:64240]  # shorter utterances wrap around, as numpy's 'wrap' pad
    assert release[0][0].shape == (64240,) and np.allclose(release[0][0].numpy(), expected, atol=1e-4)


def test_test_faces_are_the_releases_third_frame_or_spread_evenly(vox_tree):
    from dataset.visual import read_frames
    from dataset.voxceleb import pick_faces
    assert pick_faces(8, 2, "release") == [2] and pick_faces(2, 2, "release") == [1]
    assert pick_faces(8, 2, "even") == [2, 6]
    _, items = read_train_list(vox_tree / "train.csv", vox_tree / "audio", vox_tree / "faces")
    test = VoxUtterances([items[0][0]], [0], train=False, seconds=1.0, num_frames=2, image_size=40, faces="release")
    frames = sorted(items[0][0].frames.iterdir())
    visual = test[0][1]
    assert visual.shape == (3, 1, 40, 40) and torch.equal(visual[:, 0], read_frames([frames[2]])[0])
    even = VoxUtterances([items[0][0]], [0], train=False, seconds=1.0, num_frames=2, image_size=40, faces="even")
    assert even[0][1].shape == (3, 2, 40, 40)


def test_the_releases_own_trial_lists_read_as_they_are(vox_tree):
    """data/vox/test_pairs.csv (leading slash) and veri_test.csv (no slash) of the MMCosine release."""
    (vox_tree / "test_pairs.csv").write_text("1,/id00012/a1/00001.wav,/id00012/b2/00001.wav\n"
                                             "0,/id00012/a1/00001.wav,/id00003/a1/00001.wav\n")
    (vox_tree / "veri_test.csv").write_text("1,id00003/a1/00001.wav,id00003/b2/00001.wav\n")
    trials, utterances = read_trials(vox_tree / "test_pairs.csv", vox_tree / "audio", vox_tree / "faces")
    assert trials[1] == (0, "/id00012/a1/00001.wav", "/id00003/a1/00001.wav")
    found = utterances["/id00003/a1/00001.wav"]
    assert found.wav == vox_tree / "audio" / "id00003" / "a1" / "00001.wav"
    assert found.frames == vox_tree / "faces" / "id00003" / "a1" / "00001"
    trials, utterances = read_trials(vox_tree / "veri_test.csv", vox_tree / "audio", vox_tree / "faces")
    assert utterances["id00003/b2/00001.wav"].wav == vox_tree / "audio" / "id00003" / "b2" / "00001.wav"
    (vox_tree / "gone.csv").write_text("1,/id00012/a1/00001.wav,/id00077/zz/00009.wav\n")
    with pytest.raises(DataError, match=r"1 utterance\(s\) listed in .*gone.csv .*id00077/zz/00009.wav"):
        read_trials(vox_tree / "gone.csv", vox_tree / "audio", vox_tree / "faces")


def test_crop_wraps_short_utterances():
    assert crop(np.arange(3.0), 7, 0).tolist() == [0, 1, 2, 0, 1, 2, 0]
