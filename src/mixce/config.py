"""Loading and validation of the workflow configuration.

``config.yaml`` holds the paper-scale run; smaller runs (``config/demo.yaml``,
``config/test.yaml``) are override files merged on top of it by Snakemake's own
``--configfile`` merge (:func:`snakemake.utils.update_config`): nested mappings are
merged key by key, lists and scalars are replaced.

:func:`validate_config` checks a merged configuration against
``schemas/config.schema.yaml`` (the same schema the Snakefile gives to
``snakemake.utils.validate``) plus the cross-key rules a JSON schema cannot
express, and reports every problem in plain words in a :class:`ConfigError`.
It validates the schema with its ``$ref`` entries inlined (:func:`load_schema`), so an
error about a key names the whole shape that key accepts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = [
    "DEFAULT_SCHEMA_PATH",
    "ConfigError",
    "load_config",
    "load_schema",
    "merge_configs",
    "selected_inits",
    "validate_config",
]

#: ``schemas/config.schema.yaml`` of the repository (src/mixce/config.py -> ../../schemas).
DEFAULT_SCHEMA_PATH: Path = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message has one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- loading


def merge_configs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated with ``override`` by Snakemake's own merge,
    :func:`snakemake.utils.update_config` (nested mappings are merged key by key; any other
    value of ``override``, a scalar, a list or ``None``, replaces the value in ``base``),
    on copies: neither argument is modified."""
    from snakemake.utils import update_config

    merged: dict[str, Any] = copy.deepcopy(dict(base))
    update_config(merged, copy.deepcopy(dict(override)))
    return merged


def load_config(path_or_paths: str | Path | Sequence[str | Path]) -> dict[str, Any]:
    """Load a configuration file, or a base file followed by override files, as
    ``snakemake --configfile <override>...`` does with the Snakefile's ``configfile:``.

    Args:
        path_or_paths: one YAML file, or a list of them: the first is the base
            configuration (normally ``config.yaml``); the following files are merged
            into one override in order, which is then merged on top of the base (both
            steps with :func:`merge_configs`, Snakemake's own merge). An empty file
            changes nothing.

    Returns:
        The merged configuration (not validated; see :func:`validate_config`).

    Raises:
        ConfigError: a file is not valid YAML or its top level is not a mapping.
        FileNotFoundError: a file does not exist.
    """
    paths = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    if not paths:
        raise ValueError("load_config needs at least one configuration file")
    base, *overrides = (_read_config_file(Path(path)) for path in paths)
    override: dict[str, Any] = {}
    for data in overrides:
        override = merge_configs(override, data)
    return merge_configs(base, override)


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
    """Names of the synthetic inits this run trains, in order.

    ``synthetic.use_inits`` when present, otherwise every key of
    ``synthetic.inits`` (in file order).
    """
    synthetic = config["synthetic"]
    if synthetic.get("use_inits") is not None:
        return list(synthetic["use_inits"])
    return list(synthetic["inits"])


# --------------------------------------------------------------------------- validation


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
    """``schema`` with every ``{"$ref": "#/$defs/<name>", ...}`` replaced by the definition
    merged with the ref's siblings, and ``$defs`` dropped.

    A sibling of a ``$ref`` adds a keyword (``items`` to a ``list``) or an annotation
    (``description``), so the merge validates what JSON Schema's ``$ref`` (an "all of")
    validates; any other overlap is an error. Errors of the inlined schema carry the whole
    schema of their key, so they name every allowed value.
    """
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
        clash |= {
            k for group in _COUPLED if group & set(target) and group & set(out) for k in group
        }
        if clash:
            raise ValueError(
                f"schema {where}: siblings of $ref {ref!r} repeat or split {sorted(clash)}"
            )
        return {**target, **out}

    return inline(schema, "#")


def load_schema(schema_path: Path | str | None = None) -> dict[str, Any]:
    """The config schema (``schemas/config.schema.yaml`` unless given), checked as
    JSON Schema 2020-12, with its ``$ref`` entries inlined (see :func:`_inline_refs`)."""
    path = Path(schema_path).resolve() if schema_path is not None else DEFAULT_SCHEMA_PATH
    if path not in _schema_cache:
        with path.open(encoding="utf-8") as handle:
            schema = yaml.safe_load(handle)
        _Validator.check_schema(schema)
        _schema_cache[path] = _inline_refs(schema)
    return _schema_cache[path]


PathParts = tuple[str | int, ...]


def _format_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<top level>"


def _sort_key(parts: PathParts) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in parts)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


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
        low, low_open = schema.get("minimum"), False
        if "exclusiveMinimum" in schema:
            low, low_open = schema["exclusiveMinimum"], True
        high, high_open = schema.get("maximum"), False
        if "exclusiveMaximum" in schema:
            high, high_open = schema["exclusiveMaximum"], True
        if low is not None and high is not None:
            lb, rb = "(" if low_open else "[", ")" if high_open else "]"
            return f"{noun} in {lb}{low!r}, {high!r}{rb}"
        if low is not None:
            return f"{noun} {'>' if low_open else '>='} {low!r}"
        if high is not None:
            return f"{noun} {'<' if high_open else '<='} {high!r}"
        return noun
    if kind == "string":
        words = "a string"
        if "pattern" in schema:
            words += f" matching {schema['pattern']}"
        elif schema.get("minLength", 0) >= 1:
            words = "a non-empty string"
        return words
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


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _yaml_string_hint(value: Any, schema: Mapping[str, Any]) -> str:
    if schema.get("type") == "number" and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (YAML reads numbers such as 1e-30 as strings: write 1.0e-30)"
    return ""


def _schema_problems(
    error: jsonschema.ValidationError,
) -> Iterator[tuple[PathParts, str]]:
    """Translate one jsonschema error into (path, message) pairs."""
    parts: PathParts = tuple(error.absolute_path)
    where = _format_path(parts)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    value = error.instance
    keyword = error.validator

    if keyword == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        patterns = schema.get("patternProperties", {})
        for key in sorted(value, key=str):
            if key in allowed or any(re.search(p, str(key)) for p in patterns):
                continue
            hint = (
                "allowed keys are " + ", ".join(allowed)
                if allowed
                else "this mapping takes no keys"
            )
            yield (
                parts + (key,),
                f"unknown config key {_format_path(parts + (key,))}: {hint}",
            )
        return
    if keyword == "required":
        missing = error.validator_value
        props = schema.get("properties", {})
        for key in missing:
            if isinstance(value, Mapping) and key in value:
                continue
            reason = props.get(key, {}).get("description") or schema.get("description", "")
            msg = f"missing config key {_format_path(parts + (key,))}"
            if reason:
                msg += f": {reason.rstrip('.')}"
            yield parts + (key,), msg
        return
    schema_path = list(error.absolute_schema_path)
    if len(schema_path) >= 2 and schema_path[-2] == "propertyNames":
        # a key of the mapping failed propertyNames; the error instance is that key
        yield (
            parts + (str(value),),
            (
                f"config key {_format_path(parts + (str(value),))} has an invalid name "
                f"{value!r}: names must be {_describe(schema)}"
            ),
        )
        return
    if keyword == "not":
        reason = schema.get("description", "it is not allowed here")
        yield parts, f"config key {where} is not allowed: {reason}"
        return
    if keyword == "minItems":
        yield (
            parts,
            f"config key {where} = {_short_repr(value)} is not allowed: "
            f"must be {_describe(schema)}",
        )
        return
    if keyword == "minProperties":
        yield (
            parts,
            f"config key {where} is empty: must be a mapping with at least one entry",
        )
        return
    if keyword == "uniqueItems":
        seen: list[Any] = []
        dups: list[Any] = []
        for item in value:
            if item in seen and item not in dups:
                dups.append(seen[seen.index(item)])
            seen.append(item)
        listed = ", ".join(repr(d) for d in dups)
        yield (
            parts,
            (
                f"config key {where} = {_short_repr(value)} is not allowed: must be "
                f"{_describe(schema)} ({listed} appears more than once)"
            ),
        )
        return
    # type, enum, const, minimum, maximum, exclusive*, pattern, minLength, ...
    yield (
        parts,
        (
            f"config key {where} = {_short_repr(value)} is not allowed: must be "
            f"{_describe(schema)}{_yaml_string_hint(value, schema)}"
        ),
    )


def _synthetic_gpu_problems(
    config: Mapping[str, Any], synthetic: Mapping[str, Any]
) -> Iterator[tuple[PathParts, str]]:
    """synthetic.train.device: cuda needs a GPU for the synthetic_train jobs on a cluster."""
    train = synthetic.get("train")
    if not isinstance(train, Mapping) or train.get("device") != "cuda":
        return
    rules = (config.get("cluster") or {}).get("rules") or {}
    spec = rules.get("synthetic_train") if isinstance(rules, Mapping) else None
    gpu = spec.get("gpu") if isinstance(spec, Mapping) else None
    if isinstance(gpu, int) and gpu < 1:
        yield (
            ("cluster", "rules", "synthetic_train", "gpu"),
            (
                f"config key cluster.rules.synthetic_train.gpu = {gpu} is not allowed: "
                "synthetic.train.device is cuda, so each synthetic_train job needs a GPU; "
                "set it to 1 (or set synthetic.train.device to cpu or auto)"
            ),
        )


def _gpt2_data_problems(config: Mapping[str, Any]) -> Iterator[tuple[PathParts, str]]:
    """gpt2.data: the length filter keeps min_words < words < max_words (both bounds
    exclusive, mixce.gpt2.data.clean.length_ok), so max_words <= min_words + 1 keeps no text."""
    gpt2 = config.get("gpt2")
    data = gpt2.get("data") if isinstance(gpt2, Mapping) else None
    if not isinstance(data, Mapping):
        return
    low, high = data.get("min_words"), data.get("max_words")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        return
    if high <= low + 1:
        yield (
            ("gpt2", "data", "max_words"),
            (
                f"config key gpt2.data.max_words = {high} is not allowed with gpt2.data."
                f"min_words = {low}: a text is kept when min_words < its whitespace words < "
                f"max_words, so no text would be kept; max_words must be at least "
                f"min_words + 2 = {low + 2}"
            ),
        )


def _semantic_problems(config: Mapping[str, Any]) -> Iterator[tuple[PathParts, str]]:
    """Cross-key rules a JSON schema cannot express (checked defensively)."""
    yield from _gpt2_data_problems(config)
    synthetic = config.get("synthetic")
    if not isinstance(synthetic, Mapping):
        return
    yield from _synthetic_gpu_problems(config, synthetic)
    inits = synthetic.get("inits")
    init_names = [k for k in inits] if isinstance(inits, Mapping) else None

    running = init_names
    use_inits = synthetic.get("use_inits")
    if isinstance(use_inits, list) and init_names is not None:
        running = [n for n in use_inits if isinstance(n, str) and n in init_names]
        for i, name in enumerate(use_inits):
            if isinstance(name, str) and name not in init_names:
                yield (
                    ("synthetic", "use_inits", i),
                    (
                        f"config key synthetic.use_inits[{i}] = {name!r} is not allowed: "
                        f"must be one of the inits defined in synthetic.inits: "
                        f"{', '.join(init_names)}"
                    ),
                )

    def check_init(parts: PathParts, name: Any) -> Iterator[tuple[PathParts, str]]:
        if running is None or not isinstance(name, str) or name in running:
            return
        where = _format_path(parts)
        if init_names is not None and name in init_names:
            msg = (
                f"config key {where} = {name!r} is not allowed: init {name!r} does not "
                f"run (not in synthetic.use_inits); must be one of {', '.join(running)}"
            )
        else:
            msg = (
                f"config key {where} = {name!r} is not allowed: must be one of the inits "
                f"of this run: {', '.join(running)}"
            )
        yield parts, msg

    tables = synthetic.get("tables")
    if not isinstance(tables, Mapping):
        return
    for table, entry in tables.items():
        if isinstance(entry, list):
            for i, name in enumerate(entry):
                yield from check_init(("synthetic", "tables", table, i), name)
    table7 = tables.get("table7")
    if not isinstance(table7, Mapping):
        return
    yield from check_init(("synthetic", "tables", "table7", "init"), table7.get("init"))

    vocab_sizes = synthetic.get("vocab_sizes")
    vocab = table7.get("vocab_size")
    if isinstance(vocab_sizes, list) and isinstance(vocab, int) and vocab not in vocab_sizes:
        yield (
            ("synthetic", "tables", "table7", "vocab_size"),
            (
                f"config key synthetic.tables.table7.vocab_size = {vocab!r} is not allowed: "
                f"must be one of synthetic.vocab_sizes: {', '.join(map(str, vocab_sizes))}"
            ),
        )
    objectives = synthetic.get("objectives")
    wanted = table7.get("objectives")
    if isinstance(objectives, list) and isinstance(wanted, list):
        for i, name in enumerate(wanted):
            if isinstance(name, str) and name not in objectives:
                yield (
                    ("synthetic", "tables", "table7", "objectives", i),
                    (
                        f"config key synthetic.tables.table7.objectives[{i}] = {name!r} is not "
                        f"allowed: must be one of synthetic.objectives: "
                        f"{', '.join(map(str, objectives))}"
                    ),
                )


def validate_config(config: Mapping[str, Any], schema_path: Path | str | None = None) -> None:
    """Check a (merged) configuration; raise :class:`ConfigError` listing every problem.

    Checks the JSON schema (``schemas/config.schema.yaml`` unless
    ``schema_path`` is given; integers must be true integers, not 7.0) and the
    cross-key rules: every init in ``synthetic.use_inits`` is defined in
    ``synthetic.inits``; every init named in ``synthetic.tables`` runs;
    ``tables.table7.vocab_size`` is one of ``synthetic.vocab_sizes``;
    ``tables.table7.objectives`` are among ``synthetic.objectives``; ``gpt2.data`` keeps
    some text (``max_words >= min_words + 2``); in the gpt2 section,
    names in use_datasets, use_models, pretrain.datasets and train_sizes.models exist,
    selected_eta covers every dataset and model, and lengths fit the models
    (:func:`mixce.gpt2.plan.iter_problems`, checked once the section passes the schema).

    Args:
        config: the configuration, e.g. from :func:`load_config`. Not modified.
        schema_path: JSON schema file (YAML or JSON); defaults to
            :data:`DEFAULT_SCHEMA_PATH`.

    Raises:
        ConfigError: one line per problem, sorted by config key, each naming
            the key as a dotted path (``synthetic.etas[2]``), the bad value and
            the allowed values.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(
            [f"the configuration must be a mapping of config keys, not {_type_name(config)}"]
        )
    schema = load_schema(schema_path)
    problems: dict[tuple[PathParts, str], None] = {}
    for error in _Validator(schema).iter_errors(config):
        for item in _schema_problems(error):
            problems[item] = None
    for item in _semantic_problems(config):
        problems[item] = None
    gpt2 = config.get("gpt2")
    if isinstance(gpt2, Mapping) and not any(p[0][:1] == ("gpt2",) for p in problems):
        from mixce.gpt2.plan import iter_problems

        for item in iter_problems(gpt2):
            problems[item] = None
    if problems:
        ordered = sorted(problems, key=lambda item: (_sort_key(item[0]), item[1]))
        raise ConfigError([message for _, message in ordered])


def _schema_rows(schema: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str, str]]:
    """(dotted key, allowed values, description) for every key below ``schema``."""
    props = schema.get("properties", {})
    for name, sub in props.items():
        key = f"{prefix}.{name}" if prefix else name
        desc = " ".join(str(sub.get("description", "")).split())
        yield key, _describe(sub), desc
        if sub.get("type") == "object" and "properties" in sub:
            yield from _schema_rows(sub, key)
        extra = sub.get("additionalProperties")
        if isinstance(extra, Mapping) and "properties" in extra:
            yield from _schema_rows(extra, f"{key}.<name>")


def schema_markdown(schema_path: Path | str | None = None) -> str:
    """A Markdown table of every config key: allowed values and description (docs/CONFIG.md)."""
    schema = load_schema(schema_path or None)
    lines = [
        "# Config keys",
        "",
        "Generated from schemas/config.schema.yaml by `python -m mixce.config > docs/CONFIG.md`;",
        "a test fails when this file and the schema disagree.",
        "",
        "| key | allowed values | meaning |",
        "| --- | --- | --- |",
    ]
    for key, allowed, desc in _schema_rows(schema, ""):
        cells = (key, allowed, desc)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(schema_markdown(), end="")
