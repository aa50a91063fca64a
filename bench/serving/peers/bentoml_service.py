"""BentoML around the project's model: a @bentoml.service with one @bentoml.api taking the request's fields.

BentoML maps the JSON body's top-level fields onto the API's parameters (its documented way); they
are put back into our request body and ranked by service.live.pipeline.rank.

    cd <repo> && .venv-peers/bentoml/bin/bentoml serve bench.serving.peers.bentoml_service:RankerService \
        --host 127.0.0.1 --port 8200
"""

from typing import Any

import bentoml
import orjson

from bench.serving.peers.core import Ranker


@bentoml.service(workers=1, traffic={"timeout": 30})
class RankerService:
    def __init__(self) -> None:
        self.ranker = Ranker()

    @bentoml.api
    def rank(self, user: dict[str, Any], candidates: list[dict[str, Any]], context: dict[str, Any] | None = None,
             profile: str | None = None, top_k: int | None = None, request_id: str | None = None) -> dict:
        body = {"user": user, "context": context or {}, "candidates": candidates}
        body.update({k: v for k, v in (("profile", profile), ("top_k", top_k), ("request_id", request_id))
                     if v is not None})
        return orjson.loads(self.ranker.rank(orjson.dumps(body)))
