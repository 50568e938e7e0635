#!/usr/bin/env bash
# Capture what envdoctor reads on a real GPU host, as test fixtures.
# Usage: scripts/capture-gpu-host.sh OUTDIR
# Writes OUTDIR/root.tar.gz (a fake root: /proc, /sys/bus/pci, /etc, CUDA version files, cuDNN headers),
# OUTDIR/nvml.json (NVML values read through nvidia-ml-py), and raw command outputs (*.txt, *.xml).
# Only reads; never changes GPU settings.
set -u
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
root=$(mktemp -d)
export LC_ALL=C

grab() {  # copy a file (also /proc pseudo-files) into the fake root
  local f
  for f in "$@"; do
    [ -r "$f" ] || continue
    mkdir -p "$root$(dirname "$f")"
    timeout 5 cat "$f" >"$root$f" 2>/dev/null || rm -f "$root$f"
  done
}
grab /proc/cpuinfo /proc/meminfo /proc/modules /proc/version /proc/sys/kernel/osrelease /proc/1/cgroup
grab /proc/driver/nvidia/version /proc/driver/nvidia/params
for g in /proc/driver/nvidia/gpus/*/information; do grab "$g"; done
grab /etc/os-release /usr/lib/os-release /etc/lsb-release /etc/debian_version /etc/ld.so.conf
for f in /etc/ld.so.conf.d/*; do grab "$f"; done
grab /sys/module/nvidia/version /sys/module/nouveau/version
for f in /sys/firmware/efi/efivars/SecureBoot-*; do [ -e "$f" ] && { mkdir -p "$root/sys/firmware/efi/efivars"; cp "$f" "$root$f"; }; done
for d in /sys/bus/pci/devices/*; do
  for a in vendor device class subsystem_vendor subsystem_device; do grab "$d/$a"; done
  if [ -L "$d/driver" ]; then mkdir -p "$root$d"; ln -s "$(readlink "$d/driver")" "$root$d/driver"; fi
done
for v in /usr/local/cuda*/version.json /usr/local/cuda*/version.txt; do grab "$v"; done
while IFS= read -r h; do grab "$h"; done < <(find / -xdev -path /tmp -prune -o \( -name cudnn_version.h -o -name 'cudnn_version_v*.h' \) -print 2>/dev/null | head -20)
tar -C "$root" -czf "$out/root.tar.gz" . && rm -rf "$root"

{
  echo "## uname -a"; uname -a
  echo "## ls -la /usr/local"; ls -la /usr/local
  echo "## ls /usr/local/nvidia /usr/local/nvidia/lib64"
  # shellcheck disable=SC2012  # a human-readable listing is the point
  ls -la /usr/local/nvidia /usr/local/nvidia/lib64 2>&1 | head -80
  echo "## ls /dev/nvidia*"; ls -la /dev/nvidia* 2>&1
  echo "## which nvcc nvidia-smi python3"; command -v nvcc nvidia-smi python3
  echo "## nvcc --version"; timeout 10 nvcc --version
  echo "## env (CUDA-relevant)"; env | grep -E '^(PATH|LD_LIBRARY_PATH|CUDA|NVIDIA|TF_|XLA|CONDA|VIRTUAL_ENV)' | sort
  echo "## ldconfig -p (cuda-ish)"; ldconfig -p | grep -E 'libcuda|libcudart|libcublas|libcudnn|libcufft|libcusolver|libcusparse|libcurand|libnccl|libnvidia-ml|libnvrtc|libnvJitLink'
  echo "## cudnn/cuda libs on disk"; find / -xdev \( -name 'libcudnn*.so*' -o -name 'libcudart.so*' -o -name 'libcublas.so*' -o -name 'libnccl.so*' -o -name 'libnvidia-ml.so*' -o -name 'libcuda.so*' \) 2>/dev/null | sort | head -120
  echo "## python nvidia wheels layout"
  python3 - <<'PY'
import importlib.util, os, sys
print(sys.executable, sys.version)
spec = importlib.util.find_spec("nvidia")
for p in (spec.submodule_search_locations if spec else []):
    for dirpath, dirs, files in os.walk(p):
        depth = dirpath[len(p):].count(os.sep)
        if depth > 3: dirs[:] = []; continue
        for f in sorted(files):
            if ".so" in f or f.endswith(".h") and "version" in f: print(os.path.join(dirpath, f))
PY
  echo "## pip list (nvidia/tf/torch/jax)"; python3 -m pip list 2>/dev/null | grep -iE 'nvidia|tensorflow|keras|torch|jax|cuda'
} >"$out/host.txt" 2>&1

for args in "-q -x:nvidia-smi-q-x.xml" "-L:nvidia-smi-L.txt" ":nvidia-smi.txt"; do
  a=${args%%:*}; f=${args#*:}
  # shellcheck disable=SC2086
  ( time timeout 20 nvidia-smi $a ) >"$out/$f" 2>"$out/$f.stderr"
done
python3 "$(dirname "$0")/capture_nvml.py" >"$out/nvml.json" 2>"$out/nvml.stderr"
