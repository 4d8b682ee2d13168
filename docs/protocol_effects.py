"""The effect of the protocol points on the demo, for docs/PROTOCOL.md ("Effect on the demo").

    python docs/protocol_effects.py                 # print the Markdown block
    python docs/protocol_effects.py --write         # replace the block in docs/PROTOCOL.md

Two measurements, both from finished demo runs (`make demo` writes results/demo; the clean
run is the same command with `--config run=demo_clean protocol=clean`):

1. Every point at once: Table 2, Table 10 and the controlled metrics of the official run
   against the clean run (each from its own tables/*.csv).
2. The scoring points one at a time, on the official run's own samples and models: the
   metric each point moves, computed by the workflow's functions (mixce.gpt2.metrics.scoring,
   mixce.gpt2.metrics.perplexity) with that point official and then clean, every other point
   official. The training, data and sampling points cannot be switched one at a time without
   a demo run each; the first measurement covers them together.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # the package; tests/layout.py

from layout import replace_marked_block  # noqa: E402

from mixce.config import load_config  # noqa: E402
from mixce.io import read_texts  # noqa: E402

DOC = REPO / "docs" / "PROTOCOL.md"
START = "<!-- demo-effects:start (python docs/protocol_effects.py --write) -->"
END = "<!-- demo-effects:end -->"
OBJECTIVES = {"mle": "MLE", "mixce": "MixCE"}


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}" if abs(x) < 100 else f"{x:.0f}"


def markdown(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- all points


def table_rows(run_dir: Path, dataset: str) -> dict[tuple[str, str], dict[str, float]]:
    """(model, objective) -> the Table 2 / 8 / 9 / 10 numbers of one run."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    t2 = pd.read_csv(run_dir / "tables" / "table2.csv")
    for _, row in t2.iterrows():
        key = (str(row["model"]), str(row["objective"]))
        out[key] = {
            name: float(row.get(f"{dataset}_{name}", np.nan))
            for name in ("ppl", "div", "mauve", "mauve_std", "coh")
        }
    t10 = run_dir / "tables" / "table10.csv"
    if t10.exists():
        for _, row in pd.read_csv(t10).iterrows():
            key = (str(row["model"]), str(row["objective"]))
            cols = [c for c in row.index if c.startswith(dataset) and "len" in c]
            if cols and key in out:
                out[key]["length"] = float(row[cols[0]])
    for table, prefix in (("table8", "c-mauve"), ("table9", "c-coh")):
        path = run_dir / "tables" / f"{table}.csv"
        if not path.exists():
            continue
        for _, row in pd.read_csv(path).iterrows():
            key = (str(row["model"]), str(row["objective"]))
            for col in row.index:
                m = re.fullmatch(rf"{dataset}_(?:\w+_)?(\d+)", col)
                if m and key in out and "std" not in col:
                    out[key][f"{prefix} L={m.group(1)}"] = float(row[col])
    return out


def all_points_block(official: Path, clean: Path, dataset: str) -> str:
    a, b = table_rows(official, dataset), table_rows(clean, dataset)
    metrics = [m for m in next(iter(a.values())) if not m.endswith("_std")]
    rows = []
    for key in a:
        if key not in b:
            continue
        label = "human" if key[0] == "human" else f"{OBJECTIVES.get(key[1], key[1])}"
        for m in metrics:
            x, y = a[key].get(m, np.nan), b[key].get(m, np.nan)
            if np.isnan(x) and np.isnan(y):
                continue
            rows.append([label, m, fmt(x), fmt(y)])
    return markdown(rows, ["row", "metric", "official", "clean"])


# --------------------------------------------------------------------------- one point


def variant_dirs(run_dir: Path, dataset: str, model: str) -> dict[str, Path]:
    """objective -> sample directory (test, unbiased) of the variants Table 2 shows."""
    t2 = pd.read_csv(run_dir / "tables" / "table2.csv")
    out = {}
    for _, row in t2[t2["model"] == model].iterrows():
        variant = row.get(f"{dataset}_variant") if f"{dataset}_variant" in row else None
        objective = str(row["objective"])
        if not isinstance(variant, str):
            eta = row.get(f"{dataset}_eta")
            candidates = sorted((run_dir / "samples" / dataset / model).glob(f"{objective}_*"))
            if objective == "mixce" and isinstance(eta, float) and np.isfinite(eta):
                candidates = [c for c in candidates if f"eta{eta:.2f}" in c.name]
            candidates = [c for c in candidates if "_n" in c.name]
            if not candidates:
                continue
            variant = candidates[0].name
        out[objective] = run_dir / "samples" / dataset / model / variant / "test" / "unbiased"
    return out


def one_point_rows(run_dir: Path, config: dict, dataset: str, model: str) -> Iterator[list[str]]:
    import torch

    from mixce.gpt2.metrics.perplexity import RELEASED_EVAL_BATCH_SIZE, perplexity, token_nll
    from mixce.gpt2.metrics.scoring import (
        attach_human_ids,
        build_featurizer,
        featurize,
        human_records,
        mauve_scores,
        sample_records,
        text_scores,
    )
    from mixce.gpt2.models import load_model
    from mixce.gpt2.tokenizer import encode_texts, load_tokenizer, loader_texts

    gpt2 = config["gpt2"]
    metrics = gpt2["metrics"]
    max_length = gpt2["finetune"]["max_length"]
    lengths = list(metrics["mauve"]["lengths"])
    seed = metrics["mauve"]["seed"]
    torch.set_num_threads(2)
    tokenizer = load_tokenizer(run_dir / "models" / "tokenizer")
    texts = read_texts(run_dir / "data" / dataset / "test.jsonl")
    n = gpt2["sampling"]["n_prompts"]
    human = human_records(
        loader_texts(texts, "official")[: n or None],
        tokenizer,
        gpt2["sampling"]["prompt_tokens"],
        gpt2["sampling"]["max_new_tokens"],
        whole_tokens=max_length - 1,
    )

    def own_model(spec: dict) -> str | None:
        """The directory of a featurizer that is the run's own (pretrained) GPT-2."""
        name = spec.get("model")
        return str(run_dir / "models" / "pretrain" / name / "model") if name else None

    feats = {
        role: build_featurizer(
            metrics[role]["featurizer"],
            own_model(metrics[role]["featurizer"]),
            metrics["batch_size"],
            "cpu",
            str(run_dir / "models" / "tokenizer"),
        )
        for role in ("mauve", "coherence")
    }
    official = {"diversity": "official", "text_length": "official", "newlines": "official"}
    official["coherence_split"] = "official"

    def scores(records, **switch):
        return text_scores(records, tokenizer, feats["coherence"], None, 0, **(official | switch))

    def mauve(records, human_feats, **switch):
        kw = {"length_cuts": "official", "newlines": "official"} | switch
        model_feats = {L: featurize(feats["mauve"], records, tokenizer, L, **kw) for L in lengths}
        return mauve_scores(human_feats, model_feats, seed)

    # every other point official: the human texts' line breaks too (as rule score_human)
    human_feats = {
        setting: {
            L: featurize(
                feats["mauve"], human, tokenizer, L, length_cuts=setting, newlines="official"
            )
            for L in lengths
        }
        for setting in ("official", "clean")
    }
    human_feats_nl = {
        L: featurize(feats["mauve"], human, tokenizer, L, length_cuts="official", newlines="clean")
        for L in lengths
    }
    for objective, sample_dir in variant_dirs(run_dir, dataset, model).items():
        label = OBJECTIVES.get(objective, objective)
        per_seed: dict[str, list[float]] = {}

        def add(name: str, value: float, per_seed: dict[str, list[float]] = per_seed) -> None:
            per_seed.setdefault(name, []).append(value)

        for path in sorted(sample_dir.glob("seed*.jsonl")):
            records = sample_records(str(path))
            attach_human_ids(records, texts, tokenizer, max_length - 1)
            for point, metric in (
                ("diversity", "diversity"),
                ("text_length", "length_words"),
                ("coherence_split", "coherence"),
            ):
                for setting in ("official", "clean"):
                    add(f"{point}|{metric}|{setting}", scores(records, **{point: setting})[metric])
            for setting in ("official", "clean"):
                got = mauve(records, human_feats[setting], length_cuts=setting)
                for L in lengths:
                    add(f"length_cuts|mauve L={L}|{setting}", got[f"mauve_len{L}"])
            got = scores(records, newlines="clean")
            add("newlines (scoring)|coherence|clean", got["coherence"])
            add("newlines (scoring)|coherence|official", scores(records)["coherence"])
            top = max(lengths)
            add(
                f"newlines (scoring)|mauve L={top}|official",
                mauve(records, human_feats["official"])[f"mauve_len{top}"],
            )
            add(
                f"newlines (scoring)|mauve L={top}|clean",
                mauve(records, human_feats_nl, newlines="clean")[f"mauve_len{top}"],
            )
        variant = sample_dir.parents[1].name  # samples/<d>/<m>/<variant>/test/unbiased
        lm = load_model(run_dir / "finetune" / dataset / model / variant / "model", "cpu")
        ids = encode_texts(tokenizer, loader_texts(texts, "official"), max_length)
        nlls = token_nll(lm, ids, batch_size=metrics["batch_size"], device="cpu")
        for setting in ("official", "clean"):
            ppl = perplexity(nlls, average=setting, batch_size=RELEASED_EVAL_BATCH_SIZE)["ppl"]
            per_seed[f"perplexity_average|ppl|{setting}"] = [ppl]
        keys = sorted({k.rsplit("|", 1)[0] for k in per_seed})
        for key in keys:
            point, metric = key.split("|")
            a, b = per_seed[f"{key}|official"], per_seed[f"{key}|clean"]
            yield [f"`{point}`", label, metric, fmt(float(np.mean(a))), fmt(float(np.mean(b)))]


def block(official: Path, clean: Path | None) -> str:
    config = load_config([REPO / "config.yaml", REPO / "config" / "demo.yaml"])
    dataset = config["gpt2"]["use_datasets"][0]
    model = config["gpt2"]["use_models"][0]
    parts = [
        "Measured by `python docs/protocol_effects.py --write` on the runs of `make demo` "
        + ("and of `make demo` with `--config run=demo_clean protocol=clean`" if clean else "")
        + f" (dataset {dataset}, model {model}, test split, means over the sampling seeds; "
        "the demo's numbers are far from the paper's, see the README; what matters here is "
        "how far each point moves them)."
    ]
    if clean is not None:
        parts += [
            "",
            "**Every point at once** (`protocol: official` against `protocol: clean`; two "
            "whole demo runs: data, finetuning, sampling and scoring all differ):",
            "",
            all_points_block(official, clean, dataset),
        ]
    rows = list(one_point_rows(official, config, dataset, model))
    parts += [
        "",
        "**One scoring point at a time** (the official run's samples and models, the point "
        "official then clean, every other point official):",
        "",
        markdown(rows, ["point", "model", "metric", "official", "clean"]),
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", default="results/demo", help="the official demo run")
    parser.add_argument("--clean", default="results/demo_clean", help="the clean demo run")
    parser.add_argument("--write", action="store_true", help="update docs/PROTOCOL.md")
    args = parser.parse_args(argv)
    official = (REPO / args.official).resolve()
    clean = (REPO / args.clean).resolve()
    text = block(official, clean if (clean / "tables" / "table2.csv").exists() else None)
    if not args.write:
        print(text)
        return 0
    DOC.write_text(replace_marked_block(DOC.read_text(), START, END, text))
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
