#!/bin/bash
# shellcheck source-path=SCRIPTDIR
#
# payload_condor.sh glidein_config: run an HTCondor startd that joins the VO's pool.
#
# Started by payload_startup.sh from the glidein work dir. Steps:
#  1. find the HTCondor release untarred from the staging area (glidein_config key CONDOR_DIR,
#     with sbin/condor_master) and a python (key GLIDEIN_PYTHON, default python3);
#  2. lay out the renderer's modules (staged as gwms_errors.py, gwms_lifetime.py and
#     gwms_condor_config.py) as the gwms_tasks package, and run payload_condor_config.py to
#     install the IDTOKEN and write <work dir>/condor_local/condor_config;
#  3. run condor_master -f with CONDOR_CONFIG pointing at it, forwarding SIGTERM, and wait;
#  4. print the stats block from the startd's history.
# Any failure prints "=== Payload condor failed: <category>: <detail> ===" and exits 1.
# condor_master's own exit code becomes the payload's, except 99 (DAEMON_SHUTDOWN, the normal
# end of a glidein), which becomes 0.

# shellcheck source=payload_startup.sh
source "$(dirname "${BASH_SOURCE[0]}")/payload_startup.sh"

CONDOR_DAEMON_SHUTDOWN_EXIT=99
# Staged file name -> place in the gwms_tasks package the renderer imports.
RENDERER_MODULES=(
    "gwms_errors.py:gwms_tasks/errors.py"
    "gwms_lifetime.py:gwms_tasks/core/lifetime.py"
    "gwms_condor_config.py:gwms_tasks/core/condor_config.py"
)

# fail CATEGORY DETAIL: report, print the (empty) stats block and leave.
fail() {
    payload_fail "$1" "$2"
    payload_end 0 0
    exit "$PAYLOAD_EXIT_FAILED"
}

# category_of_renderer_exit CODE: the failure category of a payload_condor_config.py exit code.
category_of_renderer_exit() {
    case "$1" in
    3) echo Config ;;
    5) echo VO_Proxy ;;
    *) echo WN_Resource ;;
    esac
}

# build_pylib PAYLOAD_DIR PYLIB: the staged renderer modules as an importable package.
build_pylib() {
    local payload_dir=$1 pylib=$2 entry staged target
    mkdir -p "$pylib/gwms_tasks/core" || return 1
    : >"$pylib/gwms_tasks/__init__.py" && : >"$pylib/gwms_tasks/core/__init__.py" || return 1
    for entry in "${RENDERER_MODULES[@]}"; do
        staged=${entry%%:*}
        target=${entry#*:}
        if [[ ! -r "$payload_dir/$staged" ]]; then
            echo "$staged is missing from $payload_dir"
            return 1
        fi
        cp "$payload_dir/$staged" "$pylib/$target" || return 1
    done
}

main() {
    PAYLOAD_GLIDEIN_CONFIG=$1
    payload_begin condor
    local condor_dir python payload_dir work_dir local_dir problem out rc
    condor_dir=$(gconfig_get CONDOR_DIR) || condor_dir=
    if [[ -z "$condor_dir" ]]; then
        fail WN_Resource "no HTCondor tarball for this node: glidein_config has no CONDOR_DIR"
    fi
    if [[ ! -x "$condor_dir/sbin/condor_master" ]]; then
        fail WN_Resource "the HTCondor release in $condor_dir has no executable sbin/condor_master"
    fi
    python=$(gconfig_get GLIDEIN_PYTHON) || python=
    python=${python:-python3}
    if ! command -v "$python" >/dev/null 2>&1; then
        fail WN_Resource "no python interpreter '$python' on this node to write the condor_config"
    fi
    payload_dir=$(gconfig_get GLIDEIN_PAYLOAD_DIR) || payload_dir=
    payload_dir=${payload_dir:-$(dirname "${BASH_SOURCE[0]}")}
    work_dir=$(gconfig_get GLIDEIN_WORK_DIR) || work_dir=
    local_dir=${work_dir:-$PWD}/condor_local
    if ! mkdir -p "$local_dir/log" "$local_dir/execute" "$local_dir/spool"; then
        fail WN_Resource "cannot create the HTCondor directories under $local_dir"
    fi
    if ! problem=$(build_pylib "$payload_dir" "$local_dir/pylib"); then
        fail Corruption "cannot lay out the condor_config renderer: ${problem:-copy failed}"
    fi
    out=$(PYTHONPATH="$local_dir/pylib" "$python" "$payload_dir/payload_condor_config.py" render \
        "$PAYLOAD_GLIDEIN_CONFIG" "$local_dir/condor_config" --local-dir "$local_dir" \
        --condor-dir "$condor_dir" --instance "$$")
    rc=$?
    if [[ $rc -ne 0 ]]; then
        fail "$(category_of_renderer_exit "$rc")" "${out:-payload_condor_config.py exited with $rc}"
    fi
    echo "payload_condor: $out" >&2
    run_condor "$condor_dir" "$local_dir" "$python" "$payload_dir"
}

# run_condor CONDOR_DIR LOCAL_DIR PYTHON PAYLOAD_DIR: start the master, wait, report, exit.
run_condor() {
    local condor_dir=$1 local_dir=$2 python=$3 payload_dir=$4 started rc stats
    # The site's own HTCondor settings must not leak into the glidein's.
    while read -r var; do unset "$var"; done < <(compgen -e | grep -i '^_condor_')
    export CONDOR_CONFIG="$local_dir/condor_config"
    started=$(payload_epoch)
    payload_run_forwarding "$condor_dir/sbin/condor_master" -f -pidfile "$local_dir/condor_master.pid"
    rc=$PAYLOAD_CHILD_RC
    if [[ $rc -eq $CONDOR_DAEMON_SHUTDOWN_EXIT ]]; then
        echo "payload_condor: condor_master ended by DAEMON_SHUTDOWN (the glidein's normal end)" >&2
        rc=0
    fi
    stats=$(PYTHONPATH="$local_dir/pylib" "$python" "$payload_dir/payload_condor_config.py" \
        stats "$PAYLOAD_GLIDEIN_CONFIG" "$local_dir/log/startd_history" \
        "$(($(payload_epoch) - started))") || stats="0 0"
    [[ $rc -eq 0 ]] || payload_fail WN_Resource "condor_master exited with code $rc"
    payload_end "${stats% *}" "${stats#* }"
    exit "$rc"
}

set -u
main "$@"
