"""Tests of config loading, merging and validation (src/mixce/config.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixce.config import (
    DEFAULT_SCHEMA_PATH,
    ConfigError,
    cross_key_problems,
    load_config,
    load_schema,
    merge_configs,
    selected_inits,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "config.yaml"
OVERRIDES = {"demo": ROOT / "config" / "demo.yaml", "test": ROOT / "config" / "test.yaml"}


@pytest.fixture(scope="module")
def base_config() -> dict[str, Any]:
    return load_config(BASE)


def test_default_schema_path_exists() -> None:
    assert DEFAULT_SCHEMA_PATH == ROOT / "schemas" / "config.schema.yaml"
    assert DEFAULT_SCHEMA_PATH.is_file()


def test_paper_config_is_valid(base_config: dict[str, Any]) -> None:
    validate_config(base_config)
    assert base_config["run"] == "paper"
    assert selected_inits(base_config) == ["random50", "realtext", "random10", "random90"]


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_override_configs_are_valid(name: str) -> None:
    config = load_config([BASE, OVERRIDES[name]])
    validate_config(config)
    assert config["run"] == name


def test_demo_config_values() -> None:
    syn = load_config([BASE, OVERRIDES["demo"]])["synthetic"]
    assert syn["vocab_sizes"] == [20, 50]
    assert selected_inits({"synthetic": syn}) == ["random50", "realtext", "random90"]
    assert len(syn["objectives"]) == 6
    assert syn["etas"] == [0.9, 0.1]
    assert syn["seeds"] == [7, 42]
    assert syn["data"] == {"n_train": 5000, "n_dev": 500, "max_length": 100}
    assert syn["real_text"]["n_texts"] == 2000
    # eval_every is inherited from config.yaml
    assert syn["train"]["exact"] == {
        "cpu_backend": "numpy",
        "lr": 0.01,
        "max_steps": 400,
        "eval_every": 20,
    }
    assert syn["tables"]["table7"]["vocab_size"] == 50
    assert syn["tables"]["table7"]["init"] == "realtext"


def test_test_config_values() -> None:
    config = load_config([BASE, OVERRIDES["test"]])
    syn = config["synthetic"]
    assert selected_inits(config) == ["random50", "realtext"]
    assert syn["vocab_sizes"] == [20]
    assert syn["etas"] == [0.9, 0.1]
    assert syn["data"] == {"n_train": 2000, "n_dev": 200, "max_length": 60}
    assert syn["train"]["exact"]["max_steps"] == 150
    assert syn["tables"]["table7"] == {
        "init": "realtext",
        "vocab_size": 20,
        "objectives": ["forward_kl", "mixce_star", "mixce"],
    }
    used = set(selected_inits(config))
    for table in ("table1", "table6", "table11"):
        assert set(syn["tables"][table]) <= used


def test_merge_is_recursive_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 1}
    override = {"a": {"c": [3], "d": {"g": 2}}, "h": None}
    merged = merge_configs(base, override)
    assert merged == {"a": {"b": 1, "c": [3], "d": {"e": 1, "g": 2}}, "f": 1, "h": None}
    assert base == {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 1}  # unchanged


@pytest.mark.parametrize("names", [["test"], ["demo"], ["demo", "test"], ["test", "demo"]])
def test_merge_matches_snakemake(names: list[str]) -> None:
    """load_config gives what Snakemake builds from the Snakefile's configfile: and
    --configfile <overrides> (its own loader, ConfigSettings and update_config)."""
    pytest.importorskip("snakemake")
    from snakemake.common.configfile import load_configfile
    from snakemake.settings.types import ConfigSettings
    from snakemake.utils import update_config

    overrides = [OVERRIDES[name] for name in names]
    expected = load_configfile(BASE)
    update_config(expected, ConfigSettings(configfiles=overrides).overwrite_config)
    assert load_config([BASE, *overrides]) == expected


def test_load_config_files_in_order(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    second = tmp_path / "b.yaml"
    empty = tmp_path / "empty.yaml"
    first.write_text("run: a\nx: {y: 1, z: 2}\n")
    second.write_text("run: b\nx: {z: 3}\n")
    empty.write_text("# nothing\n")
    assert load_config([first, str(second), empty]) == {"run": "b", "x": {"y": 1, "z": 3}}
    assert load_config(str(first)) == {"run": "a", "x": {"y": 1, "z": 2}}


def test_load_config_rejects_non_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)


def test_snakemake_validate_accepts_configs() -> None:
    snakemake_utils = pytest.importorskip("snakemake.utils")
    for override in [None, *OVERRIDES.values()]:
        paths = [BASE] if override is None else [BASE, override]
        snakemake_utils.validate(load_config(paths), str(DEFAULT_SCHEMA_PATH))


def test_snakemake_validate_fills_defaults_inside_defs(base_config: dict[str, Any]) -> None:
    """snakemake.utils.validate fills a default written inside a $defs entry's properties
    (the featurizer's max_len); a default at a definition's top level would be skipped
    (it looks beside each key's own schema), so no definition has one."""
    snakemake_utils = pytest.importorskip("snakemake.utils")
    config = copy.deepcopy(base_config)
    for metric in ("mauve", "coherence"):
        del config["gpt2"]["metrics"][metric]["featurizer"]["max_len"]
    snakemake_utils.validate(config, str(DEFAULT_SCHEMA_PATH))
    for metric in ("mauve", "coherence"):
        assert config["gpt2"]["metrics"][metric]["featurizer"]["max_len"] == 512
    raw = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
    assert raw["$defs"] and not [name for name, d in raw["$defs"].items() if "default" in d]


def test_load_schema_inlines_refs(tmp_path: Path) -> None:
    schema = load_schema()
    assert "$ref" not in str(schema) and "$defs" not in schema
    etas = schema["properties"]["synthetic"]["properties"]["etas"]
    assert etas["minItems"] == 1 and etas["items"]["maximum"] == 1  # list + fraction
    assert etas["description"].startswith("Mixing ratios")  # the use site's description
    clash = {
        "$defs": {"list": {"type": "array", "minItems": 1}},
        "properties": {"x": {"$ref": "#/$defs/list", "minItems": 2}},
    }
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(clash))
    with pytest.raises(ValueError, match=r"siblings of \$ref '#/\$defs/list' repeat.*minItems"):
        load_schema(path)


def test_schema_override_path(tmp_path: Path, base_config: dict[str, Any]) -> None:
    schema = yaml.safe_load(DEFAULT_SCHEMA_PATH.read_text())
    schema["properties"]["run"]["pattern"] = "^demo$"
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    with pytest.raises(ConfigError, match=r"config key run = 'paper'.*\^demo\$"):
        validate_config(base_config, schema_path=path)


# --------------------------------------------------------------------------- bad configs


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutation setting the dotted ``path`` (``a.b.c``) to ``value``."""

    def apply(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return apply


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]

    return apply


TINY = {"source": "scratch", "n_layer": 2, "n_head": 2, "n_embd": 64, "micro_batch_size": 8}


def _use_tiny(config: dict[str, Any], n_positions: int) -> None:
    config["gpt2"]["models"]["tiny"] = {**TINY, "n_positions": n_positions}
    config["gpt2"]["use_models"] = ["tiny"]
    config["gpt2"]["train_sizes"]["models"] = []
    for etas in config["gpt2"]["selected_eta"].values():
        etas["tiny"] = 0.1


OBJECTIVES_HINT = "forward_kl, reverse_kl, mix_kl, js, mixce_star, mixce"

# (id, mutation, dotted key expected in the message, hint of the allowed values)
BAD_CONFIGS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("eta_above_1", _set("synthetic.etas", [0.9, 0.5, 1.5]), "synthetic.etas[2] = 1.5", "[0, 1]"),
    ("eta_negative", _set("synthetic.etas", [-0.1]), "synthetic.etas[0] = -0.1", "[0, 1]"),
    ("eta_string", _set("synthetic.etas", ["half"]), "synthetic.etas[0] = 'half'", "a number"),
    ("empty_etas", _set("synthetic.etas", []), "synthetic.etas = []", "non-empty list"),
    (
        "duplicate_etas",
        _set("synthetic.etas", [0.5, 0.1, 0.5]),
        "synthetic.etas",
        "0.5 appears more than once",
    ),
    (
        "unknown_objective",
        _set("synthetic.objectives", ["forward_kl", "foo"]),
        "synthetic.objectives[1] = 'foo'",
        OBJECTIVES_HINT,
    ),
    ("empty_objectives", _set("synthetic.objectives", []), "synthetic.objectives", "non-empty"),
    (
        "unknown_init_kind",
        _set("synthetic.inits.random50.kind", "uniform"),
        "synthetic.inits.random50.kind = 'uniform'",
        "one of random, real_text",
    ),
    (
        "bad_init_name",
        _set("synthetic.inits.Random-5", {"kind": "random", "zero_fraction": 0.5}),
        "synthetic.inits.Random-5",
        "^[a-z0-9_]+$",
    ),
    (
        "zero_fraction_one",
        _set("synthetic.inits.random50.zero_fraction", 1.0),
        "synthetic.inits.random50.zero_fraction = 1.0",
        "[0, 1)",
    ),
    (
        "zero_fraction_negative",
        _set("synthetic.inits.random50.zero_fraction", -0.1),
        "synthetic.inits.random50.zero_fraction = -0.1",
        "[0, 1)",
    ),
    (
        "zero_fraction_missing_for_random",
        _del("synthetic.inits.random10.zero_fraction"),
        "synthetic.inits.random10.zero_fraction",
        "required for kind random",
    ),
    (
        "zero_fraction_on_real_text",
        _set("synthetic.inits.realtext.zero_fraction", 0.5),
        "synthetic.inits.realtext.zero_fraction",
        "only applies to kind random",
    ),
    ("vocab_2", _set("synthetic.vocab_sizes", [2, 20]), "synthetic.vocab_sizes[0] = 2", ">= 3"),
    (
        "vocab_float",
        _set("synthetic.vocab_sizes", [20, 50.0]),
        "synthetic.vocab_sizes[1] = 50.0",
        "an integer",
    ),
    (
        "seed_float",
        _set("synthetic.seeds", [7, 7.5]),
        "synthetic.seeds[1] = 7.5",
        "an integer >= 0",
    ),
    ("seed_string", _set("synthetic.seeds", ["x"]), "synthetic.seeds[0] = 'x'", "an integer >= 0"),
    ("seed_negative", _set("synthetic.seeds", [-1]), "synthetic.seeds[0] = -1", ">= 0"),
    ("seed_bool", _set("synthetic.seeds", [True]), "synthetic.seeds[0] = True", "an integer"),
    (
        "duplicate_seeds",
        _set("synthetic.seeds", [7, 42, 7]),
        "synthetic.seeds",
        "7 appears more than once",
    ),
    (
        "unknown_top_level_key",
        _set("sampling", {}),
        "sampling",
        "allowed keys are run, protocol, protocol_points, synthetic",
    ),
    (
        "unknown_nested_key",
        _set("synthetic.train.exact.max_step", 10),
        "synthetic.train.exact.max_step",
        "allowed keys are cpu_backend, lr, max_steps, eval_every",
    ),
    (
        "unknown_cpu_backend",
        _set("synthetic.train.exact.cpu_backend", "jax"),
        "synthetic.train.exact.cpu_backend",
        "numpy, torch",
    ),
    (
        "unknown_init_key",
        _set("synthetic.inits.realtext.alpha", 1),
        "synthetic.inits.realtext.alpha",
        "allowed keys are kind, zero_fraction",
    ),
    ("missing_key", _del("synthetic.data.n_train"), "synthetic.data.n_train", "missing"),
    (
        "negative_lr",
        _set("synthetic.train.exact.lr", -0.001),
        "synthetic.train.exact.lr = -0.001",
        "> 0",
    ),
    ("zero_lr", _set("synthetic.train.gumbel.lr", 0), "synthetic.train.gumbel.lr = 0", "> 0"),
    (
        "negative_weight_decay",
        _set("synthetic.train.weight_decay", -1.0),
        "synthetic.train.weight_decay",
        ">= 0",
    ),
    (
        "log_eps_string",
        _set("synthetic.train.log_eps", "1e-30"),
        "synthetic.train.log_eps = '1e-30'",
        "write 1.0e-30",
    ),
    (
        "estimator_foo",
        _set("synthetic.train.estimator", "foo"),
        "synthetic.train.estimator = 'foo'",
        "one of exact, gumbel",
    ),
    ("patience_zero", _set("synthetic.train.patience", 0), "synthetic.train.patience", ">= 1"),
    ("max_steps_zero", _set("synthetic.train.exact.max_steps", 0), "exact.max_steps", ">= 1"),
    ("tau_zero", _set("synthetic.train.gumbel.tau", 0.0), "synthetic.train.gumbel.tau", "> 0"),
    ("js_samples_zero", _set("synthetic.train.js_samples", 0), "train.js_samples", ">= 1"),
    ("dirichlet_zero", _set("synthetic.dirichlet_alpha", 0), "synthetic.dirichlet_alpha", "> 0"),
    ("max_length_1", _set("synthetic.data.max_length", 1), "synthetic.data.max_length = 1", ">= 2"),
    ("n_dev_zero", _set("synthetic.data.n_dev", 0), "synthetic.data.n_dev = 0", ">= 1"),
    ("n_texts_zero", _set("synthetic.real_text.n_texts", 0), "real_text.n_texts = 0", ">= 1"),
    ("hidden_size_zero", _set("synthetic.model.hidden_size", 0), "model.hidden_size", ">= 1"),
    ("dropout_1", _set("synthetic.model.dropout", 1.0), "synthetic.model.dropout = 1.0", "[0, 1)"),
    ("enabled_string", _set("synthetic.enabled", "yes"), "synthetic.enabled", "true or false"),
    ("run_with_slash", _set("run", "a/b"), "run = 'a/b'", "^[A-Za-z0-9_-]+$"),
    ("run_empty", _set("run", ""), "run = ''", "^[A-Za-z0-9_-]+$"),
    (
        "table_unknown_init",
        _set("synthetic.tables.table1", ["random50", "random75"]),
        "synthetic.tables.table1[1] = 'random75'",
        "random50, realtext, random10, random90",
    ),
    (
        "table7_unknown_init",
        _set("synthetic.tables.table7.init", "webtext"),
        "synthetic.tables.table7.init = 'webtext'",
        "random50, realtext",
    ),
    (
        "table_init_not_used",
        _set("synthetic.use_inits", ["random50", "realtext"]),
        "synthetic.tables.table6[0] = 'random10'",
        "not in synthetic.use_inits",
    ),
    (
        "use_inits_unknown",
        _set("synthetic.use_inits", ["random50", "random33"]),
        "synthetic.use_inits[1] = 'random33'",
        "random50, realtext, random10, random90",
    ),
    (
        "table7_vocab_not_in_vocab_sizes",
        _set("synthetic.tables.table7.vocab_size", 30),
        "synthetic.tables.table7.vocab_size = 30",
        "20, 50, 100, 500, 1000",
    ),
    (
        "table7_objective_not_run",
        _set("synthetic.objectives", ["forward_kl", "mixce"]),
        "synthetic.tables.table7.objectives[1] = 'mixce_star'",
        "one of synthetic.objectives: forward_kl, mixce",
    ),
    (
        "table7_unknown_key",
        _set("synthetic.tables.table7.eta", 0.5),
        "synthetic.tables.table7.eta",
        "allowed keys are init, vocab_size, objectives",
    ),
    # ---- gpt2 section
    (
        "gpt2_unknown_dataset",
        _set("gpt2.use_datasets", ["wikitext", "pile"]),
        "gpt2.use_datasets[1] = 'pile'",
        "must be one of gpt2.datasets: wikitext, webtext, writingprompts",
    ),
    (
        "gpt2_unknown_model",
        _set("gpt2.use_models", ["small", "xl"]),
        "gpt2.use_models[1] = 'xl'",
        "must be one of gpt2.models: small",
    ),
    (
        "gpt2_bad_source",
        _set("gpt2.datasets.webtext.source", "ftp"),
        "gpt2.datasets.webtext.source = 'ftp'",
        "one of hub, url, local, embedded",
    ),
    (
        "gpt2_url_without_urls",
        _del("gpt2.datasets.webtext.urls"),
        "gpt2.datasets.webtext",
        "urls",
    ),
    (
        "gpt2_bad_url",
        _set("gpt2.datasets.webtext.urls.train", "webtext.train.jsonl"),
        "gpt2.datasets.webtext.urls.train",
        "^https?://",
    ),
    (
        "gpt2_eta_above_1",
        _set("gpt2.finetune.etas", [0.5, 1.2]),
        "gpt2.finetune.etas[1] = 1.2",
        "[0, 1]",
    ),
    (
        "gpt2_unknown_objective",
        _set("gpt2.finetune.objectives", ["mle", "gan"]),
        "gpt2.finetune.objectives[1] = 'gan'",
        "one of mle, mixce",
    ),
    (
        "gpt2_tailr_gamma_above_1",
        _set("gpt2.finetune.grids.tailr.gamma", [0.5, 1.5]),
        "gpt2.finetune.grids.tailr.gamma[1] = 1.5",
        "is not allowed",
    ),
    (
        "gpt2_unknown_grid_key",
        _set("gpt2.finetune.grids.unlikelihood", {"alpha": [1.0], "beta": [2.0]}),
        "gpt2.finetune.grids.unlikelihood",
        "beta",
    ),
    (
        "gpt2_reference_hyper_mismatch",
        _set("gpt2.finetune.grids.lfd.reference", {"objective": "truncated_ce", "r": 0.5}),
        "gpt2.finetune.grids.lfd.reference must give one value for each hyper-parameter",
        "truncated_ce (keep), got r",
    ),
    (
        "gpt2_reference_trains_through_a_reference",
        _set("gpt2.finetune.grids.lfd.reference", {"objective": "lfd", "mle_weight": 0.5}),
        "gpt2.finetune.grids.lfd.reference.objective = 'lfd'",
        "one of mle, tailr, loss_truncation, unlikelihood, truncated_ce",
    ),
    (
        "gpt2_lfd_without_reference",
        _del("gpt2.finetune.grids.lfd.reference"),
        "gpt2.finetune.grids.lfd",
        "reference",
    ),
    (
        "gpt2_missing_selected_eta",
        _del("gpt2.selected_eta.webtext"),
        "gpt2.selected_eta.webtext.small is missing",
        "MixCE eta",
    ),
    (
        "gpt2_top_p_zero",
        _set("gpt2.sampling.top_p", [0.0, 0.9]),
        "gpt2.sampling.top_p[0] = 0.0",
        "(0, 1]",
    ),
    (
        "gpt2_seed_float",
        _set("gpt2.sampling.seeds", [0, 1.5]),
        "gpt2.sampling.seeds[1] = 1.5",
        "integer",
    ),
    (
        "gpt2_bad_split",
        _set("gpt2.sampling.splits", ["dev", "valid"]),
        "gpt2.sampling.splits[1] = 'valid'",
        "one of dev, test",
    ),
    (
        "gpt2_max_length_over_positions",
        lambda config: _use_tiny(config, 256),
        "gpt2.finetune.max_length = 512",
        "n_positions",
    ),
    (
        "gpt2_train_sizes_model_not_run",
        _set("gpt2.train_sizes.models", ["tiny"]),
        "gpt2.train_sizes.models[0] = 'tiny'",
        "one of gpt2.use_models",
    ),
    (
        "gpt2_scratch_without_size",
        _del("gpt2.models.tiny.n_embd"),
        "gpt2.models.tiny",
        "n_embd",
    ),
    (
        "synthetic_unknown_device",
        _set("synthetic.train.device", "tpu"),
        "synthetic.train.device = 'tpu'",
        "one of cpu, cuda, auto",
    ),
    (
        "synthetic_cuda_without_a_gpu_job",
        _set("synthetic.train.device", "cuda"),
        "cluster.rules.synthetic_train.gpu = 0",
        "set it to 1",
    ),
    (
        "gpt2_min_words_not_below_max_words",
        _set("gpt2.data.min_words", 1000),
        "gpt2.data.max_words = 1000 is not allowed with gpt2.data.min_words = 1000",
        "no text would be kept",
    ),
    (
        "gpt2_no_word_count_between_min_and_max",
        lambda config: config["gpt2"]["data"].update(min_words=10, max_words=11),
        "gpt2.data.max_words = 11",
        "at least min_words + 2 = 12",
    ),
    (
        "gpt2_featurizer_model_not_a_model",
        _set("gpt2.metrics.mauve.featurizer.model", "huge"),
        "gpt2.metrics.mauve.featurizer.model = 'huge' is not allowed",
        "must be one of gpt2.models: small, medium, large",
    ),
    (
        "gpt2_featurizer_model_not_gpt2",
        lambda config: config["gpt2"]["metrics"]["coherence"]["featurizer"].update(model="small"),
        "gpt2.metrics.coherence.featurizer.model = 'small' is not allowed with kind 'simcse'",
        "only a gpt2 featurizer",
    ),
    (
        "gpt2_unknown_key",
        _set("gpt2.finetune.learning_rate", 1e-4),
        "gpt2.finetune.learning_rate",
        "allowed keys",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "hint"),
    [pytest.param(m, k, h, id=i) for i, m, k, h in BAD_CONFIGS],
)
def test_bad_config_is_rejected(
    base_config: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None],
    key: str,
    hint: str,
) -> None:
    config = copy.deepcopy(base_config)
    mutate(config)
    with pytest.raises(ConfigError) as excinfo:
        validate_config(config)
    message = str(excinfo.value)
    assert key in message
    assert hint in message
    assert "config key" in message


def test_cross_key_problems_of_a_valid_config(base_config: dict[str, Any]) -> None:
    """One function holds every rule that ties keys together; it names the key it blames."""
    assert list(cross_key_problems(base_config)) == []
    config = copy.deepcopy(base_config)
    config["synthetic"]["tables"]["table7"]["vocab_size"] = 30
    config["gpt2"]["human_eval"]["model"] = "medium"
    config["gpt2"]["use_models"] = ["small", "large"]
    assert list(cross_key_problems(config)) == [
        (
            ("synthetic", "tables", "table7", "vocab_size"),
            "config key synthetic.tables.table7.vocab_size = 30 is not allowed: must be one of "
            "synthetic.vocab_sizes: 20, 50, 100, 500, 1000",
        ),
        (
            ("gpt2", "human_eval", "model"),
            "config key gpt2.human_eval.model = 'medium' is not allowed: must be one of "
            "gpt2.use_models: small, large",
        ),
    ]
    assert list(cross_key_problems({"run": "x"})) == []  # sections left out are not checked


@pytest.mark.parametrize(
    ("mutate", "line"),
    [
        (
            _set("synthetic.objectives", ["forward_kl", "foo"]),
            "config key synthetic.objectives[1] = 'foo' is not allowed",
        ),
        (
            lambda config: (
                _set("synthetic.etas", [2.0])(config),
                _set("synthetic.tables.table7.vocab_size", 30)(config),
            ),
            "config key synthetic.etas[0] = 2.0 is not allowed",
        ),
        (
            lambda config: (
                _set("gpt2.data.min_words", 1000)(config),
                _set("gpt2.use_models", "small")(config),
            ),
            "config key gpt2.use_models = 'small' is not allowed",
        ),
    ],
)
def test_cross_key_rules_wait_for_the_schema(
    base_config: dict[str, Any], mutate: Callable[[dict[str, Any]], Any], line: str
) -> None:
    """A section with a schema error gets no cross-key problems (they would only echo it:
    a bad objective name made table7.objectives wrong too); they come once it is fixed."""
    config = copy.deepcopy(base_config)
    mutate(config)
    with pytest.raises(ConfigError) as excinfo:
        validate_config(config)
    assert len(excinfo.value.problems) == 1 and excinfo.value.problems[0].startswith(line)


def test_synthetic_cuda_with_a_gpu_per_training_job_is_valid(
    base_config: dict[str, Any],
) -> None:
    config = copy.deepcopy(base_config)
    config["synthetic"]["train"]["device"] = "cuda"
    config["cluster"]["rules"]["synthetic_train"]["gpu"] = 1
    validate_config(config)


def test_narrowest_word_range_that_keeps_texts_is_valid(base_config: dict[str, Any]) -> None:
    """min_words < words < max_words: max_words = min_words + 2 keeps texts of one length."""
    config = copy.deepcopy(base_config)
    config["gpt2"]["data"].update(min_words=10, max_words=12)
    validate_config(config)


def test_bad_config_ids_are_distinct() -> None:
    ids = [i for i, *_ in BAD_CONFIGS]
    assert len(ids) == len(set(ids)) >= 20


def test_all_errors_reported_sorted_one_per_line(base_config: dict[str, Any]) -> None:
    config = copy.deepcopy(base_config)
    config["synthetic"]["seeds"] = [7, "x"]
    config["synthetic"]["etas"] = [0.5, 1.5]
    config["run"] = "a b"
    config["extra"] = 1
    with pytest.raises(ConfigError) as excinfo:
        validate_config(config)
    lines = str(excinfo.value).splitlines()
    assert excinfo.value.problems == lines
    assert len(lines) == 4
    assert lines[0].startswith("unknown config key extra:")
    assert lines[1].startswith("config key run = 'a b'")
    assert lines[2].startswith("config key synthetic.etas[1] = 1.5")
    assert lines[3].startswith("config key synthetic.seeds[1] = 'x'")


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        validate_config([])  # type: ignore[arg-type]


def test_validate_does_not_modify_config(base_config: dict[str, Any]) -> None:
    config = copy.deepcopy(base_config)
    validate_config(config)
    assert config == base_config


def test_use_inits_absent_means_all(base_config: dict[str, Any]) -> None:
    config = copy.deepcopy(base_config)
    del config["synthetic"]["use_inits"]
    validate_config(config)
    assert selected_inits(config) == list(config["synthetic"]["inits"])


def test_config_docs_match_schema() -> None:
    """docs/CONFIG.md is generated from the schema; regenerate it when the schema changes."""
    from mixce.config import schema_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md"
    assert doc.read_text() == schema_markdown(), (
        "docs/CONFIG.md is stale: run `python -m mixce.config > docs/CONFIG.md`"
    )


def test_objective_schema_entries_match_the_registry() -> None:
    """Each registered objective is in the schema's enum, and its grid entry lists exactly
    the hyper-parameters its function takes (a reference iff the function needs one)."""
    from mixce.objectives import get_spec, objective_names

    schema = load_schema()
    finetune = schema["properties"]["gpt2"]["properties"]["finetune"]["properties"]
    assert sorted(finetune["objectives"]["items"]["enum"]) == objective_names()
    grids = finetune["grids"]["properties"]
    for name in objective_names():
        spec = get_spec(name)
        if name == "mixce":  # its grid is gpt2.finetune.etas
            assert list(spec.hyper) == ["eta"] and name not in grids
            continue
        if not spec.hyper and not spec.needs_reference:
            assert name not in grids, name
            continue
        entry = grids[name]
        assert sorted(entry["required"]) == sorted(entry["properties"]), name
        keys = set(entry["properties"]) - {"reference"}
        assert keys == set(spec.hyper), name
        assert ("reference" in entry["properties"]) == spec.needs_reference, name
    references = grids["lfd"]["properties"]["reference"]["properties"]["objective"]["enum"]
    assert all(not get_spec(name).needs_reference for name in references)


def test_canonical_sorts_mapping_keys_and_keeps_list_order() -> None:
    from mixce.config import canonical

    value = {"b": {"y": 1, "x": [{"q": 1, "p": 2}, 3]}, "a": [2, 1]}
    out = canonical(value)
    assert list(out) == ["a", "b"] and list(out["b"]) == ["x", "y"]
    assert list(out["b"]["x"][0]) == ["p", "q"] and out["a"] == [2, 1]
    assert out == value  # same content
