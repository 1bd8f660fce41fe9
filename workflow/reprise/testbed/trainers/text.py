"""Transformer classifiers of the paper: GPT-2 (causal, pre-norm), BERT (bidirectional, post-norm).

Both carry a two-label sequence-classification head: upstream fine-tuned both as classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class TransformerShape:
    layers: int
    hidden: int
    heads: int
    vocab: int
    max_positions: int
    labels: int = 2
    dropout: float = 0.1

    @property
    def ffn(self) -> int:
        return 4 * self.hidden


class _SelfAttention(nn.Module):
    """Multi-head attention with one fused q/k/v projection and an output projection."""

    def __init__(self, shape: TransformerShape, causal: bool) -> None:
        super().__init__()
        if shape.hidden % shape.heads:
            raise ValueError(f"hidden size {shape.hidden} is not a multiple of {shape.heads} heads")
        self.heads = shape.heads
        self.causal = causal
        self.dropout = shape.dropout
        self.qkv = nn.Linear(shape.hidden, 3 * shape.hidden)
        self.out = nn.Linear(shape.hidden, shape.hidden)

    def forward(self, x: Tensor) -> Tensor:
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.heads, hidden // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal,
        )
        out: Tensor = self.out(y.transpose(1, 2).reshape(batch, seq, hidden))
        return out


class _GPT2Block(nn.Module):
    def __init__(self, shape: TransformerShape) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(shape.hidden)
        self.attn = _SelfAttention(shape, causal=True)
        self.ln_mlp = nn.LayerNorm(shape.hidden)
        self.mlp = nn.Sequential(
            nn.Linear(shape.hidden, shape.ffn),
            nn.GELU(approximate="tanh"),
            nn.Linear(shape.ffn, shape.hidden),
        )
        self.drop = nn.Dropout(shape.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x)))
        out: Tensor = x + self.drop(self.mlp(self.ln_mlp(x)))
        return out


class GPT2Classifier(nn.Module):
    """GPT-2 decoder stack; the last token's final hidden state is scored per label (no bias)."""

    def __init__(self, shape: TransformerShape) -> None:
        super().__init__()
        self.tokens = nn.Embedding(shape.vocab, shape.hidden)
        self.positions = nn.Embedding(shape.max_positions, shape.hidden)
        self.drop = nn.Dropout(shape.dropout)
        self.blocks = nn.Sequential(*(_GPT2Block(shape) for _ in range(shape.layers)))
        self.ln_final = nn.LayerNorm(shape.hidden)
        self.score = nn.Linear(shape.hidden, shape.labels, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.drop(self.tokens(ids) + self.positions(pos))
        x = self.ln_final(self.blocks(x))
        out: Tensor = self.score(x[:, -1])
        return out


class _BertLayer(nn.Module):
    def __init__(self, shape: TransformerShape) -> None:
        super().__init__()
        self.attn = _SelfAttention(shape, causal=False)
        self.ln_attn = nn.LayerNorm(shape.hidden, eps=1e-12)
        self.mlp = nn.Sequential(
            nn.Linear(shape.hidden, shape.ffn), nn.GELU(), nn.Linear(shape.ffn, shape.hidden)
        )
        self.ln_mlp = nn.LayerNorm(shape.hidden, eps=1e-12)
        self.drop = nn.Dropout(shape.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.ln_attn(x + self.drop(self.attn(x)))
        out: Tensor = self.ln_mlp(x + self.drop(self.mlp(x)))
        return out


class BertClassifier(nn.Module):
    """BERT encoder with token-type embeddings, a tanh pooler on [CLS] and a linear classifier."""

    def __init__(self, shape: TransformerShape) -> None:
        super().__init__()
        self.tokens = nn.Embedding(shape.vocab, shape.hidden)
        self.positions = nn.Embedding(shape.max_positions, shape.hidden)
        self.segments = nn.Embedding(2, shape.hidden)
        self.ln_embed = nn.LayerNorm(shape.hidden, eps=1e-12)
        self.drop = nn.Dropout(shape.dropout)
        self.layers = nn.Sequential(*(_BertLayer(shape) for _ in range(shape.layers)))
        self.pooler = nn.Linear(shape.hidden, shape.hidden)
        self.classifier = nn.Linear(shape.hidden, shape.labels)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        # A single segment: every token type is 0, as for single-sentence classification.
        x = self.tokens(ids) + self.positions(pos) + self.segments(torch.zeros_like(ids))
        x = self.layers(self.drop(self.ln_embed(x)))
        pooled = torch.tanh(self.pooler(x[:, 0]))
        out: Tensor = self.classifier(self.drop(pooled))
        return out
