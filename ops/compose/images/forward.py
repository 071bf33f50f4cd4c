"""A small TCP forwarder for the compose stack's test-only peers.

    forward.py LISTEN_HOST:PORT=TARGET_HOST:PORT [...] [-- COMMAND ...]

Copies bytes both ways between each accepted connection and a new connection to its target.
With a command after `--`, it also starts that command, exits when it exits, and stops it on
SIGTERM (exit 0 then).

Used twice in ops/compose/compose.yaml: the Stripe emulator (testkit/py/stripe_emulator.py)
binds 127.0.0.1 only, so its container forwards 0.0.0.0:8420 to its API and 0.0.0.0:8423 to
localstripe's own port (the fake Stripe.js); and the binaries accept a plain-http Stripe API
base only on loopback, so a small "ambassador" beside each app container (sharing its network
namespace) forwards 127.0.0.1:8420 to the emulator.
"""

import asyncio
import signal
import sys


def split(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(argv):
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    pairs = argv[:argv.index("--")] if "--" in argv else argv

    def handler(target):
        async def handle(client_reader, client_writer):
            try:
                up_reader, up_writer = await asyncio.open_connection(*split(target))
            except OSError as e:
                print(f"forward: cannot reach {target}: {e}", file=sys.stderr)
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))
        return handle

    servers = []
    for pair in pairs:
        listen, _, target = pair.partition("=")
        servers.append(await asyncio.start_server(handler(target), *split(listen)))
        print(f"forward: {listen} -> {target}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    child = await asyncio.create_subprocess_exec(*command) if command else None
    waits = [asyncio.ensure_future(stop.wait())]
    if child:
        waits.append(asyncio.ensure_future(child.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.close()
    if child and child.returncode is None:
        # Stopped from outside: stop the command too; that is a clean exit.
        child.terminate()
        await child.wait()
        return 0
    return child.returncode if child and child.returncode else 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or "=" not in sys.argv[1]:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(sys.argv[1:])))
