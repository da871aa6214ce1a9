#!/usr/bin/env bash
# The GPU benchmark of issue 7, prepared to run in one call on a lent device machine (an H100
# or H200 with PyTorch and torchdiffeq installed, no Rust toolchain, no network):
#
#   here, once:  RUSTFLAGS="-C target-cpu=x86-64-v3" CARGO_TARGET_DIR=target/device \
#                    cargo build --release -p xtask
#                (and the Vulkan loader packages in .gl/, as the device README says;
#                optionally dispatch_cost and the gpu test executables, below)
#   device run:  carry [".gl", "target/device/release/xtask",
#                "target/device/release/examples/dispatch_cost", "target/device/gpu-tests"],
#                command "bash scripts/device-gpu-bench.sh", timeout about 400 s (the whole
#                script took 102 s on an H200; the limits below are for a stuck step)
#
# Writes to $OUT (8 files, the device's limit): nvidia-smi.txt, log.txt (everything the
# commands printed), gpu-report.md, gpu-results.json, and compare-<batch>.md for each batch
# (torchdiffeq odeint_adjoint on CUDA against our GPU RDM/IRDM, same weights and batches,
# interleaved). Time limits: 240 s for the GPU suite and 75 s per comparison, 540 s in all.
set -uo pipefail
OUT=${OUT:-target/device-out}
mkdir -p "$OUT"
if command -v nvidia-smi >/dev/null; then
  # The device machine: bring the Vulkan loader, point it at NVIDIA's driver.
  if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  export IRDM_GPU_ADAPTER=${IRDM_GPU_ADAPTER:-nvidia}
fi
XT=${XT:-target/device/release/xtask}
# Smoke test elsewhere: BATCHES=8 IRDM_GPU_ADAPTER=llvmpipe OUT=/tmp/out bash scripts/...
BATCHES=${BATCHES:-100,1000,10000,100000}
WEIGHTS=crates/nn/tests/data/toy_cnf_pinwheel_trained.safetensors
nvidia-smi -L > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, torchdiffeq; print(torch.__version__, torch.cuda.get_device_name())" >> "$OUT/nvidia-smi.txt" 2>&1

LOG="$OUT/log.txt"
stamp() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
# The gpu crate's tests on this adapter (every kernel against the host), when carried:
# cargo test --release -p irdm-gpu --no-run (same RUSTFLAGS and target dir), then copy the three
# executables it names to target/device/gpu-tests/{unit,vector,models}.
TESTS=${TESTS:-target/device/gpu-tests}
if [ -d "$TESTS" ]; then
  for t in unit vector models; do
    stamp "gpu tests: $t"
    (cd crates/gpu && IRDM_REQUIRE_GPU=1 timeout 90 "../../$TESTS/$t" -q) 2>&1 | tee -a "$LOG"
  done
fi
# Per-operation costs (record and run one dispatch, a four-group norm), when carried:
# cargo build --release -p irdm-gpu --example dispatch_cost (same RUSTFLAGS and target dir).
DC=${DC:-target/device/release/examples/dispatch_cost}
if [ -x "$DC" ]; then
  stamp dispatch_cost
  timeout 30 "$DC" 2>&1 | tee -a "$LOG"
fi
stamp "gpu suite"
timeout 240 "$XT" bench --gpu --batches "$BATCHES" --iters 10 \
  --from-weights "$WEIGHTS" --out /tmp/gpu-bench 2>&1 | tee -a "$LOG"
cp /tmp/gpu-bench/report.md "$OUT/gpu-report.md"
cp /tmp/gpu-bench/results.json "$OUT/gpu-results.json"

for b in ${BATCHES//,/ }; do
  stamp "compare-torch $b"
  timeout 75 "$XT" compare-torch --device cuda --batch "$b" --iters 5 \
    --weights "$WEIGHTS" --out "/tmp/cmp-$b" 2>&1 | tee -a "$LOG"
  cp "/tmp/cmp-$b/compare.md" "$OUT/compare-$b.md"
done
# Issue 21's targets, gathered in one place at the end of the log: the speedups over
# torchdiffeq's odeint_adjoint at batch 100 (target ≥ 60×) and 10⁵ (≥ 12×), the kernels' share
# of the f32 peak at 10⁵ (≥ 30 % for f and the adjoint RHS; of the data sheet's peak and of
# the one measured on the card by the gpu suite) and readbacks per accepted step (≤ 3), as
# the reports give them.
stamp "targets (issue 21)"
for b in 100 100000; do
  [ -f "$OUT/compare-$b.md" ] && grep -E "^\| irdm16" "$OUT/compare-$b.md" \
    | sed "s/^/compare-$b: /" | tee -a "$LOG"
done
grep "^f32 peak of the adapter" "$OUT/gpu-report.md" | sed "s/^/peak: /" | tee -a "$LOG"
grep -E "^\| 100000 \| (simple|tiled) \|" "$OUT/gpu-report.md" | sed "s/^/kernels: /" | tee -a "$LOG"
grep -E "^\| [0-9]+ \| irdm16" "$OUT/gpu-report.md" | grep "→" | sed "s/^/readbacks: /" | tee -a "$LOG"
stamp done
ls -la "$OUT"
