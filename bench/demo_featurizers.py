"""MAUVE features for the demo: the run's own small GPT-2 against the MiniLM sentence model.

    python bench/demo_featurizers.py [--run-dir results/demo]   # after `make demo`

From a finished demo run: 200 human texts (train texts the models never saw as prompts,
cut to the run's max_length), 3 seeds of unbiased samples from the MLE model continuing
their first 50 tokens, then for each featurizer: the seconds to featurize all 800 texts,
MAUVE of each seed against the human texts (mean, std over seeds), and the human-vs-human
MAUVE of two other sets of 200 texts and of random halves. One thread, as a demo job.
Writes bench/results/demo_featurizers.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mixce.config import load_config
from mixce.gpt2.metrics.features import make_featurizer
from mixce.gpt2.metrics.mauve_score import mauve_from_features
from mixce.gpt2.models import load_model
from mixce.gpt2.sample import generate, parse_decoding
from mixce.gpt2.tokenizer import load_tokenizer
from mixce.io import read_texts, write_json

REPO = Path(__file__).resolve().parents[1]
N = 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=str(REPO / "results" / "demo"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "demo_featurizers.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(args.run_dir)
    gpt2 = load_config([REPO / "config.yaml", REPO / "config" / "demo.yaml"])["gpt2"]
    max_length = gpt2["finetune"]["max_length"]
    prompt_tokens = gpt2["sampling"]["prompt_tokens"]
    dataset, model_name = gpt2["use_datasets"][0], gpt2["use_models"][0]
    tokenizer = load_tokenizer(run / "models" / "tokenizer")
    texts = read_texts(run / "data" / dataset / "train.jsonl")[-3 * N :]  # past the train size
    ids = [tokenizer(t)["input_ids"][:max_length] for t in texts]
    human = [tokenizer.decode(i) for i in ids]
    n_train = gpt2["finetune"]["train_size"]
    model = load_model(run / "finetune" / dataset / model_name / f"mle_n{n_train}" / "model", "cpu")
    samples = {}
    for seed in range(3):
        out = generate(
            model.eval(),
            [i[:prompt_tokens] for i in ids[:N]],
            decoding=parse_decoding("unbiased"),
            max_new_tokens=max_length - prompt_tokens,
            eos_id=tokenizer.eos_token_id,
            seed=seed,
            batch_size=40,
            device="cpu",
        )
        samples[seed] = [
            tokenizer.decode(i[:prompt_tokens] + list(g.token_ids))
            for i, g in zip(ids[:N], out, strict=True)
        ]
    featurizers = {
        "own_gpt2": {
            "kind": "gpt2",
            "name": str(run / "models" / "pretrain" / model_name / "model"),
            "tokenizer": str(run / "models" / "tokenizer"),
            "max_len": 256,
        },
        "minilm": {"kind": "sentence", "max_len": 256},
    }
    record = {"command": "python bench/demo_featurizers.py", "n_texts": N, "featurizers": {}}
    for name, spec in featurizers.items():
        featurizer = make_featurizer({**spec, "batch_size": 40, "device": "cpu"})
        start = time.perf_counter()
        feats_h = featurizer.featurize(human)
        feats_s = {seed: featurizer.featurize(s) for seed, s in samples.items()}
        seconds = time.perf_counter() - start
        model_mauve = [
            mauve_from_features(feats_h[:N], f, seed=25)["mauve"] for f in feats_s.values()
        ]
        halves = []
        for seed in range(3):
            order = np.random.default_rng(seed).permutation(N)
            halves.append(
                mauve_from_features(feats_h[order[: N // 2]], feats_h[order[N // 2 :]], seed=25)[
                    "mauve"
                ]
            )
        other = mauve_from_features(feats_h[N : 2 * N], feats_h[2 * N :], seed=25)["mauve"]
        record["featurizers"][name] = {
            "seconds_800_texts": round(seconds, 1),
            "model_mauve": [round(float(m), 4) for m in model_mauve],
            "model_mauve_std": round(float(np.std(model_mauve, ddof=1)), 4),
            "human_halves_mauve": [round(float(m), 4) for m in halves],
            "human_other_texts_mauve": round(float(other), 4),
        }
        print(name, record["featurizers"][name], flush=True)
    write_json(args.out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
