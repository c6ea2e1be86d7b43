"""MSLR (Yao & Mihalcea, Findings of ACL 2022): modality-specific learning rates, for any number of modalities.

Each encoder trains with its own learning rate; the fusion head keeps --learning_rate, and the
StepLR schedule scales all groups alike. The paper's fixed ("keep") strategy carries over the
rate each uni-modal model was trained with: --mslr_unimodal_runs RUN_1 .. RUN_M reads them from the
args.json of each modality's uni-modal run (audio_only and visual_only on the audio-visual scripts), in the
dataset's order. --mslr_<name>_scale (--mslr_audio_scale, ...) sets one by hand as --learning_rate times a
scale (1 for a modality without one). With neither, the fixed strategy would be joint training, so it stops
and says which flags to set.

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
from typing import Dict, Sequence

from dataset.errors import DataError

from .base import Method, encoder_params
from .holdout import KeyedSubset, held_out, shuffled_split
from .unimodal_runs import kept_modality, runs_in_order, unimodal_method


def rate_factor(history) -> float:
    """latest / mean(history); 1 when the mean is 0 (nothing learned yet)."""
    mean = sum(history) / len(history)
    return history[-1] / mean if mean > 0 else 1.0


def unimodal_rate(run_dir, modality: str, modalities: Sequence[str]) -> float:
    """The learning rate `modality`'s uni-modal run (its args.json) was trained with; `modalities`: the dataset's,
    in the order the flag takes the runs."""
    path = Path(run_dir) / "args.json"
    if not path.is_file():
        raise DataError(f"--mslr_unimodal_runs: no args.json in {run_dir}. Give the run directories of "
                        f"{runs_in_order(modalities)}, in that order")
    saved = json.loads(path.read_text())
    if kept_modality(saved) != modality:
        found = saved.get("method")
        if found == "unimodal":
            found = f"unimodal --modality {saved.get('modality')}"
        raise DataError(f"--mslr_unimodal_runs: {run_dir} is a {found!r} run, not {unimodal_method(modality)}. Give "
                        f"{runs_in_order(modalities)}, in that order")
    return float(saved["learning_rate"])


def encoder_rates(args, dynamic: bool, modalities: Sequence[str]) -> Dict[str, float]:
    """{modality: its encoder's lr} from the uni-modal runs or the scales; see the module doc."""
    scales = {m: getattr(args, f"mslr_{m}_scale", None) for m in modalities}
    scale_flags = " / ".join(f"--mslr_{m}_scale" for m in modalities)
    if args.mslr_unimodal_runs:
        if any(s is not None for s in scales.values()):
            raise DataError(f"MSLR: give either --mslr_unimodal_runs or {scale_flags}")
        return {m: unimodal_rate(run, m, modalities) for run, m in zip(args.mslr_unimodal_runs, modalities)}
    if all(s is None for s in scales.values()) and not dynamic:
        runs = " ".join(f"{m.upper()}_RUN" for m in modalities)
        raise DataError(f"--method mslr needs each encoder's learning rate, or it is joint training: pass "
                        f"--mslr_unimodal_runs {runs} ({runs_in_order(modalities)}, whose rates the paper's fixed "
                        f"strategy keeps), or {scale_flags}")
    return {m: args.learning_rate * (1.0 if s is None else s) for m, s in scales.items()}


class MSLR(Method):
    name = "mslr"

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.dynamic = getattr(args, "mslr_strategy", "fixed") == "dynamic"
        self.rates = encoder_rates(args, self.dynamic, self.modalities)
        self.history = {m: deque(maxlen=args.mslr_every) for m in self.modalities} if self.dynamic else {}
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
        """One group per encoder ("<name>_encoder", in the dataset's order), then the rest ("fusion")."""
        lr = self.args.learning_rate
        encoders = {m: encoder_params(model, m) for m in self.modalities}
        taken = {id(p) for params in encoders.values() for p in params}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
        return [*({"params": encoders[m], "lr": self.rates[m], "name": f"{m}_encoder"} for m in self.modalities),
                {"params": rest, "lr": lr, "name": "fusion"}]

    def start_epoch(self, epoch, model, optimizer):
        if not self.dynamic or epoch == 1 or self.measure is None:
            return {}
        stats = self.measure(self.holdout)  # the model after epoch - 1
        record = {}
        for modality in self.modalities:
            accuracy = stats[f"acc_{self.tags[modality]}"]
            self.history[modality].append(accuracy)
            record[f"mslr_holdout_acc_{self.tags[modality]}"] = accuracy
        if (epoch - 1) % self.args.mslr_every == 0:
            for group in optimizer.param_groups:
                name = group.get("name", "")
                modality = name[:-len("_encoder")] if name.endswith("_encoder") else None
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
