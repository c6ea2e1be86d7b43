"""Kinetics-Sounds, AVE and VGGSound: the audio recipes against independent computations, the readers on
generated trees in their layouts (and on the shipped Kinetics-Sounds lists' clip names), the entry scripts
end to end on the demo trees, and the cache storing each recipe's features."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from scipy.signal import get_window

import main_AVE
import main_KS
import main_VGG
from conftest import TINY_FLAGS
from dataset import DataError
from dataset.audio_recipes import KaldiFbank, LogStftCrop, Spectrogram, log_stft
from dataset.ave import read_ave_lists
from dataset.demo_layouts import AVE_CATEGORIES, write_ave_demo, write_kinetics_sounds_demo, write_vggsound_demo
from dataset.kinetics_sounds import SHIPPED, load_lists, read_clip_list
from dataset.vggsound import read_vggsound_csv
from utils.caching import attach_caches

SHORT = [*TINY_FLAGS, "--epochs", "1"]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {"ks": write_kinetics_sounds_demo(root / "KineticsSounds", clips_per_class=3, image_size=40),
            "ave": write_ave_demo(root / "AVE", clips_per_class=4, image_size=40),
            "vgg": write_vggsound_demo(root / "VGGSound", clips_per_class=3, image_size=40)}


def tone(path, seconds, rate=16000, seed=0):
    g = np.random.default_rng(seed)
    wave = (0.3 * np.sin(2 * np.pi * 500 * np.arange(int(seconds * rate)) / rate) + g.normal(0, 0.05, int(seconds * rate)))
    soundfile.write(path, wave.astype(np.float32), rate, subtype="FLOAT")
    return wave.astype(np.float32)


# ---- audio recipes
@pytest.mark.parametrize("seconds", [3.0, 12.0])  # padded, cut
def test_kaldi_fbank_is_ogm_ges_process_audio(tmp_path, seconds):
    wave = tone(tmp_path / "a.wav", seconds)
    ours = KaldiFbank(10.24).features(tmp_path / "a.wav")
    # data/KineticSound/process_audio.py, step by step
    waveform = torch.from_numpy(wave)[None]
    waveform = waveform - waveform.mean()
    fbank = torchaudio.compliance.kaldi.fbank(waveform, htk_compat=True, sample_frequency=16000, use_energy=False,
                                              window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    p = 1024 - fbank.shape[0]
    fbank = torch.nn.ZeroPad2d((0, 0, 0, p))(fbank) if p > 0 else fbank[0:1024, :]
    fbank = (fbank - -4.503877) / (5.141276 * 2)
    assert ours.shape == (1, 1024, 128) and torch.allclose(ours[0], fbank, atol=1e-5)


def test_log_stft_is_librosas_centred_reflect_stft():
    wave = np.random.default_rng(1).normal(0, 0.2, 4000)
    padded = np.pad(wave, 128, mode="reflect")
    window = get_window("hann", 256, fftbins=True)
    frames = np.stack([padded[i * 128:i * 128 + 256] * window for i in range(1 + len(wave) // 128)])
    expected = np.log(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-7)
    assert np.allclose(log_stft(torch.from_numpy(wave)).numpy(), expected, atol=1e-9)


def test_vggsound_crop_is_a_5_second_window_of_the_10_second_clip(tmp_path):
    tone(tmp_path / "short.wav", 3.0)  # tiled by doubling: 3 -> 6 -> 12 s, then cut to 10 s
    recipe = LogStftCrop(5.0)
    full = recipe.features(tmp_path / "short.wav")
    assert full.shape == (1, 129, 1251)
    test_crop = recipe.crop(full, train=False)
    assert test_crop.shape == (1, 129, 626) and torch.equal(test_crop, full[..., 313:939])  # the middle
    starts = set()
    for seed in range(30):
        torch.manual_seed(seed)
        crop = recipe.crop(full, train=True)
        starts.add(next(s for s in range(626) if torch.equal(crop, full[..., s:s + 626])))
    assert len(starts) > 20 and min(starts) >= 0 and max(starts) <= 625


def test_the_spectrogram_recipe_keeps_old_caches_valid():
    assert Spectrogram(3.0).signature() == {"seconds": 3.0, "rate": 16000}


# ---- Kinetics-Sounds
def test_shipped_kinetics_sounds_lists_are_ogm_ges(tmp_path):
    train, test, source = load_lists(tmp_path, None, None)
    assert (len(train), len(test)) == (14799, 2597) and "shipped" in source
    assert {label for _, label in train} == set(range(31)) and train[0] == ("--4-0ihtnBU_000058_000068", 4)
    import filecmp
    shared = SHIPPED.parent.parent.parent / "shared" / "data" / "KineticsSounds"
    if shared.is_dir():  # byte copies of the lists and their licence
        for name in ("my_train.txt", "my_test.txt", "LICENSE-OGM-GE"):
            assert filecmp.cmp(SHIPPED / name, shared / name, shallow=False), name


def test_a_tree_with_the_shipped_clip_names_trains_on_what_it_has(tmp_path):
    from dataset.demo_cues import write_clip
    train, test, _ = load_lists(tmp_path, None, None)
    rng = np.random.default_rng(0)
    for clip, label in train[:6] + test[:3]:
        write_clip(tmp_path / "audio" / f"{clip}.wav", tmp_path / "frames" / clip, label % 6, rng, 3, 40)
    args = main_KS.build_parser().parse_args(["--data_root", str(tmp_path), "--skip_missing", "True", *TINY_FLAGS])
    data = main_KS.build_datasets(args, True)
    assert (len(data.train), len(data.test), len(data.classes)) == (6, 3, 31)
    assert "skipped 14793 train clip(s)" in " ".join(data.notes)
    with pytest.raises(DataError, match=r"2594 clip\(s\) of the test split"):
        main_KS.build_datasets(main_KS.build_parser().parse_args(["--data_root", str(tmp_path)]), True)


def test_kinetics_sounds_list_rows_are_checked(tmp_path):
    (tmp_path / "bad.txt").write_text("abc_000001_000011,10,x\n")
    with pytest.raises(DataError, match="row 1: expected"):
        read_clip_list(tmp_path / "bad.txt")


def test_main_ks_trains_and_evaluates_on_its_layout(trees, tmp_path):
    run = tmp_path / "ks"
    main_KS.main(["--train", "--data_root", str(trees["ks"]), "--run_dir", str(run), *SHORT])
    row = json.loads((run / "metrics.jsonl").read_text())
    assert (row["train_count"], row["test_count"]) == (13, 5)  # 3 clips of each of the 6 classes, every 4th for test
    assert torch.load(run / "last.pt", weights_only=True)["model"]["encoders.audio.trunk.0.weight"].shape[1] == 1
    stats = main_KS.main(["--ckpt_path", str(run / "best.pt"), "--no_progress"])
    assert stats["acc"] == pytest.approx(row["test_acc"])


# ---- AVE
def test_ave_reader_orders_classes_by_the_test_list_and_reads_a_video_once(trees):
    classes, splits = read_ave_lists(trees["ave"])
    test_rows = (trees["ave"] / "testSet.txt").read_text().splitlines()
    assert classes == list(dict.fromkeys(r.split("&")[0] for r in test_rows)) and set(classes) == set(AVE_CATEGORIES)
    train_rows = (trees["ave"] / "trainSet.txt").read_text().splitlines()
    assert len(train_rows) == len(splits["train"]) + 1  # the twice-listed video, once
    assert len(splits["val"]) == 6 and len(splits["test"]) == 6


def test_main_ave_picks_best_on_its_validation_list(trees, tmp_path, capsys):
    run = tmp_path / "ave"
    main_AVE.main(["--train", "--data_root", str(trees["ave"]), "--run_dir", str(run), *SHORT, "--epochs", "2"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["best_split"] == "val" and rows[-1]["val_count"] == 6
    chosen = max(rows, key=lambda r: r["val_acc"])
    assert rows[-1]["best_epoch"] == chosen["epoch"]
    with pytest.raises(SystemExit) as exit_info:
        main_AVE.main(["--train", "--data_root", str(trees["ave"]), "--val_split", "0.1", *SHORT])
    assert exit_info.value.code == 2 and "own validation list" in capsys.readouterr().err


# ---- VGGSound
def test_vggsound_reader_sorts_labels_and_pads_starts(trees):
    classes, splits = read_vggsound_csv(trees["vgg"] / "vggsound.csv")
    assert classes == sorted(classes) and len(classes) == 6
    first = (trees["vgg"] / "vggsound.csv").read_text().splitlines()[0].split(",")
    assert (f"{first[0]}_{int(first[1]):06d}", classes.index(first[2])) in splits[first[3]]


def test_main_vgg_stops_on_missing_clips_and_skips_them_on_request(trees, tmp_path, capsys):
    flags = ["--train", "--data_root", str(trees["vgg"]), "--run_dir", str(tmp_path / "vgg"), *SHORT]
    with pytest.raises(SystemExit) as exit_info:
        main_VGG.main(flags)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "12 clip(s) of the train split" in err[0]
    main_VGG.main([*flags, "--skip_missing", "True"])
    assert "--skip_missing: skipped 12 train clip(s)" in capsys.readouterr().out
    assert json.loads((tmp_path / "vgg" / "metrics.jsonl").read_text())["train_count"] == 13


@pytest.mark.parametrize("entry,tree", [(main_KS, "ks"), (main_VGG, "vgg")])
def test_the_cache_stores_each_recipes_features(trees, tmp_path, entry, tree):
    args = entry.build_parser().parse_args(["--data_root", str(trees[tree]), "--skip_missing", "True", *TINY_FLAGS])
    plain, cached = entry.build_datasets(args, True), entry.build_datasets(args, True)
    attach_caches(cached, SimpleNamespace(cache_dir=str(tmp_path / "cache"), cache_frame_size=256, num_workers=0),
                  tree, False)
    for key in [(0, 3), (4, 11)]:
        a1, v1, _ = plain.train[key]
        a2, v2, _ = cached.train[key]
        assert a1.shape == a2.shape and torch.allclose(a1, a2.float(), atol=2e-2) and torch.equal(v1, v2)
    a1, a2 = plain.test[0][0], cached.test[0][0]
    assert torch.allclose(a1, a2.float(), atol=2e-2)  # the same test crop from the stored features
