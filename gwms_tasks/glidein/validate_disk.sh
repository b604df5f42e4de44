#!/bin/bash
#
# validate_disk.sh glidein_config <id>: enough free disk space in the glidein work dir.
#
# The minimum, in MB, is the glidein_config key GLIDEIN_MIN_DISK_MB (a constant or a parameter),
# default 200. Fails with category WN_Resource.

glidein_config=$1
script_name=$(basename "$0")
DEFAULT_MIN_DISK_MB=200

config_value() {
    grep "^$1 " "$glidein_config" | tail -n 1 | cut -d' ' -f2-
}

error_gen=$(config_value ERROR_GEN_PATH)

# free_mb <dir>: free space for unprivileged users, in MB (POSIX df output).
free_mb() {
    df -Pk "$1" 2>/dev/null | awk 'NR == 2 { printf "%d\n", $4 / 1024 }'
}

main() {
    local min_mb free dir
    min_mb=$(config_value GLIDEIN_MIN_DISK_MB)
    min_mb=${min_mb:-$DEFAULT_MIN_DISK_MB}
    case "$min_mb" in
    '' | *[!0-9]*)
        "$error_gen" -error "$script_name" Config "GLIDEIN_MIN_DISK_MB is not a number: $min_mb"
        exit 1
        ;;
    esac
    dir=$(config_value GLIDEIN_WORK_DIR)
    dir=${dir:-$PWD}
    free=$(free_mb "$dir")
    if [ -z "$free" ]; then
        "$error_gen" -error "$script_name" WN_Resource "Cannot measure free space in $dir"
        exit 1
    fi
    if [ "$free" -lt "$min_mb" ]; then
        "$error_gen" -error "$script_name" WN_Resource \
            "Only $free MB free in $dir, $min_mb MB required" free_mb "$free" required_mb "$min_mb"
        echo "$script_name: only $free MB free in $dir, $min_mb MB required" >&2
        exit 1
    fi
    "$error_gen" -ok "$script_name" free_mb "$free"
}

main
