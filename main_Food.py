"""Train / evaluate MMCosine and its baselines on UPMC-Food101 (101 dishes) from an image and its web page's title.

    python main_Food.py --train --data_root /path/to/UPMC-Food101 --text_model /path/to/bert-base-uncased
    python main_Food.py --train --data_root /path/to/UPMC-Food101 --text_model /path/to/bert-base-uncased \
        --mmcosine True --val_split 0.1
    python main_Food.py --ckpt_path runs/food/<run>/best.pt --data_root /path/to/UPMC-Food101

The data are the public mirror's layout (dataset/food101.py): texts/{train,test}_titles.csv with Image_path,text,label
rows and images/{train,test}/<label>/<Image_path>. The text encoder is a BERT read from a local folder (--text_model:
config.json + model.safetensors or pytorch_model.bin from BertModel.save_pretrained, and the tokenizer's files from
its save_pretrained; nothing is downloaded): pooled output -> Linear(768 -> 1024) -> dropout 0.5
(models/text_encoders.py), fine-tuned unless --text_frozen True. Images go through a ResNet18 (or torchvision's
ViT-B/16: --image_encoder vit_b_16), from scratch unless --image_pretrain names a local file (torchvision's ImageNet
resnet18 / vit_b_16 state dict, or a checkpoint of this project's runs).

The MMCosine release has no Food-101 script; the defaults are BalanceBenchmark's (GeWu-Lab/BalanceBenchmark @4c1482f),
which published baseline 91.65 / MMCosine 92.16 accuracy: titles of 40 tokens, concat fusion, AdamW lr 1e-3 weight
decay 0.01, batch 32, 30 epochs, StepLR(10, 0.1), MMCosine scale 15 (its trainer_config.yaml), and the best test
epoch reported (the public split has no validation set, and BalanceBenchmark validates on test). --val_split holds a
validation set out of train and chooses best.pt on it instead.
"""
import argparse

from dataset.errors import DataError
from dataset.food101 import FOOD_MODALITIES, Food101Dataset, food_classes, load_food_split, tokenize_titles
from dataset.text_model import load_tokenizer
from dataset.validation import hold_out_validation
from models.encoders import VisualEncoder
from models.image_encoders import ViTImageEncoder
from models.text_encoders import BertTextEncoder
from utils import distributed
from utils.args import add_classification_args, add_list_check_args, add_shared_args, entry_parser, str2bool
from utils.cli import run_main
from utils.datasets import Datasets, check_lists, existing_data_root
from utils.flag_types import IMAGE_SIDE, POSITIVE_INT, Bounded
from utils.runner import DataSource

DROPOUT = Bounded(float, low=0, high=1, high_open=True)
IMAGE_ENCODERS = ("resnet18", "vit_b_16")


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("UPMC-Food101 data")
    g.add_argument("--data_root", default="data/UPMC-Food101",
                   help="folder holding texts/{train,test}_titles.csv and images/{train,test}/<label>/")
    g.add_argument("--text_model", default=None, metavar="PATH",
                   help="local folder of the BERT text model and its tokenizer (e.g. bert-base-uncased saved with "
                        "save_pretrained); never downloaded")
    g.add_argument("--text_length", type=POSITIVE_INT, default=40,
                   help="tokens per title, padded and truncated (BalanceBenchmark's max_length)")
    g.add_argument("--image_size", type=IMAGE_SIDE, default=224, help="image side after the resize")
    g.add_argument("--skip_missing", type=str2bool, default=False, metavar="BOOL",
                   help="leave out title rows whose image is not there, and say how many, instead of stopping")
    g.add_argument("--allow_unlisted", type=str2bool, default=False, metavar="BOOL",
                   help="leave out images that have no title row, and say how many, instead of stopping")
    add_list_check_args(g)
    add_classification_args(g)
    m = parser.add_argument_group("encoders (BalanceBenchmark's text_encoder; a ResNet18 or ViT-B/16 for images)")
    m.add_argument("--image_encoder", choices=list(IMAGE_ENCODERS), default="resnet18",
                   help="resnet18 (512-d) or torchvision's vit_b_16 (768-d; --image_size a multiple of 16)")
    m.add_argument("--text_dim", type=POSITIVE_INT, default=1024, help="output of the projection after BERT's pooler")
    m.add_argument("--text_dropout", type=DROPOUT, default=0.5, help="dropout on the projected text features")
    m.add_argument("--text_dropout_at_eval", type=str2bool, default=False, metavar="BOOL",
                   help="keep that dropout on at evaluation too, as BalanceBenchmark's F.dropout (training=True): its "
                        "test numbers then vary from one evaluation to the next")
    m.add_argument("--text_attention_mask", type=str2bool, default=True, metavar="BOOL",
                   help="pass the attention mask to BERT, so [PAD] tokens are not attended to (False: the input ids "
                        "alone, as BalanceBenchmark)")
    m.add_argument("--text_frozen", type=str2bool, default=False, metavar="BOOL",
                   help="keep BERT's weights fixed (no gradient, eval mode) and train the projection and the rest; "
                        "False fine-tunes BERT, as BalanceBenchmark")
    add_shared_args(parser, "BalanceBenchmark's configs: AdamW, wd 0.01, StepLR(10, 0.1)", epochs=30, batch_size=32,
                    lr_decay_step=10, modalities=FOOD_MODALITIES)
    # global_config.yaml: AdamW (lr 1e-3 = base_lr, weight_decay 0.01, torch's betas)
    parser.set_defaults(optimizer="adamw", weight_decay=0.01)
    return parser


def split_notes(name: str, split) -> list:
    notes = []
    if split.skipped:
        used = f"{len(split.samples)} of the {split.rows} rows are used"
        changed = " (so the test set is not the published one)" if name == "test" else ""
        notes.append(f"--skip_missing: left out {len(split.skipped)} {name} title row(s) without an image: "
                     f"{used}{changed}")
    if split.unlisted:
        notes.append(f"--allow_unlisted: left out {len(split.unlisted)} {name} image(s) without a title row")
    return notes


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "UPMC-Food101", "food101")
    if args.cache_dir is not None:
        raise DataError("--cache_dir: the decode-once cache holds audio and frames, not UPMC-Food101's images and "
                        "titles (titles are tokenised once in memory). Leave the flag out")
    tokenizer = load_tokenizer(str(args.text_model) if args.text_model is not None else None)
    classes = food_classes(root)
    splits = {"test": load_food_split(root, "test", classes, args.skip_missing, args.allow_unlisted)}
    if with_train:
        splits["train"] = load_food_split(root, "train", classes, args.skip_missing, args.allow_unlisted)
    test = splits["test"].samples
    train = splits["train"].samples if with_train else None
    counts = f"{len(train)} train / {len(test)} test" if with_train else f"{len(test)} test"
    notes = [f"split: the public train / test split, {counts} samples of {len(classes)} classes (a training run keeps "
             "them in its run directory)"]
    for name, split in splits.items():
        notes += split_notes(name, split)
    notes += check_lists({"train": train, "test": test} if with_train else {"test": test}, args.allow_overlap,
                         args.allow_duplicates)
    val = None
    if with_train and args.val_split is not None:
        train, val, note = hold_out_validation(train, test, args.val_split, args.random_seed, classes, root)
        notes.append(note)
        notes += check_lists({"validation": val}, args.allow_overlap, args.allow_duplicates)

    def make(split: str, samples, train_mode: bool, name: str) -> Food101Dataset:
        titles = splits[split].titles  # every title tokenised once, here
        tokens = tokenize_titles(tokenizer, [titles[key] for key, _ in samples], args.text_length)
        return Food101Dataset(root / "images" / split, samples, tokens, train_mode, args.image_size, name)

    data = Datasets(classes=classes, test=make("test", test, False, "test split"), notes=notes)
    if with_train:
        data.train = make("train", train, True, "train split")
        data.val = make("train", val, False, "validation split") if val is not None else None
    data.keep_lists(classes, train=train, val=val, test=test)
    return data


def build_encoders(args) -> dict:
    """{"image": ResNet18 (or ViT-B/16), "text": BERT + projection}, in the dataset's order."""
    text = BertTextEncoder(args.text_model, args.text_dim, args.text_dropout, args.text_attention_mask,
                           args.text_frozen, args.text_dropout_at_eval, args.text_length)
    words = len(load_tokenizer(str(args.text_model)))
    if words > text.vocab_size:
        raise DataError(f"--text_model {args.text_model}: its tokenizer has {words} tokens but the model's "
                        f"vocabulary {text.vocab_size}: they are not one model's. Save both from the same model")
    if text.note and distributed.is_main_process():
        print(text.note, flush=True)
    if args.image_encoder == "vit_b_16":
        image = ViTImageEncoder(args.image_size)
    else:
        image = VisualEncoder(bn_init=args.bn_init)  # (B, 3, 1, H, W): an image is a one-frame clip
    return {"image": image, "text": text}


SOURCE = DataSource(name="food", script="main_Food.py", build=build_datasets, modalities=FOOD_MODALITIES,
                    encoders=build_encoders, model_defaults={"fusion_method": "concat", "scaling": 15.0})


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
