"""The trajectory viewer: what `agentkd view`, `agentkd store show` and episodes.html show of real trajectories.

The episodes are real: student evaluations from the committed sample (self-consistency candidates, a
cascade's deferrals, failures) and the household teacher played here on the same tasks. The browser
tests drive Debian's Chromium through Playwright against the real server (uvicorn in a thread) over a
real Chroma store, and against episodes.html opened from the file system; they save screenshots in
tests/artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import expect

from agentkd.schema import Step, Trajectory
from agentkd.view.summary import Row, first_divergence, partner_map, step_facts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "trajectories" / "sample" / "household-student.jsonl"
ARTIFACTS = Path(__file__).with_name("artifacts")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# (evaluation run, task) of the sample episodes the tests load
PICKED = {("sc@8", "household/valid_unseen/0001"),  # failed after 50 steps, 271 candidates
          ("sc@8+cascade@0.5", "household/valid_unseen/0017"),  # solved with 11 steps deferred to the teacher
          ("greedy", "household/valid_unseen/0000"),  # solved
          ("greedy+constrained", "household/valid_unseen/0017")}  # failed


@pytest.fixture(scope="module")
def episodes() -> list[Trajectory]:
    """The picked student episodes, and the teacher's episodes of the same tasks (run "teacher")."""
    from agentkd.agents import play_episode
    from agentkd.policies.expert import ExpertPolicy
    from environments.household import HouseholdEnv, load_split

    students = [t for t in map(Trajectory.from_json, SAMPLE.read_text().splitlines())
                if (t.metadata.get("evaluation"), t.task_id) in PICKED]
    assert len(students) == len(PICKED)
    tasks = {t.task_id: t for t in load_split("valid_unseen")}
    teachers = []
    for task_id in sorted({t.task_id for t in students}):
        # In a thread of its own: play_episode runs an event loop, and Playwright's (a session fixture that may
        # already be open) holds this thread's.
        with ThreadPoolExecutor(1) as pool:
            teacher = pool.submit(play_episode, HouseholdEnv(), ExpertPolicy(), tasks[task_id]).result()
        teacher.metadata["evaluation"] = "teacher"
        teachers.append(teacher)
    return students + teachers


def _one(episodes: list[Trajectory], run: str, task: str) -> Trajectory:
    return next(t for t in episodes if t.metadata.get("evaluation") == run and t.task_id.endswith(task))


# ---- what every view reads ---------------------------------------------------------------------


def test_rows_and_step_facts_of_real_episodes(episodes):
    cascade = _one(episodes, "sc@8+cascade@0.5", "0017")
    row = Row.of(cascade)
    assert (row.run, row.success, row.steps, row.deferred) == ("sc@8+cascade@0.5", True, 34, 11)
    assert row.policy.startswith("cascade:") and not row.is_teacher
    deferred = next(s for s in cascade.steps if s.deferred)
    facts = step_facts(deferred)
    assert facts.deferred_for in ("agreement", "revisit") and facts.deferred_for == deferred.info["deferred_for"]
    assert facts.agreement == deferred.info["agreement"]
    votes = [c.votes for c in facts.candidates]
    assert votes == sorted(votes, reverse=True) and facts.extra.get("finish") == "stop"

    failed = _one(episodes, "sc@8", "0001")
    chosen = [step_facts(s) for s in failed.steps if s.candidates]
    assert chosen and all(f.candidates[f.chosen].action == s.action for f, s in
                          zip(chosen, [s for s in failed.steps if s.candidates], strict=True) if f.chosen is not None)

    pairs = partner_map([Row.of(t) for t in episodes])
    teacher = pairs[failed.trajectory_id]
    assert teacher.run == "teacher" and teacher.task_id == failed.task_id and teacher.is_teacher
    assert not any(pairs.get(t.trajectory_id) for t in episodes if t.metadata["evaluation"] == "teacher")


def test_first_divergence():
    def steps(*actions: str) -> list[Step]:
        return [Step(index=i, observation="o", action=a) for i, a in enumerate(actions)]

    assert first_divergence(steps("go to a", "take x"), steps("go to  a", "open b")) == 1  # spacing is no difference
    assert first_divergence(steps("go to a"), steps("go to a", "take x")) == 1  # one run stopped
    assert first_divergence(steps("go to a", "take x"), steps("Go to a", "take x")) is None
    assert first_divergence(steps("look"), steps("go to a")) == 0


def test_store_show_prints_the_transcript(store, episodes):
    from typer.testing import CliRunner

    from agentkd.cli import app

    cascade = _one(episodes, "sc@8+cascade@0.5", "0017")
    shown = CliRunner().invoke(app, ["store", "show", cascade.trajectory_id, "--store", str(store.location)],
                               terminal_width=160)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert cascade.goal in text and "run sc@8+cascade@0.5" in text and "11 deferred to the teacher" in text
    assert f"deferred to teacher: {next(s for s in cascade.steps if s.deferred).info['deferred_for']}" in text
    assert "candidate action" in text and "votes" in text and "log-prob" in text
    assert text.count("step ") >= 34 and cascade.steps[-1].action in text

    missing = CliRunner().invoke(app, ["store", "show", "no-such-id", "--store", str(store.location)])
    assert missing.exit_code == 2 and "no trajectory 'no-such-id'" in missing.output


def test_view_refuses_a_taken_port_in_one_line(store):
    from typer.testing import CliRunner

    from agentkd.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["view", "--store", str(store.location), "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output, result.output
    missing = CliRunner().invoke(app, ["view", "--store", str(Path(store.location).parent / "nothing-here")])
    assert missing.exit_code == 2 and "error:" in missing.output


# ---- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory, episodes):
    from agentkd.store import ExperienceStore

    root = tmp_path_factory.mktemp("viewer")
    experience = ExperienceStore(root / "store", spool_dir=root / "spool")
    experience.upsert(episodes)
    return experience


@pytest.fixture(scope="module")
def server(store):
    """`agentkd view`'s app served by uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn

    from agentkd.view.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(store, source="test store"), log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if uv.started:
            break
        threading.Event().wait(0.05)
    assert uv.started, "the viewer did not start"
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="session")
def browser():
    # CI sets AGENTKD_REQUIRE_BROWSER: there a missing browser fails instead of skipping.
    if not Path(CHROMIUM).is_file() and not os.environ.get("AGENTKD_REQUIRE_BROWSER"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; scripts/setup.sh does it as root)")
    import playwright.sync_api as playwright
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"the page's script failed: {errors}"


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def _visible_runs(page) -> list[str]:
    return page.locator("#rows tr.row:visible").evaluate_all("rows => rows.map(r => r.dataset.run)")


def test_filters_change_the_rows(page, server, episodes):
    page.goto(server + "/")
    total = len(episodes)
    assert page.locator("#count").inner_text() == f"{total} of {total} trajectories"
    assert page.locator("#rows tr.row:visible").count() == total

    page.select_option("select[data-filter=run]", "teacher")
    assert sorted(_visible_runs(page)) == ["teacher"] * 3
    page.select_option("select[data-filter=success]", "no")  # the teacher never fails: nothing left
    assert page.locator("#rows tr.row:visible").count() == 0 and page.locator("#count").inner_text().startswith("0 of")

    page.select_option("select[data-filter=run]", "")
    assert sorted(_visible_runs(page)) == ["greedy+constrained", "sc@8"]  # the two failures
    page.select_option("select[data-filter=success]", "")
    page.fill("#q", "creditcard")  # task 0017: "put some creditcard on shelf."
    assert sorted(_visible_runs(page)) == ["greedy+constrained", "sc@8+cascade@0.5", "teacher"]
    page.select_option("select[data-filter=task_type]", "look_at_obj_in_light")  # 0001's type: no creditcard there
    assert page.locator("#rows tr.row:visible").count() == 0

    page.goto(server + "/?run=sc@8&success=no")  # a link opens the table filtered
    assert _visible_runs(page) == ["sc@8"]


def test_a_failed_episode_opens_with_its_candidates(page, server, episodes):
    failed = _one(episodes, "sc@8", "0001")
    page.goto(server + "/?success=no&run=sc@8")
    page.locator("#rows tr.row:visible td.goal a").click()
    page.wait_for_url(re.compile(r"/t/"))
    assert page.locator("h1").inner_text() == failed.goal
    assert "failure" in page.locator(".head .facts").inner_text()
    steps = page.locator("ol.transcript .step")
    assert steps.count() == len(failed.steps) == 50
    first = failed.steps[0]
    card = steps.nth(0)
    assert first.thought in card.locator(".thought").inner_text()
    assert card.locator(".action code").inner_text() == first.action
    rows = card.locator("table.candidates tbody tr")
    assert rows.count() == len(first.candidates)
    best = max(first.candidates, key=lambda c: c.votes)
    chosen = card.locator("table.candidates tr.chosen td")
    assert chosen.nth(1).inner_text() == best.action and chosen.nth(2).inner_text() == str(best.votes)
    assert chosen.nth(3).inner_text() == f"{best.logprob:.3f}"
    assert f"agreement {first.info['agreement']:.0%}" in card.locator(".step-head").inner_text()
    assert page.locator("table.candidates tbody tr").count() == sum(len(s.candidates) for s in failed.steps)
    assert "teacher (teacher), success" in page.locator("p.partners").inner_text()
    _shot(page, "viewer-transcript.png")

    cascade = _one(episodes, "sc@8+cascade@0.5", "0017")
    page.goto(f"{server}/t/{cascade.trajectory_id}")
    deferred = page.locator(".step.deferred")
    assert deferred.count() == 11
    why = next(s for s in cascade.steps if s.deferred).info["deferred_for"]
    assert f"deferred to teacher: {why}" in deferred.first.locator(".step-head").inner_text()
    assert deferred.first.locator(".action .label").inner_text() == "teacher action"

    page.goto(f"{server}/t/no-such-id")
    assert "'no-such-id' is not in this store" in page.locator("body").inner_text()


def test_side_by_side_marks_the_first_divergence(page, server, episodes):
    failed = _one(episodes, "sc@8", "0001")
    teacher = _one(episodes, "teacher", "0001")
    expected = first_divergence(failed.steps, teacher.steps)
    assert expected is not None
    page.goto(server + "/?run=sc@8")
    page.locator("#rows tr.row:visible a.vs").click()
    page.wait_for_url(re.compile(r"/compare\?"))
    diverge = page.locator("tr.diverge")
    assert diverge.count() == 1 and diverge.get_attribute("data-step") == str(expected)
    assert "first divergence" in diverge.locator(":scope > th").inner_text()
    left, right = diverge.locator(":scope > td").nth(0), diverge.locator(":scope > td").nth(1)
    assert left.locator(".action code").inner_text() == failed.steps[expected].action
    assert right.locator(".action code").inner_text() == teacher.steps[expected].action
    assert page.locator("#divergence").inner_text() == f"First diverging step: step {expected}."
    assert page.locator("tr.pair").count() == max(len(failed.steps), len(teacher.steps))

    cascade = _one(episodes, "sc@8+cascade@0.5", "0017")  # follows the teacher for a while, then parts
    teacher = _one(episodes, "teacher", "0017")
    expected = first_divergence(cascade.steps, teacher.steps)
    assert expected and cascade.steps[expected - 1].action == teacher.steps[expected - 1].action
    page.goto(f"{server}/t/{cascade.trajectory_id}")
    page.locator("p.partners a.vs", has_text="teacher").click()
    page.wait_for_url(re.compile(r"/compare\?"))
    diverge = page.locator("tr.diverge")
    assert diverge.count() == 1 and diverge.get_attribute("data-step") == str(expected)
    assert page.locator(f"tr.pair[data-step='{expected - 1}']").get_attribute("class") == "pair"
    assert page.locator(".step.deferred").count() == 11  # the cascade's column shows its deferrals
    diverge.scroll_into_view_if_needed()
    _shot(page, "viewer-compare.png")


def test_the_principles_a_prompt_showed_are_named(page, store):
    """The expert played with a principle retrieved into its prompt: each step names it, with its text."""
    from agentkd.agents import play_episode
    from agentkd.distill.principles import PrincipleRetriever, PrinciplesPolicy
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.schema import Principle
    from agentkd.view.app import Catalog
    from agentkd.view.render import render_trajectory
    from environments.household import HouseholdEnv, load_split

    lesson = Principle.new("Look for a desklamp on desks and side tables first.", "guiding", "household")
    store.upsert_principles(lesson)
    policy = PrinciplesPolicy(ExpertPolicy(), PrincipleRetriever(store, "household"))
    with ThreadPoolExecutor(1) as pool:
        played = pool.submit(play_episode, HouseholdEnv(), policy, load_split("valid_unseen")[1]).result()
    assert played.steps[0].info["principles_shown"] == [lesson.principle_id]

    page.set_content(render_trajectory(played, principles=Catalog(store).principles(played)))
    first = page.locator(".step").first
    assert "1 principle shown" in first.locator(".step-head").inner_text()
    assert first.locator("ul.principles").inner_text() == f"{lesson.principle_id}: {lesson.text}"
    assert page.locator("ul.principles").count() == len(played.steps)


def test_episodes_html_works_from_the_file_system(page, tmp_path, episodes):
    from agentkd.view.render import write_episodes

    path = write_episodes(episodes, tmp_path / "episodes.html", title="test episodes")
    page.goto(path.as_uri())
    assert page.locator("#rows tr.row:visible").count() == len(episodes)
    assert page.locator("section.trajectory:visible").count() == 0
    page.select_option("select[data-filter=success]", "no")
    assert sorted(_visible_runs(page)) == ["greedy+constrained", "sc@8"]

    failed = _one(episodes, "sc@8", "0001")
    page.locator(f"#rows tr.row[data-id='{failed.trajectory_id}'] td.goal a").click()
    shown = page.locator("section.trajectory:visible")
    expect(shown).to_have_count(1)  # the view changes on hashchange, which fires after the click returns
    assert shown.locator("h1").inner_text() == failed.goal
    assert shown.locator("table.candidates tbody tr").count() == sum(len(s.candidates) for s in failed.steps)

    shown.locator("a.vs").click()
    teacher = _one(episodes, "teacher", "0001")
    diverge = page.locator("#view-compare tr.diverge")
    assert diverge.get_attribute("data-step") == str(first_divergence(failed.steps, teacher.steps))
    assert page.locator("#view-compare tr.pair").count() == max(len(failed.steps), len(teacher.steps))
    _shot(page, "episodes-compare.png")

    page.go_back()
    page.go_back()  # back to the table, the filter kept
    expect(page.locator("section.trajectory:visible")).to_have_count(0)
    expect(page.locator("#rows tr.row:visible")).to_have_count(2)
    assert sorted(_visible_runs(page)) == ["greedy+constrained", "sc@8"]
    page.goto(path.as_uri() + "#run=teacher")
    expect(page.locator("#rows tr.row:visible")).to_have_count(3)
    assert _visible_runs(page) == ["teacher"] * 3


def test_the_transcript_shows_a_refused_command_as_written():
    from rich.console import Console

    from agentkd.schema import PolicyInfo
    from agentkd.view.terminal import print_transcript
    from environments.household import load_split

    # A model's inadmissible command is recorded as replay records it: an empty action, the text kept.
    refused = dict(action="", valid=False, raw_output="Thought: I go to the toilet.\nAction: go to toilet 7",
                   next_observation="Nothing happens.")
    traj = Trajectory.start(load_split("valid_seen")[0], PolicyInfo(kind="scripted", name="refused"))
    traj.steps = [Step(index=0, observation="You are in the middle of a room.", **refused),
                  Step(index=1, observation="Nothing happens.", **refused),
                  Step(index=2, observation="Nothing happens.", action="", valid=False, raw_output="no idea")]
    console = Console(record=True, width=160)
    print_transcript(traj, console)
    text = console.export_text()
    assert text.count("Action: go to toilet 7 (refused)") == 2 and text.count("Action: (none)") == 1
