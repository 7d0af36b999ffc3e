"""Fallback SMTP sink when Postfix's ``smtp-sink`` is missing: aiosmtpd in its own process.

    python -m bench.aiosmtpd_sink PORT

Accepts every message on 127.0.0.1:PORT and prints ``mesg=N`` after each one (as
``smtp-sink -c`` does), so the benchmark reads the count the same way. Stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller


class CountingSink:
    def __init__(self) -> None:
        self.messages = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.messages += 1
            count = self.messages
        sys.stdout.write(f"mesg={count}\r")
        sys.stdout.flush()
        return "250 OK"


def main() -> None:
    port = int(sys.argv[1])
    controller = Controller(CountingSink(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
