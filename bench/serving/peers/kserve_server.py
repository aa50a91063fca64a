"""KServe's Python model server around the project's model: a `kserve.Model` whose predict ranks the body.

KServe's v1 endpoint parses the JSON body before predict (orjson); predict serializes it back to our
request bytes, ranks them with service.live.pipeline.rank and returns the response bytes, which KServe
sends as they are. Its REST server hard-codes host 0.0.0.0 (kserve/protocol/rest/server.py), so the
uvicorn.Config it builds is given host 127.0.0.1 here; gRPC is off.

    .venv-peers/kserve/bin/python -m bench.serving.peers.kserve_server --port 8200
    POST /v1/models/ranker:predict
"""

import argparse
import functools

import kserve
import orjson
import uvicorn
from kserve.protocol.rest import server as rest_server

from bench.serving.peers.core import Ranker


class RankerModel(kserve.Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ranker: Ranker | None = None

    def load(self) -> bool:
        self.ranker = Ranker()
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None) -> bytes:
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return self.ranker.rank(raw)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args, _ = p.parse_known_args()
    rest_server.uvicorn.Config = functools.partial(uvicorn.Config, host="127.0.0.1")  # loopback only
    model = RankerModel("ranker")
    model.load()
    kserve.ModelServer(http_port=args.port, enable_grpc=False, workers=1).start([model])


if __name__ == "__main__":
    main()
