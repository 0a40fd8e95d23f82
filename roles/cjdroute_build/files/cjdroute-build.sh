#!/usr/bin/env bash
# Build one cjdroute from a cjdns source tarball (run by the cjdroute_build role).
#
#   cjdroute-build.sh SOURCE OUT LOG
#
# The role passes the target in the environment (roles/cjdroute_build/vars/main.yml):
#   MESHFLEET_BUILDER     cjdns' own build entry: ./do (native) or ./cross-do (cross)
#   MESHFLEET_RUNNER      how to run the result here (empty, or qemu-user with a sysroot)
#   MESHFLEET_ELF         what `readelf -h` must say about the binary (Machine, Flags)
#   CJDNS_RELEASE_VERSION what `cjdroute --version` must print
#   and cjdns' own variables (CFLAGS, CROSS_COMPILE, TARGET_ARCH, CROSS_CFLAGS, NO_TEST).
#
# SOURCE is unpacked into a work directory beside OUT and removed afterwards. The binary
# reaches OUT only after its ELF header and `--version` were checked, by a rename on the
# same file system: a failed or interrupted build leaves nothing at OUT. Everything the
# build prints goes to LOG.
set -euo pipefail

src=$1 out=$2 log=$3
mkdir -p "$(dirname "$out")" "$(dirname "$log")"
work=$(mktemp -d "$(dirname "$out")/.work-XXXXXX")
trap 'rm -rf "$work"' EXIT
exec >"$log" 2>&1

echo "source: $src"
echo "builder: $MESHFLEET_BUILDER; CFLAGS='${CFLAGS:-}' CROSS_COMPILE='${CROSS_COMPILE:-}'" \
     "TARGET_ARCH='${TARGET_ARCH:-}' CROSS_CFLAGS='${CROSS_CFLAGS:-}'"
mkdir "$work/src"
tar -xzf "$src" -C "$work/src"
# The tree is at the top of the archive (git archive) or one folder down (a release
# download with a prefix).
found=$(find "$work/src" -maxdepth 3 -path '*/client/cjdroute2.c' -print -quit)
[ -n "$found" ] || { echo "no client/cjdroute2.c in $src: not a cjdns source tree"; exit 1; }
top=$(dirname "$(dirname "$found")")
cd "$top"

# cjdns-v21.1's bundled gyp imports MutableSet & co. from `collections`, which Python
# 3.10 removed: put them back for the build's Python only (nothing in the source changes).
mkdir -p "$work/pyfix"
cat > "$work/pyfix/sitecustomize.py" <<'PY'
import collections
import collections.abc

for _name in dir(collections.abc):
    if not _name.startswith("_") and not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
PY
export PYTHONPATH="$work/pyfix${PYTHONPATH:+:$PYTHONPATH}"

start=$(date +%s)
"$MESHFLEET_BUILDER"
echo "build took $(( $(date +%s) - start )) s"
[ -x cjdroute ] || { echo "the build ended without a cjdroute binary"; exit 1; }
# Debug symbols would make every copy to a Pi several times larger.
"${CROSS_COMPILE:-}strip" cjdroute

header=$(readelf -h cjdroute)
echo "$header"
IFS=';' read -r -a want <<<"$MESHFLEET_ELF"
for w in "${want[@]}"; do
  grep -qF -- "$w" <<<"$header" || { echo "ELF header lacks '$w'"; exit 1; }
done

# shellcheck disable=SC2086  # the runner is a command with its arguments
version=$($MESHFLEET_RUNNER ./cjdroute --version 2>&1) || { echo "cjdroute --version failed: $version"; exit 1; }
echo "cjdroute --version: $version"
grep -qxF "Cjdns version: $CJDNS_RELEASE_VERSION" <<<"$version" \
  || { echo "cjdroute --version does not say 'Cjdns version: $CJDNS_RELEASE_VERSION'"; exit 1; }

# The work folder is beside OUT, on the same file system: one rename, never a partial file.
chmod 0755 cjdroute
mv -f cjdroute "$out"
echo "built $out"
