#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what it needs, then runs pytest.
#   bash scripts/test.sh                 # extra arguments go to pytest, e.g. -x or -k demo
# The browser test (tests/test_demo.py) drives Debian's chromium (or $PIX2PIX_CHROMIUM): it fails,
# never skips, without it, so it is installed here with apt-get (through sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "${PIX2PIX_CHROMIUM:-/usr/bin/chromium}" ]; then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
python -m pip install -q -r requirements-dev.txt
# The static site's browser test (tests/test_site.py) needs onnxruntime-web: npm ci of the committed lock file
# into ~/.cache/pix2pix_tf, never into the checkout (a no-op once installed). npm comes with Node.js.
python -m pix2pix_tf.site --install-runtime
exec python -m pytest -q tests "$@"
