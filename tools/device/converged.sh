#!/usr/bin/env bash
# Issue 9's converged comparison on a lent GPU machine (the workplace's `device` tool), in one command.
#
# Prepare here, in the project root (the wheels and the corpus copy are git-ignored, so once per session):
#   bash ../shared/tools/gpu-wheels.sh                  # .whl/: hydra-core, omegaconf, antlr4, datasets, ...
#   mkdir -p data && cp -r ../shared/data/multi30k data/  # ../shared does not travel; data/ is the default data_dir
# Then: run(command="bash tools/device/converged.sh", carry=[".whl", "data/multi30k"], timeout_s=590)
#
# It trains both presets with their tuned recipes (recipe=multi30k_<preset>, conf/recipe/) under
# experiment=multi30k_converged (early stopping, bf16 on the GPU), three seeds, all six
# runs at once on the one GPU (small models leave it mostly idle; parallel=all gives each 1/6 of the cores), each
# capped at RUN_MINUTES so that the command ends inside the device's 10-minute limit, then writes the comparison's
# report (test BLEU/chrF mean +/- std, paired bootstrap per seed, time to BLEU, benchmarks). Everything but the
# checkpoints comes back as $OUT/compare.tgz; the console log as $OUT/log.txt. The report states whether each run
# stopped early (converged) or at the cap. Elsewhere (no $OUT: outputs/device/) it runs the same steps, with DATA
# (data overrides), TRAIN (more train.py overrides, comma-separated) and EXTRA (mtlab.compare overrides) added:
# tests/test_device_script.py runs it on the CPU with tiny models that way.
set -uo pipefail
OUT=${OUT:-outputs/device}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
RUN_MINUTES=${RUN_MINUTES:-6}    # each run's trainer.max_time
TOTAL_SECONDS=${TOTAL_SECONDS:-560}  # the whole script stops the comparison here, so the outputs still come back
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=$PWD:/tmp/site
fi
export PYTHONUNBUFFERED=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c 'import torch, lightning; print("torch", torch.__version__, "lightning", lightning.__version__,
      "cuda", torch.cuda.is_available() and torch.cuda.get_device_name())'
start=$SECONDS
python3 -m mt.data ${DATA:-} > "$OUT/data.json" || exit 1          # prepare once, before six runs would race to it
echo "data prepared in $((SECONDS - start)) s"
dir=${COMPARE_DIR:-outputs/compare/converged}
train=(experiment=multi30k_converged "trainer.max_time=00:00:$(printf %02d "$RUN_MINUTES"):00")
[ -n "${TRAIN:-}" ] && IFS=, read -ra more <<< "$TRAIN" && train+=("${more[@]}")
list=$(printf '"%s",' "${train[@]}")
timeout --signal=INT --kill-after=20 $((TOTAL_SECONDS - SECONDS)) \
  python3 -m mtlab.compare seeds=[1,2,3] parallel=all "output_dir=$dir" simultaneous.presets=[] \
  "train_overrides=[${list%,}]" \
  '+model_overrides.lstm=["recipe=multi30k_lstm"]' '+model_overrides.transformer=["recipe=multi30k_transformer"]' \
  ${DATA:-} ${EXTRA:-}
rc=$?
echo "mtlab.compare exit $rc after $((SECONDS - start)) s"
tar czf "$OUT/compare.tgz" --exclude='*.ckpt' --exclude="*.safetensors" "$dir" 2>/dev/null
ls -la "$OUT"
exit $rc
