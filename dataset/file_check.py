"""A cheap check of every listed file before training: each wav's header (soundfile) and each
image's header (PIL), read in parallel threads, so a corrupt or empty file stops the run before
its first epoch, with every bad file named at once, instead of after an epoch of training."""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Optional

import soundfile
from PIL import Image, UnidentifiedImageError

from .errors import DataError

NAMED = 20  # bad files named in the message; the rest are counted


def problem(path: Path) -> Optional[str]:
    """Why `path` cannot be read, from its header alone; None when it looks fine."""
    try:
        if path.suffix.lower() == ".wav":
            info = soundfile.info(str(path))
            return None if info.frames > 0 else "no audio samples"
        with Image.open(path) as image:
            width, height = image.size
        return None if width > 0 and height > 0 else "empty image"
    except FileNotFoundError:
        return "missing"
    except (RuntimeError, soundfile.LibsndfileError, UnidentifiedImageError, OSError, ValueError) as err:
        # The libraries' messages repeat the path; keep what they say about the file.
        text = " ".join(str(err).replace(repr(str(path)), "").replace(str(path), "").split())
        return text.rsplit(": ", 1)[-1].strip(" .'")[:80] or type(err).__name__


def check_files(paths: Iterable[Path], what: str, workers: int = 16) -> int:
    """Raise one DataError naming every unreadable file among `paths`; returns how many were checked."""
    paths = list(dict.fromkeys(paths))  # each file once, in order
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(problem, paths))
    bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
    if bad:
        named = "; ".join(f"{p} ({r})" for p, r in bad[:NAMED])
        more = f"; and {len(bad) - NAMED} more" if len(bad) > NAMED else ""
        raise DataError(f"{len(bad)} unreadable file(s) among the {len(paths)} of {what}: {named}{more}. "
                        "Re-extract them, or remove their rows from the list")
    return len(paths)
