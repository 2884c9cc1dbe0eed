"""The outbox worker: ``python -m scheduler`` claims due messages and sends them.

See :mod:`scheduler.worker` for the jobs and the package :mod:`booking_service.outbox` for the
send path and its exactly-once design. Importing this package builds nothing.
"""
