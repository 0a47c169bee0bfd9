"""`agentkd eval`: evaluate a student and write a report."""

from __future__ import annotations

import typer

from agentkd.cli.common import _fail, _notes, app
from agentkd.errors import AgentKDError
from agentkd.splits import SPLIT_HELP


@app.command("eval")
def eval_cmd(
    student: str = typer.Option(..., help="The student directory (or smollm2-135m, gguf:PATH, a hub name), or a "
                                "chat model (openai:MODEL, provider:MODEL) evaluated greedy as a ceiling row."),
    teacher: str = typer.Option("expert", help="The teacher for the cascade and the teacher row: expert, "
                                "openai:MODEL, provider:MODEL, or a local model directory/name."),
    env: str = typer.Option("household", help="Environment: household, qa, math, or one an installed package adds."),
    split: str = typer.Option("valid_unseen", help="Split(s), comma-separated: " + SPLIT_HELP + "."),
    configs: str = typer.Option(None, help="Configurations to compare, comma-separated: greedy, sc@K, and "
                                "+icd / +principles / +cascade@T / +constrained / +noloop / +retry suffixes (e.g. "
                                "greedy,sc@8,sc@8+cascade@0.5,sc@8+constrained); teacher: the teacher itself, "
                                "as the reference row. "
                                "Default: the one given by --samples/--icd/--cascade."),
    samples: int = typer.Option(1, min=1, help="Samples per step (1: greedy; the paper uses 8)."),
    icd: bool = typer.Option(False, "--icd", help="Show retrieved teacher steps in the prompt (needs --store)."),
    cascade: float = typer.Option(None, help="Defer a step to the teacher below this agreement (0-1)."),
    store: str = typer.Option(None, help="Store for --icd and for the evaluated trajectories."),
    out: str = typer.Option(..., help="Directory for results.json, report.md and plots."),
    max_tasks: int = typer.Option(None, min=1, help="Only the first N tasks of each split."),
    per_type: int = typer.Option(None, min=1, help="Only the first N tasks of each task type (a balanced subset)."),
    max_steps: int = typer.Option(None, min=1, help="Step limit per episode (default: the environment's, "
                                  "20 household, 8 qa, 6 math)."),
    max_new_tokens: int = typer.Option(None, min=1, help="Token cap of a reply (default: the environment's)."),
    workers: int = typer.Option(16, min=1, help="Episodes played at once (batched; each holds its prompt's cache "
                                "in memory)."),
) -> None:
    """Evaluate a student (greedy, self-consistency, in-context distillation, cascade) and write a report."""
    from rich.console import Console

    from agentkd.collection import chat_spec, resolve_teacher
    from agentkd.envs import get_spec
    from agentkd.eval.run import evaluate_with_report, parse_configs
    from agentkd.store import ExperienceStore

    console = Console(soft_wrap=True)
    try:
        if configs:
            chosen = parse_configs(configs)
        else:
            name = "greedy" if samples == 1 else f"sc@{samples}"
            name += "+icd" if icd else ""
            name += f"+cascade@{cascade:g}" if cascade is not None else ""
            chosen = parse_configs(name)
        reply_cap = max_new_tokens or get_spec(env).max_new_tokens
        # Only the teacher row and the cascade ask the teacher: do not load a model teacher for nothing.
        needed = teacher != "expert" and any(c.teacher or c.cascade is not None for c in chosen)
        teacher_policy = resolve_teacher(teacher, env, max_new_tokens=reply_cap) if needed else None
        evaluated = resolve_teacher(student, env, max_new_tokens=reply_cap) if chat_spec(student) else student
        experience = ExperienceStore(store) if store else None
        splits = [s.strip() for s in split.split(",") if s.strip()]
        with _notes():
            evaluate_with_report(console, evaluated, chosen, splits, experience, out, env=env, max_tasks=max_tasks,
                                 per_type=per_type, max_steps=max_steps, max_new_tokens=max_new_tokens,
                                 workers=workers, teacher=teacher_policy)
    except AgentKDError as exc:  # StoreError, ConfigError, StudentNotFound, ...
        _fail(str(exc))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, after the current generation call and the pending writes
        kept = (f"the episodes that finished are in {store}; run the same command again to play the rest"
                if store else "without --store nothing was kept")
        console.print(f"stopped: {kept}", highlight=False)
        raise typer.Exit(130) from None
