"""Exact reruns: a rule reruns when the code it runs changes in content, and only then.

Unit tests of :mod:`mixce.rerun` (import closure, content fingerprint) on small packages
written to a temporary directory, then dry runs of config/test.yaml through the local profile
in a private copy of the workflow whose every job is recorded as done. The record is made
without running a job: ``snakemake --touch --forceall`` writes each job's metadata (its params,
the code fingerprint among them), then every output is created empty with one mtime. That
takes seconds instead of the minutes of a real run, and the dry runs see what a finished run
leaves: outputs and their metadata.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from layout import REPO, copy_workflow
from snakemake_run import job_counts, snakemake

from mixce.config import load_config
from mixce.rerun import CodeIndex, canonical_dump, code_fingerprint, main

# --------------------------------------------------------------------------- unit


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def fingerprint(root: Path) -> dict[str, str]:
    return code_fingerprint(root / "script.py", src=root / "src", label="script.py")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not once in {path}"
    path.write_text(text.replace(old, new))


def test_canonical_dump_ignores_comments_docstrings_and_formatting() -> None:
    import ast

    plain = "def f(x):\n    return g(x, 1)\n"
    styled = '''
def f(
    x,  # the input
):
    """Docstring."""
    "a bare string"
    # a comment
    return g(x,
             1)
'''
    assert canonical_dump(ast.parse(plain)) == canonical_dump(ast.parse(styled))
    assert canonical_dump(ast.parse(plain)) != canonical_dump(ast.parse(plain.replace("1", "2")))
    assert "lineno" not in canonical_dump(ast.parse(plain))


PACKAGE = {
    "src/mixce/__init__.py": '"""The package."""\n',
    "src/mixce/a.py": """\
        '''Module a.'''
        from mixce.b import B_CONSTANT

        def helper(x):
            return x + 1

        def used(x):
            '''Docstring of used.'''
            return helper(x) * B_CONSTANT

        def unused(x):
            return x - 1

        if __name__ == "__main__":
            print(unused(1))
        """,
    "src/mixce/b.py": """\
        import math

        B_CONSTANT = 2
        B_OTHER = math.pi
        """,
    "src/mixce/lazy.py": """\
        def late():
            return 3
        """,
    "script.py": """\
        from mixce.a import used

        def main():
            from mixce.lazy import late  # imported inside a function
            return used(late())

        main()
        """,
}


def test_fingerprint_follows_imports_to_the_definitions_used(tmp_path: Path) -> None:
    root = write_files(tmp_path, PACKAGE)
    before = fingerprint(root)
    assert set(before) == {"script.py", "mixce", "mixce.a", "mixce.b", "mixce.lazy"}
    a = root / "src/mixce/a.py"
    # comments, docstrings, formatting, code that does not run: nothing changes
    edit(a, "'''Docstring of used.'''", "'''Another docstring.'''  # and a comment")
    edit(a, "return helper(x) * B_CONSTANT", "return helper(\n        x\n    ) * B_CONSTANT")
    edit(a, "return x - 1", "return x - 2")  # unused() is used by nothing
    edit(a, "print(unused(1))", "print(unused(2))")  # the __main__ block never runs on import
    edit(root / "src/mixce/b.py", "B_OTHER = math.pi", "B_OTHER = math.e")  # unused name
    assert fingerprint(root) == before
    # a helper of a used function: only that module's digest changes
    edit(a, "return x + 1", "return x + 2")
    after = fingerprint(root)
    assert {k for k in before if before[k] != after[k]} == {"mixce.a"}
    # a constant used through an import, and a module imported inside a function
    edit(root / "src/mixce/b.py", "B_CONSTANT = 2", "B_CONSTANT = 3")
    edit(root / "src/mixce/lazy.py", "return 3", "return 4")
    again = fingerprint(root)
    assert {k for k in after if after[k] != again[k]} == {"mixce.b", "mixce.lazy"}
    # the script itself: a comment is nothing, a statement is a change
    script = root / "script.py"
    edit(script, "main()\n", "main()  # run it\n")
    assert fingerprint(root) == again
    edit(script, "main()  # run it\n", "main()\nmain()\n")
    assert fingerprint(root)["script.py"] != again["script.py"]


def test_a_registry_brings_every_registered_function_to_its_users_only(tmp_path: Path) -> None:
    """Functions registered by a decorator count for code that looks entries up in the
    registry, not for code that imports another function of the same module."""
    root = write_files(
        tmp_path,
        {
            "src/mixce/__init__.py": "",
            "src/mixce/objectives.py": """\
                REGISTRY = {}

                def register(name):
                    def wrap(fn):
                        REGISTRY[name] = fn
                        return fn
                    return wrap

                def weight(q):
                    return 0.5 + q

                @register("mle")
                def mle(q):
                    return -q

                @register("mixce")
                def mixce(q):
                    return -weight(q) * q

                def get(name):
                    return REGISTRY[name]
                """,
            "looks_up.py": "from mixce.objectives import get\nget('mle')\n",
            "weight_only.py": "from mixce.objectives import weight\nweight(1.0)\n",
        },
    )
    src = root / "src"

    def digests() -> tuple[str, str]:
        return (
            code_fingerprint(root / "looks_up.py", src)["mixce.objectives"],
            code_fingerprint(root / "weight_only.py", src)["mixce.objectives"],
        )

    before = digests()
    edit(src / "mixce/objectives.py", "return -weight(q) * q", "return -(weight(q) * q)")
    after = digests()
    assert after[0] != before[0]  # the registry user depends on every registered function
    assert after[1] == before[1]  # weight() does not depend on mixce()
    edit(src / "mixce/objectives.py", "return 0.5 + q", "return 0.25 + q")
    assert digests()[1] != after[1]


def test_a_function_registered_in_another_module_counts(tmp_path: Path) -> None:
    """A decorator imported from another package module may put the function in a registry
    there: the decorated definition counts whenever its module is imported."""
    root = write_files(
        tmp_path,
        {
            "src/mixce/__init__.py": "",
            "src/mixce/registry.py": """\
                TABLE = {}

                def register(fn):
                    TABLE[fn.__name__] = fn
                    return fn

                def lookup(name):
                    return TABLE[name]
                """,
            "src/mixce/extra.py": """\
                from mixce.registry import register

                VERSION = 1

                @register
                def extra_loss(q):
                    return q
                """,
            "script.py": """\
                from mixce.extra import VERSION
                from mixce.registry import lookup

                lookup("extra_loss")
                """,
        },
    )
    before = fingerprint(root)
    edit(root / "src/mixce/extra.py", "return q", "return 2 * q")
    assert fingerprint(root)["mixce.extra"] != before["mixce.extra"]


def test_describe_lists_what_a_script_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_files(tmp_path, PACKAGE)
    assert main([str(root / "script.py"), "--src", str(root / "src")]) == 0
    lines = capsys.readouterr().out.splitlines()
    a = lines[lines.index("mixce.a:") + 1 : lines.index("mixce.b:")]
    assert "    def used" in a and "    def helper" in a and "    def unused" not in a


def test_whole_modules_when_names_cannot_be_followed(tmp_path: Path) -> None:
    """``import mixce.x`` and a submodule imported by name bring the whole module; a
    package's ``__init__`` statements that run at import always count."""
    root = write_files(
        tmp_path,
        {
            "src/mixce/__init__.py": "import os\nos.environ.setdefault('MIXCE_X', '1')\n",
            "src/mixce/metrics/__init__.py": "",
            "src/mixce/metrics/diversity.py": "def one():\n    return 1\n",
            "src/mixce/plain.py": "def two():\n    return 2\n",
            "script.py": """\
                import mixce.plain
                from mixce.metrics import diversity

                print(diversity.one(), mixce.plain.two())
                """,
        },
    )
    before = fingerprint(root)
    assert set(before) == {
        "script.py",
        "mixce",
        "mixce.metrics",
        "mixce.metrics.diversity",
        "mixce.plain",
    }
    edit(root / "src/mixce/metrics/diversity.py", "return 1", "return 11")
    edit(root / "src/mixce/plain.py", "return 2", "return 22")
    edit(root / "src/mixce/__init__.py", "'1'", "'2'")
    after = fingerprint(root)
    assert {k for k in before if before[k] != after[k]} == {
        "mixce",
        "mixce.metrics.diversity",
        "mixce.plain",
    }


def test_an_import_of_a_missing_module_is_named(tmp_path: Path) -> None:
    root = write_files(
        tmp_path,
        {"src/mixce/__init__.py": "", "script.py": "from mixce.gone import x\n"},
    )
    with pytest.raises(ModuleNotFoundError, match="mixce.gone"):
        fingerprint(root)


def direct_imports(script: Path) -> set[str]:
    """mixce modules a script names in its import statements (anywhere in it)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mixce"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("mixce"))
    return names


def test_every_rule_script_covers_the_modules_it_imports() -> None:
    """The code of each script of this repository covers every mixce module it imports
    (the hand-written lists this replaces missed some, e.g. mixce.gpt2.tokenizer)."""
    index = CodeIndex(REPO / "src")
    scripts = sorted((REPO / "rules/scripts").glob("*.py"))
    assert len(scripts) >= 27
    for script in scripts:
        covered = set(index.fingerprint(script, "script")) - {"script"}
        assert direct_imports(script) <= covered, script.name
    for name in ("gpt2_nll", "gpt2_score_human", "gpt2_score_samples", "gpt2_controlled"):
        assert "mixce.gpt2.tokenizer" in index.fingerprint(REPO / "rules/scripts" / f"{name}.py")


def test_profiles_rerun_on_content_not_on_mtimes_of_code() -> None:
    """Both profiles leave out the `code` trigger (a script's mtime); params (with the code
    fingerprint), input sets, mtimes of inputs and software environments stay."""
    for path in ("profiles/local/config.yaml", "slurm/config.yaml"):
        profile = yaml.safe_load((REPO / path).read_text())
        assert profile["rerun-triggers"] == ["mtime", "params", "input", "software-env"], path


# --------------------------------------------------------------------------- through Snakemake


def dry_run(workdir: Path, *configfiles: str) -> dict[str, int]:
    """Jobs per rule of a dry run through the local profile ({}: nothing to do)."""
    proc = snakemake(
        workdir,
        "-n",
        "--quiet",
        "rules",
        "--profile",
        "profiles/local",
        "--configfile",
        "config/test.yaml",
        *configfiles,
    )
    counts = job_counts(proc)
    if not counts:
        text = proc.stdout + "\n" + proc.stderr
        assert "Nothing to be done" in text, text[-3000:]
    counts.pop("all", None)
    return counts


# Rules whose inputs come from the select_models checkpoint's table (selected_variants). When
# an edit reruns the selection, a dry run cannot know the new table: it lists the rules that
# aggregate over it (collect_controlled, human_eval_pairs) and cannot plan the per-variant
# controlled jobs, and the rule graph draws these edges or not depending on the recorded
# table. Snakemake's checkpoint semantics, not a rerun decision: compared without them.
# controlled_human is in the same place: only collect_controlled's input function asks for it.
AFTER_SELECTION = {"controlled", "controlled_human", "collect_controlled", "human_eval_pairs"}


def same_reruns(counts: dict[str, int], expected: set[str]) -> bool:
    """Whether a dry run's rules are the expected ones, up to :data:`AFTER_SELECTION`."""
    return set(counts) - AFTER_SELECTION == expected - AFTER_SELECTION


def downstream(graph: dict[str, set[str]], rules: set[str]) -> set[str]:
    """The rules and every rule that reads what they write (rule graph edges)."""
    out, queue = set(rules), list(rules)
    while queue:
        for child in graph.get(queue.pop(), ()):
            if child not in out:
                out.add(child)
                queue.append(child)
    return out - {"all"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    """A copy of the workflow whose config/test.yaml run is recorded as done (every output
    there, with its job's metadata), and the run's rule graph."""
    start = time.perf_counter()
    workdir = copy_workflow(tmp_path_factory.mktemp("reruns"))
    config = load_config([workdir / "config.yaml", workdir / "config/test.yaml"])
    gpt2, run = config["gpt2"], config["run"]
    # The select_models checkpoint's table is read when the DAG is built: a plausible one.
    eta = workdir / "results" / run / "selection" / "eta.csv"
    eta.parent.mkdir(parents=True)
    rows = [
        (d, m, gpt2["finetune"]["etas"][0])
        for d in gpt2["use_datasets"]
        for m in gpt2["use_models"]
    ]
    pd.DataFrame(rows, columns=["dataset", "model", "eta"]).to_csv(eta, index=False)
    touch = snakemake(
        workdir, "--touch", "--forceall", "--cores", "1", "--configfile", "config/test.yaml"
    )
    # The touch executor names, per job, the outputs it could not touch: all but eta.csv.
    missing = re.findall(
        r"Output files not touched because they don't exist: (.*)", touch.stdout + touch.stderr
    )
    outputs = {path for line in missing for path in line.strip().split(", ")}
    assert len(outputs) > 200, touch.stderr[-3000:]
    stamp = time.time() - 3600
    for path in (workdir / p for p in outputs | {str(eta.relative_to(workdir))}):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (stamp, stamp))
    dot = snakemake(workdir, "--rulegraph", "--configfile", "config/test.yaml").stdout
    names = dict(re.findall(r'(\d+)\[label = "(\w+)"', dot))
    graph: dict[str, set[str]] = {}
    for a, b in re.findall(r"(\d+) -> (\d+)", dot):
        graph.setdefault(names[a], set()).add(names[b])
    print(f"\nrecorded a finished test run in {time.perf_counter() - start:.1f} s")
    return workdir, graph


def restoring(*paths: Path) -> list[tuple[Path, str, os.stat_result]]:
    return [(p, p.read_text(), p.stat()) for p in paths]


def restore(saved: list[tuple[Path, str, os.stat_result]]) -> None:
    for path, text, stat in saved:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_recorded_run_has_nothing_to_do(recorded: tuple[Path, dict]) -> None:
    workdir, graph = recorded
    assert dry_run(workdir) == {}
    assert {"score_samples", "finetune", "synthetic_train"} <= set(graph)


def test_comment_docstring_format_and_mtime_changes_rerun_nothing(
    recorded: tuple[Path, dict],
) -> None:
    """What a `git pull` of a comment edit does to io.py (imported by every rule) and to a
    script: new mtimes everywhere, no change in what runs."""
    workdir, _ = recorded
    io_py = workdir / "src/mixce/io.py"
    script = workdir / "rules/scripts/gpt2_train.py"
    code_files = [*(workdir / "src").rglob("*.py"), *(workdir / "rules/scripts").glob("*.py")]
    saved = restoring(*code_files)
    try:
        text = io_py.read_text()
        docstring = text[: text.index('"""', 3) + 3]
        assert docstring.startswith('"""')
        io_py.write_text(
            '"""An edited module docstring."""\n# a new comment\n\n' + text[len(docstring) :]
        )
        edit(io_py, "def write_json(", "# a comment before a function\n\n\ndef write_json(")
        edit(script, "import logging\n", "import logging  # a comment\n")
        later = time.time()
        for path in code_files:
            os.utime(path, (later, later))
        assert dry_run(workdir) == {}
    finally:
        restore(saved)


def test_real_edit_of_the_diversity_function_reruns_scoring_and_tables_only(
    recorded: tuple[Path, dict],
) -> None:
    workdir, graph = recorded
    module = workdir / "src/mixce/gpt2/metrics/diversity.py"
    saved = restoring(module)
    try:
        edit(module, "        unique = len(set(grams))\n", "        unique = len(set(grams)) + 0\n")
        counts = dry_run(workdir)
    finally:
        restore(saved)
    # the two scoring rules run ngram_diversity; what reads their outputs follows
    expected = downstream(graph, {"score_human", "score_samples"})
    assert same_reruns(counts, expected), (sorted(counts), sorted(expected))
    # one score job per (model, split, decoding): a directory of per-seed score files
    assert counts["score_samples"] == len(
        {path.parent for path in (workdir / "results/test/metrics/samples").rglob("*.json")}
    )
    assert not {"sample", "finetune", "nll_figure2", "perplexity", "synthetic_train"} & set(counts)
    assert dry_run(workdir) == {}


def test_real_edit_of_the_mixce_loss_reruns_training_and_below(
    recorded: tuple[Path, dict],
) -> None:
    """The training loop looks its objective up in the registry, so every training job (the
    scratch model's MLE pretraining too: the same script) depends on every registered loss;
    the synthetic experiments import only mixce_weight from the same module."""
    workdir, graph = recorded
    module = workdir / "src/mixce/objectives.py"
    saved = restoring(module)
    try:
        edit(
            module,
            "return masked_mean(-mixce_weight(logq, eta) * logq, mask)",
            "return masked_mean(-(mixce_weight(logq, eta) * logq), mask)",
        )
        counts = dry_run(workdir)
    finally:
        restore(saved)
    expected = downstream(graph, {"pretrain", "finetune"})
    assert same_reruns(counts, expected), (
        sorted(set(counts) - expected),
        sorted(expected - set(counts)),
    )
    # score_human follows pretraining here: the test config's MAUVE featurizer is its own
    # pretrained GPT-2 (downstream() above counts it)
    assert not {"prepare_dataset", "tokenizer", "synthetic_train"} & set(counts)
    assert "score_human" in counts and "score_human" in expected


def failed_dry_run(workdir: Path, *configfiles: str) -> str:
    """Output of a dry run that must fail before any job is planned."""
    proc = snakemake(
        workdir,
        "-n",
        "--profile",
        "profiles/local",
        "--configfile",
        "config/test.yaml",
        *configfiles,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert "Job stats" not in output and "Nothing to be done" not in output
    return output


def test_missing_or_moved_input_file_stops_the_run_with_its_name(
    recorded: tuple[Path, dict], tmp_path: Path
) -> None:
    """Snakemake keeps an existing output as it is when its rule's input file is gone: without
    the start-up check, a moved text file printed 'Nothing to be done'."""
    workdir, _ = recorded
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat and the dog sat on the log\n" * 50)
    config = tmp_path / "real_text.yaml"
    config.write_text(f"synthetic:\n  real_text:\n    source: {texts}\n")
    # another text file: the realtext init's targets (one per seed) and what follows rerun
    assert dry_run(workdir, str(config))["synthetic_target"] == 2
    texts.rename(tmp_path / "moved.txt")
    output = failed_dry_run(workdir, str(config))
    assert f"synthetic.real_text.source = '{texts}': no such file" in output
    judgments = tmp_path / "judgments.yaml"
    judgments.write_text("gpt2:\n  human_eval:\n    judgments: gone/judgments.csv\n")
    output = failed_dry_run(workdir, str(judgments))
    assert "gpt2.human_eval.judgments = 'gone/judgments.csv': no such file" in output
    assert str(workdir / "gone" / "judgments.csv") in output


def test_a_rule_without_its_code_param_is_rejected(recorded: tuple[Path, dict]) -> None:
    workdir, _ = recorded
    rules = workdir / "rules/report.smk"
    saved = restoring(rules)
    extra = (
        "\n\nrule extra:\n    output:\n        'extra.txt',\n{params}"
        "    script:\n        'scripts/gpt2_tokenizer.py'\n"
    )
    try:
        rules.write_text(
            saved[0][1] + extra.format(params="    params:\n        code=code('io'),\n")
        )
        assert "code() takes no module list" in failed_dry_run(workdir)
        rules.write_text(saved[0][1] + extra.format(params=""))
        assert "rule(s) extra: no `code=code(),` under params" in failed_dry_run(workdir)
    finally:
        restore(saved)
