"""Put the seed's sample questions into ``s3://customer-data/`` on an S3 endpoint (moto for demos).

python examples/seed/upload_to_s3.py --endpoint-url http://127.0.0.1:5555
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "customer-data"
BUCKET = "customer-data"


def upload(endpoint_url: str | None = None, bucket: str = BUCKET, folder: Path = DATA) -> list[str]:
    """Create ``bucket`` if needed and upload every ``*.jsonl`` in ``folder``; return the keys."""
    import boto3  # type: ignore[import-untyped]  # lazy: only this helper needs it (extra: s3)

    client = boto3.client("s3", endpoint_url=endpoint_url)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    keys = []
    for path in sorted(folder.glob("*.jsonl")):
        client.put_object(Bucket=bucket, Key=path.name, Body=path.read_bytes())
        keys.append(path.name)
    return keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    parser.add_argument("--bucket", default=BUCKET)
    args = parser.parse_args()
    for key in upload(args.endpoint_url, args.bucket):
        print(f"uploaded s3://{args.bucket}/{key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
