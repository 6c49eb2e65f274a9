#!/usr/bin/env bash
# Create or reuse .venv with rlnas and its pinned dependencies; install Debian's Fashion-MNIST where possible.
# Re-installs only when pyproject.toml changed. Used by `make search` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RLNAS_VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "rlnas needs Python 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

stamp="$VENV/.rlnas-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PY" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing rlnas and its pinned dependencies into $VENV (torch 2.14.1 is large: a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import rlnas, torch; print('    rlnas', rlnas.__version__, '| torch', torch.__version__)"
    echo "$want" > "$stamp"
fi

# Fashion-MNIST for the default preset: Debian's package where apt and root are available.
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "==> installing Debian's dataset-fashion-mnist"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
            || echo "    could not install dataset-fashion-mnist; the offline digits preset still works" >&2
    else
        echo "==> Fashion-MNIST is not installed and apt-get/root are not available here." >&2
        echo "    Get it with 'sudo apt-get install dataset-fashion-mnist', or put the four idx .gz files in a" >&2
        echo "    folder and set data.root in envs/fashion_mnist.yaml. Until then the offline 'digits' preset is used." >&2
    fi
fi
