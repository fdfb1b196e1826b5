#!/usr/bin/env python3
"""Write the tiny pretrained checkpoints that `trainer/tests/init_pretrained.rs` starts runs from
(`[model.init]`), exactly as `save_pretrained` writes them, and transformers' greedy decoding
of one prompt. Not run by CI; the outputs are committed (each file well under 1 MB).

- `clip/`: a full `CLIPModel` (vision and text towers; f32, one `model.safetensors`), so the
  import has to take `vision_model.*` and leave the text tower as ignored keys.
- `llama/`: a `LlamaForCausalLM` saved in bf16 and sharded (`model.safetensors.index.json` +
  several shards). Its vocabulary (320) is the tiny synthetic benchmark's, so a run can train it.
- `llama/tokenizer.json`: a byte-level BPE of exactly 320 tokens without the image /
  end-of-chunk / pad tokens, so taking it as the run's tokenizer adds them (ids 320-322) and
  grows the embedding and head.
- `greedy.json`: the prompt ids and the ids transformers decodes greedily from them (argmax of the
  last position's logits, full recompute each token, the model in f32 holding the bf16 weights,
  as the import casts them), with the gap between the two best logits at each step.

Usage: ~/.venvs/mm1/bin/python scripts/make_init_fixtures.py [OUT_DIR]
(default OUT_DIR: trainer/tests/fixtures/init; needs `pip install transformers safetensors`)
"""
import json, os, shutil, sys

import torch
from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_parity_fixtures import randomise  # noqa: E402  (same weight spread as the parity cases)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "trainer/tests/fixtures/init")


def clip():
    torch.manual_seed(10)
    config = CLIPConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=16),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    randomise(model, 10)
    d = os.path.join(OUT, "clip")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)


def llama():
    torch.manual_seed(11)
    config = LlamaConfig(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    randomise(model, 11)
    model = model.to(torch.bfloat16)
    d = os.path.join(OUT, "llama")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True, max_shard_size="30KB")
    shards = [f for f in os.listdir(d) if f.endswith(".safetensors")]
    assert len(shards) > 1 and os.path.exists(os.path.join(d, "model.safetensors.index.json")), shards

    tokenizer(d, config.vocab_size)

    # Greedy decoding by transformers, from the checkpoint as written, in f32.
    model = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    prompt = [5, 17, 42, 99, 7, 250, 3, 61]
    ids = torch.tensor([prompt])
    out, gaps = [], []
    with torch.no_grad():
        for _ in range(12):
            logits = model(input_ids=ids).logits[0, -1]
            top = torch.topk(logits, 2).values
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            gaps.append(float(top[0] - top[1]))
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    with open(os.path.join(OUT, "greedy.json"), "w") as f:
        json.dump(dict(prompt=prompt, greedy=out, top2_gap=gaps), f, indent=2)
        f.write("\n")
    print(f"llama: {len(shards)} shards; greedy {out}; smallest top-2 gap {min(gaps):.4f}")


def tokenizer(d, size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    words = "a red square left of a blue circle the green triangle is above two small yellow dots".split()
    text = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20
    tok.train_from_iterator(text, trainer)
    assert tok.get_vocab_size() == size, tok.get_vocab_size()
    tok.save(os.path.join(d, "tokenizer.json"))


def main():
    os.makedirs(OUT, exist_ok=True)
    clip()
    llama()
    for root, _, files in os.walk(OUT):
        for f in files:
            size = os.path.getsize(os.path.join(root, f))
            assert size < 1 << 20, (f, size)


if __name__ == "__main__":
    main()
