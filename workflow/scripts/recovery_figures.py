"""The figures of one recovery: the paper's Fig. 3 trio (similarity matrix, dendrogram, cluster
angles against beta) and the alignment of the recovered neurons with the teacher's."""

import logging

import _study

from expand_and_cluster import figures
from expand_and_cluster.activations import get_activation
from expand_and_cluster.store import network_attrs, read_clusters, read_json

log = logging.getLogger("study.recovery_figures")


def main(summary_file: str, store: str, metrics_file: str, settings: dict, out: dict) -> None:
    summary = read_json(summary_file)
    metrics = read_json(metrics_file)
    trio_paths = [out["similarity"], out["dendrogram"], out["cluster_angles"]]
    if summary["status"] == "ok":
        attrs = network_attrs(store)
        layers = [read_clusters(store, layer) for layer in range(int(attrs["n_layers"]) - 1)]
        sign_invariant = get_activation(attrs["activation"]).symmetry.has_sign_flip
        trio = {
            out["similarity"]: figures.similarity_figure(
                layers, sign_invariant, settings["max_similarity_neurons"]
            ),
            out["dendrogram"]: figures.dendrogram_figure(layers),
            out["cluster_angles"]: figures.cluster_angles_figure(layers, summary["widths"]),
        }
    else:
        message = figures.message_figure("Recovery failed", summary["reason"])
        trio = dict.fromkeys(trio_paths, message)
    for path, fig in {**trio, out["alignment"]: figures.alignment_figure(metrics)}.items():
        figures.save(fig, path, settings["dpi"])
        log.info("wrote %s", path)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    i = snakemake.input
    main(i.summary, i.store, i.metrics, snakemake.params.settings, dict(snakemake.output.items()))
