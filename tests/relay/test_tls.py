"""The relay serving TLS itself: agents over wss:// with a private CA, visitors over HTTPS with
X-Forwarded-Proto https and https public URLs, and a certificate swapped by reload()."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.relay.helpers import agent_at, first_retry_reason
from tests.support.stack import raw_request, read_response, running_relay

trustme = pytest.importorskip("trustme")

# OpenSSL does not match a wildcard directly under a one-label name (*.localhost), so the
# certificate names the tunnel hosts of these tests exactly.
NAMES = ("localhost", "app.localhost", "*.localhost")


class Certs:
    """A private CA and the relay's certificate files, which a test may replace."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "cert.pem"
        self.key_file = folder / "key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.issue()

    def issue(self) -> int:
        """Write a fresh certificate for NAMES; return its serial number."""
        cert = self.ca.issue_cert(*NAMES)
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.key_file))
        return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).serial_number

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture
def certs(tmp_path) -> Certs:
    return Certs(tmp_path)


def tls_relay(certs: Certs):
    return running_relay(tls_cert=str(certs.cert_file), tls_key=str(certs.key_file))


async def served_serial(certs: Certs, port: int) -> int:
    """The serial number of the certificate a new TLS connection to ``port`` is shown."""
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=certs.client_context(), server_hostname="app.localhost"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_agents_over_wss_and_visitors_over_https(certs, app_port):
    async with tls_relay(certs) as relay:
        wss = f"wss://localhost:{relay.agents_port}"
        async with agent_at(wss, app_port, "app", relay.http_port, ca_file=str(certs.ca_file)) as t:
            port = relay.http_port
            assert t.agent.url == f"https://app.localhost:{port}"
            async with httpx.AsyncClient(verify=certs.client_context()) as client:
                response = await client.get(
                    f"https://127.0.0.1:{port}/echo",
                    headers={"Host": f"app.localhost:{port}"},
                    extensions={"sni_hostname": "app.localhost"},
                )
            assert response.status_code == 200
            headers = dict((k.lower(), v) for k, v in response.json()["headers"])
            assert headers["x-forwarded-proto"] == "https"
            assert headers["x-forwarded-for"] == "127.0.0.1"
            # plain HTTP on the TLS port is not served
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw_request(f"app.localhost:{port}"))
            assert b"HTTP/1.1 200" not in await reader.read(4096)
            writer.close()


async def test_agent_without_the_ca_says_the_certificate_is_not_trusted(certs, app_port):
    async with tls_relay(certs) as relay:
        reason = await first_retry_reason(f"wss://localhost:{relay.agents_port}", app_port)
        assert "CERTIFICATE_VERIFY_FAILED" in reason
        assert not relay.tunnels


async def test_reload_picks_up_a_new_certificate(certs, app_port):
    first = x509.load_pem_x509_certificate(certs.cert_file.read_bytes()).serial_number
    async with tls_relay(certs) as relay:
        wss = f"wss://localhost:{relay.agents_port}"
        async with agent_at(wss, app_port, "app", relay.http_port, ca_file=str(certs.ca_file)) as t:
            assert await served_serial(certs, relay.http_port) == first
            second = certs.issue()
            assert second != first
            assert await served_serial(certs, relay.http_port) == first  # until told
            assert relay.reload() == "TLS certificate"
            assert await served_serial(certs, relay.http_port) == second
            assert await served_serial(certs, relay.agents_port) == second
            # the tunnel that was up carries on, over a connection made with the new certificate
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                relay.http_port,
                ssl=certs.client_context(),
                server_hostname="app.localhost",
            )
            writer.write(raw_request(t.host, "/echo"))
            response = await read_response(reader)
            assert response.status == 200 and json.loads(response.body)["method"] == "GET"
            writer.close()
