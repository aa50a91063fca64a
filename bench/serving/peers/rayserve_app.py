"""Ray Serve around the project's model: one deployment taking the raw Starlette request.

Ray is started local-only on loopback (node IP 127.0.0.1, no dashboard) and Serve's HTTP proxy binds
127.0.0.1; bench/serving/peers/run.py checks with `ss` that no port of the tree listens elsewhere.

    .venv-peers/rayserve/bin/python -m bench.serving.peers.rayserve_app --port 8200
"""

import argparse
import os
import signal
import time

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 1})
class RankerDeployment:
    def __init__(self) -> None:
        from bench.serving.peers.core import Ranker
        self.ranker = Ranker()

    async def __call__(self, request: Request) -> Response:
        return Response(self.ranker.rank(await request.body()), media_type="application/json")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    env = {k: os.environ[k] for k in ("PEERS_BUNDLE", "PEERS_WEIGHTS", "PYTHONPATH") if k in os.environ}
    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": env}, num_cpus=2)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(RankerDeployment.bind(), route_prefix="/v1/rank")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.5)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
