"""Persons, their roles, schools, caseloads, coaching groups and the e-mail
domains whose people may sign up through the district's provider: the
``people`` side of the one database. Nothing here decides who may see what
(that is ``access/policy.py``); this module keeps the facts it asks about.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from server.core.errors import InvalidMessage
from server.people.errors import AlreadyExists, PersonNotFound
from server.people.principal import Grant, PersonRole, Principal
from server.storage.database import Database
from server.storage.models import (
    AllowedDomain,
    CaseloadEntry,
    Group,
    GroupMember,
    Person,
    RoleGrant,
    School,
)

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 120
MAX_EMAIL_CHARS = 254
#: members one coaching group may have
MAX_GROUP_MEMBERS = 60
#: teachers one caseload may hold
MAX_CASELOAD = 500
EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})+$")


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")


def clean_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessage(f"{what} must be a non-empty string")
    text = " ".join(value.split())
    if len(text) > MAX_NAME_CHARS:
        raise InvalidMessage(f"{what} must be at most {MAX_NAME_CHARS} characters")
    return text


def clean_email(value: object) -> str:
    if not isinstance(value, str) or not EMAIL.match(value.strip()):
        raise InvalidMessage("email must be an e-mail address")
    return value.strip().lower()


def clean_domain(value: object) -> str:
    text = value.strip().lower().lstrip("@") if isinstance(value, str) else ""
    if not DOMAIN.match(text):
        raise InvalidMessage("domain must be a domain name such as district.example.org")
    return text


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


@dataclass(frozen=True)
class PersonView:
    """A person as admin pages and the API show them (no secrets)."""

    id: str
    name: str
    email: str | None
    disabled: bool
    has_password: bool
    signs_in_with_provider: bool

    @classmethod
    def of(cls, p: Person) -> PersonView:
        return cls(
            p.id,
            p.name,
            p.email,
            p.disabled_at is not None,
            p.password_hash is not None,
            p.oidc_sub is not None,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "disabled": self.disabled,
            "password": self.has_password,
            "provider": self.signs_in_with_provider,
        }


class Directory:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- schools ----------------------------------------------------------------

    async def create_school(self, name: str) -> str:
        school = School(
            id=new_id("sc-"), name=clean_name(name, "school name"), created_at=time.time()
        )
        try:
            async with self.db.session() as s, s.begin():
                s.add(school)
        except IntegrityError:
            raise AlreadyExists(f"a school named {school.name!r} exists") from None
        return school.id

    async def schools(self) -> list[dict[str, str]]:
        async with self.db.session() as s:
            rows = (await s.execute(select(School).order_by(School.name))).scalars().all()
        return [{"id": r.id, "name": r.name} for r in rows]

    async def school_by_name(self, name: str) -> str | None:
        async with self.db.session() as s:
            row = (await s.execute(select(School.id).where(School.name == name))).scalar()
        return row

    # -- persons ----------------------------------------------------------------

    async def create_person(
        self,
        name: str,
        email: str | None,
        *,
        password_hash: str | None = None,
        must_change_password: bool = False,
        oidc: tuple[str, str] | None = None,
    ) -> str:
        person = Person(
            id=new_id("pe-"),
            name=clean_name(name),
            email=clean_email(email) if email is not None else None,
            password_hash=password_hash,
            must_change_password=must_change_password,
            oidc_issuer=oidc[0] if oidc else None,
            oidc_sub=oidc[1] if oidc else None,
            failed_logins=0,
            created_at=time.time(),
        )
        try:
            async with self.db.session() as s, s.begin():
                s.add(person)
        except IntegrityError:
            raise AlreadyExists("a person with this e-mail (or provider account) exists") from None
        logger.info("person %s created", person.id)
        return person.id

    async def row(self, person_id: str) -> Person:
        async with self.db.session() as s:
            row = await s.get(Person, person_id)
        if row is None:
            raise PersonNotFound(f"no person {person_id!r}")
        return row

    async def by_email(self, email: str) -> Person | None:
        async with self.db.session() as s:
            q = select(Person).where(Person.email == email.strip().lower())
            return (await s.execute(q)).scalar_one_or_none()

    async def by_oidc(self, issuer: str, sub: str) -> Person | None:
        async with self.db.session() as s:
            q = select(Person).where(Person.oidc_issuer == issuer, Person.oidc_sub == sub)
            return (await s.execute(q)).scalar_one_or_none()

    async def link_oidc(self, person_id: str, issuer: str, sub: str) -> None:
        await self._update(person_id, oidc_issuer=issuer, oidc_sub=sub)

    async def _update(self, person_id: str, **values: object) -> None:
        async with self.db.session() as s, s.begin():
            result = await s.execute(update(Person).where(Person.id == person_id).values(**values))
        if getattr(result, "rowcount", 1) == 0:
            raise PersonNotFound(f"no person {person_id!r}")

    async def set_password_hash(self, person_id: str, hashed: str, *, must_change: bool) -> None:
        await self._update(
            person_id,
            password_hash=hashed,
            must_change_password=must_change,
            failed_logins=0,
            locked_until=None,
        )

    async def record_failure(self, person_id: str, *, lock_after: int, lock_s: float) -> bool:
        """One more wrong password; True when this one locked the account."""
        async with self.db.session(writes=True) as s, s.begin():
            row = (
                await s.execute(select(Person).where(Person.id == person_id).with_for_update())
            ).scalar_one()
            row.failed_logins += 1
            if row.failed_logins >= lock_after:
                row.failed_logins = 0
                row.locked_until = time.time() + lock_s
                return True
        return False

    async def record_success(self, person_id: str) -> None:
        await self._update(person_id, failed_logins=0, locked_until=None)

    async def set_disabled(self, person_id: str, disabled: bool) -> None:
        await self._update(person_id, disabled_at=time.time() if disabled else None)

    async def people(self, school_id: str | None = None) -> list[PersonView]:
        q = select(Person).order_by(Person.name)
        if school_id is not None:
            q = q.where(
                Person.id.in_(select(RoleGrant.person_id).where(RoleGrant.school_id == school_id))
            )
        async with self.db.session() as s:
            return [PersonView.of(p) for p in (await s.execute(q)).scalars().all()]

    async def names(self, person_ids: Iterable[str]) -> dict[str, str]:
        ids = list(set(person_ids))
        if not ids:
            return {}
        async with self.db.session() as s:
            rows = await s.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))
            return {pid: name for pid, name in rows.all()}

    # -- roles ------------------------------------------------------------------

    async def grant(self, person_id: str, role: PersonRole, school_id: str | None) -> None:
        if role is PersonRole.DISTRICT_ADMIN:
            school_id = None
        elif school_id is None:
            raise InvalidMessage(f"a {role} role is held in a school: school is required")
        async with self.db.session() as s, s.begin():
            have = await s.execute(
                select(RoleGrant.id).where(
                    RoleGrant.person_id == person_id,
                    RoleGrant.role == str(role),
                    RoleGrant.school_id.is_(None)
                    if school_id is None
                    else RoleGrant.school_id == school_id,
                )
            )
            if have.first() is None:
                s.add(RoleGrant(person_id=person_id, role=str(role), school_id=school_id))

    async def revoke(self, person_id: str, role: PersonRole, school_id: str | None) -> None:
        async with self.db.session() as s, s.begin():
            q = delete(RoleGrant).where(
                RoleGrant.person_id == person_id, RoleGrant.role == str(role)
            )
            if school_id is not None:
                q = q.where(RoleGrant.school_id == school_id)
            await s.execute(q)

    async def principal(self, person_id: str) -> Principal:
        """Everything the access policy asks about this person."""
        async with self.db.session() as s:
            person = await s.get(Person, person_id)
            if person is None:
                raise PersonNotFound(f"no person {person_id!r}")
            grants = (
                await s.execute(
                    select(RoleGrant.role, RoleGrant.school_id).where(
                        RoleGrant.person_id == person_id
                    )
                )
            ).all()
            caseload = (
                (
                    await s.execute(
                        select(CaseloadEntry.teacher_id).where(CaseloadEntry.coach_id == person_id)
                    )
                )
                .scalars()
                .all()
            )
            groups = (
                (
                    await s.execute(
                        select(GroupMember.group_id).where(GroupMember.person_id == person_id)
                    )
                )
                .scalars()
                .all()
            )
        return Principal(
            person_id=person.id,
            name=person.name,
            email=person.email,
            grants=frozenset(Grant(PersonRole(r), sc) for r, sc in grants),
            caseload=frozenset(caseload),
            groups=frozenset(groups),
            must_change_password=person.must_change_password,
        )

    async def holders(self, role: PersonRole, school_id: str | None = None) -> list[str]:
        q = select(RoleGrant.person_id).where(RoleGrant.role == str(role))
        if school_id is not None:
            q = q.where(RoleGrant.school_id == school_id)
        async with self.db.session() as s:
            return list(dict.fromkeys((await s.execute(q)).scalars().all()))

    # -- caseloads --------------------------------------------------------------

    async def add_to_caseload(self, coach_id: str, teacher_ids: Sequence[str]) -> None:
        async with self.db.session() as s, s.begin():
            have = set(
                (
                    await s.execute(
                        select(CaseloadEntry.teacher_id).where(CaseloadEntry.coach_id == coach_id)
                    )
                ).scalars()
            )
            if len(have | set(teacher_ids)) > MAX_CASELOAD:
                raise InvalidMessage(f"a caseload holds at most {MAX_CASELOAD} teachers")
            now = time.time()
            for tid in dict.fromkeys(teacher_ids):
                if tid not in have:
                    s.add(CaseloadEntry(coach_id=coach_id, teacher_id=tid, created_at=now))

    async def remove_from_caseload(self, coach_id: str, teacher_id: str) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(
                delete(CaseloadEntry).where(
                    CaseloadEntry.coach_id == coach_id, CaseloadEntry.teacher_id == teacher_id
                )
            )

    async def caseload(self, coach_id: str) -> list[PersonView]:
        q = (
            select(Person)
            .join(CaseloadEntry, CaseloadEntry.teacher_id == Person.id)
            .where(CaseloadEntry.coach_id == coach_id)
            .order_by(Person.name)
        )
        async with self.db.session() as s:
            return [PersonView.of(p) for p in (await s.execute(q)).scalars().all()]

    # -- groups -----------------------------------------------------------------

    async def create_group(
        self, name: str, member_ids: Sequence[str], *, by: str, school_id: str | None = None
    ) -> str:
        members = list(dict.fromkeys([by, *member_ids]))
        if len(members) > MAX_GROUP_MEMBERS:
            raise InvalidMessage(f"a group has at most {MAX_GROUP_MEMBERS} members")
        group = Group(
            id=new_id("gr-"),
            name=clean_name(name, "group name"),
            school_id=school_id,
            created_by=by,
            created_at=time.time(),
        )
        async with self.db.session() as s, s.begin():
            s.add(group)
            await s.flush()
            for pid in members:
                s.add(GroupMember(group_id=group.id, person_id=pid))
        return group.id

    async def group(self, group_id: str) -> tuple[str, list[str]]:
        """A group's name and its members' ids."""
        async with self.db.session() as s:
            g = await s.get(Group, group_id)
            if g is None:
                raise PersonNotFound(f"no group {group_id!r}")
            members = (
                (
                    await s.execute(
                        select(GroupMember.person_id).where(GroupMember.group_id == group_id)
                    )
                )
                .scalars()
                .all()
            )
        return g.name, list(members)

    async def groups_of(self, person_id: str) -> list[dict[str, str]]:
        q = (
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.person_id == person_id)
            .order_by(Group.name)
        )
        async with self.db.session() as s:
            return [{"id": g.id, "name": g.name} for g in (await s.execute(q)).scalars().all()]

    # -- allowed domains ---------------------------------------------------------

    async def allow_domain(self, domain: str, school_id: str | None) -> None:
        row = AllowedDomain(
            domain=clean_domain(domain), school_id=school_id, created_at=time.time()
        )
        async with self.db.session() as s, s.begin():
            await s.merge(row)

    async def disallow_domain(self, domain: str) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(
                delete(AllowedDomain).where(AllowedDomain.domain == clean_domain(domain))
            )

    async def allowed_domain(self, domain: str) -> AllowedDomain | None:
        async with self.db.session() as s:
            return await s.get(AllowedDomain, domain.lower())

    async def allowed_domains(self) -> list[dict[str, str | None]]:
        async with self.db.session() as s:
            rows = (await s.execute(select(AllowedDomain).order_by(AllowedDomain.domain))).scalars()
            return [{"domain": r.domain, "school": r.school_id} for r in rows.all()]
