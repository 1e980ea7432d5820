#!/bin/bash
# $1 name, rest: python overrides for params
name=$1; shift
d=/tmp/ws/$name; rm -rf $d; mkdir -p $d/data; cp -r /work/main/data/prepared $d/data/
/work/main/.venv/bin/python - "$d" "$@" <<'PY'
import sys, yaml
d = sys.argv[1]; p = yaml.safe_load(open("/work/main/params.yaml"))
for kv in sys.argv[2:]:
    k, v = kv.split("="); s, key = k.split(".")
    p[s][key] = yaml.safe_load(v)
yaml.safe_dump(p, open(f"{d}/params.yaml", "w"))
PY
cd $d; export TQDM_DISABLE=1
/work/main/.venv/bin/tsforecast train --root $d > train.log 2>&1 && /work/main/.venv/bin/tsforecast evaluate --root $d > eval.log 2>&1
python3 -c "import json; m=json.load(open('$d/metrics/evaluate.json')); t=json.load(open('$d/metrics/train.json')); print('$name', round(m['mse_scaled'],6), m['intervals'], t['best_epoch'], t['train_seconds'])"
