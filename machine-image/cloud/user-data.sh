#!/bin/sh
# DistZero machine bootstrap: cloud-init runs this once, on an instance's
# first boot. It puts the dz agent at /usr/local/bin/dz (downloaded and
# checked against its SHA-256, or already baked into the AMI), writes the
# cluster secret (and TLS credentials) where only root reads them, and runs the agent under systemd.
# Without systemd (a container standing in for an instance) it runs the
# agent in the foreground instead. The controller fills in the @...@ values.
set -eu

DZ_CLUSTER='@CLUSTER@'
DZ_CLUSTER_SECRET='@SECRET@'
# The agent's TLS certificate, key and cluster CA (hex; empty: TLS off).
DZ_TLS_CREDENTIALS='@TLS@'
DZ_AGENT_URL='@AGENT_URL@'
DZ_AGENT_SHA256='@AGENT_SHA256@'
BIN=/usr/local/bin/dz

mkdir -p /usr/local/bin /etc/distzero /var/lib/distzero
if [ -n "$DZ_AGENT_URL" ]; then
    tmp="$(mktemp)"
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL -o "$tmp" "$DZ_AGENT_URL"
    else
        wget -q -O "$tmp" "$DZ_AGENT_URL"
    fi
    if ! echo "$DZ_AGENT_SHA256  $tmp" | sha256sum -c - >/dev/null 2>&1; then
        echo "distzero: $DZ_AGENT_URL does not match its SHA-256; not installing it" >&2
        exit 1
    fi
    cp "$tmp" "$BIN"
    chmod 0755 "$BIN"
    rm -f "$tmp"
fi
if [ ! -x "$BIN" ]; then
    echo "distzero: no agent at $BIN (set DZ_AGENT_URL or bake it into the AMI)" >&2
    exit 1
fi

umask 077
printf 'DZ_CLUSTER=%s\nDZ_CLUSTER_SECRET=%s\nDZ_TLS_CREDENTIALS=%s\n' \
    "$DZ_CLUSTER" "$DZ_CLUSTER_SECRET" "$DZ_TLS_CREDENTIALS" > /etc/distzero/agent.env
umask 022

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/dz-machine.service <<'UNIT'
@UNIT@
UNIT
    systemctl daemon-reload
    systemctl enable --now dz-machine.service
else
    export DZ_CLUSTER_SECRET DZ_TLS_CREDENTIALS
    exec "$BIN" machine --control 0.0.0.0:7700 --data 0.0.0.0:7701 \
        --dir /var/lib/distzero --mode cloud --cluster "$DZ_CLUSTER"
fi
