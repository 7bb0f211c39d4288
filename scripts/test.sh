#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs it.
#   ./scripts/test.sh            the whole suite
#   ./scripts/test.sh -k conv    extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

# Cross compilers and emulators for the Cortex-M, RISC-V and AArch64 targets. Installed only when
# missing, so a prepared machine starts the tests at once.
APT_PACKAGES=(
  gcc g++ clang
  gcc-arm-none-eabi binutils-arm-none-eabi picolibc-arm-none-eabi
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross picolibc-aarch64-linux-gnu
  qemu-system-arm qemu-system-misc qemu-user cppcheck
  cmake  # tests configure and build the `export --as cmake` library with it
  make  # `edgekit build` firmware projects are built with their Makefile
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
# PyTorch, CPU build, for the checks against torch autograd, torch-exported ONNX and the DCLS
# importer. Pinned to the exact release: an open range lets pip pick a multi-GB CUDA build.
python3 -c "import torch" 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
# DCLS (SNN-delays' synapse) for the checkpoint tests and examples/snn_delays_demo.py, and
# SpikingJelly's LIF for one cross-check; --no-deps: their requirements would pull torchvision
# and an unpinned torch.
python3 -c "import DCLS" 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check --no-deps "dcls==0.1.1"
python3 -c "import spikingjelly" 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check --no-deps "spikingjelly==0.0.0.0.14"

status=0
python3 -m pytest -n 2 --dist loadfile "$@" || status=$?
# exit 5 means no test was collected: that is a failure of the suite, not a pass
exit $status
