#!/bin/bash
#
# payload_startup.sh glidein_config: the glidein's last script; starts the payload.
#
# glidein_startup.sh runs it from the glidein work dir once validation passed. It picks the
# payload from the glidein_config key GLIDEIN_PAYLOAD (condor, the default, or celery), finds
# payload_<kind>.sh in GLIDEIN_PAYLOAD_DIR and execs it, so the payload's exit code is the
# glidein's and signals reach the payload directly.
#
# Sourced (by payload_condor.sh and payload_celery.sh) it only defines the shared helpers:
#   gconfig_get KEY [FILE]        value of KEY in glidein_config (last occurrence wins)
#   payload_begin KIND            "=== Payload KIND starting <date> (<epoch>) ==="
#   payload_fail CATEGORY DETAIL  "=== Payload KIND failed: CATEGORY: DETAIL ==="
#   payload_end JOBS UTILIZATION  the end line and the stats block the factory's log parser reads
#   payload_run_forwarding CMD... run CMD in the background, forward TERM/INT/QUIT as TERM, wait
# Every payload prints, at its end, whatever happened:
#   === Payload <kind> ended <date> (<epoch>) after <seconds> ===
#   === Stats of main ===
#   Total jobs <N> utilization <fraction 0..1>
#   === End Stats of main ===

# Failure categories of the glidein's XML result (the reference §5.4).
PAYLOAD_CATEGORIES="WN_Resource Network Config VO_Config VO_Proxy Corruption"
PAYLOAD_KINDS="condor celery"
PAYLOAD_DEFAULT_KIND=condor
PAYLOAD_EXIT_FAILED=1

# gconfig_get KEY [FILE]: print the value of the last "KEY VALUE" line of FILE (default: the
# glidein_config given to the payload); the first space separates key and value, so values may
# hold spaces. Returns 1, printing nothing, when the key is absent or the file unreadable.
gconfig_get() {
    local key=$1 file=${2:-${PAYLOAD_GLIDEIN_CONFIG:-glidein_config}}
    [[ -n "$key" && -r "$file" ]] || return 1
    GCONFIG_KEY=$key awk '
        BEGIN { key = ENVIRON["GCONFIG_KEY"]; n = length(key); found = 0 }
        $0 == key || substr($0, 1, n + 1) == key " " {
            value = substr($0, n + 2); sub(/\r$/, "", value); found = 1
        }
        END { if (found) print value; exit !found }
    ' "$file"
}

payload_epoch() {
    printf '%(%s)T\n' -1
}

# payload_date EPOCH: the date(1)-style rendering of an epoch, without needing GNU date.
payload_date() {
    printf '%(%a %b %e %H:%M:%S %Z %Y)T\n' "$1"
}

payload_begin() {
    PAYLOAD_KIND=$1
    PAYLOAD_START=$(payload_epoch)
    echo "=== Payload $PAYLOAD_KIND starting $(payload_date "$PAYLOAD_START") ($PAYLOAD_START) ==="
}

# payload_fail CATEGORY DETAIL: report a categorised failure on one line (stdout and stderr).
payload_fail() {
    local category=$1 detail=${2//$'\n'/ }
    case " $PAYLOAD_CATEGORIES " in
    *" $category "*) ;;
    *) detail="$detail (unknown category '$category')" category=Config ;;
    esac
    echo "=== Payload ${PAYLOAD_KIND:-unknown} failed: $category: $detail ==="
    echo "payload_${PAYLOAD_KIND:-startup}: $category: $detail" >&2
}

payload_end() {
    local jobs=${1:-0} utilization=${2:-0} end
    end=$(payload_epoch)
    echo "=== Payload $PAYLOAD_KIND ended $(payload_date "$end") ($end) after $((end - PAYLOAD_START)) ==="
    echo "=== Stats of main ==="
    echo "Total jobs $jobs utilization $utilization"
    echo "=== End Stats of main ==="
}

_payload_forward() {
    PAYLOAD_SIGNALLED=$1
    echo "payload: received SIG$1, forwarding SIGTERM to ${PAYLOAD_CHILD_PID:-the payload}" >&2
    if [[ -n "$PAYLOAD_CHILD_PID" ]]; then
        kill -s TERM "$PAYLOAD_CHILD_PID" 2>/dev/null
    fi
}

# payload_run_forwarding CMD [ARG]...: run CMD, pass TERM, INT and QUIT on to it as TERM (a
# background child of a non-interactive shell ignores INT and QUIT), ignore HUP, wait for it
# and set PAYLOAD_CHILD_RC to its exit code (also the return code).
payload_run_forwarding() {
    PAYLOAD_CHILD_PID=
    PAYLOAD_SIGNALLED=
    trap '_payload_forward TERM' TERM
    trap '_payload_forward INT' INT
    trap '_payload_forward QUIT' QUIT
    trap '' HUP
    "$@" &
    PAYLOAD_CHILD_PID=$!
    if [[ -n "$PAYLOAD_SIGNALLED" ]]; then
        kill -s TERM "$PAYLOAD_CHILD_PID" 2>/dev/null
    fi
    local rc
    while :; do
        wait "$PAYLOAD_CHILD_PID"
        rc=$?
        # wait returns early when a trapped signal arrives; the child may still be running.
        kill -0 "$PAYLOAD_CHILD_PID" 2>/dev/null || break
    done
    trap - TERM INT QUIT
    PAYLOAD_CHILD_PID=
    # shellcheck disable=SC2034  # read by the payload scripts that source this file
    PAYLOAD_CHILD_RC=$rc
    return "$rc"
}

payload_startup_main() {
    if [[ $# -ne 1 || ! -r "$1" ]]; then
        PAYLOAD_KIND=startup
        payload_begin startup
        payload_fail Config "usage: payload_startup.sh GLIDEIN_CONFIG (a readable file), got: $*"
        payload_end 0 0
        exit "$PAYLOAD_EXIT_FAILED"
    fi
    PAYLOAD_GLIDEIN_CONFIG=$1
    local kind dir script
    kind=$(gconfig_get GLIDEIN_PAYLOAD) || kind=
    kind=${kind:-$PAYLOAD_DEFAULT_KIND}
    dir=$(gconfig_get GLIDEIN_PAYLOAD_DIR) || dir=
    dir=${dir:-$(dirname "${BASH_SOURCE[0]}")}
    script="$dir/payload_$kind.sh"
    case " $PAYLOAD_KINDS " in
    *" $kind "*) ;;
    *) script= ;;
    esac
    if [[ -z "$script" || ! -r "$script" ]]; then
        payload_begin "${kind//[^A-Za-z0-9_-]/_}"
        if [[ -z "$script" ]]; then
            payload_fail Config "GLIDEIN_PAYLOAD '$kind' is not one of: $PAYLOAD_KINDS"
        else
            payload_fail Corruption "payload script $script is missing from the staging area"
        fi
        payload_end 0 0
        exit "$PAYLOAD_EXIT_FAILED"
    fi
    echo "payload_startup: starting the $kind payload ($script)" >&2
    exec bash "$script" "$PAYLOAD_GLIDEIN_CONFIG"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -u
    payload_startup_main "$@"
fi
