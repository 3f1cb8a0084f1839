"""Starting the local stack's processes: embedded Postgres and Redis, the simulator,
Celery workers, the gateway, and synthetic traffic.

Behind ``shadowcanary up`` and ``demo``; the tests and benchmarks start the same real
processes through it.
"""
