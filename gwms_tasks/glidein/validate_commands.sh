#!/bin/bash
#
# validate_commands.sh glidein_config <id>: the commands the glidein and its payload need exist.
#
# The list is the glidein_config key GLIDEIN_REQUIRED_COMMANDS (space separated; a constant or a
# parameter), default below. Fails with category WN_Resource, naming every missing command.

glidein_config=$1
script_name=$(basename "$0")
DEFAULT_REQUIRED_COMMANDS="awk sed grep tar gzip ps"

config_value() {
    grep "^$1 " "$glidein_config" | tail -n 1 | cut -d' ' -f2-
}

error_gen=$(config_value ERROR_GEN_PATH)

main() {
    local required missing="" cmd
    required=$(config_value GLIDEIN_REQUIRED_COMMANDS)
    required=${required:-$DEFAULT_REQUIRED_COMMANDS}
    for cmd in $required; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            missing="${missing:+$missing }$cmd"
        fi
    done
    if [ -n "$missing" ]; then
        "$error_gen" -error "$script_name" WN_Resource "Missing commands: $missing" missing "$missing"
        echo "$script_name: missing commands: $missing" >&2
        exit 1
    fi
    "$error_gen" -ok "$script_name" checked "$required"
}

main
