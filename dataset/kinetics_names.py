"""Which Kinetics video a Kinetics-Sounds list row names.

OGM-GE's lists name their clips in two ways: the train list as Kinetics' own files are named,
`<youtube id>_<start:06d>_<end:06d>`, the test list as `<youtube id>_<start>`, the clip's start in
whole seconds without padding or end (e.g. `-3Mwkq-7TV4_2`). Nobody in OGM-GE's code or issues says
so; it was found by matching the shipped test list against Kinetics-400's test annotations
(`test.csv`: every one of the 2,565 rows found there has n == time_start, none is in validate.csv),
so the test clips are Kinetics-400 *test* videos. Both forms therefore reduce to one key,
(youtube id, start second), which a downloaded video's name gives as well. YouTube ids are 11
characters and may hold '_' and '-', so names are cut at character 11, never split on '_'.
"""
import csv
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import DataError
from .text_files import open_list

ID_LENGTH = 11
# after "<id>_": "<start>" or "<start>_<end>", digits only (Kinetics pads to 6, OGM-GE's test names do not)
_TAIL = re.compile(r"(\d+)(?:_(\d+))?")


def clip_key(name: str) -> Optional[Tuple[str, int]]:
    """(youtube id, start second) of `<id>_<start>_<end>` or `<id>_<start>`; None for any other name."""
    if len(name) < ID_LENGTH + 2 or name[ID_LENGTH] != "_":
        return None
    tail = _TAIL.fullmatch(name[ID_LENGTH + 1:])
    return (name[:ID_LENGTH], int(tail.group(1))) if tail else None


def read_mapping(path: Path) -> Dict[str, Path]:
    """{list clip: video} from a csv of `<clip as listed>,<video path>` rows (relative paths: to the csv)."""
    if not path.is_file():
        raise DataError(f"mapping file not found: {path}. Give a csv of '<clip as listed>,<video path>' rows")
    mapping = {}
    with open_list(path) as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise DataError(f"{path} row {line_no}: expected '<clip as listed>,<video path>', got {','.join(row)!r}")
            video = Path(row[1].strip())
            mapping[row[0].strip()] = video if video.is_absolute() else path.parent / video
    return mapping


def match_videos(clips: List[str], videos: Dict[str, Path],
                 mapping: Optional[Dict[str, Path]] = None) -> Tuple[Dict[str, Path], Dict[str, int]]:
    """({listed clip: its video}, counts by how each was found). A clip is found by the mapping file,
    else by its exact name, else by (youtube id, start second). Never by the id alone: another start is
    another 10 s of the video, and a test set made of such clips would not be the listed one."""
    by_key = {}
    for stem, video in videos.items():
        key = clip_key(stem)
        if key is not None:
            by_key.setdefault(key, video)
    found, counts = {}, {"mapping file": 0, "exact name": 0, "id and start": 0}
    for clip in clips:
        if mapping and clip in mapping:
            found[clip], how = mapping[clip], "mapping file"
        elif clip in videos:
            found[clip], how = videos[clip], "exact name"
        elif clip_key(clip) in by_key:
            found[clip], how = by_key[clip_key(clip)], "id and start"
        else:
            continue
        counts[how] += 1
    return found, counts
