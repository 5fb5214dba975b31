"""Concierge: a kiosk that listens to visitors and answers their questions aloud from a FAQ.

What it does: the avatar in AVATAR_DIR (or --avatar DIR, or $SYNCANIM_AVATAR) waits, listening. When a visitor
speaks, what they say is recognised offline (Whisper tiny.en through CTranslate2), matched against the questions of
the FAQ (`--faq FILE`: a JSON list of {"question": ..., "answer": ..., "alternatives": [...]}; the bundled
scenes/concierge_faq.json by default) and the matching answer is spoken with the engine's voice (Piper; --speech-voice),
each sentence captioned. A question it cannot match gets "sorry, I did not catch that"; someone who starts talking
after a long quiet is greeted first; a visitor who talks over the avatar stops it (barge-in), while the avatar's own
voice leaking into the microphone never does. What was heard shows at the top of the frame.

A language model can answer what the FAQ does not cover, over any OpenAI-compatible HTTP endpoint (a local llama.cpp
or vLLM server, or a hosted one). It is off unless $SYNCANIM_LLM_URL is set:
    SYNCANIM_LLM_URL=http://127.0.0.1:8080/v1 SYNCANIM_LLM_MODEL=my-model syncanim run scenes/concierge.py --listen
($SYNCANIM_LLM_KEY holds an API key where the endpoint wants one). The FAQ goes to the model as context; its answer
is kept to a sentence or two; if it fails or is slow (8 s), the visitor hears the FAQ's fallback.

Run (a microphone, or a recording standing in for one):
    syncanim run scenes/concierge.py --listen --kiosk
    syncanim run scenes/concierge.py --headless --listen-file question.wav --seconds 12 --out answer.mp4
It also opens the kiosk's control socket (127.0.0.1:7878, token printed at start), so `say`, `cue` and speech
streams work as in scenes/kiosk.py.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.app import Diagnostics
from engine.scene.answers import Concierge, LanguageModel, load_faq
from engine.scene.api import Scene, avatar_folder, open_control
from engine.scene.loader import SceneArgs, SceneError
from engine.scene.protocol import DEFAULT_PORT
from engine.time import MasterClock

REPO = Path(__file__).resolve().parents[1]
AVATAR_DIR = REPO / "assets" / "avatar"
FAQ_FILE = Path(__file__).with_name("concierge_faq.json")
QUIET_S = 60.0
"""Someone who starts talking after this long without a word from anyone is greeted before being answered."""
WELCOME = "Hello, and welcome!"
HEARD_SLOT = "heard"
"""The caption slot at the top of the frame that shows what was heard."""
_MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="concierge-model")


def build(app) -> None:
    scene = Scene(app)
    scene.background(color=(0.07, 0.08, 0.1))
    diagnostics = app.resource(Diagnostics)
    if open_control(app, f"127.0.0.1:{DEFAULT_PORT}") is None:
        diagnostics.warn("concierge without a control socket (--control None): it answers speech only")
    try:
        scene.avatar(avatar_folder(app, AVATAR_DIR), name="concierge", mode="one-shot", framing="default")
    except SceneError as error:
        diagnostics.warn(f"concierge without an avatar: {error} (or pass --avatar AVATAR_DIR)")
    args = app.resource(SceneArgs)
    faq = load_faq(args.faq or FAQ_FILE)
    concierge = Concierge(faq, model=LanguageModel.from_env())
    scene.speech(preload=True, prepare=[WELCOME, concierge.greeting, concierge.fallback, *(e.answer for e in faq)])
    scene.listen(barge_in=True)
    scene.script(lambda d: converse(d, concierge), name="converse")


def converse(d, concierge: Concierge):
    """Answer each thing heard; greet first after a long quiet."""
    last_word_s = -math.inf
    while True:
        heard = yield d.on_heard()
        greet = heard.start_s - last_word_s >= QUIET_S
        yield d.caption(f"“{heard.text}”", slot=HEARD_SLOT, for_s=6.0, anchor="top")
        reply = yield from answer(d, concierge, heard.text)
        text = reply.text if not greet or reply.source == "greeting" else f"{WELCOME} {reply.text}"
        spoken = yield d.say(text, interrupt=True, wait=False)
        yield d.until(lambda: spoken.done or spoken.cancelled)
        last_word_s = d.now


def answer(d, concierge: Concierge, text: str):
    """The reply to `text`: from the FAQ at once, or from the language model on a thread the frame never waits for
    (on a stepped clock the frame does wait, so a headless recording is the same every run)."""
    if concierge.model is None or d.world.resource(MasterClock).source == "stepped":
        return concierge.reply(text)
    pending = _MODEL_THREAD.submit(concierge.reply, text)
    yield d.until(pending.done)
    return pending.result()
