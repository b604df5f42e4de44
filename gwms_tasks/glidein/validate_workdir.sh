#!/bin/bash
#
# validate_workdir.sh glidein_config <id>: the glidein work dir and its TMP_DIR must be writable.
#
# Writes a small file in each, reads it back and removes it. Fails with category WN_Resource.

glidein_config=$1
script_name=$(basename "$0")

config_value() {
    grep "^$1 " "$glidein_config" | tail -n 1 | cut -d' ' -f2-
}

error_gen=$(config_value ERROR_GEN_PATH)

# check_writable <dir>: prints nothing and succeeds when a file round-trips through <dir>.
check_writable() {
    local probe="$1/.gwms_write_probe.$$"
    if ! printf 'probe %s\n' "$$" >"$probe" 2>/dev/null; then
        return 1
    fi
    if [ "$(cat "$probe" 2>/dev/null)" != "probe $$" ]; then
        rm -f "$probe"
        return 1
    fi
    rm -f "$probe"
}

main() {
    local dir
    for dir in "$(config_value GLIDEIN_WORK_DIR)" "$(config_value TMP_DIR)" "$PWD"; do
        [ -n "$dir" ] || continue
        if ! check_writable "$dir"; then
            "$error_gen" -error "$script_name" WN_Resource "Directory $dir is not writable" \
                directory "$dir"
            echo "$script_name: directory $dir is not writable" >&2
            exit 1
        fi
    done
    "$error_gen" -ok "$script_name"
}

main
