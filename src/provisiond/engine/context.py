"""An app as the engine sees it: settings, decrypted credentials, compiled policy, role kinds.

Read once per batch with three small Core queries and cached per app version and policy
version: validating the settings, decrypting the credentials and compiling the policy for
every task was a measurable share of the worker's CPU, and none of them changes between two
versions. ``updated_at`` moves with every change of connector, credentials or provisioning
settings; a saved policy is a new version row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from sqlalchemy import BindParameter, bindparam, func, select
from sqlalchemy.orm import Session

from provisiond.connectors.registry import connector_settings
from provisiond.domain.apps import AnyConnectorSettings, Deprovision, ProvisioningSettings
from provisiond.domain.policy import PolicyDocument
from provisiond.domain.roles import RoleKind
from provisiond.engine.fingerprint import policy_key
from provisiond.engine.mapping import CompiledPolicy, compile_policy, default_policy
from provisiond.engine.roles import RoleSettings
from provisiond.store.secrets import Vault
from provisiond.store.tables import App, AppRole, Policy

# The attributes a saved policy reads: at run time each is accepted, so a custom attribute no
# profile has any more is simply unset for everyone, not a reason to stop provisioning.
_READS = re.compile(r"user\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*[\"']([^\"']+)[\"']\s*\])")


@dataclass(frozen=True)
class AppContext:
    app_id: str
    name: str
    version: str  # changes with every change of the app's settings or credentials
    connector: AnyConnectorSettings | None  # None: planning only (previews), nothing is sent
    provisioning: ProvisioningSettings
    policy: CompiledPolicy
    roles: RoleSettings
    policy_key: bytes  # the app-wide part of every user's fingerprint

    @cached_property
    def deprovision(self) -> Deprovision:
        # Once per context, not per task: the context is cached per app and policy version.
        return self.policy.deprovisioning(self.provisioning)


def policy_in_force(session: Session, app_id: str) -> CompiledPolicy:
    """The app's newest policy, compiled (version 0, the built-in default, when none is saved).

    Only the version is read when it is compiled already."""
    version = session.scalar(
        select(Policy.version).where(Policy.app_id == app_id).order_by(Policy.version.desc()).limit(1)
    )
    if version is None:
        return default_policy()
    return _compiled_version(session, app_id, version)


def policies_in_force(session: Session, app_ids: Iterable[str]) -> dict[str, CompiledPolicy]:
    """:func:`policy_in_force` of many apps, their versions read in one statement."""
    ids = sorted(set(app_ids))
    versions: dict[str, int] = {}
    if ids:
        latest = select(Policy.app_id, func.max(Policy.version)).where(Policy.app_id.in_(ids))
        versions = {app_id: version for app_id, version in session.execute(latest.group_by(Policy.app_id))}
    return {
        app_id: default_policy()
        if versions.get(app_id) is None
        else _compiled_version(session, app_id, versions[app_id])
        for app_id in ids
    }


def _compiled_version(session: Session, app_id: str, version: int) -> CompiledPolicy:
    hit = _COMPILED.get((app_id, version))
    if hit is not None:
        return hit
    document = session.scalar(
        select(Policy.document).where(Policy.app_id == app_id, Policy.version == version)
    )
    compiled = compile_saved(app_id, version, PolicyDocument.model_validate(document).model_dump_json())
    if len(_COMPILED) > 1024:
        _COMPILED.clear()
    _COMPILED[(app_id, version)] = compiled
    return compiled


_COMPILED: dict[tuple[str, int], CompiledPolicy] = {}


@lru_cache(maxsize=256)
def compile_saved(app_id: str, version: int, document_json: str) -> CompiledPolicy:
    document = PolicyDocument.model_validate_json(document_json)
    sources = [document.scope or "", *document.mappings.values()]
    reads = {a or b for source in sources for a, b in _READS.findall(source)}
    return compile_policy(document, version=version, known_attributes=reads)


# (app id, vault) -> (version, provisioning, connector): see the module's docstring.
_SETTINGS: dict[tuple[str, int], tuple[str, ProvisioningSettings, AnyConnectorSettings]] = {}


def read_context(session: Session, vault: Vault, app_id: str) -> AppContext | None:
    """The app's context, or None when the app was deleted."""
    return read_contexts(session, vault, [app_id]).get(app_id)


# Built once (their lists as expanding parameters): a claim reads them for every batch.
_APPS: BindParameter[Any] = bindparam("apps", expanding=True)
_APP_ROWS = select(
    App.id, App.name, App.updated_at, App.provisioning, App.connector, App.credentials
).where(App.id.in_(_APPS))
_POLICY_VERSIONS = (
    select(Policy.app_id, func.max(Policy.version))
    .where(Policy.app_id.in_(_APPS))
    .group_by(Policy.app_id)
)
_ROLE_EXPRESSIONS = select(AppRole.app_id, AppRole.expression).where(AppRole.app_id.in_(_APPS))


def read_contexts(
    session: Session,
    vault: Vault,
    app_ids: Iterable[str],
    errors: dict[str, str] | None = None,
) -> dict[str, AppContext]:
    """The contexts of these apps (the deleted ones left out), in three statements whatever
    their number: the apps, their policies' newest versions, their roles' kinds.

    An app whose settings cannot be used (its credentials cannot be decrypted, its stored
    connector no longer validates, its policy no longer compiles) is left out too, with the
    reason in ``errors``: one broken app never stops the others' work."""
    wanted = sorted(set(app_ids))
    if not wanted:
        return {}
    connection = session.connection()
    rows = connection.execute(_APP_ROWS, {"apps": wanted}).all()
    versions: dict[str, int] = {
        app_id: version
        for app_id, version in connection.execute(_POLICY_VERSIONS, {"apps": wanted})
    }
    kinds: dict[str, set[RoleKind]] = {app_id: set() for app_id in wanted}
    for app_id, expression in connection.execute(_ROLE_EXPRESSIONS, {"apps": wanted}):
        kinds[app_id].add(RoleKind(expression["kind"]))
    found: dict[str, AppContext] = {}
    for row in rows:
        version = versions.get(row.id)
        try:
            provisioning, connector = _settings(row, vault)
            policy = (
                default_policy() if version is None else _compiled_version(session, row.id, version)
            )
        except Exception as exc:
            if errors is None:
                raise
            errors[row.id] = f"the app's settings cannot be used: {exc}"
            continue
        roles = RoleSettings(provisioning.role_mode, frozenset(kinds[row.id]))
        found[row.id] = AppContext(
            app_id=row.id,
            name=row.name,
            version=row.updated_at.isoformat(),
            connector=connector,
            provisioning=provisioning,
            policy=policy,
            roles=roles,
            policy_key=_policy_key(row.id, row.updated_at.isoformat(), policy, provisioning, roles),
        )
    return found


def _settings(row: Any, vault: Vault) -> tuple[ProvisioningSettings, AnyConnectorSettings]:
    version = f"{row.updated_at.isoformat()}|{row.credentials}"
    key = (row.id, id(vault))
    hit = _SETTINGS.get(key)
    if hit is None or hit[0] != version:
        if len(_SETTINGS) > 1024:
            _SETTINGS.clear()
        provisioning = ProvisioningSettings.model_validate(row.provisioning)
        connector = connector_settings(row.connector, vault.open(row.credentials))
        hit = _SETTINGS[key] = (version, provisioning, connector)
    return hit[1], hit[2]


_KEYS: dict[tuple[str, str, int, frozenset[RoleKind], str], bytes] = {}


def _policy_key(
    app_id: str,
    app_version: str,
    policy: CompiledPolicy,
    provisioning: ProvisioningSettings,
    roles: RoleSettings,
) -> bytes:
    """engine.fingerprint.policy_key, cached: it dumps and hashes the whole policy."""
    key = (app_id, app_version, policy.version or 0, roles.kinds, roles.mode)
    hit = _KEYS.get(key)
    if hit is None:
        if len(_KEYS) > 1024:
            _KEYS.clear()
        hit = _KEYS[key] = policy_key(policy.document, provisioning, roles)
    return hit


def planning_context(
    app_id: str,
    policy: CompiledPolicy,
    provisioning: ProvisioningSettings,
    roles: RoleSettings,
    key: bytes,
) -> AppContext:
    """A context to decide with and send nothing: previews of the saved or a draft policy."""
    return AppContext(
        app_id=app_id, name=app_id, version="", connector=None, provisioning=provisioning,
        policy=policy, roles=roles, policy_key=key,
    )


def role_settings_of(
    session: Session, app_id: str, settings: ProvisioningSettings
) -> RoleSettings:
    """The app-wide role inputs of the engine: the mode and the kinds the app defines."""
    expressions: Any = session.scalars(select(AppRole.expression).where(AppRole.app_id == app_id))
    kinds = frozenset(RoleKind(expression["kind"]) for expression in expressions)
    return RoleSettings(settings.role_mode, kinds)
