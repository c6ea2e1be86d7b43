"""CREMA-D reader for the real on-disk layout.

DATA_ROOT/AudioWAV/<clip>.wav                   16 kHz mono speech
DATA_ROOT/<frames_dir>/<clip>/*.jpg             a folder of frames per clip (e.g. Image-01-FPS), or
DATA_ROOT/<frames_dir>/<clip>.jpg               one image per clip
DATA_ROOT/train.csv, test.csv                   rows `<clip>,<label>` (the fixed 6,698 / 744 lists)
DATA_ROOT/stat.csv                              class list, one name per row (may start with a BOM)

Clip names are `ActorID_Sentence_Emotion_Level`, e.g. 1088_IOM_NEU_XX.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from .audio import SAMPLE_RATE, audio_features
from .cache import file_stamp
from .errors import DataError
from .splits import read_class_list, read_split, stratified_split
from .visual import IMAGE_SUFFIXES, frame_transform, list_frames, pick_evenly, read_frames

EMOTIONS = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
SHIPPED_CLASS_LIST = Path(__file__).resolve().parent.parent / "data" / "CREMA-D" / "stat.csv"
DEFAULT_FRAME_DIRS = ("Image-01-FPS", "image")


def resolve_frames_dir(data_root: Path, frames_dir: Optional[str]) -> Path:
    if frames_dir is not None:
        path = data_root / frames_dir
        if not path.is_dir():
            raise DataError(f"frames folder not found: {path}. Extract frames there (scripts/prepare_cremad_frames.py) "
                            "or pass --frames_dir")
        return path
    for name in DEFAULT_FRAME_DIRS:
        if (data_root / name).is_dir():
            return data_root / name
    raise DataError(f"no frames folder in {data_root} (looked for {', '.join(DEFAULT_FRAME_DIRS)}). "
                    "Extract frames (scripts/prepare_cremad_frames.py) or pass --frames_dir")


def resolve_class_list(data_root: Path, class_csv: Optional[str]) -> List[str]:
    """--class_csv (relative to the data root, or absolute); else DATA_ROOT/stat.csv; else the shipped list."""
    if class_csv is not None:
        return read_class_list(data_root / class_csv)
    default = data_root / "stat.csv"
    return read_class_list(default if default.is_file() else SHIPPED_CLASS_LIST)


def load_splits(data_root: Path, classes: Sequence[str], train_csv: Optional[str], test_csv: Optional[str]):
    """(train, test, generated): the split files if present, else a deterministic stratified 90/10 split."""
    train_path = data_root / (train_csv or "train.csv")
    test_path = data_root / (test_csv or "test.csv")
    given = [p for p, flag in ((train_path, train_csv), (test_path, test_csv)) if flag is not None or p.is_file()]
    if given:
        return read_split(train_path, classes), read_split(test_path, classes), False
    audio_dir = data_root / "AudioWAV"
    if not audio_dir.is_dir():
        raise DataError(f"no AudioWAV folder in {data_root}. Point --data_root at the CREMA-D folder")
    index = {name: i for i, name in enumerate(classes)}
    labelled = {}
    for wav in sorted(audio_dir.glob("*.wav")):
        parts = wav.stem.split("_")
        if len(parts) < 3 or parts[2] not in index:
            raise DataError(f"{wav}: cannot read an emotion in {list(classes)} from its name "
                            "(expected ActorID_Sentence_Emotion_Level). Rename it or give --train_csv/--test_csv")
        labelled[wav.stem] = index[parts[2]]
    if not labelled:
        raise DataError(f"no .wav files in {audio_dir}. Point --data_root at the CREMA-D folder")
    train, test = stratified_split(labelled, test_fraction=0.1, seed=0)
    return train, test, True


class CremadDataset(Dataset):
    """Items are (audio (1, 257, frames) float, visual (3, T, S, S) uint8, label).
    Keys are (index, augmentation seed). With `cache` set, decoded inputs come from it."""

    def __init__(self, data_root, samples: Sequence[Tuple[str, int]], frames_dir: Path, train: bool,
                 image_size: int = 224, num_frames: int = 1, audio_seconds: float = 3.0,
                 skip_missing: bool = False, split_name: str = "split"):
        self.data_root = Path(data_root)
        self.audio_dir = self.data_root / "AudioWAV"
        self.frames_dir = Path(frames_dir)
        self.num_frames = num_frames
        self.audio_seconds = audio_seconds
        self.transform = frame_transform(train, image_size)
        self.cache = None
        self.items, missing = [], []
        for clip, label in samples:
            wav = self.audio_dir / f"{clip}.wav"
            frames = self._frame_paths(clip)
            if not wav.is_file() or not frames:
                missing.append(clip)
                continue
            self.items.append((clip, label, wav, frames))
        self.n_skipped = len(missing)
        if missing and not skip_missing:
            raise DataError(f"{len(missing)} clip(s) of the {split_name} split lack a wav in {self.audio_dir} or frames in "
                            f"{self.frames_dir} (first: {', '.join(missing[:5])}). Fix the data, or pass "
                            "--skip_missing True to train without them")
        if not self.items:
            raise DataError(f"the {split_name} split has no usable clips. Check --data_root and the split file")

    def _frame_paths(self, clip: str) -> List[Path]:
        folder = self.frames_dir / clip
        if folder.is_dir():
            frames = list_frames(folder)
            return [frames[i] for i in pick_evenly(len(frames), self.num_frames)] if frames else []
        for suffix in IMAGE_SUFFIXES:
            single = self.frames_dir / f"{clip}{suffix}"
            if single.is_file():
                return [single] * self.num_frames
        return []

    @property
    def labels(self) -> List[int]:
        return [label for _, label, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def decode(self, index: int):
        """The clip's spectrogram (1, 257, frames) float32 and its frames (T, 3, H, W) uint8."""
        _, _, wav, frames = self.items[index]
        return audio_features(wav, self.audio_seconds), read_frames(frames)

    def cache_signature(self) -> dict:
        """Everything decode() depends on (see dataset/cache.py)."""
        return {"audio": {"seconds": self.audio_seconds, "rate": SAMPLE_RATE},
                "items": [[clip, file_stamp(wav), [file_stamp(f) for f in frames]]
                          for clip, _, wav, frames in self.items]}

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        audio, frames = self.cache.get(index) if self.cache is not None else self.decode(index)
        with torch.random.fork_rng(devices=[]):
            # A per-(epoch, sample) seed makes augmentation independent of workers, ranks and resumes.
            if seed is not None:
                # The CPU generator alone: torch.manual_seed would also queue CUDA seeding (~0.4 ms a call).
                torch.default_generator.manual_seed(seed)
            visual = self.transform(frames)  # (T, 3, S, S) uint8
        return audio, visual.transpose(0, 1).contiguous(), self.items[index][1]
