#!/usr/bin/env bash
# An avatar of a real person from a silent webcam clip, end to end, and its eval report to look at:
# fetch the clip (cached) -> preprocess (a silent dataset) -> train (renderer; motion from the universal model)
# -> eval (reconstruction of the held-out last 10%, then driven by speech the avatar never heard).
#
#   scripts/make_real_avatar.sh [CLIP] [WORK]     CLIP: cap12_edit (default), cap13_edit2, single_face, ...
#                                                 (scripts/fetch_real_footage.py --list); WORK: runs/real_<CLIP>
#   SPEECH=path.wav scripts/make_real_avatar.sh   drive it with your own speech instead of the bundled clip
#
# About an hour on a 2-core CPU (the cpu preset); WORK/report/report.md and sidebyside.mp4 show the result.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
clip="${1:-cap12_edit}"
work="${2:-$root/runs/real_$clip}"
syncanim="$root/.venv/bin/syncanim"
python="$root/.venv/bin/python"
speech="${SPEECH:-$root/assets/audio/02_how.wav}"
mkdir -p "$work"

video="$("$python" "$root/scripts/fetch_real_footage.py" "$clip")"
"$syncanim" preprocess "$video" -o "$work/data" --size 256
"$syncanim" preprocess --preview "$work/data"
"$syncanim" train "$work/data" -o "$work/avatar" --preset cpu --seed 0
"$syncanim" eval "$work/avatar" --data "$work/data" -o "$work/report" --audio "$speech"
echo "report: $work/report/report.md"
