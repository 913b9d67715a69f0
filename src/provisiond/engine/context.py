"""An app as the engine sees it: settings, decrypted credentials, compiled policy, role kinds.

Read once per batch with three small Core queries and cached per app version and policy
version: validating the settings, decrypting the credentials and compiling the policy for
every task was a measurable share of the worker's CPU, and none of them changes between two
versions. ``updated_at`` moves with every change of connector, credentials or provisioning
settings; a saved policy is a new version row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.connectors.registry import connector_settings
from provisiond.domain.apps import Deprovision, ProvisioningSettings, ScimConnectorSettings
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
    connector: ScimConnectorSettings
    provisioning: ProvisioningSettings
    policy: CompiledPolicy
    roles: RoleSettings
    policy_key: bytes  # the app-wide part of every user's fingerprint

    @property
    def deprovision(self) -> Deprovision:
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
_SETTINGS: dict[tuple[str, int], tuple[str, ProvisioningSettings, ScimConnectorSettings]] = {}


def read_context(session: Session, vault: Vault, app_id: str) -> AppContext | None:
    """The app's context, or None when the app was deleted."""
    row = session.execute(
        select(App.id, App.name, App.updated_at, App.provisioning, App.connector, App.credentials)
        .where(App.id == app_id)
    ).one_or_none()
    if row is None:
        return None
    version = f"{row.updated_at.isoformat()}|{row.credentials}"
    key = (app_id, id(vault))
    hit = _SETTINGS.get(key)
    if hit is None or hit[0] != version:
        if len(_SETTINGS) > 1024:
            _SETTINGS.clear()
        provisioning = ProvisioningSettings.model_validate(row.provisioning)
        connector = connector_settings(row.connector, vault.open(row.credentials))
        hit = _SETTINGS[key] = (version, provisioning, connector)
    _, provisioning, connector = hit
    policy = policy_in_force(session, app_id)
    roles = role_settings_of(session, app_id, provisioning)
    return AppContext(
        app_id=row.id,
        name=row.name,
        version=row.updated_at.isoformat(),
        connector=connector,
        provisioning=provisioning,
        policy=policy,
        roles=roles,
        policy_key=policy_key(policy.document, provisioning, roles),
    )


def role_settings_of(
    session: Session, app_id: str, settings: ProvisioningSettings
) -> RoleSettings:
    """The app-wide role inputs of the engine: the mode and the kinds the app defines."""
    expressions: Any = session.scalars(select(AppRole.expression).where(AppRole.app_id == app_id))
    kinds = frozenset(RoleKind(expression["kind"]) for expression in expressions)
    return RoleSettings(settings.role_mode, kinds)
