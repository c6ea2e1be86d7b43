"""A small demo set in the format main_MOSEI.py reads (dataset/mosei.py): MulT's two pickles,
mosei_senti_data_noalign.pkl and mosei_senti_data.pkl, each d[split] for train / valid / test with text (N, L, 300),
audio (N, L, 74), vision (N, L, 35), labels (N, 1, 1) in [-3, 3] and id (N, 3), as float32 arrays.

Sentiment y takes MOSEI's values (means of three ratings: multiples of 1/3 in [-3, 3]), with about one sample in seven
exactly 0 (so binary_bb, which counts it positive, and binary_mult, which leaves it out, differ). Cues, deterministic
in the seed, of different strengths as in the real set, where text leads:
- text: every word vector is noise plus 0.5 * y on its first 20 dimensions (sign and strength of the sentiment);
- audio: noise plus 0.4 * sign(y) on its first 10 dimensions (the sign only), and about 3% of the values of its last
  14 dimensions -inf (as COVAREP's in the real pickles; the reader sets them to 0, as MulT);
- vision: noise plus 0.25 * sign(y) on its first 5 dimensions (the weakest cue).
The unaligned file has text_len words and text_len * window audio / vision frames; the aligned file averages each
word's window of frames, so every modality has text_len steps (the real files: 50 aligned; 50 / 500 / 500 unaligned).
"""
import pickle
from pathlib import Path

import numpy as np

from .mosei import FEATURE_DIMS, FILES

SPLIT_FRACTIONS = {"train": 1.0, "valid": 1 / 3, "test": 1 / 2}  # of n_train


def sentiments(n: int, rng: np.random.Generator) -> np.ndarray:
    y = rng.integers(-9, 10, size=n) / 3.0
    y[rng.random(n) < 1 / 7] = 0.0
    return y.astype(np.float32)


def synth_split(n: int, text_len: int, frames: int, rng: np.random.Generator, offset: int) -> dict:
    y = sentiments(n, rng)
    sign = np.sign(y)[:, None, None]
    text = rng.normal(size=(n, text_len, FEATURE_DIMS["text"])).astype(np.float32)
    text[:, :, :20] += 0.5 * y[:, None, None]
    audio = rng.normal(size=(n, frames, FEATURE_DIMS["audio"])).astype(np.float32)
    audio[:, :, :10] += 0.4 * sign
    holes = rng.random((n, frames, 14)) < 0.03
    audio[:, :, -14:][holes] = -np.inf
    vision = rng.normal(size=(n, frames, FEATURE_DIMS["vision"])).astype(np.float32)
    vision[:, :, :5] += 0.25 * sign
    ids = np.array([[f"demo{offset + i:05d}", f"{i % 7}", f"{i % 7 + 1}"] for i in range(n)])
    return {"text": text, "audio": audio, "vision": vision, "labels": y.reshape(n, 1, 1), "id": ids}


def aligned_copy(split: dict, text_len: int, window: int) -> dict:
    """Each word's window of audio / vision frames averaged (a -inf in a window stays -inf, as a mean does)."""
    def pool(x):
        n, _, d = x.shape
        with np.errstate(invalid="ignore"):
            return x.reshape(n, text_len, window, d).mean(axis=2).astype(np.float32)
    return {**split, "audio": pool(split["audio"]), "vision": pool(split["vision"])}


def write_mosei_demo(out: Path, n_train: int = 120, seed: int = 0, text_len: int = 8, window: int = 3) -> Path:
    """Write both pickles under `out` and return it. Same seed, same bytes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    unaligned, offset = {}, 0
    for split, fraction in SPLIT_FRACTIONS.items():
        n = max(4, round(n_train * fraction))
        unaligned[split] = synth_split(n, text_len, text_len * window, rng, offset)
        offset += n
    aligned = {split: aligned_copy(part, text_len, window) for split, part in unaligned.items()}
    for is_aligned, data in ((False, unaligned), (True, aligned)):
        with open(out / FILES[is_aligned], "wb") as fh:
            pickle.dump(data, fh, protocol=4)
    return out
