"""Seed a demo directory and app through the REST API, the way an administrator would."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Radia",
    "Edsger",
    "Frances",
    "John",
    "Katherine",
    "Tim",
    "Hedy",
    "Claude",
    "Annie",
    "Donald",
    "Sophie",
    "Niklaus",
]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Perlman",
    "Dijkstra",
    "Allen",
    "Backus",
    "Johnson",
    "Berners-Lee",
    "Lamarr",
    "Shannon",
    "Easley",
    "Knuth",
    "Wilson",
    "Wirth",
]
GROUPS = {"Engineering": "Engineering", "Support": "Support", "Sales": "Sales", "Leads": None}
TITLES = {"Engineering": "Engineer", "Support": "Support Specialist", "Sales": "Account Executive"}


def _check(response: httpx.Response) -> Any:
    if response.is_error:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json() if response.content else None


def seed(
    base: str, token: str, target_url: str, target_token: str, *, users: int = 50
) -> dict[str, Any]:
    rng = random.Random(7)  # the same demo every time
    with httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        groups = {name: _check(api.post("/groups", json={"name": name})) for name in GROUPS}
        departments = [d for d in GROUPS.values() if d]
        created = []
        for index in range(users):
            first, last = FIRST[index % len(FIRST)], LAST[(index * 7) % len(LAST)]
            department = departments[index % len(departments)]
            login = f"{first.lower()}.{last.lower().replace('-', '')}{index}"
            user = _check(
                api.post(
                    "/users",
                    json={
                        "profile": {
                            "login": login,
                            "email": f"{login}@example.org",
                            "firstName": first,
                            "lastName": last,
                            "department": department,
                            "title": TITLES[department],
                            "employeeNumber": f"E{1000 + index}",
                        }
                    },
                )
            )
            created.append(user)
            _check(api.put(f"/groups/{groups[department]['id']}/users/{user['id']}"))
            if rng.random() < 0.15:
                _check(api.put(f"/groups/{groups['Leads']['id']}/users/{user['id']}"))
        app = _check(
            api.post(
                "/apps",
                json={
                    "name": "demo-wiki",
                    "label": "Demo Wiki (scim2-server)",
                    "connector": {
                        "type": "scim2",
                        "base_url": target_url,
                        "auth": {"type": "bearer", "token": target_token},
                    },
                },
            )
        )
        _check(
            api.post(
                f"/apps/{app['id']}/assignments",
                json={"principal_type": "group", "principal_id": groups["Engineering"]["id"]},
            )
        )
        settings = _check(api.get(f"/apps/{app['id']}/provisioning"))
        settings.pop("last_test", None)
        features = {**settings["features"], "push_groups": True}
        enabled = _check(
            api.put(
                f"/apps/{app['id']}/provisioning",
                json={**settings, "enabled": True, "features": features},
            )
        )
        # Engineering is pushed as a group too: the wiki's Engineering group follows it.
        _check(
            api.post(f"/apps/{app['id']}/push-groups", json={"group": groups["Engineering"]["id"]})
        )
        run = enabled["initial_run"]
        deadline = time.monotonic() + 60
        while run["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            run = _check(api.get(f"/runs/{run['id']}"))
        engineers = [u for u in created if u["profile"]["department"] == "Engineering"]
        counts = {k: v for k, v in run["counts"].items() if v}
        return {
            "users": len(created),
            "groups": len(groups),
            "app": app["name"],
            "assigned_group": "Engineering",
            "pushed_group": "Engineering",
            "run_status": run["status"],
            "counts": counts,
            "sample_user": engineers[0]["id"],
        }
