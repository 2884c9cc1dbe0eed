"""The outbox worker: ``python -m scheduler`` claims due messages and sends them.

See :mod:`scheduler.worker` for the jobs and :mod:`booking_service.messaging.dispatch` for the
send path and its exactly-once design. Importing this package builds nothing.
"""
