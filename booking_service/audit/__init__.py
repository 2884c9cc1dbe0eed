"""The audit trail: who did what to which record, when and from where (``docs/security.md``).

Domain code calls :func:`record` in the session of the change, so an event is committed with
the change or not at all. Who acted is not a parameter: each edge (request, worker, CLI) sets
the actor in :mod:`booking_service.audit.context`, so one ``record`` call in a use case serves
every surface that reaches it.
"""

from booking_service.audit.context import Actor, acting_as, current_actor
from booking_service.audit.operations import record, values

__all__ = ["Actor", "acting_as", "current_actor", "record", "values"]
