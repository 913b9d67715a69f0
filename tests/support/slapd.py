"""A throwaway OpenLDAP server for tests: Debian's slapd on a loopback port, with its own
slapd.conf, mdb database and (for StartTLS/LDAPS) a self-signed certificate, in a temporary
directory. Nothing of the system's slapd is used (scripts/ensure-slapd.sh installs it).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port

SLAPD = "/usr/sbin/slapd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "slapd-test-secret"
FULL_SCHEMA = ("core", "cosine", "inetorgperson")
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class Slapd:
    host: str
    port: int  # ldap:// (StartTLS offered)
    tls_port: int  # ldaps://
    ca_file: str  # the self-signed certificate, to verify the server by

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:{self.tls_port}"


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _config(directory: Path, schemas: Sequence[str], cert: Path, key: Path) -> Path:
    includes = "\n".join(f"include {SCHEMA_DIR / name}.schema" for name in schemas)
    data = directory / "data"
    data.mkdir()
    conf = directory / "slapd.conf"
    conf.write_text(
        f"""{includes}
pidfile {directory / "slapd.pid"}
modulepath {MODULE_DIR}
moduleload back_mdb
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}

database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {data}
index objectClass eq
index uid,cn,mail eq
index entryUUID eq
"""
    )
    return conf


@contextmanager
def slapd(schemas: Sequence[str] = FULL_SCHEMA) -> Iterator[Slapd]:
    """slapd serving ``SUFFIX`` (its root entry created), until the block ends."""
    directory = Path(tempfile.mkdtemp(prefix="provisiond-slapd-"))
    cert, key = _certificate(directory)
    conf = _config(directory, schemas, cert, key)
    port, tls_port = free_port(), free_port()
    urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
    log = (directory / "slapd.log").open("w")
    # -d 0: stay in the foreground (the test owns the process) and log nothing extra.
    process = subprocess.Popen(
        [SLAPD, "-f", str(conf), "-h", urls, "-d", "0"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_until_listening(process, port, directory)
        server = Slapd("127.0.0.1", port, tls_port, str(cert))
        _add_suffix(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, directory: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"slapd exited ({process.returncode}): {(directory / 'slapd.log').read_text()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"slapd did not listen on {port} within {STARTUP_SECONDS} s")


def _add_suffix(server: Slapd) -> None:
    import ldap3

    conn = ldap3.Connection(
        ldap3.Server(server.host, port=server.port), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True
    )
    try:
        conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
    finally:
        conn.unbind()


def add_ous(server: Slapd, base: str, *names: str) -> dict[str, str]:
    """``base`` (an organizationalUnit under SUFFIX) and OUs under it; their DNs by name."""
    import ldap3

    conn = ldap3.Connection(
        ldap3.Server(server.host, port=server.port), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True
    )
    try:
        top = f"ou={base},{SUFFIX}"
        assert conn.add(top, ["organizationalUnit"]), conn.result
        out = {}
        for name in names:
            out[name] = f"ou={name},{top}"
            assert conn.add(out[name], ["organizationalUnit"]), conn.result
        return out
    finally:
        conn.unbind()


def read(server: Slapd, base: str, query: str = "(objectClass=*)") -> dict[str, dict[str, Any]]:
    """What the directory holds under ``base``, as the admin sees it: attributes by entry DN."""
    import ldap3

    conn = ldap3.Connection(
        ldap3.Server(server.host, port=server.port), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True
    )
    try:
        conn.search(base, query, attributes=["*"])
        return {e.entry_dn: e.entry_attributes_as_dict for e in conn.entries}
    finally:
        conn.unbind()


def admin_connection(server: Slapd) -> Any:
    """An ldap3 connection bound as the directory's admin (close it with ``unbind``)."""
    import ldap3

    return ldap3.Connection(
        ldap3.Server(server.host, port=server.port), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True
    )
