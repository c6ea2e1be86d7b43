"""UPMC-Food101 (101 dishes) as image + title, in the layout of the public Kaggle mirror (gianmarco96/upmcfood101)
that BalanceBenchmark's FOOD101Dataset reads (balancemm/datasets/food_dataset.py):

DATA_ROOT/texts/train_titles.csv, test_titles.csv   rows Image_path,text,label under that header row (a file
                                                    without the header is read as rows of those three too)
DATA_ROOT/images/train/<label>/<Image_path>         the rows' images; images/test/<label>/<Image_path> likewise

A sample is named `<label>/<Image_path>` (its path under images/<split>/). Classes are the sorted class folders of
images/train (BalanceBenchmark sorts each split's folders; images/test must not hold others). Every title row must
name an image that is there, with a label that is a class folder, and every image must have its row; what breaks
that is one DataError (--skip_missing leaves rows without an image out, --allow_unlisted images without a row,
each said in one line). Titles are cleaned as theirs (a leading "RT", URLs and '#' removed) and tokenised once,
when the dataset is built; items are (image (3, 1, S, S) uint8, text (2, L) int64: input ids over attention mask,
label). Images: train RandomRotation(30) (nearest, black corners), resize to (S, S), horizontal flip; test resize;
ImageNet normalisation on the model's device (the image modality's prepare), as theirs.
"""
import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .errors import DataError
from .modalities import Modality, frames_input
from .splits import read_rows
from .visual import IMAGE_SUFFIXES

SPLITS = ("train", "test")
COLUMNS = ("image_path", "text", "label")  # the header BalanceBenchmark's pandas reader needs, compared lower-cased
LAYOUT = ("the layout is DATA_ROOT/texts/{train,test}_titles.csv (rows Image_path,text,label) and "
          "DATA_ROOT/images/{train,test}/<label>/<Image_path>")
NAMED = 3  # bad rows named in a message; the rest are counted


def token_input(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.long()  # input ids and attention mask: indices, never floats


IMAGE = Modality("image", "image", frames_input)
TEXT = Modality("text", "text", token_input)
FOOD_MODALITIES = (IMAGE, TEXT)


def clean_title(raw: str) -> str:
    """BalanceBenchmark's clean_text (food_dataset.py:71-75): a leading "RT", URLs (to the line's end) and '#'."""
    text = re.sub(r"^RT[\s]+", "", raw)
    text = re.sub(r"https?:\/\/.*[\r\n]*", "", text)
    return re.sub(r"#", "", text)


def titles_path(root: Path, split: str) -> Path:
    return Path(root) / "texts" / f"{split}_titles.csv"


def folders(path: Path) -> List[str]:
    try:
        return sorted(entry.name for entry in os.scandir(path) if entry.is_dir() and not entry.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def food_classes(root: Path) -> List[str]:
    """The sorted class folders of images/train (BalanceBenchmark's find_classes)."""
    classes = folders(Path(root) / "images" / "train")
    if not classes:
        raise DataError(f"no class folders in {Path(root) / 'images' / 'train'}: {LAYOUT}. Check --data_root")
    return classes


def read_titles(path: Path, classes: Sequence[str]) -> List[Tuple[int, str, str, str]]:
    """[(row number, Image_path, raw text, label)] of a titles file, by its header's columns (any order, extra
    columns ignored), or, without a header, as rows Image_path,text,label."""
    if not path.is_file():
        raise DataError(f"title list not found: {path}; {LAYOUT}. Check --data_root")
    rows = read_rows(path)
    if not rows:
        raise DataError(f"{path} holds no rows. Give rows Image_path,text,label")
    header = [cell.lower() for cell in rows[0]]
    if all(name in header for name in COLUMNS):
        where, rows, first = [header.index(name) for name in COLUMNS], rows[1:], 2
    elif len(rows[0]) >= 3 and rows[0][2] in classes:
        where, first = [0, 1, 2], 1
    else:
        raise DataError(f"{path}: the first row {','.join(rows[0])[:80]!r} is neither the header Image_path,text,label "
                        "nor such a row with a label among the class folders of images/train. Add the header row")
    out = []
    for number, row in enumerate(rows, start=first):
        if len(row) <= max(where):
            raise DataError(f"{path} row {number}: expected Image_path,text,label, got {','.join(row)[:80]!r}")
        image, text, label = (row[i] for i in where)
        if not image:
            raise DataError(f"{path} row {number}: no Image_path. Fix the row")
        out.append((number, image, text, label))
    if not out:
        raise DataError(f"{path} lists no titles. Give rows Image_path,text,label")
    return out


def listed(items: Sequence[str]) -> str:
    more = f", and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return "; ".join(items[:NAMED]) + more


@dataclass
class FoodSplit:
    """One split's samples, (name `<label>/<Image_path>`, class index) in the rows' order, and their cleaned titles."""
    samples: List[Tuple[str, int]]
    titles: Dict[str, str]
    rows: int                                          # title rows read
    skipped: List[str] = field(default_factory=list)   # rows without an image, left out (--skip_missing)
    unlisted: List[str] = field(default_factory=list)  # images without a row, left out (--allow_unlisted)


def load_food_split(root: Path, split: str, classes: Sequence[str], skip_missing: bool = False,
                    allow_unlisted: bool = False) -> FoodSplit:
    """Check a split's titles against its image folders (see the module docstring) and return its samples."""
    root = Path(root)
    path, image_dir = titles_path(root, split), root / "images" / split
    if not image_dir.is_dir():
        raise DataError(f"image folder not found: {image_dir}; {LAYOUT}. Check --data_root")
    strangers = [name for name in folders(image_dir) if name not in classes]
    if strangers:
        raise DataError(f"{image_dir} holds class folder(s) that images/train lacks ({listed(strangers)}): the classes "
                        "are the folders of images/train. Make both splits' folders agree")
    index = {name: i for i, name in enumerate(classes)}
    rows = read_titles(path, classes)
    unknown = [f"row {n}: {label!r}" for n, _, _, label in rows if label not in index]
    if unknown:
        raise DataError(f"{len(unknown)} row(s) of {path} have a label that is no class folder of images/train "
                        f"({listed(unknown)}; the {len(classes)} classes are the folders of "
                        f"{root / 'images' / 'train'}). Fix the rows or add the class folder")
    images = {label: {name for name in os.listdir(image_dir / label)} if (image_dir / label).is_dir() else set()
              for label in classes}
    samples, titles, missing, named = [], {}, [], set()
    for number, image, text, label in rows:
        key = f"{label}/{image}"
        if image not in images[label]:
            missing.append(f"row {number}: {image_dir / key}")
            continue
        samples.append((key, index[label]))
        titles.setdefault(key, clean_title(text))
        named.add(key)
    if missing and not skip_missing:
        raise DataError(f"{len(missing)} row(s) of {path} name an image that is not there ({listed(missing)}). Put "
                        "the images there, or pass --skip_missing True to leave those rows out (said in one line)")
    unlisted = sorted(f"{label}/{name}" for label, names in images.items() for name in names
                      if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and f"{label}/{name}" not in named)
    if unlisted and not allow_unlisted:
        raise DataError(f"{len(unlisted)} image(s) under {image_dir} have no row in {path} ({listed(unlisted)}). Add "
                        "their rows, or pass --allow_unlisted True to leave them out (said in one line)")
    if not samples:
        raise DataError(f"the {split} split has no title row with its image ({path}). Check --data_root")
    return FoodSplit(samples, titles, len(rows), missing, unlisted)


def tokenize_titles(tokenizer, titles: Sequence[str], length: int) -> torch.Tensor:
    """(N, 2, length) int64: input ids and attention mask of each title, padded to `length` and truncated, as
    BalanceBenchmark's tokenize (padding='max_length', max_length=40, truncation=True), in one batched call."""
    if not titles:
        return torch.zeros(0, 2, length, dtype=torch.long)
    encoded = tokenizer(list(titles), padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    return torch.stack([encoded["input_ids"], encoded["attention_mask"]], dim=1).long()


def read_image(path: Path) -> torch.Tensor:
    """(3, H, W) uint8; an unreadable file is one DataError naming it."""
    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except Exception as err:  # torchvision raises RuntimeError for truncated / non-image files
        raise DataError(f"cannot decode image {path}: {' '.join(str(err).split())[:120]}. Replace the file, or "
                        "remove its title row") from None


class FoodImageTransform:
    """uint8 (3, H, W) in, (3, S, S) out. Train: a rotation by an angle drawn in [-degrees, degrees] (nearest, the
    corners black: RandomRotation(30)), resize to (S, S), horizontal flip with p = 0.5; test: resize (theirs)."""

    def __init__(self, train: bool, image_size: int, degrees: float = 30.0):
        self.train, self.size, self.degrees = train, [image_size, image_size], degrees

    def for_evaluation(self) -> "FoodImageTransform":
        return FoodImageTransform(False, self.size[0], self.degrees)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.train:
            angle = float(torch.empty(1).uniform_(-self.degrees, self.degrees).item())  # RandomRotation.get_params
            image = TF.rotate(image, angle, interpolation=InterpolationMode.NEAREST, fill=0)
        image = TF.resize(image, self.size, antialias=True)
        if self.train and torch.rand(1).item() < 0.5:
            image = image.flip(-1)
        return image


class Food101Dataset(Dataset):
    """Items (image (3, 1, S, S) uint8, text (2, L) int64, label) of `samples` (name, class index) under
    `image_dir` (DATA_ROOT/images/<split>); `tokens` (N, 2, L) are the samples' tokenised titles, in order.
    Keys are (index, augmentation seed), as the other readers'."""

    def __init__(self, image_dir: Path, samples: Sequence[Tuple[str, int]], tokens: torch.Tensor, train: bool,
                 image_size: int = 224, split_name: str = "split"):
        if len(tokens) != len(samples):
            raise ValueError(f"{len(samples)} samples but {len(tokens)} tokenised titles")
        self.image_dir, self.items, self.tokens, self.train = Path(image_dir), list(samples), tokens, train
        self.transform = FoodImageTransform(train, image_size)
        self.split_name, self.n_skipped = split_name, 0  # rows left out are said by the entry script

    def readable_files(self) -> List[Path]:
        """Every image this split reads (for the header check before training)."""
        return [self.image_dir / name for name, _ in self.items]

    def evaluation_view(self) -> "Food101Dataset":
        """The same samples with the test-time transform (held-out parts of train are scored so)."""
        view = copy.copy(self)
        view.train, view.transform = False, self.transform.for_evaluation()
        return view

    @property
    def labels(self) -> List[int]:
        return [label for _, label in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        name, label = self.items[index]
        with torch.random.fork_rng(devices=[]):
            # A per-(epoch, sample) seed makes the augmentation independent of workers, ranks and resumes.
            if seed is not None:
                torch.default_generator.manual_seed(seed)  # the CPU generator alone (see dataset/clips.py)
            image = self.transform(read_image(self.image_dir / name))
        return image.unsqueeze(1), self.tokens[index], label
