#!/usr/bin/env bash
# Regenerates the RTP keypad pcaps in sip-fixtures/pcap/ with the gateway's own
# synthesiser (`dialgate-replay fixture keypad-pcap`): G.711 silence, then each key as
# RFC 4733 telephone-events (payload type 101, one SSRC, fixed event timestamp
# per key, marker first, duration +160 per 20 ms, end packet sent 3 times).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --quiet
bin=target/debug/dialgate-replay
"$bin" fixture keypad-pcap --code '123456789#' --out "$here/pcap/demo_code.pcap"
"$bin" fixture keypad-pcap --code '1111#2222#3333#' --out "$here/pcap/wrong_x3.pcap"
"$bin" fixture keypad-pcap --code '1123#' --out "$here/pcap/repeated_keys.pcap"
echo "wrote $(ls "$here"/pcap/*.pcap | wc -l) pcaps in $here/pcap"
