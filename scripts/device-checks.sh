#!/usr/bin/env bash
# Run envdoctor on a real GPU host and keep what it saw, as test fixtures and numbers.
# Usage: scripts/device-checks.sh OUTDIR   (run from the repository root; PYTHONPATH must reach envdoctor)
# Writes: session.txt (human output, timings), facts.json/check.json (idle GPU), busy-facts.json/busy-check.json
# (while another process holds 6 GiB of GPU memory), gpus.json. Reads only; changes no GPU setting.
set -u
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
export NO_COLOR=1 PYTHONUNBUFFERED=1
ed() { python3 -m envdoctor "$@"; }
step() { echo; echo "## envdoctor $*"; ed "$@"; echo "[exit $?]"; }

uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -n 1)
{
  step --version
  step check -v
  step gpus
  step env --gpus 0
  step env --gpus "${uuid:0:12}" --format fish
  step env --gpus auto:1 --memory-limit 4096 --allocator cuda_malloc_async
  step env --gpus 1
  step run --gpus 0 -- nvidia-smi -L
  # shellcheck disable=SC2016  # expanded by the child shell, on purpose
  step run --gpus none -- sh -c 'nvidia-smi -L; echo "CUDA_VISIBLE_DEVICES=[$CUDA_VISIBLE_DEVICES]"'
  step run --gpus 0 -- no-such-command-here
  step env --gpus 0 --memory-limit 999999999
  step env --gpus 0 --format dotenv
  step env --gpus -1
  # Two auto:1 runs started together on a one-GPU machine: one gets the GPU, the other a clean refusal.
  echo; echo "## two concurrent run --gpus auto:1"
  # (a fresh lock directory: the `env --gpus auto:1` above still holds its 60 s reservation of the only GPU)
  fresh=$(mktemp -d)
  # shellcheck disable=SC2016  # expanded by the child shell, on purpose
  XDG_RUNTIME_DIR=$fresh ed run --gpus auto:1 -- sh -c 'echo "first: $CUDA_VISIBLE_DEVICES"; sleep 3' & a=$!
  # shellcheck disable=SC2016
  XDG_RUNTIME_DIR=$fresh ed run --gpus auto:1 -- sh -c 'echo "second: $CUDA_VISIBLE_DEVICES"; sleep 3' & b=$!
  wait "$a"; echo "[exit $?]"; wait "$b"; echo "[exit $?]"
  step check --python /usr/bin/python3
  step env --gpus ALL
  step check --bogus-option
  step env --gpus 0 --format json
  echo; echo '## CUDA_DEVICE_ORDER=bogus'; CUDA_DEVICE_ORDER=bogus ed check; echo "[exit $?]"
  step build-tf --dry-run --tf-version 2.20.0
  step build-tf --dry-run --tf-version 2.17.0 --cuda-cc 8.0,9.0
  echo; echo "## bench/check_speed.py"; python3 bench/check_speed.py --runs 11
} >"$out/session.txt" 2>&1
ed check --json --save "$out/facts.json" >"$out/check.json"
ed gpus --json >"$out/gpus.json"

# The same GPU while another process holds memory: the case where TensorFlow's default grab fails.
python3 -c "
import time, torch
x = torch.empty(6 << 30, dtype=torch.uint8, device='cuda'); torch.cuda.synchronize()
print('holding', flush=True); time.sleep(60)" >/tmp/holder.log 2>&1 &
holder=$!
for _ in $(seq 60); do grep -q holding /tmp/holder.log && break; sleep 1; done
ed check --json --save "$out/busy-facts.json" >"$out/busy-check.json"
{
  echo; echo "## while pid $holder holds 6 GiB"
  step check
  step gpus
  step env --gpus auto:1
} >>"$out/session.txt" 2>&1
kill "$holder"
