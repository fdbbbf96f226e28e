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

from .status import (  # noqa: F401
    STALE_AFTER_S,
    FINAL_STATUSES,
    pid_alive,
    last_write_time,
    run_status,
)
from .files import (  # noqa: F401
    DOWNLOADS,
    UnsafeRunFile,
    open_run_file,
    is_download,
    run_files,
    read_run_file,
)
from .listing import (  # noqa: F401
    MAX_RUN_JSON_BYTES,
    RunSummary,
    read_run_info,
    is_run_dir,
    find_runs,
)
from .logs import (  # noqa: F401
    READ_BLOCK,
    PARSE_BATCH,
    MAX_LINE_BYTES,
    MAX_CORRUPT_SHOWN,
    CorruptLine,
    BatchedMetricsReader,
    SplitColumns,
    RunLog,
)
from .derived import (  # noqa: F401
    finding_names,
    best_index,
    auroc_table,
    grad_norm_frame,
    gradient_health,
)
from .downsampling import (  # noqa: F401
    MAX_POINTS,
    downsample_indices,
    downsample,
    stride_indices,
    series,
)
from .overview import (  # noqa: F401
    format_time,
    format_count,
    RunOverview,
    overview_row,
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
