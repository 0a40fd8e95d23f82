# Source this from the repository root to work by hand with the project's tools:
#   . scripts/env.sh          (then: molecule test -s cjdns, ansible-doc ..., pytest ...)
# It sets up the pinned virtualenv if needed and exports what the scripts export.
# shellcheck shell=bash
__meshfleet_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$__meshfleet_root/scripts/lib.sh"
setup_env "$__meshfleet_root"
unset __meshfleet_root
