"""The concierge's answers: loading an FAQ (and every way a file can be wrong), retrieval of spoken questions
(paraphrases, unrelated questions, misrecognised words), the language model client against a local HTTP server, and
the Concierge that combines them."""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from scene_helpers import completion

from engine.scene import answers
from engine.scene.answers import (
    FALLBACK, GREETING, Concierge, FaqEntry, FaqError, FaqIndex, LanguageModel, LanguageModelError, load_faq,
)

BUNDLED = Path(__file__).parents[2] / "scenes" / "concierge_faq.json"

# How visitors ask, written as Whisper tiny.en transcribes speech; keyed by the bundled entry that answers. The
# threshold and margin in engine/scene/answers.py were measured on these and on UNRELATED.
PARAPHRASES = {
    "What are your opening hours?": [
        "when do you open in the morning", "what time do you close", "um are you open on saturday",
        "so what are the opening times", "how late are you open tonight", "is the museum open on mondays",
        "What time do you open?", "so um when do you close today", "are you open on sunday", "what are your hours",
        "is the museum open late on thursday", "when do you open tomorrow", "how long are you open today",
        "what are the opening hours on the weekend",
    ],
    "How much does a ticket cost?": [
        "how much is a ticket", "do i have to pay to get in", "how much does it cost", "is there a student discount",
        "where can i buy a ticket", "what's the entrance fee", "how much are tickets", "is it free to get in",
        "how much does it cost for a child", "Do you have a discount for seniors?", "can i buy tickets here",
        "how much is entry", "what does a ticket cost for an adult", "are children free",
    ],
    "Is there free wifi?": [
        "is there wi fi here", "what's the wifi password", "can i get on the internet", "do you have wi-fi",
        "is there why fi", "how do i connect to the wireless", "is there wifi", "what's the password for the wi-fi",
        "how do i get online", "do you have free wi fi here", "is there wifey", "can i use the wifi",
        "is there an internet connection", "what's the wi-fi network called",
    ],
    "Where are the toilets?": [
        "where can i find the toilets", "where's the toilet", "um where is the bathroom please",
        "i need the restroom", "where are the loos", "is there a toilet", "where is the toilet",
        "Where's the bathroom?", "um excuse me where are the restrooms", "where are the toy lets",
        "where can i change my baby", "where are the mens toilets", "is there a disabled toilet",
        "where's the ladies",
    ],
    "Is there a cafe?": [
        "where is the cafe", "can i get a coffee somewhere", "is there somewhere to eat", "where can i have lunch",
        "is there a coffee shop", "when does the cafe close", "is there a caffe", "where can i get a cup of coffee",
        "Is there a place to eat here?", "what time does the cafe close", "where's the restaurant",
        "where's the cafe", "can i get something to drink", "does the cafe do lunch",
    ],
    "Where are the lifts?": [
        "where is the lift", "is there an elevator", "how do i get upstairs", "where are the stairs",
        "how do i get to the second floor", "where's the elevator", "where are the elevators", "is there a lift",
        "how do i get to the third floor", "where are the lifts please", "where's the staircase", "where's the lift",
        "how do i get to the first floor", "is there a lift to the top floor",
    ],
    "Where can I park my car?": [
        "where can i park", "is there parking", "where is the car park", "can i park my car here",
        "where's the nearest parking lot", "do you have a parking garage", "is there a car park nearby",
        "can i park here", "where do i park", "is there disabled parking", "where is the carpark",
        "where should i park my car", "is there any parking nearby", "where's the closest car park",
    ],
    "I lost something. Where is the lost and found?": [
        "i lost my phone", "i think i left my umbrella somewhere", "where is the lost and found",
        "has anyone found a wallet", "i lost my keys", "where is lost property", "i've lost my bag",
        "has anybody handed in a wallet", "lost and found", "I lost my glasses, has anyone found them?",
        "where is the lost property office", "i've lost my phone", "did anyone hand in a scarf",
        "i left my umbrella here yesterday",
    ],
    "Is the museum wheelchair accessible?": [
        "is there wheelchair access", "can i borrow a wheelchair", "is it accessible",
        "i use a wheelchair can i get around", "is there step free access",
        "is the museum accessible for disabled people", "is the museum accessible", "do you have wheelchairs",
        "is there wheel chair access", "can i bring my assistance dog", "is there step-free access to all floors",
        "is there access for wheelchairs", "can i get a wheelchair here", "is everything step free",
    ],
    "Where can I leave my coat?": [
        "where can i leave my coat", "is there a cloakroom", "where are the lockers", "can i leave my bag",
        "where do i put my backpack", "is there a coat check", "where's the cloakroom",
        "can i leave my jacket somewhere", "do you have lockers", "where can i put my backpack",
        "is there a cloak room", "where's the coat room", "can i store my suitcase", "where do i leave my bags",
    ],
    "Can I take photos?": [
        "can i take pictures", "am i allowed to take photos", "is photography allowed", "can i film",
        "can i use my camera", "can i take a photo of the paintings", "can i take photographs", "are photos allowed",
        "am i allowed to film", "can i take a picture", "is flash photography allowed", "is it ok to take photos",
        "can i take photos with my phone", "am i allowed to use flash",
    ],
    "Are there guided tours?": [
        "are there guided tours", "when is the next tour", "do you have an audio guide", "can i book a group tour",
        "is there a tour in english", "when does the tour start", "do you have guided tours",
        "when does the next guided tour start", "can i get an audio guide", "is there a tour today",
        "how much is the audio guide", "what time is the guided tour", "do you do tours",
        "can i rent an audio guide",
    ],
    "What exhibitions are on at the moment?": [
        "what exhibitions are on", "what is there to see", "what's on at the moment",
        "what's the special exhibition", "is there a new exhibition", "what can i see here",
        "what exhibitions do you have", "what's the current exhibition", "what is there to see here", "what's on",
        "what's in the special exhibition", "what exhibition is on now", "what's showing at the moment",
        "tell me about the exhibition",
    ],
    "Is there a gift shop?": [
        "is there a gift shop", "where can i buy a souvenir", "do you sell postcards", "where's the shop",
        "can i buy a book about the museum", "is there a museum shop", "where is the gift shop",
        "do you have a shop", "can i buy postcards here", "where can i get souvenirs", "is there a bookshop",
        "where can i buy a gift", "is there a shop here", "do you sell books",
    ],
    "Who are you?": [
        "who are you", "what can you do", "are you a robot", "are you a real person", "how can you help me",
        "what are you", "who are you", "what are you", "are you a person", "what can you help me with",
        "are you a computer", "who am i talking to", "what do you do", "are you human",
    ],
}
UNRELATED = [
    "what is the capital of peru", "can you sing a song", "what's the weather like tomorrow", "tell me a joke",
    "how old are you", "who won the football last night", "what is two plus two", "where is the train station",
    "how do i get to the airport", "can you call me a taxi", "what's your favourite colour", "do you like dogs",
    "what time is it", "who painted the mona lisa", "how far is the moon", "can you recommend a hotel",
    "is there a pharmacy nearby", "where can i buy cigarettes", "what's the meaning of life", "can you speak french",
    "how do i reset my password", "what is the population of france", "play some music",
    "do you know any good restaurants in town", "can you help me with my homework", "where is the nearest bank",
    "what day is it today", "how do i make pancakes", "is it going to rain", "who is the president",
    "what's the capital of france", "sing me a song", "what's the time in new york", "how tall is mount everest",
    "who is the best footballer", "can you dance", "what's two times three", "where is the post office",
    "when is the next bus", "how much is a taxi to the airport", "do you have a girlfriend", "what's your name",
    "how do i cook rice", "who wrote hamlet", "will it be sunny tomorrow", "where can i buy a sim card",
    "is there a hospital near here", "how do i get to the beach", "what's the score", "can you order me a pizza",
    "what does your company do", "how many people live in london", "why is the sky blue", "can you speak spanish",
    "what's the best hotel in town", "where can i exchange money", "is there a cinema nearby", "tell me a story",
    "how old is the universe", "what's the news today", "what is the capital of peru", "can you sing a song",
    "how do i get to the train station", "what's the weather forecast", "who is your creator",
    "can you recommend a good book", "how much does a house cost", "what year is it", "where do you live",
    "what's your favourite food", "is the bank open today", "how do i fix my bike", "what's the best phone to buy",
    "can you translate something", "where is the nearest hotel", "how many legs does a spider have",
    "what's the exchange rate for dollars", "tell me something funny", "when was the city founded",
    "can you call the police",
]


@pytest.fixture(scope="module")
def faq() -> list[FaqEntry]:
    return load_faq(BUNDLED)


@pytest.fixture(scope="module")
def index(faq) -> FaqIndex:
    return FaqIndex(faq)


def entry_asking(faq, question: str) -> FaqEntry:
    (entry,) = [entry for entry in faq if entry.question == question]
    return entry


# --- loading -------------------------------------------------------------------------------------------------------

def test_the_bundled_faq_loads_with_short_spoken_answers(faq):
    assert 12 <= len(faq) <= 15
    assert sum(len(entry.alternatives) for entry in faq) >= 2 * len(faq)
    for entry in faq:
        sentences = [s for s in entry.answer.replace("!", ".").replace("?", ".").split(".") if s.strip()]
        assert 1 <= len(sentences) <= 3, entry.answer
    assert set(PARAPHRASES) == {entry.question for entry in faq}


def test_a_faq_keeps_alternatives_and_ignores_other_fields(tmp_path):
    path = tmp_path / "faq.json"
    path.write_text(json.dumps([{"question": " Where is\nthe cafe? ", "answer": "Upstairs.", "tags": ["food"],
                                 "alternatives": ["Is there coffee?"]}, {"question": "Toilets?", "answer": "Left."}]))
    assert load_faq(path) == [FaqEntry("Where is the cafe?", "Upstairs.", ("Is there coffee?",)),
                              FaqEntry("Toilets?", "Left.")]


GOOD = {"question": "Where is the cafe?", "answer": "Upstairs."}


@pytest.mark.parametrize("content, message", [
    ('[{"question": "Where is the cafe?",\n  "answer": "Upstairs."', r"not valid JSON: .* line 2, column 2[0-9];"),
    ('{"question": "Where?", "answer": "There."}', r"holds a JSON dict; the file is a JSON list of"),
    ("[]", r"holds an empty list; .* at least one"),
    ('["Where is the cafe?"]', r"entry 0 is a JSON str, not an object"),
    (json.dumps([GOOD, {"answer": "Left."}]), r"entry 1: 'question' is missing; give it as a string"),
    (json.dumps([GOOD, {"question": "Toilets?"}]), r"entry 1: 'answer' is missing"),
    (json.dumps([{"question": 7, "answer": "Seven."}]), r"entry 0: 'question' is a int; give it as a string"),
    (json.dumps([GOOD, {"question": "Toilets?", "answer": "  "}]), r"entry 1: 'answer' is empty; write the text"),
    (json.dumps([{**GOOD, "alternatives": "Coffee?"}]), r"entry 0: 'alternatives' must be a list of at most"),
    (json.dumps([{**GOOD, "alternatives": ["Coffee?", ""]}]), r"entry 0: 'alternatives\[1\]' is empty"),
    (json.dumps([{"question": "Is it?", "answer": "Yes."}]), r"entry 0: 'question' 'Is it\?' has only filler"),
    (json.dumps([GOOD, {"question": "Toilets?", "answer": "x" * 1001}]),
     r"entry 1: 'answer' has 1001 characters, more than 1000; shorten it"),
    (json.dumps([GOOD] * 501), r"has 501 entries, more than 500"),
    (json.dumps([GOOD, {"question": "Toilets?", "alternatives": ["where's the cafe"], "answer": "Left."}]),
     r"entries 0 and 1 both ask \"where's the cafe\"; merge them or reword one"),
])
def test_a_bad_faq_file_names_the_file_the_entry_and_the_fix(tmp_path, content, message):
    path = tmp_path / "faq.json"
    path.write_text(content)
    with pytest.raises(FaqError, match=message) as error:
        load_faq(path)
    assert str(path) in str(error.value)


def test_a_missing_non_utf8_or_huge_faq_file_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FaqError, match=r"nothere.json does not exist or is not a file; pass the path of a JSON file"):
        load_faq(tmp_path / "nothere.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes('[{"question": "Caf\u00e9?", "answer": "Yes."}]'.encode("latin-1"))
    with pytest.raises(FaqError, match=r"latin.json is not UTF-8 text .* save it as UTF-8"):
        load_faq(latin)
    monkeypatch.setattr(answers, "MAX_FAQ_BYTES", 10)
    with pytest.raises(FaqError, match=r"latin.json is [0-9]+ bytes, more than 10; split it"):
        load_faq(latin)
    assert issubclass(FaqError, ValueError)


# --- retrieval -----------------------------------------------------------------------------------------------------

def test_every_phrasing_in_the_faq_finds_its_own_entry(faq, index):
    for entry in faq:
        for phrasing in (entry.question, *entry.alternatives):
            match = index.answer(phrasing)
            assert match is not None and match.entry == entry, phrasing
            assert 0.0 <= match.runner_up < match.score <= 1.0


@pytest.mark.parametrize("heard, question", [
    ("when do you open in the morning", "What are your opening hours?"),
    ("where can i find the toilets", "Where are the toilets?"),
    ("is there wi fi here", "Is there free wifi?"),
    ("um so can you tell me where the toilets are please", "Where are the toilets?"),
    ("Excuse me, is there a lift?", "Where are the lifts?"),
    ("i lost my wallet", "I lost something. Where is the lost and found?"),
])
def test_spoken_paraphrases_find_the_right_entry(faq, index, heard, question):
    match = index.answer(heard)
    assert match is not None and match.entry == entry_asking(faq, question)


@pytest.mark.parametrize("heard, question", [
    ("is there why fi", "Is there free wifi?"),
    ("Is there Wi-Fi here?", "Is there free wifi?"),
    ("where are the toy lets", "Where are the toilets?"),
    ("WHERE ARE THE TOILETS?!", "Where are the toilets?"),
    ("is there a caffe", "Is there a cafe?"),
    ("Where\u2019s the caf\u00e9?", "Is there a cafe?"),
    ("is there wheel chair access", "Is the museum wheelchair accessible?"),
    ("where is the cloak room", "Where can I leave my coat?"),
    ("where's the carpark", "Where can I park my car?"),
    ("can i take fotos", "Can I take photos?"),
    ("lost and fond", "I lost something. Where is the lost and found?"),
])
def test_misrecognised_and_respelt_words_still_find_the_entry(faq, index, heard, question):
    match = index.answer(heard)
    assert match is not None and match.entry == entry_asking(faq, question)


@pytest.mark.parametrize("heard", ["what is the capital of peru", "can you sing a song", "tell me a joke",
                                   "how do i get to the airport", "", "um", "the"])
def test_unrelated_questions_get_no_answer(index, heard):
    assert index.answer(heard) is None


def test_the_measured_paraphrases_are_answered_right_or_not_at_all(faq, index):
    """The measurement the threshold was chosen on: no paraphrase gets another entry's answer, most get theirs, and
    few unrelated questions get any (the few are surface look-alikes such as 'what time is it')."""
    answered = wrong = 0
    for question, heard in PARAPHRASES.items():
        entry = entry_asking(faq, question)
        for text in heard:
            match = index.answer(text)
            answered += match is not None and match.entry == entry
            wrong += match is not None and match.entry != entry
    total = sum(len(heard) for heard in PARAPHRASES.values())
    accepted = [text for text in UNRELATED if index.answer(text) is not None]
    assert wrong == 0
    assert answered >= 0.8 * total
    assert len(accepted) <= 0.05 * len(UNRELATED), accepted


def test_two_equally_good_entries_are_too_close_to_answer():
    index = FaqIndex([FaqEntry("Is the cafe open?", "Until five."), FaqEntry("Is the shop open?", "Until six."),
                      FaqEntry("Where are the toilets?", "Downstairs.")])
    best = index.best("is it open")
    assert best.score >= index.threshold and best.score - best.runner_up < index.margin
    assert index.answer("is it open") is None
    assert index.answer("is the shop open").entry.answer == "Until six."


def test_an_index_needs_entries():
    with pytest.raises(ValueError, match="at least one FAQ entry"):
        FaqIndex([])


# --- the language model ------------------------------------------------------------------------------------------

def test_the_model_is_asked_with_the_faq_as_context(chat_server, faq, monkeypatch):
    monkeypatch.delenv("SYNCANIM_LLM_KEY", raising=False)
    model = LanguageModel(chat_server.base_url + "/", model="tiny-chat", max_tokens=60, temperature=0.2)
    chat_server.response = (200, completion("  The cafe is\non the first floor. "))
    assert model.ask("where can i get a sandwich", faq) == "The cafe is on the first floor."
    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert "Authorization" not in request["headers"]
    body = request["body"]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("tiny-chat", 60, 0.2)
    system, user = body["messages"]
    assert user == {"role": "user", "content": "where can i get a sandwich"}
    assert system["role"] == "system" and "one or two short spoken sentences" in system["content"]
    for entry in faq:
        assert f"Q: {entry.question}\nA: {entry.answer}" in system["content"]


def test_the_api_key_comes_from_the_environment(chat_server, monkeypatch):
    monkeypatch.setenv("SYNCANIM_LLM_KEY", "sk-local-test")
    model = LanguageModel(chat_server.base_url)
    model.ask("hello")
    assert chat_server.requests[0]["headers"]["Authorization"] == "Bearer sk-local-test"
    assert "sk-local-test" not in repr(model)


@pytest.mark.parametrize("response, message", [
    ((500, b'{"error": "model crashed"}'), r"HTTP 500 Internal Server Error: \{\"error\": \"model crashed\"\}$"),
    ((401, b"no key"), r"HTTP 401 Unauthorized: no key; set \$SYNCANIM_LLM_KEY to the API key"),
    ((200, b'{"choices": [{"message": '), r"the answer is not JSON: '\{\"choices\""),
    ((200, b'{"error": {"message": "unknown model"}}'), r"no choices\[0\].message.content .*unknown model.*"
                                                         r"OpenAI-compatible"),
    ((200, b'{"choices": []}'), r"no choices\[0\].message.content"),
    ((200, completion("   ")), r"the model answered with no text"),
])
def test_a_bad_answer_from_the_server_is_a_language_model_error(chat_server, response, message):
    chat_server.response = response
    with pytest.raises(LanguageModelError, match=message) as error:
        LanguageModel(chat_server.base_url).ask("where is the cafe")
    assert str(error.value).startswith(f"language model at {chat_server.base_url}/chat/completions: ")


def test_a_server_that_is_not_listening_is_a_language_model_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LanguageModelError, match=rf"127.0.0.1:{port}/v1/chat/completions: cannot connect .*"
                                                 r"is the server running"):
        LanguageModel(f"http://127.0.0.1:{port}/v1", timeout_s=0.5).ask("where is the cafe")


def test_a_server_that_does_not_speak_http_is_a_language_model_error():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def answer_garbage():
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        with pytest.raises(LanguageModelError, match=rf"127.0.0.1:{port}/v1/chat/completions: the connection failed "
                                                     r"\(BadStatusLine"):
            LanguageModel(f"http://127.0.0.1:{port}/v1", timeout_s=2).ask("where is the cafe")
        thread.join(2)


def test_a_server_that_answers_too_late_is_a_language_model_error(chat_server):
    chat_server.stall = True
    with pytest.raises(LanguageModelError, match=r"/v1/chat/completions: no answer within 0.2 s"):
        LanguageModel(chat_server.base_url, timeout_s=0.2).ask("where is the cafe")


def test_a_model_is_configured_by_the_environment_or_off():
    assert LanguageModel.from_env({}) is None
    model = LanguageModel.from_env({"SYNCANIM_LLM_URL": "http://127.0.0.1:8080/v1", "SYNCANIM_LLM_MODEL": "qwen"})
    assert (model.url, model.model) == ("http://127.0.0.1:8080/v1/chat/completions", "qwen")
    with pytest.raises(LanguageModelError, match=r"'file:///etc/passwd' is not http\(s\)://HOST"):
        LanguageModel("file:///etc/passwd")
    with pytest.raises(LanguageModelError, match=r"timeout_s must be > 0"):
        LanguageModel("http://127.0.0.1:8080/v1", timeout_s=0)


# --- the concierge ---------------------------------------------------------------------------------------------

def test_the_concierge_answers_from_the_faq_greets_and_falls_back(faq):
    concierge = Concierge(faq)
    reply = concierge.reply("where can i find the toilets")
    assert (reply.source, reply.entry) == ("faq", entry_asking(faq, "Where are the toilets?"))
    assert reply.text == reply.entry.answer
    assert concierge.reply("Hello there!").text == GREETING and concierge.reply("good morning").source == "greeting"
    for heard in ("what is the capital of peru", "um", ""):
        assert concierge.reply(heard) == answers.Reply(FALLBACK, "fallback")


def test_the_concierge_asks_the_model_what_the_faq_does_not_cover(chat_server, faq):
    concierge = Concierge(faq, model=LanguageModel(chat_server.base_url))
    chat_server.response = (200, completion("Sorry, I don't know; please ask the staff at the desk."))
    reply = concierge.reply("who painted the big picture in the hall")
    assert reply == answers.Reply("Sorry, I don't know; please ask the staff at the desk.", "llm")
    assert concierge.reply("is there wi fi here").source == "faq"
    assert len(chat_server.requests) == 1  # FAQ answers need no model


def test_the_concierge_falls_back_when_the_model_fails(chat_server, faq):
    chat_server.response = (500, b"overloaded")
    reply = Concierge(faq, model=LanguageModel(chat_server.base_url)).reply("can you sing a song")
    assert (reply.text, reply.source, reply.entry) == (FALLBACK, "fallback", None)
    assert "HTTP 500" in reply.error and chat_server.base_url in reply.error
