"""``remotair dataset``: labeled image sets for retraining and for Rekognition Custom Labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.output import add_json_argument, print_json
from agent.errors import ExitCode, RemotairError
from models.dataset import (
    DEFAULT_ATTRIBUTE,
    DEFAULT_COUNTS,
    generate,
    sync_command,
    write_groundtruth_manifest,
)
from models.folders import SPLITS, DatasetError

MANIFEST_NAME = "visual-clean.manifest"


class DatasetCommandError(RemotairError):
    exit_code = ExitCode.USAGE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dataset",
        help="export or generate labeled image sets",
        description="Work with folder-per-label image sets (clean/, dirty/).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help="write a Rekognition Custom Labels (Ground Truth) manifest",
        description="Write a Ground Truth image-classification manifest (JSON lines) for a"
        " folder-per-label set and print the 'aws s3 sync' command that uploads the images where"
        " the manifest points.",
        epilog="example: remotair dataset export field/ --s3-prefix s3://my-bucket/visual-clean",
    )
    export.add_argument("directory", type=Path, metavar="DIR", help="holds clean/ and dirty/")
    export.add_argument("--s3-prefix", required=True, metavar="S3_URI")
    export.add_argument("--attribute", default=DEFAULT_ATTRIBUTE, help="label attribute name")
    export.add_argument("--job-name", help="job-name in the metadata (default: the attribute)")
    export.add_argument(
        "--output", type=Path, help=f"manifest file (default: DIR/../<DIR>-{MANIFEST_NAME})"
    )
    add_json_argument(export)
    export.set_defaults(func=run_export)
    gen = actions.add_parser(
        "generate",
        help="render a synthetic set with the simulated duct camera",
        description="Render a synthetic data set DIR/{train,val,calib,test}/{clean,dirty}/.",
        epilog="example: remotair dataset generate /tmp/ducts --train 200 --test 100",
    )
    gen.add_argument("directory", type=Path, metavar="DIR")
    for split in SPLITS:
        gen.add_argument(f"--{split}", type=int, default=DEFAULT_COUNTS[split], metavar="N")
    add_json_argument(gen)
    gen.set_defaults(func=run_generate)


def run_export(args: argparse.Namespace) -> int:
    root: Path = args.directory
    output: Path = args.output or root.resolve().parent / f"{root.resolve().name}-{MANIFEST_NAME}"
    prefix = args.s3_prefix.rstrip("/")
    try:
        count = write_groundtruth_manifest(
            root, prefix, output, attribute=args.attribute, job_name=args.job_name
        )
    except DatasetError as exc:
        raise DatasetCommandError(str(exc)) from exc
    commands = [sync_command(root, prefix), f"aws s3 cp {output} {prefix}/{output.name}"]
    if args.json:
        print_json({"manifest": str(output), "images": count, "upload_commands": commands})
    else:
        print(f"wrote {output} ({count} images)")
        print("upload the images and the manifest with:")
        for command in commands:
            print(f"  {command}")
    return ExitCode.OK


def run_generate(args: argparse.Namespace) -> int:
    counts = {split: getattr(args, split) for split in SPLITS}
    info = generate(args.directory, counts)
    if args.json:
        print_json(info)
    else:
        total = sum(counts.values())
        print(f"wrote {total} images to {args.directory} in {info['seconds']} s")
    return ExitCode.OK
