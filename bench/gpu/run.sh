#!/usr/bin/env bash
# The webgpu backend on a real GPU, in one script (run from anywhere; it works in the repo root):
#   1. which adapter Dawn finds (it must be the GPU, with shader-f16 and subgroups where the GPU has them);
#   2. the WebGPU tests and goldens there (kernels incl. the f16 tiles and subgroup reductions, the
#      golden suite for inference and training, decode-step counters, resume) with the adapter required;
#   3. ours: OpenELM-270M and 1.1B prefill and greedy decode (bf16 weights), 270M training tokens/s;
#   4. PyTorch on the same GPU, same shapes (bench/gpu/torch_bench.py), and a side-by-side summary.
#
#   bash bench/gpu/run.sh [goldens] [ours] [torch] [summary]     (default: all four, in that order)
#
# Each stage has a time limit (GOLDENS_S, OURS_S, TORCH_S seconds; defaults 240, 300, 420) so that
# one that hangs leaves the rest their time. On a lent machine with 15 minutes and 10 per command,
# two commands fit: `run.sh goldens ours` then `run.sh torch summary` (same OUT).
#
# Results go to $OUT (default bench/gpu/out): adapter.txt, goldens.log, webgpu.jsonl, pytorch.jsonl,
# summary.json. Extra arguments for the benchmarks: OURS_ARGS, TORCH_ARGS (see each script's header).
# Needs Node >= 20.16 with the project built (npm ci && npx tsc -p tsconfig.json) and the optional
# npm package `webgpu`, a Vulkan loader and driver, and python3 with PyTorch (CUDA) for step 4.
# A machine without Node or network takes the bundle bench/gpu/pack.sh makes (.gpu-bundle/: Node,
# the built project and its runtime packages, the Vulkan loader): it is unpacked here first.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/gpu/out}
mkdir -p "$OUT"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(goldens ours torch summary)
has() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
say() { echo "gpu-bench: $*" | tee -a "$OUT/run.log" >&2; }

if [ -d .gpu-bundle ]; then
  if [ -f .gpu-bundle/node.xz ] && ! command -v node >/dev/null; then
    mkdir -p /tmp/gpu-node && xz -dc .gpu-bundle/node.xz > /tmp/gpu-node/node && chmod +x /tmp/gpu-node/node
    export PATH=/tmp/gpu-node:$PATH
  fi
  [ -f .gpu-bundle/app.tar.xz ] && tar -xJf .gpu-bundle/app.tar.xz
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' && ls .gpu-bundle/gl/*.deb >/dev/null 2>&1; then
    for f in .gpu-bundle/gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
fi
# NVIDIA's container runtime mounts the driver (and its Vulkan manifest) under /usr/local/nvidia
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$nv" ] && ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
  export VK_DRIVER_FILES=$nv
  [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
command -v node >/dev/null || { say "no Node.js: install Node >= 20.16 or make the bundle with bench/gpu/pack.sh"; exit 1; }
[ -f dist/bench/gpu/webgpu-bench.js ] || { say "the project is not built: npx tsc -p tsconfig.json (or bench/gpu/pack.sh)"; exit 1; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true; node --version; node scripts/webgpu-adapter.mjs; } | tee "$OUT/adapter.txt"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
# dense bf16 tensor-core peak for MFU: H100/H200 SXM 989 TFLOP/s, H100 PCIe 756
peak=989
case "$gpu" in *PCIe*) peak=756 ;; esac
rc=0

if has goldens; then
  say "goldens and WebGPU tests on the GPU"
  # the kernels, decode counters and training runs; then the golden suite and speculative decoding
  # (rows of a verification forward equal one-row calls) on the webgpu backend
  OPENELM_REQUIRE_WEBGPU=1 timeout "${GOLDENS_S:-240}" bash -c "node --test dist/test/webgpu-kernels.test.js dist/test/webgpu-backend.test.js; r=\$?
    node --test --test-name-pattern='\\[webgpu\\]' dist/test/backend-suite.test.js dist/test/speculative.test.js || r=1; exit \$r" > "$OUT/goldens.log" 2>&1 || rc=1
  grep -E '^(not )?ok |^# (pass|fail|skipped)' "$OUT/goldens.log" | grep -v '# SKIP' >&2
fi
if has ours; then
  say "webgpu: inference and training benchmarks"
  # shellcheck disable=SC2086
  timeout "${OURS_S:-300}" node dist/bench/gpu/webgpu-bench.js --peak-tflops "$peak" ${OURS_ARGS:-} | tee "$OUT/webgpu.jsonl" || rc=1
fi
if has torch; then
  say "pytorch: inference and training benchmarks"
  # shellcheck disable=SC2086
  PYTHONUNBUFFERED=1 timeout "${TORCH_S:-420}" python3 bench/gpu/torch_bench.py --peak-tflops "$peak" ${TORCH_ARGS:-} | tee "$OUT/pytorch.jsonl" || rc=1
fi
if has summary; then
  node dist/bench/gpu/summary.js "$OUT/webgpu.jsonl" "$OUT/pytorch.jsonl" | tee "$OUT/summary.json"
fi
exit $rc
