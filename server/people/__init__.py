"""People: persons, roles, schools, caseloads, groups, sign-in, login sessions."""
