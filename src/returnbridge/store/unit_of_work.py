"""One use case, one transaction: the unit of work and the repositories it hands out.

Flows never build a session or write a query. A use case opens one unit of work
(``with rt.unit_of_work() as uow:``), reads and changes its rows through the repositories on
``uow`` (``uow.returns``, ``uow.exceptions``, ...), and leaving the block commits; an exception
escaping it rolls everything back. The queries live in the repositories (``store/``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from types import TracebackType
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from returnbridge.store.accounts_repo import AccountsRepository
from returnbridge.store.alerts_repo import AlertsRepository
from returnbridge.store.audit import AuditLog
from returnbridge.store.catalogue import Catalogue
from returnbridge.store.console_mapping import MappingRules
from returnbridge.store.console_repo import ConsoleRepository
from returnbridge.store.coverage_repo import CoverageRepository
from returnbridge.store.doctor_repo import DoctorRepository
from returnbridge.store.events import EventsRepository
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.health_repo import HealthRepository
from returnbridge.store.khaos_repo import KhaosRepository
from returnbridge.store.login_failures_repo import LoginFailuresRepository
from returnbridge.store.reason_coverage import ReasonCoverageRepository
from returnbridge.store.reconciliation_items_repo import ReconciliationItemsRepository
from returnbridge.store.reconciliation_repo import ReconciliationRepository
from returnbridge.store.refunds_repo import RefundsRepository
from returnbridge.store.return_search import ReturnSearchRepository
from returnbridge.store.returns_repo import ReturnsRepository
from returnbridge.store.sku_aliases import SkuAliases
from returnbridge.store.suggestions_repo import SuggestionsRepository
from returnbridge.store.watermarks import Watermarks

R = TypeVar("R")


class UnitOfWork:
    """A transaction and its repositories; use it once, as a context manager."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._session: Session | None = None

    def __enter__(self) -> UnitOfWork:
        if self._session is not None:
            raise RuntimeError("a unit of work is used once")
        self._session = self._sessions()
        self._session.begin()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        session = self.session
        try:
            if exc_type is None:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()

    @property
    def session(self) -> Session:
        """The transaction's session, for the repositories (not for flows)."""
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use it in a with block")
        return self._session

    def flush(self) -> None:
        """Send pending changes now (ids assigned), still inside the transaction."""
        self.session.flush()

    @cached_property
    def returns(self) -> ReturnsRepository:
        return ReturnsRepository(self.session)

    @cached_property
    def exceptions(self) -> ExceptionsRepository:
        return ExceptionsRepository(self.session)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.session)

    @cached_property
    def watermarks(self) -> Watermarks:
        return Watermarks(self.session)

    @cached_property
    def mapping_rules(self) -> MappingRules:
        return MappingRules(self.session)

    # --- refunds, confirm, khaos ---

    @cached_property
    def refunds(self) -> RefundsRepository:
        return RefundsRepository(self.session)

    @cached_property
    def khaos(self) -> KhaosRepository:
        return KhaosRepository(self.session)

    # --- exceptions, console, reconcile ---

    @cached_property
    def alerts(self) -> AlertsRepository:
        return AlertsRepository(self.session)

    @cached_property
    def health(self) -> HealthRepository:
        return HealthRepository(self.session)

    @cached_property
    def doctor(self) -> DoctorRepository:
        return DoctorRepository(self.session)

    @cached_property
    def coverage(self) -> CoverageRepository:
        return CoverageRepository(self.session)

    @cached_property
    def suggestions(self) -> SuggestionsRepository:
        return SuggestionsRepository(self.session)

    @cached_property
    def reconciliation(self) -> ReconciliationRepository:
        return ReconciliationRepository(self.session)

    @cached_property
    def login_failures(self) -> LoginFailuresRepository:
        return LoginFailuresRepository(self.session)

    # --- ingest, decide, platforms ---

    @cached_property
    def events(self) -> EventsRepository:
        return EventsRepository(self.session)

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue(self.session)

    @cached_property
    def sku_aliases(self) -> SkuAliases:
        return SkuAliases(self.session)

    @cached_property
    def reconciliation_items(self) -> ReconciliationItemsRepository:
        return ReconciliationItemsRepository(self.session)

    def savepoint(self) -> SessionTransaction:
        """A nested transaction (``with uow.savepoint():``): an exception escaping it rolls
        back what was done inside it alone; the unit of work goes on."""
        return self.session.begin_nested()

    def repository(self, kind: Callable[[Session], R]) -> R:
        """A repository defined outside ``store/`` (a platform's own tables), bound to this
        unit of work's session: ``uow.repository(NotesTable)``."""
        return kind(self.session)


    # --- console ---

    @cached_property
    def accounts(self) -> AccountsRepository:
        return AccountsRepository(self.session)

    @cached_property
    def console(self) -> ConsoleRepository:
        return ConsoleRepository(self.session)

    @cached_property
    def reason_coverage(self) -> ReasonCoverageRepository:
        return ReasonCoverageRepository(self.session)

    @cached_property
    def return_search(self) -> ReturnSearchRepository:
        return ReturnSearchRepository(self.session)


# What a process's database is made of, named here so flows need no SQLAlchemy.
DatabaseEngine = Engine
SessionFactory = sessionmaker[Session]


class Database:
    """The engine and the session factory a process opens its units of work on."""

    def __init__(self, engine: DatabaseEngine, factory: SessionFactory) -> None:
        self.engine = engine
        self.sessions = factory

    def unit_of_work(self) -> UnitOfWork:
        """One use case's transaction: ``with rt.unit_of_work() as uow:`` commits on leaving
        the block and rolls back on an error."""
        return UnitOfWork(self.sessions)
