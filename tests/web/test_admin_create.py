"""``provisiond admin create``: the password from stdin (never argv); bad input refused."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from provisiond.cli.main import app
from provisiond.runtime import Runtime
from provisiond.services import admins
from provisiond.store.tables import Admin


def test_admin_create_reads_the_password_from_stdin(runtime: Runtime) -> None:
    env = {
        "PROVISIOND_DATABASE_URL": runtime.settings.effective_database_url,
        "PROVISIOND_SECRET_KEY": "test-secret-key",
    }
    runner = CliRunner()
    made = runner.invoke(
        app,
        ["admin", "create", "--username", "Grace", "--role", "help_desk"],
        input="a long enough password\n",
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert "created console admin grace (help_desk)" in made.output
    short = runner.invoke(app, ["admin", "create", "--username", "x1"], input="short\n", env=env)
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    grant = runner.invoke(
        app, ["admin", "create", "--username", "x2", "--app", "nope"], input="a" * 20, env=env
    )
    assert grant.exit_code == 1 and "only an app_admin" in grant.output
    with runtime.db.session() as session:
        admin = session.scalars(select(Admin)).one()
        assert admin.username == "grace" and admin.password_hash.startswith("$argon2id$")
        assert admins.sign_in(session, "grace", "a long enough password", "c").id == admin.id
