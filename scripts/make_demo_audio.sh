#!/usr/bin/env bash
# Makes the bundled demo clips (assets/audio/*.wav): espeak-ng voices the demo avatar never heard in training,
# 16 kHz mono 16-bit, each with silences inside and around it (the avatar must close its mouth and keep moving).
# Deterministic: the same espeak-ng and sox versions give the same files.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/assets/audio"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# clip NAME VOICE RATE PITCH SENTENCE... : sentences separated by 1.2 s of silence, 0.8 s before, 1.5 s after.
clip() {
  local name=$1 voice=$2 rate=$3 pitch=$4
  shift 4
  local parts=() i=0
  for sentence in "$@"; do
    espeak-ng -v "$voice" -s "$rate" -p "$pitch" -w "$tmp/$name-$i.wav" "$sentence"
    sox -D "$tmp/$name-$i.wav" -r 16000 -c 1 -b 16 "$tmp/$name-$i-16k.wav" gain -3 pad 0 1.2
    parts+=("$tmp/$name-$i-16k.wav")
    i=$((i + 1))
  done
  sox -D "${parts[@]}" "$tmp/$name-joined.wav"
  sox -D "$tmp/$name-joined.wav" "$tmp/$name.wav" pad 0.8 0.3
  mv "$tmp/$name.wav" "$out/$name.wav"
  echo "wrote $out/$name.wav ($(soxi -D "$out/$name.wav") s)"
}

clip 01_welcome en-gb-scotland 150 45 \
  "Hello, and welcome." \
  "I am a talking avatar, rendered live from a neural radiance field." \
  "Everything you see moves with the sound of my voice."
clip 02_how en-029+f4 165 60 \
  "My head pose and my blinks come from the audio alone." \
  "When I stop talking, I keep breathing, blinking and looking around."
clip 03_try en-gb-x-gbcwmd+m2 140 35 \
  "You can drive me from a microphone, from files, or from another program." \
  "Try it yourself. Thank you for listening."
