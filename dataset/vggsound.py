"""VGGSound in the layout scripts/prepare_vggsound.py writes:

DATA_ROOT/vggsound.csv                       the official list, rows `youtube id,start seconds,label,split`
                                             (split train or test, no header)
DATA_ROOT/audio/<youtube id>_<start>.wav     16 kHz mono; <start> zero-padded to 6 digits (000030), as the
DATA_ROOT/frames/<youtube id>_<start>/*.jpg  distributed videos are named; 1 frame per second

The classes are the sorted labels of the csv. Many VGGSound videos are gone from YouTube, so clips missing
on disk are the usual: one error with the count, or --skip_missing True to train on what is there.
"""
import csv
from pathlib import Path
from typing import Dict, List, Tuple

from .errors import DataError
from .text_files import open_list

SPLITS = ("train", "test")


def clip_name(youtube_id: str, start: str) -> str:
    return f"{youtube_id}_{int(start):06d}"


def read_vggsound_csv(path: Path) -> Tuple[List[str], Dict[str, List[Tuple[str, int]]]]:
    """(sorted labels, {"train" | "test": [(clip, class index)]}) from vggsound.csv."""
    if not path.is_file():
        raise DataError(f"file not found: {path}. Put the official vggsound.csv in --data_root (or pass --csv)")
    rows = []
    with open_list(path) as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row or not any(c.strip() for c in row):
                continue
            row = [c.strip() for c in row]
            if len(row) != 4 or not row[1].isdigit() or row[3] not in SPLITS:
                raise DataError(f"{path} line {line_no}: expected 'youtube id,start seconds,label,train|test', "
                                f"got {','.join(row)!r}")
            rows.append((clip_name(row[0], row[1]), row[2], row[3]))
    classes = sorted({label for _, label, _ in rows})
    index = {label: i for i, label in enumerate(classes)}
    splits = {split: [(clip, index[label]) for clip, label, s in rows if s == split] for split in SPLITS}
    for split, items in splits.items():
        if not items:
            raise DataError(f"{path} lists no {split} clips")
    return classes, splits
