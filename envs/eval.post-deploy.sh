#!/usr/bin/env bash
# Snakemake (--sdm conda) runs this inside the mixce-eval env right after creating it.
# simcse is installed here, not in eval.yaml's pip: section, because it must be installed
# without its dependencies (it pins numpy<1.20 and scipy<1.6; see requirements-nodeps.txt)
# and a pip: section cannot say --no-deps. The pin and hash below are those of
# requirements-nodeps.txt (tests/test_envs.py checks it); Snakemake runs a copy of this
# script, so it cannot read that file by a relative path.
set -euo pipefail
req=$(mktemp)
trap 'rm -f "$req"' EXIT
cat >"$req" <<'EOF'
simcse==0.4 --hash=sha256:6847c126e197f6612c69180556d193af59e3bf3fecab3c815f83d3232a9fa562
EOF
python -m pip install --no-deps -r "$req"
