#!/usr/bin/env bash
# Records the traces in sip-fixtures/traces/: real calls to a demo gateway,
# captured with tshark, made by SIPp scenarios and by baresip (a real
# softphone from Debian). Everything runs inside a network namespace of its
# own (unshare -n): loopback, and a veth pair for baresip, so nothing leaves
# the machine and no port clashes with anything running outside.
#
# Needs: sip-tester, tshark, baresip, python3 (to drive baresip's ctrl_tcp).
# Run as root from anywhere: sip-fixtures/make-traces.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."

if [ -z "${DIALGATE_IN_NETNS:-}" ]; then
    (cd "$repo" && cargo build --quiet)
    exec env DIALGATE_IN_NETNS=1 unshare -n "$0" "$@"
fi

ip link set lo up
# baresip wants an address that is not loopback: a veth pair, inside the
# namespace, gives it one (10.99.0.1) that only this namespace can reach.
ip link add dg0 type veth peer name dg1
ip addr add 10.99.0.1/24 dev dg0
ip link set dg0 up
ip link set dg1 up
bin="$repo/target/debug/dialgate"
out="$here/traces"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
"$bin" serve --demo --prompts "$repo/prompts" --database "sqlite://$work/gw.db" \
    --secret-file "$work/gw.secret" --sip-listen 127.0.0.1:5060 --api-listen 127.0.0.1:8080 \
    >"$work/gw.out" 2>"$work/gw.log" &
pids+=($!)
for _ in $(seq 50); do grep -q ready "$work/gw.out" 2>/dev/null && break; sleep 0.1; done

# capture NAME CMD...: records loopback UDP while CMD runs into $work/NAME.pcapng
capture() {
    local name="$1"; shift
    tshark -q -i any -f udp -w "$work/$name.pcapng" >/dev/null 2>&1 &
    local tpid=$!
    sleep 1.5
    "$@"
    sleep 0.5
    kill "$tpid"; wait "$tpid" 2>/dev/null || true
}

sipp_call() {
    local scenario="$1"; shift
    sipp 127.0.0.1:5060 -sf "$here/scenarios/$scenario" -s +15550100 -m 1 \
        -i 127.0.0.1 -p 5062 -mp 40000 -timeout 60s -timeout_error "$@" >/dev/null 2>&1
}

# Right code by RFC 4733: admitted, stays 4 s after keying, hangs up.
capture rfc4733_admitted sipp_call uac_rfc4733.xml \
    -key dtmf_pcap "$here/pcap/demo_code.pcap" -key hold_ms 7000
cp "$work/rfc4733_admitted.pcapng" "$out/"

# Wrong code thrice by RFC 4733: the gateway says goodbye with a Reason.
capture wrong_x3 sipp_call uac_rfc4733_refused.xml -key dtmf_pcap "$here/pcap/wrong_x3.pcap"
cp "$work/wrong_x3.pcapng" "$out/"

# Right code by SIP INFO, kept as a text trace.
capture info_admitted sipp_call uac_info.xml -key code '123456789#' -key hold_ms 3000
"$bin" fixture trace-text "$work/info_admitted.pcapng" --out "$out/info_admitted.txt"

# A meeting's one-time code by SIP INFO (replays key their own from --codes).
start="$(date -u -d '-5 min' +%Y-%m-%dT%H:%M:%SZ)"
code="$("$bin" meeting schedule --room demo --start "$start" --duration 45m --one-time --json \
    --database "sqlite://$work/gw.db" --secret-file "$work/gw.secret" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["one_time_code"])')"
capture one_time_code sipp_call uac_info.xml -key code "$code#" -key hold_ms 3000
"$bin" fixture trace-text "$work/one_time_code.pcapng" --out "$out/one_time_code.txt"

# A caller who hangs up during the welcome prompt, one key pressed.
capture hangup_in_prompt sipp_call uac_info.xml -key code '1' -key hold_ms 1500
"$bin" fixture trace-text "$work/hangup_in_prompt.pcapng" --out "$out/hangup_in_prompt.txt"

# A real softphone: baresip dials, keys the demo code by RFC 4733, hangs up.
mkdir -p "$work/baresip"
cat >"$work/baresip/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:5080
audio_player		aufile,/dev/null
audio_source		ausine,440
audio_alert		aufile,/dev/null
ausrc_srate		48000
ausrc_channels		2
rtp_ports		40100-40199
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aufile.so
module_app		account.so
module_app		menu.so
module			ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:4444
EOF
echo '<sip:alice@127.0.0.1>;regint=0;audio_codecs=PCMU/8000/1' >"$work/baresip/accounts"
touch "$work/baresip/contacts"
baresip -f "$work/baresip" >"$work/baresip.log" 2>&1 &
pids+=($!)
sleep 1
drive_baresip() {
    python3 - <<'PY'
import json, socket, time

s = socket.create_connection(("127.0.0.1", 4444), timeout=30)
buf = b""

def send(command, params=""):
    body = json.dumps({"command": command, "params": params, "token": command}).encode()
    s.sendall(str(len(body)).encode() + b":" + body + b",")

def wait(kind, limit=20):
    global buf
    end = time.time() + limit
    while time.time() < end:
        while b":" in buf:
            n, rest = buf.split(b":", 1)
            n = int(n)
            if len(rest) < n + 1:
                break
            msg, buf = json.loads(rest[:n]), rest[n + 1:]
            if msg.get("type") == kind:
                return
        buf += s.recv(4096)
    raise SystemExit(f"baresip: no {kind}")

send("dial", "sip:+15550100@127.0.0.1:5060")
wait("CALL_ESTABLISHED")
time.sleep(1.0)
for key in "123456789#":
    send("sndcode", key)
    time.sleep(0.25)
time.sleep(4.0)
send("hangup")
wait("CALL_CLOSED")
PY
}
capture baresip_rfc4733 drive_baresip
cp "$work/baresip_rfc4733.pcapng" "$out/"

grep -o 'outcome="[a-z_]*"' "$work/gw.log" | sort | uniq -c
ls -l "$out"
