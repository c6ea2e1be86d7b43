"""--val_split: a validation set taken out of the train split, so best.pt can be chosen without
looking at the test set. Either a fraction (stratified per class, fixed by the seed) or a csv
file naming clips of the train split (rows `<clip>` or `<clip>,<label>`)."""
from pathlib import Path
from typing import List, Sequence, Tuple

from .errors import DataError
from .splits import drop_header, read_rows, stratified_split

Samples = List[Tuple[str, int]]


def parse_fraction(spec: str):
    """The fraction `spec` names, or None when it names a file."""
    try:
        value = float(spec)
    except ValueError:
        return None
    if not 0 < value < 1:
        raise DataError(f"--val_split {spec}: a fraction must lie strictly between 0 and 1 (e.g. 0.1), "
                        "or name a csv file of clips")
    return value


def hold_out_validation(train: Samples, test: Samples, spec: str, seed: int, classes: Sequence[str],
                        base: Path) -> Tuple[Samples, Samples, str]:
    """(train without the validation clips, validation clips, a line saying what was held out).
    A file path is taken relative to `base` (the data root) unless absolute."""
    fraction = parse_fraction(spec)
    if fraction is not None:
        rest, val = stratified_split(dict(train), test_fraction=fraction, seed=seed)
        return rest, val, (f"validation: {len(val)} clips held out of the {len(train)} train clips "
                           f"(stratified {fraction:g} per class, seed {seed}); best.pt is chosen on them")
    path = Path(spec) if Path(spec).is_absolute() else base / spec
    label_of = dict(train)
    in_test = {clip for clip, _ in test}
    val = []
    for line_no, row in enumerate(drop_header(read_rows(path)), start=1):
        clip = row[0]
        if clip in in_test:
            raise DataError(f"{path} row {line_no}: clip {clip} is in the test split. A validation set must "
                            "come from the train split")
        if clip not in label_of:
            raise DataError(f"{path} row {line_no}: clip {clip} is not in the train split. List clips of the "
                            "train split (they are held out of training)")
        if len(row) > 1 and row[1] != classes[label_of[clip]]:
            raise DataError(f"{path} row {line_no}: clip {clip} is labelled {row[1]!r} but the train split says "
                            f"{classes[label_of[clip]]!r}. Fix the row")
        val.append((clip, label_of[clip]))
    if not val:
        raise DataError(f"{path} lists no clips. Give rows '<clip>' or '<clip>,<label>'")
    held = {clip for clip, _ in val}
    rest = [(clip, label) for clip, label in train if clip not in held]
    return rest, val, f"validation: the {len(val)} clips of {path}, held out of training; best.pt is chosen on them"
