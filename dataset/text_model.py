"""The local folder of a BERT text model (--text_model PATH): what it must hold, its tokenizer and its weights,
read with `transformers` from the folder alone (local_files_only: nothing is ever downloaded).

A folder works when it holds
- config.json of a BERT model and its weights, model.safetensors or pytorch_model.bin, as
  BertModel.save_pretrained(PATH) writes them (a bert-base-uncased download holds them too), and
- the tokenizer: tokenizer.json or vocab.txt (with tokenizer_config.json), as the tokenizer's
  save_pretrained(PATH) writes them.
A folder that lacks one of them, or whose files cannot be read, is one DataError saying what to put there.
"""
import json
from functools import lru_cache
from pathlib import Path

from .errors import DataError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin",  # or sharded, with an index
                "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
PUT_THERE = ("Put there a BERT model saved with BertModel.save_pretrained (config.json + model.safetensors or "
             "pytorch_model.bin) and its tokenizer saved with the tokenizer's save_pretrained (vocab.txt or "
             "tokenizer.json, with tokenizer_config.json); nothing is downloaded")


def quiet_transformers() -> None:
    """No progress bars or load reports from transformers: a run says what matters in its own lines."""
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def text_model_folder(path, need: str = "both") -> Path:
    """The folder, checked for what `need` asks ("weights", "tokenizer" or "both"); else one DataError."""
    if path is None:
        raise DataError(f"--text_model is needed: the folder of the BERT text encoder. {PUT_THERE}")
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"--text_model {folder}: no such folder. {PUT_THERE}")
    if need in ("weights", "both"):
        if not (folder / "config.json").is_file():
            raise DataError(f"--text_model {folder} holds no config.json. {PUT_THERE}")
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise DataError(f"--text_model {folder} holds no weights (model.safetensors or pytorch_model.bin). "
                            f"{PUT_THERE}")
    if need in ("tokenizer", "both") and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise DataError(f"--text_model {folder} holds no tokenizer (vocab.txt or tokenizer.json). {PUT_THERE}")
    return folder


def bert_config(path):
    """The folder's config, which must describe a BERT model."""
    folder = text_model_folder(path, "weights")
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise DataError(f"--text_model {folder}: config.json cannot be read ({err}). {PUT_THERE}") from None
    if model_type not in (None, "bert"):
        raise DataError(f"--text_model {folder} holds a {model_type!r} model, not a BERT one. {PUT_THERE}")
    quiet_transformers()
    from transformers import BertConfig
    try:
        return BertConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers raises OSError / ValueError / EnvironmentError with long texts
        raise DataError(f"--text_model {folder}: config.json cannot be read ({first_words(err)}). "
                        f"{PUT_THERE}") from None


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """BertTokenizer.from_pretrained(path, local_files_only=True), once per folder."""
    folder = text_model_folder(path, "tokenizer")
    quiet_transformers()
    from transformers import BertTokenizer
    try:
        tokenizer = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:
        raise DataError(f"--text_model {folder}: the tokenizer cannot be read ({first_words(err)}). "
                        f"{PUT_THERE}") from None
    if len(tokenizer) == 0 or tokenizer.pad_token_id is None:
        raise DataError(f"--text_model {folder}: the tokenizer has no vocabulary (or no [PAD] token). {PUT_THERE}")
    return tokenizer


def load_bert(path, dtype=None):
    """BertModel.from_pretrained(path, local_files_only=True) in float32. A missing pooler (a checkpoint saved
    without one) is left as initialised and said in the returned note; any other missing weight is an error."""
    import torch
    config = bert_config(path)
    from transformers import BertModel
    try:
        model, info = BertModel.from_pretrained(str(path), config=config, local_files_only=True,
                                                dtype=dtype or torch.float32, output_loading_info=True)
    except Exception as err:
        raise DataError(f"--text_model {path}: the weights cannot be read ({first_words(err)}). {PUT_THERE}") from None
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    if mismatched or [k for k in missing if not k.startswith("pooler.")]:
        first = (mismatched or [k for k in missing if not k.startswith("pooler.")])[0]
        raise DataError(f"--text_model {path}: the weights do not fit its config.json ({len(missing)} missing, "
                        f"{len(mismatched)} of another shape; first: {first}). {PUT_THERE}")
    note = "note: --text_model has no pooler weights; the pooler starts as initialised" if missing else None
    return model, note


def first_words(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:limit]
