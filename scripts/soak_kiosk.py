"""Soak the kiosk: a headless real-time `syncanim run scenes/kiosk.py` fed espeak-ng speech over its control socket
every few seconds (random texts, voices and intervals, sometimes interrupting, sometimes asking `status`), its memory
sampled every 5 s, and audio/video drift measured in the recording at the end (see engine/eval/soak.py).

    python scripts/soak_kiosk.py --minutes 30 --out-dir out/soak30
    python scripts/soak_kiosk.py --minutes 5 --avatar /tmp/soakav --size 128x128 --out-dir out/soak_avatar
    python scripts/soak_kiosk.py --out-dir out/soak30 --analyse-only     # measure a finished soak again

Writes OUT_DIR/soak.json (every sample, message and marker), OUT_DIR/soak.png (memory over time with the warm-up
marked, and the marker offsets), OUT_DIR/kiosk.mp4 and OUT_DIR/engine.log; prints the memory growth after warm-up
and the drift, the frame times and the fuzzing's count (--fuzz). Needs espeak-ng (apt install espeak-ng). With an
avatar the engine renders all the time: other work on the machine shows in its frame times.
"""
from __future__ import annotations

import sys
from pathlib import Path

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from engine.eval.soak import SoakOptions, analyse_again, run_soak, summary_lines  # noqa: E402


def main(options: SoakOptions) -> int:
    report = analyse_again(options.out_dir) if options.analyse_only else run_soak(options)
    for line in summary_lines(report):
        print(line, flush=True)
    print(f"wrote {options.out_dir / 'soak.json'} and {options.out_dir / 'soak.png'}")
    return 0 if report["engine_rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(tyro.cli(SoakOptions)))
