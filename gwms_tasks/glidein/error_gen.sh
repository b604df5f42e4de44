#!/bin/bash
#
# error_gen.sh: write the OSG-style XML result of one glidein script (the reference §5.4).
#
# Usage (from the glidein work dir, where the result file is written):
#   error_gen.sh -ok    <script name> [<metric name> <value>]...
#   error_gen.sh -error <script name> <category> <detail> [<metric name> <value>]...
#
# <category> is one of WN_Resource Network Config VO_Config VO_Proxy Corruption.
# The result goes to ./otrb_output.xml; glidein_startup.sh collects it after the script
# exits and uses category and detail to report a failed validation.
# Scripts find this file's path under the key ERROR_GEN_PATH of glidein_config.

RESULT_FILE="otrb_output.xml"
CATEGORIES="WN_Resource Network Config VO_Config VO_Proxy Corruption"

usage() {
    echo "usage: $0 -ok <script> [name value]... | -error <script> <category> <detail> [name value]..." >&2
    exit 2
}

xml_escape() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' \
        -e 's/"/\&quot;/g' -e "s/'/\&apos;/g"
}

now_iso() {
    date -u +%Y-%m-%dT%H:%M:%SZ
}

# metric <name> <value>: one <metric> element.
metric() {
    printf '    <metric name="%s" ts="%s" uri="local">%s</metric>\n' \
        "$(xml_escape "$1")" "$(now_iso)" "$(xml_escape "$2")"
}

# metrics <name> <value> ...: the optional trailing pairs.
metrics() {
    if [ $(($# % 2)) -ne 0 ]; then
        echo "error_gen.sh: metric names and values must come in pairs" >&2
        exit 2
    fi
    while [ $# -gt 0 ]; do
        metric "$1" "$2"
        shift 2
    done
}

write_result() {
    local script=$1 status=$2 body=$3 detail=$4
    {
        echo '<?xml version="1.0"?>'
        printf '<OSGTestResult id="%s" version="4.3.1">\n' "$(xml_escape "$script")"
        echo '  <result>'
        printf '    <status>%s</status>\n' "$status"
        printf '%s' "$body"
        echo '  </result>'
        echo '  <detail>'
        printf '%s\n' "$(xml_escape "$detail")"
        echo '  </detail>'
        echo '</OSGTestResult>'
    } >"$RESULT_FILE.tmp" && mv -f "$RESULT_FILE.tmp" "$RESULT_FILE"
}

main() {
    [ $# -ge 2 ] || usage
    local mode=$1 script=$2 body
    shift 2
    case "$mode" in
    -ok)
        body=$(metrics "$@") || exit 2
        [ -z "$body" ] || body="$body"$'\n'
        write_result "$script" OK "$body" "OK"
        ;;
    -error)
        [ $# -ge 2 ] || usage
        local category=$1 detail=$2
        shift 2
        case " $CATEGORIES " in
        *" $category "*) ;;
        *)
            echo "error_gen.sh: unknown failure category '$category' (one of: $CATEGORIES)" >&2
            exit 2
            ;;
        esac
        body=$(metric failure "$category" && metrics "$@") || exit 2
        write_result "$script" ERROR "$body"$'\n' "$detail"
        ;;
    *)
        usage
        ;;
    esac
}

main "$@"
