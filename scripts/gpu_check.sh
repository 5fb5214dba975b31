#!/usr/bin/env bash
# One pass over the CUDA paths on a machine with one NVIDIA GPU, in under 8 minutes, with one summary at the end.
#
#   scripts/gpu_check.sh            (from the checkout, after `make setup` built .venv there; no internet needed)
#
# Stages, each time-boxed (`timeout`); a failure is recorded and the rest still run:
#   env        nvidia-smi, torch/Taichi/cuda-python versions, what torch sees
#   tcnn       whether tiny-cuda-nn's torch bindings import (training uses them when they do)
#   gpu-tests  pytest -m gpu (CUDA kernels against the CPU ones, CUDA-GL interop, tcnn, GPU compositing)
#   bench      syncanim bench --device cuda at 512x512, each framing, 2 repeats: FPS and the upload path
#              (cuda-gl: frames stay on the GPU; host: they went through host memory, and why)
#   synth, preprocess, train
#              a small dataset made here (a synthetic presenter), then the gpu training preset cut to about a
#              minute: the steps each stage reached and which MLP backend trained
# The summary goes to stdout and to $OUT/gpu_check_summary.txt ($OUT, or a temporary folder when unset), with each
# stage's log under logs/ beside it. GPU_CHECK_BUDGET_S (default 450) is the time all stages share.
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 1
START=$(date +%s)
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}
RESERVE_S=15  # kept back for the summary
OUT_DIR=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
LOGS="$OUT_DIR/logs"
WORK=$(mktemp -d /tmp/gpu_check_work.XXXXXX)  # datasets and avatars: large, not worth bringing back
mkdir -p "$LOGS"
SUMMARY="$OUT_DIR/gpu_check_summary.txt"
ROWS=()
NOTES=()
declare -A STATUS

if [[ -f .venv/bin/activate ]]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
else
    NOTES+=("no .venv here: using $(command -v python3 || echo 'no python3'); run \`make setup\` first")
fi
PY=$(command -v python || command -v python3)

elapsed() { echo $(( $(date +%s) - START )); }

# stage NAME BOX_S COMMAND: run COMMAND (a bash string) for at most BOX_S seconds, or what the budget has left.
stage() {
    local name=$1 box=$2 cmd=$3
    local left=$(( BUDGET_S - RESERVE_S - $(elapsed) ))
    (( box > left )) && box=$left
    if (( box < 10 )); then
        STATUS[$name]=skipped
        ROWS+=("$(printf '%-11s %-9s %6s  %s' "$name" skipped - 'no time left in the budget')")
        return
    fi
    echo "== $name (at most ${box} s) =="
    local t0 rc
    t0=$(date +%s)
    timeout -k 10 "$box" bash -c "$cmd" >"$LOGS/$name.log" 2>&1
    rc=$?
    local took=$(( $(date +%s) - t0 ))
    local state=ok
    if (( rc == 124 || rc == 137 )); then state=TIMEOUT; elif (( rc != 0 )); then state="FAIL($rc)"; fi
    STATUS[$name]=$state
    ROWS+=("$(printf '%-11s %-9s %5ss  %s' "$name" "$state" "$took" "$(tail -n 1 "$LOGS/$name.log" | cut -c1-90)")")
    tail -n 3 "$LOGS/$name.log"
}

# skip NAME WHY: record a stage that cannot run because an earlier one failed.
skip() {
    STATUS[$1]=skipped
    ROWS+=("$(printf '%-11s %-9s %6s  %s' "$1" skipped - "$2")")
}

stage env 30 "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; \
    $PY -c 'import torch, taichi; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \
\"available\", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"\"); \
print(\"taichi\", taichi.__version__)'; \
    $PY -c 'import cuda.bindings, importlib.metadata as m; print(\"cuda-python\", m.version(\"cuda-python\"))' \
    || echo 'cuda-python not importable: frames will reach the canvas by host upload'; \
    $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)'"

stage tcnn 30 "$PY -c 'import tinycudann, importlib.metadata as m; print(\"tinycudann importable\", \
m.version(\"tinycudann\"))' || { echo 'tinycudann not importable (optional): training uses torch layers'; exit 0; }"

stage gpu-tests 150 "$PY -m pytest -q -m gpu -p no:cacheprovider tests"

stage bench 150 "syncanim bench --device cuda --sizes 512 --framings --repeat 2 --no-hubert \
    --json '$OUT_DIR/bench_cuda.json'"

stage synth 60 "syncanim synth '$WORK/synth' --seconds 8 --seed 3 --size 256 --no-progress"
if [[ ${STATUS[synth]} == ok ]]; then
    stage preprocess 60 "syncanim preprocess '$WORK/synth/video.mp4' -o '$WORK/data' --size 256 --no-progress"
else
    skip preprocess "no synthetic video"
fi
if [[ ${STATUS[preprocess]} == ok ]]; then
    # Training gets what the budget has left less a margin for loading data and fitting the render grid after it.
    left=$(( BUDGET_S - RESERVE_S - $(elapsed) - 45 ))
    (( left > 70 )) && left=70
    if (( left >= 15 )); then
        minutes=$(awk -v s="$left" 'BEGIN { printf "%.2f", s / 60 }')
        stage train 160 "syncanim train '$WORK/data' -o '$WORK/avatar' --preset gpu --motion universal \
            --time-limit-min $minutes"
    else
        skip train "no time left in the budget"
    fi
else
    skip train "no dataset"
fi

# The figures worth reading, from the logs and the bench JSON.
FIGURES=$("$PY" - "$OUT_DIR" "$WORK" <<'EOF' 2>&1
import json, re, sys
from pathlib import Path

out, work = Path(sys.argv[1]), Path(sys.argv[2])
logs = out / "logs"


def text(name):
    path = logs / f"{name}.log"
    return path.read_text(errors="replace") if path.is_file() else ""


lines = []
tests = [l for l in text("gpu-tests").splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", l)]
if tests:
    lines.append("gpu tests: " + tests[-1].strip("= "))
bench = out / "bench_cuda.json"
if bench.is_file():
    report = json.loads(bench.read_text())
    lines.append(f"bench on {report['machine'].get('gpu')} ({report['device']}):")
    for r in report["results"]:
        used = r.get("renderer") or {}
        parts = r["parts_ms"]
        lines.append(f"  {r['size']}^2 {r.get('framing') or '-':7} head x{used.get('head_scale', '-')} "
                     f"{used.get('precision', '-')}: {r['fps']:.1f} FPS (min..max {r['fps_min']:.1f}.."
                     f"{r['fps_max']:.1f} over {r['repeats']}), p95 {r['frame_ms_p95']:.2f} ms, "
                     f"render {parts['render']['mean']:.2f} ms, present {parts['present']['mean']:.2f} ms")
        lines.append(f"      upload path: {r['upload']}" + (f" (fell back: {r['upload_fallback']})"
                                                           if r.get("upload_fallback") else ""))
    for render in report.get("nerf_render") or ():
        for size, entry in render["sizes"].items():
            lines.append(f"  renderer alone {size}^2 head_scale {render['head_scale']}: {entry['fps']:.1f} FPS")
    kernels = report.get("nerf_kernels")
    if kernels:
        lines.append(f"  march+composite {kernels['size']}^2: {kernels['march_composite']['median_ms']:.2f} ms")
train = text("train").replace("\r", "\n")
if train:
    reached = {}
    for stage, done, total in re.findall(r"nerf (body|head|lips):\s*\d+%.*?\|\s*(\d+)/(\d+)", train):
        reached[stage] = f"{done}/{total}"
    lines.append("train (gpu preset, time-limited): steps " +
                 (", ".join(f"{s} {n}" for s, n in reached.items()) or "not found in the log"))
    lines.append("  MLPs: " + ("tiny-cuda-nn (FullyFusedMLP)" if "FullyFusedMLP" in train else "torch layers"))
    log = work / "avatar" / "nerf_log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    scored = [r for r in records if r.get("val_psnr") is not None]
    if scored:
        last = scored[-1]
        lines.append(f"  validation PSNR {last['val_psnr']:.1f} dB after {last['stage']} step {last['step']}")
tcnn = text("tcnn").strip().splitlines()
if tcnn:
    lines.append("tcnn: " + tcnn[-1])
print("\n".join(lines))
EOF
)

{
    echo "gpu_check.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(elapsed) s of a ${BUDGET_S} s budget"
    echo "checkout $(git rev-parse --short HEAD 2>/dev/null || echo '?'); logs in $LOGS"
    printf '%-11s %-9s %6s  %s\n' stage status time "last line of its log"
    printf '%s\n' "${ROWS[@]}"
    for note in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $note"; done
    echo
    echo "$FIGURES"
} | tee "$SUMMARY"
echo "summary written to $SUMMARY"
rm -rf "$WORK"
failed=0
for name in "${!STATUS[@]}"; do [[ ${STATUS[$name]} == ok ]] || failed=1; done
exit $failed
