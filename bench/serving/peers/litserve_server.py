"""LitServe around the project's model: a LitAPI whose predict runs service.live.pipeline.rank.

    .venv-peers/litserve/bin/python -m bench.serving.peers.litserve_server --port 8200
"""

import argparse

import litserve as ls
import orjson
from fastapi import Response

from bench.serving.peers.core import Ranker


class RankerAPI(ls.LitAPI):
    def setup(self, device) -> None:
        self.ranker = Ranker()

    def decode_request(self, request):
        return orjson.dumps(request)  # LitServe hands over the parsed JSON body

    def predict(self, raw: bytes) -> bytes:
        return self.ranker.rank(raw)

    def encode_response(self, body: bytes):
        return Response(content=body, media_type="application/json")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    server = ls.LitServer(RankerAPI(), accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
