"""The floor under base-URL mode: the least an asyncio forwarder does per request on this machine.

Plain HTTP/1.1 in from the agent, a kept-alive TLS connection out to the upstream (one per agent
connection), the credential set, the secret replaced in the body by a bytes replace: none of base-URL
mode's checks, parsing rules, limits, timeouts, redaction forms, policy or audit. Not a proxy anyone
should run: a ruler. Base-URL mode's distance from it is the price of its pipeline, and its own
ratios to direct and to MITM mode bound what a forwarder in this runtime reaches here, whatever its
pipeline costs (issue 18, item 5). Content-Length bodies only: the small JSON workload.

``python -m bench.floor_forwarder UPSTREAM_PORT UPSTREAM_CA_FILE`` prints its port on stdout and
serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import ssl
import sys

from .fixture import SECRET, SERVICE

MARK = f"[REDACTED:{SERVICE}]".encode()
_REPLACED = {b"host", b"authorization", b"connection"}  # set by the floor, not passed on


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class Floor:
    def __init__(self, upstream_port: int, trust: ssl.SSLContext) -> None:
        self.port = upstream_port
        self.trust = trust
        self.injected = b"Host: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n" % (upstream_port, SECRET.encode())

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_length(head))
                line, _, fields = head.partition(b"\r\n")
                method, target, _ = line.split(b" ")
                kept = [f for f in fields.split(b"\r\n") if f and f.split(b":")[0].lower() not in _REPLACED]
                path = b"/" + target.split(b"/", 3)[3]  # /s/<service>/rest -> /rest
                if upstream is None:
                    upstream = await asyncio.open_connection(
                        "127.0.0.1", self.port, ssl=self.trust, server_hostname="127.0.0.1"
                    )
                up_reader, up_writer = upstream
                up_writer.write(
                    b"%s %s HTTP/1.1\r\n%s%s\r\n\r\n%s" % (method, path, self.injected, b"\r\n".join(kept), body)
                )
                answer_head = await up_reader.readuntil(b"\r\n\r\n")
                length = _length(answer_head)
                answer = (await up_reader.readexactly(length)).replace(SECRET.encode(), MARK)
                answer_head = answer_head.replace(b"content-length: %d" % length, b"content-length: %d" % len(answer))
                writer.write(answer_head + answer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()


async def main(upstream_port: int, ca_file: str) -> None:
    floor = Floor(upstream_port, ssl.create_default_context(cafile=ca_file))
    server = await asyncio.start_server(floor.serve, "127.0.0.1", 0, backlog=256)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
