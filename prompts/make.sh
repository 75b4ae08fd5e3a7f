#!/usr/bin/env bash
# Regenerates the spoken prompts in prompts/<language>/ with espeak-ng.
#
# The output is espeak-ng's native WAV (22050 Hz, mono, 16-bit); the gateway
# decodes and resamples prompts itself at start-up, so no conversion here.
# Re-running with the same espeak-ng version gives the same files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! dpkg -s espeak-ng >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng
fi

voice="en-us"
speed=150     # words per minute
out="$here/en"
mkdir -p "$out"

# name|words — the name is the file stem the gateway looks for.
prompts=(
    "welcome|Welcome to the conference service."
    "enter_access_code|Please enter your access code, followed by the pound key."
    "invalid_code|That code is not valid."
    "goodbye|Goodbye."
    "joining|You are joining the conference."
    "only_person|You are the only person in this conference."
    "not_started|This meeting has not started yet. The code works from 15 minutes before the start."
    "meeting_ended|This meeting has ended."
    "enter_security_code|Please enter the security code, followed by the pound key."
    "too_many_attempts|There have been too many attempts. Please try again later."
    "muted|You are muted."
    "unmuted|You are no longer muted."
)

for entry in "${prompts[@]}"; do
    name="${entry%%|*}"
    words="${entry#*|}"
    espeak-ng -v "$voice" -s "$speed" -w "$out/$name.wav" "$words"
    echo "wrote $out/$name.wav"
done
