"""`ranker weights diff OLD NEW`: what a weights change does, request by request.

For every profile that changed (or is new, or is named with --profile / --all):
    kendall_tau    mean per-request Kendall tau-b between the old and the new order
    overlap@k      mean share of the old top k that the new top k keeps
    deltas         new minus old replay metrics, paired per request, with bootstrap intervals
    most changed   the requests whose top k changed most (lowest overlap, then lowest tau),
                   with their old and new top-k item ids
A new profile is compared with the old file's default profile: that is what its traffic got before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.profiles import CompiledWeights
from training.evaluation import ranking as R
from training.profiles.logs import ScoredLog
from training.profiles.replay import Metric, check_metrics
from training.profiles.stats import RESAMPLES, Estimate, estimate


@dataclass(frozen=True)
class Pair:
    """One comparison: profile `old` of the old file against profile `new` of the new file."""

    label: str
    old: str
    new: str
    note: str = ""


@dataclass
class ProfileDiff:
    pair: Pair
    kendall_tau: Estimate
    overlap: Estimate
    deltas: dict[str, Estimate]
    old_metrics: dict[str, Estimate]
    new_metrics: dict[str, Estimate]
    most_changed: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"profile": self.pair.label, "old": self.pair.old, "new": self.pair.new, "note": self.pair.note,
                "kendall_tau": self.kendall_tau.to_dict(), "overlap": self.overlap.to_dict(),
                "deltas": {k: v.to_dict() for k, v in self.deltas.items()},
                "old_metrics": {k: v.to_dict() for k, v in self.old_metrics.items()},
                "new_metrics": {k: v.to_dict() for k, v in self.new_metrics.items()},
                "most_changed": self.most_changed}


def changed_pairs(old: CompiledWeights, new: CompiledWeights, names: list[str] | None,
                  everything: bool) -> tuple[list[Pair], list[str]]:
    """The comparisons to make, and notes on what else changed (removed profiles, a new default)."""
    of, nf = old.weights.file, new.weights.file
    pairs, notes = [], []
    wanted = names or list(nf.profiles)
    for name in wanted:
        if name not in nf.profiles:
            raise ValueError(f"--profile: {name!r} is not a profile of the new file ({sorted(nf.profiles)})")
        if name not in of.profiles:
            pairs.append(Pair(name, of.default_profile, name, f"new profile; compared with the old default "
                                                              f"{of.default_profile!r}"))
        elif everything or names or of.profiles[name] != nf.profiles[name]:
            pairs.append(Pair(name, name, name, "" if of.profiles[name] != nf.profiles[name] else "unchanged"))
    if of.default_profile != nf.default_profile:
        pairs.append(Pair("(default)", of.default_profile, nf.default_profile,
                          f"the default profile changed from {of.default_profile!r} to {nf.default_profile!r}"))
    removed = sorted(set(of.profiles) - set(nf.profiles))
    if removed:
        notes.append(f"removed profile(s): {removed}")
    if of.experiments != nf.experiments:
        notes.append(f"experiments changed: {_experiment_text(of.experiments)} -> {_experiment_text(nf.experiments)}")
    return pairs, notes


def _experiment_text(e: object) -> str:
    return "none" if e is None else f"{e.name} {dict(e.arms)}"  # type: ignore[attr-defined]


def diff_profile(log: ScoredLog, old: CompiledWeights, new: CompiledWeights, pair: Pair, metrics: list[Metric],
                 k: int, top: int = 5, resamples: int = RESAMPLES, seed: int = 0) -> ProfileDiff:
    """Compare one pair of profiles on every request of the log."""
    check_metrics(metrics, log)
    a, b = log.scores(old.profiles[pair.old]), log.scores(new.profiles[pair.new])
    tau = R.kendall_tau(log.requests, a, b)
    kept = R.overlap(log.requests, a, b, k)
    old_m = {m.name: m.per_request(log, a) for m in metrics}
    new_m = {m.name: m.per_request(log, b) for m in metrics}
    return ProfileDiff(
        pair=pair, kendall_tau=estimate(tau, resamples, seed), overlap=estimate(kept, resamples, seed),
        deltas={n: estimate(new_m[n] - old_m[n], resamples, seed) for n in old_m},
        old_metrics={n: estimate(v, resamples, seed) for n, v in old_m.items()},
        new_metrics={n: estimate(v, resamples, seed) for n, v in new_m.items()},
        most_changed=most_changed(log, a, b, kept, tau, k, top),
    )


def top_items(log: ScoredLog, scores: np.ndarray, request: int, k: int) -> list:
    """The item ids (or row numbers without an item id column) of one request's top k, best first."""
    rows = np.flatnonzero(log.requests.group == request)
    order = rows[np.argsort(-scores[rows], kind="stable")][:k]
    ids = log.item_ids[order] if log.item_ids is not None else order
    return [x.item() if hasattr(x, "item") else x for x in ids]


def most_changed(log: ScoredLog, a: np.ndarray, b: np.ndarray, kept: np.ndarray, tau: np.ndarray, k: int,
                 top: int) -> list[dict]:
    """The `top` requests with the lowest top-k overlap (then the lowest tau), old and new top k."""
    changed = np.flatnonzero(kept < 1.0)
    order = changed[np.lexsort((np.nan_to_num(tau[changed], nan=1.0), kept[changed]))][:top]
    out = []
    for r in order.tolist():
        rid = log.requests.ids[r]
        out.append({"request_id": rid.item() if hasattr(rid, "item") else rid, "overlap": float(kept[r]),
                    "kendall_tau": None if np.isnan(tau[r]) else float(tau[r]),
                    "old_top": top_items(log, a, r, k), "new_top": top_items(log, b, r, k)})
    return out


def render_markdown(diffs: list[ProfileDiff], notes: list[str], k: int) -> str:
    if not diffs:
        return "\n".join(["No profile changed.", *notes]) + "\n"
    lines = [f"- {n}" for n in notes] + ([""] if notes else [])
    for d in diffs:
        title = d.pair.label if d.pair.old == d.pair.new else f"{d.pair.label} ({d.pair.old} -> {d.pair.new})"
        lines += [f"### {title}", ""] + ([f"{d.pair.note}", ""] if d.pair.note else [])
        lines += [f"Kendall tau {d.kendall_tau.text()}, top-{k} overlap {d.overlap.text()}", "",
                  "| metric | old | new | new - old |", "|---|---|---|---|"]
        lines += [f"| {n} | {d.old_metrics[n].text()} | {d.new_metrics[n].text()} | {d.deltas[n].text()} |"
                  for n in d.deltas]
        if d.most_changed:
            lines += ["", f"Requests whose top {k} changed most:", "", "| request | overlap | tau | old top | new top |",
                      "|---|---|---|---|---|"]
            lines += [f"| {r['request_id']} | {r['overlap']:.2f} | "
                      f"{'n/a' if r['kendall_tau'] is None else format(r['kendall_tau'], '.2f')} | "
                      f"{', '.join(map(str, r['old_top']))} | {', '.join(map(str, r['new_top']))} |"
                      for r in d.most_changed]
        lines.append("")
    return "\n".join(lines)
