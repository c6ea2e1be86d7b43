"""AVE (Audio-Visual Event, 28 classes) in the layout scripts/prepare_ave.py writes:

DATA_ROOT/trainSet.txt, valSet.txt, testSet.txt   the dataset's own lists (3,339 / 402 / 402 rows)
DATA_ROOT/audio_event/<VideoID>.wav               --segment event (default, PMR's Audio-1004-SE): 16 kHz
DATA_ROOT/frames_event/<VideoID>/<index>.jpg      mono audio of the labelled event and PMR's frames of it
                                                  (Image-01-FPS-SE), named by video frame index
DATA_ROOT/audio/<VideoID>.wav                     --segment whole: the whole 10 s video, 1 frame per second
DATA_ROOT/frames/<VideoID>/*.jpg

Each prepared folder holds ave_segment.txt ("event" or "whole"), so a run never reads data prepared
for the other choice (a folder without one holds whole videos, as this project prepared them before).
List rows are `Category&VideoID&Quality&StartTime&EndTime` (e.g. `Church bell&fCZi6I6kPpU&good&6&10`),
times in whole seconds. As PMR's AVEDataset: the classes in the order they first appear in testSet.txt,
and a video listed twice in a split is kept once, with its first row.
"""
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from .errors import DataError
from .text_files import read_list_text

LISTS = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
SEGMENT_FOLDERS = {"event": ("audio_event", "frames_event"), "whole": ("audio", "frames")}
MARKER = "ave_segment.txt"


class EventRow(NamedTuple):
    category: str
    video: str
    start: int   # seconds, the event's first
    end: int     # seconds: audio up to here (excluded), frames up to here (included), as PMR


def read_event_rows(path: Path) -> List[EventRow]:
    """The rows of an AVE list, in file order."""
    if not path.is_file():
        raise DataError(f"file not found: {path}. Point --data_root at the AVE folder holding {', '.join(LISTS.values())}")
    rows = []
    for line_no, line in enumerate(read_list_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("&")
        times = parts[3:]
        if len(parts) != 5 or not parts[1] or not all(t.isdigit() for t in times) or int(times[0]) > int(times[1]):
            raise DataError(f"{path} line {line_no}: expected 'Category&VideoID&Quality&StartTime&EndTime' with whole "
                            f"seconds StartTime <= EndTime, got {line.strip()!r}")
        rows.append(EventRow(parts[0], parts[1], int(times[0]), int(times[1])))
    if not rows:
        raise DataError(f"{path} lists no videos")
    return rows


def read_ave_lists(root: Path) -> Tuple[List[str], Dict[str, List[Tuple[str, int]]]]:
    """(classes, {"train" | "val" | "test": [(video id, class index)]})."""
    rows = {split: read_event_rows(root / name) for split, name in LISTS.items()}
    classes = list(dict.fromkeys(row.category for row in rows["test"]))
    index = {name: i for i, name in enumerate(classes)}
    splits = {}
    for split, items in rows.items():
        unknown = sorted({row.category for row in items} - set(index))
        if unknown:
            raise DataError(f"{root / LISTS[split]} has categories that testSet.txt does not: {', '.join(unknown[:5])}")
        first = {}
        for row in items:
            first.setdefault(row.video, index[row.category])
        splits[split] = list(first.items())
    return classes, splits


def event_segments(root: Path) -> Tuple[Dict[str, Tuple[int, int]], List[str]]:
    """({video id: (start, end)} over the three lists, a video's first row winning as in the reader; the ids
    that later rows give another segment, which one prepared folder per video cannot honour)."""
    segments, conflicting = {}, []
    for name in LISTS.values():
        for row in read_event_rows(root / name):
            if segments.setdefault(row.video, (row.start, row.end)) != (row.start, row.end):
                conflicting.append(row.video)
    return segments, list(dict.fromkeys(conflicting))


def prepare_command(root: Path, segment: str) -> str:
    return f"python scripts/prepare_ave.py --data_root {root} --segment {segment}"


def held_segment(folder: Path, segment: str) -> Optional[str]:
    """What `folder` was prepared for: its marker's word; without one, "whole" (this project prepared whole
    videos before markers existed) when `segment` is whole, else unknown (None)."""
    marker = folder / MARKER
    if marker.is_file():
        return marker.read_text().strip()
    return "whole" if segment == "whole" else None


def check_prepared(folder: Path, segment: str, root: Path) -> None:
    """`folder` exists and holds data prepared for `segment`, else one DataError saying how to fix it."""
    other = "whole" if segment == "event" else "event"
    if not folder.is_dir():
        raise DataError(f"AVE folder {folder} not found. Prepare it: {prepare_command(root, segment)} "
                        f"(or train on the other layout with --segment {other})")
    held = held_segment(folder, segment)
    if held is None:
        raise DataError(f"{folder} does not say which AVE segment it holds (no {MARKER}). Prepare it: "
                        f"{prepare_command(root, segment)}; or, if it holds PMR's event segments, write 'event' "
                        f"into {folder / MARKER}")
    if held != segment:
        raise DataError(f"{folder} holds AVE prepared with --segment {held} ({folder / MARKER}), but this run reads "
                        f"--segment {segment}. Prepare it: {prepare_command(root, segment)}, or pass --segment {held}")


def check_preparable(folder: Path, segment: str) -> None:
    """Preparing `segment` into an existing `folder` would not mix it with the other choice."""
    held = held_segment(folder, segment)
    if held is None:
        raise DataError(f"{folder} does not say which AVE segment it holds (no {MARKER}). Move it away, or write "
                        f"'{segment}' into {folder / MARKER} if it holds that")
    if held != segment:
        raise DataError(f"{folder} holds AVE prepared with --segment {held} ({folder / MARKER}): preparing "
                        f"--segment {segment} there would mix the two. Move it away, or prepare --segment {held}")


def mark_prepared(folder: Path, segment: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(segment + "\n")
