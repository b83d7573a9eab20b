"""The figures of one recovery: the paper's Fig. 3 trio (similarity matrix, dendrogram, cluster
angles against beta) and the alignment of the recovered neurons with the teacher's."""

import _study

from expand_and_cluster import figures
from expand_and_cluster.activations import get_activation
from expand_and_cluster.store import network_attrs, read_clusters, read_json

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake)
settings = snakemake.params.settings
out = snakemake.output
summary = read_json(snakemake.input.summary)
metrics = read_json(snakemake.input.metrics)

if summary["status"] == "ok":
    attrs = network_attrs(snakemake.input.store)
    layers = [
        read_clusters(snakemake.input.store, layer) for layer in range(int(attrs["n_layers"]) - 1)
    ]
    sign_invariant = get_activation(attrs["activation"]).symmetry.has_sign_flip
    trio = {
        out.similarity: figures.similarity_figure(
            layers, sign_invariant, settings["max_similarity_neurons"]
        ),
        out.dendrogram: figures.dendrogram_figure(layers),
        out.cluster_angles: figures.cluster_angles_figure(layers, summary["widths"]),
    }
else:
    message = figures.message_figure("Recovery failed", summary["reason"])
    trio = dict.fromkeys([out.similarity, out.dendrogram, out.cluster_angles], message)
for path, fig in {**trio, out.alignment: figures.alignment_figure(metrics)}.items():
    figures.save(fig, path, settings["dpi"])
    log.info("wrote %s", path)
