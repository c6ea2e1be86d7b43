"""UCF-101's classes and its three official train/test splits.

Class order: classInd.txt (`1 ApplyEyeMakeup` ... `101 YoYo`) when the data root (or its ucfTrainTestlist/
folder) has it, else the same order computed from the class names: a case-insensitive sort. Python's default
sort is not it: it puts HammerThrow before Hammering and JumpRope before JumpingJack (BalanceBenchmark's
`sorted()` labels differ from classInd's there).

Splits: the official trainlist0N.txt / testlist0N.txt when present (lines `Class/v_Class_gGG_cCC.avi [id]`:
train lines carry the 1-based classInd id, test lines none; the label comes from the class folder), else the
rule those lists follow, applied to the video names found on disk: split N tests on the groups g01-g07, g08-g14
or g15-g21 (N = 1, 2, 3), g22-g25 always train (split 1: 9,537 train / 3,783 test of 13,320 videos).

Videos are named by their file stem, `v_<Class>_g<GG>_c<CC>`; the one folder/file spelling mismatch of UCF-101,
HandstandPushups/v_HandStandPushups_*, is why class names are matched without regard to case.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import DataError
from .text_files import read_list_text

SPLITS = (1, 2, 3)
CLASS_LIST = "classInd.txt"
LIST_FOLDERS = ("", "ucfTrainTestlist")  # the data root itself, or the official zip unpacked inside it
VIDEO_NAME = re.compile(r"v_(?P<cls>[A-Za-z0-9]+)_g(?P<group>\d+)_c(?P<clip>\d+)")
FOLDER_SPELLING = {"handstandpushups": "HandstandPushups"}  # the class folder's spelling of v_HandStandPushups_*

Samples = List[Tuple[str, int]]


def test_groups(split: int) -> range:
    """The groups split N tests on: 1-7, 8-14, 15-21."""
    return range(7 * (split - 1) + 1, 7 * split + 1)


def official_order(names: Sequence[str]) -> List[str]:
    """classInd.txt's order of class names: case-insensitive alphabetical."""
    return sorted(set(names), key=lambda name: (name.lower(), name))


def parse_video_name(stem: str) -> Tuple[str, int]:
    """(class as the class folder spells it, group) of `v_<Class>_g<GG>_c<CC>`."""
    match = VIDEO_NAME.fullmatch(stem)
    if match is None:
        raise DataError(f"{stem!r} is not a UCF-101 video name (v_<Class>_g<GG>_c<CC>). Remove it from the data "
                        "folders, or give the official split lists (trainlist0N.txt / testlist0N.txt)")
    cls = match["cls"]
    return FOLDER_SPELLING.get(cls.lower(), cls), int(match["group"])


def find_list_file(root: Path, name: str) -> Optional[Path]:
    for folder in LIST_FOLDERS:
        path = root / folder / name
        if path.is_file():
            return path
    return None


def text_lines(path: Path) -> List[str]:
    """Non-empty lines, stripped (the official files may end lines with \\r\\n)."""
    return [line.strip() for line in read_list_text(path).splitlines() if line.strip()]


def read_class_ind(path: Path) -> List[str]:
    """classInd.txt: `<id> <Class>` lines with ids 1, 2, ... in order."""
    names = []
    for line_no, line in enumerate(text_lines(path), start=1):
        parts = line.split()
        if len(parts) != 2 or parts[0] != str(line_no):
            raise DataError(f"{path} line {line_no}: expected '{line_no} <Class>', got {line!r}. Give the official "
                            "classInd.txt (ids 1, 2, ... in order)")
        names.append(parts[1])
    if not names:
        raise DataError(f"{path} lists no classes. Give the official classInd.txt")
    if len({n.lower() for n in names}) != len(names):
        raise DataError(f"{path} repeats a class name. Keep each class once")
    return names


def class_index(classes: Sequence[str]) -> Dict[str, int]:
    return {name.lower(): i for i, name in enumerate(classes)}


def list_entries(path: Path) -> List[Tuple[str, str, Optional[str], int]]:
    """(class folder, video stem, id or None, line number) of each line of a trainlist / testlist."""
    entries = []
    for line_no, line in enumerate(text_lines(path), start=1):
        parts = line.split()
        if len(parts) > 2 or parts[0].count("/") != 1:
            raise DataError(f"{path} line {line_no}: expected '<Class>/<video>.avi [id]', got {line!r}")
        folder, file_name = parts[0].split("/")
        entries.append((folder, Path(file_name).stem, parts[1] if len(parts) == 2 else None, line_no))
    if not entries:
        raise DataError(f"{path} lists no videos. Give the official split list")
    return entries


def read_official_list(path: Path, classes: Sequence[str], ids_are_class_ind: bool) -> Samples:
    """[(video stem, label)], the label from the class folder; a train line's id must agree with classInd."""
    index = class_index(classes)
    samples = []
    for folder, stem, given_id, line_no in list_entries(path):
        label = index.get(folder.lower())
        if label is None:
            raise DataError(f"{path} line {line_no}: class folder {folder!r} is not in the class list "
                            f"({len(classes)} classes). Give the classInd.txt of these lists")
        if ids_are_class_ind and given_id is not None and given_id != str(label + 1):
            raise DataError(f"{path} line {line_no}: id {given_id} but {folder} is class {label + 1} in classInd.txt. "
                            "Use the classInd.txt and split lists of one release")
        samples.append((stem, label))
    return samples


def stems_on_disk(folders: Sequence[Path]) -> List[str]:
    """The video folders (not hidden: .partial folders of an interrupted preparation) under any of `folders`."""
    stems = set()
    for folder in folders:
        if folder.is_dir():
            stems.update(entry.name for entry in os.scandir(folder)
                         if entry.is_dir() and not entry.name.startswith("."))
    return sorted(stems)


def split_by_groups(stems: Sequence[str], classes: Sequence[str], split: int) -> Tuple[Samples, Samples]:
    """(train, test) of the videos by the official group rule."""
    index, held_out = class_index(classes), test_groups(split)
    train, test = [], []
    for stem in stems:
        cls, group = parse_video_name(stem)
        if cls.lower() not in index:
            raise DataError(f"video {stem}: class {cls} is not in the class list ({len(classes)} classes). "
                            "Give the matching classInd.txt, or remove the video")
        (test if group in held_out else train).append((stem, index[cls.lower()]))
    return train, test


@dataclass
class UCFSplit:
    classes: List[str]
    train: Samples
    test: Samples
    source: str  # which lists, for the log


def load_ucf101_split(root: Path, split: int = 1, rgb_dir: str = "rgb", flow_dir: str = "flow") -> UCFSplit:
    """Classes and split N of the data root: official files where present, else computed (module docstring)."""
    if split not in SPLITS:
        raise DataError(f"--split {split}: UCF-101 has the official splits 1, 2 and 3")
    root = Path(root)
    class_file = find_list_file(root, CLASS_LIST)
    names = (f"trainlist{split:02d}.txt", f"testlist{split:02d}.txt")
    train_file, test_file = (find_list_file(root, name) for name in names)
    if (train_file is None) != (test_file is None):
        found, absent = (train_file, names[1]) if train_file else (test_file, names[0])
        raise DataError(f"found {found} but no {absent} beside it. Put both lists of split {split} there, or neither "
                        "(then the split comes from the video names)")
    if train_file is not None:
        entries = list_entries(train_file) + list_entries(test_file)
        classes = read_class_ind(class_file) if class_file else official_order([e[0] for e in entries])
        train = read_official_list(train_file, classes, ids_are_class_ind=class_file is not None)
        test = read_official_list(test_file, classes, ids_are_class_ind=class_file is not None)
        return UCFSplit(classes, train, test, f"official split {split} ({train_file.name} / {test_file.name})")
    stems = stems_on_disk([root / rgb_dir, root / flow_dir / "u", root / flow_dir / "v"])
    if not stems:
        raise DataError(f"no videos in {root / rgb_dir} or {root / flow_dir / 'u'}. Prepare them with "
                        "scripts/prepare_ucf101.py (or check --data_root, --rgb_dir, --flow_dir)")
    classes = read_class_ind(class_file) if class_file else official_order([parse_video_name(s)[0] for s in stems])
    train, test = split_by_groups(stems, classes, split)
    groups = test_groups(split)
    return UCFSplit(classes, train, test, f"split {split} by the official group rule (test groups "
                                          f"g{groups[0]:02d}-g{groups[-1]:02d}) over the videos found")
