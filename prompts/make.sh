#!/usr/bin/env bash
# Regenerates the spoken prompts in prompts/<language>/ with espeak-ng.
#
# The output is espeak-ng's native WAV (22050 Hz, mono, 16-bit); the gateway
# decodes and resamples prompts itself at start-up, so no conversion here.
# Re-running with the same espeak-ng version gives the same files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for pkg in espeak-ng sox; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg"
    fi
done

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
    "waiting_for_host|The host has not joined yet. Please hold, you will be connected when the host arrives."
    "waiting_for_admission|Please hold. The host will let you into the conference shortly."
    "conference_ended|The host has left. This conference has ended."
    "conference_full|This conference is full."
    "conference_locked|This conference is locked."
    "there_are|There are"
    "participants_in_conference|participants in this conference."
    "now_locked|The conference is now locked."
    "now_unlocked|The conference is now unlocked."
    "all_muted|Everyone but the host is now muted."
    "all_unmuted|Everyone may speak again."
)

# Number words, for counts ("there are twenty one participants…"):
# number_<word>.wav, composed by the gateway (English rules).
for word in zero one two three four five six seven eight nine ten eleven twelve \
            thirteen fourteen fifteen sixteen seventeen eighteen nineteen \
            twenty thirty forty fifty sixty seventy eighty ninety hundred thousand; do
    prompts+=("number_$word|$word")
done

for entry in "${prompts[@]}"; do
    name="${entry%%|*}"
    words="${entry#*|}"
    espeak-ng -v "$voice" -s "$speed" -w "$out/$name.wav" "$words"
    case "$name" in
        number_*|there_are|participants_in_conference)
            # Pieces said one after another: trim espeak-ng's leading and
            # trailing silence to 40 ms so the sentence flows.
            sox -D "$out/$name.wav" "$out/$name.trim.wav" \
                silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse pad 0.04 0.04
            mv "$out/$name.trim.wav" "$out/$name.wav"
            ;;
    esac
    echo "wrote $out/$name.wav"
done

# Hold music for the waiting room: an arpeggio over C, Am, F and G (8 s,
# looped by the gateway), sine notes with short fades, synthesised by sox
# without dither so the file is the same on every run.
notes=()
for chord in "261.63 329.63 392 523.25" "220 261.63 329.63 440" \
             "174.61 220 261.63 349.23" "196 246.94 293.66 392"; do
    read -r root third fifth octave <<<"$chord"
    for f in "$root" "$third" "$fifth" "$octave" "$fifth" "$third" "$root" "$third"; do
        notes+=(synth 0.25 sine "$f" fade q 0.01 0.25 0.2 vol 0.3 :)
    done
done
unset 'notes[${#notes[@]}-1]'
sox -D -n -r 16000 -c 1 -b 16 "$here/hold_music.flac" "${notes[@]}"
echo "wrote $here/hold_music.flac"
