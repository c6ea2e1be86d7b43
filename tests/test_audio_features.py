"""The torch spectrogram against scipy.signal.spectrogram, and the wav reader."""
import numpy as np
import pytest
import soundfile
import torch
from scipy import signal

from dataset.audio import audio_features, fit_length, log_spectrogram, read_wav
from dataset.errors import DataError


def reference_features(wave, rate=16000, n_samples=48000):
    """The original recipe written with scipy: tile x3, cut, clip, spectrogram, log, standardise."""
    x = np.tile(wave, 3)[:n_samples]
    x = np.clip(x, -1.0, 1.0)
    _, _, spec = signal.spectrogram(x, rate, nperseg=512, noverlap=353)
    spec = np.log(spec + 1e-7)
    return (spec - spec.mean()) / (spec.std() + 1e-9)


def test_spectrogram_matches_scipy_on_the_same_wave(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(20000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * rng.normal(size=t.size)).astype(np.float32)
    wave[100:200] = 1.7  # out-of-range samples exercise the clipping
    path = tmp_path / "clip.wav"
    soundfile.write(path, wave, 16000, subtype="FLOAT")
    ours = audio_features(path).numpy()[0]
    ref = reference_features(wave.astype(np.float64))
    assert ours.shape == ref.shape == (257, 299)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_batched_spectrogram_equals_per_wave():
    rng = np.random.default_rng(1)
    waves = torch.from_numpy(rng.uniform(-1, 1, (3, 16000)))
    batched = log_spectrogram(waves)
    for i in range(3):
        assert torch.allclose(batched[i], log_spectrogram(waves[i]), atol=1e-10)


def test_short_waves_are_tiled_to_length():
    wave = np.arange(5, dtype=np.float32) / 10
    out = fit_length(wave, 12)
    assert out.tolist() == pytest.approx(np.tile(wave, 3)[:12].tolist())
    assert len(fit_length(wave, 40)) == 40  # more than 3 repeats when 3 are not enough


def test_stereo_and_other_rates_become_16k_mono(tmp_path):
    stereo = np.stack([np.ones(8000), np.zeros(8000)], axis=1).astype(np.float32) * 0.5
    soundfile.write(tmp_path / "s.wav", stereo, 8000)
    wave = read_wav(tmp_path / "s.wav")
    assert wave.ndim == 1 and abs(len(wave) - 16000) <= 1
    assert np.median(wave) == pytest.approx(0.25, abs=1e-3)


def test_corrupt_wav_names_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00not really a wav")
    with pytest.raises(DataError, match="broken.wav"):
        read_wav(bad)
