#!/bin/bash
# shellcheck source-path=SCRIPTDIR
#
# payload_celery.sh glidein_config: run a Celery worker on the VO's queue (payload_celery.py).
#
# Started by payload_startup.sh from the glidein work dir. Finds the python to use
# (glidein_config key GLIDEIN_CELERY_PYTHON, default python3), runs payload_celery.py with it,
# forwarding SIGTERM (a warm shutdown: the running task finishes, nothing new is taken), then
# prints the failure line, if any, and the stats block from the result file payload_celery.py
# leaves. The exit code is payload_celery.py's (see its PayloadExit: 0 idle timeout, 1 failure,
# 124 hard walltime, 143 terminated).

# shellcheck source=payload_startup.sh
source "$(dirname "${BASH_SOURCE[0]}")/payload_startup.sh"

main() {
    PAYLOAD_GLIDEIN_CONFIG=$1
    payload_begin celery
    local python payload_dir tmp_dir result rc category
    python=$(gconfig_get GLIDEIN_CELERY_PYTHON) || python=
    python=${python:-python3}
    if ! command -v "$python" >/dev/null 2>&1; then
        payload_fail WN_Resource "no python interpreter '$python' on this node for the Celery worker"
        payload_end 0 0
        exit "$PAYLOAD_EXIT_FAILED"
    fi
    payload_dir=$(gconfig_get GLIDEIN_PAYLOAD_DIR) || payload_dir=
    payload_dir=${payload_dir:-$(dirname "${BASH_SOURCE[0]}")}
    tmp_dir=$(gconfig_get TMP_DIR) || tmp_dir=
    if ! result=$(mktemp "${tmp_dir:-$PWD}/payload_celery.result.XXXXXX"); then
        payload_fail WN_Resource "cannot create a result file in ${tmp_dir:-$PWD}"
        payload_end 0 0
        exit "$PAYLOAD_EXIT_FAILED"
    fi
    payload_run_forwarding "$python" "$payload_dir/payload_celery.py" \
        "$PAYLOAD_GLIDEIN_CONFIG" "$result"
    rc=$PAYLOAD_CHILD_RC
    if [[ ! -s "$result" ]]; then
        payload_fail WN_Resource "payload_celery.py exited with code $rc without a result"
    elif category=$(gconfig_get category "$result"); then
        payload_fail "$category" "$(gconfig_get detail "$result")"
    fi
    payload_end "$(gconfig_get jobs "$result" || echo 0)" \
        "$(gconfig_get utilization "$result" || echo 0)"
    rm -f "$result"
    exit "$rc"
}

set -u
main "$@"
