"""Class lists and split files (`<clip>,<label>` rows), and a deterministic stratified split."""
import csv
import random
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import DataError
from .text_files import open_list

HEADER_LABELS = {"label", "class", "emotion", "category"}


def read_rows(path: Path) -> List[List[str]]:
    """The non-empty rows of a csv file, cells stripped (a UTF-8 BOM is dropped)."""
    if not path.is_file():
        raise DataError(f"file not found: {path}. Check the path (or the flag that names it)")
    with open_list(path) as fh:
        return [[c.strip() for c in row] for row in csv.reader(fh) if row and any(c.strip() for c in row)]


def drop_header(rows: List[List[str]]) -> List[List[str]]:
    """Split files may start with a header such as `clip,label`."""
    return rows[1:] if rows and len(rows[0]) >= 2 and rows[0][1].lower() in HEADER_LABELS else rows


def split_paths(root: Path, train: Optional[str], test: Optional[str], names: Tuple[str, str],
                shipped: Path) -> Tuple[Path, Path, bool]:
    """(train file, test file, whether they are the shipped pair): the files the flags name (relative to the
    data root), else the data root's default names when either of them is there (then both are the data
    root's, never one of each), else the pair shipped in `shipped`."""
    train_path, test_path = root / (train or names[0]), root / (test or names[1])
    if train is not None or test is not None or train_path.is_file() or test_path.is_file():
        return train_path, test_path, False
    return shipped / names[0], shipped / names[1], True


def read_class_list(path: Path) -> List[str]:
    """One class name per row (first column)."""
    names = [row[0] for row in read_rows(path)]
    if not names:
        raise DataError(f"class list {path} is empty. Put one class name per row")
    if len(set(names)) != len(names):
        raise DataError(f"class list {path} repeats a class name. Keep each class once")
    return names


def read_split(path: Path, classes: Sequence[str]) -> List[Tuple[str, int]]:
    """Rows `<clip>,<label>` -> [(clip, class index)]. A header row is skipped; an unknown label is an error."""
    index = {name: i for i, name in enumerate(classes)}
    rows = drop_header(read_rows(path))
    samples = []
    for line_no, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise DataError(f"{path} row {line_no}: expected '<clip>,<label>', got {','.join(row)!r}")
        clip, label = row[0], row[1]
        if label not in index:
            raise DataError(f"{path} row {line_no}: label {label!r} is not in the class list {list(classes)}. "
                            "Fix the row or pass the matching --class_csv")
        samples.append((clip, index[label]))
    if not samples:
        raise DataError(f"split {path} lists no clips. Give a split file with '<clip>,<label>' rows")
    return samples


def stratified_split(labelled: Dict[str, int], test_fraction: float = 0.1, seed: int = 0):
    """Deterministic per-class split of {clip: label} into (train, test) lists of (clip, label)."""
    by_class = defaultdict(list)
    for clip in sorted(labelled):
        by_class[labelled[clip]].append(clip)
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by_class):
        clips = by_class[label]
        rng.shuffle(clips)
        n_test = max(1, round(len(clips) * test_fraction)) if len(clips) > 1 else 0
        test += [(c, label) for c in sorted(clips[:n_test])]
        train += [(c, label) for c in sorted(clips[n_test:])]
    return train, test


def write_split(path: Path, samples: Sequence[Tuple[str, int]], classes: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows((clip, classes[label]) for clip, label in samples)
