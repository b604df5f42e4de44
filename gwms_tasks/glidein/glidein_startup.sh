#!/bin/bash
#
# glidein_startup.sh: the executable of every glidein job of gwms-tasks.
#
# Contract (the protocol reference §5.2-§5.4; where this differs from glideinWMS it says so):
#  * Arguments: "-option value" pairs. Required: -name -entry -web -sign -signentry -descript
#    -descriptentry. The client set (-clientweb -clientsign -clientdescript [-clientsigntype]) and
#    the client group set (-clientgroup -clientwebgroup -clientsigngroup -clientdescriptgroup)
#    are all-or-none. -param_<NAME> <value>: values escaped by the factory (.dot, .nbsp, ...).
#    -signtype/-clientsigntype: sha1 (default) or sha256. -proxy: a URL, None, or OSG
#    ($OSG_SQUID_LOCATION). -multiglidein must be 1 (forking copies is not supported);
#    -multirestart is accepted and ignored.
#  * Makes its work dir glide_XXXXXX under -dir and writes glidein_config there: "KEY VALUE"
#    lines, the first space separates, later lines override earlier ones.
#  * Signature chain, for main, entry, client and client group: the signature file named by the
#    description must hash to the -sign* argument (else exit 1); the description and its file
#    lists must match the signature file (else exit 2); every downloaded file must match it, and
#    a file missing from it is refused too (exit 3; glideinWMS only warns for a missing one).
#  * Processes the file lists in the reference order: plain files, exec scripts (run as
#    "script glidein_config <source id>", must exit 0, leave an XML result via error_gen.sh),
#    untar files, config_out keys, constants files merged into glidein_config.
#  * Then runs the main description's last_script as "<last_script> glidein_config" from the
#    work dir, with GLIDEIN_PAYLOAD_DIR in glidein_config; its exit code is the glidein's.
#  * A failure before the payload prints a machine-readable block (=== Validation failure ===,
#    GLIDEIN_FAILED_SCRIPT, GLIDEIN_FAILURE_CATEGORY, GLIDEIN_FAILURE_CODE,
#    GLIDEIN_FAILURE_DETAIL), sleeps (param GLIDEIN_FAIL_SLEEP overrides the -v default) and
#    exits with the failing script's code. (glideinWMS also re-runs its last script in an
#    advertise-only mode until the sleep ends; this glidein only sleeps.)
#  * SIGTERM/SIGINT/SIGQUIT are forwarded to the running script or payload, SIGHUP is ignored.
#  * The work dir is removed at the end unless GLIDEIN_DEBUG_OPTIONS contains "nocleanup".
# Nothing is exported: scripts get their settings from glidein_config only.

umask 022

readonly EXIT_SIGNATURE=1   # the signature file does not hash to the -sign* argument
readonly EXIT_DESCRIPTION=2 # a description or file list does not match the signature file
readonly EXIT_FILE=3        # a downloaded file does not match, or is not in, the signature file
readonly EXIT_FAILED=1      # any other failure of this script
readonly SLEEP_STD=1199
readonly SLEEP_FAST=150
readonly RESULT_FILE="otrb_output.xml"
readonly LIST_ORDER="main:file_list client:preentry_file_list client_group:preentry_file_list
 client:aftergroup_preentry_file_list entry:file_list main:precvmfs_file_list main:at_file_list
 client:file_list client_group:file_list client:aftergroup_file_list main:after_file_list"

start_ts=$(date +%s)
start_iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)
work_dir=""
glidein_config=""
results_list=""
child_pid=""
got_signal=""
in_payload=0
arg_errors=""
failure_category=""
failure_script=""
failure_detail=""
declare -A arg=()
declare -A src_web=() src_dir=() src_descript=() src_sign=() src_signtype=() src_prefix=()
param_names=()
param_values=()

log() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
stamp() { printf '%s (%s)' "$(date)" "$(date +%s)"; }

# ---------------------------------------------------------------- parameters and glidein_config

# decode_param <text>: reverse the factory's escaping into $decoded; unknown tokens stay literal.
decode_param() {
    local LC_ALL=C rest=$1 name
    decoded=""
    while [[ $rest == *.* ]]; do
        decoded+=${rest%%.*}
        rest=${rest#*.}
        name=${rest%%,*}
        char=""
        [[ $rest == *,* ]] && token_char "$name"
        if [ -n "$char" ]; then
            decoded+="$char"
            rest=${rest#*,}
        else
            decoded+=.
        fi
    done
    decoded+=$rest
}

# token_char <name>: the character of the token .<name>, in $char (empty if unknown).
token_char() {
    case "$1" in
    dot) char=. ;; comma) char=, ;; amp) char='&' ;; backslash) char=\\ ;; pipe) char='|' ;;
    fork) char='`' ;; quot) char='"' ;; singquot) char="'" ;; eq) char='=' ;; plus) char='+' ;;
    minus) char='-' ;; lt) char='<' ;; gt) char='>' ;; open) char='(' ;; close) char=')' ;;
    gopen) char='{' ;; gclose) char='}' ;; sopen) char='[' ;; sclose) char=']' ;;
    comment) char='#' ;; dollar) char='$' ;; star) char='*' ;; question) char='?' ;;
    not) char='!' ;; tilde) char='~' ;; colon) char=':' ;; semicolon) char=';' ;; nbsp) char=' ' ;;
    esac
}

is_key() { [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; }
is_name() { [[ $1 =~ ^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$ ]]; }
# A relative directory whose parts are names: no ".", "..", hidden or absolute parts.
is_rel_dir() { [[ $1 =~ ^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$ ]]; }
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }

# gconfig_get <key>: the last value of <key> in glidein_config.
gconfig_get() {
    [ -n "$glidein_config" ] && [ -f "$glidein_config" ] || return 0
    grep "^$1 " "$glidein_config" | tail -n 1 | cut -d' ' -f2-
}

# add_config_line <key> <value>: replace <key> in glidein_config.
add_config_line() {
    local tmp="$glidein_config.tmp"
    grep -v "^$1 " "$glidein_config" >"$tmp"
    printf '%s %s\n' "$1" "$2" >>"$tmp" && mv -f "$tmp" "$glidein_config"
}

# param_value <name>: a decoded -param_ value (used before glidein_config exists).
param_value() {
    local i
    for i in "${!param_names[@]}"; do
        [ "${param_names[$i]}" = "$1" ] && printf '%s' "${param_values[$i]}"
    done
}

arg_error() { arg_errors+="${arg_errors:+; }$*"; }

parse_args() {
    while [ $# -gt 0 ]; do
        if [ $# -lt 2 ]; then
            arg_error "option $1 has no value"
            return
        fi
        case "$1" in
        -param_*) add_param "${1#-param_}" "$2" ;;
        -factory | -name | -entry | -clientname | -clientgroup | -web | -proxy | -dir | -sign | \
            -signtype | -signentry | -cluster | -subcluster | -submitcredid | -schedd | -descript | \
            -descriptentry | -clientweb | -clientwebgroup | -clientsign | -clientsigntype | \
            -clientsigngroup | -clientdescript | -clientdescriptgroup | -slotslayout | -v | \
            -multiglidein | -multirestart)
            arg[${1#-}]=$2
            ;;
        *) arg_error "unknown option $1" ;;
        esac
        shift 2
    done
}

add_param() {
    if ! is_key "$1"; then
        arg_error "bad parameter name -param_$1"
        return
    fi
    decode_param "$2"
    if [[ $decoded == *$'\n'* || $decoded == *$'\r'* ]]; then
        arg_error "parameter $1 holds a line break"
        return
    fi
    param_names+=("$1")
    param_values+=("$decoded")
}

# check_set <label> <option>...: all or none of the options given.
check_set() {
    local label=$1 given=0 missing="" opt
    shift
    for opt in "$@"; do
        if [ -n "${arg[$opt]:-}" ]; then given=1; else missing+=" -$opt"; fi
    done
    if [ "$given" = 1 ] && [ -n "$missing" ]; then arg_error "$label arguments incomplete, missing:$missing"; fi
    [ "$given" = 1 ] && [ -z "$missing" ]
}

check_digest() {
    local option=$1 value=$2 type=$3 len=40
    [ "$type" = sha256 ] && len=64
    [[ $value =~ ^[0-9a-f]+$ && ${#value} -eq $len ]] || arg_error "-$option is not a $type digest"
}

check_args() {
    local opt
    for opt in name entry web sign signentry descript descriptentry; do
        [ -n "${arg[$opt]:-}" ] || arg_error "missing required argument -$opt"
    done
    arg[v]=${arg[v]:-std}
    arg[signtype]=${arg[signtype]:-sha1}
    arg[slotslayout]=${arg[slotslayout]:-fixed}
    arg[proxy]=${arg[proxy]:-None}
    [ "${arg[proxy]}" = OSG ] && arg[proxy]=${OSG_SQUID_LOCATION:-None}
    case "${arg[v]}" in std | nodebug | fast | check) ;; *) arg_error "bad -v ${arg[v]}" ;; esac
    case "${arg[slotslayout]}" in fixed | partitionable) ;; *) arg_error "bad -slotslayout" ;; esac
    case "${arg[signtype]}" in sha1 | sha256) ;; *) arg_error "unsupported -signtype" ;; esac
    [ "${arg[multiglidein]:-1}" = 1 ] || arg_error "-multiglidein other than 1 is not supported"
    is_name "${arg[entry]:-x}" || arg_error "bad entry name"
    check_digest sign "${arg[sign]:-}" "${arg[signtype]}"
    check_digest signentry "${arg[signentry]:-}" "${arg[signtype]}"
    check_client_args
}

check_client_args() {
    local has_client=0
    if check_set client clientweb clientsign clientdescript; then
        has_client=1
        arg[clientsigntype]=${arg[clientsigntype]:-sha1}
        case "${arg[clientsigntype]}" in sha1 | sha256) ;; *) arg_error "unsupported -clientsigntype" ;; esac
        check_digest clientsign "${arg[clientsign]}" "${arg[clientsigntype]}"
    fi
    if check_set "client group" clientgroup clientwebgroup clientsigngroup clientdescriptgroup; then
        [ "$has_client" = 1 ] || arg_error "client group arguments need the client arguments"
        is_name "${arg[clientgroup]}" || arg_error "bad client group name"
        check_digest clientsigngroup "${arg[clientsigngroup]}" "${arg[clientsigntype]:-sha1}"
    fi
}

# ---------------------------------------------------------------- work dir and glidein_config

base_dir() {
    local candidate
    case "${arg[dir]:-.}" in
    . | '') printf '%s' "$PWD" ;;
    Condor | CONDOR) printf '%s' "${_CONDOR_SCRATCH_DIR:-}" ;;
    OSG) printf '%s' "${OSG_WN_TMP:-}" ;;
    TMPDIR) printf '%s' "${TMPDIR:-}" ;;
    AUTO)
        for candidate in "${_CONDOR_SCRATCH_DIR:-}" "${OSG_WN_TMP:-}" "${TMPDIR:-}" /tmp "$PWD"; do
            if [ -n "$candidate" ] && [ -d "$candidate" ] && [ -w "$candidate" ]; then
                printf '%s' "$candidate"
                return
            fi
        done
        ;;
    *) printf '%s' "${arg[dir]}" ;;
    esac
}

make_work_dir() {
    local base
    base=$(base_dir)
    [ -n "$base" ] || fail WN_Resource "$EXIT_FAILED" "no directory for -dir ${arg[dir]:-.}"
    work_dir=$(mktemp -d "$base/glide_XXXXXX" 2>/dev/null) ||
        fail WN_Resource "$EXIT_FAILED" "cannot create a work dir in $base"
    glidein_config="$work_dir/glidein_config"
    results_list="$work_dir/otr_outlist.list"
    add_source main "${arg[web]}" "$work_dir/main" "${arg[descript]}" "${arg[sign]}" "${arg[signtype]}" ""
    add_source entry "${arg[web]%/}/entry_${arg[entry]}" "$work_dir/entry_${arg[entry]}" \
        "${arg[descriptentry]}" "${arg[signentry]}" "${arg[signtype]}" ENTRY_
    if [ -n "${arg[clientweb]:-}" ]; then
        add_source client "${arg[clientweb]}" "$work_dir/client" "${arg[clientdescript]}" \
            "${arg[clientsign]}" "${arg[clientsigntype]}" GLIDECLIENT_
    fi
    if [ -n "${arg[clientwebgroup]:-}" ]; then
        add_source client_group "${arg[clientwebgroup]}" "$work_dir/client_group_${arg[clientgroup]}" \
            "${arg[clientdescriptgroup]}" "${arg[clientsigngroup]}" "${arg[clientsigntype]}" GLIDECLIENT_GROUP_
    fi
    if ! { mkdir -p "$work_dir/tmp" "${src_dir[@]}" && : >"$results_list"; }; then
        fail WN_Resource "$EXIT_FAILED" "cannot populate the work dir $work_dir"
    fi
}

add_source() {
    src_web[$1]=${2%/}
    src_dir[$1]=$3
    src_descript[$1]=$4
    src_sign[$1]=$5
    src_signtype[$1]=$6
    src_prefix[$1]=$7
}

new_uuid() {
    if [ -r /proc/sys/kernel/random/uuid ]; then
        cat /proc/sys/kernel/random/uuid
    else
        od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
    fi
}

write_glidein_config() {
    local i
    {
        printf '%s %s\n' GLIDEIN_UUID "$(new_uuid)" GLIDEIN_Factory "${arg[factory]:-}" \
            GLIDEIN_Name "${arg[name]}" GLIDEIN_Entry_Name "${arg[entry]}" \
            GLIDECLIENT_Name "${arg[clientname]:-}" GLIDECLIENT_Group "${arg[clientgroup]:-}" \
            GLIDEIN_CredentialIdentifier "${arg[submitcredid]:-}" \
            CONDORG_CLUSTER "${arg[cluster]:-}" CONDORG_SUBCLUSTER "${arg[subcluster]:-}" \
            CONDORG_SCHEDD "${arg[schedd]:-}" DEBUG_MODE "${arg[v]}" \
            GLIDEIN_WORK_DIR "${src_dir[main]}" GLIDEIN_ENTRY_WORK_DIR "${src_dir[entry]}" \
            GLIDEIN_PAYLOAD_DIR "${src_dir[main]}" TMP_DIR "$work_dir/tmp" \
            PROXY_URL "${arg[proxy]:-None}" GLIDEIN_WEB_URL "${arg[web]}" \
            DESCRIPTION_FILE "${arg[descript]}" DESCRIPTION_ENTRY_FILE "${arg[descriptentry]}" \
            GLIDEIN_SignType "${arg[signtype]}" GLIDEIN_Signature "${arg[sign]}" \
            GLIDEIN_Entry_Signature "${arg[signentry]}" SLOTS_LAYOUT "${arg[slotslayout]}"
        if [ -n "${src_dir[client]:-}" ]; then
            printf '%s %s\n' GLIDECLIENT_WORK_DIR "${src_dir[client]}" \
                GLIDECLIENT_DESCRIPTION_FILE "${arg[clientdescript]}" \
                GLIDECLIENT_Signature "${arg[clientsign]}"
        fi
        if [ -n "${src_dir[client_group]:-}" ]; then
            printf '%s %s\n' GLIDECLIENT_GROUP_WORK_DIR "${src_dir[client_group]}" \
                GLIDECLIENT_DESCRIPTION_GROUP_FILE "${arg[clientdescriptgroup]}" \
                GLIDECLIENT_Group_Signature "${arg[clientsigngroup]}"
        fi
        printf '%s %s\n' GLIDEIN_INITIALIZED 0 PARAM_LIST "${param_names[*]}"
        for i in "${!param_names[@]}"; do
            printf '%s %s\n' "${param_names[$i]}" "${param_values[$i]}"
        done
    } >"$glidein_config" || fail WN_Resource "$EXIT_FAILED" "cannot write $glidein_config"
}

# merge_constants <file>: append its "KEY \tVALUE" lines to glidein_config.
merge_constants() {
    local line key value
    while IFS= read -r line || [ -n "$line" ]; do
        key=${line%% *}
        [ -n "$line" ] && [ "${key:0:1}" != "#" ] || continue
        value=${line#"$key"}
        value=${value# }
        value=${value#$'\t'}
        if is_key "$key"; then add_config_line "$key" "$value"; else warn "constants: bad key $key"; fi
    done <"$1"
}

# ---------------------------------------------------------------- downloads and signatures

file_digest() {
    local sum
    sum=$("$2sum" "$1" 2>/dev/null) || return 1
    printf '%s' "${sum%% *}"
}

# signed_digest <source id> <name>: the digest the source's signature file lists for <name>.
signed_digest() {
    awk -v n="$2" '{ f = $2; sub(/^\*/, "", f) } f == n { print $1; exit }' \
        "${src_dir[$1]}/signature.${src_signtype[$1]}"
}

# dict_value <file> <key>: the value of a "key \tvalue" line.
dict_value() {
    awk -v k="$2" '$1 == k { v = $2 } END { print v }' "$1"
}

# pick_download_tool: curl, else wget (the only two this glidein knows), in $download_tool.
pick_download_tool() {
    download_tool=""
    if command -v curl >/dev/null 2>&1; then
        download_tool=curl
    elif command -v wget >/dev/null 2>&1; then
        download_tool=wget
    else
        fail WN_Resource "$EXIT_FAILED" "neither curl nor wget is available"
    fi
    log "Downloading with $download_tool"
}

# fetch <source id> <remote name> <local path> [nocache]
fetch() {
    local url="${src_web[$1]}/$2" out=$3 nocache=${4:-} proxy=${arg[proxy]:-None}
    local agent="glidein/${arg[entry]}/${arg[schedd]:-}/${arg[cluster]:-}.${arg[subcluster]:-}/${arg[clientname]:-}"
    [ "$proxy" = None ] && proxy=""
    if [ "$download_tool" = curl ]; then
        local opts=(--fail --silent --show-error --location --connect-timeout 30 --max-time 600
            --retry 2 --user-agent "$agent" --output "$out")
        [ -n "$nocache" ] && opts+=(--header "Cache-Control: no-cache")
        [ -n "$proxy" ] && opts+=(--proxy "$proxy")
        curl "${opts[@]}" "$url" && return 0
    else
        local opts=(--quiet --tries=3 --timeout=30 --user-agent="$agent" --output-document="$out")
        [ -n "$nocache" ] && opts+=(--no-cache)
        [ -n "$proxy" ] && opts+=(-e use_proxy=yes -e "http_proxy=$proxy")
        wget "${opts[@]}" "$url" && return 0
    fi
    rm -f "$out"
    fail Network "$EXIT_FAILED" "cannot download $url"
}

# check_signed <source id> <signed name> <local path> <exit code>
check_signed() {
    local expected actual
    expected=$(signed_digest "$1" "$2")
    [ -n "$expected" ] || fail Corruption "$4" "$2 is not in the $1 signature file"
    actual=$(file_digest "$3" "${src_signtype[$1]}")
    [ "$actual" = "$expected" ] ||
        fail Corruption "$4" "$2 has ${src_signtype[$1]} $actual, the $1 signature file says $expected"
}

# verify_source <id>: the signature chain of one source, up to its file lists.
verify_source() {
    local id=$1 dir=${src_dir[$1]} descript=${src_descript[$1]} sig actual key list
    is_name "$descript" || fail Config "$EXIT_FAILED" "bad $id description name $descript"
    fetch "$id" "$descript" "$dir/$descript"
    sig=$(dict_value "$dir/$descript" signature)
    is_name "$sig" || fail Corruption "$EXIT_DESCRIPTION" "the $id description names no valid signature file"
    fetch "$id" "$sig" "$dir/$sig"
    actual=$(file_digest "$dir/$sig" "${src_signtype[$id]}")
    [ "$actual" = "${src_sign[$id]}" ] || fail Corruption "$EXIT_SIGNATURE" \
        "$id signature file $sig has ${src_signtype[$id]} $actual, expected ${src_sign[$id]}"
    mv -f "$dir/$sig" "$dir/signature.${src_signtype[$id]}"
    check_signed "$id" "$descript" "$dir/$descript" "$EXIT_DESCRIPTION"
    for key in file_list preentry_file_list aftergroup_preentry_file_list precvmfs_file_list \
        at_file_list after_file_list aftergroup_file_list; do
        list=$(dict_value "$dir/$descript" "$key")
        [ -n "$list" ] || continue
        is_name "$list" || fail Corruption "$EXIT_DESCRIPTION" "bad $id $key name $list"
        fetch "$id" "$list" "$dir/$list"
        check_signed "$id" "$list" "$dir/$list" "$EXIT_DESCRIPTION"
    done
    log "Verified the $id description $descript and its signature"
}

# ---------------------------------------------------------------- processing the file lists

process_list() {
    local id=$1 key=$2 list line
    list=$(dict_value "${src_dir[$id]}/${src_descript[$id]}" "$key")
    [ -n "$list" ] || return 0
    log "Processing the $id $key"
    # The list is read on fd 3 so that the scripts it runs cannot eat it from their stdin.
    while IFS= read -r line <&3 || [ -n "$line" ]; do
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        # Word splitting of the 7 columns is the point here.
        # shellcheck disable=SC2086
        process_file "$id" $line
        check_signal
    done 3<"${src_dir[$id]}/$list"
}

# process_file <id> <outname> <realname> <type> [period prefix cond_download config_out]
process_file() {
    local id=$1 out=$2 real=${3:-} type=${4:-} period=${5:-0} cond=${7:-TRUE} config_out=${8:-FALSE}
    local path="${src_dir[$1]}/$2" prefix=${src_prefix[$1]}
    if ! { is_name "$out" && is_name "$real" && [ -n "$type" ] && is_key "$cond" && is_key "$config_out"; }; then
        fail Config "$EXIT_FAILED" "malformed line in the $id file list: $*"
    fi
    [[ $out == signature.sha1 || $out == signature.sha256 ]] &&
        fail Config "$EXIT_FAILED" "the $id file list would overwrite the signature file with $out"
    if [ "$cond" != TRUE ] && [ "$(gconfig_get "$cond")" != 1 ]; then
        log "Skipping $out: $cond is not 1"
        return
    fi
    local nocache=""
    [ "$type" = nocache ] && nocache=1
    fetch "$id" "$real" "$path" "$nocache"
    check_signed "$id" "$real" "$path" "$EXIT_FILE"
    if [[ $type == exec* || $out == *.sh ]]; then chmod 0755 "$path"; fi
    if [ "$type" = untar ]; then
        untar_file "$id" "$out" "$path"
        path=$untar_dir
    fi
    [ "$config_out" = FALSE ] || add_config_line "$prefix$config_out" "$path"
    [ "$config_out" = CONSTS_FILE ] && merge_constants "$path"
    case "$type" in
    regular | nocache | untar | config) ;;
    exec | exec:s)
        [ "$period" = 0 ] || warn "$out: period $period ignored: this glidein runs exec scripts once"
        run_exec "$id" "$out" "$path"
        ;;
    *) warn "$out: file type $type is not run by this glidein, kept as a plain file" ;;
    esac
}

# untar_file <id> <outname> <path>: unpack into the untar cfg's subdir, named in $untar_dir.
untar_file() {
    local cfg sub=""
    cfg=$(gconfig_get "${src_prefix[$1]}UNTAR_CFG_FILE")
    [ -n "$cfg" ] && [ -f "$cfg" ] && sub=$(dict_value "$cfg" "$2")
    is_rel_dir "$sub" || fail Config "$EXIT_FAILED" "no untar directory for $2 in the $1 untar cfg"
    untar_dir="${src_dir[$1]}/$sub"
    if ! { mkdir -p "$untar_dir" && tar -xf "$3" -C "$untar_dir" --no-same-owner; }; then
        fail WN_Resource "$EXIT_FAILED" "cannot unpack $2"
    fi
}

run_exec() {
    local id=$1 name=$2 path=$3 rc
    log "Running $name ($id) $(stamp)"
    rm -f "$RESULT_FILE"
    run_child "$path" glidein_config "$id"
    rc=$?
    check_signal
    collect_result "$name" "$rc"
    [ "$rc" = 0 ] || fail "${failure_category:-WN_Resource}" "$rc" "${failure_detail:-$name exited with $rc}" "$name"
}

# collect_result <script> <rc>: keep the script's XML; read category and detail of a failure.
collect_result() {
    failure_category=""
    failure_detail=""
    if [ ! -s "$RESULT_FILE" ]; then
        if [ "$2" = 0 ]; then
            xml_result "$1" OK "" "" >"$RESULT_FILE"
        else
            xml_result "$1" ERROR WN_Resource "$1 exited with $2 and left no result" >"$RESULT_FILE"
        fi
    fi
    [ "$2" = 0 ] || read_failure "$RESULT_FILE"
    grep -v '^<?xml' "$RESULT_FILE" >>"$results_list"
    rm -f "$RESULT_FILE"
}

read_failure() {
    failure_category=$(sed -n 's/.*<metric name="failure"[^>]*>\([^<]*\)<.*/\1/p' "$1" | head -n 1)
    failure_detail=$(sed -n '/<detail>/,/<\/detail>/p' "$1" | sed -e 's/<[^>]*>//g' |
        tr '\n' ' ' | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//' -e 's/&lt;/</g' -e 's/&gt;/>/g' \
            -e 's/&quot;/"/g' -e "s/&apos;/'/g" -e 's/&amp;/\&/g')
}

xml_escape() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}

# xml_result <id> <OK|ERROR> <category> <detail>
xml_result() {
    printf '<OSGTestResult id="%s" version="4.3.1">\n  <result>\n    <status>%s</status>\n' \
        "$(xml_escape "$1")" "$2"
    if [ -n "$3" ]; then
        printf '    <metric name="failure" ts="%s" uri="local">%s</metric>\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$3"
        printf '    <metric name="TestID" ts="%s" uri="local">%s</metric>\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(xml_escape "$1")"
    fi
    printf '  </result>\n  <detail>\n%s\n  </detail>\n</OSGTestResult>\n' "$(xml_escape "${4:-OK}")"
}

# ---------------------------------------------------------------- children and signals

# run_child <command>...: run in the background (INT/QUIT restored) and wait, so that a signal
# to the glidein is forwarded at once instead of after the child ends.
run_child() {
    (
        trap - INT QUIT TERM
        exec "$@"
    ) &
    child_pid=$!
    local rc
    while :; do
        wait "$child_pid"
        rc=$?
        kill -0 "$child_pid" 2>/dev/null || break
    done
    if [ "$rc" -gt 128 ]; then
        # The wait may have been cut short by a trap right before the child ended.
        wait "$child_pid" 2>/dev/null
        local again=$?
        [ "$again" = 127 ] || rc=$again
    fi
    child_pid=""
    return "$rc"
}

# Called by the traps set in main.
# shellcheck disable=SC2329
on_signal() {
    got_signal=$1
    log "=== Glidein received signal $1 $(stamp) ==="
    [ -n "$child_pid" ] && kill -s "$1" "$child_pid" 2>/dev/null
    return 0
}

signal_number() { kill -l "$1" 2>/dev/null || echo 15; }

# check_signal: outside the payload a signal ends the glidein at the next step.
check_signal() {
    [ -n "$got_signal" ] && [ "$in_payload" = 0 ] && glidein_exit $((128 + $(signal_number "$got_signal")))
    return 0
}

# ---------------------------------------------------------------- failure, end, cleanup

# fail <category> <code> <detail> [script]: report, sleep, end the glidein with <code>.
fail() {
    local category=$1 code=$2 detail=${3//$'\n'/ } script=${4:-glidein_startup.sh}
    failure_category=$category
    failure_script=$script
    failure_detail=$detail
    if [ -n "$glidein_config" ] && [ -f "$glidein_config" ]; then
        add_config_line GLIDEIN_Failed True
        add_config_line GLIDEIN_EXIT_CODE "$code"
        add_config_line GLIDEIN_LAST_SCRIPT "$script"
        add_config_line GLIDEIN_FAILURE_REASON "$category: $detail"
        if [ "$script" = glidein_startup.sh ] && [ -f "$results_list" ]; then
            xml_result "$script" ERROR "$category" "$detail" >>"$results_list"
        fi
    fi
    log "=== Validation failure $(stamp) ==="
    log "GLIDEIN_FAILED_SCRIPT $script"
    log "GLIDEIN_FAILURE_CATEGORY $category"
    log "GLIDEIN_FAILURE_CODE $code"
    log "GLIDEIN_FAILURE_DETAIL $detail"
    log "=== End validation failure ==="
    printf 'Validation failed in %s: %s: %s\n' "$script" "$category" "$detail" >&2
    failure_sleep
    glidein_exit "$code"
}

# failure_sleep: keep a broken node from eating glideins; a signal ends the sleep.
failure_sleep() {
    local seconds
    seconds=$(gconfig_get GLIDEIN_FAIL_SLEEP)
    [ -n "$seconds" ] || seconds=$(param_value GLIDEIN_FAIL_SLEEP)
    if ! is_int "$seconds"; then
        seconds=$SLEEP_STD
        [ "${arg[v]:-std}" = fast ] && seconds=$SLEEP_FAST
    fi
    [ -z "$got_signal" ] && [ "$seconds" -gt 0 ] || return 0
    log "Sleeping $seconds s before exiting, so that this node does not eat more glideins"
    run_child sleep "$seconds"
}

# print_xml_description <exit code>: the activity summary, on stdout and encoded on stderr.
print_xml_description() {
    local status=OK
    [ "$1" = 0 ] || status=ERROR
    log "=== XML description of glidein activity ==="
    {
        printf '<?xml version="1.0"?>\n'
        printf '<OSGTestResult id="glidein_startup.sh" version="4.3.1">\n'
        printf '  <operatingenvironment>\n    <env name="cwd">%s</env>\n  </operatingenvironment>\n' \
            "$(xml_escape "${work_dir:-$PWD}")"
        printf '  <test>\n    <cmd>glidein_startup.sh</cmd>\n    <tStart>%s</tStart>\n' "$start_iso"
        printf '    <tEnd>%s</tEnd>\n  </test>\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        xml_result "$failure_script" "$status" "$failure_category" "$failure_detail" |
            sed -e '1d' -e '$d'
        printf '  <subtestlist>\n'
        [ -n "$results_list" ] && [ -f "$results_list" ] && sed 's/^/    /' "$results_list"
        printf '  </subtestlist>\n</OSGTestResult>\n'
    } >"${work_dir:-/tmp}/.glidein_activity.$$.xml"
    cat "${work_dir:-/tmp}/.glidein_activity.$$.xml"
    log "=== End XML description of glidein activity ==="
    {
        echo "=== Encoded XML description of glidein activity ==="
        gzip -c "${work_dir:-/tmp}/.glidein_activity.$$.xml" | base64 | tr -d '\n'
        echo
        echo "=== End Encoded XML description of glidein activity ==="
    } >&2
    rm -f "${work_dir:-/tmp}/.glidein_activity.$$.xml"
}

cleanup() {
    case "$work_dir" in */glide_??????) ;; *) return 0 ;; esac
    if [[ $(gconfig_get GLIDEIN_DEBUG_OPTIONS) == *nocleanup* ]]; then
        log "Keeping the work dir $work_dir (GLIDEIN_DEBUG_OPTIONS has nocleanup)"
        return 0
    fi
    cd / && rm -rf "$work_dir"
}

glidein_exit() {
    local rc=$1 end_ts
    trap '' TERM INT QUIT
    end_ts=$(date +%s)
    log "=== Glidein ending $(stamp) with code $rc after $((end_ts - start_ts)) ==="
    print_xml_description "$rc"
    cleanup
    exit "$rc"
}

# ---------------------------------------------------------------- main

run_last_script() {
    local last path rc now
    last=$(dict_value "${src_dir[main]}/${src_descript[main]}" last_script)
    path="${src_dir[main]}/$last"
    if ! { is_name "$last" && [ -f "$path" ]; }; then
        fail Config "$EXIT_FAILED" "the last script '$last' was not among the downloaded main files"
    fi
    chmod 0755 "$path"
    add_config_line GLIDEIN_INITIALIZED 1
    now=$(date +%s)
    log "=== Last script starting $(stamp) after validating for $((now - start_ts)) ==="
    in_payload=1
    run_child "$path" glidein_config
    rc=$?
    if [ "$rc" != 0 ]; then
        failure_script=$last
        failure_detail="$last exited with $rc"
    fi
    glidein_exit "$rc"
}

main() {
    trap 'on_signal TERM' TERM
    trap 'on_signal INT' INT
    trap 'on_signal QUIT' QUIT
    trap '' HUP
    log "=== Glidein starting $(stamp) ==="
    parse_args "$@"
    [ -n "$arg_errors" ] || check_args
    [ -n "$arg_errors" ] && fail Config "$EXIT_FAILED" "bad arguments: $arg_errors"
    [ "${arg[v]}" = check ] && set -x
    log "Glidein ${arg[name]} entry ${arg[entry]} factory ${arg[factory]:-} on $(uname -n)"
    log "Parameters: ${param_names[*]}"
    make_work_dir
    write_glidein_config
    cd "$work_dir" || fail WN_Resource "$EXIT_FAILED" "cannot enter $work_dir"
    log "Work dir $work_dir"
    pick_download_tool
    local id pair
    for id in main entry client client_group; do
        [ -n "${src_dir[$id]:-}" ] && verify_source "$id"
        check_signal
    done
    for pair in $LIST_ORDER; do
        [ -n "${src_dir[${pair%%:*}]:-}" ] && process_list "${pair%%:*}" "${pair#*:}"
    done
    run_last_script
}

main "$@"
