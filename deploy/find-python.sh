#!/usr/bin/env bash
# Print the path of a Python interpreter of the version given (e.g. 3.13), found where a machine
# keeps one: PATH (a pyenv shim only if it runs), pyenv's versions, uv's managed Pythons, /usr/bin
# and /usr/local/bin. Exits 1 with every place looked at and how to get one when there is none.
set -euo pipefail
version=${1:?usage: find-python.sh 3.13}
looked=()
try() {
  looked+=("$1")
  if [ -x "$1" ] && "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" \
      >/dev/null 2>&1; then
    echo "$1"
    exit 0
  fi
}
if command -v "python$version" >/dev/null 2>&1; then try "$(command -v "python$version")"; fi
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
for candidate in "$pyenv_root"/versions/"$version"*/bin/"python$version" \
  "$HOME"/.local/share/uv/python/cpython-"$version".*/bin/"python$version" \
  /usr/local/bin/"python$version" /usr/bin/"python$version"; do
  [ -e "$candidate" ] && try "$candidate"
done
{
  echo "find-python.sh: no Python $version on this machine; looked at:"
  printf '  %s\n' "${looked[@]:-PATH (no python$version)}" "$pyenv_root/versions/$version*" \
    "$HOME/.local/share/uv/python/cpython-$version.*" /usr/local/bin /usr/bin
  echo "install one (pyenv install $version, uv python install $version, or your distribution's" \
    "python$version package), or name it: make ... PYTHON=/path/to/python$version"
} >&2
exit 1
