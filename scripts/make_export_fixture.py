#!/usr/bin/env python3
"""What transformers computes from an `mm1-train export --format hf` folder, for
`trainer/tests/export_transformers.rs` (see its docs for the two-step regeneration). Not run by CI.

Loads OUT/vision with `CLIPVisionModel.from_pretrained` and OUT/llm with
`LlamaForCausalLM.from_pretrained` (f32, as exported; loading fails on any missing or unexpected
key except CLIP's `post_layernorm`, which mm1 does not hold), and writes
trainer/tests/fixtures/export/transformers.json:
- `vision`: SHA-256 of model.safetensors, `last_hidden_state` (flattened) on fixed pixels
  `[1, 3, s, s]`, flat index i -> ((i * 37) % 101) / 50 - 1;
- `llm`: SHA-256 of model.safetensors, the prompt, the last position's logits, 8 greedy ids.

Usage: ~/.venvs/mm1/bin/python scripts/make_export_fixture.py EXPORT_DIR [OUT_JSON]
"""
import hashlib, json, os, sys

import torch
from transformers import CLIPVisionModel, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
EXPORT = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "trainer/tests/fixtures/export/transformers.json")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load(cls, d, allowed_missing):
    model, info = cls.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if not any(a in k for a in allowed_missing)]
    assert not missing and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def vision():
    d = os.path.join(EXPORT, "vision")
    model = load(CLIPVisionModel, d, ["post_layernorm"])
    s = model.config.image_size
    pixels = ((torch.arange(3 * s * s) * 37) % 101).float().div(50).sub(1).reshape(1, 3, s, s)
    with torch.no_grad():
        hidden = model(pixel_values=pixels).last_hidden_state
    return dict(sha256=sha256(os.path.join(d, "model.safetensors")), last_hidden_state=hidden.flatten().tolist())


def llm():
    d = os.path.join(EXPORT, "llm")
    model = load(LlamaForCausalLM, d, [])
    prompt = [5, 17, 42, 99, 7, 250, 3, 61]
    ids = torch.tensor([prompt])
    with torch.no_grad():
        last = model(input_ids=ids).logits[0, -1]
        greedy = []
        for _ in range(8):
            nxt = int(torch.argmax(model(input_ids=ids).logits[0, -1]))
            greedy.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return dict(sha256=sha256(os.path.join(d, "model.safetensors")), prompt=prompt,
                last_logits=last.tolist(), greedy=greedy)


def main():
    out = dict(vision=vision(), llm=llm())
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {OUT}: greedy {out['llm']['greedy']}, "
          f"{len(out['vision']['last_hidden_state'])} vision values")


if __name__ == "__main__":
    main()
