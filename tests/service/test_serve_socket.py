"""`grade serve`'s listening socket: the connections asyncio accepts on it have Nagle's algorithm off."""

from __future__ import annotations

import asyncio
import socket


def test_connections_accepted_by_grade_serve_s_socket_have_tcp_nodelay():
    from grader.cli.service import _listen

    listening = _listen("127.0.0.1", 0)
    port = listening.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listening)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen and seen[0] != 0  # with create_server's proto 0, asyncio left Nagle on: 40 ms per answer
