"""Loading and validation of the workflow configuration.

``config.yaml`` is the paper-scale run; ``config/demo.yaml`` and ``config/test.yaml`` are
overrides merged onto it by Snakemake's ``--configfile`` merge (mappings key by key, lists and
scalars replaced). :func:`validate_config` checks a merged config against the schema (``$ref``
inlined, so an error names the whole shape its key accepts) and :func:`cross_key_problems`,
and reports every problem in plain words.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

#: ``schemas/config.schema.yaml`` of the repository (src/mixce/config.py -> ../../schemas).
DEFAULT_SCHEMA_PATH: Path = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"

PathParts = tuple[str | int, ...]
Problem = tuple[PathParts, str]


class ConfigError(ValueError):
    """An invalid configuration; the message has one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


def merge_configs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``override`` by :func:`snakemake.utils.update_config`, on copies."""
    from snakemake.utils import update_config

    merged: dict[str, Any] = copy.deepcopy(dict(base))
    update_config(merged, copy.deepcopy(dict(override)))
    return merged


def load_config(path_or_paths: str | Path | Sequence[str | Path]) -> dict[str, Any]:
    """One YAML file, or a base file and override files merged as ``snakemake --configfile``
    merges them onto ``configfile:`` (the overrides into one, in order, then onto the base).
    Not validated. Raises ConfigError for a file that is not YAML or not a mapping."""
    paths = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    if not paths:
        raise ValueError("load_config needs at least one configuration file")
    base, *overrides = (_read_config_file(Path(path)) for path in paths)
    return merge_configs(base, functools.reduce(merge_configs, overrides, {}))


def _read_config_file(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ConfigError([f"config file {path} is not valid YAML: {exc}"]) from exc
    if data is None:  # an empty file
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"config file {path} must hold a mapping of config keys, not {_type_name(data)}"]
        )
    return dict(data)


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (lists keep their order): the same settings
    written in another key order give equal params, so Snakemake reruns nothing."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def selected_inits(config: Mapping[str, Any]) -> list[str]:
    """The synthetic inits this run trains: ``synthetic.use_inits``, else all of ``inits``."""
    synthetic = config["synthetic"]
    return list(
        synthetic["inits"] if synthetic.get("use_inits") is None else synthetic["use_inits"]
    )


def _strict_integer(_checker: Any, instance: Any) -> bool:
    # JSON Schema counts 7.0 as an integer; a seed or a size written 7.0 would
    # leak "7.0" into file names, so only true ints are integers here.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)

_schema_cache: dict[Path, dict[str, Any]] = {}

#: Keywords a ``$ref``'s siblings may repeat from its definition (the sibling wins).
_ANNOTATIONS = frozenset({"description", "default", "title", "$comment"})
#: Keywords that read each other: all of a group sit on the same side of a ``$ref``.
_COUPLED = (
    frozenset({"properties", "patternProperties", "additionalProperties"}),
    frozenset({"prefixItems", "items"}),
    frozenset({"if", "then", "else"}),
)


def _inline_refs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with each ``{"$ref": "#/$defs/<name>", ...}`` replaced by the definition
    merged with the ref's siblings, and ``$defs`` dropped. A sibling adds a keyword (``items``
    to a ``list``) or an annotation, so the merge validates what ``$ref`` (an "all of")
    validates; any other overlap is an error."""
    defs = schema.get("$defs", {})

    def inline(node: Any, where: str) -> Any:
        if isinstance(node, list):
            return [inline(item, where) for item in node]
        if not isinstance(node, Mapping):
            return node
        out = {k: inline(v, f"{where}/{k}") for k, v in node.items() if k != "$defs"}
        ref = out.pop("$ref", None)
        if ref is None:
            return out
        name = ref.removeprefix("#/$defs/")
        if name == ref or name not in defs:
            raise ValueError(f"schema {where}: $ref {ref!r} is not a #/$defs/<name> entry")
        target = inline(defs[name], f"#/$defs/{name}")
        clash = (set(target) & set(out)) - _ANNOTATIONS
        clash |= {k for g in _COUPLED if g & set(target) and g & set(out) for k in g}
        if clash:
            raise ValueError(
                f"schema {where}: siblings of $ref {ref!r} repeat or split {sorted(clash)}"
            )
        return {**target, **out}

    return inline(schema, "#")


def load_schema(schema_path: Path | str | None = None) -> dict[str, Any]:
    """The schema (default :data:`DEFAULT_SCHEMA_PATH`), checked as JSON Schema 2020-12,
    ``$ref`` inlined."""
    path = Path(schema_path).resolve() if schema_path is not None else DEFAULT_SCHEMA_PATH
    if path not in _schema_cache:
        with path.open(encoding="utf-8") as handle:
            schema = yaml.safe_load(handle)
        _Validator.check_schema(schema)
        _schema_cache[path] = _inline_refs(schema)
    return _schema_cache[path]


def _format_path(parts: Iterable[str | int]) -> str:
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return dotted.removeprefix(".") or "<top level>"


def _sort_key(parts: PathParts) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in parts)


_TYPE_NAMES = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (Mapping, "a mapping"),
    (list, "a list"),
)


def _type_name(value: Any) -> str:
    names = [name for kind, name in _TYPE_NAMES if isinstance(value, kind)]
    return "null" if value is None else (names or [type(value).__name__])[0]


def _describe(schema: Any) -> str:
    """Plain-words description of the values ``schema`` accepts (after 'must be')."""
    if not isinstance(schema, Mapping):
        return "absent"
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return f"{schema['const']!r}"
    kind = schema.get("type")
    if kind in ("integer", "number"):
        noun = "an integer" if kind == "integer" else "a number"
        low = ("(", ">", schema["exclusiveMinimum"]) if "exclusiveMinimum" in schema else None
        low = low or ("[", ">=", schema.get("minimum"))
        high = (")", "<", schema["exclusiveMaximum"]) if "exclusiveMaximum" in schema else None
        high = high or ("]", "<=", schema.get("maximum"))
        if low[2] is not None and high[2] is not None:
            return f"{noun} in {low[0]}{low[2]!r}, {high[2]!r}{high[0]}"
        bound = next((b for b in (low, high) if b[2] is not None), None)
        return f"{noun} {bound[1]} {bound[2]!r}" if bound else noun
    if kind == "string":
        if "pattern" in schema:
            return f"a string matching {schema['pattern']}"
        return "a non-empty string" if schema.get("minLength", 0) >= 1 else "a string"
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        words = "a non-empty list" if schema.get("minItems", 0) >= 1 else "a list"
        words += " of distinct items" if schema.get("uniqueItems") else ""
        if "items" in schema:
            words += f", each {_describe(schema['items'])}"
        return words
    if kind == "object":
        return "a mapping of config keys"
    return "a valid value"


def _key(parts: PathParts, text: str) -> Problem:
    return parts, f"config key {_format_path(parts)} {text}"


def _schema_problems(error: jsonschema.ValidationError) -> Iterator[Problem]:
    """One jsonschema error in plain words, as (path, message) pairs."""
    parts: PathParts = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    value, keyword = error.instance, error.validator
    if keyword == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        patterns = schema.get("patternProperties", {})
        hint = "allowed keys are " + ", ".join(allowed) if allowed else "this mapping takes no keys"
        for key in sorted(value, key=str):
            if key not in allowed and not any(re.search(p, str(key)) for p in patterns):
                yield (*parts, key), f"unknown config key {_format_path((*parts, key))}: {hint}"
    elif keyword == "required":
        props = schema.get("properties", {})
        for key in (k for k in error.validator_value if k not in value):
            reason = props.get(key, {}).get("description") or schema.get("description", "")
            message = f"missing config key {_format_path((*parts, key))}"
            yield (*parts, key), message + (f": {reason.rstrip('.')}" if reason else "")
    elif list(error.absolute_schema_path)[-2:-1] == ["propertyNames"]:
        # a key of the mapping failed propertyNames; the error instance is that key
        name = (*parts, str(value))
        yield _key(name, f"has an invalid name {value!r}: names must be {_describe(schema)}")
    elif keyword == "not":
        yield _key(parts, f"is not allowed: {schema.get('description', 'it is not allowed here')}")
    elif keyword == "minProperties":
        yield _key(parts, "is empty: must be a mapping with at least one entry")
    else:  # type, enum, const, minimum, maximum, pattern, minItems, uniqueItems, ...
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        message = f"= {shown} is not allowed: must be {_describe(schema)}"
        if schema.get("type") == "number" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                float(value)
                message += " (YAML reads numbers such as 1e-30 as strings: write 1.0e-30)"
        if keyword == "uniqueItems":
            repeated: list[Any] = []
            for i, item in enumerate(value):
                if item in value[:i] and item not in repeated:
                    repeated.append(value[value.index(item)])
            message += f" ({', '.join(map(repr, repeated))} appears more than once)"
        yield _key(parts, message)


def _one_of(parts: PathParts, value: Any, what: str, allowed: Iterable[Any]) -> Problem:
    listed = ", ".join(map(str, allowed))
    return _key(parts, f"= {value!r} is not allowed: must be one of {what}: {listed}")


def _members(parts: PathParts, values: list[Any], what: str, allowed: Any) -> Iterator[Problem]:
    allowed = list(allowed)
    for i, value in enumerate(values):
        if value not in allowed:
            yield _one_of((*parts, i), value, what, allowed)


def cross_key_problems(config: Mapping[str, Any]) -> Iterator[Problem]:
    """Every rule that ties two config keys together, for the sections ``synthetic``
    (with ``cluster``) and ``gpt2`` present in ``config``; each section must match the
    schema (:func:`validate_config` leaves out those that do not)."""
    if "synthetic" in config:
        yield from _synthetic_problems(config["synthetic"], config.get("cluster", {}))
    if "gpt2" in config:
        yield from _gpt2_problems(config["gpt2"])


def _synthetic_problems(syn: Mapping[str, Any], cluster: Mapping[str, Any]) -> Iterator[Problem]:
    inits = list(syn["inits"])
    use_inits = syn.get("use_inits") or inits
    yield from _members(
        ("synthetic", "use_inits"), use_inits, "the inits defined in synthetic.inits", inits
    )
    running = [name for name in use_inits if name in inits]
    tables, table7 = syn["tables"], syn["tables"]["table7"]
    named = [
        (("synthetic", "tables", table, i), name)
        for table in ("table1", "table6", "table11")
        for i, name in enumerate(tables[table])
    ]
    for parts, name in [*named, (("synthetic", "tables", "table7", "init"), table7["init"])]:
        if name not in inits:
            yield _one_of(parts, name, "the inits of this run", running)
        elif name not in running:
            yield _key(
                parts,
                f"= {name!r} is not allowed: init {name!r} does not run (not in "
                f"synthetic.use_inits); must be one of {', '.join(running)}",
            )
    if table7["vocab_size"] not in syn["vocab_sizes"]:
        parts = ("synthetic", "tables", "table7", "vocab_size")
        yield _one_of(parts, table7["vocab_size"], "synthetic.vocab_sizes", syn["vocab_sizes"])
    parts = ("synthetic", "tables", "table7", "objectives")
    yield from _members(parts, table7["objectives"], "synthetic.objectives", syn["objectives"])
    gpu = cluster.get("rules", {}).get("synthetic_train", {}).get("gpu")
    if syn["train"].get("device") == "cuda" and gpu is not None and gpu < 1:
        yield _key(
            ("cluster", "rules", "synthetic_train", "gpu"),
            f"= {gpu} is not allowed: synthetic.train.device is cuda, so each synthetic_train "
            "job needs a GPU; set it to 1 (or set synthetic.train.device to cpu or auto)",
        )


def _gpt2_problems(gpt2: Mapping[str, Any]) -> Iterator[Problem]:
    datasets, models, used = gpt2["datasets"], gpt2["models"], gpt2["use_models"]
    yield from _members(("gpt2", "use_datasets"), gpt2["use_datasets"], "gpt2.datasets", datasets)
    yield from _members(("gpt2", "use_models"), used, "gpt2.models", models)
    pretrain = gpt2["pretrain"]["datasets"]
    yield from _members(("gpt2", "pretrain", "datasets"), pretrain, "gpt2.datasets", datasets)
    sizes = gpt2["train_sizes"]["models"]
    yield from _members(("gpt2", "train_sizes", "models"), sizes, "gpt2.use_models", used)
    for section, key in (("figures", "figure2_model"), ("human_eval", "model")):
        if gpt2[section][key] not in used:
            yield _one_of(("gpt2", section, key), gpt2[section][key], "gpt2.use_models", used)
    for role in ("mauve", "coherence"):
        spec = gpt2["metrics"][role]["featurizer"]
        parts = ("gpt2", "metrics", role, "featurizer", "model")
        if "model" in spec and spec["kind"] != "gpt2":
            yield _key(
                parts,
                f"= {spec['model']!r} is not allowed with kind {spec['kind']!r}: only a gpt2 "
                "featurizer can be a run's model",
            )
        elif "model" in spec and spec["model"] not in models:
            yield _one_of(parts, spec["model"], "gpt2.models", models)
    # A reference model gives one value per hyper-parameter of its objective's grid (the
    # schema's enum keeps the objectives that train through a reference out of reference).
    grids = gpt2["finetune"]["grids"]
    for objective, grid in grids.items():
        reference = grid.get("reference", {})
        want = sorted(k for k in grids.get(reference.get("objective"), {}) if k != "reference")
        have = sorted(k for k in reference if k != "objective")
        if reference and want != have:
            yield _key(
                ("gpt2", "finetune", "grids", objective, "reference"),
                f"must give one value for each hyper-parameter of {reference['objective']} "
                f"({', '.join(want) or 'none'}), got {', '.join(have) or 'none'}",
            )
    for dataset in gpt2["use_datasets"]:
        for model in used:
            if model not in gpt2["selected_eta"].get(dataset, {}):
                yield _key(
                    ("gpt2", "selected_eta", dataset, model),
                    "is missing: every dataset and model of the run needs the MixCE eta used "
                    "by Table 5 and top-p",
                )
    max_length, sampling = gpt2["finetune"]["max_length"], gpt2["sampling"]
    for name, spec in models.items():
        n_positions = spec.get("n_positions")
        if name not in used or n_positions is None:
            continue
        if max_length > n_positions:
            yield _key(
                ("gpt2", "finetune", "max_length"),
                f"= {max_length} is not allowed: model {name!r} has n_positions {n_positions}",
            )
        if sampling["prompt_tokens"] + sampling["max_new_tokens"] > n_positions:
            yield _key(
                ("gpt2", "sampling", "max_new_tokens"),
                f"= {sampling['max_new_tokens']} is not allowed: prompt_tokens + max_new_tokens "
                f"must fit model {name!r}'s n_positions {n_positions}",
            )
    # The length filter keeps min_words < words < max_words (mixce.gpt2.data.clean.length_ok).
    low, high = gpt2["data"]["min_words"], gpt2["data"]["max_words"]
    if high <= low + 1:
        yield _key(
            ("gpt2", "data", "max_words"),
            f"= {high} is not allowed with gpt2.data.min_words = {low}: a text is kept when "
            "min_words < its whitespace words < max_words, so no text would be kept; "
            f"max_words must be at least min_words + 2 = {low + 2}",
        )


def validate_config(config: Mapping[str, Any], schema_path: Path | str | None = None) -> None:
    """Check a merged config (not modified) against the schema (true integers only, not 7.0),
    then :func:`cross_key_problems` on the sections that match it. :class:`ConfigError` has one
    line per problem, sorted by key: the dotted key (``synthetic.etas[2]``), value, allowed."""
    if not isinstance(config, Mapping):
        raise ConfigError(
            [f"the configuration must be a mapping of config keys, not {_type_name(config)}"]
        )
    problems: dict[Problem, None] = {}
    for error in _Validator(load_schema(schema_path)).iter_errors(config):
        problems.update(dict.fromkeys(_schema_problems(error)))
    invalid = {parts[0] for parts, _ in problems if parts}
    valid = {key: value for key, value in config.items() if key not in invalid}
    problems.update(dict.fromkeys(cross_key_problems(valid)))
    if problems:
        ordered = sorted(problems, key=lambda item: (_sort_key(item[0]), item[1]))
        raise ConfigError([message for _, message in ordered])


def _schema_rows(schema: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str, str]]:
    """(dotted key, allowed values, description) for every key below ``schema``."""
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}.{name}" if prefix else name
        yield key, _describe(sub), " ".join(str(sub.get("description", "")).split())
        if sub.get("type") == "object" and "properties" in sub:
            yield from _schema_rows(sub, key)
        extra = sub.get("additionalProperties")
        if isinstance(extra, Mapping) and "properties" in extra:
            yield from _schema_rows(extra, f"{key}.<name>")


def schema_markdown(schema_path: Path | str | None = None) -> str:
    """A Markdown table of every config key: allowed values and description (docs/CONFIG.md)."""
    lines = [
        "# Config keys\n",
        "Generated from schemas/config.schema.yaml by `python -m mixce.config > docs/CONFIG.md`;",
        "a test fails when this file and the schema disagree.\n",
        "| key | allowed values | meaning |",
        "| --- | --- | --- |",
    ]
    for row in _schema_rows(load_schema(schema_path or None), ""):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(schema_markdown(), end="")
