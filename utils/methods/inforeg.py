"""InfoReg (Huang, Wei, Yang, Hu, CVPR 2025), as the authors' InfoReg_CVPR2025/main.py trains.

Defined for two modalities (the authors' code: audio and visual, with constants of its own for each; here the
dataset's first and second, a and v below, so the audio-visual scripts keep the authors' setting). The paper
also evaluates CMU-MOSI, but neither the released code nor any text we could read gives the rule for more than
two modalities, so other counts are refused.

The loss is CE(z) + CE(z_a) + CE(z_v) (the fused head's slices). While the first modality's encoder is still
in its "prime learning window", the modality that is ahead on the batch is held back by a
proximal term towards its weights at the start of the epoch:

    s_m = sum over the batch of softmax(z_m)[true class]
    s_a > s_v:  grad(theta_a) += 0.95 * exp(tanh(s_a - s_v)) * (theta_a - theta_a at epoch start)
    s_v > s_a:  grad(theta_v) += 0.1  * exp(tanh(s_v - s_a)) * (theta_v - theta_v at epoch start)

(the two constants are the authors' hard-coded ones: --inforeg_beta_audio / --inforeg_beta_visual on the
audio-visual scripts, --inforeg_beta_<name> after the entry script's modality names, defaults by position).
The window: after each epoch the trace of the first modality's (the authors': audio's) Fisher information, the
sum over its encoder's convolution / linear weights of mean(sum over the epoch's steps of grad^2), is appended
to a list that starts with ten zeros; at the start of an epoch
    k = (mean of the last 10 traces - mean of the 10 before the last one) / mean of the last 10,
k = 1 in the first epoch, and the proximal term applies while k > --inforeg_threshold (0.05).
"""
import math

import torch
import torch.nn.functional as F

from models.fusion import total

from ..flag_types import NONNEGATIVE
from .base import Method, encoder_params
from .scores import true_class_scores

TRACE_WINDOW = 10
BETAS = (0.95, 0.1)  # the authors' proximal strengths: audio (the first modality), visual (the second)


def learning_window_k(traces) -> float:
    """The authors' k from the list of Fisher traces (which starts with ten zeros)."""
    recent = sum(traces[-TRACE_WINDOW:]) / TRACE_WINDOW
    before = sum(traces[-TRACE_WINDOW - 1:-1]) / TRACE_WINDOW
    return (recent - before) / recent if recent != 0 else 0.0


class InfoReg(Method):
    name = "inforeg"
    n_modalities = 2  # the authors' rule compares two modalities' scores

    @classmethod
    def add_args(cls, group, modalities):
        for m, beta in zip(modalities, BETAS):
            group.add_argument(f"--inforeg_beta_{m}", type=NONNEGATIVE, default=beta,
                               help=f"InfoReg: proximal strength on the {m} encoder when {m} is ahead "
                                    f"(authors' {beta})")
        group.add_argument("--inforeg_threshold", type=NONNEGATIVE, default=0.05,
                           help="InfoReg: regularise while the Fisher-trace growth k exceeds this (authors' 0.05)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.traces = [0.0] * TRACE_WINDOW
        self.k = 1.0
        self.snapshot = {}
        self.fisher = {}

    @property
    def watched(self) -> str:
        """The modality whose Fisher trace opens and closes the window (the authors' audio)."""
        return self.modalities[0]

    def start_epoch(self, epoch, model, optimizer):
        self.k = 1.0 if epoch == 1 else learning_window_k(self.traces)
        self.snapshot = {m: [p.detach().clone() for p in encoder_params(model, m)] for m in self.modalities}
        self.fisher = {}
        return {"inforeg_k": self.k, "inforeg_window_open": float(self.k > self.args.inforeg_threshold)}

    def loss(self, out, labels, epoch):
        return total(F.cross_entropy(logits.float(), labels)
                     for logits in (out.logits, *(out.unimodal[m] for m in self.modalities)))

    def before_step(self, model, out, labels, epoch):
        first, second = self.modalities
        score_1, score_2 = true_class_scores(labels, out.unimodal[first], out.unimodal[second])
        held = None
        if self.k > self.args.inforeg_threshold and score_1 != score_2:
            held = first if score_1 > score_2 else second
            beta = getattr(self.args, f"inforeg_beta_{held}") * math.exp(math.tanh(abs(score_1 - score_2)))
            with torch.no_grad():
                for p, start in zip(encoder_params(model, held), self.snapshot[held]):
                    if p.grad is not None:
                        p.grad.add_(p.detach() - start, alpha=beta)
        with torch.no_grad():  # the watched encoder's Fisher information, from the gradients as they are stepped
            for i, p in enumerate(encoder_params(model, self.watched)):
                if p.grad is not None and p.dim() in (2, 4):
                    square = p.grad.detach().float() ** 2
                    self.fisher[i] = self.fisher[i] + square if i in self.fisher else square
        return {f"inforeg_held_{m}": float(held == m) for m in self.modalities}

    def end_epoch(self, epoch, model):
        trace = sum(f.mean().item() for f in self.fisher.values())
        self.traces.append(trace)
        self.fisher = {}
        return {f"inforeg_fisher_trace_{self.watched}": trace}

    def state_dict(self):
        return {"traces": list(self.traces)}

    def load_state_dict(self, state):
        self.traces = list(state.get("traces", self.traces))
