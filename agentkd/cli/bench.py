"""`agentkd bench ...`: benchmarks that print side-by-side ratios."""

from __future__ import annotations

import typer

from agentkd.cli.common import _fail, app

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print side-by-side ratios.")
app.add_typer(bench_app, name="bench")


@bench_app.command("env")
def bench_env_cmd(
    games: int = typer.Option(6, help="Games to play (cycling through the six task types)."),
    steps: int = typer.Option(40, help="Random admissible commands per game."),
    split: str = typer.Option("valid_unseen"),
) -> None:
    """Native vs official household engine: per-step time on the same games and commands."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.env import bench_env

    try:
        r = bench_env(games=games, steps=steps, split=split)
    except ImportError as exc:
        _fail(str(exc))
    table = Table(title=f"household engine, {r.games} games x {r.steps} steps (admissible commands every step)")
    for col in ("engine", "ms / step", "ms / reset"):
        table.add_column(col, justify="right")
    table.add_row("native", f"{r.native_ms_per_step:.4f}", f"{r.native_reset_ms:.3f}")
    table.add_row("official", f"{r.official_ms_per_step:.2f}", f"{r.official_reset_ms:.1f}")
    console = Console()
    console.print(table)
    console.print(f"native is [bold]{r.speedup:,.0f}x[/] faster per step")


@bench_app.command("store")
def bench_store_cmd(
    steps: int = typer.Option(20_000, min=1, help="Steps to ingest per embedder (real household expert steps)."),
    queries: int = typer.Option(200, min=1, help="Similarity queries to time (plain and filtered)."),
    embedder: list[str] = typer.Option(["static", "minilm"], "--embedder",  # noqa: B008
                                       help="Embedders side by side (repeat the option): static, minilm."),
    minilm_steps: int = typer.Option(0, min=0, help="Ingest at most this many steps with MiniLM (0: --steps): "
                                     "its ingest at 100k steps takes about half an hour on two cores."),
    compare_contexts: int = typer.Option(20_000, min=0, help="Step contexts embedded by every embedder for "
                                         "texts/s and recall@5 against MiniLM (0: skip)."),
    embed_device: str = typer.Option("cpu", help="Torch device of MiniLM: cpu, or cuda with a GPU."),
    precision: str = typer.Option("auto", help="MiniLM precision: auto, float32, bfloat16, float16."),
    store: str = typer.Option(None, help="Folder for the stores (default: a temporary folder)."),
) -> None:
    """Experience store per embedder: ingest steps/s, query p50/p95, filtered queries, the embedder's share;
    recall@5 of each embedder's neighbours against MiniLM's on the same step contexts."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.store import bench_store

    unknown = sorted(set(embedder) - {"static", "minilm"})
    if unknown:
        _fail(f"unknown embedder(s) {', '.join(unknown)}; choose static or minilm")
    console = Console(soft_wrap=True)
    caps = {"minilm": minilm_steps} if minilm_steps else None
    r = bench_store(steps, queries=queries, path=store, embedders=embedder, max_steps=caps,
                    compare_contexts=compare_contexts, embed_device=embed_device, precision=precision,
                    on_stage=lambda text: console.print(f"[dim]{text}[/]"))
    names = list(r["embedders"])
    table = Table(title=f"experience store, {queries} held-out queries (k=5), embedder device {embed_device}")
    table.add_column("measure")
    for name in names:
        table.add_column(name, justify="right")

    def row(label: str, fmt) -> None:
        table.add_row(label, *(fmt(r["embedders"][name]) for name in names))

    row("stored steps", lambda m: f"{m['stored_steps']:,}")
    row("ingest, steps/s (embedding + Chroma)", lambda m: f"{m['ingest_steps_per_s']:.1f}")
    row("  embedder's share of ingest time", lambda m: f"{m['embed_share']:.0%}")
    row("  texts embedded (distinct per upsert)", lambda m: f"{m['embedded_texts']:,}")
    row("  embedder alone, texts/s", lambda m: f"{m['embed_texts_per_s'] or 0:,.0f}")
    row("  Chroma writes alone, steps/s", lambda m: f"{m['store_only_steps_per_s'] or 0:,.0f}")
    row("query p50 / p95, ms", lambda m: f"{m['query_p50_ms']:.1f} / {m['query_p95_ms']:.1f}")
    row("  embedding / search p50, ms", lambda m: f"{m['query_embed_p50_ms']:.2f} / {m['query_search_p50_ms']:.1f}")
    row("filtered query (task_type) p50 / p95, ms",
        lambda m: f"{m['filtered_query_p50_ms']:.1f} / {m['filtered_query_p95_ms']:.1f}")
    console.print(table)
    comparison = r.get("comparison")
    if comparison:
        table = Table(title=f"the same {comparison['steps']:,} step contexts ({comparison['texts']:,} distinct), "
                            f"{comparison['queries']} held-out queries, against {comparison['reference']}")
        for column in ("embedder", "dims", "texts/s", f"recall@{comparison['k']}",
                       f"ICD demos agree (top {comparison['demos']})", "first demo same",
                       "first demo = expert action", "= expert verb"):
            table.add_column(column, justify="left" if column == "embedder" else "right")
        for name, m in comparison["embedders"].items():
            table.add_row(name, str(m["dims"]), f"{m['texts_per_s']:,.0f}", f"{m.get('recall_at_k', 0):.3f}",
                          f"{m.get('demo_agreement', 0):.3f}", f"{m.get('first_demo_same', 0):.3f}",
                          f"{m['demo_action']:.3f}", f"{m['demo_verb']:.3f}")
        console.print(table)


@bench_app.command("train")
def bench_train_cmd(
    episodes: int = typer.Option(64, min=2, help="Expert episodes to train on (one epoch per batching)."),
    batch_size: int = typer.Option(8, min=1, help="Examples per step (packed rows hold as many on average; "
                                   "at most 4 with a pretrained student)."),
    max_length: int = typer.Option(2048, min=64, help="Packed row length / longest example."),
    student: str = typer.Option("tiny", help="tiny, tiny:small, smollm2-135m, or a model directory."),
    steps: int = typer.Option(8, min=1, help="With a pretrained student: steps of SFT and of the plain loop."),
) -> None:
    """SFT tokens/s side by side in one run.

    tiny students: padded vs length-grouped vs padding-free packed batches. Pretrained students
    (smollm2-135m, a directory): agentkd's SFT vs a plain PyTorch loop on the same batches, and
    float32 vs bf16 autocast.
    """
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.train import bench_sft, bench_sft_vs_loop

    if not student.startswith("tiny"):
        r = bench_sft_vs_loop(student, episodes=episodes, batch_size=min(batch_size, 4), steps=steps,
                              max_length=max_length)
        table = Table(title=f"SFT vs a plain loop, {student}, batch {r['batch_size']} "
                            f"(CPU native bf16: {r['cpu_native_bf16']})")
        for column in ("run", "steps", "tokens", "seconds", "tokens/s"):
            table.add_column(column, justify="right")
        for name, key in (("agentkd SFT (TRL)", "sft"), ("plain loop, fp32", "loop_fp32"),
                          ("one example, fp32", "precision_fp32"), ("one example, bf16 autocast", "loop_bf16")):
            m = r[key]
            table.add_row(name, str(m["steps"]), f"{m['tokens']:,}", f"{m['seconds']:.1f}",
                          f"{m['tokens_per_second']:.0f}")
        Console().print(table)
        Console().print(f"SFT / plain loop: {r['sft_vs_loop']:.2f}x; bf16 / fp32: {r['bf16_vs_fp32']:.2f}x")
        return
    r = bench_sft(episodes, batch_size=batch_size, max_length=max_length, student=student)
    table = Table(title=f"SFT, {r['episodes']} episodes (~{r['mean_example_tokens']:.0f} tokens each), {student}")
    for column in ("batching", "rows/step", "steps", "tokens", "seconds", "tokens/s", "vs padded"):
        table.add_column(column, justify="right")
    for mode in ("padded", "grouped", "packed"):
        m = r[mode]
        ratio = "1.00" if mode == "padded" else f"{r[f'{mode}_vs_padded']:.2f}"
        table.add_row(mode, str(m["rows_per_step"]), str(m["steps"]), f"{m['tokens']:,}", f"{m['train_seconds']:.1f}",
                      f"{m['tokens_per_second']:.0f}", ratio)
    Console().print(table)


@bench_app.command("sandbox")
def bench_sandbox_cmd(
    runs: int = typer.Option(50, min=5, help="Runs and forks timed per isolation mode (medians are shown)."),
) -> None:
    """Code sandbox: ms to start, per run and per fork, bubblewrap vs the process-only mode."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.sandbox import bench_sandbox

    r = bench_sandbox(runs=runs)
    table = Table(title=f"code sandbox, medians of {r['runs']} runs")
    for column in ("isolation", "start ms", "run ms", "fork ms", "close ms"):
        table.add_column(column, justify="left" if column == "isolation" else "right")
    for mode, m in r["isolation"].items():
        table.add_row(mode, f"{m['start_ms']:.1f}", f"{m['run_ms']:.2f}", f"{m['fork_ms']:.2f}", f"{m['close_ms']:.1f}")
    console = Console()
    console.print(table)
    for mode, why in r["unavailable"].items():
        console.print(f"{mode}: not measured ({why})")


@bench_app.command("replay")
def bench_replay_cmd(
    student: str = typer.Option(None, help="A student directory (default: a freshly built random tiny one)."),
    episodes: int = typer.Option(32, min=2, help="Episodes played batched and one after another."),
    samples: int = typer.Option(8, min=2, help="Samples per step for the k-vs-greedy comparison."),
    max_steps: int = typer.Option(6, min=1, help="Steps per episode."),
) -> None:
    """Replay: k samples vs greedy per step, batched vs sequential episodes, prefix reuse vs recompute."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.replay import bench_replay

    r = bench_replay(student, episodes=episodes, samples=samples, max_steps=max_steps)
    table = Table(title=f"replay, {r['student']}, {r['episodes']} episodes x {r['max_steps']} steps ({r['device']})")
    table.add_column("comparison")
    table.add_column("measured", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(f"step {r['k_vs_greedy_step']}, {samples} samples vs greedy (8 episodes)",
                  f"{r['sampled_step_s']:.2f} s vs {r['greedy_step_s']:.2f} s", f"{r['k_vs_greedy_time']:.2f}x time")
    table.add_row("  the same, one row per sample (agreeing samples not merged)", f"{r['row_per_sample_step_s']:.2f} s",
                  f"{r['row_per_sample_vs_greedy_time']:.2f}x time")
    table.add_row("  the same, prompt cache copied per sample", f"{r['repeated_step_s']:.2f} s",
                  f"{r['repeated_vs_greedy_time']:.2f}x time")
    table.add_row("batched vs one after another",
                  f"{r['batched_steps_per_s']:.1f} vs {r['sequential_steps_per_s']:.1f} steps/s",
                  f"{r['batched_vs_sequential']:.2f}x")
    table.add_row("prefix reuse vs recompute (batched)", f"{r['batched_s']:.1f} s vs {r['recompute_s']:.1f} s",
                  f"{r['reuse_vs_recompute']:.2f}x")
    Console().print(table)



@bench_app.command("principles")
def bench_principles_cmd(
    train_episodes: int = typer.Option(200, min=10, help="Explorer episodes on train to mine principles from."),
    split: str = typer.Option("valid_unseen", help="Held-out split played with and without principles."),
    max_tasks: int = typer.Option(0, min=0, help="Only the first N tasks of the split (0: all)."),
    store: str = typer.Option(None, help="Store to use (default: a temporary folder; a kept one resumes)."),
    k: int = typer.Option(3, min=1, help="Principles shown per step."),
    max_tokens: int = typer.Option(200, min=1, help="Token budget of the shown principles."),
    workers: int = typer.Option(16, min=1, help="Episodes played concurrently."),
) -> None:
    """Household explorer without vs with mined principles: success and mean steps, side by side."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.principles import principles_ablation

    console = Console(soft_wrap=True)
    r = principles_ablation(train_episodes=train_episodes, split=split, max_tasks=max_tasks or None, store=store,
                            k=k, max_tokens=max_tokens, workers=workers,
                            on_stage=lambda text: console.print(f"[dim]{text}[/]"))
    table = Table(title=f"principles ablation on household {split} ({r.rows[0].episodes} tasks); "
                        f"{r.principles} principles mined from {r.train_episodes} explorer train episodes")
    for column in ("agent", "success", "mean steps (successes)", "mean steps (all)"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for row in r.rows:
        table.add_row(row.name, f"{row.successes}/{row.episodes} ({row.success_rate:.0%})",
                      f"{row.mean_steps_success:.2f}", f"{row.mean_steps_all:.2f}")
    console.print(table)
    console.print(f"on the {r.paired_tasks} tasks both explorer runs solved: {r.paired_steps_without:.2f} -> "
                  f"{r.paired_steps_with:.2f} mean steps, ratio [bold]{r.steps_ratio:.2f}[/] "
                  f"({r.reduction:.0%} fewer steps)")
    console.print(f"goal object's search order shown at the first step in {r.goal_principle_shown:.0%} of episodes; "
                  f"{r.credited.episodes} episodes credited to {len(r.credited.credited)} principles")
