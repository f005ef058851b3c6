#!/usr/bin/env bash
# Installs the external tools that tests/static/test_deploy_configs.py and
# tests/e2e/test_nginx_replicas.py need. Idempotent, quiet, fails on error, and
# does nothing (no apt-get update) when everything is already there.
#
#   promtool        Debian `prometheus`       promtool check config/rules
#   nginx           Debian `nginx`            nginx -t, and the e2e test's balancer
#   docker-compose  Debian `docker-compose`   `docker-compose config` (v1.29, parses without an engine)
#   bwrap           Debian `bubblewrap`       the Python tool's sandbox (tests/integration/test_tool_sandbox_attacks.py)
#   chromium        Debian `chromium` (+ `chromium-driver`)  the console's browser tests
#                   (tests/e2e/test_console_browser.py; Playwright drives /usr/bin/chromium, no download)
#   tesseract       Debian `tesseract-ocr` `-kor` `-eng`   jobs OCR (tests/integration/test_jobs_*.py)
#   fonts           Debian `fonts-nanum` `fonts-dejavu-core`  the generated OCR test pages
#   espeak-ng, ffmpeg  Debian `espeak-ng` `ffmpeg`  speech-to-text test audio, WebM/M4A decoding (tests/*audio*)
#   kubectl         machine image (google-cloud-cli's kubectl, kustomize v5): `kubectl kustomize`
#   kubernetes-validate  PyPI, into the project venv: offline Kubernetes JSON schemas
set -euo pipefail

cd "$(dirname "$0")/.."
VENV_PY="${VENV_PY:-.venv/bin/python}"
export DEBIAN_FRONTEND=noninteractive

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

declare -a apt_pkgs=()
have promtool || apt_pkgs+=(prometheus)
have nginx || apt_pkgs+=(nginx)
have docker-compose || apt_pkgs+=(docker-compose)
have wrk || apt_pkgs+=(wrk)
have bwrap || apt_pkgs+=(bubblewrap)
have prlimit || apt_pkgs+=(util-linux)
have chromium || apt_pkgs+=(chromium)
have chromedriver || apt_pkgs+=(chromium-driver)
# jobs OCR (docs/jobs.md): Tesseract with Korean data; fonts render the generated OCR test pages
have tesseract || apt_pkgs+=(tesseract-ocr tesseract-ocr-kor tesseract-ocr-eng)
[ -f /usr/share/tesseract-ocr/5/tessdata/kor.traineddata ] || apt_pkgs+=(tesseract-ocr-kor)
[ -d /usr/share/fonts/truetype/nanum ] || apt_pkgs+=(fonts-nanum)
# speech-to-text (docs/audio.md): espeak-ng speaks the generated test audio; ffmpeg decodes WebM/M4A
have espeak-ng || apt_pkgs+=(espeak-ng)
have ffmpeg || apt_pkgs+=(ffmpeg)
[ -d /usr/share/fonts/truetype/dejavu ] || apt_pkgs+=(fonts-dejavu-core)

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    echo "install-tools: apt-get install ${apt_pkgs[*]}"
    as_root apt-get update -qq >/dev/null
    # policy-rc.d (present in container images) keeps the services from starting;
    # nginx/prometheus are only used as binaries by the tests.
    as_root apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

if ! have kubectl; then
    echo "install-tools: kubectl (with built-in kustomize >= v4) is missing." >&2
    echo "  It comes with the machine image (google-cloud-cli's kubectl); Debian's" >&2
    echo "  kubernetes-client is too old (kustomize v2). Install kubectl >= 1.21." >&2
    exit 1
fi

if ! "$VENV_PY" -c "import kubernetes_validate" >/dev/null 2>&1; then
    echo "install-tools: pip install kubernetes-validate"
    if [ -x .venv/bin/uv ]; then
        .venv/bin/uv pip install --quiet --python "$VENV_PY" "kubernetes-validate>=1.30"
    else
        "$VENV_PY" -m pip install --quiet "kubernetes-validate>=1.30"
    fi
fi

if ! "$VENV_PY" -c "import openai" >/dev/null 2>&1; then
    echo "install-tools: the project venv lacks openai (pip install -e '.[dev]' first)" >&2
    exit 1
fi
