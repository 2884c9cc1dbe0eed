"""First run: a database with no clinic and no staff user, and the guided setup that ends it.

The setup's state is the database itself: what has been set up is read from the rows (the
clinic, its first location, a practitioner with weekly hours there, a service they offer), so
the setup resumes wherever it stopped, on any machine, and nothing of it rides in a cookie.

Only the first step is open to anyone, and only while the database is empty: creating the
first admin (:func:`create_first_admin`). Every later step is a console page for a signed-in
admin. So once anybody holds a staff login, a stranger can no longer take the clinic over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.db import write_transaction
from booking_service.errors import NotFound
from booking_service.staff.models import User
from booking_service.staff.operations import create_user

# The steps after the first admin's account, in order (each a console page).
STEPS = ("clinic", "location", "practitioner", "service")
_LOCK = "first-run"


def has_staff(session: Session) -> bool:
    return session.scalar(select(User.id).limit(1)) is not None


def is_first_run(session: Session) -> bool:
    """Whether the database holds neither a clinic nor a staff user: the guided setup (and the
    demo clinic) are offered only then."""
    return session.get(ClinicSettings, 1) is None and not has_staff(session)


def _serialise(session: Session) -> None:
    """Two first admins at once: the second waits for the first, then finds it. SQLite: the
    write lock from the first statement; PostgreSQL: a transaction-scoped advisory lock."""
    write_transaction(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(_LOCK, 0))))


def create_first_admin(
    session: Session, email: str, password: str, *, name: str = "", now: datetime | None = None
) -> User:
    """Create the clinic's first admin, the one step of the setup open to anyone.

    Raises NotFound when the database is not empty any more (a clinic or a staff user exists:
    the setup is closed, exactly as if it did not exist), and what
    :func:`~booking_service.staff.operations.create_user` raises for a bad email or a password
    that breaks the password rules. Concurrent calls are serialised: one admin, never two.
    """
    _serialise(session)
    if not is_first_run(session):
        raise NotFound(errors.NOT_FOUND)
    user, _generated = create_user(session, email, role="admin", password=password, name=name, now=now)
    return user


@dataclass(frozen=True)
class Progress:
    """What the database already holds of the guided setup's four steps."""

    clinic: ClinicSettings | None
    location: Location | None  # the first active location
    practitioner: Practitioner | None  # the first active practitioner working there, bookable online
    has_hours: bool  # the practitioner has weekly hours at the location
    service: Service | None  # the first active service the practitioner offers

    def done(self, step: str) -> bool:
        return {
            "clinic": self.clinic is not None,
            "location": self.location is not None,
            "practitioner": self.practitioner is not None and self.has_hours,
            "service": self.service is not None,
        }[step]

    @property
    def next_step(self) -> str | None:
        """The first step not done yet; None when the clinic is open for online booking."""
        return next((step for step in STEPS if not self.done(step)), None)

    @property
    def complete(self) -> bool:
        return self.next_step is None

    def reachable(self, step: str) -> bool:
        """A step can be opened once every step before it is done (the practitioner works at
        the location; the service is offered by the practitioner)."""
        return all(self.done(before) for before in STEPS[: STEPS.index(step)])


def progress(session: Session) -> Progress:
    """Read the setup's state from the database."""
    clinic = session.get(ClinicSettings, 1)
    location = session.scalars(select(Location).where(Location.active.is_(True)).order_by(Location.id)).first()
    practitioner = None
    has_hours = False
    service = None
    if location is not None:
        practitioner = session.scalars(
            select(Practitioner)
            .where(
                Practitioner.active.is_(True),
                Practitioner.online_bookable.is_(True),
                Practitioner.locations.any(Location.id == location.id),
            )
            .order_by(Practitioner.id)
        ).first()
    if practitioner is not None:
        has_hours = (
            session.scalar(
                select(WorkingHours.id)
                .where(WorkingHours.practitioner_id == practitioner.id, WorkingHours.location_id == location.id)
                .limit(1)
            )
            is not None
        )
        service = session.scalars(
            select(Service)
            .where(
                Service.active.is_(True),
                Service.online_bookable.is_(True),
                Service.practitioners.any(Practitioner.id == practitioner.id),
            )
            .order_by(Service.sort_order, Service.id)
        ).first()
    return Progress(clinic, location, practitioner, has_hours, service)
