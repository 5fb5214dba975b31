"""Jobs files, what is shipped to workers and the batch's record: no Ray needed."""
import json
import tarfile

import pytest

from engine.batch.jobs import BatchError, RenderJob, load_jobs
from engine.batch.shipping import pack_file, pack_folder, unpack, unpack_to
from engine.batch.summary import SUMMARY_FILE, BatchSummary, JobRecord


@pytest.fixture
def media(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "hello.wav").write_bytes(b"RIFF")
    (tmp_path / "room.png").write_bytes(b"png")
    return tmp_path


def write(path, text):
    path.write_text(text)
    return path


def test_jsonl_paths_are_taken_from_the_files_folder_and_defaults_fill_gaps(media):
    jobs = load_jobs(write(media / "jobs.jsonl", '# two jobs\n{"audio": "clips/hello.wav"}\n\n'
                           '{"name": "b", "text": "Hi there.", "size": "64x48", "framing": "0.25", '
                           '"background": "#1e2430"}\n'), {"size": (128, 128)})
    assert jobs[0] == RenderJob(name="hello", audio=media / "clips" / "hello.wav", size=(128, 128))
    assert jobs[1].text == "Hi there." and jobs[1].size == (64, 48) and jobs[1].framing == "0.25"
    assert jobs[1].output == "b.mp4"


def test_csv_and_yaml_list_the_same_jobs_as_jsonl(media):
    jsonl = load_jobs(write(media / "j.jsonl", '{"name": "a", "audio": "clips/hello.wav", "background": "room.png"}\n'))
    csv = load_jobs(write(media / "j.csv", "name,audio,background,text\na,clips/hello.wav,room.png,\n"))
    yaml = load_jobs(write(media / "j.yaml", "jobs:\n  - {name: a, audio: clips/hello.wav, background: room.png}\n"))
    assert jsonl == csv == yaml
    assert jsonl[0].background == str(media / "room.png")


@pytest.mark.parametrize("line, words", [
    ('{"audio": "clips/hello.wav", "colour": "red"}', "unknown field(s) ['colour']"),
    ('{"name": "x"}', "either `audio`"),
    ('{"audio": "clips/hello.wav", "text": "hi"}', "either `audio`"),
    ('{"audio": "clips/missing.wav"}', "missing.wav does not exist"),
    ('{"audio": "clips/hello.wav", "size": "huge"}', "WIDTHxHEIGHT"),
    ('{"audio": "clips/hello.wav", "size": "8x8"}', "between 16 and 4096"),
    ('{"audio": "clips/hello.wav", "framing": "closeup"}', "framing must be one of"),
    ('{"audio": "clips/hello.wav", "framing": "1.5"}', "zoom is in [0, 1]"),
    ('{"audio": "clips/hello.wav", "background": "#12345"}', "#RRGGBB"),
    ('{"audio": "clips/hello.wav", "max_seconds": 0}', "max_seconds 0"),
    ('{"text": "  "}', "text is empty"),
    ('{"text": "hi", "name": "../up"}', "plain file name"),
    ('["not", "an", "object"]', "a job is an object"),
    ('{"audio": "clips/hello.wav",}', "jobs.jsonl:1: not JSON"),
])
def test_a_bad_job_names_its_line_the_value_and_the_fix(media, line, words):
    with pytest.raises(BatchError) as error:
        load_jobs(write(media / "jobs.jsonl", line + "\n"))
    assert words in str(error.value)
    assert "jobs.jsonl" in str(error.value) or "line 1" in str(error.value)


def test_two_jobs_of_one_name_and_empty_or_unknown_files_are_refused(media):
    twice = '{"audio": "clips/hello.wav"}\n{"text": "hi", "name": "hello"}\n'
    with pytest.raises(BatchError, match="line 2: name 'hello' is also the name of jobs.jsonl:line 1"):
        load_jobs(write(media / "jobs.jsonl", twice))
    with pytest.raises(BatchError, match="lists no jobs"):
        load_jobs(write(media / "empty.jsonl", "\n# nothing\n"))
    with pytest.raises(BatchError, match="is .jsonl, .csv or .yaml"):
        load_jobs(write(media / "jobs.txt", "{}"))
    with pytest.raises(BatchError, match="no such jobs file"):
        load_jobs(media / "absent.jsonl")


def test_a_folder_is_packed_by_content_and_unpacked_once_per_node(tmp_path):
    avatar = tmp_path / "avatar"
    (avatar / "report").mkdir(parents=True)
    (avatar / "nerf.safetensors").write_bytes(b"n" * 100)
    (avatar / "motion.safetensors").write_bytes(b"m" * 10)
    (avatar / "report" / "report.md").write_text("big report")
    package = pack_folder(avatar)
    with tarfile.open(fileobj=__import__("io").BytesIO(package.data)) as tar:
        assert tar.getnames() == ["motion.safetensors", "nerf.safetensors"]  # what a run reads, nothing else
    assert pack_folder(avatar).digest == package.digest
    first = unpack(package, tmp_path / "cache")
    assert (first / "nerf.safetensors").read_bytes() == b"n" * 100
    (first / "marker").write_text("kept")
    assert unpack(package, tmp_path / "cache") == first and (first / "marker").is_file()  # reused, not unpacked again
    (avatar / "motion.safetensors").write_bytes(b"changed")
    assert pack_folder(avatar).digest != package.digest


def test_a_whole_folder_leaves_hidden_state_out_and_replaces_a_stale_copy_whole(tmp_path):
    source = tmp_path / "avatar"
    (source / ".nerf-train").mkdir(parents=True)
    (source / ".nerf-train" / "state.pt").write_bytes(b"resume")
    (source / "val").mkdir()
    (source / "val" / "a.png").write_bytes(b"png")
    (source / "nerf.safetensors").write_bytes(b"n")
    package = pack_folder(source, None)
    target = tmp_path / "out" / "avatar"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("old")
    unpack_to(package, target, replace=True)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["nerf.safetensors", "val",
                                                                                  "val/a.png"]
    assert [p.name for p in target.parent.iterdir()] == ["avatar"]  # no temporary folders left
    assert pack_file(source / "nerf.safetensors").name == "nerf"
    with pytest.raises(FileNotFoundError, match="no .safetensors or .json files"):
        pack_folder(source / "val")


def test_the_record_is_saved_as_jobs_finish(tmp_path):
    summary = BatchSummary(tmp_path, "render batch")
    summary.add(JobRecord("a", "done", 1, wall_s=4.0, media_s=10.0, node="n1"))
    summary.add(JobRecord("b", "failed", 2, errors=["AudioFormatError: x", "AudioFormatError: x"]))
    saved = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert [(j["name"], j["status"], j["realtime_factor"]) for j in saved["jobs"]] == [("a", "done", 2.5),
                                                                                       ("b", "failed", None)]
    assert summary.count("failed") == 1
    assert [p.name for p in tmp_path.iterdir()] == [SUMMARY_FILE]
