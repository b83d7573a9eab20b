"""Diagnosis grid (issue 16): deep teachers with even+linear activations, recovered with
``ecluster recover``'s defaults, and what every excess neuron is.

Grid: relu, leaky_relu, gelu, silu, softplus x sizes ``8,5,4,2`` (two hidden layers) and
``8,5,4,3,2`` (three) x seeds 0 and 1 (the teacher's seed and the recovery's). Each
recovery is what ``ecluster teacher --sizes S --activation A --seed s`` followed by
``ecluster recover --teacher T --seed s`` does: 20,000 Gaussian queries, students 4x the
teacher's widths, every other setting at its default; the RMSE is on the CLI's 10,000
held-out inputs. Ordered so that the first ten runs cover every activation at both depths.

Every recovered neuron that matches no teacher neuron is classified from the recovered
network (all in the basis of the recovered layer below):

- ``linear pair``: it shares its incoming vector with another recovered neuron up to a
  negative factor; the two carry ``sigma(z) - sigma(-z) = 2 m z``, a linear term;
- ``duplicate``: it shares its incoming vector up to a positive factor (the drop-one test
  should have merged it);
- ``redundant``: the other neurons of its layer (with a constant) explain what it feeds,
  to ``1e-4`` of that variance, on a well-conditioned fit: pruning should have removed it;
- ``shared cluster``: none of these: a neuron enough students share and the network uses.

Run from the repository root (one process, one torch thread; about a minute per run)::

    OMP_NUM_THREADS=1 python -m benchmarks.deep_even_linear --tag before
    python -m benchmarks.deep_even_linear --tag after --runs 10   # the first ten only
    python -m benchmarks.deep_even_linear --tag after --only silu:8,5,4,2:0 --resume

Each finished run is appended to ``benchmarks/results/deep_even_linear_<tag>.jsonl`` (a
killed grid keeps what it finished; ``--resume`` skips those), and the markdown table is
written to ``deep_even_linear_<tag>.md`` and printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from expand_and_cluster.activations import get_activation
from expand_and_cluster.cli import HELD_OUT_SAMPLES
from expand_and_cluster.data import heldout_inputs, query_inputs
from expand_and_cluster.evaluate import MATCH_DEG, compare_networks
from expand_and_cluster.network import MLP
from expand_and_cluster.reconstruct import RecoverySettings, recover
from expand_and_cluster.students import student_widths
from expand_and_cluster.symmetry import neuron_vectors
from expand_and_cluster.teachers import synthetic_teacher

RESULTS = Path(__file__).resolve().parent / "results"
ACTIVATIONS = ["relu", "leaky_relu", "gelu", "silu", "softplus"]
SIZES = ["8,5,4,2", "8,5,4,3,2"]
SEEDS = [0, 1]
QUERIES = 20_000
EXPANSION = 4.0
PAIR_DEG = 5.0  # two neurons "share an incoming vector" within this angle
REDUNDANT = 1e-4  # fraction of what the layer feeds


def grid() -> list[tuple[str, str, int]]:
    """Every (activation, sizes, seed), ordered so that the first ten cover every
    activation at both depths."""
    runs = []
    for seed in SEEDS:
        for i in range(2):
            for k, act in enumerate(ACTIVATIONS):
                runs.append((act, SIZES[(k + i + seed) % 2], seed))
    return runs


def run_one(activation: str, sizes: str, seed: int) -> dict:
    teacher = synthetic_teacher(sizes, activation, seed)
    settings = RecoverySettings(seed=seed)
    design = {"distribution": "gaussian", "n": QUERIES, "seed": seed}
    x = query_inputs(design, teacher.n_inputs)
    widths = student_widths(teacher.hidden_widths, EXPANSION)
    t0 = time.perf_counter()
    recovery, _ = recover(x, teacher, activation, widths, settings)
    seconds = time.perf_counter() - t0
    x_test = heldout_inputs({**design, "n": HELD_OUT_SAMPLES}, teacher.n_inputs)
    comparison = compare_networks(recovery.network, teacher, x_test)
    return {
        "activation": activation,
        "sizes": sizes,
        "seed": seed,
        "seconds": seconds,
        "widths": comparison["widths"],
        "teacher_widths": comparison["teacher_widths"],
        "angles_deg": comparison["angles_deg"],
        "rmse": comparison["rmse"],
        "excess": classify_excess(recovery.network, teacher, x),
        "diagnostics": recovery.diagnostics(),
    }


def classify_excess(network: MLP, teacher: MLP, x: np.ndarray) -> list[list[str]]:
    """Per hidden layer, what each recovered neuron that matches no teacher neuron is."""
    matched = _matched(network, teacher)
    f = get_activation(network.activation).numpy
    inputs = [x[:5000], *network.hidden_activations(x[:5000])]
    out: list[list[str]] = []
    for layer, w in enumerate(network.weights[:-1]):
        vec = neuron_vectors(w, network.biases[layer])
        unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        cos = unit @ unit.T
        h = f(inputs[layer] @ w.T + network.biases[layer])
        feeds = h @ network.weights[layer + 1].T
        kinds = []
        for j in np.flatnonzero(~matched[layer]):
            others = np.delete(np.arange(len(vec)), j)
            near = np.degrees(np.arccos(np.clip(np.abs(cos[j, others]), 0, 1))) < PAIR_DEG
            if near.any():
                sign = cos[j, others[near][0]]
                kind = "linear pair" if sign < 0 else "duplicate"
                kinds.append(f"{kind} (with neuron {others[near][0]})")
                continue
            rise = _relative_rise(h, feeds, j)
            label = "redundant" if rise < REDUNDANT else "shared cluster"
            kinds.append(f"{label} (drop-one rise {rise:.1e})")
        out.append(kinds)
    return out


def _matched(network: MLP, teacher: MLP) -> list[np.ndarray]:
    """Which recovered neurons have a teacher match (within MATCH_DEG), per layer."""
    comparison = compare_networks(network, teacher, np.zeros((1, teacher.n_inputs)))
    result = []
    for layer, width in enumerate(network.hidden_widths):
        n_matched = sum(a is not None and a <= MATCH_DEG for a in comparison["angles_deg"][layer])
        # compare_networks does not say which recovered neurons matched; redo its assignment
        result.append(_assignment(network, teacher, layer, width, n_matched))
    return result


def _assignment(network: MLP, teacher: MLP, layer: int, width: int, n_matched: int):
    # Excess neurons are the recovered ones whose removal leaves the matches unchanged:
    # approximated by the neurons with the largest angle to every teacher neuron, after the
    # same previous-layer mapping compare_networks uses (layer 0: the raw vectors).
    from expand_and_cluster.symmetry import angle_deg

    sym = get_activation(network.activation).symmetry
    if layer == 0:
        t_vec = neuron_vectors(teacher.weights[0], teacher.biases[0])
        r_vec = neuron_vectors(network.weights[0], network.biases[0])
        angles = angle_deg(t_vec[:, None, :], r_vec[None, :, :], sym)
        best = angles.min(axis=0)
    else:
        # Compare what each recovered neuron computes with the teacher's neurons of the same
        # layer: correlation of pre-activations on the inputs.
        x = np.random.default_rng(0).standard_normal((4000, teacher.n_inputs))
        r = network.hidden_activations(x)[layer - 1] @ network.weights[layer].T
        r = r + network.biases[layer]
        t = teacher.hidden_activations(x)[layer - 1] @ teacher.weights[layer].T
        t = t + teacher.biases[layer]
        corr = np.abs(np.corrcoef(r.T, t.T)[: r.shape[1], r.shape[1] :])
        best = np.degrees(np.arccos(np.clip(corr.max(axis=1), 0, 1)))
    order = np.argsort(best)
    matched = np.zeros(width, dtype=bool)
    matched[order[:n_matched]] = True
    return matched


def _relative_rise(h: np.ndarray, feeds: np.ndarray, j: int) -> float:
    """Rise of the least-squares error of ``feeds`` when neuron ``j`` is left out of the
    layer (plus a constant), relative to the variance of ``feeds``; column-normalised."""
    design = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    full = _residual(design, feeds)
    without = _residual(np.delete(design, j, axis=1), feeds)
    return (without - full) / max(float(np.sum(np.var(feeds, axis=0))), 1e-300)


def _residual(design: np.ndarray, y: np.ndarray) -> float:
    scale = np.maximum(np.linalg.norm(design, axis=0), 1e-300)
    d = design / scale
    gram = d.T @ d
    coef = np.linalg.solve(gram + 1e-10 * np.trace(gram) / len(gram) * np.eye(len(gram)), d.T @ y)
    return float(np.sum(np.mean((d @ coef - y) ** 2, axis=0)))


def table(rows: list[dict]) -> str:
    lines = [
        "| teacher | seed | widths (teacher) | max angle (deg) | held-out RMSE | status | s "
        "| excess neurons |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        angles = [a for layer in r["angles_deg"] for a in layer]
        found = [a for a in angles if a is not None]
        worst = f"{max(found):.2f}" if found else "-"
        missing = sum(a is None for a in angles)
        exact = r["widths"] == r["teacher_widths"] and not missing and max(found) < 1.0
        status = "exact" if exact else ("missing " + str(missing) if missing else "inexact")
        excess = "; ".join(f"L{i + 1}: " + ", ".join(k) for i, k in enumerate(r["excess"]) if k)
        lines.append(
            f"| {r['activation']} {r['sizes']} | {r['seed']} | {r['widths']} "
            f"({r['teacher_widths']}) | {worst} | {r['rmse']:.1e} | {status} "
            f"| {r['seconds']:.0f} | {excess or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="run")
    parser.add_argument("--runs", type=int, default=None, help="only the first RUNS of the grid")
    parser.add_argument(
        "--only", nargs="*", default=None, help="only these runs, e.g. silu:8,5,4,2:0"
    )
    parser.add_argument("--resume", action="store_true", help="skip runs already in the file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"deep_even_linear_{args.tag}.jsonl"
    done = []
    if args.resume and path.exists():
        done = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif path.exists():
        path.unlink()
    seen = {(r["activation"], r["sizes"], r["seed"]) for r in done}
    runs = grid()[: args.runs]
    if args.only is not None:
        wanted = [tuple(o.split(":")) for o in args.only]
        runs = [(a, s, int(k)) for a, s, k in wanted]
    for act, sizes, seed in runs:
        if (act, sizes, seed) in seen:
            continue
        row = run_one(act, sizes, seed)
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        done.append(row)
        print(table([row]).splitlines()[-1], flush=True)
    text = table(done)
    (RESULTS / f"deep_even_linear_{args.tag}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
