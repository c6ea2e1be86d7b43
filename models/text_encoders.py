"""The text encoder of image + title datasets (UPMC-Food101): BalanceBenchmark's text_encoder
(balancemm/encoders/pretrained_encoder.py:14-26), a pretrained BERT read from a local folder.

(B, 2, L) int64 (input ids over attention mask) -> BertModel -> its pooled output (the [CLS] state through the
pooler's dense + tanh: theirs `hidden_states[1]`) -> Linear(hidden -> out_dim, 1024 theirs) -> dropout (p 0.5).
Where ours differs by default (docs/fidelity.md), a flag gives theirs:
- the attention mask is passed, so [PAD] positions are not attended to; theirs passes the input ids alone
  (attention_mask=False);
- the dropout acts in training only; theirs is F.dropout with its default training=True, so it also drops half
  the features at evaluation (dropout_at_eval=True).
frozen=True keeps BERT's weights fixed (no gradient, eval mode even while the model trains: no dropout inside BERT),
while the projection trains; theirs fine-tunes all of it (frozen=False).
"""
import torch
import torch.nn.functional as F
from torch import nn

from dataset.errors import DataError
from dataset.text_model import load_bert


class BertTextEncoder(nn.Module):
    def __init__(self, path, out_dim: int = 1024, dropout: float = 0.5, attention_mask: bool = True,
                 frozen: bool = False, dropout_at_eval: bool = False, text_length: int = 40):
        super().__init__()
        self.bert, self.note = load_bert(path)
        limit = self.bert.config.max_position_embeddings
        if text_length > limit:
            raise DataError(f"--text_length {text_length} is longer than the {limit} positions of --text_model {path}. "
                            f"Give --text_length {limit} or less")
        self.linear = nn.Linear(self.bert.config.hidden_size, out_dim)
        self.out_dim, self.dropout, self.dropout_at_eval = out_dim, dropout, dropout_at_eval
        self.attention_mask, self.frozen = attention_mask, frozen
        if frozen:
            self.bert.requires_grad_(False)
            self.bert.eval()

    @property
    def vocab_size(self) -> int:
        return self.bert.config.vocab_size

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.bert.eval()
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3 or tokens.shape[1] != 2:
            raise ValueError(f"expected (batch, 2, length) input ids over attention mask, got {tuple(tokens.shape)}")
        ids, mask = tokens[:, 0].long(), tokens[:, 1].long()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            pooled = self.bert(input_ids=ids, attention_mask=mask if self.attention_mask else None).pooler_output
        out = self.linear(pooled)
        return F.dropout(out, self.dropout, training=self.training or self.dropout_at_eval)
