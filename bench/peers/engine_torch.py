#!/usr/bin/env python3
"""PyTorch CPU peer for bench/engine.ts: the same Qwen3 reference model (plain torch modules), timing a
training step (forward + backward + AdamW) and batched KV-cache decoding. Prints one JSON object.

Usage: .cache/venv-torch/bin/python bench/peers/engine_torch.py '{"layers":4,...,"torchThreads":2}'
(PyPI torch 2.15 in the venv bench/peers/setup-torch.sh creates; bench/engine.ts runs it at each thread count.)
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg.get("torchThreads", 2))
torch.manual_seed(0)
L, D, H, HKV, HD, FF, V = (cfg[k] for k in ("layers", "hidden", "heads", "kvHeads", "headDim", "ffn", "vocab"))
EPS = 1e-6
G = H // HKV


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope_tables(n):
    inv = 1.0 / (10000 ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
    ang = torch.arange(n, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    return emb.cos(), emb.sin()


def rot(x, cos, sin):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.Parameter(torch.ones(D))
        self.ln2 = torch.nn.Parameter(torch.ones(D))
        self.qn = torch.nn.Parameter(torch.ones(HD))
        self.kn = torch.nn.Parameter(torch.ones(HD))
        self.q = torch.nn.Linear(D, H * HD, bias=False)
        self.k = torch.nn.Linear(D, HKV * HD, bias=False)
        self.v = torch.nn.Linear(D, HKV * HD, bias=False)
        self.o = torch.nn.Linear(H * HD, D, bias=False)
        self.g = torch.nn.Linear(D, FF, bias=False)
        self.u = torch.nn.Linear(D, FF, bias=False)
        self.d = torch.nn.Linear(FF, D, bias=False)

    def qkv(self, x, cos, sin):
        B, T, _ = x.shape
        h = rms(x, self.ln1)
        q = rms(self.q(h).view(B, T, H, HD), self.qn).transpose(1, 2)
        k = rms(self.k(h).view(B, T, HKV, HD), self.kn).transpose(1, 2)
        v = self.v(h).view(B, T, HKV, HD).transpose(1, 2)
        return rot(q, cos, sin), rot(k, cos, sin), v

    def finish(self, x, att):
        B, T, _ = x.shape
        x = x + self.o(att.transpose(1, 2).reshape(B, T, H * HD))
        h = rms(x, self.ln2)
        return x + self.d(F.silu(self.g(h)) * self.u(h))

    def forward(self, x, cos, sin):
        q, k, v = self.qkv(x, cos, sin)
        k = k.repeat_interleave(G, dim=1)
        v = v.repeat_interleave(G, dim=1)
        T = x.shape[1]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return self.finish(x, s.softmax(-1) @ v)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, D)
        self.layers = torch.nn.ModuleList([Layer() for _ in range(L)])
        self.norm = torch.nn.Parameter(torch.ones(D))
        self.head = torch.nn.Linear(D, V, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        cos, sin = rope_tables(ids.shape[1])
        x = self.emb(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.head(rms(x, self.norm))

    @torch.inference_mode()
    def decode(self, ids, new_tokens):
        B, P = ids.shape
        total = P + new_tokens
        cos_all, sin_all = rope_tables(total)
        kc = [torch.zeros(B, HKV, total, HD) for _ in range(L)]
        vc = [torch.zeros(B, HKV, total, HD) for _ in range(L)]

        def step(tok, pos0):
            T = tok.shape[1]
            cos, sin = cos_all[pos0 : pos0 + T], sin_all[pos0 : pos0 + T]
            x = self.emb(tok)
            for li, layer in enumerate(self.layers):
                q, k, v = layer.qkv(x, cos, sin)
                kc[li][:, :, pos0 : pos0 + T] = k
                vc[li][:, :, pos0 : pos0 + T] = v
                n = pos0 + T
                kk = kc[li][:, :, :n].repeat_interleave(G, dim=1)
                vv = vc[li][:, :, :n].repeat_interleave(G, dim=1)
                s = (q @ kk.transpose(-1, -2)) / math.sqrt(HD)
                if T > 1:
                    s = s.masked_fill(torch.ones(T, n, dtype=torch.bool).triu(n - T + 1), float("-inf"))
                x = layer.finish(x, s.softmax(-1) @ vv)
            return self.head(rms(x[:, -1], self.norm))

        logits = step(ids, 0)
        t0 = time.perf_counter()
        for i in range(new_tokens):
            nxt = logits.argmax(-1, keepdim=True)
            logits = step(nxt, P + i)
        return time.perf_counter() - t0


model = Model()
# fused=True is torch's fastest CPU AdamW.
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
B, T = cfg["batch"], cfg["seq"]
ids = torch.randint(0, V, (B, T))
tgt = torch.randint(0, V, (B, T))


def train_step():
    opt.zero_grad(set_to_none=False)
    loss = F.cross_entropy(model(ids).view(-1, V), tgt.view(-1))
    loss.backward()
    opt.step()


for _ in range(cfg.get("warmup", 2)):
    train_step()
train = []
for _ in range(cfg["runs"]):
    steps, t0 = 0, time.perf_counter()
    while True:
        train_step()
        steps += 1
        dt = time.perf_counter() - t0
        if dt >= cfg.get("minSeconds", 1.0) and steps >= 2:
            break
    train.append(B * T * steps / dt)

dB, dP, dN = cfg["decodeBatch"], cfg["decodePrompt"], cfg["decodeNew"]
prompt = torch.randint(0, V, (dB, dP))
model.decode(prompt, 4)
decode = []
for _ in range(cfg["runs"]):
    dt = model.decode(prompt, dN)
    decode.append(dB * dN / dt)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "train": train, "decode": decode}))
