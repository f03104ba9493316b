"""Worker processes: the fallback for GIL builds, and the unit the supervisor manages
(``supervisor.py``, ``layout.py``, ``process.py``, ``child.py``, ``heartbeat.py``,
``pidfile.py``; docs/supervisor.md).
"""

from ftserver.mp_fallback.child import WorkerSpec
from ftserver.mp_fallback.process import State, WorkerProcess

__all__ = ["State", "WorkerProcess", "WorkerSpec"]
