"""SSW60 (60 bird species) reader, for the official metadata and the prepared clips:

DATA_ROOT/video_ml.csv            official metadata: asset_id, label, split (train/test), fps, frame_count,
                                  duration_seconds, reliable_audio, ... (extra columns are ignored)
DATA_ROOT/frames/<asset_id>/*.jpg frames extracted from each video
DATA_ROOT/audio/<asset_id>.wav    each video's audio track

The class list is the sorted set of labels found in the csv (numerically when they are numbers).
"""
import csv
from pathlib import Path

from .errors import DataError
from .text_files import open_list

REQUIRED_COLUMNS = ("asset_id", "label", "split")
SPLITS = ("train", "test")
TRUE_WORDS = {"1", "true", "yes", "y", "t"}


def read_video_list(path: Path, reliable_audio_only: bool = False):
    """(classes, {"train": [(asset_id, class index)], "test": [...]}) from the official video_ml.csv."""
    if not path.is_file():
        raise DataError(f"file not found: {path}. Point --data_root at the SSW60 folder (or pass --csv)")
    with open_list(path) as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"{path} lacks column(s) {', '.join(missing)} (has: {', '.join(columns)}). "
                            "Use the official video_ml.csv")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            split = row["split"].lower()
            if split not in SPLITS:
                raise DataError(f"{path} line {line_no}: split {row['split']!r} is neither train nor test")
            if reliable_audio_only and row.get("reliable_audio", "1").lower() not in TRUE_WORDS:
                continue
            rows.append((row["asset_id"], row["label"], split))
    labels = {label for _, label, _ in rows}
    classes = sorted(labels, key=lambda x: (0, int(x), "") if x.lstrip("-").isdigit() else (1, 0, x))
    index = {name: i for i, name in enumerate(classes)}
    splits = {split: [(asset, index[label]) for asset, label, s in rows if s == split] for split in SPLITS}
    for split, items in splits.items():
        if not items:
            raise DataError(f"{path} lists no {split} clips" + (" with reliable audio" if reliable_audio_only else ""))
    return classes, splits

