"""The concierge's answers: an FAQ from JSON, offline retrieval for spoken questions, an optional language model.

    faq = load_faq("scenes/concierge_faq.json")
    concierge = Concierge(faq, model=LanguageModel.from_env())   # a model only when $SYNCANIM_LLM_URL is set
    reply = concierge.reply("um where can i find the toilets")    # Reply(text, source='faq', entry=...)

Retrieval (FaqIndex) reads questions the way a speech recogniser writes them: any case, with or without
punctuation, with filler words and misheard words. Every text becomes terms: lower-case ASCII words without stop and
filler words, lightly stemmed (plural, -ing, -ed) and spelt roughly as they sound ('photos' and 'fotos' meet), with
two neighbours joined or one word split where that gives the FAQ's own spelling ('wi fi' -> 'wifi', 'carpark' ->
'car park'). Two TF-IDF cosines compare the question with each phrasing of an entry (its question and alternatives)
and, with less weight, with its answer: one over the terms, one over their character trigrams, which survives
misrecognised words. Words the FAQ never uses weigh extra, so questions about other things score low. An answer is
given only when the best entry scores at least THRESHOLD and beats the runner-up by MARGIN; both were measured on
paraphrases of every entry and on unrelated questions (tests/scene/test_answers.py holds them).
"""
from __future__ import annotations

import http.client
import json
import logging
import math
import os
import re
import unicodedata
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_FAQ_BYTES = 1_000_000
MAX_ENTRIES = 500
MAX_ALTERNATIVES = 30
MAX_QUESTION_CHARS = 300
MAX_ANSWER_CHARS = 1000
"""An answer is spoken aloud: a thousand characters is already about a minute of speech."""

THRESHOLD = 0.30
"""The lowest score an FAQ answer is given for; below it the question goes to the language model or the fallback."""
MARGIN = 0.05
"""How much the best entry must beat the runner-up by: two close entries mean the question is ambiguous."""
WORD_WEIGHT = 0.6
"""The share of the term cosine in a score; the rest is the character trigram cosine."""
ANSWER_WEIGHT = 0.2
"""The share of the answer text in an entry's score; the rest is its best-matching phrasing."""
UNSEEN_FACTOR = 3.0
"""A term the FAQ never uses weighs this many times the rarest known term: it is about something else."""
FORM_WEIGHT = 0.5
"""Question words and a few others count this much of their weight: they shape a question ('who are you',
"what's on") but do not name its topic."""

GREETING = "Hello! I am the concierge. Ask me about opening hours, tickets, the cafe, or where to find things."
FALLBACK = "Sorry, I did not catch that. Could you ask again?"

STOP_WORDS = frozenset("""
a an the and or but of to in at for from with by about into as if then than so too very just also
i im ive id me my mine we us our your youre it its is are am was were be been being does did dont doesnt
isnt arent wasnt werent didnt cant couldnt wont wouldnt havent hasnt
can could would will shall should may might must have has had there theres here this that these those some any
um uh er erm hmm mm ah oh eh well like okay ok yeah yes no please thanks thank excuse sorry hello hi hey
tell know wonder want wanted need get got find let say actually really maybe think use go going
somewhere anywhere something anything around
""".split())
"""Words that carry no topic: articles, pronouns, auxiliaries, politeness and the fillers of spoken questions."""
GREETING_WORDS = frozenset("hello hi hey good morning afternoon evening there".split())
"""What a visitor says only of these (and stop words) is a greeting, answered with the concierge's greeting."""
_SOUNDS = (("ph", "f"), ("wh", "w"), ("ck", "k"), ("q", "k"), ("z", "s"), ("y", "i"))
"""Spellings of roughly the same sound, folded together (and doubled letters made single) in every term."""


class FaqError(ValueError):
    """An FAQ file cannot be used; the message names the file, the entry and the fix."""


class LanguageModelError(RuntimeError):
    """The language model gave no answer; the message names the URL and the problem."""


@dataclass(frozen=True)
class FaqEntry:
    """One question the concierge can answer, with other ways people ask it."""

    question: str
    answer: str
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    """The FAQ entry a question matched, its score in [0, 1] and the score of the next-best entry."""

    entry: FaqEntry
    score: float
    runner_up: float


@dataclass(frozen=True)
class Reply:
    """What the concierge says: `source` is 'faq', 'llm', 'greeting' or 'fallback'; `error` says why the language
    model could not answer (for a notice) when it fell back."""

    text: str
    source: str
    entry: FaqEntry | None = None
    error: str | None = None


# --- loading -------------------------------------------------------------------------------------------------------

FAQ_FIX = 'the file is a JSON list of {"question": "...", "answer": "...", "alternatives": ["...", ...]} objects'


def load_faq(path: str | Path) -> list[FaqEntry]:
    """The entries of the FAQ JSON file at `path`, or a FaqError naming the file, the entry and the fix."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FaqError(f"FAQ file {path} does not exist or is not a file; "
                       "pass the path of a JSON file like scenes/concierge_faq.json")
    if path.stat().st_size > MAX_FAQ_BYTES:
        raise FaqError(f"FAQ file {path} is {path.stat().st_size} bytes, more than {MAX_FAQ_BYTES}; "
                       "split it or shorten the answers")
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise FaqError(f"FAQ file {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                       "save it as UTF-8") from None
    except json.JSONDecodeError as error:
        raise FaqError(f"FAQ file {path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}; "
                       f"{FAQ_FIX}") from None
    if not isinstance(data, list) or not data:
        what = "an empty list" if data == [] else f"a JSON {type(data).__name__}"
        raise FaqError(f"FAQ file {path} holds {what}; {FAQ_FIX}, at least one")
    if len(data) > MAX_ENTRIES:
        raise FaqError(f"FAQ file {path} has {len(data)} entries, more than {MAX_ENTRIES}; keep the ones visitors ask")
    entries = [_entry(path, index, item) for index, item in enumerate(data)]
    _check_distinct(path, entries)
    return entries


def _entry(path: Path, index: int, item: object) -> FaqEntry:
    where = f"FAQ file {path}, entry {index}"
    if not isinstance(item, dict):
        raise FaqError(f"{where} is a JSON {type(item).__name__}, not an object; {FAQ_FIX}")
    question = _text(where, item, "question", MAX_QUESTION_CHARS)
    answer = _text(where, item, "answer", MAX_ANSWER_CHARS)
    alternatives = item.get("alternatives", [])
    if not isinstance(alternatives, list) or len(alternatives) > MAX_ALTERNATIVES:
        raise FaqError(f"{where}: 'alternatives' must be a list of at most {MAX_ALTERNATIVES} strings "
                       "(other ways to ask the question)")
    phrasings = {f"alternatives[{i}]": text for i, text in enumerate(alternatives)}
    return FaqEntry(question, answer, tuple(_text(where, phrasings, key, MAX_QUESTION_CHARS) for key in phrasings))


def _text(where: str, item: Mapping, key: str, limit: int) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        got = "is missing" if value is None else f"is a {type(value).__name__}"
        raise FaqError(f"{where}: '{key}' {got}; give it as a string ({FAQ_FIX})")
    value = " ".join(value.split())
    if not value:
        raise FaqError(f"{where}: '{key}' is empty; write the text, or remove the entry")
    if not _content_words(value) and key != "answer":
        raise FaqError(f"{where}: '{key}' {value!r} has only filler and stop words, so no question can match it; "
                       "name the topic (e.g. 'where are the toilets')")
    if len(value) > limit:
        raise FaqError(f"{where}: '{key}' has {len(value)} characters, more than {limit}; shorten it "
                       "(it is spoken aloud or matched against speech)")
    return value


def _check_distinct(path: Path, entries: Sequence[FaqEntry]) -> None:
    """Two entries with the same question can never win by a margin, so one of them would never be given."""
    seen: dict[tuple[str, ...], int] = {}
    for index, entry in enumerate(entries):
        for phrasing in (entry.question, *entry.alternatives):
            key = tuple(term(word) for word in _content_words(phrasing))
            if seen.setdefault(key, index) != index:
                raise FaqError(f"FAQ file {path}: entries {seen[key]} and {index} both ask {phrasing!r}; "
                               "merge them or reword one")


# --- retrieval -----------------------------------------------------------------------------------------------------

def words(text: str) -> list[str]:
    """Lower-case ASCII words of `text`: accents, apostrophes ("where's" -> "where") and punctuation dropped."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'")).encode("ascii", "ignore").decode().lower()
    return re.findall(r"[a-z0-9]+", re.sub(r"'s\b|'", "", text))


def stem(word: str) -> str:
    """A light suffix stripper: 'toilets', 'opening', 'closed' and 'closes' meet 'toilet', 'open' and 'close'."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("s"):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    word = word[:-1] if word.endswith("e") and len(word) > 3 else word
    return word[:-1] if len(word) > 3 and word[-1] == word[-2] else word


def term(word: str) -> str:
    """The form words are compared in: stemmed, then spelt roughly as it sounds ('photos' and 'fotos' meet)."""
    word = stem(word)
    for spelt, sound in _SOUNDS:
        word = word.replace(spelt, sound)
    return re.sub(r"(.)\1+", r"\1", word)


FORM_TERMS = frozenset(term(word) for word in "who what where when which why how you do on".split())


def _content_words(text: str) -> list[str]:
    return [word for word in words(text) if word not in STOP_WORDS]


def word_features(text: str, known: Set[str] = frozenset()) -> list[str]:
    """The terms of the content words of `text`, respelt as `known` terms (the FAQ's) where joining two neighbours
    ('wi fi' -> 'wifi') or splitting one ('carpark' -> 'car park') gives known terms and the word alone does not."""
    content, features = _content_words(text), []
    while content:
        word = content.pop(0)
        if content and term(word) not in known and term(word + content[0]) in known:
            features.append(term(word + content.pop(0)))
        elif term(word) in known:
            features.append(term(word))
        else:
            features += _split(word, known) or [term(word)]
    return features


def _split(word: str, known: Set[str]) -> list[str]:
    for cut in range(2, len(word) - 1):
        parts = [term(word[:cut]), term(word[cut:])]
        if all(part in known for part in parts):
            return parts
    return []


def char_features(features: Sequence[str]) -> list[str]:
    """Character trigrams of the terms, '#' marking where a word starts and ends."""
    grams = []
    for feature in features:
        feature = f"#{feature}#"
        grams += [feature[i:i + 3] for i in range(len(feature) - 2)]
    return grams


class _TfIdf:
    """L2-normalised TF-IDF vectors of feature lists (rows), kept as an inverted index: feature -> rows, weights.
    Document frequency counts entries (`groups`), so the words an entry repeats across its phrasings stay rare."""

    def __init__(self, rows: Sequence[Sequence[str]], groups: Sequence[int]):
        per_group: dict[int, set[str]] = defaultdict(set)
        for features, group in zip(rows, groups):
            per_group[group].update(features)
        n = len(per_group)
        df = Counter(feature for features in per_group.values() for feature in features)
        self.unseen_idf = UNSEEN_FACTOR * (math.log(1 + n) + 1)
        self.idf = {feature: math.log((1 + n) / (1 + count)) + 1 for feature, count in df.items()}
        postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for row, features in enumerate(rows):
            for feature, weight in self.vector(features).items():
                postings[feature].append((row, weight))
        self.postings = {feature: (np.array([r for r, _ in pairs]), np.array([w for _, w in pairs]))
                         for feature, pairs in postings.items()}
        self.size = len(rows)

    def vector(self, features: Sequence[str]) -> dict[str, float]:
        weights = {f: count * self.idf.get(f, self.unseen_idf) * (FORM_WEIGHT if f in FORM_TERMS else 1.0)
                   for f, count in Counter(features).items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {f: w / norm for f, w in weights.items()}

    def cosines(self, features: Sequence[str]) -> np.ndarray:
        """(rows,) cosine of the query's vector with every row's."""
        out = np.zeros(self.size)
        for feature, weight in self.vector(features).items():
            if feature in self.postings:
                rows, weights = self.postings[feature]
                out[rows] += weight * weights
        return out


class FaqIndex:
    """Offline retrieval of FAQ entries for spoken questions (see the module docstring for how it scores)."""

    def __init__(self, entries: Sequence[FaqEntry], threshold: float = THRESHOLD, margin: float = MARGIN):
        if not entries:
            raise ValueError("FaqIndex needs at least one FAQ entry")
        self.entries = list(entries)
        self.threshold, self.margin = threshold, margin
        texts, owners, is_answer = [], [], []
        for index, entry in enumerate(self.entries):
            phrasings = [entry.question, *entry.alternatives]
            texts += [*phrasings, entry.answer]
            owners += [index] * (len(phrasings) + 1)
            is_answer += [False] * len(phrasings) + [True]
        self.owners, self.is_answer = np.array(owners), np.array(is_answer)
        self.known = {term(word) for text in texts for word in _content_words(text)}
        rows = [word_features(text, self.known) for text in texts]
        self.words = _TfIdf(rows, owners)
        self.chars = _TfIdf([char_features(row) for row in rows], owners)

    def scores(self, text: str) -> np.ndarray:
        """(entries,) score in [0, 1] of every entry for the question `text`."""
        features = word_features(text, self.known)
        similarity = WORD_WEIGHT * self.words.cosines(features) \
            + (1 - WORD_WEIGHT) * self.chars.cosines(char_features(features))
        phrasing = np.zeros(len(self.entries))
        np.maximum.at(phrasing, self.owners[~self.is_answer], similarity[~self.is_answer])
        answer = np.zeros(len(self.entries))
        answer[self.owners[self.is_answer]] = similarity[self.is_answer]
        return np.clip((1 - ANSWER_WEIGHT) * phrasing + ANSWER_WEIGHT * answer, 0.0, 1.0)

    def best(self, text: str) -> Match:
        """The best-scoring entry for `text`, however low its score."""
        scores = self.scores(text)
        order = np.argsort(-scores, kind="stable")
        runner_up = float(scores[order[1]]) if len(order) > 1 else 0.0
        return Match(self.entries[order[0]], float(scores[order[0]]), runner_up)

    def answer(self, text: str) -> Match | None:
        """The entry that answers `text`, or None when no entry is confidently the one (too low, or too close)."""
        match = self.best(text)
        if match.score < self.threshold or match.score - match.runner_up < self.margin:
            return None
        return match


# --- language model ------------------------------------------------------------------------------------------------

URL_ENV, MODEL_ENV, KEY_ENV = "SYNCANIM_LLM_URL", "SYNCANIM_LLM_MODEL", "SYNCANIM_LLM_KEY"
MAX_RESPONSE_BYTES = 1_000_000
MAX_PROMPT_FAQ_CHARS = 12_000
"""The FAQ context stops after this many characters so a large FAQ still fits a small model's context window."""

SYSTEM_PROMPT = """You are the voice of a concierge kiosk. Visitors speak to you and hear your answer read aloud.
Answer in one or two short spoken sentences: plain words, no lists, no markdown, no emoji.
Questions come from speech recognition and may contain misheard words; answer what the visitor most likely meant.
Use the facts below. If they do not cover the question, say briefly that you do not know and suggest asking the staff.

Facts (questions and answers):
"""


def faq_prompt(entries: Sequence[FaqEntry]) -> str:
    """The system prompt: how to answer, then the FAQ as facts (as many entries as MAX_PROMPT_FAQ_CHARS allows)."""
    facts, size = [], 0
    for entry in entries:
        fact = f"Q: {entry.question}\nA: {entry.answer}\n"
        size += len(fact)
        if size > MAX_PROMPT_FAQ_CHARS:
            break
        facts.append(fact)
    return SYSTEM_PROMPT + "".join(facts)


@dataclass(frozen=True)
class LanguageModel:
    """A chat model behind any OpenAI-compatible endpoint (OpenAI, llama.cpp server, Ollama, vLLM, LM Studio).
    Calls block for up to `timeout_s` per network step: call them off the frame loop."""

    base_url: str
    """The API root, e.g. http://127.0.0.1:8080/v1; requests go to BASE_URL/chat/completions."""
    model: str = "default"
    """The model name the server knows (servers that serve one model ignore it)."""
    timeout_s: float = 8.0
    """Seconds to wait for the connection and for each read of the answer."""
    max_tokens: int = 80
    """The longest answer in tokens; two short sentences fit."""
    temperature: float = 0.3
    """Low: the answers are facts, not stories."""
    key_env: str = KEY_ENV
    """The environment variable holding the API key (sent as a Bearer token when set); the key is never stored."""

    def __post_init__(self):
        if not re.match(r"https?://[^/\s]+", self.base_url):
            raise LanguageModelError(f"language model URL {self.base_url!r} is not http(s)://HOST[:PORT][/PATH]; "
                                     f"set ${URL_ENV} like http://127.0.0.1:8080/v1")
        if not self.timeout_s > 0 or self.max_tokens < 1:
            raise LanguageModelError(f"language model at {self.base_url}: timeout_s must be > 0 and max_tokens >= 1, "
                                     f"got {self.timeout_s} and {self.max_tokens}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LanguageModel | None:
        """The model named by $SYNCANIM_LLM_URL (and $SYNCANIM_LLM_MODEL), or None when no URL is set: off."""
        url = environ.get(URL_ENV, "").strip()
        return cls(url, model=environ.get(MODEL_ENV, "").strip() or "default") if url else None

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def ask(self, question: str, entries: Sequence[FaqEntry] = ()) -> str:
        """A short spoken answer to `question`, with the FAQ `entries` as the facts to use."""
        return self.chat([{"role": "system", "content": faq_prompt(entries)}, {"role": "user", "content": question}])

    def chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The text of the model's first choice for `messages`, or a LanguageModelError naming the URL and why."""
        body = {"model": self.model, "messages": [dict(m) for m in messages],
                "max_tokens": self.max_tokens, "temperature": self.temperature}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if os.environ.get(self.key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.key_env]}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        return self._content(self._send(request))

    def _send(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as error:
            detail = _snippet(error.read(2000))
            hint = f"; set ${self.key_env} to the API key" if error.code in (401, 403) else ""
            raise self._error(f"HTTP {error.code} {error.reason}" + (f": {detail}" if detail else "") + hint) \
                from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise self._timeout() from None
            raise self._error(f"cannot connect ({error.reason}); is the server running, and is ${URL_ENV} right?") \
                from None
        except TimeoutError:
            raise self._timeout() from None
        except (OSError, http.client.HTTPException) as error:  # dropped mid-answer, or not HTTP at all
            raise self._error(f"the connection failed ({type(error).__name__}: {error})") from None

    def _content(self, raw: bytes) -> str:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise self._error(f"the answer is not JSON: {_snippet(raw)!r}") from None
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            problem = data.get("error") if isinstance(data, dict) else None
            raise self._error(f"the answer has no choices[0].message.content ({_snippet(json.dumps(problem or data))})"
                              "; is it an OpenAI-compatible chat completions endpoint?") from None
        if not isinstance(text, str) or not text.strip():
            raise self._error("the model answered with no text")
        return " ".join(text.split())

    def _timeout(self) -> LanguageModelError:
        return self._error(f"no answer within {self.timeout_s:g} s; use a smaller model or a longer timeout")

    def _error(self, problem: str) -> LanguageModelError:
        return LanguageModelError(f"language model at {self.url}: {problem}")


def _snippet(raw: bytes | str, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


# --- the concierge -------------------------------------------------------------------------------------------------

class Concierge:
    """Answers a visitor's spoken question: from the FAQ when it matches, else from the language model when one is
    configured, else with the fallback sentence. `reply` blocks while the model answers: call it off the frame loop."""

    def __init__(self, entries: Sequence[FaqEntry], model: LanguageModel | None = None,
                 greeting: str = GREETING, fallback: str = FALLBACK):
        self.entries = list(entries)
        self.index = FaqIndex(self.entries)
        self.model, self.greeting, self.fallback = model, greeting, fallback

    def reply(self, heard: str) -> Reply:
        """What to say to the recognised text `heard`."""
        said = set(words(heard))
        if said and said <= STOP_WORDS | GREETING_WORDS and said & GREETING_WORDS:
            return Reply(self.greeting, "greeting")
        if not said - STOP_WORDS:  # silence, noise or only filler words
            return Reply(self.fallback, "fallback")
        match = self.index.answer(heard)
        if match is not None:
            return Reply(match.entry.answer, "faq", match.entry)
        if self.model is None:
            return Reply(self.fallback, "fallback")
        try:
            return Reply(self.model.ask(heard, self.entries), "llm")
        except LanguageModelError as error:
            log.warning("%s", error)
            return Reply(self.fallback, "fallback", error=str(error))
