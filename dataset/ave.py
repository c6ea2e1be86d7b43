"""AVE (Audio-Visual Event, 28 classes) in the layout scripts/prepare_ave.py writes:

DATA_ROOT/trainSet.txt, valSet.txt, testSet.txt   the dataset's own lists (3,339 / 402 / 402 rows)
DATA_ROOT/audio/<VideoID>.wav                    16 kHz mono, the whole 10 s video
DATA_ROOT/frames/<VideoID>/*.jpg                 1 frame per second

List rows are `Category&VideoID&Quality&StartTime&EndTime` (e.g. `Church bell&c---zaDCTaE&good&0&10`).
As PMR's AVEDataset: the classes in the order they first appear in testSet.txt, and a video listed
twice in a split is kept once, with its first label.
"""
from pathlib import Path
from typing import Dict, List, Tuple

from .errors import DataError

LISTS = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}


def read_event_rows(path: Path) -> List[Tuple[str, str]]:
    """[(category, video id)] of an AVE list, in file order."""
    if not path.is_file():
        raise DataError(f"file not found: {path}. Point --data_root at the AVE folder holding {', '.join(LISTS.values())}")
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("&")
        if len(parts) != 5 or not parts[1]:
            raise DataError(f"{path} line {line_no}: expected 'Category&VideoID&Quality&StartTime&EndTime', "
                            f"got {line.strip()!r}")
        rows.append((parts[0], parts[1]))
    if not rows:
        raise DataError(f"{path} lists no videos")
    return rows


def read_ave_lists(root: Path) -> Tuple[List[str], Dict[str, List[Tuple[str, int]]]]:
    """(classes, {"train" | "val" | "test": [(video id, class index)]})."""
    rows = {split: read_event_rows(root / name) for split, name in LISTS.items()}
    classes = list(dict.fromkeys(category for category, _ in rows["test"]))
    index = {name: i for i, name in enumerate(classes)}
    splits = {}
    for split, items in rows.items():
        unknown = sorted({c for c, _ in items} - set(index))
        if unknown:
            raise DataError(f"{root / LISTS[split]} has categories that testSet.txt does not: {', '.join(unknown[:5])}")
        first = {}
        for category, video in items:
            first.setdefault(video, index[category])
        splits[split] = list(first.items())
    return classes, splits
