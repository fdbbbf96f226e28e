"""The Streamlit script of `kinone-dashboard` (run it with the `kinone-dashboard` command).

    streamlit run app.py -- RUNS_DIR [--refresh SECONDS]

Views (sidebar): Runs (every run with its status, start time, model, parameter count, best
metric), Run (one run, refreshed live: loss, validation AUROC, learning rate, throughput, the
per-finding AUROC table and chart, gradient health, config, downloads), Graph (the run's model
as kinone-train drew it, one node per block; for a chosen node its Function's docstring, the
forward and gradient math, or its parameters' gradient norms over the run) and Compare
(several runs overlaid). The live part is a fragment rerun every few seconds; each run's log is held by one
`RunLog` per server (st.cache_resource), which reads only the bytes appended since the last
tick. Nothing here writes into a run directory.

Text that comes from run files (run names, run.json fields, metric and finding names, file
names) is never rendered as Markdown: it is shown with st.text, st.code, st.json or in tables,
and where it must sit in an element or label that renders Markdown it goes through
`escape_markdown` (an image link in an error message would otherwise make every viewer's
browser fetch its address).

Without arguments (as in tests), RUNS_DIR comes from $KINONE_DASHBOARD_RUNS_DIR (else "runs").
`?run=NAME` in the address opens that run; `?compare=A,B` compares runs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from kinone.dashboard import runs as R

VIEWS = ("Runs", "Run", "Graph", "Compare")
# Vega-Lite draws a chart as SVG (inspectable, crisp) while it holds at most 2,000 data points,
# as canvas above: one series gets at most 1,500 points, several share that.
POINTS = 1500
# Material icons ship with Streamlit's frontend (no emoji font needed on the viewing machine).
STATUS_ICONS = {
    "running": ":material/play_circle:",
    "finished": ":material/check_circle:",
    "crashed": ":material/error:",
    "failed": ":material/cancel:",
    "interrupted": ":material/pause_circle:",
    "unknown": ":material/help:",
}


# CommonMark lets a backslash escape any ASCII punctuation character; Streamlit's extensions
# (":red[...]", "$...$", ":material/...:") are punctuation-led too.
_MARKDOWN_SYNTAX = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text) -> str:
    """`text` as written, for an element or label that renders Markdown: every ASCII punctuation
    character backslash-escaped, line breaks as spaces."""
    return _MARKDOWN_SYNTAX.sub(r"\\\1", " ".join(str(text).splitlines()))


def parse_args() -> tuple[Path, float]:
    argv = sys.argv[1:] if sys.argv and Path(sys.argv[0]).name == "app.py" else []
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("runs_dir", nargs="?")
    parser.add_argument("--refresh", type=float, default=None)
    args, _ = parser.parse_known_args(argv)
    runs_dir = args.runs_dir or os.environ.get("KINONE_DASHBOARD_RUNS_DIR") or "runs"
    refresh = args.refresh if args.refresh is not None else float(os.environ.get("KINONE_DASHBOARD_REFRESH", "2"))
    return Path(runs_dir), refresh


@st.cache_resource(max_entries=64, show_spinner=False)
def run_log(path: str) -> R.RunLog:
    """One incremental log reader per run directory, shared by every session of this server."""
    return R.RunLog(path)


def load(path: Path) -> R.RunLog:
    log = run_log(str(Path(path).resolve()))
    log.update()
    return log


# ---------------------------------------------------------------------------------- charts
def chart(
    frame: pd.DataFrame,
    y: str,
    title: str,
    color: str | None = None,
    log_y: bool = False,
    points: bool | list = False,
    y_title: str | None = None,
    height: int = 280,
) -> None:
    """A line chart of `y` over `step` (one line per `color` value)."""
    scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    encoding = {
        "x": alt.X("step:Q", title="step"),
        "y": alt.Y(f"{y}:Q", title=y_title or y, scale=scale),
        "tooltip": [alt.Tooltip("step:Q"), alt.Tooltip(f"{y}:Q", format=".4g")]
        + ([alt.Tooltip(f"{color}:N")] if color else []),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None, legend=alt.Legend(orient="top", direction="horizontal"))
    lines = alt.Chart(frame).mark_line(point=points is True, clip=True).encode(**encoding)
    if isinstance(points, (list, tuple)) and color:  # markers on these series only (few points: validation)
        lines = lines + alt.Chart(frame[frame[color].isin(points)]).mark_point(filled=True, clip=True).encode(
            **encoding
        )
    st.altair_chart(lines.properties(title=title), width="stretch", height=height)


def loss_frame(log: R.RunLog, points: int = POINTS) -> pd.DataFrame:
    parts = []
    train = R.series(log, "train", "loss", max_points=points)
    if not train.empty:
        parts.append(train.assign(series="train"))
    val = R.series(log, "val", "loss", max_points=points)
    if not val.empty:
        parts.append(val.assign(series="validation"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["step", "loss", "series"])


def no_data(message: str) -> None:
    st.info(message)


# ---------------------------------------------------------------------------------- views
def runs_view(summaries: list[R.RunSummary]) -> None:
    st.header("Runs")
    if not summaries:
        st.info("No runs here yet: a run directory holds run.json and metrics.jsonl, as `kinone-train` writes them.")
        return
    rows = [asdict(R.overview_row(s, load(s.path))) for s in summaries]
    table = pd.DataFrame(rows).drop(columns=["extra"])
    table = table.rename(columns={"start_time": "start time", "best": "best metric"})
    counts = pd.Series([s.status for s in summaries]).value_counts()
    st.caption(
        f"{len(summaries)} run(s): "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
        + ". Click a row to open that run."
    )
    event = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="runs-table",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "steps": st.column_config.NumberColumn(format="%d"),
            "processes": st.column_config.NumberColumn(format="%d"),
        },
    )
    shown = st.session_state.get("runs-table-names")  # the rows as the user saw them when clicking
    st.session_state["runs-table-names"] = list(table["run"])
    chosen = selected_run(event.selection.rows, shown or list(table["run"]))
    if chosen is not None:
        st.session_state["open-run"] = chosen
        st.rerun(scope="app")  # the sidebar's view and run change before its widgets are drawn


def selected_run(rows: list[int], names: list[str]) -> str | None:
    """The run of the selected row of the runs table, if any."""
    return names[rows[0]] if rows and 0 <= rows[0] < len(names) else None


def status_banner(summary: R.RunSummary) -> None:
    """The status, with its reason; an error or reason quoted from run.json as plain text."""
    icon = STATUS_ICONS.get(summary.status, "")
    if summary.status == "failed":
        st.error(f"{icon} failed" + (", with this error:" if summary.reason else ": no error recorded"))
    elif summary.status == "unknown":
        st.warning(f"{icon} status unknown" + (":" if summary.reason else ": no run.json"))
    elif summary.status == "crashed":
        st.warning(f"{icon} crashed: {escape_markdown(summary.reason)}")
    else:
        reason = f" ({escape_markdown(summary.reason)})" if summary.reason and summary.status == "running" else ""
        st.caption(f"{icon} {summary.status}{reason}")
    if summary.status in ("failed", "unknown") and summary.reason:
        st.code(summary.reason, language=None, wrap_lines=True)


def log_notices(log: R.RunLog) -> None:
    if log.num_records == 0:
        st.info("No metrics logged yet: metrics.jsonl is missing or empty (an empty run, or one still starting).")
    if log.refused:
        st.error("metrics.jsonl was not read:")
        st.code(log.refused, language=None, wrap_lines=True)
    if log.corrupt_lines:
        listed = "; ".join(f"line {c.line:,} (byte {c.offset:,}): {c.reason}" for c in log.corrupt[:5])
        more = f"; and {log.corrupt_lines - 5:,} more" if log.corrupt_lines > 5 else ""
        st.warning(f"{log.corrupt_lines:,} corrupt line(s) in metrics.jsonl were skipped: {listed}{more}.")
    if log.pending_bytes:
        st.info(f"A half-written last line ({log.pending_bytes} bytes) is waiting for the trainer to finish it.")
    for event in log.resumes():
        st.caption(
            f"Resumed at step {_fmt(event.get('step', 0), ',.0f')} (later records before the resume were dropped)."
        )


def run_view(summary: R.RunSummary) -> None:
    log = load(summary.path)
    info = summary.info
    st.header(escape_markdown(summary.name))
    params = R.format_count(summary.num_parameters)
    facts = " · ".join(
        x
        for x in (
            f"model {summary.model}" if summary.model else "",
            f"on {summary.device}" if summary.device else "",
            f"{summary.world_size} processes" if (summary.world_size or 1) > 1 else "",
            f"{params} parameters" if params else "",
            f"started {R.format_time(summary.start_time)}" if summary.start_time else "",
        )
        if x
    )
    if facts:
        st.text(facts)
    status_banner(summary)
    log_notices(log)

    train, val = log.last("train"), log.last("val")
    c = st.columns(5)
    c[0].metric("step", f"{train['step']:,}" if train and isinstance(train.get("step"), int) else "n/a")
    c[1].metric("epoch", str(int(train["epoch"]) + 1) if train and isinstance(train.get("epoch"), int) else "n/a")
    c[2].metric("train loss", _fmt(train.get("loss") if train else None))
    c[3].metric("val mean AUROC", _fmt(val.get("mean_auroc") if val else None))
    sps = R.series(log, "train", "samples_per_sec", max_points=10**9)
    c[4].metric("samples/s", _fmt(float(sps["samples_per_sec"].tail(50).median()) if not sps.empty else None, ".1f"))

    st.subheader("Training curves")
    left, right = st.columns(2)
    with left:
        losses = loss_frame(log)
        if losses.empty:
            no_data("No loss logged yet.")
        else:
            chart(
                losses,
                "loss",
                "loss (train and validation)",
                color="series",
                points=True if log.count("train") < 30 else ["validation"],
            )
    with right:
        auroc = R.series(log, "val", "mean_auroc", max_points=POINTS)
        if auroc.empty:
            no_data("No validation records: the run has no validation data, or its first epoch has not ended.")
        else:
            chart(auroc, "mean_auroc", "validation mean AUROC", points=True, y_title="mean AUROC")
    left, right = st.columns(2)
    with left:
        lr = R.series(log, "train", "lr", max_points=POINTS)
        if lr.empty:
            no_data("No learning rate logged yet.")
        else:
            chart(lr, "lr", "learning rate", y_title="learning rate")
    with right:
        n = log.count("train")
        smooth = max(1, min(50, n // 100))
        throughput = R.series(log, "train", "samples_per_sec", max_points=POINTS, smooth=smooth)
        if throughput.empty:
            no_data("No throughput logged yet.")
        else:
            chart(
                throughput,
                "samples_per_sec",
                "throughput" + (f" (mean of {smooth} steps)" if smooth > 1 else ""),
                y_title="samples/s",
            )

    auroc_section(log, info, summary.best_metric or "mean_auroc")
    gradient_section(log, summary.name)

    st.subheader("Config")
    config = info.get("config")
    if isinstance(config, dict) and config:
        with st.expander("config", expanded=False):
            st.json(config)
    else:
        st.caption("No config in run.json.")
    with st.expander("run.json", expanded=False):
        st.json(info or {})
    files_section(summary)


def _fmt(value, spec: str = ".4f") -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return format(value, spec)
    return "n/a"


def auroc_section(log: R.RunLog, info: dict, metric: str) -> None:
    st.subheader("Per-finding AUROC")
    table = R.auroc_table(
        log.frame("val"), info, log.frame("test"), metric=metric if metric in log.frame("val") else "mean_auroc"
    )
    if table.empty:
        no_data("No per-finding AUROC yet (it is logged by each validation pass).")
        return
    left, right = st.columns([2, 3])
    with left:
        shown = table.copy()
        shown.loc["mean"] = shown.mean(skipna=True)
        st.dataframe(
            shown,
            width="stretch",
            height=min(600, 36 * (len(shown) + 1) + 3),
            column_config={c: st.column_config.NumberColumn(format="%.3f") for c in shown.columns},
        )
        st.caption("Empty: undefined (no positive or no negative case of that finding in the split).")
    with right:
        long = table.reset_index().melt(id_vars="finding", var_name="record", value_name="AUROC").dropna()
        bars = (
            alt.Chart(long)
            .mark_bar()
            .encode(
                y=alt.Y("finding:N", sort=list(table.index), title=None),
                x=alt.X("AUROC:Q", scale=alt.Scale(domain=[0, 1])),
                yOffset="record:N",
                color=alt.Color("record:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=400)),
                tooltip=["finding", "record", alt.Tooltip("AUROC:Q", format=".3f")],
            )
            .properties(title="AUROC per finding")
        )
        st.altair_chart(bars, width="stretch", height=max(300, 9 * len(table) * table.shape[1] + 90))


def gradient_section(log: R.RunLog, run_name: str) -> None:
    st.subheader("Gradient health")
    grads = R.grad_norm_frame(log.frame("grad_norm"))
    if grads.empty:
        no_data("No gradient norms logged yet (the trainer logs them every `grad_norm_every` steps).")
        return
    c1, c2 = st.columns(2)
    vanishing = c1.number_input("vanishing below", value=1e-7, format="%.1e", key=f"vanish-{run_name}")
    exploding = c2.number_input("exploding above", value=1e3, format="%.1e", key=f"explode-{run_name}")
    health = R.gradient_health(grads, vanishing, exploding)
    flagged = health[health["flag"] != "ok"]
    if flagged.empty:
        st.success(
            f"All {len(health)} layers healthy at step {int(grads.index[-1])}: latest gradient norms between "
            f"{health['latest'].min():.2e} and {health['latest'].max():.2e}."
        )
    else:
        st.error(
            f"{len(flagged)} layer(s) flagged at step {int(grads.index[-1])}: "
            + ", ".join(f"{escape_markdown(r.layer)} ({r.flag}, {r.latest:.2e})" for r in flagged.head(10).itertuples())
        )
    # Heatmap: log10 gradient norm per layer (rows, in model order) and step bin (columns).
    rows = grads.iloc[R.stride_indices(len(grads), max(1, 1900 // max(1, grads.shape[1])))]
    heat = rows.reset_index().melt(id_vars="step", var_name="layer", value_name="norm")
    heat["log10 norm"] = np.log10(heat["norm"].where(heat["norm"] > 0))
    heatmap = (
        alt.Chart(heat)
        .mark_rect()
        .encode(
            x=alt.X("step:O", title="step"),
            y=alt.Y("layer:N", sort=list(grads.columns), title=None, axis=alt.Axis(labelLimit=220, labelFontSize=9)),
            color=alt.Color("log10 norm:Q", scale=alt.Scale(scheme="viridis")),
            tooltip=["layer", "step", alt.Tooltip("norm:Q", format=".3e")],
        )
        .properties(title="gradient norm per layer (log10)")
    )
    left, right = st.columns([3, 2])
    with left:
        st.altair_chart(heatmap, width="stretch", height=max(240, 10 * grads.shape[1] + 80))
    with right:
        default = list(flagged["layer"]) or [
            grads.columns[0],
            grads.columns[len(grads.columns) // 2],
            grads.columns[-1],
        ]
        chosen = st.multiselect(
            "layers over steps", list(grads.columns), default=list(dict.fromkeys(default))[:8], key=f"layers-{run_name}"
        )
        if chosen:
            lines = grads[chosen].iloc[R.stride_indices(len(grads), max(50, POINTS // len(chosen)))]
            lines = lines.reset_index().melt(id_vars="step", var_name="layer", value_name="grad norm").dropna()
            lines = lines[lines["grad norm"] > 0]
            chart(
                lines,
                "grad norm",
                "gradient norm of chosen layers",
                color="layer",
                log_y=True,
                points=len(grads) < 30,
                height=300,
            )
        st.dataframe(
            health.style.format({"latest": "{:.2e}", "median": "{:.2e}", "max": "{:.2e}"}),
            hide_index=True,
            width="stretch",
            height=240,
        )


def graph_view(summary: R.RunSummary) -> None:
    """The run's model graph (Streamlit's own Graphviz renderer: no system binary) and one node's
    details. Streamlit's graph is not clickable: the node is chosen in a list."""
    st.header(escape_markdown(summary.name) + ": model graph")
    graph, error = R.read_graph(summary.path)
    if error:
        st.error("The model's graph was not read:")
        st.code(error, language=None, wrap_lines=True)
        return
    if graph is None:
        st.info(
            f"No {R.GRAPH_FILE} in this run: kinone-train writes it when a run starts "
            "(this run is older, or another program wrote it)."
        )
        return
    st.caption(
        f"{len(graph.nodes)} nodes, {len(graph.edges)} edges; data flows top to bottom. "
        "A box is a module call (its parameters folded in), a rounded box a Function, an ellipse a "
        "parameter (blue) or an input, buffer or constant (grey)."
    )
    if len(graph.nodes) <= R.MAX_DRAWN_NODES:
        st.graphviz_chart(graph.to_dot())  # written again from the parsed file: only labels and Kinone's attributes
    else:
        st.warning(f"{len(graph.nodes):,} nodes: too many to draw; choose one below.")
    nodes = {R.node_label(n): n for n in graph.nodes}
    chosen = st.selectbox("Node", list(nodes), key=f"graph-node-{summary.name}")
    if chosen is not None:
        node_details(nodes[chosen], load(summary.path), summary.name)


def node_details(node, log: R.RunLog, run_name: str) -> None:
    """A node's label, its Function's docstring, and its parameters' gradient-norm history."""
    st.text(node.label())
    if node.kind == "function":
        doc = R.function_doc(node.function)
        st.caption(f"Function {escape_markdown(node.function)}")
        if doc:
            st.code(doc, language=None, wrap_lines=True)
        else:
            st.info("This installation has no such Function (the run was made with other code).")
    parameters = R.node_parameters(node)
    if not parameters:
        return
    history = R.parameter_history(R.grad_norm_frame(log.frame("grad_norm")), parameters)
    history = history[history["grad norm"] > 0]
    if history.empty:
        no_data("No gradient norms logged for " + escape_markdown(", ".join(parameters)) + " yet.")
        return
    chart(
        history,
        "grad norm",
        "gradient norm of " + ("this parameter" if len(parameters) == 1 else "its parameters"),
        color="parameter",
        log_y=True,
        points=len(history) < 30 * len(parameters),
        height=300,
    )


def files_section(summary: R.RunSummary) -> None:
    st.subheader("Files")
    files = R.run_files(summary.path)
    if not files:
        st.caption("No checkpoint or ONNX file yet.")
        return
    columns = st.columns(min(4, len(files)))
    for i, path in enumerate(files):
        relative = path.relative_to(summary.path).as_posix()
        size = path.lstat().st_size
        label = f"{escape_markdown(relative)} ({size / 2**20:.1f} MiB)"
        columns[i % len(columns)].download_button(
            # Read only when clicked, and checked again then: a file swapped for a link is refused.
            label,
            data=lambda rel=relative: R.read_run_file(summary.path, rel),
            file_name=f"{summary.name}-{path.name}",
            mime="application/octet-stream",
            on_click="ignore",
            key=f"download-{summary.name}-{relative}",
        )


def compare_view(summaries: list[R.RunSummary], names: list[str]) -> None:
    st.header("Compare runs")
    chosen = [s for s in summaries if s.name in names]
    if not chosen:
        st.info("Choose runs to compare in the sidebar.")
        return
    logs = {s.name: load(s.path) for s in chosen}
    per_run = max(100, POINTS // len(chosen))
    st.dataframe(
        pd.DataFrame([asdict(R.overview_row(s, logs[s.name])) for s in chosen]).drop(columns=["extra"]),
        hide_index=True,
        width="stretch",
    )
    smooth_train = {name: max(1, min(50, log.count("train") // 200)) for name, log in logs.items()}
    panels = [
        ("train", "loss", "train loss", True),
        ("val", "loss", "validation loss", False),
        ("val", "mean_auroc", "validation mean AUROC", False),
        ("train", "lr", "learning rate", False),
    ]
    columns = st.columns(2)
    for i, (split, column, title, smooth) in enumerate(panels):
        parts = [
            R.series(log, split, column, max_points=per_run, smooth=smooth_train[name] if smooth else 0).assign(
                run=name
            )
            for name, log in logs.items()
        ]
        frame = pd.concat(
            [p for p in parts if not p.empty] or [pd.DataFrame(columns=["step", column, "run"])], ignore_index=True
        )
        with columns[i % 2]:
            if frame.empty:
                no_data(f"No {title} in these runs.")
            else:
                chart(frame, column, title, color="run", points=split == "val" or len(frame) < 30)


# ---------------------------------------------------------------------------------- page
def main() -> None:
    st.set_page_config(page_title="Kinone dashboard", page_icon="📈", layout="wide")
    runs_dir, default_refresh = parse_args()
    summaries = R.find_runs(runs_dir)
    names = [s.name for s in summaries]

    state = st.session_state
    if "view" not in state:  # first run of this session: defaults from the address
        params = st.query_params
        wanted = params.get("run")
        compare = [n for n in params.get("compare", "").split(",") if n in names]
        state["view"] = "Compare" if compare else "Run" if wanted in names else "Runs"
        state["run"] = wanted if wanted in names else (names[0] if names else None)
        state["compare"] = compare
        state["refresh"] = float(default_refresh)

    opened = state.pop("open-run", None)  # a row clicked in the runs table
    if opened in names:
        state["view"], state["run"] = "Run", opened

    st.sidebar.title("Kinone")
    view = st.sidebar.radio("View", VIEWS, key="view")
    run_name = st.sidebar.selectbox("Run", names, key="run") if names else None
    compare = st.sidebar.multiselect("Compare runs", names, key="compare")
    refresh = st.sidebar.number_input(
        "Refresh every (s, 0: off)", min_value=0.0, max_value=3600.0, step=1.0, key="refresh"
    )
    st.sidebar.caption(f"Runs folder: {escape_markdown(runs_dir.resolve())}")
    if not runs_dir.is_dir():
        st.error(
            f"{escape_markdown(runs_dir)} is not a folder. Start with `kinone-dashboard RUNS_DIR` "
            "(the runs/ that kinone-train writes)."
        )
        return

    @st.fragment(run_every=refresh if refresh > 0 else None)
    def live() -> None:
        current = R.find_runs(runs_dir)
        if [s.name for s in current] != names:
            st.rerun()  # a run appeared or vanished: rebuild the sidebar
        if view == "Runs":
            runs_view(current)
        elif view in ("Run", "Graph"):
            match = [s for s in current if s.name == run_name]
            if match:
                (run_view if view == "Run" else graph_view)(match[0])
            else:
                st.info("No run to show yet.")
        else:
            compare_view(current, compare)

    live()


main()
