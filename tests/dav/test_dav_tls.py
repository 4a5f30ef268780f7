"""https as the README sets it up for Windows Explorer: a certificate made with the
README's own ``openssl`` command, ``serve --tls-cert/--tls-key``, and a client that
trusts that certificate (as Windows does once it is in its Root store)."""

from __future__ import annotations

import re
import shlex
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from core import UserInfo
from tests.conftest import BackendSetup
from tests.support import ROOT
from tests.support.servers import drivegate_server

README = ROOT / "README.md"


def _readme_openssl_command(workdir: Path) -> list[str]:
    """The README's certificate command, with its example name and paths made local."""
    block = re.search(r"(openssl req -x509.*?)\n(?!\s)", README.read_text(), re.S)
    assert block is not None, "the README shows how to make a certificate"
    command = block.group(1).replace("\\\n", " ")
    command = command.replace("drive.lan", "localhost").replace("192.168.1.20", "127.0.0.1")
    command = command.replace("/etc/drivegate/", f"{workdir}/")
    return shlex.split(command)


def test_the_readme_certificate_serves_webdav_over_https(
    backend: BackendSetup, alice: UserInfo, tmp_path: Path
) -> None:
    subprocess.run(_readme_openssl_command(tmp_path), check=True, capture_output=True)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    options = ("--tls-cert", str(cert), "--tls-key", str(key))
    with drivegate_server(backend.env, tmp_path, *options) as url:
        assert url.startswith("https://")
        trusting = ssl.create_default_context(cafile=str(cert))
        base = url.replace("127.0.0.1", "localhost")
        auth = ("alice", "alice-password")
        with httpx.Client(base_url=base, auth=auth, verify=trusting) as client:
            assert client.put("/over-tls.txt", content=b"secret").status_code == 201
            listing = client.request("PROPFIND", "/", headers={"Depth": "1"})
            assert listing.status_code == 207
            assert "over-tls.txt" in listing.text
            assert client.get("/over-tls.txt").content == b"secret"
        with pytest.raises(httpx.ConnectError):  # the IP is in the certificate too
            httpx.get(url + "healthz", verify=ssl.create_default_context())  # but not trusted
        assert httpx.get(url + "healthz", verify=trusting).status_code == 200
