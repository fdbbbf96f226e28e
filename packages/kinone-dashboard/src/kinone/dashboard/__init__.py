"""kinone.dashboard: a Streamlit live monitor of the run directories `kinone.train` writes.

    kinone-dashboard runs/            # http://127.0.0.1:8501

`kinone.dashboard.runs` is the Streamlit-free half (finding runs, their status, reading
`metrics.jsonl` incrementally, downsampling); `app.py` is the Streamlit script; `cli.py` the
command.
"""

from .__about__ import __version__

__all__ = ["__version__"]
