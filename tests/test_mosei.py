"""CMU-MOSEI: the MulT pickle reader (dataset/mosei.py) against pickles written here (label modes, audio's -inf,
shapes, which file --aligned reads), the demo pickles read back, BalanceBenchmark's sequence encoder, and bad
pickles refused in one line through main_MOSEI.main."""
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import main_MOSEI
from dataset.demo_mosei import write_mosei_demo
from dataset.errors import DataError
from dataset.mosei import FILES, load_mosei
from models.sequence_encoders import SequenceTransformerEncoder

SENTIMENT = [-3.0, -2.5, -0.4, 0.0, 0.0, 0.4, 1.5, 2.5, 3.0]  # two zeros; halves round to even (MulT's np.round)


def split_arrays(labels, lengths=(3, 5, 4), dims=(300, 74, 35), offset=0.0):
    """Arrays of one split whose values say the sample (text[i] = i + offset) and, for audio, hold -inf."""
    n = len(labels)
    text = np.stack([np.full((lengths[0], dims[0]), i + offset) for i in range(n)])
    audio = np.ones((n, lengths[1], dims[1]))
    audio[1, 2, 7] = -np.inf
    vision = np.ones((n, lengths[2], dims[2]))
    return {"text": text, "audio": audio, "vision": vision,
            "labels": np.asarray(labels, dtype=np.float64).reshape(n, 1, 1), "id": np.array([["v", "0", "1"]] * n)}


def write_pickle(root, data, aligned=False):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / FILES[aligned], "wb") as fh:
        pickle.dump(data, fh)
    return root


def mosei_pickle(root, aligned=False, **changes):
    data = {split: split_arrays(SENTIMENT, offset=k * 100) for k, split in enumerate(("train", "valid", "test"))}
    for split, arrays in changes.items():
        data[split] = arrays
    return write_pickle(root, data, aligned)


# ---- the reader
def test_items_labels_and_the_audio_fix(tmp_path):
    root = mosei_pickle(tmp_path)
    loaded = load_mosei(root, False, "binary_bb")
    train = loaded["train"]
    text, audio, vision, label = train[1]
    assert text.dtype == audio.dtype == vision.dtype == torch.float32
    assert (text.shape, audio.shape, vision.shape) == ((3, 300), (5, 74), (4, 35))
    assert audio[2, 7] == 0 and torch.isfinite(audio).all()  # -inf -> 0, as MulT
    assert loaded["valid"][2][0][0, 0] == 102 and loaded["test"][0][0][0, 0] == 200  # each split its own arrays
    assert train.labels == [0, 0, 0, 1, 1, 1, 1, 1, 1]  # zero counted positive (BalanceBenchmark's acc2)
    assert train[(4, 123)][3] == 1  # (index, seed) keys as the other datasets'
    note = loaded["notes"][0]
    assert "unaligned" in note and "lengths text 3, audio 5, vision 4" in note and "train 9 (3 / 6)" in note


def test_mult_binary_leaves_zero_out_and_seven_rounds_as_numpy(tmp_path):
    root = mosei_pickle(tmp_path)
    mult = load_mosei(root, False, "binary_mult")
    assert mult["train"].labels == [0, 0, 0, 1, 1, 1, 1] and mult["train"].n_left_out == 2
    assert [mult["train"][i][0][0, 0].item() for i in range(7)] == [0, 1, 2, 5, 6, 7, 8]  # samples 3, 4 left out
    assert "train 7 (3 / 4, 2 zero-sentiment left out)" in mult["notes"][0]
    seven = load_mosei(root, False, "seven")
    # -3, -2.5 -> -2, -0.4 -> 0, 0, 0, 0.4 -> 0, 1.5 -> 2, 2.5 -> 2, 3
    assert seven["train"].labels == [0, 1, 3, 3, 3, 3, 5, 5, 6]


def test_aligned_reads_the_other_file_and_a_missing_one_is_named(tmp_path):
    mosei_pickle(tmp_path, aligned=True)
    assert len(load_mosei(tmp_path, True, "binary_bb", splits=("test",))["test"]) == 9
    with pytest.raises(DataError, match=r"mosei_senti_data_noalign.pkl not found: put MulT's unaligned CMU-MOSEI "
                                        r"pickle .* \(mosei_senti_data.pkl is there: pass --aligned True"):
        load_mosei(tmp_path, False, "binary_bb")


def test_the_demo_pickles_read_back(tmp_path):
    root = write_mosei_demo(tmp_path / "MOSEI", n_train=30, seed=3)
    unaligned = load_mosei(root, False, "binary_bb")
    aligned = load_mosei(root, True, "binary_bb")
    assert unaligned["train"].lengths() == [8, 24, 24] and aligned["train"].lengths() == [8, 8, 8]
    assert [len(unaligned[s]) for s in ("train", "valid", "test")] == [30, 10, 15]
    for split in ("train", "valid", "test"):
        assert unaligned[split].labels == aligned[split].labels
        assert torch.equal(unaligned[split].sentiment, aligned[split].sentiment)
        for features in unaligned[split].features + aligned[split].features:
            assert torch.isfinite(features).all()
    sentiment = torch.cat([unaligned[s].sentiment for s in ("train", "valid", "test")])
    assert (sentiment == 0).any() and sentiment.min() >= -3 and sentiment.max() <= 3
    again = write_mosei_demo(tmp_path / "again", n_train=30, seed=3)
    for aligned_file in FILES.values():
        assert (root / aligned_file).read_bytes() == (again / aligned_file).read_bytes()


# ---- the encoder
class TheirTransformerEncoder(nn.Module):
    """BalanceBenchmark's Transformer_Encoder (balancemm/encoders/VisionTransformer_encoder.py), as they wrote it."""

    def __init__(self, input_dim, dim, n_head, n_layers):
        super().__init__()
        self.embed_dim = dim
        self.conv = nn.Conv1d(input_dim, self.embed_dim, kernel_size=1, padding=0, bias=False)
        layer = nn.TransformerEncoderLayer(d_model=self.embed_dim, nhead=n_head)
        self.transformer = nn.TransformerEncoder(layer, num_layers=n_layers)

    def forward(self, x):
        x = self.conv(x.permute([0, 2, 1]))
        x = x.permute([2, 0, 1])
        return self.transformer(x)[-1]


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_the_encoder_is_balancebenchmarks():
    torch.manual_seed(0)
    ours = SequenceTransformerEncoder(74)
    assert ours.out_dim == 1024
    theirs = TheirTransformerEncoder(74, 1024, 4, 2)
    theirs.load_state_dict(ours.state_dict(), strict=True)  # the same parameters, names and shapes
    layer = ours.transformer.layers[0]
    assert layer.linear1.out_features == 2048 and layer.dropout.p == 0.1 and layer.self_attn.num_heads == 4
    x = torch.randn(3, 6, 74)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        out = ours(x)
        assert out.shape == (3, 1024) and torch.allclose(out, theirs(x), atol=1e-5)
        # no positional encoding, no mask: the last step's output ignores the order of the steps before it
        assert torch.allclose(ours(x[:, [2, 0, 4, 1, 3, 5]]), out, atol=1e-5)
        assert not torch.allclose(ours(x[:, [0, 1, 2, 3, 5, 4]]), out, atol=1e-3)


# ---- bad input through main_MOSEI.main: one line, exit 2, no run directory
@pytest.mark.parametrize("case,expected", [
    ("no_file", "mosei_senti_data_noalign.pkl not found: put MulT's unaligned CMU-MOSEI pickle"),
    ("not_a_pickle", "mosei_senti_data_noalign.pkl cannot be read as a pickle"),
    ("no_valid_split", "has no 'valid' split"),
    ("mmsa_keys", "['train'] has no 'audio' key"),
    ("audio_dim", "['valid']['audio'] has shape (9, 5, 33): expected (N, L, 74)"),
    ("vision_count", "['test'] holds different numbers of samples per key (text 9, audio 9, vision 8, labels 9)"),
    ("iemocap_labels", "['train']['labels'] has shape (9, 4, 2): expected (N, 1, 1)"),
    ("nan_text", "['train']['text'] holds 1 NaN or infinite value(s)"),
])
def test_bad_pickles_are_one_line(case, expected, tmp_path, capsys):
    root = tmp_path / "MOSEI"
    root.mkdir()
    if case == "not_a_pickle":
        (root / FILES[False]).write_bytes(b"not a pickle at all")
    elif case != "no_file":
        data = {s: split_arrays(SENTIMENT) for s in ("train", "valid", "test")}
        if case == "no_valid_split":
            del data["valid"]
        if case == "mmsa_keys":
            data["train"] = {"text": data["train"]["text"], "regression_labels": np.zeros(9)}
        if case == "audio_dim":
            data["valid"]["audio"] = np.zeros((9, 5, 33))
        if case == "vision_count":
            data["test"]["vision"] = data["test"]["vision"][:8]
        if case == "iemocap_labels":
            data["train"]["labels"] = np.zeros((9, 4, 2))
        if case == "nan_text":
            data["train"]["text"][0, 0, 0] = np.nan
        write_pickle(root, data)
    with pytest.raises(SystemExit) as exit_info:
        main_MOSEI.main(["--train", "--data_root", str(root), "--run_dir", str(tmp_path / "run"), "--no_progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert str(root) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags,expected", [
    (["--val_split", "0.1"], "--val_split: CMU-MOSEI has its own validation split (valid)"),
    (["--seq_dim", "10", "--seq_heads", "4"], "--seq_dim 10 must divide by --seq_heads 4"),
    (["--fusion_method", "gated"], "--fusion_method gated is defined for two modalities and this dataset has 3"),
    (["--modality", "visual"], "argument --modality: invalid choice: 'visual'"),
])
def test_bad_flags_are_one_line(flags, expected, tmp_path, capsys):
    root = mosei_pickle(tmp_path / "MOSEI")
    with pytest.raises(SystemExit) as exit_info:
        main_MOSEI.main(["--train", "--data_root", str(root), "--run_dir", str(tmp_path / "run"), "--no_progress",
                         *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


def test_zero_nonfinite_sets_them_to_zero_and_says_so(tmp_path):
    data = {s: split_arrays(SENTIMENT) for s in ("train", "valid", "test")}
    data["valid"]["vision"][2, 1, 3] = np.inf
    root = write_pickle(tmp_path, data)
    loaded = load_mosei(root, False, "binary_bb", zero_nonfinite=True)
    assert loaded["valid"][2][2][1, 3] == 0
    assert "--zero_nonfinite: set 1 NaN / infinite vision value(s) of the valid split to 0" in loaded["notes"]
