#!/usr/bin/env bash
# The m6-dataplane namespace lab: a legacy host, the router, two ISPs that filter on source
# prefix, and a server behind both. See lab/lib.sh for the address plan and the drawing.
#
#   lab/topology.sh up       remove leftovers of any earlier run, then build the lab
#   lab/topology.sh down     remove everything (also after a crash: processes in the lab
#                            namespaces are stopped, namespaces deleted)
#   lab/topology.sh status   show what exists; exit 0 only if the whole lab is up
#
# The router namespace is left empty; start the dataplane in it yourself:
#   ip netns exec m6-rtr target/release/m6-dataplane --config configs/lab.yaml
#
# A test or demo holds a lock while it uses the lab; up/down refuse to run under it unless
# M6_LAB_FORCE=1 (or M6_LAB_LOCK_HELD=1, which the lock holder itself sets).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

usage() {
    echo "usage: $0 up|down|status" >&2
    exit 2
}

guard_lock() {
    if [ "${M6_LAB_LOCK_HELD:-0}" != 1 ] && [ "${M6_LAB_FORCE:-0}" != 1 ] && lab_lock_busy; then
        lab_die "a lab session is running ($(cat "$LAB_LOCK_FILE" 2>/dev/null)); set M6_LAB_FORCE=1 to override"
    fi
}

[ $# -eq 1 ] || usage
case "$1" in
up)
    lab_require_root
    guard_lock
    lab_up
    lab_log "up: ${LAB_NAMESPACES[*]}; start the router in $LAB_NS_RTR"
    ;;
down)
    lab_require_root
    guard_lock
    lab_down
    lab_log "down"
    ;;
status)
    lab_require_root
    lab_status
    ;;
*) usage ;;
esac
