# Sourced by scripts/test and scripts/conformance: installs what sockspec needs
# on a fresh Debian machine (system packages with apt-get, Python packages in
# ./.venv), and does nothing when everything is already there.
set -euo pipefail

PROJECT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$PROJECT_DIR/.venv"
# iproute2: network namespaces (ip netns); procps: ps for leak checks.
# Callers add their own needs in EXTRA_SYSTEM_PACKAGES (the tests: chromium).
SYSTEM_PACKAGES=(python3-venv iproute2 procps ${EXTRA_SYSTEM_PACKAGES:-})

log() { printf '[bootstrap] %s\n' "$*" >&2; }

install_system_packages() {
  local missing=() pkg
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: ${missing[*]} (run as root or install them: apt-get install ${missing[*]})"
    return 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

install_python_packages() {
  local stamp="$VENV/.sockspec-installed" want
  want=$(cat "$PROJECT_DIR/pyproject.toml" "$PROJECT_DIR/tox.ini" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  log "pip install sockspec and its test tools into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$PROJECT_DIR[test,native]" tox </dev/null
  echo "$want" >"$stamp"
}

install_system_packages
install_python_packages
export PATH="$VENV/bin:$PATH"
cd "$PROJECT_DIR"
