"""The audio input each dataset of this line of work uses, one small recipe each. A recipe turns a
clip's wav into what the decode-once cache stores (`features`), and that into the model's input
(`crop`: the random training crop of a recipe that has one, drawn from torch's generator, which the
dataset seeds per sample and epoch; a fixed crop at test time). `signature()` is everything the stored
arrays depend on, so a cache is rebuilt when the recipe changes.

- Spectrogram (CREMA-D, SSW60, AVE): the reference log-spectrogram of dataset/audio.py.
- KaldiFbank (Kinetics-Sounds): OGM-GE's data/KineticSound/process_audio.py.
- LogStftCrop (VGGSound): OGM-GE's dataset/VGGSoundDataset.py.
"""
import math

import numpy as np
import torch
import torchaudio

from .audio import SAMPLE_RATE, audio_features, read_wav


class Spectrogram:
    """Tile x3, cut to `seconds`, clip to [-1, 1], power spectrogram (512 / 353), log, standardised:
    (1, 257, frames); 10 s give AVE's 257 x 1,004 (PMR's Audio-1004-SE)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def features(self, wav_path) -> torch.Tensor:
        return audio_features(wav_path, self.seconds)

    def crop(self, audio: torch.Tensor, train: bool) -> torch.Tensor:
        return audio

    def signature(self) -> dict:
        return {"seconds": self.seconds, "rate": SAMPLE_RATE}  # as before recipes existed: old caches stay valid


# process_audio.py's normalisation constants (the AudioSet statistics of AST)
FBANK_MEAN, FBANK_STD = -4.503877, 5.141276


def kaldi_fbank(wave: torch.Tensor, n_frames: int, mel_bins: int = 128, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """process_audio.py: wave minus its mean, Kaldi fbank (128 mel bins, 25 ms Hanning windows every 10 ms,
    HTK-compatible, no energy, no dither), zero-padded or cut to n_frames, then (x - mean) / (2 std):
    (n_frames, mel_bins)."""
    wave = wave.float().reshape(1, -1)
    fbank = torchaudio.compliance.kaldi.fbank(wave - wave.mean(), htk_compat=True, sample_frequency=sample_rate,
                                              use_energy=False, window_type="hanning", num_mel_bins=mel_bins,
                                              dither=0.0, frame_shift=10)
    if len(fbank) < n_frames:
        fbank = torch.cat([fbank, fbank.new_zeros(n_frames - len(fbank), mel_bins)])
    return (fbank[:n_frames] - FBANK_MEAN) / (FBANK_STD * 2)


class KaldiFbank:
    """Kinetics-Sounds: (1, frames, 128), frames = seconds x 100 (1,024 for their 10.24 s)."""

    def __init__(self, seconds: float = 10.24, mel_bins: int = 128):
        self.n_frames, self.mel_bins = int(round(seconds * 100)), mel_bins

    def features(self, wav_path) -> torch.Tensor:
        return kaldi_fbank(torch.from_numpy(read_wav(wav_path)), self.n_frames, self.mel_bins)[None]

    def crop(self, audio: torch.Tensor, train: bool) -> torch.Tensor:
        return audio

    def signature(self) -> dict:
        return {"recipe": "kaldi_fbank", "frames": self.n_frames, "mel_bins": self.mel_bins, "rate": SAMPLE_RATE}


STFT_FFT, STFT_HOP = 256, 128


def log_stft(wave: torch.Tensor) -> torch.Tensor:
    """log(|STFT| + 1e-7) as librosa.stft(n_fft=256, hop_length=128) computed it then: periodic Hann
    window, centred frames with reflect padding: (129, 1 + N // 128)."""
    spec = torch.stft(wave.double(), STFT_FFT, STFT_HOP, window=torch.hann_window(STFT_FFT, dtype=torch.float64),
                      center=True, pad_mode="reflect", return_complex=True)
    return torch.log(spec.abs() + 1e-7)


class LogStftCrop:
    """VGGSound: the wave tiled by doubling until it lasts 2 x `seconds` (their 10 s), clipped to [-1, 1],
    and the log-magnitude STFT of those 2 x `seconds` stored; the input is a `seconds`-long crop of it
    (their 5 s: 129 x 626), starting anywhere in the first half for training (their random start) and at
    its middle for testing (their test crop is random too). Crops start on the STFT's 8 ms hop grid and
    their edge frames see the neighbouring samples instead of reflect padding: the price of storing the
    spectrogram once instead of computing it per crop."""

    def __init__(self, seconds: float = 5.0):
        self.seconds = seconds
        self.crop_samples = int(round(seconds * SAMPLE_RATE))
        self.crop_frames = 1 + self.crop_samples // STFT_HOP

    def features(self, wav_path) -> torch.Tensor:
        wave = read_wav(wav_path)
        while len(wave) < 2 * self.crop_samples:
            wave = np.tile(wave, 2)
        wave = np.clip(wave[:2 * self.crop_samples], -1.0, 1.0)
        return log_stft(torch.from_numpy(wave)).float()[None]

    def crop(self, audio: torch.Tensor, train: bool) -> torch.Tensor:
        last_start = audio.shape[-1] - self.crop_frames
        start = int(torch.randint(0, last_start + 1, (1,))) if train else math.ceil(last_start / 2)
        return audio[..., start:start + self.crop_frames]

    def signature(self) -> dict:
        return {"recipe": "log_stft_crop", "seconds": self.seconds, "n_fft": STFT_FFT, "hop": STFT_HOP,
                "rate": SAMPLE_RATE}
