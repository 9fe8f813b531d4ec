"""TensorZero's gateway (Rust, from its wheel) with rate limits kept in Valkey/Redis, until SIGTERM.

    python serve_tz_valkey.py CONFIG VALKEY_URL PORT_FILE

The peer setup's `serve_tz.py` pins the gateway's port by narrowing the ephemeral port range while
it binds, which would also leave no port for the gateway's own connection to Valkey; this one lets
it bind an ephemeral port and writes that port to PORT_FILE (benchmarks/sizes.py --shared-state
reads it). Run it inside a private network namespace, as the benchmark does.
"""

import signal
import sys
from urllib.parse import urlsplit

from tensorzero import _start_http_gateway

cfg, valkey, port_file = sys.argv[1], sys.argv[2], sys.argv[3]
gw = _start_http_gateway(config_file=cfg, clickhouse_url=None, postgres_url=None, valkey_url=valkey, async_setup=False)
with open(port_file, "w") as fh:
    fh.write(str(urlsplit(gw.base_url).port))
print("tensorzero gateway at", gw.base_url, flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
gw.close()
