"""Document-masking reference fixtures (tests/fixtures/docmask_hd16.safetensors, docmask_hd12.safetensors).

A packed batch of documents through tools/llama_ref.py's PyTorch Llama (float64) with a
block-diagonal causal mask — token i attends to keys of its own document at or before i — and
RoPE positions restarting at each document ("restart") or running over the whole row ("continue").
Targets that are the first token of a document are ignored (-100): the token before them ends
another document, which cannot see the next one. The same losses come from the unpacked documents,
each run alone from position 0 with the plain causal mask: `doc_losses` holds their summed
cross-entropies, computed that way.

Tensors (F32 unless noted; B rows of T tokens; stored for the stage tests in tests/model):
  inputs, targets        I32 [B, T]   targets -1 where ignored
  doc_start              I32 [B, T]   the position in its row of the first token of each token's document
  model.* / lm_head.weight            initial weights (HF names)
  loss_sum.restart, loss_sum.continue [1]   Σ cross-entropy over the counted targets
  count                  I32 [1]      counted targets
  grad.restart.<name>                 gradients of the mean loss (restart positions)
  doc_losses             [n_docs]     Σ cross-entropy of each document run alone (positions from 0)
Head sizes 16 (the tiled AVX-512 kernels) and 12 (the generic ones); T = 150 spans three 64-key
tiles, so whole tiles are skipped, and one document is a single token.

    /usr/bin/python3 tools/make_docmask_fixture.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

T = 150
# Document starts of each row's T + 1 sample tokens (a row may begin inside a document).
STARTS = [[0, 37, 70, 140], [5, 100, 101, 149]]

CONFIGS = {
    "docmask_hd16": ref.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, vocab_size=59, max_position_embeddings=256),
    "docmask_hd12": ref.LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=1, vocab_size=53, max_position_embeddings=256,
                                    tie_word_embeddings=True),
}


def doc_start_of(starts, n):
    """Each token's document start (0 before the first start)."""
    out, cur = [], 0
    for t in range(n):
        if t in starts:
            cur = t
        out.append(cur)
    return out


def forward_masked(model, tokens, doc_start, restart):
    """Logits [B, T, V] with the block-diagonal causal mask; positions restart per document or not."""
    cfg = model.cfg
    B, Tn = tokens.shape
    x = model.model.embed_tokens(tokens)
    inv_freq = ref.rope_inv_freq(cfg)
    ar = torch.arange(Tn)
    pos = (ar[None, :] - doc_start) if restart else ar[None, :].expand(B, Tn)       # [B, T]
    ang = pos.to(torch.float64)[..., None] * inv_freq                             # [B, T, hd/2]
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = emb.cos().to(x.dtype)[:, None], emb.sin().to(x.dtype)[:, None]      # [B, 1, T, hd]
    keyj = ar[None, None, :]
    allowed = (keyj <= ar[None, :, None]) & (keyj >= doc_start[:, :, None])       # [B, T(q), T(k)]
    hd, nh, nkv = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
    for layer in model.model.layers:
        att = layer.self_attn
        n = layer.input_layernorm(x)
        q = att.q_proj(n).view(B, Tn, nh, hd).transpose(1, 2)
        k = att.k_proj(n).view(B, Tn, nkv, hd).transpose(1, 2)
        v = att.v_proj(n).view(B, Tn, nkv, hd).transpose(1, 2)
        q, k = ref.apply_rope(q, cos, sin), ref.apply_rope(k, cos, sin)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        y = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, Tn, nh * hd)
        h = x + att.o_proj(y)
        x = h + layer.mlp(layer.post_attention_layernorm(h))
    return F.linear(model.model.norm(x), model.lm_head_weight())


def make(name, cfg, seed):
    g = torch.Generator().manual_seed(seed)
    model = ref.LlamaForCausalLM(cfg)
    ref.init_weights(model, g)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    model = model.double()
    B = len(STARTS)
    sample = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=g)
    for b, st in enumerate(STARTS):
        for t in st:
            sample[b, t] = 1  # BOS
    doc = torch.tensor([doc_start_of(st, T + 1) for st in STARTS])
    inputs, targets, doc_start = sample[:, :T], sample[:, 1:].clone(), doc[:, :T]
    for b, st in enumerate(STARTS):
        for t in st:
            if 1 <= t <= T:
                targets[b, t - 1] = ref.IGNORE_INDEX  # the next document's first token
    count = int((targets != ref.IGNORE_INDEX).sum())
    out = {"inputs": inputs.int(), "targets": targets.masked_fill(targets == ref.IGNORE_INDEX, -1).int(),
           "doc_start": doc_start.int()}
    out.update({n: p for n, p in init.items()})
    for restart in (True, False):
        model.zero_grad()
        logits = forward_masked(model, inputs, doc_start, restart)
        ce = F.cross_entropy(logits.view(-1, cfg.vocab_size), targets.reshape(-1), ignore_index=ref.IGNORE_INDEX,
                             reduction="sum")
        out["loss_sum." + ("restart" if restart else "continue")] = ce.detach().reshape(1).float()
        if restart:
            (ce / count).backward()
            for n, p in model.named_parameters():
                out["grad.restart." + n] = p.grad.detach().float()
    # Each document alone, positions from 0, the plain causal mask of llama_ref.
    losses = []
    with torch.no_grad():
        for b, st in enumerate(STARTS):
            bounds = sorted(set([0] + [t for t in st if t <= T])) + [T + 1]
            for a, e in zip(bounds[:-1], bounds[1:]):
                toks = sample[b, a:e]
                if len(toks) < 2:
                    continue  # a one-token document at the end predicts nothing inside the sample
                logits, _ = model(toks[None, :-1])
                losses.append(F.cross_entropy(logits[0], toks[1:], reduction="sum"))
    out["doc_losses"] = torch.stack(losses).float()
    out["count"] = torch.tensor([count], dtype=torch.int32)
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", name + ".safetensors")
    safetensors_io.save(path, out, {"config": cfg.to_json(), "optim": "{}", "starts": str(STARTS)})
    total = float(torch.stack(losses).sum())
    print(name, "loss_sum restart", float(out["loss_sum.restart"]), "continue", float(out["loss_sum.continue"]),
          "documents alone", total, "count", count)
    assert abs(total - float(out["loss_sum.restart"])) < 1e-4 * total


def main():
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        make(name, cfg, 2024 + i)


if __name__ == "__main__":
    main()
