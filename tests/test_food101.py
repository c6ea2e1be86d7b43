"""UPMC-Food101 (image + title): the reader against generated trees (classes, header or none, title cleaning, the
tokens and attention mask made once at build, the image transforms), the BERT text encoder from a local folder
(attention mask, frozen, dropout at evaluation), the ViT-B/16 option and its local weights, the demo tree read back,
and bad input (a row without its image, an image without its row, an unknown label, a text model folder without
weights or tokenizer) as one `error:` line through main_Food.main."""
import csv
import json

import pytest
import torch
from PIL import Image

import main_Food
from dataset.demo_food101 import DEMO_VOCABULARY, FOOD_DEMO_CLASSES, write_text_model
from dataset.errors import DataError
from dataset.food101 import (FOOD_MODALITIES, Food101Dataset, clean_title, food_classes, load_food_split,
                             tokenize_titles)
from dataset.text_model import bert_config, load_tokenizer
from models.image_encoders import ViTImageEncoder
from models.text_encoders import BertTextEncoder

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "pizza", "soup", "with", "cheese", "hot", "cold", "tomato"]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return write_text_model(tmp_path_factory.mktemp("bert") / "tiny", WORDS, seed=0)


def make_tree(root, rows, extra_images=(), header=("Image_path", "text", "label"), splits=("train", "test")):
    """rows: (split, label, image name, text); every row gets its image unless its name starts with 'gone'."""
    for split in splits:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "texts").mkdir(parents=True, exist_ok=True)
    for split, label, image, _ in list(rows) + [(s, lab, img, None) for s, lab, img in extra_images]:
        folder = root / "images" / split / label
        folder.mkdir(parents=True, exist_ok=True)
        if not image.startswith("gone"):
            Image.new("RGB", (12, 10), (40 * len(label) % 255, 90, 160)).save(folder / image)
    for split in splits:
        with open(root / "texts" / f"{split}_titles.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            if header:
                writer.writerow(header)
            for s, label, image, text in rows:
                if s == split:
                    row = dict(zip(("Image_path", "text", "label"), (image, text, label)))
                    writer.writerow([row[name] for name in (header or ("Image_path", "text", "label"))])
    return root


ROWS = [("train", "soup", "soup_1.jpg", "RT hot soup #tomato http://t.co/x1 tail"),
        ("train", "pizza", "pizza_1.jpg", "pizza, with cheese"),
        ("train", "pizza", "pizza_2.jpg", "cold pizza"),
        ("test", "soup", "soup_9.jpg", "tomato soup with cheese and more words than fit"),
        ("test", "pizza", "pizza_9.jpg", "#pizza")]


def test_title_cleaning_is_balancebenchmarks():
    assert clean_title("RT  hot soup") == "hot soup"
    assert clean_title("a RT b") == "a RT b"                      # only a leading RT
    assert clean_title("soup http://t.co/x rest\nnext") == "soup next"  # a URL takes the rest of its line
    assert clean_title("#pizza #with #cheese") == "pizza with cheese"


@pytest.mark.parametrize("header", [("Image_path", "text", "label"), ("label", "Image_path", "text"), None])
def test_reader_classes_samples_and_titles(header, tmp_path):
    root = make_tree(tmp_path / "food", ROWS, header=header)
    classes = food_classes(root)
    assert classes == ["pizza", "soup"]  # sorted folders of images/train
    train = load_food_split(root, "train", classes)
    assert train.samples == [("soup/soup_1.jpg", 1), ("pizza/pizza_1.jpg", 0), ("pizza/pizza_2.jpg", 0)]
    assert train.titles["soup/soup_1.jpg"] == "hot soup tomato "
    assert train.titles["pizza/pizza_1.jpg"] == "pizza, with cheese"


def test_tokens_and_mask_made_once_at_build(text_model, tmp_path):
    root = make_tree(tmp_path / "food", ROWS)
    classes = food_classes(root)
    test = load_food_split(root, "test", classes)
    tokenizer = load_tokenizer(str(text_model))
    titles = [test.titles[key] for key, _ in test.samples]
    tokens = tokenize_titles(tokenizer, titles, 6)
    ids = {w: i for i, w in enumerate(WORDS)}
    # "tomato soup with cheese and more ..." truncated to 6: [CLS] tomato soup with cheese [SEP]; "pizza" padded
    assert tokens[0, 0].tolist() == [ids["[CLS]"], ids["tomato"], ids["soup"], ids["with"], ids["cheese"], ids["[SEP]"]]
    assert tokens[1, 0].tolist() == [ids["[CLS]"], ids["pizza"], ids["[SEP]"], 0, 0, 0]
    assert tokens[:, 1].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    data = Food101Dataset(root / "images" / "test", test.samples, tokens, train=False, image_size=16)
    image, text, label = data[1]
    assert image.shape == (3, 1, 16, 16) and image.dtype == torch.uint8 and label == 0
    assert text.dtype == torch.long and torch.equal(text, tokens[1])  # a row of the table built once
    assert FOOD_MODALITIES[1].prepare(text).dtype == torch.long
    assert FOOD_MODALITIES[0].prepare(image.unsqueeze(0)).dtype == torch.float32


def test_train_augmentation_follows_the_key_seed_and_test_is_a_plain_resize(tmp_path):
    root = make_tree(tmp_path / "food", ROWS)
    train = load_food_split(root, "train", food_classes(root))
    tokens = torch.zeros(len(train.samples), 2, 4, dtype=torch.long)
    data = Food101Dataset(root / "images" / "train", train.samples, tokens, train=True, image_size=16)
    assert torch.equal(data[(0, 7)][0], data[(0, 7)][0])
    assert any(not torch.equal(data[(0, 7)][0], data[(0, seed)][0]) for seed in range(8, 12))
    plain = data.evaluation_view()
    assert torch.equal(plain[(0, 7)][0], plain[(0, 8)][0]) and data.train


def test_demo_tree_reads_back(tmp_path):
    from dataset import demo
    demo.main(["--dataset", "food101", "--out", str(tmp_path / "Food101"), "--clips_per_class", "4",
               "--image_size", "16"])
    root = tmp_path / "Food101"
    tokenizer = load_tokenizer(str(root / "text_model"))
    assert bert_config(root / "text_model").hidden_size == 16 and len(tokenizer) == len(DEMO_VOCABULARY)
    classes = food_classes(root)
    assert classes == FOOD_DEMO_CLASSES
    train, test = (load_food_split(root, split, classes) for split in ("train", "test"))
    assert (len(train.samples), len(test.samples)) == (18, 6)
    assert not any(t.startswith("RT ") or "#" in t or "http" in t for t in train.titles.values())


def test_text_encoder_mask_frozen_and_dropout(text_model):
    torch.manual_seed(0)
    tokens = torch.tensor([[[2, 5, 3, 0, 0], [1, 1, 1, 0, 0]]])
    masked = BertTextEncoder(text_model, out_dim=8, dropout=0.0).eval()
    theirs = BertTextEncoder(text_model, out_dim=8, dropout=0.0, attention_mask=False).eval()
    theirs.linear.load_state_dict(masked.linear.state_dict())
    assert masked.out_dim == 8 and masked(tokens).shape == (1, 8)
    assert not torch.allclose(masked(tokens), theirs(tokens))  # theirs attends to [PAD]
    frozen = BertTextEncoder(text_model, out_dim=8, frozen=True).train()
    assert not frozen.bert.training and frozen.linear.training
    assert not any(p.requires_grad for p in frozen.bert.parameters()) and frozen.linear.weight.requires_grad
    frozen(tokens).sum().backward()
    assert frozen.linear.weight.grad is not None
    quiet = BertTextEncoder(text_model, out_dim=8).eval()
    assert torch.equal(quiet(tokens), quiet(tokens))
    noisy = BertTextEncoder(text_model, out_dim=64, dropout_at_eval=True).eval()
    assert not torch.equal(noisy(tokens), noisy(tokens))  # BalanceBenchmark's F.dropout at evaluation


def test_vit_option_loads_local_weights_and_resizes_position_embeddings(tmp_path):
    from torchvision.models import vit_b_16
    with torch.device("meta"):  # the default is torchvision's ViT-B/16, layer for layer
        ours, theirs = ViTImageEncoder(224).state_dict(), vit_b_16().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items() if not k.startswith("heads")}
    tiny = dict(patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
    source = ViTImageEncoder(16, **tiny)
    weights = tmp_path / "vit.pth"
    torch.save({**source.state_dict(), "heads.head.weight": torch.zeros(1000, 16)}, weights)
    encoder = ViTImageEncoder(32, **tiny)
    report = encoder.load_pretrained(weights)
    assert "interpolated from 5 to 17 tokens" in report
    assert torch.equal(encoder.conv_proj.weight, source.conv_proj.weight)
    assert encoder(torch.rand(2, 3, 1, 32, 32)).shape == (2, 16) and encoder.out_dim == 16
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "resnet.pth")
    with pytest.raises(DataError, match="does not hold this ViT's weights"):
        encoder.load_pretrained(tmp_path / "resnet.pth")
    with pytest.raises(DataError, match="multiple of 8"):
        ViTImageEncoder(20, **tiny)


def bad_model(kind, base, good):
    folder = base / kind
    folder.mkdir()
    if kind == "no_weights":
        for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
            (folder / name).write_bytes((good / name).read_bytes())
    elif kind == "no_tokenizer":
        for name in ("config.json", "model.safetensors"):
            (folder / name).write_bytes((good / name).read_bytes())
    elif kind == "not_bert":
        for name in ("model.safetensors", "vocab.txt"):
            (folder / name).write_bytes((good / name).read_bytes())
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    return folder


@pytest.mark.parametrize("damage,message", [
    ("missing_image", "row(s) of {root}/texts/train_titles.csv name an image that is not there (row 3: "),
    ("extra_image", "image(s) under {root}/images/train have no row in"),
    ("unknown_label", "have a label that is no class folder of images/train (row 2: 'sushi'"),
    ("no_weights", "holds no weights (model.safetensors or pytorch_model.bin). Put there a BERT model saved with "
                   "BertModel.save_pretrained"),
    ("no_tokenizer", "holds no tokenizer (vocab.txt or tokenizer.json)"),
    ("not_bert", "holds a 'gpt2' model, not a BERT one"),
    ("no_folder", "no such folder. Put there"),
])
def test_bad_input_is_one_line_and_writes_nothing(damage, message, text_model, tmp_path, capsys):
    rows, extra = list(ROWS), []
    if damage == "missing_image":
        rows[1] = ("train", "pizza", "gone.jpg", "pizza")
    elif damage == "extra_image":
        extra = [("train", "soup", "soup_7.jpg")]
    elif damage == "unknown_label":
        rows.insert(0, ("train", "sushi", "sushi_1.jpg", "fish"))
    root = make_tree(tmp_path / "food", rows, extra)
    if damage == "unknown_label":
        (root / "images" / "train" / "sushi" / "sushi_1.jpg").unlink()
        (root / "images" / "train" / "sushi").rmdir()
    model = text_model
    if damage in ("no_weights", "no_tokenizer", "not_bert"):
        model = bad_model(damage, tmp_path, text_model)
    elif damage == "no_folder":
        model = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as exit_info:
        main_Food.main(["--train", "--data_root", str(root), "--text_model", str(model), "--run_dir",
                        str(tmp_path / "run"), "--image_size", "16", "--no_progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message.format(root=root) in err, err
    assert not (tmp_path / "run").exists()


def test_skip_missing_and_allow_unlisted_say_what_they_left_out(text_model, tmp_path):
    rows = list(ROWS)
    rows[1] = ("train", "pizza", "gone.jpg", "pizza")
    root = make_tree(tmp_path / "food", rows, [("test", "soup", "soup_7.jpg")])
    args = main_Food.build_parser().parse_args(["--data_root", str(root), "--text_model", str(text_model),
                                                "--skip_missing", "True", "--allow_unlisted", "True",
                                                "--text_length", "5"])
    data = main_Food.build_datasets(args, with_train=True)
    assert "--skip_missing: left out 1 train title row(s) without an image: 2 of the 3 rows are used" in data.notes
    assert "--allow_unlisted: left out 1 test image(s) without a title row" in data.notes
    assert len(data.train) == 2 and data.train.tokens.shape == (2, 2, 5)


def test_every_numeric_flag_is_range_checked_in_one_line(capsys):
    from utils.flag_types import Bounded
    actions = [a for a in main_Food.build_parser()._actions
               if a.option_strings and (a.type in (int, float) or isinstance(a.type, Bounded))]
    assert actions and all(isinstance(a.type, Bounded) for a in actions), [a.dest for a in actions]
    for argv in (["--text_length", "0"], ["--text_dropout", "1"], ["--text_dim", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main_Food.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and f"argument {argv[0]}" in err, err
