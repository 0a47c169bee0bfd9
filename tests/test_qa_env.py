"""QA environment: the generated world and splits, scoring, the cached corpus index, the expert, HotpotQA."""

from __future__ import annotations

import json
import re

import pytest

from agentkd.tools.retrieval import CorpusIndex, Document
from environments.qa import (
    CACHE_ENV,
    GIVE_UP_ANSWER,
    HELD_OUT_TEMPLATES,
    SPLIT_SIZES,
    TEMPLATES,
    QuestionFormatError,
    build_world,
    corpus_documents,
    corpus_index,
    exact_match,
    expert_step,
    f1,
    get_task,
    intro,
    load_hotpot_jsonl,
    load_split,
    normalize_answer,
    question_for_task,
    run_expert_offline,
    score,
)
from environments.qa import corpus as corpus_module
from environments.qa import generator as generator_module

SPLITS = tuple(SPLIT_SIZES)


@pytest.fixture(scope="session")
def embedder():
    from agentkd.store.embedder import default_embedding_function

    return default_embedding_function()


@pytest.fixture(scope="session")
def qa_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("agentkd-cache")
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="session")
def index(qa_cache, embedder):
    """The real hybrid index of the generated corpus, built once into the session's cache folder."""
    with corpus_index(embedding_function=embedder) as built:
        yield built


# ---- world and splits -----------------------------------------------------------------------------


def test_splits_are_deterministic_and_sized():
    first = {name: [t.to_json() for t in load_split(name)] for name in SPLITS}
    generator_module.build_split.cache_clear()
    build_world.cache_clear()
    again = {name: [t.to_json() for t in load_split(name)] for name in SPLITS}
    assert first == again
    for name, size in SPLIT_SIZES.items():
        tasks = load_split(name)
        assert len(tasks) == size
        assert [t.index for t in tasks] == list(range(size))
        assert all(t.env == "qa" and t.split == name and t.task_type in TEMPLATES for t in tasks)
    assert get_task("valid_seen", 3) == load_split("valid_seen")[3]
    with pytest.raises(ValueError, match="unknown qa split"):
        load_split("test")


def test_questions_are_new_in_every_split():
    questions = [t.goal for name in SPLITS for t in load_split(name)]
    assert len(set(questions)) == len(questions)
    keys = [(t.task_type, tuple(t.params["entities"])) for name in SPLITS for t in load_split(name)]
    assert len(set(keys)) == len(keys)  # not even a rephrasing of another split's question


def test_unseen_split_holds_out_entities_and_a_template():
    seen = [t for name in ("train", "valid_seen") for t in load_split(name)]
    unseen = load_split("valid_unseen")
    seen_docs = {title for t in seen for title in t.params["supporting"]}
    unseen_docs = {title for t in unseen for title in t.params["supporting"]}
    assert not seen_docs & unseen_docs
    world = build_world()
    assert all(world[i].part == "unseen" for t in unseen for i in t.params["entities"])
    assert all(world[i].part == "seen" for t in seen for i in t.params["entities"])
    assert not {t.task_type for t in seen} & set(HELD_OUT_TEMPLATES)
    assert sum(t.task_type in HELD_OUT_TEMPLATES for t in unseen) == 12
    assert {t.task_type for t in load_split("valid_seen")} == {t.task_type for t in load_split("train")}


def test_names_are_unique_and_unambiguous():
    world = build_world()
    names = [e.name for e in world.entities.values()]
    assert len(set(names)) == len(names)
    common = {"the", "and", "of", "for", "a", "an"} | {w.lower() for n in names for w in n.split() if w.istitle()
                                                      and sum(w in m.split() for m in names) > 1}
    made_up = sorted({w.lower() for n in names for w in n.split()} - common)
    for word, following in zip(made_up, made_up[1:], strict=False):
        assert not following.startswith(word), (word, following)  # sorted: a prefix comes right before


def test_answers_are_correct_and_stated_in_their_documents():
    world = build_world()
    documents = {d.title: d.text for d in corpus_documents()}
    assert len(documents) == len(world.entities)
    assert max(len(text) for text in documents.values()) < 600  # format_hits never cuts a fact off
    for name in SPLITS:
        for task in load_split(name):
            question = question_for_task(task)  # rebuilt from the params alone
            assert (question.text, question.answer, question.supporting) == (
                task.goal, task.params["answer"], task.params["supporting"])
            assert question.hops[0].query in task.goal
            for hop in question.hops:
                assert re.search(rf"(?<!\w){re.escape(hop.fact)}(?!\w)", documents[hop.doc]), (hop, task.goal)
            for before, after in zip(question.hops, question.hops[1:], strict=False):
                if question.kind == "bridge":
                    assert after.query == before.fact  # each hop's entity is the fact found one hop before
            if question.kind == "comparison":
                years = [int(hop.fact) for hop in question.hops]
                assert years[0] != years[1]
                assert task.params["answer"] == question.options[years.index(min(years))]
            else:
                assert task.params["answer"] == question.hops[-1].fact


# ---- scoring ------------------------------------------------------------------------------------------


def test_normalisation_and_metrics():
    assert normalize_answer("  The Lantern,  of Morvai! ") == "lantern of morvai"
    assert exact_match("the Velmora.", "Velmora")
    assert not exact_match("Velmora city", "Velmora")
    assert f1("Arin", "Arin Quosh") == pytest.approx(2 / 3)
    assert f1("Arin Quosh", "Arin Quosh") == 1.0 and f1("Zorvex", "Velmora") == 0.0
    assert f1("yes", "no") == 0.0 and f1("yes", "Yes.") == 1.0
    task = load_split("valid_seen")[0]
    gold = task.params["answer"]
    assert score(gold.upper() + ".", task) == {"em": 1.0, "f1": 1.0}
    assert score(None, task) == {"em": 0.0, "f1": 0.0}
    year_task = next(t for t in load_split("train") if t.task_type == "founding_year")
    assert score(int(year_task.params["answer"]), year_task)["em"] == 1.0


def test_intro_shows_question_and_tools():
    task = load_split("valid_unseen")[0]
    text = intro(task)
    assert text.startswith(f"Question: {task.goal}\n")
    assert "search(query, k=3)" in text and "final_answer(answer)" in text and "print" in text


# ---- the corpus index -----------------------------------------------------------------------------------


def test_corpus_index_is_cached_by_hash(index, qa_cache, embedder):
    folders = list((qa_cache / "corpora").iterdir())
    assert [str(p) for p in folders] == [index.location]  # one folder named by the hash, no scratch left
    assert len(index) == len(corpus_documents())
    with corpus_index(embedding_function=embedder) as reopened:  # opens the cached folder, embeds nothing
        assert reopened.location == index.location
        assert reopened.search("Who founded it?", k=3) == index.search("Who founded it?", k=3)


def test_losing_a_build_race_keeps_the_winner(tmp_path, embedder):
    docs = corpus_documents()[:4]
    target = tmp_path / "corpora" / "abc"
    corpus_module._build(target, docs, embedder)
    corpus_module._build(target, docs[:2], embedder)  # a slower builder: its rename fails, its copy is dropped
    assert [p.name for p in target.parent.iterdir()] == ["abc"]
    with CorpusIndex(target, embedding_function=embedder) as index:
        assert len(index) == 4


# ---- the expert ---------------------------------------------------------------------------------------


def _check_episode(task, index):
    answer, steps = run_expert_offline(task, index)
    assert score(answer, task)["em"] == 1.0, (task.goal, task.params["answer"], steps)
    assert len(steps) == len(question_for_task(task).hops) + 1 or task.params["kind"] == "comparison"
    for number, step in enumerate(steps):
        assert step.thought and step.thought.count(".") <= 3
        compile(step.code, "<step>", "exec")
        seen = task.goal + "\n".join(s.observation for s in steps[:number])
        for query in re.findall(r'search\("([^"]*)"', step.code):  # only names it has read
            assert query in seen
    assert steps[-1].code.splitlines()[-1].startswith("final_answer(")


@pytest.mark.parametrize("split", ["valid_seen", "valid_unseen"])
def test_expert_solves_every_validation_task(index, split):
    for task in load_split(split):
        _check_episode(task, index)


def test_expert_solves_a_train_sample(index):
    for task in load_split("train")[::10]:
        _check_episode(task, index)


def test_expert_step_shapes():
    task = next(t for t in load_split("valid_seen") if t.task_type == "founder_birthplace")
    thought, code = expert_step(task, [])
    company = question_for_task(task).hops[0].query
    assert code == f"print(search({json.dumps(company)}))"
    assert company in task.goal and company in thought
    comparison = next(t for t in load_split("valid_seen") if t.task_type == "compare_founded")
    q = question_for_task(comparison)
    observations = [f"[1] {hop.doc}: It was founded in {hop.fact}." for hop in q.hops]
    thought, code = expert_step(comparison, observations)
    namespace: dict = {"final_answer": lambda answer: namespace.setdefault("answer", answer)}
    exec(code, namespace)
    assert "if year_a < year_b else" in code and namespace["answer"] == comparison.params["answer"]


def test_expert_retries_then_gives_up():
    task = next(t for t in load_split("valid_seen") if t.task_type == "founder")
    observations: list[str] = []
    codes = []
    for _ in range(5):
        thought, code = expert_step(task, observations)
        codes.append(code)
        observations.append("No documents found.")
    assert codes[0] != codes[1] and "k=5" in codes[2] and "k=8" in codes[3]
    assert "different query" in expert_step(task, observations[:1])[0]
    assert codes[4] == f"final_answer({json.dumps(GIVE_UP_ANSWER)})"


# ---- HotpotQA ------------------------------------------------------------------------------------------

HOTPOT_QUESTIONS = [
    {"_id": "5a8b57f25542995d1e6f1371", "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
     "answer": "yes", "type": "comparison", "level": "hard",
     "supporting_facts": [["Scott Derrickson", 0], ["Ed Wood", 0]]},
    {"id": "q2", "question": "In which country is the city where the Velmora Orchestra was founded?",
     "answer": "Karthia", "type": "bridge",
     "supporting_facts": {"title": ["Velmora Orchestra", "Dressa", "Dressa"], "sent_id": [0, 0, 1]}},
]
HOTPOT_CORPUS = [
    Document(id="Scott Derrickson", title="Scott Derrickson",
             text="Scott Derrickson (born 1966) is an American director, screenwriter and producer."),
    Document(id="Ed Wood", title="Ed Wood",
             text="Edward Davis Wood Jr. (1924 - 1978) was an American filmmaker, actor and writer."),
    Document(id="Velmora Orchestra", title="Velmora Orchestra",
             text="The Velmora Orchestra is a symphony orchestra founded in 1921 in the city of Dressa."),
    Document(id="Dressa", title="Dressa", text="Dressa is the second largest city of Karthia."),
    Document(id="Karthia", title="Karthia", text="Karthia is a small country by the sea."),
]


def test_hotpot_adapter_and_expert(tmp_path, embedder):
    path = tmp_path / "dev.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in HOTPOT_QUESTIONS) + "\n", encoding="utf-8")
    tasks = load_hotpot_jsonl(path, "dev")
    assert [t.task_id for t in tasks] == ["hotpot/dev/5a8b57f25542995d1e6f1371", "hotpot/dev/q2"]
    assert [t.task_type for t in tasks] == ["hotpot_comparison", "hotpot_bridge"]
    assert tasks[1].params["supporting"] == ["Velmora Orchestra", "Dressa"]
    assert tasks[0].params["answer"] == "yes" and tasks[0].env == "qa" and tasks[0].split == "dev"
    array = tmp_path / "dev.json"
    array.write_text(json.dumps(HOTPOT_QUESTIONS), encoding="utf-8")
    assert [t.goal for t in load_hotpot_jsonl(array, "dev")] == [t.goal for t in tasks]
    with CorpusIndex(None, embedding_function=embedder) as index:
        index.add(HOTPOT_CORPUS)
        for task in tasks:
            answer, steps = run_expert_offline(task, index)
            assert score(answer, task)["em"] == 1.0, steps
            assert 2 <= len(steps) <= 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [("{oops", "Expecting property name"), ('{"question": "q?", "answer": "a"}', "_id"),
     ('{"_id": "x", "answer": "a"}', "question"), ('{"_id": "x", "question": "q?", "answer": "a", '
                                                   '"supporting_facts": 3}', "supporting_facts")],
)
def test_bad_hotpot_line_names_file_and_line(tmp_path, line, reason):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(HOTPOT_QUESTIONS[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(QuestionFormatError, match=rf"q\.jsonl:2: not a HotpotQA question: .*{reason}"):
        load_hotpot_jsonl(path, "dev")


def test_foreign_task_is_refused():
    from agentkd.schema import Task

    task = Task(task_id="x", env="household", split="train", task_type="pick", goal="g", params={})
    with pytest.raises(ValueError, match="not a qa task"):
        question_for_task(task)


def test_sandbox_tools_search_the_shared_index(index):
    from environments.qa import shared_index, tools, use_index

    task = load_split("valid_seen")[0]
    use_index(index)
    try:
        assert shared_index() is index
        search = tools(task)["search"]
        name = question_for_task(task).hops[0].query
        assert search(name).startswith(f"[1] {name}: ")
        assert search(name, k=50).count("\n") == 9  # at most 10 documents
    finally:
        use_index(None)
