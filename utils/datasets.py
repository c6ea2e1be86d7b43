"""What an entry script's data builder hands the runner: the class list, the test set, the train
set and the optional validation set, with notes for the log and the split files worth keeping in
the run directory."""
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from dataset.clips import AVClipDataset
from dataset.errors import DataError
from dataset.file_check import check_files
from dataset.splits import write_split
from dataset.validation import hold_out_validation

Samples = List[Tuple[str, int]]


@dataclass
class Datasets:
    classes: List[str]
    test: object
    train: Optional[object] = None
    val: Optional[object] = None                   # --val_split: best.pt is chosen on it
    notes: List[str] = field(default_factory=list)  # e.g. "which split", "skipped 3 clips"
    files: dict = field(default_factory=dict)      # name -> writer(path): files worth keeping in the run dir

    def note_skipped(self) -> "Datasets":
        """Say how many clips --skip_missing left out of each split: a test set with clips left out is not
        the listed one, and its numbers are not the papers'."""
        for name, split in (("train", self.train), ("validation", self.val), ("test", self.test)):
            if split is not None and getattr(split, "n_skipped", 0):
                listed = len(split) + split.n_skipped
                self.notes.append(f"--skip_missing: skipped {split.n_skipped} {name} clip(s) without wav or frames: "
                                  f"{len(split)} of the {listed} listed are used")
        return self

    def check_readable(self) -> None:
        """Read the header of every file the splits list (in parallel); one error names every bad one."""
        splits = [d for d in (self.train, self.val, self.test) if d is not None and hasattr(d, "readable_files")]
        if splits:
            check_files([f for d in splits for f in d.readable_files()], "the listed clips' wavs and frames")

    def keep_lists(self, classes: Sequence[str], **lists: Optional[Samples]) -> None:
        """Keep each given list as <name>.csv (rows <clip>,<label>) in the run directory."""
        for name, samples in lists.items():
            if samples is not None:
                self.files[f"{name}.csv"] = lambda path, samples=samples: write_split(path, samples, classes)


def refuse_or_note(text: str, allowed: bool, consequence: str, remedy: str, flag: str) -> str:
    """One error line, or, when the flag allows it, the note that says what was kept."""
    if not allowed:
        raise DataError(f"{text}, {consequence}. {remedy}, or pass {flag} True to keep them")
    return f"note: {text}; kept, as {flag} True asks"


def check_lists(lists: Dict[str, Samples], allow_overlap: bool, allow_duplicates: bool) -> List[str]:
    """Refuse a clip listed twice in one list (it would train or count twice) and a clip in two lists (the model
    would be scored on clips it trained on): one line with the count and the first clip. With the flag that
    allows it, a note instead, so it is never silent."""
    notes = []
    for name, samples in lists.items():
        repeated = [clip for clip, n in Counter(clip for clip, _ in samples).items() if n > 1]
        if repeated:
            notes.append(refuse_or_note(
                f"{len(repeated)} clip(s) are listed more than once in the {name} list (first: {repeated[0]})",
                allow_duplicates, "so each would count once per row", "Remove the repeated rows",
                "--allow_duplicates"))
    names = list(lists)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            other = {clip for clip, _ in lists[second]}
            shared = list(dict.fromkeys(clip for clip, _ in lists[first] if clip in other))
            if shared:
                notes.append(refuse_or_note(
                    f"{len(shared)} clip(s) are in both the {first} and the {second} list (first: {shared[0]})",
                    allow_overlap, "so the model would be scored on clips it trained on",
                    "Remove them from one list", "--allow_overlap"))
    return notes


def labelled_clip_datasets(args, classes: Sequence[str], train: Samples, test: Samples, source: str,
                           make: Callable[[Samples, bool, str], object], with_train: bool, base: Path,
                           val: Optional[Samples] = None) -> Datasets:
    """Train / validation / test datasets of a clip-classification set from its lists.
    `make(samples, train, split name)` builds one dataset; `source` says which split the lists are;
    `val` is a dataset's own validation list (AVE's); else --val_split (a fraction or a csv relative to
    `base`) moves validation clips out of train."""
    counts = f"{len(train)} train / {len(val)} validation / {len(test)} test" if val else \
        f"{len(train)} train / {len(test)} test"
    notes = [f"split: {source}, {counts} clips (a training run keeps them in its run directory)"]
    if not with_train:  # evaluating a checkpoint needs the test split only
        val = None
    # the lists as given (a stratified hold-out would merge repeated train rows without a word)
    lists = {"train": train, "validation": val, "test": test} if val is not None else {"train": train, "test": test}
    notes += check_lists(lists, args.allow_overlap, args.allow_duplicates)
    if with_train and args.val_split is not None:
        train, val, note = hold_out_validation(train, test, args.val_split, args.random_seed, classes, base)
        notes.append(note)
        # what the hold-out adds: a --val_split csv's repeated rows (its clips come from train, never from test)
        notes += check_lists({"validation": val}, args.allow_overlap, args.allow_duplicates)
    data = Datasets(classes=list(classes), test=make(test, False, f"test split ({source})"), notes=notes)
    if with_train:
        data.train = make(train, True, f"train split ({source})")
        data.val = make(val, False, "validation split") if val is not None else None
    data.keep_lists(classes, train=train, val=val, test=test)
    return data.note_skipped()


def existing_data_root(path: str, dataset: str, demo: str) -> Path:
    """--data_root as a Path, or one error line saying how to point it at the data (or make demo data)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data root not found: {root}. Pass --data_root /path/to/{dataset} "
                        f"(or make demo data: python -m dataset.demo --dataset {demo})")
    return root


def clip_maker(audio_dir: Path, frames_dir: Path, options: dict, audio_recipe=None):
    """make(samples, train, split name) for labelled_clip_datasets: clips of one wav folder and one frames
    folder, read with the dataset's audio recipe and the clip flags' options."""
    def make(samples, train, split_name):
        return AVClipDataset(audio_dir, frames_dir, samples, train=train, split_name=split_name,
                             audio_recipe=audio_recipe, **options)
    return make
