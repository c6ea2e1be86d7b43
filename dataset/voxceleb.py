"""VoxCeleb lists and readers (for main_Vox.py).

Train list rows:  <wav path>,<frames dir>,<speaker id>,<frame count>   (paths relative to --audio_root / --visual_root)
Trial list rows:  <0|1>,<utt1>,<utt2>      (VoxCeleb1-O style; an utterance U is audio_root/U(.wav) and
                                            visual_root/U without .wav, a folder of 2-fps face crops)
Speakers are numbered in sorted order of their ids; the class count is the number of speakers.
"""
import csv
from pathlib import Path
from typing import List, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import read_wav
from .errors import DataError
from .visual import frame_transform, list_frames, pick_evenly, read_frames


class Utterance(NamedTuple):
    wav: Path
    frames: Path


def _rows(path: Path, n_columns: int, pattern: str) -> List[List[str]]:
    if not Path(path).is_file():
        raise DataError(f"file not found: {path}. Check the list path")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [[c.strip() for c in row] for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    for line_no, row in enumerate(rows, start=1):
        if len(row) != n_columns:
            raise DataError(f"{path} line {line_no}: expected '{pattern}', got {','.join(row)!r}")
    if not rows:
        raise DataError(f"{path} is empty. Give rows '{pattern}'")
    return rows


def read_train_list(path: Path, audio_root: Path, visual_root: Path):
    """(speaker ids, [(Utterance, speaker index)])."""
    rows = _rows(path, 4, "<wav path>,<frames dir>,<speaker id>,<frame count>")
    for line_no, row in enumerate(rows, start=1):
        if not row[3].isdigit():
            raise DataError(f"{path} line {line_no}: frame count {row[3]!r} is not a whole number")
    speakers = sorted({row[2] for row in rows})
    index = {s: i for i, s in enumerate(speakers)}
    items = [(Utterance(Path(audio_root) / wav, Path(visual_root) / frames), index[spk]) for wav, frames, spk, _ in rows]
    check_present([u for u, _ in items], path)
    return speakers, items


def utterance(key: str, audio_root: Path, visual_root: Path) -> Utterance:
    stem = key[:-4] if key.endswith(".wav") else key
    return Utterance(Path(audio_root) / f"{stem}.wav", Path(visual_root) / stem)


def read_trials(path: Path, audio_root: Path, visual_root: Path):
    """([(label, utt1 key, utt2 key)], {key: Utterance}) with every file checked."""
    rows = _rows(path, 3, "<0|1>,<utt1>,<utt2>")
    trials = []
    for line_no, (label, a, b) in enumerate(rows, start=1):
        if label not in ("0", "1"):
            raise DataError(f"{path} line {line_no}: trial label {label!r} must be 0 or 1")
        trials.append((int(label), a, b))
    keys = sorted({k for _, a, b in trials for k in (a, b)})
    utterances = {k: utterance(k, audio_root, visual_root) for k in keys}
    check_present(list(utterances.values()), path)
    return trials, utterances


def check_present(utterances: Sequence[Utterance], listed_in: Path) -> None:
    missing = [u for u in utterances if not u.wav.is_file() or not u.frames.is_dir()]
    if missing:
        first = ", ".join(str(u.wav if not u.wav.is_file() else u.frames) for u in missing[:3])
        raise DataError(f"{len(missing)} utterance(s) listed in {listed_in} lack a wav or a frames folder "
                        f"(first: {first}). Check --audio_root / --visual_root")


def crop(wave: np.ndarray, n_samples: int, start: int) -> np.ndarray:
    """n_samples from `start`, wrapping around when the utterance is shorter."""
    if len(wave) < n_samples + start:
        wave = np.tile(wave, -(-(n_samples + start) // len(wave)))
    return wave[start:start + n_samples]


class VoxUtterances(Dataset):
    """Items (waveform (N,), frames uint8 (3, T, S, S), label). Training: a random crop of `seconds`
    (seeded per key); evaluation: the centre crop."""

    def __init__(self, utterances: Sequence[Utterance], labels: Sequence[int], train: bool, seconds: float,
                 num_frames: int = 2, image_size: int = 112, sample_rate: int = 16000):
        self.utterances, self.labels = list(utterances), list(labels)
        self.train, self.n_samples, self.num_frames = train, int(seconds * sample_rate), num_frames
        self.transform = frame_transform(train, image_size)
        self.sample_rate = sample_rate

    def __len__(self):
        return len(self.utterances)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        utt = self.utterances[index]
        wave = read_wav(utt.wav, self.sample_rate)
        frames = list_frames(utt.frames)
        if not frames:
            raise DataError(f"no frames in {utt.frames}. Re-extract the faces of this utterance")
        rng = np.random.default_rng(seed)
        spare = max(len(wave) - self.n_samples, 0)
        start = int(rng.integers(0, spare + 1)) if self.train else spare // 2
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.default_generator.manual_seed(seed)
            visual = self.transform(read_frames([frames[i] for i in pick_evenly(len(frames), self.num_frames)]))
        audio = torch.from_numpy(np.ascontiguousarray(crop(wave, self.n_samples, start), dtype=np.float32))
        return audio, visual.transpose(0, 1).contiguous(), self.labels[index]
