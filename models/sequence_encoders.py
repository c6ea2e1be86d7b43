"""Encoders of feature sequences (CMU-MOSEI's GloVe words, COVAREP audio frames, Facet face frames): BalanceBenchmark's
`Transformer_Encoder` (balancemm/encoders/VisionTransformer_encoder.py:7-35, `Transformer_` in its
encoder_config.yaml), one per modality.

(B, L, D) -> Conv1d(D -> dim, kernel 1, no bias) -> (L, B, dim) -> nn.TransformerEncoder of `layers`
TransformerEncoderLayer(d_model=dim, nhead=heads) with PyTorch's defaults (feed-forward 2048, dropout 0.1, ReLU,
post-norm), no positional encoding and no padding mask -> the output at the last time step, (B, dim).
BalanceBenchmark: dim 1024, 4 heads, 2 layers; the flags that shrink it are main_MOSEI.py's --seq_*.
"""
import torch
from torch import nn


class SequenceTransformerEncoder(nn.Module):
    """(B, L, input_dim) float features -> (B, dim): the transformer's output at the last time step."""

    def __init__(self, input_dim: int, dim: int = 1024, heads: int = 4, layers: int = 2, feedforward: int = 2048,
                 dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"the width {dim} must divide by the {heads} attention heads")
        self.input_dim, self.out_dim = input_dim, dim  # out_dim: the feature size the classifier reads
        self.conv = nn.Conv1d(input_dim, dim, kernel_size=1, padding=0, bias=False)
        layer = nn.TransformerEncoderLayer(d_model=dim, nhead=heads, dim_feedforward=feedforward, dropout=dropout)
        # Sequence-first as theirs; nested tensors only matter with a padding mask, which neither passes.
        self.transformer = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.input_dim:
            raise ValueError(f"expected (batch, length, {self.input_dim}) features, got {tuple(x.shape)}")
        x = self.conv(x.permute(0, 2, 1))       # (B, dim, L)
        x = self.transformer(x.permute(2, 0, 1))  # (L, B, dim)
        return x[-1]
