"""Rule synthetic_target: one target bigram LM P (init, V, seed) -> chain .npz + metadata .json."""

from mixce.embedded import load_texts
from mixce.io import job_logging, write_json, write_npz
from mixce.synthetic.pipeline import make_target


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        # p.texts: None but for a real_text init
        texts = p.texts and load_texts(p.texts["source"], p.texts["n_texts"])
        zeroing = p.zeroing or "clean"  # None for real-text inits, which zero nothing
        chain, meta = make_target(p.spec, p.vocab_size, p.seed, p.alpha, texts, zeroing)
        if p.texts is not None:
            meta["real_text"]["source"] = p.texts["source"]
        write_npz(smk.output.npz, {"chain": chain})
        write_json(smk.output.meta, meta)


main(snakemake)  # noqa: F821
