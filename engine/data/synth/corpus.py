"""Sentences for synthetic speech: a built-in presenter corpus and loading user text files."""
from __future__ import annotations

import re
from pathlib import Path

from engine.data.synth.config import SynthError

# Written for this project: presenter-style English of varied length, sound mix and rhythm, plus short replies.
BUILTIN_SENTENCES = (
    "Good morning, and welcome to the weekly update from our team.",
    "Today I want to walk you through three changes that matter.",
    "The first one is simple: we moved the meeting to Thursday.",
    "Please bring your questions, because we will have time at the end.",
    "Our numbers look better than they did last quarter.",
    "Sales in the northern region grew by almost twelve percent.",
    "That is the strongest result we have seen in two years.",
    "Of course, not everything went according to plan.",
    "The warehouse in Bristol was closed for a week after the storm.",
    "We lost some orders, but most customers were patient with us.",
    "I would like to thank everyone who worked through the weekend.",
    "Now let me show you what the new checkout page looks like.",
    "You can pay with a card, a phone, or a voucher.",
    "Would you believe that the old page needed seven clicks?",
    "The new one needs only two, and it loads much faster.",
    "Here is a quick look at the weather for the coming days.",
    "Expect light rain on Monday, then sunshine and a cool breeze.",
    "Temperatures will reach about nineteen degrees by Wednesday afternoon.",
    "If you are travelling, check the timetable before you leave.",
    "Several trains to the airport are replaced by buses this week.",
    "Next, a few words about the library on Maple Street.",
    "It reopens on Saturday with a larger reading room for children.",
    "Volunteers are still needed to move boxes of books upstairs.",
    "My favourite part of the job is meeting people like you.",
    "Every week somebody surprises me with a brilliant idea.",
    "Last month, a student from Leeds fixed a problem we had ignored for years.",
    "So keep those messages coming, we really do read them.",
    "Let us move on to the question of the budget.",
    "We plan to spend less on travel and more on training.",
    "Nobody enjoys cutting costs, but this choice protects jobs.",
    "Should we worry about the new rules from the city council?",
    "Probably not, although the paperwork will take some time.",
    "Our lawyers believe the changes are fair and reasonable.",
    "Before I finish, a reminder about the summer picnic.",
    "It takes place by the river on the first Sunday of July.",
    "Bring food to share, a blanket, and maybe a frisbee.",
    "There will be music, games for kids, and a cake competition.",
    "Last year the winning cake had five layers of chocolate.",
    "Honestly, I am still thinking about that cake.",
    "Thank you all for listening, and see you next week.",
    "Imagine a small village at the foot of a quiet mountain.",
    "Every morning the baker opens his shop before sunrise.",
    "The smell of fresh bread drifts along the narrow streets.",
    "Children stop by on their way to school to buy warm rolls.",
    "One day a stranger arrived with a map and a heavy bag.",
    "He asked whether anyone had seen an old blue bicycle.",
    "The baker laughed, because that bicycle was leaning against his wall.",
    "Science is mostly about asking good questions.",
    "Why does the sky look blue, but sunsets look orange and red?",
    "Light scatters in the air, and short waves scatter the most.",
    "When the sun is low, its light passes through much more air.",
    "By the time it reaches us, most of the blue has been scattered away.",
    "Yes, exactly.",
    "Okay.",
    "Thank you.",
    "Right, let us continue.",
    "Well, that depends.",
    "Good question.",
    "I agree.",
    "Absolutely, why not?",
)

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
_MAX_WORDS = 18


def split_sentences(text: str) -> list[str]:
    """Split text into sentences; sentences longer than ~18 words are cut at commas or every 18 words."""
    text = " ".join(text.split())
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not any(char.isalnum() for char in sentence):
            continue
        pieces.extend(_shorten(sentence))
    return pieces


def _shorten(sentence: str) -> list[str]:
    words = sentence.split()
    if len(words) <= _MAX_WORDS:
        return [sentence]
    clauses = [clause.strip() for clause in re.split(r"(?<=,)\s+", sentence) if clause.strip()]
    if len(clauses) > 1 and all(len(clause.split()) <= _MAX_WORDS for clause in clauses):
        return clauses
    return [" ".join(words[i:i + _MAX_WORDS]) for i in range(0, len(words), _MAX_WORDS)]


def load_sentences(path: Path | None) -> list[str]:
    """Sentences of a UTF-8 text file, or the built-in corpus when `path` is None."""
    if path is None:
        return list(BUILTIN_SENTENCES)
    path = Path(path)
    if not path.is_file():
        raise SynthError(f"--text {path}: no such file; pass a UTF-8 text file with English sentences")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SynthError(f"--text {path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    sentences = split_sentences(text)
    if not sentences:
        raise SynthError(f"--text {path}: contains no words; put at least one English sentence in it")
    return sentences
