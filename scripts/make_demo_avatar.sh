#!/usr/bin/env bash
# Remakes the bundled demo avatar (assets/avatar) with the product's own pipeline, end to end:
# synthetic presenter -> preprocess (MediaPipe tracking of the video, never the ground truth) -> train -> eval.
# About 1.5 hours on a 2-core CPU. WORK (default runs/demo_avatar) keeps the intermediate files.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$root/runs/demo_avatar}"
syncanim="$root/.venv/bin/syncanim"
mkdir -p "$work"

# Three minutes of speech with pauses, one presenter, four voices in turn (none of them used by the demo clips).
"$syncanim" synth "$work/synth" --seconds 180 --seed 3 --voice en-us,en-gb-x-rp+f3,en-us-nyc+m1,en --size 512
"$syncanim" preprocess "$work/synth/video.mp4" -o "$work/data" --size 256
"$syncanim" train "$work/data" -o "$work/avatar" --preset cpu --stage nerf --seed 0
"$syncanim" train "$work/data" -o "$work/avatar" --preset cpu --stage motion --seed 0

# Held-out speech in a voice the avatar never heard, for the audio-driven half of the report; the clip's video
# (the presenter saying it) is what its lip sync is measured against.
"$syncanim" synth "$work/heldout" --seconds 40 --seed 99 --voice en-gb-x-gbclan+m4 --size 128
"$syncanim" eval "$work/avatar" --data "$work/data" -o "$work/avatar/report" --audio "$work/heldout/video.mp4" \
    --cross-audio "$root"/assets/audio/*.wav

# What ships: the models, their training logs, each stage's last validation image and the report (not the
# resumable state, nor the earlier validation images).
new="$root/assets/avatar.new"
rm -rf "$new"
mkdir -p "$new/val"
cp -r "$work/avatar/nerf.safetensors" "$work/avatar/motion.safetensors" "$work/avatar/"*_log.jsonl \
      "$work/avatar/report" "$new/"
for stage in body head lips; do
  cp "$(ls "$work/avatar/val/${stage}_"*.png | tail -1)" "$new/val/"
done
rm -rf "$root/assets/avatar"
mv "$new" "$root/assets/avatar"
du -sh "$root/assets/avatar"
