"""Everything about people the app needs, made once by the composition root."""

from __future__ import annotations

from server.core.config import Config
from server.people.accounts import Accounts
from server.people.calendar import CalendarFeeds
from server.people.directory import Directory
from server.people.lessons import PeopleLessons
from server.people.logins import Logins
from server.people.oidc import OidcClient
from server.storage.audit import AuditLog
from server.storage.lessons import SqlSessionStore


class People:
    def __init__(self, config: Config, store: SqlSessionStore, audit: AuditLog) -> None:
        db = store.db
        limits = config.limits
        self.config = config
        self.directory = Directory(db)
        self.logins = Logins(
            db, ttl_s=limits.login_session_ttl_s, idle_s=limits.login_session_idle_s
        )
        self.accounts = Accounts(self.directory, self.logins, audit, limits)
        self.lessons = PeopleLessons(store)
        self.calendars = CalendarFeeds(db)
        self.oidc = OidcClient(config, db)
        self.audit = audit

    async def close(self) -> None:
        await self.oidc.close()
