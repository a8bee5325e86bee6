"""Server sockets disable Nagle's algorithm (a response's two TLS records would otherwise wait ~40 ms)."""

from __future__ import annotations

import socket

from common.net import listening_socket


def test_listening_sockets_set_tcp_nodelay_and_accepted_ones_inherit_it() -> None:
    """The listener has TCP_NODELAY, and so does a connection it accepts."""
    with listening_socket("127.0.0.1", 0) as listener:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
