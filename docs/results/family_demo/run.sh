#!/usr/bin/env bash
# The anchor-loss family on the demo (README, docs/results.md): a weight grid
# on the validation split at seed 0, then CE and each loss at its chosen
# weight (now the loss's default) at seeds 0, 1, 2, scored on the held-out
# test split. 750 iterations (half the demo schedule); about 3 minutes per
# run on 2 CPU cores, 31 runs. Run from the repository root; resumable
# (tools/sweep.py skips what is trained and evaluated).
#
#   make family-demo   (or: bash docs/results/family_demo/run.sh [WORK_DIR])
#   SWEEP_ARGS=--report-only bash docs/results/family_demo/run.sh
set -euo pipefail
WORK=${1:-work_dirs/family_demo}
PY=${PYTHON:-python}
D=configs/demo
S=fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py
W=model.decode_head.anchor_losses.0.loss_weight
declare -A CONFIG=([ce]=$D/$S [ancm-e]=$D/ancm-euclidean_$S
                   [ancm-cos]=$D/ancm-cosine_$S [hal]=$D/hal_$S
                   [ldmat]=$D/ldmat_$S [lm]=$D/large-margin_$S
                   [center]=$D/center_$S)

sweep() {  # sweep SEEDS NAME... [-- EXTRA...]: NAME is ce or <loss>-w<weight>
  local seeds=$1; shift
  local configs=() names=() options=()
  while [[ $# -gt 0 && $1 != -- ]]; do
    local name=$1 base=${1%-w*}; shift
    configs+=("${CONFIG[$base]}"); names+=("$name")
    if [[ $name == *-w* ]]; then
      options+=("$name:$W=$(printf '%s' "${name##*-w}" | sed 's/^1$/1.0/')")
    fi
  done
  [[ $# -gt 0 ]] && shift
  $PY tools/sweep.py "${configs[@]}" --names "${names[@]}" \
    ${options[@]:+--method-options "${options[@]}"} \
    --seeds $seeds --work-dir "$WORK" --splits test val \
    --split-options val:test_dataloader.dataset.data_prefix.img_path=img_dir/val \
                    val:test_dataloader.dataset.data_prefix.seg_map_path=ann_dir/val \
    --cfg-options train_cfg.max_iters=750 train_cfg.val_interval=750 \
                  param_scheduler.1.end=750 default_hooks.checkpoint.interval=750 \
    "$@"
}

GRID=(ce ancm-e-w0.1 ancm-e-w0.3 ancm-e-w1 ancm-cos-w0.1 ancm-cos-w0.3
      hal-w0.1 hal-w0.3 ldmat-w0.1 ldmat-w0.3 lm-w0.1 lm-w0.3 lm-w1
      center-w0.03 center-w0.1 center-w0.3 center-w1)
CHOSEN=(ce ancm-e-w0.3 ancm-cos-w0.3 hal-w0.1 ldmat-w0.1 lm-w0.3 center-w0.03)

# SWEEP_ARGS=--report-only: the tables again from the runs there are
EXTRA=${SWEEP_ARGS:---jobs 1}
sweep "0" "${GRID[@]}" -- $EXTRA
mkdir -p "$WORK/grid"                       # docs/results/family_demo/grid/
cp "$WORK/results.json" "$WORK/report/report.md" "$WORK/grid/"
sweep "0 1 2" "${CHOSEN[@]}" -- $EXTRA      # $WORK/results.json: the README table
$PY tools/analysis/family_table.py "$WORK/results.json" --split test \
  --methods 'ce=CE `ce`' 'ancm-e-w0.3=ANCM euclidean `ancm-e-w0.3`' \
  'ancm-cos-w0.3=ANCM cosine `ancm-cos-w0.3`' 'hal-w0.1=HAL `hal-w0.1`' \
  'ldmat-w0.1=LDMAT `ldmat-w0.1`' 'lm-w0.3=LargeMargin `lm-w0.3`' \
  'center-w0.03=Center `center-w0.03`'
