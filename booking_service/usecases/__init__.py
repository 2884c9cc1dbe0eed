"""Use cases: one change of the product composed from the domain areas below, in one session.

Scheduling changes the appointment, messaging plans its outbox rows, the waitlist offers freed
time; only this layer knows all three, so none of them imports another upward. The edge
(request, job, command) commits.
"""
