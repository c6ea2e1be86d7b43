"""CREMA-D reader for the real on-disk layout.

DATA_ROOT/AudioWAV/<clip>.wav                   16 kHz mono speech
DATA_ROOT/<frames_dir>/<clip>/*.jpg             a folder of frames per clip (e.g. Image-01-FPS), or
DATA_ROOT/<frames_dir>/<clip>.jpg               one image per clip
DATA_ROOT/train.csv, test.csv                   rows `<clip>,<label>` (optional: without them the paper's
                                                6,698 / 744 lists shipped in data/CREMA-D/ are used)
DATA_ROOT/stat.csv                              class list, one name per row (may start with a BOM)

Clip names are `ActorID_Sentence_Emotion_Level`, e.g. 1088_IOM_NEU_XX.
"""
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple

from .clips import AVClipDataset
from .errors import DataError
from .splits import read_class_list, read_split, split_paths, stratified_split

EMOTIONS = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
SHIPPED = Path(__file__).resolve().parent.parent / "data" / "CREMA-D"  # the paper's split (OGM-GE, MIT licence)
SHIPPED_CLASS_LIST = SHIPPED / "stat.csv"
DEFAULT_FRAME_DIRS = ("Image-01-FPS", "image")


class Split(NamedTuple):
    train: List[Tuple[str, int]]
    test: List[Tuple[str, int]]
    source: str   # which split this is, for the run's log and its error messages


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


def load_splits(data_root: Path, classes: Sequence[str], train_csv: Optional[str], test_csv: Optional[str],
                generate: bool = False) -> Split:
    """The split files named by the flags, else train.csv / test.csv in the data root, else the
    paper's split shipped in data/CREMA-D/; with `generate`, a deterministic stratified 90/10
    split of the wav files found instead."""
    if generate:
        if train_csv is not None or test_csv is not None:
            raise DataError("--generate_split True makes its own split: drop --train_csv / --test_csv, or drop it")
        return Split(*_generated_split(data_root, classes), "a stratified 90/10 split made by --generate_split")
    train_path, test_path, shipped = split_paths(data_root, train_csv, test_csv, ("train.csv", "test.csv"), SHIPPED)
    source = "the paper's, shipped in data/CREMA-D" if shipped else f"{train_path} / {test_path}"
    return Split(read_split(train_path, classes), read_split(test_path, classes), source)


def _generated_split(data_root: Path, classes: Sequence[str]):
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
    return stratified_split(labelled, test_fraction=0.1, seed=0)


class CremadDataset(AVClipDataset):
    """CREMA-D clips: audio from DATA_ROOT/AudioWAV/<clip>.wav, frames from `frames_dir`."""

    def __init__(self, data_root, samples: Sequence[Tuple[str, int]], frames_dir: Path, train: bool, **kw):
        super().__init__(Path(data_root) / "AudioWAV", frames_dir, samples, train, **kw)
