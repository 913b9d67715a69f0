"""Pushed groups over real HTTP into the real scim2-server: the app's group holds exactly the
directory group's members who have an account there, nested groups included, after every change."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    TARGET_TOKEN,
    assign,
    eventually,
    person,
    remote_user,
    scim_app,
)
from tests.support.faulty import Fault, FaultyTarget
from tests.support.remote_groups import CORE_GROUP, remote_group, remote_ids, remote_members
from tests.support.servers import serve_app


def suffix() -> str:
    return str(time.monotonic_ns() % 10**8)


def enable(api: httpx.Client, app_id: str, **changes: Any) -> None:
    settings = api.get(f"/apps/{app_id}/provisioning").json()
    settings.pop("last_test", None)
    features = {**settings["features"], "push_groups": True}
    answer = api.put(
        f"/apps/{app_id}/provisioning",
        json={**settings, "enabled": True, "features": features, **changes},
    )
    assert answer.status_code == 200, answer.text


def new_user(api: httpx.Client, login: str) -> dict[str, Any]:
    answer = api.post("/users", json=person(login))
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def new_group(api: httpx.Client, name: str, *members: dict[str, Any]) -> dict[str, Any]:
    group: dict[str, Any] = api.post("/groups", json={"name": name}).json()
    for user in members:
        api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
    return group


def login(user: dict[str, Any]) -> str:
    return str(user["profile"]["login"])


def push(api: httpx.Client, app_id: str, group: str, **body: Any) -> dict[str, Any]:
    answer = api.post(f"/apps/{app_id}/push-groups", json={"group": group, **body})
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()
    return result


def pushed(api: httpx.Client, app_id: str, group_id: str) -> dict[str, Any]:
    result: dict[str, Any] = api.get(f"/apps/{app_id}/push-groups/{group_id}").json()
    return result


def event(api: httpx.Client, app_id: str, action: str) -> dict[str, Any]:
    """The newest ``action`` event of the app (written just after the app was changed)."""

    def find() -> dict[str, Any] | None:
        items = api.get("/logs", params={"action": action, "app": app_id}).json()["items"]
        return items[0] if items else None

    found: dict[str, Any] = eventually(find)
    return found


def settled(api: httpx.Client, app_id: str) -> bool:
    """No task of the app is queued or running: nothing will change the app behind a check."""
    return not any(
        api.get("/tasks", params={"app": app_id, "status": status}).json()["items"]
        for status in ("queued", "running")
    )


def test_pushed_group_tracks_the_directory_after_every_change(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"push-{s}", target)).json()
    ann, bob, cy, dee = (new_user(api, f"{n}.{s}") for n in ("ann", "bob", "cy", "dee"))
    staff = new_group(api, f"Staff-{s}", ann, bob, dee)  # who is assigned to the app
    platform = new_group(api, f"Platform-{s}", bob)
    eng = new_group(api, f"Eng-{s}", ann, cy)
    api.put(f"/groups/{eng['id']}/groups/{platform['id']}").raise_for_status()  # nested
    assign(api, app["id"], "group", staff["id"])
    enable(api, app["id"])
    eventually(lambda: remote_user(scim, login(dee)) is not None)

    out = push(api, app["id"], eng["name"])  # by name
    assert out["status"] == "pending" and out["name"] == eng["name"]
    # Ann directly, Bob through the nested Platform; Cy has no account in the app.
    expected = remote_ids(scim, login(ann), login(bob))
    eventually(lambda: remote_members(scim, eng["name"]) == expected)
    # provisiond's record is written just after the app answered: wait for it too.
    state = eventually(lambda: (p := pushed(api, app["id"], eng["id"]))["status"] == "active"
                       and {m["login"] for m in p["member_list"]} == {login(ann), login(bob)}
                       and p)
    assert state["remote_id"] == remote_group(scim, eng["name"])["id"]  # type: ignore[index]

    # Cy is given an account (assigned through Staff): Cy joins the app's group too.
    api.put(f"/groups/{staff['id']}/users/{cy['id']}").raise_for_status()
    expected = remote_ids(scim, login(ann), login(bob), login(cy)) if eventually(
        lambda: remote_user(scim, login(cy))
    ) else set()
    eventually(lambda: remote_members(scim, eng["name"]) == expected)

    # Bob leaves the nested group: out of the app's group, but his account stays.
    api.delete(f"/groups/{platform['id']}/users/{bob['id']}").raise_for_status()
    expected = remote_ids(scim, login(ann), login(cy))
    eventually(lambda: remote_members(scim, eng["name"]) == expected)
    assert remote_user(scim, login(bob))["active"] is True  # type: ignore[index]

    # Dee joins the nested group: in through nesting.
    api.put(f"/groups/{platform['id']}/users/{dee['id']}").raise_for_status()
    expected = remote_ids(scim, login(ann), login(cy), login(dee))
    eventually(lambda: remote_members(scim, eng["name"]) == expected)

    # Ann leaves the company: deactivated, and out of the app's group.
    api.post(f"/users/{ann['id']}/lifecycle/deactivate").raise_for_status()
    expected = remote_ids(scim, login(cy), login(dee))
    eventually(lambda: remote_members(scim, eng["name"]) == expected)

    # A rename in the directory is a rename in the app; the members stay.
    renamed = f"Engineering-{s}"
    api.patch(f"/groups/{eng['id']}", json={"name": renamed}).raise_for_status()
    eventually(lambda: remote_members(scim, renamed) == expected)
    assert remote_group(scim, eng["name"]) is None

    # Unpush, deleting the app's group.
    answer = api.delete(f"/apps/{app['id']}/push-groups/{eng['id']}", params={"action": "delete"})
    assert answer.status_code == 202 and answer.json()["status"] == "unpushing"
    eventually(lambda: remote_group(scim, renamed) is None)
    eventually(lambda: api.get(f"/apps/{app['id']}/push-groups/{eng['id']}").status_code == 404)

    actions = [e["action"] for e in api.get("/logs", params={"app": app["id"]}).json()["items"]]
    for action in (
        "app.group.push", "app.group.create", "app.group.membership.update",
        "app.group.rename", "app.group.unpush", "app.group.delete",
    ):
        assert action in actions, action
    update = event(api, app["id"], "app.group.membership.update")
    assert update["details"]["requests"] >= 1 and "added_users" in update["details"]


def test_existing_group_of_the_same_name_is_linked_corrected_and_logged(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"link-{s}", target)).json()
    ann, bob = new_user(api, f"ann.{s}"), new_user(api, f"bob.{s}")
    ops = new_group(api, f"Ops-{s}", ann, bob)
    assign(api, app["id"], "group", ops["id"])
    enable(api, app["id"])
    eventually(lambda: remote_user(scim, login(bob)) is not None)
    # provisiond has recorded both accounts (just after the app answered).
    eventually(lambda: settled(api, app["id"]))
    # The app already has a group of that name, holding Ann and a stranger (not Bob).
    stranger = scim.post(
        "Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"x{s}"},
    ).json()
    ann_id = remote_ids(scim, login(ann)).pop()
    existing = scim.post(
        "Groups",
        json={
            "schemas": [CORE_GROUP],
            "displayName": ops["name"],
            "members": [{"value": ann_id}, {"value": stranger["id"]}],
        },
    ).json()

    push(api, app["id"], ops["id"])
    expected = remote_ids(scim, login(ann), login(bob))
    eventually(lambda: remote_members(scim, ops["name"]) == expected)
    state = eventually(lambda: (p := pushed(api, app["id"], ops["id"]))["status"] == "active" and p)
    assert state["linked"] is True and state["remote_id"] == existing["id"]  # not duplicated
    link = event(api, app["id"], "app.group.link")
    assert "1 missing, 1 not in the directory group" in link["message"], link["message"]


def test_an_app_without_patch_gets_the_whole_group_by_put(
    api: httpx.Client, target_put_only: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"put-{s}", target_put_only)).json()
    ann, bob = new_user(api, f"ann.{s}"), new_user(api, f"bob.{s}")
    team = new_group(api, f"Team-{s}", ann, bob)
    assign(api, app["id"], "group", team["id"])
    enable(api, app["id"])
    with httpx.Client(
        base_url=target_put_only + "/", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}
    ) as scim:
        eventually(lambda: remote_user(scim, login(bob)) is not None)
        push(api, app["id"], team["id"])
        expected = remote_ids(scim, login(ann), login(bob))
        eventually(lambda: remote_members(scim, team["name"]) == expected)
        api.delete(f"/groups/{team['id']}/users/{bob['id']}").raise_for_status()
        # Bob loses his account (unassigned) and his membership: the group is PUT whole.
        expected = remote_ids(scim, login(ann))
        eventually(lambda: remote_members(scim, team["name"]) == expected)
    update = event(api, app["id"], "app.group.membership.update")
    assert update["details"]["method"] == "PUT"


def test_unpush_leaves_the_group_and_a_deleted_directory_group_follows_its_action(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"unpush-{s}", target)).json()
    ann = new_user(api, f"ann.{s}")
    kept, doomed = new_group(api, f"Kept-{s}", ann), new_group(api, f"Doomed-{s}", ann)
    assign(api, app["id"], "user", ann["id"])
    enable(api, app["id"])
    eventually(lambda: remote_user(scim, login(ann)) is not None)
    push(api, app["id"], kept["id"])
    push(api, app["id"], doomed["id"], unpush_action="delete")
    ann_id = remote_ids(scim, login(ann))
    eventually(lambda: remote_members(scim, kept["name"]) == ann_id)
    eventually(lambda: remote_members(scim, doomed["name"]) == ann_id)

    api.delete(f"/apps/{app['id']}/push-groups/{kept['id']}").raise_for_status()  # leave
    eventually(lambda: api.get(f"/apps/{app['id']}/push-groups/{kept['id']}").status_code == 404)
    assert remote_members(scim, kept["name"]) == ann_id  # left as it was
    # Changes no longer reach it.
    api.delete(f"/groups/{kept['id']}/users/{ann['id']}").raise_for_status()
    api.delete(f"/groups/{doomed['id']}").raise_for_status()  # pushed with "delete"
    eventually(lambda: remote_group(scim, doomed["name"]) is None)
    assert remote_members(scim, kept["name"]) == ann_id


def test_group_role_is_expressed_through_the_pushed_group(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"grole-{s}", target)).json()
    operators = new_group(api, f"Operators-{s}")  # nobody is a member in the directory
    role = api.post(
        f"/apps/{app['id']}/roles",
        json={"name": "operator", "expression": {"kind": "group", "value": operators["name"]}},
    )
    assert role.status_code == 201, role.text
    ann, bob = new_user(api, f"ann.{s}"), new_user(api, f"bob.{s}")
    enable(api, app["id"])
    push(api, app["id"], operators["id"])
    granted = assign(api, app["id"], "user", ann["id"], role="operator")
    assign(api, app["id"], "user", bob["id"])
    eventually(lambda: remote_user(scim, login(bob)) is not None)
    expected = remote_ids(scim, login(ann))  # the role holder, not Bob
    eventually(lambda: remote_members(scim, operators["name"]) == expected)
    assert "roles" not in (remote_user(scim, login(ann)) or {}) or not remote_user(
        scim, login(ann)
    )["roles"]  # type: ignore[index]
    # Re-expressed as a SCIM roles value: Ann leaves the group the role named until now.
    api.patch(
        f"/apps/{app['id']}/roles/{role.json()['id']}",
        json={"expression": {"kind": "scim_role", "value": "operator"}},
    ).raise_for_status()
    eventually(lambda: remote_members(scim, operators["name"]) == set())
    eventually(
        lambda: [r["value"] for r in (remote_user(scim, login(ann)) or {}).get("roles") or []]
        == ["operator"]
    )
    # And back: she joins it again; unassigned, she leaves it.
    api.patch(
        f"/apps/{app['id']}/roles/{role.json()['id']}",
        json={"expression": {"kind": "group", "value": operators["name"]}},
    ).raise_for_status()
    eventually(lambda: remote_members(scim, operators["name"]) == expected)
    api.delete(f"/apps/{app['id']}/assignments/{granted['id']}").raise_for_status()
    eventually(lambda: remote_members(scim, operators["name"]) == set())


def test_bad_push_requests_are_refused_with_a_reason(api: httpx.Client, target: str) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"badpush-{s}", target)).json()
    group = new_group(api, f"G-{s}")
    off = api.post(f"/apps/{app['id']}/push-groups", json={"group": group["id"]})
    assert off.status_code == 409 and "push_groups" in off.json()["detail"]
    enable(api, app["id"])
    missing = api.post(f"/apps/{app['id']}/push-groups", json={"group": "no-such-group"})
    assert missing.status_code == 404 and "no-such-group" in missing.json()["detail"]
    bad = api.post(f"/apps/{app['id']}/push-groups", json={"group": group["id"], "unpush_action": "x"})
    assert bad.status_code == 422
    push(api, app["id"], group["id"])
    again = api.post(f"/apps/{app['id']}/push-groups", json={"group": group["name"]})
    assert again.status_code == 409 and "already pushed" in again.json()["detail"]
    nothing = api.delete(f"/apps/{app['id']}/push-groups/{new_group(api, f'H-{s}')['id']}")
    assert nothing.status_code == 404
    for body in ({"group": ""}, {"group": "x" * 300}, {"group": group["id"], "extra": 1}, {}):
        refused = api.post(f"/apps/{app['id']}/push-groups", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    bogus = api.delete(f"/apps/{app['id']}/push-groups/{group['id']}", params={"action": "drop"})
    assert bogus.status_code == 422
    assert api.post(f"/apps/{app['id']}/push-groups/no-such/sync").status_code == 404
    assert api.post("/apps/no-such-app/push-groups", json={"group": group["id"]}).status_code == 404
    # Being unpushed: a sync is refused with the reason; nothing was half-applied meanwhile.
    api.delete(f"/apps/{app['id']}/push-groups/{group['id']}").raise_for_status()
    late = api.post(f"/apps/{app['id']}/push-groups/{group['id']}/sync")
    assert late.status_code in (404, 409), late.text  # 404 once the worker has unpushed it


@pytest.fixture
def faulty() -> Iterator[tuple[FaultyTarget, str]]:
    target = FaultyTarget(TARGET_TOKEN)
    with serve_app(target) as url:
        yield target, url


def test_a_target_that_rejects_the_group_fails_visibly_with_its_message(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, url = faulty
    s = suffix()
    app = api.post("/apps", json=scim_app(f"rejects-{s}", url)).json()
    ann = new_user(api, f"ann.{s}")
    team = new_group(api, f"Team-{s}", ann)
    assign(api, app["id"], "user", ann["id"])
    enable(api, app["id"])
    eventually(lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"])
    target.inject(
        Fault(
            "POST", 400, times=1,
            body={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400", "scimType": "invalidValue",
                "detail": "group names must not contain a dash",
            },
        )
    )
    push(api, app["id"], team["id"])
    dead = eventually(
        lambda: [
            t for t in api.get("/tasks", params={"status": "dead", "app": app["id"]}).json()["items"]
        ]
    )
    assert "group names must not contain a dash" in dead[0]["last_error"]
    state = pushed(api, app["id"], team["id"])
    assert state["status"] == "failed" and "must not contain a dash" in state["last_error"]
    # Retried once the target accepts it.
    api.post(f"/tasks/{dead[0]['id']}/retry").raise_for_status()
    eventually(lambda: pushed(api, app["id"], team["id"])["status"] == "active")
    assert pushed(api, app["id"], team["id"])["members"] == 1


def test_drift_in_the_app_is_corrected_by_a_sync_and_a_deleted_group_comes_back(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"drift-{s}", target)).json()
    ann, bob = new_user(api, f"ann.{s}"), new_user(api, f"bob.{s}")
    team = new_group(api, f"Team-{s}", ann, bob)
    assign(api, app["id"], "group", team["id"])
    enable(api, app["id"])
    eventually(lambda: remote_user(scim, login(bob)) is not None)
    push(api, app["id"], team["id"])
    expected = remote_ids(scim, login(ann), login(bob))
    eventually(lambda: remote_members(scim, team["name"]) == expected)
    remote = remote_group(scim, team["name"])
    assert remote is not None
    eventually(lambda: settled(api, app["id"]))  # a late re-check would undo the drift below

    # Someone removes Bob in the app itself: an admin's sync reads the group back and fixes it.
    bob_id = remote_ids(scim, login(bob)).pop()
    scim.patch(
        f"Groups/{remote['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": f'members[value eq "{bob_id}"]'}],
        },
    ).raise_for_status()
    assert remote_members(scim, team["name"]) == expected - {bob_id}
    answer = api.post(f"/apps/{app['id']}/push-groups/{team['id']}/sync")
    assert answer.status_code == 202, answer.text
    eventually(lambda: remote_members(scim, team["name"]) == expected)
    drift = event(api, app["id"], "app.group.drift")
    assert drift["details"]["missing"] == 1 and drift["details"]["unexpected"] == 0

    # The group is deleted in the app: the next sync creates it again.
    scim.delete(f"Groups/{remote['id']}").raise_for_status()
    api.post(f"/apps/{app['id']}/sync").raise_for_status()
    eventually(lambda: remote_members(scim, team["name"]) == expected)
    assert remote_group(scim, team["name"])["id"] != remote["id"]  # type: ignore[index]


def test_changes_made_while_the_feature_is_off_are_applied_when_it_is_back_on(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    s = suffix()
    app = api.post("/apps", json=scim_app(f"feature-{s}", target)).json()
    ann, bob = new_user(api, f"ann.{s}"), new_user(api, f"bob.{s}")
    for user in (ann, bob):
        assign(api, app["id"], "user", user["id"])
    team = new_group(api, f"Team-{s}", ann)
    enable(api, app["id"])
    eventually(lambda: remote_user(scim, login(bob)) is not None)
    push(api, app["id"], team["id"])
    eventually(lambda: remote_members(scim, team["name"]) == remote_ids(scim, login(ann)))

    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    settings["features"]["push_groups"] = False
    api.put(f"/apps/{app['id']}/provisioning", json=settings).raise_for_status()
    api.put(f"/groups/{team['id']}/users/{bob['id']}").raise_for_status()
    skipped = event(api, app["id"], "app.group.sync")
    assert skipped["outcome"] == "skipped" and "push_groups" in skipped["message"]
    assert remote_members(scim, team["name"]) == remote_ids(scim, login(ann))

    settings["features"]["push_groups"] = True
    api.put(f"/apps/{app['id']}/provisioning", json=settings).raise_for_status()
    expected = remote_ids(scim, login(ann), login(bob))
    eventually(lambda: remote_members(scim, team["name"]) == expected)


@pytest.mark.parametrize("seed", [11, 29])
def test_random_changes_keep_the_app_group_equal_to_a_reference_model(
    api: httpx.Client, scim: httpx.Client, target: str, seed: int
) -> None:
    """A random run of membership, nesting, lifecycle and rename changes; after each one the
    app's group must equal the reference: the effective members (nesting flattened) who are
    active, since every user is assigned and only active users keep an active account."""
    import random

    rng = random.Random(seed)
    s = suffix()
    app = api.post("/apps", json=scim_app(f"model-{seed}-{s}", target)).json()
    users = [new_user(api, f"u{i}.{s}") for i in range(6)]
    for user in users:
        assign(api, app["id"], "user", user["id"])
    top, mid, leaf = (new_group(api, f"{n}-{s}") for n in ("Top", "Mid", "Leaf"))
    enable(api, app["id"])
    for user in users:
        eventually(lambda user=user: remote_user(scim, login(user)) is not None)
    remote_of = {u["id"]: remote_ids(scim, login(u)).pop() for u in users}
    push(api, app["id"], top["id"])

    direct: dict[str, set[str]] = {g["id"]: set() for g in (top, mid, leaf)}
    edges: set[tuple[str, str]] = set()  # (parent, child), only ever downwards: no cycle
    active = {u["id"] for u in users}
    name = top["name"]

    def expected() -> set[str]:
        reached, frontier = {top["id"]}, [top["id"]]
        while frontier:
            parent = frontier.pop()
            for p, child in edges:
                if p == parent and child not in reached:
                    reached.add(child)
                    frontier.append(child)
        members = set().union(*(direct[g] for g in reached))
        return {remote_of[u] for u in members & active}

    downward = [(top["id"], mid["id"]), (top["id"], leaf["id"]), (mid["id"], leaf["id"])]
    for step in range(18):
        choice = rng.random()
        user = rng.choice(users)["id"]
        group = rng.choice(list(direct))
        if choice < 0.45:
            if user in direct[group]:
                api.delete(f"/groups/{group}/users/{user}").raise_for_status()
                direct[group].discard(user)
            else:
                api.put(f"/groups/{group}/users/{user}").raise_for_status()
                direct[group].add(user)
        elif choice < 0.7:
            parent, child = rng.choice(downward)
            if (parent, child) in edges:
                api.delete(f"/groups/{parent}/groups/{child}").raise_for_status()
                edges.discard((parent, child))
            else:
                api.put(f"/groups/{parent}/groups/{child}").raise_for_status()
                edges.add((parent, child))
                # The reverse would be a cycle: refused, nothing changes.
                refused = api.put(f"/groups/{child}/groups/{parent}")
                assert refused.status_code == 409, refused.text
        elif choice < 0.9:
            action = "suspend" if user in active else "unsuspend"
            api.post(f"/users/{user}/lifecycle/{action}").raise_for_status()
            active.symmetric_difference_update({user})
        else:
            name = f"Top-{step}-{s}"
            api.patch(f"/groups/{top['id']}", json={"name": name}).raise_for_status()
        want = expected()
        eventually(
            lambda name=name, want=want: (remote_members(scim, name) or set()) == want,
            timeout=15,
        )


def test_a_failed_group_write_is_retried_after_reading_the_group_back(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    """A write that failed (or timed out) may have been applied: the retry reads the app's
    group before it plans, so it never resends a stale difference."""
    target, url = faulty
    s = suffix()
    app = api.post("/apps", json=scim_app(f"reread-{s}", url)).json()
    ann, bob = new_user(api, f"ann.{s}"), new_user(api, f"bob.{s}")
    for user in (ann, bob):
        assign(api, app["id"], "user", user["id"])
    team = new_group(api, f"Team-{s}", ann)
    enable(api, app["id"])
    eventually(lambda: len(api.get(f"/apps/{app['id']}/accounts").json()["items"]) == 2)
    push(api, app["id"], team["id"])
    remote_id = eventually(lambda: pushed(api, app["id"], team["id"])["remote_id"])
    target.inject(Fault("PATCH", 503, times=1))
    seen = len(target.requests)
    api.put(f"/groups/{team['id']}/users/{bob['id']}").raise_for_status()
    eventually(lambda: pushed(api, app["id"], team["id"])["members"] == 2, timeout=60)
    after = [r for r in target.requests[seen:] if "/Groups" in r[1]]
    patch_at = [i for i, r in enumerate(after) if r[0] == "PATCH"]
    assert len(patch_at) == 2, after  # the failed one, then the retry
    between = after[patch_at[0] + 1 : patch_at[1]]
    assert ("GET", f"/Groups/{remote_id}") in between, after
