"""Kinetics-Sounds (31 classes) in the layout scripts/prepare_kinetics_sounds.py writes:

DATA_ROOT/audio/<clip>.wav              16 kHz mono
DATA_ROOT/frames/<clip>/*.jpg           1 frame per second
DATA_ROOT/my_train.txt, my_test.txt     optional: without them the split lists of OGM-GE shipped in
                                        data/KineticsSounds/ (14,799 / 2,597 clips, MIT licence) are used

List rows are `<clip>,10,<class index>`. The clip names are those of OGM-GE's files: in the train list
Kinetics' own `<youtube id>_<start>_<end>` (e.g. --4-0ihtnBU_000058_000068), in the test list, every row,
`<youtube id>_<start second>` of a Kinetics-400 test video (e.g. -3Mwkq-7TV4_2; dataset/kinetics_names.py).
The lists carry class indices only (0..30; the alphabetical order of the 31 class names), so the classes
are named by their index unless --class_csv gives one name per index, in index order.
"""
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import DataError
from .splits import read_class_list, read_rows, split_paths

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "KineticsSounds"
LISTS = ("my_train.txt", "my_test.txt")


def read_clip_list(path: Path) -> List[Tuple[str, int]]:
    """[(clip, class index)] from a list of `<clip>,<duration>,<class index>` rows."""
    samples = []
    for line_no, row in enumerate(read_rows(path), start=1):
        if len(row) != 3 or not row[2].isdigit():
            raise DataError(f"{path} row {line_no}: expected '<clip>,10,<class index>', "
                            f"got {','.join(row)!r}")
        samples.append((row[0], int(row[2])))
    if not samples:
        raise DataError(f"{path} lists no clips")
    return samples


def load_lists(root: Path, train_list: Optional[str], test_list: Optional[str]):
    """(train, test, source): the flags' lists, else the data root's my_train.txt / my_test.txt, else the shipped
    pair (as CREMA-D's split files: both from one place)."""
    train_path, test_path, shipped = split_paths(root, train_list, test_list, LISTS, SHIPPED)
    source = "the OGM-GE lists shipped in data/KineticsSounds" if shipped else f"{train_path} / {test_path}"
    return read_clip_list(train_path), read_clip_list(test_path), source


def class_names(samples, class_csv: Optional[Path]) -> List[str]:
    """Names for the class indices: --class_csv's rows in index order, else the indices themselves."""
    top = max(label for _, label in samples)
    if class_csv is None:
        return [str(k) for k in range(top + 1)]  # 31 for the shipped lists
    names = read_class_list(class_csv)
    if len(names) <= top:
        raise DataError(f"class list {class_csv} names {len(names)} classes, but the lists use index {top}. "
                        "Give one name per class index, in index order")
    return names
