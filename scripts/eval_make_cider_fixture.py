#!/usr/bin/env python3
"""Writes trainer/eval/tests/fixtures/eval/cider_fixture.json: the CIDEr-D parity fixture.

Reference implementation: pycocoevalcap (the COCO caption evaluation used by COCO, OpenFlamingo and MM1).
Raw captions go through pycocoevalcap's own PTBTokenizer (Stanford CoreNLP 3.4.1 via Java, `-lowerCase`,
then its punctuation-token removal) and the tokenised text through `Cider().compute_score`, exactly as
`pycocoevalcap.eval.COCOEvalCap` does. The fixture stores raw captions, the tokenised captions, the
per-image scores and the corpus score; the Rust test checks both our tokenizer and our scorer.

Needs Java (`apt-get install -y default-jre-headless`) and `pip install pycocoevalcap` (venv ~/.venvs/mm1-eval).
Run: ~/.venvs/mm1-eval/bin/python scripts/eval_make_cider_fixture.py
"""
import json
import os
import random

from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

OUT = os.path.join(os.path.dirname(__file__), "..", "trainer", "eval", "tests", "fixtures", "eval", "cider_fixture.json")

COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
SHAPES = ["circle", "square", "triangle", "star", "cross"]
ANIMALS = ["dog", "cat", "horse", "bird", "sheep", "cow"]
PLACES = ["on a beach", "in a park", "next to a table", "on top of a hill", "in the street", "near the water"]
NUMBERS = ["one", "two", "three", "four", "five", "2", "3", "10"]

# Punctuation and casing as it shows up in real COCO captions (all tokenised identically by the Java PTB
# tokenizer and by mm1's Rust port; see docs/ablations.md "CIDEr-D").
TRICKY = [
    "A man riding a wave on top of a surfboard.",
    "It's a cat's bed, isn't it?",
    "Two dogs' toys are lying on the grass!",
    "A black-and-white photo of a street (taken at night).",
    "The sign says \"STOP\" in big letters.",
    "A plate with food: rice, beans; and a fork.",
    "A 3.5-inch screen shows 10:30 and 3,000 people...",
    "Don't touch the man's hat -- it's new",
    "People who can't see the bus aren't waiting.",
    "A toy [red] and a box {blue} on a desk",
    "THE BIG DOG RUNS FAST!!!",
    "Is this a kitchen?! yes it is",
    "A woman in the U.S. holds $5 and 50% off coupons & cards",
    "a dog 's ball , on the lawn .",
    "A  man   with    extra   spaces .",
    "they're sure we've seen what you'll do and I'd say I'm here",
    "A person's e-mail and/or phone #1",
]


def caption(rng, scene):
    colour, shape, animal, place, number = scene
    forms = [
        f"a {colour} {shape} {place}",
        f"{number} {animal}s {place}",
        f"A {colour} {shape} next to {number} {animal}s.",
        f"There is a {animal} {place}, with a {colour} {shape}.",
        f"The {animal} is looking at the {colour} {shape}",
        f"An image of {number} {animal}s and a {shape} {place}.",
        f"a {animal} near a {colour} {shape}",
    ]
    return rng.choice(forms)


def perturb(rng, text):
    words = text.split()
    op = rng.randrange(5)
    if op == 0 and len(words) > 3:
        del words[rng.randrange(len(words))]
    elif op == 1 and len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif op == 2:
        words.insert(rng.randrange(len(words) + 1), rng.choice(COLOURS))
    elif op == 3:
        words = words + words[: rng.randrange(1, 4)]  # repeated n-grams exercise clipping
    return " ".join(words)


def main():
    rng = random.Random(1234)
    images = []
    for i in range(48):
        scene = (rng.choice(COLOURS), rng.choice(SHAPES), rng.choice(ANIMALS), rng.choice(PLACES), rng.choice(NUMBERS))
        refs = [caption(rng, scene) for _ in range(5)]
        if i < len(TRICKY):
            refs[rng.randrange(5)] = TRICKY[i]
        kind = i % 6
        if kind == 0:
            cand = refs[0]  # identical to a reference
        elif kind in (1, 2):
            cand = perturb(rng, refs[rng.randrange(5)])
        elif kind == 3:
            cand = caption(rng, scene)
        elif kind == 4:
            cand = TRICKY[(i * 7) % len(TRICKY)]  # unrelated caption
        else:
            cand = "a a a a dog dog dog dog" if i % 12 == 5 else "a " + rng.choice(ANIMALS)
        images.append({"id": f"img{i:03d}", "candidate": cand, "references": refs})
    # Images with fewer references (COCO has 5-7; some user sets have 1).
    images[7]["references"] = images[7]["references"][:1]
    images[8]["references"] = images[8]["references"][:3]

    gts = {im["id"]: [{"caption": c} for c in im["references"]] for im in images}
    res = {im["id"]: [{"caption": im["candidate"]}] for im in images}
    tok = PTBTokenizer()
    gts_tok = tok.tokenize(gts)
    res_tok = tok.tokenize(res)
    corpus, per_image = Cider().compute_score(gts_tok, res_tok)
    ids = list(gts_tok.keys())
    for im in images:
        im["candidate_tokenized"] = res_tok[im["id"]][0]
        im["references_tokenized"] = gts_tok[im["id"]]
        im["cider"] = float(per_image[ids.index(im["id"])])

    # A second corpus: the first 10 images alone (document frequencies change with the set).
    sub = ids[:10]
    sub_corpus, sub_scores = Cider().compute_score({k: gts_tok[k] for k in sub}, {k: res_tok[k] for k in sub})

    out = {
        "generator": "scripts/eval_make_cider_fixture.py (pycocoevalcap PTBTokenizer + Cider, n=4, sigma=6)",
        "corpus_cider": float(corpus),
        "images": images,
        "subset_ids": sub,
        "subset_corpus_cider": float(sub_corpus),
        "subset_cider": [float(s) for s in sub_scores],
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    print(f"wrote {OUT}: {len(images)} images, corpus CIDEr-D {corpus:.6f}, subset {sub_corpus:.6f}")


if __name__ == "__main__":
    main()
