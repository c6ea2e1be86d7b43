"""A small demo set in the UPMC-Food101 layout that main_Food.py reads (dataset/food101.py), and a tiny local text
model for it:

OUT/texts/train_titles.csv, test_titles.csv     rows Image_path,text,label under that header
OUT/images/{train,test}/<label>/<label>_<n>.jpg
OUT/text_model/                                 a random one-layer BERT (hidden 16, 2 heads) saved with
                                                BertModel.save_pretrained, and a BertTokenizer over the demo's words
                                                (vocab.txt; the tokenizer's save_pretrained files)

Six real UPMC-Food101 classes in three pairs. Cues, deterministic in the seed, with a known imbalance as the other
demos' (dataset/demo_cues.py):
- text (the easy but incomplete cue): each title holds its pair's word (dessert / salad / dinner) among filler
  words, so it tells the pair but not the class within it; titles also carry what the cleaning removes (a leading
  "RT", '#', a URL and the rest of its line) and commas (quoted cells);
- image (the weaker cue that completes it): the low-contrast coloured square whose colour says the class.
Nothing here is tuned to make one method win.
"""
import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .demo_cues import synth_frame

FOOD_DEMO_CLASSES = ["apple_pie", "baklava", "caesar_salad", "greek_salad", "pizza", "ramen"]  # sorted, as folders
PAIR_WORDS = ["dessert", "salad", "dinner"]                                                  # class k: k // 2
FILLER = ["best", "easy", "quick", "homemade", "recipe", "with", "the", "and", "my", "family", "favourite", "food",
          "today", "fresh", "classic"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DEMO_VOCABULARY = SPECIAL_TOKENS + PAIR_WORDS + FILLER + [","]


def demo_title(label: int, rng: np.random.Generator) -> str:
    words = list(rng.choice(FILLER, size=int(rng.integers(2, 9))))
    cue = PAIR_WORDS[label // 2]
    words.insert(int(rng.integers(0, len(words) + 1)), f"#{cue}" if rng.random() < 0.3 else cue)
    if rng.random() < 0.25:
        words.insert(int(rng.integers(1, len(words))), ",")
    title = " ".join(words).replace(" ,", ",")
    if rng.random() < 0.25:
        title = f"RT {title}"
    if rng.random() < 0.25:
        title += f" http://t.co/{int(rng.integers(10**5, 10**6))} {FILLER[int(rng.integers(len(FILLER)))]}"
    return title


def write_text_model(folder: Path, words: Sequence[str] = DEMO_VOCABULARY, seed: int = 0, hidden: int = 16,
                     layers: int = 1, heads: int = 2, max_positions: int = 64) -> Path:
    """A random BERT over `words` (the special tokens first) in a local folder as --text_model reads it."""
    from .text_model import quiet_transformers
    quiet_transformers()
    from transformers import BertConfig, BertModel, BertTokenizer
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(f"{w}\n" for w in words))
    config = BertConfig(vocab_size=len(words), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=max_positions)
    with torch.random.fork_rng(devices=[]):  # the same weights for a seed, and the caller's generator untouched
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def write_food101_demo(out: Path, clips_per_class: int = 20, seed: int = 0, image_size: int = 32,
                       test_fraction: float = 0.25, text_model: bool = True) -> Path:
    """Write the tree (and, unless text_model=False, OUT/text_model) under `out` and return it. Same seed, same
    bytes of images and titles."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    n_test = max(1, round(clips_per_class * test_fraction))
    rows = {"train": [], "test": []}
    for label, name in enumerate(FOOD_DEMO_CLASSES):
        for i in range(clips_per_class):
            split = "test" if i >= clips_per_class - n_test else "train"
            folder = out / "images" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            image = f"{name}_{i}.jpg"
            Image.fromarray(synth_frame(label, image_size, rng)).save(folder / image, quality=90)
            rows[split].append((image, demo_title(label, rng), name))
    (out / "texts").mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        with open(out / "texts" / f"{split}_titles.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Image_path", "text", "label"])
            writer.writerows(split_rows)
    if text_model:
        write_text_model(out / "text_model", seed=seed)
    return out
