"""Evaluations per second of a two-clause scope (prints the figure; asserts nothing).

    .venv/bin/python bench/expressions.py
"""

from __future__ import annotations

import time

from provisiond.expressions import compile_expression

SCOPE = 'user.department in ["Engineering", "Support"] && user.employeeType != "contractor"'
DEPARTMENTS = ("Engineering", "Support", "Sales", "Finance")
TYPES = ("employee", "contractor", "intern")


def profiles(count: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"u{i}",
            "status": "active",
            "login": f"user{i}@example.com",
            "email": f"user{i}@example.com",
            "firstName": f"First{i}",
            "lastName": f"Last{i}",
            "displayName": f"First{i} Last{i}",
            "department": DEPARTMENTS[i % len(DEPARTMENTS)],
            "title": "Engineer",
            "manager": "u0",
            "employeeNumber": str(10000 + i),
            "employeeType": TYPES[i % len(TYPES)],
        }
        for i in range(count)
    ]


def main(seconds: float = 2.0) -> None:
    started = time.perf_counter()
    scope = compile_expression(SCOPE, expect="bool", field="scope")
    compiled_in = time.perf_counter() - started
    users = profiles(1000)
    evaluations, in_scope = 0, 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for user in users:
            in_scope += scope.evaluate(user)
        evaluations += len(users)
    elapsed = time.perf_counter() - started
    print(f"scope: {SCOPE}")
    print(f"compile + check: {compiled_in * 1000:.2f} ms")
    print(f"{evaluations / elapsed:,.0f} evaluations/s "
          f"({evaluations:,} in {elapsed:.2f} s, {in_scope:,} in scope)")


if __name__ == "__main__":
    main()
