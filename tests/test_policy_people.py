"""The access policy for signed-in persons, as one table: person (by
role and relation) x lesson x action -> what they get. Each row names a
person, a lesson they stand in some relation to, and what the policy
answers: the role they read it as (or no access), whether they join it
live, whether they may share it, schedule with its teacher, and whether
their reads are audited."""

from __future__ import annotations

import pytest

from server.access.policy import (
    PERSON_MAY,
    AccessPolicy,
    Item,
    LessonFacts,
    PersonAction,
    Relation,
    audited,
    may_manage_school,
    may_schedule_with,
    may_share,
    person_live_role,
    person_may,
    person_reader,
    relation,
)
from server.core.roles import Role
from server.people.principal import Grant, PersonRole, Principal
from server.storage.sessions import LessonPeople

S1, S2 = "school-1", "school-2"
T1, T2 = "teacher-1", "teacher-2"  # T1 is in the coach's caseload, T2 is not

PERSONS: dict[str, Principal] = {
    "teacher": Principal(
        "teacher-1", "Mr Okafor", grants=frozenset({Grant(PersonRole.TEACHER, S1)})
    ),
    "other-teacher": Principal(
        "teacher-2", "Mrs Chen", grants=frozenset({Grant(PersonRole.TEACHER, S1)})
    ),
    "coach": Principal(
        "coach-1",
        "Ms Rivera",
        grants=frozenset({Grant(PersonRole.COACH, S1)}),
        caseload=frozenset({T1}),
        groups=frozenset({"g-1"}),
    ),
    "other-coach": Principal(
        "coach-2",
        "Mr Diaz",
        grants=frozenset({Grant(PersonRole.COACH, S2)}),
        caseload=frozenset({"teacher-9"}),
    ),
    "school-admin": Principal(
        "sa-1", "Sam", grants=frozenset({Grant(PersonRole.SCHOOL_ADMIN, S1)})
    ),
    "other-school-admin": Principal(
        "sa-2", "Pat", grants=frozenset({Grant(PersonRole.SCHOOL_ADMIN, S2)})
    ),
    "district-admin": Principal(
        "da-1", "Dana", grants=frozenset({Grant(PersonRole.DISTRICT_ADMIN)})
    ),
    "member": Principal(
        "m-1", "Lee", grants=frozenset({Grant(PersonRole.TEACHER, S2)}), groups=frozenset({"g-1"})
    ),
    "shared": Principal("v-1", "Visitor", grants=frozenset({Grant(PersonRole.TEACHER, S2)})),
    "coach-teacher": Principal(
        "ct-1",
        "Kim",
        caseload=frozenset({T1}),
        grants=frozenset({Grant(PersonRole.COACH, S1), Grant(PersonRole.TEACHER, S2)}),
    ),
}

LESSONS: dict[str, LessonFacts] = {
    # T1's lesson in school 1, scheduled by coach-1, shared with v-1
    "caseload-lesson": LessonFacts.of(LessonPeople(T1, "coach-1", S1), {"v-1": "viewer"}),
    # T2's lesson (outside the caseload), in school 1, the teacher invited coach-2
    "outside-lesson": LessonFacts.of(LessonPeople(T2, None, S1), {"coach-2": "coach"}),
    # a debrief of group g-1
    "group-debrief": LessonFacts.of(LessonPeople("coach-1", None, None, "g-1")),
    # a lesson made with the admin token (no people)
    "anonymous": LessonFacts.of(LessonPeople()),
}

A = None  # reads as an admin
X = "-"  # no access
#: (person, lesson) -> (read as, joins live as, may share, audited)
TABLE: dict[tuple[str, str], tuple[object, object, bool, bool]] = {
    ("teacher", "caseload-lesson"): (Role.TEACHER, Role.TEACHER, True, False),
    ("teacher", "outside-lesson"): (X, X, False, False),
    ("teacher", "group-debrief"): (X, X, False, False),
    ("teacher", "anonymous"): (X, X, False, False),
    ("other-teacher", "caseload-lesson"): (X, X, False, False),
    ("other-teacher", "outside-lesson"): (Role.TEACHER, Role.TEACHER, True, False),
    ("coach", "caseload-lesson"): (Role.COACH, Role.COACH, False, False),
    ("coach", "outside-lesson"): (X, X, False, False),
    ("coach", "group-debrief"): (Role.MEMBER, Role.MEMBER, False, False),
    ("coach", "anonymous"): (X, X, False, False),
    ("other-coach", "caseload-lesson"): (X, X, False, False),
    ("other-coach", "outside-lesson"): (Role.COACH, Role.COACH, False, False),
    ("school-admin", "caseload-lesson"): (Role.OBSERVER, X, False, True),
    ("school-admin", "outside-lesson"): (Role.OBSERVER, X, False, True),
    ("school-admin", "group-debrief"): (X, X, False, False),
    ("other-school-admin", "caseload-lesson"): (X, X, False, False),
    ("district-admin", "caseload-lesson"): (A, X, False, True),
    ("district-admin", "anonymous"): (A, X, False, True),
    ("member", "group-debrief"): (Role.MEMBER, Role.MEMBER, False, False),
    ("member", "caseload-lesson"): (X, X, False, False),
    ("shared", "caseload-lesson"): (Role.OBSERVER, X, False, True),
    ("shared", "outside-lesson"): (X, X, False, False),
    ("coach-teacher", "caseload-lesson"): (Role.COACH, Role.COACH, False, False),
    ("coach-teacher", "outside-lesson"): (X, X, False, False),
}


@pytest.mark.parametrize(("who", "lesson"), list(TABLE))
def test_person_by_lesson(who: str, lesson: str) -> None:
    person, facts = PERSONS[who], LESSONS[lesson]
    reads_as, joins_as, shares, is_audited = TABLE[(who, lesson)]
    reader = person_reader(person, facts)
    if reads_as == X:
        assert reader is None and relation(person, facts) is Relation.NONE
    else:
        assert reader is not None and reader.role == reads_as
        assert reader.person_id == person.person_id and reader.invite_id == f"p-{person.person_id}"
    assert person_live_role(person, facts) == (None if joins_as == X else joins_as)
    assert may_share(person, facts) is shares
    assert audited(person, facts) is is_audited


def test_what_each_reading_role_sees_of_a_lesson() -> None:
    """No relation but a lesson's own teacher and coaches hears whispers; an
    admin of the school and a shared reader get the classroom only."""
    policy = AccessPolicy()
    facts = LESSONS["caseload-lesson"]
    hears = {
        who: policy.can_read(r, Item.WHISPER)
        for who in PERSONS
        if (r := person_reader(PERSONS[who], facts)) is not None
    }
    assert hears == {
        "teacher": True,
        "coach": True,
        "school-admin": False,
        "district-admin": True,
        "shared": False,
        "coach-teacher": True,
    }


#: action -> the persons who may do it (beyond a lesson)
DOES: dict[PersonAction, set[str]] = {
    PersonAction.SCHEDULE_LESSON: {"coach", "other-coach", "coach-teacher"},
    PersonAction.START_GROUP_DEBRIEF: set(PERSONS)
    - {"school-admin", "other-school-admin", "district-admin"},
    PersonAction.MAKE_GROUP: {
        "coach",
        "other-coach",
        "coach-teacher",
        "school-admin",
        "other-school-admin",
        "district-admin",
    },
    PersonAction.MANAGE_PEOPLE: {"school-admin", "other-school-admin", "district-admin"},
    PersonAction.MANAGE_DISTRICT: {"district-admin"},
    PersonAction.SHARE_RECORDING: set(),
    PersonAction.CALENDAR: set(PERSONS),
}


def test_every_person_action_is_in_the_table() -> None:
    assert set(DOES) == set(PersonAction) == set(PERSON_MAY)


@pytest.mark.parametrize("action", list(PersonAction))
def test_who_may_do_what_beyond_a_lesson(action: PersonAction) -> None:
    assert {w for w, p in PERSONS.items() if person_may(p, action)} == DOES[action]


def test_scheduling_is_with_the_caseload_only() -> None:
    coach = PERSONS["coach"]
    assert may_schedule_with(coach, T1) and not may_schedule_with(coach, T2)
    # a teacher in someone's caseload cannot schedule (not a coach)
    assert not may_schedule_with(PERSONS["teacher"], T1)


def test_admins_manage_their_own_school_only() -> None:
    assert may_manage_school(PERSONS["school-admin"], S1)
    assert not may_manage_school(PERSONS["school-admin"], S2)
    assert not may_manage_school(PERSONS["school-admin"], None)
    assert may_manage_school(PERSONS["district-admin"], S2)
    assert not may_manage_school(PERSONS["coach"], S1)
