"""A small, self-contained PyTorch Llama used as the independent reference for llamatrain.

It follows the Hugging Face LlamaForCausalLM math and parameter names exactly (no
`transformers` import), so that fixtures generated from it check both our numerics and our
HF name mapping:

  x = embed_tokens[tokens]
  per layer:  h = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(x)
              x = h + down_proj(silu(gate_proj(m)) * up_proj(m)),                 m = post_attention_layernorm(h)
  logits = lm_head(norm(x))          (lm_head = embed_tokens when tie_word_embeddings)
  loss   = mean cross-entropy over targets != -100

RoPE is the HF "rotate_half" convention: dimension i of a head pairs with i + hd/2.
Linear weights are [out, in] (y = x @ W^T), no biases.

Used by tools/make_fixtures.py, tools/make_hf_fixture.py and bench/pytorch_train.py.
Run with Debian's /usr/bin/python3 (torch 1.13).
"""
import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclass
class LlamaConfig:
    # Field names are the Hugging Face config.json names.
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    rope_scaling: dict = None  # config.json's object: {"rope_type": "llama3" | "linear", ...}

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_json(self):
        d = asdict(self)
        if d["rope_scaling"] is None:
            del d["rope_scaling"]  # the fixtures made before rope_scaling existed stay byte-identical
        return json.dumps(d, sort_keys=True)


def _at_least_fp32(x):
    # Half-precision inputs are upcast for reductions; float64 stays float64 (fixtures).
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # Normalise in at least fp32 (as HF does), then scale by the weight.
        in_dtype = x.dtype
        xf = _at_least_fp32(x)
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(in_dtype)


def rope_inv_freq(cfg, device=None):
    """theta^(-2j/hd) per rotary pair j, scaled as cfg.rope_scaling says, in float64.

    "linear": every frequency / factor. "llama3": transformers' _compute_llama3_parameters —
    wavelengths 2*pi/f above original_max_position_embeddings / low_freq_factor are divided by
    factor, those below original / high_freq_factor are kept, and in between the frequency is
    blended: (1 - s) * f / factor + s * f with s = (original / wavelength - low) / (high - low).
    """
    hd = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64, device=device) / hd))
    rs = cfg.rope_scaling
    if rs is None:
        return inv_freq
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "linear":
        return inv_freq / rs["factor"]
    assert kind == "llama3", kind
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_len = rs["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_cos_sin(cfg, seq_len, dtype, device=None):
    """cos/sin tables [T, hd]; angle(pos, j) = pos * inv_freq[j], duplicated over both halves."""
    inv_freq = rope_inv_freq(cfg, device)
    pos = torch.arange(seq_len, dtype=torch.float64, device=device)
    angles = torch.outer(pos, inv_freq)               # [T, hd/2]
    emb = torch.cat([angles, angles], dim=-1)         # [T, hd]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    # x: [B, H, T, hd]; cos/sin: [T, hd]
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd, nh, nkv = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
        self.q_proj = nn.Linear(cfg.hidden_size, nh * hd, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, nkv * hd, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        hd, nh, nkv = self.cfg.head_dim, self.cfg.num_attention_heads, self.cfg.num_key_value_heads
        q = self.q_proj(x).view(B, T, nh, hd).transpose(1, 2)    # [B, nh, T, hd]
        k = self.k_proj(x).view(B, T, nkv, hd).transpose(1, 2)   # [B, nkv, T, hd]
        v = self.v_proj(x).view(B, T, nkv, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # GQA: query head h reads kv head h // (nh / nkv).
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)       # [B, nh, T, T]
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        att = torch.softmax(_at_least_fp32(scores), dim=-1).to(q.dtype)
        y = (att @ v).transpose(1, 2).reshape(B, T, nh * hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    """named_parameters() yields exactly the Hugging Face names (lm_head.weight absent when tied)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def lm_head_weight(self):
        return self.model.embed_tokens.weight if self.cfg.tie_word_embeddings else self.lm_head.weight

    def forward(self, tokens, targets=None):
        """tokens [B, T] int64 -> logits [B, T, V] (and mean loss over targets != -100)."""
        T = tokens.shape[1]
        x = self.model.embed_tokens(tokens)
        cos, sin = rope_cos_sin(self.cfg, T, x.dtype, x.device)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        logits = F.linear(self.model.norm(x), self.lm_head_weight())
        if targets is None:
            return logits, None
        loss = F.cross_entropy(_at_least_fp32(logits).view(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        return logits, loss


def is_norm_weight(name):
    """Parameters that get no weight decay."""
    return name.endswith("layernorm.weight") or name == "model.norm.weight"


def init_weights(model, generator, std=0.02, norm_jitter=0.1):
    """Linear/embedding weights ~ N(0, std); norm weights = 1 + norm_jitter * N(0, 1).

    Draws in fp32 in named_parameters() order so the values are reproducible for a seed.
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            p.copy_(1.0 + norm_jitter * r if is_norm_weight(name) else std * r)


def lr_at(step, warmup_steps, total_steps, max_lr, min_lr):
    """Linear warm-up to max_lr over warmup_steps (update s uses (s+1)/warmup), then cosine to min_lr."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    p = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * p))


def make_adamw(model, lr, betas, eps, weight_decay):
    """torch.optim.AdamW with no decay on norm weights (decay on embeddings and lm_head)."""
    decay = [p for n, p in model.named_parameters() if not is_norm_weight(n)]
    no_decay = [p for n, p in model.named_parameters() if is_norm_weight(n)]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def meta_to_hf_qk(w, n_heads):
    """Reorder q_proj/k_proj rows from Meta/llama2.c RoPE layout (pairs (2i, 2i+1)) to HF (pairs (i, i+hd/2)).

    HF row (h, a, i) = Meta row (h, i, a) for a in {0, 1}, i < hd/2; this is the permutation the HF
    conversion script applies. The rotated q.k dot products are identical under it.
    """
    out_dim, in_dim = w.shape
    return w.view(n_heads, out_dim // n_heads // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def rope_meta(x, theta):
    """Meta's interleaved RoPE on x [..., T, hd]: rotate (x[2i], x[2i+1]) by pos * theta^(-2i/hd)."""
    T, hd = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq).to(x.dtype)   # [T, hd/2]
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * ang.cos() - b * ang.sin()
    out[..., 1::2] = a * ang.sin() + b * ang.cos()
    return out
