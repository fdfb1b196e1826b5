#!/usr/bin/env python3
"""Writes trainer/eval/tests/fixtures/eval/vqa_fixture.json: expected VQA normalisation and accuracy.

The functions below are the official VQAv2 evaluation (GT-Vision-Lab/VQA,
PythonEvaluationTools/vqaEvaluation/vqaEval.py: processPunctuation, processDigitArticle and the
per-question accuracy of evaluate()), transcribed statement by statement so that Python's own `re`
semantics (including the `re.UNICODE` passed as `count` to `periodStrip.sub`) define the expected values.
No third-party packages needed: python3 scripts/eval_make_vqa_fixture.py
"""
import json
import os
import re

OUT = os.path.join(os.path.dirname(__file__), "..", "trainer", "eval", "tests", "fixtures", "eval", "vqa_fixture.json")

contractions = {"aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't", "dont": "don't",
    "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd", "howll": "how'll",
    "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't",
    "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am",
    "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock",
    "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've"}
manualMap = {'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4', 'five': '5',
             'six': '6', 'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10'}
articles = ['a', 'an', 'the']
periodStrip = re.compile(r"(?!<=\d)(\.)(?!\d)")
commaStrip = re.compile(r"(\d)(\,)(\d)")
punct = [';', r"/", '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!']


def processPunctuation(inText):
    outText = inText
    for p in punct:
        if (p + ' ' in inText or ' ' + p in inText) or (re.search(commaStrip, inText) != None):
            outText = outText.replace(p, '')
        else:
            outText = outText.replace(p, ' ')
    outText = periodStrip.sub("", outText, re.UNICODE)
    return outText


def processDigitArticle(inText):
    outText = []
    tempText = inText.lower().split()
    for word in tempText:
        word = manualMap.setdefault(word, word)
        if word not in articles:
            outText.append(word)
    for wordId, word in enumerate(outText):
        if word in contractions:
            outText[wordId] = contractions[word]
    return ' '.join(outText)


def accuracy(resAns, answers):
    """evaluate() for one question; answers are dicts with distinct answer_id like the annotations."""
    answers = [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]
    resAns = resAns.replace('\n', ' ').replace('\t', ' ').strip()
    resAns = processPunctuation(resAns)
    resAns = processDigitArticle(resAns)
    gtAcc = []
    gtAnswers = [ans['answer'] for ans in answers]
    if len(set(gtAnswers)) > 1:
        for ansDic in answers:
            ansDic['answer'] = processPunctuation(ansDic['answer'])
    for gtAnsDatum in answers:
        otherGTAns = [item for item in answers if item != gtAnsDatum]
        matchingAns = [item for item in otherGTAns if item['answer'] == resAns]
        gtAcc.append(min(1, float(len(matchingAns)) / 3))
    return float(sum(gtAcc)) / len(gtAcc)


NORMALISE = [
    "Yes", "yes.", "Two", "two dogs", "The red one", "an apple", "A", "none", "ten", "Ten!", "3,000",
    "3.5", "3.5.", "e.g. this", "St. Louis", "hello, world", "hello ,world", "dont", "Dont know", "isnt it",
    "it's", "cant", "oclock", "yall", "somebody'd", "Im", "left/right", "left / right", "(yes)", "yes (maybe)",
    "a-b", "a - b", "well-known", "on the table.", "under the chair!?", "#1", "50%", "$5", "1,2,3", "t-shirt",
    "\"quoted\"", "back\\slash", "a_b", "x=y", "<tag>", "@user", "`tick`", "semi;colon", "it is: fine",
    "  spaced   out  ", "tab\there", "new\nline", "no.", "no. 5", "...", "1.", "a.b.c", "U.S.A.",
    "." * 40, "zero point five", "the the the", "3 , 4", "3,4 and x,y", "[red]", "{blue}", "plus+minus",
    "don't", "What's", "whats up", "Ms. Smith",
]

QUESTIONS = [
    ("yes", ["yes"] * 10),
    ("Yes", ["yes"] * 10),
    ("yes", ["yes"] * 2 + ["no"] * 8),
    ("yes", ["yes"] * 3 + ["no"] * 7),
    ("yes", ["yes"] * 4 + ["no"] * 6),
    ("no", ["yes"] * 4 + ["no"] * 6),
    ("2", ["two"] * 10),
    ("two", ["2"] * 10),
    ("two", ["2"] * 9 + ["3"]),
    ("2", ["2"] * 5 + ["two"] * 5),
    ("red", ["red", "red.", "Red", "dark red", "red", "maroon", "red!", "red", "crimson", "red"]),
    ("t-shirt", ["t-shirt", "tshirt", "t shirt", "shirt", "t-shirt", "t-shirt", "tee", "shirt", "t shirt", "t-shirt"]),
    ("t shirt", ["t-shirt", "tshirt", "t shirt", "shirt", "t-shirt", "t-shirt", "tee", "shirt", "t shirt", "t-shirt"]),
    ("the dog", ["dog"] * 6 + ["a dog", "puppy", "dog", "dogs"]),
    ("dont know", ["don't know"] * 4 + ["unknown"] * 6),
    ("3,000", ["3000", "3,000", "3000", "3,000", "3000", "3000", "many", "3000", "3,000", "lots"]),
    ("", ["yes"] * 10),
    ("cat", ["dog"] * 10),
    ("left", ["left", "right", "left", "left", "right", "left", "right", "right", "left", "middle"]),
    ("yes", ["yes", "yes", "no"]),
]


def main():
    out = {
        "generator": "scripts/eval_make_vqa_fixture.py (transcription of the official VQAv2 vqaEval.py)",
        "normalise": [
            {"input": s, "punctuation": processPunctuation(s),
             "answer": processDigitArticle(processPunctuation(s.replace('\n', ' ').replace('\t', ' ').strip()))}
            for s in NORMALISE
        ],
        "accuracy": [{"prediction": p, "answers": a, "accuracy": accuracy(p, a)} for p, a in QUESTIONS],
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {OUT}: {len(NORMALISE)} normalisation cases, {len(QUESTIONS)} accuracy cases")


if __name__ == "__main__":
    main()
