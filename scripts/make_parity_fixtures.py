#!/usr/bin/env python3
"""Write tiny random HF `transformers` models and their outputs as parity fixtures for
mm1-models (`models/tests/parity.rs`). Not run by CI; the outputs are committed.

Each case folder holds `case.json`, `config.json` + `model.safetensors` (exactly as
`save_pretrained(..., safe_serialization=True)` writes them) and `io.safetensors`
(inputs and expected outputs). The extra `c_abstractor` kind has no transformers class:
its reference is Honeybee's C-Abstractor written out here in PyTorch, its weights are saved
under mm1-models' own parameter paths and its settings live in `case.json`.

Usage: ~/.venvs/mm1-models/bin/python scripts/make_parity_fixtures.py [OUT_DIR]
(default OUT_DIR: models/tests/fixtures/parity)
"""
import json, os, shutil, sys

import torch
from safetensors.torch import save_file
import torch.nn as nn
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models/tests/fixtures/parity")


def randomise(model, seed):
    """HF's init (std 0.02, norms at 1) makes outputs nearly input-independent; spread the
    weights so that a wrong key mapping or formula shows up as a large difference."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.15 * noise)


def write_case(name, kind, model, io, atol, **extra):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(d, "io.safetensors"))
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(dict(kind=kind, atol=atol, **extra), f, indent=2)
        f.write("\n")
    print(f"{name}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in io.items()))


def llama_case(name, seed, **cfg):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         max_position_embeddings=64, attention_bias=False, mlp_bias=False, **cfg)
    model = LlamaForCausalLM(config).eval()
    randomise(model, seed)
    if config.tie_word_embeddings:
        model.tie_weights()
    ids = torch.randint(0, config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    write_case(name, "llama", model, dict(input_ids=ids.to(torch.int64), logits=logits), atol=2e-4)


def clip_case(name, seed, hw, interpolate, **cfg):
    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, image_size=32, patch_size=8, **cfg)
    model = CLIPVisionModel(config).eval()
    randomise(model, seed)
    px = torch.randn((2, 3, *hw), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = model(pixel_values=px, interpolate_pos_encoding=interpolate).last_hidden_state
    extra = dict(interpolate_pos_encoding=True) if interpolate else {}
    write_case(name, "clip_vision", model, dict(pixel_values=px, last_hidden_state=out), atol=2e-4, **extra)


class LN2d(nn.LayerNorm):
    """timm LayerNorm2d (eps 1e-6)."""
    def __init__(self, c):
        super().__init__(c, eps=1e-6)

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Bottleneck(nn.Module):
    """timm regnet.Bottleneck as Honeybee's RegStage builds it: bottle_ratio 1, group size 1,
    se_ratio 0.25 of the input channels, SiLU, LayerNorm2d, conv1x1+LN shortcut."""
    def __init__(self, ci, co):
        super().__init__()
        se = max(1, round(ci * 0.25))
        self.conv1 = nn.Conv2d(ci, co, 1, bias=False); self.norm1 = LN2d(co)
        self.conv2 = nn.Conv2d(co, co, 3, padding=1, groups=co, bias=False); self.norm2 = LN2d(co)
        self.se = nn.Module(); self.se.fc1 = nn.Conv2d(co, se, 1); self.se.fc2 = nn.Conv2d(se, co, 1)
        self.conv3 = nn.Conv2d(co, co, 1, bias=False); self.norm3 = LN2d(co)
        self.downsample = None if ci == co else nn.Sequential(nn.Conv2d(ci, co, 1, bias=False), LN2d(co))

    def forward(self, x):
        r = x if self.downsample is None else self.downsample(x)
        y = F.silu(self.norm1(self.conv1(x)))
        y = F.silu(self.norm2(self.conv2(y)))
        y = y * torch.sigmoid(self.se.fc2(F.silu(self.se.fc1(y.mean((2, 3), keepdim=True)))))
        return F.silu(self.norm3(self.conv3(y)) + r)


class CAbstractor(nn.Module):
    """Honeybee C-Abstractor on an H x W grid: pos_emb, RegNet stage, adaptive average pool,
    RegNet stage, MLP readout (Linear, SiLU, Linear)."""
    def __init__(self, dv, hidden, d, depth, m, grid):
        super().__init__()
        self.grid, s = grid, int(m ** 0.5)
        self.pos_emb = nn.Parameter(torch.zeros(grid[0] * grid[1], dv))
        self.stage1 = nn.ModuleList(Bottleneck(dv if i == 0 else hidden, hidden) for i in range(depth))
        self.pool = nn.AdaptiveAvgPool2d((s, s))
        self.stage2 = nn.ModuleList(Bottleneck(hidden, hidden) for _ in range(depth))
        self.readout = nn.ModuleList([nn.Linear(hidden, d), nn.Linear(d, d)])

    def forward(self, x):
        b, p, c = x.shape
        y = (x + self.pos_emb).transpose(1, 2).reshape(b, c, *self.grid)
        for blk in self.stage1: y = blk(y)
        y = self.pool(y)
        for blk in self.stage2: y = blk(y)
        t = y.flatten(2).transpose(1, 2)
        return self.readout[1](F.silu(self.readout[0](t)))


def our_names(model):
    """torch state_dict -> mm1-models parameter paths (LayerNorm gamma/beta under `.norm`,
    nn.Linear weights transposed to burn's [in, out])."""
    out = {}
    for mod_name, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            t = p.detach().clone()
            if isinstance(mod, nn.LayerNorm):
                key = f"{mod_name}.norm." + ("gamma" if pname == "weight" else "beta")
            else:
                key = f"{mod_name}.{pname}" if mod_name else pname
                if isinstance(mod, nn.Linear) and pname == "weight":
                    t = t.t()
            out[key] = t.contiguous()
    return out


def c_abstractor_case(name, seed, grid, m, depth):
    """Not a transformers model: Honeybee's C-Abstractor maths written out in PyTorch."""
    torch.manual_seed(seed)
    dv, hidden, d = 16, 24, 20
    model = CAbstractor(dv, hidden, d, depth, m, grid).eval()
    randomise(model, seed)
    x = torch.randn((2, grid[0] * grid[1], dv), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x)
    dir_ = os.path.join(OUT, name)
    shutil.rmtree(dir_, ignore_errors=True); os.makedirs(dir_)
    save_file(our_names(model), os.path.join(dir_, "model.safetensors"), metadata={"format": "pt"})
    save_file(dict(features=x, tokens=y), os.path.join(dir_, "io.safetensors"))
    spec = dict(kind="c_abstractor", atol=1e-4, grid=list(grid), vision_width=dv, llm_width=d,
                num_tokens=m, hidden=hidden, depth=depth)
    with open(os.path.join(dir_, "case.json"), "w") as f:
        json.dump(spec, f, indent=2); f.write("\n")
    print(f"{name}: features {list(x.shape)} -> tokens {list(y.shape)}")


def main():
    torch.set_num_threads(1)
    llama_case("llama_gqa_untied", 1, num_attention_heads=4, num_key_value_heads=2,
               tie_word_embeddings=False)
    llama_case("llama_tied_theta_eps", 2, num_attention_heads=4, num_key_value_heads=4,
               tie_word_embeddings=True, rope_theta=500000.0, rms_norm_eps=1e-5)
    clip_case("clip_vision_quick_gelu", 3, (32, 32), False, hidden_act="quick_gelu")
    # Higher, non-square resolution: 6x8 patches from a 4x4 position table, bicubic.
    clip_case("clip_vision_interpolated", 4, (48, 64), True, hidden_act="gelu", layer_norm_eps=1e-6)
    # Non-square grid whose sides do not divide by the pool size (uneven adaptive windows).
    c_abstractor_case("c_abstractor_6x10", 5, (6, 10), 9, 2)


if __name__ == "__main__":
    main()
