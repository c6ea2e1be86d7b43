"""VoxCeleb lists and readers (for main_Vox.py).

Train list rows:  <wav path>,<frames dir>,<speaker id>,<frame count>   (paths relative to --audio_root / --visual_root)
Trial list rows:  <0|1>,<utt1>,<utt2>      (VoxCeleb1-O style; an utterance U is audio_root/U(.wav) and
                                            visual_root/U without .wav, a folder of 2-fps face crops; a
                                            leading slash is ignored, so the release's test_pairs.csv and
                                            veri_test.csv and the official space-separated veri_test2.txt
                                            read as they are)
Speakers are numbered in sorted order of their ids; the class count is the number of speakers.
"""
import copy
import csv
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import read_wav
from .errors import DataError
from .frame_picks import pick_evenly
from .text_files import open_list
from .visual import frame_transform, list_frames, read_frames


class Utterance(NamedTuple):
    wav: Path
    frames: Path


def _rows(path: Path, n_columns: int, pattern: str) -> List[List[str]]:
    if not Path(path).is_file():
        raise DataError(f"file not found: {path}. Check the list path")
    with open_list(path) as fh:
        lines = [line for line in fh.read().splitlines() if line.strip()]
    # Comma-separated as the lists; lines without a comma split on white space (the official lists).
    rows = [[c.strip() for c in next(csv.reader([line]))] if "," in line else line.split() for line in lines]
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
    """A trial list's utterance under the two roots. The release's lists name them with a leading
    slash and the .wav suffix (`/id00017/Nd3m-TBtp6A/00037.wav`) or without the slash; both map to
    audio_root/id00017/Nd3m-TBtp6A/00037.wav and the faces folder visual_root/id00017/Nd3m-TBtp6A/00037."""
    stem = key.lstrip("/")
    stem = stem[:-4] if stem.endswith(".wav") else stem
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


EVAL_CROPS = ("start", "centre")
FACE_PICKS = ("release", "even")
RELEASE_TEST_FACE = 2  # the release's test loaders read <utterance>/0000002.png: the third 2-fps frame


def pick_faces(n_available: int, n_wanted: int, rule: str) -> List[int]:
    """Which face crops of an utterance to use: `even` spreads n_wanted over the utterance; `release`
    takes the third one alone (the last, if there are fewer), as main_vox2.py's test loaders."""
    if rule == "release":
        return [min(RELEASE_TEST_FACE, n_available - 1)]
    return pick_evenly(n_available, n_wanted)


class VoxUtterances(Dataset):
    """Items (waveform (N,), frames uint8 (3, T, S, S), label). Training: a random crop of `seconds`
    (seeded per key) and `num_frames` faces spread evenly; evaluation: the crop from the start (the
    release) or the centre, and the faces `faces` picks (see pick_faces)."""

    def __init__(self, utterances: Sequence[Utterance], labels: Sequence[int], train: bool, seconds: float,
                 num_frames: int = 2, image_size: int = 112, sample_rate: int = 16000, crop: str = "start",
                 faces: str = "even"):
        self.utterances, self.labels = list(utterances), list(labels)
        self.train, self.n_samples, self.num_frames = train, int(round(seconds * sample_rate)), num_frames
        self.transform = frame_transform(train, image_size)
        self.sample_rate, self.crop, self.faces = sample_rate, crop, "even" if train else faces

    def faces_of(self, utt: Utterance) -> List[Path]:
        """The face crops of an utterance this set reads (its folder listed, then `faces` picks)."""
        frames = list_frames(utt.frames) if utt.frames.is_dir() else []
        if not frames:
            raise DataError(f"no frames in {utt.frames}. Re-extract the faces of this utterance")
        return [frames[i] for i in pick_faces(len(frames), self.num_frames, self.faces)]

    def readable_files(self) -> List[Path]:
        """Every wav and every face crop this set reads."""
        return [f for utt in self.utterances for f in (utt.wav, *self.faces_of(utt))]

    def evaluation_view(self) -> "VoxUtterances":
        """The same utterances read as at test time (fixed crop, no augmentation)."""
        view = copy.copy(self)
        view.train, view.transform = False, self.transform.for_evaluation()
        return view

    def __len__(self):
        return len(self.utterances)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        utt = self.utterances[index]
        wave = read_wav(utt.wav, self.sample_rate)
        faces = self.faces_of(utt)
        rng = np.random.default_rng(seed)
        spare = max(len(wave) - self.n_samples, 0)
        start = int(rng.integers(0, spare + 1)) if self.train else (0 if self.crop == "start" else spare // 2)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.default_generator.manual_seed(seed)
            visual = self.transform(read_frames(faces))
        audio = torch.from_numpy(np.ascontiguousarray(crop(wave, self.n_samples, start), dtype=np.float32))
        return audio, visual.transpose(0, 1).contiguous(), self.labels[index]


def list_name(path: Path) -> str:
    """A trial list's name in statistics keys: its file stem, lower case, [a-z0-9_] only."""
    return re.sub(r"[^a-z0-9_]+", "_", Path(path).stem.lower()).strip("_") or "trials"


class TrialSet(Dataset):
    """The unique utterances of one or more trial lists, embedded once and scored per list.
    Items are (waveform, frames, position): the third field is the utterance's row in `keys`,
    not a speaker (test speakers are not training classes)."""

    def __init__(self, lists: Dict[str, List[Tuple[int, str, str]]], utterances: Dict[str, Utterance],
                 seconds: float, num_frames: int, image_size: int, crop: str = "start", faces: str = "release"):
        self.lists = lists
        self.keys = sorted(utterances)
        self.row = {k: i for i, k in enumerate(self.keys)}
        self.utterances = VoxUtterances([utterances[k] for k in self.keys], list(range(len(self.keys))),
                                        train=False, seconds=seconds, num_frames=num_frames, image_size=image_size,
                                        crop=crop, faces=faces)

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, key):
        return self.utterances[key]

    def readable_files(self) -> List[Path]:
        return self.utterances.readable_files()

    def pairs(self, name: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, rows of the first utterances, rows of the second) of one list."""
        trials = self.lists[name]
        return (np.array([t[0] for t in trials]), np.array([self.row[t[1]] for t in trials]),
                np.array([self.row[t[2]] for t in trials]))


def read_trial_lists(paths: Sequence[Path], audio_root: Path, visual_root: Path, seconds: float,
                     num_frames: int, image_size: int, crop: str = "start", faces: str = "release") -> TrialSet:
    lists, utterances = {}, {}
    for path in paths:
        name = list_name(path)
        if name in lists:
            raise DataError(f"two trial lists are both named {name!r} ({path}); rename one of the files")
        lists[name], found = read_trials(path, audio_root, visual_root)
        utterances.update(found)
    return TrialSet(lists, utterances, seconds, num_frames, image_size, crop, faces)
