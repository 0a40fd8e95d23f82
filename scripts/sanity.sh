#!/usr/bin/env bash
# ansible-test sanity for this collection, with the pinned virtualenv's ansible-core and
# Python 3.11 as the controller (no Docker, nothing installed into .venv; each sanity test
# has its own virtualenv under ~/.ansible/test/venv, made on first use from PyPI):
#   scripts/sanity.sh [ansible-test sanity options], e.g. scripts/sanity.sh --test pylint
# Its exit status is ansible-test's; known exceptions are in tests/sanity/ignore-2.19.txt.
#
# ansible-test wants the collection at a path ending in ansible_collections/NS/NAME (it
# reads the physical working directory, so a symlink to this checkout does not do): the
# files git knows here (committed or not, ignored ones left out) are copied to
# .build/sanity/ansible_collections/meshfleet/mesh (made a git repository of its own, with
# nothing committed) and the tests run there.
#
# ansible-test bootstraps pip in each of its virtualenvs with a get-pip script it
# downloads from a host of its own, which our machines need not reach (PyPI and Debian's
# packages are what they reach): when its cache has no such script
# (~/.ansible/test/cache/get_pip_<version>.py), a stand-in of our own is put there:
# ensurepip, then `pip install` of what it is asked for (the pinned pip), from PyPI.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
. scripts/lib.sh
start=$(date +%s)

setup_env "$ROOT"

# ansible-test skips its shellcheck test when the program is missing: install it where we
# can (Debian, as root), else say so.
if ! command -v shellcheck >/dev/null; then
  if is_debian_root; then
    info "installing Debian's shellcheck"
    ( apt_install shellcheck ) || true
  fi
  command -v shellcheck >/dev/null \
    || info "WARNING: no shellcheck here: ansible-test skips its shellcheck test (install shellcheck)"
fi

# The pip version ansible-test bootstraps, which names its cached get-pip script.
pip_version=$(python - <<'EOF'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.11"))["pip"])
EOF
) || die "the pip version ansible-test wants could not be read" "check the ansible-core pin"
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$get_pip" ]; then
  info "writing a get-pip stand-in: $get_pip"
  mkdir -p "$(dirname "$get_pip")"
  cat > "$get_pip" <<'EOF'
# meshfleet stand-in for get-pip.py (written by scripts/sanity.sh):
# ensurepip, then pip installs what it is given (the --no-setuptools and --no-wheel
# options are get-pip's own, so they are dropped).
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
EOF
fi

# A copy of the collection at .build/sanity/ansible_collections/meshfleet/mesh.
copy_collection() {  # copy_collection DEST
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard \
      | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
      | tar --null -T - -cf - | tar -xf - -C "$1" || return 1
    # ansible-test lists the files with git from the nearest .git up the tree; without
    # one of its own the copy would be seen through this checkout, which ignores .build.
    # Its output directory, tests/output, is no content.
    git -C "$1" init -q && echo /tests/output/ >> "$1/.git/info/exclude"
  else
    tar --exclude=./.build --exclude=./.venv --exclude=./dist --exclude=./tests/output -cf - . | tar -xf - -C "$1"
  fi
}
dest=.build/sanity/ansible_collections/meshfleet/mesh
if ! { rm -rf "$dest" && mkdir -p "$dest" && copy_collection "$dest" && [ -f "$dest/galaxy.yml" ]; }; then
  die "copying the collection to $dest failed"
fi

info "ansible-test sanity --python 3.11 in $dest"
(cd "$dest" && ansible-test sanity --color no --python 3.11 "$@")
rc=$?
info "ansible-test sanity: exit $rc in $(( $(date +%s) - start ))s"
exit "$rc"
