#!/usr/bin/env python3
"""Write tiny random HF `transformers` models and their outputs as parity fixtures for
mm1-models (`models/tests/parity.rs`). Not run by CI; the outputs are committed.

Each case folder holds `case.json`, `config.json` + `model.safetensors` (exactly as
`save_pretrained(..., safe_serialization=True)` writes them) and `io.safetensors`
(inputs and expected outputs).

Usage: /work/venv-models/bin/python scripts/make_parity_fixtures.py [OUT_DIR]
(default OUT_DIR: models/tests/fixtures/parity)
"""
import json, os, shutil, sys

import torch
from safetensors.torch import save_file
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


def main():
    torch.set_num_threads(1)
    llama_case("llama_gqa_untied", 1, num_attention_heads=4, num_key_value_heads=2,
               tie_word_embeddings=False)
    llama_case("llama_tied_theta_eps", 2, num_attention_heads=4, num_key_value_heads=4,
               tie_word_embeddings=True, rope_theta=500000.0, rms_norm_eps=1e-5)
    clip_case("clip_vision_quick_gelu", 3, (32, 32), False, hidden_act="quick_gelu")
    # Higher, non-square resolution: 6x8 patches from a 4x4 position table, bicubic.
    clip_case("clip_vision_interpolated", 4, (48, 64), True, hidden_act="gelu", layer_norm_eps=1e-6)


if __name__ == "__main__":
    main()
