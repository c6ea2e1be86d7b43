"""CMU-MOSEI (sentiment, three modalities) from the MulT pickles (yaohungt/Multimodal-Transformer, src/dataset.py):

DATA_ROOT/mosei_senti_data_noalign.pkl   unaligned (BalanceBenchmark's choice, the default; --aligned False)
DATA_ROOT/mosei_senti_data.pkl           word-aligned (--aligned True)

Each is a pickled dict: d[split] for split in train / valid / test, each a dict of numpy arrays
  text   (N, L_t, 300)  GloVe word vectors
  audio  (N, L_a, 74)   COVAREP frames (may hold -inf: set to 0, as MulT and BalanceBenchmark do)
  vision (N, L_v, 35)   Facet frames
  labels (N, 1, 1)      sentiment in [-3, 3]
and optionally `id` (ignored). L is 50 for every modality in the aligned file; the unaligned file's audio and
vision are longer (500 in the common copies). Items are (text, audio, vision, label): float32 (L, D) tensors and the
class index of the label mode (--labels):
  binary_bb    BalanceBenchmark (Mosei_dataset.py acc2): y < 0 -> negative, else positive (zero counts positive)
  binary_mult  MulT's binary metric (src/eval_metrics.py, exclude_zero): y > 0 vs y < 0, zero-sentiment samples left out
  seven        MulT's 7-class metric: round(clip(y, -3, 3)) + 3 (numpy's round: halves to even)
The valid split is the validation set (best.pt is chosen on it).
"""
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .modalities import Modality

FILES = {False: "mosei_senti_data_noalign.pkl", True: "mosei_senti_data.pkl"}
SPLITS = ("train", "valid", "test")
FEATURE_DIMS = {"text": 300, "audio": 74, "vision": 35}  # GloVe, COVAREP, Facet (BalanceBenchmark dataset_config.yaml)


def sequence_input(x: torch.Tensor) -> torch.Tensor:
    return x.float()


# Tags are the names: the audio-visual scripts' "a" / "v" stand for audio / visual in tables and plots.
TEXT = Modality("text", "text", sequence_input)
SPEECH = Modality("audio", "audio", sequence_input)
VISION = Modality("vision", "vision", sequence_input)
MOSEI_MODALITIES = (TEXT, SPEECH, VISION)


@dataclass(frozen=True)
class LabelMode:
    classes: List[str]
    to_class: Callable[[np.ndarray], np.ndarray]  # sentiment (N,) -> class index (N,), -1 for a sample left out
    describe: str


def _binary_bb(y):
    return np.where(y < 0, 0, 1)


def _binary_mult(y):
    return np.where(y > 0, 1, np.where(y < 0, 0, -1))


def _seven(y):
    return (np.round(np.clip(y, -3, 3)) + 3).astype(np.int64)


LABEL_MODES: Dict[str, LabelMode] = {
    "binary_bb": LabelMode(["negative", "non-negative"], _binary_bb,
                           "binary as BalanceBenchmark: y < 0 negative, y >= 0 positive (zero counts positive)"),
    "binary_mult": LabelMode(["negative", "positive"], _binary_mult,
                             "binary as MulT's metric: y < 0 vs y > 0, zero-sentiment samples left out"),
    "seven": LabelMode(["-3", "-2", "-1", "0", "+1", "+2", "+3"], _seven,
                       "7 classes as MulT's metric: round(clip(y, -3, 3)) + 3"),
}


def pickle_path(root: Path, aligned: bool) -> Path:
    path = Path(root) / FILES[aligned]
    if not path.is_file():
        other = Path(root) / FILES[not aligned]
        hint = f" ({other.name} is there: pass --aligned {not aligned} to read it)" if other.is_file() else ""
        kind = "word-aligned" if aligned else "unaligned"
        raise DataError(f"{path} not found: put MulT's {kind} CMU-MOSEI pickle {path.name} in {Path(root)}{hint}")
    return path


def load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError, TypeError) as err:
        raise DataError(f"{path} cannot be read as a pickle ({type(err).__name__}: {str(err)[:80]}): "
                        "download MulT's CMU-MOSEI pickle again") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a {type(data).__name__}, not MulT's dict of train / valid / test splits")
    return data


def check_split(path: Path, data: dict, split: str) -> Dict[str, np.ndarray]:
    """The split's four arrays, after checking keys, shapes and sizes; one DataError line naming file and key."""
    expected = "text (N, L, 300), audio (N, L, 74), vision (N, L, 35), labels (N, 1, 1)"
    if split not in data:
        raise DataError(f"{path} has no '{split}' split (it has {sorted(map(str, data))[:6]}): expected MulT's "
                        f"CMU-MOSEI pickle, d[split] for split in {', '.join(SPLITS)}")
    part = data[split]
    if not isinstance(part, dict):
        raise DataError(f"{path} ['{split}'] is a {type(part).__name__}: expected a dict of {expected}")
    arrays = {}
    for key in (*FEATURE_DIMS, "labels"):
        if key not in part:
            raise DataError(f"{path} ['{split}'] has no '{key}' key (it has {sorted(map(str, part))[:8]}): expected "
                            f"MulT's keys {expected} (MMSA's aligned_50.pkl / unaligned_50.pkl name them otherwise)")
        try:
            arrays[key] = np.asarray(part[key], dtype=np.float32)
        except (TypeError, ValueError):
            raise DataError(f"{path} ['{split}']['{key}'] is not a numeric array: expected {expected}") from None
    n = arrays["labels"].shape[0] if arrays["labels"].ndim else 0
    for key, dim in FEATURE_DIMS.items():
        shape = arrays[key].shape
        if len(shape) != 3 or shape[2] != dim or shape[1] < 1:
            raise DataError(f"{path} ['{split}']['{key}'] has shape {shape}: expected (N, L, {dim}) (CMU-MOSEI's "
                            f"{key} features; another dataset's pickle?)")
    if arrays["labels"].shape[1:] != (1, 1):
        raise DataError(f"{path} ['{split}']['labels'] has shape {arrays['labels'].shape}: expected (N, 1, 1) "
                        "sentiment scores in [-3, 3] (CMU-MOSEI's; IEMOCAP's pickle has (N, 4, 2))")
    sizes = {key: a.shape[0] for key, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise DataError(f"{path} ['{split}'] holds different numbers of samples per key "
                        f"({', '.join(f'{k} {v}' for k, v in sizes.items())}): expected one N for all four")
    if n == 0:
        raise DataError(f"{path} ['{split}'] holds no samples")
    return arrays


def fix_non_finite(path: Path, split: str, arrays: Dict[str, np.ndarray], zero_nonfinite: bool) -> List[str]:
    """Audio -inf -> 0 (MulT). Any other NaN / inf is refused in one line, or with zero_nonfinite set to 0 and noted."""
    arrays["audio"][arrays["audio"] == -np.inf] = 0
    notes = []
    for key, a in arrays.items():
        bad = ~np.isfinite(a)
        count = int(bad.sum())
        if not count:
            continue
        if key == "labels" or not zero_nonfinite:
            fix = "" if key == "labels" else " (or pass --zero_nonfinite True to set them to 0)"
            raise DataError(f"{path} ['{split}']['{key}'] holds {count} NaN or infinite value(s) besides audio's -inf, "
                            f"which MulT sets to 0: check the file{fix}")
        a[bad] = 0
        notes.append(f"--zero_nonfinite: set {count} NaN / infinite {key} value(s) of the {split} split to 0")
    return notes


class MoseiSplit(Dataset):
    """One split: items (text (L_t, 300), audio (L_a, 74), vision (L_v, 35), class index), float32 features.
    Keys may be (index, seed) pairs as the other datasets' (nothing here is random)."""

    def __init__(self, arrays: Dict[str, np.ndarray], mode: LabelMode, split_name: str):
        sentiment = arrays["labels"].reshape(-1)
        classes = mode.to_class(sentiment)
        kept = np.flatnonzero(classes >= 0)
        self.split_name, self.n_left_out = split_name, len(classes) - len(kept)
        whole = len(kept) == len(classes)
        self.features = [torch.from_numpy(np.ascontiguousarray(arrays[m] if whole else arrays[m][kept]))
                         for m in FEATURE_DIMS]
        self.sentiment = torch.from_numpy(sentiment[kept].copy())
        self._labels = [int(c) for c in classes[kept]]
        if not self._labels:
            raise DataError(f"the {split_name} split has no samples left with these labels")

    @property
    def labels(self) -> List[int]:
        return self._labels

    def evaluation_view(self) -> "MoseiSplit":
        return self  # no augmentation

    def lengths(self) -> Sequence[int]:
        return [f.shape[1] for f in self.features]

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        return (*(f[index] for f in self.features), self._labels[index])


def load_mosei(root, aligned: bool, label_mode: str, zero_nonfinite: bool = False,
               splits: Sequence[str] = SPLITS) -> Dict[str, object]:
    """{split: MoseiSplit} for the asked splits, plus "notes" (what was read, the class counts, anything changed).
    Every split of the file is checked, also those not asked for."""
    path = pickle_path(root, aligned)
    data = load_pickle(path)
    mode = LABEL_MODES[label_mode]
    checked = {split: check_split(path, data, split) for split in SPLITS}
    del data
    notes: List[str] = []
    out: Dict[str, object] = {}
    for split in splits:
        notes += fix_non_finite(path, split, checked[split], zero_nonfinite)
        out[split] = MoseiSplit(checked[split], mode, split)
    first = out[splits[0]]
    lengths = ", ".join(f"{m} {n}" for m, n in zip(FEATURE_DIMS, first.lengths()))
    counts = []
    for split in splits:
        dataset = out[split]
        per_class = np.bincount(dataset.labels, minlength=len(mode.classes))
        left = f", {dataset.n_left_out} zero-sentiment left out" if dataset.n_left_out else ""
        counts.append(f"{split} {len(dataset)} ({' / '.join(map(str, per_class))}{left})")
    notes.insert(0, f"CMU-MOSEI: {path} ({'aligned' if aligned else 'unaligned'}, lengths {lengths}); labels "
                    f"{label_mode}: {mode.describe}; samples per class {' / '.join(mode.classes)}: {'; '.join(counts)}")
    out["notes"] = notes
    return out


def class_names(label_mode: str) -> List[str]:
    return list(LABEL_MODES[label_mode].classes)

