"""Worker processes: the fallback for GIL builds, and the unit the supervisor manages.

- ``supervisor.py``: ``Supervisor``, which forks the workers, keeps them healthy and
  stops them (``docs/supervisor.md``);
- ``layout.py``: before the first fork, how many processes of how many threads (the
  probe import that learns whether the app turns the GIL on);
- ``process.py``: ``WorkerProcess``, the supervisor's handle on one forked worker;
- ``child.py``: what runs in the forked child (the threads-mode ``Server`` on the
  listening sockets inherited from the supervisor, reporting over a pipe);
- ``heartbeat.py``: each worker loop's timestamp in shared memory, so that a blocked
  loop is seen from outside;
- ``pidfile.py``: ``--pid-file``.
"""

from ftserver.mp_fallback.child import WorkerSpec
from ftserver.mp_fallback.process import State, WorkerProcess

__all__ = ["State", "WorkerProcess", "WorkerSpec"]
