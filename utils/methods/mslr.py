"""MSLR (Yao & Mihalcea, Findings of ACL 2022): modality-specific learning rates.

Each encoder trains with its own learning rate; the fusion head keeps --learning_rate, and the
StepLR schedule scales all groups alike. The paper's fixed ("keep") strategy carries over the
rate each uni-modal model was trained with: --mslr_unimodal_runs AUDIO_RUN VISUAL_RUN reads them
from an audio_only and a visual_only run's args.json. --mslr_audio_scale / --mslr_visual_scale
set them by hand as --learning_rate times a scale. With neither, the fixed strategy would be
joint training, so it stops and says which flags to set.

--mslr_strategy dynamic adds the paper's dynamic adjustment, as we read it: before each epoch
the accuracy of each modality's own head is measured on the --val_split validation set, or else
on a held-out part of the training split (--mslr_holdout, never trained on); every --mslr_every
epochs each encoder's rate is multiplied by (latest accuracy) / (mean of the last --mslr_every
accuracies), so a modality that is still improving learns faster and one that has stalled or is
degrading slows down. It starts from the rates above, or from --learning_rate.
"""
import json
from collections import deque
from pathlib import Path

from dataset.errors import DataError

from .base import Method, encoder_params
from .holdout import KeyedSubset, held_out, shuffled_split

MODALITIES = (("audio", "_a"), ("visual", "_v"))


def rate_factor(history) -> float:
    """latest / mean(history); 1 when the mean is 0 (nothing learned yet)."""
    mean = sum(history) / len(history)
    return history[-1] / mean if mean > 0 else 1.0


def unimodal_rate(run_dir, method: str) -> float:
    """The learning rate a uni-modal run (its args.json) was trained with."""
    path = Path(run_dir) / "args.json"
    if not path.is_file():
        raise DataError(f"--mslr_unimodal_runs: no args.json in {run_dir}. Give the run directories of an "
                        "audio_only and a visual_only run, in that order")
    saved = json.loads(path.read_text())
    if saved.get("method") != method:
        raise DataError(f"--mslr_unimodal_runs: {run_dir} is a {saved.get('method')!r} run, not {method}. Give an "
                        "audio_only and a visual_only run, in that order")
    return float(saved["learning_rate"])


def encoder_rates(args, dynamic: bool):
    """(audio encoder lr, visual encoder lr) from the uni-modal runs or the scales; see the module doc."""
    scales = (args.mslr_audio_scale, args.mslr_visual_scale)
    if args.mslr_unimodal_runs:
        if any(s is not None for s in scales):
            raise DataError("MSLR: give either --mslr_unimodal_runs or --mslr_audio_scale / --mslr_visual_scale")
        return tuple(unimodal_rate(run, f"{m}_only") for run, (m, _) in zip(args.mslr_unimodal_runs, MODALITIES))
    if all(s is None for s in scales) and not dynamic:
        raise DataError("--method mslr needs each encoder's learning rate, or it is joint training: pass "
                        "--mslr_unimodal_runs AUDIO_RUN VISUAL_RUN (an audio_only and a visual_only run, whose rates "
                        "the paper's fixed strategy keeps), or --mslr_audio_scale / --mslr_visual_scale")
    return tuple(args.learning_rate * (1.0 if s is None else s) for s in scales)


class MSLR(Method):
    name = "mslr"

    def __init__(self, args):
        super().__init__(args)
        self.dynamic = getattr(args, "mslr_strategy", "fixed") == "dynamic"
        self.rates = encoder_rates(args, self.dynamic)
        self.history = {m: deque(maxlen=args.mslr_every) for m, _ in MODALITIES} if self.dynamic else {}
        self.holdout = None  # set by split_train

    def split_train(self, train, seed: int, val=None):
        if not self.dynamic:
            return train, None
        if val is not None:  # --val_split given: measure on it
            self.holdout = val
            return train, val
        held, rest = shuffled_split(len(train), self.args.mslr_holdout, seed)
        self.holdout = held_out(train, sorted(held))
        return KeyedSubset(train, sorted(rest)), self.holdout

    def param_groups(self, model):
        lr = self.args.learning_rate
        audio, visual = encoder_params(model, "audio"), encoder_params(model, "visual")
        taken = {id(p) for p in audio + visual}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
        return [{"params": audio, "lr": self.rates[0], "name": "audio_encoder"},
                {"params": visual, "lr": self.rates[1], "name": "visual_encoder"},
                {"params": rest, "lr": lr, "name": "fusion"}]

    def start_epoch(self, epoch, model, optimizer):
        if not self.dynamic or epoch == 1 or self.measure is None:
            return {}
        stats = self.measure(self.holdout)  # the model after epoch - 1
        record = {}
        for modality, suffix in MODALITIES:
            self.history[modality].append(stats[f"acc{suffix}"])
            record[f"mslr_holdout_acc{suffix}"] = stats[f"acc{suffix}"]
        if (epoch - 1) % self.args.mslr_every == 0:
            for group in optimizer.param_groups:
                modality = group.get("name", "").replace("_encoder", "")
                if modality in self.history:
                    factor = rate_factor(self.history[modality])
                    group["lr"] *= factor
                    record[f"mslr_factor_{modality}"] = factor
        return record

    def state_dict(self):
        return {"history": {m: list(h) for m, h in self.history.items()}}

    def load_state_dict(self, state):
        for modality, values in state.get("history", {}).items():
            self.history[modality].extend(values)
