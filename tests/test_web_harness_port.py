"""The test server harness survives a port taken between choosing and binding it."""

from __future__ import annotations

import socket

from hepanav.web.harness import Server, make_users


def test_a_taken_port_is_replaced(tmp_path):
    data = tmp_path / "data"
    (data / "cases").mkdir(parents=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server(f"http://127.0.0.1:{port}", data, f"sqlite:///{data / 'web.sqlite'}", port)
        make_users(server.db)
        try:
            server.start()
            assert server.port != port
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert "address already in use" in server.log.read_text()
        finally:
            server.stop()
