"""Who a signed-in person is, as the access policy sees them: their roles
(each in a school, or district-wide), their caseload and their groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PersonRole(StrEnum):
    DISTRICT_ADMIN = "district-admin"
    SCHOOL_ADMIN = "school-admin"
    COACH = "coach"
    TEACHER = "teacher"


@dataclass(frozen=True)
class Grant:
    role: PersonRole
    #: None: the whole district (a district admin)
    school_id: str | None = None


@dataclass(frozen=True)
class Principal:
    person_id: str
    name: str
    email: str | None = None
    grants: frozenset[Grant] = frozenset()
    #: the teachers this person coaches (their ids)
    caseload: frozenset[str] = frozenset()
    #: the coaching groups this person is a member of
    groups: frozenset[str] = field(default_factory=frozenset)
    must_change_password: bool = False

    def has(self, role: PersonRole) -> bool:
        return any(g.role is role for g in self.grants)

    def schools(self, role: PersonRole) -> frozenset[str]:
        """The schools this person holds ``role`` in."""
        return frozenset(g.school_id for g in self.grants if g.role is role and g.school_id)

    @property
    def roles(self) -> frozenset[PersonRole]:
        return frozenset(g.role for g in self.grants)

    @property
    def invite_id(self) -> str:
        """The identity this person carries into a lesson (authorship of
        notes and comments, seats): stable across lessons and devices."""
        return f"p-{self.person_id}"

    def describe(self) -> dict[str, object]:
        return {
            "id": self.person_id,
            "name": self.name,
            "email": self.email,
            "roles": sorted(
                ({"role": str(g.role), "school": g.school_id} for g in self.grants),
                key=lambda d: (str(d["role"]), str(d["school"] or "")),
            ),
        }
