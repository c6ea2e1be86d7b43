"""IPRM, Instantaneous Probe-and-Rebalance (Yang, Wu, Jiang, "Towards Equilibrium: An Instantaneous Probe-and-
Rebalance Multimodal Learning Approach", IJCAI 2025), as the authors' njustkmg/IJCAI25-IPRM @ 0bb457f trains
(main_av.py:53-77 KL and slerp, :109-151 the step, :181-188 the prediction), for two modalities.

The model: separate linear heads on each encoder's features (head_audio / head_video) and, in place of the fusion,
the geodesic mixup (models/fusion.py GeodesicMixup): slerp(f_1, f_2; w_1, w_2) of the unit features scored by one
layer (head_mixup). Each step, from one pass of the encoders:

  probe (no gradient):  lambda = alpha * lambda(prev) + (1 - alpha) * lambdahat(prev)   (0.5 each at the start)
                        KL_m = mean over the batch of KL(softmax(z_m) || softmax(head_mixup(slerp(f; lambda))))
                        lambdahat_1 = KL_2 / (KL_1 + KL_2),  lambdahat_2 = KL_1 / (KL_1 + KL_2)
  learn (one backward): L = CE(head_mixup(slerp(f; lambdahat))) + CE(z_1) + CE(z_2)

so the modality whose prediction is farther from the mixed one weighs less in the next mix. lambda (the EMA) lives
in the fusion's `mix` buffer, which the prediction z_1 + z_2 + head_mixup(slerp(f; lambda)) uses at test (the
heads_sum combiner): a checkpoint evaluates with the weights it trained to. lambdahat is the method's state.

The probe runs inside the model's forward (model.feature_transform, between the encoders and the fusion), so the
learning pass is the DDP-wrapped one and the encoders run once. Under torchrun the KL means are taken over the
global batch: every process gets the lambdas one process would get on the whole batch.

With --mmcosine True the mix is scored as one vector, s * cos(slerp, W_c) (GeodesicMixup.cosine_logits: each term's
own cosine would drop the mixing weights); the separate heads stay linear, as MMPareto's. The slerp's acos has an unbounded gradient as the
two features' cosine nears 1 (the authors' clamp to [-1, 1] has no margin; ours is the same).
"""
import torch
import torch.nn.functional as F

from models.fusion import total

from .. import distributed
from ..flag_types import PROBABILITY
from .base import Method
from .scores import global_batch_mean

HEAD = {"geodesic": {}, "combine": {"name": "heads_sum", "with_fused": True}}


def kl_to_mix(logits: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """Per sample KL(softmax(logits) || softmax(mixed)) (the authors' compute_kl_divergence before its mean)."""
    log_p, log_q = F.log_softmax(logits.float(), dim=1), F.log_softmax(mixed.float(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def rebalanced_weights(kl_first: torch.Tensor, kl_second: torch.Tensor) -> torch.Tensor:
    """(lambdahat_1, lambdahat_2) = (KL_2, KL_1) / (KL_1 + KL_2): each modality weighs its partner's distance.
    Both predictions equal to the mix (a zero sum, where the authors' code gives NaN) keep the even 0.5 / 0.5."""
    norm = kl_first + kl_second
    if not norm > 0:
        return torch.full((2,), 0.5)
    return torch.stack([kl_second / norm, kl_first / norm]).float().cpu()


class IPRM(Method):
    name = "iprm"
    n_modalities = 2  # the slerp joins two features (the authors' three-modality script pairs them, with a bug)

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--iprm_alpha", type=PROBABILITY, default=0.8,
                           help="IPRM: momentum of the mixing weights, lambda = alpha lambda(prev) + (1 - alpha) "
                                "lambdahat(prev) (the authors' README: 0.8)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.lamhat = None  # (2,) the last step's rebalanced weights, in modality order; None before the first step

    def configure_model(self, model):
        model.add_unimodal_heads()
        model.set_head(HEAD)

    def probe(self, model, enc, labels):
        """model.feature_transform: move the EMA, probe at it, and set the fusion's weights for the learning pass to
        the rebalanced ones. The features pass through unchanged."""
        first, second = self.modalities
        fusion = model.fusion
        with torch.no_grad():
            if self.lamhat is not None:
                alpha = self.args.iprm_alpha
                fusion.mix.copy_(alpha * fusion.mix + (1 - alpha) * self.lamhat.to(fusion.mix.device))
            fusion.weights = None  # the probe mixes at the EMA (the buffer)
            out = model.head({m: f.detach() for m, f in enc.items()})
            kl = torch.stack([kl_to_mix(out.heads[m], out.fused).sum() for m in (first, second)])
            count = torch.tensor([float(len(labels))], device=kl.device)
            sums = distributed.all_reduce_sum(torch.cat([kl.double(), count.double()]))
            kl_first, kl_second = sums[0] / sums[2], sums[1] / sums[2]
            self.lamhat = rebalanced_weights(kl_first, kl_second)
        fusion.weights = dict(zip((first, second), self.lamhat.tolist()))
        self.logged = {**{f"iprm_lambda_{self.tags[m]}": fusion.mix[i].item() for i, m in enumerate((first, second))},
                       **{f"iprm_weight_{self.tags[m]}": self.lamhat[i].item() for i, m in enumerate((first, second))},
                       f"iprm_kl_{self.tags[first]}": kl_first.item(), f"iprm_kl_{self.tags[second]}": kl_second.item()}
        return enc

    def losses(self, out, labels):
        """(CE of the mixup head at the rebalanced weights, {m: CE of m's own head})."""
        return (F.cross_entropy(out.fused.float(), labels),
                {m: F.cross_entropy(out.heads[m].float(), labels) for m in self.modalities})

    def train_step(self, step):
        model = step.raw_model
        model.feature_transform = lambda enc: self.probe(model, enc, step.labels)
        try:
            out = step.forward()
        finally:
            model.feature_transform = None
            model.fusion.weights = None  # evaluation and checkpoints mix at the buffer
        mixed, unimodal = self.losses(out, step.labels)
        loss = mixed + total(unimodal.values())
        step.check_finite(loss)
        self.logged.update({f"iprm_loss_{self.tags[m]}": global_batch_mean(value, step.batch_size)
                            for m, value in unimodal.items()})
        self.logged["iprm_loss_mix"] = global_batch_mean(mixed, step.batch_size)
        extras = step.backward_and_step(loss, lambda: self.before_step(model, out, step.labels, step.epoch))
        return out, extras

    def state_dict(self):
        return {"lamhat": self.lamhat}

    def load_state_dict(self, state):
        self.lamhat = state.get("lamhat")
