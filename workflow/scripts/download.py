"""Download one image data set into its data folder (needs internet) and verify every file
against its checksum; writes the list of verified files. Run `snakemake download`."""

import logging

import _study

from expand_and_cluster.datasets import download_dataset
from expand_and_cluster.store import write_json

log = logging.getLogger("study.download")


def main(dataset: str, files: dict, out: str) -> None:
    paths = download_dataset(dataset, files["root"], checksums=files["checksums"])
    log.info("%s: %d verified files in %s", dataset, len(paths), files["root"])
    write_json(out, {"dataset": dataset, "files": [str(p) for p in paths]})


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    main(snakemake.wildcards.dataset, snakemake.params.files, snakemake.output[0])
