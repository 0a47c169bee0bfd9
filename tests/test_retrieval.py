"""Retrieval tool: corpus loading, the hybrid Chroma + BM25 index, reopening, the LangChain tool."""

from __future__ import annotations

import json

import pytest

from agentkd.tools.retrieval import (
    BM25,
    CorpusFormatError,
    CorpusIndex,
    CorpusIndexError,
    Document,
    SearchHit,
    format_hits,
    index_corpus,
    load_corpus,
)

# A small real corpus: one file per document, title = file stem.
ARTICLES = {
    "Amazon River": "The Amazon River in South America is the largest river by discharge volume of water in the "
    "world. It flows through Peru, Colombia and Brazil into the Atlantic Ocean.",
    "Photosynthesis": "Photosynthesis is the process by which plants, algae and some bacteria use light energy to "
    "turn water and carbon dioxide into sugars, releasing oxygen.",
    "Mount Everest": "Mount Everest is Earth's highest mountain above sea level, in the Himalayas on the border "
    "between Nepal and China. It was first climbed in 1953 by Tenzing Norgay and Edmund Hillary.",
    "Printing press": "The printing press is a machine that presses inked type onto paper. Johannes Gutenberg built "
    "one around 1440 in Mainz, which spread books across Europe.",
    "Great Barrier Reef": "The Great Barrier Reef off Queensland, Australia, is the world's largest coral reef "
    "system, made of nearly three thousand individual reefs.",
    "Python (programming language)": "Python is a high-level programming language created by Guido van Rossum and "
    "first released in 1991. Its design emphasises readable code and significant indentation.",
    "Honey bee": "Honey bees are social insects that live in large colonies with a single queen. They collect "
    "nectar from flowers and store it as honey.",
    "Volcano": "A volcano is a rupture in the crust of a planet through which lava, ash and gases escape. Many "
    "volcanoes lie along the edges of tectonic plates.",
}

# Expedition reports that differ only in their leader's made-up name, in confusable pairs: embeddings
# split such names into the same word pieces, BM25 matches them exactly.
_NAME_PAIRS = [("Kelthorne", "Kelthorpe"), ("Zorvex", "Zorvax"), ("Ombrissa", "Ombrisso"),
               ("Tuvalmek", "Tuvalmak"), ("Quennith", "Quennath"), ("Draspel", "Draspil")]
_ROUTES = ["the north ridge", "the east face", "the south col", "the west buttress", "the glacier route",
           "the ice fall"]


def expeditions() -> list[Document]:
    docs = []
    for number, name in enumerate(name for pair in _NAME_PAIRS for name in pair):
        year, route = 1950 + number, _ROUTES[number % len(_ROUTES)]
        docs.append(Document(id=f"expedition-{name.lower()}", title=f"Expedition of {year}", text=(
            f"The expedition of {year} set out in early spring with twelve climbers and forty porters. Its leader, "
            f"the surveyor {name}, chose {route} after a week of scouting. Storms kept the team in the lower camps "
            "for nine days, and two porters turned back with frostbite. The summit was reached on the last day of "
            "good weather, and the descent took another week.")))
    return docs


@pytest.fixture(scope="module")
def embedder():
    from agentkd.store.embedder import default_embedding_function

    return default_embedding_function()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("articles")
    for number, (title, text) in enumerate(ARTICLES.items()):
        (folder / f"{title}{'.md' if number % 2 else '.txt'}").write_text(text + "\n", encoding="utf-8")
    (folder / "empty.txt").write_text("  \n", encoding="utf-8")  # not a document
    (folder / "notes.csv").write_text("not,a,document\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, corpus_dir, embedder):
    location = tmp_path_factory.mktemp("index") / "chroma"
    with index_corpus(corpus_dir, location, embedding_function=embedder) as index:
        index.add(expeditions())
    return location


def test_load_corpus_folder(corpus_dir):
    docs = load_corpus(corpus_dir)
    assert sorted(d.title for d in docs) == sorted(ARTICLES)
    amazon = next(d for d in docs if d.title == "Amazon River")
    assert amazon.id == "Amazon River" and amazon.text == ARTICLES["Amazon River"]


def test_load_corpus_jsonl_and_hotpot_lines(tmp_path):
    path = tmp_path / "corpus.jsonl"
    lines = [
        {"id": "d1", "title": "Zorvex Labs", "text": "Zorvex Labs is a company."},
        {"title": "Radio City", "sentences": ["Radio City is a radio station.", " It started in 2001."]},
        {"title": "Velmora", "paragraph": "Velmora is a city."},
        ["Arin Quosh", ["Arin Quosh is an engineer.", "He was born in Velmora."]],
        {"id": "d1", "title": "Duplicate", "text": "the first d1 wins"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    docs = load_corpus(path)
    assert [d.id for d in docs] == ["d1", "Radio City", "Velmora", "Arin Quosh"]
    assert docs[0].title == "Zorvex Labs"
    assert docs[1].text == "Radio City is a radio station. It started in 2001."
    assert docs[3].text == "Arin Quosh is an engineer. He was born in Velmora."


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [("{not json", "Expecting property name"), ('{"text": "no title"}', "title"),
     ('{"title": "T", "sentences": [1, 2]}', "list of strings"), ('"just a string"', "JSON object"),
     ('{"title": "T"}', "missing \\\"text\\\"")],
)
def test_bad_corpus_line_names_file_and_line(tmp_path, bad_line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "title": "A", "text": "fine"}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=rf"bad\.jsonl:3: not a corpus document: .*{reason}") as info:
        load_corpus(path)
    assert info.value.line == 3 and info.value.path == path


def test_missing_corpus_is_a_named_error(tmp_path):
    with pytest.raises(CorpusFormatError, match="no such file or folder"):
        load_corpus(tmp_path / "nowhere.jsonl")


def test_exact_title_queries_find_their_document(index_dir, embedder):
    with CorpusIndex(index_dir, embedding_function=embedder) as index:
        assert len(index) == len(ARTICLES) + len(expeditions())
        for title in ARTICLES:
            hits = index.search(title, k=3)
            assert hits[0].title == title, (title, [h.title for h in hits])
            assert hits[0].score >= hits[-1].score
        assert index.search("who built the first printing press in Mainz", k=1)[0].title == "Printing press"


def test_hybrid_beats_embeddings_on_rare_names(index_dir, embedder):
    queries = [(name, f"expedition-{name.lower()}") for pair in _NAME_PAIRS for name in pair]
    queries += [(f"the expedition led by {name}", gold) for name, gold in queries]
    correct = {}
    for hybrid in (False, True):
        with CorpusIndex(index_dir, embedding_function=embedder, hybrid=hybrid) as index:
            correct[hybrid] = sum(index.search(query, k=1)[0].id == gold for query, gold in queries)
    assert correct[True] == len(queries)
    assert correct[True] >= correct[False]  # measured: embeddings alone get 17 of 24


def test_reopened_folder_keeps_documents_and_results(tmp_path, embedder):
    location = tmp_path / "idx"
    docs = expeditions()
    with CorpusIndex(location, embedding_function=embedder) as index:
        assert index.add(docs) == len(docs)
        assert index.add(docs) == 0  # idempotent: nothing re-embedded
        before = [[h.id for h in index.search(d.text.split(",")[1], k=3)] for d in docs[:4]]
        before.append([h.id for h in index.search("Zorvax", k=3)])
    with CorpusIndex(location, embedding_function=embedder) as index:  # BM25 is rebuilt from the collection
        assert len(index) == len(docs)
        after = [[h.id for h in index.search(d.text.split(",")[1], k=3)] for d in docs[:4]]
        after.append([h.id for h in index.search("Zorvax", k=3)])
        assert after == before
        assert after[-1][0] == "expedition-zorvax"
        changed = docs[0].model_copy(update={"text": "Rewritten: a report on a canoe trip down a river."})
        assert index.add([changed]) == 1
        assert index.search("canoe trip river", k=1)[0].id == changed.id
    with CorpusIndex(location, embedding_function=embedder, hybrid=False) as dense:  # keeps nothing in memory
        assert len(dense) == len(docs)
        assert dense.add([changed, *docs[1:]]) == 0
        assert dense.add(docs[:1]) == 1  # the original text again
        hit = dense.search(docs[5].text, k=1)[0]
        assert (hit.id, hit.title, hit.text) == (docs[5].id, docs[5].title, docs[5].text)


def test_index_refuses_another_embedder(tmp_path, embedder):
    location = tmp_path / "idx"
    with CorpusIndex(location, embedding_function=embedder) as index:
        index.add(expeditions()[:2])

    class OtherEmbedder:
        def __call__(self, input):  # noqa: A002 - Chroma's protocol names it so
            return embedder(input)

        @staticmethod
        def name() -> str:
            return "some-other-embedder"

    with pytest.raises(CorpusIndexError, match="embedded with 'agentkd-minilm-l6-v2'"):
        CorpusIndex(location, embedding_function=OtherEmbedder())


def test_foreign_folder_is_refused(tmp_path, embedder):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CorpusIndexError, match="not an agentkd corpus index"):
        CorpusIndex(tmp_path, embedding_function=embedder)


def test_temporary_index_is_removed_on_close(embedder):
    from pathlib import Path

    index = CorpusIndex(None, embedding_function=embedder)
    index.add(expeditions()[:3])
    assert index.search("Zorvex", k=1)[0].id == "expedition-zorvex"
    folder = Path(index.location)
    assert folder.is_dir()
    index.close()
    assert not folder.exists()


def test_langchain_tool_invokes(index_dir, embedder):
    from langchain_core.tools import StructuredTool

    with CorpusIndex(index_dir, embedding_function=embedder) as index:
        tool = index.as_tool(k=2)
        assert isinstance(tool, StructuredTool) and tool.name == "search"
        assert "[i] Title: text" in tool.description
        text = tool.invoke({"query": "Mount Everest"})
        assert text.startswith("[1] Mount Everest: ") and text.count("\n") == 1
        assert tool.invoke({"query": "Honey bee", "k": 1}).startswith("[1] Honey bee: Honey bees are social insects")


def test_format_hits_is_compact():
    hits = [SearchHit(id="a", title="A", text="one\n  two", score=1.0),
            SearchHit(id="b", title="B", text="x" * 50, score=0.5)]
    assert format_hits(hits, max_chars=20) == "[1] A: one two\n[2] B: " + "x" * 17 + "..."
    assert format_hits([]) == "No documents found."


def test_bm25_prefers_rare_terms():
    bm25 = BM25()
    bm25.set("a", "the river flows to the sea")
    bm25.set("b", "Zorvex founded a company by the river")
    bm25.set("c", "a company")
    assert [doc_id for doc_id, _ in bm25.top("Zorvex river", 3)] == ["b", "a"]
    bm25.set("b", "replaced")
    assert bm25.top("Zorvex", 3) == []


def test_server_index_round_trip(tmp_path, embedder):
    from test_store import _start_server, _stop_server  # the store tests' `chroma run` helpers

    process, url = _start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        with CorpusIndex(url, collection="expeditions", embedding_function=embedder) as index:
            assert index.add(expeditions()) == len(expeditions())
        with CorpusIndex(url + "/", collection="expeditions", embedding_function=embedder) as index:
            assert len(index) == len(expeditions())
            assert index.search("Ombrisso", k=1)[0].id == "expedition-ombrisso"
    finally:
        _stop_server(process)
