"""How close a routing decision's prompt-token estimate comes to the count, and what each costs.

    python benchmarks/decision_tokens.py [--data ../shared/data/routing]

A routing decision prices every candidate with the prompt's tokens. A text longer than
``router.tokens.SAMPLE_ABOVE`` characters is estimated from slices of it (``count_messages(sample=True)``)
instead of tokenised whole; this prints the estimate's error against the count (estimate / count - 1)
by prompt length, on both encodings the gateway counts with, for the prompts of the routing datasets
(RouterBench's few-shot prompts, MMLU, GSM8K's eight-shot prompts), the repository's own files, and
seeded mixes of their paragraphs (prose, code and JSON in one prompt: the hard case); and the CPU of
each way per prompt at 1, 10 and 100 KB (pinned to CPU 1 when ``taskset`` is used to start it).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.tokens import SAMPLE_ABOVE, Tokenizer  # noqa: E402


def corpus(data: Path) -> list[str]:
    texts: list[str] = []
    for name in ("routerbench_subset.jsonl", "routellm_gpt4_mixtral.jsonl"):
        path = data / name
        if path.exists():
            rows = [json.loads(line) for line in path.open()]
            random.Random(0).shuffle(rows)
            texts += [r["prompt"] for r in rows[:600]]
    files = [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("router/**/*.py"), *ROOT.glob("deploy/**/*.json")]
    texts += [f.read_text() for f in sorted(files)]
    paras = [p for t in texts for p in t.split("\n\n") if p.strip()]
    rng = random.Random(1)
    texts += ["\n\n".join(rng.sample(paras, k)) for k in (20, 60, 200) for _ in range(40)]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    args = ap.parse_args()
    tok = Tokenizer()
    texts = [t for t in corpus(args.data) if len(t) > SAMPLE_ABOVE]
    print(f"{len(texts)} texts longer than {SAMPLE_ABOVE} characters (shorter ones are counted exactly)")
    for model in ("gpt-4o", "gpt-4"):
        for lo, hi in ((SAMPLE_ABOVE, 10_000), (10_000, 50_000), (50_000, 10**9)):
            errs = []
            for t in texts:
                if lo < len(t) <= hi:
                    msgs = [{"role": "user", "content": t}]
                    errs.append(tok.count_messages(model, msgs, sample=True) / tok.count_messages(model, msgs) - 1)
            if not errs:
                continue
            errs.sort()
            q = lambda p: errs[int(p * (len(errs) - 1))]  # noqa: E731
            print(
                f"{model:7} {lo:>6}-{hi if hi < 10**9 else '':<6} chars, {len(errs):4} texts: mean {statistics.mean(errs):+.3f}, "
                f"mean |error| {statistics.mean(map(abs, errs)):.3f}, 5th-95th percentile {q(0.05):+.3f} .. {q(0.95):+.3f}, "
                f"worst {errs[0]:+.3f} / {errs[-1]:+.3f}"
            )
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    rng = random.Random(2)
    for size in (1_000, 10_000, 100_000):
        for label, sample in (("count", False), ("estimate", True)):  # distinct prompts: no count cached
            prompts = [f"[{label} {i}] " + " ".join(rng.choice(words) for _ in range(size // 6)) for i in range(30)]
            t0 = time.process_time()
            for p in prompts:
                tok.count_messages("gpt-4o", [{"role": "user", "content": p}], sample=sample)
            print(
                f"{size:>7} characters, {label:8}: {(time.process_time() - t0) * 1000 / len(prompts):.3f} ms per prompt"
            )


if __name__ == "__main__":
    main()
