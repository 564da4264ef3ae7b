# Creates .venv with Python 3.11+ and installs the project into it (again only when pyproject.toml changed).
ensure_venv() {
  local target="$1"
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
      if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$candidate"; break
      fi
    done
  fi
  if [ -z "$python" ]; then
    echo "magflow needs Python 3.11 or newer: install it, or point PYTHON at it" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local stamp=".venv/.installed-$(echo "$target" | tr -c 'a-z' '_')"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/_venv.sh -nt "$stamp" ]; then
    # Python 3.11's venv comes with setuptools 65.5.0 (CVE-2024-6345, CVE-2025-47273): upgrade it with pip.
    .venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=78.1.1"
    .venv/bin/python -m pip install --quiet -e "$target"
    touch "$stamp"
  fi
}
