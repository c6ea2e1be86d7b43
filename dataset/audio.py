"""Wav reading and the reference log-spectrogram used in this line of work.

The reference recipe (OGM-GE / MMCosine): tile the wave x3, cut to 3 s, clip to
[-1, 1], scipy.signal.spectrogram(nperseg=512, noverlap=353) — i.e. a Tukey(0.25)
window, per-segment mean removal, one-sided PSD density scaling — then
log(x + 1e-7) and per-sample standardisation. It is re-implemented here in
torch so it can run batched (and on the GPU); tests check it against scipy.
"""
import numpy as np
import soundfile
import torch
import torchaudio.functional as AF
from scipy.signal import windows

from .errors import DataError

SAMPLE_RATE = 16000
N_FFT = 512
NOVERLAP = 353
HOP = N_FFT - NOVERLAP


def read_wav(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 wave at `sample_rate`; a clear DataError for unreadable files."""
    try:
        wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise DataError(f"cannot read wav {path}: {err}. Re-export it as a 16 kHz PCM wav or remove it from the split") from None
    if wave.shape[0] == 0:
        raise DataError(f"wav {path} has no samples. Re-export it or remove it from the split")
    wave = wave.mean(axis=1)
    if rate != sample_rate:
        wave = AF.resample(torch.from_numpy(wave), rate, sample_rate).numpy()
    return wave


def fit_length(wave: np.ndarray, n_samples: int, repeats: int = 3) -> np.ndarray:
    """Tile `repeats` times (more if still short), cut to n_samples, clip to [-1, 1]."""
    reps = max(repeats, -(-n_samples // len(wave)))
    return np.clip(np.tile(wave, reps)[:n_samples], -1.0, 1.0)


# scipy.signal.spectrogram's default window; torch has no Tukey window built in.
_TUKEY = torch.from_numpy(windows.tukey(N_FFT, 0.25, sym=False))


def log_spectrogram(waves: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(..., N) waves -> (..., 257, frames) standardised log power spectrogram."""
    window = _TUKEY.to(device=waves.device, dtype=waves.dtype)
    frames = waves.unfold(-1, N_FFT, HOP)                     # (..., n_frames, 512)
    frames = frames - frames.mean(dim=-1, keepdim=True)       # detrend='constant'
    power = torch.fft.rfft(frames * window, dim=-1).abs().pow(2)
    power = power / (sample_rate * window.pow(2).sum())       # scaling='density'
    power[..., 1:-1] *= 2                                     # one-sided, even n_fft: DC and Nyquist once
    spec = torch.log(power + 1e-7).transpose(-1, -2)
    mean = spec.mean(dim=(-2, -1), keepdim=True)
    std = spec.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (spec - mean) / (std + 1e-9)


def audio_features(path, seconds: float = 3.0, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """The reference per-clip input: (1, 257, frames) float32."""
    wave = fit_length(read_wav(path, sample_rate), int(round(seconds * sample_rate)))
    spec = log_spectrogram(torch.from_numpy(wave.astype(np.float64)), sample_rate)
    return spec.float().unsqueeze(0)
