"""What finding a request's key costs as the number of configured keys grows.

    taskset -c 1 python benchmarks/auth_keys.py [--root <another checkout>]

Keys given by their hash (``hash: sha256$...``) and keys given by environment reference (their clear
value read at load), 1 to 1,000 of them: microseconds per ``KeyStore.authenticate`` for a valid token
(the last key's and the middle one's, alternately) and for a wrong token. ``--root`` imports the
router from another checkout, to compare two commits in the same minutes.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--keys", default="1,10,100,1000")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    from router.auth import KeyStore, hash_key

    for mode in ("hash", "env"):
        for n in (int(x) for x in args.keys.split(",")):
            env = {f"K{i}": f"secret-{i:04d}-{'x' * 20}" for i in range(n)}
            rows = [
                {"id": f"k{i}", "tenant": "t", "hash": hash_key(env[f"K{i}"])}
                if mode == "hash"
                else {"id": f"k{i}", "tenant": "t", "key": f"os.environ/K{i}"}
                for i in range(n)
            ]
            store = KeyStore.build(rows, {}, lambda ref: env.get(ref.removeprefix("os.environ/")), None)
            last, mid = env[f"K{n - 1}"], env[f"K{n // 2}"]
            assert store.authenticate(last) is not None and store.authenticate("wrong") is None
            num = max(20, 20000 // n)
            valid = min(
                timeit.repeat(lambda: (store.authenticate(last), store.authenticate(mid)), number=num, repeat=5)
            )
            wrong = min(timeit.repeat(lambda: store.authenticate("wrong-token-" + "x" * 20), number=num, repeat=5))
            print(
                f"{mode:4s} {n:5d} keys: valid token {valid / num / 2 * 1e6:9.2f} us, "
                f"wrong token {wrong / num * 1e6:9.2f} us"
            )


if __name__ == "__main__":
    main()
