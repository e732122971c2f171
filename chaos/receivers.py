"""The third parties on the mail host: `python -m chaos.receivers HOST SMTP_PORT CRM_PORT SECRET LOG`
runs the load suite's SMTP server and CRM webhook until it is killed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from load.receivers import receivers


def main() -> None:
    host, smtp_port, crm_port, secret, log = sys.argv[1:6]
    with receivers(Path(log), host, int(smtp_port), int(crm_port), secret):
        print("receivers ready", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
