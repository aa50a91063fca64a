"""The baseline for bench/serving/serve_latency.py: the same model served the way most first versions are.

FastAPI with one pydantic model per candidate, a Python loop that encodes row by row, the PyTorch
model in eager mode, a Python loop for the weighted score, and FastAPI's response_model
serialization. Same bundle, same encoders' parameters (vocabularies, means, stds), same default
weights profile, so it returns the same ranking; only the serving technique differs.

    python -m bench.serving.naive_server --bundle runs/demo-bundle --port 8100
"""

import argparse
import math
from pathlib import Path

import torch
import uvicorn
import yaml
from fastapi import FastAPI
from pydantic import BaseModel, create_model

from service.contract.bundle import read_manifest
from training.modeling.model import ExportHeads, ModelArgs, build_model

ITEM_ID = "item_id"


def load_torch_heads(bundle: Path, manifest) -> ExportHeads:
    ckpt = torch.load(bundle / "checkpoint.pt", map_location="cpu", weights_only=False)
    model = build_model(ModelArgs(**ckpt["model_args"]))
    model.load_state_dict(ckpt["state_dict"])
    scalers = ckpt["label_scalers"]
    scale = [(scalers[t.name]["transform"], scalers[t.name]["mean"], scalers[t.name]["std"])
             if t.name in scalers else ("none", 0.0, 1.0) for t in manifest.tasks]
    return ExportHeads(model.eval(), [t.type for t in manifest.tasks], scale).eval()


class NaiveRanker:
    """Row-by-row encoding, torch eager, a Python loop for the weighted score."""

    def __init__(self, bundle: Path, weights_path: Path) -> None:
        self.manifest = read_manifest(bundle)
        self.heads = load_torch_heads(bundle, self.manifest)
        self.feats = self.manifest.features
        self.vocab = {f.name: {v: i + 1 for i, v in enumerate(f.vocab)} for f in self.feats.categorical}
        self.profiles = yaml.safe_load(weights_path.read_text())["profiles"]
        self.stats = {t.name: t.score_stats for t in self.manifest.tasks}

    def encode_row(self, values: dict) -> tuple[list[int], list[float]]:
        cats = [self.vocab[f.name].get(None if values.get(f.name) is None else str(values.get(f.name)), 0)
                for f in self.feats.categorical]
        nums = []
        for f in self.feats.numeric:
            x = values.get(f.name)
            x = f.fill_value if x is None else float(x)
            if f.transform == "log1p":
                x = math.log1p(max(x, 0.0))
            nums.append((x - f.mean) / f.std)
        return cats, nums

    def transform(self, task: str, x: float, how: str) -> float:
        stats = self.stats[task]
        if how == "log1p":
            return math.log1p(max(x, 0.0))
        if how == "zscore":
            return (x - stats.mean) / stats.std
        if how == "minmax":
            return (x - stats.min) / (stats.max - stats.min)
        return x

    def score(self, scores: dict[str, float], profile: str) -> float:
        total = 0.0
        for task, w in self.profiles[profile].items():
            weight, how = (w, "identity") if isinstance(w, int | float) else (w["weight"], w.get("transform", "identity"))
            total += weight * self.transform(task, scores[task], how)
        return total

    def predict(self, cat_rows: list[list[int]], num_rows: list[list[float]]) -> dict[str, list[float]]:
        with torch.no_grad():
            outs = self.heads(torch.tensor(cat_rows, dtype=torch.long), torch.tensor(num_rows, dtype=torch.float32))
        return {t.name: o.tolist() for t, o in zip(self.manifest.tasks, outs, strict=True)}


class Item(BaseModel):
    item_id: str | int
    score: float
    rank: int
    scores: dict[str, float]


class RankResponse(BaseModel):
    profile: str
    items: list[Item]


def build_app(bundle: Path, weights_path: Path) -> FastAPI:
    ranker = NaiveRanker(bundle, weights_path)
    torch.set_num_threads(1)  # same as the onnxruntime server's intra-op threads: compare serving, not threads
    feats = ranker.feats
    # One pydantic model per candidate: the usual way to declare a request body.
    item_fields = {n: (str | int | float | None, None) for n in feats.by_source("item") if n in ranker.vocab}
    item_fields.update({f.name: (float | None, None) for f in feats.numeric if f.source == "item"})
    item_fields[ITEM_ID] = (str | int, ...)
    Candidate = create_model("Candidate", **item_fields)

    class RankRequest(BaseModel):
        user: dict
        context: dict = {}
        candidates: list[Candidate]  # type: ignore[valid-type]
        profile: str = "default"
        top_k: int | None = None

    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/v1/rank", response_model=RankResponse)
    def rank(req: RankRequest) -> RankResponse:
        cat_rows, num_rows = [], []
        for cand in req.candidates:  # row by row
            c, n = ranker.encode_row({**req.user, **req.context, **cand.model_dump()})
            cat_rows.append(c)
            num_rows.append(n)
        per_task = ranker.predict(cat_rows, num_rows)
        scored = []
        for i, cand in enumerate(req.candidates):
            s = {t: per_task[t][i] for t in per_task}
            scored.append((ranker.score(s, req.profile), cand.item_id, s))
        scored.sort(key=lambda x: -x[0])
        items = [Item(item_id=i, score=sc, rank=r + 1, scores=s) for r, (sc, i, s) in enumerate(scored[:req.top_k])]
        return RankResponse(profile=req.profile, items=items)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=Path("configs/weights.yaml"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(build_app(args.bundle, args.weights), host=args.host, port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
