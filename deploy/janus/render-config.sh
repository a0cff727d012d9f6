#!/bin/sh
# Janus's entrypoint in deploy/compose.yaml: renders deploy/janus/*.jcfg (the templates)
# into the folder Janus reads, with this deploy's secrets and addresses from the
# environment, then runs the command it was given (janus) as the unprivileged user.
#
# Janus 1.1 reads admin_secret, the VideoRoom's admin_key, the admin API's address and
# CORS only from its files (no command-line flag or environment variable for them),
# hence a rendered copy. It refuses to start on a missing or placeholder secret: a
# Janus with the example's secret would hand its admin API to anyone who read it.
#
#   VIDEOCHAT_SFU__ADMIN_SECRET    Janus's admin_secret (the app uses the same value)
#   VIDEOCHAT_SFU__ROOM_ADMIN_KEY  the VideoRoom's admin_key (likewise)
#   VIDEOCHAT_PUBLIC_URL           the web client's origin, for cors.allow_origin
#   JANUS_PUBLIC_IP                the address browsers reach Janus's media at (nat_1_1_mapping)
#   JANUS_RTP_PORTS                media ports, "min-max" (default 20000-20199)
#   JANUS_ADMIN_IP, JANUS_ADMIN_ACL  where the admin API listens, and who may call it
#   JANUS_SERVER_NAME              optional: this instance's name (default: the template's)
#   JANUS_TEMPLATE_DIR, JANUS_CONFIG_DIR  from where, to where (defaults below)
#
# With no arguments it only renders (the tests use that).
set -eu

template_dir=${JANUS_TEMPLATE_DIR:-/usr/share/janus-videochat}
config_dir=${JANUS_CONFIG_DIR:-/etc/janus-videochat}
rtp_ports=${JANUS_RTP_PORTS:-20000-20199}
# The unprivileged user Janus runs as: the app image's uid and gid, so that videochat can
# delete the recordings Janus writes on the shared volume (and Janus the other way round).
run_as=${JANUS_RUN_AS:-10001:10001}

fail() {
    echo "render-config: $*" >&2
    exit 1
}

# A value that goes between double quotes in a jcfg file.
check_plain() {
    case $2 in
        *'"'* | *'\'* | *"
"*) fail "$1 must not contain quotes, backslashes or line breaks" ;;
    esac
}

check_secret() {
    name=$1
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "$name is not set (deploy/.env): Janus does not start without it"
    case $value in
        change-me* | replace-with* | *example*)
            fail "$name is still the placeholder from the example: set a long random value" ;;
    esac
    [ "${#value}" -ge 16 ] || fail "$name is shorter than 16 characters: use a long random value"
    check_plain "$name" "$value"
}

check_set() {
    eval "value=\${$1:-}"
    [ -n "$value" ] || fail "$1 is not set (deploy/.env)"
    check_plain "$1" "$value"
}

check_secret VIDEOCHAT_SFU__ADMIN_SECRET
check_secret VIDEOCHAT_SFU__ROOM_ADMIN_KEY
check_set VIDEOCHAT_PUBLIC_URL
check_set JANUS_PUBLIC_IP
check_set JANUS_ADMIN_IP
check_set JANUS_ADMIN_ACL
case $JANUS_PUBLIC_IP in
    *[!0-9a-fA-F.:,]*) fail "JANUS_PUBLIC_IP must be an IP address (or a comma-separated list), not '$JANUS_PUBLIC_IP'" ;;
esac
case $rtp_ports in
    *[!0-9-]* | -* | *- | *-*-*) fail "JANUS_RTP_PORTS must be 'min-max', not '$rtp_ports'" ;;
    *-*) ;;
    *) fail "JANUS_RTP_PORTS must be 'min-max', not '$rtp_ports'" ;;
esac
[ "${rtp_ports%-*}" -le "${rtp_ports#*-}" ] || fail "JANUS_RTP_PORTS: min is above max"
# Browsers send the origin only: scheme://host[:port], without a path.
origin=$(printf '%s\n' "$VIDEOCHAT_PUBLIC_URL" | sed -E 's|^([A-Za-z][A-Za-z0-9+.-]*://[^/]+).*|\1|')
case $origin in
    http://?* | https://?*) ;;
    *) fail "VIDEOCHAT_PUBLIC_URL must be an http(s) URL, not '$VIDEOCHAT_PUBLIC_URL'" ;;
esac

# Debian installs the plugins under its multiarch folder; the templates name amd64's.
lib_dir=/usr/lib/x86_64-linux-gnu/janus
for candidate in /usr/lib/*/janus; do
    if [ -d "$candidate/plugins" ]; then
        lib_dir=$candidate
        break
    fi
done

# sed's replacement text: escape what is special there (the delimiter is '|').
escape() {
    printf '%s' "$1" | sed -e 's/[&|]/\\&/g'
}

# key = "value" on its own line, in place of the template's line (commented out or not).
set_string() {
    printf 's|^\\([[:space:]]*\\)#\\{0,1\\}[[:space:]]*%s = .*|\\1%s = "%s"|\n' "$1" "$1" "$(escape "$2")"
}

script=$(
    set_string configs_folder "$config_dir"
    set_string admin_secret "$VIDEOCHAT_SFU__ADMIN_SECRET"
    set_string admin_key "$VIDEOCHAT_SFU__ROOM_ADMIN_KEY"
    set_string allow_origin "$origin"
    set_string nat_1_1_mapping "$JANUS_PUBLIC_IP"
    set_string rtp_port_range "$rtp_ports"
    set_string admin_ip "$JANUS_ADMIN_IP"
    set_string admin_acl "$JANUS_ADMIN_ACL"
    if [ -n "${JANUS_SERVER_NAME:-}" ]; then
        check_plain JANUS_SERVER_NAME "$JANUS_SERVER_NAME"
        set_string server_name "$JANUS_SERVER_NAME"
    fi
    # Keep the private candidate next to the public one: coturn (host network) relays
    # to Janus's compose address, which browsers behind UDP-blocking networks need.
    printf '%s\n' 's|^\([[:space:]]*\)#[[:space:]]*keep_private_host = .*|\1keep_private_host = true|'
    printf 's|/usr/lib/x86_64-linux-gnu/janus|%s|\n' "$(escape "$lib_dir")"
)

mkdir -p "$config_dir"
rendered=0
for template in "$template_dir"/*.jcfg; do
    [ -f "$template" ] || continue
    # Written whole or not at all: a half-written file would start Janus half-configured.
    target="$config_dir/$(basename "$template")"
    sed -e "$script" "$template" >"$target.tmp"
    mv "$target.tmp" "$target"
    rendered=$((rendered + 1))
done
[ "$rendered" -gt 0 ] || fail "no *.jcfg templates in $template_dir"

# Every value must have found its line: a template without one would leave Janus with a
# placeholder (or with no admin secret at all) without a word.
expect() {
    grep -qF "$2" "$config_dir/$1" || fail "$1 has no line for $2 (template changed?)"
}
expect janus.jcfg "admin_secret = \"$VIDEOCHAT_SFU__ADMIN_SECRET\""
expect janus.jcfg "nat_1_1_mapping = \"$JANUS_PUBLIC_IP\""
expect janus.jcfg "rtp_port_range = \"$rtp_ports\""
expect janus.plugin.videoroom.jcfg "admin_key = \"$VIDEOCHAT_SFU__ROOM_ADMIN_KEY\""
expect janus.transport.http.jcfg "admin_ip = \"$JANUS_ADMIN_IP\""
expect janus.transport.http.jcfg "admin_acl = \"$JANUS_ADMIN_ACL\""
expect janus.transport.http.jcfg "allow_origin = \"$origin\""
if grep -q 'change-me' "$config_dir"/*.jcfg; then
    fail "a placeholder is left in $config_dir: $(grep -l 'change-me' "$config_dir"/*.jcfg)"
fi
echo "render-config: wrote $rendered files to $config_dir (RTP ports $rtp_ports, public IP $JANUS_PUBLIC_IP)" >&2

[ "$#" -gt 0 ] || exit 0
if [ "$(id -u)" = 0 ]; then
    # Root only for this: a fresh named volume is root's; Janus writes recordings there.
    if [ -n "${JANUS_RECORDING_DIR:-}" ]; then
        mkdir -p "$JANUS_RECORDING_DIR"
        chown "$run_as" "$JANUS_RECORDING_DIR"
        chmod 2775 "$JANUS_RECORDING_DIR"
    fi
    exec setpriv --reuid="${run_as%:*}" --regid="${run_as#*:}" --clear-groups -- "$@"
fi
exec "$@"
