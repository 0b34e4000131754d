# Training data for the small Ling models: a byte-level BPE tokenizer (HF `tokenizers`, digits split one by
# one as in the Ling pre-tokenizer) trained on KJV prose (Debian bible-kjv-text) plus synthetic text, and a
# seeded row sampler that mixes prose windows with synthetic retrieval (passkey, magic-number lookup in
# repeat / distractor haystacks) and multi-step arithmetic in the formats `ling eval` uses (eval.md §1.2,
# §2). Needle prompts are assembled at the token level the way the evaluator builds them (separately
# encoded prefix, haystack units with a truncated last unit, needle + "\n", question). Limits: English only.
import json
import random

import torch

SPECIALS = ["<|endoftext|>", "<|role_end|>", "<role>", "</role>"]
# Qwen2/Ling-style split: single digits, letters with one leading non-letter, punctuation runs, newlines.
PRETOK = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PK_PREFIX = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
             "I will quiz you about the important information there.\n")
PK_QUESTION = "What is the pass key? The pass key is"
ADJ = ["able", "bright", "calm", "dark", "eager", "fair", "gentle", "happy", "icy", "jolly", "kind", "lucky",
       "mighty", "noble", "odd", "proud", "quick", "rapid", "silent", "tall", "united", "vast", "wise", "young",
       "ancient", "bold", "crisp", "daring", "early", "fierce", "golden", "hollow", "ivory", "jagged", "keen",
       "lively", "modern", "narrow", "orange", "plain", "quiet", "rough", "sharp", "tiny", "upper", "vivid"]
NOUN = ["apple", "bridge", "castle", "desert", "eagle", "forest", "garden", "harbor", "island", "jungle",
        "kettle", "ladder", "market", "needle", "ocean", "pencil", "river", "saddle", "tower", "valley",
        "window", "yard", "anchor", "basket", "candle", "dragon", "engine", "feather", "glove", "hammer",
        "jacket", "kingdom", "lantern", "mirror", "nest", "orchard", "pillow", "rabbit", "silver", "tiger"]


def load_prose(path):
    """KJV verses, one per line -> list of paragraphs of ~8 verses (held-out split is by position)."""
    with open(path, encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip()]
    return [" ".join(lines[i:i + 8]) for i in range(0, len(lines), 8)]


def train_tokenizer(texts, vocab_size):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOK), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def tokenizer_config(max_len):
    tmpl = ("{% for m in messages %}<role>{{ m['role'] | upper }}</role>{{ m['content'] }}<|role_end|>{% endfor %}"
            "{% if add_generation_prompt %}<role>ASSISTANT</role>{% endif %}")
    return {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "add_bos_token": False,
            "add_eos_token": False, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "model_max_length": max_len, "clean_up_tokenization_spaces": False, "chat_template": tmpl,
            "added_tokens_decoder": {str(i): {"content": s, "special": True, "lstrip": False, "rstrip": False,
                                              "normalized": False, "single_word": False}
                                     for i, s in enumerate(SPECIALS)}}


def word_key(r):
    return r.choice(ADJ) + "-" + r.choice(NOUN)


def arith_problem(r):
    """(question, solution ending '#### N'): the templates of the evaluator's arith task family."""
    t = r.randrange(7)
    s = str
    if t == 0:
        a, b, c = r.randint(5, 40), r.randint(2, 9), r.randint(3, 12)
        d = r.randint(1, a)
        x, y = a + b * c, a + b * c - d
        q = (f"Tom has {a} marbles. He buys {b} bags with {c} marbles each, then gives {d} marbles to his sister. "
             "How many marbles does Tom have now?")
        sol = (f"He buys {b} * {c} = {b * c} marbles. He has {a} + {b * c} = {x}. After giving away {d} he has "
               f"{x} - {d} = {y}.")
        ans = y
    elif t == 1:
        pe, nb, x, y = r.randint(1, 5), r.randint(2, 9), r.randint(2, 10), r.randint(1, 6)
        cost = pe * x + nb * y
        bill = (cost // 10 + 1 + r.randrange(3)) * 10
        q = (f"Pencils cost ${pe} each and notebooks cost ${nb} each. Maria buys {x} pencils and {y} notebooks "
             f"and pays with a ${bill} bill. How much change does she get?")
        sol = (f"Pencils: {x} * {pe} = {pe * x}. Notebooks: {y} * {nb} = {nb * y}. Total: {pe * x} + {nb * y} = "
               f"{cost}. Change: {bill} - {cost} = {bill - cost}.")
        ans = bill - cost
    elif t == 2:
        c, h, sp = r.randint(2, 30), r.randint(2, 50), r.randint(1, 9)
        legs = 4 * c + 2 * h + 8 * sp
        q = f"A farm has {c} cows, {h} chickens and {sp} spiders. How many legs are there in total?"
        sol = (f"Cows: {c} * 4 = {4 * c}. Chickens: {h} * 2 = {2 * h}. Spiders: {sp} * 8 = {8 * sp}. Total: "
               f"{4 * c} + {2 * h} + {8 * sp} = {legs}.")
        ans = legs
    elif t == 3:
        a, d = r.randint(20, 90), r.randint(2, 7)
        sold = r.randint(10, a * d - 1)
        g = r.randint(0, a * d - sold)
        left = a * d - sold - g
        q = (f"A bakery bakes {a} loaves a day for {d} days. It sells {sold} loaves and gives away {g}. "
             "How many loaves are left?")
        sol = f"Baked: {a} * {d} = {a * d}. Left: {a * d} - {sold} - {g} = {left}."
        ans = left
    elif t == 4:
        a, b, c, d = r.randint(2, 30), r.randint(1, 20), r.randint(2, 9), r.randint(1, 50)
        y, z = a + b, (a + b) * c
        q = f"Let x = {a}. Let y = x + {b}. Let z = y * {c}. What is z - {d}?"
        sol = f"y = {a} + {b} = {y}. z = {y} * {c} = {z}. z - {d} = {z - d}."
        ans = z - d
    elif t == 5:
        a, b, c, m = r.randint(10, 99), r.randint(2, 9), r.randint(1, 99), r.randint(7, 23)
        x, y = a * b, a * b + c
        q = (f"Start with {a}. Multiply by {b}, add {c}, then take the remainder when dividing by {m}. "
             "What is the result?")
        sol = f"{a} * {b} = {x}. {x} + {c} = {y}. {y} mod {m} = {y % m}."
        ans = y % m
    else:
        v = [r.randint(-50, 200) for _ in range(6)]
        sv = sorted(v, reverse=True)
        q = f"Here are six numbers: {', '.join(map(s, v))}. What is the sum of the three largest?"
        sol = f"The three largest are {sv[0]}, {sv[1]} and {sv[2]}. Their sum is {sv[0] + sv[1] + sv[2]}."
        ans = sv[0] + sv[1] + sv[2]
    return q, sol + f"\n#### {ans}"


def synthetic_texts(r, n):
    """Plain-text samples of every synthetic format (for tokenizer training)."""
    out = []
    for _ in range(n):
        k = r.randint(1, 50000)
        out.append(PK_PREFIX + (FILLER + "\n") * 3 + f"The pass key is {k}. Remember it. {k} is the pass key.\n"
                   + PK_QUESTION + f" {k}.\n")
        q, sol = arith_problem(r)
        out.append(f"Question: {q}\nAnswer: {sol}\n\n")
        out.append(f"One of the special magic numbers for {word_key(r)} is: {r.randint(1000000, 9999999)}.")
    return out


class Sampler:
    """Seeded rows of exactly T+1 token ids. Each row starts with one sample (prose window, passkey prompt,
    magic-number lookup or arithmetic shots) and is filled up with prose after <|endoftext|>."""

    def __init__(self, tok, prose_ids, seed, mix):
        self.tok = tok
        self.enc = lambda s: tok.encode(s).ids
        self.eot = tok.token_to_id("<|endoftext|>")
        self.prose = prose_ids  # 1-D LongTensor
        self.r = random.Random(seed)
        self.mix = mix  # list of (kind, weight)
        self.filler_ids = self.enc(FILLER + "\n")
        self.pk_prefix = self.enc(PK_PREFIX)
        self.pk_q = self.enc(PK_QUESTION)
        self.verses = None

    def prose_window(self, n):
        s = self.r.randrange(0, len(self.prose) - n - 1)
        return self.prose[s:s + n].tolist()

    def needle_prompt(self, prefix, units, needles, suffix, total):
        """Token-level assembly: prefix, haystack units (last one cut), needles at unit boundaries, suffix."""
        nd = [self.enc(t + "\n") for t, _ in needles]
        budget = total - len(prefix) - len(suffix) - sum(len(x) for x in nd)
        if budget < 0:
            return None
        hay, bounds, i = [], [0], 0
        while len(hay) < budget:
            u = units(i)
            take = min(len(u), budget - len(hay))
            hay += u[:take]
            if take == len(u):
                bounds.append(len(hay))
            i += 1
        at = []
        for k, (_, depth) in enumerate(needles):
            want = depth / 100.0 * budget
            at.append((min(bounds, key=lambda b: abs(b - want)), k))
        at.sort(key=lambda a: a[0])
        out, pos = list(prefix), 0
        for p, k in at:
            out += hay[pos:p] + nd[k]
            pos = p
        return out + hay[pos:] + suffix

    def prose_units(self):
        s = self.r.randrange(0, len(self.prose) - 4096)
        base = self.prose[s:s + 4096].tolist()
        nl = self.enc("\n")
        return lambda i: base[(i * 24) % 4000:(i * 24) % 4000 + 24] + nl

    def passkey(self, total):
        r = self.r
        k = str(r.randint(1, 50000) if r.random() < 0.8 else r.randint(1, 9999999))
        needle = f"The pass key is {k}. Remember it. {k} is the pass key."
        units = (lambda i: self.filler_ids) if r.random() < 0.8 else self.prose_units()
        prefix = self.pk_prefix if r.random() < 0.9 else []
        body = self.needle_prompt(prefix, units, [(needle, r.uniform(0, 100))], self.pk_q, total)
        if body is None:
            return None
        return body + self.enc(f" {k}.\n") + [self.eot]

    def magic(self, total):
        r = self.r
        key, val = word_key(r), str(r.randint(1000000, 9999999))
        prefix = self.enc("Some special magic numbers are hidden within the following text. Make sure to "
                          "memorize it. I will quiz you about the numbers afterwards.\n")
        suffix = self.enc(f"What is the special magic numbers for {key} mentioned in the provided text? The "
                          f"special magic numbers for {key} mentioned in the provided text is")
        if r.random() < 0.5:
            units = lambda i: self.filler_ids
        else:
            cache = {}

            def units(i):
                if i not in cache:
                    k2 = word_key(r)
                    while k2 == key:
                        k2 = word_key(r)
                    cache[i] = self.enc(f"One of the special magic numbers for {k2} is: "
                                        f"{r.randint(1000000, 9999999)}.\n")
                return cache[i]
        body = self.needle_prompt(prefix, units,
                                  [(f"One of the special magic numbers for {key} is: {val}.", r.uniform(0, 100))],
                                  suffix, total)
        if body is None:
            return None
        return body + self.enc(f" {val}.\n") + [self.eot]

    def arith(self, total):
        out = []
        while len(out) < total:
            q, sol = arith_problem(self.r)
            out += self.enc(f"Question: {q}\nAnswer: {sol}\n\n")
        return out

    def row(self, T):
        kinds, weights = zip(*self.mix)
        kind = self.r.choices(kinds, weights)[0]
        if kind == "prose":
            return self.prose_window(T + 1)
        n = self.r.randint(max(128, T // 4), T - 16)
        ids = getattr(self, kind)(n) if kind != "arith" else self.arith(min(n, 400))
        if ids is None:
            return self.prose_window(T + 1)
        ids = ids[:T + 1]
        if len(ids) < T + 1:
            ids = ids + [self.eot] + self.prose_window(T + 1)[: T - len(ids)]
        return ids

    def batch(self, B, T):
        return torch.tensor([self.row(T) for _ in range(B)], dtype=torch.long)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
