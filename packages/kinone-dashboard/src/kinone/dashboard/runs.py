"""Reading run directories for the dashboard, without Streamlit. One module per part, each
importable from here too:

    status        a run's status (a "crashed" run is one whose writer stopped without finishing)
    listing       finding the runs under a folder, run.json read safely
    files         reading a run's files safely (regular files inside the run, no link followed)
    logs          following metrics.jsonl incrementally into columns
    derived       per-finding AUROC, the best record, gradient norms and their health
    downsampling  series for plotting, at most MAX_POINTS points each
    overview      the runs table's rows
    graph         the run's model graph (graph.dot) and what the Graph view shows of a node

Nothing here writes: every file is opened read-only, so the dashboard can watch a run while
`kinone.train` writes it, and cannot damage it.
"""

from __future__ import annotations

from .derived import (  # noqa: F401
    auroc_table,
    best_index,
    finding_names,
    grad_norm_frame,
    gradient_health,
)
from .downsampling import (  # noqa: F401
    MAX_POINTS,
    downsample,
    downsample_indices,
    series,
    stride_indices,
)
from .files import (  # noqa: F401
    DOWNLOADS,
    UnsafeRunFile,
    is_download,
    open_run_file,
    read_run_file,
    run_files,
)
from .graph import (  # noqa: F401
    GRAPH_FILE,
    MAX_DRAWN_NODES,
    MAX_GRAPH_BYTES,
    function_doc,
    known_functions,
    node_label,
    node_parameters,
    parameter_history,
    read_graph,
)
from .listing import (  # noqa: F401
    MAX_RUN_JSON_BYTES,
    RunSummary,
    find_runs,
    is_run_dir,
    read_run_info,
)
from .logs import (  # noqa: F401
    MAX_CORRUPT_SHOWN,
    MAX_LINE_BYTES,
    PARSE_BATCH,
    READ_BLOCK,
    BatchedMetricsReader,
    CorruptLine,
    RunLog,
    SplitColumns,
)
from .overview import (  # noqa: F401
    RunOverview,
    format_count,
    format_time,
    overview_row,
)
from .status import (  # noqa: F401
    FINAL_STATUSES,
    STALE_AFTER_S,
    last_write_time,
    pid_alive,
    run_status,
)
