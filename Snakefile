# MixCE (Zhang et al., ACL 2023) reproduction. config.yaml is the paper-scale run;
# smaller runs: --configfile config/demo.yaml (demo) or config/test.yaml (CI).
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# Rules run this checkout's src/mixce (each rule fingerprints the code it runs in its `code`
# param), also in conda environments and over an older installed mixce: src/ goes first.
SRC = str(Path(workflow.basedir, "src"))
sys.path.insert(0, SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))

from mixce.config import ConfigError, canonical, validate_config


configfile: "config.yaml"


try:  # plain words first (names every bad key); then validate() fills the schema defaults
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(f"invalid configuration:\n{error}") from None
validate(config, "schemas/config.schema.yaml")
# Keys in sorted order: reordering keys in a config file changes no params (reruns nothing).
_canonical = canonical(config)
config.clear()
config.update(_canonical)


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/cluster.smk"


wildcard_constraints:
    init="|".join(INITS),
    vocab=r"\d+",
    seed=r"\d+",
    eta=r"\d+\.\d+",
    objective="|".join(OBJECTIVES),
    dataset="|".join(GPT2["datasets"]),
    model="|".join(GPT2["models"]),
    variant=r"base|[a-z]+(_[a-z]+)*(_[a-z]+-?\d+(\.\d+)?(e[-+]?\d+)?)*_n\d+",
    split="train|dev|test",
    decoding=r"unbiased|greedy|top_p\d\.\d\d",
    role="mauve|coherence",


include: "rules/synthetic.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/finetune.smk"
include: "rules/sample.smk"
include: "rules/metrics.smk"
include: "rules/select.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        synthetic_outputs() + gpt2_outputs(),
